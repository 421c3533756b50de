//! Running external commands with a hang guard: every call has a timeout after which the child
//! is killed with SIGKILL (`ctr run` forwards SIGTERM to the container, so SIGTERM would not stop
//! it). Output is collected by reader threads so a chatty child never blocks on a full pipe.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default hang guard for one command.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished (or killed) command left behind.
#[derive(Clone)]
pub struct Output {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    /// Signal that ended the child, if any.
    pub signal: Option<i32>,
    /// Everything written to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything written to stderr (lossy UTF-8).
    pub stderr: String,
    /// The hang guard fired and the child was killed.
    pub timed_out: bool,
}

impl Output {
    /// Exit code 0 and no timeout.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// stdout with surrounding whitespace (and a pty's `\r`) removed.
    pub fn out(&self) -> String {
        self.stdout.replace('\r', "").trim().to_string()
    }

    /// stdout and stderr together, for substring assertions on error messages.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` -> code {:?}, signal {:?}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.code,
            self.signal,
            if self.timed_out {
                " (TIMED OUT, killed)"
            } else {
                ""
            },
            self.stdout,
            self.stderr
        )
    }
}

/// Render a command line for messages.
pub fn cmdline(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(' ') {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Run `cmd` to completion with stdin = /dev/null, killing it after `timeout`.
pub fn run(cmd: Command, timeout: Duration) -> Output {
    spawn(cmd, false).wait(timeout)
}

/// Run `cmd` feeding `input` on stdin, killing it after `timeout`.
pub fn run_with_input(cmd: Command, input: &[u8], timeout: Duration) -> Output {
    let mut s = spawn(cmd, true);
    s.write_stdin(input);
    s.close_stdin();
    s.wait(timeout)
}

/// A running child whose output is being collected.
#[derive(Debug)]
pub struct Spawned {
    cmdline: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
}

fn reader<R: Read + Send + 'static>(r: Option<R>) -> Option<JoinHandle<Vec<u8>>> {
    r.map(|mut r| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    })
}

/// Start `cmd` with piped stdout/stderr; stdin is a pipe when `stdin` is true, else /dev/null.
pub fn spawn(mut cmd: Command, stdin: bool) -> Spawned {
    let line = cmdline(&cmd);
    cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    Spawned {
        cmdline: line,
        stdin: child.stdin.take(),
        out: reader(child.stdout.take()),
        err: reader(child.stderr.take()),
        child: Some(child),
    }
}

impl Spawned {
    /// Write to the child's stdin (panics when stdin is not a pipe).
    pub fn write_stdin(&mut self, data: &[u8]) {
        let line = &self.cmdline;
        let w = self.stdin.as_mut().expect("stdin is not a pipe");
        w.write_all(data)
            .unwrap_or_else(|e| panic!("write stdin of `{line}`: {e}"));
        let _ = w.flush();
    }

    /// Close the child's stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Wait for the child, killing it with SIGKILL after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Output {
        self.stdin = None;
        let mut child = self.child.take().expect("waited twice");
        let deadline = Instant::now() + timeout;
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() >= deadline => {
                    timed_out = true;
                    let _ = child.kill();
                    break child.wait().ok();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("wait for `{}`: {e}", self.cmdline),
            }
        };
        let join = |h: Option<JoinHandle<Vec<u8>>>| {
            h.and_then(|h| h.join().ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        Output {
            cmdline: self.cmdline.clone(),
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            stdout: join(self.out.take()),
            stderr: join(self.err.take()),
            timed_out,
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Poll `f` every 100 ms until it returns `Some`, or give up after `timeout` (a hang guard,
/// not a performance assertion).
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
