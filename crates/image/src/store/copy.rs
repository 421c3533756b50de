//! Copying a tree the store made, fd-relative and without following symlinks.
//!
//! Two modes: [`CopyMode::Deep`] (a container rootfs: every inode new, hardlinks inside the tree
//! kept as hardlinks, contents copied with `copy_file_range` so a reflink-capable file system
//! may share extents), and [`CopyMode::ShareFiles`] (the base of the next layer's tree: regular
//! files are hardlinked, everything else is recreated). Sharing is safe because the applier never
//! writes into an existing file's inode: it unlinks and recreates, and never sets metadata on a
//! hardlink's target.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use crate::error::{Error, Result};
use crate::fsops::{self, Meta};

/// How regular files are carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyMode {
    /// New inodes everywhere.
    Deep,
    /// Regular files hardlinked to the source.
    ShareFiles,
}

/// Deepest tree copied.
const MAX_DEPTH: usize = 4096;

struct Copier {
    mode: CopyMode,
    /// (dev, ino) of a multiply-linked source file → the path of its first copy.
    seen: HashMap<(u64, u64), Vec<CString>>,
    dst_root: OwnedFd,
}

fn io(op: &'static str, at: &str, e: rustix::io::Errno) -> Error {
    Error::io(op, at, e.into())
}

fn meta_of(st: &Stat) -> Meta {
    Meta {
        mode: st.st_mode & 0o7777,
        owner: Some((st.st_uid, st.st_gid)),
        mtime: (st.st_mtime, st.st_mtime_nsec as u32),
        atime: Some((st.st_atime, st.st_atime_nsec as u32)),
        xattrs: Vec::new(),
    }
}

fn xattrs_of(fd: BorrowedFd<'_>, at: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 64 * 1024];
    let n = match rustix::fs::flistxattr(fd, &mut names) {
        Ok(n) => n,
        Err(rustix::io::Errno::OPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(io("flistxattr", at, e)),
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let cname = CString::new(name).unwrap_or_default();
        let mut value = vec![0u8; 64 * 1024];
        let len =
            rustix::fs::fgetxattr(fd, &cname, &mut value).map_err(|e| io("fgetxattr", at, e))?;
        value.truncate(len);
        out.push((name.to_vec(), value));
    }
    Ok(out)
}

/// Copy the directory `src` into a new directory `dst_name` inside `dst_parent`.
pub(crate) fn copy_tree(
    src: &std::path::Path,
    dst_parent: &std::path::Path,
    dst_name: &str,
    mode: CopyMode,
) -> Result<()> {
    let shown = src.display().to_string();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let src_fd = rustix::fs::open(src, flags, Mode::empty()).map_err(|e| io("open", &shown, e))?;
    let parent = rustix::fs::open(dst_parent, flags, Mode::empty())
        .map_err(|e| io("open", &dst_parent.display().to_string(), e))?;
    let name = CString::new(dst_name).map_err(|_| Error::malformed("name", dst_name))?;
    rustix::fs::mkdirat(&parent, &name, Mode::from_raw_mode(0o700))
        .map_err(|e| io("mkdirat", dst_name, e))?;
    let dst_fd = fsops::open_dir_nofollow(parent.as_fd(), &name, dst_name)?;
    let mut c = Copier {
        mode,
        seen: HashMap::new(),
        dst_root: rustix::io::dup(&dst_fd).map_err(|e| io("dup", dst_name, e))?,
    };
    c.dir(src_fd.as_fd(), dst_fd.as_fd(), &mut Vec::new())?;
    let st = rustix::fs::fstat(&src_fd).map_err(|e| io("fstat", &shown, e))?;
    let mut m = meta_of(&st);
    m.xattrs = xattrs_of(src_fd.as_fd(), &shown)?;
    fsops::set_meta_fd(dst_fd.as_fd(), &m, dst_name)?;
    fsops::set_times_fd(dst_fd.as_fd(), &m, dst_name)
}

impl Copier {
    fn dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        at: &mut Vec<CString>,
    ) -> Result<()> {
        if at.len() > MAX_DEPTH {
            return Err(Error::malformed("tree", "nests too deep to copy"));
        }
        for name in fsops::list_dir(src, "copy")? {
            at.push(name.clone());
            self.entry(src, dst, &name, at)?;
            at.pop();
        }
        Ok(())
    }

    fn entry(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &CStr,
        at: &mut Vec<CString>,
    ) -> Result<()> {
        let shown = at
            .iter()
            .map(|c| c.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let st = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io("fstatat", &shown, e))?;
        let mut m = meta_of(&st);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| io("mkdirat", &shown, e))?;
                let s = fsops::open_dir_nofollow(src, name, &shown)?;
                let d = fsops::open_dir_nofollow(dst, name, &shown)?;
                self.dir(s.as_fd(), d.as_fd(), at)?;
                m.xattrs = xattrs_of(s.as_fd(), &shown)?;
                fsops::set_meta_fd(d.as_fd(), &m, &shown)?;
                fsops::set_times_fd(d.as_fd(), &m, &shown)?;
            }
            FileType::RegularFile => self.file(src, dst, name, &st, m, at, &shown)?,
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, name, Vec::new())
                    .map_err(|e| io("readlinkat", &shown, e))?;
                fsops::make_symlink(dst, name, &target, &m, &shown)?;
            }
            t @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                let dev = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
                fsops::make_node(dst, name, t, dev, &m, &shown)?;
            }
            _ => tracing::debug!(path = %shown, "not copied (socket or unknown type)"),
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn file(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &CStr,
        st: &Stat,
        mut m: Meta,
        at: &[CString],
        shown: &str,
    ) -> Result<()> {
        if self.mode == CopyMode::ShareFiles {
            match rustix::fs::linkat(src, name, dst, name, AtFlags::empty()) {
                Err(rustix::io::Errno::MLINK) => {} // too many links to this inode: copy it
                r => return r.map_err(|e| io("linkat", shown, e)),
            }
        }
        let key = (st.st_dev, st.st_ino);
        if st.st_nlink > 1 {
            if let Some(first) = self.seen.get(&key) {
                // Hardlink to the first copy, found from the copy's root (our own tree).
                let (dir, fname) = self.resolve(first, shown)?;
                return rustix::fs::linkat(&dir, &fname, dst, name, AtFlags::empty())
                    .map_err(|e| io("linkat", shown, e));
            }
            self.seen.insert(key, at.to_vec());
        }
        let s = rustix::fs::openat(
            src,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io("openat", shown, e))?;
        let d = rustix::fs::openat(
            dst,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io("openat", shown, e))?;
        let (mut sf, mut df) = (std::fs::File::from(s), std::fs::File::from(d));
        std::io::copy(&mut sf, &mut df).map_err(|e| Error::io("copy", shown, e))?;
        m.xattrs = xattrs_of(sf.as_fd(), shown)?;
        fsops::set_meta_fd(df.as_fd(), &m, shown)?;
        fsops::set_times_fd(df.as_fd(), &m, shown)
    }

    fn resolve(&self, path: &[CString], shown: &str) -> Result<(OwnedFd, CString)> {
        let (name, parents) = path
            .split_last()
            .ok_or_else(|| Error::malformed("tree", "empty path"))?;
        let joined: Vec<u8> = parents
            .iter()
            .map(|c| c.as_bytes())
            .collect::<Vec<_>>()
            .join(&b'/');
        let dir = if joined.is_empty() {
            rustix::io::dup(&self.dst_root).map_err(|e| io("dup", shown, e))?
        } else {
            rustix::fs::openat2(
                &self.dst_root,
                CString::new(joined).unwrap_or_default().as_c_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS,
            )
            .map_err(|e| io("openat2", shown, e))?
        };
        Ok((dir, name.clone()))
    }
}
