//! OCI whiteouts and opaque directories (image-spec layer.md): `.wh.<name>` removes `<name>`,
//! `.wh..wh..opq` removes every other entry of its directory, both only as far as the entries
//! come from lower layers.

use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::FileType;

use crate::apply::{Applier, WHITEOUT};
use crate::error::{Error, Result};
use crate::fsops;
use crate::path::{cstr, EntryPath};

const OPAQUE: &[u8] = b".wh..wh..opq";

impl Applier<'_> {
    pub(crate) fn whiteout(&mut self, path: &EntryPath, rest: &[u8], shown: &str) -> Result<()> {
        if path.name() == Some(OPAQUE) {
            return self.opaque(path.parent(), shown);
        }
        if rest.starts_with(WHITEOUT) {
            return Ok(()); // other aufs metadata (.wh..wh.plnk, .wh..wh.aufs): nothing to do
        }
        if rest.is_empty() || rest == b"." || rest == b".." {
            return Err(Error::unsafe_entry(shown, "whiteout of '', '.' or '..'"));
        }
        let Some(dir) = self.root.dir(path.parent(), false, shown)? else {
            return Ok(()); // nothing below to hide
        };
        self.remove_lower(dir.as_fd(), &path.sibling(rest), shown)
    }

    fn opaque(&mut self, comps: &[Vec<u8>], shown: &str) -> Result<()> {
        let dir_path = EntryPath::parse(&crate::path::join(comps), self.limits())?;
        let fd = match dir_path.name() {
            None => rustix::io::dup(self.root.fd()).map_err(|e| Error::io("dup", ".", e.into()))?,
            Some(name) => {
                let Some(parent) = self.root.dir(dir_path.parent(), false, shown)? else {
                    return Ok(());
                };
                let cname = cstr(name);
                if fsops::kind_at(parent.as_fd(), &cname, shown)? != Some(FileType::Directory) {
                    return Ok(());
                }
                fsops::open_dir_nofollow(parent.as_fd(), &cname, shown)?
            }
        };
        for child in fsops::list_dir(fd.as_fd(), shown)? {
            self.remove_lower(fd.as_fd(), &dir_path.child(child.to_bytes()), shown)?;
        }
        Ok(())
    }

    /// Whether this layer created `key` or anything below it.
    fn touched_at_or_below(&self, key: &[u8]) -> bool {
        if self.touched.contains(key) {
            return true;
        }
        let mut prefix = key.to_vec();
        prefix.push(b'/');
        self.touched
            .range(prefix.clone()..)
            .next()
            .is_some_and(|k| k.starts_with(&prefix))
    }

    /// Remove `victim` (in `dir`) as far as it comes from lower layers.
    fn remove_lower(&self, dir: BorrowedFd<'_>, victim: &EntryPath, shown: &str) -> Result<()> {
        let name = cstr(victim.name().unwrap_or(b"."));
        let key = victim.joined();
        if !self.touched_at_or_below(&key) {
            return fsops::remove_all(dir, &name, self.limits().max_depth, shown);
        }
        if fsops::kind_at(dir, &name, shown)? != Some(FileType::Directory) {
            return Ok(()); // created by this layer: stays
        }
        let sub = fsops::open_dir_nofollow(dir, &name, shown)?;
        for child in fsops::list_dir(sub.as_fd(), shown)? {
            self.remove_lower(sub.as_fd(), &victim.child(child.to_bytes()), shown)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::apply::{Applier, ApplyOptions};
    use crate::beneath::{Resolve, Root};

    #[test]
    fn touched_prefixes_are_component_wise() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path(), Resolve::Beneath).unwrap();
        let opts = ApplyOptions::default();
        let mut a = Applier::new(&root, &opts);
        a.touched.insert(b"a/b/c".to_vec());
        assert!(a.touched_at_or_below(b"a"));
        assert!(a.touched_at_or_below(b"a/b"));
        assert!(a.touched_at_or_below(b"a/b/c"));
        assert!(!a.touched_at_or_below(b"a/b/c/d"));
        assert!(!a.touched_at_or_below(b"a/bb"));
        assert!(!a.touched_at_or_below(b"a/b/"));
    }
}
