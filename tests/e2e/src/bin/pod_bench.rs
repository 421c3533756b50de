//! Pod start on Proxmox: the time from RunPodSandbox to one app container running
//! (CreateContainer, StartContainer, RUNNING in ContainerStatus) through CRI, for the `lxc` backend and for
//! `proxmox-lxc` on the simulated node with Proxmox's control-plane latency switched on, and the
//! Proxmox calls made inside that window (from the simulator's call log: those the window waited
//! for, and those it started that returned after it, in the background). A measurement
//! tool: it asserts nothing about the numbers and prints a markdown report on stdout.
//!
//! ```sh
//! cargo build --release -p nexcage-shim && cargo build -p nexcage-pve-sim --bins --release
//! NEXCAGE_SHIM=target/release/containerd-shim-nexcage-v1 \
//!   cargo run --release -p nexcage-e2e --bin pod_bench -- [--runs N] [--latency MIN-MAX]
//! ```
//!
//! `--latency` (default `1000-1700`, the per-call range measured on PVE 9.2) becomes
//! `PVE_SIM_LATENCY_MS` of every simulator call. Runs alternate between the backends; each pod
//! is removed (and checked to leave nothing) before the next one, outside the timed window.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nexcage_e2e::cri::PodOpts;
use nexcage_e2e::{pve, Backend, Case};

struct Sample {
    ms: f64,
    /// Calls the window waited for (started and returned inside it).
    waited: Vec<String>,
    /// Calls started inside the window that returned after it (in the background).
    background: Vec<String>,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// The simulator calls (`tool subcommand`) started in `[from, to]`, split into those that
/// returned by `to` and those that did not (the simulator's `start`/`end` lines).
fn calls_between(sim_root: &Path, from: u128, to: u128) -> (Vec<String>, Vec<String>) {
    let log = std::fs::read_to_string(sim_root.join("calls.log")).unwrap_or_default();
    let events: Vec<(u128, &str, &str)> = log
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ' ');
            let t = it.next()?.parse().ok()?;
            Some((t, it.next()?, it.next()?))
        })
        .collect();
    let mut ended = vec![false; events.len()];
    let (mut waited, mut background) = (Vec::new(), Vec::new());
    for (i, (t, ev, call)) in events.iter().enumerate() {
        if *ev != "start" || *t < from || *t > to {
            continue;
        }
        // The first unclaimed end line of the same call after its start.
        let end = events
            .iter()
            .enumerate()
            .skip(i + 1)
            .find(|(j, (_, e, c))| *e == "end" && c == call && !ended[*j]);
        let mut w = call.split_whitespace();
        let name = format!("{} {}", w.next().unwrap_or(""), w.next().unwrap_or(""));
        match end {
            Some((j, (te, _, _))) => {
                ended[j] = true;
                if *te <= to {
                    waited.push(name);
                } else {
                    background.push(name);
                }
            }
            None => background.push(name),
        }
    }
    (waited, background)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let runs: usize = arg("--runs").map_or(5, |v| v.parse().expect("--runs N"));
    let latency = arg("--latency").unwrap_or_else(|| "1000-1700".into());
    // Set before any thread exists; containerd and its shims inherit it.
    std::env::set_var("PVE_SIM_LATENCY_MS", &latency);
    let backends = [Backend("lxc"), Backend(pve::NAME)];
    let tests: Vec<_> = backends
        .iter()
        .map(|b| {
            Case {
                backend: *b,
                name: "pod_bench",
            }
            .cri()
        })
        .collect();
    let mut samples: Vec<Vec<Sample>> = backends.iter().map(|_| Vec::new()).collect();
    // One warm-up pod per backend (image, CNI and first-shim costs), then the timed runs.
    for round in 0..=runs {
        for (i, t) in tests.iter().enumerate() {
            let from = now_ms();
            let started = Instant::now();
            let pod = t.run_pod(&format!("r{round}"), &PodOpts::default());
            t.start(&pod, "app", &["sleep", "1000000"]);
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let to = now_ms();
            let (waited, background) = calls_between(&pve::sim_root(t.ctd.dir()), from, to);
            eprintln!(
                "{} round {round}: {ms:.0} ms, waited for {waited:?}, background {background:?}",
                backends[i].0
            );
            t.remove_pod_and_check(&pod);
            if round > 0 {
                samples[i].push(Sample {
                    ms,
                    waited,
                    background,
                });
            }
        }
    }
    println!("Pod start (RunPodSandbox → app container RUNNING), {runs} runs per backend, simulator latency {latency} ms per call:\n");
    println!(
        "| backend | median ms | min ms | max ms | Proxmox calls waited for (per pod) | which | started, returned after the window |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, b) in backends.iter().enumerate() {
        let s = &samples[i];
        let ms: Vec<f64> = s.iter().map(|x| x.ms).collect();
        let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ms.iter().copied().fold(0.0, f64::max);
        let range = |f: fn(&Sample) -> &Vec<String>| {
            let n: Vec<usize> = s.iter().map(|x| f(x).len()).collect();
            let mut names: Vec<String> = s.iter().flat_map(|x| f(x).clone()).collect();
            names.sort();
            names.dedup();
            let names = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            let lo = n.iter().min().copied().unwrap_or(0);
            let hi = n.iter().max().copied().unwrap_or(0);
            (format!("{lo}–{hi}"), names)
        };
        let (waited_n, waited) = range(|x| &x.waited);
        let (bg_n, bg) = range(|x| &x.background);
        println!(
            "| {} | {:.0} | {min:.0} | {max:.0} | {waited_n} | {waited} | {bg_n} ({bg}) |",
            b.0,
            median(ms.clone()),
        );
    }
    drop(tests);
    std::thread::sleep(Duration::from_millis(100));
}
