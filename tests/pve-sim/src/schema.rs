//! Parameter schemas (pve-container `$confdesc`, the create/set/destroy extras) and the
//! validation messages of pve-common `JSONSchema.pm` (proxmox.md §1.3, §4.2).

/// The type of one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    /// `pve-vmid`: integer 100..999999999 matching `^[1-9][0-9]{2,8}$`.
    Vmid,
    /// Integer in `[min, max]`.
    Int(i64, i64),
    /// Number in `[min, max]`.
    Num(f64, f64),
    /// Boolean (`1|0|on|off|yes|no|true|false`; a bare flag means 1).
    Bool,
    /// String of at most this many characters.
    Str(usize),
    /// One of these values.
    Enum(&'static [&'static str]),
    /// A DNS name (`hostname`).
    DnsName,
}

/// Container lock values (§1.4).
pub const CT_LOCKS: &[&str] = &[
    "backup",
    "create",
    "destroyed",
    "disk",
    "fstrim",
    "migrate",
    "mounted",
    "rollback",
    "snapshot",
    "snapshot-delete",
];

/// VM lock values (§1.4).
pub const VM_LOCKS: &[&str] = &[
    "backup",
    "clone",
    "create",
    "migrate",
    "rollback",
    "snapshot",
    "snapshot-delete",
    "suspending",
    "suspended",
];

const ARCH: &[&str] = &["amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"];
const OSTYPE: &[&str] = &[
    "debian",
    "devuan",
    "ubuntu",
    "centos",
    "fedora",
    "opensuse",
    "archlinux",
    "alpine",
    "gentoo",
    "nixos",
    "unmanaged",
];
const CMODE: &[&str] = &["shell", "console", "tty"];
const LONG: usize = 65536;

/// `name` with a numeric suffix in `0..=max` (`net0`, `mp12`, …).
fn numbered(key: &str, prefix: &str, max: u32) -> bool {
    key.strip_prefix(prefix)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n <= max && (n == 0 || !key[prefix.len()..].starts_with('0')))
}

/// The type of a container config key, `None` if there is no such key.
pub fn ct_key(key: &str) -> Option<Ty> {
    Some(match key {
        "arch" => Ty::Enum(ARCH),
        "cmode" => Ty::Enum(CMODE),
        "console" | "debug" | "onboot" | "protection" | "template" | "unprivileged" => Ty::Bool,
        "cores" => Ty::Int(1, 8192),
        "cpulimit" => Ty::Num(0.0, 8192.0),
        "cpuunits" => Ty::Int(0, 500_000),
        "description" => Ty::Str(8192),
        "hostname" => Ty::DnsName,
        "lock" => Ty::Enum(CT_LOCKS),
        "memory" => Ty::Int(16, i64::MAX),
        "ostype" => Ty::Enum(OSTYPE),
        "swap" => Ty::Int(0, i64::MAX),
        "tty" => Ty::Int(0, 6),
        "entrypoint" | "env" | "features" | "hookscript" | "nameserver" | "searchdomain"
        | "rootfs" | "startup" | "tags" | "timezone" => Ty::Str(LONG),
        k if numbered(k, "net", 31)
            || numbered(k, "mp", 255)
            || numbered(k, "dev", 255)
            || numbered(k, "unused", 255) =>
        {
            Ty::Str(LONG)
        }
        _ => return None,
    })
}

/// Options `pct create` takes besides the config keys (§2.1).
pub fn create_extra(key: &str) -> Option<Ty> {
    Some(match key {
        "password" => Ty::Str(LONG),
        "ssh-public-keys" | "storage" | "pool" => Ty::Str(LONG),
        "force" | "restore" | "unique" | "ignore-unpack-errors" | "start" | "ha-managed" => {
            Ty::Bool
        }
        "bwlimit" => Ty::Num(0.0, f64::MAX),
        _ => return None,
    })
}

/// Check one value; the reason text on failure (`JSONSchema.pm` wording).
pub fn check(ty: Ty, value: &str) -> Result<String, String> {
    match ty {
        Ty::Vmid => {
            check(Ty::Int(i64::MIN, i64::MAX), value)?;
            let ok = value.len() >= 3
                && value.len() <= 9
                && !value.starts_with('0')
                && value.bytes().all(|b| b.is_ascii_digit());
            if !ok {
                return Err("invalid format - value does not look like a valid VM ID".into());
            }
            Ok(value.to_string())
        }
        Ty::Int(min, max) => {
            let v: i64 = value
                .parse()
                .ok()
                .filter(|_| !value.starts_with('+'))
                .ok_or_else(|| format!("type check ('integer') failed - got '{value}'"))?;
            range(
                v as f64,
                min as f64,
                max as f64,
                i64::MIN as f64,
                i64::MAX as f64,
            )?;
            Ok(value.to_string())
        }
        Ty::Num(min, max) => {
            let v: f64 = value
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| format!("type check ('number') failed - got '{value}'"))?;
            range(v, min, max, f64::MIN, f64::MAX)?;
            Ok(value.to_string())
        }
        Ty::Bool => match value.to_ascii_lowercase().as_str() {
            "" | "1" | "on" | "yes" | "true" => Ok("1".into()),
            "0" | "off" | "no" | "false" => Ok("0".into()),
            _ => Err("unable to parse boolean option".into()),
        },
        Ty::Str(max) => {
            if value.chars().count() > max {
                return Err(format!("value may only be {max} characters long"));
            }
            Ok(value.to_string())
        }
        Ty::Enum(list) => {
            if list.contains(&value) {
                Ok(value.to_string())
            } else {
                Err(format!(
                    "value '{value}' does not have a value in the enumeration '{}'",
                    list.join(", ")
                ))
            }
        }
        Ty::DnsName => {
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if value.len() > 255 || !value.split('.').all(label_ok) {
                return Err("invalid format - value does not look like a valid DNS name".into());
            }
            Ok(value.to_string())
        }
    }
}

fn range(v: f64, min: f64, max: f64, lo: f64, hi: f64) -> Result<(), String> {
    let show = |x: f64| {
        if x.fract() == 0.0 {
            format!("{}", x as i64)
        } else {
            format!("{x}")
        }
    };
    if min > lo && v < min {
        return Err(format!("value must have a minimum value of {}", show(min)));
    }
    if max < hi && v > max {
        return Err(format!("value must have a maximum value of {}", show(max)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmid_rules() {
        assert_eq!(check(Ty::Vmid, "100"), Ok("100".into()));
        assert_eq!(check(Ty::Vmid, "999999999"), Ok("999999999".into()));
        let bad = Err("invalid format - value does not look like a valid VM ID".to_string());
        assert_eq!(check(Ty::Vmid, "99"), bad);
        assert_eq!(check(Ty::Vmid, "0100"), bad);
        assert_eq!(check(Ty::Vmid, "1000000000"), bad);
        assert_eq!(
            check(Ty::Vmid, "abc"),
            Err("type check ('integer') failed - got 'abc'".into())
        );
    }

    #[test]
    fn integer_ranges_and_types() {
        assert_eq!(
            check(ct_key("memory").unwrap(), "8"),
            Err("value must have a minimum value of 16".into())
        );
        assert_eq!(
            check(ct_key("cores").unwrap(), "9000"),
            Err("value must have a maximum value of 8192".into())
        );
        assert_eq!(
            check(ct_key("swap").unwrap(), "lots"),
            Err("type check ('integer') failed - got 'lots'".into())
        );
        assert_eq!(check(ct_key("cpulimit").unwrap(), "1.5"), Ok("1.5".into()));
    }

    #[test]
    fn booleans_enums_names() {
        assert_eq!(check(Ty::Bool, "Yes"), Ok("1".into()));
        assert_eq!(check(Ty::Bool, "off"), Ok("0".into()));
        assert_eq!(
            check(Ty::Bool, "2"),
            Err("unable to parse boolean option".into())
        );
        assert_eq!(
            check(ct_key("arch").unwrap(), "sparc"),
            Err("value 'sparc' does not have a value in the enumeration 'amd64, i386, arm64, armhf, riscv32, riscv64'".into())
        );
        assert!(check(Ty::DnsName, "web-1.example").is_ok());
        assert!(check(Ty::DnsName, "under_score").is_err());
    }

    #[test]
    fn numbered_keys() {
        assert!(ct_key("net31").is_some());
        assert!(ct_key("net32").is_none());
        assert!(ct_key("mp255").is_some());
        assert!(ct_key("mp01").is_none());
        assert!(ct_key("bogus").is_none());
    }
}
