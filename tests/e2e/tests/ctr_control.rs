//! Controlling a running task: kill, pause/resume, ps, metrics and resource limits.

use std::time::Duration;

use nexcage_e2e::ctr::RunOpts;
use nexcage_e2e::{backend_tests, leaks, Case};

backend_tests!(
    sigterm_is_ignored_sigkill_gives_137,
    killed_detached_task_reports_137,
    pause_and_resume,
    ps_lists_the_init_pid,
    metrics_report_memory_and_cpu,
    memory_limit_reaches_the_cgroup,
);

fn sigterm_is_ignored_sigkill_gives_137(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let run = ctr.spawn_run(&RunOpts::default(), &id, &["sleep", "1000"]);
    let pid = ctr.wait_status(&id, "RUNNING").pid;
    let out = ctr.ctr(&["tasks", "kill", &id]);
    ctr.expect(&out, "ctr task kill (SIGTERM)");
    if case.backend.is_lxc() {
        // Under LXC the application is not pid 1 (lxc-init is, like `docker run --init`): the
        // signal goes to the application, whose default action ends it, reported as 128+15.
        let out = run.wait(Duration::from_secs(60));
        assert_eq!(out.code, Some(143), "ctr run must report 128+15: {out:?}");
        ctr.assert_nothing_left(&id, &[pid]);
        return;
    }
    // pid 1 of a pid namespace without a handler ignores SIGTERM: give the signal a moment to
    // be delivered, then the task must still run.
    std::thread::sleep(Duration::from_secs(1));
    let row = ctr.task(&id);
    assert_eq!(
        row.map(|r| r.status),
        Some("RUNNING".into()),
        "after SIGTERM"
    );
    let out = ctr.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]);
    ctr.expect(&out, "ctr task kill -s SIGKILL");
    let out = run.wait(Duration::from_secs(60));
    assert_eq!(out.code, Some(137), "ctr run must report 128+9: {out:?}");
    ctr.assert_nothing_left(&id, &[pid]);
}

fn killed_detached_task_reports_137(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let pid = ctr.start_detached(&id, &["sleep", "1000"]);
    let out = ctr.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]);
    ctr.expect(&out, "ctr task kill -s SIGKILL");
    ctr.wait_status(&id, "STOPPED");
    let out = ctr.ctr(&["tasks", "rm", &id]);
    ctr.expect(&out, "ctr task rm");
    assert!(
        out.all().contains("exit with non-zero exit code 137"),
        "ctr task rm must report the exit status 137: {out:?}"
    );
    let out = ctr.ctr(&["containers", "rm", &id]);
    ctr.expect(&out, "ctr container rm");
    ctr.assert_nothing_left(&id, &[pid]);
}

fn pause_and_resume(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let pid = ctr.start_detached(&id, &["sleep", "1000"]);
    ctr.expect(&ctr.ctr(&["tasks", "pause", &id]), "ctr task pause");
    assert_eq!(ctr.wait_status(&id, "PAUSED").id, id);
    ctr.expect(&ctr.ctr(&["tasks", "resume", &id]), "ctr task resume");
    assert_eq!(ctr.wait_status(&id, "RUNNING").id, id);
    let out = ctr.exec(&id, "after-resume", &["echo", "alive"]);
    ctr.expect(&out, "ctr task exec after resume");
    assert_eq!(out.out(), "alive");
    ctr.remove_and_check(&id, pid);
}

fn ps_lists_the_init_pid(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let pid = ctr.start_detached(&id, &["sleep", "1000"]);
    let out = ctr.ctr(&["tasks", "ps", &id]);
    ctr.expect(&out, "ctr task ps");
    let pids: Vec<u32> = out
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        pids.contains(&pid),
        "ctr task ps lacks the init pid {pid}: {out:?}"
    );
    ctr.remove_and_check(&id, pid);
}

/// The numeric value of the metrics table row named `key`.
fn metric(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next()? == key).then(|| f.next()?.parse().ok())?
    })
}

fn metrics_report_memory_and_cpu(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let pid = ctr.start_detached(
        &id,
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000",
        ],
    );
    let out = ctr.ctr(&["tasks", "metrics", &id]);
    ctr.expect(&out, "ctr task metrics");
    let mem = metric(&out.stdout, "memory.usage_in_bytes").or(metric(&out.stdout, "memory.usage"));
    let cpu = metric(&out.stdout, "cpuacct.usage").or(metric(&out.stdout, "cpu.usage_usec"));
    assert!(
        mem.is_some_and(|m| m > 0),
        "no memory usage number: {out:?}"
    );
    assert!(cpu.is_some_and(|c| c > 0), "no cpu usage number: {out:?}");
    ctr.remove_and_check(&id, pid);
}

/// `ctr` 1.6 has no `task update`, so the Update RPC cannot be reached from ctr: the limit is
/// set at create time with `ctr run --memory-limit`, and must show in the container's cgroup.
fn memory_limit_reaches_the_cgroup(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let limit: u64 = 64 * 1024 * 1024;
    let opts = RunOpts {
        flags: vec!["--memory-limit".into(), limit.to_string()],
        ..RunOpts::detached()
    };
    ctr.expect(
        &ctr.run(&opts, &id, &["sleep", "1000"]),
        "ctr run -d --memory-limit",
    );
    let pid = ctr.wait_status(&id, "RUNNING").pid;
    ctr.assert_backend(&id, case.backend);
    let file = leaks::memory_limit_file(pid);
    let text =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    assert_eq!(text.trim(), limit.to_string(), "{}", file.display());
    ctr.remove_and_check(&id, pid);
}
