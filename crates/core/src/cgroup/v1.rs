//! Statistics of a cgroup v1 (or hybrid) process: cpuacct, cpu, memory and pids controllers.

use std::path::Path;

use super::{ensure_dir, parse_keyed, parse_limit, parse_u64, parse_u64_list};
use super::{read_keyed, read_opt, read_u64, read_with, Cgroup};
use crate::error::Result;
use crate::stats::{CgroupVersion, CpuStats, MemoryStats, PidsStats, Stats};

/// `cpuacct.stat` counts USER_HZ (always 100 for userspace) ticks: 10 ms each.
const NS_PER_TICK: u64 = 10_000_000;

pub(super) fn stats(cg: &Cgroup) -> Result<Stats> {
    let mut st = Stats {
        version: CgroupVersion::V1,
        ..Stats::default()
    };
    if let Some(dir) = cg.controller_dir("cpuacct") {
        ensure_dir(dir)?;
        cpuacct(dir, &mut st.cpu)?;
    }
    if let Some(dir) = cg.controller_dir("cpu") {
        ensure_dir(dir)?;
        let s = read_keyed(dir, "cpu.stat")?;
        let get = |k: &str| s.get(k).copied().unwrap_or(0);
        st.cpu.periods = get("nr_periods");
        st.cpu.throttled_periods = get("nr_throttled");
        st.cpu.throttled_ns = get("throttled_time");
    }
    if let Some(dir) = cg.controller_dir("memory") {
        ensure_dir(dir)?;
        st.memory = memory(dir)?;
    }
    if let Some(dir) = cg.controller_dir("pids") {
        ensure_dir(dir)?;
        st.pids = PidsStats {
            current: read_u64(dir, "pids.current")?,
            limit: read_with(dir, "pids.max", |s| parse_limit(s, 0))?,
        };
    }
    Ok(st)
}

fn cpuacct(dir: &Path, cpu: &mut CpuStats) -> Result<()> {
    cpu.usage_ns = read_u64(dir, "cpuacct.usage")?;
    cpu.per_cpu_ns = read_with(dir, "cpuacct.usage_percpu", parse_u64_list)?;
    match (
        read_opt(dir, "cpuacct.usage_user")?,
        read_opt(dir, "cpuacct.usage_sys")?,
    ) {
        (Some(user), Some(sys)) => {
            let at = |name: &str| format!("parse {}", dir.join(name).display());
            cpu.user_ns = parse_u64(&user).map_err(|e| e.context(at("cpuacct.usage_user")))?;
            cpu.kernel_ns = parse_u64(&sys).map_err(|e| e.context(at("cpuacct.usage_sys")))?;
        }
        _ => {
            let s = read_with(dir, "cpuacct.stat", parse_keyed)?;
            let ticks = |k: &str| s.get(k).copied().unwrap_or(0).saturating_mul(NS_PER_TICK);
            cpu.user_ns = ticks("user");
            cpu.kernel_ns = ticks("system");
        }
    }
    Ok(())
}

fn memory(dir: &Path) -> Result<MemoryStats> {
    Ok(MemoryStats {
        usage: read_u64(dir, "memory.usage_in_bytes")?,
        max_usage: read_u64(dir, "memory.max_usage_in_bytes")?,
        limit: read_u64(dir, "memory.limit_in_bytes")?,
        failcnt: read_u64(dir, "memory.failcnt")?,
        swap_usage: read_u64(dir, "memory.memsw.usage_in_bytes")?,
        swap_limit: read_u64(dir, "memory.memsw.limit_in_bytes")?,
        kernel_usage: read_u64(dir, "memory.kmem.usage_in_bytes")?,
        stat: read_keyed(dir, "memory.stat")?,
        events: Default::default(),
    })
}

/// Real cgroups for tests: created fresh, removed (with their processes) on drop.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};
    use std::process::{ChildStdin, Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    use crate::cgroup::{parse_mountinfo, parse_procs};

    const NEEDS: &str = "these tests need root and cgroup v1 controllers (v2: a cgroup2 mount)";

    /// Write a cgroup file; panic naming it on failure.
    pub(crate) fn write(path: &Path, value: &str) {
        std::fs::write(path, value)
            .unwrap_or_else(|e| panic!("write {value:?} to {}: {e}; {NEEDS}", path.display()));
    }

    /// Test cgroups and the processes spawned for them; all removed on drop, also after a panic.
    pub(crate) struct Scratch {
        dirs: Vec<(String, PathBuf)>,
        spawned: Vec<u32>,
    }

    impl Scratch {
        /// A fresh cgroup named `nexcage-test-…` at the top of each listed v1 controller.
        pub(crate) fn v1(controllers: &[&str]) -> Scratch {
            Scratch::make(controllers, false)
        }

        /// A fresh cgroup at the top of the cgroup2 hierarchy (`dir("unified")`).
        pub(crate) fn v2() -> Scratch {
            Scratch::make(&["unified"], true)
        }

        fn make(controllers: &[&str], v2: bool) -> Scratch {
            static SEQ: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "nexcage-test-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let mounts = parse_mountinfo(&mountinfo);
            let mut s = Scratch {
                dirs: Vec::new(),
                spawned: Vec::new(),
            };
            for c in controllers {
                let m = mounts
                    .iter()
                    .find(|m| m.v2 == v2 && (v2 || m.options.iter().any(|o| o == c)))
                    .unwrap_or_else(|| panic!("cgroup controller {c} is not mounted; {NEEDS}"));
                let dir = m.mount_point.join(&name);
                if !s.dirs.iter().any(|(_, d)| *d == dir) {
                    std::fs::create_dir(&dir).unwrap_or_else(|e| {
                        panic!("mkdir {}: {e}; {NEEDS}", dir.display());
                    });
                }
                s.dirs.push((c.to_string(), dir));
            }
            s
        }

        /// The directory made for `controller`.
        pub(crate) fn dir(&self, controller: &str) -> &Path {
            let found = self.dirs.iter().find(|(c, _)| c == controller);
            &found.expect("controller not in this scratch cgroup").1
        }

        /// Start `sh -c script` with a pipe on stdin (scripts wait on `read go && …`).
        pub(crate) fn spawn(&mut self, script: &str) -> (u32, ChildStdin) {
            let mut child = Command::new("sh")
                .args(["-c", script])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn sh");
            let stdin = child.stdin.take().expect("piped stdin");
            let pid = child.id();
            self.spawned.push(pid);
            // Never `wait` here: the process-wide reaper collects it (see crate::reaper).
            drop(child);
            (pid, stdin)
        }

        /// Move `pid` into every scratch cgroup.
        pub(crate) fn enter(&self, pid: u32) {
            for (_, d) in &self.dirs {
                write(&d.join("cgroup.procs"), &pid.to_string());
            }
        }

        /// Kill what runs in the scratch cgroups (and spawned children not moved yet), then
        /// remove the cgroups, retrying while the killed processes exit.
        pub(crate) fn remove(&mut self) -> Result<(), String> {
            let me = std::process::id().to_string();
            let mut victims: Vec<u32> = self
                .spawned
                .drain(..)
                .filter(|p| {
                    let status = std::fs::read_to_string(format!("/proc/{p}/status"));
                    status.is_ok_and(|s| s.lines().any(|l| l.split_whitespace().eq(["PPid:", &me])))
                })
                .collect();
            for (_, d) in &self.dirs {
                let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                victims.extend(parse_procs(&procs).unwrap_or_default());
            }
            for p in victims {
                let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut dirs = std::mem::take(&mut self.dirs);
            dirs.dedup_by(|a, b| a.1 == b.1);
            for (_, d) in dirs {
                loop {
                    match std::fs::remove_dir(&d) {
                        Ok(()) => break,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                        Err(e) if Instant::now() > deadline => {
                            return Err(format!("rmdir {}: {e}", d.display()))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            }
            Ok(())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            if let Err(e) = self.remove() {
                eprintln!("cleaning up test cgroups: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::testing::{write, Scratch};
    use super::*;
    use crate::error::{ErrorKind, HasKind};

    fn fake(dirs: &[(&str, &Path)]) -> Cgroup {
        let controllers: BTreeMap<String, PathBuf> = dirs
            .iter()
            .map(|(c, d)| (c.to_string(), d.to_path_buf()))
            .collect();
        Cgroup {
            version: CgroupVersion::V1,
            controllers,
            unified: None,
        }
    }

    #[test]
    fn v1_stats_from_sample_files() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for (f, v) in [
            ("cpuacct.usage", "3000\n"),
            ("cpuacct.usage_percpu", "1000 2000 \n"),
            ("cpuacct.usage_user", "1800\n"),
            ("cpuacct.usage_sys", "1200\n"),
            (
                "cpu.stat",
                "nr_periods 10\nnr_throttled 2\nthrottled_time 500\nnr_bursts 0\n",
            ),
            ("memory.usage_in_bytes", "4096\n"),
            ("memory.max_usage_in_bytes", "8192\n"),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.failcnt", "3\n"),
            ("memory.stat", "cache 100\nrss 200\ntotal_rss 300\n"),
            ("pids.current", "4\n"),
            ("pids.max", "max\n"),
        ] {
            std::fs::write(d.join(f), v).unwrap();
        }
        let cg = fake(&[("cpu", d), ("cpuacct", d), ("memory", d), ("pids", d)]);
        let st = cg.stats().unwrap();
        assert_eq!(st.version, CgroupVersion::V1);
        assert_eq!(
            st.cpu,
            CpuStats {
                usage_ns: 3000,
                user_ns: 1800,
                kernel_ns: 1200,
                per_cpu_ns: vec![1000, 2000],
                periods: 10,
                throttled_periods: 2,
                throttled_ns: 500,
            }
        );
        assert_eq!(st.memory.usage, 4096);
        assert_eq!(st.memory.max_usage, 8192);
        assert_eq!(st.memory.limit, 9_223_372_036_854_771_712);
        assert_eq!(st.memory.failcnt, 3);
        assert_eq!(
            (st.memory.swap_usage, st.memory.kernel_usage),
            (0, 0),
            "absent memsw/kmem"
        );
        assert_eq!(st.memory.stat.get("total_rss"), Some(&300));
        assert_eq!(
            st.pids,
            PidsStats {
                current: 4,
                limit: 0
            }
        );
    }

    #[test]
    fn v1_cpuacct_stat_ticks_fallback_and_errors_name_the_file() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::write(d.join("cpuacct.stat"), "user 7\nsystem 3\n").unwrap();
        let st = fake(&[("cpuacct", d)]).stats().unwrap();
        assert_eq!((st.cpu.user_ns, st.cpu.kernel_ns), (70_000_000, 30_000_000));
        assert_eq!(st.cpu.usage_ns, 0);

        std::fs::write(d.join("memory.usage_in_bytes"), "lots\n").unwrap();
        let e = fake(&[("memory", d)]).stats().unwrap_err();
        assert!(e.message().contains("memory.usage_in_bytes"), "{e}");

        let gone = d.join("removed");
        let e = fake(&[("memory", &gone)]).stats().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("removed"), "{e}");
    }

    /// A busy process moved into fresh cpu, cpuacct, memory and pids cgroups shows up in
    /// `of_pid`, `stats` and `procs`.
    #[test]
    fn v1_of_pid_stats_and_procs_of_a_busy_process() {
        crate::reaper::start().unwrap();
        let mut s = Scratch::v1(&["cpu", "cpuacct", "memory", "pids"]);
        write(&s.dir("pids").join("pids.max"), "100");
        write(&s.dir("memory").join("memory.limit_in_bytes"), "268435456");
        let script = "read go; x=$(head -c 4000000 /dev/zero | tr '\\0' a); while :; do :; done";
        let (pid, mut stdin) = s.spawn(script);
        s.enter(pid);
        std::io::Write::write_all(&mut stdin, b"go\n").unwrap();

        let cg = Cgroup::of_pid(pid).unwrap();
        assert_eq!(cg.version(), CgroupVersion::V1);
        for c in ["cpu", "cpuacct", "memory", "pids"] {
            assert_eq!(cg.controller_dir(c), Some(s.dir(c)), "controller {c}");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let st = loop {
            let st = cg.stats().unwrap();
            if st.cpu.usage_ns > 0 && st.memory.usage > 1_000_000 || Instant::now() > deadline {
                break st;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(st.cpu.usage_ns > 0, "no cpu usage: {st:?}");
        assert!(!st.cpu.per_cpu_ns.is_empty(), "{st:?}");
        assert!(st.memory.usage > 1_000_000, "memory usage too low: {st:?}");
        assert_eq!(st.memory.limit, 268_435_456);
        assert!(
            st.memory.stat.contains_key("total_rss"),
            "{:?}",
            st.memory.stat
        );
        assert!(st.pids.current >= 1, "{st:?}");
        assert_eq!(st.pids.limit, 100);
        assert!(cg.procs().unwrap().contains(&pid));
    }

    #[test]
    fn of_pid_of_this_process_and_of_a_missing_one() {
        let cg = Cgroup::of_pid(std::process::id()).unwrap();
        let dir = cg
            .controller_dir("memory")
            .or(cg.unified_dir())
            .expect("a memory dir");
        assert!(dir.is_dir(), "{} does not exist", dir.display());
        assert!(cg.procs().unwrap().contains(&std::process::id()));
        let e = Cgroup::of_pid(u32::MAX).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("/proc/4294967295/cgroup"), "{e}");
    }
}
