//! Image stores: unpacked layer stacks, each kept once per chain id, and container root file
//! systems made from them.
//!
//! Both stores unpack a layer into a temporary location (`tmp/…` or `<parent>/tmp-…`), check the
//! blob digest before decompressing and the diff id after, and only then rename it to its chain
//! id: a name that exists is complete. An interrupted unpack leaves a temporary, which
//! [`Store::sweep`] removes. Unpacks hold a shared `flock` on the store's lock file and `sweep`
//! takes it exclusively without waiting, so one process never sweeps another's unpack in
//! progress (every shim process of a node shares the store). `prune`
//! ([`crate::images::prune`]) waits for the exclusive lock, so no unpack, import or rootfs
//! creation runs while it decides what is unused.
//!
//! Each store keeps a [`Catalog`]: named images, what it knows of each stack, and the root file
//! systems it made (recorded by [`Store::create_rootfs`], dropped by [`Store::remove_rootfs`]).

mod any;
mod copy;
mod dir;
mod zfs;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FlockOperation, Mode, OFlags};

pub use any::AnyStore;
pub use dir::DirStore;
pub use zfs::{ZfsStore, ZfsStoreConfig, LAYER_SNAPSHOT};

use crate::apply::ApplyOptions;
use crate::catalog::{now, Catalog, LayerRecord};
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

/// What an unpack did with one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStatus {
    /// The layer.
    pub layer: ImageLayer,
    /// `true`: unpacked now; `false`: the store had it already.
    pub unpacked: bool,
    /// Size of the uncompressed tar, when unpacked now.
    pub unpacked_size: Option<u64>,
}

/// A complete stack in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLayer {
    /// Its chain id.
    pub chain_id: Digest,
    /// The stack below, when known (`None`: a first layer, or not recorded).
    pub parent: Option<Digest>,
}

/// A root file system that depends on a stack of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsUse {
    /// Its name (directory name or dataset).
    pub name: String,
    /// The stack it was made from.
    pub chain_id: Digest,
}

/// The phase of a layer's blob being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Hashing the blob before anything is decompressed.
    Verify,
    /// Decompressing and applying it.
    Apply,
}

/// Progress of an unpack (a progress bar, a log). Called from blocking threads.
pub trait Progress: Send + Sync {
    /// Layer `index` (from 0) of `count` starts; `present`: the store has it, nothing to do.
    fn layer(&self, index: usize, count: usize, layer: &ImageLayer, present: bool);
    /// `bytes` more of the current layer's blob were read (each blob is read twice: once to
    /// verify, once to apply; each phase counts up to the blob size).
    fn read(&self, phase: Phase, bytes: u64);
    /// The current layer is done.
    fn layer_done(&self, status: &LayerStatus);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn layer(&self, _: usize, _: usize, _: &ImageLayer, _: bool) {}
    fn read(&self, _: Phase, _: u64) {}
    fn layer_done(&self, _: &LayerStatus) {}
}

/// A held store lock (see [`Store::lock_shared`]); released on drop.
#[derive(Debug)]
pub struct StoreGuard(#[allow(dead_code)] Held);

/// An image store.
#[trait_variant::make(Send)]
pub trait Store {
    /// Unpack every layer of `image` the store lacks, lowest first; returns the top chain id.
    ///
    /// Layers only an unpack references are not protected from [`crate::images::prune`]: name
    /// the image ([`crate::images::import`]) or make a rootfs from it.
    async fn unpack(&self, src: &Arc<dyn BlobSource>, image: &ResolvedImage) -> Result<Digest>;
    /// [`Store::unpack`], reporting progress and what happened to each layer.
    async fn unpack_with(
        &self,
        src: &Arc<dyn BlobSource>,
        image: &ResolvedImage,
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<LayerStatus>>;
    /// Whether the stack with this chain id is unpacked.
    async fn has_layer(&self, chain_id: &Digest) -> Result<bool>;
    /// A new writable root file system `name` with the content of the stack `chain_id`,
    /// recorded in the catalog as a user of that stack.
    async fn create_rootfs(&self, chain_id: &Digest, name: &str) -> Result<Rootfs>;
    /// Remove a root file system this store made (and its catalog record).
    async fn remove_rootfs(&self, name: &str) -> Result<()>;
    /// Remove what interrupted unpacks left; returns how many leftovers went. Does nothing (0)
    /// while another unpack holds the store lock.
    async fn sweep(&self) -> Result<usize>;
    /// The store's catalog.
    fn catalog(&self) -> &Catalog;
    /// Every complete stack in the store.
    async fn layers(&self) -> Result<Vec<StoredLayer>>;
    /// Remove one stack (callers hold the exclusive lock and know nothing uses it; the ZFS
    /// store fails while a clone depends on it).
    async fn remove_layer(&self, chain_id: &Digest) -> Result<()>;
    /// Root file systems that exist now, with the stack each was made from.
    async fn rootfs_users(&self) -> Result<Vec<RootfsUse>>;
    /// The store lock, shared (what unpacks and rootfs creation hold); waits for an exclusive
    /// holder.
    async fn lock_shared(&self) -> Result<StoreGuard>;
    /// The store lock, exclusive (what prune holds); waits until every shared holder is done.
    async fn lock_exclusive(&self) -> Result<StoreGuard>;
    /// Where the store lives, for messages (`dir store at …`, `zfs store below …`).
    fn describe(&self) -> String;
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

/// Passes reads on and reports their sizes.
struct Counting<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
    phase: Phase,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.read(self.phase, n as u64);
        Ok(n)
    }
}

/// Check the blob, then apply it onto `target` (blocking: run it off the async runtime).
pub(crate) fn verify_and_apply(
    src: &dyn BlobSource,
    layer: &ImageLayer,
    target: &Path,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<Applied> {
    let (r, _) = src.open(&layer.digest)?;
    let r = Counting {
        inner: r,
        progress,
        phase: Phase::Verify,
    };
    verify_blob(r, "layer blob", &layer.digest, Some(layer.size))?;
    let (r, _) = src.open(&layer.digest)?;
    let r = Counting {
        inner: r,
        progress,
        phase: Phase::Apply,
    };
    let blob = LayerBlob {
        media_type: Some(layer.media_type.clone()),
        digest: Some(layer.digest.clone()),
        size: Some(layer.size),
        diff_id: Some(layer.diff_id.clone()),
    };
    apply_layer(r, &blob, target, opts)
}

/// Record what an unpack learnt about each stack (parent, diff id, size) in the catalog.
pub(crate) async fn record_layers(catalog: &Catalog, statuses: &[LayerStatus]) -> Result<()> {
    let mut parent = None;
    let mut records = Vec::new();
    for s in statuses {
        records.push((
            s.layer.chain_id.clone(),
            LayerRecord {
                parent: parent.clone(),
                diff_id: s.layer.diff_id.clone(),
                unpacked_size: s.unpacked_size,
                created: now(),
            },
        ));
        parent = Some(s.layer.chain_id.clone());
    }
    catalog
        .update(move |c| {
            for (chain, rec) in records {
                match c.layers.get_mut(&chain) {
                    // Keep what an earlier unpack measured.
                    Some(old) => {
                        old.parent = rec.parent;
                        old.unpacked_size = old.unpacked_size.or(rec.unpacked_size);
                    }
                    None => {
                        c.layers.insert(chain, rec);
                    }
                }
            }
            Ok(())
        })
        .await
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

    /// Exclusive, waiting for every holder.
    pub(crate) async fn exclusive(&self) -> Result<Held> {
        let me = self.clone();
        blocking(move || {
            let fd = me.open()?;
            rustix::fs::flock(&fd, FlockOperation::LockExclusive)
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

/// [`Store::unpack`] in terms of [`Store::unpack_with`], shared by the stores.
pub(crate) async fn unpack_top<S: Store + Sync>(
    store: &S,
    src: &Arc<dyn BlobSource>,
    image: &ResolvedImage,
) -> Result<Digest> {
    store.unpack_with(src, image, Arc::new(NoProgress)).await?;
    image
        .top()
        .cloned()
        .ok_or_else(|| Error::Unsupported("images without layers".into()))
}
