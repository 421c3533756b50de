//! Domain types passed between the task service and the backends (no protobuf here).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::reaper::ExitReceiver;

/// The stdio a backend hands to a new process.
#[derive(Debug, Default)]
pub struct ChildIo {
    /// stdin (None: /dev/null).
    pub stdin: Option<OwnedFd>,
    /// stdout (None: /dev/null).
    pub stdout: Option<OwnedFd>,
    /// stderr (None: /dev/null).
    pub stderr: Option<OwnedFd>,
    /// With a terminal: where the runtime sends the pty master.
    pub console_socket: Option<PathBuf>,
}

/// Everything a backend needs to create a container.
#[derive(Debug)]
pub struct CreateConfig {
    /// Container id (validated with [`validate_id`]).
    pub id: String,
    /// containerd namespace.
    pub namespace: String,
    /// The bundle directory (holds `config.json` and `rootfs/`).
    pub bundle: PathBuf,
    /// The parsed `config.json`.
    pub spec: oci_spec::runtime::Spec,
    /// The init's stdio.
    pub io: ChildIo,
}

/// Everything a backend needs to start an exec.
#[derive(Debug)]
pub struct ExecConfig {
    /// Container id.
    pub id: String,
    /// Exec id (validated with [`validate_id`]).
    pub exec_id: String,
    /// The bundle directory of the container.
    pub bundle: PathBuf,
    /// The OCI process to run.
    pub process: oci_spec::runtime::Process,
    /// The exec's stdio.
    pub io: ChildIo,
}

/// A process a backend started: its host pid and the future of its exit.
#[derive(Debug)]
pub struct Spawned {
    /// Host pid reported to containerd (CRI derives `/proc/<pid>/ns/*` from it).
    pub pid: u32,
    /// Resolves when the process has exited.
    pub exit: ExitReceiver,
}

/// Result of a backend health check.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// Usable?
    pub healthy: bool,
    /// Tool version, when it could be read.
    pub version: Option<String>,
    /// Resolved binary path.
    pub binary: Option<String>,
    /// One line per check, e.g. `create probe: ok` or the reason it failed.
    pub details: Vec<String>,
    /// The newest OCI runtime spec version the backend accepted in its probe, when it checks
    /// versions (crun 1.8 refuses the 1.2 specs that containerd 1.7+ writes).
    pub max_spec_version: Option<String>,
}

impl Health {
    /// Record the outcome of reading the tool's version; false when it could not be read (the
    /// health check stops there).
    pub fn record_version<E: std::fmt::Display>(
        &mut self,
        read: std::result::Result<String, E>,
    ) -> bool {
        match read {
            Ok(v) => {
                self.details.push(format!("version: {v}"));
                self.version = Some(v);
                true
            }
            Err(e) => {
                self.details.push(format!("version: {e}"));
                false
            }
        }
    }
}

/// `major.minor` of an OCI spec version (`1.2.1` → (1, 2), `1.0.2-dev` → (1, 0)).
pub fn spec_minor(version: &str) -> Option<(u32, u32)> {
    let mut it = version.split(['.', '-', '+']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Whether a backend whose newest accepted spec is `max` can run a spec of `version`
/// (unknown on either side: assume it can, and let the runtime decide).
pub fn spec_supported(version: &str, max: Option<&str>) -> bool {
    match (spec_minor(version), max.and_then(spec_minor)) {
        (Some(v), Some(m)) => v <= m,
        _ => true,
    }
}

/// Check a container or exec id: non-empty, at most 76 bytes, `[A-Za-z0-9_.-]`, not starting
/// with `.` or `-`, so ids are safe as path components and tool arguments.
pub fn validate_id(field: &str, id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let problem = if id.is_empty() {
        Some("must not be empty")
    } else if id.len() > 76 {
        Some("is longer than 76 bytes")
    } else if id.starts_with('.') || id.starts_with('-') {
        Some("must not start with '.' or '-'")
    } else if !id.chars().all(ok_char) {
        Some("may only contain letters, digits, '_', '-' and '.'")
    } else {
        None
    };
    match problem {
        Some(p) => Err(Error::invalid(format!("{field} {id:?} {p}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};

    #[test]
    fn spec_versions() {
        assert_eq!(spec_minor("1.2.1"), Some((1, 2)));
        assert_eq!(spec_minor("1.0.2-dev"), Some((1, 0)));
        assert!(!spec_supported("1.2.1", Some("1.1.0")));
        assert!(spec_supported("1.0.2-dev", Some("1.1.0")));
        assert!(spec_supported("1.2.0", Some("1.2.1")));
        assert!(spec_supported("1.2.0", None));
    }

    #[test]
    fn ids() {
        validate_id("id", "abc-123_x.y").unwrap();
        validate_id("id", &"a".repeat(64)).unwrap();
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "-flag",
            "a b",
            &"a".repeat(77),
        ] {
            let e = validate_id("id", bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
        }
        assert_eq!(
            validate_id("id", "../x").unwrap_err().message(),
            "id \"../x\" must not start with '.' or '-'"
        );
    }
}
