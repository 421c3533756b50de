//! A private CNI network for one containerd instance with the CRI plugin: a Linux bridge
//! `nxe2e<k>` with host-local IPAM on `10.123.<k>.0/24`, `isGateway: true` (the bridge holds
//! `10.123.<k>.1`), `ipMasq: false` (no NAT: pods reach each other and the host, nothing beyond).
//! The plugins are Debian's `containernetworking-plugins` in `/usr/lib/cni`.
//!
//! `<k>` is claimed with an exclusive `flock` on `/run/nexcage-e2e/cni/<k>.lock`, held as long
//! as the instance lives, so concurrent test processes (and concurrent suites on one host)
//! never share a bridge or a subnet. A bridge or IPAM state left by a killed test process under
//! a free `<k>` is removed when it is claimed again.
//!
//! Note: the bridge plugin turns on `net.ipv4.ip_forward` when `isGateway` is set;
//! `tests/run.sh` restores the host's value after the suite.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

use crate::cmd::{self, TIMEOUT};

/// Directory of the CNI plugin binaries.
pub const BIN_DIR: &str = "/usr/lib/cni";

/// Plugins the test network uses.
pub const PLUGINS: &[&str] = &["bridge", "host-local", "loopback"];

const LOCK_DIR: &str = "/run/nexcage-e2e/cni";
const SLOTS: u32 = 250;

/// One claimed network.
#[derive(Debug)]
pub struct Network {
    /// Slot number `<k>`.
    pub index: u32,
    /// CNI network name (also the bridge name): `nxe2e<k>`.
    pub name: String,
    /// `10.123.<k>.0/24`.
    pub subnet: String,
    /// Directory holding the network's `.conflist` (containerd's CNI `conf_dir`).
    pub conf_dir: PathBuf,
    /// host-local's `dataDir` (allocated addresses).
    pub ipam_dir: PathBuf,
    _lock: Flock<File>,
}

/// What is missing for CNI networking (for the CRI suite's prerequisite check).
pub fn missing() -> Vec<String> {
    let mut m: Vec<String> = PLUGINS
        .iter()
        .map(|p| Path::new(BIN_DIR).join(p))
        .filter(|p| !p.is_file())
        .map(|p| {
            format!(
                "{} (Debian package containernetworking-plugins)",
                p.display()
            )
        })
        .collect();
    if crate::prereq::which("ip").is_none() {
        m.push("`ip` on PATH (Debian package iproute2)".to_string());
    }
    m
}

fn ip(args: &[&str]) -> cmd::Output {
    let mut c = Command::new("ip");
    c.args(args);
    cmd::run(c, TIMEOUT)
}

/// Whether a network interface `name` exists on the host.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

impl Network {
    /// Claim a free slot and write the network's configuration below `dir`.
    pub fn allocate(dir: &Path) -> Network {
        std::fs::create_dir_all(LOCK_DIR).unwrap_or_else(|e| panic!("create {LOCK_DIR}: {e}"));
        for k in 0..SLOTS {
            let path = Path::new(LOCK_DIR).join(format!("{k}.lock"));
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
                continue;
            };
            let name = format!("nxe2e{k}");
            // Left by a test process that was killed: nobody holds the slot now.
            if link_exists(&name) {
                ip(&["link", "del", &name]);
            }
            let net = Network {
                index: k,
                subnet: format!("10.123.{k}.0/24"),
                conf_dir: dir.join("cni"),
                ipam_dir: dir.join("cni-ipam"),
                name,
                _lock: lock,
            };
            net.write_config();
            return net;
        }
        panic!("no free CNI slot in {LOCK_DIR} (all {SLOTS} are locked)");
    }

    fn write_config(&self) {
        std::fs::create_dir_all(&self.conf_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", self.conf_dir.display()));
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": [{
                "type": "bridge",
                "bridge": self.name,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": self.subnet }]],
                    "dataDir": self.ipam_dir,
                }
            }]
        });
        let path = self.conf_dir.join(format!("10-{}.conflist", self.name));
        std::fs::write(&path, serde_json::to_string_pretty(&conf).expect("json"))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Whether `addr` (an IPv4 address) lies in this network's subnet.
    pub fn contains(&self, addr: &str) -> bool {
        addr.strip_prefix(&format!("10.123.{}.", self.index))
            .and_then(|host| host.parse::<u8>().ok())
            .is_some()
    }

    /// Host-side interfaces (veths) attached to the bridge.
    pub fn bridge_ports(&self) -> Vec<String> {
        std::fs::read_dir(Path::new("/sys/class/net").join(&self.name).join("brif"))
            .map(|rd| {
                rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Remove the bridge (the lock goes with `self`).
    pub fn remove(&self) {
        if link_exists(&self.name) {
            ip(&["link", "del", &self.name]);
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.remove();
    }
}
