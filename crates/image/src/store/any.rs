//! The store the configuration names (`[image_store]`), as one type.

use std::path::Path;
use std::sync::Arc;

use nexcage_core::config::{Config, ImageStoreSettings};
use nexcage_zfs::Zfs;

use super::{
    DirStore, LayerStatus, Progress, Rootfs, RootfsUse, Store, StoreGuard, StoredLayer, ZfsStore,
    ZfsStoreConfig,
};
use crate::apply::ApplyOptions;
use crate::catalog::Catalog;
use crate::digest::Digest;
use crate::error::Result;
use crate::oci::{BlobSource, ResolvedImage};

/// A [`DirStore`] or a [`ZfsStore`], chosen at run time.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// The directory store.
    Dir(DirStore),
    /// The ZFS store.
    Zfs(ZfsStore),
}

impl AnyStore {
    /// Open the store `settings` describe; the ZFS store keeps its lock files in `lock_dir`.
    pub async fn open(
        settings: &ImageStoreSettings,
        lock_dir: &Path,
        opts: ApplyOptions,
    ) -> Result<AnyStore> {
        Ok(match settings {
            ImageStoreSettings::Dir { path } => AnyStore::Dir(DirStore::open(path, opts)?),
            ImageStoreSettings::Zfs { dataset } => {
                let mut cfg = ZfsStoreConfig::new(dataset);
                cfg.lock_dir = lock_dir.to_path_buf();
                AnyStore::Zfs(ZfsStore::open(Zfs::new(), cfg, opts).await?)
            }
        })
    }

    /// Open the store of a (validated) configuration: `[image_store]`, locks in
    /// `<state_dir>/image`.
    pub async fn from_config(config: &Config, opts: ApplyOptions) -> Result<AnyStore> {
        AnyStore::open(&config.image_store(), &config.image_lock_dir(), opts).await
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Dir($s) => $e,
            AnyStore::Zfs($s) => $e,
        }
    };
}

impl Store for AnyStore {
    async fn unpack(&self, src: &Arc<dyn BlobSource>, image: &ResolvedImage) -> Result<Digest> {
        each!(self, s => s.unpack(src, image).await)
    }

    async fn unpack_with(
        &self,
        src: &Arc<dyn BlobSource>,
        image: &ResolvedImage,
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<LayerStatus>> {
        each!(self, s => s.unpack_with(src, image, progress).await)
    }

    async fn has_layer(&self, chain_id: &Digest) -> Result<bool> {
        each!(self, s => s.has_layer(chain_id).await)
    }

    async fn create_rootfs(&self, chain_id: &Digest, name: &str) -> Result<Rootfs> {
        each!(self, s => s.create_rootfs(chain_id, name).await)
    }

    async fn remove_rootfs(&self, name: &str) -> Result<()> {
        each!(self, s => s.remove_rootfs(name).await)
    }

    async fn sweep(&self) -> Result<usize> {
        each!(self, s => s.sweep().await)
    }

    fn catalog(&self) -> &Catalog {
        each!(self, s => s.catalog())
    }

    async fn layers(&self) -> Result<Vec<StoredLayer>> {
        each!(self, s => s.layers().await)
    }

    async fn remove_layer(&self, chain_id: &Digest) -> Result<()> {
        each!(self, s => s.remove_layer(chain_id).await)
    }

    async fn rootfs_users(&self) -> Result<Vec<RootfsUse>> {
        each!(self, s => s.rootfs_users().await)
    }

    async fn lock_shared(&self) -> Result<StoreGuard> {
        each!(self, s => s.lock_shared().await)
    }

    async fn lock_exclusive(&self) -> Result<StoreGuard> {
        each!(self, s => s.lock_exclusive().await)
    }

    fn describe(&self) -> String {
        each!(self, s => s.describe())
    }
}
