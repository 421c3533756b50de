//! Prerequisites of the suite. A missing one makes every test panic with a message naming it
//! (never a silent skip): `tests/run.sh` installs all of them on Debian 12.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Debian packages `tests/run.sh` installs, with the program each provides.
const PROGRAMS: &[(&str, &str)] = &[
    ("containerd", "containerd"),
    ("ctr", "containerd"),
    ("runc", "runc"),
    ("crun", "crun"),
    ("lxc-execute", "lxc"),
    ("lxc-attach", "lxc"),
    ("umoci", "umoci"),
    ("sha256sum", "coreutils"),
];

/// Static busybox copied into the test image.
pub const BUSYBOX: &str = "/bin/busybox";

/// Find `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Everything that is missing, as human-readable lines.
fn missing() -> Vec<String> {
    let mut m = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        m.push("root privileges (run the suite as root)".to_string());
    }
    let own_bins = crate::versions::bin_dir().is_some();
    for (prog, pkg) in PROGRAMS {
        if own_bins && (*prog == "containerd" || *prog == "ctr") {
            continue;
        }
        if which(prog).is_none() {
            m.push(format!("`{prog}` on PATH (Debian package {pkg})"));
        }
    }
    if !is_executable(Path::new(BUSYBOX)) {
        m.push(format!("{BUSYBOX} (Debian package busybox-static)"));
    }
    if !Path::new("/sys/fs/cgroup").is_dir() {
        m.push("a mounted cgroup filesystem at /sys/fs/cgroup".to_string());
    }
    m.extend(crate::versions::missing());
    m
}

/// Panic (once per process, then on every call) unless every prerequisite is there.
pub fn check() {
    static RESULT: OnceLock<Vec<String>> = OnceLock::new();
    let m = RESULT.get_or_init(missing);
    if !m.is_empty() {
        panic!(
            "e2e prerequisites missing:\n  - {}\n`tests/run.sh` installs the packages (run it as root on Debian 12; it does \
             apt-get install containerd runc crun umoci busybox-static util-linux containernetworking-plugins \
             protobuf-compiler, and tests/fetch-containerd.sh fetches containerd 1.7 and 2.1).",
            m.join("\n  - ")
        );
    }
}

/// Panic unless what the CRI suite needs on top of [`check`] is there: the CNI plugins.
pub fn check_cri() {
    check();
    let m = crate::cni::missing();
    if !m.is_empty() {
        panic!(
            "CRI e2e prerequisites missing:\n  - {}\n`tests/run.sh` installs them (tests/setup-host.sh: \
             apt-get install containernetworking-plugins).",
            m.join("\n  - ")
        );
    }
}
