//! `qm` (proxmox.md §8): create (no disks), start, stop, shutdown, status, destroy, config,
//! list, and the guest agent pieces in [`guest`]. There is no QEMU: a VM's run state is a file
//! `<root>/run/qemu-server/<vmid>.sim-state`.

mod guest;

use std::path::PathBuf;
use std::time::Duration;

use crate::args::{parse, Parsed, Spec};
use crate::conf::{show, Conf};
use crate::lock::lock_config;
use crate::propstr::random_mac;
use crate::schema::{Ty, VM_LOCKS};
use crate::sim::{exists_msg, random_u64, write_atomic, Failure, Sim};
use crate::Res;

/// Run `qm <args>`.
pub fn run(sim: &Sim, args: Vec<String>) -> Res {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(Failure::die(
            "ERROR: no command specified\nUSAGE: qm <COMMAND> [ARGS] [OPTIONS]",
        ));
    };
    match cmd.as_str() {
        "create" => create(sim, rest),
        "start" => start(sim, rest),
        "stop" | "shutdown" => stop(sim, cmd, rest),
        "status" => status(sim, rest),
        "destroy" => destroy(sim, rest),
        "config" => config(sim, rest),
        "list" => list(sim, rest),
        "agent" => guest::cmd(sim, "agent", rest),
        "guest" => match rest.split_first() {
            Some((sub, r)) if sub == "cmd" => guest::cmd(sim, "guest cmd", r),
            Some((sub, r)) if sub == "exec" => guest::exec(sim, r),
            Some((sub, _)) => Err(Failure::die(format!(
                "pve-sim: 'qm guest {sub}' is not simulated"
            ))),
            None => Err(Failure::die(
                "ERROR: no command specified\nUSAGE: qm guest <COMMAND> [ARGS] [OPTIONS]",
            )),
        },
        c => Err(Failure::die(format!("pve-sim: 'qm {c}' is not simulated"))),
    }
}

/// The keys `qm create` accepts in this simulator (no disks).
fn vm_key(k: &str) -> Option<Ty> {
    let numbered = |p: &str| {
        k.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    Some(match k {
        "memory" | "agent" | "boot" | "cpu" | "name" | "ostype" | "tags" | "description"
        | "args" | "scsihw" | "vga" | "machine" | "bios" => Ty::Str(8192),
        "cores" | "sockets" => Ty::Int(1, 8192),
        "cpulimit" => Ty::Num(0.0, 128.0),
        "cpuunits" => Ty::Int(1, 262_144),
        "balloon" => Ty::Int(0, i64::MAX),
        "onboot" | "protection" | "template" => Ty::Bool,
        "lock" => Ty::Enum(VM_LOCKS),
        _ if numbered("net") || numbered("serial") => Ty::Str(8192),
        _ => return None,
    })
}

fn conf_path(sim: &Sim, vmid: u32) -> PathBuf {
    sim.etc_pve().join(sim.vm_conf_rel(vmid))
}

fn state_path(sim: &Sim, vmid: u32) -> PathBuf {
    sim.root.join(format!("run/qemu-server/{vmid}.sim-state"))
}

fn load(sim: &Sim, vmid: u32) -> Result<Conf, Failure> {
    std::fs::read_to_string(conf_path(sim, vmid))
        .map(|t| Conf::parse(&t))
        .map_err(|_| Sim::no_conf(&sim.vm_conf_rel(vmid)))
}

/// `running`, `paused`, … or `stopped`.
fn run_state(sim: &Sim, vmid: u32) -> String {
    std::fs::read_to_string(state_path(sim, vmid))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "stopped".into())
}

fn check_lock(conf: &Conf, p: &Parsed) -> Result<(), Failure> {
    match conf.lock() {
        Some(l) if !p.flag("skiplock", false) => Err(Failure::die(format!("VM is locked ({l})"))),
        _ => Ok(()),
    }
}

fn vmid_cmd(
    cmd: &str,
    args: &[String],
    opt: &dyn Fn(&str) -> Option<Ty>,
) -> Result<Parsed, Failure> {
    parse(
        &Spec {
            tool: "qm",
            cmd,
            positional: &[("vmid", Ty::Vmid)],
            extra_args: false,
            opt,
        },
        args,
    )
}

fn uuid() -> String {
    let (a, b) = (random_u64().to_be_bytes(), random_u64().to_be_bytes());
    let h: String = a
        .iter()
        .chain(b.iter())
        .map(|x| format!("{x:02x}"))
        .collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// `qm create <vmid> [options]`.
fn create(sim: &Sim, args: &[String]) -> Res {
    let p = vmid_cmd("create", args, &|k| match k {
        "start" => Some(Ty::Bool),
        "storage" | "pool" => Some(Ty::Str(255)),
        k if k.starts_with("scsi")
            || k.starts_with("virtio")
            || k.starts_with("sata")
            || k.starts_with("ide") =>
        {
            Some(Ty::Str(8192))
        }
        k => vm_key(k),
    })?;
    let vmid = p.vmid();
    sim.check_quorum()?;
    sim.check_vmid_unused(vmid)?;
    let mut conf = Conf::default();
    for (k, v) in &p.opts {
        if matches!(k.as_str(), "start" | "storage" | "pool") {
            continue;
        }
        if vm_key(k).is_none() {
            return Err(Failure::die(format!(
                "pve-sim: disk option '{k}' is not simulated"
            )));
        }
        let v = if k.starts_with("net") {
            vm_net(v)
        } else {
            v.clone()
        };
        conf.main.keys.insert(k.clone(), v);
    }
    conf.main
        .keys
        .insert("smbios1".into(), format!("uuid={}", uuid()));
    conf.main.keys.insert("vmgenid".into(), uuid());
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(conf_path(sim, vmid));
    if created.is_err() {
        return Err(Failure::die(format!(
            "unable to create VM {vmid} - {}",
            exists_msg(vmid, false, &sim.node)
        )));
    }
    write_atomic(&conf_path(sim, vmid), conf.write().as_bytes())
        .map_err(|e| Failure::die(format!("unable to create VM {vmid} - {e}")))?;
    if p.flag("start", false) {
        let _ = std::fs::write(state_path(sim, vmid), "running\n");
    }
    Ok(0)
}

/// `virtio,bridge=vmbr0` → `virtio=BC:24:11:…,bridge=vmbr0`.
fn vm_net(v: &str) -> String {
    let mut parts: Vec<String> = v.split(',').map(str::to_string).collect();
    if let Some(first) = parts.first_mut() {
        if !first.contains('=') {
            *first = format!("{first}={}", random_mac());
        }
    }
    parts.join(",")
}

/// `qm start <vmid>`: task error `VM <vmid> already running`.
fn start(sim: &Sim, args: &[String]) -> Res {
    let p = vmid_cmd("start", args, &|k| match k {
        "skiplock" => Some(Ty::Bool),
        "timeout" => Some(Ty::Int(0, 86400)),
        "machine" => Some(Ty::Str(255)),
        _ => None,
    })?;
    let vmid = p.vmid();
    sim.check_quorum()?;
    let _l = lock_config(sim, vmid, true, Duration::from_secs(10))?;
    let conf = load(sim, vmid)?;
    check_lock(&conf, &p)?;
    if run_state(sim, vmid) != "stopped" {
        return Err(Failure::die(format!("VM {vmid} already running")));
    }
    if conf.main.keys.get("template").is_some_and(|t| t == "1") {
        return Err(Failure::die("you can't start a vm if it's a template"));
    }
    std::fs::write(state_path(sim, vmid), "running\n").map_err(|e| Failure::die(e.to_string()))?;
    Ok(0)
}

/// `qm stop|shutdown <vmid>`: a stopped VM is a no-op.
fn stop(sim: &Sim, cmd: &str, args: &[String]) -> Res {
    let p = vmid_cmd(cmd, args, &|k| match k {
        "skiplock" | "keepActive" | "overrule-shutdown" | "forceStop" => Some(Ty::Bool),
        "timeout" => Some(Ty::Int(0, i64::MAX)),
        _ => None,
    })?;
    let vmid = p.vmid();
    let conf = load(sim, vmid)?;
    check_lock(&conf, &p)?;
    let _ = std::fs::remove_file(state_path(sim, vmid));
    Ok(0)
}

/// `qm status <vmid>`: `status: <qmpstatus>`.
fn status(sim: &Sim, args: &[String]) -> Res {
    let p = vmid_cmd("status", args, &|k| (k == "verbose").then_some(Ty::Bool))?;
    if p.flag("verbose", false) {
        return Err(Failure::die(
            "pve-sim: 'qm status --verbose' is not simulated",
        ));
    }
    let vmid = p.vmid();
    load(sim, vmid)?;
    println!("status: {}", run_state(sim, vmid));
    Ok(0)
}

/// `qm destroy <vmid> [--purge]`: no `--force`; a running VM fails.
fn destroy(sim: &Sim, args: &[String]) -> Res {
    let p = vmid_cmd("destroy", args, &|k| {
        matches!(k, "purge" | "skiplock" | "destroy-unreferenced-disks").then_some(Ty::Bool)
    })?;
    let vmid = p.vmid();
    sim.check_quorum()?;
    let _l = lock_config(sim, vmid, true, Duration::from_secs(10))?;
    let conf = load(sim, vmid)?;
    check_lock(&conf, &p)?;
    if run_state(sim, vmid) != "stopped" {
        return Err(Failure::die(format!(
            "VM {vmid} is running - destroy failed"
        )));
    }
    let _ = std::fs::remove_file(conf_path(sim, vmid));
    Ok(0)
}

/// `qm config <vmid> [--current]`.
fn config(sim: &Sim, args: &[String]) -> Res {
    let p = vmid_cmd("config", args, &|k| match k {
        "current" => Some(Ty::Bool),
        "snapshot" => Some(Ty::Str(40)),
        _ => None,
    })?;
    let conf = load(sim, p.vmid())?;
    print!("{}", show(&conf.effective(p.flag("current", false))));
    Ok(0)
}

/// `qm list`: nothing without VMs, else the documented columns.
fn list(sim: &Sim, args: &[String]) -> Res {
    parse(
        &Spec {
            tool: "qm",
            cmd: "list",
            positional: &[],
            extra_args: false,
            opt: &|k| (k == "full").then_some(Ty::Bool),
        },
        args,
    )?;
    let ids: Vec<u32> = sim
        .vmlist()
        .into_iter()
        .filter(|(_, ct, n)| !*ct && *n == sim.node)
        .map(|(id, _, _)| id)
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    let mut out = format!(
        "{:>10} {:<20} {:<10} {:<10} {:>12} {:<10}\n",
        "VMID", "NAME", "STATUS", "MEM(MB)", "BOOTDISK(GB)", "PID"
    );
    for id in ids {
        let Ok(conf) = load(sim, id) else { continue };
        let name = conf
            .main
            .keys
            .get("name")
            .cloned()
            .unwrap_or_else(|| format!("VM {id}"));
        let mem = conf
            .main
            .keys
            .get("memory")
            .map(|m| {
                m.trim_start_matches("current=")
                    .split(',')
                    .next()
                    .unwrap_or("512")
                    .to_string()
            })
            .unwrap_or_else(|| "512".into());
        out.push_str(&format!(
            "{:>10} {:<20} {:<10} {:<10} {:>12.2} {:<10}\n",
            id,
            name,
            run_state(sim, id),
            mem,
            0.0,
            0
        ));
    }
    print!("{out}");
    Ok(0)
}
