//! Protobuf ↔ domain conversion: requests in, events, states and metrics out.

use std::time::{SystemTime, UNIX_EPOCH};

use containerd_shim::protos::api::{self, Status as ApiStatus};
use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::events::task as ev;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{MessageDyn, MessageField};
use containerd_shim::protos::topics;
use nexcage_core::state::Status;
use nexcage_core::stats::{CgroupVersion, Stats};
use nexcage_core::{Error, Result};
use nexcage_runtime::io::StdioSpec;
use nexcage_runtime::mount::Mount;
use nexcage_runtime::Event;

/// A protobuf timestamp.
pub fn ts(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    }
}

/// Domain state → API status.
pub fn status(s: Status) -> ApiStatus {
    match s {
        Status::Created => ApiStatus::CREATED,
        Status::Running => ApiStatus::RUNNING,
        Status::Paused => ApiStatus::PAUSED,
        Status::Stopped => ApiStatus::STOPPED,
    }
}

/// API mounts → domain mounts.
pub fn mounts(m: &[api::Mount]) -> Vec<Mount> {
    m.iter()
        .map(|m| Mount {
            kind: m.type_.clone(),
            source: m.source.clone(),
            target: m.target.clone(),
            options: m.options.clone(),
        })
        .collect()
}

fn api_mounts(m: &[Mount]) -> Vec<api::Mount> {
    m.iter()
        .map(|m| api::Mount {
            type_: m.kind.clone(),
            source: m.source.clone(),
            target: m.target.clone(),
            options: m.options.clone(),
            ..Default::default()
        })
        .collect()
}

/// Stdio fields of a request.
pub fn stdio(stdin: &str, stdout: &str, stderr: &str, terminal: bool) -> StdioSpec {
    StdioSpec {
        stdin: stdin.to_string(),
        stdout: stdout.to_string(),
        stderr: stderr.to_string(),
        terminal,
    }
}

/// Decode an `Any` whose value is JSON (exec process specs, LinuxResources).
pub fn json_any<T: serde::de::DeserializeOwned>(what: &str, any: Option<&Any>) -> Result<T> {
    let any = any.ok_or_else(|| Error::invalid(format!("{what} is missing")))?;
    serde_json::from_slice(&any.value)
        .map_err(|e| Error::invalid(format!("{what} ({}): {e}", any.type_url)))
}

/// An event's topic and message.
pub fn event(e: Event) -> (&'static str, Box<dyn MessageDyn>) {
    match e {
        Event::Create {
            id,
            bundle,
            rootfs,
            stdio,
            pid,
        } => (
            topics::TASK_CREATE_EVENT_TOPIC,
            Box::new(ev::TaskCreate {
                container_id: id,
                bundle: bundle.display().to_string(),
                rootfs: api_mounts(&rootfs),
                io: MessageField::some(ev::TaskIO {
                    stdin: stdio.stdin,
                    stdout: stdio.stdout,
                    stderr: stdio.stderr,
                    terminal: stdio.terminal,
                    ..Default::default()
                }),
                pid,
                ..Default::default()
            }),
        ),
        Event::Start { id, pid } => (
            topics::TASK_START_EVENT_TOPIC,
            Box::new(ev::TaskStart {
                container_id: id,
                pid,
                ..Default::default()
            }),
        ),
        Event::Exit {
            id,
            exec_id,
            pid,
            status,
            at,
        } => (
            topics::TASK_EXIT_EVENT_TOPIC,
            Box::new(ev::TaskExit {
                id: if exec_id.is_empty() {
                    id.clone()
                } else {
                    exec_id
                },
                container_id: id,
                pid,
                exit_status: status,
                exited_at: MessageField::some(ts(at)),
                ..Default::default()
            }),
        ),
        Event::Delete {
            id,
            pid,
            status,
            at,
        } => (
            topics::TASK_DELETE_EVENT_TOPIC,
            Box::new(ev::TaskDelete {
                container_id: id.clone(),
                id,
                pid,
                exit_status: status,
                exited_at: MessageField::some(ts(at)),
                ..Default::default()
            }),
        ),
        Event::ExecAdded { id, exec_id } => (
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            Box::new(ev::TaskExecAdded {
                container_id: id,
                exec_id,
                ..Default::default()
            }),
        ),
        Event::ExecStarted { id, exec_id, pid } => (
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            Box::new(ev::TaskExecStarted {
                container_id: id,
                exec_id,
                pid,
                ..Default::default()
            }),
        ),
        Event::Paused { id } => (
            topics::TASK_PAUSED_EVENT_TOPIC,
            Box::new(ev::TaskPaused {
                container_id: id,
                ..Default::default()
            }),
        ),
        Event::Resumed { id } => (
            topics::TASK_RESUMED_EVENT_TOPIC,
            Box::new(ev::TaskResumed {
                container_id: id,
                ..Default::default()
            }),
        ),
        Event::Oom { id } => (
            topics::TASK_OOM_EVENT_TOPIC,
            Box::new(ev::TaskOOM {
                container_id: id,
                ..Default::default()
            }),
        ),
    }
}

fn any_of(type_url: &str, m: &dyn MessageDyn) -> Result<Any> {
    let value = m
        .write_to_bytes_dyn()
        .map_err(|e| Error::internal(format!("encode {type_url}: {e}")))?;
    Ok(Any {
        type_url: type_url.to_string(),
        value,
        ..Default::default()
    })
}

/// Stats → `io.containerd.cgroups.v1.Metrics` or `io.containerd.cgroups.v2.Metrics`.
pub fn metrics(s: &Stats) -> Result<Any> {
    match s.version {
        CgroupVersion::V1 => any_of("io.containerd.cgroups.v1.Metrics", &metrics_v1(s)),
        CgroupVersion::V2 => any_of("io.containerd.cgroups.v2.Metrics", &metrics_v2(s)),
    }
}

fn stat(s: &Stats, k: &str) -> u64 {
    s.memory.stat.get(k).copied().unwrap_or(0)
}

fn metrics_v1(s: &Stats) -> v1::Metrics {
    let m = &s.memory;
    let entry = |usage: u64, max: u64, limit: u64, failcnt: u64| {
        MessageField::some(v1::MemoryEntry {
            usage,
            max,
            limit,
            failcnt,
            ..Default::default()
        })
    };
    v1::Metrics {
        pids: MessageField::some(v1::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(v1::CPUStat {
            usage: MessageField::some(v1::CPUUsage {
                total: s.cpu.usage_ns,
                kernel: s.cpu.kernel_ns,
                user: s.cpu.user_ns,
                per_cpu: s.cpu.per_cpu_ns.clone(),
                ..Default::default()
            }),
            throttling: MessageField::some(v1::Throttle {
                periods: s.cpu.periods,
                throttled_periods: s.cpu.throttled_periods,
                throttled_time: s.cpu.throttled_ns,
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(v1::MemoryStat {
            cache: stat(s, "cache"),
            rss: stat(s, "rss"),
            rss_huge: stat(s, "rss_huge"),
            mapped_file: stat(s, "mapped_file"),
            dirty: stat(s, "dirty"),
            writeback: stat(s, "writeback"),
            pg_pg_in: stat(s, "pgpgin"),
            pg_pg_out: stat(s, "pgpgout"),
            pg_fault: stat(s, "pgfault"),
            pg_maj_fault: stat(s, "pgmajfault"),
            inactive_anon: stat(s, "inactive_anon"),
            active_anon: stat(s, "active_anon"),
            inactive_file: stat(s, "inactive_file"),
            active_file: stat(s, "active_file"),
            unevictable: stat(s, "unevictable"),
            hierarchical_memory_limit: stat(s, "hierarchical_memory_limit"),
            hierarchical_swap_limit: stat(s, "hierarchical_memsw_limit"),
            total_cache: stat(s, "total_cache"),
            total_rss: stat(s, "total_rss"),
            total_rss_huge: stat(s, "total_rss_huge"),
            total_mapped_file: stat(s, "total_mapped_file"),
            total_dirty: stat(s, "total_dirty"),
            total_writeback: stat(s, "total_writeback"),
            total_pg_pg_in: stat(s, "total_pgpgin"),
            total_pg_pg_out: stat(s, "total_pgpgout"),
            total_pg_fault: stat(s, "total_pgfault"),
            total_pg_maj_fault: stat(s, "total_pgmajfault"),
            total_inactive_anon: stat(s, "total_inactive_anon"),
            total_active_anon: stat(s, "total_active_anon"),
            total_inactive_file: stat(s, "total_inactive_file"),
            total_active_file: stat(s, "total_active_file"),
            total_unevictable: stat(s, "total_unevictable"),
            usage: entry(m.usage, m.max_usage, m.limit, m.failcnt),
            swap: entry(m.swap_usage, 0, m.swap_limit, 0),
            kernel: entry(m.kernel_usage, 0, 0, 0),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn metrics_v2(s: &Stats) -> v2::Metrics {
    let m = &s.memory;
    let ev = |k: &str| m.events.get(k).copied().unwrap_or(0);
    v2::Metrics {
        pids: MessageField::some(v2::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(v2::CPUStat {
            usage_usec: s.cpu.usage_ns / 1000,
            user_usec: s.cpu.user_ns / 1000,
            system_usec: s.cpu.kernel_ns / 1000,
            nr_periods: s.cpu.periods,
            nr_throttled: s.cpu.throttled_periods,
            throttled_usec: s.cpu.throttled_ns / 1000,
            ..Default::default()
        }),
        memory: MessageField::some(v2::MemoryStat {
            anon: stat(s, "anon"),
            file: stat(s, "file"),
            kernel_stack: stat(s, "kernel_stack"),
            slab: stat(s, "slab"),
            sock: stat(s, "sock"),
            shmem: stat(s, "shmem"),
            file_mapped: stat(s, "file_mapped"),
            file_dirty: stat(s, "file_dirty"),
            file_writeback: stat(s, "file_writeback"),
            anon_thp: stat(s, "anon_thp"),
            inactive_anon: stat(s, "inactive_anon"),
            active_anon: stat(s, "active_anon"),
            inactive_file: stat(s, "inactive_file"),
            active_file: stat(s, "active_file"),
            unevictable: stat(s, "unevictable"),
            slab_reclaimable: stat(s, "slab_reclaimable"),
            slab_unreclaimable: stat(s, "slab_unreclaimable"),
            pgfault: stat(s, "pgfault"),
            pgmajfault: stat(s, "pgmajfault"),
            usage: m.usage,
            usage_limit: m.limit,
            swap_usage: m.swap_usage,
            swap_limit: m.swap_limit,
            ..Default::default()
        }),
        memory_events: MessageField::some(v2::MemoryEvents {
            low: ev("low"),
            high: ev("high"),
            max: ev("max"),
            oom: ev("oom"),
            oom_kill: ev("oom_kill"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `ProcessDetails{exec_id}` as containerd's runc shim attaches to exec pids.
pub fn process_details(exec_id: &str) -> Result<Any> {
    let d = containerd_shim::protos::shim::oci::ProcessDetails {
        exec_id: exec_id.to_string(),
        ..Default::default()
    };
    any_of("containerd.runc.v1.ProcessDetails", &d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::Message;

    #[test]
    fn exit_event_id_is_exec_id_for_execs_and_container_id_for_init() {
        let at = SystemTime::now();
        let (topic, m) = event(Event::Exit {
            id: "c".into(),
            exec_id: "e1".into(),
            pid: 5,
            status: 3,
            at,
        });
        assert_eq!(topic, "/tasks/exit");
        let exit = m.downcast_box::<ev::TaskExit>().ok().unwrap();
        assert_eq!(
            (
                exit.id.as_str(),
                exit.container_id.as_str(),
                exit.exit_status
            ),
            ("e1", "c", 3)
        );
        let (_, m) = event(Event::Exit {
            id: "c".into(),
            exec_id: String::new(),
            pid: 5,
            status: 0,
            at,
        });
        assert_eq!(m.downcast_box::<ev::TaskExit>().ok().unwrap().id, "c");
    }

    #[test]
    fn v1_metrics_carry_cpu_and_memory() {
        let mut s = Stats::default();
        s.cpu.usage_ns = 42;
        s.memory.usage = 1 << 20;
        s.memory.stat.insert("rss".into(), 7);
        let any = metrics(&s).unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
        let m = v1::Metrics::parse_from_bytes(&any.value).unwrap();
        assert_eq!(m.cpu.usage.total, 42);
        assert_eq!(m.memory.usage.usage, 1 << 20);
        assert_eq!(m.memory.rss, 7);
    }
}
