//! A private containerd: its own root, state, gRPC socket and opt dir under a temp dir, and
//! `<tmp>/bin` (holding a symlink to the shim under test) first on its PATH. The containerd and
//! ctr binaries are those of the release series under test ([`crate::versions`]): config
//! version 2 for 1.x, version 3 for 2.x. By default the CRI plugin is disabled (the ctr suite);
//! [`Containerd::start_cri`] enables it with a `nexcage` runtime, a local sandbox image and a
//! private CNI bridge ([`crate::cni`]). An instance can be restarted on the same directories,
//! and on drop it removes every task it still has, stops, and unmounts and deletes what it left.

use std::collections::{BTreeMap, BTreeSet};
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
use crate::versions::{self, Series};
use crate::Backend;

/// The containerd namespace the CRI plugin uses.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// The CRI runtime handler (runtime table entry) of nexcage.
pub const CRI_HANDLER: &str = "nexcage";

/// The sandbox ("pause") image of CRI instances, built locally ([`crate::image`]).
pub const PAUSE_IMAGE: &str = "docker.io/local/pause:latest";

/// What a CRI-enabled instance has on top of a plain one.
#[derive(Debug)]
pub struct CriSetup {
    /// `default_backend` of the nexcage config the `nexcage` runtime passes as `ConfigPath`.
    pub default_backend: Backend,
    /// That nexcage config file.
    pub nexcage_config: PathBuf,
    /// The pods' CNI network.
    pub net: crate::cni::Network,
}

/// A containerd instance owned by the tests.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    /// Namespace this instance's ctr tests use (unique per instance, so the cgroup paths
    /// `/<ns>/<id>` of concurrent test processes never collide). CRI pods use it as their
    /// cgroup parent (`/<ns>/<id>`) for the same reason; their containerd namespace is
    /// [`CRI_NAMESPACE`].
    ns: String,
    cri: Option<CriSetup>,
    child: Mutex<Option<Child>>,
    imported: Mutex<BTreeSet<String>>,
    /// (namespace, id) of every container id handed out for this instance.
    ids: Mutex<BTreeSet<(String, String)>>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn config(dir: &Path, cri: Option<&CriSetup>) -> String {
    match versions::series() {
        Series::V1_6 | Series::V1_7 => config_v2(dir, cri),
        Series::V2_1 => config_v3(dir, cri),
    }
}

/// The `nexcage` runtime entry (under `prefix`, the runtimes table of the series).
fn runtime_entry(prefix: &str, cri: &CriSetup) -> String {
    let mut s = format!(
        r#"
[{prefix}.{CRI_HANDLER}]
  runtime_type = "{rt}"
  pod_annotations = ["nexcage.io/*"]
  container_annotations = ["nexcage.io/*"]
"#,
        rt = crate::runtime()
    );
    if crate::is_nexcage() {
        s.push_str(&format!(
            r#"[{prefix}.{CRI_HANDLER}.options]
  TypeUrl = "nexcage.v1.Options"
  ConfigPath = "{}"
"#,
            cri.nexcage_config.display()
        ));
    }
    s
}

/// containerd 1.6 / 1.7: config version 2, one CRI plugin `io.containerd.grpc.v1.cri`.
fn config_v2(dir: &Path, cri: Option<&CriSetup>) -> String {
    let d = dir.display();
    let mut s = format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
{disabled}
[grpc]
  address = "{d}/containerd.sock"

[debug]
  level = "debug"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#,
        disabled = if cri.is_some() {
            ""
        } else {
            "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
        }
    );
    if let Some(cri) = cri {
        let p = r#"plugins."io.containerd.grpc.v1.cri""#;
        s.push_str(&format!(
            r#"
[{p}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_port = "0"
  netns_mounts_under_state_dir = true

[{p}.cni]
  bin_dir = "{bin}"
  conf_dir = "{conf}"
  max_conf_num = 1

[{p}.containerd]
  default_runtime_name = "{CRI_HANDLER}"
"#,
            bin = crate::cni::BIN_DIR,
            conf = cri.net.conf_dir.display(),
        ));
        s.push_str(&runtime_entry(&format!("{p}.containerd.runtimes"), cri));
    }
    s
}

/// containerd 2.x: config version 3. CRI is split into `io.containerd.cri.v1.images` (the
/// sandbox image is a pinned image there), `io.containerd.cri.v1.runtime` (runtimes, CNI, OOM
/// score) and `io.containerd.grpc.v1.cri` (the gRPC service and the stream server). NRI is on by
/// default in 2.x and listens on the host-wide /var/run/nri/nri.sock, so it is disabled.
fn config_v3(dir: &Path, cri: Option<&CriSetup>) -> String {
    let d = dir.display();
    let disabled = if cri.is_some() {
        r#"["io.containerd.nri.v1.nri"]"#
    } else {
        r#"["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.nri.v1.nri"]"#
    };
    let mut s = format!(
        r#"version = 3
root = "{d}/root"
state = "{d}/state"
disabled_plugins = {disabled}

[grpc]
  address = "{d}/containerd.sock"

[debug]
  level = "debug"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
    );
    if let Some(cri) = cri {
        let images = r#"plugins."io.containerd.cri.v1.images""#;
        let rt = r#"plugins."io.containerd.cri.v1.runtime""#;
        s.push_str(&format!(
            r#"
[{images}.pinned_images]
  sandbox = "{PAUSE_IMAGE}"

[{rt}]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_cdi = false

[{rt}.cni]
  bin_dirs = ["{bin}"]
  conf_dir = "{conf}"
  max_conf_num = 1

[{rt}.containerd]
  default_runtime_name = "{CRI_HANDLER}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_port = "0"
"#,
            bin = crate::cni::BIN_DIR,
            conf = cri.net.conf_dir.display(),
        ));
        s.push_str(&runtime_entry(&format!("{rt}.containerd.runtimes"), cri));
    }
    s
}

impl Containerd {
    /// Start a new instance with the CRI plugin disabled (panics with the reason and the log
    /// when it does not come up).
    pub fn start() -> Containerd {
        Containerd::start_with(None)
    }

    /// Start a new instance with the CRI plugin: runtime handler [`CRI_HANDLER`] with
    /// `ConfigPath` = a nexcage config whose `default_backend` is `backend`, the local pause
    /// and busybox images imported into [`CRI_NAMESPACE`], and a private CNI network.
    pub fn start_cri(backend: Backend) -> Containerd {
        Containerd::start_with(Some(backend))
    }

    fn start_with(cri_backend: Option<Backend>) -> Containerd {
        crate::prereq::check();
        if cri_backend.is_some() {
            crate::prereq::check_cri();
        }
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
        let cri = cri_backend.map(|b| {
            let nexcage_config = dir.join(format!("nexcage-cri-{}.toml", b.0));
            let text = format!(
                "state_dir = \"{}\"\ndefault_backend = \"{}\"\n{}",
                dir.join("nexcage-state").display(),
                b.0,
                crate::pve::config(&dir, b)
            );
            std::fs::write(&nexcage_config, text)
                .unwrap_or_else(|e| panic!("write {}: {e}", nexcage_config.display()));
            CriSetup {
                default_backend: b,
                nexcage_config,
                net: crate::cni::Network::allocate(&dir),
            }
        });
        std::fs::write(dir.join("config.toml"), config(&dir, cri.as_ref()))
            .expect("write config.toml");
        let c = Containerd {
            ns: format!("e2e{}-{n}", std::process::id()),
            dir,
            cri,
            child: Mutex::new(None),
            imported: Mutex::new(BTreeSet::new()),
            ids: Mutex::new(BTreeSet::new()),
        };
        c.launch();
        if c.cri.is_some() {
            crate::image::import_cri(&c.socket());
            c.imported.lock().unwrap().insert(CRI_NAMESPACE.to_string());
        }
        c
    }

    /// The CRI instance for `backend` that the tests of one test binary share (stopped at
    /// process exit).
    pub fn shared_cri(backend: Backend) -> &'static Containerd {
        static SHARED: Mutex<BTreeMap<&'static str, &'static Containerd>> =
            Mutex::new(BTreeMap::new());
        let mut map = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(backend.0) {
            return c;
        }
        let c: &'static Containerd = Box::leak(Box::new(Containerd::start_cri(backend)));
        crate::at_exit(move || c.shutdown());
        map.insert(backend.0, c);
        c
    }

    /// The CRI setup (panics for an instance without CRI).
    pub fn cri(&self) -> &CriSetup {
        self.cri
            .as_ref()
            .expect("this containerd instance was started without the CRI plugin")
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
        // The shim first, then the series' own binaries (its containerd-shim-runc-v2 for
        // E2E_RUNTIME=io.containerd.runc.v2), then the rest.
        let mut path = vec![self.dir.join("bin")];
        path.extend(versions::bin_dir());
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path = std::env::join_paths(path).expect("PATH");
        let child = Command::new(versions::containerd_bin())
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env("PATH", path)
            .envs(crate::pve::envs(&self.dir))
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
            let mut v = versions::ctr_command();
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

    fn ctr(&self, ns: &str, args: &[&str]) -> cmd::Output {
        let mut c = versions::ctr_command();
        c.arg("-a").arg(self.socket()).arg("-n").arg(ns).args(args);
        cmd::run(c, Duration::from_secs(20))
    }

    /// Remove every task and container of this instance's namespaces (best effort).
    fn remove_all(&self) {
        let mut namespaces = vec![self.ns.clone()];
        if self.cri.is_some() {
            namespaces.push(CRI_NAMESPACE.to_string());
        }
        for ns in &namespaces {
            let tasks = self.ctr(ns, &["tasks", "ls", "-q"]).stdout;
            for id in tasks.split_whitespace() {
                self.ctr(ns, &["tasks", "kill", "-a", "-s", "SIGKILL", id]);
            }
            for id in tasks.split_whitespace() {
                let _ = cmd::poll(Duration::from_secs(5), || {
                    let ls = self.ctr(ns, &["tasks", "ls"]).stdout;
                    (!ls.lines()
                        .any(|l| l.starts_with(id) && l.contains("RUNNING")))
                    .then_some(())
                });
                self.ctr(ns, &["tasks", "rm", "-f", id]);
            }
            let containers = self.ctr(ns, &["containers", "ls", "-q"]).stdout;
            for id in containers.split_whitespace() {
                self.ctr(ns, &["containers", "rm", id]);
            }
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
        if let Some(cri) = &self.cri {
            cri.net.remove();
        }
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
