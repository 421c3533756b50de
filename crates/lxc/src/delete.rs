//! Delete: idempotent, and working from a fresh backend instance (the `shim delete` action after
//! the shim was killed leaves lxc-execute orphaned but alive, or dead with its cgroups behind).
//!
//! Order: fail the start hook if it still waits (LXC then aborts and cleans up itself), thaw,
//! SIGKILL the init and every process of the container's cgroup, wait for lxc-execute to exit
//! (SIGKILL it when it does not), remove the container's and the monitor's cgroups, remove
//! `<lxcpath>/<id>`. LXC mounts only inside the container's mount namespace, so no host mount is
//! left; the rootfs itself belongs to the bundle and is never touched.

use std::io::Write;
use std::time::{Duration, Instant};

use nexcage_core::{Error, Result};

use crate::config::lines::Conf;
use crate::config::CgroupDirs;
use crate::kill::Delivered;
use crate::procfs::{self, Proc};
use crate::state::Record;
use crate::LxcBackend;

const GRACE: Duration = Duration::from_secs(5);

async fn wait_gone(p: &Proc, within: Duration) -> bool {
    let end = Instant::now() + within;
    while p.alive() {
        if Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// The cgroups named in a config file (when the record was never written).
fn cgroups_from_config(text: &str) -> Option<CgroupDirs> {
    Some(CgroupDirs {
        container: Conf::values(text, "lxc.cgroup.dir.container")
            .first()?
            .to_string(),
        monitor: Conf::values(text, "lxc.cgroup.dir.monitor")
            .first()?
            .to_string(),
    })
}

/// Remove container `id` and everything it left; Ok when there is nothing.
pub async fn delete(b: &LxcBackend, id: &str) -> Result<()> {
    nexcage_core::types::validate_id("container id", id)?;
    let paths = b.paths(id);
    if !paths.dir.exists() {
        b.forget(id);
        return Ok(());
    }
    let in_memory = b
        .containers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(id)
        .cloned();
    if let Some(c) = &in_memory {
        c.deliver(Delivered {
            signal: libc::SIGKILL,
            to_init: true,
        });
    }
    let record = Record::load(&paths.state()).ok().flatten();
    let cgroups = record.as_ref().map(|r| r.cgroups.clone()).or_else(|| {
        cgroups_from_config(&std::fs::read_to_string(paths.config()).unwrap_or_default())
    });
    // 1. A start hook still waiting fails, and LXC aborts the start.
    if let Some(mut f) = crate::create::open_gate(&paths)? {
        let _ = f.write_all(b"abort\n");
    }
    // 2. Kill everything in the container.
    let init = record.as_ref().and_then(|r| r.init).or_else(|| {
        let pid = std::fs::read_to_string(paths.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Proc::of(pid)
    });
    if let Some(cg) = &cgroups {
        crate::cgroups::thaw(&cg.container);
    }
    if let Some(i) = init.filter(Proc::alive) {
        let _ = procfs::kill(i.pid, libc::SIGKILL);
    }
    if let Some(cg) = &cgroups {
        for _ in 0..50 {
            let pids = crate::cgroups::procs(&cg.container).unwrap_or_default();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = procfs::kill(p, libc::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // 3. lxc-execute exits once its init is gone; make sure it does.
    if let Some(m) = record.as_ref().map(|r| r.monitor).filter(|m| m.start != 0) {
        if !wait_gone(&m, GRACE).await {
            tracing::warn!(
                id,
                pid = m.pid,
                "lxc-execute did not exit after its container was killed; killing it"
            );
            let _ = procfs::kill(m.pid, libc::SIGKILL);
            wait_gone(&m, GRACE).await;
        }
    }
    // 4. Cgroups LXC could not remove (a killed monitor removes nothing).
    if let Some(cg) = &cgroups {
        crate::cgroups::remove(&cg.container).await?;
        crate::cgroups::remove(&cg.monitor).await?;
    }
    // 5. Our files.
    match std::fs::remove_dir_all(&paths.dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(format!("remove {}", paths.dir.display()), e))
        }
        _ => {}
    }
    b.forget(id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_are_found_in_a_config_without_a_record() {
        let text = "lxc.cgroup.dir.container = default/c1\nlxc.cgroup.dir.monitor = nexcage-lxc.monitor/default/c1\n";
        let cg = cgroups_from_config(text).unwrap();
        assert_eq!(cg.container, "default/c1");
        assert_eq!(cg.monitor, "nexcage-lxc.monitor/default/c1");
        assert_eq!(cgroups_from_config("lxc.uts.name = x\n"), None);
    }
}
