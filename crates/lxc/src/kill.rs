//! Kill: kill(2) on host pids, never through lxc-attach.
//!
//! Under lxc-execute the container's init is LXC's own small init, whose only child is the
//! application. A signal for the container goes to the application: SIGTERM/SIGKILL sent to the
//! init are either forwarded or, for SIGKILL, lost (the init dies and lxc-execute exits 1 instead
//! of 137). When the application is not there (yet), or with `all`, the init is signalled too, and
//! the exit status is then corrected to 128+signal ([`map_exit`]).

use std::sync::{Arc, Mutex};

use nexcage_core::reaper::ExitReceiver;
use nexcage_core::{Error, HasKind, Result};
use tokio::sync::oneshot;

use crate::procfs::{self, terminates_by_default};
use crate::LxcBackend;

/// A signal the shim delivered to the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Signal number.
    pub signal: i32,
    /// Whether the container's init (not only the application) received it.
    pub to_init: bool,
}

/// lxc-execute's exit status, corrected: lxc-execute exits 1 when its init dies of a signal (the
/// application's status is lost), so when the shim had delivered a terminating signal to the init,
/// that signal is what ended the container.
pub fn map_exit(code: i32, delivered: Option<Delivered>) -> i32 {
    match delivered {
        Some(d) if code == 1 && d.to_init && terminates_by_default(d.signal) => 128 + d.signal,
        _ => code,
    }
}

/// The exit of lxc-execute, with [`map_exit`] applied.
pub fn wrap_exit(rx: ExitReceiver, delivered: Arc<Mutex<Option<Delivered>>>) -> ExitReceiver {
    let (tx, out) = oneshot::channel();
    tokio::spawn(async move {
        if let Ok(mut st) = rx.await {
            let d = *delivered.lock().unwrap_or_else(|p| p.into_inner());
            st.code = map_exit(st.code, d);
            let _ = tx.send(st);
        }
    });
    out
}

/// Signal the container's application (with `all`: every process in its cgroup).
pub async fn kill(b: &LxcBackend, id: &str, signal: u32, all: bool) -> Result<()> {
    let c = b.container(id)?;
    let r = c.record();
    let signal = i32::try_from(signal)
        .map_err(|_| Error::invalid(format!("signal {signal} is out of range")))?;
    let init = r
        .init
        .ok_or_else(|| Error::not_found(format!("container {id:?} has no init")))?;
    if !r.started {
        // The init is held by the start hook and has not run the program: a signal whose default
        // action ends a process ends the container (the hook fails and LXC aborts the start).
        if signal == 0 || !terminates_by_default(signal) {
            return init.signal(0);
        }
        if !r.monitor.alive() {
            return Err(Error::not_found(format!("container {id:?} has exited")));
        }
        c.deliver(Delivered {
            signal,
            to_init: true,
        });
        let _ =
            crate::create::write_gate(&c.paths, &r.monitor, b"abort\n", b.cli().timeout).await?;
        return Ok(());
    }
    if all {
        let pids = crate::cgroups::procs(&r.cgroups.container)?;
        if pids.is_empty() {
            return Err(Error::not_found(format!(
                "container {id:?} has no processes"
            )));
        }
        if terminates_by_default(signal) {
            c.deliver(Delivered {
                signal,
                to_init: true,
            });
        }
        for p in pids {
            let _ = procfs::kill(p, signal);
        }
        return Ok(());
    }
    if !init.alive() {
        return Err(Error::not_found(format!("container {id:?} has exited")));
    }
    if let Some(app) = procfs::children(init.pid).first().copied() {
        if terminates_by_default(signal) {
            c.deliver(Delivered {
                signal,
                to_init: false,
            });
        }
        match procfs::kill(app, signal) {
            Err(e) if e.kind() == nexcage_core::ErrorKind::NotFound => {} // exited meanwhile
            r => return r,
        }
    }
    if terminates_by_default(signal) {
        c.deliver(Delivered {
            signal,
            to_init: true,
        });
    }
    init.signal(signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_correction() {
        let kill_init = Some(Delivered {
            signal: 9,
            to_init: true,
        });
        let term_app = Some(Delivered {
            signal: 15,
            to_init: false,
        });
        assert_eq!(
            map_exit(1, kill_init),
            137,
            "SIGKILL to the init is reported as such"
        );
        assert_eq!(map_exit(137, kill_init), 137);
        assert_eq!(
            map_exit(0, kill_init),
            0,
            "an init that finished first keeps its status"
        );
        assert_eq!(
            map_exit(1, term_app),
            1,
            "the application handled SIGTERM and chose 1"
        );
        assert_eq!(map_exit(143, term_app), 143);
        assert_eq!(map_exit(42, None), 42);
        assert_eq!(
            map_exit(
                1,
                Some(Delivered {
                    signal: 28,
                    to_init: true
                })
            ),
            1,
            "SIGWINCH kills nothing"
        );
    }
}
