//! Applying tar entries onto a target directory: creation, replacement, OCI whiteouts and
//! opaque directories.
//!
//! Whiteouts follow the image-spec (layer.md): `.wh.<name>` removes `<name>` and `.wh..wh..opq`
//! removes every other entry of its directory, but only what came from *lower* layers. Entries
//! this layer already created are remembered (a sorted set of paths) and kept, whatever the order
//! of the whiteout and the entries in the archive.

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use crate::beneath::{lossy, Resolve, Root};
use crate::entry::{Entry, Kind};
use crate::error::{Error, Result};
use crate::fsops::{self, Meta};
use crate::limits::Limits;
use crate::path::{cstr, EntryPath};

/// What to do with character and block device entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DevicePolicy {
    /// Create them (needs CAP_MKNOD; what the image says).
    #[default]
    Create,
    /// Leave them out and count them (rootless unpacking).
    Skip,
    /// Fail the layer.
    Refuse,
}

/// How a layer is applied.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Size and count limits.
    pub limits: Limits,
    /// Treatment of symlinks in parent directories.
    pub resolve: Resolve,
    /// Treatment of device nodes.
    pub devices: DevicePolicy,
    /// Skip `chown` (rootless): files belong to the caller.
    pub no_chown: bool,
}

/// Counters of one application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Entries read (not counting extension headers).
    pub entries: u64,
    /// Whiteout and opaque markers processed.
    pub whiteouts: u64,
    /// Device entries left out under [`DevicePolicy::Skip`].
    pub skipped_devices: u64,
    /// Extended attributes left out (namespace not allowed, or unsupported by the file system).
    pub skipped_xattrs: u64,
}

pub(crate) const WHITEOUT: &[u8] = b".wh.";

/// Extended attributes an image may set. `trusted.*` (overlayfs keeps whiteouts and redirects
/// there) and `security.selinux` (host policy) are never taken from an image.
fn xattr_allowed(name: &[u8]) -> bool {
    (name.starts_with(b"user.") || name.starts_with(b"security.") && name != b"security.selinux")
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default"
}

pub(crate) struct Applier<'a> {
    pub(crate) root: &'a Root,
    opts: &'a ApplyOptions,
    /// Paths this layer created (whiteouts spare them).
    pub(crate) touched: BTreeSet<Vec<u8>>,
    dir_times: Vec<(EntryPath, Meta)>,
    pub(crate) counters: Counters,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(root: &'a Root, opts: &'a ApplyOptions) -> Self {
        Applier {
            root,
            opts,
            touched: BTreeSet::new(),
            dir_times: Vec::new(),
            counters: Counters::default(),
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.opts.limits
    }

    fn meta(&mut self, e: &Entry) -> Meta {
        let before = e.xattrs.len();
        let xattrs: Vec<_> = e
            .xattrs
            .iter()
            .filter(|(k, _)| xattr_allowed(k))
            .cloned()
            .collect();
        self.counters.skipped_xattrs += (before - xattrs.len()) as u64;
        Meta {
            mode: e.mode & 0o7777,
            owner: (!self.opts.no_chown).then_some((e.uid, e.gid)),
            mtime: e.mtime,
            atime: e.atime,
            xattrs,
        }
    }

    /// Apply one entry; `data` yields a regular file's content.
    pub(crate) fn apply(
        &mut self,
        e: Entry,
        data: &mut dyn Read,
        read_err: &dyn Fn(std::io::Error) -> Error,
    ) -> Result<()> {
        self.counters.entries += 1;
        let path = EntryPath::parse(&e.path, self.limits())?;
        let shown = path.to_string();
        let meta = self.meta(&e);
        let Some(name) = path.name() else {
            if e.kind != Kind::Dir {
                return Err(Error::unsafe_entry(
                    shown,
                    "the target root can only be a directory",
                ));
            }
            let n = fsops::set_meta_fd(self.root.fd(), &meta, &shown)?;
            self.counters.skipped_xattrs += n;
            self.dir_times.push((path, meta));
            return Ok(());
        };
        if let Some(rest) = name.strip_prefix(WHITEOUT) {
            self.counters.whiteouts += 1;
            return self.whiteout(&path, rest, &shown);
        }
        if matches!(e.kind, Kind::Char(..) | Kind::Block(..)) {
            match self.opts.devices {
                DevicePolicy::Create => {}
                DevicePolicy::Skip => {
                    self.counters.skipped_devices += 1;
                    return Ok(());
                }
                DevicePolicy::Refuse => {
                    return Err(Error::unsafe_entry(shown, "device nodes are not allowed"))
                }
            }
        }
        // Check what the entry refers to before anything at its path is replaced.
        let link_target = match &e.kind {
            Kind::Hardlink(t) => Some(self.hardlink_source(&path, t, &shown)?),
            Kind::Symlink(t) => {
                if t.len() > self.limits().max_path_len || t.contains(&0) {
                    return Err(Error::unsafe_entry(
                        shown,
                        "symlink target too long or has NUL",
                    ));
                }
                None
            }
            _ => None,
        };
        let dir = self
            .root
            .dir(path.parent(), true, &shown)?
            .ok_or_else(|| Error::malformed("layer", format!("no parent for {shown:?}")))?;
        let dir = dir.as_fd();
        let cname = cstr(name);
        match (&e.kind, fsops::kind_at(dir, &cname, &shown)?) {
            (Kind::Dir, Some(FileType::Directory)) | (_, None) => {}
            (_, Some(_)) => fsops::remove_all(dir, &cname, self.limits().max_depth, &shown)?,
        }
        let skipped = match &e.kind {
            Kind::Dir => {
                let n = fsops::make_dir(dir, &cname, &meta, &shown)?;
                self.dir_times.push((path.clone(), meta));
                n
            }
            Kind::File => fsops::make_file(dir, &cname, data, e.size, &meta, &shown, read_err)?,
            Kind::Symlink(t) => {
                fsops::make_symlink(dir, &cname, &cstr(t), &meta, &shown)?;
                0
            }
            Kind::Hardlink(_) => {
                let (src_dir, src_name) = link_target.ok_or_else(|| {
                    Error::malformed("layer", format!("hardlink {shown:?} without a target"))
                })?;
                self.link(&src_dir, &src_name, dir, &cname, &shown)?;
                0
            }
            Kind::Char(a, b) => node(
                dir,
                &cname,
                FileType::CharacterDevice,
                (*a, *b),
                &meta,
                &shown,
            )?,
            Kind::Block(a, b) => node(dir, &cname, FileType::BlockDevice, (*a, *b), &meta, &shown)?,
            Kind::Fifo => node(dir, &cname, FileType::Fifo, (0, 0), &meta, &shown)?,
        };
        self.counters.skipped_xattrs += skipped;
        self.touched.insert(path.joined());
        Ok(())
    }

    /// The directory and name a hardlink points at, resolved beneath the root like any path.
    fn hardlink_source(
        &self,
        path: &EntryPath,
        target: &[u8],
        shown: &str,
    ) -> Result<(std::os::fd::OwnedFd, std::ffi::CString)> {
        let t = EntryPath::parse(target, self.limits()).map_err(|e| match e {
            Error::Unsafe { reason, .. } => Error::unsafe_entry(
                shown,
                format!("hardlink target {}: {reason}", lossy(target)),
            ),
            other => other,
        })?;
        let Some(name) = t.name() else {
            return Err(Error::unsafe_entry(shown, "hardlink to the target root"));
        };
        if t == *path {
            return Err(Error::malformed(
                "layer",
                format!("{shown:?} is a hardlink to itself"),
            ));
        }
        let dir = self.root.dir(t.parent(), false, shown)?.ok_or_else(|| {
            Error::malformed(
                "layer",
                format!("hardlink {shown:?}: target {t} does not exist"),
            )
        })?;
        Ok((dir, cstr(name)))
    }

    /// `linkat` without following: the new name shares the target's inode, whose metadata is the
    /// target's own (it may belong to a lower layer, so it is never changed here).
    fn link(
        &self,
        src_dir: &std::os::fd::OwnedFd,
        src: &CStr,
        dir: BorrowedFd<'_>,
        name: &CStr,
        shown: &str,
    ) -> Result<()> {
        rustix::fs::linkat(src_dir, src, dir, name, AtFlags::empty()).map_err(|e| match e {
            Errno::NOENT => Error::malformed(
                "layer",
                format!("hardlink {shown:?}: target does not exist"),
            ),
            Errno::PERM => Error::unsafe_entry(shown, "hardlink to a directory"),
            Errno::XDEV => Error::unsafe_entry(shown, "hardlink across file systems"),
            e => Error::io("linkat", shown, e.into()),
        })
    }

    /// Set directory times last: creating their content changed them.
    pub(crate) fn finish(&mut self) -> Result<()> {
        for (path, meta) in std::mem::take(&mut self.dir_times) {
            let shown = path.to_string();
            match path.name() {
                None => fsops::set_times_fd(self.root.fd(), &meta, &shown)?,
                Some(name) => {
                    // A later entry may have replaced or removed it; whatever is there now is
                    // only touched without following a symlink.
                    let dir = match self.root.dir(path.parent(), false, &shown) {
                        Ok(Some(d)) => d,
                        // Gone, or its parent is now a symlink out of the tree: nothing to do.
                        Ok(None) | Err(Error::Unsafe { .. } | Error::Malformed { .. }) => continue,
                        Err(e) => return Err(e),
                    };
                    let cname = cstr(name);
                    if fsops::kind_at(dir.as_fd(), &cname, &shown)? == Some(FileType::Directory) {
                        fsops::set_times_at(dir.as_fd(), &cname, &meta, &shown)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn node(
    dir: BorrowedFd<'_>,
    name: &CStr,
    kind: FileType,
    dev: (u32, u32),
    meta: &Meta,
    shown: &str,
) -> Result<u64> {
    fsops::make_node(dir, name, kind, dev, meta, shown)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattr_namespaces() {
        for ok in [
            &b"user.x"[..],
            b"security.capability",
            b"system.posix_acl_access",
        ] {
            assert!(xattr_allowed(ok), "{ok:?}");
        }
        for bad in [
            &b"trusted.overlay.opaque"[..],
            b"security.selinux",
            b"system.nfs4_acl",
            b"x",
        ] {
            assert!(!xattr_allowed(bad), "{bad:?}");
        }
    }
}
