//! Reading OCI images: blob sources (layout directory, archive, and with the `containerd`
//! feature containerd's content store) and resolution of an image to its layers.

#[cfg(feature = "containerd")]
mod containerd;
mod resolve;
mod source;

#[cfg(feature = "containerd")]
pub use containerd::{Containerd, ContainerdSource};
pub use resolve::{resolve, ImageLayer, Platform, ResolvedImage, REF_NAME};
pub use source::{BlobSource, LayoutDir, OciArchive};
