//! The per-process state machine (init processes and execs alike).
//!
//! Every verb checks its guard here first; a failed guard is a FailedPrecondition error, except
//! signalling a process that has already exited, which containerd expects as NotFound.

use crate::error::{Error, Result};

/// Lifecycle state of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Created, not yet started.
    Created,
    /// Running.
    Running,
    /// Frozen (init only).
    Paused,
    /// Exited; waiting to be deleted.
    Stopped,
}

/// A verb applied to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Start the process.
    Start,
    /// Send a signal.
    Kill,
    /// Freeze.
    Pause,
    /// Thaw.
    Resume,
    /// Remove.
    Delete,
    /// Add an exec to the container (checked on the init's state).
    Exec,
    /// Change resources.
    Update,
    /// Read statistics or pids.
    Inspect,
    /// Resize the terminal or close stdin.
    Io,
}

impl Status {
    /// Check that `verb` is legal now; returns the state after it succeeds.
    pub fn apply(self, verb: Verb) -> Result<Status> {
        use Status::*;
        use Verb::*;
        let next = match (self, verb) {
            (Created, Start) => Running,
            (Running, Pause) => Paused,
            (Paused, Resume) => Running,
            (Stopped, Kill) => return Err(Error::not_found("process already finished")),
            (Created | Running | Paused, Kill) => self,
            (Created | Stopped, Delete) => self,
            (Created | Running, Exec) => self,
            (Created | Running | Paused, Update | Inspect | Io) => self,
            (Stopped, Io) => self,
            _ => {
                return Err(Error::precondition(format!(
                    "cannot {} a process that is {}",
                    verb.word(),
                    self.word()
                )))
            }
        };
        Ok(next)
    }

    /// Lowercase name for messages.
    pub fn word(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl Verb {
    fn word(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Kill => "signal",
            Verb::Pause => "pause",
            Verb::Resume => "resume",
            Verb::Delete => "delete",
            Verb::Exec => "exec in",
            Verb::Update => "update",
            Verb::Inspect => "inspect",
            Verb::Io => "change the io of",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::Verb::*;
    use crate::error::{ErrorKind, HasKind};

    #[test]
    fn legal_transitions() {
        assert_eq!(Created.apply(Start).unwrap(), Running);
        assert_eq!(Running.apply(Pause).unwrap(), Paused);
        assert_eq!(Paused.apply(Resume).unwrap(), Running);
        assert_eq!(Stopped.apply(Delete).unwrap(), Stopped);
        assert_eq!(Running.apply(Exec).unwrap(), Running);
    }

    #[test]
    fn kill_after_exit_is_not_found() {
        assert_eq!(Stopped.apply(Kill).unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn illegal_transitions_are_preconditions() {
        for (s, v) in [
            (Running, Start),
            (Stopped, Start),
            (Running, Delete),
            (Paused, Delete),
            (Stopped, Exec),
            (Paused, Exec),
            (Created, Pause),
            (Running, Resume),
            (Stopped, Update),
        ] {
            let e = s.apply(v).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{s:?} {v:?}");
        }
        assert_eq!(
            Running.apply(Delete).unwrap_err().message(),
            "cannot delete a process that is running"
        );
    }
}
