//! The store's bookkeeping: which named images it holds, what it knows about each unpacked
//! stack, and which container root file systems it made from which stack.
//!
//! One small JSON file per store, next to what it describes:
//!
//! | store | catalog | its lock |
//! |---|---|---|
//! | [`DirStore`](crate::DirStore) | `<root>/catalog.json` | `<root>/catalog.lock` |
//! | [`ZfsStore`](crate::ZfsStore) | `<mountpoint of the parent dataset>/catalog.json` (it travels with the pool) | `<lock_dir>/zfs-<parent>.catalog.lock` |
//!
//! ```json
//! {
//!   "version": 1,
//!   "images": {
//!     "busybox:latest": {
//!       "manifest": "sha256:…", "config": "sha256:…", "platform": "linux/amd64",
//!       "layers": [{"chain_id": "sha256:…", "diff_id": "sha256:…", "digest": "sha256:…",
//!                   "media_type": "…tar+gzip", "size": 1042817, "unpacked_size": 2252800}],
//!       "source": "/root/busybox.tar", "imported": 1767225600
//!     }
//!   },
//!   "layers": {"sha256:…": {"parent": null, "diff_id": "sha256:…", "unpacked_size": 2252800, "created": 1767225600}},
//!   "rootfs": {"ctr-1": {"chain_id": "sha256:…", "path": "/var/lib/nexcage/images/rootfs/ctr-1", "dataset": null, "created": 1767225700}}
//! }
//! ```
//!
//! Every change is read-modify-write under an exclusive `flock` of the lock file, and the new
//! text replaces the old atomically (a temporary file in the same directory, `fsync`, `rename`),
//! so a reader never sees half a file and a crash loses at most the change in progress. A
//! catalog that does not parse is an error naming the file, never silently reset: its rootfs
//! records are what keeps `prune` from removing layers in use.
//!
//! The ZFS store does not rely on the file alone for root file systems: a clone of a layer
//! snapshot anywhere in the pool counts as a user whatever the catalog says
//! ([`Store::rootfs_users`](crate::Store::rootfs_users)).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The catalog format this build writes and reads.
pub const CATALOG_VERSION: u32 = 1;

/// Largest catalog file read (a few thousand images fit in far less).
const MAX_CATALOG: u64 = 64 << 20;

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogData {
    /// Format version ([`CATALOG_VERSION`]).
    pub version: u32,
    /// Named images.
    #[serde(default)]
    pub images: BTreeMap<String, ImageRecord>,
    /// What is known about each unpacked stack, by chain id.
    #[serde(default)]
    pub layers: BTreeMap<Digest, LayerRecord>,
    /// Root file systems the store made, by name (a directory name or a dataset).
    #[serde(default)]
    pub rootfs: BTreeMap<String, RootfsRecord>,
}

impl Default for CatalogData {
    fn default() -> Self {
        CatalogData {
            version: CATALOG_VERSION,
            images: BTreeMap::new(),
            layers: BTreeMap::new(),
            rootfs: BTreeMap::new(),
        }
    }
}

/// A named image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Digest of its manifest.
    pub manifest: Digest,
    /// Digest of its config blob.
    pub config: Digest,
    /// `os/architecture[/variant]` it was resolved for.
    pub platform: String,
    /// Its layers, lowest first.
    pub layers: Vec<ImageLayerRecord>,
    /// Where it was imported from (a path).
    pub source: String,
    /// When it was imported (seconds since the epoch).
    pub imported: u64,
}

impl ImageRecord {
    /// The chain id of the whole stack (what a rootfs is made from).
    pub fn top(&self) -> Option<&Digest> {
        self.layers.last().map(|l| &l.chain_id)
    }

    /// Uncompressed size of the layers (the tar streams; the blob sizes where a layer's is not
    /// known).
    pub fn unpacked_size(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| l.unpacked_size.unwrap_or(l.size))
            .sum()
    }

    /// Size of the layer blobs as stored (compressed).
    pub fn blob_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// One layer of a named image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLayerRecord {
    /// Chain id of the stack up to this layer (the store's name for it).
    pub chain_id: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the blob.
    pub digest: Digest,
    /// Media type of the blob.
    pub media_type: String,
    /// Size of the blob.
    pub size: u64,
    /// Size of the uncompressed tar, when the store unpacked it (or learnt it from an earlier
    /// unpack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpacked_size: Option<u64>,
}

/// An unpacked stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The stack below (`None` for a first layer).
    pub parent: Option<Digest>,
    /// Diff id of the layer on top.
    pub diff_id: Digest,
    /// Size of that layer's uncompressed tar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpacked_size: Option<u64>,
    /// When it was unpacked (seconds since the epoch).
    pub created: u64,
}

/// A root file system the store made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsRecord {
    /// The stack it was made from.
    pub chain_id: Digest,
    /// Where it lives.
    pub path: PathBuf,
    /// Its dataset ([`ZfsStore`](crate::ZfsStore)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// When it was made (seconds since the epoch).
    pub created: u64,
}

/// Seconds since the epoch, now.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A store's catalog file and its lock.
#[derive(Debug, Clone)]
pub struct Catalog {
    file: PathBuf,
    lock: PathBuf,
}

impl Catalog {
    /// The catalog at `file`, changes serialised by `flock` on `lock`.
    pub fn new(file: impl Into<PathBuf>, lock: impl Into<PathBuf>) -> Catalog {
        Catalog {
            file: file.into(),
            lock: lock.into(),
        }
    }

    /// The catalog file.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The current catalog (empty when the file does not exist yet).
    pub async fn read(&self) -> Result<CatalogData> {
        let me = self.clone();
        crate::store::blocking(move || me.read_blocking()).await
    }

    /// Change the catalog: `f` gets the current content under the lock; what it leaves is
    /// written back (only when it changed). `f`'s error leaves the file as it was.
    pub async fn update<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut CatalogData) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let me = self.clone();
        crate::store::blocking(move || me.update_blocking(f)).await
    }

    /// [`Catalog::read`], blocking.
    pub fn read_blocking(&self) -> Result<CatalogData> {
        let shown = self.file.display().to_string();
        let f = match std::fs::File::open(&self.file) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CatalogData::default()),
            Err(e) => return Err(Error::io("open", &shown, e)),
        };
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_CATALOG + 1), &mut text)
            .map_err(|e| Error::io("read", &shown, e))?;
        if text.len() as u64 > MAX_CATALOG {
            return Err(Error::malformed(
                "catalog",
                format!("{shown}: larger than {MAX_CATALOG} bytes"),
            ));
        }
        let data: CatalogData = serde_json::from_slice(&text).map_err(|e| {
            Error::malformed(
                "catalog",
                format!("{shown}: {e} (fix or move the file; it records which layers are in use)"),
            )
        })?;
        if data.version != CATALOG_VERSION {
            return Err(Error::Unsupported(format!(
                "catalog version {} in {shown} (this nexcage reads version {CATALOG_VERSION})",
                data.version
            )));
        }
        Ok(data)
    }

    /// [`Catalog::update`], blocking.
    pub fn update_blocking<T>(&self, f: impl FnOnce(&mut CatalogData) -> Result<T>) -> Result<T> {
        let _held = self.lock_exclusive()?;
        let before = self.read_blocking()?;
        let mut data = before.clone();
        let out = f(&mut data)?;
        if data != before {
            self.write(&data)?;
        }
        Ok(out)
    }

    fn lock_exclusive(&self) -> Result<std::os::fd::OwnedFd> {
        let shown = self.lock.display().to_string();
        if let Some(dir) = self.lock.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", dir.display(), e))?;
        }
        let fd = rustix::fs::open(
            &self.lock,
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io("open", &shown, e.into()))?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive)
            .map_err(|e| Error::io("flock", &shown, e.into()))?;
        Ok(fd)
    }

    fn write(&self, data: &CatalogData) -> Result<()> {
        let shown = self.file.display().to_string();
        let dir = self
            .file
            .parent()
            .ok_or_else(|| Error::malformed("catalog", format!("{shown}: no directory")))?;
        let mut text = serde_json::to_vec_pretty(data)
            .map_err(|e| Error::malformed("catalog", format!("{shown}: {e}")))?;
        text.push(b'\n');
        let tmp = dir.join(format!(
            ".catalog.json.tmp-{}",
            crate::store::random_suffix()
        ));
        let r = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| Error::io("create", tmp.display(), e))?;
            f.write_all(&text)
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io("write", tmp.display(), e))?;
            std::fs::rename(&tmp, &self.file).map_err(|e| Error::io("rename", &shown, e))?;
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::sha256(s.as_bytes())
    }

    fn catalog(dir: &Path) -> Catalog {
        Catalog::new(dir.join("catalog.json"), dir.join("locks/catalog.lock"))
    }

    #[test]
    fn missing_file_is_empty_and_updates_persist() {
        let tmp = tempfile::tempdir().unwrap();
        let c = catalog(tmp.path());
        assert_eq!(c.read_blocking().unwrap(), CatalogData::default());
        c.update_blocking(|data| {
            data.layers.insert(
                d("a"),
                LayerRecord {
                    parent: None,
                    diff_id: d("a"),
                    unpacked_size: Some(10),
                    created: 1,
                },
            );
            Ok(())
        })
        .unwrap();
        let text = std::fs::read_to_string(c.path()).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
        let back = c.read_blocking().unwrap();
        assert_eq!(back.layers[&d("a")].unpacked_size, Some(10));
        // No temporaries left; the lock file lives where it was asked to.
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(tmp.path().join("locks/catalog.lock").exists());
    }

    #[test]
    fn a_failed_change_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let c = catalog(tmp.path());
        let r: Result<()> = c.update_blocking(|data| {
            data.rootfs.insert(
                "x".into(),
                RootfsRecord {
                    chain_id: d("a"),
                    path: "/x".into(),
                    dataset: None,
                    created: 0,
                },
            );
            Err(Error::NotFound("on purpose".into()))
        });
        assert!(r.is_err());
        assert!(!c.path().exists());
    }

    #[test]
    fn corrupt_or_future_catalogs_are_refused_not_reset() {
        let tmp = tempfile::tempdir().unwrap();
        let c = catalog(tmp.path());
        std::fs::write(c.path(), "{not json").unwrap();
        let e = c.read_blocking().unwrap_err().to_string();
        assert!(
            e.contains("catalog.json") && e.contains("malformed catalog"),
            "{e}"
        );
        assert!(c.update_blocking(|_| Ok(())).is_err());
        assert_eq!(std::fs::read_to_string(c.path()).unwrap(), "{not json");

        std::fs::write(c.path(), r#"{"version": 7}"#).unwrap();
        let e = c.read_blocking().unwrap_err().to_string();
        assert!(e.contains("catalog version 7"), "{e}");

        std::fs::write(
            c.path(),
            r#"{"version": 1, "layers": {"sha256:zz": {"parent": null, "diff_id": "x", "created": 0}}}"#,
        )
        .unwrap();
        assert!(c.read_blocking().is_err());
    }

    #[test]
    fn image_sizes() {
        let l = |n: &str, size, unpacked| ImageLayerRecord {
            chain_id: d(n),
            diff_id: d(n),
            digest: d(n),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            size,
            unpacked_size: unpacked,
        };
        let r = ImageRecord {
            manifest: d("m"),
            config: d("c"),
            platform: "linux/amd64".into(),
            layers: vec![l("a", 5, Some(50)), l("b", 7, None)],
            source: "x".into(),
            imported: 0,
        };
        assert_eq!(r.top(), Some(&d("b")));
        assert_eq!(r.unpacked_size(), 57);
        assert_eq!(r.blob_size(), 12);
    }
}
