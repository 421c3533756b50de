//! The shim process protocol: `start` (grouping, daemonizing, the `address` file), `delete` (clean
//! up one container without a server) and serve mode. All stdin and start-reply handling lives
//! here, so a containerd 2.3 bootstrap path can be added without touching the Task service.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use containerd_shim::asynchronous::util::write_str_to_file;
use containerd_shim::asynchronous::{spawn, ExitSignal, Shim};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{api, Config, Context, Error as ShimError, Flags, StartOpts};
use nexcage_core::routing::CRI_SANDBOX_ID;
use nexcage_runtime::{AnyBackend, BackendRecord, TaskManager};

use crate::service::Service;
use crate::{bootstrap, convert, logging, options};

/// The shim (one per process invocation; serve mode runs the Task service).
pub struct NexcageShim {
    id: String,
    namespace: String,
    /// containerd's gRPC socket (`-address`), for the image-store rootfs.
    address: String,
    bundle: PathBuf,
    exit: Arc<ExitSignal>,
}

impl std::fmt::Debug for NexcageShim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexcageShim")
            .field("id", &self.id)
            .field("namespace", &self.namespace)
            .finish()
    }
}

fn shim_err(e: nexcage_core::Error) -> ShimError {
    ShimError::Other(e.chain())
}

/// The grouping key: the CRI sandbox id from `config.json`, else the container id.
fn grouping(bundle: &Path, id: &str) -> String {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v.get("annotations")?
                .get(CRI_SANDBOX_ID)?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| id.to_string())
}

/// After a shim died, remove its socket, named in `<bundle>/address`, if nothing answers on it.
/// A live socket belongs to a shim still serving other containers of the pod and stays.
fn remove_dead_socket(bundle: &Path) {
    let Ok(addr) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = addr.trim().trim_start_matches("unix://");
    if !path.starts_with("/run/containerd/s/") {
        return;
    }
    if let Err(e) = std::os::unix::net::UnixStream::connect(path) {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            tracing::info!(socket = path, "removing the socket of a dead shim");
            let _ = std::fs::remove_file(path);
        }
    }
}

#[async_trait::async_trait]
impl Shim for NexcageShim {
    type T = Service;

    async fn new(_runtime_id: &str, flags: &Flags, _config: &mut Config) -> Self {
        if flags.action.is_empty() {
            logging::init(flags.debug);
        }
        NexcageShim {
            id: flags.id.clone(),
            namespace: flags.namespace.clone(),
            address: flags.address.clone(),
            bundle: if flags.bundle.is_empty() {
                std::env::current_dir().unwrap_or_default()
            } else {
                PathBuf::from(&flags.bundle)
            },
            exit: Arc::new(ExitSignal::default()),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> Result<String, ShimError> {
        // stdin was read by bootstrap::prepare_start before spawn() could consume it (gotcha
        // G6); malformed runtime options are refused here, before any process is started.
        if let Some(input) = bootstrap::start_input() {
            options::config_path(input.options.as_ref()).map_err(shim_err)?;
            tracing::debug!(protocol = ?input.protocol, "start");
        }
        let group = grouping(&self.bundle, &opts.id);
        let address = spawn(opts, &group, Vec::new()).await?;
        write_str_to_file("address", &address).await?;
        Ok(address)
    }

    async fn delete_shim(&mut self) -> Result<api::DeleteResponse, ShimError> {
        // Clean up only this id, idempotently, without a server (containerd runs this after
        // every task delete and whenever a shim died).
        if let Some(rec) = BackendRecord::load(&self.bundle).map_err(shim_err)? {
            let backend = AnyBackend::build(&rec.settings(), &self.namespace).map_err(shim_err)?;
            backend.delete(&self.id).await.map_err(shim_err)?;
        }
        // An image-store rootfs (the serving shim died before removing it), then any mounts.
        nexcage_runtime::rootfs::release(&self.bundle)
            .await
            .map_err(shim_err)?;
        nexcage_runtime::mount::unmount_all(&self.bundle.join("rootfs")).map_err(shim_err)?;
        let _ = std::fs::remove_file(self.bundle.join(nexcage_runtime::backends::RECORD_FILE));
        remove_dead_socket(&self.bundle);
        Ok(api::DeleteResponse {
            exit_status: 137,
            exited_at: MessageField::some(convert::ts(SystemTime::now())),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        if let Err(e) = nexcage_core::reaper::start() {
            tracing::error!(error = %e, "cannot start the child reaper");
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let namespace = self.namespace.clone();
        // The single ordered event queue: one forwarder, events in the order they were queued.
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                let (topic, msg) = convert::event(e);
                if let Err(err) = publisher
                    .publish(Context::default(), topic, &namespace, msg)
                    .await
                {
                    tracing::warn!(topic, error = %err, "publish event");
                }
            }
        });
        Service::new(
            Arc::new(TaskManager::new(&self.namespace, tx).with_containerd_address(&self.address)),
            self.exit.clone(),
        )
    }
}
