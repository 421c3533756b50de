//! A typed `ctr` wrapper bound to one containerd instance, namespace, backend and test. Every
//! call has a hang guard ([`TIMEOUT`]); the runtime comes from [`crate::runtime`], and with
//! nexcage every `ctr run` passes a config file choosing the backend under test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::cmd::{self, Output, Spawned, TIMEOUT};
use crate::containerd::Containerd;
use crate::image::IMAGE;
use crate::{Backend, Case};

/// One row of `ctr task ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// Task (container) id.
    pub id: String,
    /// Host pid of the init process.
    pub pid: u32,
    /// RUNNING, STOPPED, PAUSED, CREATED, ...
    pub status: String,
}

/// Options of `ctr run` beyond the runtime and its config.
#[derive(Debug, Clone)]
pub struct RunOpts {
    /// `--rm`.
    pub rm: bool,
    /// `-d`.
    pub detach: bool,
    /// `-t` (the caller must use [`Ctr::run_pty`]).
    pub tty: bool,
    /// `--annotation k=v` values.
    pub annotations: Vec<String>,
    /// Extra flags placed before the image (e.g. `--memory-limit`, `--rootfs`).
    pub flags: Vec<String>,
    /// The image argument; `None` with `--config`, where ctr takes no image.
    pub image: Option<String>,
    /// Override of the nexcage config file passed with `--runtime-config-path`.
    pub config: Option<PathBuf>,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            rm: true,
            detach: false,
            tty: false,
            annotations: Vec::new(),
            flags: Vec::new(),
            image: Some(IMAGE.to_string()),
            config: None,
        }
    }
}

impl RunOpts {
    /// `ctr run -d` (no `--rm`).
    pub fn detached() -> Self {
        RunOpts {
            rm: false,
            detach: true,
            ..Default::default()
        }
    }
}

/// `ctr` for one test on one backend.
#[derive(Debug)]
pub struct Ctr<'a> {
    /// The containerd instance.
    pub ctd: &'a Containerd,
    /// Namespace (`ctr -n`).
    pub ns: String,
    /// Backend under test.
    pub backend: Backend,
    /// Test name (part of every id).
    pub test: &'static str,
    config: PathBuf,
}

static CONFIGS: AtomicUsize = AtomicUsize::new(0);

impl<'a> Ctr<'a> {
    /// Bind to `ctd` for `case`; imports the image and writes the backend's config file.
    pub fn new(ctd: &'a Containerd, case: Case) -> Ctr<'a> {
        ctd.ensure_image(ctd.ns());
        let mut c = Ctr {
            ctd,
            ns: ctd.ns().to_string(),
            backend: case.backend,
            test: case.name,
            config: PathBuf::new(),
        };
        c.config = c.write_config(&format!("default_backend = \"{}\"\n", case.backend.0));
        c
    }

    /// Write a nexcage config file (`state_dir` line first, then `body`) and return its path.
    pub fn write_config(&self, body: &str) -> PathBuf {
        let n = CONFIGS.fetch_add(1, Ordering::SeqCst);
        let path = self
            .ctd
            .dir()
            .join(format!("nexcage-{}-{}-{n}.toml", self.backend.0, self.test));
        let mut text = format!(
            "state_dir = \"{}\"\n{body}",
            self.ctd.nexcage_state().display()
        );
        if !body.contains("[proxmox]") {
            text.push_str(&crate::pve::config(self.ctd.dir(), self.backend));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// A container id unique to this test and backend: `e2e-<backend>-<test>-<suffix>`.
    pub fn id(&self, suffix: &str) -> String {
        let id = format!("e2e-{}-{}-{suffix}", self.backend.0, self.test);
        self.ctd.track(&self.ns, &id);
        id
    }

    /// `ctr -a SOCK -n NS`.
    pub fn base(&self) -> Command {
        let mut c = crate::versions::ctr_command();
        c.arg("-a").arg(self.ctd.socket()).arg("-n").arg(&self.ns);
        c
    }

    /// Run `ctr ARGS` with the hang guard.
    pub fn ctr(&self, args: &[&str]) -> Output {
        let mut c = self.base();
        c.args(args);
        cmd::run(c, TIMEOUT)
    }

    /// The `ctr run` command line for `opts`.
    pub fn run_cmd(&self, opts: &RunOpts, id: &str, args: &[&str]) -> Command {
        let mut c = self.base();
        c.arg("run");
        if opts.rm {
            c.arg("--rm");
        }
        if opts.detach {
            c.arg("-d");
        }
        if opts.tty {
            c.arg("-t");
        }
        c.arg("--runtime").arg(crate::runtime());
        c.arg("--fifo-dir").arg(self.ctd.fifo_dir());
        if crate::is_nexcage() {
            let cfg = opts.config.as_deref().unwrap_or(&self.config);
            c.arg("--runtime-config-path").arg(cfg);
        }
        for a in &opts.annotations {
            c.arg("--annotation").arg(a);
        }
        c.args(&opts.flags);
        if let Some(image) = &opts.image {
            c.arg(image);
        }
        c.arg(id).args(args);
        c
    }

    /// `ctr run` with stdin = /dev/null.
    pub fn run(&self, opts: &RunOpts, id: &str, args: &[&str]) -> Output {
        cmd::run(self.run_cmd(opts, id, args), TIMEOUT)
    }

    /// `ctr run --rm IMAGE ID ARGS`.
    pub fn run_rm(&self, id: &str, args: &[&str]) -> Output {
        self.run(&RunOpts::default(), id, args)
    }

    /// `ctr run` under a pseudo-terminal (for `-t`).
    pub fn run_pty(&self, opts: &RunOpts, id: &str, args: &[&str]) -> Output {
        crate::pty::run(self.run_cmd(opts, id, args), TIMEOUT)
    }

    /// `ctr run` in the background with a stdin pipe.
    pub fn spawn_run(&self, opts: &RunOpts, id: &str, args: &[&str]) -> Spawned {
        cmd::spawn(self.run_cmd(opts, id, args), true)
    }

    /// `ctr run -d IMAGE ID ARGS`; panics unless it succeeds, returns the task's pid.
    pub fn start_detached(&self, id: &str, args: &[&str]) -> u32 {
        let out = self.run(&RunOpts::detached(), id, args);
        self.expect(&out, "ctr run -d");
        self.wait_status(id, "RUNNING").pid
    }

    /// Panic with the output and containerd's log unless `out` succeeded.
    pub fn expect(&self, out: &Output, what: &str) {
        assert!(
            out.success(),
            "{what} failed: {out:?}\n{}",
            self.ctd.log_tail(30)
        );
    }

    /// Rows of `ctr task ls`.
    pub fn tasks(&self) -> Vec<TaskRow> {
        let out = self.ctr(&["tasks", "ls"]);
        self.expect(&out, "ctr task ls");
        out.stdout
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3).then(|| TaskRow {
                    id: f[0].to_string(),
                    pid: f[1].parse().unwrap_or(0),
                    status: f[2].to_string(),
                })
            })
            .collect()
    }

    /// The `ctr task ls` row of `id`.
    pub fn task(&self, id: &str) -> Option<TaskRow> {
        self.tasks().into_iter().find(|t| t.id == id)
    }

    /// Poll `ctr task ls` until `id` has `status` (hang guard 30 s).
    pub fn wait_status(&self, id: &str, status: &str) -> TaskRow {
        let mut last = None;
        cmd::poll(Duration::from_secs(30), || {
            last = self.task(id);
            last.clone().filter(|t| t.status == status)
        })
        .unwrap_or_else(|| {
            panic!(
                "task {id} never reached {status}; last row: {last:?}\n{}",
                self.ctd.log_tail(30)
            )
        })
    }

    /// Container ids of `ctr containers ls`.
    pub fn containers(&self) -> Vec<String> {
        let out = self.ctr(&["containers", "ls", "-q"]);
        self.expect(&out, "ctr containers ls");
        out.stdout.split_whitespace().map(str::to_string).collect()
    }

    /// `ctr task exec --exec-id EXEC ID ARGS` (stdin = /dev/null).
    pub fn exec(&self, id: &str, exec_id: &str, args: &[&str]) -> Output {
        let mut c = self.base();
        c.args(["tasks", "exec", "--exec-id", exec_id, id])
            .args(args);
        cmd::run(c, TIMEOUT)
    }

    /// `ctr task exec -t --exec-id EXEC ID ARGS` under a pseudo-terminal.
    pub fn exec_pty(&self, id: &str, exec_id: &str, args: &[&str]) -> Output {
        let mut c = self.base();
        c.args(["tasks", "exec", "-t", "--exec-id", exec_id])
            .arg("--fifo-dir")
            .arg(self.ctd.fifo_dir())
            .arg(id)
            .args(args);
        crate::pty::run(c, TIMEOUT)
    }

    /// Kill a task, then delete the task and the container, ignoring errors.
    pub fn cleanup(&self, id: &str) {
        if self.task(id).is_some() {
            self.ctr(&["tasks", "kill", "-a", "-s", "SIGKILL", id]);
            let _ = cmd::poll(Duration::from_secs(10), || {
                self.task(id)
                    .is_none_or(|t| t.status != "RUNNING")
                    .then_some(())
            });
            self.ctr(&["tasks", "rm", "-f", id]);
        }
        self.ctr(&["containers", "rm", id]);
        // A shim that died (or was killed by a test) cannot remove its socket; the name hashes
        // this instance's address, so it is ours.
        if crate::leaks::shim_processes(&self.ctd.socket(), Some(id)).is_empty() {
            let sock = crate::leaks::socket_path(&self.ctd.socket(), &self.ns, id);
            let _ = std::fs::remove_file(sock);
        }
    }

    /// Kill (SIGKILL), delete the task and the container, each step checked, then assert that
    /// nothing of `id` is left (init `pid` included).
    pub fn remove_and_check(&self, id: &str, pid: u32) {
        self.expect(
            &self.ctr(&["tasks", "kill", "-a", "-s", "SIGKILL", id]),
            "ctr task kill -s SIGKILL",
        );
        self.wait_status(id, "STOPPED");
        self.expect(&self.ctr(&["tasks", "rm", id]), "ctr task rm");
        self.expect(&self.ctr(&["containers", "rm", id]), "ctr container rm");
        self.assert_nothing_left(id, &[pid]);
    }

    /// A guard that runs [`Ctr::cleanup`] for `ids` when dropped (also on panic).
    pub fn guard(&self, ids: &[&str]) -> Guard<'_, 'a> {
        Guard {
            ctr: self,
            ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Root directory the nexcage backend `b` uses for this namespace.
    pub fn backend_root(&self, b: Backend) -> PathBuf {
        self.ctd.nexcage_state().join(b.0).join(&self.ns)
    }

    /// Ids backend `b` holds for this namespace ([`Backend::list`]).
    pub fn backend_list(&self, b: Backend) -> Vec<String> {
        b.list(&self.backend_root(b))
    }

    /// Assert that backend `b` (and no other) holds container `id`. With a runtime other than
    /// nexcage (harness development, `E2E_RUNTIME`) there are no backends: nothing to check.
    pub fn assert_backend(&self, id: &str, b: Backend) {
        if !crate::is_nexcage() {
            return;
        }
        for other in crate::BACKENDS.iter().map(|n| Backend(n)) {
            let has = self.backend_list(other).iter().any(|x| x == id);
            assert_eq!(
                has,
                other == b,
                "container {id}: expected on backend {}, but `{} --root {} list` {} it\n{}",
                b.0,
                other.0,
                self.backend_root(other).display(),
                if has { "shows" } else { "does not show" },
                self.ctd.log_tail(30)
            );
        }
    }

    /// Panic unless `id` left nothing behind (see [`crate::leaks::leftovers`]).
    pub fn assert_nothing_left(&self, id: &str, pids: &[u32]) {
        crate::leaks::assert_nothing_left(self.ctd, &self.ns, id, pids);
    }
}

/// Cleans up containers when dropped.
#[derive(Debug)]
pub struct Guard<'c, 'a> {
    ctr: &'c Ctr<'a>,
    ids: Vec<String>,
}

impl Drop for Guard<'_, '_> {
    fn drop(&mut self) {
        for id in &self.ids {
            self.ctr.cleanup(id);
        }
    }
}
