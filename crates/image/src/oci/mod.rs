//! Reading OCI images: blob sources (layout directory, archive) and resolution of an image to
//! its layers.

mod resolve;
mod source;

pub use resolve::{resolve, ImageLayer, Platform, ResolvedImage, REF_NAME};
pub use source::{BlobSource, LayoutDir, OciArchive};
