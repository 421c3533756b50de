//! The simulated node: where its files live (everything under `PVE_SIM_ROOT`), its name, the
//! per-call latency, the quorum switch, and how failures are printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The root directory of the simulated node (required).
pub const ENV_ROOT: &str = "PVE_SIM_ROOT";
/// Node name (default: the short host name, as PVE's `nodename`).
pub const ENV_NODE: &str = "PVE_SIM_NODE";
/// LXC path of the containers backing CTs (default `<root>/var/lib/lxc`).
pub const ENV_LXCPATH: &str = "PVE_SIM_LXCPATH";
/// Per-call latency in ms, `N` or `MIN-MAX` (uniform); unset or `0`: none.
pub const ENV_LATENCY: &str = "PVE_SIM_LATENCY_MS";
/// When set to anything but `0` or empty: the cluster has lost quorum.
pub const ENV_NO_QUORUM: &str = "PVE_SIM_NO_QUORUM";
/// The file form of the quorum switch, relative to the root (tests can flip it while running).
pub const NO_QUORUM_FILE: &str = "etc/pve/.sim-no-quorum";

/// Text of `PVE::Cluster::check_cfs_quorum` (pve-cluster; not in proxmox.md, see the README).
pub const NO_QUORUM_MSG: &str = "cluster not ready - no quorum?";

/// A failed call: what goes to stderr, and the exit code (255 for nearly everything, §1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Exact stderr text.
    pub stderr: String,
    /// Exit code.
    pub code: i32,
}

impl Failure {
    /// A Perl `die "msg\n"`: the message on stderr, exit 255.
    pub fn die(msg: impl Into<String>) -> Failure {
        let mut stderr = msg.into();
        if !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        Failure { stderr, code: 255 }
    }

    /// A 400 `PVE::Exception` with per-parameter errors and the short usage.
    pub fn params(errors: &[(String, String)], usage: &str) -> Failure {
        let mut s = String::from("400 Parameter verification failed.\n");
        let mut sorted = errors.to_vec();
        sorted.sort();
        for (p, e) in sorted {
            s.push_str(&format!("{p}: {e}\n"));
        }
        s.push_str(usage);
        Failure::die(s)
    }

    /// A 400 exception without parameter list (`not enough arguments`, …), with the usage.
    pub fn bad_request(msg: &str, usage: &str) -> Failure {
        Failure::die(format!("400 {msg}\n{usage}"))
    }

    /// Print and return the exit code.
    pub fn emit(self) -> i32 {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(self.stderr.as_bytes());
        self.code
    }
}

/// The simulated node.
#[derive(Debug, Clone)]
pub struct Sim {
    /// Root directory; `/etc/pve` is `<root>/etc/pve`.
    pub root: PathBuf,
    /// Node name.
    pub node: String,
    /// LXC path of the backing containers.
    pub lxcpath: PathBuf,
}

impl Sim {
    /// From the environment; creates the node's directories and `/etc/pve/{lxc,qemu-server}`
    /// symlinks and a default `storage.cfg` when missing.
    pub fn from_env() -> Result<Sim, Failure> {
        let root = std::env::var_os(ENV_ROOT)
            .filter(|r| !r.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| Failure::die(format!("pve-sim: {ENV_ROOT} is not set")))?;
        let node = std::env::var(ENV_NODE)
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(short_hostname);
        let lxcpath = std::env::var_os(ENV_LXCPATH)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("var/lib/lxc"));
        let sim = Sim {
            root,
            node,
            lxcpath,
        };
        sim.init()
            .map_err(|e| Failure::die(format!("pve-sim: init: {e}")))?;
        Ok(sim)
    }

    fn init(&self) -> std::io::Result<()> {
        let node_dir = self.etc_pve().join("nodes").join(&self.node);
        for sub in ["lxc", "qemu-server"] {
            std::fs::create_dir_all(node_dir.join(sub))?;
            let link = self.etc_pve().join(sub);
            if std::fs::symlink_metadata(&link).is_err() {
                let target = Path::new("nodes").join(&self.node).join(sub);
                if let Err(e) = std::os::unix::fs::symlink(target, &link) {
                    if e.kind() != std::io::ErrorKind::AlreadyExists {
                        return Err(e);
                    }
                }
            }
        }
        std::fs::create_dir_all(&self.lxcpath)?;
        std::fs::create_dir_all(self.root.join("run/lock/lxc"))?;
        std::fs::create_dir_all(self.root.join("run/qemu-server"))?;
        let storage = self.etc_pve().join("storage.cfg");
        if !storage.exists() {
            let local = self.root.join("var/lib/vz");
            std::fs::create_dir_all(local.join("template/cache"))?;
            let text = format!(
                "dir: local\n\tpath {}\n\tcontent iso,vztmpl,backup\n",
                local.display()
            );
            write_atomic(&storage, text.as_bytes())?;
        }
        Ok(())
    }

    /// `<root>/etc/pve`.
    pub fn etc_pve(&self) -> PathBuf {
        self.root.join("etc/pve")
    }

    /// A CT's config path relative to /etc/pve, as error messages print it.
    pub fn ct_conf_rel(&self, vmid: u32) -> String {
        format!("nodes/{}/lxc/{vmid}.conf", self.node)
    }

    /// A VM's config path relative to /etc/pve.
    pub fn vm_conf_rel(&self, vmid: u32) -> String {
        format!("nodes/{}/qemu-server/{vmid}.conf", self.node)
    }

    /// `Configuration file '…' does not exist`.
    pub fn no_conf(rel: &str) -> Failure {
        Failure::die(format!("Configuration file '{rel}' does not exist"))
    }

    /// Fail with the quorum error when quorum is switched off.
    pub fn check_quorum(&self) -> Result<(), Failure> {
        let env = std::env::var(ENV_NO_QUORUM).unwrap_or_default();
        if (!env.is_empty() && env != "0") || self.root.join(NO_QUORUM_FILE).exists() {
            return Err(Failure::die(NO_QUORUM_MSG));
        }
        Ok(())
    }

    /// Append `event` (`start`, `end`) of this call to [`crate::CALL_LOG`] (best effort: a log
    /// that cannot be written changes nothing else).
    pub fn log_call(&self, event: &str, tool: crate::Tool, args: &[String]) {
        use std::io::Write;
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let line = format!("{ms} {event} {} {}\n", tool.name(), args.join(" "));
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(crate::CALL_LOG))
        {
            let _ = f.write_all(line.as_bytes());
        }
    }

    /// Sleep the configured per-call latency.
    pub fn latency(&self) {
        if let Some(ms) = std::env::var(ENV_LATENCY)
            .ok()
            .and_then(|v| pick_latency(&v))
        {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }

    /// Where every VMID of the cluster has a config: `(vmid, is_ct, node)`.
    pub fn vmlist(&self) -> Vec<(u32, bool, String)> {
        let mut out = Vec::new();
        let Ok(nodes) = std::fs::read_dir(self.etc_pve().join("nodes")) else {
            return out;
        };
        for n in nodes.flatten() {
            let node = n.file_name().to_string_lossy().into_owned();
            for (sub, ct) in [("lxc", true), ("qemu-server", false)] {
                let Ok(files) = std::fs::read_dir(n.path().join(sub)) else {
                    continue;
                };
                for f in files.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    if let Some(id) = name.strip_suffix(".conf").and_then(|s| s.parse().ok()) {
                        out.push((id, ct, node.clone()));
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// `check_vmid_unused`: `CT V already exists on node 'N'` (or `VM …`).
    pub fn check_vmid_unused(&self, vmid: u32) -> Result<(), Failure> {
        match self.vmlist().into_iter().find(|(id, _, _)| *id == vmid) {
            Some((_, ct, node)) => Err(Failure::die(exists_msg(vmid, ct, &node))),
            None => Ok(()),
        }
    }
}

/// `CT V already exists on node 'N'` / `VM V already exists on node 'N'`.
pub fn exists_msg(vmid: u32, ct: bool, node: &str) -> String {
    let word = if ct { "CT" } else { "VM" };
    format!("{word} {vmid} already exists on node '{node}'")
}

/// Parse `N` or `MIN-MAX` and pick a value; `None` for no latency.
pub fn pick_latency(spec: &str) -> Option<u64> {
    let spec = spec.trim();
    let (lo, hi) = match spec.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let v: u64 = spec.parse().ok()?;
            (v, v)
        }
    };
    let (lo, hi): (u64, u64) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if hi == 0 {
        return None;
    }
    Some(lo + random_u64() % (hi - lo + 1))
}

/// A random number from the kernel (the sim needs only a few: latencies and MAC addresses).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    u64::from_ne_bytes(b)
}

/// Short host name: uname nodename up to the first dot (PVE `nodename`).
pub fn short_hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    raw.trim()
        .split('.')
        .next()
        .unwrap_or("localhost")
        .to_string()
}

/// Write via a temporary file and rename (pmxcfs writes are atomic per file).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_spec() {
        assert_eq!(pick_latency("0"), None);
        assert_eq!(pick_latency(""), None);
        assert_eq!(pick_latency("250"), Some(250));
        for _ in 0..50 {
            let v = pick_latency("1000-1700").unwrap();
            assert!((1000..=1700).contains(&v), "{v}");
        }
        assert_eq!(pick_latency("x-1"), None);
    }

    #[test]
    fn param_failure_lists_sorted_params_then_usage() {
        let f = Failure::params(
            &[("vmid".into(), "b".into()), ("memory".into(), "a".into())],
            "USAGE: x\n",
        );
        assert_eq!(
            f.stderr,
            "400 Parameter verification failed.\nmemory: a\nvmid: b\nUSAGE: x\n"
        );
        assert_eq!(f.code, 255);
    }
}
