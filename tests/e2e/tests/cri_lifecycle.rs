//! Kubernetes path, one container at a time: a pod (runtime handler `nexcage`) on the CNI
//! network, containers created and started through CRI, their state, exit codes and reasons,
//! CRI log files, ExecSync, resource updates, stats, and graceful and forced stops. Every test
//! ends with StopPodSandbox + RemovePodSandbox and checks that nothing is left behind.

use std::time::Duration;

use nexcage_e2e::cri::{api, is_cri_line, Code, Footprint, PodOpts};
use nexcage_e2e::{backend_tests, cmd, leaks, Case};

backend_tests!(
    container_runs_exits_and_logs,
    exec_sync_output_exit_code_and_timeout,
    update_resources_reaches_the_memory_cgroup,
    stats_report_cpu_and_memory,
    stop_container_graceful_and_forced,
);

/// Waits for `/tmp/go` (created by an ExecSync), so RUNNING can be observed before it exits.
const WAIT_FOR_GO: &str = "while [ ! -e /tmp/go ]; do sleep 0.1; done";

fn container_runs_exits_and_logs(case: Case) {
    let t = case.cri();
    let pod = t.run_pod("p", &PodOpts::default());
    let ok = t.start(
        &pod,
        "ok",
        &[
            "sh",
            "-c",
            &format!("echo hello-out; echo hello-err >&2; {WAIT_FOR_GO}; exit 0"),
        ],
    );
    let bad = t.start(
        &pod,
        "bad",
        &["sh", "-c", &format!("echo bad-out; {WAIT_FOR_GO}; exit 3")],
    );
    // Exited containers' tasks are deleted (CRI deletes the task on exit): check while running.
    t.assert_backend(&[&pod.id, &ok, &bad], case.backend);
    for id in [&ok, &bad] {
        let st = t.status(id).status.unwrap_or_default();
        assert_eq!(
            st.state,
            api::ContainerState::ContainerRunning as i32,
            "{st:?}"
        );
        assert!(st.started_at > 0, "{st:?}");
        let r = t.exec(id, &["touch", "/tmp/go"]);
        assert_eq!(r.exit_code, 0, "touch /tmp/go: {r:?}");
    }
    let st = t.wait_state(&ok, api::ContainerState::ContainerExited);
    assert_eq!(
        (st.exit_code, st.reason.as_str()),
        (0, "Completed"),
        "{st:?}"
    );
    assert!(st.finished_at >= st.started_at, "{st:?}");
    let st = t.wait_state(&bad, api::ContainerState::ContainerExited);
    assert_eq!((st.exit_code, st.reason.as_str()), (3, "Error"), "{st:?}");

    // CRI log files: `<RFC3339Nano> <stream> F <line>`, stdout and stderr in one file.
    let log = t.wait_log_line(&pod, "ok", "stdout", "hello-out");
    t.wait_log_line(&pod, "ok", "stderr", "hello-err");
    assert!(
        !log.lines().any(|l| is_cri_line(l, "stdout", "hello-err")),
        "stderr line tagged stdout:\n{log}"
    );
    t.wait_log_line(&pod, "bad", "stdout", "bad-out");
    let st = t.status(&ok).status.unwrap_or_default();
    assert_eq!(
        st.log_path,
        t.log_file(&pod, "ok").display().to_string(),
        "{st:?}"
    );
    t.assert_backend(&[&pod.id], case.backend);
    t.remove_pod_and_check(&pod);
}

fn exec_sync_output_exit_code_and_timeout(case: Case) {
    let t = case.cri();
    let pod = t.run_pod("p", &PodOpts::default());
    let id = t.start(&pod, "c", &["sleep", "1000000"]);
    let r = t.exec(&id, &["echo", "exec-hi"]);
    assert_eq!(
        (r.exit_code, String::from_utf8_lossy(&r.stdout).trim()),
        (0, "exec-hi"),
        "{r:?}"
    );
    assert!(r.stderr.is_empty(), "{r:?}");
    let r = t.exec(&id, &["sh", "-c", "echo to-out; echo to-err >&2; exit 5"]);
    assert_eq!(r.exit_code, 5, "{r:?}");
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "to-out", "{r:?}");
    assert_eq!(String::from_utf8_lossy(&r.stderr).trim(), "to-err", "{r:?}");
    // The exec runs in the container: its `sleep` is pid 1 (under LXC, the child of LXC's init).
    let app = format!("{}/cmdline", case.backend.app_proc_in_container());
    let r = t.exec(&id, &["sh", "-c", &format!("tr '\\0' ' ' < {app}")]);
    assert_eq!(
        String::from_utf8_lossy(&r.stdout).trim(),
        "sleep 1000000",
        "{r:?}"
    );
    // A command that outlives the timeout gives an error, not a hang (the client's own hang
    // guard turns a hang into a DeadlineExceeded naming the guard).
    let r = t.c().exec_sync(&id, &["sleep", "10"], 1);
    match &r {
        Err(e) => assert!(
            !e.message().contains("HANG GUARD"),
            "ExecSync with timeout 1 s hung: {e}"
        ),
        Ok(resp) => panic!("ExecSync `sleep 10` with timeout 1 s succeeded: {resp:?}"),
    }
    eprintln!("ExecSync timeout error: {:?}", r.err());
    // No exec process is left, and the container still serves execs.
    let left = cmd::poll(Duration::from_secs(20), || {
        let r = t.exec(&id, &["ps", "-o", "args"]);
        let ps = String::from_utf8_lossy(&r.stdout).into_owned();
        (!ps.lines().any(|l| l.trim() == "sleep 10")).then_some(())
    });
    assert!(left.is_some(), "the timed-out `sleep 10` is still running");
    let st = t.status(&id).status.unwrap_or_default();
    assert_eq!(
        st.state,
        api::ContainerState::ContainerRunning as i32,
        "{st:?}"
    );
    t.remove_pod_and_check(&pod);
}

fn update_resources_reaches_the_memory_cgroup(case: Case) {
    let t = case.cri();
    let pod = t.run_pod("p", &PodOpts::default());
    let id = t.start(&pod, "c", &["sleep", "1000000"]);
    let pid = t.pid(&id);
    let file = leaks::memory_limit_file(pid);
    for limit in [64 * 1024 * 1024_i64, 96 * 1024 * 1024] {
        t.c()
            .update_container_resources(
                &id,
                api::LinuxContainerResources {
                    memory_limit_in_bytes: limit,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| t.fail("UpdateContainerResources", &e));
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        assert_eq!(
            text.trim(),
            limit.to_string(),
            "{} (container pid {pid})",
            file.display()
        );
    }
    // The container's cgroup is the pod's: `<cgroup parent>/<container id>`.
    assert!(
        file.to_string_lossy()
            .contains(&format!("/{}/{id}/", t.ctd.ns())),
        "{} is not the container's cgroup",
        file.display()
    );
    let st = t.status(&id);
    eprintln!(
        "ContainerStatus.resources after update: {:?}",
        st.status.unwrap_or_default().resources
    );
    t.remove_pod_and_check(&pod);
}

fn stats_report_cpu_and_memory(case: Case) {
    let t = case.cri();
    let pod = t.run_pod("p", &PodOpts::default());
    let id = t.start(
        &pod,
        "c",
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done; sleep 1000000",
        ],
    );
    let value = |v: &Option<api::UInt64Value>| v.as_ref().map(|v| v.value).unwrap_or(0);
    let mut last = None;
    let ok = cmd::poll(Duration::from_secs(30), || {
        let s = t.c().container_stats(&id).ok()?;
        last = Some(s.clone());
        let cpu = value(&s.cpu.as_ref()?.usage_core_nano_seconds);
        let mem = value(&s.memory.as_ref()?.working_set_bytes);
        (cpu > 0 && mem > 0).then_some(())
    });
    assert!(
        ok.is_some(),
        "ContainerStats lacks cpu usage_core_nano_seconds or memory working_set_bytes: {last:?}\n{}",
        t.ctd.log_tail(30)
    );
    let stats = t
        .c()
        .list_container_stats(&pod.id)
        .unwrap_or_else(|e| t.fail("ListContainerStats", &e));
    let s = stats
        .iter()
        .find(|s| s.attributes.as_ref().is_some_and(|a| a.id == id))
        .unwrap_or_else(|| panic!("ListContainerStats lacks {id}: {stats:?}"));
    assert!(
        value(&s.cpu.as_ref().and_then(|c| c.usage_core_nano_seconds)) > 0,
        "{s:?}"
    );
    assert!(
        value(&s.memory.as_ref().and_then(|m| m.working_set_bytes)) > 0,
        "{s:?}"
    );
    t.remove_pod_and_check(&pod);
}

fn stop_container_graceful_and_forced(case: Case) {
    let t = case.cri();
    let pod = t.run_pod("p", &PodOpts::default());
    // Exits 0 on SIGTERM (the trap runs once the current `sleep 1` returns).
    let graceful = t.start(
        &pod,
        "graceful",
        &["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
    );
    // Ignores SIGTERM: only the SIGKILL after the grace period stops it.
    let stubborn = t.start(
        &pod,
        "stubborn",
        &["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    );
    let pids = [t.pid(&graceful), t.pid(&stubborn)];
    t.c()
        .stop_container(&graceful, 30)
        .unwrap_or_else(|e| t.fail("StopContainer (graceful)", &e));
    let st = t.wait_state(&graceful, api::ContainerState::ContainerExited);
    assert_eq!(
        (st.exit_code, st.reason.as_str()),
        (0, "Completed"),
        "{st:?}"
    );
    t.c()
        .stop_container(&stubborn, 2)
        .unwrap_or_else(|e| t.fail("StopContainer (forced)", &e));
    let st = t.wait_state(&stubborn, api::ContainerState::ContainerExited);
    assert_eq!((st.exit_code, st.reason.as_str()), (137, "Error"), "{st:?}");
    for p in pids {
        assert!(
            !leaks::alive(p),
            "container process {p} still alive after StopContainer"
        );
    }
    // RemoveContainer of a stopped container, before the pod goes.
    t.c()
        .remove_container(&graceful)
        .unwrap_or_else(|e| t.fail("RemoveContainer", &e));
    let gone = t.c().container_status(&graceful);
    assert_eq!(
        gone.as_ref().map_err(|e| e.code()).err(),
        Some(Code::NotFound),
        "{gone:?}"
    );
    let fp_graceful = Footprint {
        ids: vec![graceful.clone()],
        ..Default::default()
    };
    t.assert_gone(&fp_graceful);
    t.remove_pod_and_check(&pod);
}
