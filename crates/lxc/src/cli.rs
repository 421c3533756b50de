//! Typed wrappers of the `lxc-*` tools: argv only, a timeout on every run-to-completion call,
//! stderr kept in errors and classified in one place ([`classify`]).
//!
//! `lxc-execute` and `lxc-attach` are long-running children of the shim, so they are returned as
//! `std::process::Command`s for the caller to spawn (and watch through the reaper). There is
//! deliberately no `lxc-destroy` wrapper: for a `dir:` rootfs it deletes the rootfs, which here is
//! the bundle's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nexcage_core::cmd::{Cmd, CmdError};
use nexcage_core::{Error, ErrorKind, HasKind, Result};

/// The LXC tools and the private lxcpath they work on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LxcCli {
    /// Directory holding `lxc-execute`, `lxc-info`, … (from the configured binary's directory).
    pub bin_dir: PathBuf,
    /// `-P`: nexcage's lxcpath for one containerd namespace.
    pub lxcpath: PathBuf,
    /// Timeout of one run-to-completion call.
    pub timeout: Duration,
}

/// Options of an `lxc-attach` (an exec).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachOpts {
    /// `NAME=value` pairs, the whole environment (`--clear-env` is always given).
    pub env: Vec<String>,
    /// `-u`.
    pub uid: u32,
    /// `-g`.
    pub gid: u32,
    /// `-c`: SELinux context.
    pub selinux: Option<String>,
    /// The command.
    pub args: Vec<String>,
}

/// Classify an lxc tool's error text. The only place that matches LXC's messages.
pub fn classify(stderr: &str) -> ErrorKind {
    let m = stderr.to_ascii_lowercase();
    if m.contains("doesn't exist") || m.contains("is not running") || m.contains("not running") {
        ErrorKind::NotFound
    } else if m.contains("invalid argument") || m.contains("failed to parse config") {
        ErrorKind::InvalidArgument
    } else {
        ErrorKind::Internal
    }
}

fn tool_error(op: &str, id: &str, e: CmdError) -> Error {
    match &e {
        CmdError::Failed { stderr, stdout, .. } => {
            let text = if stderr.trim().is_empty() {
                stdout
            } else {
                stderr
            };
            Error::new(classify(text), format!("{op} {id}: {}", text.trim()))
        }
        _ => Error::new(e.kind(), format!("{op} {id}: {e}")),
    }
}

/// `5.0.2\n` → `5.0.2`.
pub fn parse_version(stdout: &str) -> Option<String> {
    let v = stdout.lines().next()?.trim();
    let ok = !v.is_empty()
        && v.split('.')
            .all(|p| !p.is_empty() && p.chars().next().is_some_and(|c| c.is_ascii_digit()));
    ok.then(|| v.to_string())
}

/// `lxc-info -s -H` output (`RUNNING`, `FROZEN`, `STOPPED`…), also accepting `State: RUNNING`.
pub fn parse_state(stdout: &str) -> Option<String> {
    let line = stdout.lines().find(|l| !l.trim().is_empty())?;
    let v = line.split_once(':').map_or(line, |(_, v)| v).trim();
    (!v.is_empty() && v.chars().all(|c| c.is_ascii_uppercase())).then(|| v.to_string())
}

impl LxcCli {
    /// Path of tool `name`.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    fn cmd(&self, tool: &str, id: &str) -> Cmd {
        Cmd::new(self.tool(tool))
            .timeout(self.timeout)
            .arg("-n")
            .arg(id)
            .arg("-P")
            .arg(&self.lxcpath)
    }

    /// `lxc-execute --version`.
    pub async fn version(&self) -> Result<String> {
        let out = Cmd::new(self.tool("lxc-execute"))
            .arg("--version")
            .timeout(self.timeout)
            .run()
            .await
            .map_err(|e| tool_error("lxc-execute --version", "", e))?;
        parse_version(&out.stdout).ok_or_else(|| {
            Error::internal(format!("lxc-execute --version printed {:?}", out.stdout))
        })
    }

    /// `lxc-info -s -H`: the state, None when LXC does not know the container.
    pub async fn state(&self, id: &str) -> Result<Option<String>> {
        match self.cmd("lxc-info", id).args(["-s", "-H"]).run().await {
            Ok(out) => parse_state(&out.stdout)
                .map(Some)
                .ok_or_else(|| Error::internal(format!("lxc-info {id} printed {:?}", out.stdout))),
            Err(e) => match tool_error("lxc-info", id, e) {
                e if e.kind() == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    /// `lxc-freeze`.
    pub async fn freeze(&self, id: &str) -> Result<()> {
        self.cmd("lxc-freeze", id)
            .run()
            .await
            .map(drop)
            .map_err(|e| tool_error("lxc-freeze", id, e))
    }

    /// `lxc-unfreeze`.
    pub async fn unfreeze(&self, id: &str) -> Result<()> {
        self.cmd("lxc-unfreeze", id)
            .run()
            .await
            .map(drop)
            .map_err(|e| tool_error("lxc-unfreeze", id, e))
    }

    /// `lxc-execute -q -n ID -P LXCPATH -f CONFIG -- args…`, to be spawned by the caller. `-q`
    /// and no `-o`: LXC logs to the config's `lxc.log.file` only, never on the container's stderr.
    pub fn execute(&self, id: &str, config: &Path, args: &[String]) -> std::process::Command {
        let mut c = std::process::Command::new(self.tool("lxc-execute"));
        c.arg("-q")
            .arg("-n")
            .arg(id)
            .arg("-P")
            .arg(&self.lxcpath)
            .arg("-f")
            .arg(config)
            .arg("--")
            .args(args);
        c
    }

    /// `lxc-attach -n ID -P LXCPATH -o LOG --clear-env -v K=V… -u UID -g GID [-c CTX] -- args…`.
    pub fn attach(&self, id: &str, log: &Path, o: &AttachOpts) -> std::process::Command {
        let mut c = std::process::Command::new(self.tool("lxc-attach"));
        c.args(self.common(id, log)).arg("--clear-env");
        for e in &o.env {
            c.arg("-v").arg(e);
        }
        c.arg("-u")
            .arg(o.uid.to_string())
            .arg("-g")
            .arg(o.gid.to_string());
        if let Some(ctx) = &o.selinux {
            c.arg("-c").arg(ctx);
        }
        c.arg("--").args(&o.args);
        c
    }

    fn common(&self, id: &str, log: &Path) -> Vec<OsString> {
        vec![
            "-n".into(),
            id.into(),
            "-P".into(),
            self.lxcpath.clone().into(),
            "-o".into(),
            log.into(),
            "-l".into(),
            "WARN".into(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> LxcCli {
        LxcCli {
            bin_dir: "/usr/bin".into(),
            lxcpath: "/run/nexcage/lxc/ns".into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_version("5.0.2\n").as_deref(), Some("5.0.2"));
        assert_eq!(parse_version("lxc 5\n"), None);
        assert_eq!(parse_state("RUNNING\n").as_deref(), Some("RUNNING"));
        assert_eq!(
            parse_state("State:          FROZEN\n").as_deref(),
            Some("FROZEN")
        );
        assert_eq!(parse_state(""), None);
    }

    #[test]
    fn classification() {
        assert_eq!(classify("c1 doesn't exist"), ErrorKind::NotFound);
        assert_eq!(
            classify("lxc-stop: c1: main: 168 c1 is not running"),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify("Failed to parse config file"),
            ErrorKind::InvalidArgument
        );
        assert_eq!(classify("Failed to freeze /x:c1"), ErrorKind::Internal);
    }

    #[test]
    fn argv_of_execute_and_attach() {
        let c = cli().execute(
            "c1",
            Path::new("/p/c1/config"),
            &["/bin/sh".into(), "-c".into(), "exit 3".into()],
        );
        let argv: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(c.get_program(), "/usr/bin/lxc-execute");
        assert_eq!(
            argv,
            [
                "-q",
                "-n",
                "c1",
                "-P",
                "/run/nexcage/lxc/ns",
                "-f",
                "/p/c1/config",
                "--",
                "/bin/sh",
                "-c",
                "exit 3"
            ]
        );
        let o = AttachOpts {
            env: vec!["A=1 2".into()],
            uid: 5,
            gid: 6,
            selinux: None,
            args: vec!["id".into()],
        };
        let c = cli().attach("c1", Path::new("/l"), &o);
        let argv: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            argv,
            [
                "-n",
                "c1",
                "-P",
                "/run/nexcage/lxc/ns",
                "-o",
                "/l",
                "-l",
                "WARN",
                "--clear-env",
                "-v",
                "A=1 2",
                "-u",
                "5",
                "-g",
                "6",
                "--",
                "id"
            ]
        );
    }
}
