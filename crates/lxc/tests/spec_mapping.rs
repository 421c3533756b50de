//! The OCI → LXC mapping observed from inside a real container: process settings, masks,
//! read-only paths and rootfs, mounts, sysctls, capabilities and seccomp.

mod common;

use common::*;
use nexcage_core::backend::Backend;
use serde_json::json;

#[tokio::test]
async fn the_container_sees_what_the_spec_says() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("map");
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("f"), "from the host\n").unwrap();
    let script = r#"
        echo "user=$(id -u):$(id -g):$(id -G)"
        echo "cwd=$(pwd)"
        echo "umask=$(umask)"
        echo "env=$GREETING"
        echo "host=$(hostname)"
        echo "nofile=$(ulimit -n)"
        grep -E '^(NoNewPrivs|CapBnd)' /proc/self/status | tr -s '\t' ' '
        ign=$(grep SigIgn /proc/self/status | cut -f2)
        echo "sigpipe-ignored=$(( (0x$ign >> 12) & 1 ))"
        echo "oom=$(cat /proc/self/oom_score_adj)"
        echo "msgmax=$(cat /proc/sys/kernel/msgmax)"
        touch /rootfs-file 2>/dev/null && echo "rootfs=rw" || echo "rootfs=ro"
        echo x > /proc/sys/kernel/msgmax 2>/dev/null && echo "procsys=rw" || echo "procsys=ro"
        test -e /proc/kcore && echo "kcore=visible" || echo "kcore=hidden"
        echo "acpi=$(ls /proc/acpi | wc -l)"
        cat /data/f
        touch /data/g 2>/dev/null && echo "data=rw" || echo "data=ro"
        echo tmp > /scratch/t && echo "scratch=$(cat /scratch/t)"
        mkdir /scratch/d 2>/dev/null && echo "mkdir=allowed" || echo "mkdir=denied"
        test -c /dev/null && test -c /dev/zero && echo "devices=ok"
        test -d /sys/fs/cgroup/memory && echo "cgroupfs=mounted"
        touch /sys/fs/cgroup/memory/x 2>/dev/null && echo "cgroupfs=rw" || echo "cgroupfs=ro"
        grep -q " /dev/mqueue " /proc/self/mountinfo && echo "mqueue=mounted"
    "#;
    let mut sp = spec(&id, &["/bin/sh", "-c", script]);
    let p = &mut sp["process"];
    p["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 7], "umask": 63});
    p["cwd"] = "/tmp".into();
    p["env"] = json!(["PATH=/bin", "GREETING=hello world"]);
    p["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]);
    p["oomScoreAdj"] = 123.into();
    p["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_CHOWN"]);
    sp["root"]["readonly"] = true.into();
    sp["linux"]["sysctl"] = json!({"kernel.msgmax": "4321"});
    let mounts = sp["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": data.path(), "options": ["rbind", "ro", "rprivate"]}));
    mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=1777", "size=1m"]}));
    sp["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    let mut io = Stdio::new();
    let s = env
        .backend
        .create(create_config(&id, &bundle, sp, io.child(false)))
        .await
        .unwrap();
    env.backend.start(&id).await.unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 0, "stderr: {}", io.err());
    let out = io.out();
    let want = [
        "user=1000:1000:1000 5 7",
        "cwd=/tmp",
        "umask=0077",
        "env=hello world",
        &format!("host={id}"),
        "nofile=321",
        "NoNewPrivs: 1",
        "CapBnd: 0000000000000021",
        "sigpipe-ignored=0",
        "oom=123",
        "msgmax=4321",
        "rootfs=ro",
        "procsys=ro",
        "kcore=hidden",
        "acpi=0",
        "from the host",
        "data=ro",
        "scratch=tmp",
        "mkdir=denied",
        "devices=ok",
        "cgroupfs=mounted",
        "cgroupfs=ro",
        "mqueue=mounted",
    ];
    for w in want {
        assert!(
            out.lines().any(|l| l.trim() == w),
            "missing {w:?} in:\n{out}\nstderr: {}",
            io.err()
        );
    }
    env.backend.delete(&id).await.unwrap();
    assert_eq!(leftovers(&env, &id, &[s.pid]), Vec::<String>::new());
    assert!(!bundle.rootfs().join("rootfs-file").exists());
}
