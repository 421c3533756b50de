//! The `proxmox-lxc` backend in the suite: every containerd instance gets its own simulated
//! Proxmox VE node (`tests/pve-sim`, root `<instance dir>/pve`, node `pve1`) and a VMID range
//! of its own, so CTs of instances running side by side never share a VMID (and with it an LXC
//! monitor cgroup name), as VMIDs are unique in a real cluster.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Backend;

/// The backend's name.
pub const NAME: &str = "proxmox-lxc";

/// The simulated node's name.
pub const NODE: &str = "pve1";

static INSTANCES: AtomicU32 = AtomicU32::new(0);

/// The simulator's `pct` (built by `cargo build -p nexcage-pve-sim --bins` into the target
/// directory beside the shim); panics with the build command when it is missing.
pub fn pct_binary() -> PathBuf {
    let dir = crate::shim_binary()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let pct = dir.join("pct");
    assert!(
        pct.is_file(),
        "the Proxmox simulator's pct ({}) is missing: build it with `cargo build -p nexcage-pve-sim --bins`",
        pct.display()
    );
    pct
}

/// The simulator's root for the containerd instance in `dir`.
pub fn sim_root(dir: &Path) -> PathBuf {
    dir.join("pve")
}

/// The environment containerd (and so every shim and `pct` it runs) gets.
pub fn envs(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("PVE_SIM_ROOT", sim_root(dir).display().to_string()),
        ("PVE_SIM_NODE", NODE.to_string()),
    ]
}

/// A VMID range unique to this instance among those running at the same time.
fn vmid_range() -> String {
    let n = INSTANCES.fetch_add(1, Ordering::SeqCst) % 10;
    let base = 100_000 + ((std::process::id() % 80) * 10 + n) * 1000;
    format!("{base}-{}", base + 999)
}

/// The nexcage config lines enabling `proxmox-lxc` on the simulated node of instance `dir`
/// (empty for other backends).
pub fn config(dir: &Path, b: Backend) -> String {
    if b.0 != NAME {
        return String::new();
    }
    let root = sim_root(dir);
    let mut text = format!(
        "\n[backends.{NAME}]\nenabled = true\nbinary = \"{}\"\n\n[proxmox]\nnode = \"{NODE}\"\nvmid_range = \"{}\"\netc_pve = \"{}\"\nlxcpath = \"{}\"\n",
        pct_binary().display(),
        vmid_range(),
        root.join("etc/pve").display(),
        root.join("var/lib/lxc").display(),
    );
    let storage_cfg = std::fs::read_to_string(root.join("etc/pve/storage.cfg")).unwrap_or_default();
    if storage_cfg
        .lines()
        .any(|l| l.trim() == format!("zfspool: {ZFS_STORAGE}"))
    {
        text.push_str(&format!("storage = \"{ZFS_STORAGE}\"\n"));
    }
    text
}

/// The zfspool storage [`config`] names in `[proxmox] storage` when the simulated node has one
/// ([`add_zfs_storage`]).
pub const ZFS_STORAGE: &str = "local-zfs";

/// Give the simulated node of instance `dir` a zfspool storage [`ZFS_STORAGE`] on dataset
/// `pool` (and the `local` dir storage), as a PVE node installed on ZFS has.
pub fn add_zfs_storage(dir: &Path, pool: &str) {
    let root = sim_root(dir);
    let etc = root.join("etc/pve");
    std::fs::create_dir_all(&etc).unwrap_or_else(|e| panic!("create {}: {e}", etc.display()));
    let text = format!(
        "dir: local\n\tpath {}\n\tcontent iso,vztmpl,backup\n\nzfspool: {ZFS_STORAGE}\n\tpool {pool}\n\tsparse\n\tcontent images,rootdir\n",
        root.join("var/lib/vz").display()
    );
    std::fs::write(etc.join("storage.cfg"), text)
        .unwrap_or_else(|e| panic!("write storage.cfg: {e}"));
}

/// The containers of namespace `ns` the backend holds records of (`root` is the backend's
/// per-namespace root `<state>/proxmox-lxc/<ns>`; the records are shared by all namespaces).
pub fn list(root: &Path) -> Vec<String> {
    let Some(ns) = root.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let records = root.parent().map(|p| p.join("records")).unwrap_or_default();
    let mut ids = Vec::new();
    for e in std::fs::read_dir(&records).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if v["namespace"] == ns.as_str() {
            if let Some(id) = v["id"].as_str() {
                ids.push(id.to_string());
            }
        }
    }
    ids.sort();
    ids
}

/// What container `id` of `ns` left on the simulated node: a record, or a CT config whose
/// description names it.
pub fn leftovers(state: &Path, dir: &Path, ns: &str, id: &str) -> Vec<String> {
    let mut found = Vec::new();
    if list(&state.join(NAME).join(ns)).iter().any(|x| x == id) {
        found.push(format!("{NAME} record of {id} left"));
    }
    let confs = sim_root(dir).join("etc/pve/nodes").join(NODE).join("lxc");
    for e in std::fs::read_dir(&confs).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if text.contains(&format!("nexcage container {id}")) {
            found.push(format!("Proxmox CT config left: {}", e.path().display()));
        }
    }
    found
}
