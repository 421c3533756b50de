//! Against a real pool: zfs-fuse's `nexcage-test` from tests/setup-zfs.sh, or the pool named by
//! `NEXCAGE_ZFS_POOL`. Each test works in its own child dataset and destroys it.
//!
//! Run with `cargo test -p nexcage-zfs -- --ignored`.

use nexcage_core::ErrorKind;
use nexcage_core::HasKind;
use nexcage_zfs::{
    CloneOpts, CreateOpts, DatasetType, Depth, DestroyOpts, ListOpts, RollbackOpts, Source, Zfs,
};

fn pool() -> String {
    std::env::var("NEXCAGE_ZFS_POOL").unwrap_or_else(|_| "nexcage-test".into())
}

/// A fresh `<pool>/zfs-<name>` (whatever an earlier failed run left is destroyed first).
async fn scratch(zfs: &Zfs, name: &str) -> String {
    let ds = format!("{}/zfs-{name}", pool());
    let all = DestroyOpts {
        recursive: true,
        dependents: true,
        force: true,
    };
    zfs.destroy_if_exists(&ds, &all).await.unwrap();
    zfs.create(&ds, &CreateOpts::default()).await.unwrap();
    ds
}

async fn done(zfs: &Zfs, ds: &str) {
    let all = DestroyOpts {
        recursive: true,
        dependents: true,
        force: false,
    };
    zfs.destroy(ds, &all).await.unwrap();
    assert!(!zfs.exists(ds).await.unwrap());
}

fn props(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
#[ignore = "needs root and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn dataset_lifecycle() {
    let zfs = Zfs::new();
    let root = scratch(&zfs, "lifecycle").await;
    let a = format!("{root}/a");
    let o = CreateOpts {
        parents: false,
        properties: props(&[("nexcage:test", "yes"), ("compression", "off")]),
    };
    zfs.create(&a, &o).await.unwrap();
    let p = zfs.get(&a, &["nexcage:test", "origin"]).await.unwrap();
    assert_eq!(p[0].value.as_deref(), Some("yes"));
    assert_eq!(p[0].source, Source::Local);
    assert_eq!(p[1].value, None);

    let mp = zfs.get_one(&a, "mountpoint").await.unwrap().unwrap();
    std::fs::write(format!("{mp}/file"), b"one").unwrap();
    zfs.snapshot(&format!("{a}@s1"), &vec![]).await.unwrap();
    std::fs::write(format!("{mp}/file"), b"two").unwrap();
    zfs.snapshot(&format!("{a}@s2"), &vec![]).await.unwrap();

    let snaps = zfs
        .list(&ListOpts::children(&a, &[DatasetType::Snapshot]))
        .await
        .unwrap();
    let names: Vec<_> = snaps.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, [format!("{a}@s1"), format!("{a}@s2")]);
    assert!(snaps
        .iter()
        .all(|s| s.available.is_none() && s.creation > 0));

    let b = format!("{root}/b");
    let co = CloneOpts {
        parents: false,
        properties: props(&[("nexcage:clone", "1")]),
    };
    zfs.clone_snapshot(&format!("{a}@s1"), &b, &co)
        .await
        .unwrap();
    let origin = zfs.get_one(&b, "origin").await.unwrap();
    assert_eq!(origin.as_deref(), Some(format!("{a}@s1").as_str()));
    let bmp = zfs.get_one(&b, "mountpoint").await.unwrap().unwrap();
    assert_eq!(std::fs::read(format!("{bmp}/file")).unwrap(), b"one");

    zfs.promote(&b).await.unwrap();
    assert_eq!(zfs.get_one(&b, "origin").await.unwrap(), None);
    let origin = zfs.get_one(&a, "origin").await.unwrap();
    assert_eq!(origin.as_deref(), Some(format!("{b}@s1").as_str()));

    // a@s2 is a's own snapshot still; roll a back to it after a change.
    std::fs::write(format!("{mp}/file"), b"three").unwrap();
    zfs.rollback(&format!("{a}@s2"), &RollbackOpts::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(format!("{mp}/file")).unwrap(), b"two");

    // zfs-fuse renames only unmounted file systems.
    zfs.unmount(&a).await.unwrap();
    zfs.unmount(&a).await.unwrap();
    let c = format!("{root}/c");
    zfs.rename(&a, &c).await.unwrap();
    assert!(!zfs.exists(&a).await.unwrap());
    assert!(zfs.exists(&format!("{c}@s2")).await.unwrap());
    zfs.mount(&c).await.unwrap();
    zfs.mount(&c).await.unwrap();
    let cmp = zfs.get_one(&c, "mountpoint").await.unwrap().unwrap();
    assert_eq!(std::fs::read(format!("{cmp}/file")).unwrap(), b"two");

    zfs.set(&c, &props(&[("nexcage:test", "no"), ("atime", "off")]))
        .await
        .unwrap();
    assert_eq!(
        zfs.get_one(&c, "nexcage:test").await.unwrap().as_deref(),
        Some("no")
    );
    done(&zfs, &root).await;
}

#[tokio::test]
#[ignore = "needs root and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn list_gives_exact_numbers_and_depth() {
    let zfs = Zfs::new();
    let root = scratch(&zfs, "list").await;
    for n in ["x", "x/y", "z"] {
        zfs.create(&format!("{root}/{n}"), &CreateOpts::default())
            .await
            .unwrap();
    }
    let mp = zfs
        .get_one(&format!("{root}/z"), "mountpoint")
        .await
        .unwrap()
        .unwrap();
    std::fs::write(format!("{mp}/blob"), vec![7u8; 300_000]).unwrap();
    zfs.snapshot(&format!("{root}/z@s"), &vec![]).await.unwrap();

    let o = ListOpts {
        roots: vec![root.clone()],
        depth: Depth::Max(1),
        types: vec![],
    };
    let names: Vec<_> = zfs
        .list(&o)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(
        names,
        [root.clone(), format!("{root}/x"), format!("{root}/z")]
    );

    let all = ListOpts {
        roots: vec![root.clone()],
        depth: Depth::All,
        types: vec![DatasetType::Filesystem, DatasetType::Snapshot],
    };
    let rows = zfs.list(&all).await.unwrap();
    assert_eq!(rows.len(), 5, "{rows:?}");
    let z = rows.iter().find(|d| d.name == format!("{root}/z")).unwrap();
    // Exact bytes, not "293K": the data is incompressible enough to need > 256 KiB.
    assert!(z.referenced > 256 * 1024, "{z:?}");
    assert!(z.available.unwrap() > 0);
    assert_eq!(z.mountpoint.as_deref(), Some(mp.as_str()));
    done(&zfs, &root).await;
}

#[tokio::test]
#[ignore = "needs root and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn errors_are_classified() {
    let zfs = Zfs::new();
    let root = scratch(&zfs, "errors").await;
    let a = format!("{root}/a");
    zfs.create(&a, &CreateOpts::default()).await.unwrap();
    let kind = |r: Result<(), nexcage_zfs::Error>| r.unwrap_err().kind();

    assert_eq!(
        kind(zfs.create(&a, &CreateOpts::default()).await),
        ErrorKind::AlreadyExists
    );
    let missing = format!("{root}/missing");
    assert_eq!(
        kind(zfs.destroy(&missing, &DestroyOpts::default()).await),
        ErrorKind::NotFound
    );
    assert!(!zfs
        .destroy_if_exists(&missing, &DestroyOpts::default())
        .await
        .unwrap());
    zfs.snapshot(&format!("{a}@s"), &vec![]).await.unwrap();
    assert_eq!(
        kind(zfs.snapshot(&format!("{a}@s"), &vec![]).await),
        ErrorKind::AlreadyExists
    );
    let e = zfs
        .clone_snapshot(
            &format!("{a}@nope"),
            &format!("{root}/b"),
            &CloneOpts::default(),
        )
        .await;
    assert_eq!(kind(e), ErrorKind::NotFound);
    assert_eq!(
        kind(zfs.destroy(&a, &DestroyOpts::default()).await),
        ErrorKind::FailedPrecondition
    );
    zfs.snapshot(&format!("{a}@t"), &vec![]).await.unwrap();
    let e = zfs
        .rollback(&format!("{a}@s"), &RollbackOpts::default())
        .await;
    assert_eq!(kind(e), ErrorKind::FailedPrecondition);
    let e = zfs
        .rollback(
            &format!("{a}@s"),
            &RollbackOpts {
                destroy_later: true,
            },
        )
        .await;
    e.unwrap();
    assert!(!zfs.exists(&format!("{a}@t")).await.unwrap());
    assert_eq!(kind(zfs.promote(&a).await), ErrorKind::FailedPrecondition);
    let e = zfs.set(&a, &props(&[("bogus", "1")])).await;
    assert_eq!(kind(e), ErrorKind::InvalidArgument);
    let e = zfs.get(&a, &["bogus"]).await.map(drop);
    assert_eq!(kind(e), ErrorKind::InvalidArgument);
    let e = zfs
        .create(&format!("{root}/p/q"), &CreateOpts::default())
        .await;
    assert_eq!(kind(e), ErrorKind::NotFound);
    let parents = CreateOpts {
        parents: true,
        properties: vec![],
    };
    zfs.create(&format!("{root}/p/q"), &parents).await.unwrap();
    // Refused before any call.
    assert_eq!(
        kind(zfs.create("-o", &CreateOpts::default()).await),
        ErrorKind::InvalidArgument
    );
    done(&zfs, &root).await;
}

#[tokio::test]
#[ignore = "needs root and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn pool_health() {
    let zfs = Zfs::new();
    let p = zfs.pool(&pool()).await.unwrap();
    assert!(p.is_usable(), "{p:?}");
    let e = zfs.pool("nexcagenosuchpool").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}
