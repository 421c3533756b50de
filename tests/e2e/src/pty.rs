//! Running a command with a pseudo-terminal as its stdin, stdout and stderr (`ctr -t` refuses
//! to start unless its stdin is a terminal). Everything the child writes to the terminal is
//! returned as `stdout`; it contains `\r\n` line ends.

use std::fs::File;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::pty::{openpty, Winsize};

use crate::cmd::{self, Output};

/// Run `cmd` under a new pty (80x24), killing it after `timeout`.
pub fn run(mut cmd: Command, timeout: Duration) -> Output {
    let line = cmd::cmdline(&cmd);
    let size = Winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).unwrap_or_else(|e| panic!("openpty: {e}"));
    let dup = |what: &str| {
        pty.slave
            .try_clone()
            .unwrap_or_else(|e| panic!("dup pty {what}: {e}"))
    };
    cmd.stdin(Stdio::from(dup("stdin")))
        .stdout(Stdio::from(dup("stdout")))
        .stderr(Stdio::from(dup("stderr")));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    // Only the child may hold the slave now, so the master reads EIO once the child (and
    // anything it passed the terminal to) is gone.
    drop(cmd);
    drop(pty.slave);
    let mut master = File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match master.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf
    });
    let deadline = std::time::Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if std::time::Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("wait for `{line}`: {e}"),
        }
    };
    // A grandchild holding the terminal would keep the reader blocked; give up on it then.
    let out = cmd::poll(Duration::from_secs(10), || {
        reader.is_finished().then_some(())
    })
    .and_then(|_| reader.join().ok())
    .unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    Output {
        cmdline: format!("{line}  (under a pty)"),
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::new(),
        timed_out,
    }
}
