//! Config generation: resources, devices, and the refusals of mounts and spec sections.

use serde_json::{json, Value};

use super::tests::{base, gen, gen_with, one, proc_host, refused, values, FakeHost};
use super::*;

#[test]
fn v1_resources_map_to_legacy_files_in_order() {
    let mut v = base();
    v["linux"]["resources"] = json!({
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728, "kernelTCP": 1048576,
                   "swappiness": 10, "disableOOMKiller": false},
        "cpu": {"shares": 512, "period": 100000, "quota": 50000, "burst": 1000, "cpus": "0", "mems": "0",
                "realtimePeriod": 1000000, "realtimeRuntime": 0},
        "pids": {"limit": 64},
        "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]
    });
    let g = gen(v);
    let lines: Vec<&str> = g
        .config
        .lines()
        .filter(|l| l.starts_with("lxc.cgroup.") && !l.contains(".dir"))
        .collect();
    assert_eq!(
        lines,
        [
            "lxc.cgroup.memory.limit_in_bytes = 67108864",
            "lxc.cgroup.memory.soft_limit_in_bytes = 33554432",
            "lxc.cgroup.memory.memsw.limit_in_bytes = 134217728",
            "lxc.cgroup.memory.kmem.tcp.limit_in_bytes = 1048576",
            "lxc.cgroup.memory.swappiness = 10",
            "lxc.cgroup.memory.oom_control = 0",
            "lxc.cgroup.cpu.shares = 512",
            "lxc.cgroup.cpu.cfs_period_us = 100000",
            "lxc.cgroup.cpu.cfs_quota_us = 50000",
            "lxc.cgroup.cpu.cfs_burst_us = 1000",
            "lxc.cgroup.cpu.rt_period_us = 1000000",
            "lxc.cgroup.cpu.rt_runtime_us = 0",
            "lxc.cgroup.cpuset.cpus = 0",
            "lxc.cgroup.cpuset.mems = 0",
            "lxc.cgroup.pids.max = 64",
            "lxc.cgroup.blkio.throttle.read_bps_device = 8:0 1048576",
            "lxc.cgroup.hugetlb.2MB.limit_in_bytes = 0",
        ]
    );
}

#[test]
fn v2_resources_are_converted() {
    let mut v = base();
    v["linux"]["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
        "memory": {"limit": 100, "swap": 300, "reservation": 50},
        "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "idle": 0},
        "pids": {"limit": 0},
        "unified": {"memory.high": "90"}
    });
    let host = FakeHost {
        v2: true,
        ..proc_host()
    };
    let g = gen_with(v, &host).unwrap();
    let v2: Vec<&str> = g
        .config
        .lines()
        .filter(|l| l.starts_with("lxc.cgroup2.") && !l.contains("devices"))
        .collect();
    assert_eq!(
        v2,
        [
            "lxc.cgroup2.memory.max = 100",
            "lxc.cgroup2.memory.low = 50",
            "lxc.cgroup2.memory.swap.max = 200",
            "lxc.cgroup2.cpu.weight = 39",
            "lxc.cgroup2.cpu.max = 20000 100000",
            "lxc.cgroup2.cpu.idle = 0",
            "lxc.cgroup2.pids.max = max",
            "lxc.cgroup2.memory.high = 90",
        ]
    );
    assert_eq!(values(&g, "lxc.cgroup2.devices.deny"), ["a"]);
    assert_eq!(values(&g, "lxc.cgroup2.devices.allow")[0], "c 1:3 rw");
}

#[test]
fn device_rules_keep_order_and_append_runcs_defaults() {
    let mut v = base();
    v["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "b", "major": 8, "access": "r"},
        {"allow": false, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
    ]);
    let g = gen(v);
    let rules: Vec<&str> = g
        .config
        .lines()
        .filter(|l| l.contains(".devices."))
        .collect();
    assert_eq!(rules[0], "lxc.cgroup.devices.deny = a");
    assert_eq!(rules[1], "lxc.cgroup.devices.allow = b 8:* r");
    assert_eq!(rules[2], "lxc.cgroup.devices.deny = c 10:200 rwm");
    assert_eq!(rules[3], "lxc.cgroup.devices.allow = c *:* m");
    assert_eq!(rules.len(), 3 + 11);
}

#[test]
fn linux_devices_bind_the_host_node_and_allow_it() {
    let mut v = base();
    v["linux"]["devices"] = json!([{"path": "/dev/dri/card0", "type": "c", "major": 226, "minor": 0, "fileMode": 0o20660, "uid": 0, "gid": 44}]);
    let mut host = proc_host();
    let node = HostNode {
        path: "/dev/dri/card0".into(),
        mode: 0o660,
        uid: 0,
        gid: 44,
    };
    host.devices.push((false, 226, 0, node));
    let g = gen_with(v.clone(), &host).unwrap();
    assert!(values(&g, "lxc.mount.entry")
        .contains(&"/dev/dri/card0 dev/dri/card0 none bind,create=file 0 0".to_string()));
    assert_eq!(
        values(&g, "lxc.cgroup.devices.allow").last().unwrap(),
        "c 226:0 rwm"
    );
    // another group than the host node's cannot be expressed by a bind mount
    v["linux"]["devices"][0]["gid"] = 45.into();
    let e = gen_with(v.clone(), &host).unwrap_err();
    assert!(e.message().contains("linux.devices[0].gid"), "{e}");
    // no such node on the host
    v["linux"]["devices"][0]["minor"] = 1.into();
    refused(v.clone(), "linux.devices[0]");
    v["linux"]["devices"][0]["type"] = "p".into();
    refused(v, "linux.devices[0].type");
}

#[test]
fn resource_refusals_name_the_field() {
    let with = |r: Value| {
        let mut v = base();
        v["linux"]["resources"] = r;
        v
    };
    refused(
        with(json!({"memory": {"kernel": 1}})),
        "linux.resources.memory.kernel",
    );
    refused(
        with(json!({"memory": {"swappiness": 101}})),
        "linux.resources.memory.swappiness",
    );
    refused(
        with(json!({"network": {"classID": 1}})),
        "linux.resources.network",
    );
    refused(
        with(json!({"rdma": {"mlx": {"hcaHandles": 1}}})),
        "linux.resources.rdma",
    );
    refused(
        with(json!({"unified": {"memory.high": "1"}})),
        "linux.resources.unified",
    );
    refused(
        with(json!({"blockIO": {"weight": 500}})),
        "linux.resources.blockIO.weight",
    );
    refused(
        with(json!({"cpu": {"idle": 1}})),
        "linux.resources.cpu.idle",
    );
    refused(
        with(json!({"devices": [{"allow": false, "access": "rwx"}]})),
        "linux.resources.devices[0].access",
    );
    refused(
        with(json!({"devices": [{"allow": false, "access": "r"}]})),
        "linux.resources.devices[0]",
    );
    let host = FakeHost {
        v2: true,
        ..proc_host()
    };
    let mut v = with(json!({"cpu": {"realtimeRuntime": 5}}));
    let e = gen_with(v.clone(), &host).unwrap_err();
    assert!(
        e.message().contains("linux.resources.cpu.realtimeRuntime"),
        "{e}"
    );
    v["linux"]["resources"] = json!({"memory": {"swap": 10}});
    let e = gen_with(v, &host).unwrap_err();
    assert!(e.message().contains("linux.resources.memory.swap"), "{e}");
}

#[test]
fn mount_refusals_name_the_field() {
    let with = |m: Value| {
        let mut v = base();
        v["mounts"] = json!([m]);
        v
    };
    refused(
        with(
            json!({"destination": "/d", "type": "bind", "source": "/proc/acpi", "options": ["rbind", "rslave"]}),
        ),
        "mounts[0].options",
    );
    refused(
        with(
            json!({"destination": "/d", "type": "bind", "source": "/proc/acpi", "options": ["bind", "idmap"]}),
        ),
        "mounts[0].options",
    );
    refused(
        with(json!({"destination": "/d", "type": "bind", "source": "/nope", "options": ["bind"]})),
        "mounts[0].source",
    );
    refused(
        with(json!({"destination": "/d", "type": "overlay", "source": "overlay"})),
        "mounts[0].type",
    );
    refused(
        with(json!({"destination": "/d", "type": "devpts", "source": "devpts"})),
        "mounts[0]",
    );
    refused(
        with(
            json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["mode=0600"]}),
        ),
        "mounts[0].options",
    );
    refused(
        with(
            json!({"destination": "/d", "type": "tmpfs", "source": "tmpfs", "options": ["exotic=1"]}),
        ),
        "mounts[0].options",
    );
    refused(
        with(json!({"destination": "/d/../x", "type": "tmpfs", "source": "tmpfs"})),
        "mounts[0].destination",
    );
    refused(
        with(json!({"destination": "/d", "type": "cgroup", "source": "cgroup"})),
        "mounts[0]",
    );
    refused(
        with(
            json!({"destination": "/d", "type": "tmpfs", "source": "tmpfs", "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
        ),
        "mounts[0]",
    );
}

#[test]
fn spec_level_refusals_name_the_field() {
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = base();
        f(&mut v);
        v
    };
    refused(
        with(&|v| v["linux"]["intelRdt"] = json!({"closID": "c"})),
        "linux.intelRdt",
    );
    refused(
        with(&|v| v["hooks"] = json!({"prestart": [{"path": "/bin/true"}]})),
        "hooks",
    );
    refused(with(&|v| v["domainname"] = "example".into()), "domainname");
    refused(
        with(&|v| v["linux"]["mountLabel"] = "system_u:object_r:x".into()),
        "linux.mountLabel",
    );
    refused(
        with(&|v| v["linux"]["personality"] = json!({"domain": "LINUX32"})),
        "linux.personality",
    );
    refused(
        with(&|v| v["linux"]["rootfsPropagation"] = "rshared".into()),
        "linux.rootfsPropagation",
    );
    refused(
        with(&|v| {
            v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}])
        }),
        "linux.uidMappings",
    );
    refused(
        with(&|v| v["linux"]["cgroupsPath"] = "system.slice:cri:c1".into()),
        "linux.cgroupsPath",
    );
    refused(
        with(&|v| v["linux"]["cgroupsPath"] = "relative/c1".into()),
        "linux.cgroupsPath",
    );
    refused(
        with(&|v| v["linux"]["sysctl"] = json!({"bad key": "1"})),
        "linux.sysctl",
    );
    refused(with(&|v| v["process"]["args"] = json!([])), "process.args");
    refused(
        with(&|v| v["process"]["cwd"] = "relative".into()),
        "process.cwd",
    );
    refused(
        with(&|v| v["process"]["env"] = json!(["NOEQUALS"])),
        "process.env[0]",
    );
    refused(
        with(&|v| v["process"]["env"] = json!(["A=trailing "])),
        "process.env[0]",
    );
    refused(
        with(&|v| v["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_RT", "priority": 1})),
        "process.ioPriority",
    );
    refused(
        with(&|v| v["process"]["scheduler"] = json!({"policy": "SCHED_FIFO"})),
        "process.scheduler",
    );
    refused(
        with(&|v| v["process"]["capabilities"]["ambient"] = json!(["CAP_KILL"])),
        "process.capabilities.ambient",
    );
    refused(
        with(&|v| v["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"])),
        "process.capabilities.inheritable",
    );
    refused(with(&|v| v["hostname"] = "two\nlines".into()), "hostname");
    let no_root = with(&|v| drop(v.as_object_mut().unwrap().remove("root")));
    refused(no_root, "root");
}

#[test]
fn sysctls_are_checked_and_kept_for_the_backend() {
    let mut v = base();
    v["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "65536"});
    v["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    let g = gen(v.clone());
    let want = [("kernel.msgmax", "65536"), ("net.ipv4.ip_forward", "1")];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(g.sysctls, want);
    assert!(
        values(&g, "lxc.sysctl.kernel.msgmax").is_empty(),
        "LXC would write them after /proc/sys is read-only"
    );
    assert_eq!(one(&g, "lxc.cgroup.dir.container"), "nexcage/default/c1");
    // not namespaced: it would change the host
    v["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
    let m = refused(v.clone(), "linux.sysctl[\"vm.swappiness\"]");
    assert!(m.contains("not in a separate kernel namespace"), "{m}");
    // a network sysctl with the host's network
    v["linux"]["sysctl"] = json!({"net.core.somaxconn": "1024"});
    v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "uts"}]);
    let m = refused(v, "linux.sysctl[\"net.core.somaxconn\"]");
    assert!(m.contains("own net namespace"), "{m}");
}
