//! Writing `linux.sysctl` into a container's namespaces before Start, from a short-lived thread
//! that joins the init's ipc, uts and net namespaces (all three are per-thread for setns) and
//! writes through the host's /proc/sys, which resolves these sysctls in the caller's namespaces.

use std::os::fd::AsFd;
use std::path::PathBuf;

use nexcage_core::{Error, Result};
use nix::sched::CloneFlags;

/// `net.ipv4.conf.eth0/1.forwarding` → `/proc/sys/net/ipv4/conf/eth0.1/forwarding`.
pub fn proc_path(key: &str) -> PathBuf {
    let rel: String = key
        .chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect();
    PathBuf::from("/proc/sys").join(rel)
}

/// Write `sysctls` in the namespaces of process `pid`.
pub fn apply(pid: u32, sysctls: &[(String, String)]) -> Result<()> {
    if sysctls.is_empty() {
        return Ok(());
    }
    let list = sysctls.to_vec();
    let t = std::thread::Builder::new()
        .name("sysctl".into())
        .spawn(move || -> Result<()> {
            for (ns, flag) in [
                ("ipc", CloneFlags::CLONE_NEWIPC),
                ("uts", CloneFlags::CLONE_NEWUTS),
                ("net", CloneFlags::CLONE_NEWNET),
            ] {
                let path = format!("/proc/{pid}/ns/{ns}");
                let f =
                    std::fs::File::open(&path).map_err(|e| Error::io(format!("open {path}"), e))?;
                nix::sched::setns(f.as_fd(), flag)
                    .map_err(|e| Error::internal(format!("join {path}: {e}")))?;
            }
            for (k, v) in &list {
                let p = proc_path(k);
                std::fs::write(&p, v).map_err(|e| {
                    Error::io(
                        format!("linux.sysctl[{k:?}]: write {v:?} to {}", p.display()),
                        e,
                    )
                })?;
            }
            Ok(())
        });
    t.map_err(|e| Error::internal(format!("spawn the sysctl thread: {e}")))?
        .join()
        .map_err(|_| Error::internal("the sysctl thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_proc_paths() {
        assert_eq!(
            proc_path("kernel.msgmax"),
            PathBuf::from("/proc/sys/kernel/msgmax")
        );
        assert_eq!(
            proc_path("net.ipv4.conf.eth0/1.forwarding"),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.1/forwarding")
        );
    }
}
