//! Running external tools: argv only (never a shell), a timeout on every call, output captured,
//! the exit status taken from the [`reaper`](crate::reaper), and failures that keep stderr.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, ErrorKind, HasKind};
use crate::reaper;

/// A failed tool call.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// Program path.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The program exited non-zero.
    #[error("{argv} exited with status {status}: {}", tail(stderr, stdout))]
    Failed {
        /// The command line, for messages.
        argv: String,
        /// Exit code (128 + signal for a signal death).
        status: i32,
        /// Captured stdout.
        stdout: String,
        /// Captured stderr.
        stderr: String,
    },
    /// The program did not finish in time and was killed.
    #[error("{argv} did not finish within {after:?}")]
    Timeout {
        /// The command line.
        argv: String,
        /// The timeout that expired.
        after: Duration,
    },
}

fn tail<'a>(stderr: &'a str, stdout: &'a str) -> &'a str {
    let s = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    s.trim()
}

impl HasKind for CmdError {
    fn kind(&self) -> ErrorKind {
        match self {
            CmdError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::Unavailable
            }
            CmdError::Spawn { .. } | CmdError::Failed { .. } => ErrorKind::Internal,
            CmdError::Timeout { .. } => ErrorKind::DeadlineExceeded,
        }
    }
}

impl From<CmdError> for Error {
    fn from(e: CmdError) -> Self {
        Error::new(e.kind(), e.to_string())
    }
}

/// What a successful (or, with [`Cmd::status_ok`], any) call printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code.
    pub status: i32,
    /// stdout, lossily decoded.
    pub stdout: String,
    /// stderr, lossily decoded.
    pub stderr: String,
}

enum Sink {
    Capture,
    Fd(OwnedFd),
    Null,
}

/// A command to run.
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    timeout: Duration,
    input: Option<Vec<u8>>,
    stdin_fd: Option<OwnedFd>,
    stdout: Sink,
    stderr: Sink,
    cwd: Option<PathBuf>,
    envs: Vec<(OsString, OsString)>,
    any_status: bool,
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv())
    }
}

impl Cmd {
    /// A command for `program` with a 30 s default timeout.
    pub fn new(program: impl AsRef<Path>) -> Self {
        Cmd {
            program: program.as_ref().to_path_buf(),
            args: Vec::new(),
            timeout: Duration::from_secs(30),
            input: None,
            stdin_fd: None,
            stdout: Sink::Capture,
            stderr: Sink::Capture,
            cwd: None,
            envs: Vec::new(),
            any_status: false,
        }
    }

    /// Append one argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    /// Append arguments.
    pub fn args<I, S>(mut self, it: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(it.into_iter().map(|s| s.as_ref().to_os_string()));
        self
    }

    /// Set the timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Feed `bytes` on stdin.
    pub fn input(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.input = Some(bytes.into());
        self
    }

    /// Give the child these fds as stdin/stdout/stderr instead of pipes (`None`: /dev/null).
    pub fn stdio(
        mut self,
        stdin: Option<OwnedFd>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) -> Self {
        self.stdin_fd = stdin;
        self.stdout = stdout.map_or(Sink::Null, Sink::Fd);
        self.stderr = stderr.map_or(Sink::Null, Sink::Fd);
        self
    }

    /// Working directory of the child.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Set an environment variable for the child (on top of the inherited environment).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Return the output whatever the exit status (the caller classifies it).
    pub fn status_ok(mut self) -> Self {
        self.any_status = true;
        self
    }

    /// The command line, for messages and logs.
    pub fn argv(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Run to completion.
    pub async fn run(self) -> Result<Output, CmdError> {
        let argv = self.argv();
        let program = self.program.display().to_string();
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args);
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        cmd.stdin(match (self.stdin_fd, &self.input) {
            (Some(fd), _) => Stdio::from(fd),
            (None, Some(_)) => Stdio::piped(),
            (None, None) => Stdio::null(),
        });
        let sink = |s: Sink| match s {
            Sink::Capture => Stdio::piped(),
            Sink::Fd(fd) => Stdio::from(fd),
            Sink::Null => Stdio::null(),
        };
        cmd.stdout(sink(self.stdout));
        cmd.stderr(sink(self.stderr));
        reaper::start().map_err(|source| CmdError::Spawn {
            program: program.clone(),
            source,
        })?;
        let since = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|source| CmdError::Spawn { program, source })?;
        // std's Command keeps its copies of the stdio fds only until spawn returns; `cmd` drops here.
        drop(cmd);
        let pid = child.id();
        let guard = KillOnDrop(Some(pid));
        let exit = reaper::watch(pid, since);
        let stdin = child.stdin.take();
        let out = child.stdout.take();
        let err = child.stderr.take();
        // Dropping a std Child neither waits nor kills; the reaper owns the status.
        drop(child);
        let input = self.input;
        let work = async move {
            let feed = async {
                if let (Some(pipe), Some(bytes)) = (stdin, input) {
                    if let Ok(mut w) = tokio::net::unix::pipe::Sender::from_owned_fd(pipe.into()) {
                        let _ = w.write_all(&bytes).await;
                    }
                }
            };
            let (_, stdout, stderr) = tokio::join!(
                feed,
                read_pipe(out.map(Into::into)),
                read_pipe(err.map(Into::into))
            );
            let status = exit.await.map(|s| s.code).unwrap_or(-1);
            (status, stdout, stderr)
        };
        let (status, stdout, stderr) = match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => {
                return Err(CmdError::Timeout {
                    argv,
                    after: self.timeout,
                })
            }
        };
        std::mem::forget(guard);
        if status != 0 && !self.any_status {
            return Err(CmdError::Failed {
                argv,
                status,
                stdout,
                stderr,
            });
        }
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

async fn read_pipe(fd: Option<OwnedFd>) -> String {
    let Some(fd) = fd else { return String::new() };
    let Ok(mut r) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return String::new();
    };
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Kills the child if the call is abandoned (timeout or a dropped future).
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn captures_output_and_status() {
        let out = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.status, 0);
    }

    #[tokio::test]
    async fn failure_keeps_stderr_and_argv() {
        let e = Cmd::new("sh")
            .args(["-c", "echo boom >&2; exit 4"])
            .run()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        let m = e.to_string();
        assert!(
            m.contains("sh -c") && m.contains("status 4") && m.contains("boom"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn env_reaches_the_child() {
        let out = Cmd::new("sh")
            .args(["-c", "echo \"$NEXCAGE_CMD_TEST\""])
            .env("NEXCAGE_CMD_TEST", "set")
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout, "set\n");
    }

    #[tokio::test]
    async fn input_reaches_stdin() {
        let out = Cmd::new("cat").input("hello").run().await.unwrap();
        assert_eq!(out.stdout, "hello");
    }

    #[tokio::test]
    async fn timeout_kills_and_reports_deadline() {
        let e = Cmd::new("sleep")
            .arg("30")
            .timeout(Duration::from_millis(200))
            .run()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DeadlineExceeded);
    }

    #[tokio::test]
    async fn missing_binary_is_unavailable() {
        let e = Cmd::new("/nonexistent/tool").run().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("/nonexistent/tool"));
    }

    #[tokio::test]
    async fn status_ok_returns_nonzero() {
        let out = Cmd::new("sh")
            .args(["-c", "exit 3"])
            .status_ok()
            .run()
            .await
            .unwrap();
        assert_eq!(out.status, 3);
    }
}
