//! `pct start` (§2.2), `pct stop` (§2.3), `pct shutdown` (§2.4) on the real LXC container.

use super::{check_lock, load, lock, parse_vmid, rootfs_path, save};
use crate::lxc;
use crate::schema::Ty;
use crate::sim::{Failure, Sim};
use crate::Res;

/// `pct start <vmid> [--skiplock] [--debug]`.
pub fn start(sim: &Sim, args: &[String]) -> Res {
    let p = parse_vmid("start", args, &|k| {
        matches!(k, "skiplock" | "debug").then_some(Ty::Bool)
    })?;
    let vmid = p.vmid();
    sim.check_quorum()?;
    load(sim, vmid)?;
    if lxc::running(sim, vmid) {
        return Err(Failure::die(format!("CT {vmid} already running")));
    }
    start_ct(sim, vmid, p.flag("skiplock", false))?;
    Ok(0)
}

/// The `vzstart` worker: template and lock checks, pending changes applied, LXC config
/// regenerated, `lxc-start`; a failure prints LXC's output and fails with
/// `startup for container '<vmid>' failed`.
pub fn start_ct(sim: &Sim, vmid: u32, skiplock: bool) -> Result<(), Failure> {
    let _l = lock(sim, vmid)?;
    let mut conf = load(sim, vmid)?;
    if conf.main.keys.get("template").is_some_and(|t| t == "1") {
        return Err(Failure::die("you can't start a CT if it's a template"));
    }
    if !skiplock {
        check_lock(&conf, &["mounted"])?;
    }
    if conf.pending.is_some() {
        conf.apply_pending();
        save(sim, vmid, &conf)?;
    }
    let failed = || Failure::die(format!("startup for container '{vmid}' failed"));
    let rootfs = rootfs_path(sim, &conf).map_err(|e| {
        println!("{e}");
        failed()
    })?;
    lxc::write_config(sim, vmid, &conf.main, &rootfs).map_err(|e| {
        println!("{e}");
        failed()
    })?;
    lxc::start(sim, vmid).map_err(|e| {
        print!("{e}");
        failed()
    })
}

/// `pct stop <vmid> [--skiplock] [--overrule-shutdown]`: `lxc-stop --kill`.
pub fn stop(sim: &Sim, args: &[String]) -> Res {
    let p = parse_vmid("stop", args, &|k| {
        matches!(k, "skiplock" | "overrule-shutdown").then_some(Ty::Bool)
    })?;
    let vmid = p.vmid();
    let conf = load(sim, vmid)?;
    if !lxc::running(sim, vmid) {
        return Err(Failure::die(format!("CT {vmid} not running")));
    }
    if !p.flag("skiplock", false) {
        check_lock(&conf, &["mounted"])?;
    }
    lxc::stop(sim, vmid, &["--kill"]).map_err(Failure::die)?;
    after_stop(sim, vmid)
}

/// `pct shutdown <vmid> [--timeout N] [--forceStop 0|1]`.
pub fn shutdown(sim: &Sim, args: &[String]) -> Res {
    let p = parse_vmid("shutdown", args, &|k| match k {
        "timeout" => Some(Ty::Int(0, i64::MAX)),
        "forceStop" => Some(Ty::Bool),
        _ => None,
    })?;
    let vmid = p.vmid();
    let conf = load(sim, vmid)?;
    if !lxc::running(sim, vmid) {
        return Err(Failure::die(format!("CT {vmid} not running")));
    }
    check_lock(&conf, &["mounted"])?;
    let timeout = p.get("timeout").unwrap_or("60").to_string();
    let args: Vec<&str> = if p.flag("forceStop", false) {
        vec!["--timeout", &timeout]
    } else {
        vec!["--nokill", "--timeout", &timeout]
    };
    let _ = lxc::stop(sim, vmid, &args);
    if lxc::running(sim, vmid) {
        return Err(Failure::die("container did not stop"));
    }
    after_stop(sim, vmid)
}

/// The post-stop hook's part: apply pending changes.
fn after_stop(sim: &Sim, vmid: u32) -> Res {
    let _l = lock(sim, vmid)?;
    let mut conf = load(sim, vmid)?;
    if conf.pending.is_some() {
        conf.apply_pending();
        save(sim, vmid, &conf)?;
    }
    Ok(0)
}
