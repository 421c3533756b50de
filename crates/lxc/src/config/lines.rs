//! Writing LXC config lines safely: LXC reads `key = value` per line and trims the value, so a
//! value that holds a newline or starts or ends with whitespace cannot be expressed and is refused
//! with the OCI field named.

use nexcage_core::{Error, Result};

/// An InvalidArgument error naming the OCI field and why the lxc backend cannot honour it.
pub fn refuse(field: impl std::fmt::Display, why: impl std::fmt::Display) -> Error {
    Error::invalid(format!("config.json: {field}: {why} (lxc backend)"))
}

/// An LXC config file being built.
#[derive(Debug, Default)]
pub struct Conf {
    text: String,
}

impl Conf {
    /// `key = value`, refusing values LXC's line format cannot carry (`field` names the source).
    pub fn set(&mut self, key: &str, value: &str, field: &str) -> Result<()> {
        if value.contains(['\n', '\r', '\0']) {
            return Err(refuse(
                field,
                format!("{value:?} contains a line break or NUL"),
            ));
        }
        if value.trim() != value {
            return Err(refuse(
                field,
                format!(
                    "{value:?} starts or ends with whitespace, which LXC's config format trims"
                ),
            ));
        }
        self.text.push_str(key);
        self.text.push_str(" = ");
        self.text.push_str(value);
        self.text.push('\n');
        Ok(())
    }

    /// A comment line.
    pub fn comment(&mut self, text: &str) {
        for l in text.lines() {
            self.text.push_str("# ");
            self.text.push_str(l);
            self.text.push('\n');
        }
    }

    /// Values of every line with `key`, in order (for tests and callers that inspect the result).
    pub fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
        text.lines()
            .filter_map(|l| l.split_once(" = "))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .collect()
    }

    /// The finished file.
    pub fn finish(self) -> String {
        self.text
    }
}

/// Escape one fstab field the way `getmntent(3)` (which LXC uses for `lxc.mount.entry`) decodes
/// it: space, tab, newline and backslash become `\ooo`.
pub fn fstab_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// Whether a path is absolute and has no `.`/`..` components (so it cannot climb out of the
/// rootfs when made relative).
pub fn clean_absolute(p: &std::path::Path) -> bool {
    use std::path::Component;
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// The path without its leading `/`, as LXC wants mount targets (relative to the rootfs).
pub fn relative(p: &std::path::Path) -> String {
    p.to_string_lossy().trim_start_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexcage_core::{ErrorKind, HasKind};

    #[test]
    fn set_refuses_what_lxc_would_mangle() {
        let mut c = Conf::default();
        c.set("lxc.environment", "A=b c", "process.env[0]").unwrap();
        for bad in ["A=b\nlxc.cap.keep = all", "A=b ", " x", "a\0b"] {
            let e = c.set("lxc.environment", bad, "process.env[1]").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().contains("process.env[1]"), "{e}");
        }
        assert_eq!(c.finish(), "lxc.environment = A=b c\n");
    }

    #[test]
    fn fstab_fields_are_octal_escaped() {
        assert_eq!(fstab_escape("/a b\\c\td"), "/a\\040b\\134c\\011d");
        assert!(clean_absolute(std::path::Path::new("/a/b")));
        assert!(!clean_absolute(std::path::Path::new("/a/../b")));
        assert!(!clean_absolute(std::path::Path::new("a/b")));
        assert_eq!(relative(std::path::Path::new("/dev/shm")), "dev/shm");
    }
}
