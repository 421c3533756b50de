//! "A container created from a 200 MB image and from a 2 MB image both get their rootfs in
//! constant time" (issue 5), checked by what makes it constant rather than by a stopwatch: on the
//! ZFS store a rootfs is a `zfs clone` of the image's top layer snapshot, so its `origin` is
//! that snapshot and it uses (almost) no space of its own however large the image is, while it
//! references all of the image's data. Creation times are printed, never asserted; the
//! benchmark (`examples/unpack_bench.rs`, docs/benchmarks.md) has the figures.
//!
//! Needs root and the zfs-fuse pool (`tests/setup-zfs.sh`, or `NEXCAGE_ZFS_POOL`):
//! `cargo test -p nexcage-image --test rootfs_clone -- --ignored`.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::layout::{Layout, MANIFEST};
use common::{digest, Tar};
use nexcage_image::images::import;
use nexcage_image::{
    resolve, BlobSource, LayoutDir, NoProgress, Platform, Store, ZfsStore, ZfsStoreConfig,
};
use nexcage_zfs::{CreateOpts, DestroyOpts, Zfs};
use serde_json::json;

const MIB: u64 = 1 << 20;

fn pool() -> String {
    std::env::var("NEXCAGE_ZFS_POOL").unwrap_or_else(|_| "nexcage-test".into())
}

/// A one-layer image of `files` files of 1 MiB (`files` = 0: a 16 KiB file only), uncompressed
/// (`…layer.v1.tar`) so the test spends its time in the store, not in gzip. Returns the
/// manifest descriptor.
fn image(layout: &Layout, tag: u8, files: usize) -> serde_json::Value {
    let mut tar = Tar::new().file("etc/image", &[tag; 16 << 10], 0o644);
    for i in 0..files {
        let mut data = vec![tag; MIB as usize];
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        tar = tar.file(&format!("data/{i:04}"), &data, 0o644);
    }
    let layer = tar.finish();
    let mut l = layout.blob(&layer);
    l["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
    let config = json!({
        "architecture": Platform::host().architecture,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer).to_string()]},
    });
    let mut cfg = layout.blob(config.to_string().as_bytes());
    cfg["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let manifest = json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": cfg, "layers": [l]});
    let mut m = layout.blob(manifest.to_string().as_bytes());
    m["mediaType"] = json!(MANIFEST);
    m
}

async fn prop(zfs: &Zfs, ds: &str, name: &str) -> String {
    zfs.get_one(ds, name)
        .await
        .unwrap_or_else(|e| panic!("zfs get {name} {ds}: {e}"))
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs root and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn rootfs_of_a_200_mb_and_a_2_mb_image_are_clones_using_no_space() {
    let zfs = Zfs::new();
    let parent = format!("{}/img-const", pool());
    let clones = format!("{}/ct-const", pool());
    let all = DestroyOpts {
        recursive: true,
        dependents: true,
        force: true,
    };
    zfs.destroy_if_exists(&clones, &all).await.unwrap();
    zfs.destroy_if_exists(&parent, &all).await.unwrap();
    zfs.create(&clones, &CreateOpts::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = ZfsStoreConfig::new(&parent);
    cfg.lock_dir = tmp.path().join("locks");
    let store = ZfsStore::open(zfs.clone(), cfg, Default::default())
        .await
        .unwrap();

    let layout = Layout::new(&tmp.path().join("layout"));
    let small = image(&layout, b's', 2);
    let large = image(&layout, b'L', 200);
    layout.index(&[(small, Some("small")), (large, Some("large"))]);
    let src: Arc<dyn BlobSource> = Arc::new(LayoutDir::open(&layout.dir).unwrap());

    let mut times = Vec::new();
    for (name, size) in [("small", 2 * MIB), ("large", 200 * MIB)] {
        let img = resolve(src.as_ref(), Some(name), &Platform::host()).unwrap();
        import(&store, &src, &img, name, "test", Arc::new(NoProgress))
            .await
            .unwrap();
        let top = img.top().unwrap().clone();
        let ds = format!("{clones}/{name}");
        let t = Instant::now();
        let rootfs = store.create_rootfs(&top, &ds).await.unwrap();
        times.push((name, t.elapsed()));

        // A clone of the image's top snapshot ...
        assert_eq!(
            prop(&zfs, &ds, "origin").await,
            store.layer_snapshot(&top),
            "{ds} is not a clone of the image's top layer"
        );
        // ... that uses next to nothing itself, whatever the image's size ...
        let used: u64 = prop(&zfs, &ds, "used").await.parse().unwrap();
        assert!(
            used < MIB,
            "{ds} ({name}, {size} bytes of files) uses {used} bytes: a copy, not a clone"
        );
        // ... while it holds all of the image's data.
        let referenced: u64 = prop(&zfs, &ds, "referenced").await.parse().unwrap();
        assert!(
            referenced >= size,
            "{ds} references {referenced} bytes, less than the image's {size}"
        );
        let last = rootfs.path.join(format!("data/{:04}", size / MIB - 1));
        assert_eq!(std::fs::metadata(&last).unwrap().len(), MIB, "{last:?}");

        store.remove_rootfs(&ds).await.unwrap();
        assert!(
            !zfs.exists(&ds).await.unwrap(),
            "{ds} still exists after remove_rootfs"
        );
    }
    for (name, t) in times {
        eprintln!("create_rootfs {name}: {t:?} (not asserted; docs/benchmarks.md)");
    }
    zfs.destroy(&clones, &all).await.unwrap();
    zfs.destroy(&parent, &all).await.unwrap();
}
