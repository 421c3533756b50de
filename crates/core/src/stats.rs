//! Resource statistics of a container, independent of the protobuf message that carries them.

use std::collections::BTreeMap;

/// Which cgroup hierarchy the numbers came from (decides the Metrics message the shim sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupVersion {
    /// cgroup v1 (also on hybrid hosts, where controllers are v1).
    #[default]
    V1,
    /// Unified cgroup v2.
    V2,
}

/// CPU accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Total CPU time, nanoseconds.
    pub usage_ns: u64,
    /// User CPU time, nanoseconds.
    pub user_ns: u64,
    /// Kernel CPU time, nanoseconds.
    pub kernel_ns: u64,
    /// Per-CPU total time, nanoseconds (v1 only).
    pub per_cpu_ns: Vec<u64>,
    /// CFS periods elapsed.
    pub periods: u64,
    /// Periods in which the group was throttled.
    pub throttled_periods: u64,
    /// Total throttled time, nanoseconds.
    pub throttled_ns: u64,
}

/// Memory accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Current usage, bytes.
    pub usage: u64,
    /// Peak usage, bytes (v1 `max_usage_in_bytes`, v2 `memory.peak` when present).
    pub max_usage: u64,
    /// Limit, bytes (`u64::MAX` or the kernel's "unlimited" value when none).
    pub limit: u64,
    /// Times the limit was hit (v1 `failcnt`).
    pub failcnt: u64,
    /// Swap usage, bytes (v1: memsw usage; v2: `memory.swap.current`).
    pub swap_usage: u64,
    /// Swap limit, bytes.
    pub swap_limit: u64,
    /// Kernel memory usage, bytes (v1 only).
    pub kernel_usage: u64,
    /// The raw `memory.stat` counters, by their file names.
    pub stat: BTreeMap<String, u64>,
    /// v2 `memory.events` counters (`low`, `high`, `max`, `oom`, `oom_kill`).
    pub events: BTreeMap<String, u64>,
}

/// Pid accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidsStats {
    /// Tasks in the group.
    pub current: u64,
    /// Limit (0 when unlimited).
    pub limit: u64,
}

/// All statistics of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// The hierarchy the numbers came from.
    pub version: CgroupVersion,
    /// CPU.
    pub cpu: CpuStats,
    /// Memory.
    pub memory: MemoryStats,
    /// Pids.
    pub pids: PidsStats,
}
