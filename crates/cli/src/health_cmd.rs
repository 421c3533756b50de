//! `nexcage backend health`, and the check `backend info` shows.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use nexcage_core::config::{BackendSettings, Config};
use nexcage_core::types::Health;
use nexcage_runtime::backends::{cached_health, AnyBackend};
use serde::Serialize;

use crate::args::HealthArgs;
use crate::backend_cmd::{print_json, yes_no};
use crate::load::{self, check_name, core_err};
use crate::table::Table;

/// The containerd namespace the health probe runs under (its runtime root is
/// `<backend root>/<namespace>`; the probe container is deleted again).
const PROBE_NAMESPACE: &str = "default";

/// One backend's health, as printed.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub name: String,
    pub healthy: bool,
    pub version: Option<String>,
    pub binary: Option<String>,
    pub details: Vec<String>,
}

impl HealthReport {
    fn new(name: &str, h: Health) -> Self {
        HealthReport {
            name: name.to_string(),
            healthy: h.healthy,
            version: h.version,
            binary: h.binary,
            details: h.details,
        }
    }
}

/// Health of backend `s`: `fresh` drops its cache entry first, so the probe runs now and the
/// cache the shim reads is rewritten; otherwise the cache answers when it is recent.
pub async fn check(
    config: &Config,
    s: &BackendSettings,
    fresh: bool,
) -> anyhow::Result<HealthReport> {
    let backend = AnyBackend::build(s, PROBE_NAMESPACE).map_err(core_err)?;
    let state_dir = config.state_dir();
    if fresh {
        let file = state_dir.join("health").join(format!("{}.json", s.name));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("remove health cache {}", file.display()))
            }
        }
    }
    Ok(HealthReport::new(
        &s.name,
        cached_health(&backend, &state_dir).await,
    ))
}

pub async fn health(
    config: Option<&Path>,
    args: &HealthArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(n) = &args.name {
        check_name(n)?;
    }
    let c = load::load(config)?.config;
    let selected: Vec<BackendSettings> = match &args.name {
        Some(n) => vec![c.backend(n)],
        None => c
            .backends_by_priority()
            .into_iter()
            .filter(|s| args.all || s.enabled)
            .collect(),
    };
    if selected.is_empty() {
        anyhow::bail!("every backend is disabled in the configuration (use --all to check them)");
    }
    let mut reports = Vec::new();
    for s in &selected {
        reports.push(check(&c, s, true).await?);
    }
    if json {
        print_json(&reports)?;
    } else {
        let mut t = Table::new(["NAME", "HEALTHY", "VERSION", "BINARY"]);
        for r in &reports {
            t.row([
                r.name.as_str(),
                yes_no(r.healthy),
                r.version.as_deref().unwrap_or("-"),
                r.binary.as_deref().unwrap_or("-"),
            ]);
        }
        print!("{t}");
        for r in &reports {
            println!("\n{}:", r.name);
            for d in &r.details {
                println!("  {d}");
            }
        }
    }
    Ok(if reports.iter().all(|r| r.healthy) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
