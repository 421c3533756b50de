//! Config generation: the base spec, process, namespaces and mounts. Refusals and resources are in
//! `tests_more.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nexcage_core::{Error, ErrorKind, HasKind};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use super::lines::Conf;
use super::*;

/// A host whose paths, devices and cgroup layout the test decides.
#[derive(Debug, Default)]
pub struct FakeHost {
    pub v2: bool,
    pub kinds: HashMap<PathBuf, Kind>,
    pub devices: Vec<(bool, i64, i64, HostNode)>,
}

impl Host for FakeHost {
    fn cgroup2(&self) -> bool {
        self.v2
    }
    fn arch(&self) -> &str {
        "x86_64"
    }
    fn kind(&self, path: &Path) -> Option<Kind> {
        self.kinds.get(path).copied()
    }
    fn device(&self, block: bool, major: i64, minor: i64) -> Option<HostNode> {
        self.devices
            .iter()
            .find(|d| d.0 == block && d.1 == major && d.2 == minor)
            .map(|d| d.3.clone())
    }
}

impl FakeHost {
    pub fn with(paths: &[(&str, Kind)]) -> FakeHost {
        FakeHost {
            kinds: paths.iter().map(|(p, k)| (PathBuf::from(p), *k)).collect(),
            ..Default::default()
        }
    }
}

/// A spec shaped like containerd's default (`ctr run`), without seccomp.
pub fn base() -> Value {
    json!({
        "ociVersion": "1.1.0",
        "process": {
            "user": {"uid": 0, "gid": 0, "additionalGids": [0, 10]},
            "args": ["/bin/sh", "-c", "echo hi"],
            "env": ["PATH=/usr/bin:/bin", "GREETING=hello world"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs"},
        "hostname": "box",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "cgroupsPath": "/default/c1",
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/missing"],
            "readonlyPaths": ["/proc/sys", "/proc/missing"]
        }
    })
}

pub fn spec(v: Value) -> Spec {
    serde_json::from_value(v).expect("test spec parses")
}

pub fn gen_with(v: Value, host: &FakeHost) -> Result<Generated, Error> {
    let s = spec(v);
    let paths = Paths::new("/run/nexcage/lxc/default/c1");
    let input = Input {
        id: "c1",
        namespace: "default",
        bundle: Path::new("/b"),
        spec: &s,
        paths: &paths,
    };
    generate(&input, host)
}

pub fn proc_host() -> FakeHost {
    FakeHost::with(&[
        ("/proc/acpi", Kind::Dir),
        ("/proc/kcore", Kind::File),
        ("/proc/sys", Kind::Dir),
    ])
}

pub fn gen(v: Value) -> Generated {
    gen_with(v, &proc_host()).expect("generates")
}

pub fn values(g: &Generated, key: &str) -> Vec<String> {
    Conf::values(&g.config, key)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

pub fn one(g: &Generated, key: &str) -> String {
    let v = values(g, key);
    assert_eq!(v.len(), 1, "{key} in\n{}", g.config);
    v[0].clone()
}

/// The refusal of `v`: InvalidArgument naming `field`.
pub fn refused(v: Value, field: &str) -> String {
    let e = gen_with(v, &proc_host()).expect_err("must be refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains(field), "{field} not named in: {e}");
    e.message().to_string()
}

#[test]
fn base_spec_maps_root_process_and_files() {
    let g = gen(base());
    assert_eq!(one(&g, "lxc.rootfs.path"), "dir:/b/rootfs");
    assert_eq!(
        one(&g, "lxc.rootfs.mount"),
        "/run/nexcage/lxc/default/c1/rootfs.mnt"
    );
    assert_eq!(one(&g, "lxc.console.path"), "none");
    assert_eq!(
        one(&g, "lxc.log.file"),
        "/run/nexcage/lxc/default/c1/lxc.log"
    );
    assert_eq!(
        one(&g, "lxc.hook.stop"),
        "/run/nexcage/lxc/default/c1/hook-stop"
    );
    assert_eq!(one(&g, "lxc.uts.name"), "box");
    assert_eq!(one(&g, "lxc.init.uid"), "0");
    assert_eq!(one(&g, "lxc.init.gid"), "0");
    assert_eq!(one(&g, "lxc.init.groups"), "0,10");
    assert_eq!(one(&g, "lxc.init.cwd"), "/");
    assert_eq!(
        values(&g, "lxc.environment"),
        ["PATH=/usr/bin:/bin", "GREETING=hello world"]
    );
    assert_eq!(one(&g, "lxc.cap.keep"), "chown kill net_bind_service");
    assert_eq!(one(&g, "lxc.no_new_privs"), "1");
    assert_eq!(one(&g, "lxc.prlimit.nofile"), "512:1024");
    assert_eq!(one(&g, "lxc.apparmor.profile"), "unconfined");
    assert_eq!(
        one(&g, "lxc.hook.start-host"),
        "/run/nexcage/lxc/default/c1/hook-start-host"
    );
    assert!(values(&g, "lxc.hook.mount").is_empty());
    assert_eq!(g.umask, 0o022);
    assert_eq!(g.seccomp, None);
    assert_eq!(g.mount_hook, None);
}

#[test]
fn base_spec_maps_namespaces_and_cgroups() {
    let g = gen(base());
    assert_eq!(one(&g, "lxc.namespace.clone"), "pid ipc uts mnt net");
    assert_eq!(one(&g, "lxc.net.0.type"), "empty");
    assert_eq!(one(&g, "lxc.cgroup.dir.container"), "default/c1");
    assert_eq!(
        one(&g, "lxc.cgroup.dir.monitor"),
        "nexcage-lxc.monitor/default/c1"
    );
    assert_eq!(
        one(&g, "lxc.cgroup.dir.monitor.pivot"),
        "nexcage-lxc.monitor"
    );
    assert_eq!(g.cgroups.container, "default/c1");
    let deny = values(&g, "lxc.cgroup.devices.deny");
    assert_eq!(deny, ["a"]);
    let allow = values(&g, "lxc.cgroup.devices.allow");
    assert!(
        allow.contains(&"c 1:3 rwm".to_string()) && allow.contains(&"c 136:* rwm".to_string()),
        "{allow:?}"
    );
}

#[test]
fn base_spec_maps_mounts_in_order() {
    let g = gen(base());
    assert_eq!(one(&g, "lxc.autodev"), "1");
    assert_eq!(one(&g, "lxc.pty.max"), "1024");
    assert_eq!(one(&g, "lxc.mount.auto"), "cgroup:ro:force");
    let e = values(&g, "lxc.mount.entry");
    assert_eq!(
        e,
        [
            "proc proc proc nosuid,noexec,nodev,create=dir 0 0",
            "tmpfs dev tmpfs nosuid,strictatime,mode=755,size=65536k 0 0",
            "shm dev/shm tmpfs nosuid,noexec,nodev,mode=1777,size=65536k,create=dir 0 0",
            "mqueue dev/mqueue mqueue nosuid,noexec,nodev,create=dir 0 0",
            "sysfs sys sysfs nosuid,noexec,nodev,ro,create=dir 0 0",
            "tmpfs proc/acpi tmpfs ro 0 0",
            "/dev/null proc/kcore none bind 0 0",
            "/run/nexcage/lxc/default/c1/rootfs.mnt/proc/sys proc/sys none rbind,ro 0 0",
        ]
    );
}

#[test]
fn process_user_umask_lsm_and_oom_score() {
    let mut v = base();
    v["process"]["user"] = json!({"uid": 1000, "gid": 1001, "umask": 63});
    v["process"]["cwd"] = "/work dir".into();
    v["process"]["apparmorProfile"] = "my-profile".into();
    v["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0".into();
    v["process"]["oomScoreAdj"] = 500.into();
    v["process"]["noNewPrivileges"] = false.into();
    v["process"]["rlimits"] = json!([{"type": "RLIMIT_CORE", "hard": u64::MAX, "soft": 0}]);
    let g = gen(v);
    assert_eq!(one(&g, "lxc.init.uid"), "1000");
    assert_eq!(one(&g, "lxc.init.gid"), "1001");
    assert!(values(&g, "lxc.init.groups").is_empty());
    assert_eq!(one(&g, "lxc.init.cwd"), "/work dir");
    assert_eq!(g.umask, 0o077);
    assert_eq!(one(&g, "lxc.apparmor.profile"), "my-profile");
    assert_eq!(
        one(&g, "lxc.selinux.context"),
        "system_u:system_r:container_t:s0"
    );
    assert_eq!(one(&g, "lxc.proc.oom_score_adj"), "500");
    assert!(values(&g, "lxc.no_new_privs").is_empty());
    assert_eq!(one(&g, "lxc.prlimit.core"), "0:unlimited");
}

#[test]
fn capabilities_absent_or_empty_keep_none() {
    let mut v = base();
    v["process"].as_object_mut().unwrap().remove("capabilities");
    assert_eq!(one(&gen(v.clone()), "lxc.cap.keep"), "none");
    v["process"]["capabilities"] = json!({"bounding": []});
    assert_eq!(one(&gen(v), "lxc.cap.keep"), "none");
}

#[test]
fn joined_namespaces_are_shared_by_path() {
    let mut v = base();
    v["hostname"] = Value::Null;
    v["linux"]["namespaces"] = json!([
        {"type": "mount"}, {"type": "pid"},
        {"type": "network", "path": "/proc/42/ns/net"},
        {"type": "ipc", "path": "/var/run/netns/x-ipc"},
        {"type": "uts", "path": "/proc/42/ns/uts"}
    ]);
    let g = gen(v);
    assert_eq!(one(&g, "lxc.namespace.clone"), "mnt pid");
    assert_eq!(one(&g, "lxc.namespace.share.net"), "/proc/42/ns/net");
    assert_eq!(one(&g, "lxc.namespace.share.ipc"), "/var/run/netns/x-ipc");
    assert_eq!(one(&g, "lxc.namespace.share.uts"), "/proc/42/ns/uts");
    assert_eq!(one(&g, "lxc.net.0.type"), "none");
}

#[test]
fn absent_namespaces_are_the_hosts() {
    let mut v = base();
    v["hostname"] = Value::Null;
    v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "cgroup"}]);
    let g = gen(v);
    assert_eq!(one(&g, "lxc.namespace.clone"), "mnt cgroup");
    assert_eq!(one(&g, "lxc.net.0.type"), "none", "host network");
}

#[test]
fn namespace_refusals() {
    let mut v = base();
    v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "user"}]);
    refused(v.clone(), "linux.namespaces[1]");
    v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "time"}]);
    refused(v.clone(), "linux.namespaces[1]");
    v["linux"]["namespaces"] = json!([{"type": "mount", "path": "/proc/1/ns/mnt"}]);
    refused(v.clone(), "linux.namespaces[0]");
    v["linux"]["namespaces"] = json!([{"type": "pid"}]);
    refused(v.clone(), "linux.namespaces");
    v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "network", "path": "ns/net"}]);
    refused(v.clone(), "linux.namespaces[1]");
    // hostname without a uts namespace, or in a joined one LXC would not set it in
    v["linux"]["namespaces"] = json!([{"type": "mount"}]);
    refused(v.clone(), "hostname");
    v["linux"]["namespaces"] =
        json!([{"type": "mount"}, {"type": "uts", "path": "/proc/1/ns/uts"}]);
    refused(v, "hostname");
}

#[test]
fn bind_mounts_map_options_and_create_the_right_target() {
    let mut v = base();
    v["mounts"] = json!([
        {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro", "nosuid", "rprivate"]},
        {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/c1/hosts", "options": ["bind", "rw"]},
        {"destination": "/in bundle", "source": "relative dir", "options": ["bind"]}
    ]);
    let mut host = proc_host();
    host.kinds.insert("/srv/data".into(), Kind::Dir);
    host.kinds.insert("/var/lib/c1/hosts".into(), Kind::File);
    host.kinds.insert("/b/relative dir".into(), Kind::Dir);
    let g = gen_with(v, &host).unwrap();
    let e = values(&g, "lxc.mount.entry");
    assert_eq!(
        e[0],
        "/srv/data data none rbind,ro,nosuid,rprivate,create=dir 0 0"
    );
    assert_eq!(
        e[1],
        "/var/lib/c1/hosts etc/hosts none bind,rw,create=file 0 0"
    );
    assert_eq!(
        e[2],
        "/b/relative\\040dir in\\040bundle none bind,create=dir 0 0"
    );
}

#[test]
fn readonly_rootfs_and_private_propagation_use_the_mount_hook() {
    let mut v = base();
    v["root"]["readonly"] = true.into();
    v["linux"]["rootfsPropagation"] = "rprivate".into();
    let g = gen(v);
    assert_eq!(
        one(&g, "lxc.hook.mount"),
        "/run/nexcage/lxc/default/c1/hook-mount"
    );
    let hook = g.mount_hook.unwrap();
    assert!(
        hook.contains("mount --make-rprivate \"$LXC_ROOTFS_MOUNT\""),
        "{hook}"
    );
    assert!(
        hook.contains("mount -o remount,bind,ro \"$LXC_ROOTFS_MOUNT\""),
        "{hook}"
    );
}

#[test]
fn masked_and_readonly_paths_in_the_rootfs_are_looked_up_there() {
    let mut v = base();
    v["linux"]["maskedPaths"] = json!(["/etc/secret"]);
    v["linux"]["readonlyPaths"] = json!(["/etc"]);
    let host = FakeHost::with(&[
        ("/b/rootfs/etc/secret", Kind::File),
        ("/b/rootfs/etc", Kind::Dir),
    ]);
    let g = gen_with(v, &host).unwrap();
    let e = values(&g, "lxc.mount.entry");
    assert!(
        e.contains(&"/dev/null etc/secret none bind 0 0".to_string()),
        "{e:?}"
    );
    assert!(
        e.contains(&"/run/nexcage/lxc/default/c1/rootfs.mnt/etc etc none rbind,ro 0 0".to_string()),
        "{e:?}"
    );
}

#[test]
fn validate_needs_no_host() {
    validate(&spec(base())).unwrap();
    let mut v = base();
    v["linux"]["intelRdt"] = json!({"closID": "x"});
    let e = validate(&spec(v)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("linux.intelRdt"), "{e}");
}
