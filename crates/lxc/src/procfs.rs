//! Host processes through /proc: identity (pid + start time, against pid reuse), children,
//! pid namespaces, and signalling.

use nexcage_core::{Error, Result};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// A process identified by pid and start time (clock ticks since boot, `/proc/<pid>/stat` field 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Proc {
    /// Host pid.
    pub pid: u32,
    /// Start time in clock ticks.
    pub start: u64,
}

/// Fields of `/proc/<pid>/stat` after the command name: (state, start time).
fn stat(pid: u32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&s)
}

/// Parse `pid (comm) S ppid …`: the state and field 22 (start time). `comm` may hold spaces and
/// parentheses, so parsing starts after the last `)`.
pub fn parse_stat(s: &str) -> Option<(char, u64)> {
    let rest = &s[s.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // fields[0] is field 3 (state); field 22 is fields[19].
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

impl Proc {
    /// The live process `pid` as it is now.
    pub fn of(pid: u32) -> Option<Proc> {
        let (state, start) = stat(pid)?;
        (state != 'Z' && state != 'X').then_some(Proc { pid, start })
    }

    /// Still the same process, and not a zombie.
    pub fn alive(&self) -> bool {
        matches!(stat(self.pid), Some((s, start)) if start == self.start && s != 'Z' && s != 'X')
    }

    /// Send `signal` (0 checks existence). ESRCH is NotFound; a different process now holding
    /// the pid is NotFound too.
    pub fn signal(&self, signal: i32) -> Result<()> {
        if !self.alive() {
            return Err(Error::not_found(format!("process {} has exited", self.pid)));
        }
        kill(self.pid, signal)
    }
}

/// kill(2) with errors classified.
pub fn kill(pid: u32, signal: i32) -> Result<()> {
    let sig =
        if signal == 0 {
            None
        } else {
            Some(Signal::try_from(signal).map_err(|_| {
                Error::invalid(format!("signal {signal} is not a valid signal number"))
            })?)
        };
    let pid_t =
        i32::try_from(pid).map_err(|_| Error::invalid(format!("pid {pid} is out of range")))?;
    nix::sys::signal::kill(Pid::from_raw(pid_t), sig).map_err(|e| match e {
        nix::errno::Errno::ESRCH => Error::not_found(format!("process {pid} has exited")),
        e => Error::internal(format!("kill {pid} with signal {signal}: {e}")),
    })
}

/// Direct children of `pid` (every thread's list).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let p = t.path().join("children");
        if let Ok(s) = std::fs::read_to_string(p) {
            out.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The pid namespace of `pid` (its inode), None when the process is gone.
pub fn pid_ns(pid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|m| m.ino())
}

/// The first descendant of `pid` (breadth first) that lives in pid namespace `ns`.
pub fn descendant_in_ns(pid: u32, ns: u64) -> Option<u32> {
    let mut queue = std::collections::VecDeque::from(children(pid));
    let mut seen = 0;
    while let Some(p) = queue.pop_front() {
        seen += 1;
        if seen > 4096 {
            return None;
        }
        if pid_ns(p) == Some(ns) {
            return Some(p);
        }
        queue.extend(children(p));
    }
    None
}

/// Whether the default action of `signal` terminates the process (so a process that did not
/// handle it died of it).
pub fn terminates_by_default(signal: i32) -> bool {
    !matches!(
        Signal::try_from(signal),
        Ok(Signal::SIGCHLD
            | Signal::SIGCONT
            | Signal::SIGURG
            | Signal::SIGWINCH
            | Signal::SIGSTOP
            | Signal::SIGTSTP
            | Signal::SIGTTIN
            | Signal::SIGTTOU)
            | Err(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let s = "42 (a) b) (c) S 1 42 42 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 98765 1 2 3\n";
        assert_eq!(parse_stat(s), Some(('S', 98765)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_and_signal_zero_works() {
        let me = Proc::of(std::process::id()).unwrap();
        assert!(me.alive());
        me.signal(0).unwrap();
        let other = Proc {
            pid: me.pid,
            start: me.start + 1,
        };
        assert!(
            !other.alive(),
            "a different start time is a different process"
        );
    }

    #[test]
    fn default_actions() {
        assert!(terminates_by_default(libc::SIGTERM));
        assert!(terminates_by_default(libc::SIGKILL));
        assert!(!terminates_by_default(libc::SIGWINCH));
        assert!(!terminates_by_default(libc::SIGCHLD));
    }
}
