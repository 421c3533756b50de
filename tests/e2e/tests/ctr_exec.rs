//! `ctr task exec` into a running task, with and without a terminal.

use nexcage_e2e::{backend_tests, Case};

backend_tests!(
    exec_output_and_exit_code,
    exec_joins_the_container,
    exec_with_tty
);

fn exec_output_and_exit_code(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let pid = ctr.start_detached(&id, &["sleep", "1000"]);
    let out = ctr.exec(&id, "x1", &["echo", "exec-hi"]);
    ctr.expect(&out, "ctr task exec echo");
    assert_eq!(out.out(), "exec-hi", "{out:?}");
    let out = ctr.exec(&id, "x2", &["sh", "-c", "echo err-line >&2; exit 7"]);
    assert_eq!(out.code, Some(7), "{out:?}");
    assert!(out.stderr.contains("err-line"), "{out:?}");
    // The exec id can be used again once the first process is gone.
    let out = ctr.exec(&id, "x1", &["true"]);
    ctr.expect(&out, "ctr task exec with a reused exec id");
    assert_eq!(ctr.wait_status(&id, "RUNNING").id, id);
    ctr.remove_and_check(&id, pid);
}

fn exec_joins_the_container(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let pid = ctr.start_detached(&id, &["sleep", "1000"]);
    // Same pid namespace (pid 1 is the init `sleep`; under LXC, the child of LXC's init) and same root
    // filesystem.
    let script = format!(
        "tr '\\0' ' ' < {}/cmdline; ls /bin/busybox",
        case.backend.app_proc_in_container()
    );
    let out = ctr.exec(&id, "x1", &["sh", "-c", &script]);
    ctr.expect(&out, "ctr task exec (namespaces)");
    let text = out.out();
    assert!(text.starts_with("sleep 1000"), "{out:?}");
    assert!(text.contains("/bin/busybox"), "{out:?}");
    ctr.remove_and_check(&id, pid);
}

fn exec_with_tty(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let pid = ctr.start_detached(&id, &["sleep", "1000"]);
    let out = ctr.exec_pty(
        &id,
        "t1",
        &["sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo exec-tty; exit 4"],
    );
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(out.out().contains("exec-tty"), "{out:?}");
    let out = ctr.exec(&id, "t2", &["sh", "-c", "[ -t 1 ] || echo no-tty"]);
    ctr.expect(&out, "ctr task exec without -t");
    assert_eq!(out.out(), "no-tty", "{out:?}");
    ctr.remove_and_check(&id, pid);
}
