//! `pct`: the simulated subcommands and what they share (loading and saving configs, the lock
//! check, the rootfs path).

mod config;
mod create;
mod destroy;
mod exec;
mod power;
mod status;

pub use status::vmstatus;

use std::path::PathBuf;
use std::time::Duration;

use crate::args::{parse, Parsed, Spec};
use crate::conf::Conf;
use crate::lock::{lock_config, ConfigLock};
use crate::propstr::PropStr;
use crate::schema::{ct_key, Ty};
use crate::sim::{write_atomic, Failure, Sim};
use crate::storage::{self, VolRef};
use crate::Res;

/// Commands of real pct this simulator does not implement.
const NOT_SIMULATED: &[&str] = &[
    "pending",
    "resize",
    "restore",
    "suspend",
    "resume",
    "reboot",
    "clone",
    "migrate",
    "move-volume",
    "move_volume",
    "remote-migrate",
    "snapshot",
    "delsnapshot",
    "listsnapshot",
    "rollback",
    "template",
    "console",
    "enter",
    "fsck",
    "mount",
    "unmount",
    "push",
    "pull",
    "df",
    "rescan",
    "cpusets",
    "fstrim",
    "help",
];

/// Run `pct <args>`.
pub fn run(sim: &Sim, args: Vec<String>) -> Res {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(Failure::die(
            "ERROR: no command specified\nUSAGE: pct <COMMAND> [ARGS] [OPTIONS]",
        ));
    };
    match cmd.as_str() {
        "create" => create::run(sim, rest),
        "start" => power::start(sim, rest),
        "stop" => power::stop(sim, rest),
        "shutdown" => power::shutdown(sim, rest),
        "destroy" => destroy::run(sim, rest),
        "status" => status::status(sim, rest),
        "list" => status::list(sim, rest),
        "config" => config::show(sim, rest),
        "set" => config::set(sim, rest),
        "unlock" => config::unlock(sim, rest),
        "exec" => exec::run(sim, rest),
        c if NOT_SIMULATED.contains(&c) => {
            Err(Failure::die(format!("pve-sim: 'pct {c}' is not simulated")))
        }
        c => Err(Failure::die(format!(
            "ERROR: unknown command 'pct {c}'\nUSAGE: pct <COMMAND> [ARGS] [OPTIONS]"
        ))),
    }
}

/// Parse a command that takes `<vmid>` and the options `opt` accepts.
fn parse_vmid(
    cmd: &str,
    args: &[String],
    opt: &dyn Fn(&str) -> Option<Ty>,
) -> Result<Parsed, Failure> {
    parse(
        &Spec {
            tool: "pct",
            cmd,
            positional: &[("vmid", Ty::Vmid)],
            extra_args: false,
            opt,
        },
        args,
    )
}

fn conf_path(sim: &Sim, vmid: u32) -> PathBuf {
    sim.etc_pve().join(sim.ct_conf_rel(vmid))
}

/// Load CT `vmid`'s config, or `Configuration file '…' does not exist`.
fn load(sim: &Sim, vmid: u32) -> Result<Conf, Failure> {
    match std::fs::read_to_string(conf_path(sim, vmid)) {
        Ok(t) => Ok(Conf::parse(&t)),
        Err(_) => Err(Sim::no_conf(&sim.ct_conf_rel(vmid))),
    }
}

/// Write CT `vmid`'s config.
fn save(sim: &Sim, vmid: u32, conf: &Conf) -> Result<(), Failure> {
    write_atomic(&conf_path(sim, vmid), conf.write().as_bytes())
        .map_err(|e| Failure::die(format!("pve-sim: write config: {e}")))
}

/// The config flock, 10 s.
fn lock(sim: &Sim, vmid: u32) -> Result<ConfigLock, Failure> {
    lock_config(sim, vmid, false, Duration::from_secs(10))
}

/// `check_lock`: `CT is locked (L)`; `allowed` locks pass.
fn check_lock(conf: &Conf, allowed: &[&str]) -> Result<(), Failure> {
    match conf.lock() {
        Some(l) if !allowed.contains(&l) => Err(Failure::die(format!("CT is locked ({l})"))),
        _ => Ok(()),
    }
}

/// The host path of the CT's root file system, activating a managed volume.
fn rootfs_path(sim: &Sim, conf: &Conf) -> Result<PathBuf, String> {
    let rootfs = conf
        .main
        .keys
        .get("rootfs")
        .ok_or("missing rootfs configuration")?;
    let p = PropStr::parse(rootfs, Some("volume"))?;
    let vol = p.default.unwrap_or_default();
    match storage::volref(&vol, "local") {
        VolRef::Path(p) => Ok(PathBuf::from(p)),
        VolRef::Existing {
            storage: s,
            volname,
        } => {
            let st = storage::find(sim, &s)?;
            storage::activate(&st, &volname)?;
            Ok(st.path_of(&volname))
        }
        VolRef::New { .. } => Err(format!("rootfs '{vol}' is not allocated")),
    }
}

/// Any CT config key (for `create` and `set`).
fn ct_opt(k: &str) -> Option<Ty> {
    ct_key(k)
}
