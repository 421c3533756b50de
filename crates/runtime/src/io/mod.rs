//! Wiring a process's stdio: what the backend hands the new process ([`ChildIo`]) and what the
//! shim keeps to serve CloseIO and ResizePty ([`IoHandle`]).
//!
//! - stdout/stderr: the FIFO (or `file://` file, or `binary://` logger pipe) is given to the
//!   process directly; the shim keeps no copy, so nothing is copied and nothing leaks.
//! - stdin: copied from the FIFO into a pipe, so that CloseIO can close it while containerd
//!   (CRI) still holds its writer open.
//! - terminal: the runtime sends the pty master over a console socket; the shim copies
//!   stdin FIFO → master and master → stdout FIFO, and resizes the master.

pub mod binary;
pub mod console;
pub mod fifo;
pub mod uri;

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use nexcage_core::types::ChildIo;
use nexcage_core::{Error, Result};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use self::uri::Target;

/// The stdio strings of a Create or Exec request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioSpec {
    /// stdin FIFO path or empty.
    pub stdin: String,
    /// stdout target.
    pub stdout: String,
    /// stderr target.
    pub stderr: String,
    /// Allocate a terminal.
    pub terminal: bool,
}

/// I/O prepared before the process exists.
#[derive(Debug)]
pub struct PreparedIo {
    child: Option<ChildIo>,
    console: Option<console::ConsoleSocket>,
    stdin: Option<StdinCopy>,
    spec: StdioSpec,
}

#[derive(Debug)]
struct StdinCopy {
    fifo: Arc<fifo::StdinFifo>,
    writer: Option<OwnedFd>,
}

/// What stays with the process: terminal master, stdin closer, copy tasks.
#[derive(Debug, Default)]
pub struct IoHandle {
    master: Option<Arc<OwnedFd>>,
    stdin_close: Option<Arc<Notify>>,
    stdin_fifo: Option<Arc<fifo::StdinFifo>>,
    console_dir: Option<console::ConsoleDir>,
    tasks: Vec<JoinHandle<()>>,
    output: Option<JoinHandle<()>>,
    closed: bool,
}

impl StdioSpec {
    /// Prepare the I/O (a console socket in a private temp dir when a terminal is requested).
    pub async fn prepare(&self, id: &str, namespace: &str) -> Result<PreparedIo> {
        let stdin = uri::parse("stdin", &self.stdin)?;
        let stdout = uri::parse("stdout", &self.stdout)?;
        let stderr = uri::parse("stderr", &self.stderr)?;
        let mut child = ChildIo::default();
        let mut prepared = PreparedIo {
            child: None,
            console: None,
            stdin: None,
            spec: self.clone(),
        };
        if self.terminal {
            let sock = console::ConsoleSocket::bind()?;
            child.console_socket = Some(sock.path().to_path_buf());
            prepared.console = Some(sock);
            prepared.child = Some(child);
            return Ok(prepared);
        }
        match stdin {
            Target::Null => {}
            Target::Fifo(p) => {
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                    .map_err(|e| Error::internal(format!("stdin pipe: {e}")))?;
                child.stdin = Some(r);
                prepared.stdin = Some(StdinCopy {
                    fifo: Arc::new(fifo::StdinFifo::new(p)?),
                    writer: Some(w),
                });
            }
            other => {
                return Err(Error::invalid(format!(
                    "stdin {:?}: only a FIFO path can be stdin",
                    other
                )))
            }
        }
        if let (Target::Binary { path, args }, _) | (_, Target::Binary { path, args }) =
            (&stdout, &stderr)
        {
            let logger = binary::start(path, args, id, namespace).await?;
            child.stdout = Some(logger.stdout);
            child.stderr = Some(logger.stderr);
        } else {
            child.stdout = open_output(&stdout).await?;
            child.stderr = open_output(&stderr).await?;
        }
        prepared.child = Some(child);
        Ok(prepared)
    }
}

async fn open_output(t: &Target) -> Result<Option<OwnedFd>> {
    Ok(match t {
        Target::Null => None,
        Target::Fifo(p) => Some(fifo::open_writer(p).await?.into()),
        Target::File(p) => Some(fifo::open_log_file(p)?.into()),
        Target::Binary { .. } => None,
    })
}

impl PreparedIo {
    /// The fds and console socket for the backend (taken once).
    pub fn take_child(&mut self) -> ChildIo {
        self.child.take().unwrap_or_default()
    }

    /// After the process exists: receive the terminal and start the copies.
    pub async fn attach(mut self) -> Result<IoHandle> {
        let mut h = IoHandle::default();
        if let Some(sock) = self.console.take() {
            let (master, dir) = sock.receive(Duration::from_secs(10)).await?;
            let master = Arc::new(master);
            h.console_dir = Some(dir);
            if !self.spec.stdout.is_empty() {
                let out = uri::parse("stdout", &self.spec.stdout)?;
                let dst = open_output(&out).await?;
                let m = dup(&master)?;
                h.output = Some(tokio::spawn(async move {
                    if let Some(dst) = dst {
                        copy_fd(m, dst).await;
                    }
                }));
            }
            if let Target::Fifo(p) = uri::parse("stdin", &self.spec.stdin)? {
                let close = Arc::new(Notify::new());
                let dst = dup(&master)?;
                let fifo = Arc::new(fifo::StdinFifo::new(p)?);
                h.tasks
                    .push(tokio::spawn(copy_stdin(fifo.clone(), dst, close.clone())));
                h.stdin_close = Some(close);
                h.stdin_fifo = Some(fifo);
            }
            h.master = Some(master);
        }
        if let Some(mut s) = self.stdin.take() {
            let close = Arc::new(Notify::new());
            if let Some(w) = s.writer.take() {
                h.tasks
                    .push(tokio::spawn(copy_stdin(s.fifo.clone(), w, close.clone())));
            }
            h.stdin_close = Some(close);
            h.stdin_fifo = Some(s.fifo);
        }
        Ok(h)
    }
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd> {
    fd.try_clone().map_err(|e| Error::io("dup pty master", e))
}

/// Copy containerd's stdin FIFO into `dst` until EOF or until `close` is notified.
async fn copy_stdin(fifo: Arc<fifo::StdinFifo>, dst: OwnedFd, close: Arc<Notify>) {
    let closed = close.notified();
    tokio::pin!(closed);
    let copy = async {
        let src = fifo.open_reader().await.ok()?;
        let mut src = tokio::net::unix::pipe::Receiver::from_file_unchecked(src).ok()?;
        let mut dst = tokio::net::unix::pipe::Sender::from_owned_fd_unchecked(dst).ok()?;
        let _ = tokio::io::copy(&mut src, &mut dst).await;
        let _ = dst.flush().await;
        Some(())
    };
    tokio::select! {
        _ = copy => {}
        _ = &mut closed => fifo.release(),
    }
}

/// Copy a pty master into an output fd until the terminal hangs up (EIO once the process exits).
async fn copy_fd(src: OwnedFd, dst: OwnedFd) {
    let r = async {
        let mut src = tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(src).ok()?;
        let mut dst = tokio::net::unix::pipe::Sender::from_owned_fd_unchecked(dst).ok()?;
        let _ = tokio::io::copy(&mut src, &mut dst).await;
        Some(())
    };
    r.await;
}

impl IoHandle {
    /// Close the process's stdin (CloseIO).
    pub fn close_stdin(&self) {
        if let Some(c) = &self.stdin_close {
            c.notify_one();
        }
    }

    /// Whether the process has a terminal.
    pub fn has_terminal(&self) -> bool {
        self.master.is_some()
    }

    /// Resize the terminal; FailedPrecondition without one.
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        match &self.master {
            Some(m) => console::resize(m, width, height),
            None => Err(Error::precondition("the process has no terminal to resize")),
        }
    }

    /// After the process exited: let terminal output drain (bounded), then stop every copy.
    pub async fn finish(&mut self) {
        if let Some(out) = self.output.take() {
            let abort = out.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), out)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        self.shutdown();
    }

    /// Stop every copy now.
    pub fn shutdown(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.close_stdin();
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(o) = self.output.take() {
            o.abort();
        }
        if let Some(f) = &self.stdin_fifo {
            f.release();
        }
        self.master = None;
        self.console_dir = None;
    }
}

impl Drop for IoHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
