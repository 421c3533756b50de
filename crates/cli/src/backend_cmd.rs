//! `nexcage backend …`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nexcage_core::config::{BackendSettings, Config};
use serde::Serialize;

use crate::args::{BackendCmd, Cli};
use crate::health_cmd::{self, HealthReport};
use crate::load::{self, check_name};
use crate::table::Table;
use crate::toggle_cmd;

/// Run one `backend` subcommand.
pub async fn run(cli: &Cli, cmd: &BackendCmd) -> anyhow::Result<ExitCode> {
    let config = cli.config.as_deref();
    match cmd {
        BackendCmd::List => list(config, cli.json),
        BackendCmd::Info { name } => info(config, name, cli.json).await,
        BackendCmd::Health(args) => health_cmd::health(config, args, cli.json).await,
        BackendCmd::Enable { name } => toggle_cmd::set_enabled(config, name, true, cli.json),
        BackendCmd::Disable { name } => toggle_cmd::set_enabled(config, name, false, cli.json),
    }
}

#[derive(Debug, Serialize)]
struct BackendRow {
    name: String,
    enabled: bool,
    priority: u32,
    default: bool,
    /// Configured binary, else the one found on PATH.
    binary: Option<PathBuf>,
    /// "configured", "PATH" or null when not found.
    binary_source: Option<&'static str>,
    root: PathBuf,
    timeout_secs: u64,
}

fn row(config: &Config, s: &BackendSettings) -> BackendRow {
    let (binary, binary_source) = match &s.binary {
        Some(b) => (Some(b.clone()), Some("configured")),
        None => match nexcage_oci::health::which(nexcage_core::config::backend_program(&s.name)) {
            Some(b) => (Some(b), Some("PATH")),
            None => (None, None),
        },
    };
    BackendRow {
        name: s.name.clone(),
        enabled: s.enabled,
        priority: s.priority,
        default: config.default_backend.as_deref() == Some(s.name.as_str()),
        binary,
        binary_source,
        root: s.root.clone(),
        timeout_secs: s.timeout.as_secs(),
    }
}

pub(crate) fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn path_or_dash(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map_or_else(|| "-".to_string(), |p| p.display().to_string())
}

pub(crate) fn print_json(v: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn list(config: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let c = load::load(config)?.config;
    let rows: Vec<BackendRow> = c
        .backends_by_priority()
        .iter()
        .map(|s| row(&c, s))
        .collect();
    if json {
        print_json(&rows)?;
    } else {
        let mut t = Table::new(["NAME", "ENABLED", "PRIORITY", "DEFAULT", "BINARY", "ROOT"]);
        for r in &rows {
            t.row([
                r.name.clone(),
                yes_no(r.enabled).to_string(),
                r.priority.to_string(),
                yes_no(r.default).to_string(),
                path_or_dash(&r.binary),
                r.root.display().to_string(),
            ]);
        }
        print!("{t}");
    }
    Ok(ExitCode::SUCCESS)
}
#[derive(Debug, Serialize)]
struct Info {
    #[serde(flatten)]
    settings: BackendRow,
    config: String,
    routing: Vec<RuleRow>,
    /// From the shim's health cache when younger than five minutes, else checked now.
    health: HealthReport,
}

#[derive(Debug, Serialize)]
struct RuleRow {
    index: usize,
    pattern: String,
}

async fn info(config: Option<&Path>, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    check_name(name)?;
    let loaded = load::load(config)?;
    let c = &loaded.config;
    let s = c.backend(name);
    let routing: Vec<RuleRow> = c
        .routing
        .iter()
        .enumerate()
        .filter(|(_, r)| r.backend == name)
        .map(|(index, r)| RuleRow {
            index,
            pattern: r.pattern.clone(),
        })
        .collect();
    let info = Info {
        settings: row(c, &s),
        config: loaded.origin,
        routing,
        health: health_cmd::check(c, &s, false).await?,
    };
    if json {
        print_json(&info)?;
        return Ok(ExitCode::SUCCESS);
    }
    let r = &info.settings;
    let binary = match r.binary_source {
        Some("PATH") => format!("{} (found on PATH)", path_or_dash(&r.binary)),
        _ => path_or_dash(&r.binary),
    };
    let rules = if info.routing.is_empty() {
        "none".to_string()
    } else {
        info.routing
            .iter()
            .map(|x| format!("routing[{}] {:?}", x.index, x.pattern))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let h = &info.health;
    let mut t = Table::default();
    t.row(["name:", &r.name]);
    t.row(["enabled:", yes_no(r.enabled)]);
    t.row(["priority:", &r.priority.to_string()]);
    t.row(["default:", yes_no(r.default)]);
    t.row(["binary:", &binary]);
    t.row(["root:", &r.root.display().to_string()]);
    t.row(["timeout:", &format!("{}s", r.timeout_secs)]);
    t.row(["config:", &info.config]);
    t.row(["routing:", &rules]);
    t.row(["healthy:", yes_no(h.healthy)]);
    t.row(["version:", h.version.as_deref().unwrap_or("-")]);
    print!("{t}");
    println!("health details (cached up to 5 minutes; `nexcage backend health {name}` re-checks):");
    for d in &h.details {
        println!("  {d}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_marks_default_and_configured_binary() {
        let c = Config::parse(
            "default_backend = \"runc\"\nstate_dir = \"/s\"\n[backends.runc]\nbinary = \"/opt/runc\"\n",
            "t",
        )
        .unwrap();
        let r = row(&c, &c.backend("runc"));
        assert!(r.default && r.enabled);
        assert_eq!(r.binary.as_deref(), Some(Path::new("/opt/runc")));
        assert_eq!(r.binary_source, Some("configured"));
        assert_eq!(r.root, PathBuf::from("/s/runc"));
        assert!(!row(&c, &c.backend("crun")).default);
    }

    #[test]
    fn lxc_row_finds_lxc_execute_on_path() {
        let c = Config::parse("state_dir = \"/s\"\n", "t").unwrap();
        let r = row(&c, &c.backend("lxc"));
        let found = nexcage_oci::health::which("lxc-execute");
        assert_eq!(r.binary, found);
        assert_eq!(r.binary_source, found.as_ref().map(|_| "PATH"));
    }

    #[test]
    fn unknown_name_is_a_usage_error() {
        let e = check_name("x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown backend \"x\" (known: crun, runc, lxc, proxmox-lxc)"
        );
    }
}
