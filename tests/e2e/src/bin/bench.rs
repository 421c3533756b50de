//! Benchmark of `containerd-shim-nexcage-v1` against the stock Go shim (`containerd-shim-runc-v2`):
//! start-to-exit latency of `ctr run --rm IMAGE ID true` and the resident memory (RSS, PSS) of
//! one shim per container. A measurement tool: it asserts nothing about the numbers, it prints a
//! markdown report on stdout (progress goes to stderr) and says whether the targets are met.
//!
//! ```sh
//! tests/setup-host.sh                        # once, as root (packages, cgroup v1 mounts for crun)
//! cargo build --release -p nexcage-shim
//! cargo run --release -p nexcage-e2e --bin bench -- [--runs N] [--containers M]
//! ```
//!
//! Everything runs in ONE private containerd ([`Containerd::start`]) holding the busybox test
//! image. Configurations: Go shim + runc, Go shim + crun (`--runc-binary`), nexcage + crun,
//! nexcage + runc, nexcage + lxc (a `--runtime-config-path` file with `default_backend`).
//!
//! - Latency: `2 + N` rounds; each round runs every configuration once (round-robin, the start
//!   configuration rotating with the round), the first 2 rounds are warm-up and discarded. Each
//!   sample is the wall-clock time from spawning `ctr run --rm …` to its exit; a non-zero exit
//!   aborts the benchmark with ctr's output and containerd's log.
//! - Memory: per configuration, `M` detached containers (`sleep 100000`), then Rss and Pss of
//!   each container's shim process from `/proc/PID/smaps_rollup`, read while all M are running;
//!   then the tasks are killed (SIGKILL) and deleted, and the next configuration starts only
//!   when no shim of this containerd is left.
//!
//! The release shim `target/release/containerd-shim-nexcage-v1` must exist (this tool builds
//! nothing). On exit, also on error, panic or SIGINT/SIGTERM, every task and container is removed
//! and containerd stopped ([`Containerd::shutdown`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, SigHandler, Signal};
use nix::unistd::Pid;

use nexcage_e2e::cmd::{self, TIMEOUT};
use nexcage_e2e::containerd::Containerd;
use nexcage_e2e::image::{self, IMAGE};
use nexcage_e2e::{leaks, versions, NEXCAGE_RUNTIME, SHIM_NAME};

/// Rounds run before the measured ones and discarded.
const WARMUP_ROUNDS: usize = 2;
/// Default measured rounds (`--runs`).
const DEFAULT_RUNS: usize = 30;
/// Default containers per configuration in the memory phase (`--containers`).
const DEFAULT_CONTAINERS: usize = 10;
/// Wait between "all M shims are up" and reading their memory, so their start-up is over.
const SETTLE: Duration = Duration::from_secs(2);
/// Hang guard for a state to be reached (a task RUNNING, shims gone); not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(60);
/// The Go shim's runtime type.
const GO_RUNTIME: &str = "io.containerd.runc.v2";
/// The Go shim's binary name.
const GO_SHIM: &str = "containerd-shim-runc-v2";
/// The crun binary the Go shim is pointed at with `--runc-binary`.
const CRUN: &str = "/usr/bin/crun";

/// Targets (printed as met / not met, never asserted).
const TARGET_RSS_MIB: f64 = 2.5;
const TARGET_PSS_MIB: f64 = 1.0;
const TARGET_LATENCY_RATIO: f64 = 0.80;
const TARGET_LXC_RATIO: f64 = 1.5;

/// Set by SIGINT/SIGTERM/SIGHUP; the benchmark stops at the next check and cleans up.
static STOP: AtomicBool = AtomicBool::new(false);
/// The containerd of this run, for the panic hook's cleanup.
static CTD: OnceLock<Containerd> = OnceLock::new();

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Which shim a configuration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shim {
    Go,
    Nexcage,
}

/// One configuration under test.
#[derive(Debug, Clone, Copy)]
struct Config {
    /// Name in the report.
    name: &'static str,
    /// Short tag used in container ids.
    tag: &'static str,
    shim: Shim,
    /// Backend: `runc` or `crun` (also the Go shim's OCI runtime), or `lxc` (nexcage only).
    backend: &'static str,
}

const CONFIGS: [Config; 5] = [
    Config {
        name: "Go shim + runc",
        tag: "go-runc",
        shim: Shim::Go,
        backend: "runc",
    },
    Config {
        name: "Go shim + crun",
        tag: "go-crun",
        shim: Shim::Go,
        backend: "crun",
    },
    Config {
        name: "nexcage + crun",
        tag: "nx-crun",
        shim: Shim::Nexcage,
        backend: "crun",
    },
    Config {
        name: "nexcage + runc",
        tag: "nx-runc",
        shim: Shim::Nexcage,
        backend: "runc",
    },
    Config {
        name: "nexcage + lxc",
        tag: "nx-lxc",
        shim: Shim::Nexcage,
        backend: "lxc",
    },
];

/// Command-line options.
#[derive(Debug, Clone, Copy)]
struct Args {
    runs: usize,
    containers: usize,
}

const USAGE: &str =
    "usage: cargo run --release -p nexcage-e2e --bin bench -- [--runs N] [--containers M]

  --runs N         measured latency runs per configuration (default 30; 2 warm-up rounds extra)
  --containers M   detached containers per configuration for the memory phase (default 10)

Needs root, `tests/setup-host.sh` run once, and the release shim
(`cargo build --release -p nexcage-shim`). Prints a markdown report on stdout.";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        runs: DEFAULT_RUNS,
        containers: DEFAULT_CONTAINERS,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let mut value = |what: &str| -> Result<usize> {
            let v = inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| anyhow!("{what} needs a value\n\n{USAGE}"))?;
            match v.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => bail!("{what}: `{v}` is not a positive integer\n\n{USAGE}"),
            }
        };
        match name.as_str() {
            "--runs" => args.runs = value("--runs")?,
            "--containers" => args.containers = value("--containers")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => bail!("unknown argument `{a}`\n\n{USAGE}"),
        }
    }
    Ok(args)
}

/// `target/release/containerd-shim-nexcage-v1` (under `$CARGO_TARGET_DIR` when set).
fn release_shim() -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| nexcage_e2e::workspace_dir().join(t))
        .unwrap_or_else(|| nexcage_e2e::workspace_dir().join("target"));
    let path = target.join("release").join(SHIM_NAME);
    path.canonicalize().map_err(|_| {
        anyhow!(
            "the release shim {} does not exist: build it first with\n\n    cargo build --release -p nexcage-shim\n\n\
             (the benchmark builds nothing itself)",
            path.display()
        )
    })
}

/// Fail early, with the fix, on what would otherwise break half-way through.
fn precheck() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the benchmark starts containerd and containers: run it as root");
    }
    if !Path::new(CRUN).is_file() {
        bail!("{CRUN} is missing (Debian package crun; `tests/setup-host.sh` installs it)");
    }
    // crun 1.8 refuses a hybrid host whose cgroup2 hierarchy still holds controllers.
    let unified = "/sys/fs/cgroup/unified/cgroup.controllers";
    if let Ok(c) = std::fs::read_to_string(unified) {
        if !c.trim().is_empty() {
            bail!(
                "hybrid cgroup host with controllers on cgroup2 ({}): crun 1.8 cannot run \
                 containers here. Run `tests/setup-host.sh` once (as root; idempotent).",
                c.trim()
            );
        }
    }
    Ok(())
}

fn check_stop() -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// The benchmark's view of the private containerd.
#[derive(Debug)]
struct Bench {
    ctd: &'static Containerd,
    ns: String,
    /// nexcage config file per backend (`default_backend`, `state_dir`).
    nexcage_configs: Vec<(&'static str, PathBuf)>,
    /// Canonical path of the nexcage shim binary.
    shim: PathBuf,
}

impl Bench {
    fn new(ctd: &'static Containerd, shim: PathBuf) -> Result<Bench> {
        let mut nexcage_configs = Vec::new();
        for b in ["crun", "runc", "lxc"] {
            let path = ctd.dir().join(format!("bench-nexcage-{b}.toml"));
            let text = format!(
                "default_backend = \"{b}\"\nstate_dir = \"{}\"\n",
                ctd.nexcage_state().display()
            );
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
            nexcage_configs.push((b, path));
        }
        Ok(Bench {
            ctd,
            ns: ctd.ns().to_string(),
            nexcage_configs,
            shim,
        })
    }

    /// `ctr -a SOCK -n NS`.
    fn base(&self) -> Command {
        let mut c = versions::ctr_command();
        c.arg("-a").arg(self.ctd.socket()).arg("-n").arg(&self.ns);
        c
    }

    /// `ctr ARGS`, checked.
    fn ctr(&self, args: &[&str]) -> Result<cmd::Output> {
        let mut c = self.base();
        c.args(args);
        let out = cmd::run(c, TIMEOUT);
        if !out.success() {
            bail!("{out:?}\n{}", self.ctd.log_tail(30));
        }
        Ok(out)
    }

    /// The runtime flags of `cfg` for `ctr run`.
    fn runtime_flags(&self, cfg: &Config) -> Vec<String> {
        match cfg.shim {
            Shim::Go => {
                let mut v = vec!["--runtime".to_string(), GO_RUNTIME.to_string()];
                if cfg.backend == "crun" {
                    v.push("--runc-binary".to_string());
                    v.push(CRUN.to_string());
                }
                v
            }
            Shim::Nexcage => {
                let path = self
                    .nexcage_configs
                    .iter()
                    .find(|(b, _)| *b == cfg.backend)
                    .map(|(_, p)| p.display().to_string())
                    .unwrap_or_default();
                vec![
                    "--runtime".to_string(),
                    NEXCAGE_RUNTIME.to_string(),
                    "--runtime-config-path".to_string(),
                    path,
                ]
            }
        }
    }

    /// `ctr run [--rm | -d] --fifo-dir DIR <runtime flags> IMAGE ID ARGS`.
    fn run_cmd(&self, cfg: &Config, detach: bool, id: &str, args: &[&str]) -> Command {
        let mut c = self.base();
        c.arg("run");
        c.arg(if detach { "-d" } else { "--rm" });
        c.arg("--fifo-dir").arg(self.ctd.fifo_dir());
        c.args(self.runtime_flags(cfg));
        c.arg(IMAGE).arg(id).args(args);
        c
    }

    /// Run the command of one latency sample and return its wall-clock time (spawn to exit).
    /// Waits without polling (the harness's `cmd::run` polls every 20 ms, too coarse here); a
    /// watchdog kills a hung ctr after [`TIMEOUT`].
    fn timed(&self, mut c: Command) -> Result<Duration> {
        let line = cmd::cmdline(&c);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let child = c.spawn().with_context(|| format!("start `{line}`"))?;
        let pid = child.id();
        let (tx, rx) = mpsc::channel::<()>();
        let watchdog = thread::spawn(move || {
            if rx.recv_timeout(TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                return true;
            }
            false
        });
        let out = child.wait_with_output();
        let elapsed = start.elapsed();
        let _ = tx.send(());
        let hung = watchdog.join().unwrap_or(false);
        let out = out.with_context(|| format!("wait for `{line}`"))?;
        if hung || !out.status.success() {
            bail!(
                "`{line}` failed ({}{}):\n--- stdout ---\n{}\n--- stderr ---\n{}\n{}",
                out.status,
                if hung { ", hung and killed" } else { "" },
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.ctd.log_tail(30)
            );
        }
        Ok(elapsed)
    }

    /// `(id, status)` of every task.
    fn tasks(&self) -> Result<Vec<(String, String)>> {
        let out = self.ctr(&["tasks", "ls"])?;
        Ok(out
            .stdout
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3).then(|| (f[0].to_string(), f[2].to_string()))
            })
            .collect())
    }

    /// Poll until every task of `ids` has `status` (hang guard).
    fn wait_status(&self, ids: &[String], status: &str) -> Result<()> {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            check_stop()?;
            let tasks = self.tasks()?;
            let missing: Vec<&String> = ids
                .iter()
                .filter(|id| !tasks.iter().any(|(t, s)| t == *id && s == status))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "tasks {missing:?} never reached {status}: {tasks:?}\n{}",
                    self.ctd.log_tail(30)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Poll until no shim of this containerd is left (hang guard).
    fn wait_no_shims(&self) -> Result<()> {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            check_stop()?;
            let left = leaks::shim_processes(&self.ctd.socket(), None);
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("shims still running: {left:?}\n{}", self.ctd.log_tail(30));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The latency phase: round-robin over the configurations.
    fn latency(&self, runs: usize) -> Result<Latency> {
        let mut samples = vec![Vec::with_capacity(runs); CONFIGS.len()];
        let rounds = WARMUP_ROUNDS + runs;
        let cpu_start = cpu_times();
        let mut other_containerds = 0;
        for r in 0..rounds {
            other_containerds = other_containerds.max(self.other_containerds());
            for k in 0..CONFIGS.len() {
                check_stop()?;
                // Rotate the start so no configuration always follows the same other one.
                let i = (r + k) % CONFIGS.len();
                let cfg = &CONFIGS[i];
                let id = format!("bench-lat-{}-{r}", cfg.tag);
                // Known to the harness: a dead shim's socket is removed at shutdown.
                self.ctd.track(&self.ns, &id);
                let t = self.timed(self.run_cmd(cfg, false, &id, &["true"]))?;
                if r >= WARMUP_ROUNDS {
                    samples[i].push(t);
                }
            }
            eprintln!(
                "bench: latency round {}/{rounds}{}",
                r + 1,
                if r < WARMUP_ROUNDS { " (warm-up)" } else { "" }
            );
        }
        let cpu_busy = cpu_busy(cpu_start, cpu_times());
        self.wait_no_shims()?;
        Ok(Latency {
            samples,
            cpu_busy,
            other_containerds,
        })
    }

    /// containerd processes other than ours (other work on the host skews the latency).
    fn other_containerds(&self) -> usize {
        let ours = self.ctd.pid();
        leaks::processes()
            .iter()
            .filter(|p| {
                p.pid != ours
                    && Path::new(&p.args[0]).file_name().and_then(|f| f.to_str())
                        == Some("containerd")
            })
            .count()
    }

    /// The memory phase for one configuration.
    fn memory(&self, cfg: &Config, m: usize) -> Result<MemResult> {
        let ids: Vec<String> = (0..m)
            .map(|j| format!("bench-mem-{}-{j}", cfg.tag))
            .collect();
        for id in &ids {
            check_stop()?;
            self.ctd.track(&self.ns, id);
            let out = cmd::run(self.run_cmd(cfg, true, id, &["sleep", "100000"]), TIMEOUT);
            if !out.success() {
                bail!("{out:?}\n{}", self.ctd.log_tail(30));
            }
        }
        self.wait_status(&ids, "RUNNING")?;
        // Exactly one shim per container (the Go shim's short-lived `start` process is gone).
        let deadline = Instant::now() + HANG_GUARD;
        let pids: Vec<u32> = loop {
            check_stop()?;
            let found: Vec<Vec<leaks::Proc>> = ids
                .iter()
                .map(|id| leaks::shim_processes(&self.ctd.socket(), Some(id)))
                .collect();
            if found.iter().all(|f| f.len() == 1) {
                break found.iter().map(|f| f[0].pid).collect();
            }
            if Instant::now() >= deadline {
                bail!("not exactly one shim per container: {found:?}");
            }
            thread::sleep(Duration::from_millis(100));
        };
        // nexcage: the release shim; Go: whichever containerd-shim-runc-v2 containerd found on
        // its PATH (that of the series under test, else the system's), the same for all.
        let exe_of = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let expected = match cfg.shim {
            Shim::Go => exe_of(pids[0]),
            Shim::Nexcage => self.shim.clone(),
        };
        for pid in &pids {
            let exe = exe_of(*pid);
            let name = if cfg.shim == Shim::Go {
                GO_SHIM
            } else {
                SHIM_NAME
            };
            if exe != expected || exe.file_name().and_then(|f| f.to_str()) != Some(name) {
                bail!(
                    "shim {pid} runs {}, expected {}",
                    exe.display(),
                    expected.display()
                );
            }
        }
        thread::sleep(SETTLE);
        check_stop()?;
        let mut shims = Vec::new();
        for pid in &pids {
            shims.push(read_mem(*pid)?);
        }
        // Other processes running the same binary share its pages and lower the PSS.
        let others = processes_running(&expected)
            .into_iter()
            .filter(|p| !pids.contains(p))
            .count();
        eprintln!(
            "bench: memory {}: {} shims measured, {others} other process(es) run the same binary",
            cfg.name,
            shims.len()
        );
        for id in &ids {
            self.ctr(&["tasks", "kill", "-s", "SIGKILL", id])?;
        }
        self.wait_status(&ids, "STOPPED")?;
        for id in &ids {
            self.ctr(&["tasks", "rm", id])?;
            self.ctr(&["containers", "rm", id])?;
        }
        self.wait_no_shims()?;
        Ok(MemResult {
            shims,
            others,
            binary: expected,
        })
    }
}

/// The latency phase's result.
#[derive(Debug)]
struct Latency {
    /// Measured samples per configuration (index of [`CONFIGS`]).
    samples: Vec<Vec<Duration>>,
    /// Fraction of the host's CPU time that was busy during the phase (every process).
    cpu_busy: f64,
    /// Most containerd instances other than ours seen at the start of a round.
    other_containerds: usize,
}

/// `(busy, total)` jiffies of all CPUs from the `cpu` line of /proc/stat.
fn cpu_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait are the 4th and 5th fields.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

fn cpu_busy(start: (u64, u64), end: (u64, u64)) -> f64 {
    let total = end.1.saturating_sub(start.1);
    if total == 0 {
        return f64::NAN;
    }
    end.0.saturating_sub(start.0) as f64 / total as f64
}

/// Memory of one shim process.
#[derive(Debug, Clone, Copy)]
struct Mem {
    rss_kib: u64,
    pss_kib: u64,
    /// Anonymous memory (heap, stacks): not shared with the other shims.
    anon_kib: u64,
    threads: u64,
}

/// The memory phase's result for one configuration.
#[derive(Debug)]
struct MemResult {
    shims: Vec<Mem>,
    /// Processes outside the measured set running the same binary.
    others: usize,
    binary: PathBuf,
}

impl MemResult {
    fn mean(&self, f: impl Fn(&Mem) -> u64) -> f64 {
        self.shims.iter().map(&f).sum::<u64>() as f64 / self.shims.len().max(1) as f64
    }
    fn max(&self, f: impl Fn(&Mem) -> u64) -> u64 {
        self.shims.iter().map(f).max().unwrap_or(0)
    }
}

/// `key:   N kB` from a /proc file.
fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn read_mem(pid: u32) -> Result<Mem> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .with_context(|| format!("read /proc/{pid}/smaps_rollup"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    Ok(Mem {
        rss_kib: kb_field(&smaps, "Rss").ok_or_else(|| anyhow!("no Rss in smaps_rollup"))?,
        pss_kib: kb_field(&smaps, "Pss").ok_or_else(|| anyhow!("no Pss in smaps_rollup"))?,
        anon_kib: kb_field(&smaps, "Anonymous").unwrap_or(0),
        threads: kb_field(&status, "Threads").unwrap_or(0),
    })
}

/// Pids of live processes whose executable is `exe`.
fn processes_running(exe: &Path) -> Vec<u32> {
    leaks::processes()
        .into_iter()
        .filter(|p| {
            std::fs::read_link(format!("/proc/{}/exe", p.pid))
                .ok()
                .as_deref()
                == Some(exe)
        })
        .map(|p| p.pid)
        .collect()
}

/// Latency statistics in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Stats {
    n: usize,
    median: f64,
    p90: f64,
    mean: f64,
    min: f64,
    max: f64,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    if n == 0 {
        return Stats {
            n,
            median: f64::NAN,
            p90: f64::NAN,
            mean: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        };
    }
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    // Nearest rank: the smallest sample with at least 90 % of the samples at or below it.
    let rank = ((0.9 * n as f64).ceil() as usize).clamp(1, n);
    Stats {
        n,
        median,
        p90: ms[rank - 1],
        mean: ms.iter().sum::<f64>() / n as f64,
        min: ms[0],
        max: ms[n - 1],
    }
}

/// First line of a command's output (stdout, else stderr), or why it failed.
fn version(prog: &str, args: &[&str]) -> String {
    let mut c = Command::new(prog);
    c.args(args);
    let out = cmd::run(c, Duration::from_secs(20));
    let text = if out.stdout.trim().is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(unknown)")
        .to_string()
}

/// The Go shim's `Version:` line.
fn go_shim_version(binary: &Path) -> String {
    let mut c = Command::new(binary);
    c.arg("-v");
    let out = cmd::run(c, Duration::from_secs(20));
    out.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "(unknown)".to_string())
}

fn kib_mib(kib: f64) -> String {
    format!("{kib:.0} KiB ({:.2} MiB)", kib / 1024.0)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**not met**"
    }
}

fn file_size(p: &Path) -> String {
    match std::fs::metadata(p) {
        Ok(m) => format!("{} bytes ({:.2} MiB)", m.len(), m.len() as f64 / 1048576.0),
        Err(e) => format!("(unreadable: {e})"),
    }
}

/// The first three fields of /proc/loadavg (other work on the host skews the numbers).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The workspace's commit, and whether it has uncommitted changes (the shim measured is built
/// from the working tree).
fn workspace_state() -> String {
    let ws = nexcage_e2e::workspace_dir();
    let git = |args: &[&str]| {
        let mut c = Command::new("git");
        c.arg("-C").arg(&ws).args(args);
        cmd::run(c, Duration::from_secs(20))
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    if !head.success() {
        return "(not a git checkout)".to_string();
    }
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"])
        .stdout
        .trim()
        .is_empty();
    format!(
        "commit {}{}",
        head.out(),
        if dirty { " + uncommitted changes" } else { "" }
    )
}

/// Host facts for the report header.
fn host() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim())
        })
        .unwrap_or("(unknown)")
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = kb_field(&meminfo, "MemTotal")
        .map(|k| format!("{:.1} GiB", k as f64 / 1048576.0))
        .unwrap_or_default();
    let cpus = thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_default();
    vec![
        (
            "Date".into(),
            version("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]),
        ),
        (
            "Host kernel".into(),
            format!(
                "{} ({})",
                version("uname", &["-r"]),
                version("uname", &["-m"])
            ),
        ),
        ("CPUs".into(), format!("{cpus} × {model}")),
        ("Memory".into(), mem),
        ("Load average at start".into(), loadavg()),
        (
            "containerd".into(),
            format!(
                "{} ({})",
                version(
                    &versions::containerd_bin().to_string_lossy(),
                    &["--version"]
                ),
                versions::containerd_bin().display()
            ),
        ),
        ("runc".into(), version("runc", &["--version"])),
        ("crun".into(), version("crun", &["--version"])),
        ("Workspace".into(), workspace_state()),
    ]
}

fn report(
    args: Args,
    bench: &Bench,
    host: &[(String, String)],
    lat: &Latency,
    mem: &[MemResult],
) -> String {
    let mut s = String::new();
    let argv: Vec<String> = std::env::args().collect();
    let go = mem
        .iter()
        .zip(&CONFIGS)
        .find(|(_, c)| c.shim == Shim::Go)
        .map(|(m, _)| m.binary.clone())
        .unwrap_or_default();
    let _ = writeln!(s, "# nexcage shim benchmark\n");
    for (k, v) in host {
        let _ = writeln!(s, "- {k}: `{v}`");
    }
    let _ = writeln!(s, "- Go shim ({GO_SHIM}): `{}`", go_shim_version(&go));
    // The harness's containerd series comes from the environment: part of the command.
    let env: String = ["E2E_CONTAINERD", "E2E_CONTAINERD_BIN"]
        .iter()
        .filter_map(|k| {
            Some(format!(
                "{k}={} ",
                std::env::var(k).ok().filter(|v| !v.is_empty())?
            ))
        })
        .collect();
    let _ = writeln!(
        s,
        "- Command: `{env}cargo run --release -p nexcage-e2e --bin bench -- --runs {} --containers {}`",
        args.runs, args.containers
    );
    let _ = writeln!(s, "- Load average at end: `{}`", loadavg());
    let _ = writeln!(s, "- Invoked as: `{}`", argv.join(" "));
    let _ = writeln!(s, "- nexcage shim: `{}`", bench.shim.display());

    let _ = writeln!(
        s,
        "\n## Latency: `ctr run --rm {IMAGE} ID true`\n\n\
         Wall-clock time of the whole ctr command, {} measured runs per configuration after {WARMUP_ROUNDS} \
         discarded warm-up rounds, configurations alternating round-robin in one containerd. \
         Host CPU busy during the phase: {:.0} % of all CPUs (every process, these runs included); \
         other containerd instances on the host: {} at most.\n",
        args.runs,
        lat.cpu_busy * 100.0,
        lat.other_containerds
    );
    let _ = writeln!(
        s,
        "| configuration | runs | median ms | p90 ms | mean ms | min ms | max ms | median / Go shim + runc |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    let st: Vec<Stats> = lat.samples.iter().map(|v| stats(v)).collect();
    let base = st[0].median;
    for (cfg, x) in CONFIGS.iter().zip(&st) {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
            cfg.name,
            x.n,
            x.median,
            x.p90,
            x.mean,
            x.min,
            x.max,
            x.median / base
        );
    }
    let _ = writeln!(s, "\nctr command per configuration (ID varies per run):\n");
    for cfg in &CONFIGS {
        let c = bench.run_cmd(cfg, false, "ID", &["true"]);
        let _ = writeln!(s, "- {}: `{}`", cfg.name, cmd::cmdline(&c));
    }

    let _ = writeln!(
        s,
        "\n## Memory: one shim per container, {} containers per configuration\n\n\
         Rss and Pss from `/proc/PID/smaps_rollup` of each container's shim process, read {} s after \
         all {} containers (`ctr run -d {IMAGE} ID sleep 100000`) of the configuration run; the \
         shims of other configurations were gone. \"anonymous\" (heap, stacks) is private to each \
         shim; the rest of RSS is file pages (binary, libraries) that PSS divides among the \
         processes mapping them. \"threads\" is the maximum over the shims.\n",
        args.containers,
        SETTLE.as_secs(),
        args.containers
    );
    let _ = writeln!(
        s,
        "| configuration | shims | RSS mean | RSS max | PSS mean | PSS max | anonymous mean | threads | other processes of the same binary |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (cfg, m) in CONFIGS.iter().zip(mem) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cfg.name,
            m.shims.len(),
            kib_mib(m.mean(|x| x.rss_kib)),
            kib_mib(m.max(|x| x.rss_kib) as f64),
            kib_mib(m.mean(|x| x.pss_kib)),
            kib_mib(m.max(|x| x.pss_kib) as f64),
            kib_mib(m.mean(|x| x.anon_kib)),
            m.max(|x| x.threads),
            m.others
        );
    }

    let _ = writeln!(s, "\n## Shim binaries\n");
    let _ = writeln!(s, "| shim | path | size |");
    let _ = writeln!(s, "|---|---|---:|");
    let _ = writeln!(
        s,
        "| nexcage ({SHIM_NAME}, release) | `{}` | {} |",
        bench.shim.display(),
        file_size(&bench.shim)
    );
    let _ = writeln!(
        s,
        "| Go ({GO_SHIM}) | `{}` | {} |",
        go.display(),
        file_size(&go)
    );

    let _ = writeln!(s, "\n## Targets\n");
    let _ = writeln!(s, "| target | measured | result |");
    let _ = writeln!(s, "|---|---|---|");
    for (cfg, m) in CONFIGS
        .iter()
        .zip(mem)
        .filter(|(c, _)| c.shim == Shim::Nexcage)
    {
        let rss = m.max(|x| x.rss_kib) as f64 / 1024.0;
        let pss = m.max(|x| x.pss_kib) as f64 / 1024.0;
        let _ = writeln!(
            s,
            "| nexcage shim RSS ≤ {TARGET_RSS_MIB} MiB ({}, every shim) | max {rss:.2} MiB, mean {:.2} MiB | {} |",
            cfg.name,
            m.mean(|x| x.rss_kib) / 1024.0,
            met(rss <= TARGET_RSS_MIB)
        );
        let _ = writeln!(
            s,
            "| nexcage shim PSS ≤ {TARGET_PSS_MIB} MiB ({}, every shim) | max {pss:.2} MiB, mean {:.2} MiB | {} |",
            cfg.name,
            m.mean(|x| x.pss_kib) / 1024.0,
            met(pss <= TARGET_PSS_MIB)
        );
    }
    let ratio = st[2].median / base;
    let _ = writeln!(
        s,
        "| nexcage + crun median ≤ {TARGET_LATENCY_RATIO:.2} × Go shim + runc median | {:.1} ms / {:.1} ms = {ratio:.2} | {} |",
        st[2].median,
        base,
        met(ratio <= TARGET_LATENCY_RATIO)
    );
    let lxc = st[4].median / base;
    let _ = writeln!(
        s,
        "| nexcage + lxc median ≤ {TARGET_LXC_RATIO:.2} × Go shim + runc median | {:.1} ms / {:.1} ms = {lxc:.2} | {} |",
        st[4].median,
        base,
        met(lxc <= TARGET_LXC_RATIO)
    );
    s
}

fn run(args: Args) -> Result<String> {
    precheck()?;
    let shim = release_shim()?;
    // The harness symlinks $NEXCAGE_SHIM into containerd's PATH when the runtime under test is
    // nexcage (E2E_RUNTIME unset); the Go shim is selected per `ctr run` with --runtime.
    std::env::set_var("NEXCAGE_SHIM", &shim);
    std::env::remove_var("E2E_RUNTIME");
    let host = host();
    eprintln!("bench: starting a private containerd and importing {IMAGE}");
    if CTD.set(Containerd::start()).is_err() {
        bail!("containerd started twice");
    }
    let ctd = CTD.get().expect("set above");
    ctd.ensure_image(ctd.ns());
    let bench = Bench::new(ctd, shim)?;
    eprintln!(
        "bench: containerd at {}, namespace {}",
        ctd.socket().display(),
        bench.ns
    );
    let lat = bench.latency(args.runs)?;
    let mut mem = Vec::new();
    for cfg in &CONFIGS {
        mem.push(bench.memory(cfg, args.containers)?);
    }
    Ok(report(args, &bench, &host, &lat, &mem))
}

/// Remove every task and container, stop containerd, and check that none of its shims is left.
fn cleanup() -> Vec<leaks::Proc> {
    let Some(ctd) = CTD.get() else {
        return Vec::new();
    };
    eprintln!("bench: cleaning up (tasks, containers, containerd)");
    let sock = ctd.socket();
    ctd.shutdown();
    image::cleanup_cache();
    leaks::shim_processes(&sock, None)
}

fn main() {
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::Handler(on_signal)) };
    }
    // The release profile aborts on panic (no unwinding, no Drop): clean up from the hook, in
    // a helper thread so that a panic raised while the harness holds a lock cannot deadlock.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(cleanup());
        });
        let _ = rx.recv_timeout(Duration::from_secs(120));
    }));
    let code = match parse_args().and_then(run) {
        Ok(report) => {
            print!("{report}");
            0
        }
        Err(e) => {
            eprintln!("bench: {e:#}");
            1
        }
    };
    let left = cleanup();
    if !left.is_empty() {
        eprintln!("bench: shim processes left behind: {left:?}");
        std::process::exit(1);
    }
    std::process::exit(code);
}
