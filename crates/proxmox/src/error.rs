//! Errors of the Proxmox tools, each keeping Proxmox's own message, and the one function that
//! classifies a failed call ([`classify`]) from the messages in proxmox.md (§1.3–1.5, §2, §7,
//! §8, §11).

use std::collections::BTreeMap;
use std::time::Duration;

use nexcage_core::error::{ErrorKind, HasKind};

/// A failed `pct`, `pvesh` or `qm` call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The guest (or its config) does not exist: `Configuration file '…' does not exist`.
    #[error("{argv}: {message}")]
    NotFound {
        /// The command line.
        argv: String,
        /// Proxmox's message.
        message: String,
    },
    /// The VMID is taken: `CT V already exists on node 'N'`, `VM V already exists`.
    #[error("{argv}: {message}")]
    AlreadyExists {
        /// The command line.
        argv: String,
        /// Proxmox's message.
        message: String,
    },
    /// The cluster has no quorum (`cluster not ready - no quorum?`): nothing was changed.
    #[error("{argv}: {message} (the Proxmox cluster has lost quorum)")]
    NoQuorum {
        /// The command line.
        argv: String,
        /// Proxmox's message.
        message: String,
    },
    /// `400 …`: a parameter was refused; `fields` maps each parameter to its reason.
    #[error("{argv}: {message}")]
    ParameterVerification {
        /// The command line.
        argv: String,
        /// The whole message (first line and the per-parameter lines).
        message: String,
        /// Parameter → reason.
        fields: BTreeMap<String, String>,
    },
    /// The guest's config is locked (`CT is locked (create)`), or its config file lock could
    /// not be taken in time.
    #[error("{argv}: {message}")]
    Locked {
        /// The command line.
        argv: String,
        /// Proxmox's message.
        message: String,
        /// The lock value (`create`, `backup`, …); empty for the file lock.
        lock: String,
    },
    /// The guest is in the wrong state: already running, not running, running while destroyed,
    /// guest agent unavailable.
    #[error("{argv}: {message}")]
    WrongState {
        /// The command line.
        argv: String,
        /// Proxmox's message.
        message: String,
    },
    /// The call did not finish in time and was killed.
    #[error("{argv} did not finish within {after:?}")]
    Timeout {
        /// The command line.
        argv: String,
        /// The timeout.
        after: Duration,
    },
    /// The tool could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The output was not what proxmox.md documents.
    #[error("{argv}: unexpected output: {message}")]
    Parse {
        /// The command line.
        argv: String,
        /// What was wrong.
        message: String,
    },
    /// Any other failure, with the exit status and what the tool printed.
    #[error("{argv} exited with status {status}: {message}")]
    Other {
        /// The command line.
        argv: String,
        /// Exit status.
        status: i32,
        /// stderr (Proxmox's message).
        message: String,
        /// stdout (a task's output, e.g. lxc-start's errors).
        stdout: String,
    },
}

impl Error {
    /// Proxmox's own message, without the command line.
    pub fn message(&self) -> String {
        match self {
            Error::NotFound { message, .. }
            | Error::AlreadyExists { message, .. }
            | Error::NoQuorum { message, .. }
            | Error::ParameterVerification { message, .. }
            | Error::Locked { message, .. }
            | Error::WrongState { message, .. }
            | Error::Parse { message, .. }
            | Error::Other { message, .. } => message.clone(),
            Error::Timeout { after, .. } => format!("timed out after {after:?}"),
            Error::Spawn { source, .. } => source.to_string(),
        }
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::NoQuorum { .. } => ErrorKind::Unavailable,
            Error::ParameterVerification { .. } => ErrorKind::InvalidArgument,
            Error::Locked { .. } | Error::WrongState { .. } => ErrorKind::FailedPrecondition,
            Error::Timeout { .. } => ErrorKind::DeadlineExceeded,
            Error::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::Unavailable
            }
            Error::Spawn { .. } | Error::Parse { .. } | Error::Other { .. } => ErrorKind::Internal,
        }
    }
}

impl From<Error> for nexcage_core::Error {
    fn from(e: Error) -> Self {
        nexcage_core::Error::new(e.kind(), e.to_string())
    }
}

/// stderr without the flock chatter (`trying to acquire lock...`, ` OK`).
fn message_of(stderr: &str) -> String {
    let mut s = stderr.replace("trying to acquire lock... OK\n", "");
    if let Some(rest) = s.strip_prefix("trying to acquire lock...") {
        s = rest.trim_start().to_string();
    }
    s.trim().to_string()
}

/// Classify a call that exited with `status` (non-zero).
pub fn classify(argv: &str, status: i32, stdout: &str, stderr: &str) -> Error {
    let message = message_of(stderr);
    let argv = argv.to_string();
    let first = message.lines().next().unwrap_or("").to_string();
    if message.contains("no quorum") {
        return Error::NoQuorum { argv, message };
    }
    if let Some(rest) = first.strip_prefix("400 ") {
        let mut fields = BTreeMap::new();
        if rest.starts_with("Parameter verification failed") {
            for line in message.lines().skip(1) {
                match line.split_once(": ") {
                    Some((k, v)) if is_param_name(k) => {
                        fields.insert(k.to_string(), v.to_string());
                    }
                    _ => break,
                }
            }
        }
        if fields
            .get("vmid")
            .is_some_and(|v| v.contains("already exists"))
        {
            return Error::AlreadyExists { argv, message };
        }
        return Error::ParameterVerification {
            argv,
            message,
            fields,
        };
    }
    if first.contains("already exists on node") {
        return Error::AlreadyExists { argv, message };
    }
    if first.starts_with("Configuration file '") && first.ends_with("' does not exist") {
        return Error::NotFound { argv, message };
    }
    if let Some(lock) = first
        .strip_prefix("CT is locked (")
        .or_else(|| first.strip_prefix("VM is locked ("))
        .and_then(|r| r.strip_suffix(')'))
    {
        let lock = lock.to_string();
        return Error::Locked {
            argv,
            message,
            lock,
        };
    }
    if first.starts_with("can't lock file '") {
        return Error::Locked {
            argv,
            message,
            lock: String::new(),
        };
    }
    const STATE: &[&str] = &[
        " already running",
        " not running",
        "container is running",
        "is running - destroy failed",
        "No QEMU guest agent configured",
        "QEMU guest agent is not running",
        "you can't start a CT if it's a template",
        "no lock found trying to remove any lock",
    ];
    if STATE.iter().any(|s| first.contains(s)) {
        return Error::WrongState { argv, message };
    }
    Error::Other {
        argv,
        status,
        message,
        stdout: stdout.trim().to_string(),
    }
}

fn is_param_name(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(stderr: &str) -> (ErrorKind, Error) {
        let e = classify("pct x", 255, "", stderr);
        (e.kind(), e)
    }

    #[test]
    fn documented_messages_map_to_kinds() {
        let cases = [
            (
                "Configuration file 'nodes/pve1/lxc/100.conf' does not exist\n",
                ErrorKind::NotFound,
            ),
            (
                "Configuration file 'nodes/pve1/qemu-server/300.conf' does not exist\n",
                ErrorKind::NotFound,
            ),
            (
                "CT 100 already exists on node 'pve1'\n",
                ErrorKind::AlreadyExists,
            ),
            (
                "unable to create CT 100 - VM 100 already exists on node 'pve2'\n",
                ErrorKind::AlreadyExists,
            ),
            ("cluster not ready - no quorum?\n", ErrorKind::Unavailable),
            ("CT is locked (create)\n", ErrorKind::FailedPrecondition),
            (
                "can't lock file '/run/lock/lxc/pve-config-100.lock' - got timeout\n",
                ErrorKind::FailedPrecondition,
            ),
            ("CT 100 already running\n", ErrorKind::FailedPrecondition),
            ("CT 100 not running\n", ErrorKind::FailedPrecondition),
            (
                "container '100' not running!\n",
                ErrorKind::FailedPrecondition,
            ),
            (
                "unable to destroy CT 100 - container is running\n",
                ErrorKind::FailedPrecondition,
            ),
            (
                "VM 300 is running - destroy failed\n",
                ErrorKind::FailedPrecondition,
            ),
            ("VM 300 already running\n", ErrorKind::FailedPrecondition),
            (
                "No QEMU guest agent configured\n",
                ErrorKind::FailedPrecondition,
            ),
            (
                "QEMU guest agent is not running\n",
                ErrorKind::FailedPrecondition,
            ),
            ("startup for container '100' failed\n", ErrorKind::Internal),
            (
                "400 not enough arguments\npct start <vmid> [OPTIONS]\n",
                ErrorKind::InvalidArgument,
            ),
        ];
        for (stderr, want) in cases {
            let (k, e) = kind(stderr);
            assert_eq!(k, want, "{stderr:?} -> {e:?}");
            assert_eq!(e.message(), stderr.trim(), "message kept verbatim");
        }
    }

    #[test]
    fn parameter_verification_keeps_each_field() {
        let stderr = "400 Parameter verification failed.\n\
                      memory: value must have a minimum value of 16\n\
                      storage: storage 'local' does not support container directories\n\
                      pct create <vmid> <ostemplate> [OPTIONS]\n";
        let e = classify("pct create", 255, "", stderr);
        let Error::ParameterVerification {
            fields, message, ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(fields.len(), 2);
        assert_eq!(fields["memory"], "value must have a minimum value of 16");
        assert_eq!(
            fields["storage"],
            "storage 'local' does not support container directories"
        );
        assert!(message.starts_with("400 Parameter verification failed."));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn nextid_check_of_a_taken_vmid_is_already_exists() {
        let stderr = "400 Parameter verification failed.\nvmid: VM 123 already exists\npvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n";
        assert_eq!(kind(stderr).0, ErrorKind::AlreadyExists);
    }

    #[test]
    fn lock_value_and_flock_chatter() {
        let e = classify(
            "pct set",
            255,
            "",
            "trying to acquire lock...\nCT is locked (backup)\n",
        );
        let Error::Locked { lock, message, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(lock, "backup");
        assert_eq!(message, "CT is locked (backup)");
    }

    #[test]
    fn other_keeps_status_and_task_output() {
        let e = classify(
            "pct start 100",
            255,
            "lxc-start: 100: failed\n",
            "startup for container '100' failed\n",
        );
        let Error::Other { status, stdout, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*status, 255);
        assert_eq!(stdout, "lxc-start: 100: failed");
        assert!(e.to_string().contains("startup for container '100' failed"));
    }

    #[test]
    fn converts_into_core_errors_with_the_kind() {
        let e: nexcage_core::Error =
            classify("pct create", 255, "", "cluster not ready - no quorum?\n").into();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.message().contains("quorum"), "{}", e.message());
    }
}
