//! `pct` calls (proxmox.md §2).

use crate::create::CreateCt;
use crate::error::{classify, Error};
use crate::parse::{self, CtConfig, CtListEntry, CtState};
use crate::tools::{argv_of, shutdown_args, Kind, Proxmox};
use crate::{Result, Vmid};

/// `pct destroy` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestroyOpts {
    /// `--force`: hard-stop a running CT first.
    pub force: bool,
    /// `--purge`: also remove it from backup, replication and HA jobs.
    pub purge: bool,
}

/// What `pct exec` returned: the command's own exit status and output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit status (128 + signal when killed).
    pub status: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

fn parsed<T>(argv: impl FnOnce() -> String, r: std::result::Result<T, String>) -> Result<T> {
    r.map_err(|message| Error::Parse {
        argv: argv(),
        message,
    })
}

impl Proxmox {
    async fn pct(&self, args: Vec<String>, kind: Kind) -> Result<String> {
        self.run(&self.pct, &args, kind).await
    }

    /// `pct create …` (see [`CreateCt`]).
    pub async fn create(&self, c: &CreateCt) -> Result<()> {
        self.pct(c.argv(), Kind::Create).await.map(drop)
    }

    /// `pct start <vmid>`.
    pub async fn start(&self, vmid: Vmid) -> Result<()> {
        self.pct(vec!["start".into(), vmid.to_string()], Kind::Task)
            .await
            .map(drop)
    }

    /// `pct stop <vmid>` (hard stop; `CT <vmid> not running` when stopped).
    pub async fn stop(&self, vmid: Vmid) -> Result<()> {
        self.pct(vec!["stop".into(), vmid.to_string()], Kind::Task)
            .await
            .map(drop)
    }

    /// `pct shutdown <vmid> --timeout <secs> [--forceStop 1]`.
    pub async fn shutdown(&self, vmid: Vmid, timeout_secs: u32, force: bool) -> Result<()> {
        let a = shutdown_args(vmid, timeout_secs, force);
        let me = self
            .with_timeout(self.timeouts.task + std::time::Duration::from_secs(timeout_secs.into()));
        me.pct(a, Kind::Task).await.map(drop)
    }

    /// `pct destroy <vmid> [--force] [--purge]`.
    pub async fn destroy(&self, vmid: Vmid, o: DestroyOpts) -> Result<()> {
        let mut a = vec!["destroy".into(), vmid.to_string()];
        if o.force {
            a.push("--force".into());
        }
        if o.purge {
            a.push("--purge".into());
        }
        self.pct(a, Kind::Task).await.map(drop)
    }

    /// `pct status <vmid>`.
    pub async fn status(&self, vmid: Vmid) -> Result<CtState> {
        let a = vec!["status".to_string(), vmid.to_string()];
        let out = self.pct(a.clone(), Kind::Default).await?;
        parsed(|| argv_of(&self.pct, &a), parse::ct_status(&out))
    }

    /// `pct list`.
    pub async fn list(&self) -> Result<Vec<CtListEntry>> {
        let a = vec!["list".to_string()];
        let out = self.pct(a.clone(), Kind::Default).await?;
        parsed(|| argv_of(&self.pct, &a), parse::ct_list(&out))
    }

    /// `pct config <vmid> [--current]`.
    pub async fn config(&self, vmid: Vmid, current: bool) -> Result<CtConfig> {
        let mut a = vec!["config".to_string(), vmid.to_string()];
        if current {
            a.push("--current".into());
        }
        let out = self.pct(a.clone(), Kind::Default).await?;
        parsed(|| argv_of(&self.pct, &a), parse::config(&out))
    }

    /// `pct set <vmid> --k v … [--delete k1,k2]`.
    pub async fn set(&self, vmid: Vmid, values: &[(&str, &str)], delete: &[&str]) -> Result<()> {
        let mut a = vec!["set".to_string(), vmid.to_string()];
        for (k, v) in values {
            a.push(format!("--{k}"));
            a.push((*v).to_string());
        }
        if !delete.is_empty() {
            a.push("--delete".into());
            a.push(delete.join(","));
        }
        self.pct(a, Kind::Default).await.map(drop)
    }

    /// `pct unlock <vmid>`.
    pub async fn unlock(&self, vmid: Vmid) -> Result<()> {
        self.pct(vec!["unlock".into(), vmid.to_string()], Kind::Default)
            .await
            .map(drop)
    }

    /// `pct exec <vmid> --keep-env 0|1 -- cmd…`: the command's status is returned, not
    /// classified; pct's own refusals (config missing, not running) are errors.
    pub async fn exec(&self, vmid: Vmid, cmd: &[&str], keep_env: bool) -> Result<ExecOutput> {
        let mut a = vec![
            "exec".to_string(),
            vmid.to_string(),
            "--keep-env".into(),
            if keep_env { "1" } else { "0" }.into(),
            "--".into(),
        ];
        a.extend(cmd.iter().map(|s| s.to_string()));
        let out = self.run_any(&self.pct, &a, Kind::Default).await?;
        if out.status == 255 {
            let e = classify(
                &argv_of(&self.pct, &a),
                out.status,
                &out.stdout,
                &out.stderr,
            );
            if !matches!(e, Error::Other { .. }) {
                return Err(e);
            }
        }
        Ok(ExecOutput {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}
