//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// nexcage administration: inspect, health-check, enable and disable backends.
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
