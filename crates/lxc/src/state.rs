//! The backend's on-disk record of a container (`<lxcpath>/<id>/nexcage.json`), so that a fresh
//! backend instance (`shim delete` after the shim died) can find and clean up what is left.

use std::path::{Path, PathBuf};

use nexcage_core::{Error, Result};

use crate::config::CgroupDirs;
use crate::procfs::Proc;

/// The container's process settings an exec must agree with (lxc-attach applies the container's).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecBase {
    /// Bounding capabilities (LXC names, sorted).
    pub caps: Vec<String>,
    /// `process.noNewPrivileges` of the init.
    pub no_new_privs: bool,
    /// AppArmor profile of the init (None: unconfined).
    pub apparmor: Option<String>,
}

/// What the backend knows about one container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// Container id.
    pub id: String,
    /// The rootfs directory on the host.
    pub rootfs: PathBuf,
    /// lxc-execute (the monitor).
    pub monitor: Proc,
    /// The container's init (lxc-execute's init), once the start hook reported it.
    pub init: Option<Proc>,
    /// Whether Start opened the gate.
    pub started: bool,
    /// The container's and the monitor's cgroups.
    pub cgroups: CgroupDirs,
    /// What execs must match.
    pub exec_base: ExecBase,
}

impl Record {
    /// Write atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::internal(format!("encode state: {e}")))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json).map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("rename {}", tmp.display()), e))
    }

    /// Read from `path`; None when it does not exist.
    pub fn load(path: &Path) -> Result<Option<Record>> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::internal(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nexcage.json");
        assert_eq!(Record::load(&p).unwrap(), None);
        let r = Record {
            id: "c1".into(),
            rootfs: "/b/rootfs".into(),
            monitor: Proc { pid: 10, start: 20 },
            init: Some(Proc { pid: 11, start: 21 }),
            started: false,
            cgroups: CgroupDirs {
                container: "default/c1".into(),
                monitor: "m/default/c1".into(),
            },
            exec_base: ExecBase {
                caps: vec!["kill".into()],
                no_new_privs: true,
                apparmor: None,
            },
        };
        r.save(&p).unwrap();
        assert_eq!(Record::load(&p).unwrap(), Some(r));
    }
}
