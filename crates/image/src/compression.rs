//! Layer compression: from the media type, from the magic bytes, and the decoders.
//!
//! The magic bytes choose the decoder, so a decoder only ever sees data in its own format. A
//! media type is checked too: it must name a layer type this store handles (encrypted and
//! unknown types are refused), and when it names a compression the data must match it.

use std::io::{self, Cursor, Read};

use crate::error::{Error, Result};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (possibly several members).
    Gzip,
    /// zstd (possibly several frames).
    Zstd,
}

impl Compression {
    /// The compression a layer media type declares: OCI `…layer.v1.tar[+gzip|+zstd]` (also
    /// non-distributable) and Docker `…rootfs.diff.tar[.gzip]` / `…foreign.diff.tar.gzip`.
    pub fn from_media_type(media_type: &str) -> Result<Compression> {
        const OCI: &[&str] = &[
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
        ];
        const DOCKER: &[&str] = &[
            "application/vnd.docker.image.rootfs.diff.tar",
            "application/vnd.docker.image.rootfs.foreign.diff.tar",
        ];
        for base in OCI {
            if let Some(rest) = media_type.strip_prefix(base) {
                match rest {
                    "" => return Ok(Compression::None),
                    "+gzip" => return Ok(Compression::Gzip),
                    "+zstd" => return Ok(Compression::Zstd),
                    _ => {}
                }
            }
        }
        for base in DOCKER {
            if let Some(rest) = media_type.strip_prefix(base) {
                match rest {
                    "" => return Ok(Compression::None),
                    ".gzip" => return Ok(Compression::Gzip),
                    _ => {}
                }
            }
        }
        Err(Error::Unsupported(format!(
            "layer media type {media_type:?}"
        )))
    }

    /// The compression the first bytes of a blob show (anything else is taken as a plain tar).
    pub fn detect(prefix: &[u8]) -> Compression {
        if prefix.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if prefix.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// A reader that first replays the sniffed bytes.
pub(crate) type Sniffed<R> = io::Chain<Cursor<Vec<u8>>, R>;

/// Read the first bytes of `r` to detect the compression, checked against the media type's when
/// there is one; returns it and a reader that still yields every byte.
pub(crate) fn sniff<R: Read>(
    mut r: R,
    media_type: Option<&str>,
) -> Result<(Compression, Sniffed<R>)> {
    let mut prefix = vec![0u8; ZSTD_MAGIC.len()];
    let mut got = 0;
    while got < prefix.len() {
        match r.read(&mut prefix[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", "layer blob", e)),
        }
    }
    prefix.truncate(got);
    let detected = Compression::detect(&prefix);
    if let Some(mt) = media_type {
        let declared = Compression::from_media_type(mt)?;
        if declared != detected {
            return Err(Error::malformed(
                "layer",
                format!("media type {mt:?} declares {declared:?} but the data is {detected:?}"),
            ));
        }
    }
    Ok((detected, Cursor::new(prefix).chain(r)))
}

/// A decoder for `c` over `r`.
pub(crate) fn decoder<'a, R: Read + 'a>(r: R, c: Compression) -> Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(r)
                .map_err(|e| Error::malformed("layer", format!("zstd: {e}")))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        let ok = [
            ("application/vnd.oci.image.layer.v1.tar", Compression::None),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::Zstd,
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                Compression::Gzip,
            ),
        ];
        for (mt, c) in ok {
            assert_eq!(Compression::from_media_type(mt).unwrap(), c, "{mt}");
        }
        for bad in [
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+bzip2",
        ] {
            assert!(Compression::from_media_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sniff_keeps_every_byte_and_checks_the_media_type() {
        let data = [0x1f, 0x8b, 8, 0, 1, 2, 3];
        let (c, mut r) = sniff(&data[..], None).unwrap();
        assert_eq!(c, Compression::Gzip);
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);

        let (c, _) = sniff(&b"ab"[..], None).unwrap();
        assert_eq!(c, Compression::None);
        let e = sniff(
            &data[..],
            Some("application/vnd.oci.image.layer.v1.tar+zstd"),
        )
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("declares Zstd but the data is Gzip"),
            "{e}"
        );
    }
}
