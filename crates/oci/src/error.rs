//! Errors of the OCI backend, classified into [`ErrorKind`]s in one place.

use std::path::Path;

use nexcage_core::cmd::CmdError;
use nexcage_core::{ErrorKind, HasKind};

/// An OCI backend failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime refused or failed; `message` is its own error text.
    #[error("{runtime} {op} {id}: {message}")]
    Runtime {
        /// Runtime binary name.
        runtime: String,
        /// Subcommand.
        op: &'static str,
        /// Container id.
        id: String,
        /// The runtime's message (from its JSON log or stderr).
        message: String,
        /// Classified kind.
        kind: ErrorKind,
    },
    /// The runtime could not be run or timed out.
    #[error("{op} {id}: {source}")]
    Cmd {
        /// Subcommand.
        op: &'static str,
        /// Container id.
        id: String,
        /// Why.
        source: CmdError,
    },
    /// Output that did not parse.
    #[error("cannot parse output of {op} {id}: {detail}")]
    Parse {
        /// Subcommand.
        op: &'static str,
        /// Container id.
        id: String,
        /// What was wrong.
        detail: String,
    },
    /// Anything else, already carrying its kind.
    #[error(transparent)]
    Core(#[from] nexcage_core::Error),
}

/// `Result` of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Turn a failed call into an error carrying the runtime's own message: the last error record
    /// of its JSON `log` when there is one, else its stderr.
    pub fn from_cmd(op: &'static str, id: &str, log: Option<&Path>, e: CmdError) -> Error {
        match e {
            CmdError::Failed {
                argv,
                stderr,
                stdout,
                ..
            } => {
                let from_log = log
                    .and_then(|l| std::fs::read_to_string(l).ok())
                    .and_then(|t| crate::cli::last_log_error(&t));
                let message = from_log.unwrap_or_else(|| {
                    let s = if stderr.trim().is_empty() {
                        &stdout
                    } else {
                        &stderr
                    };
                    crate::cli::last_log_error(s).unwrap_or_else(|| s.trim().to_string())
                });
                let runtime = argv
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.rsplit('/').next())
                    .unwrap_or("runtime")
                    .to_string();
                Error::Runtime {
                    runtime,
                    op,
                    id: id.to_string(),
                    kind: classify(&message),
                    message,
                }
            }
            source => Error::Cmd {
                op,
                id: id.to_string(),
                source,
            },
        }
    }

    pub(crate) fn parse(op: &'static str, id: &str, detail: String) -> Error {
        Error::Parse {
            op,
            id: id.to_string(),
            detail,
        }
    }

    /// The runtime does not know the container (or its process is gone).
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }
}

/// Whether a runtime refused a spec for its version (crun: `unknown version specified`).
pub fn is_unknown_spec_version(message: &str) -> bool {
    message.contains("unknown version specified")
}

/// Classify a runc/crun error message. The only place that matches runtime error text.
pub fn classify(message: &str) -> ErrorKind {
    let m = message.to_ascii_lowercase();
    if is_unknown_spec_version(message) {
        return ErrorKind::InvalidArgument;
    }
    if m.contains("does not exist")
        || m.contains("not running")
        || m.contains("no such process")
        || m.contains("process already finished")
        || m.contains("container is not running")
    {
        ErrorKind::NotFound
    } else if m.contains("already exists") {
        ErrorKind::AlreadyExists
    } else if m.contains("invalid argument")
        || m.contains("config.json")
        || m.contains("no such file or directory")
        || m.contains("executable file not found")
        || m.contains("invalid")
    {
        ErrorKind::InvalidArgument
    } else if m.contains("paused") || m.contains("is stopped") || m.contains("not paused") {
        ErrorKind::FailedPrecondition
    } else {
        ErrorKind::Internal
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Runtime { kind, .. } => *kind,
            Error::Cmd { source, .. } => source.kind(),
            Error::Parse { .. } => ErrorKind::Internal,
            Error::Core(e) => e.kind(),
        }
    }
}

impl From<Error> for nexcage_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(c) => c,
            other => nexcage_core::Error::new(other.kind(), other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(
            classify("container \"x\" does not exist"),
            ErrorKind::NotFound
        );
        assert_eq!(classify("container not running"), ErrorKind::NotFound);
        assert_eq!(
            classify("container with id exists: x already exists"),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            classify("runc create failed: unable to start container process: exec: \"/x\": stat /x: no such file or directory"),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            classify("cgroups in hybrid mode not supported"),
            ErrorKind::Internal
        );
    }

    #[test]
    fn failed_call_prefers_the_json_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.json");
        std::fs::write(
            &log,
            "{\"level\":\"error\",\"msg\":\"container \\\"c1\\\" does not exist\"}\n",
        )
        .unwrap();
        let e = Error::from_cmd(
            "kill",
            "c1",
            Some(&log),
            CmdError::Failed {
                argv: "/usr/bin/runc --root /r kill c1 9".into(),
                status: 1,
                stdout: String::new(),
                stderr: "noise".into(),
            },
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            "runc kill c1: container \"c1\" does not exist"
        );
    }
}
