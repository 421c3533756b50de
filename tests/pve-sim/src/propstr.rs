//! Property strings (`rootfs`, `mpN`, `netN`) and sizes, printed as pve-common
//! `print_property_string` and `format_size` do (proxmox.md §4.3).

use std::collections::BTreeMap;

/// A parsed property string: the default key's value, if any, and the `k=v` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropStr {
    /// The value of the default key (`volume` for rootfs/mpN), written first without `key=`.
    pub default: Option<String>,
    /// The other properties.
    pub props: BTreeMap<String, String>,
}

impl PropStr {
    /// Parse `value`; `default_key` names the key of a bare first element.
    pub fn parse(value: &str, default_key: Option<&str>) -> Result<PropStr, String> {
        let mut out = PropStr::default();
        for part in value.split(',') {
            match part.split_once('=') {
                Some((k, v)) if Some(k) == default_key => out.default = Some(v.to_string()),
                Some((k, v)) => {
                    out.props.insert(k.to_string(), v.to_string());
                }
                None if default_key.is_some() && out.default.is_none() => {
                    out.default = Some(part.to_string())
                }
                None => return Err(format!("invalid format - missing value for key '{part}'")),
            }
        }
        Ok(out)
    }

    /// Print canonically: default value, then the `required` keys in order, then the rest
    /// sorted.
    pub fn print(&self, required: &[&str]) -> String {
        let mut parts = Vec::new();
        if let Some(d) = &self.default {
            parts.push(d.clone());
        }
        for r in required {
            if let Some(v) = self.props.get(*r) {
                parts.push(format!("{r}={v}"));
            }
        }
        for (k, v) in &self.props {
            if !required.contains(&k.as_str()) {
                parts.push(format!("{k}={v}"));
            }
        }
        parts.join(",")
    }
}

/// `format_size`: the byte count in the largest unit that divides it evenly (0 → `0T`).
pub fn format_size(bytes: u64) -> String {
    let kb = bytes / 1024;
    if kb * 1024 != bytes {
        return bytes.to_string();
    }
    let mb = kb / 1024;
    if mb * 1024 != kb {
        return format!("{kb}K");
    }
    let gb = mb / 1024;
    if gb * 1024 != mb {
        return format!("{mb}M");
    }
    let tb = gb / 1024;
    if tb * 1024 != gb {
        return format!("{gb}G");
    }
    format!("{tb}T")
}

/// `parse_size`: `N[.N][KMGT]`, bytes without a unit.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1u64 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num.parse().ok()?;
    (v >= 0.0).then_some((v * mult as f64) as u64)
}

/// A fresh MAC with the datacenter default prefix `BC:24:11`.
pub fn random_mac() -> String {
    let r = crate::sim::random_u64().to_be_bytes();
    format!("BC:24:11:{:02X}:{:02X}:{:02X}", r[0], r[1], r[2])
}

/// Canonical `netN`: `name` first, then the rest sorted, `type=veth` forced, a MAC generated
/// when missing.
pub fn canonical_net(value: &str) -> Result<String, String> {
    let mut p = PropStr::parse(value, None)?;
    if !p.props.contains_key("name") {
        return Err("property is missing and it is not optional".into());
    }
    p.props.insert("type".into(), "veth".into());
    p.props.entry("hwaddr".into()).or_insert_with(random_mac);
    Ok(p.print(&["name"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(format_size(8 << 30), "8G");
        assert_eq!(format_size(0), "0T");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size(1 << 40), "1T");
        assert_eq!(format_size(1000), "1000");
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("0.5G"), Some(512 << 20));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn rootfs_prints_volume_first_then_sorted() {
        let p =
            PropStr::parse("size=8G,local-zfs:subvol-200-disk-0,acl=1", Some("volume")).unwrap();
        assert_eq!(p.print(&[]), "local-zfs:subvol-200-disk-0,acl=1,size=8G");
        let mp = PropStr::parse(
            "volume=local-zfs:subvol-200-disk-1,size=10G,backup=1,mp=/data",
            Some("volume"),
        )
        .unwrap();
        assert_eq!(
            mp.print(&["mp"]),
            "local-zfs:subvol-200-disk-1,mp=/data,backup=1,size=10G"
        );
    }

    #[test]
    fn net_is_canonical() {
        let n = canonical_net("ip=dhcp,bridge=vmbr0,name=eth0,hwaddr=BC:24:11:5E:3A:9C").unwrap();
        assert_eq!(
            n,
            "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:5E:3A:9C,ip=dhcp,type=veth"
        );
        let g = canonical_net("name=eth0").unwrap();
        assert!(
            g.starts_with("name=eth0,hwaddr=BC:24:11:") && g.ends_with(",type=veth"),
            "{g}"
        );
        assert!(canonical_net("bridge=vmbr0").is_err());
    }
}
