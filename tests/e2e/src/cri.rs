//! The CRI side of the suite: a CRI v1 client ([`Cri`], the generated `k8s-cri` API over tonic
//! on containerd's unix socket, synchronous wrappers with a hang guard), and a per-test helper
//! ([`CriTest`]) that runs pods with runtime handler [`CRI_HANDLER`] on a CRI-enabled
//! containerd ([`Containerd::start_cri`]), creates busybox containers in them, reads their state
//! and removes them, checking that nothing is left behind.
//!
//! Pods get the instance's namespace as cgroup parent (`/<ns>/<id>`, unique per instance), a
//! log directory below the instance's temp dir, and either the CNI network or the host's
//! (`NamespaceOption.network = NODE`, then no hostname: G13).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
pub use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
pub use tonic::{Code, Status};

use crate::cmd::{self, TIMEOUT};
use crate::containerd::{Containerd, CRI_HANDLER, CRI_NAMESPACE};
use crate::{leaks, Backend, Case};

/// A CRI v1 client bound to one containerd socket.
#[derive(Debug)]
pub struct Cri {
    channel: Channel,
    socket: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Cri {
    /// Connect to the CRI service on `socket` (panics when it does not answer `Version`).
    pub fn connect(socket: &Path) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let path = socket.to_path_buf();
        let channel = rt.block_on(async {
            // The URI is required by tonic but unused: the connector dials the unix socket.
            Endpoint::try_from("http://[::]:50051")
                .expect("endpoint")
                .connect_timeout(Duration::from_secs(10))
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
        });
        let cri = Cri {
            channel,
            socket: socket.to_path_buf(),
            rt,
        };
        // After a (re)start the CRI service answers "server is not initialized yet" for a
        // while: poll (hang guard).
        let mut last = None;
        let v = cmd::poll(TIMEOUT, || {
            let r = cri.call("Version", |mut c| async move {
                c.version(api::VersionRequest {
                    version: "v1".into(),
                })
                .await
            });
            match r {
                Ok(v) => Some(v),
                Err(e) => {
                    last = Some(e);
                    None
                }
            }
        })
        .unwrap_or_else(|| panic!("CRI Version on {}: {last:?}", socket.display()));
        assert!(
            v.runtime_api_version.starts_with("v1"),
            "CRI API version {v:?}"
        );
        cri
    }

    /// The containerd socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Run one runtime-service call with the hang guard ([`TIMEOUT`]: then the result is a
    /// `DeadlineExceeded` status saying so).
    pub fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, Status>
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let client = RuntimeServiceClient::new(self.channel.clone());
        self.block(what, f(client))
    }

    /// Run one image-service call with the hang guard.
    pub fn image_call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, Status>
    where
        F: FnOnce(ImageServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let client = ImageServiceClient::new(self.channel.clone());
        self.block(what, f(client))
    }

    fn block<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, Status> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(TIMEOUT, fut).await })
        {
            Ok(r) => r.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "HANG GUARD: CRI {what} on {} did not answer within {TIMEOUT:?}",
                self.socket.display()
            ))),
        }
    }

    /// RunPodSandbox; returns the sandbox id.
    pub fn run_pod_sandbox(
        &self,
        config: api::PodSandboxConfig,
        handler: &str,
    ) -> Result<String, Status> {
        let handler = handler.to_string();
        self.call("RunPodSandbox", |mut c| async move {
            c.run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: handler,
            })
            .await
        })
        .map(|r| r.pod_sandbox_id)
    }

    /// StopPodSandbox.
    pub fn stop_pod_sandbox(&self, id: &str) -> Result<(), Status> {
        let id = id.to_string();
        self.call("StopPodSandbox", |mut c| async move {
            c.stop_pod_sandbox(api::StopPodSandboxRequest { pod_sandbox_id: id })
                .await
        })
        .map(drop)
    }

    /// RemovePodSandbox.
    pub fn remove_pod_sandbox(&self, id: &str) -> Result<(), Status> {
        let id = id.to_string();
        self.call("RemovePodSandbox", |mut c| async move {
            c.remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id: id })
                .await
        })
        .map(drop)
    }

    /// PodSandboxStatus (verbose: with containerd's `info` map).
    pub fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatusResponse, Status> {
        let id = id.to_string();
        self.call("PodSandboxStatus", |mut c| async move {
            c.pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: id,
                verbose: true,
            })
            .await
        })
    }

    /// ListPodSandbox (all).
    pub fn list_pod_sandbox(&self) -> Vec<api::PodSandbox> {
        self.call("ListPodSandbox", |mut c| async move {
            c.list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
                .await
        })
        .unwrap_or_else(|e| panic!("ListPodSandbox: {e}"))
        .items
    }

    /// CreateContainer; returns the container id.
    pub fn create_container(
        &self,
        pod_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, Status> {
        let pod_id = pod_id.to_string();
        self.call("CreateContainer", |mut c| async move {
            c.create_container(api::CreateContainerRequest {
                pod_sandbox_id: pod_id,
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            })
            .await
        })
        .map(|r| r.container_id)
    }

    /// StartContainer.
    pub fn start_container(&self, id: &str) -> Result<(), Status> {
        let id = id.to_string();
        self.call("StartContainer", |mut c| async move {
            c.start_container(api::StartContainerRequest { container_id: id })
                .await
        })
        .map(drop)
    }

    /// StopContainer with a grace period of `timeout_secs`.
    pub fn stop_container(&self, id: &str, timeout_secs: i64) -> Result<(), Status> {
        let id = id.to_string();
        self.call("StopContainer", |mut c| async move {
            c.stop_container(api::StopContainerRequest {
                container_id: id,
                timeout: timeout_secs,
            })
            .await
        })
        .map(drop)
    }

    /// RemoveContainer.
    pub fn remove_container(&self, id: &str) -> Result<(), Status> {
        let id = id.to_string();
        self.call("RemoveContainer", |mut c| async move {
            c.remove_container(api::RemoveContainerRequest { container_id: id })
                .await
        })
        .map(drop)
    }

    /// ContainerStatus (verbose).
    pub fn container_status(&self, id: &str) -> Result<api::ContainerStatusResponse, Status> {
        let id = id.to_string();
        self.call("ContainerStatus", |mut c| async move {
            c.container_status(api::ContainerStatusRequest {
                container_id: id,
                verbose: true,
            })
            .await
        })
    }

    /// ListContainers of one pod.
    pub fn list_containers(&self, pod_id: &str) -> Vec<api::Container> {
        let pod_id = pod_id.to_string();
        self.call("ListContainers", |mut c| async move {
            c.list_containers(api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    pod_sandbox_id: pod_id,
                    ..Default::default()
                }),
            })
            .await
        })
        .unwrap_or_else(|e| panic!("ListContainers: {e}"))
        .containers
    }

    /// ExecSync with a timeout of `timeout_secs` (0: none).
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout_secs: i64,
    ) -> Result<api::ExecSyncResponse, Status> {
        let id = id.to_string();
        let cmd = cmd.iter().map(|s| s.to_string()).collect();
        self.call("ExecSync", |mut c| async move {
            c.exec_sync(api::ExecSyncRequest {
                container_id: id,
                cmd,
                timeout: timeout_secs,
            })
            .await
        })
    }

    /// UpdateContainerResources (Linux).
    pub fn update_container_resources(
        &self,
        id: &str,
        resources: api::LinuxContainerResources,
    ) -> Result<(), Status> {
        let id = id.to_string();
        self.call("UpdateContainerResources", |mut c| async move {
            c.update_container_resources(api::UpdateContainerResourcesRequest {
                container_id: id,
                linux: Some(resources),
                ..Default::default()
            })
            .await
        })
        .map(drop)
    }

    /// ContainerStats.
    pub fn container_stats(&self, id: &str) -> Result<api::ContainerStats, Status> {
        let id = id.to_string();
        self.call("ContainerStats", |mut c| async move {
            c.container_stats(api::ContainerStatsRequest { container_id: id })
                .await
        })
        .map(|r| r.stats.unwrap_or_default())
    }

    /// ListContainerStats of one pod.
    pub fn list_container_stats(&self, pod_id: &str) -> Result<Vec<api::ContainerStats>, Status> {
        let pod_id = pod_id.to_string();
        self.call("ListContainerStats", |mut c| async move {
            c.list_container_stats(api::ListContainerStatsRequest {
                filter: Some(api::ContainerStatsFilter {
                    pod_sandbox_id: pod_id,
                    ..Default::default()
                }),
            })
            .await
        })
        .map(|r| r.stats)
    }

    /// ImageStatus of `image` (None when CRI does not know it).
    pub fn image_status(&self, image: &str) -> Option<api::Image> {
        let image = image.to_string();
        self.image_call("ImageStatus", |mut c| async move {
            c.image_status(api::ImageStatusRequest {
                image: Some(api::ImageSpec {
                    image,
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
        })
        .unwrap_or_else(|e| panic!("ImageStatus: {e}"))
        .image
    }
}

/// The JSON object containerd puts under `info["info"]` of a verbose status reply.
pub fn verbose_info(info: &HashMap<String, String>) -> serde_json::Value {
    info.get("info")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Options of a pod.
#[derive(Debug, Clone, Default)]
pub struct PodOpts {
    /// Host network (`NamespaceOption.network = NODE`, no hostname) instead of the CNI network.
    pub host_network: bool,
    /// Pod annotations.
    pub annotations: Vec<(String, String)>,
}

impl PodOpts {
    /// A pod on the host's network.
    pub fn host_network() -> PodOpts {
        PodOpts {
            host_network: true,
            ..Default::default()
        }
    }

    /// A CNI pod with one annotation.
    pub fn annotated(key: &str, value: &str) -> PodOpts {
        PodOpts {
            annotations: vec![(key.to_string(), value.to_string())],
            ..Default::default()
        }
    }
}

/// A running pod.
#[derive(Debug)]
pub struct Pod {
    /// Sandbox id.
    pub id: String,
    /// Pod name (metadata).
    pub name: String,
    /// The config it was run with (CreateContainer needs it again).
    pub config: api::PodSandboxConfig,
    /// When RunPodSandbox was sent.
    pub started: Instant,
    /// The backend the pod runs on: its `nexcage.io/backend` annotation, else the instance's
    /// default backend.
    pub backend: Backend,
    first_running: Cell<bool>,
}

impl Pod {
    /// The pod's log directory.
    pub fn log_dir(&self) -> PathBuf {
        PathBuf::from(&self.config.log_directory)
    }
}

/// Options of a container.
#[derive(Debug, Clone, Default)]
pub struct CtrOpts {
    /// Container annotations.
    pub annotations: Vec<(String, String)>,
}

static UIDS: AtomicUsize = AtomicUsize::new(0);

/// Where pod start times go: `$E2E_TIMINGS` (a file `tests/run.sh` summarizes), else only
/// stderr.
fn record_timing(line: &str) {
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("E2E_TIMINGS").filter(|p| !p.is_empty()) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// One CRI test on one backend: the containerd instance, a client, and the pods it started
/// (stopped and removed on drop, also on panic).
#[derive(Debug)]
pub struct CriTest<'a> {
    /// The containerd instance (CRI enabled).
    pub ctd: &'a Containerd,
    /// The client.
    pub cri: RefCell<Cri>,
    /// Backend under test (the `default_backend` of the instance's nexcage config).
    pub backend: Backend,
    /// Test name.
    pub test: &'static str,
    pods: RefCell<Vec<String>>,
}

impl Case {
    /// A CRI test on the CRI instance shared by this test binary for the case's backend.
    pub fn cri(self) -> CriTest<'static> {
        CriTest::new(Containerd::shared_cri(self.backend), self)
    }

    /// A CRI test on an instance of the test's own (restart).
    pub fn cri_on(self, ctd: &Containerd) -> CriTest<'_> {
        CriTest::new(ctd, self)
    }
}

impl<'a> CriTest<'a> {
    /// Bind to `ctd` (which must have CRI enabled with `case.backend` as default backend).
    pub fn new(ctd: &'a Containerd, case: Case) -> CriTest<'a> {
        assert_eq!(
            ctd.cri().default_backend,
            case.backend,
            "CRI instance configured for another backend"
        );
        CriTest {
            cri: RefCell::new(Cri::connect(&ctd.socket())),
            ctd,
            backend: case.backend,
            test: case.name,
            pods: RefCell::new(Vec::new()),
        }
    }

    /// A fresh client (after a containerd restart).
    pub fn reconnect(&self) {
        *self.cri.borrow_mut() = Cri::connect(&self.ctd.socket());
    }

    /// The client.
    pub fn c(&self) -> std::cell::Ref<'_, Cri> {
        self.cri.borrow()
    }

    /// Panic with `what`, the error and containerd's log.
    pub fn fail(&self, what: &str, e: &dyn std::fmt::Display) -> ! {
        panic!("{what}: {e}\n{}", self.ctd.log_tail(40))
    }

    /// A pod config named `<backend>-<test>-<suffix>`.
    pub fn pod_config(&self, suffix: &str, opts: &PodOpts) -> api::PodSandboxConfig {
        let name = format!(
            "{}-{}-{suffix}",
            self.backend.0,
            self.test.replace('_', "-")
        );
        let uid = format!(
            "{}-{}",
            std::process::id(),
            UIDS.fetch_add(1, Ordering::SeqCst)
        );
        let log_dir = self.ctd.dir().join("pods").join(format!("{name}-{uid}"));
        std::fs::create_dir_all(&log_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", log_dir.display()));
        let network = if opts.host_network {
            api::NamespaceMode::Node
        } else {
            api::NamespaceMode::Pod
        };
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.clone(),
                uid,
                namespace: "e2e".into(),
                attempt: 0,
            }),
            // Host network implies the host's UTS namespace, where no hostname may be set (G13).
            hostname: if opts.host_network {
                String::new()
            } else {
                name.chars().take(63).collect()
            },
            log_directory: log_dir.display().to_string(),
            annotations: opts.annotations.iter().cloned().collect(),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: format!("/{}", self.ctd.ns()),
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(api::NamespaceOption {
                        network: network as i32,
                        pid: api::NamespaceMode::Container as i32,
                        ipc: api::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox with handler [`CRI_HANDLER`]; the pod is removed when `self` drops.
    pub fn try_run_pod(&self, suffix: &str, opts: &PodOpts) -> Result<Pod, Status> {
        let config = self.pod_config(suffix, opts);
        let started = Instant::now();
        let id = self.c().run_pod_sandbox(config.clone(), CRI_HANDLER)?;
        self.pods.borrow_mut().push(id.clone());
        self.ctd.track(CRI_NAMESPACE, &id);
        let backend = opts
            .annotations
            .iter()
            .find(|(k, _)| k == "nexcage.io/backend")
            .and_then(|(_, v)| crate::BACKENDS.iter().find(|b| *b == v))
            .map(|b| Backend(b))
            .unwrap_or(self.backend);
        Ok(Pod {
            id,
            backend,
            name: config
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            config,
            started,
            first_running: Cell::new(false),
        })
    }

    /// [`CriTest::try_run_pod`], panicking on failure.
    pub fn run_pod(&self, suffix: &str, opts: &PodOpts) -> Pod {
        self.try_run_pod(suffix, opts)
            .unwrap_or_else(|e| self.fail("RunPodSandbox", &e))
    }

    /// A busybox container config running `cmd`, logging to `<name>.log`.
    pub fn container_config(
        &self,
        name: &str,
        cmd: &[&str],
        opts: &CtrOpts,
    ) -> api::ContainerConfig {
        api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: name.to_string(),
                attempt: 0,
            }),
            image: Some(api::ImageSpec {
                image: crate::image::CRI_IMAGE.to_string(),
                ..Default::default()
            }),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            annotations: opts.annotations.iter().cloned().collect(),
            linux: Some(api::LinuxContainerConfig::default()),
            ..Default::default()
        }
    }

    /// CreateContainer in `pod`.
    pub fn try_create(
        &self,
        pod: &Pod,
        name: &str,
        cmd: &[&str],
        opts: &CtrOpts,
    ) -> Result<String, Status> {
        let id = self.c().create_container(
            &pod.id,
            self.container_config(name, cmd, opts),
            pod.config.clone(),
        )?;
        self.ctd.track(CRI_NAMESPACE, &id);
        Ok(id)
    }

    /// CreateContainer + StartContainer, then wait for RUNNING; returns the container id. The
    /// first container of a pod that runs records the pod start time.
    pub fn start(&self, pod: &Pod, name: &str, cmd: &[&str]) -> String {
        self.start_with(pod, name, cmd, &CtrOpts::default())
    }

    /// [`CriTest::start`] with options.
    pub fn start_with(&self, pod: &Pod, name: &str, cmd: &[&str], opts: &CtrOpts) -> String {
        let id = self
            .try_create(pod, name, cmd, opts)
            .unwrap_or_else(|e| self.fail(&format!("CreateContainer {name}"), &e));
        self.c()
            .start_container(&id)
            .unwrap_or_else(|e| self.fail(&format!("StartContainer {name} ({id})"), &e));
        self.wait_state(&id, api::ContainerState::ContainerRunning);
        if !pod.first_running.replace(true) {
            let ms = pod.started.elapsed().as_secs_f64() * 1000.0;
            record_timing(&format!(
                "pod-start containerd={} backend={} test={}::{} ms={ms:.0}",
                crate::versions::series().name(),
                pod.backend.0,
                self.backend.0,
                self.test
            ));
        }
        id
    }

    /// ContainerStatus, panicking on failure.
    pub fn status(&self, id: &str) -> api::ContainerStatusResponse {
        self.c()
            .container_status(id)
            .unwrap_or_else(|e| self.fail(&format!("ContainerStatus {id}"), &e))
    }

    /// Poll ContainerStatus until `id` is in `state` (hang guard 60 s).
    pub fn wait_state(&self, id: &str, state: api::ContainerState) -> api::ContainerStatus {
        let mut last = None;
        cmd::poll(TIMEOUT, || {
            let st = self.status(id).status.unwrap_or_default();
            let ok = st.state == state as i32;
            last = Some(st.clone());
            ok.then_some(st)
        })
        .unwrap_or_else(|| {
            panic!(
                "container {id} never reached {state:?}; last status: {last:?}\n{}",
                self.ctd.log_tail(40)
            )
        })
    }

    /// Host pid of a running container (ContainerStatus verbose info).
    pub fn pid(&self, id: &str) -> u32 {
        let st = self.status(id);
        let info = verbose_info(&st.info);
        info["pid"]
            .as_u64()
            .filter(|p| *p > 0)
            .unwrap_or_else(|| panic!("no pid in the verbose status of {id}: {:?}", st.info))
            as u32
    }

    /// PodSandboxStatus, panicking on failure.
    pub fn pod_status(&self, pod: &Pod) -> api::PodSandboxStatusResponse {
        self.c()
            .pod_sandbox_status(&pod.id)
            .unwrap_or_else(|e| self.fail(&format!("PodSandboxStatus {}", pod.id), &e))
    }

    /// Host pid of the sandbox (PodSandboxStatus verbose info).
    pub fn sandbox_pid(&self, pod: &Pod) -> u32 {
        let st = self.pod_status(pod);
        verbose_info(&st.info)["pid"]
            .as_u64()
            .filter(|p| *p > 0)
            .unwrap_or_else(|| {
                panic!(
                    "no pid in the verbose status of pod {}: {:?}",
                    pod.id, st.info
                )
            }) as u32
    }

    /// The pod's IP (PodSandboxStatus network).
    pub fn pod_ip(&self, pod: &Pod) -> String {
        self.pod_status(pod)
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default()
    }

    /// ExecSync with a 30 s timeout, panicking on an RPC error.
    pub fn exec(&self, id: &str, cmd: &[&str]) -> api::ExecSyncResponse {
        self.c()
            .exec_sync(id, cmd, 30)
            .unwrap_or_else(|e| self.fail(&format!("ExecSync {cmd:?} in {id}"), &e))
    }

    /// The CRI log file of container `name` in `pod`.
    pub fn log_file(&self, pod: &Pod, name: &str) -> PathBuf {
        pod.log_dir().join(format!("{name}.log"))
    }

    /// Poll the CRI log of `name` until a line has `stream` and `text` (`<ts> <stream> F <text>`,
    /// checked field by field); returns the whole file.
    pub fn wait_log_line(&self, pod: &Pod, name: &str, stream: &str, text: &str) -> String {
        let path = self.log_file(pod, name);
        let mut content = String::new();
        let found = cmd::poll(Duration::from_secs(30), || {
            content = std::fs::read_to_string(&path).unwrap_or_default();
            content
                .lines()
                .any(|l| is_cri_line(l, stream, text))
                .then_some(())
        });
        assert!(
            found.is_some(),
            "{}: no `<timestamp> {stream} F {text}` line; content:\n{content}",
            path.display()
        );
        content
    }

    /// Ids of every container of `pod` (ListContainers).
    pub fn container_ids(&self, pod: &Pod) -> Vec<String> {
        self.c()
            .list_containers(&pod.id)
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    /// Ids backend `b` holds in the CRI namespace ([`Backend::list`] of `<state_dir>/<b>/k8s.io`).
    pub fn backend_list(&self, b: Backend) -> Vec<String> {
        b.list(&self.ctd.nexcage_state().join(b.0).join(CRI_NAMESPACE))
    }

    /// Assert that backend `b`, and no other, holds every id of `ids`.
    pub fn assert_backend(&self, ids: &[&str], b: Backend) {
        if !crate::is_nexcage() {
            return;
        }
        for other in crate::BACKENDS.iter().map(|n| Backend(n)) {
            let list = self.backend_list(other);
            for id in ids {
                let has = list.iter().any(|x| x == id);
                assert_eq!(
                    has,
                    other == b,
                    "{id}: expected on backend {}, but `{} --root {} list` {} it: {list:?}\n{}",
                    b.0,
                    other.0,
                    self.ctd
                        .nexcage_state()
                        .join(other.0)
                        .join(CRI_NAMESPACE)
                        .display(),
                    if has { "shows" } else { "does not show" },
                    self.ctd.log_tail(30)
                );
            }
        }
    }

    /// Shim processes of this instance whose `-id` is `id`.
    pub fn shims_of(&self, id: &str) -> Vec<leaks::Proc> {
        leaks::shim_processes(&self.ctd.socket(), Some(id))
    }

    /// What a pod has on the host: ids, pids, network namespace path, host veth.
    pub fn footprint(&self, pod: &Pod) -> Footprint {
        let st = self.pod_status(pod);
        let info = verbose_info(&st.info);
        let mut pids = Vec::new();
        if let Some(p) = info["pid"].as_u64().filter(|p| *p > 0) {
            pids.push(p as u32);
        }
        let netns = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["type"] == "network")
            .and_then(|n| n["path"].as_str())
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let veths = host_veths(&info);
        let mut ids = vec![pod.id.clone()];
        for c in self.container_ids(pod) {
            if let Ok(st) = self.c().container_status(&c) {
                if let Some(p) = verbose_info(&st.info)["pid"].as_u64().filter(|p| *p > 0) {
                    pids.push(p as u32);
                }
            }
            ids.push(c);
        }
        Footprint {
            ids,
            pids,
            netns,
            veths,
        }
    }

    /// StopPodSandbox + RemovePodSandbox (each checked), then assert that nothing of the pod is
    /// left: shim, processes, mounts, bundles, sockets, cgroups, backend state, netns, veth,
    /// CRI state.
    pub fn remove_pod_and_check(&self, pod: &Pod) {
        let fp = self.footprint(pod);
        eprintln!("pod {} footprint: {fp:?}", pod.name);
        self.c()
            .stop_pod_sandbox(&pod.id)
            .unwrap_or_else(|e| self.fail(&format!("StopPodSandbox {}", pod.id), &e));
        self.c()
            .remove_pod_sandbox(&pod.id)
            .unwrap_or_else(|e| self.fail(&format!("RemovePodSandbox {}", pod.id), &e));
        self.pods.borrow_mut().retain(|p| p != &pod.id);
        let gone = self.c().pod_sandbox_status(&pod.id);
        assert_eq!(
            gone.as_ref().map_err(|e| e.code()).err(),
            Some(Code::NotFound),
            "pod {} still known after RemovePodSandbox: {gone:?}",
            pod.id
        );
        self.assert_gone(&fp);
    }

    /// Poll (hang guard 30 s) until nothing of `fp` is left, else panic listing every leftover.
    pub fn assert_gone(&self, fp: &Footprint) {
        let clean = cmd::poll(Duration::from_secs(30), || {
            self.leftovers(fp).is_empty().then_some(())
        });
        if clean.is_none() {
            let found = self.leftovers(fp);
            assert!(
                found.is_empty(),
                "pod {} left things behind:\n  - {}\n{}",
                fp.ids[0],
                found.join("\n  - "),
                self.ctd.log_tail(60)
            );
        }
    }

    /// Everything of `fp` still on the host.
    pub fn leftovers(&self, fp: &Footprint) -> Vec<String> {
        let mut found = Vec::new();
        for (i, id) in fp.ids.iter().enumerate() {
            let pids: &[u32] = if i == 0 { &fp.pids } else { &[] };
            found.extend(leaks::leftovers(self.ctd, CRI_NAMESPACE, id, pids));
            for kind in ["sandboxes", "containers"] {
                let d = self
                    .ctd
                    .state_dir()
                    .join("io.containerd.grpc.v1.cri")
                    .join(kind)
                    .join(id);
                if d.exists() {
                    found.push(format!("CRI state dir left: {}", d.display()));
                }
            }
        }
        if let Some(ns) = &fp.netns {
            let s = ns.to_string_lossy();
            if !leaks::mounts_under(&s).is_empty() {
                found.push(format!("netns still mounted: {s}"));
            }
            if ns.exists() {
                found.push(format!("netns file left: {s}"));
            }
        }
        for v in &fp.veths {
            if crate::cni::link_exists(v) {
                found.push(format!("host veth left: {v}"));
            }
        }
        found
    }
}

/// Host-side interface names in the CNI result of a verbose sandbox status (`cniResult`).
fn host_veths(info: &serde_json::Value) -> Vec<String> {
    let ifaces = &info["cniResult"]["Interfaces"];
    ifaces
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, v)| {
            name.starts_with("veth") && v["Sandbox"].as_str().unwrap_or("").is_empty()
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Whether `line` is a CRI log line `<RFC3339 ts> <stream> F <text>`.
pub fn is_cri_line(line: &str, stream: &str, text: &str) -> bool {
    let mut f = line.splitn(4, ' ');
    let (Some(ts), Some(s), Some(tag), Some(rest)) = (f.next(), f.next(), f.next(), f.next())
    else {
        return false;
    };
    ts.len() >= 20 && ts.contains('T') && s == stream && tag == "F" && rest == text
}

/// What a pod left on the host while running.
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    /// Sandbox id first, then the container ids.
    pub ids: Vec<String>,
    /// Sandbox and container pids.
    pub pids: Vec<u32>,
    /// The pod's network namespace file (None with host network).
    pub netns: Option<PathBuf>,
    /// Host-side veth of the pod.
    pub veths: Vec<String>,
}

impl Drop for CriTest<'_> {
    fn drop(&mut self) {
        let pods = std::mem::take(&mut *self.pods.borrow_mut());
        let cri = self.cri.borrow();
        for id in pods {
            let _ = cri.stop_pod_sandbox(&id);
            let _ = cri.remove_pod_sandbox(&id);
        }
    }
}
