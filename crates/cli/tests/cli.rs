//! Runs the built `nexcage` binary against temporary config files. Every config sets a temporary
//! `state_dir`, so health probes and the health cache stay out of /run. The health tests run the
//! real runc and crun (as root, as on the project's hosts: see tests/setup-host.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_nexcage");

struct Env {
    dir: TempDir,
    config: PathBuf,
}

impl Env {
    /// A temp dir with `config.toml` = a `state_dir` line followed by `body`.
    fn new(body: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let state = dir.path().join("state");
        std::fs::write(
            &config,
            format!("state_dir = \"{}\"\n{body}", state.display()),
        )
        .unwrap();
        Env { dir, config }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.config).unwrap()
    }

    fn run(&self, args: &[&str]) -> Run {
        run_with(&self.config, args)
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn run_with(config: &Path, args: &[&str]) -> Run {
    let out: Output = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run nexcage");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The version `<tool> --version` prints (`runc version 1.1.5+ds1` → `1.1.5+ds1`).
fn tool_version(tool: &str) -> String {
    let out = Command::new(tool)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{tool} must be installed (tests/setup-host.sh): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    let mut words = first.split_whitespace().skip_while(|w| *w != "version");
    words.nth(1).expect("a version").to_string()
}

#[test]
fn list_human_is_aligned_and_sorted_by_priority() {
    let env = Env::new(
        "default_backend = \"runc\"\n\
         [backends.runc]\npriority = 5\n\
         [backends.crun]\nenabled = false\nbinary = \"/opt/crun/bin/crun\"\n",
    );
    let r = env.run(&["backend", "list"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{r:?}");
    let header = lines[0];
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "ENABLED", "PRIORITY", "DEFAULT", "BINARY", "ROOT"],
        "{r:?}"
    );
    // The widest name plus two spaces.
    assert!(header.starts_with("NAME         ENABLED"), "{r:?}");
    let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let runc = cols(lines[1]);
    let crun = cols(lines[2]);
    let lxc = cols(lines[3]);
    assert_eq!(lxc[..4], ["lxc", "yes", "30", "no"]);
    // Opt-in: needs a Proxmox node.
    let pve = cols(lines[4]);
    assert_eq!(pve[..4], ["proxmox-lxc", "no", "30", "no"]);
    let root = |n: &str| env.state().join(n).display().to_string();
    assert_eq!(runc[..4], ["runc", "yes", "5", "yes"]);
    assert_eq!(runc[5], root("runc"));
    assert_eq!(
        crun,
        [
            "crun",
            "no",
            "10",
            "no",
            "/opt/crun/bin/crun",
            &root("crun")
        ]
    );
    // Columns line up: every column of the header starts where its cells start.
    for name in ["ENABLED", "PRIORITY", "DEFAULT", "BINARY", "ROOT"] {
        let at = header.find(name).unwrap();
        for l in &lines[1..] {
            assert!(
                l.as_bytes()[at - 1] == b' ' && l.as_bytes()[at] != b' ',
                "column {name} misaligned:\n{}",
                r.stdout
            );
        }
    }
}

#[test]
fn list_json_is_an_array_of_objects() {
    let env = Env::new("[backends.crun]\nenabled = false\nbinary = \"/opt/crun\"\n");
    let r = env.run(&["--json", "backend", "list"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v = r.json();
    let rows = v.as_array().expect("array");
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[2]["name"], "lxc");
    assert_eq!(rows[3]["name"], "proxmox-lxc");
    assert_eq!(rows[3]["enabled"], false);
    assert_eq!(rows[0]["name"], "crun");
    assert_eq!(rows[0]["enabled"], false);
    assert_eq!(rows[0]["priority"], 10);
    assert_eq!(rows[0]["default"], false);
    assert_eq!(rows[0]["binary"], "/opt/crun");
    assert_eq!(rows[0]["binary_source"], "configured");
    assert_eq!(
        rows[0]["root"],
        env.state().join("crun").display().to_string()
    );
    assert_eq!(rows[1]["name"], "runc");
    assert_eq!(rows[1]["enabled"], true);
    assert_eq!(rows[1]["priority"], 20);
    // `--json` works after the subcommand too (a global flag).
    let r2 = env.run(&["backend", "list", "--json"]);
    assert_eq!(r2.json(), v);
}

const COMMENTED: &str = "\
# my nexcage config
default_backend = \"runc\" # safest

[backends.crun]
# crun needs the hybrid cgroup fix
priority = 10 # fast

[[routing]]
pattern = \"fast-*\"
backend = \"crun\"
";

#[test]
fn disable_enable_round_trip_keeps_the_file() {
    let env = Env::new(COMMENTED);
    let original = env.text();

    let r = env.run(&["backend", "disable", "crun"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout.contains("crun") && r.stdout.contains("disabled"),
        "{r:?}"
    );
    // Rules that target it are pointed out.
    assert!(r.stderr.contains("routing[0]"), "{r:?}");
    let disabled = original.replace(
        "priority = 10 # fast\n",
        "priority = 10 # fast\nenabled = false\n",
    );
    assert_eq!(env.text(), disabled);
    let list = env.run(&["--json", "backend", "list"]).json();
    assert_eq!(list[0]["name"], "crun");
    assert_eq!(list[0]["enabled"], false);

    let r = env.run(&["backend", "enable", "crun"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout.contains("enabled") && r.stdout.contains("was disabled"),
        "{r:?}"
    );
    assert_eq!(
        env.text(),
        disabled.replace("enabled = false", "enabled = true")
    );

    let r = env.run(&["backend", "enable", "crun"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("nothing changed"), "{r:?}");

    let r = env.run(&["--json", "backend", "disable", "crun"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v = r.json();
    assert_eq!(v["backend"], "crun");
    assert_eq!(v["enabled"], false);
    assert_eq!(v["was_enabled"], true);
    assert_eq!(v["changed"], true);
    assert_eq!(env.text(), disabled);
    // No temporary file left next to the config.
    let names: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "state")
        .collect();
    assert_eq!(names, ["config.toml"]);
}

#[test]
fn enable_creates_a_missing_file_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("etc/nexcage/config.toml");
    let r = run_with(&config, &["backend", "disable", "runc"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "[backends.runc]\nenabled = false\n"
    );
}

#[test]
fn disabling_the_default_backend_is_refused() {
    let env = Env::new(COMMENTED);
    let before = env.text();
    let r = env.run(&["backend", "disable", "runc"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("\"runc\"") && r.stderr.contains("default_backend"),
        "{r:?}"
    );
    assert_eq!(env.text(), before);
}

#[test]
fn malformed_config_exits_2_naming_file_and_key() {
    let env = Env::new("[backends.crun]\nenabeld = true\n");
    let before = env.text();
    let file = env.config.display().to_string();
    for args in [
        &["backend", "list"][..],
        &["backend", "info", "crun"],
        &["backend", "health", "runc"],
        &["backend", "disable", "crun"],
        &["backend", "enable", "runc"],
    ] {
        let r = env.run(args);
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
        assert!(
            r.stderr.contains(&file) && r.stderr.contains("enabeld"),
            "{args:?}: {r:?}"
        );
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
    }
    assert_eq!(env.text(), before);

    let env = Env::new("[backends.runc]\npriority = \"high\"\n");
    let r = env.run(&["backend", "list"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("priority") && r.stderr.contains("high"),
        "{r:?}"
    );
}

#[test]
fn missing_explicit_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_with(&dir.path().join("nope.toml"), &["backend", "list"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("nope.toml"), "{r:?}");
}

#[test]
fn unknown_backend_exits_2() {
    let env = Env::new("");
    for args in [
        &["backend", "info", "docker"][..],
        &["backend", "health", "docker"],
        &["backend", "enable", "docker"],
        &["backend", "disable", "docker"],
    ] {
        let r = env.run(args);
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
        assert!(
            r.stderr
                .contains("unknown backend \"docker\" (known: crun, runc, lxc, proxmox-lxc)"),
            "{args:?}: {r:?}"
        );
    }
    assert_eq!(
        env.text(),
        format!("state_dir = \"{}\"\n", env.state().display())
    );
}

#[test]
fn info_shows_settings_rules_and_health() {
    let env = Env::new(
        "[[routing]]\npattern = \"slow-*\"\nbackend = \"runc\"\n\
         [[routing]]\npattern = \"fast-*\"\nbackend = \"crun\"\n",
    );
    let r = env.run(&["--json", "backend", "info", "runc"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v = r.json();
    assert_eq!(v["name"], "runc");
    assert_eq!(v["enabled"], true);
    assert_eq!(v["config"], env.config.display().to_string());
    assert_eq!(
        v["routing"],
        serde_json::json!([{"index": 0, "pattern": "slow-*"}])
    );
    assert_eq!(v["health"]["healthy"], true, "{r:?}");
    let r = env.run(&["backend", "info", "runc"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("routing[0] \"slow-*\""), "{r:?}");
    assert!(!r.stdout.contains("fast-*"), "{r:?}");
    assert!(r.stdout.contains(&tool_version("runc")), "{r:?}");
}

#[test]
fn health_runc_is_fresh_and_healthy() {
    let env = Env::new("");
    // A stale "unhealthy" cache entry, young enough that the shim would still trust it.
    let cache = env.state().join("health/runc.json");
    std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(
        &cache,
        format!(
            r#"{{"binary_mtime":null,"checked":{now},"healthy":false,"details":["stale entry"],"version":null,"binary":null}}"#
        ),
    )
    .unwrap();

    let r = env.run(&["backend", "health", "runc"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let version = tool_version("runc");
    assert!(r.stdout.contains(&version), "{r:?}");
    assert!(r.stdout.contains("create probe: ok"), "{r:?}");
    assert!(!r.stdout.contains("stale entry"), "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME  HEALTHY  VERSION"), "{r:?}");
    assert!(lines[1].starts_with("runc  yes"), "{r:?}");
    // The cache the shim reads was refreshed.
    let c: Value = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert_eq!(c["healthy"], true);
    assert_eq!(c["version"], version.as_str());
}

#[test]
fn health_without_name_checks_enabled_backends_only() {
    let env = Env::new("[backends.crun]\nenabled = false\n");
    let r = env.run(&["--json", "backend", "health"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v = r.json();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["runc", "lxc"]);
    assert!(!env.state().join("health/crun.json").exists());
    let r = env.run(&["--json", "backend", "health", "--all"]);
    assert_eq!(r.json().as_array().unwrap().len(), 4, "{r:?}");
    assert!(env.state().join("health/crun.json").exists());
}

/// crun 1.8 refuses to run on a hybrid host whose cgroup2 hierarchy still holds controllers
/// ("cgroups in hybrid mode not supported"); tests/setup-host.sh moves them to v1 hierarchies.
/// On such a host the check must fail and say why; on any host the exit status must agree with
/// the reported health and the version must be shown.
#[test]
fn health_crun_reports_the_host_state() {
    let env = Env::new("");
    let hybrid_held = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|c| !c.trim().is_empty());
    let r = env.run(&["backend", "health", "crun"]);
    assert!(r.stdout.contains(&tool_version("crun")), "{r:?}");
    let healthy_col = r.stdout.lines().nth(1).unwrap_or_default();
    let healthy = healthy_col.starts_with("crun  yes");
    assert_eq!(r.code, Some(if healthy { 0 } else { 1 }), "{r:?}");
    if hybrid_held {
        assert_eq!(r.code, Some(1), "{r:?}");
        assert!(r.stdout.contains("hybrid"), "{r:?}");
    }
    if !healthy {
        assert!(r.stdout.contains("create probe: "), "{r:?}");
    }
    let j = env.run(&["--json", "backend", "health", "crun"]);
    let v = j.json();
    assert_eq!(
        j.code,
        Some(if v[0]["healthy"] == true { 0 } else { 1 }),
        "{j:?}"
    );
}
