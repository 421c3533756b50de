//! Health check of a runtime: binary present, version parsed, and a real `create` probe.

use std::path::{Path, PathBuf};

use nexcage_core::types::Health;

use crate::cli::{ProcessIo, RuntimeCli};

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

/// On a hybrid host, the controllers the cgroup2 hierarchy holds (crun 1.8 refuses to run while
/// it holds any; mounting their v1 hierarchies frees them).
pub fn hybrid_v2_controllers() -> Option<Vec<String>> {
    let unified = Path::new("/sys/fs/cgroup/unified/cgroup.controllers");
    let text = std::fs::read_to_string(unified).ok()?;
    Some(text.split_whitespace().map(str::to_string).collect())
}

/// Run the checks for `cli` (its `root` is where the probe container lives briefly).
pub async fn check(name: &str, cli: &RuntimeCli) -> Health {
    let mut h = Health {
        binary: Some(cli.binary.display().to_string()),
        ..Default::default()
    };
    if !is_executable(&cli.binary) {
        h.details.push(format!(
            "binary: {} is missing or not executable",
            cli.binary.display()
        ));
        return h;
    }
    if !h.record_version(cli.version().await) {
        return h;
    }
    match probe_newest_spec(cli).await {
        Ok(v) => {
            h.details
                .push(format!("create probe: ok (accepts OCI spec {v})"));
            h.max_spec_version = Some(v.to_string());
            h.healthy = true;
        }
        Err(e) => {
            let msg = e.to_string();
            h.details.push(format!("create probe: {msg}"));
            let hybrid = msg.contains("hybrid");
            if let Some(ctrls) = hybrid_v2_controllers().filter(|c| hybrid && !c.is_empty()) {
                h.details.push(format!(
                    "cgroup: hybrid host whose cgroup2 hierarchy (/sys/fs/cgroup/unified) holds controllers [{}]; \
                     {name} cannot run until they are mounted as v1 hierarchies, e.g. \
                     mkdir -p /sys/fs/cgroup/{c} && mount -t cgroup -o {c} cgroup /sys/fs/cgroup/{c}",
                    ctrls.join(" "),
                    c = ctrls[0]
                ));
            }
        }
    }
    h
}

/// OCI spec versions to probe, newest first.
const SPEC_VERSIONS: [&str; 3] = ["1.2.1", "1.1.0", "1.0.2"];

/// Probe with the newest spec version first; a runtime that refuses it as an unknown version
/// (crun 1.8 with the 1.2 specs containerd 1.7+ writes) is probed with the next older one.
async fn probe_newest_spec(cli: &RuntimeCli) -> crate::error::Result<&'static str> {
    let mut last = None;
    for v in SPEC_VERSIONS {
        match probe(cli, v).await {
            Ok(()) => return Ok(v),
            Err(e) if crate::error::is_unknown_spec_version(&e.to_string()) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("SPEC_VERSIONS is not empty"))
}

/// Create (and delete) a minimal container: namespaces, cgroup, no mounts, a placeholder init.
pub(crate) async fn probe(cli: &RuntimeCli, spec_version: &str) -> crate::error::Result<()> {
    let id = format!("nexcage-probe-{}", std::process::id());
    let dir = cli.root.join(format!(".{id}"));
    let rootfs = dir.join("rootfs");
    let io_err =
        |e: std::io::Error| nexcage_core::Error::io(format!("probe bundle {}", dir.display()), e);
    for d in ["proc", "dev"] {
        std::fs::create_dir_all(rootfs.join(d)).map_err(io_err)?;
    }
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o755)
            .open(rootfs.join("probe"))
            .map_err(io_err)?;
    }
    let spec = serde_json::json!({
        "ociVersion": spec_version,
        "process": {"args": ["/probe"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}],
            "cgroupsPath": format!("/{id}")
        }
    });
    std::fs::write(dir.join("config.json"), spec.to_string()).map_err(io_err)?;
    let _ = cli.delete(&id).await;
    let created = cli
        .create(&id, &dir, &dir.join("pid"), ProcessIo::default(), None)
        .await;
    let deleted = cli.delete(&id).await;
    let _ = std::fs::remove_dir_all(&dir);
    created?;
    deleted
}
