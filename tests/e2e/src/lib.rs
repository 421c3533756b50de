//! End-to-end test harness for `containerd-shim-nexcage-v1`.
//!
//! The tests in `tests/` start a private containerd ([`containerd::Containerd`]), import a
//! busybox image built locally ([`image`]) and drive the shim through `ctr` ([`ctr::Ctr`]) for
//! every backend ([`BACKENDS`]): [`backend_tests!`] turns each scenario function into one test
//! per backend (`crun::name`, `runc::name`, `lxc::name`, `proxmox_lxc::name`; the last on a
//! simulated Proxmox VE node per containerd instance, [`pve`]). They need root and the real stack (containerd,
//! ctr, runc, crun, lxc, umoci, busybox-static); `tests/run.sh` installs it. A missing prerequisite
//! fails the tests with a message saying what is missing.
//!
//! Environment:
//! - `NEXCAGE_SHIM`: the shim binary (default `<workspace>/target/debug/containerd-shim-nexcage-v1`,
//!   or under `$CARGO_TARGET_DIR`); build it with `cargo build -p nexcage-shim`.
//! - `E2E_RUNTIME`: run the suite against another runtime, e.g. `io.containerd.runc.v2` (the
//!   stock Go shim), to develop the harness itself. Then no nexcage config is passed and backend
//!   assertions are skipped; the nexcage-specific scenarios (routing, config errors) fail.
//! - `E2E_KEEP`: keep the temp dirs of the containerd instances (for debugging).
//! - `E2E_CONTAINERD`: the containerd release series, `1.6` (default), `1.7` or `2.1`
//!   ([`versions`]; `tests/fetch-containerd.sh` provides 1.7 and 2.1), `E2E_CONTAINERD_BIN` the
//!   directory of its binaries. `E2E_TIMINGS`: a file the CRI tests append pod start times to.

pub mod cmd;
pub mod cni;
pub mod containerd;
pub mod cri;
pub mod ctr;
pub mod image;
pub mod leaks;
pub mod prereq;
pub mod pty;
pub mod pve;
pub mod shim_client;
pub mod versions;

use std::path::PathBuf;
use std::sync::Mutex;

/// The runtime type of nexcage.
pub const NEXCAGE_RUNTIME: &str = "io.containerd.nexcage.v1";

/// File name of the shim binary (what containerd looks up on its PATH).
pub const SHIM_NAME: &str = "containerd-shim-nexcage-v1";

/// Backends every scenario runs on. A new backend adds its name here and in
/// [`backend_tests!`].
pub const BACKENDS: &[&str] = &["crun", "runc", "lxc", "proxmox-lxc"];

/// A backend name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend(pub &'static str);

impl Backend {
    /// The backend a [`backend_tests!`] module is named after (`proxmox_lxc` is `proxmox-lxc`).
    pub fn from_ident(ident: &'static str) -> Backend {
        match ident {
            "proxmox_lxc" => Backend(pve::NAME),
            other => Backend(other),
        }
    }

    /// Whether containers run under LXC (`lxc`, and `proxmox-lxc`, which runs its CTs through
    /// the lxc backend's machinery).
    pub fn is_lxc(self) -> bool {
        matches!(self.0, "lxc" | pve::NAME)
    }

    /// A shell word for the application's `/proc/PID` inside the container: `/proc/1`, or under
    /// LXC, where LXC's own init is pid 1, the init's child.
    pub fn app_proc_in_container(self) -> &'static str {
        if self.is_lxc() {
            "/proc/$(cut -d' ' -f1 /proc/1/task/1/children)"
        } else {
            "/proc/1"
        }
    }

    /// How many parents up from the task's pid the shim is: 1, or 2 under LXC (the task pid
    /// is LXC's init, a child of `lxc-execute`, the shim's child).
    pub fn shim_generation(self) -> usize {
        if self.is_lxc() {
            2
        } else {
            1
        }
    }

    /// Container ids the backend holds under `root`: `<crun|runc> --root ROOT list -q`,
    /// `lxc-ls -P ROOT -1` for lxc (the lxcpath), the records of ROOT's namespace for
    /// proxmox-lxc ([`pve::list`]). Empty when `root` does not exist. `list` walks
    /// the state dirs and fails when a container of a concurrent test is deleted under its feet:
    /// retried for a while, then a panic with the last output.
    pub fn list(self, root: &std::path::Path) -> Vec<String> {
        if self.0 == pve::NAME {
            return pve::list(root);
        }
        if !root.exists() {
            return Vec::new();
        }
        let mut last = None;
        cmd::poll(std::time::Duration::from_secs(10), || {
            let c = match self.0 {
                "lxc" => {
                    let mut c = std::process::Command::new("lxc-ls");
                    c.arg("-P").arg(root).arg("-1");
                    c
                }
                other => {
                    let mut c = std::process::Command::new(other);
                    c.arg("--root").arg(root).args(["list", "-q"]);
                    c
                }
            };
            let out = cmd::run(c, std::time::Duration::from_secs(30));
            let ok = out.success();
            let ids = out.stdout.split_whitespace().map(str::to_string).collect();
            last = Some(out);
            ok.then_some(ids)
        })
        .unwrap_or_else(|| panic!("{} list keeps failing: {last:?}", self.0))
    }

    /// Some other backend (for routing tests).
    pub fn other(self) -> Backend {
        Backend(
            BACKENDS
                .iter()
                .copied()
                .find(|b| *b != self.0)
                .expect("at least two backends"),
        )
    }
}

/// What the generated test passes to a scenario: backend and scenario name.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Backend under test.
    pub backend: Backend,
    /// Scenario (function) name, part of every container id.
    pub name: &'static str,
}

impl Case {
    /// `ctr` on the containerd shared by this test binary.
    pub fn ctr(self) -> ctr::Ctr<'static> {
        ctr::Ctr::new(containerd::Containerd::shared(), self)
    }

    /// `ctr` on an instance of the test's own (restart, kill -9 of the shim, churn).
    pub fn ctr_on(self, ctd: &containerd::Containerd) -> ctr::Ctr<'_> {
        ctr::Ctr::new(ctd, self)
    }
}

/// The runtime under test: `$E2E_RUNTIME`, default nexcage.
pub fn runtime() -> String {
    std::env::var("E2E_RUNTIME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| NEXCAGE_RUNTIME.to_string())
}

/// Whether the runtime under test is nexcage.
pub fn is_nexcage() -> bool {
    runtime() == NEXCAGE_RUNTIME
}

/// The workspace root (`CARGO_MANIFEST_DIR/../..`).
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shim binary under test; panics with the build command when it is missing.
pub fn shim_binary() -> PathBuf {
    let path = match std::env::var_os("NEXCAGE_SHIM") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(|t| workspace_dir().join(t))
                .unwrap_or_else(|| workspace_dir().join("target"));
            target.join("debug").join(SHIM_NAME)
        }
    };
    let path = path.canonicalize().unwrap_or_else(|_| {
        panic!(
            "the shim binary {} does not exist: build it with `cargo build -p nexcage-shim` \
             (or set NEXCAGE_SHIM to its path)",
            path.display()
        )
    });
    path
}

type Hook = Box<dyn Fn() + Send>;
static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

extern "C" fn run_hooks() {
    let hooks = std::mem::take(&mut *HOOKS.lock().unwrap_or_else(|e| e.into_inner()));
    for h in hooks {
        // A panic must not unwind into libc.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(h));
    }
}

/// Run `f` when the process exits (statics are never dropped; the shared containerd is stopped
/// this way once the test harness is done).
pub fn at_exit(f: impl Fn() + Send + 'static) {
    let mut hooks = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    if hooks.is_empty() {
        // SAFETY: `run_hooks` is an `extern "C" fn()` that never unwinds (it catches panics);
        // registering it is the only thing atexit does with the pointer.
        let rc = unsafe { libc::atexit(run_hooks) };
        assert_eq!(rc, 0, "atexit failed");
    }
    hooks.push(Box::new(f));
}

/// Turn scenario functions `fn name(case: Case)` into one `#[test]` per backend:
/// `backend_tests!(echo_prints_hi, exit_code_propagates);` generates `crun::echo_prints_hi`,
/// `runc::echo_prints_hi`, ...
#[macro_export]
macro_rules! backend_tests {
    ($($test:ident),* $(,)?) => {
        $crate::backend_tests!(@mods [crun, runc, lxc, proxmox_lxc] $($test),*);
    };
    (@mods [] $($test:ident),*) => {};
    (@mods [$backend:ident $(, $rest:ident)*] $($test:ident),*) => {
        mod $backend {
            $(
                #[test]
                fn $test() {
                    super::$test($crate::Case {
                        backend: $crate::Backend::from_ident(stringify!($backend)),
                        name: stringify!($test),
                    })
                }
            )*
        }
        $crate::backend_tests!(@mods [$($rest),*] $($test),*);
    };
}
