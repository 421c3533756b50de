//! Where image blobs come from: an OCI image layout directory, or an OCI archive (a tar of such
//! a directory, as `skopeo copy … oci-archive:` and PVE's `oci-registry-pull` write).
//!
//! Sources hand out raw bytes; every blob is checked against its digest by the reader
//! ([`super::resolve`] and the stores), never trusted because of where it came from.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// A store of blobs addressed by digest, plus the layout's `index.json`.
pub trait BlobSource: fmt::Debug + Send + Sync {
    /// The bytes of `index.json`.
    fn index(&self) -> Result<Vec<u8>>;
    /// The blob named `digest` (unverified) and its stored length.
    fn open(&self, digest: &Digest) -> Result<(Box<dyn Read + Send>, u64)>;
}

/// Upper bound of `index.json`.
pub(crate) const MAX_INDEX: u64 = 4 << 20;

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`).
#[derive(Debug)]
pub struct LayoutDir {
    root: PathBuf,
}

impl LayoutDir {
    /// Open the layout at `root` (checks that `oci-layout` exists).
    pub fn open(root: impl AsRef<Path>) -> Result<LayoutDir> {
        let root = root.as_ref().to_path_buf();
        let l = LayoutDir { root };
        l.open_file("oci-layout")
            .map_err(|_| Error::NotFound(format!("OCI layout at {}", l.root.display())))?;
        Ok(l)
    }

    /// Files are opened beneath the layout root, so a symlinked blob cannot point elsewhere.
    fn open_file(&self, rel: &str) -> Result<File> {
        let root = rustix::fs::open(
            &self.root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", self.root.display(), e.into()))?;
        let fd = rustix::fs::openat2(
            &root,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOENT => {
                Error::NotFound(format!("{rel} in {}", self.root.display()))
            }
            e => Error::io(
                "openat2",
                format!("{}/{rel}", self.root.display()),
                e.into(),
            ),
        })?;
        Ok(File::from(fd))
    }
}

impl BlobSource for LayoutDir {
    fn index(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.open_file("index.json")?
            .take(MAX_INDEX + 1)
            .read_to_end(&mut v)
            .map_err(|e| Error::io("read", "index.json", e))?;
        Ok(v)
    }

    fn open(&self, d: &Digest) -> Result<(Box<dyn Read + Send>, u64)> {
        let f = self.open_file(&format!("blobs/{}/{}", d.algorithm().as_str(), d.hex()))?;
        let len = f.metadata().map_err(|e| Error::io("stat", d, e))?.len();
        Ok((Box::new(f), len))
    }
}

/// An OCI archive: the tar is indexed once (offsets of `index.json` and `blobs/…`) and blobs
/// are read in place, never extracted.
#[derive(Debug)]
pub struct OciArchive {
    path: PathBuf,
    members: HashMap<String, (u64, u64)>,
}

/// Members an archive may have before it is refused.
const MAX_MEMBERS: usize = 100_000;

impl OciArchive {
    /// Index the archive at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<OciArchive> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let f = File::open(&path).map_err(|e| Error::io("open", &shown, e))?;
        let mut ar = tar::Archive::new(f);
        let bad = |e: std::io::Error| Error::malformed("OCI archive", format!("{shown}: {e}"));
        let mut members = HashMap::new();
        for item in ar.entries().map_err(bad)?.raw(true) {
            let e = item.map_err(bad)?;
            if !e.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let name = name.trim_start_matches("./").to_string();
            if name == "index.json" || name == "oci-layout" || name.starts_with("blobs/") {
                if members.len() >= MAX_MEMBERS {
                    return Err(Error::Limit {
                        what: "archive member count",
                        limit: MAX_MEMBERS as u64,
                        path: None,
                    });
                }
                members.insert(name, (e.raw_file_position(), e.size()));
            }
        }
        if !members.contains_key("oci-layout") || !members.contains_key("index.json") {
            return Err(Error::malformed(
                "OCI archive",
                format!("{shown}: no oci-layout or index.json"),
            ));
        }
        Ok(OciArchive { path, members })
    }

    fn member(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64)> {
        let (off, size) = *self
            .members
            .get(name)
            .ok_or_else(|| Error::NotFound(format!("{name} in {}", self.path.display())))?;
        let mut f =
            File::open(&self.path).map_err(|e| Error::io("open", self.path.display(), e))?;
        f.seek(SeekFrom::Start(off))
            .map_err(|e| Error::io("seek", self.path.display(), e))?;
        Ok((Box::new(f.take(size)), size))
    }
}

impl BlobSource for OciArchive {
    fn index(&self) -> Result<Vec<u8>> {
        let (r, _) = self.member("index.json")?;
        let mut v = Vec::new();
        r.take(MAX_INDEX + 1)
            .read_to_end(&mut v)
            .map_err(|e| Error::io("read", "index.json", e))?;
        Ok(v)
    }

    fn open(&self, d: &Digest) -> Result<(Box<dyn Read + Send>, u64)> {
        self.member(&format!("blobs/{}/{}", d.algorithm().as_str(), d.hex()))
    }
}
