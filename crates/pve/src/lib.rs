#![doc = include_str!("../README.md")]

mod background;
pub mod records;
pub mod spec;
mod sweep;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nexcage_core::backend::{Backend, Exec, Pause, StatsSource, Update};
use nexcage_core::config::{BackendSettings, ProxmoxConfig};
use nexcage_core::stats::Stats;
use nexcage_core::types::{validate_id, CreateConfig, ExecConfig, Health, Spawned};
use nexcage_core::{Error, ErrorKind, HasKind, Result};
use nexcage_lxc::procfs::Proc;
use nexcage_lxc::LxcBackend;
use nexcage_proxmox::{DestroyOpts, Proxmox, Vmid};

use crate::background::Registration;
use crate::records::{Record, Records};
use crate::spec::HostLimits;

/// Backend name.
pub const NAME: &str = "proxmox-lxc";

/// How often `pct create` is retried with the next VMID when Proxmox says the id exists.
const CREATE_ATTEMPTS: usize = 5;

/// CRI annotation: `sandbox` or `container`.
const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";

/// The proxmox-lxc backend for one containerd namespace.
#[derive(Debug)]
pub struct PveBackend {
    lxc: LxcBackend,
    pve: Proxmox,
    px: ProxmoxConfig,
    node: String,
    records: Records,
    root: PathBuf,
    namespace: String,
    host: HostLimits,
    ids: Mutex<HashMap<String, Vmid>>,
    /// Background registrations (app containers of a registered pod), until Delete.
    pending: Mutex<HashMap<String, Registration>>,
}

/// A reserved VMID and the rootfs volume name that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// The VMID.
    pub vmid: Vmid,
    /// `<pool>/subvol-<vmid>-disk-0` when `[proxmox] storage` is a zfspool storage: the name
    /// the image store's rootfs clone should have to become the CT's volume.
    pub dataset: Option<String>,
}

pub(crate) fn pve_err(e: nexcage_proxmox::Error) -> Error {
    let quorum = matches!(e, nexcage_proxmox::Error::NoQuorum { .. });
    let msg = e.to_string();
    if quorum {
        Error::unavailable(format!(
            "Proxmox cluster has no quorum, CTs cannot be created or destroyed: {msg}"
        ))
    } else {
        Error::new(e.kind(), msg)
    }
}

/// Whether `a` and `b` are the same directory (device and inode: a bind mount of a dataset's
/// root is the dataset's root).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The short host name (Proxmox's node name).
fn short_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().split('.').next().unwrap_or_default().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The pool of zfspool storage `id` in `<etc_pve>/storage.cfg`.
pub fn zfs_pool(etc_pve: &Path, id: &str) -> Option<String> {
    let text = std::fs::read_to_string(etc_pve.join("storage.cfg")).ok()?;
    let mut inside = false;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            inside = line.trim() == format!("zfspool: {id}");
        } else if inside {
            if let Some(p) = line.trim().strip_prefix("pool ") {
                return Some(p.trim().to_string());
            }
        }
    }
    None
}

impl PveBackend {
    /// A backend configured by `settings` (`binary`: the `pct` to use, `pvesh` beside it;
    /// `root`: records and locks, shared by every namespace) and its `[proxmox]` section.
    pub fn new(settings: &BackendSettings, namespace: &str) -> Self {
        let px = settings.proxmox.clone().unwrap_or_default();
        let pct = settings
            .binary
            .clone()
            .or_else(|| nexcage_lxc::health::which("pct"))
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/pct"));
        let dir = pct
            .parent()
            .map_or_else(|| PathBuf::from("/usr/sbin"), Path::to_path_buf);
        let lxc_settings = BackendSettings {
            name: nexcage_lxc::NAME.into(),
            binary: None,
            proxmox: None,
            ..settings.clone()
        };
        let records = Records::open(&settings.root).unwrap_or_else(|e| {
            tracing::warn!(error = %e.chain(), "proxmox-lxc records");
            Records::open(&std::env::temp_dir()).expect("temp dir")
        });
        PveBackend {
            // The program waits for Start inside the CT, so LXC (and with it `pct list`, `pct
            // status` and pvestatd) answers for a created, not yet started CT.
            lxc: LxcBackend::with_lxcpath(&lxc_settings, namespace, px.lxcpath())
                .hold_in_container(settings.root.clone()),
            pve: Proxmox::in_dir(dir),
            node: px.node.clone().unwrap_or_else(short_hostname),
            px,
            records,
            root: settings.root.clone(),
            namespace: namespace.to_string(),
            host: HostLimits::read(),
            ids: Mutex::default(),
            pending: Mutex::default(),
        }
    }

    /// Run the sweep in the background (at backend start-up: off every container's critical
    /// path) on a separate instance, when a tokio runtime is there to run it.
    pub fn spawn_sweep(settings: &BackendSettings, namespace: &str) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let b = PveBackend::new(settings, namespace);
        rt.spawn(async move {
            match b.sweep().await {
                Ok(gone) if !gone.is_empty() => {
                    tracing::info!(?gone, "start-up sweep destroyed CTs")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e.chain(), "start-up sweep"),
            }
        });
    }

    /// Set an environment variable for every pct/pvesh call (the simulator's root in tests).
    pub fn tool_env(mut self, key: &str, value: &str) -> Self {
        self.pve = self.pve.env(key, value);
        self
    }

    /// The Proxmox client.
    pub fn proxmox(&self) -> &Proxmox {
        &self.pve
    }

    /// The VMID of container `id` (this instance's, else from the records).
    pub fn vmid(&self, id: &str) -> Result<Vmid> {
        validate_id("container id", id)?;
        if let Some(v) = self.ids.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(*v);
        }
        let r = self.records.find(&self.namespace, id).ok_or_else(|| {
            Error::not_found(format!(
                "container {id:?} is not known to the {NAME} backend"
            ))
        })?;
        self.remember(id, r.vmid);
        Ok(r.vmid)
    }

    fn remember(&self, id: &str, vmid: Vmid) {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), vmid);
    }

    fn forget(&self, id: &str) {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    fn conf_path(&self, vmid: Vmid) -> PathBuf {
        self.px
            .etc_pve()
            .join("nodes")
            .join(&self.node)
            .join("lxc")
            .join(format!("{vmid}.conf"))
    }

    /// The dataset `<pool>/subvol-<vmid>-disk-0` of the configured zfspool storage.
    fn dataset_for(&self, vmid: Vmid) -> Option<String> {
        let storage = self.px.storage.as_deref()?;
        zfs_pool(&self.px.etc_pve(), storage).map(|p| format!("{p}/subvol-{vmid}-disk-0"))
    }

    /// Reserve a VMID for container `id` (recorded, not yet created). Create uses it; calling
    /// this first lets the rootfs be made under the CT's volume name.
    pub fn reserve(&self, id: &str, bundle: &Path) -> Result<Reserved> {
        self.reserve_skipping(id, bundle, &BTreeSet::new())
    }

    fn reserve_skipping(&self, id: &str, bundle: &Path, skip: &BTreeSet<Vmid>) -> Result<Reserved> {
        validate_id("container id", id)?;
        let r = self
            .records
            .reserve(self.px.range(), &self.px.etc_pve(), skip, |vmid| Record {
                vmid,
                namespace: self.namespace.clone(),
                id: id.to_string(),
                bundle: bundle.to_path_buf(),
                owner: Proc::of(std::process::id()),
                created: false,
                volume: None,
            })?;
        self.remember(id, r.vmid);
        tracing::info!(id, vmid = r.vmid, "VMID reserved");
        Ok(Reserved {
            vmid: r.vmid,
            dataset: self.dataset_for(r.vmid),
        })
    }

    /// Drop the reservation of container `id` when Create never registered it (a failure
    /// between [`PveBackend::reserve`] and Create).
    pub fn unreserve(&self, id: &str) {
        if let Some(r) = self.records.find(&self.namespace, id) {
            if !r.created {
                if let Err(e) = self.records.remove(r.vmid) {
                    tracing::warn!(id, vmid = r.vmid, error = %e.chain(), "drop the VMID reservation");
                }
            }
        }
        self.forget(id);
    }

    /// `rootfs: …` for the CT: the storage volume when the bundle's rootfs is that dataset (the
    /// image store's clone made under the CT's volume name, see [`PveBackend::reserve`]), else
    /// the bundle's rootfs directory as a bind path. A dataset of that name that is not the
    /// bundle's rootfs (someone else's CT took the VMID) is never claimed.
    async fn rootfs_arg(&self, vmid: Vmid, cfg: &CreateConfig) -> (String, Option<String>) {
        let root = cfg
            .spec
            .root()
            .as_ref()
            .map_or_else(|| PathBuf::from("rootfs"), |r| r.path().clone());
        let rootfs = cfg.bundle.join(root);
        if let (Some(storage), Some(ds)) = (self.px.storage.as_deref(), self.dataset_for(vmid)) {
            let out = nexcage_core::cmd::Cmd::new("zfs")
                .args(["get", "-H", "-o", "value", "mountpoint", &ds])
                .run()
                .await;
            if let Ok(o) = out {
                if same_file(Path::new(o.stdout.trim()), &rootfs) {
                    let vol = format!("{storage}:subvol-{vmid}-disk-0");
                    return (vol.clone(), Some(vol));
                }
            }
        }
        (rootfs.display().to_string(), None)
    }

    /// An empty tar archive (the template `pct create` extracts into the prepared rootfs).
    fn template(&self) -> Result<PathBuf> {
        let p = self.root.join("empty.tar");
        if std::fs::metadata(&p).is_ok_and(|m| m.len() == 10240) {
            return Ok(p);
        }
        let tmp = self.root.join(format!("empty.tar.{}", std::process::id()));
        std::fs::write(&tmp, [0u8; 10240])
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(|e| Error::io(format!("write {}", p.display()), e))?;
        Ok(p)
    }

    /// `pct create` (the one control-plane call of Create), retried with the next VMID when
    /// Proxmox already has the id (another node or tool took it meanwhile).
    async fn register(&self, cfg: &CreateConfig) -> Result<Record> {
        let template = self.template()?;
        let mut skip = BTreeSet::new();
        let mut vmid = match self.vmid(&cfg.id) {
            Ok(v) => v,
            Err(_) => self.reserve(&cfg.id, &cfg.bundle)?.vmid,
        };
        for attempt in 1..=CREATE_ATTEMPTS {
            let (rootfs, volume) = self.rootfs_arg(vmid, cfg).await;
            let p = spec::params(&cfg.spec, &cfg.id, &cfg.namespace, vmid, self.host);
            if !p.unprivileged {
                tracing::warn!(id = %cfg.id, vmid, "privileged CT: the spec has no user namespace");
            }
            let args = spec::create_args(vmid, &template.display().to_string(), &rootfs, &p);
            let started = std::time::Instant::now();
            match self.pve.create(&args).await {
                Ok(()) => {
                    tracing::info!(id = %cfg.id, vmid, rootfs, took = ?started.elapsed(), "CT registered");
                    let mut r = self.records.find(&cfg.namespace, &cfg.id).ok_or_else(|| {
                        Error::internal(format!("the record of VMID {vmid} disappeared"))
                    })?;
                    r.created = true;
                    r.volume = volume;
                    self.records.save(&r)?;
                    return Ok(r);
                }
                Err(e @ nexcage_proxmox::Error::AlreadyExists { .. })
                    if volume.is_none() && attempt < CREATE_ATTEMPTS =>
                {
                    tracing::warn!(id = %cfg.id, vmid, error = %e, "VMID taken, trying the next one");
                    skip.insert(vmid);
                    self.records.remove(vmid)?;
                    vmid = self.reserve_skipping(&cfg.id, &cfg.bundle, &skip)?.vmid;
                }
                Err(e) => {
                    self.records.remove(vmid)?;
                    self.forget(&cfg.id);
                    return Err(
                        pve_err(e).context(format!("register container {} as CT {vmid}", cfg.id))
                    );
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// A clear error when the CT of `id` was destroyed behind nexcage's back (not for a
    /// container whose background registration is pending or failed: it has no CT to check).
    fn check_ct(&self, id: &str, vmid: Vmid) -> Result<()> {
        let unregistered = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .is_some_and(|r| r.state() != background::State::Registered);
        if unregistered || self.conf_path(vmid).exists() {
            Ok(())
        } else {
            Err(Error::precondition(format!(
                "CT {vmid} of container {id:?} no longer exists in Proxmox (destroyed outside nexcage, e.g. pct destroy); delete the container"
            )))
        }
    }

    /// Destroy what `r` names: the running container, the CT, its volume, the record.
    async fn destroy(&self, r: &Record) -> Result<()> {
        let name = r.vmid.to_string();
        self.lxc.delete(&name).await?;
        if r.volume.is_some() {
            // The runtime bind-mounted the volume on the bundle; Proxmox destroys the dataset.
            let _ = nix::mount::umount2(&r.bundle.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        }
        let opts = DestroyOpts {
            force: true,
            purge: true,
        };
        match self.pve.destroy(r.vmid, opts).await {
            Ok(()) => {}
            Err(nexcage_proxmox::Error::NotFound { .. }) if r.created => {
                tracing::warn!(id = %r.id, vmid = r.vmid, "CT was already destroyed outside nexcage");
            }
            Err(nexcage_proxmox::Error::NotFound { .. }) => {}
            Err(nexcage_proxmox::Error::Locked { lock, .. })
                if lock == "destroyed" && self.wait_destroyed(r.vmid).await =>
            {
                tracing::info!(
                    vmid = r.vmid,
                    "CT was being destroyed by another process (a sweep)"
                );
            }
            Err(e) => {
                return Err(pve_err(e).context(format!(
                    "destroy CT {} of container {} (kept in the records for the sweep)",
                    r.vmid, r.id
                )))
            }
        }
        self.records.remove(r.vmid)
    }

    /// Wait (up to a minute) for another process's `pct destroy` of `vmid` to finish: its
    /// config goes when the destroy is done (§2.5: the lock `destroyed` is set first).
    async fn wait_destroyed(&self, vmid: Vmid) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.conf_path(vmid).exists() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        true
    }

    /// Remove CTs whose task is gone (see the sweep module). Returns the VMIDs destroyed.
    pub async fn sweep(&self) -> Result<Vec<Vmid>> {
        sweep::sweep(self).await
    }
}

impl Backend for PveBackend {
    fn name(&self) -> &str {
        NAME
    }

    async fn health(&self) -> Health {
        let mut h = self.lxc.health().await;
        h.binary = Some(self.pve.pct_path().display().to_string());
        if !self.pve.pct_path().is_file() {
            h.healthy = false;
            h.details
                .push(format!("pct: {} not found", self.pve.pct_path().display()));
            return h;
        }
        match self.pve.nextid().await {
            Ok(v) => h.details.push(format!("pvesh get /cluster/nextid: {v}")),
            Err(e) => {
                h.healthy = false;
                h.details.push(format!("pvesh: {e}"));
            }
        }
        if let Some(s) = &self.px.storage {
            match zfs_pool(&self.px.etc_pve(), s) {
                Some(p) => h.details.push(format!("storage {s}: zfspool {p}")),
                None => {
                    h.healthy = false;
                    h.details.push(format!(
                        "storage {s}: no zfspool storage of that name in {}/storage.cfg",
                        self.px.etc_pve().display()
                    ));
                }
            }
        }
        h
    }

    fn validate(&self, spec: &oci_spec::runtime::Spec) -> Result<()> {
        self.lxc.validate(spec)
    }

    async fn create(&self, cfg: CreateConfig) -> Result<Spawned> {
        self.lxc.validate(&cfg.spec)?;
        if let Some(sandbox) = self.registered_sandbox(&cfg) {
            return self.create_then_register(cfg, sandbox).await;
        }
        let r = self.register(&cfg).await?;
        let inner = CreateConfig {
            id: r.vmid.to_string(),
            ..cfg
        };
        match self.lxc.create(inner).await {
            Ok(s) => Ok(s),
            Err(e) => {
                if let Err(u) = self.destroy(&r).await {
                    tracing::warn!(vmid = r.vmid, error = %u.chain(), "undo the CT");
                }
                self.forget(&r.id);
                Err(e)
            }
        }
    }

    async fn start(&self, id: &str) -> Result<()> {
        let vmid = self.vmid(id)?;
        self.check_ct(id, vmid)?;
        self.lxc.start(&vmid.to_string()).await
    }

    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let vmid = self.vmid(id)?;
        match self.lxc.kill(&vmid.to_string(), signal, all).await {
            Err(e) if e.kind() != ErrorKind::NotFound => self.check_ct(id, vmid).and(Err(e)),
            r => r,
        }
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(reg) = pending {
            // Destroy what the registration made, not race it.
            let state = reg.finish().await;
            tracing::debug!(id, ?state, "background registration finished before delete");
        }
        let rec = match self.vmid(id) {
            Ok(v) => self.records.all().into_iter().find(|r| r.vmid == v),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(r) = rec {
            self.destroy(&r).await?;
        }
        self.forget(id);
        Ok(())
    }

    async fn pids(&self, id: &str) -> Result<Vec<u32>> {
        self.lxc.pids(&self.vmid(id)?.to_string()).await
    }
}

impl Exec for PveBackend {
    async fn exec(&self, mut cfg: ExecConfig) -> Result<Spawned> {
        let vmid = self.vmid(&cfg.id)?;
        self.check_ct(&cfg.id, vmid)?;
        cfg.id = vmid.to_string();
        self.lxc.exec(cfg).await
    }

    async fn kill_exec(&self, id: &str, pid: u32, signal: u32) -> Result<()> {
        self.lxc
            .kill_exec(&self.vmid(id)?.to_string(), pid, signal)
            .await
    }
}

impl Pause for PveBackend {
    async fn pause(&self, id: &str) -> Result<()> {
        self.lxc.pause(&self.vmid(id)?.to_string()).await
    }

    async fn resume(&self, id: &str) -> Result<()> {
        self.lxc.resume(&self.vmid(id)?.to_string()).await
    }
}

impl Update for PveBackend {
    async fn update(&self, id: &str, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
        self.lxc.update(&self.vmid(id)?.to_string(), r).await
    }
}

impl StatsSource for PveBackend {
    async fn stats(&self, id: &str) -> Result<Stats> {
        self.lxc.stats(&self.vmid(id)?.to_string()).await
    }
}
