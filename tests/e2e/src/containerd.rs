//! A private containerd: its own root, state, gRPC socket and opt dir under a temp dir, config
//! version 2 with the CRI plugin disabled, and `<tmp>/bin` (holding a symlink to the shim under
//! test) first on its PATH. It can be restarted on the same directories, and on drop it removes
//! every task it still has, stops, and unmounts and deletes what it left.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cmd;

/// A containerd instance owned by the tests.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    /// Namespace this instance's tests use (unique per instance, so the cgroup paths
    /// `/<ns>/<id>` of concurrent test processes never collide).
    ns: String,
    child: Mutex<Option<Child>>,
    imported: Mutex<BTreeSet<String>>,
    /// (namespace, id) of every container id handed out for this instance.
    ids: Mutex<BTreeSet<(String, String)>>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/containerd.sock"

[debug]
  level = "debug"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
    )
}

impl Containerd {
    /// Start a new instance (panics with the reason and the log when it does not come up).
    pub fn start() -> Containerd {
        crate::prereq::check();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // Short paths: the socket path must fit in sockaddr_un.
        let dir = tempfile::Builder::new()
            .prefix("nxe2e-")
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("create a temp dir: {e}"))
            .keep();
        std::fs::create_dir_all(dir.join("bin")).expect("create bin dir");
        if crate::is_nexcage() {
            let shim = crate::shim_binary();
            std::os::unix::fs::symlink(&shim, dir.join("bin").join(crate::SHIM_NAME))
                .unwrap_or_else(|e| panic!("symlink the shim: {e}"));
        }
        std::fs::write(dir.join("config.toml"), config(&dir)).expect("write config.toml");
        let c = Containerd {
            ns: format!("e2e{}-{n}", std::process::id()),
            dir,
            child: Mutex::new(None),
            imported: Mutex::new(BTreeSet::new()),
            ids: Mutex::new(BTreeSet::new()),
        };
        c.launch();
        c
    }

    /// The instance the tests of one test binary share (stopped at process exit).
    pub fn shared() -> &'static Containerd {
        static SHARED: OnceLock<Containerd> = OnceLock::new();
        SHARED.get_or_init(|| {
            let c = Containerd::start();
            crate::at_exit(|| {
                if let Some(c) = SHARED.get() {
                    c.shutdown();
                }
            });
            c
        })
    }

    fn launch(&self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open containerd log");
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            // Its own process group: shims started by it stay out of the test's group.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start containerd: {e}"));
        *self.child.lock().unwrap() = Some(child);
        let up = cmd::poll(Duration::from_secs(30), || {
            if let Some(Ok(Some(st))) = self.child.lock().unwrap().as_mut().map(Child::try_wait) {
                panic!("containerd exited with {st}\n{}", self.log_tail(40));
            }
            let mut v = Command::new("ctr");
            v.arg("-a").arg(self.socket()).arg("version");
            cmd::run(v, Duration::from_secs(10)).success().then_some(())
        });
        if up.is_none() {
            panic!(
                "containerd did not answer within 30 s\n{}",
                self.log_tail(40)
            );
        }
    }

    /// The temp dir holding everything of this instance.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The namespace this instance's tests use.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// containerd's state dir.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The bundle directory of a task.
    pub fn bundle(&self, ns: &str, id: &str) -> PathBuf {
        self.state_dir()
            .join("io.containerd.runtime.v2.task")
            .join(ns)
            .join(id)
    }

    /// Where ctr creates the stdio FIFOs of this instance's tasks (`--fifo-dir`), so that
    /// FIFOs ctr leaves behind (e.g. of a task whose shim was killed) go with the temp dir
    /// instead of piling up in /run/containerd/fifo.
    pub fn fifo_dir(&self) -> PathBuf {
        self.dir.join("fifo")
    }

    /// nexcage's `state_dir` for the tests on this instance.
    pub fn nexcage_state(&self) -> PathBuf {
        self.dir.join("nexcage-state")
    }

    /// containerd's pid (panics when it is not running).
    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap()
            .as_ref()
            .map(Child::id)
            .expect("containerd is not running")
    }

    /// Path of the log file (kept across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// The last `n` lines of containerd's log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        format!(
            "--- last {n} lines of {} ---\n{tail}",
            self.log_path().display()
        )
    }

    /// Import the busybox image into `ns` (once per namespace).
    pub fn ensure_image(&self, ns: &str) {
        let mut done = self.imported.lock().unwrap();
        if !done.contains(ns) {
            crate::image::import(&self.socket(), ns);
            done.insert(ns.to_string());
        }
    }

    /// Remember a container id used on this instance (its shim socket is removed at shutdown
    /// if a dead shim left it).
    pub fn track(&self, ns: &str, id: &str) {
        self.ids
            .lock()
            .unwrap()
            .insert((ns.to_string(), id.to_string()));
    }

    /// Stop containerd: SIGTERM, then SIGKILL after 15 s. Shims and tasks stay.
    pub fn stop(&self) {
        let Some(mut child) = self.child.lock().unwrap().take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let gone = cmd::poll(Duration::from_secs(15), || {
            matches!(child.try_wait(), Ok(Some(_))).then_some(())
        });
        if gone.is_none() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// Stop and start again on the same directories and socket.
    pub fn restart(&self) {
        self.stop();
        self.launch();
    }

    fn ctr(&self, args: &[&str]) -> cmd::Output {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(self.socket())
            .arg("-n")
            .arg(&self.ns)
            .args(args);
        cmd::run(c, Duration::from_secs(20))
    }

    /// Remove every task and container of this instance's namespace (best effort).
    fn remove_all(&self) {
        let tasks = self.ctr(&["tasks", "ls", "-q"]).stdout;
        for id in tasks.split_whitespace() {
            self.ctr(&["tasks", "kill", "-a", "-s", "SIGKILL", id]);
        }
        for id in tasks.split_whitespace() {
            let _ = cmd::poll(Duration::from_secs(5), || {
                let ls = self.ctr(&["tasks", "ls"]).stdout;
                (!ls.lines()
                    .any(|l| l.starts_with(id) && l.contains("RUNNING")))
                .then_some(())
            });
            self.ctr(&["tasks", "rm", "-f", id]);
        }
        let containers = self.ctr(&["containers", "ls", "-q"]).stdout;
        for id in containers.split_whitespace() {
            self.ctr(&["containers", "rm", id]);
        }
    }

    /// Remove all tasks, stop containerd, SIGKILL shims still serving this instance, unmount
    /// what is left under the temp dir and delete it. Idempotent.
    pub fn shutdown(&self) {
        if self.child.lock().unwrap().is_some() {
            self.remove_all();
        }
        self.stop();
        let addr = self.socket();
        for p in crate::leaks::shim_processes(&addr, None) {
            let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGKILL);
            // A killed shim cannot remove its socket.
            if let Some(sock) = crate::leaks::flag(&p.args, "-socket") {
                let _ = std::fs::remove_file(sock.trim_start_matches("unix://"));
            }
        }
        let _ = cmd::poll(Duration::from_secs(5), || {
            crate::leaks::shim_processes(&addr, None)
                .is_empty()
                .then_some(())
        });
        let ids = std::mem::take(&mut *self.ids.lock().unwrap());
        for (ns, id) in ids {
            let _ = std::fs::remove_file(crate::leaks::socket_path(&addr, &ns, &id));
        }
        let prefix = self.dir.to_string_lossy().into_owned();
        let mut mounts = crate::leaks::mounts_under(&prefix);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        crate::leaks::remove_ns_cgroups(&self.ns);
        if std::env::var_os("E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Kill a process by pid with SIGKILL (used for the shim in the crash scenario).
pub fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL)
        .unwrap_or_else(|e| panic!("kill -9 {pid}: {e}"));
}
