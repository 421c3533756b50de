//! Editing the config file in place: `[backends.NAME] enabled = …`, keeping comments, key order
//! and formatting, validated before it is written, written atomically.

use std::io::Write;
use std::path::Path;

use nexcage_core::config::Config;
use nexcage_core::Error;
use toml_edit::{DocumentMut, InlineTable, Item, Table, Value};

/// The outcome of [`set_enabled`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    /// The new file text (the old text when nothing changed).
    pub text: String,
    /// The `enabled` value written in the file before (None: not set, so enabled by default).
    pub previous: Option<bool>,
    /// Whether the text changed.
    pub changed: bool,
}

/// Set `backends.<name>.enabled = enabled` in `text`, creating the table when missing; `origin`
/// names the file in errors. The result is validated with [`Config::parse`]: an edit that would
/// leave an invalid config is refused.
pub fn set_enabled(text: &str, origin: &str, name: &str, enabled: bool) -> Result<Edited, Error> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        Error::invalid(format!("config {origin}: {}", e.to_string().trim_end()))
    })?;
    let not_table = |key: &str| Error::invalid(format!("config {origin}: {key} is not a table"));

    let backends = doc.entry("backends").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let (inline, dotted) = match backends {
        Item::Value(Value::InlineTable(_)) => (true, false),
        Item::Table(t) => (false, t.is_dotted()),
        _ => return Err(not_table("backends")),
    };
    let backends = backends
        .as_table_like_mut()
        .ok_or_else(|| not_table("backends"))?;
    let backend = backends.entry(name).or_insert_with(|| {
        if inline {
            Item::Value(Value::InlineTable(InlineTable::new()))
        } else {
            let mut t = Table::new();
            t.set_dotted(dotted);
            Item::Table(t)
        }
    });
    let backend = backend
        .as_table_like_mut()
        .ok_or_else(|| not_table(&format!("backends.{name}")))?;

    let previous = backend.get("enabled").and_then(Item::as_bool);
    if previous == Some(enabled) {
        return Ok(Edited {
            text: text.to_string(),
            previous,
            changed: false,
        });
    }
    match backend.get_mut("enabled").and_then(Item::as_value_mut) {
        Some(v) => {
            // Keep the spacing and any trailing comment of the old value.
            let decor = v.decor().clone();
            *v = Value::from(enabled);
            *v.decor_mut() = decor;
        }
        None => {
            backend.insert("enabled", toml_edit::value(enabled));
        }
    }

    let new = doc.to_string();
    Config::parse(&new, origin).map_err(|e| {
        e.context(format!(
            "refusing to write backends.{name}.enabled = {enabled}"
        ))
    })?;
    Ok(Edited {
        text: new,
        previous,
        changed: true,
    })
}

/// Write `text` to `path` atomically: a temporary file in the same directory, flushed to disk,
/// then renamed over `path` (through a symlink, to its target). Creates the parent directory; an
/// existing file keeps its permissions, a new one is 0644.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let target = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let mode = std::fs::metadata(&target).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let mut tmp = tempfile::Builder::new()
        .prefix(".nexcage-config-")
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMENTED: &str = "\
# nexcage config
default_backend = \"runc\" # the safe one

[backends.crun]
# fast, but see the hybrid-cgroup note
enabled = true   # keep this comment
priority = 10

[backends.runc]
priority = 20

[[routing]]
pattern = \"kube-ovn-*\" # CNI pods
backend = \"crun\"
";

    #[test]
    fn flips_the_value_and_keeps_comments_and_order() {
        let e = set_enabled(COMMENTED, "t.toml", "crun", false).unwrap();
        assert!(e.changed);
        assert_eq!(e.previous, Some(true));
        assert_eq!(
            e.text,
            COMMENTED.replace(
                "enabled = true   # keep this comment",
                "enabled = false   # keep this comment"
            )
        );
        let c = Config::parse(&e.text, "t").unwrap();
        assert!(!c.backend("crun").enabled);
    }

    #[test]
    fn adds_the_key_to_an_existing_table() {
        let e = set_enabled(COMMENTED, "t.toml", "runc", false).unwrap();
        assert_eq!(e.previous, None);
        assert!(
            e.text
                .contains("[backends.runc]\npriority = 20\nenabled = false\n\n[[routing]]"),
            "{}",
            e.text
        );
        assert!(e.text.starts_with("# nexcage config\n"));
        assert!(e.text.contains("# the safe one"));
        assert!(e.text.contains("pattern = \"kube-ovn-*\" # CNI pods"));
    }

    #[test]
    fn creates_the_table_when_missing() {
        let text = "# only a comment\ndefault_backend = \"crun\"\n";
        let e = set_enabled(text, "t.toml", "runc", false).unwrap();
        assert_eq!(
            e.text,
            "# only a comment\ndefault_backend = \"crun\"\n\n[backends.runc]\nenabled = false\n"
        );
        let e = set_enabled("", "t.toml", "crun", true).unwrap();
        assert_eq!(e.text, "[backends.crun]\nenabled = true\n");
        assert!(e.changed);
    }

    #[test]
    fn new_backend_table_follows_the_existing_ones() {
        let text =
            "[backends.crun]\npriority = 1\n\n[[routing]]\npattern = \"a*\"\nbackend = \"crun\"\n";
        let e = set_enabled(text, "t", "runc", false).unwrap();
        assert_eq!(
            e.text,
            "[backends.crun]\npriority = 1\n\n[backends.runc]\nenabled = false\n\n[[routing]]\npattern = \"a*\"\nbackend = \"crun\"\n"
        );
    }

    #[test]
    fn unchanged_value_leaves_text_alone() {
        let e = set_enabled(COMMENTED, "t.toml", "crun", true).unwrap();
        assert!(!e.changed);
        assert_eq!(e.text, COMMENTED);
    }

    #[test]
    fn inline_and_dotted_tables() {
        let e = set_enabled(
            "backends = { runc = { priority = 5 } }\n",
            "t",
            "crun",
            false,
        )
        .unwrap();
        let c = Config::parse(&e.text, "t").unwrap();
        assert!(!c.backend("crun").enabled);
        assert_eq!(c.backend("runc").priority, 5);

        let e = set_enabled("backends.runc.priority = 5\n", "t", "runc", false).unwrap();
        let c = Config::parse(&e.text, "t").unwrap();
        assert!(!c.backend("runc").enabled);
        assert_eq!(c.backend("runc").priority, 5);

        let e = set_enabled(
            "[backends]\nrunc = { enabled = false }\n",
            "t",
            "runc",
            true,
        )
        .unwrap();
        assert_eq!(e.text, "[backends]\nrunc = { enabled = true }\n");
    }

    #[test]
    fn refuses_an_invalid_result() {
        // An unknown backend name would produce a table the config refuses.
        let e = set_enabled(COMMENTED, "/etc/x.toml", "docker", false).unwrap_err();
        let m = e.message();
        assert!(
            m.contains("refusing to write") && m.contains("/etc/x.toml") && m.contains("docker"),
            "{m}"
        );
        // A config that is already invalid stays invalid: refused, naming the bad key.
        let e = set_enabled("[backends.crun]\nenabeld = true\n", "f", "crun", false).unwrap_err();
        assert!(e.message().contains("enabeld"), "{}", e.message());
        // Not a table at all.
        let e = set_enabled("backends = 3\n", "f", "crun", false).unwrap_err();
        assert!(
            e.message().contains("backends is not a table"),
            "{}",
            e.message()
        );
        // Not TOML.
        assert!(set_enabled("[backends.crun\n", "f", "crun", false).is_err());
    }

    #[test]
    fn atomic_write_creates_dirs_and_keeps_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("etc/nexcage/config.toml");
        write_atomic(&p, "a = 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a = 1\n");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o644);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, "a = 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a = 2\n");
        assert_eq!(mode(&p), 0o600);
        // Through a symlink the link stays and its target changes.
        let link = d.path().join("link.toml");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        write_atomic(&link, "a = 3\n").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a = 3\n");
        // No temporary files left behind.
        let left: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("config.toml")]);
    }
}
