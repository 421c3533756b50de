#![doc = include_str!("../README.md")]

pub mod cgroups;
pub mod cli;
pub mod config;
mod create;
mod delete;
mod exec;
pub mod health;
pub mod hold;
mod kill;
pub mod procfs;
pub mod spawn;
pub mod state;
mod sysctl;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nexcage_core::backend::{Backend, Exec, Pause, StatsSource, Update};
use nexcage_core::config::BackendSettings;
use nexcage_core::stats::Stats;
use nexcage_core::types::{validate_id, CreateConfig, ExecConfig, Health, Spawned};
use nexcage_core::{Error, Result};

use crate::cli::LxcCli;
use crate::config::Paths;
use crate::kill::Delivered;
use crate::procfs::Proc;
use crate::state::Record;

/// Backend name.
pub const NAME: &str = "lxc";

/// One container as this backend instance knows it.
#[derive(Debug)]
struct Container {
    paths: Paths,
    record: Mutex<Record>,
    /// The last signal the shim delivered to the init (for the exit status, see [`kill`]).
    delivered: Arc<Mutex<Option<Delivered>>>,
    /// lxc-attach processes of execs, by pid.
    execs: Mutex<HashMap<u32, Proc>>,
}

impl Container {
    fn record(&self) -> Record {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut Record)) -> Result<()> {
        let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut r);
        r.save(&self.paths.state())
    }

    fn deliver(&self, d: Delivered) {
        *self.delivered.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
    }
}

/// The LXC backend for one containerd namespace: lxcpath `<settings.root>/<namespace>`.
#[derive(Debug)]
pub struct LxcBackend {
    cli: LxcCli,
    namespace: String,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    /// With the start gate inside the container ([`hold`]): where the hold is installed.
    hold_dir: Option<PathBuf>,
}

impl LxcBackend {
    /// A backend configured by `settings` (`binary`: the `lxc-execute` to use; the other tools
    /// are taken from its directory).
    pub fn new(settings: &BackendSettings, namespace: &str) -> Self {
        let binary = settings
            .binary
            .clone()
            .or_else(|| health::which(nexcage_core::config::backend_program("lxc")))
            .unwrap_or_else(|| PathBuf::from("/usr/bin/lxc-execute"));
        let bin_dir = binary
            .parent()
            .map_or_else(|| PathBuf::from("/usr/bin"), Path::to_path_buf);
        LxcBackend {
            cli: LxcCli {
                bin_dir,
                lxcpath: settings.root.join(namespace),
                timeout: settings.timeout,
            },
            namespace: namespace.to_string(),
            containers: Mutex::new(HashMap::new()),
            hold_dir: None,
        }
    }

    /// A backend whose containers live in `lxcpath` itself rather than `<root>/<namespace>`
    /// (the proxmox-lxc backend runs CTs in Proxmox's lxcpath under their VMID).
    pub fn with_lxcpath(settings: &BackendSettings, namespace: &str, lxcpath: PathBuf) -> Self {
        let mut b = LxcBackend::new(settings, namespace);
        b.cli.lxcpath = lxcpath;
        b
    }

    /// Hold each container's program inside the container until Start (see [`hold`]), with the
    /// hold executable installed in `dir`, instead of holding the init in the start-host hook:
    /// LXC then answers `lxc-info` and `lxc-attach` between Create and Start.
    pub fn hold_in_container(mut self, dir: PathBuf) -> Self {
        self.hold_dir = Some(dir);
        self
    }

    /// The typed CLI this backend drives.
    pub fn cli(&self) -> &LxcCli {
        &self.cli
    }

    /// Where container `id`'s files are.
    pub fn paths(&self, id: &str) -> Paths {
        Paths::new(self.cli.lxcpath.join(id))
    }

    /// The container, from memory or (for a fresh instance) from its record on disk.
    fn container(&self, id: &str) -> Result<Arc<Container>> {
        validate_id("container id", id)?;
        let mut m = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = m.get(id) {
            return Ok(c.clone());
        }
        let paths = self.paths(id);
        let record = Record::load(&paths.state())?.ok_or_else(|| {
            Error::not_found(format!("container {id:?} is not known to the lxc backend"))
        })?;
        let c = Arc::new(Container {
            paths,
            record: Mutex::new(record),
            delivered: Arc::default(),
            execs: Mutex::default(),
        });
        m.insert(id.to_string(), c.clone());
        Ok(c)
    }

    fn insert(&self, id: &str, c: Arc<Container>) {
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), c);
    }

    fn forget(&self, id: &str) {
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    fn running_init(&self, id: &str) -> Result<(Arc<Container>, Proc)> {
        let c = self.container(id)?;
        let init = c
            .record()
            .init
            .filter(Proc::alive)
            .ok_or_else(|| Error::precondition(format!("container {id:?} is not running")))?;
        Ok((c, init))
    }
}

impl Backend for LxcBackend {
    fn name(&self) -> &str {
        NAME
    }

    async fn health(&self) -> Health {
        health::check(&self.cli).await
    }

    fn validate(&self, spec: &oci_spec::runtime::Spec) -> Result<()> {
        config::validate(spec)
    }

    async fn create(&self, cfg: CreateConfig) -> Result<Spawned> {
        create::create(self, cfg).await
    }

    async fn start(&self, id: &str) -> Result<()> {
        create::start(self, id).await
    }

    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        kill::kill(self, id, signal, all).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        delete::delete(self, id).await
    }

    async fn pids(&self, id: &str) -> Result<Vec<u32>> {
        let c = self.container(id)?;
        cgroups::procs(&c.record().cgroups.container)
    }
}

impl Exec for LxcBackend {
    async fn exec(&self, cfg: ExecConfig) -> Result<Spawned> {
        exec::exec(self, cfg).await
    }

    async fn kill_exec(&self, id: &str, pid: u32, signal: u32) -> Result<()> {
        exec::kill_exec(self, id, pid, signal)
    }
}

impl Pause for LxcBackend {
    async fn pause(&self, id: &str) -> Result<()> {
        self.running_init(id)?;
        self.cli.freeze(id).await
    }

    async fn resume(&self, id: &str) -> Result<()> {
        self.container(id)?;
        self.cli.unfreeze(id).await
    }
}

impl Update for LxcBackend {
    async fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let c = self.container(id)?;
        let v2 = config::Host::cgroup2(&config::RealHost);
        let settings = config::resources::settings(resources, v2)?;
        cgroups::write(&c.record().cgroups.container, &settings)
    }
}

impl StatsSource for LxcBackend {
    async fn stats(&self, id: &str) -> Result<Stats> {
        let (_, init) = self.running_init(id)?;
        nexcage_core::cgroup::Cgroup::of_pid(init.pid)?.stats()
    }
}
