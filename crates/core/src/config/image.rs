//! The `[image_store]` and `[rootfs]` sections: where OCI images are unpacked, and where a
//! container's root file system comes from.
//!
//! ```toml
//! [image_store]
//! kind = "zfs"                        # or "dir" (the default)
//! dataset = "tank/nexcage"            # kind = "zfs": required
//! # path = "/var/lib/nexcage/images"  # kind = "dir" (this is the default)
//!
//! [rootfs]
//! source = "image-store"              # or "containerd" (the default: its snapshot mounts)
//! # dataset = "tank/nexcage-rootfs"   # zfs store: parent of the rootfs clones (this default)
//! # cli = "/usr/local/bin/nexcage"    # the CLI the shim runs to unpack (default: next to the
//! #                                   # shim binary, then PATH)
//! # pull_timeout_secs = 900           # one unpack by the CLI (this default)
//! ```
//!
//! The file keeps the values as written (so a rewritten file says what the admin wrote);
//! [`Config::image_store`] and [`Config::rootfs_source`] give the effective, typed settings.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Config;
use crate::error::{Error, Result};

/// Where the directory store lives unless `[image_store] path` says otherwise.
pub const DEFAULT_IMAGE_STORE_PATH: &str = "/var/lib/nexcage/images";

/// Longest ZFS dataset name (ZFS_MAX_DATASET_NAME_LEN, with its NUL).
const MAX_DATASET_LEN: usize = 255;

/// `[image_store]` as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageStoreConfig {
    /// `"dir"` (default) or `"zfs"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The parent dataset of the ZFS store (`kind = "zfs"` only, required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The root directory of the directory store (`kind = "dir"` only; absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// `[rootfs]` as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootfsConfig {
    /// `"containerd"` (default) or `"image-store"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// With the ZFS store: the parent dataset of the containers' rootfs clones (default
    /// `<image_store.dataset>-rootfs`; must not be inside the store's dataset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The `nexcage` CLI the shim runs to unpack an image (absolute; default: next to the shim
    /// binary, then `PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli: Option<PathBuf>,
    /// Timeout of one unpack by the CLI, in seconds (≥ 1, default 900).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_timeout_secs: Option<u64>,
}

/// Default of `[rootfs] pull_timeout_secs`.
pub const DEFAULT_PULL_TIMEOUT_SECS: u64 = 900;

/// The kind of image store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageStoreKind {
    /// Plain directories (`nexcage_image::DirStore`).
    Dir,
    /// One dataset per layer stack, root file systems as clones (`nexcage_image::ZfsStore`).
    Zfs,
}

impl ImageStoreKind {
    /// Every kind, as written in the file.
    pub const ALL: [ImageStoreKind; 2] = [ImageStoreKind::Dir, ImageStoreKind::Zfs];

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageStoreKind::Dir => "dir",
            ImageStoreKind::Zfs => "zfs",
        }
    }

    fn parse(s: &str) -> Option<ImageStoreKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ImageStoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The effective image store settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageStoreSettings {
    /// The directory store under `path`.
    Dir {
        /// Its root directory.
        path: PathBuf,
    },
    /// The ZFS store below `dataset`.
    Zfs {
        /// The parent dataset of the layer datasets.
        dataset: String,
    },
}

impl ImageStoreSettings {
    /// Which kind this is.
    pub fn kind(&self) -> ImageStoreKind {
        match self {
            ImageStoreSettings::Dir { .. } => ImageStoreKind::Dir,
            ImageStoreSettings::Zfs { .. } => ImageStoreKind::Zfs,
        }
    }
}

impl fmt::Display for ImageStoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageStoreSettings::Dir { path } => write!(f, "dir store at {}", path.display()),
            ImageStoreSettings::Zfs { dataset } => write!(f, "zfs store below {dataset}"),
        }
    }
}

/// Where a container's root file system comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RootfsSource {
    /// The mounts containerd's snapshotter prepared (`Create`'s `rootfs` field).
    #[default]
    Containerd,
    /// A root file system made by nexcage's own image store.
    ImageStore,
}

impl RootfsSource {
    /// Every source, as written in the file.
    pub const ALL: [RootfsSource; 2] = [RootfsSource::Containerd, RootfsSource::ImageStore];

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            RootfsSource::Containerd => "containerd",
            RootfsSource::ImageStore => "image-store",
        }
    }

    fn parse(s: &str) -> Option<RootfsSource> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for RootfsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn bad(origin: &str, key: &str, value: &dyn fmt::Debug, why: &str) -> Error {
    Error::invalid(format!("config {origin}: {key} = {value:?}: {why}"))
}

fn names<T: Copy>(all: &[T], f: impl Fn(T) -> &'static str) -> String {
    all.iter()
        .map(|k| format!("{:?}", f(*k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why `name` is not a ZFS dataset name nexcage accepts (the rules of `nexcage_zfs::name`:
/// `pool[/component]*`, each part of `[A-Za-z0-9_.:-]`, not `.`/`..`, not starting with `-`).
fn dataset_problem(name: &str) -> Option<&'static str> {
    if name.len() >= MAX_DATASET_LEN {
        return Some("too long");
    }
    if name.contains('@') {
        return Some("a snapshot is not a dataset");
    }
    if !name.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
        return Some("must start with the pool name (a letter first)");
    }
    for part in name.split('/') {
        if part.is_empty() {
            return Some("empty component (leading, trailing or double '/')");
        }
        if part == "." || part == ".." || part.starts_with('-') {
            return Some("component is '.', '..' or starts with '-'");
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        {
            return Some("only letters, digits and _ . : - are allowed");
        }
    }
    None
}

impl ImageStoreConfig {
    /// Whether nothing is set (the section is left out when the config is written back).
    pub fn is_empty(&self) -> bool {
        *self == ImageStoreConfig::default()
    }

    pub(super) fn validate(&self, origin: &str) -> Result<()> {
        let kind = match &self.kind {
            None => ImageStoreKind::Dir,
            Some(k) => ImageStoreKind::parse(k).ok_or_else(|| {
                let known = names(&ImageStoreKind::ALL, ImageStoreKind::as_str);
                bad(
                    origin,
                    "image_store.kind",
                    k,
                    &format!("unknown kind (known: {known})"),
                )
            })?,
        };
        match kind {
            ImageStoreKind::Zfs => {
                let Some(ds) = &self.dataset else {
                    return Err(Error::invalid(format!(
                        "config {origin}: image_store.dataset is required with image_store.kind = \"zfs\" \
                         (the parent dataset of the layers, e.g. \"tank/nexcage\")"
                    )));
                };
                if let Some(why) = dataset_problem(ds) {
                    return Err(bad(origin, "image_store.dataset", ds, why));
                }
                if let Some(p) = &self.path {
                    return Err(bad(
                        origin,
                        "image_store.path",
                        p,
                        "only used with image_store.kind = \"dir\" (the zfs store lives in its dataset)",
                    ));
                }
            }
            ImageStoreKind::Dir => {
                if let Some(ds) = &self.dataset {
                    return Err(bad(
                        origin,
                        "image_store.dataset",
                        ds,
                        "only used with image_store.kind = \"zfs\" (set kind = \"zfs\" to use it)",
                    ));
                }
                if let Some(p) = &self.path {
                    if !p.is_absolute() {
                        return Err(bad(
                            origin,
                            "image_store.path",
                            p,
                            "must be an absolute path",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl RootfsConfig {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == RootfsConfig::default()
    }

    pub(super) fn validate(&self, origin: &str, store: &ImageStoreConfig) -> Result<()> {
        if let Some(s) = &self.source {
            if RootfsSource::parse(s).is_none() {
                let known = names(&RootfsSource::ALL, RootfsSource::as_str);
                return Err(bad(
                    origin,
                    "rootfs.source",
                    s,
                    &format!("unknown source (known: {known})"),
                ));
            }
        }
        if let Some(ds) = &self.dataset {
            if let Some(why) = dataset_problem(ds) {
                return Err(bad(origin, "rootfs.dataset", ds, why));
            }
            match (store.kind.as_deref(), &store.dataset) {
                (Some("zfs"), Some(parent))
                    if ds == parent || ds.starts_with(&format!("{parent}/")) =>
                {
                    return Err(bad(
                        origin,
                        "rootfs.dataset",
                        ds,
                        "must not be inside image_store.dataset (the store refuses clones there)",
                    ));
                }
                (Some("zfs"), _) => {}
                _ => {
                    return Err(bad(
                        origin,
                        "rootfs.dataset",
                        ds,
                        "only used with image_store.kind = \"zfs\"",
                    ))
                }
            }
        }
        if let Some(p) = &self.cli {
            if !p.is_absolute() {
                return Err(bad(origin, "rootfs.cli", p, "must be an absolute path"));
            }
        }
        if self.pull_timeout_secs == Some(0) {
            return Err(bad(
                origin,
                "rootfs.pull_timeout_secs",
                &0,
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl Config {
    /// The effective image store (the config was validated: an unknown kind cannot occur, and
    /// would read as the default).
    pub fn image_store(&self) -> ImageStoreSettings {
        let s = &self.image_store;
        match s.kind.as_deref().and_then(ImageStoreKind::parse) {
            Some(ImageStoreKind::Zfs) => ImageStoreSettings::Zfs {
                dataset: s.dataset.clone().unwrap_or_default(),
            },
            _ => ImageStoreSettings::Dir {
                path: s
                    .path
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_IMAGE_STORE_PATH)),
            },
        }
    }

    /// Where container root file systems come from.
    pub fn rootfs_source(&self) -> RootfsSource {
        self.rootfs
            .source
            .as_deref()
            .and_then(RootfsSource::parse)
            .unwrap_or_default()
    }

    /// With the ZFS store, the parent dataset of rootfs clones: `[rootfs] dataset`, else
    /// `<image_store.dataset>-rootfs` (a sibling of the store, which refuses clones inside
    /// itself). `None` for the directory store.
    pub fn rootfs_dataset(&self) -> Option<String> {
        match self.image_store() {
            ImageStoreSettings::Zfs { dataset } => Some(
                self.rootfs
                    .dataset
                    .clone()
                    .unwrap_or_else(|| format!("{dataset}-rootfs")),
            ),
            ImageStoreSettings::Dir { .. } => None,
        }
    }

    /// Timeout of one unpack by the CLI (`[rootfs] pull_timeout_secs`).
    pub fn rootfs_pull_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.rootfs
                .pull_timeout_secs
                .unwrap_or(DEFAULT_PULL_TIMEOUT_SECS),
        )
    }

    /// Where the image store's lock files live: `<state_dir>/image` (a tmpfs by default, so a
    /// reboot clears stale locks).
    pub fn image_lock_dir(&self) -> PathBuf {
        self.state_dir().join("image")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};
    use std::path::Path;

    fn err(text: &str) -> String {
        let e = Config::parse(text, "/etc/nexcage/config.toml").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e.message());
        e.message().to_string()
    }

    #[test]
    fn defaults_are_the_dir_store_and_containerd_mounts() {
        let c = Config::parse("", "f").unwrap();
        assert_eq!(
            c.image_store(),
            ImageStoreSettings::Dir {
                path: PathBuf::from(DEFAULT_IMAGE_STORE_PATH)
            }
        );
        assert_eq!(c.rootfs_source(), RootfsSource::Containerd);
        assert_eq!(c.image_lock_dir(), PathBuf::from("/run/nexcage/image"));
        // An empty section is the same as none.
        let c = Config::parse("[image_store]\n[rootfs]\n", "f").unwrap();
        assert_eq!(c.image_store().kind(), ImageStoreKind::Dir);
        assert_eq!(c.rootfs_source(), RootfsSource::Containerd);
    }

    #[test]
    fn parses_the_documented_zfs_example() {
        let c = Config::parse(
            "state_dir = \"/s\"\n[image_store]\nkind = \"zfs\"\ndataset = \"tank/nexcage\"\n\
             [rootfs]\nsource = \"image-store\"\n",
            "f",
        )
        .unwrap();
        assert_eq!(
            c.image_store(),
            ImageStoreSettings::Zfs {
                dataset: "tank/nexcage".into()
            }
        );
        assert_eq!(c.rootfs_source(), RootfsSource::ImageStore);
        assert_eq!(c.image_lock_dir(), Path::new("/s/image"));
        assert_eq!(c.image_store().to_string(), "zfs store below tank/nexcage");
    }

    #[test]
    fn dir_store_with_a_path() {
        let c = Config::parse(
            "[image_store]\nkind = \"dir\"\npath = \"/srv/images\"\n",
            "f",
        )
        .unwrap();
        assert_eq!(
            c.image_store(),
            ImageStoreSettings::Dir {
                path: "/srv/images".into()
            }
        );
        // kind may be left out for the dir store.
        let c = Config::parse("[image_store]\npath = \"/srv/i\"\n", "f").unwrap();
        assert_eq!(c.image_store().kind(), ImageStoreKind::Dir);
    }

    #[test]
    fn bad_kind_names_file_key_and_value() {
        assert_eq!(
            err("[image_store]\nkind = \"btrfs\"\n"),
            "config /etc/nexcage/config.toml: image_store.kind = \"btrfs\": unknown kind \
             (known: \"dir\", \"zfs\")"
        );
    }

    #[test]
    fn bad_source_names_file_key_and_value() {
        assert_eq!(
            err("[rootfs]\nsource = \"snapshotter\"\n"),
            "config /etc/nexcage/config.toml: rootfs.source = \"snapshotter\": unknown source \
             (known: \"containerd\", \"image-store\")"
        );
    }

    #[test]
    fn zfs_without_dataset_is_refused() {
        let m = err("[image_store]\nkind = \"zfs\"\n");
        assert!(
            m.starts_with("config /etc/nexcage/config.toml: image_store.dataset is required")
                && m.contains("kind = \"zfs\""),
            "{m}"
        );
    }

    #[test]
    fn bad_dataset_names_are_refused() {
        for (ds, why) in [
            ("/tank/x", "must start with the pool name"),
            ("tank//x", "empty component"),
            ("tank/x/", "empty component"),
            ("tank/x@snap", "a snapshot is not a dataset"),
            ("tank/-o", "starts with '-'"),
            ("tank/../x", "'..'"),
            ("tank/a b", "only letters"),
        ] {
            let m = err(&format!(
                "[image_store]\nkind = \"zfs\"\ndataset = \"{ds}\"\n"
            ));
            assert!(
                m.contains(&format!("image_store.dataset = {ds:?}")) && m.contains(why),
                "{ds}: {m}"
            );
        }
        let long = format!("tank/{}", "a".repeat(300));
        assert!(err(&format!(
            "[image_store]\nkind = \"zfs\"\ndataset = \"{long}\"\n"
        ))
        .contains("too long"));
    }

    #[test]
    fn relative_path_names_key_and_value() {
        assert_eq!(
            err("[image_store]\npath = \"images\"\n"),
            "config /etc/nexcage/config.toml: image_store.path = \"images\": must be an absolute path"
        );
    }

    #[test]
    fn keys_of_the_other_kind_are_refused() {
        let m = err("[image_store]\ndataset = \"tank/n\"\n");
        assert!(
            m.contains(
                "image_store.dataset = \"tank/n\": only used with image_store.kind = \"zfs\""
            ),
            "{m}"
        );
        let m = err("[image_store]\nkind = \"zfs\"\ndataset = \"tank/n\"\npath = \"/x\"\n");
        assert!(
            m.contains("image_store.path = \"/x\": only used with image_store.kind = \"dir\""),
            "{m}"
        );
    }

    #[test]
    fn unknown_keys_in_the_new_sections_are_refused() {
        let m = err("[image_store]\nkind = \"dir\"\npaht = \"/x\"\n");
        assert!(
            m.contains("/etc/nexcage/config.toml") && m.contains("paht"),
            "{m}"
        );
        let m = err("[rootfs]\nsorce = \"containerd\"\n");
        assert!(m.contains("sorce"), "{m}");
        let m = err("[image_store]\nkind = 3\n");
        assert!(m.contains("kind") && m.contains('3'), "{m}");
    }

    #[test]
    fn rootfs_keys_are_checked_and_defaulted() {
        let c = Config::parse(
            "[image_store]\nkind = \"zfs\"\ndataset = \"tank/n\"\n[rootfs]\nsource = \"image-store\"\n",
            "f",
        )
        .unwrap();
        assert_eq!(c.rootfs_dataset().as_deref(), Some("tank/n-rootfs"));
        assert_eq!(c.rootfs_pull_timeout().as_secs(), DEFAULT_PULL_TIMEOUT_SECS);
        let c = Config::parse(
            "[image_store]\nkind = \"zfs\"\ndataset = \"tank/n\"\n[rootfs]\ndataset = \"tank/ct\"\n\
             cli = \"/opt/nexcage\"\npull_timeout_secs = 5\n",
            "f",
        )
        .unwrap();
        assert_eq!(c.rootfs_dataset().as_deref(), Some("tank/ct"));
        assert_eq!(c.rootfs.cli.as_deref(), Some(Path::new("/opt/nexcage")));
        assert_eq!(c.rootfs_pull_timeout().as_secs(), 5);
        assert_eq!(Config::parse("", "f").unwrap().rootfs_dataset(), None);
        assert_eq!(
            err("[rootfs]\ncli = \"nexcage\"\n"),
            "config /etc/nexcage/config.toml: rootfs.cli = \"nexcage\": must be an absolute path"
        );
        assert!(err("[rootfs]\ndataset = \"/x\"\n").contains("rootfs.dataset = \"/x\""));
        assert!(err("[rootfs]\npull_timeout_secs = 0\n")
            .contains("rootfs.pull_timeout_secs = 0: must be at least 1"));
        let m = err(
            "[image_store]\nkind = \"zfs\"\ndataset = \"tank/n\"\n[rootfs]\ndataset = \"tank/n/ct\"\n",
        );
        assert!(
            m.contains("rootfs.dataset = \"tank/n/ct\": must not be inside"),
            "{m}"
        );
        let m = err("[rootfs]\ndataset = \"tank/ct\"\n");
        assert!(
            m.contains("rootfs.dataset = \"tank/ct\": only used with"),
            "{m}"
        );
    }

    #[test]
    fn round_trips_and_empty_sections_are_not_written() {
        let c = Config::parse(
            "[image_store]\nkind = \"zfs\"\ndataset = \"tank/n\"\n[rootfs]\nsource = \"containerd\"\n",
            "f",
        )
        .unwrap();
        let text = c.to_toml();
        assert_eq!(Config::parse(&text, "f2").unwrap(), c);
        let text = Config::default().to_toml();
        assert!(
            !text.contains("image_store") && !text.contains("rootfs"),
            "{text}"
        );
    }
}
