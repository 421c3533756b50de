//! Reading the cgroup(s) of a container: where they are, what they account, who is in them, and
//! when the OOM killer strikes ([`oom::OomWatcher`]).
//!
//! A [`Cgroup`] is resolved from `/proc/<pid>/cgroup` and `/proc/self/mountinfo`, so it works on
//! pure v1 hosts (with `cpu` and `cpuacct` mounted apart or together), hybrid hosts (v1 controllers
//! plus a controller-less `cgroup2` at `/sys/fs/cgroup/unified`) and pure v2 hosts. Whenever a v1
//! hierarchy with a real controller is found, the cgroup is [`CgroupVersion::V1`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::stats::{CgroupVersion, Stats};

pub mod oom;
mod v1;
mod v2;

pub use oom::OomWatcher;

/// The resolved cgroup directories of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    version: CgroupVersion,
    /// v1 controller name (`memory`, `cpuacct`, `name=systemd`…) to its directory.
    controllers: BTreeMap<String, PathBuf>,
    /// The `cgroup2` directory, when a `cgroup2` hierarchy is mounted (pure v2 or hybrid).
    unified: Option<PathBuf>,
}

impl Cgroup {
    /// The cgroup(s) of a live process, from `/proc/<pid>/cgroup` + `/proc/self/mountinfo`.
    /// v1 (or hybrid with v1 controllers): one dir per controller; pure v2: one dir.
    pub fn of_pid(pid: u32) -> Result<Cgroup> {
        let proc_path = format!("/proc/{pid}/cgroup");
        let proc_cgroup = std::fs::read_to_string(&proc_path)
            .map_err(|e| Error::io(format!("read {proc_path}"), e))?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::io("read /proc/self/mountinfo", e))?;
        resolve(&proc_cgroup, &mountinfo)
            .map_err(|e| e.context(format!("cgroup of pid {pid} ({proc_path})")))
    }

    /// Which hierarchy [`stats`](Self::stats) reads: V1 whenever a v1 controller is mounted.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Fill [`Stats`] from cpuacct/cpu/memory/pids (v1) or cpu.stat/memory.*/pids.* (v2).
    ///
    /// Files that a kernel or configuration may lack read as zero; a controller directory that no
    /// longer exists (the cgroup was removed) is a NotFound error naming it.
    pub fn stats(&self) -> Result<Stats> {
        match self.version {
            CgroupVersion::V1 => v1::stats(self),
            CgroupVersion::V2 => v2::stats(self),
        }
    }

    /// Every pid in the cgroup (v1: the pids controller dir, else memory, else any; read
    /// cgroup.procs).
    pub fn procs(&self) -> Result<Vec<u32>> {
        let dir = match self.version {
            CgroupVersion::V1 => self
                .controllers
                .get("pids")
                .or_else(|| self.controllers.get("memory"))
                .or_else(|| self.controllers.values().next()),
            CgroupVersion::V2 => self.unified.as_ref(),
        }
        .ok_or_else(|| Error::not_found("cgroup has no directory to list processes from"))?;
        let path = dir.join("cgroup.procs");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        parse_procs(&text).map_err(|e| e.context(format!("parse {}", path.display())))
    }

    /// Directory of a v1 controller (e.g. "memory"), or the unified dir on v2.
    pub fn controller_dir(&self, controller: &str) -> Option<&Path> {
        match self.version {
            CgroupVersion::V1 => self.controllers.get(controller).map(PathBuf::as_path),
            CgroupVersion::V2 => self.unified.as_deref(),
        }
    }

    /// The `cgroup2` directory of the process, on pure v2 and on hybrid hosts.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_deref()
    }
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controller,list:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcEntry {
    hierarchy: u32,
    controllers: Vec<String>,
    path: String,
}

/// A cgroup filesystem from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    /// The cgroup mounted there (`/` unless a sub-tree is bind-mounted).
    root: String,
    mount_point: PathBuf,
    /// `cgroup2` rather than `cgroup`.
    v2: bool,
    /// v1 super options naming controllers (`cpu`, `memory`, `name=systemd`…).
    options: Vec<String>,
}

impl CgroupMount {
    /// The directory of `path` (a cgroup path as in `/proc/<pid>/cgroup`), if under this mount.
    fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let rest = path.strip_prefix(self.root.trim_end_matches('/'))?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        let rest = rest.trim_start_matches('/');
        Some(if rest.is_empty() {
            self.mount_point.clone()
        } else {
            self.mount_point.join(rest)
        })
    }
}

/// Resolve a process's cgroups from the contents of its `/proc/<pid>/cgroup` and of
/// `/proc/self/mountinfo`.
fn resolve(proc_cgroup: &str, mountinfo: &str) -> Result<Cgroup> {
    let entries = parse_proc_cgroup(proc_cgroup)?;
    let mounts = parse_mountinfo(mountinfo);
    let mut controllers = BTreeMap::new();
    let mut unified = None;
    for e in &entries {
        let v2 = e.hierarchy == 0 && e.controllers.is_empty();
        let dir = mounts
            .iter()
            .filter(|m| m.v2 == v2)
            .filter(|m| v2 || e.controllers.iter().all(|c| m.options.contains(c)))
            .find_map(|m| m.dir_of(&e.path));
        let Some(dir) = dir else {
            tracing::debug!(line = ?e, "cgroup hierarchy not mounted here; skipped");
            continue;
        };
        if v2 {
            unified = Some(dir);
        } else {
            for c in &e.controllers {
                controllers.insert(c.clone(), dir.clone());
            }
        }
    }
    let version = if controllers.keys().any(|c| !c.starts_with("name=")) {
        CgroupVersion::V1
    } else if unified.is_some() {
        CgroupVersion::V2
    } else {
        return Err(Error::not_found(
            "none of its cgroup hierarchies is mounted in /proc/self/mountinfo",
        ));
    };
    Ok(Cgroup {
        version,
        controllers,
        unified,
    })
}

fn parse_proc_cgroup(s: &str) -> Result<Vec<ProcEntry>> {
    let mut out = Vec::new();
    for (n, line) in s.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = || Error::internal(format!("line {}: malformed cgroup entry {line:?}", n + 1));
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        out.push(ProcEntry {
            hierarchy: id.parse().map_err(|_| bad())?,
            controllers: ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            path: path.to_owned(),
        });
    }
    Ok(out)
}

/// The cgroup and cgroup2 mounts of a mountinfo table; other lines are ignored.
pub(crate) fn parse_mountinfo(s: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in s.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().skip(6).position(|f| *f == "-").map(|i| i + 6) else {
            continue;
        };
        let (Some(root), Some(mp), Some(fstype)) =
            (fields.get(3), fields.get(4), fields.get(sep + 1))
        else {
            continue;
        };
        let v2 = match *fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let options = fields
            .get(sep + 3)
            .map(|o| o.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        out.push(CgroupMount {
            root: unescape_octal(root),
            mount_point: PathBuf::from(unescape_octal(mp)),
            v2,
            options,
        });
    }
    out
}

/// Undo mountinfo's `\ooo` escapes of space, tab, newline and backslash.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A single unsigned number (surrounding whitespace allowed).
fn parse_u64(s: &str) -> Result<u64> {
    let t = s.trim();
    t.parse()
        .map_err(|_| Error::internal(format!("expected a number, got {t:?}")))
}

/// A limit: a number, or `max` meaning `unlimited`.
fn parse_limit(s: &str, unlimited: u64) -> Result<u64> {
    match s.trim() {
        "max" => Ok(unlimited),
        t => parse_u64(t),
    }
}

/// A flat keyed file: one `key value` pair per line.
fn parse_keyed(s: &str) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for (n, line) in s.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v), None) = (it.next(), it.next(), it.next()) else {
            return Err(Error::internal(format!(
                "line {}: expected `key value`, got {line:?}",
                n + 1
            )));
        };
        let v = parse_u64(v).map_err(|e| e.context(format!("line {}", n + 1)))?;
        out.insert(k.to_owned(), v);
    }
    Ok(out)
}

/// Whitespace-separated numbers (`cpuacct.usage_percpu`).
fn parse_u64_list(s: &str) -> Result<Vec<u64>> {
    s.split_whitespace().map(parse_u64).collect()
}

/// `cgroup.procs`: one pid per line.
fn parse_procs(s: &str) -> Result<Vec<u32>> {
    s.split_whitespace()
        .map(|p| {
            p.parse()
                .map_err(|_| Error::internal(format!("expected a pid, got {p:?}")))
        })
        .collect()
}

/// Contents of `dir/name`, or None when the file does not exist (or the kernel does not support
/// it). Other failures name the file.
fn read_opt(dir: &Path, name: &str) -> Result<Option<String>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || matches!(e.raw_os_error(), Some(libc::ENODEV | libc::EOPNOTSUPP)) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

/// Read and parse an optional file; `T::default()` when it is absent.
fn read_with<T: Default>(
    dir: &Path,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T>,
) -> Result<T> {
    match read_opt(dir, name)? {
        None => Ok(T::default()),
        Some(s) => parse(&s).map_err(|e| e.context(format!("parse {}", dir.join(name).display()))),
    }
}

fn read_u64(dir: &Path, name: &str) -> Result<u64> {
    read_with(dir, name, parse_u64)
}

fn read_keyed(dir: &Path, name: &str) -> Result<BTreeMap<String, u64>> {
    read_with(dir, name, parse_keyed)
}

/// Fail with NotFound naming `dir` when a cgroup directory has been removed.
fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Error::not_found(format!(
            "cgroup directory {} does not exist",
            dir.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};

    const MOUNTINFO: &str = "\
23 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:4 master:1 - cgroup2 cgroup2 rw
";

    #[test]
    fn mountinfo_keeps_cgroup_mounts_and_unescapes() {
        let extra = "50 1 0:40 /kube /mnt/my\\040cg rw - cgroup cgroup rw,cpu,cpuacct\n";
        let m = parse_mountinfo(&format!("{MOUNTINFO}{extra}"));
        assert_eq!(m.len(), 7);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(m[0].options, ["rw", "cpu"]);
        assert!(m[5].v2 && !m[4].v2);
        assert_eq!(m[6].mount_point, Path::new("/mnt/my cg"));
        assert_eq!(m[6].root, "/kube");
        assert!(parse_mountinfo("garbage\n1 2 3\n").is_empty());
    }

    #[test]
    fn resolve_hybrid_separate_cpu_and_cpuacct() {
        let pc = "9:name=systemd:/\n8:pids:/a\n4:memory:/a/b\n2:cpuacct:/\n1:cpu:/\n0::/u\n";
        let cg = resolve(pc, MOUNTINFO).unwrap();
        assert_eq!(cg.version(), CgroupVersion::V1);
        let dir = |c| cg.controller_dir(c).map(Path::to_path_buf);
        assert_eq!(dir("memory"), Some("/sys/fs/cgroup/memory/a/b".into()));
        assert_eq!(dir("pids"), Some("/sys/fs/cgroup/pids/a".into()));
        assert_eq!(dir("cpu"), Some("/sys/fs/cgroup/cpu".into()));
        assert_eq!(dir("name=systemd"), Some("/sys/fs/cgroup/systemd".into()));
        assert_eq!(dir("blkio"), None, "not mounted here");
        assert_eq!(
            cg.unified_dir(),
            Some(Path::new("/sys/fs/cgroup/unified/u"))
        );
    }

    #[test]
    fn resolve_comounted_and_bind_mounted_subtree() {
        let mi = "1 0 0:1 /kubepods /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let cg = resolve("3:cpu,cpuacct:/kubepods/pod1/c1:x\n", mi).unwrap();
        let want = Path::new("/sys/fs/cgroup/cpu,cpuacct/pod1/c1:x");
        assert_eq!(cg.controller_dir("cpu"), Some(want));
        assert_eq!(cg.controller_dir("cpuacct"), Some(want));
        let e = resolve("3:cpu,cpuacct:/kubepodsX/c\n", mi).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn resolve_pure_v2() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let cg = resolve("0::/system.slice/c.scope\n", mi).unwrap();
        assert_eq!(cg.version(), CgroupVersion::V2);
        let want = Path::new("/sys/fs/cgroup/system.slice/c.scope");
        assert_eq!(cg.controller_dir("memory"), Some(want));
        assert_eq!(cg.controller_dir("pids"), Some(want));
        assert_eq!(
            resolve("0::/\n", mi).unwrap().unified_dir(),
            Some(Path::new("/sys/fs/cgroup"))
        );
    }

    #[test]
    fn proc_cgroup_and_procs_parsers() {
        let e = parse_proc_cgroup("4:memory:/a\nnonsense\n").unwrap_err();
        assert!(e.message().contains("line 2"), "{e}");
        assert!(parse_proc_cgroup("x:memory:/a\n").is_err());
        assert_eq!(parse_procs("1\n22\n333\n").unwrap(), vec![1, 22, 333]);
        assert!(parse_procs("1\nabc\n").is_err());
    }
}
