//! The container's cgroup by its path (relative to every hierarchy's root), so it can be read,
//! updated, thawed and removed even when its init is gone or this process never saw it start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nexcage_core::{Error, Result};

use crate::config::resources::Setting;

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    v2: bool,
    /// v1 super options (controller names among them).
    options: Vec<String>,
    /// The cgroup mounted there (`/` unless a subtree is bind-mounted).
    root: String,
    mount_point: PathBuf,
}

fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().skip(6).position(|x| *x == "-").map(|i| i + 6) else {
            continue;
        };
        let (Some(root), Some(mp), Some(fstype)) = (f.get(3), f.get(4), f.get(sep + 1)) else {
            continue;
        };
        let v2 = match *fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let options = f
            .get(sep + 3)
            .map(|o| o.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        out.push(Hierarchy {
            v2,
            options,
            root: root.replace("\\040", " "),
            mount_point: PathBuf::from(mp.replace("\\040", " ")),
        });
    }
    out
}

fn hierarchies() -> Vec<Hierarchy> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

impl Hierarchy {
    fn dir(&self, rel: &str) -> Option<PathBuf> {
        let root = self.root.trim_matches('/');
        let rel = rel.trim_matches('/');
        let rest = if root.is_empty() {
            rel
        } else {
            rel.strip_prefix(root)?.trim_start_matches('/')
        };
        Some(self.mount_point.join(rest))
    }

    fn has(&self, controller: &str) -> bool {
        self.options.iter().any(|o| o == controller)
    }
}

/// Whether the host has v1 controllers (v1 or hybrid); false on pure v2.
fn has_v1() -> bool {
    hierarchies()
        .iter()
        .any(|h| !h.v2 && h.options.iter().any(|o| is_controller(o)))
}

fn is_controller(o: &str) -> bool {
    matches!(
        o,
        "cpu"
            | "cpuacct"
            | "cpuset"
            | "memory"
            | "devices"
            | "freezer"
            | "blkio"
            | "pids"
            | "hugetlb"
            | "net_cls"
            | "net_prio"
            | "perf_event"
            | "rdma"
            | "misc"
    )
}

/// The directories of cgroup `rel` in every mounted hierarchy (existing or not).
pub fn dirs(rel: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = hierarchies().iter().filter_map(|h| h.dir(rel)).collect();
    v.sort();
    v.dedup();
    v
}

/// The directory of `controller` for cgroup `rel` (v1 or hybrid: its hierarchy; pure v2: the
/// unified one).
pub fn controller_dir(rel: &str, controller: &str) -> Option<PathBuf> {
    let hs = hierarchies();
    if has_v1() {
        hs.iter()
            .find(|h| !h.v2 && h.has(controller))
            .and_then(|h| h.dir(rel))
    } else {
        hs.iter().find(|h| h.v2).and_then(|h| h.dir(rel))
    }
}

/// Every pid in cgroup `rel`; empty when it does not exist.
pub fn procs(rel: &str) -> Result<Vec<u32>> {
    let dir = ["pids", "memory", "freezer"]
        .iter()
        .find_map(|c| controller_dir(rel, c))
        .or_else(|| hierarchies().iter().find(|h| h.v2).and_then(|h| h.dir(rel)));
    let Some(dir) = dir else {
        return Err(Error::not_found("no cgroup hierarchy is mounted"));
    };
    let path = dir.join("cgroup.procs");
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(t
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

/// Thaw a frozen cgroup (a frozen process never handles SIGKILL).
pub fn thaw(rel: &str) {
    if let Some(d) = controller_dir(rel, "freezer").filter(|_| has_v1()) {
        let _ = std::fs::write(d.join("freezer.state"), "THAWED");
    }
    for h in hierarchies().iter().filter(|h| h.v2) {
        if let Some(d) = h.dir(rel) {
            let _ = std::fs::write(d.join("cgroup.freeze"), "0");
        }
    }
}

fn rmdir_tree(dir: &Path) -> std::io::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rmdir_tree(&e.path())?;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Remove cgroup `rel` (and any child cgroups) from every hierarchy, retrying while the last
/// processes finish exiting.
pub async fn remove(rel: &str) -> Result<()> {
    for d in dirs(rel) {
        let mut tries = 0;
        loop {
            match rmdir_tree(&d) {
                Ok(()) => break,
                Err(e) if tries < 50 && e.raw_os_error() == Some(libc::EBUSY) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                Err(e) => return Err(Error::io(format!("remove cgroup {}", d.display()), e)),
            }
        }
    }
    Ok(())
}

/// Write `settings` into cgroup `rel`. Writes that fail are retried once after the others
/// (raising memory.limit above memsw needs memsw first, lowering needs the opposite order).
pub fn write(rel: &str, settings: &[Setting]) -> Result<()> {
    let mut failed = Vec::new();
    for s in settings {
        if let Err(e) = write_one(rel, s) {
            failed.push((s, e));
        }
    }
    for (s, _) in std::mem::take(&mut failed) {
        write_one(rel, s)?;
    }
    Ok(())
}

fn write_one(rel: &str, s: &Setting) -> Result<()> {
    let dir = controller_dir(rel, s.controller()).ok_or_else(|| {
        Error::not_found(format!(
            "{}: no {} cgroup hierarchy is mounted",
            s.field,
            s.controller()
        ))
    })?;
    let path = dir.join(&s.file);
    for line in s.value.lines() {
        std::fs::write(&path, line).map_err(|e| {
            Error::io(
                format!("{}: write {line:?} to {}", s.field, path.display()),
                e,
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_hierarchies_and_dirs() {
        let mi = "\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 /kube /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 1 0:40 / /tmp rw - tmpfs tmpfs rw
";
        let hs = parse_mountinfo(mi);
        assert_eq!(hs.len(), 4);
        assert_eq!(
            hs[0].dir("/default/c1"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/default/c1"))
        );
        assert_eq!(
            hs[2].dir("kube/pod/c1"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu/pod/c1"))
        );
        assert_eq!(hs[2].dir("other/c1"), None);
        assert!(hs[2].has("cpuacct") && !hs[2].has("memory"));
        assert!(hs[3].v2);
    }
}
