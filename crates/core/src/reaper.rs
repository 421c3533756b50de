//! The process-wide child reaper.
//!
//! nexcage is a subreaper: container inits (grandchildren, re-parented when `runc create` exits)
//! and every tool it runs are its children, and exactly one place may `waitpid` them. This module
//! reaps every child on SIGCHLD and hands each status to whoever watches that pid. A status that
//! arrives before anyone watches (an init that exits before its pid file is read, gotcha G2) is
//! kept and claimed later; `since` guards against pid reuse.
//!
//! Never use `tokio::process` or `std::process::Child::wait` in a process that runs this reaper:
//! spawn with [`crate::cmd`] or std `Command` and watch the pid here.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, or 128 + signal number when killed by a signal.
    pub code: i32,
    /// When the reaper collected it.
    pub at: SystemTime,
}

/// Resolves when the watched process has been reaped.
pub type ExitReceiver = oneshot::Receiver<ExitStatus>;

const UNCLAIMED_TTL: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Inner {
    waiters: HashMap<i32, Vec<(Instant, oneshot::Sender<ExitStatus>)>>,
    unclaimed: HashMap<i32, (Instant, ExitStatus)>,
}

static INNER: OnceLock<Mutex<Inner>> = OnceLock::new();

fn inner() -> std::sync::MutexGuard<'static, Inner> {
    INNER
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Make this process a subreaper and start reaping on SIGCHLD, on a small thread of its own (so it
/// outlives any one tokio runtime). Idempotent; call it before spawning anything.
pub fn start() -> std::io::Result<()> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    let r = RESULT.get_or_init(|| {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes a plain integer argument and has no
        // memory effects on this process.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(format!(
                "set child subreaper: {}",
                std::io::Error::last_os_error()
            ));
        }
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("reaper".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
                };
                rt.block_on(async move {
                    let kind = tokio::signal::unix::SignalKind::child();
                    let mut sig = match tokio::signal::unix::signal(kind) {
                        Ok(s) => s,
                        Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
                    };
                    let _ = ready_tx.send(Ok(()));
                    loop {
                        reap_all();
                        if sig.recv().await.is_none() {
                            break;
                        }
                    }
                });
            });
        if let Err(e) = spawned {
            return Err(format!("spawn reaper thread: {e}"));
        }
        ready_rx
            .recv()
            .unwrap_or_else(|_| Err("reaper thread died".to_string()))
    });
    r.clone().map_err(std::io::Error::other)
}

/// Collect every exited child now and dispatch the statuses.
fn reap_all() {
    loop {
        let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        };
        dispatch(
            status.0,
            ExitStatus {
                code: status.1,
                at: SystemTime::now(),
            },
        );
    }
}

fn dispatch(pid: i32, status: ExitStatus) {
    let now = Instant::now();
    let mut g = inner();
    if let Some(waiters) = g.waiters.remove(&pid) {
        for (_, tx) in waiters {
            let _ = tx.send(status);
        }
        return;
    }
    g.unclaimed
        .retain(|_, (t, _)| now.duration_since(*t) < UNCLAIMED_TTL);
    g.unclaimed.insert(pid, (now, status));
}

/// Watch `pid`, a child (or re-parented descendant) whose existence began at or after `since`.
/// A status reaped before `since` belongs to an earlier process with the same pid and is ignored.
pub fn watch(pid: u32, since: Instant) -> ExitReceiver {
    let (tx, rx) = oneshot::channel();
    let pid = pid as i32;
    let mut g = inner();
    if let Some((t, st)) = g.unclaimed.get(&pid).copied() {
        if t >= since {
            g.unclaimed.remove(&pid);
            let _ = tx.send(st);
            return rx;
        }
    }
    g.waiters.entry(pid).or_default().push((since, tx));
    drop(g);
    // The child may have exited between the spawn and this registration without a SIGCHLD
    // that we have processed yet; reap now so it is not missed until the next signal.
    reap_all();
    rx
}

/// Stop watching `pid` (e.g. after a failed create); any later status goes to the unclaimed set.
pub fn forget(pid: u32) {
    inner().waiters.remove(&(pid as i32));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn status_of_a_fast_child_is_not_lost() {
        start().unwrap();
        let since = Instant::now();
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let pid = child.id();
        drop(child);
        // give the child time to exit and be reaped before anyone watches it
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st = watch(pid, since).await.unwrap();
        assert_eq!(st.code, 7);
    }

    #[tokio::test]
    async fn signal_death_is_128_plus_signal() {
        start().unwrap();
        let since = Instant::now();
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        drop(child);
        let rx = watch(pid, since);
        nix::sys::signal::kill(Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL).unwrap();
        assert_eq!(rx.await.unwrap().code, 137);
    }

    #[tokio::test]
    async fn stale_status_before_since_is_ignored() {
        start().unwrap();
        dispatch(
            999_999,
            ExitStatus {
                code: 1,
                at: SystemTime::now(),
            },
        );
        let later = Instant::now() + Duration::from_millis(1);
        let mut rx = watch(999_999, later);
        assert!(
            rx.try_recv().is_err(),
            "an old status must not satisfy a newer watcher"
        );
        forget(999_999);
    }
}
