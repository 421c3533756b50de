//! One process (a container's init or an exec) with its state machine and exit.

use std::time::SystemTime;

use nexcage_core::reaper::{ExitReceiver, ExitStatus};
use nexcage_core::state::{Status, Verb};
use nexcage_core::Result;
use tokio::sync::{watch, Mutex, MutexGuard};

use crate::events::{Event, EventSender};
use crate::io::{IoHandle, StdioSpec};

/// Mutable part of a process, behind an async mutex that verbs hold across their backend call,
/// so that (for example) TaskStart is always queued before TaskExit.
#[derive(Debug)]
pub struct ProcState {
    /// Lifecycle state.
    pub status: Status,
    /// Host pid (0 before it exists).
    pub pid: u32,
    /// Exit, once reaped.
    pub exit: Option<ExitStatus>,
    /// I/O handle while the process runs.
    pub io: Option<IoHandle>,
}

/// A process.
#[derive(Debug)]
pub struct Process {
    /// Container id.
    pub container_id: String,
    /// Exec id, empty for the init.
    pub exec_id: String,
    /// The stdio it was given.
    pub stdio: StdioSpec,
    /// For an exec not yet started: its OCI process.
    pub spec: Option<oci_spec::runtime::Process>,
    state: Mutex<ProcState>,
    exited: watch::Sender<Option<ExitStatus>>,
}

/// A snapshot for the State RPC.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// Container id.
    pub id: String,
    /// Exec id.
    pub exec_id: String,
    /// Status.
    pub status: Status,
    /// Pid.
    pub pid: u32,
    /// Stdio.
    pub stdio: StdioSpec,
    /// Exit, once known.
    pub exit: Option<ExitStatus>,
}

impl Process {
    /// A process in state Created (pid 0 for an exec not yet started).
    pub fn new(
        container_id: &str,
        exec_id: &str,
        stdio: StdioSpec,
        spec: Option<oci_spec::runtime::Process>,
    ) -> Self {
        Process {
            container_id: container_id.to_string(),
            exec_id: exec_id.to_string(),
            stdio,
            spec,
            state: Mutex::new(ProcState {
                status: Status::Created,
                pid: 0,
                exit: None,
                io: None,
            }),
            exited: watch::channel(None).0,
        }
    }

    /// Lock the state.
    pub async fn lock(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().await
    }

    /// Check `verb` against the current state.
    pub async fn check(&self, verb: Verb) -> Result<()> {
        self.lock().await.status.apply(verb).map(drop)
    }

    /// Snapshot.
    pub async fn info(&self) -> ProcessInfo {
        let s = self.lock().await;
        ProcessInfo {
            id: self.container_id.clone(),
            exec_id: self.exec_id.clone(),
            status: s.status,
            pid: s.pid,
            stdio: self.stdio.clone(),
            exit: s.exit,
        }
    }

    /// Wait for the exit (any number of concurrent waiters; returns at once after the exit).
    pub async fn wait(&self) -> ExitStatus {
        let mut rx = self.exited.subscribe();
        loop {
            if let Some(st) = *rx.borrow_and_update() {
                return st;
            }
            if rx.changed().await.is_err() {
                return ExitStatus {
                    code: 255,
                    at: SystemTime::now(),
                };
            }
        }
    }

    /// The exit if it has happened.
    pub fn exit(&self) -> Option<ExitStatus> {
        *self.exited.borrow()
    }

    /// Watch `exit` in the background: mark Stopped, drain terminal output, queue TaskExit, wake
    /// waiters, in that order.
    pub fn watch_exit(self: &std::sync::Arc<Self>, exit: ExitReceiver, events: EventSender) {
        let p = self.clone();
        tokio::spawn(async move {
            let st = exit.await.unwrap_or(ExitStatus {
                code: 255,
                at: SystemTime::now(),
            });
            let (pid, io) = {
                let mut s = p.lock().await;
                s.status = Status::Stopped;
                s.exit = Some(st);
                (s.pid, s.io.take())
            };
            if let Some(mut io) = io {
                io.finish().await;
            }
            let _ = events.send(Event::Exit {
                id: p.container_id.clone(),
                exec_id: p.exec_id.clone(),
                pid,
                status: st.code as u32,
                at: st.at,
            });
            p.exited.send_replace(Some(st));
        });
    }
}
