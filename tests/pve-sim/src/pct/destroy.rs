//! `pct destroy <vmid> [--force] [--purge] [--destroy-unreferenced-disks]` (§2.5).

use super::{check_lock, conf_path, load, lock, parse_vmid, save};
use crate::conf::Conf;
use crate::lxc;
use crate::propstr::PropStr;
use crate::schema::Ty;
use crate::sim::{Failure, Sim};
use crate::storage::{self, VolRef};
use crate::Res;

/// `pct destroy`.
pub fn run(sim: &Sim, args: &[String]) -> Res {
    let p = parse_vmid("destroy", args, &|k| {
        matches!(k, "force" | "purge" | "destroy-unreferenced-disks").then_some(Ty::Bool)
    })?;
    let vmid = p.vmid();
    sim.check_quorum()?;
    let conf = load(sim, vmid)?;
    if conf.main.keys.get("protection").is_some_and(|v| v == "1") {
        return Err(Failure::die(format!(
            "can't remove CT {vmid} - protection mode enabled"
        )));
    }
    check_lock(&conf, &[])?;
    let running = lxc::running(sim, vmid);
    if running && !p.flag("force", false) {
        return Err(Failure::die(format!(
            "unable to destroy CT {vmid} - container is running"
        )));
    }
    let _l = lock(sim, vmid)?;
    if running {
        println!("forced to stop CT {vmid} before destroying!");
        lxc::stop(sim, vmid, &["--kill"]).map_err(Failure::die)?;
    }
    let mut destroyed = Conf::default();
    destroyed
        .main
        .keys
        .insert("lock".into(), "destroyed".into());
    save(sim, vmid, &destroyed)?;
    let mut errors = Vec::new();
    for vol in volumes(&conf) {
        if let VolRef::Existing {
            storage: s,
            volname,
        } = storage::volref(&vol, "local")
        {
            match storage::find(sim, &s).and_then(|st| storage::free(&st, &volname)) {
                Ok(()) => {}
                Err(e) => errors.push(format!("{s}:{volname}: {e}")),
            }
        }
    }
    lxc::remove(sim, vmid);
    let _ = std::fs::remove_file(conf_path(sim, vmid));
    if !errors.is_empty() {
        // PVE warns about volumes it could not free and finishes the destroy.
        for e in errors {
            println!("WARN: {e}");
        }
    }
    Ok(0)
}

/// Every volume of the CT: rootfs, mount points, unused and pending ones.
fn volumes(conf: &Conf) -> Vec<String> {
    let mut out = Vec::new();
    let sections = std::iter::once(&conf.main).chain(conf.pending.iter());
    for s in sections {
        for (k, v) in &s.keys {
            let is_vol = k == "rootfs" || k.starts_with("mp") || k.starts_with("unused");
            if !is_vol {
                continue;
            }
            if let Ok(p) = PropStr::parse(v, Some("volume")) {
                if let Some(vol) = p.default.filter(|v| !out.contains(v)) {
                    out.push(vol);
                }
            }
        }
    }
    out
}
