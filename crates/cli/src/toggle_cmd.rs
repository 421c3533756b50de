//! `nexcage backend enable|disable NAME`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use nexcage_core::config::Config;
use serde::Serialize;

use crate::backend_cmd::print_json;
use crate::edit;
use crate::load::{self, check_name, core_err};

#[derive(Debug, Serialize)]
struct Change<'a> {
    backend: &'a str,
    enabled: bool,
    /// The effective value before.
    was_enabled: bool,
    changed: bool,
    config: String,
}

/// Set `backends.<name>.enabled` in the config file and say what changed.
pub fn set_enabled(
    config: Option<&Path>,
    name: &str,
    enabled: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    check_name(name)?;
    let path = load::config_path(config);
    let origin = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read config {origin}")),
    };
    let before = Config::parse(&text, &origin).map_err(core_err)?;
    if !enabled && before.default_backend.as_deref() == Some(name) {
        anyhow::bail!(
            "refusing to disable backend {name:?}: it is the default_backend in {origin}; \
             set default_backend to another backend (or remove it) first"
        );
    }
    let edited = edit::set_enabled(&text, &origin, name, enabled).map_err(core_err)?;
    if edited.changed {
        edit::write_atomic(&path, &edited.text)
            .with_context(|| format!("write config {origin}"))?;
    }
    let was_enabled = before.backend(name).enabled;
    let verb = if enabled { "enabled" } else { "disabled" };
    if json {
        print_json(&Change {
            backend: name,
            enabled,
            was_enabled,
            changed: edited.changed,
            config: origin.clone(),
        })?;
    } else if edited.changed {
        let how = match edited.previous {
            Some(_) => "",
            None => " by default",
        };
        println!(
            "backend {name}: {verb} in {origin} (was {}{how}; backends.{name}.enabled = {enabled})",
            if was_enabled { "enabled" } else { "disabled" }
        );
    } else {
        println!("backend {name}: already {verb} in {origin}; nothing changed");
    }
    if !enabled {
        let after = Config::parse(&edited.text, &origin).map_err(core_err)?;
        warn_unreachable(&after, name);
    }
    Ok(ExitCode::SUCCESS)
}

/// After disabling `name`: say which routing rules now fail, and whether anything is left.
fn warn_unreachable(c: &Config, name: &str) {
    for (i, r) in c
        .routing
        .iter()
        .enumerate()
        .filter(|(_, r)| r.backend == name)
    {
        eprintln!(
            "warning: routing[{i}] (pattern {:?}) targets {name}: containers it matches will fail to \
             start while {name} is disabled",
            r.pattern
        );
    }
    if c.backends_by_priority().iter().all(|s| !s.enabled) {
        eprintln!("warning: every backend is now disabled: no container can start");
    }
}
