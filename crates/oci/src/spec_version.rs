//! Running a spec on a runtime that refuses its declared version.
//!
//! containerd 1.7+ declares OCI runtime spec 1.2 in `config.json`; crun 1.8 (Debian 12) refuses
//! any 1.2 spec (`unknown version specified`) although it runs everything containerd asks of it.
//! runc 1.1 never checks the version and simply ignores fields it does not know. For crun,
//! nexcage gives the same semantics explicitly: it writes a copy of the config that declares the
//! newest version the runtime accepts (`crun --config`), leaving containerd's `config.json`
//! untouched, and logs that it did. Whether the runtime accepts a version is learned by a probe
//! container with no stdio (a refused create would print into the container's log), once per
//! runtime binary: the answer is cached beside the runtime roots for every shim of the node.

use std::path::{Path, PathBuf};

use nexcage_core::{Error, Result};

/// File in the bundle holding the copy.
pub const OVERRIDE_FILE: &str = ".nexcage-config.json";

const CACHE_FILE: &str = ".spec-versions.json";

/// The version to declare to `cli`'s runtime for a spec declaring `declared`: None to pass it as
/// it is, else the newest older version the runtime accepts.
pub async fn to_declare(cli: &crate::cli::RuntimeCli, declared: &str) -> Option<&'static str> {
    let fallback = fallback_for(declared)?;
    let mtime = std::fs::metadata(&cli.binary)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let key = format!("{}@{mtime}:{declared}", cli.binary.display());
    // Beside the per-namespace runtime roots, not inside one: it describes the binary.
    let cache = cli.root.parent().unwrap_or(&cli.root).join(CACHE_FILE);
    let mut known: std::collections::BTreeMap<String, bool> = std::fs::read(&cache)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let accepted = match known.get(&key) {
        Some(a) => *a,
        None => {
            let refused = match crate::health::probe(cli, declared).await {
                Err(e) => crate::error::is_unknown_spec_version(&e.to_string()),
                Ok(()) => false,
            };
            known.insert(key, !refused);
            if let Ok(json) = serde_json::to_vec(&known) {
                let tmp = cache.with_extension("tmp");
                if std::fs::write(&tmp, json).is_ok() {
                    let _ = std::fs::rename(&tmp, &cache);
                }
            }
            !refused
        }
    };
    (!accepted).then_some(fallback)
}

/// The version to declare instead of `declared` when the runtime refused it.
pub fn fallback_for(declared: &str) -> Option<&'static str> {
    let d = nexcage_core::types::spec_minor(declared)?;
    ["1.1.0", "1.0.2"]
        .into_iter()
        .find(|v| nexcage_core::types::spec_minor(v).is_some_and(|m| m < d))
}

/// Write `<bundle>/.nexcage-config.json`: `config.json` declaring `version`.
pub fn write_override(bundle: &Path, version: &str) -> Result<PathBuf> {
    let src = bundle.join("config.json");
    let text = std::fs::read(&src).map_err(|e| Error::io(format!("read {}", src.display()), e))?;
    let mut v: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| Error::invalid(format!("{}: {e}", src.display())))?;
    v["ociVersion"] = serde_json::Value::String(version.to_string());
    let dst = bundle.join(OVERRIDE_FILE);
    let json = serde_json::to_vec(&v).map_err(|e| Error::internal(e.to_string()))?;
    std::fs::write(&dst, json).map_err(|e| Error::io(format!("write {}", dst.display()), e))?;
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallbacks() {
        assert_eq!(fallback_for("1.2.1"), Some("1.1.0"));
        assert_eq!(fallback_for("1.1.0"), Some("1.0.2"));
        assert_eq!(fallback_for("1.0.2-dev"), None);
    }

    #[test]
    fn override_keeps_everything_but_the_version() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("config.json"),
            r#"{"ociVersion":"1.2.1","root":{"path":"rootfs"},"process":{"args":["sh"]}}"#,
        )
        .unwrap();
        let p = write_override(d.path(), "1.1.0").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        assert_eq!(v["ociVersion"], "1.1.0");
        assert_eq!(v["process"]["args"][0], "sh");
        let orig = std::fs::read_to_string(d.path().join("config.json")).unwrap();
        assert!(
            orig.contains("1.2.1"),
            "containerd's config.json stays untouched"
        );
    }
}
