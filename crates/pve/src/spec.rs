//! The OCI spec → `pct create` arguments (a pure function, unit-tested): explicit limits,
//! privilege from the spec's user namespace, hostname, tags and description naming the pod.

use nexcage_proxmox::{sanitize_tag, CreateCt, Vmid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// CRI annotations naming the pod and the container.
pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
/// The pod's Kubernetes namespace.
pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
/// The container's name in the pod.
pub const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
/// The tag every CT nexcage makes carries (the sweep only ever touches CTs with it).
pub const TAG: &str = "nexcage";

/// What the host has, for limits the spec leaves open (written explicitly, never Proxmox's
/// 512 MiB defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// MemTotal in MiB.
    pub memory_mib: u64,
    /// SwapTotal in MiB.
    pub swap_mib: u64,
    /// Online CPUs.
    pub cpus: u32,
}

impl HostLimits {
    /// Read from `/proc/meminfo` and the CPU count.
    pub fn read() -> HostLimits {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib = |key: &str| {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        HostLimits {
            memory_mib: (kib("MemTotal:") / 1024).max(16),
            swap_mib: kib("SwapTotal:") / 1024,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        }
    }
}

/// Everything of the spec that goes into `pct create`.
#[derive(Debug, Clone, PartialEq)]
pub struct CtParams {
    /// `--memory` MiB.
    pub memory_mib: u64,
    /// `--swap` MiB.
    pub swap_mib: u64,
    /// `--cores`.
    pub cores: u32,
    /// `--cpulimit` (0 = none).
    pub cpulimit: f64,
    /// `--cpuunits` (cgroup v2 weight).
    pub cpuunits: u32,
    /// `--unprivileged`.
    pub unprivileged: bool,
    /// `--hostname`.
    pub hostname: String,
    /// `--tags`.
    pub tags: Vec<String>,
    /// `--description`.
    pub description: String,
}

fn mib_up(bytes: i64) -> u64 {
    (bytes.max(0) as u64).div_ceil(1024 * 1024)
}

/// Number of CPUs in a cpuset list (`0-3,6`).
fn cpuset_count(s: &str) -> Option<u32> {
    let mut n = 0u32;
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<u32>().ok()?.checked_sub(a.parse::<u32>().ok()?)? + 1,
            None => part.parse::<u32>().map(|_| 1).ok()?,
        };
    }
    (n > 0).then_some(n)
}

/// cpu.shares → cgroup v2 cpu.weight (the conversion runc and crun use).
fn shares_to_weight(shares: u64) -> u32 {
    if shares == 0 {
        return 100;
    }
    let s = shares.clamp(2, 262_144);
    (1 + ((s - 2) * 9999) / 262_142) as u32
}

/// A DNS label Proxmox accepts (`[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`, at most 63 here).
pub fn hostname_label(s: &str) -> Option<String> {
    let t: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    let t = t.trim_matches('-').to_string();
    (!t.is_empty()).then_some(t)
}

/// The parameters of container `id` (containerd namespace `ns`) as CT `vmid`.
pub fn params(spec: &Spec, id: &str, ns: &str, vmid: Vmid, host: HostLimits) -> CtParams {
    let res = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let mem = res.and_then(|r| r.memory().as_ref());
    let limit = mem.and_then(|m| m.limit()).filter(|l| *l > 0);
    let swap_total = mem.and_then(|m| m.swap()).filter(|s| *s > 0);
    let (memory_mib, swap_mib) = match (limit, swap_total) {
        (Some(l), Some(s)) => (mib_up(l).max(16), mib_up(s.saturating_sub(l))),
        (Some(l), None) => (mib_up(l).max(16), 0),
        (None, _) => (host.memory_mib, host.swap_mib),
    };
    let cpu = res.and_then(|r| r.cpu().as_ref());
    let quota = cpu.and_then(|c| c.quota()).filter(|q| *q > 0);
    let period = cpu
        .and_then(|c| c.period())
        .filter(|p| *p > 0)
        .unwrap_or(100_000);
    let cpulimit = quota.map_or(0.0, |q| ((q as f64 / period as f64) * 100.0).ceil() / 100.0);
    let cores = cpu
        .and_then(|c| c.cpus().as_deref())
        .and_then(cpuset_count)
        .or_else(|| (cpulimit > 0.0).then(|| cpulimit.ceil() as u32))
        .unwrap_or(host.cpus)
        .clamp(1, 8192);
    let cpuunits = cpu.and_then(|c| c.shares()).map_or(100, shares_to_weight);
    let unprivileged = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
    let a = spec.annotations().clone().unwrap_or_default();
    let get = |k: &str| a.get(k).filter(|v| !v.is_empty()).cloned();
    let (pod_ns, pod, cname) = (
        get(SANDBOX_NAMESPACE),
        get(SANDBOX_NAME),
        get(CONTAINER_NAME),
    );
    let hostname = spec
        .hostname()
        .as_deref()
        .and_then(hostname_label)
        .unwrap_or_else(|| format!("nexcage-{vmid}"));
    let mut tags = vec![TAG.to_string(), sanitize_tag(&format!("ns-{ns}"))];
    if let (Some(pns), Some(p)) = (&pod_ns, &pod) {
        tags.push(sanitize_tag(&format!("pod-{pns}-{p}")));
    }
    if let Some(c) = &cname {
        tags.push(sanitize_tag(&format!("ctr-{c}")));
    }
    let mut description = format!("nexcage container {id}\ncontainerd namespace: {ns}");
    if let (Some(pns), Some(p)) = (&pod_ns, &pod) {
        description.push_str(&format!("\npod: {pns}/{p}"));
    }
    if let Some(c) = &cname {
        description.push_str(&format!("\ncontainer: {c}"));
    }
    CtParams {
        memory_mib,
        swap_mib,
        cores,
        cpulimit,
        cpuunits,
        unprivileged,
        hostname,
        tags,
        description,
    }
}

/// `pct create <vmid> <template> --rootfs <rootfs> …` from `p`.
pub fn create_args(vmid: Vmid, template: &str, rootfs: &str, p: &CtParams) -> CreateCt {
    let mut c = CreateCt::new(vmid, template, rootfs, p.memory_mib, p.swap_mib)
        .ostype("unmanaged")
        .arch("amd64")
        .unprivileged(p.unprivileged)
        .cores(p.cores)
        .cpulimit(p.cpulimit)
        .cpuunits(p.cpuunits)
        .hostname(p.hostname.clone())
        .description(p.description.clone());
    for t in &p.tags {
        c = c.tag(t.clone());
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: HostLimits = HostLimits {
        memory_mib: 7936,
        swap_mib: 1024,
        cpus: 2,
    };

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn limits_come_from_the_spec() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","hostname":"web_0","annotations":{
                "io.kubernetes.cri.sandbox-name":"web","io.kubernetes.cri.sandbox-namespace":"Shop",
                "io.kubernetes.cri.container-name":"nginx"},
              "linux":{"resources":{"memory":{"limit":268435456,"swap":402653184},
                "cpu":{"quota":150000,"period":100000,"shares":512}}}}"#,
        );
        let p = params(&s, "abc", "k8s.io", 100123, HOST);
        assert_eq!((p.memory_mib, p.swap_mib), (256, 128));
        assert_eq!((p.cores, p.cpulimit, p.cpuunits), (2, 1.5, 20));
        assert!(!p.unprivileged);
        assert_eq!(p.hostname, "web-0");
        assert_eq!(
            p.tags,
            ["nexcage", "ns-k8s.io", "pod-shop-web", "ctr-nginx"]
        );
        assert_eq!(
            p.description,
            "nexcage container abc\ncontainerd namespace: k8s.io\npod: Shop/web\ncontainer: nginx"
        );
        let argv = create_args(100123, "/e.tar", "/b/rootfs", &p).argv();
        let joined = argv.join(" ");
        for want in [
            "--ostype unmanaged",
            "--arch amd64",
            "--unprivileged 0",
            "--rootfs /b/rootfs",
            "--memory 256",
            "--swap 128",
            "--cores 2",
            "--cpulimit 1.5",
            "--cpuunits 20",
            "--hostname web-0",
            "--tags nexcage;ns-k8s.io;pod-shop-web;ctr-nginx",
        ] {
            assert!(joined.contains(want), "{want} missing in {joined}");
        }
    }

    #[test]
    fn open_limits_are_written_as_the_hosts_never_proxmox_defaults() {
        let p = params(
            &spec(r#"{"ociVersion":"1.0.2"}"#),
            "c1",
            "default",
            100200,
            HOST,
        );
        assert_eq!((p.memory_mib, p.swap_mib), (7936, 1024));
        assert_eq!((p.cores, p.cpulimit, p.cpuunits), (2, 0.0, 100));
        assert_eq!(p.hostname, "nexcage-100200");
        assert_eq!(p.tags, ["nexcage", "ns-default"]);
    }

    #[test]
    fn cpuset_gives_cores_and_a_user_namespace_makes_it_unprivileged() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"user"},{"type":"mount"}],
                "resources":{"memory":{"limit":1000},"cpu":{"cpus":"0-2,5"}}}}"#,
        );
        let p = params(&s, "c", "n", 100100, HOST);
        assert!(p.unprivileged);
        assert_eq!(p.cores, 4);
        assert_eq!(
            (p.memory_mib, p.swap_mib),
            (16, 0),
            "at least Proxmox's minimum"
        );
    }

    #[test]
    fn hostnames_are_dns_labels() {
        assert_eq!(hostname_label("a_b.c").as_deref(), Some("a-b-c"));
        assert_eq!(hostname_label("--"), None);
    }
}
