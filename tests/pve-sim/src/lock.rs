//! The flock around every read-modify-write of a config (proxmox.md §1.4):
//! `/run/lock/lxc/pve-config-<vmid>.lock`, 10 s, `can't lock file '<path>' - got timeout`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::sim::{Failure, Sim};

/// Held while alive.
#[derive(Debug)]
pub struct ConfigLock {
    _file: File,
}

/// Lock CT `vmid`'s config (`qemu: false`) or VM `vmid`'s (`qemu: true`), waiting up to
/// `timeout`.
pub fn lock_config(
    sim: &Sim,
    vmid: u32,
    qemu: bool,
    timeout: Duration,
) -> Result<ConfigLock, Failure> {
    let path: PathBuf = if qemu {
        sim.root
            .join(format!("var/lock/qemu-server/lock-{vmid}.conf"))
    } else {
        sim.root
            .join(format!("run/lock/lxc/pve-config-{vmid}.lock"))
    };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Failure::die(format!("can't open file '{}' - {e}", path.display())))?;
    let since = Instant::now();
    let mut announced = false;
    loop {
        // SAFETY: flock on a valid, owned descriptor; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            if announced {
                eprintln!(" OK");
            }
            return Ok(ConfigLock { _file: file });
        }
        if !announced {
            eprint!("trying to acquire lock...");
            announced = true;
        }
        if since.elapsed() >= timeout {
            eprintln!();
            return Err(Failure::die(format!(
                "can't lock file '{}' - got timeout",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
