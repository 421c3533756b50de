//! Command-line parsing as pve-common's `JSONSchema::get_options` and `RESTHandler::cli_handler`
//! do it (proxmox.md §1.1, §1.3): `--opt value` or `-opt value` (also `--opt=value`), booleans
//! with an optional value, positional arguments anywhere, `--` ending option parsing, the rest
//! swallowed by `extra-args` where a command has it; 400 errors with the short usage.

use std::collections::BTreeMap;

use crate::schema::{check, Ty};
use crate::sim::Failure;

/// What a command accepts.
pub struct Spec<'a> {
    /// `pct`, `qm` or `pvesh`.
    pub tool: &'a str,
    /// The subcommand as typed (`create`, `guest exec`).
    pub cmd: &'a str,
    /// Fixed positional parameters, in order.
    pub positional: &'a [(&'a str, Ty)],
    /// Whether the remaining words form `extra-args` (`pct exec`, `qm guest exec`).
    pub extra_args: bool,
    /// The type of each `--option`, `None` for unknown options.
    pub opt: &'a dyn Fn(&str) -> Option<Ty>,
}

impl std::fmt::Debug for Spec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.tool, self.cmd)
    }
}

impl Spec<'_> {
    /// The short usage line printed after a 400 error.
    pub fn usage(&self) -> String {
        let mut s = format!("{} {}", self.tool, self.cmd);
        for (p, _) in self.positional {
            s.push_str(&format!(" <{p}>"));
        }
        if self.extra_args {
            s.push_str(" [<extra-args>]");
        }
        s.push_str(" [OPTIONS]\n");
        s
    }
}

/// A parsed and validated command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Positional values, in the order of [`Spec::positional`].
    pub pos: Vec<String>,
    /// Options (booleans normalized to `1`/`0`; `delete` lists joined with commas).
    pub opts: BTreeMap<String, String>,
    /// `extra-args`.
    pub extra: Vec<String>,
}

impl Parsed {
    /// An option's value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.opts.get(k).map(String::as_str)
    }
    /// A boolean option (absent: `default`).
    pub fn flag(&self, k: &str, default: bool) -> bool {
        self.get(k).map_or(default, |v| v == "1")
    }
    /// The first positional as a VMID (validated by the spec).
    pub fn vmid(&self) -> u32 {
        self.pos.first().and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// Parse `args` (after the subcommand) against `spec`.
pub fn parse(spec: &Spec, args: &[String]) -> Result<Parsed, Failure> {
    let usage = spec.usage();
    let unparsable =
        |warn: String| Failure::die(format!("{warn}400 unable to parse option\n{usage}"));
    let mut out = Parsed::default();
    let mut rest = Vec::new();
    let mut raw: Vec<(String, Ty, String)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            rest.extend(args[i..].iter().cloned());
            break;
        }
        let name = match a.strip_prefix("--").or_else(|| a.strip_prefix('-')) {
            Some(n) if !n.is_empty() => n,
            _ => {
                rest.push(a.clone());
                continue;
            }
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        let Some(ty) = (spec.opt)(name) else {
            return Err(unparsable(format!("Unknown option: {name}\n")));
        };
        let value = match (inline, ty) {
            (Some(v), _) => v,
            (None, Ty::Bool) => match args.get(i) {
                Some(next) if !next.starts_with('-') => {
                    i += 1;
                    next.clone()
                }
                _ => String::new(),
            },
            (None, _) => match args.get(i) {
                Some(next) => {
                    i += 1;
                    next.clone()
                }
                None => return Err(unparsable(format!("Option {name} requires an argument\n"))),
            },
        };
        raw.push((name.to_string(), ty, value));
    }
    let mut rest = rest.into_iter();
    let mut errors = Vec::new();
    for (name, ty) in spec.positional {
        let Some(v) = rest.next() else {
            return Err(Failure::bad_request("not enough arguments", &usage));
        };
        match check(*ty, &v) {
            Ok(v) => out.pos.push(v),
            Err(e) => {
                errors.push((name.to_string(), e));
                out.pos.push(v);
            }
        }
    }
    out.extra = rest.collect();
    if !spec.extra_args && !out.extra.is_empty() {
        return Err(Failure::bad_request("too many arguments", &usage));
    }
    for (name, ty, value) in raw {
        match check(ty, &value) {
            Ok(v) if name == "delete" => {
                let e = out.opts.entry(name).or_default();
                if !e.is_empty() {
                    e.push(',');
                }
                e.push_str(&v);
            }
            Ok(v) => {
                out.opts.insert(name, v);
            }
            Err(e) => errors.push((name, e)),
        }
    }
    if !errors.is_empty() {
        return Err(Failure::params(&errors, &usage));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ct_key;

    fn spec(extra: bool) -> Spec<'static> {
        Spec {
            tool: "pct",
            cmd: "demo",
            positional: &[("vmid", Ty::Vmid)],
            extra_args: extra,
            opt: &|k| match k {
                "force" => Some(Ty::Bool),
                "delete" => Some(Ty::Str(100)),
                k => ct_key(k),
            },
        }
    }

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_both_prefixes_and_inline_values() {
        let p = parse(
            &spec(false),
            &argv(&["-memory", "64", "100", "--swap=0", "--force"]),
        )
        .unwrap();
        assert_eq!(p.pos, ["100"]);
        assert_eq!(p.get("memory"), Some("64"));
        assert_eq!(p.get("swap"), Some("0"));
        assert_eq!(p.get("force"), Some("1"));
    }

    #[test]
    fn boolean_takes_an_optional_value() {
        let p = parse(&spec(false), &argv(&["100", "--force", "off"])).unwrap();
        assert_eq!(p.get("force"), Some("0"));
        let e = parse(&spec(false), &argv(&["100", "--force", "maybe"])).unwrap_err();
        assert_eq!(
            e.stderr,
            "400 Parameter verification failed.\nforce: unable to parse boolean option\npct demo <vmid> [OPTIONS]\n"
        );
    }

    #[test]
    fn argument_count_errors() {
        let e = parse(&spec(false), &[]).unwrap_err();
        assert_eq!(
            e.stderr,
            "400 not enough arguments\npct demo <vmid> [OPTIONS]\n"
        );
        assert_eq!(e.code, 255);
        let e = parse(&spec(false), &argv(&["100", "x"])).unwrap_err();
        assert_eq!(
            e.stderr,
            "400 too many arguments\npct demo <vmid> [OPTIONS]\n"
        );
    }

    #[test]
    fn unknown_option() {
        let e = parse(&spec(false), &argv(&["100", "--bogus", "1"])).unwrap_err();
        assert_eq!(
            e.stderr,
            "Unknown option: bogus\n400 unable to parse option\npct demo <vmid> [OPTIONS]\n"
        );
    }

    #[test]
    fn extra_args_after_double_dash_keep_their_dashes() {
        let p = parse(&spec(true), &argv(&["100", "--", "ls", "-l", "--all"])).unwrap();
        assert_eq!(p.extra, ["ls", "-l", "--all"]);
        let e = parse(&spec(true), &argv(&["100", "ls", "-l"])).unwrap_err();
        assert!(e.stderr.starts_with("Unknown option: l\n"), "{}", e.stderr);
    }

    #[test]
    fn several_bad_parameters_are_listed_sorted() {
        let e = parse(
            &spec(false),
            &argv(&["99", "--memory", "1", "--cores", "x"]),
        )
        .unwrap_err();
        assert_eq!(
            e.stderr,
            "400 Parameter verification failed.\n\
             cores: type check ('integer') failed - got 'x'\n\
             memory: value must have a minimum value of 16\n\
             vmid: invalid format - value does not look like a valid VM ID\n\
             pct demo <vmid> [OPTIONS]\n"
        );
    }

    #[test]
    fn delete_lists_accumulate() {
        let p = parse(
            &spec(false),
            &argv(&["100", "--delete", "a", "--delete", "b,c"]),
        )
        .unwrap();
        assert_eq!(p.get("delete"), Some("a,b,c"));
    }
}
