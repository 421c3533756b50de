#![doc = include_str!("../README.md")]

pub mod catalog;
pub mod compression;
pub mod digest;
pub mod error;
pub mod images;
pub mod layer;
pub mod limits;
pub mod oci;
pub mod store;

mod apply;
mod beneath;
mod entry;
mod fsops;
mod path;
mod whiteout;

pub use apply::{ApplyOptions, Counters, DevicePolicy};
pub use beneath::Resolve;
pub use catalog::{Catalog, CatalogData, ImageRecord};
pub use compression::Compression;
pub use digest::{chain_ids, Digest};
pub use error::{Error, Result};
pub use layer::{apply_layer, verify_blob, Applied, LayerBlob};
pub use limits::Limits;
pub use oci::{resolve, BlobSource, LayoutDir, OciArchive, Platform, ResolvedImage};
#[cfg(feature = "containerd")]
pub use oci::{Containerd, ContainerdSource};
pub use store::{
    AnyStore, DirStore, LayerStatus, NoProgress, Phase, Progress, Rootfs, RootfsUse, Store,
    StoredLayer, ZfsStore, ZfsStoreConfig,
};
