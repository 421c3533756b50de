//! Hostile layers: every way out of the target is refused with a clear error, and the sentinel
//! directory next to the target is checked to be untouched after each attempt.

mod common;

use common::{Scratch, Tar};
use nexcage_image::{ApplyOptions, DevicePolicy, Error, Resolve};
use tar::EntryType;

/// The error must be a refusal (not an I/O accident) and say why.
fn assert_refused(r: nexcage_image::Result<nexcage_image::Applied>, why: &str) {
    match r {
        Err(e @ Error::Unsafe { .. }) => {
            assert!(e.to_string().contains(why), "{e}");
        }
        other => panic!("expected a refusal containing {why:?}, got {other:?}"),
    }
}

#[test]
fn absolute_path() {
    let s = Scratch::new();
    let abs = format!("{}/pwned", s.outside().display());
    let layer = Tar::new().file(&abs, b"x", 0o644).finish();
    assert_refused(s.apply(&layer), "absolute path");
    s.assert_outside_untouched();
}

#[test]
fn dotdot_components() {
    for p in [
        "../outside/pwned",
        "a/../../outside/pwned",
        "./../outside/d/x",
    ] {
        let s = Scratch::new();
        let layer = Tar::new().dir("a", 0o755).file(p, b"x", 0o644).finish();
        assert_refused(s.apply(&layer), "'..' component");
        s.assert_outside_untouched();
    }
}

#[test]
fn pax_and_gnu_long_names_are_checked_too() {
    let s = Scratch::new();
    let t = Tar::new()
        .pax(&[("path", b"../outside/pwned")])
        .file("innocent", b"x", 0o644);
    assert_refused(s.apply(&t.finish()), "'..' component");
    let t = Tar::new()
        .gnu_longname(b"../../outside/pwned")
        .file("innocent", b"x", 0o644);
    assert_refused(s.apply(&t.finish()), "'..' component");
    s.assert_outside_untouched();
}

#[test]
fn symlinked_parent_pointing_outside() {
    let s = Scratch::new();
    let abs = s.outside().display().to_string();
    for (link, why) in [
        (abs.as_str(), "resolves outside"),
        ("../outside", "resolves outside"),
    ] {
        let layer = Tar::new()
            .symlink("evil", link)
            .file("evil/pwned", b"x", 0o644)
            .finish();
        assert_refused(s.apply(&layer), why);
        s.assert_outside_untouched();
        // The symlink itself is created as is: only writing through it is refused.
        let t = std::fs::read_link(s.target().join("evil")).unwrap();
        assert_eq!(t.display().to_string(), link);
    }
}

#[test]
fn symlink_chain_and_nested_parents() {
    let s = Scratch::new();
    let layer = Tar::new()
        .dir("a", 0o755)
        .symlink("a/up", "..")
        .symlink("a/upup", "up/..")
        .file("a/upup/d/pwned", b"x", 0o644)
        .finish();
    assert_refused(s.apply(&layer), "resolves outside");
    s.assert_outside_untouched();
}

#[test]
fn in_root_mode_keeps_escapes_inside() {
    let s = Scratch::new();
    let abs = s.outside().display().to_string();
    let rel_outside = abs.trim_start_matches('/');
    let layer = Tar::new()
        .symlink("evil", "/")
        .symlink("up", "../../..")
        .file(&format!("evil/{rel_outside}/pwned"), b"x", 0o644)
        .file("up/pwned2", b"y", 0o644)
        .finish();
    let o = ApplyOptions {
        resolve: Resolve::InRoot,
        ..Default::default()
    };
    s.apply_with(&layer, &o).unwrap();
    s.assert_outside_untouched();
    let inside = s.target().join(rel_outside).join("pwned");
    assert_eq!(std::fs::read(inside).unwrap(), b"x");
    assert_eq!(std::fs::read(s.target().join("pwned2")).unwrap(), b"y");
}

#[test]
fn dangling_parent_symlink_is_an_error() {
    let s = Scratch::new();
    let layer = Tar::new()
        .symlink("evil", "nowhere")
        .file("evil/x", b"x", 0o644)
        .finish();
    let e = s.apply(&layer).unwrap_err();
    assert!(e.to_string().contains("dangling"), "{e}");
    assert!(!s.target().join("nowhere").exists());
    s.assert_outside_untouched();
}

#[test]
fn hardlink_to_outside() {
    let s = Scratch::new();
    let abs = s.outside().display().to_string();
    let cases = [
        (
            Tar::new().hardlink("hl", "../outside/secret").finish(),
            "'..' component",
        ),
        (
            Tar::new().hardlink("hl", &format!("{abs}/secret")).finish(),
            "absolute path",
        ),
        (
            Tar::new()
                .symlink("evil", &abs)
                .hardlink("hl", "evil/secret")
                .finish(),
            "resolves outside",
        ),
        (
            Tar::new()
                .symlink("evil", "../outside")
                .hardlink("hl", "evil/secret")
                .finish(),
            "resolves outside",
        ),
    ];
    for (layer, why) in cases {
        assert_refused(s.apply(&layer), why);
        s.assert_outside_untouched(); // includes nlink of secret still 1
    }
}

#[test]
fn hardlink_to_a_symlink_links_the_symlink_itself() {
    let s = Scratch::new();
    let abs = s.outside().display().to_string();
    let layer = Tar::new()
        .symlink("ptr", &format!("{abs}/secret"))
        .hardlink("hl", "ptr")
        .finish();
    s.apply(&layer).unwrap();
    let m = std::fs::symlink_metadata(s.target().join("hl")).unwrap();
    assert!(m.file_type().is_symlink());
    s.assert_outside_untouched();
}

#[test]
fn symlink_swap_between_entries() {
    let s = Scratch::new();
    let abs = s.outside().display().to_string();
    // A is a directory, B replaces it with a symlink (out, or to /), C writes under A.
    let rel_outside = abs.trim_start_matches('/');
    let cases = [
        Tar::new()
            .dir("a", 0o755)
            .symlink("a", &abs)
            .file("a/pwned", b"x", 0o644)
            .finish(),
        Tar::new()
            .dir("a", 0o755)
            .dir("a/sub", 0o755)
            .symlink("a", "/")
            .file(&format!("a/{rel_outside}/pwned"), b"x", 0o644)
            .finish(),
        Tar::new()
            .dir("a", 0o755)
            .symlink("a", "../outside")
            .dir("a/d/newdir", 0o777)
            .finish(),
    ];
    for layer in cases {
        assert_refused(s.apply(&layer), "resolves outside");
        s.assert_outside_untouched();
    }
}

#[test]
fn entries_replace_symlinks_instead_of_following_them() {
    let s = Scratch::new();
    let abs = s.outside().display().to_string();
    let layer = Tar::new()
        .symlink("f", &format!("{abs}/secret"))
        .file("f", b"replaced", 0o600)
        .symlink("d", &abs)
        .dir("d", 0o777)
        .symlink("n", &format!("{abs}/d"))
        .node("n", EntryType::Fifo, 0, 0, 0o666)
        .finish();
    s.apply(&layer).unwrap();
    assert_eq!(std::fs::read(s.target().join("f")).unwrap(), b"replaced");
    assert!(std::fs::symlink_metadata(s.target().join("d"))
        .unwrap()
        .is_dir());
    s.assert_outside_untouched();
}

#[test]
fn whiteouts_cannot_reach_outside() {
    let s = Scratch::new();
    let abs = s.outside().display().to_string();
    let layer = Tar::new()
        .symlink("evil", &abs)
        .file("evil/.wh.secret", b"", 0o644)
        .finish();
    assert_refused(s.apply(&layer), "resolves outside");
    // An opaque marker under a symlink to outside: the symlink is no directory, nothing happens.
    let layer = Tar::new()
        .symlink("evil", &abs)
        .file("evil/.wh..wh..opq", b"", 0o644)
        .finish();
    let r = s.apply(&layer);
    assert!(matches!(r, Err(Error::Unsafe { .. }) | Ok(_)), "{r:?}");
    for bad in [".wh..", "a/.wh."] {
        let layer = Tar::new().file(bad, b"", 0o644).finish();
        assert_refused(s.apply(&layer), "whiteout of");
    }
    s.assert_outside_untouched();
}

#[test]
fn device_nodes_in_odd_places() {
    let s = Scratch::new();
    let abs = s.outside().display().to_string();
    let layer = Tar::new()
        .node("../outside/null", EntryType::Char, 1, 3, 0o666)
        .finish();
    assert_refused(s.apply(&layer), "'..' component");
    let layer = Tar::new()
        .symlink("dev", &abs)
        .node("dev/sda", EntryType::Block, 8, 0, 0o660)
        .finish();
    assert_refused(s.apply(&layer), "resolves outside");
    let layer = Tar::new()
        .node("sda", EntryType::Block, 8, 0, 0o660)
        .finish();
    let refuse = ApplyOptions {
        devices: DevicePolicy::Refuse,
        ..Default::default()
    };
    assert_refused(
        s.apply_with(&layer, &refuse),
        "device nodes are not allowed",
    );
    let skip = ApplyOptions {
        devices: DevicePolicy::Skip,
        ..Default::default()
    };
    let a = s.apply_with(&layer, &skip).unwrap();
    assert_eq!(a.counters.skipped_devices, 1);
    assert!(!s.target().join("sda").exists());
    // A device as the target root is refused.
    let layer = Tar::new().node(".", EntryType::Char, 1, 3, 0o666).finish();
    assert_refused(s.apply(&layer), "root can only be a directory");
    s.assert_outside_untouched();
}
