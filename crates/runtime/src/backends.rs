//! Enum dispatch over the backends this build has, their construction from config, health
//! checks (cached) and the per-container choice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use nexcage_core::backend::{Backend, Exec, Pause, StatsSource, Update};
use nexcage_core::config::{BackendSettings, Config};
use nexcage_core::routing::{self, Choice, Subject};
use nexcage_core::stats::Stats;
use nexcage_core::types::{CreateConfig, ExecConfig, Health, Spawned};
use nexcage_core::{Error, Result};
use nexcage_lxc::LxcBackend;
use nexcage_oci::{Flavor, OciBackend};
use nexcage_pve::PveBackend;
use serde::{Deserialize, Serialize};

/// Every backend of this build.
#[derive(Debug)]
pub enum AnyBackend {
    /// crun or runc.
    Oci(OciBackend),
    /// LXC (lxc-execute supervised by the shim).
    Lxc(LxcBackend),
    /// A Proxmox VE CT per container, run by the shim through LXC.
    Pve(Box<PveBackend>),
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            AnyBackend::Oci($b) => $e,
            AnyBackend::Lxc($b) => $e,
            AnyBackend::Pve($b) => $e,
        }
    };
}

impl AnyBackend {
    /// For `proxmox-lxc` with a zfspool storage configured: reserve container `id`'s VMID now
    /// and return its CT volume's dataset (`<pool>/subvol-<vmid>-disk-0`), so the image store's
    /// clone is made under that name and registered as the CT's volume. None for other backends.
    pub fn reserve_volume(&self, id: &str, bundle: &std::path::Path) -> Result<Option<String>> {
        match self {
            AnyBackend::Pve(b) => Ok(b.reserve(id, bundle)?.dataset),
            _ => Ok(None),
        }
    }

    /// Drop a reservation of [`AnyBackend::reserve_volume`] that Create never used.
    pub fn unreserve(&self, id: &str) {
        if let AnyBackend::Pve(b) = self {
            b.unreserve(id);
        }
    }

    /// Build backend `name` from its settings for `namespace`.
    pub fn build(settings: &BackendSettings, namespace: &str) -> Result<AnyBackend> {
        match settings.name.as_str() {
            "crun" => Ok(AnyBackend::Oci(OciBackend::new(
                Flavor::Crun,
                settings,
                namespace,
            ))),
            "runc" => Ok(AnyBackend::Oci(OciBackend::new(
                Flavor::Runc,
                settings,
                namespace,
            ))),
            nexcage_lxc::NAME => Ok(AnyBackend::Lxc(LxcBackend::new(settings, namespace))),
            nexcage_pve::NAME => Ok(AnyBackend::Pve(Box::new(PveBackend::new(
                settings, namespace,
            )))),
            other => Err(Error::invalid(format!("unknown backend {other:?}"))),
        }
    }

    /// Backend name.
    pub fn name(&self) -> &str {
        dispatch!(self, b => b.name())
    }

    /// Health check (uncached).
    pub async fn health(&self) -> Health {
        dispatch!(self, b => b.health().await)
    }

    /// See [`Backend::validate`].
    pub fn validate(&self, spec: &oci_spec::runtime::Spec) -> Result<()> {
        dispatch!(self, b => b.validate(spec))
    }

    /// See [`Backend::create`].
    pub async fn create(&self, cfg: CreateConfig) -> Result<Spawned> {
        dispatch!(self, b => b.create(cfg).await)
    }

    /// See [`Backend::start`].
    pub async fn start(&self, id: &str) -> Result<()> {
        dispatch!(self, b => b.start(id).await)
    }

    /// See [`Backend::kill`].
    pub async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        dispatch!(self, b => b.kill(id, signal, all).await)
    }

    /// See [`Backend::delete`].
    pub async fn delete(&self, id: &str) -> Result<()> {
        dispatch!(self, b => b.delete(id).await)
    }

    /// See [`Backend::pids`].
    pub async fn pids(&self, id: &str) -> Result<Vec<u32>> {
        dispatch!(self, b => b.pids(id).await)
    }

    /// See [`Exec::exec`]; Unimplemented for backends without exec.
    pub async fn exec(&self, cfg: ExecConfig) -> Result<Spawned> {
        dispatch!(self, b => b.exec(cfg).await)
    }

    /// See [`Exec::kill_exec`].
    pub async fn kill_exec(&self, id: &str, pid: u32, signal: u32) -> Result<()> {
        dispatch!(self, b => b.kill_exec(id, pid, signal).await)
    }

    /// See [`Pause::pause`].
    pub async fn pause(&self, id: &str) -> Result<()> {
        dispatch!(self, b => b.pause(id).await)
    }

    /// See [`Pause::resume`].
    pub async fn resume(&self, id: &str) -> Result<()> {
        dispatch!(self, b => b.resume(id).await)
    }

    /// See [`Update::update`].
    pub async fn update(&self, id: &str, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
        dispatch!(self, b => b.update(id, r).await)
    }

    /// See [`StatsSource::stats`].
    pub async fn stats(&self, id: &str) -> Result<Stats> {
        dispatch!(self, b => b.stats(id).await)
    }

    /// Checkpointing is not available in any backend yet.
    pub async fn checkpoint(&self, _id: &str) -> Result<()> {
        Err(Error::unimplemented(format!(
            "checkpoint is not supported by the {} backend yet: nexcage's checkpoint service (ZFS and CRIU) has not landed",
            self.name()
        )))
    }
}

/// What a Create recorded in the bundle so that `shim delete` can clean up without the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendRecord {
    /// Backend name.
    pub backend: String,
    /// Binary path.
    pub binary: Option<PathBuf>,
    /// Backend root (before the namespace component).
    pub root: PathBuf,
    /// `[proxmox]` of the config (proxmox-lxc only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox: Option<nexcage_core::config::ProxmoxConfig>,
}

/// File in the bundle holding the [`BackendRecord`].
pub const RECORD_FILE: &str = "nexcage-backend.json";

impl BackendRecord {
    /// Write to `<bundle>/nexcage-backend.json`.
    pub fn save(&self, bundle: &Path) -> Result<()> {
        let p = bundle.join(RECORD_FILE);
        let json = serde_json::to_vec(self).map_err(|e| Error::internal(e.to_string()))?;
        std::fs::write(&p, json).map_err(|e| Error::io(format!("write {}", p.display()), e))
    }

    /// Read from a bundle; None when the file does not exist.
    pub fn load(bundle: &Path) -> Result<Option<BackendRecord>> {
        let p = bundle.join(RECORD_FILE);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::internal(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("read {}", p.display()), e)),
        }
    }

    /// The settings to rebuild the backend with.
    pub fn settings(&self) -> BackendSettings {
        BackendSettings {
            name: self.backend.clone(),
            enabled: true,
            priority: 0,
            binary: self.binary.clone(),
            root: self.root.clone(),
            timeout: Duration::from_secs(30),
            proxmox: self.proxmox.clone(),
        }
    }
}

const HEALTH_TTL: Duration = Duration::from_secs(300);

/// Backend instances of one shim, shared by its containers, and cached health.
#[derive(Debug, Default)]
pub struct Registry {
    instances: Mutex<HashMap<BackendSettings, Arc<AnyBackend>>>,
}

/// The chosen backend and why.
#[derive(Debug)]
pub struct Chosen {
    /// The backend instance.
    pub backend: Arc<AnyBackend>,
    /// Its settings.
    pub settings: BackendSettings,
    /// Why it was chosen.
    pub why: String,
}

impl Registry {
    /// The instance for `settings` (one per distinct settings).
    pub fn instance(&self, settings: &BackendSettings, namespace: &str) -> Result<Arc<AnyBackend>> {
        let mut m = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = m.get(settings) {
            return Ok(b.clone());
        }
        let b = Arc::new(AnyBackend::build(settings, namespace)?);
        if let AnyBackend::Pve(_) = *b {
            // The start-up sweep, in the serving shim only: not in `shim delete`, where it would
            // race the delete for the same dead shim's CT, nor in health probes.
            PveBackend::spawn_sweep(settings, namespace);
        }
        m.insert(settings.clone(), b.clone());
        Ok(b)
    }

    /// Choose a backend for `subject`: explicit rules first, else the first healthy backend in
    /// priority order.
    pub async fn choose(
        &self,
        config: &Config,
        subject: &Subject<'_>,
        namespace: &str,
    ) -> Result<Chosen> {
        match routing::choose(config, subject)? {
            Choice::Explicit { backend, why } => {
                let settings = config.backend(&backend);
                Ok(Chosen {
                    backend: self.instance(&settings, namespace)?,
                    settings,
                    why,
                })
            }
            Choice::ByPriority(names) => {
                let mut reasons = Vec::new();
                for name in names {
                    let settings = config.backend(&name);
                    let b = self.instance(&settings, namespace)?;
                    let h = cached_health(&b, &config.state_dir()).await;
                    if h.healthy {
                        return Ok(Chosen {
                            backend: b,
                            settings,
                            why: format!("first healthy backend by priority ({name})"),
                        });
                    }
                    reasons.push(format!("{name}: {}", h.details.join("; ")));
                }
                Err(Error::unavailable(format!(
                    "no healthy backend: {}",
                    reasons.join(" | ")
                )))
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct HealthCache {
    binary_mtime: Option<u64>,
    #[serde(default)]
    cgroup: String,
    checked: u64,
    healthy: bool,
    details: Vec<String>,
    version: Option<String>,
    binary: Option<String>,
    #[serde(default)]
    max_spec_version: Option<String>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What the host's cgroup layout looks like, as far as runtimes care: the controllers the cgroup2
/// hierarchy holds (on a hybrid host, crun 1.8 fails while it holds any).
fn cgroup_fingerprint() -> String {
    [
        "/sys/fs/cgroup/unified/cgroup.controllers",
        "/sys/fs/cgroup/cgroup.controllers",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .unwrap_or_default()
    .trim()
    .to_string()
}

/// Health of `b`, from `<state_dir>/health/<name>.json` when younger than five minutes and
/// neither the binary nor the cgroup layout has changed since, else checked now and recorded. Shims start per pod, so the
/// real probe (a container create) runs at most once per five minutes per backend.
pub async fn cached_health(b: &AnyBackend, state_dir: &Path) -> Health {
    let file = state_dir.join("health").join(format!("{}.json", b.name()));
    let now = secs(SystemTime::now());
    let mtime_of = |bin: &Option<String>| {
        bin.as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok())
            .map(secs)
    };
    if let Some(c) = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice::<HealthCache>(&b).ok())
    {
        if now.saturating_sub(c.checked) < HEALTH_TTL.as_secs()
            && c.binary_mtime == mtime_of(&c.binary)
        {
            return Health {
                healthy: c.healthy,
                version: c.version,
                binary: c.binary,
                details: c.details,
                max_spec_version: c.max_spec_version,
            };
        }
    }
    let h = b.health().await;
    let c = HealthCache {
        binary_mtime: mtime_of(&h.binary),
        cgroup: cgroup_fingerprint(),
        checked: now,
        healthy: h.healthy,
        details: h.details.clone(),
        version: h.version.clone(),
        binary: h.binary.clone(),
        max_spec_version: h.max_spec_version.clone(),
    };
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(json) = serde_json::to_vec(&c) {
        let tmp = file.with_extension("tmp");
        if std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
    }
    h
}
