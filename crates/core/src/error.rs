//! Error kinds shared by every nexcage crate, and the core crate's error type.
//!
//! Each crate has its own `Error` enum; every one of them can say which [`ErrorKind`] it is, and the
//! shim maps each kind to exactly one ttrpc status code. Keep the kind precise: containerd and the
//! CRI plugin branch on NotFound, AlreadyExists and friends.

use std::fmt;

/// The class of a failure, independent of where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The object (container, exec, backend, file) does not exist.
    NotFound,
    /// An object with that id already exists.
    AlreadyExists,
    /// The request itself is wrong: a bad id, a malformed spec or config value.
    InvalidArgument,
    /// The request is valid but the object is in the wrong state for it.
    FailedPrecondition,
    /// The backend cannot do this at all.
    Unimplemented,
    /// A tool or operation did not finish in time.
    DeadlineExceeded,
    /// A dependency (binary, daemon, quorum) is not available right now.
    Unavailable,
    /// Anything else: a bug or an unexpected failure of a tool.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::FailedPrecondition => "failed precondition",
            ErrorKind::Unimplemented => "unimplemented",
            ErrorKind::DeadlineExceeded => "deadline exceeded",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        };
        f.write_str(s)
    }
}

/// Implemented by every crate's error type so the shim can map it to a status code.
pub trait HasKind: std::error::Error {
    /// The class of this error.
    fn kind(&self) -> ErrorKind;
}

/// The error type of `nexcage-core`, also used by backends for errors that are not tool-specific.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Prefix the message with context, keeping kind and source.
    pub fn context(mut self, ctx: impl fmt::Display) -> Self {
        self.message = format!("{ctx}: {}", self.message);
        self
    }

    /// The message without the source chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The whole chain `message: cause: cause…`, as containerd should see it.
    pub fn chain(&self) -> String {
        let mut out = self.message.clone();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            let s = e.to_string();
            if !out.contains(&s) {
                out.push_str(": ");
                out.push_str(&s);
            }
            cur = e.source();
        }
        out
    }

    /// Wrap an I/O error, mapping `ENOENT` to NotFound and the rest to Internal.
    pub fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            std::io::ErrorKind::PermissionDenied => ErrorKind::FailedPrecondition,
            std::io::ErrorKind::TimedOut => ErrorKind::DeadlineExceeded,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, format!("{context}: {err}"))
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// `Result` with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! ctor {
    ($($(#[$m:meta])* $name:ident => $kind:ident),* $(,)?) => {
        impl Error {
            $($(#[$m])* pub fn $name(message: impl Into<String>) -> Self {
                Error::new(ErrorKind::$kind, message)
            })*
        }
    };
}

ctor! {
    /// NotFound.
    not_found => NotFound,
    /// AlreadyExists.
    already_exists => AlreadyExists,
    /// InvalidArgument.
    invalid => InvalidArgument,
    /// FailedPrecondition.
    precondition => FailedPrecondition,
    /// Unimplemented.
    unimplemented => Unimplemented,
    /// DeadlineExceeded.
    deadline => DeadlineExceeded,
    /// Unavailable.
    unavailable => Unavailable,
    /// Internal.
    internal => Internal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_includes_sources_once() {
        let io = std::io::Error::other("disk on fire");
        let e = Error::internal("write state").with_source(io);
        assert_eq!(e.chain(), "write state: disk on fire");
        assert_eq!(e.kind(), ErrorKind::Internal);
    }

    #[test]
    fn io_maps_enoent_to_not_found() {
        let e = Error::io("open /x", std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().starts_with("open /x: "));
    }

    #[test]
    fn context_keeps_kind() {
        let e = Error::precondition("container is stopped").context("exec e1");
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(e.message(), "exec e1: container is stopped");
    }
}
