//! Snapshots of what a container leaves on the host: mounts, shim and container processes, shim
//! sockets in /run/containerd/s, cgroups, runtime state dirs and containerd's file descriptors.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cmd::{self, TIMEOUT};
use crate::containerd::Containerd;

/// Where every shim (of every containerd) puts its socket.
pub const SOCKET_DIR: &str = "/run/containerd/s";

/// One process from /proc.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Proc {
    /// Process id.
    pub pid: u32,
    /// argv.
    pub args: Vec<String>,
}

fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ..." - comm may contain spaces and parentheses.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(state_of(pid), Some(s) if s != 'Z' && s != 'X')
}

/// Every live process.
pub fn processes() -> Vec<Proc> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| alive(*pid))
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>();
            (!args.is_empty()).then_some(Proc { pid, args })
        })
        .collect()
}

/// The value following `name` in `args` (Go-style `-flag value`).
pub fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].as_str())
}

/// Shim processes serving the containerd at `address` (and task `id`, when given).
pub fn shim_processes(address: &Path, id: Option<&str>) -> Vec<Proc> {
    let addr = address.to_string_lossy();
    processes()
        .into_iter()
        .filter(|p| {
            let exe = Path::new(&p.args[0])
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            exe.starts_with("containerd-shim")
                && flag(&p.args, "-address") == Some(addr.as_ref())
                && id.is_none_or(|id| flag(&p.args, "-id") == Some(id))
        })
        .collect()
}

/// Unescape the octal escapes (`\040`) of /proc/self/mountinfo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points (from /proc/self/mountinfo) at or below `prefix`.
pub fn mounts_under(prefix: &str) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape))
        .filter(|m| m == prefix || m.starts_with(&format!("{}/", prefix.trim_end_matches('/'))))
        .collect()
}

/// The socket a shim for (`address`, `ns`, `id`) listens on: /run/containerd/s/ +
/// hex(sha256("{address}/{ns}/{id}")), the formula of containerd's `shim.SocketAddress`.
pub fn socket_path(address: &Path, ns: &str, id: &str) -> PathBuf {
    let mut c = Command::new("sha256sum");
    let input = format!("{}/{ns}/{id}", address.display());
    let out = cmd::run_with_input(
        {
            c.arg("-");
            c
        },
        input.as_bytes(),
        TIMEOUT,
    );
    assert!(out.success(), "sha256sum failed: {out:?}");
    let hex = out.stdout.split_whitespace().next().unwrap_or_default();
    Path::new(SOCKET_DIR).join(hex)
}

/// Names in /run/containerd/s.
pub fn sockets() -> BTreeSet<String> {
    std::fs::read_dir(SOCKET_DIR)
        .map(|rd| {
            rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The memory cgroup hierarchy (v1) or the unified one (v2).
fn memory_root() -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup/memory");
    if v1.is_dir() {
        v1.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// Cgroups left below `<memory hierarchy>/<ns>/`.
pub fn cgroup_children(ns: &str) -> Vec<PathBuf> {
    std::fs::read_dir(memory_root().join(ns))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The memory limit file of `pid`'s cgroup: memory.limit_in_bytes (v1) or memory.max (v2).
pub fn memory_limit_file(pid: u32) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let v1 = text
        .lines()
        .filter_map(|l| l.splitn(3, ':').collect::<Vec<_>>().try_into().ok())
        .find(|[_, ctrl, _]: &[&str; 3]| ctrl.split(',').any(|c| c == "memory"));
    match v1 {
        Some([_, _, path]) => memory_root()
            .join(path.trim_start_matches('/'))
            .join("memory.limit_in_bytes"),
        None => {
            let path = text
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or_else(|| panic!("no memory cgroup for {pid}: {text}"));
            memory_root()
                .join(path.trim_start_matches('/'))
                .join("memory.max")
        }
    }
}

/// Cleanup of namespace `ns` (unique to one containerd instance of this process): SIGKILL
/// every process still in a cgroup `/<ns>/*` (thawing frozen ones first), then remove the
/// cgroups `/<ns>/*` and `/<ns>` in every hierarchy. Best effort.
pub fn remove_ns_cgroups(ns: &str) {
    let hierarchies: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    let children = |h: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(h.join(ns))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    for h in &hierarchies {
        for c in children(h) {
            let _ = std::fs::write(c.join("freezer.state"), "THAWED");
            let procs = std::fs::read_to_string(c.join("cgroup.procs")).unwrap_or_default();
            for pid in procs
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    for h in &hierarchies {
        for c in children(h) {
            let _ = cmd::poll(Duration::from_secs(2), || {
                std::fs::remove_dir(&c).is_ok().then_some(())
            });
        }
        let _ = std::fs::remove_dir(h.join(ns));
    }
}

/// Number of open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| rd.count())
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
}

/// Everything container `id` in `ns` may have left behind, as a list of findings (empty when
/// clean). `pids` are processes of the container that must be gone.
pub fn leftovers(ctd: &Containerd, ns: &str, id: &str, pids: &[u32]) -> Vec<String> {
    let mut found = Vec::new();
    for p in shim_processes(&ctd.socket(), Some(id)) {
        found.push(format!(
            "shim process {} still running: {:?}",
            p.pid, p.args
        ));
    }
    for pid in pids.iter().filter(|p| alive(**p)) {
        found.push(format!("container process {pid} still running"));
    }
    let bundle = ctd.bundle(ns, id);
    for m in mounts_under(&bundle.to_string_lossy()) {
        found.push(format!("mount left: {m}"));
    }
    if bundle.exists() {
        found.push(format!("bundle dir left: {}", bundle.display()));
    }
    let sock = socket_path(&ctd.socket(), ns, id);
    if sock.exists() {
        found.push(format!("shim socket left: {}", sock.display()));
    }
    // ctr containers: `/<ns>/<id>`; CRI pods: the instance's namespace is their cgroup parent.
    let mut parents = vec![ns];
    if ctd.ns() != ns {
        parents.push(ctd.ns());
    }
    for parent in parents {
        let cg = memory_root().join(parent).join(id);
        if cg.exists() {
            found.push(format!("cgroup left: {}", cg.display()));
        }
    }
    // The lxc backend's monitor (lxc-execute) cgroup.
    let monitor = memory_root().join("nexcage-lxc.monitor").join(ns).join(id);
    if monitor.exists() {
        found.push(format!("lxc monitor cgroup left: {}", monitor.display()));
    }
    found.extend(crate::pve::leftovers(
        &ctd.nexcage_state(),
        ctd.dir(),
        ns,
        id,
    ));
    for b in crate::BACKENDS {
        let dir = ctd.nexcage_state().join(b).join(ns).join(id);
        if dir.exists() {
            found.push(format!("{b} state dir left: {}", dir.display()));
        }
    }
    found
}

/// Panic with every finding (and containerd's log) unless `id` left nothing behind. Cleanup
/// after a task delete is asynchronous (the shim exits after Shutdown, containerd then runs the
/// `delete` action), so this polls for up to 20 s (a hang guard) before judging.
pub fn assert_nothing_left(ctd: &Containerd, ns: &str, id: &str, pids: &[u32]) {
    let clean = cmd::poll(Duration::from_secs(20), || {
        leftovers(ctd, ns, id, pids).is_empty().then_some(())
    });
    if clean.is_some() {
        return;
    }
    let found = leftovers(ctd, ns, id, pids);
    assert!(
        found.is_empty(),
        "container {id} left things behind:\n  - {}\n{}",
        found.join("\n  - "),
        ctd.log_tail(40)
    );
}
