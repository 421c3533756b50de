#![doc = include_str!("../README.md")]

pub mod error;
pub mod name;
pub mod opts;

mod dataset;
mod props;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use nexcage_core::cmd::Cmd;

pub use error::{classify, Error, Result};
pub use opts::{
    CloneOpts, CreateOpts, Dataset, DatasetType, Depth, DestroyOpts, ListOpts, Pool, Properties,
    Property, RollbackOpts, Source,
};

/// Default timeout of one call. PVE uses 10 s interactively and 5 min in workers; destroying a
/// large dataset or rolling back can take a while, so nexcage sits in between.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a `dataset is busy` destroy, rename or unmount is retried (PVE: 6 tries).
pub const DEFAULT_BUSY_RETRIES: u32 = 5;

const PROBE_UNKNOWN: u8 = 0;
const PROBE_YES: u8 = 1;
const PROBE_NO: u8 = 2;

/// A client for `zfs` and `zpool`.
#[derive(Debug)]
pub struct Zfs {
    zfs: PathBuf,
    zpool: PathBuf,
    timeout: Duration,
    busy_retries: u32,
    busy_delay: Duration,
    /// Whether `zfs list -p` works (zfs-fuse 0.7 lacks it); probed on first use.
    list_parsable: AtomicU8,
}

impl Clone for Zfs {
    fn clone(&self) -> Self {
        Zfs {
            zfs: self.zfs.clone(),
            zpool: self.zpool.clone(),
            timeout: self.timeout,
            busy_retries: self.busy_retries,
            busy_delay: self.busy_delay,
            list_parsable: AtomicU8::new(self.list_parsable.load(Ordering::Relaxed)),
        }
    }
}

impl Default for Zfs {
    fn default() -> Self {
        Zfs::new()
    }
}

impl Zfs {
    /// `zfs` and `zpool` from `PATH`, [`DEFAULT_TIMEOUT`], [`DEFAULT_BUSY_RETRIES`].
    pub fn new() -> Self {
        Zfs {
            zfs: PathBuf::from("zfs"),
            zpool: PathBuf::from("zpool"),
            timeout: DEFAULT_TIMEOUT,
            busy_retries: DEFAULT_BUSY_RETRIES,
            busy_delay: Duration::from_millis(200),
            list_parsable: AtomicU8::new(PROBE_UNKNOWN),
        }
    }

    /// Use these binaries (a fake in tests, or a fixed path).
    pub fn with_programs(mut self, zfs: impl AsRef<Path>, zpool: impl AsRef<Path>) -> Self {
        self.zfs = zfs.as_ref().to_path_buf();
        self.zpool = zpool.as_ref().to_path_buf();
        self
    }

    /// Timeout of each call.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Retries of a busy destroy, and the first delay (doubled each time).
    pub fn busy_retries(mut self, retries: u32, first_delay: Duration) -> Self {
        self.busy_retries = retries;
        self.busy_delay = first_delay;
        self
    }

    /// Run `zfs args…`; stdout on success.
    async fn zfs(&self, op: &'static str, target: &str, args: &[&str]) -> Result<String> {
        self.run(&self.zfs, op, target, args).await
    }

    async fn run(
        &self,
        prog: &Path,
        op: &'static str,
        target: &str,
        args: &[&str],
    ) -> Result<String> {
        let cmd = Cmd::new(prog).args(args).timeout(self.timeout);
        tracing::debug!(argv = %cmd.argv(), "zfs call");
        match cmd.run().await {
            Ok(out) => Ok(out.stdout),
            Err(e) => Err(Error::from_cmd(op, target, e)),
        }
    }

    /// Run a call again while it fails with `dataset is busy`, with a doubling delay.
    async fn retry_busy(&self, op: &'static str, target: &str, args: &[&str]) -> Result<String> {
        let mut delay = self.busy_delay;
        let mut tries = 0;
        loop {
            match self.zfs(op, target, args).await {
                Err(e) if e.is_busy() && tries < self.busy_retries => {
                    tracing::debug!(dataset = target, tries, "busy, retrying");
                    tries += 1;
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                r => return r,
            }
        }
    }

    /// `zpool list -H -o name,health [pool…]` (zfs-fuse's zpool has no `-p`, so no sizes here:
    /// read `zfs get -p available,used <pool>` for space).
    pub async fn pools(&self, names: &[&str]) -> Result<Vec<Pool>> {
        for n in names {
            name::check_pool(n)?;
        }
        let mut args = vec!["list", opts::SCRIPTED, opts::OPT, "name,health"];
        args.extend_from_slice(names);
        let target = names.join(" ");
        let out = self.run(&self.zpool, "zpool list", &target, &args).await?;
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, health) = l
                    .split_once('\t')
                    .ok_or_else(|| Error::parse("zpool list", format!("bad line {l:?}")))?;
                Ok(Pool {
                    name: name.to_string(),
                    health: health.to_string(),
                })
            })
            .collect()
    }

    /// The health of one pool; NotFound when there is no such pool.
    pub async fn pool(&self, name: &str) -> Result<Pool> {
        let mut v = self.pools(&[name]).await?;
        v.pop()
            .ok_or_else(|| Error::parse("zpool list", format!("no row for {name}")))
    }
}
