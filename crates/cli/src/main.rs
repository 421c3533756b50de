//! `nexcage`: the admin CLI of the nexcage containerd shim. See the crate README.
//!
//! Exit status: 0 success; 1 failure (an unhealthy backend, a refused change, an I/O error);
//! 2 usage error (bad arguments, unknown backend, malformed config file).
//!
//! Tools run through `nexcage_core::cmd` only: its reaper reaps every child of this process, so
//! `tokio::process` and `std::process::Child::wait` must not be used here.

mod args;
mod backend_cmd;
mod edit;
mod health_cmd;
mod image_cmd;
mod load;
mod proxmox_cmd;
mod pull_cmd;
mod table;
mod toggle_cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::load::UsageError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                match &cli.command {
                    Command::Backend(cmd) => backend_cmd::run(&cli, cmd).await,
                    Command::Image(cmd) => image_cmd::run(&cli, cmd).await,
                    Command::Proxmox(cmd) => proxmox_cmd::run(&cli, cmd).await,
                }
            })
        });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nexcage: error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
