//! The ZFS store on a real pool (zfs-fuse's `nexcage-test` from tests/setup-zfs.sh, or
//! `NEXCAGE_ZFS_POOL`). Each test uses its own parent dataset and destroys it.
//!
//! Run with `cargo test -p nexcage-image --test store_zfs -- --ignored`.

mod common;

use std::sync::Arc;

use common::layout::Layout;
use common::Tar;
use nexcage_core::{ErrorKind, HasKind};
use nexcage_image::{
    resolve, BlobSource, Error, LayoutDir, Platform, Store, ZfsStore, ZfsStoreConfig,
};
use nexcage_zfs::{CreateOpts, DatasetType, DestroyOpts, ListOpts, Zfs};

fn pool() -> String {
    std::env::var("NEXCAGE_ZFS_POOL").unwrap_or_else(|_| "nexcage-test".into())
}

struct Fx {
    zfs: Zfs,
    parent: String,
    rootfs_parent: String,
    store: ZfsStore,
    layout: Layout,
    _tmp: tempfile::TempDir,
}

impl Fx {
    async fn new(name: &str) -> Fx {
        let zfs = Zfs::new();
        let parent = format!("{}/img-{name}", pool());
        let rootfs_parent = format!("{}/ct-{name}", pool());
        let all = DestroyOpts {
            recursive: true,
            dependents: true,
            force: true,
        };
        zfs.destroy_if_exists(&rootfs_parent, &all).await.unwrap();
        zfs.destroy_if_exists(&parent, &all).await.unwrap();
        zfs.create(&rootfs_parent, &CreateOpts::default())
            .await
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = ZfsStoreConfig::new(&parent);
        cfg.lock_dir = tmp.path().join("locks");
        cfg.rootfs_properties = vec![("nexcage:rootfs".into(), "1".into())];
        let store = ZfsStore::open(zfs.clone(), cfg, Default::default())
            .await
            .unwrap();
        let layout = Layout::new(&tmp.path().join("layout"));
        Fx {
            zfs,
            parent,
            rootfs_parent,
            store,
            layout,
            _tmp: tmp,
        }
    }

    async fn done(self) {
        let all = DestroyOpts {
            recursive: true,
            dependents: true,
            force: false,
        };
        self.zfs.destroy(&self.rootfs_parent, &all).await.unwrap();
        self.zfs.destroy(&self.parent, &all).await.unwrap();
    }

    async fn children(&self) -> Vec<String> {
        let o = ListOpts::children(&self.parent, &[DatasetType::Filesystem]);
        let mut v: Vec<String> = self
            .zfs
            .list(&o)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        v.retain(|n| n != &self.parent);
        v
    }
}

fn base() -> Vec<u8> {
    Tar::new()
        .file("bin/tool", b"v1", 0o4755)
        .hardlink("bin/tool2", "bin/tool")
        .symlink("bin/sh", "tool")
        .file("etc/os-release", b"ID=test", 0o644)
        .finish()
}

fn app(name: &str) -> Vec<u8> {
    Tar::new()
        .file_owned(&format!("app/{name}"), name.as_bytes(), 0o640, 1000, 1000)
        .file("etc/.wh.os-release", b"", 0o644)
        .finish()
}

#[tokio::test]
#[ignore = "needs root and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn layers_are_datasets_shared_between_images_and_rootfs_is_a_clone() {
    let fx = Fx::new("share").await;
    let (a, _) = fx.layout.image("amd64", &[base(), app("a")], None);
    let (b, _) = fx.layout.image("amd64", &[base(), app("b")], None);
    fx.layout.index(&[(a, Some("a")), (b, Some("b"))]);
    let src: Arc<dyn BlobSource> = Arc::new(LayoutDir::open(&fx.layout.dir).unwrap());
    let a = resolve(src.as_ref(), Some("a"), &Platform::host()).unwrap();
    let b = resolve(src.as_ref(), Some("b"), &Platform::host()).unwrap();
    let top_a = fx.store.unpack(&src, &a).await.unwrap();
    let top_b = fx.store.unpack(&src, &b).await.unwrap();
    assert_eq!(fx.children().await.len(), 3, "{:?}", fx.children().await);

    // Each next layer is a clone of its parent's snapshot.
    let base_snap = fx.store.layer_snapshot(&a.layers[0].chain_id);
    for top in [&top_a, &top_b] {
        let origin = fx
            .zfs
            .get_one(&fx.store.layer_dataset(top), "origin")
            .await
            .unwrap();
        assert_eq!(origin.as_deref(), Some(base_snap.as_str()));
    }

    // The Proxmox naming: <pool>/subvol-<vmid>-disk-0.
    let name = format!("{}/subvol-100-disk-0", fx.rootfs_parent);
    let r = fx.store.create_rootfs(&top_a, &name).await.unwrap();
    assert_eq!(r.dataset.as_deref(), Some(name.as_str()));
    let origin = fx.zfs.get_one(&name, "origin").await.unwrap();
    assert_eq!(
        origin.as_deref(),
        Some(fx.store.layer_snapshot(&top_a).as_str())
    );
    assert_eq!(
        fx.zfs
            .get_one(&name, "nexcage:rootfs")
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );
    assert_eq!(std::fs::read(r.path.join("app/a")).unwrap(), b"a");
    assert!(!r.path.join("etc/os-release").exists());
    assert_eq!(
        std::fs::read_link(r.path.join("bin/sh")).unwrap().to_str(),
        Some("tool")
    );
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(r.path.join("bin/tool")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4755);
    assert_eq!(
        m.ino(),
        std::fs::metadata(r.path.join("bin/tool2")).unwrap().ino()
    );
    let m = std::fs::metadata(r.path.join("app/a")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (1000, 1000, 0o640));
    std::fs::write(r.path.join("app/a"), b"container write").unwrap();
    let second = fx
        .store
        .create_rootfs(&top_a, &format!("{}/subvol-101-disk-0", fx.rootfs_parent))
        .await
        .unwrap();
    assert_eq!(std::fs::read(second.path.join("app/a")).unwrap(), b"a");

    let e = fx.store.create_rootfs(&top_a, &name).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let inside = format!("{}/sneaky", fx.parent);
    assert_eq!(
        fx.store
            .create_rootfs(&top_a, &inside)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    // Only clones of the store's layers can be removed through it.
    let e = fx.store.remove_rootfs(&fx.rootfs_parent).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    fx.store.remove_rootfs(&name).await.unwrap();
    fx.store.remove_rootfs(&name).await.unwrap();
    assert!(!fx.zfs.exists(&name).await.unwrap());
    fx.done().await;
}

#[tokio::test]
#[ignore = "needs root and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn failed_unpack_leaves_no_dataset_and_sweep_removes_a_killed_one() {
    let fx = Fx::new("sweep").await;
    let (m, layers) = fx.layout.image("amd64", &[base(), app("x")], None);
    fx.layout.index(&[(m, None)]);
    let p = fx.layout.blob_path(&layers[1]);
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    let src: Arc<dyn BlobSource> = Arc::new(LayoutDir::open(&fx.layout.dir).unwrap());
    let img = resolve(src.as_ref(), None, &Platform::host()).unwrap();
    let e = fx.store.unpack(&src, &img).await.unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert_eq!(
        fx.children().await,
        [fx.store.layer_dataset(&img.layers[0].chain_id)]
    );

    // A unpack killed half way: its temporary dataset is still there.
    let killed = format!(
        "{}/tmp-{}-0badc0de",
        fx.parent,
        img.layers[1].chain_id.hex()
    );
    fx.zfs
        .create(&killed, &CreateOpts::default())
        .await
        .unwrap();
    fx.zfs
        .snapshot(&format!("{killed}@snap"), &Vec::new())
        .await
        .unwrap();
    assert_eq!(fx.store.sweep().await.unwrap(), 1);
    assert!(!fx.zfs.exists(&killed).await.unwrap());
    assert_eq!(fx.children().await.len(), 1);
    assert_eq!(fx.store.sweep().await.unwrap(), 0);
    fx.done().await;
}
