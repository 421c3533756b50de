//! Exec through lxc-attach: exit status, stdio, user, environment, cwd, signals, refusals.

mod common;

use std::os::fd::AsRawFd;

use common::*;
use nexcage_core::backend::{Backend, Exec};
use nexcage_core::types::{ExecConfig, Spawned};
use nexcage_core::{ErrorKind, HasKind};
use serde_json::json;

struct Running {
    env: Env,
    _bundle: Bundle,
    id: String,
    init: Spawned,
    _io: Stdio,
}

async fn running() -> Running {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("exec");
    let mut io = Stdio::new();
    let init = env
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
    Running {
        env,
        _bundle: bundle,
        id,
        init,
        _io: io,
    }
}

fn process(args: &[&str], extra: serde_json::Value) -> oci_spec::runtime::Process {
    let mut p = json!({
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/bin", "EXEC_VAR=from exec"],
        "cwd": "/",
        "capabilities": {"bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_NET_RAW", "CAP_SYS_CHROOT"]},
        "noNewPrivileges": true
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    serde_json::from_value(p).unwrap()
}

fn exec_config(
    r: &Running,
    exec_id: &str,
    p: oci_spec::runtime::Process,
    io: &mut Stdio,
) -> ExecConfig {
    ExecConfig {
        id: r.id.clone(),
        exec_id: exec_id.into(),
        bundle: r._bundle.path().to_path_buf(),
        process: p,
        io: io.child(false),
    }
}

impl Running {
    async fn finish(self) {
        assert_eq!(
            self._io.err(),
            "",
            "nothing may reach the container's stderr but its own output"
        );
        self.env.backend.delete(&self.id).await.unwrap();
        assert_eq!(exit_code(self.init.exit, 30).await, 137);
        assert_eq!(
            leftovers(&self.env, &self.id, &[self.init.pid]),
            Vec::<String>::new()
        );
    }
}

#[tokio::test]
async fn exec_status_stdio_user_and_environment() {
    let r = running().await;
    let mut io = Stdio::new();
    let script = "echo $EXEC_VAR; id -u; id -g; echo $$; exit 7";
    let p = process(
        &["/bin/sh", "-c", script],
        json!({"user": {"uid": 1000, "gid": 1000}}),
    );
    let s = r
        .env
        .backend
        .exec(exec_config(&r, "e1", p, &mut io))
        .await
        .unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 7);
    let out = io.out();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["from exec", "1000", "1000"], "{out}");
    assert_ne!(lines[3], "1", "the exec is not the container's init");
    r.finish().await;
}

#[tokio::test]
async fn exec_in_a_working_directory() {
    let r = running().await;
    let mut io = Stdio::new();
    let p = process(&["/bin/pwd"], json!({"cwd": "/tmp"}));
    let s = r
        .env
        .backend
        .exec(exec_config(&r, "e2", p, &mut io))
        .await
        .unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 0);
    assert_eq!(io.out(), "/tmp\n");
    r.finish().await;
}

#[tokio::test]
async fn kill_exec_signals_the_process_inside() {
    let r = running().await;
    let mut io = Stdio::new();
    let p = process(&["/bin/sleep", "1000"], json!({}));
    let s = r
        .env
        .backend
        .exec(exec_config(&r, "e3", p, &mut io))
        .await
        .unwrap();
    let pid = s.pid;
    eventually("the exec to enter the container", || {
        !nexcage_lxc::procfs::children(pid).is_empty()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    r.env
        .backend
        .kill_exec(&r.id, pid, libc::SIGTERM as u32)
        .await
        .unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 143);
    // the container itself is untouched
    assert!(nexcage_lxc::procfs::Proc::of(r.init.pid).is_some());
    r.finish().await;
}

#[tokio::test]
async fn exec_that_lxc_attach_cannot_express_is_refused() {
    let r = running().await;
    let mut io = Stdio::new();
    let p = process(
        &["/bin/true"],
        json!({"user": {"uid": 0, "gid": 0, "additionalGids": [0, 10]}}),
    );
    let e = r
        .env
        .backend
        .exec(exec_config(&r, "e4", p, &mut io))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("process.user.additionalGids"), "{e}");
    r.finish().await;
}

#[tokio::test]
async fn exec_with_a_terminal() {
    let r = running().await;
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("pty.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let script = "test -t 0 && test -t 1 && echo TTY-EXEC; stty size; exit 3";
    let p = process(
        &["/bin/sh", "-c", script],
        json!({"terminal": true, "consoleSize": {"height": 20, "width": 70}}),
    );
    let cfg = ExecConfig {
        id: r.id.clone(),
        exec_id: "t1".into(),
        bundle: r._bundle.path().to_path_buf(),
        process: p,
        io: nexcage_core::types::ChildIo {
            console_socket: Some(sock),
            ..Default::default()
        },
    };
    let s = r.env.backend.exec(cfg).await.unwrap();
    let (conn, _) = listener.accept().unwrap();
    let master = recv_fd(conn.as_raw_fd());
    let reader = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = nix::unistd::read(&master, &mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    assert_eq!(exit_code(s.exit, 30).await, 3);
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    assert!(out.contains("TTY-EXEC"), "{out:?}");
    assert!(out.contains("20 70"), "{out:?}");
    r.finish().await;
}

/// `ctr run -d`: containerd's reader of the container's stdout/stderr goes away. An exec must not
/// make LXC write into that pipe (its monitor would die of SIGPIPE and take the container along).
#[tokio::test]
async fn exec_into_a_container_whose_output_reader_is_gone() {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique("nopipe");
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let w2 = w.try_clone().unwrap();
    let io = nexcage_core::types::ChildIo {
        stdout: Some(w),
        stderr: Some(w2),
        ..Default::default()
    };
    let sp = spec(&id, &["/bin/sleep", "1000"]);
    let init = env
        .backend
        .create(create_config(&id, &bundle, sp, io))
        .await
        .unwrap();
    env.backend.start(&id).await.unwrap();
    drop(r);
    let mut eio = Stdio::new();
    let cfg = ExecConfig {
        id: id.clone(),
        exec_id: "p1".into(),
        bundle: bundle.path().to_path_buf(),
        process: process(&["/bin/true"], json!({})),
        io: eio.child(false),
    };
    let s = env.backend.exec(cfg).await.unwrap();
    assert_eq!(exit_code(s.exit, 30).await, 0);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        nexcage_lxc::procfs::Proc::of(init.pid).is_some(),
        "the container died"
    );
    env.backend.delete(&id).await.unwrap();
    assert_eq!(exit_code(init.exit, 30).await, 137);
}
