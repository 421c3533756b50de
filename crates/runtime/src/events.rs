//! Task events, in the order they must reach containerd. One channel carries them all.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::io::StdioSpec;
use crate::mount::Mount;

/// A task event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The container was created.
    Create {
        /// Container id.
        id: String,
        /// Bundle.
        bundle: PathBuf,
        /// Rootfs mounts.
        rootfs: Vec<Mount>,
        /// Stdio.
        stdio: StdioSpec,
        /// Init pid.
        pid: u32,
    },
    /// The init started.
    Start {
        /// Container id.
        id: String,
        /// Init pid.
        pid: u32,
    },
    /// A process exited (`exec_id` empty for the init).
    Exit {
        /// Container id.
        id: String,
        /// Exec id, empty for the init.
        exec_id: String,
        /// Pid.
        pid: u32,
        /// Exit code.
        status: u32,
        /// When.
        at: SystemTime,
    },
    /// The container was deleted.
    Delete {
        /// Container id.
        id: String,
        /// Init pid.
        pid: u32,
        /// Exit code.
        status: u32,
        /// When it exited.
        at: SystemTime,
    },
    /// An exec was registered.
    ExecAdded {
        /// Container id.
        id: String,
        /// Exec id.
        exec_id: String,
    },
    /// An exec started.
    ExecStarted {
        /// Container id.
        id: String,
        /// Exec id.
        exec_id: String,
        /// Pid.
        pid: u32,
    },
    /// Frozen.
    Paused {
        /// Container id.
        id: String,
    },
    /// Thawed.
    Resumed {
        /// Container id.
        id: String,
    },
    /// The kernel OOM-killed a process of the container.
    Oom {
        /// Container id.
        id: String,
    },
}

/// The sending side of the single event queue.
pub type EventSender = tokio::sync::mpsc::UnboundedSender<Event>;
