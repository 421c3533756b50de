//! A two-layer image built locally with umoci from busybox-static, unpacked by `umoci unpack`
//! and by the directory store, compared file by file. Needs root, `umoci` and `/bin/busybox`
//! (tests/setup-host.sh installs both).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::Tar;
use nexcage_core::cmd::Cmd;
use nexcage_image::{resolve, BlobSource, DirStore, LayoutDir, Platform, Store};

async fn umoci(dir: &Path, args: &[&str]) {
    Cmd::new("umoci")
        .args(args)
        .current_dir(dir)
        .timeout(std::time::Duration::from_secs(120))
        .run()
        .await
        .unwrap_or_else(|e| panic!("umoci {args:?}: {e}"));
}

/// Layer 1: what a small busybox image has, plus files layer 2 changes.
fn populate(root: &Path) {
    let mk = |p: &str| std::fs::create_dir_all(root.join(p)).unwrap();
    for d in ["bin", "etc", "opaque/sub", "keep", "run", "dev", "tmp"] {
        mk(d);
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::hard_link(root.join("bin/busybox"), root.join("bin/bb-hardlink")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("delete-me"), "gone in layer 2").unwrap();
    std::fs::write(root.join("opaque/old1"), "lower").unwrap();
    std::fs::write(root.join("opaque/sub/old2"), "lower").unwrap();
    std::fs::write(root.join("keep/file"), "v1").unwrap();
    std::os::unix::fs::chown(root.join("keep/file"), Some(1000), Some(1000)).unwrap();
    let set = |p: &str, mode: u32| {
        std::fs::set_permissions(root.join(p), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set("keep/file", 0o600);
    set("tmp", 0o1777);
    std::fs::write(root.join("bin/suid"), "#!").unwrap();
    set("bin/suid", 0o4755);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("dev/null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    set("dev/null", 0o666);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("run/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    rustix::fs::setxattr(
        root.join("etc/passwd"),
        "user.note",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(
        root.join("keep/file"),
        "user.note",
        b"hello",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

/// Layer 2: deletes a file, makes a directory opaque, adds a hardlink and a symlink.
fn layer2() -> Vec<u8> {
    Tar::new()
        .file(".wh.delete-me", b"", 0o644)
        .dir("opaque", 0o750)
        .file("opaque/.wh..wh..opq", b"", 0o644)
        .file("opaque/new", b"upper", 0o644)
        .hardlink("bin/ln2", "bin/busybox")
        .symlink("etc/alias", "/etc/passwd")
        .file_owned("keep/file", b"v2", 0o640, 1000, 1001)
        .dir("sgid", 0o2775)
        .finish()
}

/// Everything comparable about a tree: per path its type, mode, owner, content or target,
/// device number, mtime (of directories only when a layer sets it: one a later layer writes
/// into gets the time of that write, in umoci as here), a user xattr; and the sets of paths
/// sharing an inode.
fn describe(root: &Path) -> (BTreeMap<String, String>, BTreeSet<Vec<String>>) {
    let mut files = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let what = if ft.is_dir() {
            let mut kids: Vec<_> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            kids.sort();
            stack.extend(kids.into_iter().map(|k| rel.join(k)));
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("symlink -> {}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            let data = std::fs::read(&p).unwrap();
            if m.nlink() > 1 {
                inodes
                    .entry(m.ino())
                    .or_default()
                    .push(rel.display().to_string());
            }
            format!("file {} {}", data.len(), common::digest(&data))
        } else if ft.is_char_device() || ft.is_block_device() {
            format!("dev {}", m.rdev())
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        let mut xattr = vec![0u8; 256];
        let note = rustix::fs::lgetxattr(&p, "user.note", &mut xattr)
            .map(|n| String::from_utf8_lossy(&xattr[..n]).into_owned())
            .unwrap_or_default();
        let line = format!(
            "{what} mode={:o} uid={} gid={} mtime={} xattr={note}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            if ft.is_dir() && m.mtime() != common::MTIME as i64 {
                0
            } else {
                m.mtime()
            }
        );
        files.insert(rel.display().to_string(), line);
    }
    let groups = inodes
        .into_values()
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    (files, groups)
}

#[tokio::test]
async fn same_tree_as_umoci_unpack() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    umoci(d, &["init", "--layout", "img"]).await;
    umoci(d, &["new", "--image", "img:v1"]).await;
    umoci(d, &["unpack", "--image", "img:v1", "b1"]).await;
    populate(&d.join("b1/rootfs"));
    umoci(d, &["repack", "--image", "img:v1", "b1"]).await;
    std::fs::write(d.join("layer2.tar"), layer2()).unwrap();
    umoci(
        d,
        &[
            "raw",
            "add-layer",
            "--image",
            "img:v1",
            "--tag",
            "v2",
            "layer2.tar",
        ],
    )
    .await;
    umoci(d, &["unpack", "--image", "img:v2", "ub"]).await;

    let store = DirStore::open(d.join("store"), Default::default()).unwrap();
    let src: Arc<dyn BlobSource> = Arc::new(LayoutDir::open(d.join("img")).unwrap());
    let img = resolve(src.as_ref(), Some("v2"), &Platform::host()).unwrap();
    assert_eq!(img.layers.len(), 2);
    let top = store.unpack(&src, &img).await.unwrap();
    let mine = store.create_rootfs(&top, "cmp").await.unwrap();

    let (theirs, their_links) = describe(&d.join("ub/rootfs"));
    if std::env::var_os("SHOW_TREES").is_some() {
        eprintln!("{theirs:#?}\n{their_links:?}");
    }
    let (ours, our_links) = describe(&mine.path);
    for (path, t) in &theirs {
        assert_eq!(ours.get(path), Some(t), "{path} differs from umoci");
    }
    let extra: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    assert!(extra.is_empty(), "not in umoci's tree: {extra:?}");
    assert_eq!(our_links, their_links);

    // The scenario really exercised what it claims to.
    assert!(!ours.contains_key("delete-me"));
    assert!(!ours.contains_key("opaque/old1") && !ours.contains_key("opaque/sub"));
    assert!(ours["opaque/new"].starts_with("file 5 "));
    assert!(ours["etc/alias"].starts_with("symlink -> /etc/passwd"));
    assert!(
        our_links
            .iter()
            .any(|g| g.contains(&"bin/ln2".to_string()) && g.len() == 3),
        "{our_links:?}"
    );
    assert!(ours["dev/null"].starts_with(&format!("dev {}", rustix::fs::makedev(1, 3))));
    assert!(
        ours["keep/file"].contains("uid=1000 gid=1001"),
        "{}",
        ours["keep/file"]
    );
    assert!(ours["bin/suid"].contains("mode=4755"));
    assert!(
        ours["opaque"].contains(&format!("mtime={}", common::MTIME)),
        "{}",
        ours["opaque"]
    );
    assert!(
        ours["etc/passwd"].ends_with("xattr=kept"),
        "{}",
        ours["etc/passwd"]
    );
}
