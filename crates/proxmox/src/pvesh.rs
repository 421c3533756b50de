//! `pvesh get` calls (proxmox.md §7, §10.3), always with `--output-format json`.

use crate::error::Error;
use crate::parse::{self, VmStatus};
use crate::tools::{argv_of, Kind, Proxmox};
use crate::{Result, Vmid};

impl Proxmox {
    async fn pvesh_get(&self, path: &str, extra: &[&str]) -> Result<(String, String)> {
        let mut a = vec![
            "get".to_string(),
            path.to_string(),
            "--output-format".into(),
            "json".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        let out = self.run(&self.pvesh, &a, Kind::Default).await?;
        Ok((out, argv_of(&self.pvesh, &a)))
    }

    /// `pvesh get /cluster/nextid`: the lowest free VMID. Nothing is reserved: a concurrent
    /// caller may get the same id, and the loser's create fails with AlreadyExists (§7).
    pub async fn nextid(&self) -> Result<Vmid> {
        let (out, argv) = self.pvesh_get("/cluster/nextid", &[]).await?;
        parse::nextid(&out).map_err(|message| Error::Parse { argv, message })
    }

    /// `pvesh get /cluster/nextid --vmid <vmid>`: whether `vmid` is free.
    pub async fn vmid_free(&self, vmid: Vmid) -> Result<bool> {
        let id = vmid.to_string();
        match self.pvesh_get("/cluster/nextid", &["--vmid", &id]).await {
            Ok(_) => Ok(true),
            Err(Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `pvesh get /nodes/<node>/lxc/<vmid>/status/current`.
    pub async fn ct_status_current(&self, node: &str, vmid: Vmid) -> Result<VmStatus> {
        let (out, argv) = self
            .pvesh_get(&format!("/nodes/{node}/lxc/{vmid}/status/current"), &[])
            .await?;
        parse::json(&out)
            .and_then(|v| parse::vmstatus(&v))
            .map_err(|message| Error::Parse { argv, message })
    }

    /// `pvesh get /nodes/<node>/lxc`: every CT of the node.
    pub async fn ct_list_json(&self, node: &str) -> Result<Vec<VmStatus>> {
        let (out, argv) = self.pvesh_get(&format!("/nodes/{node}/lxc"), &[]).await?;
        let parse_all = || -> std::result::Result<Vec<VmStatus>, String> {
            let v = parse::json(&out)?;
            v.as_array()
                .ok_or_else(|| format!("expected an array, got {v}"))?
                .iter()
                .map(parse::vmstatus)
                .collect()
        };
        parse_all().map_err(|message| Error::Parse { argv, message })
    }
}
