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
    name, CloneOpts, CreateOpts, DatasetType, DestroyOpts, ListOpts, Properties, Zfs,
};

use super::{blocking, random_suffix, verify_and_apply, with_parents, Rootfs, Store, StoreLock};
use crate::apply::ApplyOptions;
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
}

impl ZfsStore {
    /// A store under `cfg.parent`, which is created (with parents) if missing.
    pub async fn open(zfs: Zfs, cfg: ZfsStoreConfig, opts: ApplyOptions) -> Result<ZfsStore> {
        name::check_dataset(&cfg.parent)?;
        if !zfs.exists(&cfg.parent).await? {
            let o = CreateOpts {
                parents: true,
                properties: Vec::new(),
            };
            zfs.create(&cfg.parent, &o).await?;
        }
        let lock_file = cfg
            .lock_dir
            .join(format!("zfs-{}.lock", cfg.parent.replace('/', "_")));
        let lock = StoreLock::new(lock_file);
        Ok(ZfsStore {
            zfs,
            cfg,
            opts,
            lock,
        })
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

    async fn unpack_one(
        &self,
        src: &Arc<dyn BlobSource>,
        parent: Option<Digest>,
        layer: ImageLayer,
    ) -> Result<()> {
        let _held = self.lock.shared().await?;
        if self.has_layer(&layer.chain_id).await? {
            return Ok(());
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
        let r = self.fill_and_commit(src, &tmp, layer).await;
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
    ) -> Result<()> {
        let mp = self.mountpoint(tmp).await?;
        let dest = self.layer_dataset(&layer.chain_id);
        let (src, opts) = (Arc::clone(src), self.opts.clone());
        blocking(move || verify_and_apply(src.as_ref(), &layer, &mp, &opts).map(drop)).await?;
        self.zfs
            .snapshot(&format!("{tmp}@{LAYER_SNAPSHOT}"), &Vec::new())
            .await?;
        // zfs-fuse renames only unmounted file systems; layers stay unmounted anyway.
        self.zfs.unmount(tmp).await?;
        match self.zfs.rename(tmp, &dest).await {
            Err(e) if e.is_already_exists() => {
                tracing::debug!(dataset = %dest, "unpacked concurrently elsewhere");
                self.zfs.destroy(tmp, &DestroyOpts::recursive()).await?;
                Ok(())
            }
            r => r.map_err(Error::from),
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
        let path = self.mountpoint(dataset).await?;
        Ok(Rootfs {
            name: dataset.to_string(),
            path,
            dataset: Some(dataset.to_string()),
        })
    }
}

impl Store for ZfsStore {
    async fn unpack(&self, src: &Arc<dyn BlobSource>, image: &ResolvedImage) -> Result<Digest> {
        for (parent, layer) in with_parents(image)? {
            if !self.has_layer(&layer.chain_id).await? {
                tracing::info!(layer = %layer.chain_id, blob = %layer.digest, dataset = %self.layer_dataset(&layer.chain_id), "unpacking layer");
                self.unpack_one(src, parent, layer).await?;
            }
        }
        image
            .top()
            .cloned()
            .ok_or_else(|| Error::Unsupported("images without layers".into()))
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
            Err(e) if e.is_not_found() => return Ok(()),
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
        Ok(())
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
}
