//! The `qm` calls a VM backend needs (proxmox.md §8.2–8.3).

use crate::error::Error;
use crate::parse::{self, CtConfig, GuestExec, VmState};
use crate::tools::{argv_of, shutdown_args, Kind, Proxmox};
use crate::{Result, Vmid};

impl Proxmox {
    async fn qm(&self, args: Vec<String>, kind: Kind) -> Result<(String, String)> {
        let out = self.run(&self.qm, &args, kind).await?;
        Ok((out, argv_of(&self.qm, &args)))
    }

    /// `qm start <vmid>` (`VM <vmid> already running` is WrongState).
    pub async fn qm_start(&self, vmid: Vmid) -> Result<()> {
        self.qm(vec!["start".into(), vmid.to_string()], Kind::Task)
            .await
            .map(drop)
    }

    /// `qm stop <vmid>` (a stopped VM is a no-op).
    pub async fn qm_stop(&self, vmid: Vmid) -> Result<()> {
        self.qm(vec!["stop".into(), vmid.to_string()], Kind::Task)
            .await
            .map(drop)
    }

    /// `qm shutdown <vmid> --timeout <secs> [--forceStop 1]`.
    pub async fn qm_shutdown(&self, vmid: Vmid, timeout_secs: u32, force: bool) -> Result<()> {
        let a = shutdown_args(vmid, timeout_secs, force);
        let me = self
            .with_timeout(self.timeouts.task + std::time::Duration::from_secs(timeout_secs.into()));
        me.qm(a, Kind::Task).await.map(drop)
    }

    /// `qm status <vmid>`.
    pub async fn qm_status(&self, vmid: Vmid) -> Result<VmState> {
        let (out, argv) = self
            .qm(vec!["status".into(), vmid.to_string()], Kind::Default)
            .await?;
        parse::vm_status(&out).map_err(|message| Error::Parse { argv, message })
    }

    /// `qm destroy <vmid> [--purge]` (no `--force`: a running VM is WrongState).
    pub async fn qm_destroy(&self, vmid: Vmid, purge: bool) -> Result<()> {
        let mut a = vec!["destroy".into(), vmid.to_string()];
        if purge {
            a.push("--purge".into());
        }
        self.qm(a, Kind::Task).await.map(drop)
    }

    /// `qm config <vmid> [--current]`.
    pub async fn qm_config(&self, vmid: Vmid, current: bool) -> Result<CtConfig> {
        let mut a = vec!["config".into(), vmid.to_string()];
        if current {
            a.push("--current".into());
        }
        let (out, argv) = self.qm(a, Kind::Default).await?;
        parse::config(&out).map_err(|message| Error::Parse { argv, message })
    }

    /// `qm guest exec <vmid> --timeout <secs> -- cmd…`: qm exits 0 whatever the command did;
    /// the command's status is in [`GuestExec::exitcode`].
    pub async fn qm_guest_exec(
        &self,
        vmid: Vmid,
        cmd: &[&str],
        timeout_secs: u32,
    ) -> Result<GuestExec> {
        let mut a = vec![
            "guest".into(),
            "exec".into(),
            vmid.to_string(),
            "--timeout".into(),
            timeout_secs.to_string(),
            "--".into(),
        ];
        a.extend(cmd.iter().map(|s| s.to_string()));
        let me = self.with_timeout(
            self.timeouts.default + std::time::Duration::from_secs(timeout_secs.into()),
        );
        let (out, argv) = me.qm(a, Kind::Default).await?;
        parse::guest_exec(&out).map_err(|message| Error::Parse { argv, message })
    }
}
