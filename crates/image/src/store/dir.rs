//! The directory store: plain directories under a root, no mounts, any file system.
//!
//! ```text
//! <root>/store.lock
//! <root>/layers/<chain-id hex>/   the full tree of the stack up to that layer
//! <root>/rootfs/<name>/           container root file systems (deep copies)
//! <root>/tmp/                     unpacks and copies in progress
//! ```
//!
//! A stack's tree starts as a copy of its parent's tree whose regular files are hardlinks (no
//! data is copied), and the layer is applied on top. A rootfs is a deep copy of the top tree, so
//! nothing a container writes can reach the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, RenameFlags};
use rustix::io::Errno;

use super::copy::{copy_tree, CopyMode};
use super::{
    blocking, random_suffix, record_layers, unpack_top, verify_and_apply, with_parents,
    LayerStatus, Progress, Rootfs, RootfsUse, Store, StoreGuard, StoreLock, StoredLayer,
};
use crate::apply::ApplyOptions;
use crate::catalog::{now, Catalog, RootfsRecord};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{BlobSource, ResolvedImage};

/// The directory store.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
    opts: ApplyOptions,
    lock: StoreLock,
    catalog: Catalog,
}

/// A rootfs name: one path component of `[A-Za-z0-9_.-]`, not starting with `.`.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Core(nexcage_core::Error::invalid(format!(
            "invalid rootfs name {name:?}"
        ))))
    }
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    match rustix::fs::mkdir(p, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(Error::io("mkdir", p.display(), e.into())),
    }
}

/// Rename without replacing; `Ok(false)` when the destination exists.
fn rename_new(from: &Path, to: &Path) -> Result<bool> {
    let cwd = rustix::fs::CWD;
    match rustix::fs::renameat_with(cwd, from, cwd, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::EXIST | Errno::NOTEMPTY) => Ok(false),
        Err(e) => Err(Error::io("rename", to.display(), e.into())),
    }
}

/// Remove a tree of the store (blocking).
fn remove_tree(p: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return Ok(());
    };
    let dir = rustix::fs::open(
        parent,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", parent.display(), e.into()))?;
    let cname = crate::path::cstr(name.as_encoded_bytes());
    crate::fsops::remove_all(
        std::os::fd::AsFd::as_fd(&dir),
        &cname,
        4096,
        &p.display().to_string(),
    )
}

impl DirStore {
    /// A store under `root` (created if missing), applying layers with `opts`.
    pub fn open(root: impl AsRef<Path>, opts: ApplyOptions) -> Result<DirStore> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|e| Error::io("mkdir", root.display(), e))?;
        mkdir(&root.join("layers"), 0o700)?;
        mkdir(&root.join("tmp"), 0o700)?;
        // Containers (and unprivileged LXC's mapped root) must reach their rootfs; listing is
        // not needed.
        mkdir(&root.join("rootfs"), 0o711)?;
        let lock = StoreLock::new(root.join("store.lock"));
        let catalog = Catalog::new(root.join("catalog.json"), root.join("catalog.lock"));
        Ok(DirStore {
            root,
            opts,
            lock,
            catalog,
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The tree of a stack.
    pub fn layer_path(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("layers").join(chain_id.hex())
    }

    /// Where the rootfs `name` lives.
    pub fn rootfs_path(&self, name: &str) -> PathBuf {
        self.root.join("rootfs").join(name)
    }

    fn tmp(&self, what: &str) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{what}-{}", random_suffix()))
    }

    /// Unpack one layer (the caller holds the shared lock); the uncompressed size when this
    /// call unpacked it.
    async fn unpack_one(
        &self,
        src: &Arc<dyn BlobSource>,
        parent: Option<Digest>,
        layer: crate::oci::ImageLayer,
        progress: &Arc<dyn Progress>,
    ) -> Result<Option<u64>> {
        let dest = self.layer_path(&layer.chain_id);
        if dest.exists() {
            return Ok(None);
        }
        let tmp = self.tmp(&format!("layer-{}", layer.chain_id.hex()));
        let (src, opts, progress) = (Arc::clone(src), self.opts.clone(), Arc::clone(progress));
        let parent_tree = parent.map(|p| self.layer_path(&p));
        let t = tmp.clone();
        let work = blocking(move || {
            match parent_tree {
                Some(p) => copy_tree(
                    &p,
                    t.parent().unwrap_or(&t),
                    &tmp_name(&t),
                    CopyMode::ShareFiles,
                )?,
                None => mkdir(&t, 0o755)?,
            }
            let applied = verify_and_apply(src.as_ref(), &layer, &t, &opts, progress.as_ref())?;
            if !rename_new(&t, &dest)? {
                tracing::debug!(layer = %layer.chain_id, "unpacked concurrently elsewhere");
                remove_tree(&t)?;
                return Ok(None);
            }
            Ok(Some(applied.uncompressed_bytes))
        })
        .await;
        if work.is_err() {
            let t = tmp.clone();
            if let Err(e) = blocking(move || remove_tree(&t)).await {
                tracing::warn!(tmp = %tmp.display(), error = %e, "leftover after a failed unpack");
            }
        }
        work
    }
}

fn tmp_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Store for DirStore {
    async fn unpack(&self, src: &Arc<dyn BlobSource>, image: &ResolvedImage) -> Result<Digest> {
        unpack_top(self, src, image).await
    }

    async fn unpack_with(
        &self,
        src: &Arc<dyn BlobSource>,
        image: &ResolvedImage,
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<LayerStatus>> {
        let layers = with_parents(image)?;
        let _held = self.lock.shared().await?;
        let mut statuses = Vec::with_capacity(layers.len());
        let count = layers.len();
        for (i, (parent, layer)) in layers.into_iter().enumerate() {
            let present = self.has_layer(&layer.chain_id).await?;
            progress.layer(i, count, &layer, present);
            let unpacked_size = if present {
                None
            } else {
                tracing::info!(layer = %layer.chain_id, blob = %layer.digest, "unpacking layer");
                self.unpack_one(src, parent, layer.clone(), &progress)
                    .await?
            };
            let status = LayerStatus {
                layer,
                unpacked: unpacked_size.is_some(),
                unpacked_size,
            };
            progress.layer_done(&status);
            statuses.push(status);
        }
        record_layers(&self.catalog, &statuses).await?;
        Ok(statuses)
    }

    async fn has_layer(&self, chain_id: &Digest) -> Result<bool> {
        Ok(self.layer_path(chain_id).is_dir())
    }

    async fn create_rootfs(&self, chain_id: &Digest, name: &str) -> Result<Rootfs> {
        check_name(name)?;
        let src = self.layer_path(chain_id);
        let dest = self.rootfs_path(name);
        let _held = self.lock.shared().await?;
        if !src.is_dir() {
            return Err(Error::NotFound(format!("layer {chain_id}")));
        }
        if dest.exists() {
            return Err(Error::Core(nexcage_core::Error::already_exists(format!(
                "rootfs {name}"
            ))));
        }
        // Recorded first: a crash after the copy must not leave an unrecorded user. A record
        // without its directory is dropped by the next prune.
        let record = RootfsRecord {
            chain_id: chain_id.clone(),
            path: dest.clone(),
            dataset: None,
            created: now(),
        };
        let n = name.to_string();
        self.catalog
            .update(move |c| {
                c.rootfs.insert(n, record);
                Ok(())
            })
            .await?;
        let tmp = self.tmp(&format!("rootfs-{name}"));
        let (t, d) = (tmp.clone(), dest.clone());
        let r = blocking(move || {
            copy_tree(
                &src,
                t.parent().unwrap_or(&t),
                &tmp_name(&t),
                CopyMode::Deep,
            )?;
            if rename_new(&t, &d)? {
                Ok(())
            } else {
                Err(Error::Core(nexcage_core::Error::already_exists(format!(
                    "rootfs {}",
                    d.display()
                ))))
            }
        })
        .await;
        if let Err(e) = r {
            let _ = blocking(move || remove_tree(&tmp)).await;
            let n = name.to_string();
            let d = dest.clone();
            // Only our record: a concurrent creator of the same name may have won the rename.
            let _ = self
                .catalog
                .update(move |c| {
                    if !d.exists() {
                        c.rootfs.remove(&n);
                    }
                    Ok(())
                })
                .await;
            return Err(e);
        }
        Ok(Rootfs {
            name: name.to_string(),
            path: dest,
            dataset: None,
        })
    }

    async fn remove_rootfs(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let dest = self.rootfs_path(name);
        let tmp = self.tmp(&format!("rm-{name}"));
        let _held = self.lock.shared().await?;
        // Out of sight atomically first; a crash while deleting leaves a tmp for sweep.
        match std::fs::rename(&dest, &tmp) {
            Ok(()) => blocking(move || remove_tree(&tmp)).await?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("rename", dest.display(), e)),
        }
        let n = name.to_string();
        self.catalog
            .update(move |c| {
                c.rootfs.remove(&n);
                Ok(())
            })
            .await
    }

    async fn sweep(&self) -> Result<usize> {
        let Some(_held) = self.lock.try_exclusive()? else {
            tracing::debug!("store busy, not sweeping");
            return Ok(0);
        };
        let tmp = self.root.join("tmp");
        blocking(move || {
            let mut n = 0;
            for e in std::fs::read_dir(&tmp).map_err(|e| Error::io("readdir", tmp.display(), e))? {
                let p = e
                    .map_err(|e| Error::io("readdir", tmp.display(), e))?
                    .path();
                tracing::info!(leftover = %p.display(), "removing");
                remove_tree(&p)?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The directories under `layers/`; parents from the catalog (a layer tree does not depend
    /// on its parent's: regular files are hardlinks, the rest copies).
    async fn layers(&self) -> Result<Vec<StoredLayer>> {
        let dir = self.root.join("layers");
        let names = blocking(move || {
            let mut v = Vec::new();
            for e in std::fs::read_dir(&dir).map_err(|e| Error::io("readdir", dir.display(), e))? {
                let e = e.map_err(|e| Error::io("readdir", dir.display(), e))?;
                v.push(e.file_name());
            }
            Ok(v)
        })
        .await?;
        let catalog = self.catalog.read().await?;
        let mut out = Vec::new();
        for n in names {
            let Some(chain_id) = n.to_str().and_then(|n| Digest::from_hex(n).ok()) else {
                tracing::warn!(name = ?n, "not a layer directory; left alone");
                continue;
            };
            let parent = catalog.layers.get(&chain_id).and_then(|r| r.parent.clone());
            out.push(StoredLayer { chain_id, parent });
        }
        out.sort_by(|a, b| a.chain_id.cmp(&b.chain_id));
        Ok(out)
    }

    async fn remove_layer(&self, chain_id: &Digest) -> Result<()> {
        let dest = self.layer_path(chain_id);
        let tmp = self.tmp(&format!("rm-layer-{}", chain_id.hex()));
        match std::fs::rename(&dest, &tmp) {
            Ok(()) => blocking(move || remove_tree(&tmp)).await,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("rename", dest.display(), e)),
        }
    }

    /// The catalog's rootfs records whose directory exists.
    async fn rootfs_users(&self) -> Result<Vec<RootfsUse>> {
        let catalog = self.catalog.read().await?;
        Ok(catalog
            .rootfs
            .into_iter()
            .filter(|(name, _)| check_name(name).is_ok() && self.rootfs_path(name).is_dir())
            .map(|(name, r)| RootfsUse {
                name,
                chain_id: r.chain_id,
            })
            .collect())
    }

    async fn lock_shared(&self) -> Result<StoreGuard> {
        self.lock.shared().await.map(StoreGuard)
    }

    async fn lock_exclusive(&self) -> Result<StoreGuard> {
        self.lock.exclusive().await.map(StoreGuard)
    }

    fn describe(&self) -> String {
        format!("dir store at {}", self.root.display())
    }
}
