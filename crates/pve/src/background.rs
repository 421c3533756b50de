//! Registration in the background: an app container of a pod whose sandbox CT is registered
//! runs at once, and its `pct create` follows off the critical path, so a pod start waits for
//! one control-plane call (the sandbox's) whatever the number of containers. The sandbox's
//! synchronous `pct create` a moment earlier is what proves the node writable (quorum); a
//! registration that still fails is logged and leaves the container running unregistered (not
//! in `pct list`), with no CT, config or record left half-made.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use nexcage_proxmox::{CreateCt, Proxmox, Vmid};

use nexcage_core::backend::Backend;
use nexcage_core::routing::CRI_SANDBOX_ID;
use nexcage_core::types::{CreateConfig, Spawned};
use nexcage_core::Result;

use crate::records::Records;
use crate::{spec, PveBackend, CRI_CONTAINER_TYPE};

const PENDING: u8 = 0;
const REGISTERED: u8 = 1;
const FAILED: u8 = 2;

/// Where a background registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// `pct create` has not returned yet.
    Pending,
    /// The CT exists and the record says so.
    Registered,
    /// `pct create` failed (logged); the container runs without a CT.
    Failed,
}

/// One background registration.
#[derive(Debug)]
pub(crate) struct Registration {
    state: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Registration {
    pub(crate) fn state(&self) -> State {
        Registration::state_of(&self.state)
    }

    /// Wait until `pct create` has returned and the record is updated.
    pub(crate) async fn finish(self) -> State {
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "background registration task");
        }
        Registration::state_of(&self.state)
    }

    fn state_of(s: &AtomicU8) -> State {
        match s.load(Ordering::SeqCst) {
            PENDING => State::Pending,
            REGISTERED => State::Registered,
            _ => State::Failed,
        }
    }
}

/// What a background registration needs (owned: it outlives the Create call).
#[derive(Debug)]
pub(crate) struct Job {
    pub pve: Proxmox,
    pub records: Records,
    pub namespace: String,
    pub id: String,
    pub vmid: Vmid,
    pub args: CreateCt,
    pub volume: Option<String>,
}

/// Start `job` on the current tokio runtime.
pub(crate) fn spawn(job: Job) -> Registration {
    let state = Arc::new(AtomicU8::new(PENDING));
    let s = state.clone();
    let task = tokio::spawn(async move {
        let done = if job.run().await { REGISTERED } else { FAILED };
        s.store(done, Ordering::SeqCst);
    });
    Registration { state, task }
}

impl Job {
    async fn run(self) -> bool {
        let started = std::time::Instant::now();
        let (id, vmid) = (self.id.as_str(), self.vmid);
        if let Err(e) = self.pve.create(&self.args).await {
            let e = crate::pve_err(e);
            tracing::error!(
                id, vmid, error = %e.chain(),
                "background registration failed: the container runs without a Proxmox CT (not in pct list or the UI)"
            );
            return false;
        }
        let Some(mut r) = self
            .records
            .find(&self.namespace, id)
            .filter(|r| r.vmid == vmid)
        else {
            tracing::error!(
                id,
                vmid,
                "the record disappeared during the background registration"
            );
            return false;
        };
        r.created = true;
        r.volume = self.volume;
        if let Err(e) = self.records.save(&r) {
            tracing::error!(id, vmid, error = %e.chain(), "record the background registration");
            return false;
        }
        tracing::info!(id, vmid, took = ?started.elapsed(), "CT registered in the background");
        true
    }
}

impl PveBackend {
    /// The sandbox of app container `cfg` when its CT is registered (by this backend, in
    /// Proxmox): then `cfg` can be registered in the background.
    pub(crate) fn registered_sandbox(&self, cfg: &CreateConfig) -> Option<Vmid> {
        let a = cfg.spec.annotations().as_ref()?;
        if a.get(CRI_CONTAINER_TYPE).map(String::as_str) != Some("container") {
            return None;
        }
        let sandbox = a.get(CRI_SANDBOX_ID)?;
        let r = self.records.find(&cfg.namespace, sandbox)?;
        (r.created && self.conf_path(r.vmid).exists()).then_some(r.vmid)
    }

    /// Create for an app container of a registered pod: the container is created at once and
    /// `pct create` runs in the background (see the background module), so Create→Start makes
    /// no control-plane call.
    pub(crate) async fn create_then_register(
        &self,
        cfg: CreateConfig,
        sandbox: Vmid,
    ) -> Result<Spawned> {
        let vmid = match self.vmid(&cfg.id) {
            Ok(v) => v,
            Err(_) => self.reserve(&cfg.id, &cfg.bundle)?.vmid,
        };
        let drop_reservation = |b: &Self| {
            if let Err(e) = b.records.remove(vmid) {
                tracing::warn!(vmid, error = %e.chain(), "drop the VMID reservation");
            }
            b.forget(&cfg.id);
        };
        let template = match self.template() {
            Ok(t) => t,
            Err(e) => {
                drop_reservation(self);
                return Err(e);
            }
        };
        let (rootfs, volume) = self.rootfs_arg(vmid, &cfg).await;
        let p = spec::params(&cfg.spec, &cfg.id, &cfg.namespace, vmid, self.host);
        if !p.unprivileged {
            tracing::warn!(id = %cfg.id, vmid, "privileged CT: the spec has no user namespace");
        }
        let args = spec::create_args(vmid, &template.display().to_string(), &rootfs, &p);
        let (id, namespace) = (cfg.id.clone(), cfg.namespace.clone());
        let inner = CreateConfig {
            id: vmid.to_string(),
            ..cfg
        };
        let spawned = match self.lxc.create(inner).await {
            Ok(s) => s,
            Err(e) => {
                if let Err(u) = self.lxc.delete(&vmid.to_string()).await {
                    tracing::warn!(vmid, error = %u.chain(), "undo the container");
                }
                drop_reservation(self);
                return Err(e);
            }
        };
        tracing::info!(
            id,
            vmid,
            sandbox,
            "created; registering the CT in the background"
        );
        let reg = spawn(Job {
            pve: self.pve.clone(),
            records: self.records.clone(),
            namespace,
            id: id.clone(),
            vmid,
            args,
            volume,
        });
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, reg);
        Ok(spawned)
    }
}
