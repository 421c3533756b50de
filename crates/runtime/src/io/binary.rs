//! `binary://` log targets: a logging program reads the container's stdout on fd 3 and stderr on
//! fd 4, and closes fd 5 once it is ready (the contract of containerd's Go shim).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nexcage_core::{reaper, Error, Result};

/// The write ends the container gets, after the logger signalled readiness.
#[derive(Debug)]
pub struct BinaryLogger {
    /// Container stdout.
    pub stdout: OwnedFd,
    /// Container stderr.
    pub stderr: OwnedFd,
    /// Logger pid.
    pub pid: u32,
}

/// Start `path args…` for container `id` in `namespace`.
pub async fn start(
    path: &Path,
    args: &[String],
    id: &str,
    namespace: &str,
) -> Result<BinaryLogger> {
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::internal(format!("pipe for {}: {e}", path.display())))
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    let mut cmd = Command::new(path);
    cmd.args(args)
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure only calls dup2, which is async-signal-safe, on fds that stay open in
    // the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in fds.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    reaper::start().map_err(|e| Error::internal(format!("reaper: {e}")))?;
    let since = std::time::Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("start logging binary {}", path.display()), e))?;
    let pid = child.id();
    drop(child);
    // The logger's exit is reaped by the reaper; nobody needs its status.
    drop(reaper::watch(pid, since));
    drop((out_r, err_r, ready_w));
    let ready = tokio::task::spawn_blocking(move || {
        let mut b = [0u8; 1];
        let _ = nix::unistd::read(&ready_r, &mut b);
    });
    tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .map_err(|_| {
            Error::deadline(format!(
                "logging binary {} did not get ready within 10s",
                path.display()
            ))
        })?
        .map_err(|e| Error::internal(format!("logger wait: {e}")))?;
    Ok(BinaryLogger {
        stdout: out_w,
        stderr: err_w,
        pid,
    })
}
