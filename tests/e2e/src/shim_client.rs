//! A ttrpc client straight to a running shim's Task service, for what ctr 1.6 cannot reach
//! (Update, Checkpoint, Connect, Pids details) and for the exact ttrpc status codes that ctr
//! would turn into text. Synchronous wrappers over a private current-thread tokio runtime; every
//! call has the hang guard [`TIMEOUT`].
//!
//! The shim's address is the `address` file in the task's bundle (`unix:///run/containerd/s/…`).
//! Drop the client before the task is deleted, so that the shim never waits on this connection.

use std::future::Future;
use std::path::Path;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::shim_async::{Client, TaskClient};
use containerd_shim_protos::ttrpc;

pub use containerd_shim_protos::api;
pub use containerd_shim_protos::shim::oci::ProcessDetails;
pub use containerd_shim_protos::ttrpc::Code;

use crate::cmd::TIMEOUT;

/// type_url containerd uses for an Update's `resources` (the value is the JSON of the OCI
/// `LinuxResources`).
pub const LINUX_RESOURCES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

/// type_url containerd uses for an Exec's `spec` (the value is the JSON of the OCI `Process`).
pub const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// type_url of the `ProcessInfo.info` the runc shims attach to exec pids.
pub const PROCESS_DETAILS_TYPE_URL: &str = "containerd.runc.v1.ProcessDetails";

/// A connection to one shim.
pub struct ShimClient {
    rt: tokio::runtime::Runtime,
    task: TaskClient,
    /// The address connected to.
    pub address: String,
}

impl std::fmt::Debug for ShimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShimClient")
            .field("address", &self.address)
            .finish()
    }
}

/// The shim address in `<bundle>/address` (trimmed).
pub fn address_of(bundle: &Path) -> String {
    let path = bundle.join("address");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read the shim address {}: {e}", path.display()));
    let addr = text.trim().to_string();
    assert!(
        addr.starts_with("unix:///run/containerd/s/"),
        "unexpected shim address in {}: {addr:?}",
        path.display()
    );
    addr
}

impl ShimClient {
    /// Connect to `address` (`unix:///…`).
    pub fn connect(address: &str) -> ShimClient {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("build a tokio runtime: {e}"));
        let client = rt
            .block_on(async {
                tokio::time::timeout(TIMEOUT, Client::connect(address))
                    .await
                    .unwrap_or_else(|_| panic!("connecting to {address} hung for {TIMEOUT:?}"))
            })
            .unwrap_or_else(|e| panic!("connect to the shim at {address}: {e}"));
        ShimClient {
            rt,
            task: TaskClient::new(client),
            address: address.to_string(),
        }
    }

    /// Connect to the shim serving the task whose bundle is `bundle`.
    pub fn for_bundle(bundle: &Path) -> ShimClient {
        ShimClient::connect(&address_of(bundle))
    }

    /// The Task service client, for use inside [`ShimClient::call`].
    pub fn task(&self) -> &TaskClient {
        &self.task
    }

    /// Run one RPC future (built from [`ShimClient::task`] and [`ctx`]) to completion; panics
    /// when it hangs longer than [`TIMEOUT`].
    pub fn call<T>(&self, f: impl Future<Output = ttrpc::Result<T>>) -> ttrpc::Result<T> {
        let address = &self.address;
        self.rt.block_on(async {
            tokio::time::timeout(TIMEOUT, f)
                .await
                .unwrap_or_else(|_| panic!("an RPC to {address} hung for {TIMEOUT:?}"))
        })
    }
}

/// A request context without deadline (the hang guard is in [`ShimClient::call`]).
pub fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(0)
}

/// The status code and message of a failed RPC; panics (with the error) when the failure is not
/// a status the shim returned (a broken connection, say).
pub fn status(e: &ttrpc::Error) -> (Code, String) {
    match e {
        ttrpc::Error::RpcStatus(s) => (s.code.enum_value_or_default(), s.message.clone()),
        other => panic!("not an RPC status from the shim: {other:?}"),
    }
}

/// Expect `r` to have failed with `code` and a message containing every string of `want`;
/// returns the message.
pub fn expect_status<T: std::fmt::Debug>(
    what: &str,
    r: ttrpc::Result<T>,
    code: Code,
    want: &[&str],
) -> String {
    let e = match r {
        Ok(v) => panic!("{what}: expected {code:?}, but the RPC succeeded: {v:?}"),
        Err(e) => e,
    };
    let (got, msg) = status(&e);
    assert_eq!(got, code, "{what}: wrong status code (message {msg:?})");
    for w in want {
        assert!(msg.contains(w), "{what}: message {msg:?} lacks {w:?}");
    }
    msg
}

/// An `Any` whose value is the JSON `value` (how containerd sends OCI structures).
pub fn json_any(type_url: &str, value: &serde_json::Value) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: value.to_string().into_bytes(),
        ..Default::default()
    }
}
