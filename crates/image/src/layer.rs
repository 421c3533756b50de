//! One layer blob onto one directory: digest of the compressed bytes, decompression, the size
//! limit, tar parsing, application, digest of the uncompressed stream (the diff id).
//!
//! The blob is streamed: entries are written as they are read and the digests are known only at
//! the end, so **on any error the target holds a partial layer and must be discarded**. The
//! stores never apply into a live tree: they apply into a temporary directory or dataset and
//! rename it into place only after both digests matched (and they check the blob's digest
//! before decompressing anything, with [`verify_blob`]).

use std::cell::Cell;
use std::io::{self, Read};
use std::path::Path;

use crate::apply::{Applier, ApplyOptions, Counters};
use crate::beneath::Root;
use crate::compression::{decoder, sniff, Compression};
use crate::digest::{Algorithm, Digest, HashingReader};
use crate::error::{Error, Result};
use crate::limits::{LimitReader, Limits};

/// What the referrer (manifest and config) says about a layer. Absent digests are not checked
/// (for tests and fuzzing; the stores always give both).
#[derive(Debug, Clone, Default)]
pub struct LayerBlob {
    /// The descriptor's media type; `None` trusts the magic bytes alone.
    pub media_type: Option<String>,
    /// Digest of the blob as stored (compressed).
    pub digest: Option<Digest>,
    /// Size of the blob as stored.
    pub size: Option<u64>,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Option<Digest>,
}

/// The result of a successful application.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Digest of the blob as read.
    pub digest: Digest,
    /// Its length.
    pub compressed_bytes: u64,
    /// Digest of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Its length.
    pub uncompressed_bytes: u64,
    /// Detected compression.
    pub compression: Compression,
    /// What was applied and skipped.
    pub counters: Counters,
}

/// Apply the layer in `blob` onto the directory `target`, then check its digests.
pub fn apply_layer(
    blob: impl Read,
    layer: &LayerBlob,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<Applied> {
    let root = Root::open(target, opts.resolve)?;
    let alg = |d: &Option<Digest>| d.as_ref().map_or(Algorithm::Sha256, Digest::algorithm);
    let mut compressed = HashingReader::new(blob, alg(&layer.digest));
    let tripped = Cell::new(false);
    let limits = opts.limits;
    let stream_err = |e: io::Error| stream_error(e, &tripped, &limits);

    let (compression, counters, diff_id, uncompressed_bytes) = {
        let (compression, sniffed) = sniff(&mut compressed, layer.media_type.as_deref())?;
        let dec = decoder(sniffed, compression)?;
        let limited = LimitReader::new(dec, limits.max_uncompressed, &tripped);
        let mut diff = HashingReader::new(limited, alg(&layer.diff_id));
        let mut applier = Applier::new(&root, opts);
        {
            let mut archive = tar::Archive::new(&mut diff);
            crate::entry::for_each(&mut archive, &limits, &stream_err, |e, data| {
                let shown = String::from_utf8_lossy(&e.path).into_owned();
                applier
                    .apply(e, data, &stream_err)
                    .map_err(|err| with_path(err, shown))
            })?;
        }
        applier.finish()?;
        let (diff_id, n) = diff.finish().map_err(stream_err)?;
        (compression, applier.counters, diff_id, n)
    };
    let (digest, compressed_bytes) = compressed
        .finish()
        .map_err(|e| Error::io("read", "layer blob", e))?;
    check(layer, &digest, compressed_bytes, &diff_id)?;
    Ok(Applied {
        digest,
        compressed_bytes,
        diff_id,
        uncompressed_bytes,
        compression,
        counters,
    })
}

/// Read `blob` to the end and check its digest (and size when given), without decompressing it.
pub fn verify_blob(
    blob: impl Read,
    what: &'static str,
    digest: &Digest,
    size: Option<u64>,
) -> Result<u64> {
    let (actual, n) = HashingReader::new(blob, digest.algorithm())
        .finish()
        .map_err(|e| Error::io("read", digest, e))?;
    if let Some(size) = size.filter(|s| *s != n) {
        return Err(Error::SizeMismatch {
            what,
            digest: digest.clone(),
            expected: size,
            actual: n,
        });
    }
    if actual != *digest {
        return Err(Error::DigestMismatch {
            what,
            expected: digest.clone(),
            actual,
        });
    }
    Ok(n)
}

fn check(layer: &LayerBlob, digest: &Digest, size: u64, diff_id: &Digest) -> Result<()> {
    if let Some(want) = &layer.digest {
        if want != digest {
            return Err(Error::DigestMismatch {
                what: "layer blob",
                expected: want.clone(),
                actual: digest.clone(),
            });
        }
    }
    if let (Some(want), Some(d)) = (layer.size, &layer.digest) {
        if want != size {
            return Err(Error::SizeMismatch {
                what: "layer blob",
                digest: d.clone(),
                expected: want,
                actual: size,
            });
        }
    }
    if let Some(want) = &layer.diff_id {
        if want != diff_id {
            return Err(Error::DigestMismatch {
                what: "layer diff id",
                expected: want.clone(),
                actual: diff_id.clone(),
            });
        }
    }
    Ok(())
}

/// A read failure of the layer stream: the size limit (when the limit reader tripped) or a
/// malformed archive or compression.
fn stream_error(e: io::Error, tripped: &Cell<bool>, limits: &Limits) -> Error {
    if tripped.get() {
        Error::Limit {
            what: "uncompressed size",
            limit: limits.max_uncompressed,
            path: None,
        }
    } else {
        Error::malformed("layer", e.to_string())
    }
}

fn with_path(e: Error, shown: String) -> Error {
    match e {
        Error::Limit {
            what,
            limit,
            path: None,
        } => Error::Limit {
            what,
            limit,
            path: Some(shown),
        },
        e => e,
    }
}
