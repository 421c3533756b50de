//! The Task service: each RPC converts its request, calls the task manager once, converts back.

use std::sync::Arc;

use containerd_shim::protos::api::*;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::shim_async::Task;
use containerd_shim::{ExitSignal, TtrpcContext, TtrpcResult};
use nexcage_runtime::{CreateRequest, TaskManager};

use crate::convert;
use crate::options;
use crate::status::to_ttrpc;

/// The ttrpc Task service of one shim process.
pub struct Service {
    tm: Arc<TaskManager>,
    exit: Arc<ExitSignal>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("containers", &self.tm.len())
            .finish()
    }
}

impl Service {
    /// A service over `tm` that signals `exit` when the last container is gone.
    pub fn new(tm: Arc<TaskManager>, exit: Arc<ExitSignal>) -> Self {
        Service { tm, exit }
    }
}

type R<T> = TtrpcResult<T>;

#[async_trait::async_trait]
impl Task for Service {
    #[tracing::instrument(skip_all, fields(id = %req.id))]
    async fn create(&self, _ctx: &TtrpcContext, req: CreateTaskRequest) -> R<CreateTaskResponse> {
        crate::trim::rpc();
        if !req.checkpoint.is_empty() || !req.parent_checkpoint.is_empty() {
            return Err(to_ttrpc(nexcage_core::Error::unimplemented(
                "restore from a checkpoint is not supported yet: nexcage's checkpoint service has not landed",
            )));
        }
        let config_path = options::config_path(req.options.as_ref()).map_err(to_ttrpc)?;
        let r = CreateRequest {
            id: req.id.clone(),
            bundle: req.bundle.clone().into(),
            rootfs: convert::mounts(&req.rootfs),
            stdio: convert::stdio(&req.stdin, &req.stdout, &req.stderr, req.terminal),
            config_path,
        };
        let pid = self.tm.create(r).await.map_err(to_ttrpc)?;
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    #[tracing::instrument(skip_all, fields(id = %req.id, exec_id = %req.exec_id))]
    async fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> R<StartResponse> {
        crate::trim::rpc();
        let pid = self
            .tm
            .start(&req.id, &req.exec_id)
            .await
            .map_err(to_ttrpc)?;
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    #[tracing::instrument(skip_all, fields(id = %req.id, exec_id = %req.exec_id))]
    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> R<StateResponse> {
        crate::trim::rpc();
        let (p, bundle) = self
            .tm
            .state(&req.id, &req.exec_id)
            .await
            .map_err(to_ttrpc)?;
        Ok(StateResponse {
            id: if p.exec_id.is_empty() {
                p.id
            } else {
                p.exec_id.clone()
            },
            bundle: bundle.display().to_string(),
            pid: p.pid,
            status: convert::status(p.status).into(),
            stdin: p.stdio.stdin,
            stdout: p.stdio.stdout,
            stderr: p.stdio.stderr,
            terminal: p.stdio.terminal,
            exit_status: p.exit.map_or(0, |e| e.code as u32),
            exited_at: p.exit.map(|e| convert::ts(e.at)).into(),
            exec_id: p.exec_id,
            ..Default::default()
        })
    }

    #[tracing::instrument(skip_all, fields(id = %req.id, exec_id = %req.exec_id))]
    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> R<WaitResponse> {
        crate::trim::rpc();
        let e = self
            .tm
            .wait(&req.id, &req.exec_id)
            .await
            .map_err(to_ttrpc)?;
        Ok(WaitResponse {
            exit_status: e.code as u32,
            exited_at: MessageField::some(convert::ts(e.at)),
            ..Default::default()
        })
    }

    #[tracing::instrument(skip_all, fields(id = %req.id, exec_id = %req.exec_id, signal = req.signal, all = req.all))]
    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> R<Empty> {
        crate::trim::rpc();
        self.tm
            .kill(&req.id, &req.exec_id, req.signal, req.all)
            .await
            .map_err(to_ttrpc)?;
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all, fields(id = %req.id, exec_id = %req.exec_id))]
    async fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> R<DeleteResponse> {
        crate::trim::rpc();
        let (pid, e) = self
            .tm
            .delete(&req.id, &req.exec_id)
            .await
            .map_err(to_ttrpc)?;
        Ok(DeleteResponse {
            pid,
            exit_status: e.code as u32,
            exited_at: MessageField::some(convert::ts(e.at)),
            ..Default::default()
        })
    }

    #[tracing::instrument(skip_all, fields(id = %req.id, exec_id = %req.exec_id))]
    async fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> R<Empty> {
        crate::trim::rpc();
        let process =
            convert::json_any("exec process spec", req.spec.as_ref()).map_err(to_ttrpc)?;
        let stdio = convert::stdio(&req.stdin, &req.stdout, &req.stderr, req.terminal);
        self.tm
            .exec(&req.id, &req.exec_id, stdio, process)
            .await
            .map_err(to_ttrpc)?;
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all, fields(id = %req.id, exec_id = %req.exec_id))]
    async fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> R<Empty> {
        crate::trim::rpc();
        self.tm
            .resize(&req.id, &req.exec_id, req.width, req.height)
            .await
            .map_err(to_ttrpc)?;
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all, fields(id = %req.id, exec_id = %req.exec_id))]
    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> R<Empty> {
        crate::trim::rpc();
        if req.stdin {
            self.tm
                .close_stdin(&req.id, &req.exec_id)
                .await
                .map_err(to_ttrpc)?;
        }
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all, fields(id = %req.id))]
    async fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> R<PidsResponse> {
        crate::trim::rpc();
        let pids = self.tm.pids(&req.id).await.map_err(to_ttrpc)?;
        let mut processes = Vec::with_capacity(pids.len());
        for (pid, exec_id) in pids {
            let info = match exec_id {
                Some(e) => MessageField::some(convert::process_details(&e).map_err(to_ttrpc)?),
                None => MessageField::none(),
            };
            processes.push(ProcessInfo {
                pid,
                info,
                ..Default::default()
            });
        }
        Ok(PidsResponse {
            processes,
            ..Default::default()
        })
    }

    #[tracing::instrument(skip_all, fields(id = %req.id))]
    async fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> R<Empty> {
        crate::trim::rpc();
        self.tm.pause(&req.id).await.map_err(to_ttrpc)?;
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all, fields(id = %req.id))]
    async fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> R<Empty> {
        crate::trim::rpc();
        self.tm.resume(&req.id).await.map_err(to_ttrpc)?;
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all, fields(id = %req.id))]
    async fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> R<Empty> {
        crate::trim::rpc();
        let r: oci_spec::runtime::LinuxResources =
            convert::json_any("resources", req.resources.as_ref()).map_err(to_ttrpc)?;
        self.tm.update(&req.id, &r).await.map_err(to_ttrpc)?;
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all, fields(id = %req.id))]
    async fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> R<StatsResponse> {
        crate::trim::rpc();
        let s = self.tm.stats(&req.id).await.map_err(to_ttrpc)?;
        let any = convert::metrics(&s).map_err(to_ttrpc)?;
        Ok(StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    #[tracing::instrument(skip_all, fields(id = %req.id))]
    async fn checkpoint(&self, _ctx: &TtrpcContext, req: CheckpointTaskRequest) -> R<Empty> {
        crate::trim::rpc();
        self.tm.checkpoint(&req.id).await.map_err(to_ttrpc)?;
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all, fields(id = %req.id))]
    async fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> R<ConnectResponse> {
        crate::trim::rpc();
        let task_pid = self.tm.init_pid(&req.id).await.map_err(to_ttrpc)?;
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    #[tracing::instrument(skip_all, fields(id = %req.id))]
    async fn shutdown(&self, _ctx: &TtrpcContext, req: ShutdownRequest) -> R<Empty> {
        crate::trim::rpc();
        if req.now {
            let n = self.tm.delete_all().await;
            tracing::info!(removed = n, "shutdown now: removed every container");
        }
        if self.tm.is_empty() {
            tracing::info!("no container left: shutting down");
            self.exit.signal();
        }
        Ok(Empty::new())
    }
}
