//! Cgroups and namespaces through real LXC: update, stats, pids, an enforced memory limit with
//! its OOM event, and joining another process's network namespace by path.

mod common;

use std::time::Duration;

use common::*;
use nexcage_core::backend::{Backend, StatsSource, Update};
use nexcage_core::cgroup::{Cgroup, OomWatcher};
use serde_json::json;

#[tokio::test]
async fn update_stats_and_pids() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("res");
    let mut io = Stdio::new();
    let args = ["/bin/sh", "-c", "sleep 1000 & sleep 1000"];
    let s = env
        .backend
        .create(create_config(
            &id,
            &bundle,
            spec(&id, &args),
            io.child(false),
        ))
        .await
        .unwrap();
    env.backend.start(&id).await.unwrap();
    let init = s.pid;
    eventually("three processes in the container", || {
        cgroup_pids(&env, &id).len() >= 3
    })
    .await;
    let pids = env.backend.pids(&id).await.unwrap();
    assert!(pids.contains(&init), "{pids:?} lacks the init {init}");

    let r: oci_spec::runtime::LinuxResources = serde_json::from_value(json!({
        "memory": {"limit": 67108864, "swap": 67108864},
        "cpu": {"shares": 256},
        "pids": {"limit": 50}
    }))
    .unwrap();
    env.backend.update(&id, &r).await.unwrap();
    let cg = Cgroup::of_pid(init).unwrap();
    let read = |c: &str, f: &str| {
        std::fs::read_to_string(cg.controller_dir(c).unwrap().join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(read("memory", "memory.memsw.limit_in_bytes"), "67108864");
    assert_eq!(read("cpu", "cpu.shares"), "256");
    assert_eq!(read("pids", "pids.max"), "50");
    assert!(
        cg.controller_dir("memory")
            .unwrap()
            .ends_with(format!("nexcage-lxc-test/{id}")),
        "the container runs in the spec's cgroupsPath: {:?}",
        cg.controller_dir("memory")
    );
    // raising the limit above memsw needs memsw first; update orders the writes itself
    let up: oci_spec::runtime::LinuxResources =
        serde_json::from_value(json!({"memory": {"limit": 134217728, "swap": 134217728}})).unwrap();
    env.backend.update(&id, &up).await.unwrap();
    assert_eq!(read("memory", "memory.limit_in_bytes"), "134217728");

    let st = env.backend.stats(&id).await.unwrap();
    assert!(st.memory.usage > 0, "{st:?}");
    assert!(st.pids.current >= 3, "{st:?}");
    assert_eq!(st.pids.limit, 50);
    assert_eq!(st.memory.limit, 134217728);

    env.backend.delete(&id).await.unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 137);
    assert_eq!(leftovers(&env, &id, &pids), Vec::<String>::new());
}

fn cgroup_pids(env: &Env, id: &str) -> Vec<u32> {
    let _ = env;
    nexcage_lxc::cgroups::procs(&format!("nexcage-lxc-test/{id}")).unwrap_or_default()
}

#[tokio::test]
async fn memory_limit_is_enforced_and_the_oom_kill_is_seen() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("oom");
    let mut io = Stdio::new();
    // tail keeps an endless line from /dev/zero in memory until the limit stops it
    let mut sp = spec(&id, &["/bin/tail", "/dev/zero"]);
    sp["linux"]["resources"]["memory"] = json!({"limit": 33554432, "swap": 33554432});
    let s = env
        .backend
        .create(create_config(&id, &bundle, sp, io.child(false)))
        .await
        .unwrap();
    let cg = Cgroup::of_pid(s.pid).unwrap();
    let limit = std::fs::read_to_string(
        cg.controller_dir("memory")
            .unwrap()
            .join("memory.limit_in_bytes"),
    )
    .unwrap();
    assert_eq!(limit.trim(), "33554432");
    let mut oom = OomWatcher::new(&cg).unwrap();
    env.backend.start(&id).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(30), oom.next()).await;
    assert_eq!(
        ev,
        Ok(Some(())),
        "no OOM event from {:?}",
        cg.controller_dir("memory")
    );
    assert_eq!(
        exit_code(s.exit, 30).await,
        137,
        "the OOM-killed application"
    );
    env.backend.delete(&id).await.unwrap();
    assert_eq!(leftovers(&env, &id, &[s.pid]), Vec::<String>::new());
}

#[tokio::test]
async fn joins_another_process_network_namespace_by_path() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("net");
    let since = std::time::Instant::now();
    let holder = std::process::Command::new("unshare")
        .args(["-n", "sleep", "300"])
        .spawn()
        .expect("unshare (util-linux)");
    let hpid = holder.id();
    let _guard = KillOnDrop(hpid);
    drop(holder);
    let holder_exit = nexcage_core::reaper::watch(hpid, since);
    let ns = |p: &str| {
        std::fs::read_link(format!("/proc/{p}/ns/net"))
            .map(|l| l.display().to_string())
            .unwrap_or_default()
    };
    let mine = ns("self");
    eventually("the holder's own network namespace", || {
        let n = ns(&hpid.to_string());
        !n.is_empty() && n != mine
    })
    .await;
    let want = ns(&hpid.to_string());
    let mut io = Stdio::new();
    let mut sp = spec(&id, &["/bin/readlink", "/proc/self/ns/net"]);
    sp["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
        {"type": "network", "path": format!("/proc/{hpid}/ns/net")}
    ]);
    let s = env
        .backend
        .create(create_config(&id, &bundle, sp, io.child(false)))
        .await
        .unwrap();
    env.backend.start(&id).await.unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 0, "stderr: {}", io.err());
    assert_eq!(io.out().trim(), want);
    env.backend.delete(&id).await.unwrap();
    drop(_guard);
    let _ = tokio::time::timeout(Duration::from_secs(10), holder_exit).await;
}
