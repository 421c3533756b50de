//! Pod-level rules: one backend per pod, and processes outliving an init without its own pid
//! namespace.

use std::sync::Arc;

use nexcage_core::routing::{Subject, BACKEND_ANNOTATION};
use nexcage_core::{Error, HasKind, Result};

use crate::backends::AnyBackend;
use crate::process::Process;

/// A pod's containers all run on the backend of its sandbox; a container that names another one
/// in its own `nexcage.io/backend` annotation is refused.
pub(crate) fn pod_backend_check(
    id: &str,
    subject: &Subject<'_>,
    sandbox_id: &str,
    pod_backend: &str,
) -> Result<()> {
    let wanted = subject.annotations.and_then(|a| a.get(BACKEND_ANNOTATION));
    match wanted {
        Some(b) if b != pod_backend => Err(Error::precondition(format!(
            "container {id}: annotation {BACKEND_ANNOTATION}={b} disagrees with its pod, whose sandbox \
             {sandbox_id} runs on {pod_backend}; every container of a pod runs on the pod's backend"
        ))),
        _ => Ok(()),
    }
}

/// Whether the container gets a fresh pid namespace (whose processes the kernel kills when the
/// init exits), rather than the host's or a shared one.
pub(crate) fn has_own_pid_namespace(spec: &oci_spec::runtime::Spec) -> bool {
    use oci_spec::runtime::LinuxNamespaceType;
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::Pid))
        .is_some_and(|n| n.path().is_none())
}

/// Without its own pid namespace, processes of a container survive its init; kill them when the
/// init exits, as containerd's runc shim does.
pub(crate) fn kill_leftovers_on_exit(id: &str, init: &Arc<Process>, backend: &Arc<AnyBackend>) {
    let (id, init, backend) = (id.to_string(), init.clone(), backend.clone());
    tokio::spawn(async move {
        init.wait().await;
        if let Err(e) = backend.kill(&id, libc::SIGKILL as u32, true).await {
            if e.kind() != nexcage_core::ErrorKind::NotFound {
                tracing::warn!(id = %id, error = %e, "kill processes left after the init exited");
            }
        }
    });
}
