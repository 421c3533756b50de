//! `ctr run` lifecycle through the shim: output, exit codes, stdin, stderr and terminals.

use std::time::Duration;

use nexcage_e2e::ctr::RunOpts;
use nexcage_e2e::{backend_tests, Case};

backend_tests!(
    echo_prints_hi,
    exit_code_propagates,
    stdout_and_stderr_are_separate,
    piped_stdin_reaches_cat,
    tty_run,
);

fn echo_prints_hi(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let out = ctr.run_rm(&id, &["echo", "hi"]);
    ctr.expect(&out, "ctr run --rm echo hi");
    assert_eq!(out.out(), "hi", "{out:?}");
    ctr.assert_nothing_left(&id, &[]);
}

fn exit_code_propagates(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let out = ctr.run_rm(&id, &["sh", "-c", "exit 3"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(!out.timed_out, "{out:?}");
    ctr.assert_nothing_left(&id, &[]);
}

fn stdout_and_stderr_are_separate(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let out = ctr.run_rm(&id, &["sh", "-c", "echo to-out; echo to-err >&2"]);
    ctr.expect(&out, "ctr run --rm (stdout+stderr)");
    assert_eq!(out.out(), "to-out", "{out:?}");
    assert!(out.stderr.contains("to-err"), "{out:?}");
    assert!(!out.stdout.contains("to-err"), "{out:?}");
}

fn piped_stdin_reaches_cat(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let mut run = ctr.spawn_run(&RunOpts::default(), &id, &["cat"]);
    // ctr only forwards stdin EOF (CloseIO) once the task exists: an EOF before that is lost
    // and `cat` would wait forever. So write once the task runs.
    ctr.wait_status(&id, "RUNNING");
    run.write_stdin(b"hello stdin\nsecond line\n");
    run.close_stdin();
    let out = run.wait(Duration::from_secs(60));
    ctr.expect(&out, "echo ... | ctr run --rm cat");
    assert_eq!(out.out(), "hello stdin\nsecond line", "{out:?}");
    ctr.assert_nothing_left(&id, &[]);
}

fn tty_run(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let opts = RunOpts {
        tty: true,
        ..Default::default()
    };
    let script = "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; tty; exit 5";
    let out = ctr.run_pty(&opts, &id, &["sh", "-c", script]);
    assert_eq!(out.code, Some(5), "{out:?}");
    let text = out.out();
    assert!(text.contains("is-a-tty"), "{out:?}");
    assert!(text.contains("/dev/"), "`tty` printed no device: {out:?}");
    assert!(!text.contains("not a tty"), "{out:?}");
    ctr.assert_nothing_left(&id, &[]);
}
