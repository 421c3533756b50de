//! Where the tools are, their environment and timeouts, and the one place that runs them.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use nexcage_core::cmd::{Cmd, CmdError};

use crate::error::{classify, Error};

/// Timeouts per kind of call. Proxmox control-plane calls take 1–2 s each (proxmox.md §13.2);
/// the defaults leave room for a slow cluster, not for milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Reads and quick writes (`status`, `list`, `config`, `set`, `nextid`, …).
    pub default: Duration,
    /// `pct create` (volume allocation and extraction).
    pub create: Duration,
    /// `start`, `stop`, `shutdown`, `destroy` (tasks that wait for LXC or storage).
    pub task: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            default: Duration::from_secs(30),
            create: Duration::from_secs(600),
            task: Duration::from_secs(120),
        }
    }
}

/// A handle on one node's `pct`, `pvesh` and `qm`.
#[derive(Debug, Clone)]
pub struct Proxmox {
    pub(crate) pct: PathBuf,
    pub(crate) pvesh: PathBuf,
    pub(crate) qm: PathBuf,
    envs: Vec<(OsString, OsString)>,
    /// Timeouts by kind of call.
    pub timeouts: Timeouts,
    once: Option<Duration>,
}

impl Default for Proxmox {
    fn default() -> Self {
        Proxmox::new()
    }
}

/// Which timeout a call uses.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Default,
    Create,
    Task,
}

impl Proxmox {
    /// The tools at their standard paths (`/usr/sbin/pct`, `/usr/bin/pvesh`, `/usr/sbin/qm`).
    pub fn new() -> Proxmox {
        Proxmox {
            pct: "/usr/sbin/pct".into(),
            pvesh: "/usr/bin/pvesh".into(),
            qm: "/usr/sbin/qm".into(),
            envs: Vec::new(),
            timeouts: Timeouts::default(),
            once: None,
        }
    }

    /// The three tools in `dir` (a simulator's bin directory, for example).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Proxmox {
        let dir = dir.into();
        Proxmox {
            pct: dir.join("pct"),
            pvesh: dir.join("pvesh"),
            qm: dir.join("qm"),
            ..Proxmox::new()
        }
    }

    /// The `pct` this handle runs.
    pub fn pct_path(&self) -> &std::path::Path {
        &self.pct
    }

    /// Set an environment variable for every call.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Replace the timeouts.
    pub fn timeouts(mut self, t: Timeouts) -> Self {
        self.timeouts = t;
        self
    }

    /// A copy whose calls all use `t`, whatever their kind.
    pub fn with_timeout(&self, t: Duration) -> Proxmox {
        Proxmox {
            once: Some(t),
            ..self.clone()
        }
    }

    fn timeout(&self, kind: Kind) -> Duration {
        self.once.unwrap_or(match kind {
            Kind::Default => self.timeouts.default,
            Kind::Create => self.timeouts.create,
            Kind::Task => self.timeouts.task,
        })
    }

    /// Run `program args`; stdout on exit 0, the classified error otherwise.
    pub(crate) async fn run(
        &self,
        program: &PathBuf,
        args: &[String],
        kind: Kind,
    ) -> Result<String, Error> {
        let out = self.run_any(program, args, kind).await?;
        if out.status != 0 {
            return Err(classify(
                &argv_of(program, args),
                out.status,
                &out.stdout,
                &out.stderr,
            ));
        }
        Ok(out.stdout)
    }

    /// Run and return the output whatever the exit status.
    pub(crate) async fn run_any(
        &self,
        program: &PathBuf,
        args: &[String],
        kind: Kind,
    ) -> Result<nexcage_core::cmd::Output, Error> {
        let mut cmd = Cmd::new(program)
            .args(args)
            .timeout(self.timeout(kind))
            .status_ok();
        for (k, v) in &self.envs {
            cmd = cmd.env(k, v);
        }
        tracing::debug!(argv = %argv_of(program, args), "proxmox call");
        cmd.run().await.map_err(|e| match e {
            CmdError::Timeout { argv, after } => Error::Timeout { argv, after },
            CmdError::Spawn { program, source } => Error::Spawn { program, source },
            CmdError::Failed {
                argv,
                status,
                stdout,
                stderr,
            } => classify(&argv, status, &stdout, &stderr),
        })
    }
}

/// The command line for messages.
pub(crate) fn argv_of(program: &std::path::Path, args: &[String]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// `shutdown <vmid> --timeout <secs> [--forceStop 1]`, the same for `pct` and `qm`.
pub(crate) fn shutdown_args(vmid: crate::Vmid, timeout_secs: u32, force: bool) -> Vec<String> {
    let mut a = vec![
        "shutdown".into(),
        vmid.to_string(),
        "--timeout".into(),
        timeout_secs.to_string(),
    ];
    if force {
        a.extend(["--forceStop".into(), "1".into()]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_args_carry_the_timeout_and_force_only_when_asked() {
        assert_eq!(
            shutdown_args(101, 30, false),
            ["shutdown", "101", "--timeout", "30"]
        );
        assert_eq!(
            shutdown_args(101, 5, true),
            ["shutdown", "101", "--timeout", "5", "--forceStop", "1"]
        );
    }
}
