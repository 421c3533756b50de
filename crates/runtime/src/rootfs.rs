//! `[rootfs] source = "image-store"`: the container's root file system comes from nexcage's
//! image store instead of containerd's snapshot mounts (which are then ignored).
//!
//! Create ([`prepare`]):
//!
//! 1. the image: the CRI annotation `io.kubernetes.cri.image-name`, else the image containerd
//!    made the container from (asked by the CLI with `--container ID`);
//! 2. an image the store already names, with its top layer present, is used as is; otherwise
//!    the `nexcage` CLI unpacks it from containerd's content store:
//!    `nexcage [--config FILE] --json image pull-from-containerd --address ADDR --namespace NS
//!    IMAGE|--container ID` (a subprocess, so the shim never links the gRPC client);
//! 3. the store makes the rootfs (`zfs clone` of the top layer's snapshot as
//!    `<[rootfs] dataset>/<ns>_<id>`, or a copy `<store>/rootfs/<ns>_<id>` for the directory
//!    store), bind-mounted on `<bundle>/rootfs`;
//! 4. `<bundle>/nexcage-rootfs.json` records which store and name, so delete (also the shim's
//!    `delete` action after a crash) can undo it without the config.
//!
//! A failure at any step undoes the steps before it. Delete ([`release`]) unmounts
//! `<bundle>/rootfs`, removes the rootfs through the store (destroys the clone, or the copy) and
//! the record; it is idempotent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nexcage_core::cmd::Cmd;
use nexcage_core::config::{Config, ImageStoreSettings};
use nexcage_core::{Error, HasKind, Result};
use nexcage_image::{AnyStore, ApplyOptions, Digest, Store};
use nix::mount::{mount, MsFlags};
use serde::{Deserialize, Serialize};

use crate::mount::unmount_all;

/// The CRI annotation naming a container's image.
pub const IMAGE_NAME_ANNOTATION: &str = "io.kubernetes.cri.image-name";
/// The record of an image-store rootfs, in the bundle.
pub const RECORD_FILE: &str = "nexcage-rootfs.json";
/// File name of the CLI.
pub const CLI_NAME: &str = "nexcage";

/// containerd as the shim knows it: its gRPC socket (`-address`) and the namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerdEndpoint {
    /// containerd's gRPC socket.
    pub address: String,
    /// The namespace of this shim's containers.
    pub namespace: String,
}

/// What [`prepare`] needs for one container.
#[derive(Debug)]
pub struct Prepare<'a> {
    /// The effective configuration.
    pub config: &'a Config,
    /// The config file the runtime options named (passed on to the CLI).
    pub config_path: Option<&'a Path>,
    /// containerd.
    pub containerd: &'a ContainerdEndpoint,
    /// Container id.
    pub id: &'a str,
    /// Bundle directory.
    pub bundle: &'a Path,
    /// The spec's annotations.
    pub annotations: Option<&'a std::collections::HashMap<String, String>>,
    /// The dataset the clone must have (a Proxmox CT volume, `<pool>/subvol-<vmid>-disk-0`,
    /// see [`crate::backends::AnyBackend::reserve_volume`]); else `<[rootfs] dataset>/<ns>_<id>`.
    pub volume: Option<&'a str>,
}

/// `<bundle>/nexcage-rootfs.json`: enough to remove the rootfs without the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsRecord {
    /// `"dir"` or `"zfs"`.
    pub kind: String,
    /// The ZFS store's parent dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The directory store's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The store's lock directory.
    pub lock_dir: PathBuf,
    /// The rootfs name in the store (directory name or dataset).
    pub name: String,
    /// Where the store has it (bind-mounted on `<bundle>/rootfs`).
    pub source: PathBuf,
    /// The image it was made from.
    pub image: String,
}

impl RootfsRecord {
    fn settings(&self) -> ImageStoreSettings {
        match (&self.dataset, &self.path) {
            (Some(dataset), _) if self.kind == "zfs" => ImageStoreSettings::Zfs {
                dataset: dataset.clone(),
            },
            (_, path) => ImageStoreSettings::Dir {
                path: path.clone().unwrap_or_default(),
            },
        }
    }

    fn save(&self, bundle: &Path) -> Result<()> {
        let p = bundle.join(RECORD_FILE);
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::internal(format!("encode {}: {e}", p.display())))?;
        std::fs::write(&p, text).map_err(|e| Error::io(format!("write {}", p.display()), e))
    }

    /// The record in `bundle`, if there is one.
    pub fn load(bundle: &Path) -> Result<Option<RootfsRecord>> {
        let p = bundle.join(RECORD_FILE);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::invalid(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("read {}", p.display()), e)),
        }
    }
}

fn image_err(e: nexcage_image::Error) -> Error {
    Error::new(e.kind(), e.chain())
}

/// The rootfs name of container `id` in namespace `ns`: `<ns>_<id>` (both are containerd
/// identifiers, `[A-Za-z0-9._-]`, so it is one path component and a valid dataset component).
pub fn rootfs_name(ns: &str, id: &str) -> String {
    format!("{ns}_{id}")
}

/// The CLI to run: `[rootfs] cli`, else `nexcage` next to the running binary, else on `PATH`.
pub fn find_cli(config: &Config) -> Result<PathBuf> {
    if let Some(p) = &config.rootfs.cli {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(Error::unavailable(format!(
                "the nexcage CLI {} (config key rootfs.cli) does not exist; it unpacks images \
                 for [rootfs] source = \"image-store\"",
                p.display()
            )))
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(CLI_NAME)));
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(CLI_NAME))
                .collect()
        })
        .unwrap_or_default();
    beside
        .iter()
        .chain(on_path.iter())
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            Error::unavailable(format!(
                "the nexcage CLI ({CLI_NAME}) was not found next to the shim ({}) nor on PATH; \
                 it unpacks images for [rootfs] source = \"image-store\": install it or set \
                 rootfs.cli in the config",
                beside
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "unknown".into())
            ))
        })
}

/// The `--json` output of `image pull-from-containerd` that matters here.
#[derive(Debug, Deserialize)]
struct Pulled {
    name: String,
    layers: Vec<PulledLayer>,
}

#[derive(Debug, Deserialize)]
struct PulledLayer {
    chain_id: Digest,
}

/// Run the CLI to unpack `image` (or the image of container `id`); returns name and top chain.
async fn pull(p: &Prepare<'_>, image: Option<&str>) -> Result<(String, Digest)> {
    let cli = find_cli(p.config)?;
    let mut cmd = Cmd::new(&cli).timeout(p.config.rootfs_pull_timeout());
    if let Some(c) = p.config_path {
        cmd = cmd.arg("--config").arg(c);
    }
    cmd = cmd
        .args(["--json", "image", "pull-from-containerd", "--address"])
        .arg(&p.containerd.address)
        .arg("--namespace")
        .arg(&p.containerd.namespace);
    cmd = match image {
        Some(i) => cmd.arg(i),
        None => cmd.arg("--container").arg(p.id),
    };
    tracing::info!(id = p.id, image, cli = %cli.display(), "unpacking the image into the store");
    let out = cmd
        .run()
        .await
        .map_err(|e| Error::from(e).context(format!("unpack the image of container {}", p.id)))?;
    let pulled: Pulled = serde_json::from_str(&out.stdout).map_err(|e| {
        Error::internal(format!(
            "{}: unexpected output ({e}): {}",
            cli.display(),
            out.stdout.trim()
        ))
    })?;
    let top = pulled
        .layers
        .last()
        .map(|l| l.chain_id.clone())
        .ok_or_else(|| Error::internal(format!("image {} has no layers", pulled.name)))?;
    Ok((pulled.name, top))
}

/// The top chain id of `name` when the store names it and has its layers.
async fn cached(store: &AnyStore, name: &str) -> Result<Option<Digest>> {
    let catalog = store.catalog().read().await.map_err(image_err)?;
    let Some(top) = catalog.images.get(name).and_then(|r| r.top().cloned()) else {
        return Ok(None);
    };
    Ok(store
        .has_layer(&top)
        .await
        .map_err(image_err)?
        .then_some(top))
}

/// Make the container's rootfs from the image store and mount it on `<bundle>/rootfs` (see the
/// module docs). Nothing is left behind on failure.
pub async fn prepare(p: &Prepare<'_>) -> Result<RootfsRecord> {
    let store = AnyStore::from_config(p.config, ApplyOptions::default())
        .await
        .map_err(image_err)?;
    let annotated = p
        .annotations
        .and_then(|a| a.get(IMAGE_NAME_ANNOTATION))
        .filter(|s| !s.is_empty())
        .map(String::as_str);
    let found = match annotated {
        Some(name) => cached(&store, name).await?.map(|t| (name.to_string(), t)),
        None => None,
    };
    let (image, top) = match found {
        Some(f) => f,
        None => pull(p, annotated).await?,
    };
    let name = rootfs_name(&p.containerd.namespace, p.id);
    let (name, dataset) = match (p.volume, p.config.rootfs_dataset()) {
        (Some(volume), _) => (volume.to_string(), None),
        (None, Some(parent)) => {
            ensure_dataset(&parent).await?;
            (format!("{parent}/{name}"), Some(parent))
        }
        (None, None) => (name, None),
    };
    let made = store.create_rootfs(&top, &name).await.map_err(|e| {
        image_err(e).context(format!("rootfs {name} for {} from image {image}", p.id))
    })?;
    let settings = p.config.image_store();
    let record = RootfsRecord {
        kind: settings.kind().as_str().to_string(),
        dataset: match &settings {
            ImageStoreSettings::Zfs { dataset } => Some(dataset.clone()),
            ImageStoreSettings::Dir { .. } => None,
        },
        path: match &settings {
            ImageStoreSettings::Dir { path } => Some(path.clone()),
            ImageStoreSettings::Zfs { .. } => None,
        },
        lock_dir: p.config.image_lock_dir(),
        name: made.name.clone(),
        source: made.path.clone(),
        image: image.clone(),
    };
    let target = p.bundle.join("rootfs");
    let mounted = bind(&made.path, &target).and_then(|()| record.save(p.bundle));
    if let Err(e) = mounted {
        let _ = unmount_all(&target);
        let _ = std::fs::remove_file(p.bundle.join(RECORD_FILE));
        if let Err(u) = store.remove_rootfs(&made.name).await {
            tracing::warn!(id = p.id, rootfs = %made.name, error = %u.chain(), "undo rootfs");
        }
        return Err(e);
    }
    tracing::info!(id = p.id, image = %image, rootfs = %made.name, parent = ?dataset, "rootfs from the image store");
    Ok(record)
}

/// Create the parent of the rootfs clones when it is missing (`zfs create -p`).
async fn ensure_dataset(name: &str) -> Result<()> {
    let zfs = nexcage_zfs::Zfs::new();
    let map = |e: nexcage_zfs::Error| Error::new(e.kind(), format!("rootfs.dataset {name}: {e}"));
    if !zfs.exists(name).await.map_err(map)? {
        let opts = nexcage_zfs::CreateOpts {
            parents: true,
            ..Default::default()
        };
        match zfs.create(name, &opts).await {
            Ok(()) => {}
            // Another shim made it meanwhile.
            Err(_) if zfs.exists(name).await.unwrap_or(false) => {}
            Err(e) => return Err(map(e)),
        }
    }
    Ok(())
}

/// Bind-mount `source` on `target` (created when missing).
fn bind(source: &Path, target: &Path) -> Result<()> {
    std::fs::create_dir_all(target)
        .map_err(|e| Error::io(format!("create {}", target.display()), e))?;
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        Error::internal(format!(
            "bind-mount the rootfs {} on {}: {e}",
            source.display(),
            target.display()
        ))
    })
}

/// What is mounted on a container's `<bundle>/rootfs`, and so what delete undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mounted {
    /// Nothing (the bundle came with its rootfs directory).
    Nothing,
    /// containerd's snapshot mounts.
    Containerd,
    /// A rootfs of the image store ([`prepare`]).
    ImageStore,
}

/// Take down what `mounted` says is on `<bundle>/rootfs` (for the image store, [`release`]).
pub async fn undo(bundle: &Path, mounted: Mounted) -> Result<()> {
    match mounted {
        Mounted::Nothing => Ok(()),
        Mounted::Containerd => unmount_all(&bundle.join("rootfs")),
        Mounted::ImageStore => release(bundle).await,
    }
}

/// Undo [`prepare`] for the container of `bundle`: unmount `<bundle>/rootfs`, remove the rootfs
/// from the store, drop the record. Nothing to do without a record.
pub async fn release(bundle: &Path) -> Result<()> {
    let Some(rec) = RootfsRecord::load(bundle)? else {
        return Ok(());
    };
    unmount_all(&bundle.join("rootfs"))?;
    let store = AnyStore::open(&rec.settings(), &rec.lock_dir, ApplyOptions::default())
        .await
        .map_err(image_err)?;
    // The store may still be busy for a moment after the unmount (zfs-fuse: "dataset is busy");
    // it retries itself, and a second attempt covers a slow unmount.
    let mut result = store.remove_rootfs(&rec.name).await;
    if result.is_err() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        result = store.remove_rootfs(&rec.name).await;
    }
    result.map_err(|e| image_err(e).context(format!("remove rootfs {}", rec.name)))?;
    let p = bundle.join(RECORD_FILE);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", p.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_component() {
        assert_eq!(rootfs_name("k8s.io", "abc-1"), "k8s.io_abc-1");
    }

    #[test]
    fn a_missing_configured_cli_is_named() {
        let c = Config::parse("[rootfs]\ncli = \"/nonexistent/nexcage\"\n", "f").unwrap();
        let e = find_cli(&c).unwrap_err();
        assert_eq!(e.kind(), nexcage_core::ErrorKind::Unavailable);
        assert!(
            e.message().contains("/nonexistent/nexcage") && e.message().contains("rootfs.cli"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn records_round_trip_and_map_to_settings() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(RootfsRecord::load(d.path()).unwrap(), None);
        let r = RootfsRecord {
            kind: "zfs".into(),
            dataset: Some("tank/n".into()),
            path: None,
            lock_dir: "/run/nexcage/image".into(),
            name: "tank/n-rootfs/default_c1".into(),
            source: "/tank/n-rootfs/default_c1".into(),
            image: "docker.io/library/busybox:latest".into(),
        };
        r.save(d.path()).unwrap();
        let back = RootfsRecord::load(d.path()).unwrap().unwrap();
        assert_eq!(back, r);
        assert_eq!(
            back.settings(),
            ImageStoreSettings::Zfs {
                dataset: "tank/n".into()
            }
        );
    }

    #[tokio::test]
    async fn release_without_a_record_does_nothing() {
        let d = tempfile::tempdir().unwrap();
        release(d.path()).await.unwrap();
    }

    #[tokio::test]
    async fn a_dir_store_rootfs_is_removed_by_release() {
        let d = tempfile::tempdir().unwrap();
        let store_root = d.path().join("store");
        let store = nexcage_image::DirStore::open(&store_root, ApplyOptions::default()).unwrap();
        let bundle = d.path().join("bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        // A rootfs recorded as the store's, but never mounted: release must still remove it.
        let name = rootfs_name("ns", "c1");
        let dir = store_root.join("rootfs").join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let r = RootfsRecord {
            kind: "dir".into(),
            dataset: None,
            path: Some(store_root.clone()),
            lock_dir: d.path().join("locks"),
            name: name.clone(),
            source: dir.clone(),
            image: "x".into(),
        };
        r.save(&bundle).unwrap();
        drop(store);
        release(&bundle).await.unwrap();
        assert!(!dir.exists(), "the rootfs copy is gone");
        assert!(!bundle.join(RECORD_FILE).exists(), "the record is gone");
        release(&bundle).await.unwrap();
    }
}
