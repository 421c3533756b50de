//! The one mapping from nexcage error kinds to ttrpc status codes. Never `Others`.

use containerd_shim::protos::ttrpc::{self, Code};
use nexcage_core::{Error, ErrorKind, HasKind};

/// The ttrpc code for a kind.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::NotFound => Code::NOT_FOUND,
        ErrorKind::AlreadyExists => Code::ALREADY_EXISTS,
        ErrorKind::InvalidArgument => Code::INVALID_ARGUMENT,
        ErrorKind::FailedPrecondition => Code::FAILED_PRECONDITION,
        ErrorKind::Unimplemented => Code::UNIMPLEMENTED,
        ErrorKind::DeadlineExceeded => Code::DEADLINE_EXCEEDED,
        ErrorKind::Unavailable => Code::UNAVAILABLE,
        ErrorKind::Internal => Code::INTERNAL,
    }
}

/// Convert an error into the ttrpc status containerd sees, with the whole cause chain.
pub fn to_ttrpc(e: Error) -> ttrpc::Error {
    tracing::debug!(kind = %e.kind(), error = %e.chain(), "rpc failed");
    ttrpc::Error::RpcStatus(ttrpc::get_status(code(e.kind()), e.chain()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(e: Error) -> (Code, String) {
        match to_ttrpc(e) {
            ttrpc::Error::RpcStatus(s) => (s.code.enum_value_or_default(), s.message),
            other => panic!("not an RpcStatus: {other:?}"),
        }
    }

    #[test]
    fn not_found() {
        assert_eq!(
            status_of(Error::not_found("container \"x\" does not exist")).0,
            Code::NOT_FOUND
        );
    }

    #[test]
    fn already_exists() {
        assert_eq!(
            status_of(Error::already_exists("x")).0,
            Code::ALREADY_EXISTS
        );
    }

    #[test]
    fn invalid_argument() {
        assert_eq!(status_of(Error::invalid("x")).0, Code::INVALID_ARGUMENT);
    }

    #[test]
    fn failed_precondition() {
        assert_eq!(
            status_of(Error::precondition("x")).0,
            Code::FAILED_PRECONDITION
        );
    }

    #[test]
    fn unimplemented() {
        assert_eq!(
            status_of(Error::unimplemented("checkpoint")).0,
            Code::UNIMPLEMENTED
        );
    }

    #[test]
    fn deadline_exceeded() {
        assert_eq!(status_of(Error::deadline("x")).0, Code::DEADLINE_EXCEEDED);
    }

    #[test]
    fn unavailable() {
        assert_eq!(status_of(Error::unavailable("x")).0, Code::UNAVAILABLE);
    }

    #[test]
    fn internal_keeps_the_chain() {
        let e = Error::internal("runc start c1").with_source(std::io::Error::other("boom"));
        assert_eq!(
            status_of(e),
            (Code::INTERNAL, "runc start c1: boom".to_string())
        );
    }
}
