//! Blobs from containerd's content store, over containerd's gRPC API (feature `containerd`).
//!
//! [`ContainerdSource::for_image`] asks the Images service for the image's target descriptor;
//! [`ContainerdSource::for_container`] first asks the Containers service which image a
//! container was made from. The source then looks like a one-image OCI layout: [`index`]
//! is an `index.json` naming that target (annotated with the image name as its
//! `org.opencontainers.image.ref.name`), and [`open`] streams a blob by digest from the
//! Content service (`Info` for its size, then `Read`). [`super::resolve`] picks the host
//! platform from an index and checks every blob against its digest, exactly as for a layout.
//!
//! [`BlobSource`] is synchronous and the stores call it from blocking threads: `open` starts
//! the gRPC read as a task on the runtime the source was made on and hands the chunks over a
//! small bounded channel (at most [`CHUNKS_IN_FLIGHT`] chunks buffered, containerd sends 1 MiB
//! ones), so memory stays bounded and dropping the reader cancels the read. Call the source's
//! methods off the async runtime (`spawn_blocking`), never from a task: they wait for the
//! runtime.
//!
//! [`index`]: BlobSource::index
//! [`open`]: BlobSource::open

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{
    GetContainerRequest, GetImageRequest, InfoRequest, ReadContentRequest,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};
use nexcage_core::ErrorKind;
use tokio::sync::{mpsc, oneshot};

use super::resolve::REF_NAME;
use super::source::BlobSource;
use crate::digest::Digest;
use crate::error::{Error, Result};

/// Chunks a reader may have buffered ahead of the consumer.
const CHUNKS_IN_FLIGHT: usize = 4;
/// The gRPC metadata key that carries the namespace.
const NAMESPACE_HEADER: &str = "containerd-namespace";

/// A connection to containerd in one namespace.
#[derive(Clone)]
pub struct Containerd {
    channel: Channel,
    address: PathBuf,
    namespace: String,
}

impl fmt::Debug for Containerd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Containerd")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .finish()
    }
}

fn core(kind: ErrorKind, msg: String) -> Error {
    Error::Core(nexcage_core::Error::new(kind, msg))
}

/// A gRPC status as this crate's error; `what` says what was asked for.
fn status_err(what: &str, s: &Status) -> Error {
    let msg = format!("containerd: {what}: {}", s.message());
    match s.code() {
        Code::NotFound => Error::NotFound(format!("{what} (containerd: {})", s.message())),
        Code::InvalidArgument => core(ErrorKind::InvalidArgument, msg),
        Code::FailedPrecondition => core(ErrorKind::FailedPrecondition, msg),
        Code::Unavailable => core(ErrorKind::Unavailable, msg),
        Code::DeadlineExceeded => core(ErrorKind::DeadlineExceeded, msg),
        Code::Unimplemented => core(ErrorKind::Unimplemented, msg),
        _ => core(ErrorKind::Internal, msg),
    }
}

impl Containerd {
    /// Connect to containerd's gRPC socket `address` (a path, or `unix://` and a path) and use
    /// `namespace`. Fails (Unavailable) when nothing answers there.
    pub async fn connect(address: impl AsRef<Path>, namespace: &str) -> Result<Containerd> {
        let raw = address.as_ref().to_string_lossy();
        let address = PathBuf::from(raw.strip_prefix("unix://").unwrap_or(&raw));
        if namespace.is_empty() {
            return Err(core(
                ErrorKind::InvalidArgument,
                "containerd namespace: empty".into(),
            ));
        }
        let channel = containerd_client::connect(&address).await.map_err(|e| {
            core(
                ErrorKind::Unavailable,
                format!(
                    "cannot connect to containerd at {}: {e} ({})",
                    address.display(),
                    std::error::Error::source(&e)
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ),
            )
        })?;
        Ok(Containerd {
            channel,
            address,
            namespace: namespace.to_string(),
        })
    }

    /// The namespace in use.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn request<T>(&self, msg: T) -> Result<Request<T>> {
        let mut req = Request::new(msg);
        let ns = self.namespace.parse().map_err(|_| {
            core(
                ErrorKind::InvalidArgument,
                format!(
                    "containerd namespace {:?}: not a valid header value",
                    self.namespace
                ),
            )
        })?;
        req.metadata_mut().insert(NAMESPACE_HEADER, ns);
        Ok(req)
    }

    /// The image a container was made from (Containers service).
    pub async fn container_image(&self, id: &str) -> Result<String> {
        let what = format!("container {id:?} in namespace {:?}", self.namespace);
        let resp = ContainersClient::new(self.channel.clone())
            .get(self.request(GetContainerRequest { id: id.to_string() })?)
            .await
            .map_err(|s| status_err(&what, &s))?;
        let image = resp
            .into_inner()
            .container
            .map(|c| c.image)
            .unwrap_or_default();
        if image.is_empty() {
            return Err(core(
                ErrorKind::FailedPrecondition,
                format!("{what} has no image (made from a rootfs path?)"),
            ));
        }
        Ok(image)
    }

    /// The target descriptor of image `name` (Images service), as OCI JSON with `name` as its
    /// reference annotation.
    async fn target(&self, name: &str) -> Result<serde_json::Value> {
        let what = format!("image {name:?} in namespace {:?}", self.namespace);
        let resp = ImagesClient::new(self.channel.clone())
            .get(self.request(GetImageRequest {
                name: name.to_string(),
            })?)
            .await
            .map_err(|s| status_err(&what, &s))?;
        let target = resp
            .into_inner()
            .image
            .and_then(|i| i.target)
            .ok_or_else(|| Error::malformed("containerd image", format!("{what}: no target")))?;
        let digest: Digest = target.digest.parse()?;
        let size = u64::try_from(target.size).map_err(|_| {
            Error::malformed("containerd image", format!("{what}: size {}", target.size))
        })?;
        let mut annotations: HashMap<String, String> = target.annotations;
        annotations.insert(REF_NAME.to_string(), name.to_string());
        Ok(serde_json::json!({
            "mediaType": target.media_type,
            "digest": digest.to_string(),
            "size": size,
            "annotations": annotations,
        }))
    }
}

/// An image in containerd's content store as a [`BlobSource`] (see the module docs).
pub struct ContainerdSource {
    conn: Containerd,
    image: String,
    index: Vec<u8>,
    runtime: tokio::runtime::Handle,
}

impl fmt::Debug for ContainerdSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerdSource")
            .field("conn", &self.conn)
            .field("image", &self.image)
            .finish()
    }
}

impl ContainerdSource {
    /// The image `name` of `conn`'s namespace. Must run on the runtime that will serve the
    /// reads (it keeps a handle to it).
    pub async fn for_image(conn: &Containerd, name: &str) -> Result<ContainerdSource> {
        let target = conn.target(name).await?;
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [target],
        }))
        .map_err(|e| core(ErrorKind::Internal, format!("index for {name}: {e}")))?;
        Ok(ContainerdSource {
            conn: conn.clone(),
            image: name.to_string(),
            index,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The image container `id` of `conn`'s namespace was made from.
    pub async fn for_container(conn: &Containerd, id: &str) -> Result<ContainerdSource> {
        let image = conn.container_image(id).await?;
        ContainerdSource::for_image(conn, &image).await
    }

    /// The image's name in containerd (also the reference name in [`BlobSource::index`]).
    pub fn image(&self) -> &str {
        &self.image
    }

    /// `containerd://<namespace>/<image>`, for the catalog's `source`.
    pub fn describe(&self) -> String {
        format!("containerd://{}/{}", self.conn.namespace, self.image)
    }
}

/// What the read task sends: first the size (or why there is none), then chunks.
type Chunk = std::result::Result<Vec<u8>, io::Error>;

async fn stream_blob(
    conn: Containerd,
    digest: String,
    size_tx: oneshot::Sender<Result<u64>>,
    tx: mpsc::Sender<Chunk>,
) {
    let what = format!("blob {digest} in namespace {:?}", conn.namespace);
    let mut client = ContentClient::new(conn.channel.clone()).max_decoding_message_size(16 << 20);
    let info = async {
        let resp = client
            .info(conn.request(InfoRequest {
                digest: digest.clone(),
            })?)
            .await
            .map_err(|s| status_err(&what, &s))?;
        let size = resp.into_inner().info.map(|i| i.size).unwrap_or(-1);
        u64::try_from(size).map_err(|_| {
            Error::malformed("containerd content info", format!("{what}: size {size}"))
        })
    }
    .await;
    let ok = info.is_ok();
    if size_tx.send(info).is_err() || !ok {
        return;
    }
    let req = match conn.request(ReadContentRequest {
        digest,
        offset: 0,
        size: 0,
    }) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Err(io::Error::other(e.chain()))).await;
            return;
        }
    };
    let mut stream = match client.read(req).await {
        Ok(s) => s.into_inner(),
        Err(s) => {
            let _ = tx
                .send(Err(io::Error::other(status_err(&what, &s).chain())))
                .await;
            return;
        }
    };
    loop {
        let item = match stream.message().await {
            Ok(Some(m)) if m.data.is_empty() => continue,
            Ok(Some(m)) => Ok(m.data),
            Ok(None) => return,
            Err(s) => Err(io::Error::other(status_err(&what, &s).chain())),
        };
        let end = item.is_err();
        // The reader went away: stop (dropping the stream cancels the read).
        if tx.send(item).await.is_err() || end {
            return;
        }
    }
}

/// The blocking side of a blob read.
struct ChunkReader {
    rx: mpsc::Receiver<Chunk>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(v)) => {
                    self.buf = v;
                    self.pos = 0;
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl BlobSource for ContainerdSource {
    fn index(&self) -> Result<Vec<u8>> {
        Ok(self.index.clone())
    }

    fn open(&self, digest: &Digest) -> Result<(Box<dyn Read + Send>, u64)> {
        let (size_tx, size_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        self.runtime.spawn(stream_blob(
            self.conn.clone(),
            digest.to_string(),
            size_tx,
            tx,
        ));
        let size = size_rx.blocking_recv().map_err(|_| {
            core(
                ErrorKind::Internal,
                format!("containerd read of {digest}: the runtime went away"),
            )
        })??;
        let reader = ChunkReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        };
        Ok((Box::new(reader), size))
    }
}
