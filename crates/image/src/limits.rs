//! Resource limits of layer application, and the reader that enforces the size limit on the
//! decompressed stream (so a decompression bomb stops at the limit, not at the disk's end).

use std::cell::Cell;
use std::io::{self, Read};

/// Limits checked while a layer is applied. Every one is a hard error, naming the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the whole uncompressed tar stream (headers, data and padding).
    pub max_uncompressed: u64,
    /// Entries (files, directories, links, whiteouts…), not counting PAX/GNU extension headers.
    pub max_entries: u64,
    /// Size of one regular file.
    pub max_file_size: u64,
    /// Length of an entry path or a link target, in bytes.
    pub max_path_len: usize,
    /// Components of an entry path (also bounds recursion when a directory is removed).
    pub max_depth: usize,
    /// Payload of one PAX or GNU long-name extension header (names, xattrs).
    pub max_metadata: u64,
}

impl Default for Limits {
    /// Generous for real images (the largest common base images are a few GiB and ~100k files),
    /// small enough to stop a bomb before it fills a disk.
    fn default() -> Self {
        Limits {
            max_uncompressed: 32 << 30,
            max_entries: 2_000_000,
            max_file_size: 16 << 30,
            max_path_len: 4096,
            max_depth: 256,
            max_metadata: 1 << 20,
        }
    }
}

/// The error a [`LimitReader`] returns once it has tripped; recognised by the caller through the
/// shared flag, not by downcasting through decompressor and tar error wrappers.
pub(crate) const LIMIT_TRIPPED: &str = "uncompressed size limit reached";

/// Passes at most `limit` bytes on; asked for more while the inner reader still has data, it
/// sets `tripped` and fails.
pub(crate) struct LimitReader<'a, R> {
    inner: R,
    left: u64,
    tripped: &'a Cell<bool>,
}

impl<'a, R: Read> LimitReader<'a, R> {
    pub(crate) fn new(inner: R, limit: u64, tripped: &'a Cell<bool>) -> Self {
        LimitReader {
            inner,
            left: limit,
            tripped,
        }
    }
}

impl<R: Read> Read for LimitReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.tripped.set(true);
                    Err(io::Error::other(LIMIT_TRIPPED))
                }
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_limit_is_fine_one_more_byte_trips() {
        let flag = Cell::new(false);
        let mut out = Vec::new();
        LimitReader::new(&[1u8; 10][..], 10, &flag)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 10);
        assert!(!flag.get());

        let mut out = Vec::new();
        let e = LimitReader::new(&[1u8; 11][..], 10, &flag)
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(e.to_string(), LIMIT_TRIPPED);
        assert!(flag.get());
        assert_eq!(out.len(), 10);
    }
}
