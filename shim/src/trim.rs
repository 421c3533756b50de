//! Giving back the code pages a burst of RPCs faulted in, once the shim is quiet again.
//!
//! A shim touches much of its code while it serves an RPC (create and start above all), and the
//! kernel maps 64 KiB around every page it faults in; between RPCs it idles for the container's
//! lifetime in a small event loop. The read-only file mappings (text, rodata of the binary and
//! its libraries) would stay mapped in full and count in its RSS and PSS. One second after the
//! last RPC, their page-table entries are dropped (`MADV_DONTNEED`): the pages stay in the page
//! cache, shared, and what the shim runs next faults back in from there (minor faults, no I/O).
//! Only mappings without private copies (`Anonymous: 0 kB` in smaps) are touched, so no written
//! or relocated page is ever discarded. Nothing runs while the shim is idle: no timer is armed
//! without an RPC.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Quiet time after an RPC before the trim.
const DELAY: Duration = Duration::from_secs(1);

/// Bumped by every RPC.
static ACTIVITY: AtomicU64 = AtomicU64::new(0);
/// A trim is scheduled.
static PENDING: AtomicBool = AtomicBool::new(false);

/// An RPC arrived: trim once no other has arrived for [`DELAY`].
pub fn rpc() {
    ACTIVITY.fetch_add(1, Ordering::Relaxed);
    if PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        let mut seen = ACTIVITY.load(Ordering::Acquire);
        loop {
            tokio::time::sleep(DELAY).await;
            let now = ACTIVITY.load(Ordering::Acquire);
            if now != seen {
                seen = now;
                continue;
            }
            PENDING.store(false, Ordering::Release);
            // An RPC that came between the load and the store saw PENDING set and left it to
            // this task: wait for it too, unless a new task has taken over already.
            let now = ACTIVITY.load(Ordering::Acquire);
            if now != seen && !PENDING.swap(true, Ordering::AcqRel) {
                seen = now;
                continue;
            }
            break;
        }
        let bytes = tokio::task::spawn_blocking(trim).await.unwrap_or(0);
        tracing::debug!(bytes, "dropped clean file-backed mappings");
    });
}

/// One read-only, file-backed mapping of `/proc/self/smaps` with no private pages.
#[derive(Debug, PartialEq, Eq)]
struct Clean {
    start: usize,
    end: usize,
}

/// The mappings of `smaps` text that may be dropped.
fn clean_mappings(smaps: &str) -> Vec<Clean> {
    let mut out = Vec::new();
    let mut cur: Option<(Clean, bool)> = None;
    let mut flush = |cur: &mut Option<(Clean, bool)>| {
        if let Some((c, true)) = cur.take() {
            out.push(c);
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                flush(&mut cur);
                let perms = f.next().unwrap_or("");
                let path = f.nth(3).unwrap_or("");
                let ok = perms.starts_with('r')
                    && !perms.contains('w')
                    && perms.ends_with('p')
                    && path.starts_with('/');
                cur = Some((Clean { start, end }, ok));
                continue;
            }
        }
        if first == "Anonymous:" && f.next() != Some("0") {
            if let Some((_, ok)) = cur.as_mut() {
                *ok = false;
            }
        }
    }
    flush(&mut cur);
    out
}

/// Drop the page-table entries of every clean mapping; returns the bytes covered.
pub fn trim() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut total = 0;
    for m in clean_mappings(&smaps) {
        let len = m.end - m.start;
        // SAFETY: the range is a whole private, read-only, file-backed mapping of this process
        // without anonymous (copied-on-write) pages: MADV_DONTNEED only drops its page-table
        // entries, and every later access faults the same file contents back in.
        let rc = unsafe { libc::madvise(m.start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if rc == 0 {
            total += len;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0100000 r--p 00000000 08:01 123 /usr/bin/shim
Rss:                 100 kB
Anonymous:             0 kB
55d0c0100000-55d0c0400000 r-xp 00100000 08:01 123 /usr/bin/shim
Anonymous:             0 kB
55d0c0400000-55d0c0410000 r--p 00400000 08:01 123 /usr/bin/shim
Anonymous:            64 kB
55d0c0410000-55d0c0420000 rw-p 00410000 08:01 123 /usr/bin/shim
Anonymous:            64 kB
7f0000000000-7f0000100000 rw-p 00000000 00:00 0 
Anonymous:          1024 kB
7fff00000000-7fff00002000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
7f1000000000-7f1000001000 r--s 00000000 00:05 9 /dev/shm/x
Anonymous:             0 kB
";

    #[test]
    fn only_private_read_only_file_mappings_without_copies_are_clean() {
        assert_eq!(
            clean_mappings(SMAPS),
            vec![
                Clean {
                    start: 0x55d0c0000000,
                    end: 0x55d0c0100000
                },
                Clean {
                    start: 0x55d0c0100000,
                    end: 0x55d0c0400000
                },
            ]
        );
    }

    #[test]
    fn trimming_keeps_the_process_running_its_code() {
        let before = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        let bytes = trim();
        assert!(bytes > 0, "nothing trimmed: {before}");
        // Code and read-only data fault back in: this still computes and formats.
        let s: u64 = (1..=100u64).sum();
        assert_eq!(format!("{s}"), "5050");
    }
}
