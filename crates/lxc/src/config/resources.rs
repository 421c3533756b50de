//! `linux.resources` → cgroup file settings, used both for the config (`lxc.cgroup.<file>` on
//! v1 and hybrid hosts, `lxc.cgroup2.<file>` on pure v2) and for Update (written directly).

use nexcage_core::Result;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::lines::refuse;

/// One cgroup file and the value to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// File name inside the controller's directory, e.g. `memory.limit_in_bytes`.
    pub file: String,
    /// Value.
    pub value: String,
    /// The OCI field it comes from (for messages).
    pub field: String,
}

impl Setting {
    fn new(file: &str, value: impl ToString, field: &str) -> Setting {
        Setting {
            file: file.to_string(),
            value: value.to_string(),
            field: format!("linux.resources.{field}"),
        }
    }

    /// The controller owning the file (`memory` for `memory.limit_in_bytes`).
    pub fn controller(&self) -> &str {
        self.file.split('.').next().unwrap_or_default()
    }
}

/// Every setting of `r` except devices (fixed at create, as with `runc update`), in write order.
pub fn settings(r: &LinuxResources, v2: bool) -> Result<Vec<Setting>> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if m.kernel().is_some() {
            return Err(refuse(
                "linux.resources.memory.kernel",
                "kernel memory limits are not supported by current kernels",
            ));
        }
        if m.use_hierarchy() == Some(false) {
            return Err(refuse(
                "linux.resources.memory.useHierarchy",
                "memory accounting is always hierarchical",
            ));
        }
        if m.check_before_update() == Some(true) {
            return Err(refuse(
                "linux.resources.memory.checkBeforeUpdate",
                "is not supported",
            ));
        }
        if v2 {
            memory_v2(m, &mut out)?;
        } else {
            let s = |file, v: Option<i64>, field| v.map(|v| Setting::new(file, v, field));
            out.extend(s("memory.limit_in_bytes", m.limit(), "memory.limit"));
            out.extend(s(
                "memory.soft_limit_in_bytes",
                m.reservation(),
                "memory.reservation",
            ));
            out.extend(s("memory.memsw.limit_in_bytes", m.swap(), "memory.swap"));
            out.extend(s(
                "memory.kmem.tcp.limit_in_bytes",
                m.kernel_tcp(),
                "memory.kernelTCP",
            ));
            if let Some(sw) = m.swappiness() {
                if sw > 100 {
                    return Err(refuse(
                        "linux.resources.memory.swappiness",
                        format!("{sw} is above 100"),
                    ));
                }
                out.push(Setting::new("memory.swappiness", sw, "memory.swappiness"));
            }
            if let Some(d) = m.disable_oom_killer() {
                out.push(Setting::new(
                    "memory.oom_control",
                    u8::from(d),
                    "memory.disableOOMKiller",
                ));
            }
        }
    }
    if let Some(c) = r.cpu() {
        cpu(c, v2, &mut out)?;
    }
    if let Some(p) = r.pids() {
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".to_string()
        };
        out.push(Setting::new("pids.max", v, "pids.limit"));
    }
    if let Some(b) = r.block_io() {
        block_io(b, v2, &mut out)?;
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let size = h.page_size();
        if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(refuse(
                format!("linux.resources.hugepageLimits[{i}].pageSize"),
                format!("{size:?} is not a page size like 2MB"),
            ));
        }
        let file = if v2 {
            format!("hugetlb.{size}.max")
        } else {
            format!("hugetlb.{size}.limit_in_bytes")
        };
        out.push(Setting::new(
            &file,
            h.limit(),
            &format!("hugepageLimits[{i}]"),
        ));
    }
    if r.network().is_some() {
        return Err(refuse(
            "linux.resources.network",
            "net_cls/net_prio are not supported",
        ));
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(refuse("linux.resources.rdma", "is not supported"));
    }
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        if !v2 {
            return Err(refuse(
                "linux.resources.unified",
                "needs a pure cgroup v2 host",
            ));
        }
        let mut keys: Vec<_> = u.iter().collect();
        keys.sort();
        for (k, v) in keys {
            let ok = k.contains('.')
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok {
                return Err(refuse(
                    format!("linux.resources.unified[{k:?}]"),
                    "is not a cgroup file name",
                ));
            }
            out.push(Setting::new(k, v, &format!("unified[{k:?}]")));
        }
    }
    Ok(out)
}

fn memory_v2(m: &oci_spec::runtime::LinuxMemory, out: &mut Vec<Setting>) -> Result<()> {
    let max = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    if m.kernel_tcp().is_some() || m.swappiness().is_some() || m.disable_oom_killer() == Some(true)
    {
        return Err(refuse(
            "linux.resources.memory",
            "kernelTCP, swappiness and disableOOMKiller are cgroup v1 only",
        ));
    }
    if let Some(l) = m.limit() {
        out.push(Setting::new("memory.max", max(l), "memory.limit"));
    }
    if let Some(r) = m.reservation() {
        out.push(Setting::new("memory.low", max(r), "memory.reservation"));
    }
    if let Some(s) = m.swap() {
        // OCI swap is memory+swap (v1 memsw); v2 limits swap alone.
        let v = match (s, m.limit()) {
            (s, _) if s < 0 => "max".to_string(),
            (s, Some(l)) if l >= 0 && s >= l => (s - l).to_string(),
            _ => {
                return Err(refuse(
                    "linux.resources.memory.swap",
                    "needs a memory limit not above it on cgroup v2",
                ))
            }
        };
        out.push(Setting::new("memory.swap.max", v, "memory.swap"));
    }
    Ok(())
}

fn cpu(c: &oci_spec::runtime::LinuxCpu, v2: bool, out: &mut Vec<Setting>) -> Result<()> {
    if v2 {
        if c.realtime_period().is_some() || c.realtime_runtime().is_some() {
            return Err(refuse(
                "linux.resources.cpu.realtimeRuntime",
                "realtime scheduling limits are cgroup v1 only",
            ));
        }
        if let Some(s) = c.shares().filter(|s| *s > 0) {
            let weight = 1 + (s.clamp(2, 262_144) - 2) * 9999 / 262_142;
            out.push(Setting::new("cpu.weight", weight, "cpu.shares"));
        }
        if c.quota().is_some() || c.period().is_some() {
            let quota = c
                .quota()
                .filter(|q| *q > 0)
                .map_or("max".to_string(), |q| q.to_string());
            let period = c.period().unwrap_or(100_000);
            out.push(Setting::new(
                "cpu.max",
                format!("{quota} {period}"),
                "cpu.quota",
            ));
        }
        if let Some(b) = c.burst() {
            out.push(Setting::new("cpu.max.burst", b, "cpu.burst"));
        }
        if let Some(i) = c.idle() {
            out.push(Setting::new("cpu.idle", i, "cpu.idle"));
        }
    } else {
        if c.idle().is_some() {
            return Err(refuse("linux.resources.cpu.idle", "is cgroup v2 only"));
        }
        let mut push =
            |file, v: Option<String>, field| out.extend(v.map(|v| Setting::new(file, v, field)));
        push(
            "cpu.shares",
            c.shares().map(|v| v.to_string()),
            "cpu.shares",
        );
        push(
            "cpu.cfs_period_us",
            c.period().map(|v| v.to_string()),
            "cpu.period",
        );
        push(
            "cpu.cfs_quota_us",
            c.quota().map(|v| v.to_string()),
            "cpu.quota",
        );
        push(
            "cpu.cfs_burst_us",
            c.burst().map(|v| v.to_string()),
            "cpu.burst",
        );
        push(
            "cpu.rt_period_us",
            c.realtime_period().map(|v| v.to_string()),
            "cpu.realtimePeriod",
        );
        push(
            "cpu.rt_runtime_us",
            c.realtime_runtime().map(|v| v.to_string()),
            "cpu.realtimeRuntime",
        );
    }
    if let Some(s) = c.cpus().as_ref().filter(|s| !s.is_empty()) {
        out.push(Setting::new("cpuset.cpus", s, "cpu.cpus"));
    }
    if let Some(s) = c.mems().as_ref().filter(|s| !s.is_empty()) {
        out.push(Setting::new("cpuset.mems", s, "cpu.mems"));
    }
    Ok(())
}

fn block_io(b: &oci_spec::runtime::LinuxBlockIo, v2: bool, out: &mut Vec<Setting>) -> Result<()> {
    let weights = b.weight().is_some()
        || b.leaf_weight().is_some()
        || b.weight_device().as_ref().is_some_and(|w| !w.is_empty());
    if weights {
        return Err(refuse(
            "linux.resources.blockIO.weight",
            "proportional I/O weights are not supported",
        ));
    }
    let lists = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
            "throttleReadBpsDevice",
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
            "throttleWriteBpsDevice",
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
            "throttleReadIOPSDevice",
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
            "throttleWriteIOPSDevice",
        ),
    ];
    for (file, list, field) in lists {
        for (i, d) in list.iter().flatten().enumerate() {
            if v2 {
                return Err(refuse(
                    format!("linux.resources.blockIO.{field}"),
                    "is only supported on cgroup v1 hosts",
                ));
            }
            let v = format!("{}:{} {}", d.major(), d.minor(), d.rate());
            out.push(Setting::new(file, v, &format!("blockIO.{field}[{i}]")));
        }
    }
    Ok(())
}

/// The devices cgroup rules of `r` as (`allow`|`deny`, rule) pairs, followed (when the spec has
/// any) by the devices runc always allows: mknod of any node, null, zero, full, random, urandom,
/// tty, ptmx, pts and tun.
pub fn device_rules(r: &LinuxResources) -> Result<Vec<(&'static str, String)>> {
    let list = r.devices().clone().unwrap_or_default();
    let mut out = Vec::new();
    for (i, d) in list.iter().enumerate() {
        out.push((if d.allow() { "allow" } else { "deny" }, device_rule(i, d)?));
    }
    if !out.is_empty() {
        for rule in [
            "c *:* m",
            "b *:* m",
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 5:0 rwm",
            "c 5:2 rwm",
            "c 136:* rwm",
            "c 10:200 rwm",
        ] {
            out.push(("allow", rule.to_string()));
        }
    }
    Ok(out)
}

fn device_rule(i: usize, d: &LinuxDeviceCgroup) -> Result<String> {
    let field = format!("linux.resources.devices[{i}]");
    let access = d.access().clone().unwrap_or_else(|| "rwm".to_string());
    if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(refuse(
            format!("{field}.access"),
            format!("{access:?} is not a subset of rwm"),
        ));
    }
    let t = match d.typ() {
        None | Some(LinuxDeviceType::A) => 'a',
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::P) => {
            return Err(refuse(
                format!("{field}.type"),
                "FIFOs are not cgroup devices",
            ))
        }
    };
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    if t == 'a' {
        let all = access.contains('r') && access.contains('w') && access.contains('m');
        if !all || d.major().is_some_and(|m| m >= 0) || d.minor().is_some_and(|m| m >= 0) {
            return Err(refuse(
                &field,
                "a rule for all devices must cover all numbers and rwm",
            ));
        }
        return Ok("a".to_string());
    }
    Ok(format!(
        "{t} {}:{} {access}",
        num(d.major()),
        num(d.minor())
    ))
}
