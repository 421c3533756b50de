//! Config generation: `linux.seccomp` → LXC policy, and its refusals.

use serde_json::{json, Value};

use super::tests::{base, gen, one, refused};

fn default_seccomp() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 40, "op": "SCMP_CMP_NE"}, {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["kexec_load"], "action": "SCMP_ACT_KILL"}
        ]
    })
}

#[test]
fn seccomp_translates_to_an_lxc_v2_policy() {
    let mut v = base();
    v["linux"]["seccomp"] = default_seccomp();
    let g = gen(v);
    assert_eq!(
        one(&g, "lxc.seccomp.profile"),
        "/run/nexcage/lxc/default/c1/seccomp"
    );
    assert_eq!(one(&g, "lxc.seccomp.allow_nesting"), "1");
    assert_eq!(
        g.seccomp.unwrap(),
        "2\nallowlist errno 1\n[all]\nread allow\nwrite allow\npersonality allow [0,0,SCMP_CMP_EQ]\n\
         clone allow [0,0,SCMP_CMP_MASKED_EQ,2114060288]\n\
         socket allow [0,40,SCMP_CMP_NE]\nsocket allow [0,16,SCMP_CMP_EQ]\n\
         ptrace errno 38\nkexec_load kill\n"
    );
}

#[test]
fn seccomp_default_allow_is_a_denylist() {
    let mut v = base();
    let mut s = default_seccomp();
    s["defaultAction"] = "SCMP_ACT_ALLOW".into();
    s["syscalls"] = json!([{"names": ["reboot"], "action": "SCMP_ACT_TRAP"}, {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]);
    v["linux"]["seccomp"] = s;
    assert_eq!(gen(v).seccomp.unwrap(), "2\ndenylist\n[all]\nreboot trap\n");
}

#[test]
fn seccomp_refusals_name_the_field() {
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = base();
        let mut s = default_seccomp();
        f(&mut s);
        v["linux"]["seccomp"] = s;
        v
    };
    let m = refused(
        with(&|s| s["syscalls"][0]["action"] = "SCMP_ACT_TRACE".into()),
        "linux.seccomp.syscalls[0].action",
    );
    assert!(m.contains("SCMP_ACT_TRACE"), "{m}");
    refused(
        with(&|s| s["syscalls"][1]["action"] = "SCMP_ACT_LOG".into()),
        "linux.seccomp.syscalls[1].action",
    );
    refused(
        with(&|s| s["defaultAction"] = "SCMP_ACT_KILL_PROCESS".into()),
        "linux.seccomp.defaultAction",
    );
    refused(
        with(&|s| s["syscalls"][0]["action"] = "SCMP_ACT_NOTIFY".into()),
        "linux.seccomp.syscalls[0].action",
    );
    refused(
        with(&|s| s["listenerPath"] = "/run/l.sock".into()),
        "linux.seccomp.listenerPath",
    );
    refused(
        with(&|s| s["flags"] = json!(["SECCOMP_FILTER_FLAG_LOG"])),
        "linux.seccomp.flags",
    );
    refused(
        with(&|s| s["architectures"] = json!(["SCMP_ARCH_X86_64"])),
        "linux.seccomp.architectures",
    );
    refused(
        with(&|s| {
            s["syscalls"][0]["args"] = json!([{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])
        }),
        "linux.seccomp.syscalls[0].args[0].index",
    );
}
