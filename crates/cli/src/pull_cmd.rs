//! `nexcage image pull-from-containerd`: an image of containerd's content store into the
//! image store, by image name or by the container made from it.

use std::process::ExitCode;
use std::sync::Arc;

use nexcage_image::{AnyStore, BlobSource, Containerd, ContainerdSource};

use crate::args::PullArgs;
use crate::image_cmd::{image_err, import_from};
use crate::load::UsageError;

/// Connect, find the image (by name, or through the container), unpack and name it.
pub async fn pull(store: &AnyStore, args: &PullArgs, json: bool) -> anyhow::Result<ExitCode> {
    let conn = Containerd::connect(&args.address, &args.namespace)
        .await
        .map_err(image_err)?;
    let src = match (&args.image, &args.container) {
        (Some(image), _) => ContainerdSource::for_image(&conn, image).await,
        (None, Some(id)) => ContainerdSource::for_container(&conn, id).await,
        (None, None) => {
            return Err(UsageError("give an IMAGE or --container ID".into()).into());
        }
    }
    .map_err(image_err)?;
    let origin = src.describe();
    let name = args.name.clone().unwrap_or_else(|| src.image().to_string());
    let src: Arc<dyn BlobSource> = Arc::new(src);
    import_from(store, src, Some(&name), &origin, &origin, json).await
}
