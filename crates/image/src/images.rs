//! Named images in a store: import, list, remove, and pruning of layers nothing uses.
//!
//! What keeps a stack (chain id) in the store:
//!
//! - a **named image** whose layers include it ([`import`] records the name; [`remove`] drops
//!   it, the layers stay until the next [`prune`]);
//! - a **root file system** made from it or from a stack above it
//!   ([`Store::rootfs_users`]: the catalog's records whose rootfs exists, and for the ZFS store
//!   every clone of a layer snapshot in the pool); with it, every stack below it (a ZFS layer
//!   is a clone of the one below, so ZFS could not destroy those anyway).
//!
//! [`prune`] removes every other stack, topmost first, holding the store lock exclusively, so
//! no unpack, import or rootfs creation runs while it decides. Layers a root file system still
//! uses but no image names are reported as kept ("in use"), never removed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use oci_spec::image::ImageIndex;

use crate::catalog::{now, ImageLayerRecord, ImageRecord};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{BlobSource, ResolvedImage, REF_NAME};
use crate::store::{LayerStatus, Progress, Store, StoredLayer};

/// Longest image name.
const MAX_NAME: usize = 255;

/// Refuse names that are not image references: 1 to 255 bytes of `[A-Za-z0-9._:/@+=-]`,
/// starting with a letter or digit (`busybox`, `latest`, `docker.io/library/nginx:1.27`).
pub fn check_image_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'.' | b'_' | b':' | b'/' | b'@' | b'+' | b'=' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid image name {name:?}: 1 to {MAX_NAME} characters of letters, digits and . _ : / @ + = -, \
             starting with a letter or digit"
        )))
    }
}

fn invalid(msg: String) -> Error {
    Error::Core(nexcage_core::Error::invalid(msg))
}

/// Which image of a layout to import and under which name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The `org.opencontainers.image.ref.name` to resolve (`None`: the layout's only image).
    pub reference: Option<String>,
    /// The name to record.
    pub name: String,
}

/// Pick the image of `src` to import. With `name`: the image whose reference is `name`, else
/// the layout's only image, recorded as `name`. Without: the layout's only reference.
/// `shown` names the source in errors.
pub fn select(src: &dyn BlobSource, name: Option<&str>, shown: &str) -> Result<Selection> {
    let bytes = src.index()?;
    let index: ImageIndex = serde_json::from_slice(&bytes)
        .map_err(|e| Error::malformed("index.json", format!("{shown}: {e}")))?;
    let refs: Vec<Option<String>> = index
        .manifests()
        .iter()
        .map(|d| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .cloned()
        })
        .collect();
    let distinct: BTreeSet<&str> = refs.iter().flatten().map(String::as_str).collect();
    let listed = || {
        if distinct.is_empty() {
            "no named images".to_string()
        } else {
            distinct.iter().copied().collect::<Vec<_>>().join(", ")
        }
    };
    if refs.is_empty() {
        return Err(Error::NotFound(format!(
            "any image in {shown} (index.json lists none)"
        )));
    }
    match name {
        Some(n) => {
            check_image_name(n)?;
            if distinct.contains(n) {
                Ok(Selection {
                    reference: Some(n.to_string()),
                    name: n.to_string(),
                })
            } else if refs.len() == 1 {
                Ok(Selection {
                    reference: None,
                    name: n.to_string(),
                })
            } else {
                Err(invalid(format!(
                    "{shown} holds {} images and none is named {n:?} (it has: {}); give one of \
                     those names",
                    refs.len(),
                    listed()
                )))
            }
        }
        None => match (distinct.len(), refs.iter().all(Option::is_some)) {
            (1, true) => {
                let r = distinct
                    .iter()
                    .next()
                    .copied()
                    .unwrap_or_default()
                    .to_string();
                check_image_name(&r)?;
                Ok(Selection {
                    reference: Some(r.clone()),
                    name: r,
                })
            }
            (0, _) if refs.len() == 1 => Err(invalid(format!(
                "the image in {shown} has no {REF_NAME} annotation: name it with --name NAME"
            ))),
            _ => Err(invalid(format!(
                "{shown} holds {} images ({}): choose one with --name NAME",
                refs.len(),
                listed()
            ))),
        },
    }
}

/// The result of an [`import`].
#[derive(Debug, Clone)]
pub struct Imported {
    /// The name recorded.
    pub name: String,
    /// The record.
    pub record: ImageRecord,
    /// What happened to each layer.
    pub layers: Vec<LayerStatus>,
    /// The image that had this name before, if any (its layers stay until a prune).
    pub replaced: Option<ImageRecord>,
}

/// `os/architecture[/variant]` of a resolved image.
fn platform_of(image: &ResolvedImage) -> String {
    let c = &image.config;
    let mut p = format!("{}/{}", c.os(), c.architecture());
    if let Some(v) = c.variant() {
        p.push('/');
        p.push_str(v);
    }
    p
}

/// Unpack `image` into `store` and record it as `name` (replacing an image of that name).
/// Holds the store lock (shared) from the first layer to the record, so a concurrent prune
/// cannot take a layer the new record is about to name. `source` says where it came from.
pub async fn import<S: Store + Sync>(
    store: &S,
    src: &Arc<dyn BlobSource>,
    image: &ResolvedImage,
    name: &str,
    source: &str,
    progress: Arc<dyn Progress>,
) -> Result<Imported> {
    check_image_name(name)?;
    let _held = store.lock_shared().await?;
    let layers = store.unpack_with(src, image, progress).await?;
    let known = store.catalog().read().await?.layers;
    let record = ImageRecord {
        manifest: image.manifest.clone(),
        config: image.config_digest.clone(),
        platform: platform_of(image),
        layers: layers
            .iter()
            .map(|s| ImageLayerRecord {
                chain_id: s.layer.chain_id.clone(),
                diff_id: s.layer.diff_id.clone(),
                digest: s.layer.digest.clone(),
                media_type: s.layer.media_type.clone(),
                size: s.layer.size,
                unpacked_size: s
                    .unpacked_size
                    .or_else(|| known.get(&s.layer.chain_id).and_then(|r| r.unpacked_size)),
            })
            .collect(),
        source: source.to_string(),
        imported: now(),
    };
    let (n, r) = (name.to_string(), record.clone());
    let replaced = store
        .catalog()
        .update(move |c| Ok(c.images.insert(n, r)))
        .await?;
    Ok(Imported {
        name: name.to_string(),
        record,
        layers,
        replaced,
    })
}

/// A named image and the root file systems made from it.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// Its name.
    pub name: String,
    /// Its record.
    pub record: ImageRecord,
    /// Root file systems made from its top stack.
    pub users: Vec<String>,
}

fn users_by_chain(users: Vec<crate::store::RootfsUse>) -> HashMap<Digest, Vec<String>> {
    let mut m: HashMap<Digest, Vec<String>> = HashMap::new();
    for u in users {
        m.entry(u.chain_id).or_default().push(u.name);
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

/// Every named image, by name.
pub async fn list<S: Store + Sync>(store: &S) -> Result<Vec<ImageInfo>> {
    let catalog = store.catalog().read().await?;
    let users = users_by_chain(store.rootfs_users().await?);
    Ok(catalog
        .images
        .into_iter()
        .map(|(name, record)| {
            let users = record
                .top()
                .and_then(|t| users.get(t))
                .cloned()
                .unwrap_or_default();
            ImageInfo {
                name,
                record,
                users,
            }
        })
        .collect())
}

/// Forget the image `name` (NotFound when there is none). Its layers stay until [`prune`]
/// (and while a root file system uses them); `users` says which root file systems were made
/// from it.
pub async fn remove<S: Store + Sync>(store: &S, name: &str) -> Result<ImageInfo> {
    let users = users_by_chain(store.rootfs_users().await?);
    let n = name.to_string();
    let record = store
        .catalog()
        .update(move |c| {
            c.images
                .remove(&n)
                .ok_or_else(|| Error::NotFound(format!("image {n:?}")))
        })
        .await?;
    let users = record
        .top()
        .and_then(|t| users.get(t))
        .cloned()
        .unwrap_or_default();
    Ok(ImageInfo {
        name: name.to_string(),
        record,
        users,
    })
}

/// A stack prune removed (or would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunedLayer {
    /// Its chain id.
    pub chain_id: Digest,
    /// Uncompressed size of its top layer, when known.
    pub unpacked_size: Option<u64>,
}

/// A stack no image names that prune kept because root file systems use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUseLayer {
    /// Its chain id.
    pub chain_id: Digest,
    /// The root file systems that need it (made from it or from a stack above it).
    pub rootfs: Vec<String>,
}

/// What [`prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Nothing was removed; the report says what would have been.
    pub dry_run: bool,
    /// Stacks removed, topmost first.
    pub removed: Vec<PrunedLayer>,
    /// Stacks kept only because root file systems use them (prune refuses to remove those).
    pub in_use: Vec<InUseLayer>,
    /// Stacks kept because a named image has them.
    pub kept_for_images: usize,
    /// Catalog records of root file systems that no longer exist, dropped.
    pub stale_rootfs: Vec<String>,
    /// Stacks whose removal failed, with why (the rest went on).
    pub failed: Vec<(Digest, String)>,
}

/// Every stack below and including `top`, as far as `parents` knows.
fn stack(top: &Digest, parents: &HashMap<Digest, Option<Digest>>) -> Vec<Digest> {
    let mut out = vec![top.clone()];
    let mut cur = top.clone();
    while let Some(Some(p)) = parents.get(&cur) {
        if out.contains(p) || out.len() > parents.len() {
            break; // a cycle cannot come from chain ids; do not loop on a corrupt catalog
        }
        out.push(p.clone());
        cur = p.clone();
    }
    out
}

/// Remove every stack no named image and no root file system uses (see the module docs).
/// Waits for the exclusive store lock. With `dry_run`, only reports.
pub async fn prune<S: Store + Sync>(store: &S, dry_run: bool) -> Result<PruneReport> {
    let _held = store.lock_exclusive().await?;
    let catalog = store.catalog().read().await?;
    let stored: Vec<StoredLayer> = store.layers().await?;
    let mut parents: HashMap<Digest, Option<Digest>> = HashMap::new();
    for (chain, rec) in &catalog.layers {
        parents.insert(chain.clone(), rec.parent.clone());
    }
    // What the store itself says (ZFS origins) wins over the catalog.
    for l in &stored {
        if l.parent.is_some() || !parents.contains_key(&l.chain_id) {
            parents.insert(l.chain_id.clone(), l.parent.clone());
        }
    }
    for img in catalog.images.values() {
        let mut below = None;
        for l in &img.layers {
            parents.entry(l.chain_id.clone()).or_insert(below.clone());
            below = Some(l.chain_id.clone());
        }
    }

    let mut for_images: BTreeSet<Digest> = BTreeSet::new();
    for img in catalog.images.values() {
        for l in &img.layers {
            for_images.extend(stack(&l.chain_id, &parents));
        }
    }
    let users = store.rootfs_users().await?;
    let mut for_rootfs: BTreeMap<Digest, BTreeSet<String>> = BTreeMap::new();
    for u in &users {
        for c in stack(&u.chain_id, &parents) {
            for_rootfs.entry(c).or_default().insert(u.name.clone());
        }
    }

    let present: BTreeSet<&Digest> = stored.iter().map(|l| &l.chain_id).collect();
    let mut report = PruneReport {
        dry_run,
        ..Default::default()
    };
    report.kept_for_images = present.iter().filter(|c| for_images.contains(**c)).count();
    for (chain, names) in &for_rootfs {
        if present.contains(chain) && !for_images.contains(chain) {
            report.in_use.push(InUseLayer {
                chain_id: chain.clone(),
                rootfs: names.iter().cloned().collect(),
            });
        }
    }

    // Topmost first: a ZFS stack cannot go while the one above (its clone) exists.
    let depth = |c: &Digest| stack(c, &parents).len();
    let mut doomed: Vec<&Digest> = present
        .iter()
        .copied()
        .filter(|c| !for_images.contains(*c) && !for_rootfs.contains_key(*c))
        .collect();
    doomed.sort_by_key(|c| std::cmp::Reverse(depth(c)));
    let mut gone: Vec<Digest> = Vec::new();
    for chain in doomed {
        let unpacked_size = catalog.layers.get(chain).and_then(|r| r.unpacked_size);
        if !dry_run {
            tracing::info!(layer = %chain, "pruning unused layer");
            if let Err(e) = store.remove_layer(chain).await {
                report.failed.push((chain.clone(), e.chain()));
                continue;
            }
            gone.push(chain.clone());
        }
        report.removed.push(PrunedLayer {
            chain_id: chain.clone(),
            unpacked_size,
        });
    }

    let live: BTreeSet<String> = users.iter().map(|u| u.name.clone()).collect();
    report.stale_rootfs = catalog
        .rootfs
        .keys()
        .filter(|n| !live.contains(*n))
        .cloned()
        .collect();
    if !dry_run {
        let still: BTreeSet<Digest> = present
            .iter()
            .map(|c| (*c).clone())
            .filter(|c| !gone.contains(c))
            .collect();
        let stale = report.stale_rootfs.clone();
        store
            .catalog()
            .update(move |c| {
                c.layers.retain(|chain, _| still.contains(chain));
                for n in &stale {
                    c.rootfs.remove(n);
                }
                Ok(())
            })
            .await?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        for ok in [
            "busybox",
            "latest",
            "docker.io/library/nginx:1.27",
            "a@sha256:00",
            "1",
        ] {
            check_image_name(ok).unwrap();
        }
        let long = "a".repeat(256);
        for bad in ["", "-x", ".x", "a b", "a\nb", "/abs", long.as_str(), "ä"] {
            assert!(check_image_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stacks_follow_parents_and_stop_on_cycles() {
        let d = |s: &str| Digest::sha256(s.as_bytes());
        let mut p = HashMap::new();
        p.insert(d("c"), Some(d("b")));
        p.insert(d("b"), Some(d("a")));
        p.insert(d("a"), None);
        assert_eq!(stack(&d("c"), &p), [d("c"), d("b"), d("a")]);
        assert_eq!(stack(&d("x"), &p), [d("x")]);
        p.insert(d("a"), Some(d("c")));
        assert_eq!(stack(&d("c"), &p).len(), 3);
    }
}
