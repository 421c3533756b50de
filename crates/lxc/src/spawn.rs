//! Spawning the long-running tools (`lxc-execute`, `lxc-attach`) as the shim's children with a
//! process's stdio and the per-process settings LXC inherits from its caller (session, umask,
//! rlimits, no_new_privs, oom score), and terminals: a pty whose master goes to the runtime over
//! the console socket with SCM_RIGHTS, as runc does.

use std::ffi::CString;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use nexcage_core::{reaper, Error, Result};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

/// How to start a tool.
#[derive(Debug, Default)]
pub struct Launch {
    /// stdin, stdout, stderr (None: /dev/null).
    pub stdio: [Option<OwnedFd>; 3],
    /// Start a new session (no controlling terminal, so the container's init can take the pty).
    pub setsid: bool,
    /// Also make stdin the controlling terminal (lxc-attach proxies a terminal only then).
    pub ctty: bool,
    /// umask to set.
    pub umask: Option<u32>,
    /// (resource, soft, hard) limits to set.
    pub rlimits: Vec<(i32, u64, u64)>,
    /// Set PR_SET_NO_NEW_PRIVS.
    pub no_new_privs: bool,
    /// Value for /proc/self/oom_score_adj.
    pub oom_score_adj: Option<i32>,
    /// Ignore SIGPIPE (lxc-execute: a container whose stdout reader went away must not lose its
    /// monitor; LXC's init restores the default disposition for the application).
    pub ignore_sigpipe: bool,
}

/// Spawn `cmd` with `launch`; returns its pid and the instant before the spawn (for the reaper).
pub fn spawn(mut cmd: Command, launch: Launch) -> Result<(u32, Instant)> {
    reaper::start().map_err(|e| Error::internal(format!("start the child reaper: {e}")))?;
    let [i, o, e] = launch.stdio;
    let io = |fd: Option<OwnedFd>| fd.map_or_else(Stdio::null, Stdio::from);
    cmd.stdin(io(i)).stdout(io(o)).stderr(io(e));
    let oom = launch
        .oom_score_adj
        .map(|v| CString::new(v.to_string()).unwrap_or_default());
    let (setsid, ctty, umask, nnp) = (
        launch.setsid,
        launch.ctty,
        launch.umask,
        launch.no_new_privs,
    );
    let ignore_sigpipe = launch.ignore_sigpipe;
    let rlimits = launch.rlimits;
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (close_range, signal, setsid, ioctl, umask, setrlimit, prctl, open, write, close) on
    // data prepared before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // Only 0, 1 and 2 reach the tool (LXC passes inherited descriptors on to the
            // container); ENOSYS on kernels before 5.11 leaves Rust's close-on-exec defaults.
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if ignore_sigpipe {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            }
            if setsid && libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if ctty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(m) = umask {
                libc::umask(m as libc::mode_t);
            }
            for &(res, soft, hard) in &rlimits {
                let lim = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(res as libc::__rlimit_resource_t, &lim) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(v) = &oom {
                let fd = libc::open(
                    c"/proc/self/oom_score_adj".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                );
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, v.as_ptr().cast(), v.as_bytes().len());
                libc::close(fd);
                if n < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if nnp && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let since = Instant::now();
    let program = cmd.get_program().to_string_lossy().into_owned();
    let child = cmd.spawn().map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            nexcage_core::ErrorKind::Unavailable
        } else {
            nexcage_core::ErrorKind::Internal
        };
        Error::new(kind, format!("cannot run {program}: {e}"))
    })?;
    // Dropping a std Child neither waits nor kills: the reaper owns the status.
    Ok((child.id(), since))
}

/// A pseudo-terminal pair, both ends close-on-exec (the slave reaches the child as 0/1/2).
#[derive(Debug)]
pub struct Pty {
    /// Master (sent to the runtime).
    pub master: OwnedFd,
    /// Slave (the process's stdio).
    pub slave: OwnedFd,
}

/// Open a pty of `rows`×`cols` (0×0 when unknown).
pub fn open_pty(rows: u16, cols: u16) -> Result<Pty> {
    let ws = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let p =
        nix::pty::openpty(Some(&ws), None).map_err(|e| Error::internal(format!("openpty: {e}")))?;
    for fd in [&p.master, &p.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(|e| Error::internal(format!("set close-on-exec on the pty: {e}")))?;
    }
    Ok(Pty {
        master: p.master,
        slave: p.slave,
    })
}

/// Send `master` to the runtime's console socket (SCM_RIGHTS, like runc's `--console-socket`).
pub fn send_master(socket: &Path, master: &OwnedFd) -> Result<()> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| Error::io(format!("connect to console socket {}", socket.display()), e))?;
    let fds = [master.as_raw_fd()];
    let iov = [IoSlice::new(b"/dev/ptmx")];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| Error::internal(format!("send the pty master to {}: {e}", socket.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_arrives_over_the_console_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pty.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let pty = open_pty(24, 80).unwrap();
        send_master(&path, &pty.master).unwrap();
        let (s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            s.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        let got = msg.cmsgs().unwrap().any(
            |c| matches!(c, nix::sys::socket::ControlMessageOwned::ScmRights(f) if f.len() == 1),
        );
        assert!(got, "no fd received");
    }
}
