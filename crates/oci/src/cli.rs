//! Typed wrapper of the runc/crun command line (both speak the same OCI CLI).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nexcage_core::cmd::{Cmd, Output};

use crate::error::{Error, Result};

/// The runtime CLI: a binary and its private state root.
#[derive(Debug, Clone)]
pub struct RuntimeCli {
    /// Path of the `runc` or `crun` binary.
    pub binary: PathBuf,
    /// `--root`: nexcage's private state directory for this runtime and namespace.
    pub root: PathBuf,
    /// Timeout of one call.
    pub timeout: Duration,
}

/// Options of `create` and `exec` that concern the new process's I/O.
#[derive(Debug, Default)]
pub struct ProcessIo {
    /// stdin/stdout/stderr fds for the new process (None: /dev/null).
    pub stdio: [Option<OwnedFd>; 3],
    /// `--console-socket` for a terminal.
    pub console_socket: Option<PathBuf>,
}

impl RuntimeCli {
    fn cmd(&self, log: Option<&Path>) -> Cmd {
        let mut c = Cmd::new(&self.binary)
            .timeout(self.timeout)
            .arg("--root")
            .arg(&self.root);
        c = c.arg("--log-format=json");
        if let Some(l) = log {
            c = c.arg("--log").arg(l);
        }
        c
    }

    async fn call(&self, op: &'static str, id: &str, log: Option<&Path>, c: Cmd) -> Result<Output> {
        c.run().await.map_err(|e| Error::from_cmd(op, id, log, e))
    }

    /// `create --bundle B --pid-file P [--console-socket S] ID` with the init's stdio.
    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        io: ProcessIo,
        config: Option<&Path>,
    ) -> Result<()> {
        let log = bundle.join("log.json");
        let _ = std::fs::remove_file(&log);
        let mut c = self
            .cmd(Some(&log))
            .arg("create")
            .arg("--bundle")
            .arg(bundle);
        if let Some(cfg) = config {
            c = c.arg("--config").arg(cfg);
        }
        c = c.arg("--pid-file").arg(pid_file);
        if let Some(s) = &io.console_socket {
            c = c.arg("--console-socket").arg(s);
        }
        let [i, o, e] = io.stdio;
        let c = c.arg(id).stdio(i, o, e);
        self.call("create", id, Some(&log), c).await.map(drop)
    }

    /// `start ID`.
    pub async fn start(&self, id: &str, bundle: &Path) -> Result<()> {
        let log = bundle.join("log.json");
        let c = self.cmd(Some(&log)).args(["start", id]);
        self.call("start", id, Some(&log), c).await.map(drop)
    }

    /// `exec --detach --pid-file P --process F [--console-socket S] ID`.
    pub async fn exec(
        &self,
        id: &str,
        process_json: &Path,
        pid_file: &Path,
        io: ProcessIo,
    ) -> Result<()> {
        let log = process_json.with_extension("log.json");
        let mut c = self.cmd(Some(&log)).args(["exec", "--detach"]);
        c = c
            .arg("--pid-file")
            .arg(pid_file)
            .arg("--process")
            .arg(process_json);
        if let Some(s) = &io.console_socket {
            c = c.arg("--console-socket").arg(s);
        }
        let [i, o, e] = io.stdio;
        let c = c.arg(id).stdio(i, o, e);
        let r = self.call("exec", id, Some(&log), c).await.map(drop);
        let _ = std::fs::remove_file(&log);
        r
    }

    /// `kill [--all] ID SIGNAL`.
    pub async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let mut c = self.cmd(None).arg("kill");
        if all {
            c = c.arg("--all");
        }
        let c = c.arg(id).arg(signal.to_string());
        self.call("kill", id, None, c).await.map(drop)
    }

    /// `delete --force ID`; a container that does not exist is not an error.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let c = self.cmd(None).args(["delete", "--force", id]);
        match self.call("delete", id, None, c).await {
            Err(e) if e.is_not_found() => Ok(()),
            r => r.map(drop),
        }
    }

    /// `pause ID`.
    pub async fn pause(&self, id: &str) -> Result<()> {
        let c = self.cmd(None).args(["pause", id]);
        self.call("pause", id, None, c).await.map(drop)
    }

    /// `resume ID`.
    pub async fn resume(&self, id: &str) -> Result<()> {
        let c = self.cmd(None).args(["resume", id]);
        self.call("resume", id, None, c).await.map(drop)
    }

    /// `update --resources FILE ID`.
    pub async fn update(&self, id: &str, resources_json: &Path) -> Result<()> {
        let c = self
            .cmd(None)
            .arg("update")
            .arg("--resources")
            .arg(resources_json)
            .arg(id);
        self.call("update", id, None, c).await.map(drop)
    }

    /// `ps --format json ID`: host pids.
    pub async fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let c = self.cmd(None).args(["ps", "--format", "json", id]);
        let out = self.call("ps", id, None, c).await?;
        serde_json::from_str(out.stdout.trim())
            .map_err(|e| Error::parse("ps", id, format!("{e}: {:?}", out.stdout)))
    }

    /// `--version`: the version number from the first line (`crun version 1.8.1`).
    pub async fn version(&self) -> Result<String> {
        let c = Cmd::new(&self.binary)
            .arg("--version")
            .timeout(self.timeout);
        let out = c
            .run()
            .await
            .map_err(|e| Error::from_cmd("version", "", None, e))?;
        parse_version(&out.stdout).ok_or_else(|| Error::parse("version", "", out.stdout.clone()))
    }
}

/// `runc version 1.1.5+ds1` → `1.1.5+ds1`.
pub fn parse_version(stdout: &str) -> Option<String> {
    let first = stdout.lines().next()?;
    let v = first
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)?;
    Some(v.to_string())
}

/// The message of the last `error`-level record of a `--log-format json` log.
pub fn last_log_error(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("level").and_then(|l| l.as_str()) == Some("error"))
        .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("crun version 1.8.1\ncommit: x\n").as_deref(),
            Some("1.8.1")
        );
        assert_eq!(
            parse_version("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1\n").as_deref(),
            Some("1.1.5+ds1")
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn log_error_takes_the_last_error_record() {
        let log = concat!(
            "{\"level\":\"warning\",\"msg\":\"w\"}\n",
            "{\"level\":\"error\",\"msg\":\"first\"}\n",
            "not json\n",
            "{\"msg\":\"cgroups in hybrid mode not supported\",\"level\":\"error\"}\n",
        );
        assert_eq!(
            last_log_error(log).as_deref(),
            Some("cgroups in hybrid mode not supported")
        );
        assert_eq!(last_log_error("{\"level\":\"info\",\"msg\":\"x\"}"), None);
    }
}
