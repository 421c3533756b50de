//! Parsing the stdio strings containerd sends: a FIFO path, `file://PATH` or `binary://PATH?args`.

use std::path::PathBuf;

use nexcage_core::{Error, Result};

/// Where one stdio stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Nothing: /dev/null.
    Null,
    /// A FIFO containerd reads (or, for stdin, writes).
    Fifo(PathBuf),
    /// Append to a file.
    File(PathBuf),
    /// Pipe into a logging binary with these arguments.
    Binary {
        /// Absolute path of the logging binary.
        path: PathBuf,
        /// Arguments from the URI query, as containerd's `NewBinaryCmd` builds them: each key, then
        /// its first value (`?a=b&c` → `["a", "b", "c", ""]`).
        args: Vec<String>,
    },
}

/// Parse one stdio string.
pub fn parse(field: &str, s: &str) -> Result<Target> {
    if s.is_empty() {
        return Ok(Target::Null);
    }
    let bad = |why: &str| Error::invalid(format!("{field} {s:?}: {why}"));
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("fifo", s),
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let make: fn(PathBuf, Option<&str>) -> Target = match scheme {
        "fifo" => |p, _| Target::Fifo(p),
        "file" => |p, _| Target::File(p),
        "binary" => |path, query| Target::Binary {
            path,
            args: query
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .flat_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    [percent_decode(k), percent_decode(v)]
                })
                .collect(),
        },
        other => {
            return Err(bad(&format!(
                "unsupported scheme {other:?} (fifo path, file:// or binary://)"
            )))
        }
    };
    let path = PathBuf::from(percent_decode(path));
    if !path.is_absolute() {
        return Err(bad("path must be absolute"));
    }
    Ok(make(path, query))
}

fn percent_decode(s: &str) -> String {
    nexcage_core::percent::decode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("stdout", "").unwrap(), Target::Null);
        assert_eq!(
            parse("stdout", "/run/containerd/fifo/1/c-stdout").unwrap(),
            Target::Fifo("/run/containerd/fifo/1/c-stdout".into())
        );
        assert_eq!(
            parse("stdout", "file:///var/log/c.log").unwrap(),
            Target::File("/var/log/c.log".into())
        );
        assert_eq!(
            parse("stdout", "binary:///usr/bin/logger?id=a%20b&debug").unwrap(),
            Target::Binary {
                path: "/usr/bin/logger".into(),
                args: vec!["id".into(), "a b".into(), "debug".into(), "".into()]
            }
        );
    }

    #[test]
    fn a_stray_percent_before_non_ascii_is_kept_not_a_panic() {
        assert_eq!(
            parse("stdout", "file:///var/log/%aé.log").unwrap(),
            Target::File("/var/log/%aé.log".into())
        );
    }

    #[test]
    fn refusals_name_field_and_value() {
        let e = parse("stderr", "file://relative/x").unwrap_err();
        assert_eq!(
            e.message(),
            "stderr \"file://relative/x\": path must be absolute"
        );
        let e = parse("stdout", "tcp://1.2.3.4:5").unwrap_err();
        assert!(
            e.message().contains("unsupported scheme \"tcp\""),
            "{}",
            e.message()
        );
    }
}
