//! Reading tar entries with bounded memory.
//!
//! The `tar` crate parses headers (and checks their checksums) in raw mode; GNU long names and
//! PAX records are read here, each extension payload capped by [`Limits`] *before* it is read
//! (the crate's own handling reads them whole, however large the header says they are). PAX
//! `path`, `linkpath`, `uid`, `gid`, `mtime`, `atime`, `size` and `SCHILY.xattr.*` are honoured;
//! sparse files and PAX sizes that differ from the header are refused.

use std::io::{self, Read};

use crate::error::{Error, Result};
use crate::limits::Limits;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// One archive member with its metadata (the data is read separately).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    pub atime: Option<(i64, u32)>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Extension headers allowed in a row before a real entry.
const MAX_EXTENSION_CHAIN: u32 = 8;

#[derive(Default)]
struct Pending {
    headers: u32,
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<(i64, u32)>,
    atime: Option<(i64, u32)>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::malformed("layer", detail)
}

fn utf8_num<T: std::str::FromStr>(key: &str, v: &[u8]) -> Result<T> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("PAX {key} is not a number")))
}

/// A PAX time: `[-]seconds[.fraction]`.
pub(crate) fn parse_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: u32 = digits.parse().ok()?;
    // -1.5 means 1.5 s before the epoch: (-2, 0.5e9).
    if s.starts_with('-') && nanos > 0 {
        return Some((secs.checked_sub(1)?, 1_000_000_000 - nanos));
    }
    Some((secs, nanos))
}

impl Pending {
    fn pax(&mut self, data: &[u8]) -> Result<()> {
        for ext in tar::PaxExtensions::new(data) {
            let ext = ext.map_err(|e| bad(format!("PAX header: {e}")))?;
            let (k, v) = (ext.key_bytes(), ext.value_bytes());
            match k {
                b"path" => self.path = Some(v.to_vec()),
                b"linkpath" => self.link = Some(v.to_vec()),
                b"size" => self.size = Some(utf8_num("size", v)?),
                b"uid" => self.uid = Some(utf8_num("uid", v)?),
                b"gid" => self.gid = Some(utf8_num("gid", v)?),
                b"mtime" => self.mtime = Some(parse_time(v).ok_or_else(|| bad("PAX mtime"))?),
                b"atime" => self.atime = Some(parse_time(v).ok_or_else(|| bad("PAX atime"))?),
                k if k.starts_with(b"GNU.sparse.") => {
                    return Err(Error::Unsupported("sparse files (PAX GNU.sparse)".into()))
                }
                k => {
                    if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                        if name.is_empty() || name.contains(&0) {
                            return Err(bad("bad xattr name"));
                        }
                        self.xattrs.push((name.to_vec(), v.to_vec()));
                    }
                }
            }
        }
        Ok(())
    }
}

fn strip_nuls(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Call `f` for every entry of `archive`, in order. `stream_err` maps a read failure of the
/// archive (a tripped limit, corrupt compression, a bad header) to the right error.
pub(crate) fn for_each<R: Read>(
    archive: &mut tar::Archive<R>,
    limits: &Limits,
    stream_err: &dyn Fn(io::Error) -> Error,
    mut f: impl FnMut(Entry, &mut dyn Read) -> Result<()>,
) -> Result<u64> {
    let mut pending = Pending::default();
    let mut count = 0u64;
    for item in archive.entries().map_err(stream_err)?.raw(true) {
        let mut te = item.map_err(stream_err)?;
        let t = te.header().entry_type();
        let size = te.size();
        let long = t.is_gnu_longname() || t.is_gnu_longlink();
        if long || t.is_pax_local_extensions() || t.is_pax_global_extensions() {
            pending.headers += 1;
            if pending.headers > MAX_EXTENSION_CHAIN {
                return Err(bad("too many extension headers before an entry"));
            }
            let cap = if long {
                limits.max_path_len as u64 + 1
            } else {
                limits.max_metadata
            };
            if size > cap {
                return Err(Error::Limit {
                    what: "extension header size",
                    limit: cap,
                    path: None,
                });
            }
            let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            (&mut te)
                .take(size)
                .read_to_end(&mut data)
                .map_err(stream_err)?;
            if data.len() as u64 != size {
                return Err(bad("truncated extension header"));
            }
            if t.is_gnu_longname() {
                pending.path = Some(strip_nuls(data));
            } else if t.is_gnu_longlink() {
                pending.link = Some(strip_nuls(data));
            } else if t.is_pax_local_extensions() {
                pending.pax(&data)?;
            }
            continue;
        }
        count += 1;
        if count > limits.max_entries {
            return Err(Error::Limit {
                what: "entry count",
                limit: limits.max_entries,
                path: None,
            });
        }
        let p = std::mem::take(&mut pending);
        let entry = build(te.header(), size, p, limits)?;
        f(entry, &mut te)?;
    }
    if pending.headers > 0 {
        return Err(bad("extension header without an entry"));
    }
    Ok(count)
}

fn id(what: &str, v: u64) -> Result<u32> {
    // u32::MAX is chown's "leave unchanged".
    u32::try_from(v)
        .ok()
        .filter(|v| *v != u32::MAX)
        .ok_or_else(|| bad(format!("{what} {v} out of range")))
}

fn build(h: &tar::Header, size: u64, p: Pending, limits: &Limits) -> Result<Entry> {
    let path = p.path.unwrap_or_else(|| h.path_bytes().into_owned());
    let shown = String::from_utf8_lossy(&path).into_owned();
    let hdr = |e: io::Error| bad(format!("entry {shown:?}: {e}"));
    if let Some(s) = p.size {
        if s != size {
            return Err(Error::Unsupported(format!(
                "entry {shown:?}: PAX size {s} differs from the header size {size}"
            )));
        }
    }
    let link = || {
        p.link
            .clone()
            .or_else(|| h.link_name_bytes().map(|l| l.into_owned()))
            .filter(|l| !l.is_empty())
            .ok_or_else(|| bad(format!("entry {shown:?}: link without a target")))
    };
    let dev = || -> Result<(u32, u32)> {
        match (
            h.device_major().map_err(hdr)?,
            h.device_minor().map_err(hdr)?,
        ) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(bad(format!("entry {shown:?}: device without numbers"))),
        }
    };
    use tar::EntryType as T;
    let kind = match h.entry_type() {
        T::Regular | T::Continuous if path.ends_with(b"/") => Kind::Dir,
        T::Regular | T::Continuous => Kind::File,
        T::Directory => Kind::Dir,
        T::Symlink => Kind::Symlink(link()?),
        T::Link => Kind::Hardlink(link()?),
        T::Char => {
            let (a, b) = dev()?;
            Kind::Char(a, b)
        }
        T::Block => {
            let (a, b) = dev()?;
            Kind::Block(a, b)
        }
        T::Fifo => Kind::Fifo,
        other => {
            return Err(Error::Unsupported(format!(
                "tar entry type {:?} at {shown:?}",
                other.as_byte() as char
            )))
        }
    };
    if kind == Kind::File && size > limits.max_file_size {
        return Err(Error::Limit {
            what: "file size",
            limit: limits.max_file_size,
            path: Some(shown),
        });
    }
    let mtime = match p.mtime {
        Some(t) => t,
        None => (
            i64::try_from(h.mtime().map_err(hdr)?).unwrap_or(i64::MAX),
            0,
        ),
    };
    Ok(Entry {
        kind,
        size,
        mode: h.mode().map_err(hdr)? & 0o7777,
        uid: id("uid", p.uid.map_or_else(|| h.uid().map_err(hdr), Ok)?)?,
        gid: id("gid", p.gid.map_or_else(|| h.gid().map_err(hdr), Ok)?)?,
        mtime,
        atime: p.atime,
        xattrs: p.xattrs,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(parse_time(b"1700000000"), Some((1700000000, 0)));
        assert_eq!(parse_time(b"1700000000.5"), Some((1700000000, 500_000_000)));
        assert_eq!(parse_time(b"1.1234567891"), Some((1, 123_456_789)));
        assert_eq!(parse_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_time(b"x"), None);
        assert_eq!(parse_time(b"1.x"), None);
    }
}
