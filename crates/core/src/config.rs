//! The nexcage configuration file (TOML) and where it is read from.
//!
//! Lookup order: the runtime options' `ConfigPath` (ctr `--runtime-config-path`, CRI
//! `options.ConfigPath`), else [`DEFAULT_CONFIG_PATH`] when it exists, else built-in defaults.
//! Unknown keys and bad values are refused with the file, the key and the value named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::routing::{Pattern, Rule};

mod image;
mod proxmox;

pub use image::{
    ImageStoreConfig, ImageStoreKind, ImageStoreSettings, RootfsConfig, RootfsSource,
    DEFAULT_IMAGE_STORE_PATH,
};
pub use proxmox::{parse_range, ProxmoxConfig, DEFAULT_VMID_RANGE};

/// Where the config is read from when the runtime options name none.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/nexcage/config.toml";

/// Every backend name this build knows, in default priority order.
pub const KNOWN_BACKENDS: &[&str] = &["crun", "runc", "lxc", "proxmox-lxc"];

/// Backends that are disabled unless `[backends.NAME] enabled = true`: they need more than a
/// binary (proxmox-lxc needs a Proxmox VE node).
pub const OPT_IN_BACKENDS: &[&str] = &["proxmox-lxc"];

/// The program a backend runs, looked up on PATH unless `[backends.NAME] binary` is set: the
/// backend's name for the OCI runtimes, `lxc-execute` for lxc (its other tools are taken from the
/// same directory), `pct` for proxmox-lxc (pvesh beside it).
pub fn backend_program(name: &str) -> &str {
    match name {
        "lxc" => "lxc-execute",
        "proxmox-lxc" => "pct",
        other => other,
    }
}

/// Default priority of a backend (lower wins), as in the original NexCage design.
pub fn default_priority(name: &str) -> u32 {
    match name {
        "crun" => 10,
        "runc" => 20,
        "lxc" | "proxmox-lxc" => 30,
        "vm" => 40,
        _ => 100,
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Backend used when neither annotation nor routing rule chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_backend: Option<String>,
    /// Directory for nexcage's runtime state (runtime roots, sockets). Default `/run/nexcage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Per-backend settings, keyed by backend name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backends: BTreeMap<String, BackendConfig>,
    /// Name-pattern routing rules, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing: Vec<RoutingEntry>,
    /// `[image_store]`: where OCI images are unpacked (see [`Config::image_store`]).
    #[serde(default, skip_serializing_if = "ImageStoreConfig::is_empty")]
    pub image_store: ImageStoreConfig,
    /// `[rootfs]`: where container root file systems come from (see [`Config::rootfs_source`]).
    #[serde(default, skip_serializing_if = "RootfsConfig::is_empty")]
    pub rootfs: RootfsConfig,
    /// `[proxmox]`: the node the proxmox-lxc backend registers containers with.
    #[serde(default, skip_serializing_if = "ProxmoxConfig::is_empty")]
    pub proxmox: ProxmoxConfig,
}

/// Settings of one backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Whether the backend may be chosen at all (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Lower wins when no rule chose a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Path of the tool binary (default: looked up on PATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<PathBuf>,
    /// The tool's private state root (default `<state_dir>/<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Timeout of one tool call in seconds (default chosen by the backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// One `[[routing]]` table as written in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingEntry {
    /// A glob (`*`, `?`) or, between `^` and `$`, a regular expression.
    pub pattern: String,
    /// The backend to use when the pattern matches.
    pub backend: String,
}

/// A backend's effective settings after defaults are applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendSettings {
    /// Backend name.
    pub name: String,
    /// Enabled?
    pub enabled: bool,
    /// Priority, lower first.
    pub priority: u32,
    /// Explicit binary path, if configured.
    pub binary: Option<PathBuf>,
    /// Private state root.
    pub root: PathBuf,
    /// Timeout of one tool call.
    pub timeout: std::time::Duration,
    /// `[proxmox]`, for the proxmox-lxc backend only.
    pub proxmox: Option<ProxmoxConfig>,
}

impl Config {
    /// Parse and validate `text`; `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            Error::invalid(format!("config {origin}: {}", e.to_string().trim_end()))
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Read and validate the file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("read config {}", path.display()), e))?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Resolve the config: `explicit` (from runtime options) must exist; otherwise the default
    /// path is used when present, else built-in defaults. Returns the config and its origin.
    pub fn resolve(explicit: Option<&Path>) -> Result<(Config, String)> {
        match explicit {
            Some(p) => Ok((Config::load(p)?, p.display().to_string())),
            None => {
                let p = Path::new(DEFAULT_CONFIG_PATH);
                if p.exists() {
                    Ok((Config::load(p)?, DEFAULT_CONFIG_PATH.to_string()))
                } else {
                    Ok((Config::default(), "built-in defaults".to_string()))
                }
            }
        }
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let bad = |key: &str, value: &dyn std::fmt::Debug, why: &str| {
            Error::invalid(format!("config {origin}: {key} = {value:?}: {why}"))
        };
        let known = || KNOWN_BACKENDS.join(", ");
        let check_name = |key: &str, name: &str| -> Result<()> {
            if KNOWN_BACKENDS.contains(&name) {
                Ok(())
            } else {
                Err(bad(
                    key,
                    &name,
                    &format!("unknown backend (known: {})", known()),
                ))
            }
        };
        if let Some(d) = &self.default_backend {
            check_name("default_backend", d)?;
        }
        if let Some(d) = &self.state_dir {
            if !d.is_absolute() {
                return Err(bad("state_dir", d, "must be an absolute path"));
            }
        }
        for (name, b) in &self.backends {
            check_name(&format!("backends.{name}"), name)?;
            if let Some(bin) = &b.binary {
                if !bin.is_absolute() {
                    return Err(bad(
                        &format!("backends.{name}.binary"),
                        bin,
                        "must be an absolute path",
                    ));
                }
            }
            if let Some(root) = &b.root {
                if !root.is_absolute() {
                    return Err(bad(
                        &format!("backends.{name}.root"),
                        root,
                        "must be an absolute path",
                    ));
                }
            }
            if b.timeout_secs == Some(0) {
                return Err(bad(
                    &format!("backends.{name}.timeout_secs"),
                    &0,
                    "must be at least 1",
                ));
            }
        }
        for (i, r) in self.routing.iter().enumerate() {
            check_name(&format!("routing[{i}].backend"), &r.backend)?;
            Pattern::parse(&r.pattern)
                .map_err(|e| bad(&format!("routing[{i}].pattern"), &r.pattern, e.message()))?;
        }
        self.image_store.validate(origin)?;
        self.rootfs.validate(origin, &self.image_store)?;
        self.proxmox.validate(origin)?;
        Ok(())
    }

    /// The directory for nexcage's runtime state.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/run/nexcage"))
    }

    /// Effective settings of backend `name` (which must be a known name).
    pub fn backend(&self, name: &str) -> BackendSettings {
        let b = self.backends.get(name).cloned().unwrap_or_default();
        BackendSettings {
            name: name.to_string(),
            enabled: b.enabled.unwrap_or(!OPT_IN_BACKENDS.contains(&name)),
            priority: b.priority.unwrap_or_else(|| default_priority(name)),
            binary: b.binary,
            root: b.root.unwrap_or_else(|| self.state_dir().join(name)),
            timeout: std::time::Duration::from_secs(b.timeout_secs.unwrap_or(30)),
            proxmox: (name == "proxmox-lxc").then(|| self.proxmox.clone()),
        }
    }

    /// Settings of every known backend, sorted by priority then name.
    pub fn backends_by_priority(&self) -> Vec<BackendSettings> {
        let mut v: Vec<_> = KNOWN_BACKENDS.iter().map(|n| self.backend(n)).collect();
        v.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then_with(|| a.name.cmp(&b.name))
        });
        v
    }

    /// Compiled routing rules (the config was validated, so patterns compile).
    pub fn rules(&self) -> Vec<Rule> {
        self.routing
            .iter()
            .filter_map(|r| {
                Some(Rule {
                    pattern: Pattern::parse(&r.pattern).ok()?,
                    backend: r.backend.clone(),
                })
            })
            .collect()
    }

    /// Serialize back to TOML (used by `nexcage backend enable|disable`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};

    const EXAMPLE: &str = r#"
default_backend = "crun"
[backends.crun]
enabled = true
priority = 10
binary = "/usr/bin/crun"
[[routing]]
pattern = "kube-ovn-*"
backend = "crun"
"#;

    #[test]
    fn parses_the_documented_example() {
        let c = Config::parse(EXAMPLE, "t.toml").unwrap();
        assert_eq!(c.default_backend.as_deref(), Some("crun"));
        let crun = c.backend("crun");
        assert_eq!(crun.binary.as_deref(), Some(Path::new("/usr/bin/crun")));
        assert_eq!(crun.root, PathBuf::from("/run/nexcage/crun"));
        assert_eq!(c.rules().len(), 1);
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let e = Config::parse("[backends.crun]\nenabeld = true\n", "/etc/x.toml").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let m = e.message();
        assert!(m.contains("/etc/x.toml") && m.contains("enabeld"), "{m}");
    }

    #[test]
    fn bad_value_type_names_key_and_value() {
        let e = Config::parse("[backends.runc]\npriority = \"high\"\n", "f.toml").unwrap_err();
        let m = e.message();
        assert!(
            m.contains("f.toml") && m.contains("priority") && m.contains("high"),
            "{m}"
        );
    }

    #[test]
    fn unknown_backend_names_value() {
        let e = Config::parse("default_backend = \"docker\"\n", "f.toml").unwrap_err();
        assert_eq!(
            e.message(),
            "config f.toml: default_backend = \"docker\": unknown backend (known: crun, runc, lxc, proxmox-lxc)"
        );
        let e =
            Config::parse("[[routing]]\npattern = \"a*\"\nbackend = \"kvm\"\n", "f").unwrap_err();
        assert!(
            e.message().contains("routing[0].backend = \"kvm\""),
            "{}",
            e.message()
        );
    }

    #[test]
    fn bad_regex_is_refused() {
        let e = Config::parse("[[routing]]\npattern = \"^(a$\"\nbackend = \"runc\"\n", "f")
            .unwrap_err();
        assert!(
            e.message().contains("routing[0].pattern = \"^(a$\""),
            "{}",
            e.message()
        );
    }

    #[test]
    fn relative_binary_is_refused() {
        let e = Config::parse("[backends.runc]\nbinary = \"runc\"\n", "f").unwrap_err();
        assert!(
            e.message().contains("backends.runc.binary = \"runc\""),
            "{}",
            e.message()
        );
    }

    #[test]
    fn priority_order_uses_defaults_and_overrides() {
        let c = Config::default();
        let names: Vec<_> = c
            .backends_by_priority()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["crun", "runc", "lxc", "proxmox-lxc"]);
        let c = Config::parse("[backends.runc]\npriority = 5\n", "f").unwrap();
        let names: Vec<_> = c
            .backends_by_priority()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["runc", "crun", "lxc", "proxmox-lxc"]);
    }

    #[test]
    fn proxmox_lxc_is_opt_in_and_gets_the_proxmox_section() {
        let c = Config::default();
        let p = c.backend("proxmox-lxc");
        assert!(
            !p.enabled,
            "needs a Proxmox node: disabled unless configured"
        );
        assert_eq!(p.priority, 30);
        assert_eq!(c.backend("lxc").proxmox, None);
        let c = Config::parse(
            "[backends.proxmox-lxc]\nenabled = true\n[proxmox]\nstorage = \"local-zfs\"\nvmid_range = \"5000-5999\"\n",
            "f",
        )
        .unwrap();
        let p = c.backend("proxmox-lxc");
        assert!(p.enabled);
        let px = p.proxmox.unwrap();
        assert_eq!(px.storage.as_deref(), Some("local-zfs"));
        assert_eq!(px.range(), (5000, 5999));
        let e = Config::parse("[proxmox]\nvmid_range = \"50-60\"\n", "f").unwrap_err();
        assert!(
            e.message().contains("proxmox.vmid_range = \"50-60\""),
            "{}",
            e.message()
        );
    }

    #[test]
    fn round_trips_through_toml() {
        let c = Config::parse(EXAMPLE, "t").unwrap();
        assert_eq!(Config::parse(&c.to_toml(), "t2").unwrap(), c);
    }
}
