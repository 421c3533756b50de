//! Layer application on well-formed input: every entry kind with its metadata, whiteouts and
//! opaque directories, compression, digests. Needs root (chown, mknod).

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use common::{digest, gzip, zstd, Scratch, Tar, MTIME};
use nexcage_image::{apply_layer, verify_blob, Compression, Error, LayerBlob};
use tar::EntryType;

fn xattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

#[test]
fn every_kind_with_its_metadata() {
    let s = Scratch::new();
    let long = format!("deep/{}/file", "d".repeat(120));
    let layer = Tar::new()
        .dir(".", 0o755)
        .dir("bin", 0o755)
        .file_owned("bin/su", b"#!", 0o4755, 0, 0)
        .file_owned("bin/sg", b"#!", 0o2711, 1000, 1001)
        .dir("tmp", 0o1777)
        .file_owned("home/u/f", b"data", 0o640, 1000, 1001)
        .symlink("bin/sh", "/bin/busybox")
        .hardlink("bin/su2", "bin/su")
        .node("dev/null", EntryType::Char, 1, 3, 0o666)
        .node("dev/loop0", EntryType::Block, 7, 0, 0o660)
        .node("run/fifo", EntryType::Fifo, 0, 0, 0o600)
        .pax(&[
            ("SCHILY.xattr.user.foo", b"bar"),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.security.selinux", b"system_u:object_r:x"),
            ("mtime", b"1700000000.25"),
            ("uid", b"5000000"),
        ])
        .file("x", b"xattrs", 0o644)
        .pax(&[("path", long.as_bytes())])
        .file("placeholder", b"long", 0o600)
        .finish();
    let a = s.apply(&layer).unwrap();
    assert_eq!(a.counters.skipped_xattrs, 2);
    assert_eq!(a.compression, Compression::None);
    let t = s.target();
    let m = |p: &str| std::fs::symlink_metadata(t.join(p)).unwrap();
    assert_eq!(m("bin/su").mode() & 0o7777, 0o4755);
    assert_eq!(m("bin/sg").mode() & 0o7777, 0o2711);
    assert_eq!((m("bin/sg").uid(), m("bin/sg").gid()), (1000, 1001));
    assert_eq!(m("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(m("home/u/f").mode() & 0o7777, 0o640);
    assert_eq!(m("home/u").mode() & 0o7777, 0o755, "implicit parent");
    assert_eq!(
        std::fs::read_link(t.join("bin/sh")).unwrap().to_str(),
        Some("/bin/busybox")
    );
    assert_eq!(m("bin/su2").ino(), m("bin/su").ino());
    assert!(m("dev/null").file_type().is_char_device());
    assert_eq!(m("dev/null").rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(m("dev/null").mode() & 0o777, 0o666);
    assert!(m("dev/loop0").file_type().is_block_device());
    assert!(m("run/fifo").file_type().is_fifo());
    assert_eq!(m("x").uid(), 5_000_000);
    assert_eq!(
        (m("x").mtime(), m("x").mtime_nsec()),
        (1_700_000_000, 250_000_000)
    );
    assert_eq!(
        xattr(&t.join("x"), "user.foo").as_deref(),
        Some(&b"bar"[..])
    );
    assert_eq!(xattr(&t.join("x"), "trusted.overlay.opaque"), None);
    assert_eq!(std::fs::read(t.join(&long)).unwrap(), b"long");
    // Directory times survive the creation of their content.
    assert_eq!(m("bin").mtime(), MTIME as i64);
    assert_eq!(m(".").mtime(), MTIME as i64);
    assert_eq!(m("bin/sh").mtime(), MTIME as i64);
    s.assert_outside_untouched();
}

#[test]
fn whiteouts_and_opaque_directories() {
    let s = Scratch::new();
    let lower = Tar::new()
        .file("a/x", b"1", 0o644)
        .file("a/y", b"1", 0o644)
        .file("o/old1", b"1", 0o644)
        .file("o/sub/old2", b"1", 0o644)
        .file("w/keep", b"1", 0o644)
        .file("gone/deep/f", b"1", 0o644)
        .finish();
    s.apply(&lower).unwrap();
    let upper = Tar::new()
        .file("a/.wh.x", b"", 0o644)
        .file("o/new-before", b"2", 0o644)
        .file("o/sub/new", b"2", 0o644)
        .file("o/.wh..wh..opq", b"", 0o644)
        .file("o/new-after", b"2", 0o644)
        // A whiteout hides lower layers only: `w/same` of this layer stays.
        .file("w/same", b"2", 0o644)
        .file("w/.wh.same", b"", 0o644)
        .file(".wh.gone", b"", 0o644)
        .file(".wh.never-existed", b"", 0o644)
        .file("nodir/.wh.x", b"", 0o644)
        .finish();
    let a = s.apply(&upper).unwrap();
    assert_eq!(a.counters.whiteouts, 6);
    let t = s.target();
    let names = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(t.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("a"), ["y"]);
    assert_eq!(names("o"), ["new-after", "new-before", "sub"]);
    assert_eq!(names("o/sub"), ["new"]);
    assert_eq!(names("w"), ["keep", "same"]);
    assert!(!t.join("gone").exists());
    assert!(!t.join("nodir").exists(), "a whiteout creates nothing");
    assert!(names(".").iter().all(|n| !n.starts_with(".wh.")));
}

#[test]
fn replacements_change_the_type() {
    let s = Scratch::new();
    s.apply(
        &Tar::new()
            .file("a/f", b"1", 0o644)
            .file("b", b"1", 0o644)
            .finish(),
    )
    .unwrap();
    s.apply(
        &Tar::new()
            .file("a", b"now a file", 0o644)
            .dir("b", 0o700)
            .file("b/c", b"", 0o644)
            .finish(),
    )
    .unwrap();
    let t = s.target();
    assert_eq!(std::fs::read(t.join("a")).unwrap(), b"now a file");
    assert!(t.join("b/c").exists());
}

#[test]
fn compressions_and_digests() {
    let tar = Tar::new().file("hello", b"world", 0o644).finish();
    for (blob, mt, c) in [
        (
            tar.clone(),
            "application/vnd.oci.image.layer.v1.tar",
            Compression::None,
        ),
        (
            gzip(&tar),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Gzip,
        ),
        (
            zstd(&tar),
            "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::Zstd,
        ),
    ] {
        let s = Scratch::new();
        let layer = LayerBlob {
            media_type: Some(mt.into()),
            digest: Some(digest(&blob)),
            size: Some(blob.len() as u64),
            diff_id: Some(digest(&tar)),
        };
        let a = apply_layer(&blob[..], &layer, &s.target(), &Default::default()).unwrap();
        assert_eq!(a.compression, c);
        assert_eq!(a.diff_id, digest(&tar));
        assert_eq!(a.uncompressed_bytes, tar.len() as u64);
        assert_eq!(std::fs::read(s.target().join("hello")).unwrap(), b"world");
    }
}

#[test]
fn digest_mismatches_name_both_digests() {
    let tar = Tar::new().file("hello", b"world", 0o644).finish();
    let blob = gzip(&tar);
    let wrong = digest(b"something else");
    let s = Scratch::new();
    let layer = LayerBlob {
        digest: Some(wrong.clone()),
        diff_id: Some(digest(&tar)),
        ..Default::default()
    };
    let e = apply_layer(&blob[..], &layer, &s.target(), &Default::default()).unwrap_err();
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
    let m = e.to_string();
    assert!(
        m.contains(&wrong.to_string()) && m.contains(&digest(&blob).to_string()),
        "{m}"
    );

    let layer = LayerBlob {
        digest: Some(digest(&blob)),
        diff_id: Some(wrong.clone()),
        ..Default::default()
    };
    let e = apply_layer(&blob[..], &layer, &s.target(), &Default::default()).unwrap_err();
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
    assert!(e.to_string().contains(&digest(&tar).to_string()));

    let e = verify_blob(&blob[..], "layer blob", &wrong, None).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }));
    let e = verify_blob(&blob[..], "layer blob", &digest(&blob), Some(1)).unwrap_err();
    assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
    assert_eq!(
        verify_blob(
            &blob[..],
            "layer blob",
            &digest(&blob),
            Some(blob.len() as u64)
        )
        .unwrap(),
        blob.len() as u64
    );
}

#[test]
fn media_type_must_match_the_data() {
    let tar = Tar::new().file("hello", b"world", 0o644).finish();
    let s = Scratch::new();
    let layer = LayerBlob {
        media_type: Some("application/vnd.oci.image.layer.v1.tar+zstd".into()),
        ..Default::default()
    };
    let e = apply_layer(&gzip(&tar)[..], &layer, &s.target(), &Default::default()).unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e}");
    assert!(
        !s.target().join("hello").exists(),
        "nothing decoded before the check"
    );
    let layer = LayerBlob {
        media_type: Some("application/vnd.oci.image.layer.v1.tar+gzip+encrypted".into()),
        ..Default::default()
    };
    let e = apply_layer(&gzip(&tar)[..], &layer, &s.target(), &Default::default()).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
}
