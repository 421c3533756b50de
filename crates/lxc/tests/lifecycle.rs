//! Create/Start/Kill/Delete through real LXC: exit statuses, stdio, signals, terminal, refusals.

mod common;

use std::io::Write;
use std::os::fd::AsRawFd;

use common::*;
use nexcage_core::backend::{Backend, Pause};
use nexcage_core::types::ChildIo;
use nexcage_core::{ErrorKind, HasKind};

#[tokio::test]
async fn exit_zero_with_stdout_and_stderr_in_files() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("ok");
    let mut io = Stdio::new();
    let spec = spec(
        &id,
        &["/bin/sh", "-c", "echo hello; echo oops >&2; hostname"],
    );
    let s = env
        .backend
        .create(create_config(&id, &bundle, spec, io.child(false)))
        .await
        .unwrap();
    // The init exists before Start, in its own pid namespace, and has not run the program.
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).unwrap();
    assert_ne!(
        ns(&s.pid.to_string()),
        ns("self"),
        "the init must be in a new pid namespace"
    );
    assert_eq!(io.out(), "", "the program ran before Start");
    env.backend.start(&id).await.unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 0);
    assert_eq!(io.out(), format!("hello\n{id}\n"));
    assert_eq!(io.err(), "oops\n");
    env.backend.delete(&id).await.unwrap();
    assert_eq!(leftovers(&env, &id, &[s.pid]), Vec::<String>::new());
}

#[tokio::test]
async fn exit_42_with_stdin_piped() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("in");
    let mut io = Stdio::new();
    let spec = spec(
        &id,
        &["/bin/sh", "-c", "read line; echo got:$line; exit 42"],
    );
    let s = env
        .backend
        .create(create_config(&id, &bundle, spec, io.child(true)))
        .await
        .unwrap();
    env.backend.start(&id).await.unwrap();
    let w = io.stdin.take().unwrap();
    std::fs::File::from(w).write_all(b"ping\n").unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 42);
    assert_eq!(io.out(), "got:ping\n");
    env.backend.delete(&id).await.unwrap();
}

async fn killed_with(signal: i32, args: &[&str], all: bool) -> i32 {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("kill");
    let mut io = Stdio::new();
    let s = env
        .backend
        .create(create_config(
            &id,
            &bundle,
            spec(&id, args),
            io.child(false),
        ))
        .await
        .unwrap();
    env.backend.start(&id).await.unwrap();
    // wait until the application (the init's child) runs
    let init = s.pid;
    eventually("the application to start", || {
        nexcage_lxc::procfs::children(init).len() == 1
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    env.backend.kill(&id, signal as u32, all).await.unwrap();
    let code = exit_code(s.exit, 30).await;
    env.backend.delete(&id).await.unwrap();
    assert_eq!(leftovers(&env, &id, &[init]), Vec::<String>::new());
    code
}

#[tokio::test]
async fn sigterm_is_143() {
    assert_eq!(
        killed_with(libc::SIGTERM, &["/bin/sleep", "1000"], false).await,
        143
    );
}

#[tokio::test]
async fn sigkill_is_137_even_for_an_application_that_ignores_sigterm() {
    let args = ["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"];
    assert_eq!(killed_with(libc::SIGKILL, &args, false).await, 137);
}

#[tokio::test]
async fn sigkill_to_all_is_137() {
    assert_eq!(
        killed_with(libc::SIGKILL, &["/bin/sleep", "1000"], true).await,
        137
    );
}

#[tokio::test]
async fn kill_before_start_ends_the_container_with_the_signal() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("early");
    let mut io = Stdio::new();
    let s = env
        .backend
        .create(create_config(
            &id,
            &bundle,
            spec(&id, &["/bin/echo", "never"]),
            io.child(false),
        ))
        .await
        .unwrap();
    env.backend
        .kill(&id, libc::SIGKILL as u32, false)
        .await
        .unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 137);
    assert_eq!(io.out(), "");
    env.backend.delete(&id).await.unwrap();
    assert_eq!(leftovers(&env, &id, &[s.pid]), Vec::<String>::new());
}

#[tokio::test]
async fn terminal_master_is_sent_over_the_console_socket() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("tty");
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("pty.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut spec = spec(
        &id,
        &[
            "/bin/sh",
            "-c",
            "test -t 0 && test -t 1 && echo TTY-OK; stty size",
        ],
    );
    spec["process"]["terminal"] = true.into();
    spec["process"]["consoleSize"] = serde_json::json!({"height": 33, "width": 111});
    let io = ChildIo {
        console_socket: Some(sock.clone()),
        ..Default::default()
    };
    let s = env
        .backend
        .create(create_config(&id, &bundle, spec, io))
        .await
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let master = recv_fd(conn.as_raw_fd());
    env.backend.start(&id).await.unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 0);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(&master, &mut buf) {
            Ok(0) | Err(_) => break, // EIO once every slave is closed
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("TTY-OK"), "{out:?}");
    assert!(out.contains("33 111"), "{out:?}");
    env.backend.delete(&id).await.unwrap();
}

#[tokio::test]
async fn pause_and_resume_freeze_the_container() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("frz");
    let mut io = Stdio::new();
    let s = env
        .backend
        .create(create_config(
            &id,
            &bundle,
            spec(&id, &["/bin/sleep", "1000"]),
            io.child(false),
        ))
        .await
        .unwrap();
    env.backend.start(&id).await.unwrap();
    env.backend.pause(&id).await.unwrap();
    assert_eq!(
        env.backend.cli().state(&id).await.unwrap().as_deref(),
        Some("FROZEN")
    );
    env.backend.resume(&id).await.unwrap();
    assert_eq!(
        env.backend.cli().state(&id).await.unwrap().as_deref(),
        Some("RUNNING")
    );
    // delete also works on a frozen container
    env.backend.pause(&id).await.unwrap();
    env.backend.delete(&id).await.unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 137);
    assert_eq!(leftovers(&env, &id, &[s.pid]), Vec::<String>::new());
}

#[tokio::test]
async fn unsupported_spec_is_refused_before_anything_exists() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("bad");
    let mut s = spec(&id, &["/bin/true"]);
    s["linux"]["intelRdt"] = serde_json::json!({"closID": "gold"});
    let spec: oci_spec::runtime::Spec = serde_json::from_value(s.clone()).unwrap();
    let e = env.backend.validate(&spec).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("linux.intelRdt"), "{e}");
    let e = env
        .backend
        .create(create_config(&id, &bundle, s, ChildIo::default()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(leftovers(&env, &id, &[]), Vec::<String>::new());
}

#[tokio::test]
async fn a_program_that_cannot_run_fails_loudly_and_leaves_nothing() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("noexec");
    let mut io = Stdio::new();
    let s = env
        .backend
        .create(create_config(
            &id,
            &bundle,
            spec(&id, &["/nonexistent"]),
            io.child(false),
        ))
        .await
        .unwrap();
    env.backend.start(&id).await.unwrap();
    assert_ne!(exit_code(s.exit, 30).await, 0);
    env.backend.delete(&id).await.unwrap();
    assert_eq!(leftovers(&env, &id, &[s.pid]), Vec::<String>::new());
}

#[tokio::test]
async fn health_probe_runs_a_real_container() {
    let env = Env::new();
    let h = env.backend.health().await;
    assert!(h.healthy, "{h:?}");
    assert!(h.version.as_deref().unwrap_or("").starts_with('5'), "{h:?}");
    assert!(h.details.iter().any(|d| d == "create probe: ok"), "{h:?}");
}

/// A monitor cgroup left by an earlier container of the same name whose monitor was killed (a
/// crashed shim: nobody ran Delete) does not stop the next Create; it is removed, and the new
/// container runs and leaves nothing.
#[tokio::test]
async fn a_stale_monitor_cgroup_of_the_same_name_does_not_block_create() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("stalemon");
    let rel = format!("{}/test/{id}", nexcage_lxc::config::MONITOR_CGROUP_ROOT);
    let dirs = nexcage_lxc::cgroups::dirs(&rel);
    assert!(!dirs.is_empty(), "no cgroup hierarchy");
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    let mut io = Stdio::new();
    let s = env
        .backend
        .create(create_config(
            &id,
            &bundle,
            spec(&id, &["/bin/sh", "-c", "echo up"]),
            io.child(false),
        ))
        .await
        .unwrap();
    env.backend.start(&id).await.unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 0);
    assert_eq!(io.out(), "up\n");
    env.backend.delete(&id).await.unwrap();
    assert_eq!(leftovers(&env, &id, &[s.pid]), Vec::<String>::new());
    assert!(dirs.iter().all(|d| !d.exists()), "monitor cgroup left");
}
