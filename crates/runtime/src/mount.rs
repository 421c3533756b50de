//! Mounting the rootfs mounts containerd passes on `<bundle>/rootfs`, and taking them down.

use std::path::Path;

use nexcage_core::{Error, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// One mount from a Create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Filesystem type (`overlay`, `bind`, …).
    pub kind: String,
    /// Source.
    pub source: String,
    /// Target relative to the rootfs (usually empty).
    pub target: String,
    /// Options, as `mount -o` takes them.
    pub options: Vec<String>,
}

/// Split options into flags and the data string.
pub fn parse_options(opts: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in opts {
        let (set, clear) = match o.as_str() {
            "ro" => (MsFlags::MS_RDONLY, false),
            "rw" => (MsFlags::MS_RDONLY, true),
            "nosuid" => (MsFlags::MS_NOSUID, false),
            "nodev" => (MsFlags::MS_NODEV, false),
            "noexec" => (MsFlags::MS_NOEXEC, false),
            "bind" => (MsFlags::MS_BIND, false),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, false),
            "noatime" => (MsFlags::MS_NOATIME, false),
            "relatime" => (MsFlags::MS_RELATIME, false),
            "sync" => (MsFlags::MS_SYNCHRONOUS, false),
            "private" => (MsFlags::MS_PRIVATE, false),
            "rprivate" => (MsFlags::MS_PRIVATE | MsFlags::MS_REC, false),
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        if clear {
            flags.remove(set);
        } else {
            flags.insert(set);
        }
    }
    (flags, data.join(","))
}

/// Mount every mount on `rootfs` in order; on failure, undo what was mounted.
pub fn mount_all(mounts: &[Mount], rootfs: &Path) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, rootfs) {
            if i > 0 {
                let _ = unmount_all(rootfs);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, rootfs: &Path) -> Result<()> {
    let target = rootfs.join(m.target.trim_start_matches('/'));
    let (flags, data) = parse_options(&m.options);
    let page = 4096;
    if data.len() >= page {
        return Err(Error::invalid(format!(
            "rootfs mount {} options are {} bytes, more than a page ({page}); too many layers",
            m.kind,
            data.len()
        )));
    }
    let fstype = if m.kind == "bind" {
        None
    } else {
        Some(m.kind.as_str())
    };
    let data = (!data.is_empty()).then_some(data.as_str());
    mount(Some(m.source.as_str()), &target, fstype, flags, data).map_err(|e| {
        Error::invalid(format!(
            "mount {} {} on {}: {e}",
            m.kind,
            m.source,
            target.display()
        ))
    })?;
    if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
        let re = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, &target, None::<&str>, re, None::<&str>)
            .map_err(|e| Error::internal(format!("remount {} read-only: {e}", target.display())))?;
    }
    Ok(())
}

/// Unmount everything stacked on `path`; a path with nothing mounted is fine.
pub fn unmount_all(path: &Path) -> Result<()> {
    for _ in 0..32 {
        match umount2(path, MntFlags::empty()) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(nix::errno::Errno::EBUSY) => {
                umount2(path, MntFlags::MNT_DETACH)
                    .map_err(|e| Error::internal(format!("detach {}: {e}", path.display())))?;
            }
            Err(e) => return Err(Error::internal(format!("unmount {}: {e}", path.display()))),
        }
    }
    Err(Error::internal(format!(
        "unmount {}: still mounted after 32 attempts",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let o: Vec<String> = [
            "index=off",
            "ro",
            "workdir=/w",
            "upperdir=/u",
            "lowerdir=/l",
            "nosuid",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (f, d) = parse_options(&o);
        assert!(f.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
        assert_eq!(d, "index=off,workdir=/w,upperdir=/u,lowerdir=/l");
        let (f, d) = parse_options(&["rbind".to_string(), "rw".to_string()]);
        assert_eq!(f, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert!(d.is_empty());
    }

    #[test]
    fn unmounting_an_unmounted_dir_is_ok() {
        let d = tempfile::tempdir().unwrap();
        unmount_all(d.path()).unwrap();
    }
}
