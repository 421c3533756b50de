//! Checks on dataset, snapshot and property names before they reach argv.
//!
//! Stricter than ZFS itself (which also allows spaces): a name is `pool[/component]*[@snap]`, each
//! part made of `[A-Za-z0-9_.:-]`, not starting with `-`, and not `.` or `..`. So no name can be
//! read as an option or break the tab-separated output the wrappers parse.

use crate::error::{Error, Result};

/// ZFS_MAX_DATASET_NAME_LEN (including the terminating NUL).
pub const MAX_NAME_LEN: usize = 255;

fn invalid(what: &'static str, name: &str, reason: &'static str) -> Error {
    Error::InvalidName {
        what,
        name: name.to_string(),
        reason,
    }
}

fn check_part(what: &'static str, name: &str, part: &str) -> Result<()> {
    if part.is_empty() {
        return Err(invalid(what, name, "empty component"));
    }
    if part == "." || part == ".." {
        return Err(invalid(what, name, "'.' or '..' component"));
    }
    if part.starts_with('-') {
        return Err(invalid(what, name, "component starts with '-'"));
    }
    if !part
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    {
        return Err(invalid(
            what,
            name,
            "only letters, digits and _ . : - are allowed",
        ));
    }
    Ok(())
}

fn check_len(what: &'static str, name: &str) -> Result<()> {
    if name.len() >= MAX_NAME_LEN {
        return Err(invalid(what, name, "name is too long"));
    }
    Ok(())
}

/// A pool name.
pub fn check_pool(name: &str) -> Result<()> {
    check_len("pool", name)?;
    check_part("pool", name, name)?;
    if !name.as_bytes()[0].is_ascii_alphabetic() {
        return Err(invalid("pool", name, "must begin with a letter"));
    }
    Ok(())
}

/// A filesystem or volume name (no `@`).
pub fn check_dataset(name: &str) -> Result<()> {
    check_len("dataset", name)?;
    if name.contains('@') {
        return Err(invalid("dataset", name, "a snapshot name is not a dataset"));
    }
    for part in name.split('/') {
        check_part("dataset", name, part)?;
    }
    Ok(())
}

/// A snapshot name `dataset@snap`.
pub fn check_snapshot(name: &str) -> Result<()> {
    check_len("snapshot", name)?;
    let Some((ds, snap)) = name.split_once('@') else {
        return Err(invalid("snapshot", name, "missing '@'"));
    };
    check_dataset(ds).map_err(|_| invalid("snapshot", name, "bad dataset part"))?;
    if snap.contains('@') || snap.contains('/') {
        return Err(invalid("snapshot", name, "bad snapshot part"));
    }
    check_part("snapshot", name, snap)
}

/// A dataset or a snapshot.
pub fn check_any(name: &str) -> Result<()> {
    if name.contains('@') {
        check_snapshot(name)
    } else {
        check_dataset(name)
    }
}

/// A property name (native `lowercase` or user `module:property`).
pub fn check_property(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 256 || name.starts_with('-') {
        return Err(invalid(
            "property",
            name,
            "empty, too long or starts with '-'",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-' | b'@'))
    {
        return Err(invalid("property", name, "bad character"));
    }
    Ok(())
}

/// A property value: anything printable on one line.
pub fn check_value(property: &str, value: &str) -> Result<()> {
    if value.bytes().any(|b| b == b'\n' || b == b'\t' || b == 0) {
        return Err(invalid(
            "property value",
            property,
            "tab, newline or NUL in value",
        ));
    }
    Ok(())
}

/// How deep `name` is below `root` (`Some(0)` for the root itself, snapshots count one level
/// below their dataset), or `None` when it is not under `root`.
pub fn depth_below(root: &str, name: &str) -> Option<usize> {
    if name == root {
        return Some(0);
    }
    let rest = name.strip_prefix(root)?;
    if let Some(snap) = rest.strip_prefix('@') {
        return (!snap.is_empty()).then_some(1);
    }
    let rest = rest.strip_prefix('/')?;
    let (ds, snap) = match rest.split_once('@') {
        Some((d, _)) => (d, 1),
        None => (rest, 0),
    };
    Some(ds.split('/').count() + snap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets() {
        for ok in [
            "tank",
            "tank/nexcage",
            "rpool/data/subvol-100-disk-0",
            "p/tmp-0a1b-c2:x.y",
        ] {
            check_dataset(ok).unwrap();
        }
        for bad in [
            "",
            "-o",
            "tank/-rf",
            "tank//x",
            "tank/",
            "/tank",
            "tank/..",
            "tank/a b",
            "tank/a\n",
            "tank/a@s",
            "tank/a\tb",
        ] {
            assert!(check_dataset(bad).is_err(), "{bad:?}");
        }
        assert!(check_dataset(&"a/".repeat(200)).is_err());
    }

    #[test]
    fn snapshots() {
        check_snapshot("tank/a@snap").unwrap();
        for bad in [
            "tank/a",
            "tank/a@",
            "tank/a@-r",
            "tank/a@b@c",
            "@s",
            "tank/a@x/y",
        ] {
            assert!(check_snapshot(bad).is_err(), "{bad:?}");
        }
        check_any("tank/a@s").unwrap();
        check_any("tank/a").unwrap();
    }

    #[test]
    fn pools_and_properties() {
        check_pool("nexcage-test").unwrap();
        assert!(check_pool("1pool").is_err());
        assert!(check_pool("a/b").is_err());
        check_property("nexcage:chain").unwrap();
        check_property("userquota@1000").unwrap();
        assert!(check_property("-H").is_err());
        assert!(check_property("a=b").is_err());
        check_value("x", "/some path").unwrap();
        assert!(check_value("x", "a\nb").is_err());
    }

    #[test]
    fn depth() {
        assert_eq!(depth_below("p/a", "p/a"), Some(0));
        assert_eq!(depth_below("p/a", "p/a@s"), Some(1));
        assert_eq!(depth_below("p/a", "p/a/b"), Some(1));
        assert_eq!(depth_below("p/a", "p/a/b@s"), Some(2));
        assert_eq!(depth_below("p/a", "p/a/b/c"), Some(2));
        assert_eq!(depth_below("p/a", "p/ab"), None);
        assert_eq!(depth_below("p/a", "p/b"), None);
    }
}
