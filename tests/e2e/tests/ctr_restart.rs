//! The shim outliving containerd, and containerd outliving the shim. Each test has its own
//! containerd, since it restarts it or kills a shim.

use std::time::Duration;

use nexcage_e2e::containerd::{sigkill, Containerd};
use nexcage_e2e::{backend_tests, cmd, leaks, Case};

backend_tests!(task_survives_containerd_restart, shim_kill9_is_cleaned_up);

fn task_survives_containerd_restart(case: Case) {
    let ctd = Containerd::start();
    let ctr = case.ctr_on(&ctd);
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let pid = ctr.start_detached(&id, &["sleep", "1000"]);
    ctr.assert_backend(&id, case.backend);
    ctd.restart();
    // containerd reconnects through the bundle's `address` file.
    let row = ctr.wait_status(&id, "RUNNING");
    assert_eq!(row.pid, pid, "the task's pid changed across the restart");
    let out = ctr.exec(&id, "after-restart", &["echo", "still-here"]);
    ctr.expect(&out, "ctr task exec after a containerd restart");
    assert_eq!(out.out(), "still-here", "{out:?}");
    ctr.assert_backend(&id, case.backend);
    ctr.expect(
        &ctr.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]),
        "kill after restart",
    );
    ctr.wait_status(&id, "STOPPED");
    ctr.expect(&ctr.ctr(&["tasks", "rm", &id]), "ctr task rm after restart");
    ctr.expect(
        &ctr.ctr(&["containers", "rm", &id]),
        "ctr container rm after restart",
    );
    ctr.assert_nothing_left(&id, &[pid]);
}

fn shim_kill9_is_cleaned_up(case: Case) {
    let ctd = Containerd::start();
    let ctr = case.ctr_on(&ctd);
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let pid = ctr.start_detached(&id, &["sleep", "1000"]);
    let shims = leaks::shim_processes(&ctd.socket(), Some(&id));
    assert_eq!(
        shims.len(),
        1,
        "expected exactly one shim for {id}: {shims:?}"
    );
    sigkill(shims[0].pid);
    // containerd notices the dead shim, runs its `delete` action and publishes the exit.
    let row = cmd::poll(Duration::from_secs(30), || match ctr.task(&id) {
        None => Some(None),
        Some(r) if r.status == "STOPPED" => Some(Some(r)),
        Some(_) => None,
    })
    .unwrap_or_else(|| {
        panic!(
            "task {id} still listed as live after kill -9 of its shim: {:?}\n{}",
            ctr.task(&id),
            ctd.log_tail(40)
        )
    });
    if row.is_some() {
        let out = ctr.ctr(&["tasks", "rm", &id]);
        let text = out.all();
        assert!(
            text.contains("exit code 137") || text.contains("not found"),
            "ctr task rm of the crashed task: {out:?}"
        );
    }
    let out = ctr.ctr(&["containers", "rm", &id]);
    ctr.expect(&out, "ctr container rm after kill -9 of the shim");
    assert!(!ctr.containers().contains(&id));
    ctr.assert_nothing_left(&id, &[pid]);
}
