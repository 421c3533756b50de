//! The task manager: every verb of the Task API, in domain terms. The shim translates protobuf to
//! these calls and back; everything here is testable without ttrpc.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use nexcage_core::config::{BackendSettings, Config, RootfsSource};
use nexcage_core::reaper::ExitStatus;
use nexcage_core::routing::{Subject, CRI_SANDBOX_ID};
use nexcage_core::state::{Status, Verb};
use nexcage_core::stats::Stats;
use nexcage_core::types::{validate_id, CreateConfig, ExecConfig};
use nexcage_core::{Error, Result};
use tokio::task::JoinHandle;

use crate::backends::{AnyBackend, BackendRecord, Chosen, Registry};
use crate::events::{Event, EventSender};
use crate::io::StdioSpec;
use crate::mount::{self, Mount};
use crate::pod::{has_own_pid_namespace, kill_leftovers_on_exit, pod_backend_check};
use crate::process::{Process, ProcessInfo};
use crate::rootfs::{self, ContainerdEndpoint, Mounted};

/// A Create request in domain terms.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Rootfs mounts to put on `<bundle>/rootfs`.
    pub rootfs: Vec<Mount>,
    /// Stdio.
    pub stdio: StdioSpec,
    /// Config file named by the runtime options, if any.
    pub config_path: Option<PathBuf>,
}

#[derive(Debug)]
struct Container {
    bundle: PathBuf,
    backend: Arc<AnyBackend>,
    settings: BackendSettings,
    init: Arc<Process>,
    execs: RwLock<HashMap<String, Arc<Process>>>,
    mounted: Mounted,
    oom: Option<JoinHandle<()>>,
}

/// All containers served by one shim.
#[derive(Debug)]
pub struct TaskManager {
    namespace: String,
    containerd: ContainerdEndpoint,
    registry: Registry,
    containers: RwLock<HashMap<String, Arc<Container>>>,
    events: EventSender,
}

fn read_spec(bundle: &Path) -> Result<oci_spec::runtime::Spec> {
    let p = bundle.join("config.json");
    let text =
        std::fs::read_to_string(&p).map_err(|e| Error::io(format!("read {}", p.display()), e))?;
    serde_json::from_str(&text).map_err(|e| Error::invalid(format!("{}: {e}", p.display())))
}

impl TaskManager {
    /// A manager for `namespace`, sending events on `events`.
    pub fn new(namespace: &str, events: EventSender) -> Self {
        TaskManager {
            namespace: namespace.to_string(),
            containerd: ContainerdEndpoint {
                address: String::new(),
                namespace: namespace.to_string(),
            },
            registry: Registry::default(),
            containers: RwLock::new(HashMap::new()),
            events,
        }
    }

    /// Tell the manager containerd's gRPC address (the shim's `-address`), which
    /// `[rootfs] source = "image-store"` needs to find and read images.
    pub fn with_containerd_address(mut self, address: &str) -> Self {
        self.containerd.address = address.to_string();
        self
    }

    /// For a CRI app container, its pod's sandbox container when this shim serves it.
    fn pod_sandbox_of(&self, id: &str, subject: &Subject<'_>) -> Option<(String, Arc<Container>)> {
        let sandbox_id = subject.annotations?.get(CRI_SANDBOX_ID)?;
        if sandbox_id == id {
            return None;
        }
        let sb = self.container(sandbox_id).ok()?;
        Some((sandbox_id.clone(), sb))
    }

    fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("container {id:?} does not exist")))
    }

    fn process(&self, id: &str, exec_id: &str) -> Result<(Arc<Container>, Arc<Process>)> {
        let c = self.container(id)?;
        if exec_id.is_empty() {
            let p = c.init.clone();
            return Ok((c, p));
        }
        let p = c
            .execs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(exec_id)
            .cloned()
            .ok_or_else(|| {
                Error::not_found(format!(
                    "exec {exec_id:?} does not exist in container {id:?}"
                ))
            })?;
        Ok((c, p))
    }

    fn send(&self, e: Event) {
        let _ = self.events.send(e);
    }

    /// Number of containers still held.
    pub fn len(&self) -> usize {
        self.containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether no container is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Create a container; returns the init's host pid.
    pub async fn create(&self, req: CreateRequest) -> Result<u32> {
        validate_id("container id", &req.id)?;
        if self
            .containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&req.id)
        {
            return Err(Error::already_exists(format!(
                "container {:?} already exists",
                req.id
            )));
        }
        let spec = read_spec(&req.bundle)?;
        let (config, origin) = Config::resolve(req.config_path.as_deref())?;
        let subject = Subject {
            id: &req.id,
            annotations: spec.annotations().as_ref(),
        };
        let chosen = match self.pod_sandbox_of(&req.id, &subject) {
            Some((sandbox_id, sb)) => {
                pod_backend_check(&req.id, &subject, &sandbox_id, sb.backend.name())?;
                Chosen {
                    backend: sb.backend.clone(),
                    settings: sb.settings.clone(),
                    why: format!("pod sandbox {sandbox_id} runs on {}", sb.backend.name()),
                }
            }
            None => {
                self.registry
                    .choose(&config, &subject, &self.namespace)
                    .await?
            }
        };
        tracing::info!(id = %req.id, backend = chosen.backend.name(), why = %chosen.why, config = %origin, "backend chosen");
        chosen.backend.validate(&spec)?;
        let own_pid_namespace = has_own_pid_namespace(&spec);
        let volume = if config.rootfs_source() == RootfsSource::ImageStore
            && config.rootfs_dataset().is_some()
        {
            chosen.backend.reserve_volume(&req.id, &req.bundle)?
        } else {
            None
        };
        let mounted = match self
            .mount_rootfs(&req, &config, &spec, volume.as_deref())
            .await
        {
            Ok(m) => m,
            Err(e) => {
                chosen.backend.unreserve(&req.id);
                return Err(e);
            }
        };
        let undo_mount = || rootfs::undo(&req.bundle, mounted);
        let record = BackendRecord {
            backend: chosen.settings.name.clone(),
            binary: chosen.settings.binary.clone(),
            root: chosen.settings.root.clone(),
            proxmox: chosen.settings.proxmox.clone(),
        };
        if let Err(e) = record.save(&req.bundle) {
            warn_undo(&req.id, undo_mount().await);
            return Err(e);
        }
        let mut io = match req.stdio.prepare(&req.id, &self.namespace).await {
            Ok(io) => io,
            Err(e) => {
                warn_undo(&req.id, undo_mount().await);
                return Err(e);
            }
        };
        let cfg = CreateConfig {
            id: req.id.clone(),
            namespace: self.namespace.clone(),
            bundle: req.bundle.clone(),
            spec,
            io: io.take_child(),
        };
        let spawned = match chosen.backend.create(cfg).await {
            Ok(s) => s,
            Err(e) => {
                warn_undo(&req.id, undo_mount().await);
                return Err(e.context(format!("create {} on {}", req.id, chosen.backend.name())));
            }
        };
        let handle = match io.attach().await {
            Ok(h) => h,
            Err(e) => {
                let _ = chosen.backend.delete(&req.id).await;
                warn_undo(&req.id, undo_mount().await);
                return Err(e);
            }
        };
        let init = Arc::new(Process::new(&req.id, "", req.stdio.clone(), None));
        {
            let mut s = init.lock().await;
            s.pid = spawned.pid;
            s.io = Some(handle);
        }
        init.watch_exit(spawned.exit, self.events.clone());
        if !own_pid_namespace {
            kill_leftovers_on_exit(&req.id, &init, &chosen.backend);
        }
        let oom = self.watch_oom(&req.id, spawned.pid);
        let c = Arc::new(Container {
            bundle: req.bundle.clone(),
            backend: chosen.backend,
            settings: chosen.settings,
            init,
            execs: RwLock::new(HashMap::new()),
            mounted,
            oom,
        });
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(req.id.clone(), c);
        self.send(Event::Create {
            id: req.id,
            bundle: req.bundle,
            rootfs: req.rootfs,
            stdio: req.stdio,
            pid: spawned.pid,
        });
        Ok(spawned.pid)
    }

    /// Put the container's root file system on `<bundle>/rootfs`: from the image store
    /// (`[rootfs] source = "image-store"`, containerd's mounts ignored), else containerd's
    /// mounts, else the bundle's own directory must exist.
    async fn mount_rootfs(
        &self,
        req: &CreateRequest,
        config: &Config,
        spec: &oci_spec::runtime::Spec,
        volume: Option<&str>,
    ) -> Result<Mounted> {
        if config.rootfs_source() == RootfsSource::ImageStore {
            if !req.rootfs.is_empty() {
                tracing::debug!(id = %req.id, "rootfs from the image store: containerd's mounts are not used");
            }
            let p = rootfs::Prepare {
                config,
                config_path: req.config_path.as_deref(),
                containerd: &self.containerd,
                id: &req.id,
                bundle: &req.bundle,
                annotations: spec.annotations().as_ref(),
                volume,
            };
            rootfs::prepare(&p).await?;
            return Ok(Mounted::ImageStore);
        }
        if !req.rootfs.is_empty() {
            mount::mount_all(&req.rootfs, &req.bundle.join("rootfs"))?;
            return Ok(Mounted::Containerd);
        }
        if let Some(root) = spec.root() {
            let path = req.bundle.join(root.path());
            if !path.is_dir() {
                return Err(Error::invalid(format!(
                    "config.json: root.path {:?} is not a directory",
                    root.path().display()
                )));
            }
        }
        Ok(Mounted::Nothing)
    }

    fn watch_oom(&self, id: &str, pid: u32) -> Option<JoinHandle<()>> {
        let cg = nexcage_core::cgroup::Cgroup::of_pid(pid).ok()?;
        let mut w = match nexcage_core::cgroup::oom::OomWatcher::new(&cg) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(id, error = %e, "no OOM events for this container");
                return None;
            }
        };
        let events = self.events.clone();
        let id = id.to_string();
        Some(tokio::spawn(async move {
            while w.next().await.is_some() {
                let _ = events.send(Event::Oom { id: id.clone() });
            }
        }))
    }

    /// Start the init or an exec; returns its pid.
    pub async fn start(&self, id: &str, exec_id: &str) -> Result<u32> {
        let (c, p) = self.process(id, exec_id)?;
        if exec_id.is_empty() {
            let mut s = p.lock().await;
            s.status.apply(Verb::Start)?;
            c.backend.start(id).await?;
            s.status = Status::Running;
            self.send(Event::Start {
                id: id.to_string(),
                pid: s.pid,
            });
            return Ok(s.pid);
        }
        c.init.check(Verb::Exec).await?;
        let mut s = p.lock().await;
        s.status.apply(Verb::Start)?;
        let process = p
            .spec
            .clone()
            .ok_or_else(|| Error::internal("exec without a process spec"))?;
        let mut io = p.stdio.prepare(exec_id, &self.namespace).await?;
        let cfg = ExecConfig {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            bundle: c.bundle.clone(),
            process,
            io: io.take_child(),
        };
        let spawned = c.backend.exec(cfg).await?;
        s.pid = spawned.pid;
        s.io = Some(io.attach().await?);
        s.status = Status::Running;
        self.send(Event::ExecStarted {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            pid: spawned.pid,
        });
        drop(s);
        p.watch_exit(spawned.exit, self.events.clone());
        Ok(spawned.pid)
    }

    /// Register an exec (started by a later [`TaskManager::start`]).
    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        stdio: StdioSpec,
        process: oci_spec::runtime::Process,
    ) -> Result<()> {
        validate_id("exec id", exec_id)?;
        let c = self.container(id)?;
        c.init.check(Verb::Exec).await?;
        let mut execs = c.execs.write().unwrap_or_else(|p| p.into_inner());
        if execs.contains_key(exec_id) {
            return Err(Error::already_exists(format!(
                "exec {exec_id:?} already exists in container {id:?}"
            )));
        }
        execs.insert(
            exec_id.to_string(),
            Arc::new(Process::new(id, exec_id, stdio, Some(process))),
        );
        drop(execs);
        self.send(Event::ExecAdded {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
        });
        Ok(())
    }

    /// Signal the init (with `all`: every process) or an exec.
    pub async fn kill(&self, id: &str, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        let (c, p) = self.process(id, exec_id)?;
        let s = p.lock().await;
        s.status.apply(Verb::Kill)?;
        if exec_id.is_empty() {
            c.backend.kill(id, signal, all).await
        } else if s.pid == 0 {
            Err(Error::precondition(format!(
                "exec {exec_id:?} has not been started"
            )))
        } else {
            c.backend.kill_exec(id, s.pid, signal).await
        }
    }

    /// Delete the container (empty `exec_id`) or an exec; returns pid and exit.
    pub async fn delete(&self, id: &str, exec_id: &str) -> Result<(u32, ExitStatus)> {
        let (c, p) = self.process(id, exec_id)?;
        let (status, pid) = {
            let s = p.lock().await;
            s.status.apply(Verb::Delete)?;
            (s.status, s.pid)
        };
        if !exec_id.is_empty() {
            c.execs
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(exec_id);
            let exit = p.exit().unwrap_or(ExitStatus {
                code: 0,
                at: SystemTime::now(),
            });
            return Ok((pid, exit));
        }
        c.backend.delete(id).await?;
        let exit = match p.exit() {
            Some(e) => e,
            None if status == Status::Created => {
                // The runtime killed the never-started init; collect its status (bounded).
                tokio::time::timeout(Duration::from_secs(5), p.wait())
                    .await
                    .unwrap_or(ExitStatus {
                        code: 137,
                        at: SystemTime::now(),
                    })
            }
            None => ExitStatus {
                code: 137,
                at: SystemTime::now(),
            },
        };
        self.teardown(id, &c).await;
        self.send(Event::Delete {
            id: id.to_string(),
            pid,
            status: exit.code as u32,
            at: exit.at,
        });
        Ok((pid, exit))
    }

    /// Force-remove every container (Shutdown with `now`): the backends kill and delete them,
    /// mounts go, and TaskDelete is sent for each. Returns how many were removed.
    pub async fn delete_all(&self) -> usize {
        let all: Vec<(String, Arc<Container>)> = self
            .containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, c) in &all {
            if let Err(e) = c.backend.delete(id).await {
                tracing::warn!(id = %id, error = %e, "force delete on shutdown");
            }
            let pid = c.init.lock().await.pid;
            let exit = c.init.exit().unwrap_or(ExitStatus {
                code: 137,
                at: SystemTime::now(),
            });
            self.teardown(id, c).await;
            self.send(Event::Delete {
                id: id.clone(),
                pid,
                status: exit.code as u32,
                at: exit.at,
            });
        }
        all.len()
    }

    async fn teardown(&self, id: &str, c: &Container) {
        if let Some(o) = &c.oom {
            o.abort();
        }
        if let Err(e) = rootfs::undo(&c.bundle, c.mounted).await {
            tracing::warn!(id, error = %e.chain(), "take down the rootfs");
        }
        let _ = std::fs::remove_file(c.bundle.join(crate::backends::RECORD_FILE));
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// State of the init or an exec, plus the bundle.
    pub async fn state(&self, id: &str, exec_id: &str) -> Result<(ProcessInfo, PathBuf)> {
        let (c, p) = self.process(id, exec_id)?;
        Ok((p.info().await, c.bundle.clone()))
    }

    /// Wait for the init or an exec to exit.
    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<ExitStatus> {
        let (_, p) = self.process(id, exec_id)?;
        Ok(p.wait().await)
    }

    /// Host pids with the exec id of those that are execs.
    pub async fn pids(&self, id: &str) -> Result<Vec<(u32, Option<String>)>> {
        let c = self.container(id)?;
        c.init.check(Verb::Inspect).await?;
        let pids = c.backend.pids(id).await?;
        let mut by_pid = HashMap::new();
        let execs: Vec<_> = c
            .execs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for e in execs {
            let pid = e.lock().await.pid;
            if pid != 0 {
                by_pid.insert(pid, e.exec_id.clone());
            }
        }
        Ok(crate::pids::tag_execs(pids, &by_pid, crate::pids::ppid))
    }

    /// Freeze.
    pub async fn pause(&self, id: &str) -> Result<()> {
        let c = self.container(id)?;
        let mut s = c.init.lock().await;
        let next = s.status.apply(Verb::Pause)?;
        c.backend.pause(id).await?;
        s.status = next;
        self.send(Event::Paused { id: id.to_string() });
        Ok(())
    }

    /// Thaw.
    pub async fn resume(&self, id: &str) -> Result<()> {
        let c = self.container(id)?;
        let mut s = c.init.lock().await;
        let next = s.status.apply(Verb::Resume)?;
        c.backend.resume(id).await?;
        s.status = next;
        self.send(Event::Resumed { id: id.to_string() });
        Ok(())
    }

    /// Apply new resources.
    pub async fn update(
        &self,
        id: &str,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<()> {
        let c = self.container(id)?;
        c.init.check(Verb::Update).await?;
        c.backend.update(id, resources).await
    }

    /// Statistics.
    pub async fn stats(&self, id: &str) -> Result<Stats> {
        let c = self.container(id)?;
        c.init.check(Verb::Inspect).await?;
        c.backend.stats(id).await
    }

    /// Close stdin of the init or an exec.
    pub async fn close_stdin(&self, id: &str, exec_id: &str) -> Result<()> {
        let (_, p) = self.process(id, exec_id)?;
        if let Some(io) = &p.lock().await.io {
            io.close_stdin();
        }
        Ok(())
    }

    /// Resize the terminal of the init or an exec. Like containerd's runc shim, a process without
    /// a live terminal (an exec not started yet, a process that already exited, no `-t`) is left
    /// alone: ctr resizes before Start and on every SIGWINCH, racing the exit.
    pub async fn resize(&self, id: &str, exec_id: &str, width: u32, height: u32) -> Result<()> {
        let (_, p) = self.process(id, exec_id)?;
        let s = p.lock().await;
        match &s.io {
            Some(io) if io.has_terminal() => io.resize(width, height),
            _ => Ok(()),
        }
    }

    /// Checkpoint (not available yet).
    pub async fn checkpoint(&self, id: &str) -> Result<()> {
        self.container(id)?.backend.checkpoint(id).await
    }

    /// Init pid, for Connect.
    pub async fn init_pid(&self, id: &str) -> Result<u32> {
        Ok(self.container(id)?.init.lock().await.pid)
    }
}

fn warn_undo(id: &str, r: Result<()>) {
    if let Err(e) = r {
        tracing::warn!(id, error = %e.chain(), "undo the rootfs after a failed create");
    }
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
