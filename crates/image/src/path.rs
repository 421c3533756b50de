//! Entry paths: checked lexically before anything touches the file system.
//!
//! An entry path must be relative, without `..`, without NUL, within the length and depth limits,
//! with every component at most `NAME_MAX` bytes. `.` components and repeated or trailing slashes
//! are dropped (`./etc//x/` is `etc/x`); the empty path is the root of the target.

use std::ffi::CString;
use std::fmt;

use crate::error::{Error, Result};
use crate::limits::Limits;

/// `NAME_MAX` on Linux.
const NAME_MAX: usize = 255;

/// A checked, normalised path relative to the target root.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct EntryPath {
    comps: Vec<Vec<u8>>,
}

impl EntryPath {
    /// Check and normalise `raw`; `what` names it in errors (`path`, `hardlink target`).
    pub(crate) fn parse(raw: &[u8], limits: &Limits) -> Result<EntryPath> {
        let shown = || String::from_utf8_lossy(raw).into_owned();
        if raw.len() > limits.max_path_len {
            return Err(Error::Limit {
                what: "path length",
                limit: limits.max_path_len as u64,
                path: Some(shown()),
            });
        }
        if raw.contains(&0) {
            return Err(Error::unsafe_entry(shown(), "NUL byte in path"));
        }
        if raw.first() == Some(&b'/') {
            return Err(Error::unsafe_entry(shown(), "absolute path"));
        }
        let mut comps = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return Err(Error::unsafe_entry(shown(), "'..' component")),
                c if c.len() > NAME_MAX => {
                    return Err(Error::unsafe_entry(
                        shown(),
                        "component longer than NAME_MAX",
                    ))
                }
                c => comps.push(c.to_vec()),
            }
        }
        if comps.len() > limits.max_depth {
            return Err(Error::Limit {
                what: "path depth",
                limit: limits.max_depth as u64,
                path: Some(shown()),
            });
        }
        Ok(EntryPath { comps })
    }

    /// The target root itself (`.` or `./`).
    #[cfg(test)]
    pub(crate) fn is_root(&self) -> bool {
        self.comps.is_empty()
    }

    /// Components, outermost first.
    #[cfg(test)]
    pub(crate) fn comps(&self) -> &[Vec<u8>] {
        &self.comps
    }

    /// The last component (`None` for the root).
    pub(crate) fn name(&self) -> Option<&[u8]> {
        self.comps.last().map(Vec::as_slice)
    }

    /// The parent's components.
    pub(crate) fn parent(&self) -> &[Vec<u8>] {
        &self.comps[..self.comps.len().saturating_sub(1)]
    }

    /// The same directory with `name` as last component.
    pub(crate) fn sibling(&self, name: &[u8]) -> EntryPath {
        let mut comps = self.parent().to_vec();
        comps.push(name.to_vec());
        EntryPath { comps }
    }

    /// `self/name`.
    pub(crate) fn child(&self, name: &[u8]) -> EntryPath {
        let mut comps = self.comps.clone();
        comps.push(name.to_vec());
        EntryPath { comps }
    }

    /// Components joined with `/` (`.` for the root), as a key and for messages.
    pub(crate) fn joined(&self) -> Vec<u8> {
        join(&self.comps)
    }
}

/// `a/b/c` (`.` when empty).
pub(crate) fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    if comps.is_empty() {
        return b".".to_vec();
    }
    comps.join(&b'/')
}

/// A C string of a checked component or joined path (they contain no NUL).
pub(crate) fn cstr(bytes: &[u8]) -> CString {
    CString::new(bytes).unwrap_or_default()
}

impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.joined()))
    }
}

impl fmt::Debug for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<EntryPath> {
        EntryPath::parse(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn normalises() {
        assert_eq!(p("./etc//passwd").unwrap().to_string(), "etc/passwd");
        assert_eq!(p("usr/bin/").unwrap().comps().len(), 2);
        assert!(p("./").unwrap().is_root());
        assert!(p(".").unwrap().is_root());
        assert_eq!(p("a/b").unwrap().sibling(b"c").to_string(), "a/c");
        assert_eq!(p("a").unwrap().parent().len(), 0);
        assert_eq!(
            p("a/.wh..wh..opq").unwrap().name(),
            Some(&b".wh..wh..opq"[..])
        );
    }

    #[test]
    fn refuses_escapes() {
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/..", "a/b\0c", "//x"] {
            let e = p(bad).unwrap_err();
            assert!(matches!(e, Error::Unsafe { .. }), "{bad}: {e}");
        }
        // `..` that would stay inside is refused too: nothing is resolved lexically.
        assert!(p("a/../b").is_err());
    }

    #[test]
    fn enforces_limits() {
        let l = Limits {
            max_path_len: 10,
            max_depth: 2,
            ..Limits::default()
        };
        assert!(matches!(
            EntryPath::parse(b"aaaaaaaaaaa", &l).unwrap_err(),
            Error::Limit {
                what: "path length",
                ..
            }
        ));
        assert!(matches!(
            EntryPath::parse(b"a/b/c", &l).unwrap_err(),
            Error::Limit {
                what: "path depth",
                ..
            }
        ));
        assert!(p(&"x".repeat(256)).is_err());
    }
}
