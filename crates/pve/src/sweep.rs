//! The sweep (at backend start-up and `nexcage proxmox gc`): destroy every CT whose task is
//! gone.
//!
//! - a record whose owner (the shim that created it) is no longer alive: its task is gone
//!   (a shim killed with SIGKILL, a backend dropped without Delete). The running container,
//!   the CT, its volume and the record are removed;
//! - a CT of this node tagged `nexcage`, inside nexcage's VMID range, with no record at all
//!   (the state dir is a tmpfs: after a reboot no task survives either).
//!
//! Only one sweep runs at a time (`<root>/sweep.lock`, not waited for).

use std::collections::BTreeSet;

use nexcage_core::Result;
use nexcage_proxmox::Vmid;

use crate::records::Record;
use crate::PveBackend;

/// Tags of a CT config file (`tags: a;b`).
fn tags(conf: &str) -> Vec<String> {
    conf.lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| l.strip_prefix("tags:"))
        .map(|t| {
            t.split([';', ',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn sweep(b: &PveBackend) -> Result<Vec<Vmid>> {
    let Some(_held) = b.records.lock("sweep.lock", false)? else {
        tracing::debug!("another sweep runs");
        return Ok(Vec::new());
    };
    let mut gone = Vec::new();
    let records = b.records.all();
    let recorded: BTreeSet<Vmid> = records.iter().map(|r| r.vmid).collect();
    for r in records {
        if r.owner.is_some_and(|o| o.alive()) {
            continue;
        }
        tracing::info!(vmid = r.vmid, id = %r.id, namespace = %r.namespace, "sweep: the task's shim is gone");
        match b.destroy(&r).await {
            Ok(()) => gone.push(r.vmid),
            Err(e) => tracing::warn!(vmid = r.vmid, error = %e.chain(), "sweep"),
        }
    }
    let dir = b.px.etc_pve().join("nodes").join(&b.node).join("lxc");
    let (lo, hi) = b.px.range();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(vmid) = name
            .strip_suffix(".conf")
            .and_then(|v| v.parse::<Vmid>().ok())
        else {
            continue;
        };
        if !(lo..=hi).contains(&vmid) || recorded.contains(&vmid) {
            continue;
        }
        let conf = std::fs::read_to_string(e.path()).unwrap_or_default();
        if !tags(&conf).iter().any(|t| t == crate::spec::TAG) {
            continue;
        }
        tracing::info!(vmid, "sweep: CT tagged nexcage without a record");
        let r = Record {
            vmid,
            namespace: String::new(),
            id: String::new(),
            bundle: Default::default(),
            owner: None,
            created: true,
            volume: None,
        };
        match b.destroy(&r).await {
            Ok(()) => gone.push(vmid),
            Err(e) => tracing::warn!(vmid, error = %e.chain(), "sweep"),
        }
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_of_a_config() {
        let c = "arch: amd64\ntags: nexcage;ns-default\n\n[snap]\ntags: other\n";
        assert_eq!(super::tags(c), ["nexcage", "ns-default"]);
        assert!(super::tags("arch: amd64\n").is_empty());
    }
}
