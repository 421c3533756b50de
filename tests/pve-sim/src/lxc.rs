//! The real LXC container behind each simulated CT: named `<vmid>` in the sim's lxcpath, so
//! `pct status/exec/stop` answer from LXC itself (`lxc-info`, `lxc-attach`, `lxc-stop`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::conf::Section;
use crate::sim::Sim;

/// `<lxcpath>/<vmid>`.
pub fn dir(sim: &Sim, vmid: u32) -> PathBuf {
    sim.lxcpath.join(vmid.to_string())
}

fn tool(sim: &Sim, name: &str, vmid: u32) -> Command {
    let mut c = Command::new(name);
    c.arg("-P")
        .arg(&sim.lxcpath)
        .arg("-n")
        .arg(vmid.to_string());
    c
}

/// Whether the container runs (a frozen one counts as running, as in PVE). No LXC directory
/// means stopped without asking LXC.
pub fn running(sim: &Sim, vmid: u32) -> bool {
    if !dir(sim, vmid).join("config").exists() {
        return false;
    }
    tool(sim, "lxc-info", vmid)
        .args(["-s", "-H"])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout);
            matches!(s.trim(), "RUNNING" | "FROZEN" | "FREEZING" | "THAWED")
        })
        .unwrap_or(false)
}

/// The init's host pid (`lxc-info -p`).
pub fn pid(sim: &Sim, vmid: u32) -> Option<u32> {
    let o = tool(sim, "lxc-info", vmid)
        .args(["-p", "-H"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

/// Regenerate `<lxcpath>/<vmid>/config` from the CT config (a reduced `update_lxc_config`, see
/// the README for what is left out).
pub fn write_config(sim: &Sim, vmid: u32, conf: &Section, rootfs: &Path) -> std::io::Result<()> {
    let k = |key: &str| conf.keys.get(key).map(String::as_str);
    let mut c = String::new();
    let mut line = |key: &str, v: &str| c.push_str(&format!("{key} = {v}\n"));
    line("lxc.arch", k("arch").unwrap_or("amd64"));
    line("lxc.apparmor.profile", "unconfined");
    line("lxc.mount.auto", "proc:mixed sys:mixed");
    line("lxc.autodev", "1");
    line("lxc.tty.max", "0");
    line("lxc.pty.max", "16");
    line("lxc.console.path", "none");
    line("lxc.environment", "TERM=linux");
    let host = k("hostname").map_or(format!("CT{vmid}"), str::to_string);
    line("lxc.uts.name", &host);
    line("lxc.rootfs.path", &format!("dir:{}", rootfs.display()));
    if let Some(ep) = k("entrypoint") {
        line("lxc.init.cmd", ep);
    }
    line("lxc.net.0.type", "empty");
    if let Some(env) = k("env") {
        for e in env.split('\0').filter(|e| !e.is_empty()) {
            line("lxc.environment", e);
        }
    }
    for (key, v) in &conf.lxc {
        line(key, v);
    }
    let d = dir(sim, vmid);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join("config"), c)
}

/// `lxc-start -d`; `Err(lxc-start's stderr)` when it fails or the CT does not come up.
pub fn start(sim: &Sim, vmid: u32) -> Result<(), String> {
    let log = dir(sim, vmid).join("lxc.log");
    let out = tool(sim, "lxc-start", vmid)
        .arg("-d")
        .arg("-o")
        .arg(&log)
        .args(["-l", "ERROR"])
        .output()
        .map_err(|e| format!("lxc-start: {e}"))?;
    let wait = tool(sim, "lxc-wait", vmid)
        .args(["-s", "RUNNING", "-t", "10"])
        .output();
    if out.status.success() && wait.is_ok_and(|w| w.status.success()) && running(sim, vmid) {
        return Ok(());
    }
    let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
    if let Ok(l) = std::fs::read_to_string(&log) {
        err.push_str(&l);
    }
    Err(err)
}

/// `lxc-stop` with `args` (`--kill`, or `--nokill --timeout N`, or `--timeout N`).
pub fn stop(sim: &Sim, vmid: u32, args: &[&str]) -> Result<(), String> {
    let out = tool(sim, "lxc-stop", vmid)
        .args(args)
        .output()
        .map_err(|e| format!("lxc-stop: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Replace this process with `lxc-attach … -- cmd` (as `pct exec` does).
pub fn attach_exec(sim: &Sim, vmid: u32, keep_env: bool, cmd: &[String]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut c = tool(sim, "lxc-attach", vmid);
    c.arg(if keep_env {
        "--keep-env"
    } else {
        "--clear-env"
    })
    .arg("--")
    .args(cmd)
    .env_remove("SSL_CERT_FILE")
    .env_remove("SSL_CERT_DIR");
    c.exec()
}

/// Remove the LXC directory of a destroyed CT.
pub fn remove(sim: &Sim, vmid: u32) {
    let _ = std::fs::remove_dir_all(dir(sim, vmid));
}
