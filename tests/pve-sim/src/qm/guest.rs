//! `qm agent|guest cmd <vmid> <command>` and `qm guest exec` (proxmox.md §8.3). The guest agent
//! "runs" when `<root>/run/qemu-server/<vmid>.qga-sim` exists; `guest exec` then runs the
//! command on the host as a stand-in for the guest and prints what qm prints, exiting 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{load, run_state};
use crate::args::{parse, Spec};
use crate::perljson;
use crate::schema::Ty;
use crate::sim::{Failure, Sim};
use crate::Res;

/// `assert_agent_available`.
fn agent_available(sim: &Sim, vmid: u32) -> Result<(), Failure> {
    let conf = load(sim, vmid)?;
    if !conf.main.keys.contains_key("agent") {
        return Err(Failure::die("No QEMU guest agent configured"));
    }
    if run_state(sim, vmid) == "stopped" {
        return Err(Failure::die(format!("VM {vmid} is not running")));
    }
    if !sim
        .root
        .join(format!("run/qemu-server/{vmid}.qga-sim"))
        .exists()
    {
        return Err(Failure::die("QEMU guest agent is not running"));
    }
    Ok(())
}

/// `qm agent <vmid> <command>`: only `ping` is simulated (prints nothing).
pub fn cmd(sim: &Sim, name: &str, args: &[String]) -> Res {
    let p = parse(
        &Spec {
            tool: "qm",
            cmd: name,
            positional: &[("vmid", Ty::Vmid), ("command", Ty::Str(64))],
            extra_args: false,
            opt: &|_| None,
        },
        args,
    )?;
    agent_available(sim, p.vmid())?;
    match p.pos[1].as_str() {
        "ping" => Ok(0),
        c => Err(Failure::die(format!(
            "pve-sim: agent command '{c}' is not simulated"
        ))),
    }
}

/// `qm guest exec <vmid> [--synchronous 1] [--timeout 30] -- cmd…`.
pub fn exec(sim: &Sim, args: &[String]) -> Res {
    let p = parse(
        &Spec {
            tool: "qm",
            cmd: "guest exec",
            positional: &[("vmid", Ty::Vmid)],
            extra_args: true,
            opt: &|k| match k {
                "synchronous" | "pass-stdin" => Some(Ty::Bool),
                "timeout" => Some(Ty::Int(0, i64::MAX)),
                _ => None,
            },
        },
        args,
    )?;
    let sync = p.flag("synchronous", true);
    if !sync && p.get("timeout").is_some() {
        return Err(Failure::params(
            &[(
                "timeout".into(),
                "'timeout' can only be used with 'synchronous'".into(),
            )],
            "qm guest exec <vmid> [<extra-args>] [OPTIONS]\n",
        ));
    }
    agent_available(sim, p.vmid())?;
    if p.extra.is_empty() {
        return Err(Failure::die("command or input-data (or both) required"));
    }
    let mut child = Command::new(&p.extra[0])
        .args(&p.extra[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let result: Value = match child.as_mut() {
        Err(e) => return Err(Failure::die(format!("Agent error: Guest agent command failed, error was 'Failed to execute child process “{}” ({e})'", p.extra[0]))),
        Ok(c) if !sync => json!({"pid": c.id()}),
        Ok(c) => {
            let timeout: u64 = p.get("timeout").and_then(|t| t.parse().ok()).unwrap_or(30);
            let since = Instant::now();
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if timeout > 0 && since.elapsed() >= Duration::from_secs(timeout) {
                    println!("WARN: timeout reached, returning pid");
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            match c.try_wait() {
                Ok(Some(_)) => {
                    let out = child.expect("spawned").wait_with_output().map_err(|e| Failure::die(e.to_string()))?;
                    let mut v = json!({"exited": 1});
                    match out.status.code() {
                        Some(code) => v["exitcode"] = json!(code),
                        None => {
                            use std::os::unix::process::ExitStatusExt;
                            v["signal"] = json!(out.status.signal().unwrap_or(0));
                        }
                    }
                    if !out.stdout.is_empty() {
                        v["out-data"] = json!(String::from_utf8_lossy(&out.stdout));
                    }
                    if !out.stderr.is_empty() {
                        v["err-data"] = json!(String::from_utf8_lossy(&out.stderr));
                    }
                    v
                }
                _ => json!({"pid": c.id()}),
            }
        }
    };
    print!("{}", perljson::pretty(&result));
    Ok(0)
}
