#![doc = include_str!("../README.md")]

pub mod cli;
pub mod error;
pub mod health;
pub mod spec_version;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use nexcage_core::backend::{Backend, Exec, Pause, StatsSource, Update};
use nexcage_core::config::BackendSettings;
use nexcage_core::reaper;
use nexcage_core::stats::Stats;
use nexcage_core::types::{ChildIo, CreateConfig, ExecConfig, Health, Spawned};
use nexcage_core::{Error as CoreError, Result};

use crate::cli::{ProcessIo, RuntimeCli};

/// Which OCI runtime a backend drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// crun.
    Crun,
    /// runc.
    Runc,
}

impl Flavor {
    /// Backend (and default binary) name.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Crun => "crun",
            Flavor::Runc => "runc",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    bundle: PathBuf,
    pid: u32,
}

/// The crun/runc backend for one containerd namespace.
#[derive(Debug)]
pub struct OciBackend {
    flavor: Flavor,
    cli: RuntimeCli,
    containers: Mutex<HashMap<String, Entry>>,
    /// For the last spec version seen: the version to declare instead, if the runtime refuses
    /// it (crun only).
    lowered: Mutex<Option<(String, Option<&'static str>)>>,
}

impl OciBackend {
    /// A backend for `flavor` configured by `settings`, keeping runtime state under
    /// `<settings.root>/<namespace>`.
    pub fn new(flavor: Flavor, settings: &BackendSettings, namespace: &str) -> Self {
        let binary = settings
            .binary
            .clone()
            .or_else(|| health::which(flavor.name()))
            .unwrap_or_else(|| PathBuf::from(flavor.name()));
        OciBackend {
            flavor,
            cli: RuntimeCli {
                binary,
                root: settings.root.join(namespace),
                timeout: settings.timeout,
            },
            containers: Mutex::new(HashMap::new()),
            lowered: Mutex::new(None),
        }
    }

    /// The typed CLI this backend drives.
    pub fn cli(&self) -> &RuntimeCli {
        &self.cli
    }

    fn entry(&self, id: &str) -> Result<Entry> {
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| {
                CoreError::not_found(format!(
                    "container {id:?} is not known to {}",
                    self.flavor.name()
                ))
            })
    }

    fn ensure_root(&self) -> Result<()> {
        std::fs::create_dir_all(&self.cli.root).map_err(|e| {
            CoreError::io(
                format!("create runtime root {}", self.cli.root.display()),
                e,
            )
        })
    }
}

fn process_io(io: ChildIo) -> ProcessIo {
    ProcessIo {
        stdio: [io.stdin, io.stdout, io.stderr],
        console_socket: io.console_socket,
    }
}

fn read_pid(path: &Path) -> Result<u32> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CoreError::io(format!("read pid file {}", path.display()), e))?;
    text.trim().parse().map_err(|_| {
        CoreError::internal(format!(
            "pid file {} holds {:?}, not a pid",
            path.display(),
            text.trim()
        ))
    })
}

impl Backend for OciBackend {
    fn name(&self) -> &str {
        self.flavor.name()
    }

    async fn health(&self) -> Health {
        if let Err(e) = self.ensure_root() {
            return Health {
                binary: Some(self.cli.binary.display().to_string()),
                details: vec![e.to_string()],
                ..Default::default()
            };
        }
        health::check(self.flavor.name(), &self.cli).await
    }

    fn validate(&self, spec: &oci_spec::runtime::Spec) -> Result<()> {
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| CoreError::invalid("config.json: process is missing"))?;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(CoreError::invalid("config.json: process.args is empty"));
        }
        Ok(())
    }

    async fn create(&self, cfg: CreateConfig) -> Result<Spawned> {
        self.validate(&cfg.spec)?;
        self.ensure_root()?;
        let pid_file = cfg.bundle.join("init.pid");
        let _ = std::fs::remove_file(&pid_file);
        let since = Instant::now();
        let spec_version = cfg.spec.version().clone();
        let created = self
            .create_with_fallback(&cfg.id, &cfg.bundle, &pid_file, cfg.io, &spec_version)
            .await;
        let created = created.map_err(|e| self.explain(e, &spec_version));
        let pid = match created.and_then(|()| read_pid(&pid_file)) {
            Ok(pid) => pid,
            Err(e) => {
                // Leave nothing behind: the runtime may have half-created the container.
                if let Err(d) = self.cli.delete(&cfg.id).await {
                    tracing::warn!(id = %cfg.id, error = %d, "cleanup after failed create");
                }
                return Err(e);
            }
        };
        let exit = reaper::watch(pid, since);
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                cfg.id,
                Entry {
                    bundle: cfg.bundle,
                    pid,
                },
            );
        Ok(Spawned { pid, exit })
    }

    async fn start(&self, id: &str) -> Result<()> {
        let e = self.entry(id)?;
        Ok(self.cli.start(id, &e.bundle).await?)
    }

    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        Ok(self.cli.kill(id, signal, all).await?)
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.cli.delete(id).await?;
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(())
    }

    async fn pids(&self, id: &str) -> Result<Vec<u32>> {
        Ok(self.cli.ps(id).await?)
    }
}

impl Exec for OciBackend {
    async fn exec(&self, cfg: ExecConfig) -> Result<Spawned> {
        let spec_path = cfg.bundle.join(format!(".exec-{}.json", cfg.exec_id));
        let pid_file = cfg.bundle.join(format!(".exec-{}.pid", cfg.exec_id));
        let json = serde_json::to_vec(&cfg.process)
            .map_err(|e| CoreError::invalid(format!("exec {}: process spec: {e}", cfg.exec_id)))?;
        std::fs::write(&spec_path, json)
            .map_err(|e| CoreError::io(format!("write {}", spec_path.display()), e))?;
        let since = Instant::now();
        let r = self
            .cli
            .exec(&cfg.id, &spec_path, &pid_file, process_io(cfg.io))
            .await;
        let _ = std::fs::remove_file(&spec_path);
        let pid = r
            .map_err(CoreError::from)
            .and_then(|()| read_pid(&pid_file));
        let _ = std::fs::remove_file(&pid_file);
        let pid = pid?;
        Ok(Spawned {
            pid,
            exit: reaper::watch(pid, since),
        })
    }

    async fn kill_exec(&self, _id: &str, pid: u32, signal: u32) -> Result<()> {
        let sig = nix::sys::signal::Signal::try_from(signal as i32).map_err(|_| {
            CoreError::invalid(format!("signal {signal} is not a valid signal number"))
        })?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).map_err(|e| match e {
            nix::errno::Errno::ESRCH => CoreError::not_found("process already finished"),
            e => CoreError::internal(format!("kill {pid}: {e}")),
        })
    }
}

impl Pause for OciBackend {
    async fn pause(&self, id: &str) -> Result<()> {
        Ok(self.cli.pause(id).await?)
    }

    async fn resume(&self, id: &str) -> Result<()> {
        Ok(self.cli.resume(id).await?)
    }
}

impl Update for OciBackend {
    async fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let e = self.entry(id)?;
        let path = e
            .bundle
            .join(format!(".update-{}.json", std::process::id()));
        let json = serde_json::to_vec(resources)
            .map_err(|e| CoreError::invalid(format!("resources: {e}")))?;
        std::fs::write(&path, json)
            .map_err(|e| CoreError::io(format!("write {}", path.display()), e))?;
        let r = self.cli.update(id, &path).await;
        let _ = std::fs::remove_file(&path);
        Ok(r?)
    }
}

impl StatsSource for OciBackend {
    async fn stats(&self, id: &str) -> Result<Stats> {
        let e = self.entry(id)?;
        nexcage_core::cgroup::Cgroup::of_pid(e.pid)?.stats()
    }
}

impl OciBackend {
    /// `create`; a crun that refuses the spec's version is given a copy declaring an older one
    /// (see [`spec_version`]), and the shim remembers it for later containers.
    async fn create_with_fallback(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        io: ChildIo,
        declared: &str,
    ) -> crate::error::Result<()> {
        let known = self
            .lowered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let to = match known {
            Some((from, to)) if from == declared => to,
            _ if self.flavor != Flavor::Crun => None,
            _ => {
                let to = spec_version::to_declare(&self.cli, declared).await;
                *self.lowered.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((declared.to_string(), to));
                to
            }
        };
        let cfg = match to {
            Some(to) => {
                tracing::info!(
                    id,
                    declared,
                    to,
                    "{} refuses OCI spec {declared}: running it as {to}",
                    self.flavor.name()
                );
                Some(spec_version::write_override(bundle, to)?)
            }
            None => None,
        };
        self.cli
            .create(id, bundle, pid_file, process_io(io), cfg.as_deref())
            .await
    }

    /// Turn a runtime's refusal of the spec version into an error that says what to do.
    fn explain(&self, e: crate::error::Error, spec_version: &str) -> CoreError {
        if !crate::error::is_unknown_spec_version(&e.to_string()) {
            return e.into();
        }
        CoreError::invalid(format!(
            "config.json declares OCI runtime spec {spec_version}, which {} refuses ({e}); \
             containerd 1.7 and later write 1.2 specs: use the runc backend or a newer {}",
            self.cli.binary.display(),
            self.flavor.name()
        ))
    }

    /// Host pid of a container's init, if known.
    pub fn init_pid(&self, id: &str) -> Option<u32> {
        self.entry(id).ok().map(|e| e.pid)
    }
}
