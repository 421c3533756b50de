//! `nexcage proxmox gc`: the proxmox-lxc backend's sweep, on demand.

use std::process::ExitCode;

use crate::args::{Cli, ProxmoxCmd};
use crate::load::{self, core_err};

pub async fn run(cli: &Cli, cmd: &ProxmoxCmd) -> anyhow::Result<ExitCode> {
    let config = load::load(cli.config.as_deref())?.config;
    match cmd {
        ProxmoxCmd::Gc => {
            nexcage_core::reaper::start()?;
            let settings = config.backend(nexcage_pve::NAME);
            // The sweep itself, in the foreground.
            let b = nexcage_pve::PveBackend::new(&settings, "default");
            let gone = b.sweep().await.map_err(core_err)?;
            if cli.json {
                println!("{}", serde_json::json!({ "destroyed": gone }));
            } else if gone.is_empty() {
                println!("nothing to remove");
            } else {
                for v in &gone {
                    println!("destroyed CT {v}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
