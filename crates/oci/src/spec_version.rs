//! Running a spec on a runtime that refuses its declared version.
//!
//! containerd 1.7+ declares OCI runtime spec 1.2 in `config.json`; crun 1.8 (Debian 12) refuses
//! any 1.2 spec (`unknown version specified`) although it runs everything containerd asks of it.
//! runc 1.1 never checks the version and simply ignores fields it does not know. For crun,
//! nexcage gives the same semantics explicitly: it writes a copy of the config that declares the
//! newest version the runtime accepts (`crun --config`), leaving containerd's `config.json`
//! untouched, and logs that it did.

use std::path::{Path, PathBuf};

use nexcage_core::{Error, Result};

/// File in the bundle holding the copy.
pub const OVERRIDE_FILE: &str = ".nexcage-config.json";

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
