//! From `index.json` to the layers of one image: pick the manifest (by reference name and host
//! platform, through nested indexes), read the config, pair layers with diff ids, compute chain
//! ids. Every JSON blob is size-capped and checked against its digest and descriptor size.

use std::fmt;
use std::io::Read;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use super::source::{BlobSource, MAX_INDEX};
use crate::compression::Compression;
use crate::digest::{chain_ids, Digest};
use crate::error::{Error, Result};

/// Upper bound of a manifest, index or config blob.
const MAX_JSON: u64 = 8 << 20;
/// Nesting of image indexes followed.
const MAX_INDEX_DEPTH: usize = 4;
/// The annotation that names an image in a layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// An OS/architecture pair (and variant) as the image-spec spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v8`, …; `None` matches any.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.architecture == arch
            && match (&self.variant, variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// One layer of a resolved image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLayer {
    /// Media type of the blob.
    pub media_type: String,
    /// Digest of the blob.
    pub digest: Digest,
    /// Size of the blob.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Chain id of the stack up to and including this layer.
    pub chain_id: Digest,
}

/// An image ready to unpack.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Digest of the chosen manifest.
    pub manifest: Digest,
    /// Digest of the config blob.
    pub config_digest: Digest,
    /// The config (entrypoint, env, … for the backends).
    pub config: ImageConfiguration,
    /// Layers, lowest first.
    pub layers: Vec<ImageLayer>,
}

impl ResolvedImage {
    /// The chain id of the whole stack (what a rootfs is made from); `None` for no layers.
    pub fn top(&self) -> Option<&Digest> {
        self.layers.last().map(|l| &l.chain_id)
    }
}

fn digest_of(d: &Descriptor) -> Result<Digest> {
    d.digest().to_string().parse()
}

/// Read a JSON blob through its descriptor: capped, digest- and size-checked.
fn read_json<T: serde::de::DeserializeOwned>(
    src: &dyn BlobSource,
    d: &Descriptor,
    what: &'static str,
    cap: u64,
) -> Result<T> {
    let digest = digest_of(d)?;
    if d.size() > cap {
        return Err(Error::Limit {
            what,
            limit: cap,
            path: Some(digest.to_string()),
        });
    }
    let (r, _) = src.open(&digest)?;
    let mut bytes = Vec::new();
    r.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", &digest, e))?;
    if bytes.len() as u64 != d.size() {
        return Err(Error::SizeMismatch {
            what,
            digest,
            expected: d.size(),
            actual: bytes.len() as u64,
        });
    }
    digest.verify(what, &bytes)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::malformed(what, format!("{digest}: {e}")))
}

/// Resolve the image named `reference` (the `org.opencontainers.image.ref.name` annotation;
/// `None`: the layout must hold one image) for `platform`.
pub fn resolve(
    src: &dyn BlobSource,
    reference: Option<&str>,
    platform: &Platform,
) -> Result<ResolvedImage> {
    let bytes = src.index()?;
    if bytes.len() as u64 > MAX_INDEX {
        return Err(Error::Limit {
            what: "index.json size",
            limit: MAX_INDEX,
            path: None,
        });
    }
    let index: ImageIndex = serde_json::from_slice(&bytes)
        .map_err(|e| Error::malformed("index.json", e.to_string()))?;
    let named: Vec<Descriptor> = match reference {
        None => index.manifests().clone(),
        Some(r) => index
            .manifests()
            .iter()
            .filter(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .map(String::as_str)
                    == Some(r)
            })
            .cloned()
            .collect(),
    };
    if named.is_empty() {
        return Err(Error::NotFound(format!(
            "image {}",
            reference.unwrap_or("(any)")
        )));
    }
    let manifest_desc = pick(src, &named, platform, 0)?;
    let manifest: ImageManifest = read_json(src, &manifest_desc, "manifest", MAX_JSON)?;
    let config_digest = digest_of(manifest.config())?;
    let config: ImageConfiguration = read_json(src, manifest.config(), "config", MAX_JSON)?;
    let (os, arch) = (config.os().to_string(), config.architecture().to_string());
    if !platform.matches(&os, &arch, config.variant().as_deref()) {
        return Err(Error::NotFound(format!(
            "image for {platform} (the image is for {os}/{arch})"
        )));
    }
    if config.rootfs().typ() != "layers" {
        return Err(Error::malformed(
            "config",
            format!("rootfs type {:?}", config.rootfs().typ()),
        ));
    }
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<Digest>>>()?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::malformed(
            "image",
            format!(
                "{} layers but {} diff ids",
                manifest.layers().len(),
                diff_ids.len()
            ),
        ));
    }
    let chains = chain_ids(&diff_ids);
    let mut layers = Vec::with_capacity(diff_ids.len());
    for ((d, diff_id), chain_id) in manifest.layers().iter().zip(diff_ids).zip(chains) {
        let media_type = d.media_type().to_string();
        Compression::from_media_type(&media_type)?;
        layers.push(ImageLayer {
            media_type,
            digest: digest_of(d)?,
            size: d.size(),
            diff_id,
            chain_id,
        });
    }
    Ok(ResolvedImage {
        manifest: digest_of(&manifest_desc)?,
        config_digest,
        config,
        layers,
    })
}

/// The manifest descriptor for `platform` among `descs`, following nested indexes.
fn pick(
    src: &dyn BlobSource,
    descs: &[Descriptor],
    platform: &Platform,
    depth: usize,
) -> Result<Descriptor> {
    let fits = |d: &Descriptor| match d.platform() {
        None => true,
        Some(p) => platform.matches(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref(),
        ),
    };
    // An explicit platform match beats a descriptor without one.
    let mut ordered: Vec<&Descriptor> = descs
        .iter()
        .filter(|d| d.platform().is_some() && fits(d))
        .collect();
    ordered.extend(descs.iter().filter(|d| d.platform().is_none()));
    for d in ordered {
        let mt = d.media_type().to_string();
        if MANIFEST_TYPES.contains(&mt.as_str()) {
            return Ok(d.clone());
        }
        if INDEX_TYPES.contains(&mt.as_str()) {
            if depth >= MAX_INDEX_DEPTH {
                return Err(Error::malformed("index", "image indexes nested too deep"));
            }
            let nested: ImageIndex = read_json(src, d, "index", MAX_JSON)?;
            match pick(src, nested.manifests(), platform, depth + 1) {
                Err(Error::NotFound(_)) => continue,
                r => return r,
            }
        }
    }
    Err(Error::NotFound(format!("manifest for {platform}")))
}
