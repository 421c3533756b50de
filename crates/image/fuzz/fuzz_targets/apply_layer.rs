//! Arbitrary layers into `apply_layer`, on a scratch directory, asserting that nothing outside
//! the target changes.
//!
//! Each input is either raw bytes (a blob as the store would get it: gzip, zstd, plain tar or
//! junk) or a tar built from structured entries whose paths come from a hostile alphabet (`..`,
//! absolute paths, whiteouts, names of planted symlinks that point out of the target).
//!
//! ```text
//! <case>/outside/                 the sentinel: files, a directory, a symlink; must not change
//! <case>/target/                  what the layer is applied onto, with planted symlinks:
//!     up -> ..                    (the case directory)
//!     esc -> ../outside
//!     abs -> <case>/outside       (absolute; never to `/`, so an escape lands in the sentinel)
//!     file -> ../outside/secret
//! ```
//!
//! After every input: the sentinel tree is unchanged (type, mode, owner, size, link count,
//! mtime, content, link targets, xattr names), the case directory holds only `outside` and
//! `target` and its own metadata is unchanged. Device nodes are skipped (`DevicePolicy::Skip`):
//! a fuzzer running as root must not create a node for a real disk, even inside the target.

#![no_main]

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nexcage_image::{apply_layer, ApplyOptions, DevicePolicy, LayerBlob, Limits, Resolve};

#[derive(Arbitrary, Debug)]
enum Input {
    /// Bytes as a layer blob.
    Raw(Vec<u8>),
    /// A tar of these entries.
    Entries(Vec<Entry>, Opts),
}

#[derive(Arbitrary, Debug)]
struct Opts {
    in_root: bool,
    no_chown: bool,
}

#[derive(Arbitrary, Debug)]
struct Entry {
    path: Name,
    kind: Kind,
    link: Name,
    mode: u16,
    owner: u8,
    data: Data,
    /// Give the path in a PAX `path` record (and the header a decoy name).
    pax: bool,
    /// A PAX xattr.
    xattr: Option<Xattr>,
}

#[derive(Arbitrary, Debug)]
enum Xattr {
    User,
    Trusted,
    Selinux,
    Acl,
}

#[derive(Arbitrary, Debug)]
enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Fifo,
    CharDev,
    BlockDev,
}

/// Small file content.
#[derive(Debug)]
struct Data(Vec<u8>);

impl<'a> Arbitrary<'a> for Data {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u.int_in_range(0..=64)?;
        Ok(Data(u.bytes(n)?.to_vec()))
    }
}

/// A path made of hostile components.
#[derive(Arbitrary, Debug)]
struct Name {
    absolute: bool,
    trailing_slash: bool,
    comps: Vec<Comp>,
}

#[derive(Arbitrary, Debug)]
enum Comp {
    Dot,
    DotDot,
    Empty,
    A,
    B,
    Up,
    Esc,
    Abs,
    File,
    Outside,
    Secret,
    Whiteout(Box<Comp>),
    Opaque,
    Raw(u8),
}

impl Comp {
    fn bytes(&self, out: &mut Vec<u8>) {
        match self {
            Comp::Dot => out.push(b'.'),
            Comp::DotDot => out.extend_from_slice(b".."),
            Comp::Empty => {}
            Comp::A => out.push(b'a'),
            Comp::B => out.push(b'b'),
            Comp::Up => out.extend_from_slice(b"up"),
            Comp::Esc => out.extend_from_slice(b"esc"),
            Comp::Abs => out.extend_from_slice(b"abs"),
            Comp::File => out.extend_from_slice(b"file"),
            Comp::Outside => out.extend_from_slice(b"outside"),
            Comp::Secret => out.extend_from_slice(b"secret"),
            Comp::Whiteout(c) => {
                out.extend_from_slice(b".wh.");
                c.bytes(out);
            }
            Comp::Opaque => out.extend_from_slice(b".wh..wh..opq"),
            Comp::Raw(b) => out.push(*b),
        }
    }
}

impl Name {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.absolute {
            out.push(b'/');
        }
        for (i, c) in self.comps.iter().take(12).enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            c.bytes(&mut out);
        }
        if self.trailing_slash {
            out.push(b'/');
        }
        out.truncate(99);
        out
    }
}

/// A tar header block with the name written raw (no checks: hostile names are the point).
fn header(name: &[u8], kind: u8, size: u64, mode: u32, owner: u8, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    let octal = |field: &mut [u8], v: u64| {
        let s = format!("{:0width$o}\0", v, width = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    };
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], u64::from(owner));
    octal(&mut h[116..124], u64::from(owner));
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_600_000_000);
    h[156] = kind;
    h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    if matches!(kind, b'3' | b'4') {
        octal(&mut h[329..337], 1);
        octal(&mut h[337..345], 3);
    }
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// One PAX record `"<len> <key>=<value>\n"`.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body_len + 1;
    while len != body_len + len.to_string().len() {
        len = body_len + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

fn build_tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries.iter().take(32) {
        let path = e.path.bytes();
        let link = e.link.bytes();
        let mut pax = Vec::new();
        if e.pax {
            pax.extend(pax_record("path", &path));
        }
        match e.xattr {
            Some(Xattr::User) => pax.extend(pax_record("SCHILY.xattr.user.fuzz", b"v")),
            Some(Xattr::Trusted) => {
                pax.extend(pax_record("SCHILY.xattr.trusted.overlay.opaque", b"y"))
            }
            Some(Xattr::Selinux) => pax.extend(pax_record("SCHILY.xattr.security.selinux", b"x")),
            Some(Xattr::Acl) => pax.extend(pax_record(
                "SCHILY.xattr.system.posix_acl_access",
                b"\x02\0\0\0",
            )),
            None => {}
        }
        if !pax.is_empty() {
            out.extend_from_slice(&header(b"pax", b'x', pax.len() as u64, 0o644, 0, b""));
            out.extend_from_slice(&pax);
            pad(&mut out);
        }
        let name: &[u8] = if e.pax { b"decoy" } else { &path };
        let mode = u32::from(e.mode) & 0o7777;
        let (kind, data): (u8, &[u8]) = match e.kind {
            Kind::File => (b'0', &e.data.0),
            Kind::Dir => (b'5', &[]),
            Kind::Symlink => (b'2', &[]),
            Kind::Hardlink => (b'1', &[]),
            Kind::Fifo => (b'6', &[]),
            Kind::CharDev => (b'3', &[]),
            Kind::BlockDev => (b'4', &[]),
        };
        out.extend_from_slice(&header(name, kind, data.len() as u64, mode, e.owner, &link));
        out.extend_from_slice(data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Everything observable about a tree, without following symlinks.
type Snapshot = BTreeMap<PathBuf, String>;

fn describe(p: &Path) -> String {
    let m = std::fs::symlink_metadata(p).expect("lstat in the sentinel");
    let mut xattrs = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut xattrs).unwrap_or(0);
    xattrs.truncate(n);
    let ft = m.file_type();
    let extra = if ft.is_symlink() {
        format!("-> {:?}", std::fs::read_link(p).expect("readlink"))
    } else if ft.is_file() {
        let mut v = Vec::new();
        std::fs::File::open(p)
            .and_then(|mut f| f.read_to_end(&mut v))
            .expect("read a sentinel file");
        format!("content {v:?}")
    } else {
        String::new()
    };
    format!(
        "{:?} mode {:o} owner {}:{} size {} nlink {} mtime {}.{} xattrs {:?} {extra}",
        ft,
        m.permissions().mode(),
        m.uid(),
        m.gid(),
        m.size(),
        m.nlink(),
        m.mtime(),
        m.mtime_nsec(),
        xattrs
    )
}

fn snapshot(root: &Path, out: &mut Snapshot) {
    out.insert(root.to_path_buf(), describe(root));
    let m = std::fs::symlink_metadata(root).expect("lstat");
    if m.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(root)
            .expect("readdir")
            .map(|e| e.expect("entry").path())
            .collect();
        names.sort();
        for n in names {
            snapshot(&n, out);
        }
    }
}

/// A scratch directory per input, on tmpfs when there is one (removed after the input; left
/// for inspection when an assertion aborts the run).
fn scratch() -> tempfile::TempDir {
    let b = tempfile::Builder::new().prefix("nexcage-fuzz-").clone();
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        b.tempdir_in(shm)
    } else {
        b.tempdir()
    }
    .expect("scratch directory")
}

/// A fresh case directory with the sentinel and the planted symlinks.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let case = scratch();
    let outside = case.path().join("outside");
    let target = case.path().join("target");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    std::fs::write(outside.join("sub/inner"), b"inner").unwrap();
    std::os::unix::fs::symlink("secret", outside.join("link")).unwrap();
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink("..", target.join("up")).unwrap();
    std::os::unix::fs::symlink("../outside", target.join("esc")).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("abs")).unwrap();
    std::os::unix::fs::symlink("../outside/secret", target.join("file")).unwrap();
    (case, outside, target)
}

fn limits() -> Limits {
    Limits {
        max_uncompressed: 16 << 20,
        max_entries: 10_000,
        max_file_size: 4 << 20,
        max_path_len: 4096,
        max_depth: 64,
        max_metadata: 64 << 10,
    }
}

fuzz_target!(|input: Input| {
    let (case, outside, target) = setup();
    let mut before = Snapshot::new();
    snapshot(&outside, &mut before);
    let case_before = describe(case.path());

    let (bytes, resolve, no_chown) = match &input {
        Input::Raw(b) => (b.clone(), Resolve::Beneath, false),
        Input::Entries(entries, o) => (
            build_tar(entries),
            if o.in_root {
                Resolve::InRoot
            } else {
                Resolve::Beneath
            },
            o.no_chown,
        ),
    };
    let opts = ApplyOptions {
        limits: limits(),
        resolve,
        devices: DevicePolicy::Skip,
        no_chown,
    };
    let _ = apply_layer(&bytes[..], &LayerBlob::default(), &target, &opts);

    let mut after = Snapshot::new();
    snapshot(&outside, &mut after);
    assert_eq!(before, after, "the sentinel outside the target changed");
    let mut names: Vec<String> = std::fs::read_dir(case.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["outside", "target"],
        "something was created beside the target"
    );
    assert_eq!(
        case_before,
        describe(case.path()),
        "the case directory changed"
    );
    assert!(
        std::fs::symlink_metadata(&target).unwrap().is_dir(),
        "the target was replaced"
    );

    // The applier may leave modes that keep even root's remove_dir_all from descending
    // (it never does for root, but a no_chown run as a user would): open everything up.
    fn open_up(p: &Path) {
        if let Ok(m) = std::fs::symlink_metadata(p) {
            if m.is_dir() {
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
                if let Ok(rd) = std::fs::read_dir(p) {
                    for e in rd.flatten() {
                        open_up(&e.path());
                    }
                }
            }
        }
    }
    open_up(&target);
    drop(case);
});
