//! OOM-kill notifications of a cgroup.
//!
//! * v1: an eventfd registered for `memory.oom_control` through `cgroup.event_control`. The kernel
//!   signals it when the OOM killer is invoked for the cgroup *or an ancestor* (just before it
//!   picks a victim) and once more when the cgroup is removed. Each wake-up is therefore checked
//!   against the `oom_kill` counter of `memory.oom_control` (giving it up to ~1 s to move); only
//!   kernels without that counter (before 4.13) fall back to one event per notification.
//! * v2: inotify on `memory.events` (the kernel raises IN_MODIFY when a counter changes), emitting
//!   when `oom_kill` grows, plus a watch on the parent directory: kernfs sends nothing to watches
//!   of a removed cgroup's own files, but the parent sees IN_DELETE.
//!
//! [`OomWatcher::next`] is cancel-safe: dropping it mid-way loses no kill.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{parse_keyed, read_opt, Cgroup};
use crate::error::{Error, Result};
use crate::stats::CgroupVersion;

/// Fires once per OOM kill in the cgroup; ends (None) when the cgroup is removed.
#[derive(Debug)]
pub struct OomWatcher {
    source: Source,
    /// Kills seen but not yet handed out.
    pending: u64,
    done: bool,
}

#[derive(Debug)]
enum Source {
    V1(V1Watch),
    V2(CounterWatch),
}

impl OomWatcher {
    /// Start watching `cg` for OOM kills. Must be called within a tokio runtime with I/O enabled.
    pub fn new(cg: &Cgroup) -> Result<OomWatcher> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::precondition(
                "OomWatcher::new must be called within a tokio runtime",
            ));
        }
        let source = match cg.version() {
            CgroupVersion::V1 => {
                let dir = cg.controller_dir("memory").ok_or_else(|| {
                    Error::precondition("cgroup has no v1 memory controller to watch for OOM")
                })?;
                Source::V1(V1Watch::new(dir)?)
            }
            CgroupVersion::V2 => {
                let dir = cg.controller_dir("memory").ok_or_else(|| {
                    Error::precondition("cgroup has no cgroup2 directory to watch for OOM")
                })?;
                Source::V2(CounterWatch::new(dir, "memory.events", "oom_kill")?)
            }
        };
        Ok(OomWatcher {
            source,
            pending: 0,
            done: false,
        })
    }

    /// Resolves Some(()) on each OOM kill, None when the cgroup is gone.
    pub async fn next(&mut self) -> Option<()> {
        loop {
            if self.pending > 0 {
                self.pending -= 1;
                return Some(());
            }
            if self.done {
                return None;
            }
            let step = match &mut self.source {
                Source::V1(w) => w.step().await,
                Source::V2(w) => w.step().await,
            };
            match step {
                Ok(Step::Kills(n)) => self.pending += n,
                Ok(Step::Gone(n)) => {
                    self.pending += n;
                    self.done = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e.chain(), "OOM watcher failed; no more OOM events");
                    self.done = true;
                }
            }
        }
    }
}

/// What one wake-up of a source found.
enum Step {
    /// This many new kills (may be 0).
    Kills(u64),
    /// The cgroup is gone, after this many last kills.
    Gone(u64),
}

/// The `key` counter of a flat keyed file; None when the file is gone.
fn read_counter(dir: &Path, file: &str, key: &str) -> Result<Option<u64>> {
    let path = dir.join(file);
    let Some(text) = read_opt(dir, file)? else {
        return Ok(None);
    };
    let map = parse_keyed(&text).map_err(|e| e.context(format!("parse {}", path.display())))?;
    Ok(Some(map.get(key).copied().unwrap_or(0)))
}

#[derive(Debug)]
struct V1Watch {
    efd: AsyncFd<EventFd>,
    dir: PathBuf,
    /// Last `oom_kill` of `memory.oom_control`; None on kernels without the counter.
    kills: Option<u64>,
    /// A wake-up was consumed and the counter not yet seen to move.
    settling: bool,
}

impl V1Watch {
    fn new(dir: &Path) -> Result<V1Watch> {
        let ctl_path = dir.join("memory.oom_control");
        let ctl = std::fs::File::open(&ctl_path)
            .map_err(|e| Error::io(format!("open {}", ctl_path.display()), e))?;
        let text = std::io::read_to_string(&ctl)
            .map_err(|e| Error::io(format!("read {}", ctl_path.display()), e))?;
        let kills = parse_keyed(&text)
            .map_err(|e| e.context(format!("parse {}", ctl_path.display())))?
            .get("oom_kill")
            .copied();
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| Error::io("create eventfd", e.into()))?;
        let reg = dir.join("cgroup.event_control");
        std::fs::write(&reg, format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd()))
            .map_err(|e| Error::io(format!("register OOM eventfd in {}", reg.display()), e))?;
        // SAFETY: the EventFd owns its descriptor, which stays open until the AsyncFd (and with
        // it the EventFd) is dropped; `as_raw_fd` always returns that same descriptor, and the
        // EventFd is never replaced (only `get_ref` is used).
        let efd = unsafe { AsyncFd::register_with_interest(efd, Interest::READABLE) }
            .map_err(|e| Error::io("register eventfd with tokio", e.into()))?;
        Ok(V1Watch {
            efd,
            dir: dir.to_path_buf(),
            kills,
            settling: false,
        })
    }

    async fn step(&mut self) -> Result<Step> {
        if !self.settling {
            let n = loop {
                let mut guard = self
                    .efd
                    .readable()
                    .await
                    .map_err(|e| Error::io("wait for OOM eventfd", e))?;
                match guard.try_io(|fd| fd.get_ref().read().map_err(std::io::Error::from)) {
                    Ok(r) => break r.map_err(|e| Error::io("read OOM eventfd", e))?,
                    Err(_would_block) => continue,
                }
            };
            if self.kills.is_none() {
                // No counter: one event per notification, except the one announcing removal.
                return Ok(if self.dir.exists() {
                    Step::Kills(n)
                } else {
                    Step::Gone(n.saturating_sub(1))
                });
            }
            // Remembered across a cancelled `next`, so the consumed wake-up is not lost.
            self.settling = true;
        }
        let last = self.kills.unwrap_or(0);
        // The notification precedes the kill; let the counter catch up.
        for ms in [0, 1, 2, 5, 10, 20, 50, 100, 200, 500] {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let Some(now) = read_counter(&self.dir, "memory.oom_control", "oom_kill")? else {
                return Ok(Step::Gone(0));
            };
            if now != last {
                self.settling = false;
                self.kills = Some(now);
                return Ok(Step::Kills(now.saturating_sub(last)));
            }
        }
        // An OOM invocation that killed nothing here (e.g. an ancestor's OOM).
        self.settling = false;
        Ok(Step::Kills(0))
    }
}

/// An inotify descriptor that tokio can poll.
#[derive(Debug)]
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Growth of `key` in the flat keyed file `dir/file`, woken by inotify.
#[derive(Debug)]
struct CounterWatch {
    fd: AsyncFd<InotifyFd>,
    dir: PathBuf,
    file: &'static str,
    key: &'static str,
    last: u64,
    /// Whether the first step still has to check for a removal before the watches were set.
    fresh: bool,
}

impl CounterWatch {
    fn new(dir: &Path, file: &'static str, key: &'static str) -> Result<CounterWatch> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| Error::io("create inotify instance", e.into()))?;
        let path = dir.join(file);
        ino.add_watch(&path, AddWatchFlags::IN_MODIFY)
            .map_err(|e| Error::io(format!("watch {}", path.display()), e.into()))?;
        if let Some(parent) = dir.parent() {
            let flags = AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM;
            ino.add_watch(parent, flags)
                .map_err(|e| Error::io(format!("watch {}", parent.display()), e.into()))?;
        }
        let last = read_counter(dir, file, key)?.unwrap_or(0);
        // SAFETY: the Inotify owns its descriptor, which stays open until the AsyncFd (and with it
        // the Inotify) is dropped; `InotifyFd::as_raw_fd` always returns that same descriptor,
        // and the Inotify is never replaced (only `get_ref` is used).
        let fd = unsafe { AsyncFd::register_with_interest(InotifyFd(ino), Interest::READABLE) }
            .map_err(|e| Error::io("register inotify with tokio", e.into()))?;
        Ok(CounterWatch {
            fd,
            dir: dir.to_path_buf(),
            file,
            key,
            last,
            fresh: true,
        })
    }

    async fn step(&mut self) -> Result<Step> {
        if !std::mem::take(&mut self.fresh) {
            loop {
                let mut guard = self
                    .fd
                    .readable()
                    .await
                    .map_err(|e| Error::io("wait for inotify", e))?;
                // The events only wake us; the counter file is the truth (also after an overflow).
                match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(Into::into)) {
                    Ok(r) => {
                        r.map_err(|e| Error::io("read inotify events", e))?;
                        break;
                    }
                    Err(_would_block) => continue,
                }
            }
        }
        match read_counter(&self.dir, self.file, self.key)? {
            None => Ok(Step::Gone(0)),
            Some(now) => {
                let grown = now.saturating_sub(self.last);
                self.last = now;
                Ok(Step::Kills(grown))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::time::Instant;

    use tokio::time::timeout;

    use super::*;
    use crate::cgroup::v1::testing::{write, Scratch};
    use crate::error::{ErrorKind, HasKind};

    /// Hang guard only, not a performance bound.
    const GUARD: Duration = Duration::from_secs(20);

    /// A process that outgrows a 16 MiB v1 memory cgroup is OOM-killed: one event, and removing
    /// the cgroup ends the stream.
    #[tokio::test]
    async fn v1_oom_watcher_fires_on_oom_kill_and_ends_on_rmdir() {
        crate::reaper::start().unwrap();
        let mut s = Scratch::v1(&["memory"]);
        let mem = s.dir("memory").to_path_buf();
        write(&mem.join("memory.limit_in_bytes"), "16777216");
        if mem.join("memory.memsw.limit_in_bytes").exists() {
            write(&mem.join("memory.memsw.limit_in_bytes"), "16777216");
        }
        let since = Instant::now();
        let (pid, mut stdin) = s.spawn("read go && exec tail /dev/zero");
        let exited = crate::reaper::watch(pid, since);
        s.enter(pid);
        let cg = Cgroup::of_pid(pid).unwrap();
        assert_eq!(cg.controller_dir("memory"), Some(mem.as_path()));
        let mut w = OomWatcher::new(&cg).unwrap();

        stdin.write_all(b"go\n").unwrap();
        let ev = timeout(GUARD, w.next()).await;
        assert_eq!(ev, Ok(Some(())), "no OOM event for {}", mem.display());
        let st = timeout(GUARD, exited)
            .await
            .expect("victim not reaped")
            .unwrap();
        assert_eq!(st.code, 128 + libc::SIGKILL, "the victim is SIGKILLed");

        s.remove().unwrap();
        let end = timeout(GUARD, w.next()).await;
        assert_eq!(
            end,
            Ok(None),
            "removing {} must end the watcher",
            mem.display()
        );
    }

    /// The v2 mechanics (inotify on a counter file, IN_DELETE on the parent), run on a real
    /// cgroup2 file that this hybrid host has: `cgroup.events`' `populated` grows when a process
    /// enters.
    #[tokio::test]
    async fn v2_counter_watch_fires_on_growth_and_ends_on_rmdir() {
        crate::reaper::start().unwrap();
        let mut s = Scratch::v2();
        let dir = s.dir("unified").to_path_buf();
        let mut w = OomWatcher {
            source: Source::V2(CounterWatch::new(&dir, "cgroup.events", "populated").unwrap()),
            pending: 0,
            done: false,
        };
        let since = Instant::now();
        let (pid, mut stdin) = s.spawn("read go");
        let exited = crate::reaper::watch(pid, since);
        s.enter(pid);
        assert_eq!(
            timeout(GUARD, w.next()).await,
            Ok(Some(())),
            "{}",
            dir.display()
        );

        stdin.write_all(b"go\n").unwrap();
        timeout(GUARD, exited)
            .await
            .expect("child not reaped")
            .unwrap();
        s.remove().unwrap();
        assert_eq!(
            timeout(GUARD, w.next()).await,
            Ok(None),
            "{}",
            dir.display()
        );
    }

    /// Without a memory controller in the cgroup (this cgroup2 has none enabled) the error names
    /// the missing file; a v1 cgroup without memory is a precondition failure.
    #[tokio::test]
    async fn new_fails_clearly_without_a_memory_controller() {
        let s = Scratch::v2();
        let dir = s.dir("unified").to_path_buf();
        let v2 = Cgroup {
            version: CgroupVersion::V2,
            controllers: BTreeMap::new(),
            unified: Some(dir.clone()),
        };
        if !dir.join("memory.events").exists() {
            let e = OomWatcher::new(&v2).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound);
            assert!(e.message().contains("memory.events"), "{e}");
        }
        let v1 = Cgroup {
            version: CgroupVersion::V1,
            controllers: BTreeMap::from([("cpu".to_string(), dir)]),
            unified: None,
        };
        let e = OomWatcher::new(&v1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    }
}
