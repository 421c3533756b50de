//! Health: the tools are there, `lxc-execute --version` parses, and a real probe creates and
//! destroys a tiny container (host rootfs, new namespaces and cgroups, `/bin/true`) in a
//! temporary lxcpath.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nexcage_core::cmd::Cmd;
use nexcage_core::types::Health;

use crate::cli::LxcCli;
use crate::config::MONITOR_CGROUP_ROOT;

const TOOLS: &[&str] = &[
    "lxc-execute",
    "lxc-attach",
    "lxc-info",
    "lxc-freeze",
    "lxc-unfreeze",
];

/// Find `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Run the checks.
pub async fn check(cli: &LxcCli) -> Health {
    let mut h = Health {
        healthy: false,
        version: None,
        binary: Some(cli.tool("lxc-execute").display().to_string()),
        details: Vec::new(),
        // The spec is translated into an LXC config, whatever its version.
        max_spec_version: None,
    };
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| !is_executable(&cli.tool(t)))
        .collect();
    if !missing.is_empty() {
        h.details.push(format!(
            "binary: {} missing in {} (install the lxc package)",
            missing.join(", "),
            cli.bin_dir.display()
        ));
        return h;
    }
    if !h.record_version(cli.version().await) {
        return h;
    }
    match probe(cli).await {
        Ok(()) => {
            h.details.push("create probe: ok".to_string());
            h.healthy = true;
        }
        Err(e) => h.details.push(format!("create probe: {e}")),
    }
    h
}

async fn probe(cli: &LxcCli) -> nexcage_core::Result<()> {
    let tag = format!("probe-{}", std::process::id());
    let dir = cli.lxcpath.join(format!(".{tag}"));
    let container_cg = format!("nexcage-lxc.probe/{tag}");
    let monitor_cg = format!("{MONITOR_CGROUP_ROOT}/{tag}");
    let io = |e: std::io::Error| nexcage_core::Error::io(format!("probe dir {}", dir.display()), e);
    std::fs::create_dir_all(&dir).map_err(io)?;
    let config = format!(
        "lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\nlxc.console.path = none\n\
         lxc.autodev = 0\nlxc.cap.keep = none\n\
         lxc.cgroup.dir.container = {container_cg}\nlxc.cgroup.dir.monitor = {monitor_cg}\n\
         lxc.cgroup.dir.monitor.pivot = {MONITOR_CGROUP_ROOT}\n"
    );
    std::fs::write(dir.join("config"), config).map_err(io)?;
    let run = Cmd::new(cli.tool("lxc-execute"))
        .arg("-n")
        .arg(&tag)
        .arg("-P")
        .arg(&dir)
        .arg("-f")
        .arg(dir.join("config"))
        .arg("-o")
        .arg(dir.join("lxc.log"))
        .args(["-l", "ERROR", "--", "/bin/true"])
        .timeout(cli.timeout.min(Duration::from_secs(20)))
        .run()
        .await;
    let log = std::fs::read_to_string(dir.join("lxc.log")).unwrap_or_default();
    let _ = crate::cgroups::remove(&container_cg).await;
    let _ = crate::cgroups::remove(&monitor_cg).await;
    for d in crate::cgroups::dirs("nexcage-lxc.probe") {
        let _ = std::fs::remove_dir(d); // only when no other probe is using it
    }
    let _ = std::fs::remove_dir_all(&dir);
    run.map(drop).map_err(|e| {
        let errors = crate::create::log_errors(&log);
        let last = errors.last().map(|l| format!(" ({l})")).unwrap_or_default();
        nexcage_core::Error::new(nexcage_core::HasKind::kind(&e), format!("{e}{last}"))
    })
}
