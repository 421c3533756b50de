//! Statistics of a unified (cgroup v2) process: `cpu.stat`, `memory.*` and `pids.*`.

use super::{ensure_dir, parse_limit, read_keyed, read_u64, read_with, Cgroup};
use crate::error::{Error, Result};
use crate::stats::{CgroupVersion, CpuStats, MemoryStats, PidsStats, Stats};

pub(super) fn stats(cg: &Cgroup) -> Result<Stats> {
    let dir = cg
        .unified_dir()
        .ok_or_else(|| Error::not_found("cgroup has no cgroup2 directory"))?;
    ensure_dir(dir)?;
    let cpu = read_keyed(dir, "cpu.stat")?;
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0).saturating_mul(1000);
    let max = |name: &str| read_with(dir, name, |s| parse_limit(s, u64::MAX));
    Ok(Stats {
        version: CgroupVersion::V2,
        cpu: CpuStats {
            usage_ns: us("usage_usec"),
            user_ns: us("user_usec"),
            kernel_ns: us("system_usec"),
            per_cpu_ns: Vec::new(),
            periods: cpu.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
            throttled_ns: us("throttled_usec"),
        },
        memory: MemoryStats {
            usage: read_u64(dir, "memory.current")?,
            max_usage: read_u64(dir, "memory.peak")?,
            limit: max("memory.max")?,
            failcnt: 0,
            swap_usage: read_u64(dir, "memory.swap.current")?,
            swap_limit: max("memory.swap.max")?,
            kernel_usage: 0,
            stat: read_keyed(dir, "memory.stat")?,
            events: read_keyed(dir, "memory.events")?,
        },
        pids: PidsStats {
            current: read_u64(dir, "pids.current")?,
            limit: read_with(dir, "pids.max", |s| parse_limit(s, 0))?,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cgroup::{parse_keyed, parse_limit, parse_u64, parse_u64_list};

    #[test]
    fn keyed_limit_and_list_parsers() {
        let m = parse_keyed("usage_usec 12\nuser_usec 8\n\nsystem_usec 4\n").unwrap();
        assert_eq!(m.get("usage_usec"), Some(&12));
        assert_eq!(m.len(), 3);
        let e = parse_keyed("oom 1\noom_kill\n").unwrap_err();
        assert!(e.message().contains("line 2"), "{e}");
        let e = parse_keyed("oom x\n").unwrap_err();
        assert!(e.message().contains("\"x\""), "{e}");
        assert_eq!(parse_limit("max\n", u64::MAX).unwrap(), u64::MAX);
        assert_eq!(parse_limit("max", 0).unwrap(), 0);
        assert_eq!(parse_limit("1048576\n", 0).unwrap(), 1_048_576);
        assert!(parse_limit("-1", 0).is_err());
        assert_eq!(parse_u64(" 42\n").unwrap(), 42);
        assert_eq!(parse_u64_list("1 2 3 \n").unwrap(), vec![1, 2, 3]);
        assert!(parse_u64_list("1 two").is_err());
    }

    #[test]
    fn v2_stats_from_sample_files() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for (f, v) in [
            (
                "cpu.stat",
                "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 7\n\
                 nr_throttled 1\nthrottled_usec 250\nnr_bursts 0\nburst_usec 0\n",
            ),
            ("memory.current", "1048576\n"),
            ("memory.max", "max\n"),
            ("memory.swap.current", "0\n"),
            ("memory.swap.max", "4096\n"),
            ("memory.stat", "anon 100\nfile 200\n"),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n",
            ),
            ("pids.current", "3\n"),
            ("pids.max", "max\n"),
        ] {
            std::fs::write(d.join(f), v).unwrap();
        }
        let cg = Cgroup {
            version: CgroupVersion::V2,
            controllers: BTreeMap::new(),
            unified: Some(d.to_path_buf()),
        };
        assert_eq!(cg.controller_dir("memory"), Some(d));
        let st = cg.stats().unwrap();
        assert_eq!(st.version, CgroupVersion::V2);
        assert_eq!(
            st.cpu,
            CpuStats {
                usage_ns: 5_000_000,
                user_ns: 3_000_000,
                kernel_ns: 2_000_000,
                per_cpu_ns: vec![],
                periods: 7,
                throttled_periods: 1,
                throttled_ns: 250_000,
            }
        );
        assert_eq!(st.memory.usage, 1_048_576);
        assert_eq!(st.memory.max_usage, 0, "memory.peak absent");
        assert_eq!(st.memory.limit, u64::MAX);
        assert_eq!(st.memory.swap_limit, 4096);
        assert_eq!(st.memory.stat.get("file"), Some(&200));
        assert_eq!(st.memory.events.get("oom_kill"), Some(&1));
        assert_eq!(
            st.pids,
            PidsStats {
                current: 3,
                limit: 0
            }
        );

        std::fs::write(d.join("memory.max"), "unlimited\n").unwrap();
        let e = cg.stats().unwrap_err();
        assert!(e.message().contains("memory.max"), "{e}");
    }
}
