//! `pvesh get` for the paths nexcage reads (proxmox.md §7, §10.3): `/cluster/nextid`
//! (no reservation, `--vmid` check form), `/nodes/<node>/lxc`, `.../lxc/<vmid>/status/current`
//! and `.../lxc/<vmid>/config`.

use serde_json::{json, Map, Value};

use crate::args::{parse, Spec};
use crate::conf::Conf;
use crate::perljson;
use crate::schema::Ty;
use crate::sim::{Failure, Sim};
use crate::Res;

const FORMATS: &[&str] = &["text", "json", "json-pretty", "yaml"];

/// Run `pvesh <args>`.
pub fn run(sim: &Sim, args: Vec<String>) -> Res {
    let Some((verb, rest)) = args.split_first() else {
        return Err(Failure::die(
            "ERROR: no command specified\nUSAGE: pvesh <COMMAND> [ARGS] [OPTIONS]",
        ));
    };
    if verb != "get" {
        return Err(Failure::die(format!(
            "pve-sim: 'pvesh {verb}' is not simulated"
        )));
    }
    let p = parse(
        &Spec {
            tool: "pvesh",
            cmd: "get",
            positional: &[("api_path", Ty::Str(4096))],
            extra_args: false,
            opt: &|k| match k {
                "output-format" => Some(Ty::Enum(FORMATS)),
                "noborder" | "noheader" | "human-readable" => Some(Ty::Bool),
                "vmid" => Some(Ty::Vmid),
                _ => None,
            },
        },
        rest,
    )?;
    let path = p.pos[0].trim_end_matches('/').to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let usage = "pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n";
    let value = match parts.as_slice() {
        ["cluster", "nextid"] => nextid(sim, p.get("vmid"), usage)?,
        ["nodes", node, rest @ ..] => {
            if *node != sim.node && *node != "localhost" {
                return Err(Failure::die(format!(
                    "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
                )));
            }
            node_path(sim, rest)?
        }
        _ => return Err(Failure::die(format!("No '{path}' handler defined"))),
    };
    let out =
        match p.get("output-format").unwrap_or("text") {
            "json" => format!("{value}\n"),
            "json-pretty" => perljson::pretty(&value),
            "text" => match &value {
                Value::String(s) => format!("{s}\n"),
                Value::Number(n) => format!("{n}\n"),
                _ => return Err(Failure::die(
                    "pve-sim: text output of objects is not simulated; use --output-format json",
                )),
            },
            f => {
                return Err(Failure::die(format!(
                    "pve-sim: output format '{f}' is not simulated"
                )))
            }
        };
    print!("{out}");
    Ok(0)
}

/// `GET /cluster/nextid[?vmid=N]`: the lowest free id in `[lower, upper)` (datacenter.cfg
/// `next-id`), nothing reserved.
fn nextid(sim: &Sim, vmid: Option<&str>, usage: &str) -> Result<Value, Failure> {
    let used: Vec<u32> = sim.vmlist().into_iter().map(|(id, _, _)| id).collect();
    if let Some(v) = vmid {
        let id: u32 = v.parse().unwrap_or(0);
        if used.contains(&id) {
            return Err(Failure::params(
                &[("vmid".into(), format!("VM {id} already exists"))],
                usage,
            ));
        }
        // The CLI passes the parameter through as a string (unconfirmed, proxmox.md §12).
        return Ok(Value::String(v.to_string()));
    }
    let (lower, upper) = next_id_range(sim);
    (lower..upper)
        .find(|i| !used.contains(i))
        .map(|i| json!(i))
        .ok_or_else(|| {
            Failure::die(format!(
                "unable to get any free VMID in range [{lower}, {upper}]"
            ))
        })
}

fn next_id_range(sim: &Sim) -> (u32, u32) {
    let text = std::fs::read_to_string(sim.etc_pve().join("datacenter.cfg")).unwrap_or_default();
    let mut range = (100, 1_000_000);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("next-id:") {
            for kv in v.trim().split(',') {
                match kv.split_once('=') {
                    Some(("lower", n)) => range.0 = n.parse().unwrap_or(range.0),
                    Some(("upper", n)) => range.1 = n.parse().unwrap_or(range.1),
                    _ => {}
                }
            }
        }
    }
    range
}

fn load_ct(sim: &Sim, vmid: &str) -> Result<(u32, Conf), Failure> {
    let id: u32 = vmid
        .parse()
        .map_err(|_| Failure::die(format!("No 'lxc/{vmid}' handler defined")))?;
    let text = std::fs::read_to_string(sim.etc_pve().join(sim.ct_conf_rel(id)))
        .map_err(|_| Sim::no_conf(&sim.ct_conf_rel(id)))?;
    Ok((id, Conf::parse(&text)))
}

fn node_path(sim: &Sim, rest: &[&str]) -> Result<Value, Failure> {
    match rest {
        ["lxc"] => {
            let mut out = Vec::new();
            for (id, ct, node) in sim.vmlist() {
                if ct && node == sim.node {
                    let (_, conf) = load_ct(sim, &id.to_string())?;
                    out.push(vmstatus_json(sim, id, &conf));
                }
            }
            Ok(Value::Array(out))
        }
        ["lxc", vmid, "status", "current"] => {
            let (id, conf) = load_ct(sim, vmid)?;
            let mut v = vmstatus_json(sim, id, &conf);
            v["ha"] = json!({"managed": 0});
            Ok(v)
        }
        ["lxc", vmid, "config"] => {
            let (_, conf) = load_ct(sim, vmid)?;
            let s = conf.effective(false);
            let mut m = Map::new();
            for (k, v) in &s.keys {
                m.insert(k.clone(), Value::String(v.clone()));
            }
            if !s.lxc.is_empty() {
                let l = s.lxc.iter().map(|(k, v)| json!([k, v])).collect();
                m.insert("lxc".into(), Value::Array(l));
            }
            Ok(Value::Object(m))
        }
        _ => Err(Failure::die(format!(
            "No '/nodes/{}/{}' handler defined",
            sim.node,
            rest.join("/")
        ))),
    }
}

fn vmstatus_json(sim: &Sim, vmid: u32, conf: &Conf) -> Value {
    let mut m = Map::new();
    for (k, v) in crate::pct::vmstatus(sim, vmid, conf) {
        let val = match k.as_str() {
            "name" | "status" | "type" | "lock" | "tags" => Value::String(v),
            _ => v
                .parse::<u64>()
                .map_or(Value::String(v.clone()), |n| json!(n)),
        };
        m.insert(k, val);
    }
    Value::Object(m)
}
