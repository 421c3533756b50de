//! Test helpers: hand-built (also hostile) tar archives, and a sentinel directory outside the
//! target that must stay untouched.
#![allow(dead_code)]

pub mod layout;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nexcage_image::{ApplyOptions, Digest, LayerBlob};
use tar::{EntryType, Header};

pub const MTIME: u64 = 1_600_000_000;

/// Builds archives entry by entry, writing names raw (no checks), so any hostile path works.
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Tar {
    fn default() -> Self {
        Tar::new()
    }
}

fn header(path: &[u8], kind: EntryType, size: u64, mode: u32) -> Header {
    let mut h = Header::new_ustar();
    assert!(path.len() <= 100, "use pax_path for long names");
    h.as_old_mut().name[..path.len()].copy_from_slice(path);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl Tar {
    pub fn new() -> Self {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub fn raw(mut self, mut h: Header, data: &[u8]) -> Self {
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir(self, path: &str, mode: u32) -> Self {
        self.raw(header(path.as_bytes(), EntryType::Directory, 0, mode), &[])
    }

    pub fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        self.raw(
            header(path.as_bytes(), EntryType::Regular, data.len() as u64, mode),
            data,
        )
    }

    pub fn file_owned(self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = header(path.as_bytes(), EntryType::Regular, data.len() as u64, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        self.raw(h, data)
    }

    fn link(self, path: &str, target: &[u8], kind: EntryType) -> Self {
        let mut h = header(path.as_bytes(), kind, 0, 0o777);
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
        self.raw(h, &[])
    }

    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.link(path, target.as_bytes(), EntryType::Symlink)
    }

    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.link(path, target.as_bytes(), EntryType::Link)
    }

    pub fn node(self, path: &str, kind: EntryType, major: u32, minor: u32, mode: u32) -> Self {
        let mut h = header(path.as_bytes(), kind, 0, mode);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, &[])
    }

    /// A PAX extended header ('x') describing the next entry.
    pub fn pax(self, records: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body_len = k.len() + v.len() + 3; // ' ' '=' '\n'
            let mut len = body_len + body_len.to_string().len();
            if (len).to_string().len() != body_len.to_string().len() {
                len += 1;
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let h = header(
            b"PaxHeaders/x",
            EntryType::XHeader,
            data.len() as u64,
            0o644,
        );
        self.raw(h, &data)
    }

    /// A GNU long name ('L') for the next entry.
    pub fn gnu_longname(self, name: &[u8]) -> Self {
        let mut data = name.to_vec();
        data.push(0);
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(EntryType::GNULongName);
        h.set_size(data.len() as u64);
        self.raw(h, &data)
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// A scratch area: `<tmp>/target` (the layer's root) and `<tmp>/outside` (a sentinel with a
/// file `secret` and a directory `d`), whose state is recorded to prove it is untouched.
pub struct Scratch {
    pub tmp: tempfile::TempDir,
    before: Vec<String>,
}

impl Scratch {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("target")).unwrap();
        let out = tmp.path().join("outside");
        std::fs::create_dir_all(out.join("d")).unwrap();
        std::fs::write(out.join("secret"), b"keep me").unwrap();
        let before = tree(tmp.path());
        Scratch { tmp, before }
    }

    pub fn target(&self) -> PathBuf {
        self.tmp.path().join("target")
    }

    pub fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    /// The sentinel (and everything next to the target) is exactly as before.
    pub fn assert_outside_untouched(&self) {
        let now: Vec<String> = tree(self.tmp.path())
            .into_iter()
            .filter(|l| !l.starts_with("target/") && !l.starts_with("target "))
            .collect();
        let before: Vec<&String> = self
            .before
            .iter()
            .filter(|l| !l.starts_with("target/") && !l.starts_with("target "))
            .collect();
        assert_eq!(
            now.iter().collect::<Vec<_>>(),
            before,
            "something outside the target changed"
        );
        assert_eq!(
            std::fs::read(self.outside().join("secret")).unwrap(),
            b"keep me"
        );
    }

    pub fn apply(&self, layer: &[u8]) -> nexcage_image::Result<nexcage_image::Applied> {
        self.apply_with(layer, &ApplyOptions::default())
    }

    pub fn apply_with(
        &self,
        layer: &[u8],
        o: &ApplyOptions,
    ) -> nexcage_image::Result<nexcage_image::Applied> {
        nexcage_image::apply_layer(layer, &LayerBlob::default(), &self.target(), o)
    }
}

/// Every path below `root` with type, mode, size, nlink and mtime, sorted.
pub fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        out.push(format!(
            "{rel} mode={:o} size={} nlink={} mtime={}",
            m.mode(),
            if m.is_dir() { 0 } else { m.size() },
            m.nlink(),
            m.mtime()
        ));
        if m.is_dir() {
            walk(root, &p, out);
        }
    }
}

pub fn digest(bytes: &[u8]) -> Digest {
    Digest::sha256(bytes)
}
