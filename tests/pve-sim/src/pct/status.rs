//! `pct status [--verbose]` (§2.6) and `pct list` (§2.7).

use super::{load, parse_vmid};
use crate::args::{parse, Spec};
use crate::conf::Conf;
use crate::lxc;
use crate::propstr::{parse_size, PropStr};
use crate::schema::Ty;
use crate::sim::Sim;
use crate::Res;

/// `pct status <vmid> [--verbose]`.
pub fn status(sim: &Sim, args: &[String]) -> Res {
    let p = parse_vmid("status", args, &|k| (k == "verbose").then_some(Ty::Bool))?;
    let vmid = p.vmid();
    let conf = load(sim, vmid)?;
    if !p.flag("verbose", false) {
        println!("status: {}", state(sim, vmid));
        return Ok(0);
    }
    for (k, v) in vmstatus(sim, vmid, &conf) {
        println!("{k}: {v}");
    }
    Ok(0)
}

fn state(sim: &Sim, vmid: u32) -> &'static str {
    if lxc::running(sim, vmid) {
        "running"
    } else {
        "stopped"
    }
}

/// `name` as vmstatus computes it: the hostname without whitespace, or `CT<vmid>`.
pub fn name_of(conf: &Conf, vmid: u32) -> String {
    conf.main
        .keys
        .get("hostname")
        .map(|h| h.split_whitespace().collect::<String>())
        .unwrap_or_else(|| format!("CT{vmid}"))
}

/// The vmstatus fields, sorted by key (`cpu` skipped, as `pct status --verbose` does).
pub fn vmstatus(sim: &Sim, vmid: u32, conf: &Conf) -> Vec<(String, String)> {
    let k = &conf.main.keys;
    let num = |key: &str, default: u64| k.get(key).and_then(|v| v.parse().ok()).unwrap_or(default);
    let running = lxc::running(sim, vmid);
    let maxdisk = k
        .get("rootfs")
        .and_then(|r| PropStr::parse(r, Some("volume")).ok())
        .and_then(|p| p.props.get("size").and_then(|s| parse_size(s)))
        .filter(|s| *s > 0)
        .unwrap_or(4 << 30);
    let mut v: Vec<(String, String)> = vec![
        ("cpus".into(), num("cores", 1).to_string()),
        ("disk".into(), "0".into()),
        ("diskread".into(), "0".into()),
        ("diskwrite".into(), "0".into()),
        ("maxdisk".into(), maxdisk.to_string()),
        ("maxmem".into(), (num("memory", 512) << 20).to_string()),
        ("maxswap".into(), (num("swap", 512) << 20).to_string()),
        ("mem".into(), "0".into()),
        ("name".into(), name_of(conf, vmid)),
        ("netin".into(), "0".into()),
        ("netout".into(), "0".into()),
        (
            "status".into(),
            if running { "running" } else { "stopped" }.into(),
        ),
        ("swap".into(), "0".into()),
        ("type".into(), "lxc".into()),
        ("uptime".into(), "0".into()),
        ("vmid".into(), vmid.to_string()),
    ];
    if let Some(l) = conf.lock() {
        v.push(("lock".into(), l.into()));
    }
    if let Some(t) = k.get("tags") {
        v.push(("tags".into(), t.clone()));
    }
    if k.get("template").is_some_and(|t| t == "1") {
        v.push(("template".into(), "1".into()));
    }
    if running {
        if let Some(pid) = lxc::pid(sim, vmid) {
            v.push(("pid".into(), pid.to_string()));
        }
    }
    v.sort();
    v
}

/// `pct list`: nothing without CTs, else a header and one row per CT, sorted by VMID.
pub fn list(sim: &Sim, args: &[String]) -> Res {
    parse(
        &Spec {
            tool: "pct",
            cmd: "list",
            positional: &[],
            extra_args: false,
            opt: &|_| None,
        },
        args,
    )?;
    let ids: Vec<u32> = sim
        .vmlist()
        .into_iter()
        .filter(|(_, ct, node)| *ct && *node == sim.node)
        .map(|(id, _, _)| id)
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    let mut out = format!(
        "{:<10} {:<10} {:<12} {:<20}\n",
        "VMID", "Status", "Lock", "Name"
    );
    for id in ids {
        let Ok(conf) = load(sim, id) else { continue };
        let lock = conf.lock().unwrap_or("");
        out.push_str(&format!(
            "{:<10} {:<10} {:<12} {:<20}\n",
            id,
            state(sim, id),
            lock,
            name_of(&conf, id)
        ));
    }
    print!("{out}");
    Ok(0)
}
