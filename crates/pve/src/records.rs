//! The local record of every VMID nexcage uses: `<root>/records/<vmid>.json`, written *before*
//! `pct create` (so a crash at any point leaves a record the sweep can act on) and removed only
//! once the CT is destroyed. Allocation is serialized by a `flock` on `<root>/vmid.lock`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nexcage_core::{Error, Result};
use nexcage_lxc::procfs::Proc;
use nexcage_proxmox::Vmid;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// One container's VMID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The CT.
    pub vmid: Vmid,
    /// containerd namespace.
    pub namespace: String,
    /// Container id.
    pub id: String,
    /// The bundle (its `rootfs` may be the CT's volume, mounted by the runtime).
    pub bundle: PathBuf,
    /// The process that owns the task (the shim): when it is gone, so is the task.
    pub owner: Option<Proc>,
    /// `pct create` succeeded.
    #[serde(default)]
    pub created: bool,
    /// The rootfs is the volume `<storage>:subvol-<vmid>-disk-0` (destroyed with the CT).
    #[serde(default)]
    pub volume: Option<String>,
}

/// The records directory and the allocation lock.
#[derive(Debug, Clone)]
pub struct Records {
    root: PathBuf,
}

fn io(what: &str, p: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let what = format!("{what} {}", p.display());
    move |e| Error::io(what, e)
}

/// VMIDs Proxmox knows on any node: `<etc_pve>/nodes/*/{lxc,qemu-server}/<vmid>.conf`.
pub fn guests(etc_pve: &Path) -> BTreeSet<Vmid> {
    let mut out = BTreeSet::new();
    let Ok(nodes) = std::fs::read_dir(etc_pve.join("nodes")) else {
        return out;
    };
    for n in nodes.flatten() {
        for kind in ["lxc", "qemu-server"] {
            let Ok(confs) = std::fs::read_dir(n.path().join(kind)) else {
                continue;
            };
            for c in confs.flatten() {
                let name = c.file_name().to_string_lossy().into_owned();
                if let Some(v) = name.strip_suffix(".conf").and_then(|v| v.parse().ok()) {
                    out.insert(v);
                }
            }
        }
    }
    out
}

impl Records {
    /// Records under `root` (created when missing).
    pub fn open(root: &Path) -> Result<Records> {
        let dir = root.join("records");
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        Ok(Records {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, vmid: Vmid) -> PathBuf {
        self.root.join("records").join(format!("{vmid}.json"))
    }

    /// Hold `<root>/<name>` exclusively (`wait`: block; else None when someone holds it).
    pub fn lock(&self, name: &str, wait: bool) -> Result<Option<Flock<std::fs::File>>> {
        let p = self.root.join(name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io("open", &p))?;
        let arg = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        match Flock::lock(f, arg) {
            Ok(l) => Ok(Some(l)),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if !wait => Ok(None),
            Err((_, e)) => Err(Error::internal(format!("flock {}: {e}", p.display()))),
        }
    }

    /// Write `r` (atomically).
    pub fn save(&self, r: &Record) -> Result<()> {
        let p = self.path(r.vmid);
        let tmp = p.with_extension("tmp");
        let json = serde_json::to_vec_pretty(r).map_err(|e| Error::internal(e.to_string()))?;
        std::fs::write(&tmp, json).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &p).map_err(io("rename", &p))
    }

    /// Drop the record of `vmid` (idempotent).
    pub fn remove(&self, vmid: Vmid) -> Result<()> {
        let p = self.path(vmid);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &p)(e)),
            _ => Ok(()),
        }
    }

    /// Every record.
    pub fn all(&self) -> Vec<Record> {
        let dir = self.root.join("records");
        let mut v: Vec<Record> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        v.sort_by_key(|r: &Record| r.vmid);
        v
    }

    /// The record of container `id` in namespace `ns`.
    pub fn find(&self, ns: &str, id: &str) -> Option<Record> {
        self.all()
            .into_iter()
            .find(|r| r.namespace == ns && r.id == id)
    }

    /// Under the allocation lock: the lowest VMID of `range` that neither Proxmox
    /// (`etc_pve`) nor a record nor `skip` holds; `make(vmid)` is recorded before the lock is
    /// released, so a concurrent allocation (any process) never picks it.
    pub fn reserve(
        &self,
        range: (Vmid, Vmid),
        etc_pve: &Path,
        skip: &BTreeSet<Vmid>,
        make: impl FnOnce(Vmid) -> Record,
    ) -> Result<Record> {
        let _held = self.lock("vmid.lock", true)?;
        let taken = guests(etc_pve);
        let recorded: BTreeSet<Vmid> = self.all().iter().map(|r| r.vmid).collect();
        let vmid = (range.0..=range.1)
            .find(|v| !taken.contains(v) && !recorded.contains(v) && !skip.contains(v))
            .ok_or_else(|| {
                Error::unavailable(format!(
                    "no free VMID in nexcage's range {}-{} (config key proxmox.vmid_range)",
                    range.0, range.1
                ))
            })?;
        let r = make(vmid);
        self.save(&r)?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(vmid: Vmid) -> Record {
        Record {
            vmid,
            namespace: "ns".into(),
            id: format!("c{vmid}"),
            bundle: "/b".into(),
            owner: Proc::of(std::process::id()),
            created: false,
            volume: None,
        }
    }

    #[test]
    fn reserve_skips_guests_records_and_skipped_ids() {
        let d = tempfile::tempdir().unwrap();
        let etc = d.path().join("etc");
        for (node, kind, id) in [("a", "lxc", 500), ("b", "qemu-server", 501)] {
            let dir = etc.join("nodes").join(node).join(kind);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{id}.conf")), "").unwrap();
        }
        let r = Records::open(&d.path().join("state")).unwrap();
        let skip = BTreeSet::from([503]);
        let got: Vec<Vmid> = (0..3)
            .map(|_| r.reserve((500, 510), &etc, &skip, rec).unwrap().vmid)
            .collect();
        assert_eq!(got, [502, 504, 505]);
        assert_eq!(r.find("ns", "c504").unwrap().vmid, 504);
        r.remove(504).unwrap();
        assert_eq!(r.reserve((500, 510), &etc, &skip, rec).unwrap().vmid, 504);
        let e = r.reserve((500, 502), &etc, &skip, rec).unwrap_err();
        assert!(e.message().contains("500-502"), "{}", e.message());
    }

    #[test]
    fn concurrent_reservations_never_share_a_vmid() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("state");
        let etc = d.path().join("etc");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let root = root.clone();
                let etc = etc.clone();
                std::thread::spawn(move || {
                    let r = Records::open(&root).unwrap();
                    (0..5)
                        .map(|_| {
                            r.reserve((100, 999), &etc, &BTreeSet::new(), rec)
                                .unwrap()
                                .vmid
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<Vmid> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        let n = all.len();
        all.dedup();
        assert_eq!(all.len(), n, "40 reservations, 40 distinct VMIDs");
    }
}
