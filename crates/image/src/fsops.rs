//! File system primitives on `(directory fd, name)` pairs: create each kind of entry, set its
//! metadata, remove trees. Nothing here follows a symlink in the last component: files are
//! created with `O_CREAT | O_EXCL | O_NOFOLLOW`, directories opened with `O_NOFOLLOW`, and
//! `fchownat`/`fchmodat`/`utimensat` get `AT_SYMLINK_NOFOLLOW`.

use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Ownership, permissions, times and xattrs of one entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner; `None` leaves it as created.
    pub owner: Option<(u32, u32)>,
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, u32),
    /// Access time; the modification time when absent.
    pub atime: Option<(i64, u32)>,
    /// Extended attributes, already filtered.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    pub(crate) fn times(&self) -> Timestamps {
        let ts = |(s, n): (i64, u32)| Timespec {
            tv_sec: s,
            tv_nsec: n.into(),
        };
        Timestamps {
            last_access: ts(self.atime.unwrap_or(self.mtime)),
            last_modification: ts(self.mtime),
        }
    }
}

fn io(op: &'static str, shown: &str, e: Errno) -> Error {
    Error::io(op, shown, e.into())
}

fn uid_gid(owner: (u32, u32)) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
    (
        Some(rustix::fs::Uid::from_raw_unchecked(owner.0)),
        Some(rustix::fs::Gid::from_raw_unchecked(owner.1)),
    )
}

/// Owner, then mode (chown clears setuid/setgid), then xattrs, on an open file or directory.
/// Returns how many xattrs the file system refused as unsupported.
pub(crate) fn set_meta_fd(fd: BorrowedFd<'_>, m: &Meta, shown: &str) -> Result<u64> {
    if let Some(owner) = m.owner {
        let (u, g) = uid_gid(owner);
        rustix::fs::fchown(fd, u, g).map_err(|e| io("fchown", shown, e))?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(m.mode)).map_err(|e| io("fchmod", shown, e))?;
    let mut unsupported = 0;
    for (name, value) in &m.xattrs {
        let cname = crate::path::cstr(name);
        match rustix::fs::fsetxattr(fd, &cname, value, XattrFlags::empty()) {
            Ok(()) => {}
            Err(Errno::OPNOTSUPP) => unsupported += 1,
            Err(e) => return Err(io("fsetxattr", shown, e)),
        }
    }
    Ok(unsupported)
}

/// Times of an open file.
pub(crate) fn set_times_fd(fd: BorrowedFd<'_>, m: &Meta, shown: &str) -> Result<()> {
    rustix::fs::futimens(fd, &m.times()).map_err(|e| io("futimens", shown, e))
}

/// Times of `name` in `dir`, not following a symlink.
pub(crate) fn set_times_at(dir: BorrowedFd<'_>, name: &CStr, m: &Meta, shown: &str) -> Result<()> {
    rustix::fs::utimensat(dir, name, &m.times(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io("utimensat", shown, e))
}

/// Owner of `name` in `dir` (a symlink or a node), not following a symlink.
pub(crate) fn chown_at(dir: BorrowedFd<'_>, name: &CStr, m: &Meta, shown: &str) -> Result<()> {
    if let Some(owner) = m.owner {
        let (u, g) = uid_gid(owner);
        rustix::fs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io("fchownat", shown, e))?;
    }
    Ok(())
}

/// The type of `name` in `dir` without following it; `None` when absent.
pub(crate) fn kind_at(dir: BorrowedFd<'_>, name: &CStr, shown: &str) -> Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(io("fstatat", shown, e)),
    }
}

/// Create the regular file `name` in `dir` (which must not exist) with exactly `size` bytes
/// from `data`, then set owner, mode, xattrs and times. `read_err` turns a read failure of the
/// layer stream into the right error (limit, malformed).
pub(crate) fn make_file(
    dir: BorrowedFd<'_>,
    name: &CStr,
    data: &mut dyn Read,
    size: u64,
    m: &Meta,
    shown: &str,
    read_err: &dyn Fn(std::io::Error) -> Error,
) -> Result<u64> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| io("openat", shown, e))?;
    let mut file = std::fs::File::from(fd);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = data.read(&mut buf[..want]).map_err(read_err)?;
        if n == 0 {
            return Err(Error::malformed(
                "layer",
                format!("entry {shown:?} is truncated"),
            ));
        }
        file.write_all(&buf[..n])
            .map_err(|e| Error::io("write", shown, e))?;
        left -= n as u64;
    }
    let unsupported = set_meta_fd(file.as_fd(), m, shown)?;
    set_times_fd(file.as_fd(), m, shown)?;
    Ok(unsupported)
}

/// Create the directory `name` in `dir` if absent (an existing directory is kept, merged), and
/// set owner, mode and xattrs. Times are set by the caller once the directory's content is in.
pub(crate) fn make_dir(dir: BorrowedFd<'_>, name: &CStr, m: &Meta, shown: &str) -> Result<u64> {
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io("mkdirat", shown, e)),
    }
    let fd = open_dir_nofollow(dir, name, shown)?;
    set_meta_fd(fd.as_fd(), m, shown)
}

/// Open the directory `name` in `dir` for reading, refusing a symlink.
pub(crate) fn open_dir_nofollow(dir: BorrowedFd<'_>, name: &CStr, shown: &str) -> Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("openat", shown, e))
}

/// Create a symlink `name -> target` in `dir`; the target is stored as is, never followed.
pub(crate) fn make_symlink(
    dir: BorrowedFd<'_>,
    name: &CStr,
    target: &CStr,
    m: &Meta,
    shown: &str,
) -> Result<()> {
    rustix::fs::symlinkat(target, dir, name).map_err(|e| io("symlinkat", shown, e))?;
    chown_at(dir, name, m, shown)?;
    set_times_at(dir, name, m, shown)
}

/// Create a character or block device or a FIFO.
pub(crate) fn make_node(
    dir: BorrowedFd<'_>,
    name: &CStr,
    kind: FileType,
    dev: (u32, u32),
    m: &Meta,
    shown: &str,
) -> Result<()> {
    let dev = rustix::fs::makedev(dev.0, dev.1);
    rustix::fs::mknodat(dir, name, kind, Mode::from_raw_mode(0o600), dev)
        .map_err(|e| io("mknodat", shown, e))?;
    chown_at(dir, name, m, shown)?;
    // fchmodat with AT_SYMLINK_NOFOLLOW (glibc does it through an O_PATH fd): no chmod through a
    // symlink even if one had replaced the node.
    nix::sys::stat::fchmodat(
        dir,
        name,
        nix::sys::stat::Mode::from_bits_truncate(m.mode),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .map_err(|e| Error::io("fchmodat", shown, e.into()))?;
    set_times_at(dir, name, m, shown)
}

/// Remove `name` from `dir`, recursively for a directory, never following symlinks.
/// `depth_left` bounds the recursion.
pub(crate) fn remove_all(
    dir: BorrowedFd<'_>,
    name: &CStr,
    depth_left: usize,
    shown: &str,
) -> Result<()> {
    match kind_at(dir, name, shown)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let sub = open_dir_nofollow(dir, name, shown)?;
            for child in list_dir(sub.as_fd(), shown)? {
                if depth_left == 0 {
                    return Err(Error::malformed(
                        "tree",
                        format!("{shown:?} nests deeper than the depth limit"),
                    ));
                }
                remove_all(sub.as_fd(), &child, depth_left - 1, shown)?;
            }
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
                .map_err(|e| io("unlinkat", shown, e))
        }
        Some(_) => {
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(|e| io("unlinkat", shown, e))
        }
    }
}

/// The names in an open directory (without `.` and `..`).
pub(crate) fn list_dir(dir: BorrowedFd<'_>, shown: &str) -> Result<Vec<std::ffi::CString>> {
    let mut d = rustix::fs::Dir::read_from(dir).map_err(|e| io("opendir", shown, e))?;
    let mut out = Vec::new();
    while let Some(ent) = d.read() {
        let ent = ent.map_err(|e| io("readdir", shown, e))?;
        let n = ent.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}
