//! Errors of the image store and the layer applier.

use std::io;

use nexcage_core::{ErrorKind, HasKind};

use crate::digest::Digest;

/// An image store or layer application failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Content does not hash to the digest that named it.
    #[error("{what} digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// `layer blob`, `layer diff id`, `manifest`, `config`, `index`.
        what: &'static str,
        /// The digest the referrer gave.
        expected: Digest,
        /// The digest of the bytes read.
        actual: Digest,
    },
    /// Content is not as long as its descriptor says.
    #[error("{what} {digest} size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was read.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// Descriptor size.
        expected: u64,
        /// Bytes read.
        actual: u64,
    },
    /// A configured limit was hit (a decompression bomb, too many entries, a huge file, …).
    #[error("layer exceeds the {what} limit of {limit}{}", at(.path))]
    Limit {
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: u64,
        /// The entry being read, when there is one.
        path: Option<String>,
    },
    /// An entry that would write outside the target, or is otherwise refused for safety.
    #[error("refused layer entry {path:?}: {reason}")]
    Unsafe {
        /// The entry's path as written in the archive (lossy UTF-8).
        path: String,
        /// Why.
        reason: String,
    },
    /// The archive or JSON is not well formed.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// `layer`, `index`, `manifest`, …
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A media type, compression, digest algorithm or tar entry type this store does not handle.
    #[error("unsupported {0}")]
    Unsupported(String),
    /// No such image, platform, blob or layer.
    #[error("{0} not found")]
    NotFound(String),
    /// A file system call failed.
    #[error("{op} {path}")]
    Io {
        /// The call (`openat2`, `mkdirat`, …).
        op: &'static str,
        /// The path it was about.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A ZFS call failed.
    #[error(transparent)]
    Zfs(#[from] nexcage_zfs::Error),
    /// Anything else, already carrying its kind.
    #[error(transparent)]
    Core(#[from] nexcage_core::Error),
}

fn at(path: &Option<String>) -> String {
    path.as_ref()
        .map(|p| format!(" at entry {p:?}"))
        .unwrap_or_default()
}

/// `Result` of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl std::fmt::Display, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn unsafe_entry(path: impl std::fmt::Display, reason: impl Into<String>) -> Error {
        Error::Unsafe {
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Error {
        Error::Malformed {
            what,
            detail: detail.into(),
        }
    }

    /// The message with every cause, as containerd should see it.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur = std::error::Error::source(self);
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
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::DigestMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::Limit { .. }
            | Error::Unsafe { .. }
            | Error::Malformed { .. } => ErrorKind::InvalidArgument,
            Error::Unsupported(_) => ErrorKind::Unimplemented,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Io { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                io::ErrorKind::PermissionDenied => ErrorKind::FailedPrecondition,
                io::ErrorKind::TimedOut => ErrorKind::DeadlineExceeded,
                _ => ErrorKind::Internal,
            },
            Error::Zfs(e) => e.kind(),
            Error::Core(e) => e.kind(),
        }
    }
}

impl From<Error> for nexcage_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(c) => c,
            other => nexcage_core::Error::new(other.kind(), other.chain()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let d1: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let d2: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let e = Error::DigestMismatch {
            what: "layer blob",
            expected: d1.clone(),
            actual: d2.clone(),
        };
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let m = e.to_string();
        assert!(
            m.contains(&d1.to_string()) && m.contains(&d2.to_string()),
            "{m}"
        );

        let e = Error::Limit {
            what: "uncompressed size",
            limit: 10,
            path: Some("a/b".into()),
        };
        assert_eq!(
            e.to_string(),
            "layer exceeds the uncompressed size limit of 10 at entry \"a/b\""
        );

        let e = Error::io(
            "openat2",
            "etc/x",
            io::Error::from_raw_os_error(libc_enoent()),
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let core: nexcage_core::Error = e.into();
        assert!(
            core.message().starts_with("openat2 etc/x: "),
            "{}",
            core.message()
        );
        assert_eq!(
            Error::Unsupported("x".into()).kind(),
            ErrorKind::Unimplemented
        );
    }

    fn libc_enoent() -> i32 {
        rustix::io::Errno::NOENT.raw_os_error()
    }
}
