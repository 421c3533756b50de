//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// nexcage administration: inspect, health-check, enable and disable backends; import, list
/// and remove OCI images of nexcage's image store.
#[derive(Debug, Parser)]
#[command(name = "nexcage", version, about)]
pub struct Cli {
    /// Configuration file [default: /etc/nexcage/config.toml; built-in defaults when that file
    /// does not exist]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of aligned columns.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect and manage backends.
    #[command(subcommand)]
    Backend(BackendCmd),
    /// Import, list and remove OCI images of the image store (`[image_store]` in the config).
    #[command(subcommand)]
    Image(ImageCmd),
    /// The proxmox-lxc backend's CTs (`[proxmox]` in the config).
    #[command(subcommand)]
    Proxmox(ProxmoxCmd),
}

/// `nexcage proxmox …`.
#[derive(Debug, Subcommand)]
pub enum ProxmoxCmd {
    /// Destroy CTs whose task no longer exists: recorded CTs whose shim is gone, and CTs tagged
    /// `nexcage` in the VMID range without a record (with their volumes). Prints their VMIDs.
    Gc,
}

/// `nexcage image …`.
#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Unpack an OCI archive (.tar) or OCI layout directory into the store and name it.
    Import {
        /// The archive or layout directory.
        #[arg(value_name = "FILE|DIR")]
        source: PathBuf,
        /// The image's name [default: its org.opencontainers.image.ref.name]. When the layout
        /// holds several images, the one with this reference is imported.
        #[arg(long)]
        name: Option<String>,
    },
    /// Unpack an image of containerd's content store (over containerd's gRPC socket) into the
    /// store and name it. The shim runs this on a container's first use of an image with
    /// `[rootfs] source = "image-store"`.
    PullFromContainerd(PullArgs),
    /// Named images: digest, layers, size, and how many root file systems use each.
    #[command(alias = "list")]
    Ls,
    /// Forget an image's name; its layers go at the next prune (unless a rootfs uses them).
    Rm {
        /// Image name.
        name: String,
    },
    /// Remove every layer no image and no container root file system uses (and leftovers of
    /// interrupted unpacks). Layers a rootfs still uses are kept and listed.
    Prune {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `nexcage image pull-from-containerd`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// containerd's gRPC socket.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/run/containerd/containerd.sock"
    )]
    pub address: PathBuf,
    /// containerd namespace.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// The image's name in containerd (`docker.io/library/busybox:latest`).
    #[arg(required_unless_present = "container", conflicts_with = "container")]
    pub image: Option<String>,
    /// Take the image this containerd container was made from.
    #[arg(long, value_name = "ID")]
    pub container: Option<String>,
    /// The name to record [default: the image's name in containerd].
    #[arg(long)]
    pub name: Option<String>,
}

/// `nexcage backend …`.
#[derive(Debug, Subcommand)]
pub enum BackendCmd {
    /// One row per known backend, by priority (no health check).
    List,
    /// Settings, routing rules and health of one backend.
    Info {
        /// Backend name.
        name: String,
    },
    /// Run the health check now and refresh the cache the shim reads. Exits 1 when any checked
    /// backend is unhealthy.
    Health(HealthArgs),
    /// Set `[backends.NAME] enabled = true` in the config file.
    Enable {
        /// Backend name.
        name: String,
    },
    /// Set `[backends.NAME] enabled = false` in the config file.
    Disable {
        /// Backend name.
        name: String,
    },
}

/// Which backends `backend health` checks.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Check only this backend [default: every enabled backend].
    pub name: Option<String>,
    /// Check every known backend, disabled ones included.
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
}
