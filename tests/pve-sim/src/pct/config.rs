//! `pct config` (§2.8), `pct set` (§2.9), `pct unlock` (§1.4).

use super::{check_lock, ct_opt, load, lock, parse_vmid, save};
use crate::conf::{show as show_section, Section};
use crate::lxc;
use crate::propstr::{canonical_net, format_size, PropStr};
use crate::schema::Ty;
use crate::sim::{Failure, Sim};
use crate::storage::{self, VolRef};
use crate::Res;

/// Keys a running CT takes at once (fast-plug and hot-plug); everything else goes to
/// `[pve:pending]`.
const LIVE_KEYS: &[&str] = &[
    "description",
    "onboot",
    "startup",
    "protection",
    "hostname",
    "hookscript",
    "cores",
    "tags",
    "lock",
    "memory",
    "swap",
    "cpulimit",
    "cpuunits",
];

fn is_live(k: &str) -> bool {
    LIVE_KEYS.contains(&k) || k.starts_with("net") || k.starts_with("mp") || k.starts_with("dev")
}

/// `pct config <vmid> [--current] [--snapshot NAME]`.
pub fn show(sim: &Sim, args: &[String]) -> Res {
    let p = parse_vmid("config", args, &|k| match k {
        "current" => Some(Ty::Bool),
        "snapshot" => Some(Ty::Str(40)),
        _ => None,
    })?;
    let vmid = p.vmid();
    if p.flag("current", false) && p.get("snapshot").is_some() {
        return Err(Failure::params(
            &[
                (
                    "current".into(),
                    "cannot use 'current' parameter with 'snapshot'".into(),
                ),
                (
                    "snapshot".into(),
                    "cannot use 'snapshot' parameter with 'current'".into(),
                ),
            ],
            "pct config <vmid> [OPTIONS]\n",
        ));
    }
    let conf = load(sim, vmid)?;
    let section: Section = match p.get("snapshot") {
        Some(s) => conf
            .snapshots
            .get(s)
            .cloned()
            .ok_or_else(|| Failure::die(format!("snapshot '{s}' does not exist")))?,
        None => conf.effective(p.flag("current", false)),
    };
    print!("{}", show_section(&section));
    Ok(0)
}

/// `pct set <vmid> [options] [--delete k1,k2]`.
pub fn set(sim: &Sim, args: &[String]) -> Res {
    let p = parse_vmid("set", args, &|k| match k {
        "delete" | "revert" | "digest" => Some(Ty::Str(4096)),
        k => ct_opt(k),
    })?;
    let vmid = p.vmid();
    sim.check_quorum()?;
    if p.opts.is_empty() {
        return Err(Failure::die("no options specified"));
    }
    for unsupported in ["revert", "digest"] {
        if p.get(unsupported).is_some() {
            return Err(Failure::die(format!(
                "pve-sim: --{unsupported} is not simulated"
            )));
        }
    }
    let _l = lock(sim, vmid)?;
    let mut conf = load(sim, vmid)?;
    if p.get("lock").is_none() {
        check_lock(&conf, &[])?;
    }
    let deletes: Vec<String> = p
        .get("delete")
        .map(|d| {
            d.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for d in &deletes {
        if d == "unprivileged" {
            return Err(Failure::die(
                "unable to modify read-only option: 'unprivileged'",
            ));
        }
        if matches!(d.as_str(), "memory" | "rootfs" | "ostype") {
            return Err(Failure::die(format!(
                "unable to delete required option '{d}'"
            )));
        }
    }
    if p.get("unprivileged").is_some() {
        return Err(Failure::die(
            "unable to modify read-only option: 'unprivileged'",
        ));
    }
    let running = lxc::running(sim, vmid);
    for (k, v) in &p.opts {
        if k == "delete" {
            continue;
        }
        let v = normalize(sim, vmid, k, v).map_err(Failure::die)?;
        if running && !is_live(k) {
            let pend = conf.pending.get_or_insert_with(Section::default);
            pend.keys.insert(k.clone(), v);
        } else {
            conf.main.keys.insert(k.clone(), v);
        }
    }
    for d in deletes {
        if running && !is_live(&d) {
            let pend = conf.pending.get_or_insert_with(Section::default);
            let e = pend.keys.entry("delete".into()).or_default();
            if !e.is_empty() {
                e.push(',');
            }
            e.push_str(&d);
        } else {
            conf.main.keys.remove(&d);
        }
    }
    save(sim, vmid, &conf)?;
    Ok(0)
}

/// Canonical form of a value (`netN`), allocating `mpN` volumes given as `STORAGE:SIZE`.
fn normalize(sim: &Sim, vmid: u32, k: &str, v: &str) -> Result<String, String> {
    if k.starts_with("net") {
        return canonical_net(v);
    }
    if k.starts_with("mp") || k == "rootfs" {
        let mut p = PropStr::parse(v, Some("volume"))?;
        if let VolRef::New { storage: s, gib } =
            storage::volref(p.default.as_deref().unwrap_or(""), "local")
        {
            if k == "rootfs" {
                return Err(
                    "pve-sim: allocating a new rootfs with pct set is not simulated".into(),
                );
            }
            let st = storage::find(sim, &s)?;
            let kib = (gib * 1024.0 * 1024.0).round() as u64;
            let name = storage::alloc_subvol(&st, vmid, kib)?;
            p.default = Some(format!("{s}:{name}"));
            p.props.insert("size".into(), format_size(kib * 1024));
        }
        let required: &[&str] = if k == "rootfs" { &[] } else { &["mp"] };
        return Ok(p.print(required));
    }
    Ok(v.to_string())
}

/// `pct unlock <vmid>`.
pub fn unlock(sim: &Sim, args: &[String]) -> Res {
    let p = parse_vmid("unlock", args, &|_| None)?;
    let vmid = p.vmid();
    let _l = lock(sim, vmid)?;
    let mut conf = load(sim, vmid)?;
    if conf.main.keys.remove("lock").is_none() {
        return Err(Failure::die("no lock found trying to remove any lock"));
    }
    save(sim, vmid, &conf)?;
    Ok(0)
}
