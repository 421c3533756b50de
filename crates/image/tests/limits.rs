//! Limits and malformed input: a decompression bomb stops at the limit with a clear error, every
//! other limit is enforced, and broken archives are errors (never panics), with the sentinel
//! next to the target untouched.

mod common;

use common::{gzip, Scratch, Tar};
use nexcage_image::{ApplyOptions, Error};

#[test]
fn gzip_bomb_stops_at_the_limit() {
    let s = Scratch::new();
    // 64 MiB of zeros in one file compresses to ~64 KiB.
    let zeros = vec![0u8; 64 << 20];
    let layer = gzip(&Tar::new().file("bomb", &zeros, 0o644).finish());
    assert!(layer.len() < 1 << 20);
    let o = ApplyOptions {
        limits: nexcage_image::Limits {
            max_uncompressed: 4 << 20,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = s.apply_with(&layer, &o).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                what: "uncompressed size",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("at entry \"bomb\""), "{e}");
    let written = std::fs::metadata(s.target().join("bomb"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(written <= 4 << 20, "wrote {written} bytes past the limit");

    // Zeros that are no tar at all: the archive ends at once, the drain hits the limit.
    let e = s.apply_with(&gzip(&zeros), &o).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                what: "uncompressed size",
                ..
            }
        ),
        "{e}"
    );
    s.assert_outside_untouched();
}

#[test]
fn other_limits() {
    let s = Scratch::new();
    let small = |f: fn(&mut nexcage_image::Limits)| {
        let mut limits = nexcage_image::Limits::default();
        f(&mut limits);
        ApplyOptions {
            limits,
            ..Default::default()
        }
    };
    let layer = Tar::new().file("a", &[1; 2000], 0o644).finish();
    let e = s
        .apply_with(&layer, &small(|l| l.max_file_size = 1000))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                what: "file size",
                ..
            }
        ),
        "{e}"
    );
    let mut t = Tar::new();
    for i in 0..20 {
        t = t.file(&format!("f{i}"), b"", 0o644);
    }
    let e = s
        .apply_with(&t.finish(), &small(|l| l.max_entries = 10))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                what: "entry count",
                ..
            }
        ),
        "{e}"
    );
    let layer = Tar::new().file("a/b/c/d", b"", 0o644).finish();
    let e = s
        .apply_with(&layer, &small(|l| l.max_depth = 3))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                what: "path depth",
                ..
            }
        ),
        "{e}"
    );
    let t = Tar::new()
        .pax(&[("comment", &vec![b'x'; 5000])])
        .file("a", b"", 0o644);
    let e = s
        .apply_with(&t.finish(), &small(|l| l.max_metadata = 4096))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                what: "extension header size",
                ..
            }
        ),
        "{e}"
    );
    s.assert_outside_untouched();
}

#[test]
fn malformed_archives_are_errors_not_panics() {
    let s = Scratch::new();
    let good = Tar::new().file("a", b"hello", 0o644).finish();
    // Bad checksum.
    let mut bad = good.clone();
    bad[0] = b'b';
    assert!(matches!(s.apply(&bad), Err(Error::Malformed { .. })));
    // Truncated data.
    assert!(s.apply(&good[..512 + 2]).is_err());
    // Truncated gzip.
    let gz = gzip(&good);
    assert!(matches!(
        s.apply(&gz[..gz.len() / 2]),
        Err(Error::Malformed { .. })
    ));
    // A dangling extension header.
    let t = Tar::new().pax(&[("path", b"x")]);
    assert!(matches!(s.apply(&t.finish()), Err(Error::Malformed { .. })));
    // Sparse files are refused.
    let t = Tar::new()
        .pax(&[("GNU.sparse.major", b"1")])
        .file("a", b"", 0o644);
    assert!(matches!(s.apply(&t.finish()), Err(Error::Unsupported(_))));
    s.assert_outside_untouched();
}
