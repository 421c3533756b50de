//! Receiving a terminal's pty master over a console socket (runc/crun `--console-socket`).

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nexcage_core::{Error, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use tokio::net::UnixListener;

/// A private directory (mode 0700, under the system temp dir so socket paths stay far below
/// `SUN_LEN` whatever the bundle path or container id) holding one console socket; removed on drop.
#[derive(Debug)]
pub struct ConsoleDir(PathBuf);

impl Drop for ConsoleDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A bound console socket waiting for the runtime to send the pty master.
#[derive(Debug)]
pub struct ConsoleSocket {
    path: PathBuf,
    dir: ConsoleDir,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Bind a fresh socket `<tmp>/nexcage-pty-XXXXXX/pty.sock`.
    pub fn bind() -> Result<ConsoleSocket> {
        let template = std::env::temp_dir().join("nexcage-pty-XXXXXX");
        let dir = nix::unistd::mkdtemp(&template).map_err(|e| {
            Error::internal(format!("create console dir {}: {e}", template.display()))
        })?;
        let dir = ConsoleDir(dir);
        let path = dir.0.join("pty.sock");
        let listener = UnixListener::bind(&path)
            .map_err(|e| Error::io(format!("bind console socket {}", path.display()), e))?;
        Ok(ConsoleSocket {
            path,
            dir,
            listener,
        })
    }

    /// Where the runtime must connect.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accept the runtime's connection and take the master fd from it; the directory is kept
    /// until the caller drops it.
    pub async fn receive(self, timeout: Duration) -> Result<(OwnedFd, ConsoleDir)> {
        let ConsoleSocket {
            path,
            dir,
            listener,
        } = self;
        let fd = receive_on(&listener, &path, timeout).await?;
        Ok((fd, dir))
    }
}

async fn receive_on(listener: &UnixListener, path: &Path, timeout: Duration) -> Result<OwnedFd> {
    {
        let accept = tokio::time::timeout(timeout, listener.accept());
        let (stream, _) = accept
            .await
            .map_err(|_| {
                Error::deadline(format!(
                    "no pty master on {} within {timeout:?}",
                    path.display()
                ))
            })?
            .map_err(|e| Error::io("accept on console socket", e))?;
        let std = stream
            .into_std()
            .map_err(|e| Error::io("console stream", e))?;
        std.set_nonblocking(false)
            .map_err(|e| Error::io("console stream", e))?;
        tokio::task::spawn_blocking(move || recv_fd(std.as_raw_fd()))
            .await
            .map_err(|e| Error::internal(format!("console task: {e}")))?
    }
}

fn recv_fd(sock: i32) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| Error::internal(format!("receive pty master: {e}")))?;
    for c in msg
        .cmsgs()
        .map_err(|e| Error::internal(format!("console control message: {e}")))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                for &extra in &fds[1..] {
                    // SAFETY: the kernel just installed these fds for us; closing the extras is ours to do.
                    drop(unsafe { OwnedFd::from_raw_fd(extra) });
                }
                // SAFETY: fd was installed by SCM_RIGHTS in this process and is owned by nobody else.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(Error::internal(
        "console socket message carried no file descriptor",
    ))
}

/// Set the window size of a pty master.
pub fn resize(master: &OwnedFd, width: u32, height: u32) -> Result<()> {
    let ws = libc::winsize {
        ws_row: height.min(u16::MAX as u32) as u16,
        ws_col: width.min(u16::MAX as u32) as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the duration of the call.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc != 0 {
        return Err(Error::internal(format!(
            "resize pty: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
