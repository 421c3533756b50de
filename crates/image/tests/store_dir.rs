//! The directory store and image resolution, on hand-written OCI layouts and archives.

mod common;

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use common::layout::Layout;
use common::Tar;
use nexcage_core::{ErrorKind, HasKind};
use nexcage_image::{resolve, BlobSource, DirStore, Error, LayoutDir, OciArchive, Platform, Store};
use serde_json::json;

fn base() -> Vec<u8> {
    Tar::new()
        .dir("bin", 0o755)
        .file("bin/tool", b"v1", 0o755)
        .hardlink("bin/tool2", "bin/tool")
        .file("etc/os-release", b"ID=test", 0o644)
        .finish()
}

fn app(name: &str) -> Vec<u8> {
    Tar::new()
        .file(&format!("app/{name}"), name.as_bytes(), 0o644)
        .file("etc/.wh.os-release", b"", 0o644)
        .finish()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    layout: Layout,
    store: DirStore,
    store_root: std::path::PathBuf,
}

/// Images `a` = [base, app(a)] and `b` = [base, app(b)] in one layout.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("layout"));
    let (a, _) = layout.image("amd64", &[base(), app("a")], None);
    let (b, _) = layout.image("amd64", &[base(), app("b")], None);
    layout.index(&[(a, Some("a")), (b, Some("b"))]);
    let store_root = tmp.path().join("store");
    let store = DirStore::open(&store_root, Default::default()).unwrap();
    Fixture {
        _tmp: tmp,
        layout,
        store,
        store_root,
    }
}

fn entries(p: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn images_share_base_layers_and_rootfs_is_a_private_copy() {
    let f = fixture();
    let src: Arc<dyn BlobSource> = Arc::new(LayoutDir::open(&f.layout.dir).unwrap());
    let host = Platform::host();
    let a = resolve(src.as_ref(), Some("a"), &host).unwrap();
    let b = resolve(src.as_ref(), Some("b"), &host).unwrap();
    assert_eq!(a.layers[0].chain_id, b.layers[0].chain_id);
    assert_ne!(a.top(), b.top());
    assert_eq!(
        a.config.config().as_ref().unwrap().cmd().as_deref(),
        Some(&["sh".to_string()][..])
    );

    let top_a = f.store.unpack(&src, &a).await.unwrap();
    let base_dir = f.store.layer_path(&a.layers[0].chain_id);
    let base_ino = std::fs::metadata(&base_dir).unwrap().ino();
    let top_b = f.store.unpack(&src, &b).await.unwrap();
    assert_eq!(
        entries(&f.store_root.join("layers")).len(),
        3,
        "base unpacked once"
    );
    assert_eq!(std::fs::metadata(&base_dir).unwrap().ino(), base_ino);
    assert!(entries(&f.store_root.join("tmp")).is_empty());

    let stack_b = f.store.layer_path(&top_b);
    assert_eq!(entries(&stack_b.join("app")), ["b"]);
    assert!(!stack_b.join("etc/os-release").exists(), "whiteout applied");
    assert!(
        base_dir.join("etc/os-release").exists(),
        "lower stack untouched"
    );

    let r = f.store.create_rootfs(&top_a, "ctr-1").await.unwrap();
    assert_eq!(r.path, f.store.rootfs_path("ctr-1"));
    let tool = r.path.join("bin/tool");
    assert_eq!(std::fs::read(&tool).unwrap(), b"v1");
    let (t1, t2) = (
        std::fs::metadata(&tool).unwrap(),
        std::fs::metadata(r.path.join("bin/tool2")).unwrap(),
    );
    assert_eq!(
        t1.ino(),
        t2.ino(),
        "hardlinks inside the image stay hardlinks"
    );
    assert_eq!(t1.nlink(), 2, "but share nothing with the store");
    std::fs::write(&tool, b"changed by the container").unwrap();
    assert_eq!(std::fs::read(base_dir.join("bin/tool")).unwrap(), b"v1");
    assert_eq!(
        std::fs::read(f.store.layer_path(&top_a).join("bin/tool")).unwrap(),
        b"v1"
    );

    let e = f.store.create_rootfs(&top_a, "ctr-1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    let e = f
        .store
        .create_rootfs(&top_a, "../escape")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    f.store.remove_rootfs("ctr-1").await.unwrap();
    f.store.remove_rootfs("ctr-1").await.unwrap();
    assert!(!r.path.exists());
    assert!(entries(&f.store_root.join("tmp")).is_empty());
}

#[tokio::test]
async fn corrupt_blob_leaves_nothing_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("layout"));
    let (m, layers) = layout.image("amd64", &[base(), app("x")], None);
    layout.index(&[(m, None)]);
    // Same length, different bytes: only the digest can tell.
    let p = layout.blob_path(&layers[1]);
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();

    let store = DirStore::open(tmp.path().join("store"), Default::default()).unwrap();
    let src: Arc<dyn BlobSource> = Arc::new(LayoutDir::open(&layout.dir).unwrap());
    let img = resolve(src.as_ref(), None, &Platform::host()).unwrap();
    let e = store.unpack(&src, &img).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::DigestMismatch {
                what: "layer blob",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains(&img.layers[1].digest.to_string()));
    assert!(store.has_layer(&img.layers[0].chain_id).await.unwrap());
    assert!(!store.has_layer(&img.layers[1].chain_id).await.unwrap());
    assert!(entries(&tmp.path().join("store/tmp")).is_empty());
}

#[tokio::test]
async fn wrong_diff_id_leaves_nothing_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(&tmp.path().join("layout"));
    let wrong = common::digest(b"not this layer").to_string();
    let (m, _) = layout.image("amd64", &[base()], Some(vec![wrong.clone()]));
    layout.index(&[(m, None)]);
    let store = DirStore::open(tmp.path().join("store"), Default::default()).unwrap();
    let src: Arc<dyn BlobSource> = Arc::new(LayoutDir::open(&layout.dir).unwrap());
    let img = resolve(src.as_ref(), None, &Platform::host()).unwrap();
    let e = store.unpack(&src, &img).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::DigestMismatch {
                what: "layer diff id",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains(&wrong), "{e}");
    assert!(entries(&tmp.path().join("store/layers")).is_empty());
    assert!(entries(&tmp.path().join("store/tmp")).is_empty());
}

#[tokio::test]
async fn sweep_removes_leftovers_but_not_a_running_unpack() {
    let f = fixture();
    let left = f.store_root.join("tmp/layer-0123-deadbeef");
    std::fs::create_dir_all(left.join("usr/bin")).unwrap();
    std::fs::write(left.join("usr/bin/x"), b"half").unwrap();

    // Someone is unpacking (holds the store lock shared): sweep leaves everything.
    let lock = std::fs::File::open(f.store_root.join("store.lock"))
        .or_else(|_| std::fs::File::create(f.store_root.join("store.lock")))
        .unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockShared).unwrap();
    assert_eq!(f.store.sweep().await.unwrap(), 0);
    assert!(left.exists());
    drop(lock);

    assert_eq!(f.store.sweep().await.unwrap(), 1);
    assert!(!left.exists());
    assert_eq!(f.store.sweep().await.unwrap(), 0);
}

#[tokio::test]
async fn oci_archive_source() {
    let f = fixture();
    let ar = f._tmp.path().join("image.tar");
    f.layout.archive(&ar);
    let src: Arc<dyn BlobSource> = Arc::new(OciArchive::open(&ar).unwrap());
    let img = resolve(src.as_ref(), Some("b"), &Platform::host()).unwrap();
    let top = f.store.unpack(&src, &img).await.unwrap();
    assert_eq!(entries(&f.store.layer_path(&top).join("app")), ["b"]);
    let e = OciArchive::open(f.layout.dir.join("oci-layout")).unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e}");
}

#[test]
fn platform_selection_through_nested_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let (arm, _) = layout.image("arm64", &[app("arm")], None);
    let (amd, _) = layout.image("amd64", &[app("amd")], None);
    let (riscv, _) = layout.image("riscv64", &[app("riscv")], None);
    let mut unknown = riscv.clone();
    unknown["platform"] = json!({"architecture": "unknown", "os": "unknown"});
    let nested = layout.nested_index(&[arm.clone(), unknown, amd.clone()]);
    layout.index(&[(nested, Some("multi")), (arm.clone(), Some("armonly"))]);
    let src = LayoutDir::open(tmp.path()).unwrap();
    let amd64 = Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    };
    let img = resolve(&src, Some("multi"), &amd64).unwrap();
    assert_eq!(img.manifest.to_string(), amd["digest"].as_str().unwrap());
    let arm64 = Platform {
        architecture: "arm64".into(),
        ..amd64.clone()
    };
    let img = resolve(&src, Some("multi"), &arm64).unwrap();
    assert_eq!(img.manifest.to_string(), arm["digest"].as_str().unwrap());
    let e = resolve(&src, Some("armonly"), &amd64).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = resolve(&src, Some("nope"), &amd64).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[test]
fn tampered_manifest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let (m, _) = layout.image("amd64", &[base()], None);
    layout.index(&[(m.clone(), None)]);
    let p = layout.blob_path(&m);
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("schemaVersion\":2", "schemaVersion\":3");
    std::fs::write(&p, text).unwrap();
    let e = resolve(
        &LayoutDir::open(tmp.path()).unwrap(),
        None,
        &Platform::host(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::DigestMismatch {
                what: "manifest",
                ..
            }
        ),
        "{e}"
    );
}
