//! Image stores: unpacked layer stacks, each kept once per chain id, and container root file
//! systems made from them.
//!
//! Both stores unpack a layer into a temporary location (`tmp/…` or `<parent>/tmp-…`), check the
//! blob digest before decompressing and the diff id after, and only then rename it to its chain
//! id: a name that exists is complete. An interrupted unpack leaves a temporary, which
//! [`Store::sweep`] removes. Unpacks hold a shared `flock` on the store's lock file and `sweep`
//! takes it exclusively without waiting, so one process never sweeps another's unpack in
//! progress (every shim process of a node shares the store).

mod copy;
mod dir;
mod zfs;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FlockOperation, Mode, OFlags};

pub use dir::DirStore;
pub use zfs::{ZfsStore, ZfsStoreConfig, LAYER_SNAPSHOT};

use crate::apply::ApplyOptions;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::{apply_layer, verify_blob, Applied, LayerBlob};
use crate::oci::{BlobSource, ImageLayer, ResolvedImage};

/// A container root file system made by a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// The name the caller gave (a directory name, or a dataset for [`ZfsStore`]).
    pub name: String,
    /// Where it is mounted or lives.
    pub path: PathBuf,
    /// The dataset, for [`ZfsStore`].
    pub dataset: Option<String>,
}

/// An image store.
#[trait_variant::make(Send)]
pub trait Store {
    /// Unpack every layer of `image` the store lacks, lowest first; returns the top chain id.
    async fn unpack(&self, src: &Arc<dyn BlobSource>, image: &ResolvedImage) -> Result<Digest>;
    /// Whether the stack with this chain id is unpacked.
    async fn has_layer(&self, chain_id: &Digest) -> Result<bool>;
    /// A new writable root file system `name` with the content of the stack `chain_id`.
    async fn create_rootfs(&self, chain_id: &Digest, name: &str) -> Result<Rootfs>;
    /// Remove a root file system this store made.
    async fn remove_rootfs(&self, name: &str) -> Result<()>;
    /// Remove what interrupted unpacks left; returns how many leftovers went. Does nothing (0)
    /// while another unpack holds the store lock.
    async fn sweep(&self) -> Result<usize>;
}

/// Layers of `image` in order, with the chain id below each (`None` for the first).
pub(crate) fn with_parents(image: &ResolvedImage) -> Result<Vec<(Option<Digest>, ImageLayer)>> {
    if image.layers.is_empty() {
        return Err(Error::Unsupported("images without layers".into()));
    }
    let mut out = Vec::new();
    let mut parent = None;
    for l in &image.layers {
        out.push((parent.clone(), l.clone()));
        parent = Some(l.chain_id.clone());
    }
    Ok(out)
}

/// Check the blob, then apply it onto `target` (blocking: run it off the async runtime).
pub(crate) fn verify_and_apply(
    src: &dyn BlobSource,
    layer: &ImageLayer,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<Applied> {
    let (r, _) = src.open(&layer.digest)?;
    verify_blob(r, "layer blob", &layer.digest, Some(layer.size))?;
    let (r, _) = src.open(&layer.digest)?;
    let blob = LayerBlob {
        media_type: Some(layer.media_type.clone()),
        digest: Some(layer.digest.clone()),
        size: Some(layer.size),
        diff_id: Some(layer.diff_id.clone()),
    };
    apply_layer(r, &blob, target, opts)
}

/// Run blocking work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Core(nexcage_core::Error::internal(format!("blocking task: {e}"))))?
}

/// Eight random hex digits for temporary names.
pub(crate) fn random_suffix() -> String {
    let mut b = [0u8; 4];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    hex::encode(b)
}

/// The store lock: a file `flock`ed shared by unpacks, exclusively by sweep.
#[derive(Debug, Clone)]
pub(crate) struct StoreLock {
    path: PathBuf,
}

/// A held lock; released on drop (closing the fd).
#[derive(Debug)]
pub(crate) struct Held(#[allow(dead_code)] OwnedFd);

impl StoreLock {
    pub(crate) fn new(path: PathBuf) -> Self {
        StoreLock { path }
    }

    fn open(&self) -> Result<OwnedFd> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", dir.display(), e))?;
        }
        rustix::fs::open(
            &self.path,
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io("open", self.path.display(), e.into()))
    }

    /// Shared, waiting for a sweep to finish.
    pub(crate) async fn shared(&self) -> Result<Held> {
        let me = self.clone();
        blocking(move || {
            let fd = me.open()?;
            rustix::fs::flock(&fd, FlockOperation::LockShared)
                .map_err(|e| Error::io("flock", me.path.display(), e.into()))?;
            Ok(Held(fd))
        })
        .await
    }

    /// Exclusive, or `None` at once when anyone holds it.
    pub(crate) fn try_exclusive(&self) -> Result<Option<Held>> {
        let fd = self.open()?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Held(fd))),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::io("flock", self.path.display(), e.into())),
        }
    }
}
