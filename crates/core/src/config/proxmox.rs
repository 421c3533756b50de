//! `[proxmox]`: the node the `proxmox-lxc` backend registers its containers with.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default VMID range of nexcage's CTs: far above the ids `pvesh get /cluster/nextid` hands out
/// first, so guests an administrator creates and nexcage's containers do not meet.
pub const DEFAULT_VMID_RANGE: (u32, u32) = (100_000, 199_999);

/// `[proxmox]` as written in the file (every key optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxmoxConfig {
    /// A `zfspool` storage of `storage.cfg`: rootfs clones named `subvol-<vmid>-disk-0` in its
    /// pool are registered as `rootfs: <storage>:subvol-<vmid>-disk-0`. Without it (or without
    /// such a dataset) the rootfs is registered as a bind path (`rootfs: /…/rootfs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Node name (default: the short host name, as Proxmox uses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// VMIDs nexcage may use, `"LOW-HIGH"` inclusive (default `"100000-199999"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid_range: Option<String>,
    /// Where pmxcfs is mounted (default `/etc/pve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etc_pve: Option<PathBuf>,
    /// The lxcpath Proxmox uses (default `/var/lib/lxc`): CTs run there under their VMID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lxcpath: Option<PathBuf>,
}

impl ProxmoxConfig {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == ProxmoxConfig::default()
    }

    /// The VMID range (validated at parse time, so a bad value here falls back to the default).
    pub fn range(&self) -> (u32, u32) {
        self.vmid_range
            .as_deref()
            .and_then(|r| parse_range(r).ok())
            .unwrap_or(DEFAULT_VMID_RANGE)
    }

    /// `/etc/pve` or its configured replacement.
    pub fn etc_pve(&self) -> PathBuf {
        self.etc_pve
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/pve"))
    }

    /// `/var/lib/lxc` or its configured replacement.
    pub fn lxcpath(&self) -> PathBuf {
        self.lxcpath
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/lxc"))
    }

    pub(super) fn validate(&self, origin: &str) -> Result<()> {
        let bad = |key: &str, v: &dyn std::fmt::Debug, why: &str| {
            Error::invalid(format!("config {origin}: proxmox.{key} = {v:?}: {why}"))
        };
        if let Some(r) = &self.vmid_range {
            parse_range(r).map_err(|why| bad("vmid_range", r, &why))?;
        }
        for (key, p) in [("etc_pve", &self.etc_pve), ("lxcpath", &self.lxcpath)] {
            if let Some(p) = p {
                if !p.is_absolute() {
                    return Err(bad(key, p, "must be an absolute path"));
                }
            }
        }
        if let Some(s) = &self.storage {
            if s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(bad("storage", s, "not a storage id"));
            }
        }
        Ok(())
    }
}

/// `"LOW-HIGH"`, both valid VMIDs (100..=999999999), LOW ≤ HIGH.
pub fn parse_range(s: &str) -> std::result::Result<(u32, u32), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| "expected LOW-HIGH, e.g. \"100000-199999\"".to_string())?;
    let num = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (100..=999_999_999).contains(n))
            .ok_or_else(|| format!("{v:?} is not a VMID (100..999999999)"))
    };
    let (lo, hi) = (num(lo)?, num(hi)?);
    if lo > hi {
        return Err("LOW is above HIGH".into());
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("200-300"), Ok((200, 300)));
        assert!(parse_range("99-300").unwrap_err().contains("\"99\""));
        assert!(parse_range("300-200").is_err());
        assert!(parse_range("300").is_err());
        assert_eq!(ProxmoxConfig::default().range(), DEFAULT_VMID_RANGE);
    }
}
