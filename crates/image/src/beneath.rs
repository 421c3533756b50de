//! Resolving entry paths beneath the target root with `openat2(2)`.
//!
//! Every directory an entry is written into is opened from the root's fd with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` (or `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`): the
//! kernel refuses any resolution that leaves the root, whether through `..`, an absolute
//! symlink or a symlink swapped in by an earlier entry, and does so atomically, with no window
//! between check and use. The last component is then handled with `*at` calls on that directory
//! fd, never following a symlink. No path string is ever joined onto the root path.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::path::{cstr, join};

/// How symlinks met while resolving an entry's parent directories are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Resolve {
    /// `RESOLVE_BENEATH`: symlinks are followed only while they stay beneath the root; an
    /// absolute symlink or one climbing out makes the entry fail. The strict default.
    #[default]
    Beneath,
    /// `RESOLVE_IN_ROOT`: as if chrooted at the target: absolute symlinks and `..` are resolved
    /// relative to the root (what containerd and umoci do). Never escapes either, but an entry
    /// under `lib -> /usr/lib` lands in `<root>/usr/lib` instead of failing.
    InRoot,
}

/// The target directory of a layer, held open.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    resolve: ResolveFlags,
}

/// Mode of directories created because an entry needs them and the archive has no entry of
/// their own (containerd and umoci do the same).
const IMPLICIT_DIR_MODE: u32 = 0o755;

impl Root {
    /// Open `target` (which must be a directory, not a symlink).
    pub(crate) fn open(target: &Path, resolve: Resolve) -> Result<Root> {
        let fd = rustix::fs::open(
            target,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open target", target.display(), e.into()))?;
        let resolve = match resolve {
            Resolve::Beneath => ResolveFlags::BENEATH,
            Resolve::InRoot => ResolveFlags::IN_ROOT,
        } | ResolveFlags::NO_MAGICLINKS;
        Ok(Root { fd, resolve })
    }

    /// The root directory itself.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `openat2(root, comps, flags, resolve)`, retried on `EAGAIN` (a concurrent rename seen by
    /// the `..` checks of RESOLVE_BENEATH).
    fn open_beneath(&self, comps: &[Vec<u8>], flags: OFlags) -> Result<OwnedFd, Errno> {
        let path = cstr(&join(comps));
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.fd, &path, flags, Mode::empty(), self.resolve) {
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                r => return r,
            }
        }
    }

    /// Open the directory `comps` (an `O_PATH` fd, enough for `*at` calls); `shown` names the
    /// entry in errors. With `create`, missing directories are made ([`IMPLICIT_DIR_MODE`],
    /// root-owned) one by one, each under a directory fd that was itself resolved beneath the
    /// root. `Ok(None)` when it does not exist and `create` is false.
    pub(crate) fn dir(
        &self,
        comps: &[Vec<u8>],
        create: bool,
        shown: &str,
    ) -> Result<Option<OwnedFd>> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match self.open_beneath(comps, flags) {
            Ok(fd) => return Ok(Some(fd)),
            Err(Errno::NOENT) if create => {}
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(resolve_error(shown, comps, e)),
        }
        let mut cur = rustix::io::dup(&self.fd).map_err(|e| Error::io("dup", ".", e.into()))?;
        for i in 0..comps.len() {
            let prefix = &comps[..=i];
            cur = match self.open_beneath(prefix, flags) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    let name = cstr(&comps[i]);
                    let mode = Mode::from_raw_mode(IMPLICIT_DIR_MODE);
                    match rustix::fs::mkdirat(&cur, &name, mode) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(Error::io("mkdirat", lossy(&join(prefix)), e.into())),
                    }
                    match self.open_beneath(prefix, flags) {
                        Ok(fd) => fd,
                        // It exists but resolves to nothing: a symlink to a missing path.
                        Err(Errno::NOENT) => {
                            return Err(Error::malformed(
                                "layer",
                                format!(
                                    "entry {shown:?}: {:?} is a dangling symlink",
                                    lossy(&join(prefix))
                                ),
                            ))
                        }
                        Err(e) => return Err(resolve_error(shown, prefix, e)),
                    }
                }
                Err(e) => return Err(resolve_error(shown, prefix, e)),
            };
        }
        Ok(Some(cur))
    }
}

pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What a failed resolution means for the entry.
fn resolve_error(shown: &str, comps: &[Vec<u8>], e: Errno) -> Error {
    let at = lossy(&join(comps));
    match e {
        Errno::XDEV => Error::unsafe_entry(
            shown,
            format!("{at:?} resolves outside the target (absolute or escaping symlink)"),
        ),
        Errno::LOOP => Error::unsafe_entry(
            shown,
            format!("{at:?}: too many levels of symbolic links, or a magic link"),
        ),
        Errno::NOTDIR => Error::malformed(
            "layer",
            format!("entry {shown:?}: {at:?} is not a directory"),
        ),
        e => Error::io("openat2", at, e.into()),
    }
}
