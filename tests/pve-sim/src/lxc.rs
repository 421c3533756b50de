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

/// Whether the container runs, decided as PVE's `list_active_containers` does (§2.6): its
/// abstract command socket `@<lxcpath>/<vmid>/command` is listed in `/proc/net/unix`. This
/// never asks LXC, so it does not block on a container whose monitor is not answering commands
/// yet (one held in a start hook). A frozen container counts as running.
pub fn running(sim: &Sim, vmid: u32) -> bool {
    let name = format!("@{}/command", dir(sim, vmid).display());
    std::fs::read_to_string("/proc/net/unix")
        .map(|t| listed(&t, &name))
        .unwrap_or(false)
}

/// Whether `/proc/net/unix` text lists a socket bound to `name`.
fn listed(proc_net_unix: &str, name: &str) -> bool {
    proc_net_unix
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(7) == Some(name))
}

/// How long `lxc-info -p` may take. A real node waits without limit (a monitor held in a start
/// hook answers no command until the container runs); the simulator gives up and omits the pid.
const PID_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The init's host pid (`lxc-info -p`), None when LXC does not answer within [`PID_TIMEOUT`].
pub fn pid(sim: &Sim, vmid: u32) -> Option<u32> {
    use std::io::Read;
    let mut child = tool(sim, "lxc-info", vmid)
        .args(["-p", "-H"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + PID_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => {
                eprintln!("pve-sim: lxc-info -p of CT {vmid} did not answer (the container is not running yet)");
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    out.trim().parse().ok()
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

#[cfg(test)]
mod tests {
    use super::listed;

    #[test]
    fn running_is_a_listed_command_socket() {
        let t = "Num       RefCount Protocol Flags    Type St Inode Path
00000000c127c6c8: 00000002 00000000 00010000 0001 01 3249471 @/var/lib/lxc/100103/command
000000009169b7b3: 00000002 00000000 00010000 0001 01 3249516 /run/other.sock
0000000000000000: 00000002 00000000 00000000 0001 03 3249517
";
        assert!(listed(t, "@/var/lib/lxc/100103/command"));
        assert!(!listed(t, "@/var/lib/lxc/10010/command"));
        assert!(!listed(t, "@/var/lib/lxc/100104/command"));
        assert!(!listed("", "@/var/lib/lxc/100103/command"));
    }
}
