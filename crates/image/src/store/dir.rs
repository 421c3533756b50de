//! The directory store: plain directories under a root, no mounts, any file system.
//!
//! ```text
//! <root>/store.lock
//! <root>/layers/<chain-id hex>/   the full tree of the stack up to that layer
//! <root>/rootfs/<name>/           container root file systems (deep copies)
//! <root>/tmp/                     unpacks and copies in progress
//! ```
//!
//! A stack's tree starts as a copy of its parent's tree whose regular files are hardlinks (no
//! data is copied), and the layer is applied on top. A rootfs is a deep copy of the top tree, so
//! nothing a container writes can reach the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, RenameFlags};
use rustix::io::Errno;

use super::copy::{copy_tree, CopyMode};
use super::{blocking, random_suffix, verify_and_apply, with_parents, Rootfs, Store, StoreLock};
use crate::apply::ApplyOptions;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{BlobSource, ResolvedImage};

/// The directory store.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
    opts: ApplyOptions,
    lock: StoreLock,
}

/// A rootfs name: one path component of `[A-Za-z0-9_.-]`, not starting with `.`.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Core(nexcage_core::Error::invalid(format!(
            "invalid rootfs name {name:?}"
        ))))
    }
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    match rustix::fs::mkdir(p, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(Error::io("mkdir", p.display(), e.into())),
    }
}

/// Rename without replacing; `Ok(false)` when the destination exists.
fn rename_new(from: &Path, to: &Path) -> Result<bool> {
    let cwd = rustix::fs::CWD;
    match rustix::fs::renameat_with(cwd, from, cwd, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::EXIST | Errno::NOTEMPTY) => Ok(false),
        Err(e) => Err(Error::io("rename", to.display(), e.into())),
    }
}

/// Remove a tree of the store (blocking).
fn remove_tree(p: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return Ok(());
    };
    let dir = rustix::fs::open(
        parent,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", parent.display(), e.into()))?;
    let cname = crate::path::cstr(name.as_encoded_bytes());
    crate::fsops::remove_all(
        std::os::fd::AsFd::as_fd(&dir),
        &cname,
        4096,
        &p.display().to_string(),
    )
}

impl DirStore {
    /// A store under `root` (created if missing), applying layers with `opts`.
    pub fn open(root: impl AsRef<Path>, opts: ApplyOptions) -> Result<DirStore> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|e| Error::io("mkdir", root.display(), e))?;
        mkdir(&root.join("layers"), 0o700)?;
        mkdir(&root.join("tmp"), 0o700)?;
        // Containers (and unprivileged LXC's mapped root) must reach their rootfs; listing is
        // not needed.
        mkdir(&root.join("rootfs"), 0o711)?;
        let lock = StoreLock::new(root.join("store.lock"));
        Ok(DirStore { root, opts, lock })
    }

    /// The tree of a stack.
    pub fn layer_path(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("layers").join(chain_id.hex())
    }

    /// Where the rootfs `name` lives.
    pub fn rootfs_path(&self, name: &str) -> PathBuf {
        self.root.join("rootfs").join(name)
    }

    fn tmp(&self, what: &str) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{what}-{}", random_suffix()))
    }

    async fn unpack_one(
        &self,
        src: &Arc<dyn BlobSource>,
        parent: Option<Digest>,
        layer: crate::oci::ImageLayer,
    ) -> Result<()> {
        let _held = self.lock.shared().await?;
        let dest = self.layer_path(&layer.chain_id);
        if dest.exists() {
            return Ok(());
        }
        let tmp = self.tmp(&format!("layer-{}", layer.chain_id.hex()));
        let (src, opts) = (Arc::clone(src), self.opts.clone());
        let parent_tree = parent.map(|p| self.layer_path(&p));
        let t = tmp.clone();
        let work = blocking(move || {
            match parent_tree {
                Some(p) => copy_tree(
                    &p,
                    t.parent().unwrap_or(&t),
                    &tmp_name(&t),
                    CopyMode::ShareFiles,
                )?,
                None => mkdir(&t, 0o755)?,
            }
            verify_and_apply(src.as_ref(), &layer, &t, &opts)?;
            if !rename_new(&t, &dest)? {
                tracing::debug!(layer = %layer.chain_id, "unpacked concurrently elsewhere");
                remove_tree(&t)?;
            }
            Ok(())
        })
        .await;
        if work.is_err() {
            let t = tmp.clone();
            if let Err(e) = blocking(move || remove_tree(&t)).await {
                tracing::warn!(tmp = %tmp.display(), error = %e, "leftover after a failed unpack");
            }
        }
        work
    }
}

fn tmp_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Store for DirStore {
    async fn unpack(&self, src: &Arc<dyn BlobSource>, image: &ResolvedImage) -> Result<Digest> {
        for (parent, layer) in with_parents(image)? {
            if !self.has_layer(&layer.chain_id).await? {
                tracing::info!(layer = %layer.chain_id, blob = %layer.digest, "unpacking layer");
                self.unpack_one(src, parent, layer).await?;
            }
        }
        image
            .top()
            .cloned()
            .ok_or_else(|| Error::Unsupported("images without layers".into()))
    }

    async fn has_layer(&self, chain_id: &Digest) -> Result<bool> {
        Ok(self.layer_path(chain_id).is_dir())
    }

    async fn create_rootfs(&self, chain_id: &Digest, name: &str) -> Result<Rootfs> {
        check_name(name)?;
        let src = self.layer_path(chain_id);
        if !src.is_dir() {
            return Err(Error::NotFound(format!("layer {chain_id}")));
        }
        let dest = self.rootfs_path(name);
        if dest.exists() {
            return Err(Error::Core(nexcage_core::Error::already_exists(format!(
                "rootfs {name}"
            ))));
        }
        let tmp = self.tmp(&format!("rootfs-{name}"));
        let _held = self.lock.shared().await?;
        let (t, d) = (tmp.clone(), dest.clone());
        let r = blocking(move || {
            copy_tree(
                &src,
                t.parent().unwrap_or(&t),
                &tmp_name(&t),
                CopyMode::Deep,
            )?;
            if rename_new(&t, &d)? {
                Ok(())
            } else {
                Err(Error::Core(nexcage_core::Error::already_exists(format!(
                    "rootfs {}",
                    d.display()
                ))))
            }
        })
        .await;
        if r.is_err() {
            let _ = blocking(move || remove_tree(&tmp)).await;
        }
        r?;
        Ok(Rootfs {
            name: name.to_string(),
            path: dest,
            dataset: None,
        })
    }

    async fn remove_rootfs(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let dest = self.rootfs_path(name);
        let tmp = self.tmp(&format!("rm-{name}"));
        let _held = self.lock.shared().await?;
        // Out of sight atomically first; a crash while deleting leaves a tmp for sweep.
        match std::fs::rename(&dest, &tmp) {
            Ok(()) => blocking(move || remove_tree(&tmp)).await,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("rename", dest.display(), e)),
        }
    }

    async fn sweep(&self) -> Result<usize> {
        let Some(_held) = self.lock.try_exclusive()? else {
            tracing::debug!("store busy, not sweeping");
            return Ok(0);
        };
        let tmp = self.root.join("tmp");
        blocking(move || {
            let mut n = 0;
            for e in std::fs::read_dir(&tmp).map_err(|e| Error::io("readdir", tmp.display(), e))? {
                let p = e
                    .map_err(|e| Error::io("readdir", tmp.display(), e))?
                    .path();
                tracing::info!(leftover = %p.display(), "removing");
                remove_tree(&p)?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }
}
