//! The backend abstraction: one small lifecycle trait and separate capability traits, so a
//! backend never stubs what it cannot do. Dispatch is by enum (`nexcage_runtime::AnyBackend`).
//!
//! Contract shared by all backends:
//! - `create` returns once the init exists (not yet running the user's program), with its host pid
//!   and a receiver for its exit;
//! - exits are learned by reaping (see [`crate::reaper`]), never by polling a tool;
//! - `delete` is idempotent and removes every trace the backend left (state, cgroups, mounts it
//!   made), also for a container it only half created;
//! - every tool call has a timeout.

use crate::error::Result;
use crate::stats::Stats;
use crate::types::{CreateConfig, ExecConfig, Health, Spawned};

/// Lifecycle verbs every backend implements.
#[trait_variant::make(Send)]
pub trait Backend {
    /// Backend name as used in config and annotations.
    fn name(&self) -> &str;
    /// Binary present, version parsed, and a real probe.
    async fn health(&self) -> Health;
    /// Refuse, before anything is created, a spec this backend cannot run (InvalidArgument naming
    /// the field).
    fn validate(&self, spec: &oci_spec::runtime::Spec) -> Result<()>;
    /// Create the container; the init waits for `start`.
    async fn create(&self, cfg: CreateConfig) -> Result<Spawned>;
    /// Let the init run the user's program.
    async fn start(&self, id: &str) -> Result<()>;
    /// Signal the init, or with `all` every process of the container.
    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()>;
    /// Remove the container's backend state; idempotent.
    async fn delete(&self, id: &str) -> Result<()>;
    /// Host pids of every process in the container.
    async fn pids(&self, id: &str) -> Result<Vec<u32>>;
}

/// Running extra processes in a container.
#[trait_variant::make(Send)]
pub trait Exec {
    /// Start `cfg.process` inside container `cfg.id`.
    async fn exec(&self, cfg: ExecConfig) -> Result<Spawned>;
    /// Signal an exec process by its host pid.
    async fn kill_exec(&self, id: &str, pid: u32, signal: u32) -> Result<()>;
}

/// Freezing and thawing a container.
#[trait_variant::make(Send)]
pub trait Pause {
    /// Freeze every process.
    async fn pause(&self, id: &str) -> Result<()>;
    /// Thaw.
    async fn resume(&self, id: &str) -> Result<()>;
}

/// Changing resource limits of a running container.
#[trait_variant::make(Send)]
pub trait Update {
    /// Apply `resources` (OCI `linux.resources`).
    async fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()>;
}

/// Reading resource statistics.
#[trait_variant::make(Send)]
pub trait StatsSource {
    /// Current statistics.
    async fn stats(&self, id: &str) -> Result<Stats>;
}

/// Checkpointing a container's processes.
#[trait_variant::make(Send)]
pub trait Checkpoint {
    /// Write a checkpoint image to `path`.
    async fn checkpoint(&self, id: &str, path: &std::path::Path, leave_running: bool)
        -> Result<()>;
}
