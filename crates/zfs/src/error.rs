//! Errors of the zfs/zpool wrappers; the tools' messages are classified in [`classify`] only.

use nexcage_core::cmd::CmdError;
use nexcage_core::{ErrorKind, HasKind};

/// A failed `zfs` or `zpool` call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tool ran and refused; `message` is its own stderr, trimmed.
    #[error("{op} {target}: {message}")]
    Tool {
        /// Subcommand, e.g. `zfs destroy`.
        op: &'static str,
        /// The dataset, snapshot or pool it was about.
        target: String,
        /// The tool's message.
        message: String,
        /// Exit status.
        status: i32,
        /// Classified kind.
        kind: ErrorKind,
    },
    /// The tool could not be started or timed out.
    #[error("{op} {target}")]
    Cmd {
        /// Subcommand.
        op: &'static str,
        /// Dataset, snapshot or pool.
        target: String,
        /// Why.
        #[source]
        source: CmdError,
    },
    /// Output that did not parse.
    #[error("cannot parse output of {op}: {detail}")]
    Parse {
        /// Subcommand.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A dataset, snapshot, pool or property name that is refused before any call.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// `dataset`, `snapshot`, `property`, …
        what: &'static str,
        /// The name as given.
        name: String,
        /// Why.
        reason: &'static str,
    },
}

/// `Result` of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Turn a failed call into an error carrying the tool's own message and its kind.
    pub(crate) fn from_cmd(op: &'static str, target: &str, e: CmdError) -> Error {
        match e {
            CmdError::Failed {
                status,
                stdout,
                stderr,
                ..
            } => {
                let text = if stderr.trim().is_empty() {
                    stdout
                } else {
                    stderr
                };
                let message = text.trim().to_string();
                Error::Tool {
                    op,
                    target: target.to_string(),
                    kind: classify(&message),
                    message,
                    status,
                }
            }
            source => Error::Cmd {
                op,
                target: target.to_string(),
                source,
            },
        }
    }

    pub(crate) fn parse(op: &'static str, detail: impl Into<String>) -> Error {
        Error::Parse {
            op,
            detail: detail.into(),
        }
    }

    /// The dataset, snapshot or pool does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// It already exists.
    pub fn is_already_exists(&self) -> bool {
        self.kind() == ErrorKind::AlreadyExists
    }

    /// `dataset is busy` and friends: worth a retry.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Tool { message, .. } if is_busy_text(message))
    }

    /// The installed tool lacks a flag (`invalid option`): zfs-fuse and old OpenZFS.
    pub fn is_unsupported_option(&self) -> bool {
        matches!(self, Error::Tool { message, .. } if message.contains("invalid option"))
    }
}

fn is_busy_text(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.contains("is busy") || m.contains("device busy") || m.contains("resource busy")
}

/// Classify a `zfs`/`zpool` error message. The only place that matches the tools' error text;
/// the strings are libzfs's (`libzfs_util.c` `zfs_strerror` and the `cannot <verb> '<name>':`
/// prefixes), shared by OpenZFS and zfs-fuse.
pub fn classify(message: &str) -> ErrorKind {
    let m = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    if has(&[
        "zfs-fuse daemon is running",
        "modules are not loaded",
        "failed to initialize the libzfs library",
        "/dev/zfs and /proc/self/mounts are required",
        "out of space",
        "pool i/o is currently suspended",
    ]) || is_busy_text(&m)
    {
        ErrorKind::Unavailable
    } else if has(&[
        "invalid option",
        "unrecognized command",
        "operation not supported",
    ]) {
        ErrorKind::Unimplemented
    } else if has(&[
        "does not exist",
        "no such pool",
        "no such dataset",
        "could not find any snapshots",
        "not currently mounted",
    ]) {
        ErrorKind::NotFound
    } else if has(&["already exists", "already mounted"]) {
        ErrorKind::AlreadyExists
    } else if has(&[
        "has children",
        "has dependent clones",
        "more recent snapshots",
        "not a cloned filesystem",
        "permission denied",
        "is readonly",
        "read-only",
        "mountpoint or dataset is busy",
        "legacy mountpoint",
    ]) {
        ErrorKind::FailedPrecondition
    } else if has(&[
        "invalid property",
        "bad property list",
        "bad numeric value",
        "invalid character",
        "invalid dataset name",
        "invalid name",
        "name is too long",
        "missing",
        "usage:",
        "must be",
    ]) {
        ErrorKind::InvalidArgument
    } else {
        ErrorKind::Internal
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Tool { kind, .. } => *kind,
            Error::Cmd { source, .. } => source.kind(),
            Error::Parse { .. } => ErrorKind::Internal,
            Error::InvalidName { .. } => ErrorKind::InvalidArgument,
        }
    }
}

impl From<Error> for nexcage_core::Error {
    fn from(e: Error) -> Self {
        let kind = e.kind();
        let message = match &e {
            Error::Cmd { source, .. } => format!("{e}: {source}"),
            _ => e.to_string(),
        };
        nexcage_core::Error::new(kind, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages as printed by zfs-fuse 0.7 (recorded on the test pool) and OpenZFS 2.x.
    #[test]
    fn classification() {
        let cases: &[(&str, ErrorKind)] = &[
            ("cannot open 'p/nope': dataset does not exist", ErrorKind::NotFound),
            ("cannot open 'nope': no such pool", ErrorKind::NotFound),
            ("cannot unmount 'p/b2': not currently mounted", ErrorKind::NotFound),
            ("cannot create 'p/x/y/z': parent does not exist", ErrorKind::NotFound),
            ("could not find any snapshots to destroy; check snapshot names.", ErrorKind::NotFound),
            ("cannot create 'p/a': dataset already exists", ErrorKind::AlreadyExists),
            ("cannot create snapshot 'p/a@s': dataset already exists", ErrorKind::AlreadyExists),
            ("cannot rename 'p/b': dataset already exists", ErrorKind::AlreadyExists),
            ("cannot destroy 'p/x': dataset is busy", ErrorKind::Unavailable),
            ("cannot destroy 'p/a': filesystem has children\nuse '-r' to destroy the following datasets:\np/a@s", ErrorKind::FailedPrecondition),
            ("cannot destroy 'p/a@s': snapshot has dependent clones\nuse '-R' to destroy the following datasets:\np/b", ErrorKind::FailedPrecondition),
            ("cannot rollback to 'p/a@s': more recent snapshots exist\nuse '-r' to force deletion of the following snapshots:\np/a@t", ErrorKind::FailedPrecondition),
            ("cannot promote 'p/a': not a cloned filesystem", ErrorKind::FailedPrecondition),
            ("cannot set property for 'p/a': 'used' is readonly", ErrorKind::FailedPrecondition),
            ("cannot set property for 'p/a': invalid property 'bogus'", ErrorKind::InvalidArgument),
            ("cannot set property for 'p/a': bad numeric value 'abc'", ErrorKind::InvalidArgument),
            ("bad property list: invalid property 'bogus'\nusage:\n\tget [-rHp] ...", ErrorKind::InvalidArgument),
            ("cannot create 'p/a b#': invalid character '#' in name", ErrorKind::InvalidArgument),
            ("invalid option 'p'\nusage:\n\tlist [-rH][-d max] ...", ErrorKind::Unimplemented),
            ("connect: No such file or directory\nPlease make sure that the zfs-fuse daemon is running.\ninternal error: failed to initialize ZFS library", ErrorKind::Unavailable),
            ("The ZFS modules are not loaded.\nTry running '/sbin/modprobe zfs' as root to load them.", ErrorKind::Unavailable),
            ("cannot create 'p/a': out of space", ErrorKind::Unavailable),
            ("something nobody has seen before", ErrorKind::Internal),
        ];
        for (msg, want) in cases {
            assert_eq!(classify(msg), *want, "{msg}");
        }
    }

    #[test]
    fn failed_call_keeps_stderr_and_kind() {
        let e = Error::from_cmd(
            "zfs destroy",
            "p/nope",
            CmdError::Failed {
                argv: "zfs destroy p/nope".into(),
                status: 1,
                stdout: String::new(),
                stderr: "cannot open 'p/nope': dataset does not exist\n".into(),
            },
        );
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "zfs destroy p/nope: cannot open 'p/nope': dataset does not exist"
        );
        let core: nexcage_core::Error = e.into();
        assert_eq!(core.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn busy_and_unsupported_are_recognised() {
        let tool = |m: &str| Error::Tool {
            op: "zfs destroy",
            target: "p/x".into(),
            message: m.into(),
            status: 1,
            kind: classify(m),
        };
        assert!(tool("cannot destroy 'p/x': dataset is busy").is_busy());
        assert!(!tool("cannot open 'p/x': dataset does not exist").is_busy());
        assert!(tool("invalid option 'p'").is_unsupported_option());
    }
}
