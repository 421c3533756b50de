//! The few facts about the host the config generator needs, behind a trait so tests can fake them.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// Anything that is not a directory (regular file, device, socket…).
    File,
}

/// A device node on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNode {
    /// Its path, e.g. `/dev/dri/card0`.
    pub path: PathBuf,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// Host facts used while generating a config.
pub trait Host {
    /// A pure cgroup v2 host (limits go to `lxc.cgroup2.*`); hybrid and v1 hosts are false.
    fn cgroup2(&self) -> bool;
    /// `uname -m`.
    fn arch(&self) -> &str;
    /// What `path` is on the host, None when it does not exist.
    fn kind(&self, path: &Path) -> Option<Kind>;
    /// The host node of a char (`block` false) or block device, via `/sys/dev`.
    fn device(&self, block: bool, major: i64, minor: i64) -> Option<HostNode>;
    /// Whether missing host paths and device nodes are errors (false only for validation
    /// before any host check can be made).
    fn strict(&self) -> bool {
        true
    }
}

/// The real host.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealHost;

impl Host for RealHost {
    fn cgroup2(&self) -> bool {
        // Pure v2: the cgroup2 filesystem is mounted at /sys/fs/cgroup itself.
        Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    }

    fn arch(&self) -> &str {
        std::env::consts::ARCH
    }

    fn kind(&self, path: &Path) -> Option<Kind> {
        let m = std::fs::metadata(path).ok()?;
        Some(if m.is_dir() { Kind::Dir } else { Kind::File })
    }

    fn device(&self, block: bool, major: i64, minor: i64) -> Option<HostNode> {
        let class = if block { "block" } else { "char" };
        let uevent =
            std::fs::read_to_string(format!("/sys/dev/{class}/{major}:{minor}/uevent")).ok()?;
        let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
        let path = Path::new("/dev").join(name);
        let m = std::fs::metadata(&path).ok()?;
        let ft = m.file_type();
        let same_type = if block {
            ft.is_block_device()
        } else {
            ft.is_char_device()
        };
        let rdev = m.rdev();
        let same_dev = libc::major(rdev) as i64 == major && libc::minor(rdev) as i64 == minor;
        (same_type && same_dev).then(|| HostNode {
            path,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        })
    }
}

/// For [`super::validate`]: every path exists as a directory and every device node exists with
/// whatever mode and owner the spec asks for, so only what LXC can never express is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct Assumed;

impl Host for Assumed {
    fn cgroup2(&self) -> bool {
        RealHost.cgroup2()
    }

    fn arch(&self) -> &str {
        std::env::consts::ARCH
    }

    fn kind(&self, _path: &Path) -> Option<Kind> {
        Some(Kind::Dir)
    }

    fn device(&self, _block: bool, _major: i64, _minor: i64) -> Option<HostNode> {
        None
    }

    fn strict(&self) -> bool {
        false
    }
}
