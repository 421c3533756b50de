//! The ZFS store: one dataset per chain id below a parent dataset, root file systems as clones.
//!
//! ```text
//! <parent>/<chain-id hex>@snap      the stack up to that layer (canmount=noauto)
//! <parent>/tmp-<chain hex>-<rand>   an unpack in progress
//! <any dataset of the pool>         a rootfs: clone of <parent>/<top hex>@snap
//! ```
//!
//! The first layer is a new dataset; each next one a clone of its parent's `@snap` with the
//! layer applied, then snapshotted. A rootfs is `zfs clone` of the top snapshot, named by the
//! caller (the Proxmox backend asks for `<pool>/subvol-<vmid>-disk-0`): constant time, and the
//! container's writes stay in the clone.

use std::path::PathBuf;
use std::sync::Arc;

use nexcage_zfs::{
    name, CloneOpts, CreateOpts, DatasetType, Depth, DestroyOpts, ListOpts, Properties, Zfs,
};

use super::{
    blocking, random_suffix, record_layers, unpack_top, verify_and_apply, with_parents,
    LayerStatus, Progress, Rootfs, RootfsUse, Store, StoreGuard, StoreLock, StoredLayer,
};
use crate::apply::ApplyOptions;
use crate::catalog::{now, Catalog, RootfsRecord};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{BlobSource, ImageLayer, ResolvedImage};

/// The snapshot every layer dataset has once complete.
pub const LAYER_SNAPSHOT: &str = "snap";
const TMP_PREFIX: &str = "tmp-";

/// Configuration of a [`ZfsStore`].
#[derive(Debug, Clone)]
pub struct ZfsStoreConfig {
    /// The dataset the layers live under, e.g. `tank/nexcage` (must be mountable).
    pub parent: String,
    /// Where the store's lock file lives (a tmpfs, so a reboot clears it).
    pub lock_dir: PathBuf,
    /// Properties of new layer datasets (e.g. `compression=lz4`).
    pub layer_properties: Properties,
    /// Properties of rootfs clones (PVE sets `acltype=posixacl`, `xattr=sa`, `refquota=…`).
    pub rootfs_properties: Properties,
}

impl ZfsStoreConfig {
    /// Defaults for `parent`: lock in `/run/nexcage/image`, no extra properties.
    pub fn new(parent: impl Into<String>) -> Self {
        ZfsStoreConfig {
            parent: parent.into(),
            lock_dir: PathBuf::from("/run/nexcage/image"),
            layer_properties: Vec::new(),
            rootfs_properties: Vec::new(),
        }
    }
}

/// The ZFS store.
#[derive(Debug, Clone)]
pub struct ZfsStore {
    zfs: Zfs,
    cfg: ZfsStoreConfig,
    opts: ApplyOptions,
    lock: StoreLock,
    catalog: Catalog,
}

impl ZfsStore {
    /// A store under `cfg.parent`, which is created (with parents) if missing and mounted (its
    /// mount point holds the catalog).
    pub async fn open(zfs: Zfs, cfg: ZfsStoreConfig, opts: ApplyOptions) -> Result<ZfsStore> {
        name::check_dataset(&cfg.parent)?;
        if !zfs.exists(&cfg.parent).await? {
            let o = CreateOpts {
                parents: true,
                properties: Vec::new(),
            };
            zfs.create(&cfg.parent, &o).await?;
        }
        let stem = format!("zfs-{}", cfg.parent.replace('/', "_"));
        let lock = StoreLock::new(cfg.lock_dir.join(format!("{stem}.lock")));
        // Placeholder until the mount point is known (mountpoint() needs a store).
        let catalog = Catalog::new(
            PathBuf::new(),
            cfg.lock_dir.join(format!("{stem}.catalog.lock")),
        );
        let mut store = ZfsStore {
            zfs,
            cfg,
            opts,
            lock,
            catalog,
        };
        let mp = store.mountpoint(&store.cfg.parent).await?;
        store.catalog = Catalog::new(
            mp.join("catalog.json"),
            store.cfg.lock_dir.join(format!("{stem}.catalog.lock")),
        );
        Ok(store)
    }

    /// The parent dataset of the layers.
    pub fn parent(&self) -> &str {
        &self.cfg.parent
    }

    /// The chain id a dataset name of this store stands for (`<parent>/<hex>`).
    fn chain_of(&self, dataset: &str) -> Option<Digest> {
        let hex = dataset.strip_prefix(&format!("{}/", self.cfg.parent))?;
        Digest::from_hex(hex).ok()
    }

    /// The chain id of a `<parent>/<hex>@snap` origin.
    fn chain_of_origin(&self, origin: &str) -> Option<Digest> {
        let ds = origin.strip_suffix(&format!("@{LAYER_SNAPSHOT}"))?;
        self.chain_of(ds)
    }

    /// The dataset of a stack.
    pub fn layer_dataset(&self, chain_id: &Digest) -> String {
        format!("{}/{}", self.cfg.parent, chain_id.hex())
    }

    /// The snapshot rootfs clones are made from.
    pub fn layer_snapshot(&self, chain_id: &Digest) -> String {
        format!("{}@{LAYER_SNAPSHOT}", self.layer_dataset(chain_id))
    }

    async fn mountpoint(&self, ds: &str) -> Result<PathBuf> {
        self.zfs.mount(ds).await?;
        match self.zfs.get_one(ds, "mountpoint").await? {
            Some(mp) if mp.starts_with('/') => Ok(PathBuf::from(mp)),
            other => Err(Error::Core(nexcage_core::Error::precondition(format!(
                "{ds} has no usable mountpoint ({other:?}); give {} a mountpoint",
                self.cfg.parent
            )))),
        }
    }

    /// Unpack one layer (the caller holds the shared lock); the uncompressed size when this
    /// call unpacked it.
    async fn unpack_one(
        &self,
        src: &Arc<dyn BlobSource>,
        parent: Option<Digest>,
        layer: ImageLayer,
        progress: &Arc<dyn Progress>,
    ) -> Result<Option<u64>> {
        if self.has_layer(&layer.chain_id).await? {
            return Ok(None);
        }
        let tmp = format!(
            "{}/{TMP_PREFIX}{}-{}",
            self.cfg.parent,
            layer.chain_id.hex(),
            random_suffix()
        );
        let mut properties = vec![("canmount".to_string(), "noauto".to_string())];
        properties.extend(self.cfg.layer_properties.iter().cloned());
        match &parent {
            None => {
                let o = CreateOpts {
                    parents: false,
                    properties,
                };
                self.zfs.create(&tmp, &o).await?;
            }
            Some(p) => {
                let o = CloneOpts {
                    parents: false,
                    properties,
                };
                self.zfs
                    .clone_snapshot(&self.layer_snapshot(p), &tmp, &o)
                    .await?;
            }
        }
        let r = self.fill_and_commit(src, &tmp, layer, progress).await;
        if r.is_err() {
            if let Err(e) = self
                .zfs
                .destroy_if_exists(&tmp, &DestroyOpts::recursive())
                .await
            {
                tracing::warn!(dataset = %tmp, error = %e, "leftover after a failed unpack");
            }
        }
        r
    }

    async fn fill_and_commit(
        &self,
        src: &Arc<dyn BlobSource>,
        tmp: &str,
        layer: ImageLayer,
        progress: &Arc<dyn Progress>,
    ) -> Result<Option<u64>> {
        let mp = self.mountpoint(tmp).await?;
        let dest = self.layer_dataset(&layer.chain_id);
        let (src, opts, progress) = (Arc::clone(src), self.opts.clone(), Arc::clone(progress));
        let applied =
            blocking(move || verify_and_apply(src.as_ref(), &layer, &mp, &opts, progress.as_ref()))
                .await?;
        self.zfs
            .snapshot(&format!("{tmp}@{LAYER_SNAPSHOT}"), &Vec::new())
            .await?;
        // zfs-fuse renames only unmounted file systems; layers stay unmounted anyway.
        self.zfs.unmount(tmp).await?;
        match self.zfs.rename(tmp, &dest).await {
            Err(e) if e.is_already_exists() => {
                tracing::debug!(dataset = %dest, "unpacked concurrently elsewhere");
                self.zfs.destroy(tmp, &DestroyOpts::recursive()).await?;
                Ok(None)
            }
            r => r
                .map(|()| Some(applied.uncompressed_bytes))
                .map_err(Error::from),
        }
    }

    /// [`Store::create_rootfs`] with extra properties for this clone (e.g. `refquota=8G`).
    pub async fn create_rootfs_with(
        &self,
        chain_id: &Digest,
        dataset: &str,
        extra: &Properties,
    ) -> Result<Rootfs> {
        name::check_dataset(dataset)?;
        if dataset.starts_with(&format!("{}/", self.cfg.parent)) {
            return Err(Error::Core(nexcage_core::Error::invalid(format!(
                "rootfs {dataset} must not be inside the store {}",
                self.cfg.parent
            ))));
        }
        let snap = self.layer_snapshot(chain_id);
        let _held = self.lock.shared().await?;
        if !self.zfs.exists(&snap).await? {
            return Err(Error::NotFound(format!("layer {chain_id}")));
        }
        let mut properties = self.cfg.rootfs_properties.clone();
        properties.extend(extra.iter().cloned());
        let o = CloneOpts {
            parents: false,
            properties,
        };
        self.zfs.clone_snapshot(&snap, dataset, &o).await?;
        let r = async {
            let path = self.mountpoint(dataset).await?;
            let record = RootfsRecord {
                chain_id: chain_id.clone(),
                path: path.clone(),
                dataset: Some(dataset.to_string()),
                created: now(),
            };
            let n = dataset.to_string();
            self.catalog
                .update(move |c| {
                    c.rootfs.insert(n, record);
                    Ok(())
                })
                .await?;
            Ok::<_, Error>(path)
        }
        .await;
        // The clone itself is the authoritative record (rootfs_users finds it by origin), so a
        // failure here undoes it rather than leave a rootfs the caller does not know about.
        let path = match r {
            Ok(p) => p,
            Err(e) => {
                let _ = self
                    .zfs
                    .destroy_if_exists(dataset, &DestroyOpts::recursive())
                    .await;
                return Err(e);
            }
        };
        Ok(Rootfs {
            name: dataset.to_string(),
            path,
            dataset: Some(dataset.to_string()),
        })
    }
}

impl Store for ZfsStore {
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
        let count = layers.len();
        let mut statuses = Vec::with_capacity(count);
        for (i, (parent, layer)) in layers.into_iter().enumerate() {
            let present = self.has_layer(&layer.chain_id).await?;
            progress.layer(i, count, &layer, present);
            let unpacked_size = if present {
                None
            } else {
                tracing::info!(layer = %layer.chain_id, blob = %layer.digest, dataset = %self.layer_dataset(&layer.chain_id), "unpacking layer");
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
        Ok(self.zfs.exists(&self.layer_snapshot(chain_id)).await?)
    }

    async fn create_rootfs(&self, chain_id: &Digest, dataset: &str) -> Result<Rootfs> {
        self.create_rootfs_with(chain_id, dataset, &Vec::new())
            .await
    }

    /// Destroys `dataset` only if it is a clone of one of this store's layers.
    async fn remove_rootfs(&self, dataset: &str) -> Result<()> {
        name::check_dataset(dataset)?;
        let origin = match self.zfs.get_one(dataset, "origin").await {
            Ok(o) => o,
            Err(e) if e.is_not_found() => {
                // Destroyed by someone else (Proxmox's `pct destroy --purge` of a CT volume):
                // only the catalog entry is left to drop.
                let n = dataset.to_string();
                return self
                    .catalog
                    .update(move |c| {
                        c.rootfs.remove(&n);
                        Ok(())
                    })
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        let ours = origin.as_deref().is_some_and(|o| {
            o.starts_with(&format!("{}/", self.cfg.parent))
                && o.ends_with(&format!("@{LAYER_SNAPSHOT}"))
        });
        if !ours {
            return Err(Error::Core(nexcage_core::Error::precondition(format!(
                "{dataset} is not a rootfs of the image store (origin {origin:?})"
            ))));
        }
        self.zfs
            .destroy_if_exists(dataset, &DestroyOpts::recursive())
            .await?;
        let n = dataset.to_string();
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
        let children = self
            .zfs
            .list(&ListOpts::children(
                &self.cfg.parent,
                &[DatasetType::Filesystem],
            ))
            .await?;
        let prefix = format!("{}/{TMP_PREFIX}", self.cfg.parent);
        let mut n = 0;
        for ds in children.into_iter().filter(|d| d.name.starts_with(&prefix)) {
            tracing::info!(leftover = %ds.name, "destroying");
            self.zfs
                .destroy_if_exists(&ds.name, &DestroyOpts::recursive())
                .await?;
            n += 1;
        }
        Ok(n)
    }

    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The `<parent>/<hex>` datasets; a layer's parent is its origin (each stack is a clone of
    /// the one below).
    async fn layers(&self) -> Result<Vec<StoredLayer>> {
        let o = ListOpts::children(&self.cfg.parent, &[DatasetType::Filesystem]);
        let mut out: Vec<StoredLayer> = self
            .zfs
            .list(&o)
            .await?
            .into_iter()
            .filter_map(|d| {
                let chain_id = self.chain_of(&d.name)?;
                let parent = d.origin.as_deref().and_then(|o| self.chain_of_origin(o));
                Some(StoredLayer { chain_id, parent })
            })
            .collect();
        out.sort_by(|a, b| a.chain_id.cmp(&b.chain_id));
        Ok(out)
    }

    async fn remove_layer(&self, chain_id: &Digest) -> Result<()> {
        self.zfs
            .destroy_if_exists(&self.layer_dataset(chain_id), &DestroyOpts::recursive())
            .await?;
        Ok(())
    }

    /// Every file system of the pool that is a clone of one of the store's layer snapshots and
    /// not itself a layer: the clones are what ZFS keeps the snapshots for, whatever the
    /// catalog says.
    async fn rootfs_users(&self) -> Result<Vec<RootfsUse>> {
        let pool = self.cfg.parent.split('/').next().unwrap_or_default();
        let o = ListOpts {
            roots: vec![pool.to_string()],
            depth: Depth::All,
            types: vec![DatasetType::Filesystem],
        };
        let inside = format!("{}/", self.cfg.parent);
        Ok(self
            .zfs
            .list(&o)
            .await?
            .into_iter()
            .filter(|d| !d.name.starts_with(&inside))
            .filter_map(|d| {
                let chain_id = self.chain_of_origin(d.origin.as_deref()?)?;
                Some(RootfsUse {
                    name: d.name,
                    chain_id,
                })
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
        format!("zfs store below {}", self.cfg.parent)
    }
}
