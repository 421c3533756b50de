//! Options of each subcommand, and the typed rows `list` returns.

use std::fmt;
use std::str::FromStr;

/// `-H`: no header, tab-separated.
pub const SCRIPTED: &str = "-H";
/// `-p`: exact numbers (bytes, seconds).
pub const PARSABLE: &str = "-p";
/// `-o`: properties to set on create/clone, or columns to print.
pub const OPT: &str = "-o";
/// `-p` on create/clone: create missing parents.
pub const PARENTS: &str = "-p";
/// `-r`: recursive.
pub const RECURSIVE: &str = "-r";
/// `-R`: recursive including dependent clones.
pub const DEPENDENTS: &str = "-R";
/// `-d`: depth limit.
pub const DEPTH: &str = "-d";
/// `-t`: type filter.
pub const TYPE: &str = "-t";
/// `-f`: force (unmount, destroy, rollback).
pub const FORCE: &str = "-f";

/// Properties to set: `(name, value)` pairs, passed as `-o name=value`.
pub type Properties = Vec<(String, String)>;

/// `zfs create` options.
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    /// `-p`: create missing parent datasets.
    pub parents: bool,
    /// `-o name=value` each.
    pub properties: Properties,
}

/// `zfs clone` options.
#[derive(Debug, Clone, Default)]
pub struct CloneOpts {
    /// `-p`: create missing parent datasets.
    pub parents: bool,
    /// `-o name=value` each.
    pub properties: Properties,
}

/// `zfs destroy` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct DestroyOpts {
    /// `-r`: children and snapshots too.
    pub recursive: bool,
    /// `-R`: also dependents outside the hierarchy (clones of its snapshots).
    pub dependents: bool,
    /// `-f`: force-unmount.
    pub force: bool,
}

impl DestroyOpts {
    /// `-r`.
    pub fn recursive() -> Self {
        DestroyOpts {
            recursive: true,
            ..Default::default()
        }
    }
}

/// `zfs rollback` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct RollbackOpts {
    /// `-r`: destroy later snapshots.
    pub destroy_later: bool,
}

/// How far `list` descends below each root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Depth {
    /// Only the roots (or everything when no root is given).
    #[default]
    Roots,
    /// At most this many levels (`-d N`; a dataset's snapshots are one level below it).
    Max(u32),
    /// Everything below (`-r`).
    All,
}

/// The type of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetType {
    /// A file system.
    Filesystem,
    /// A zvol.
    Volume,
    /// A snapshot.
    Snapshot,
    /// A bookmark (OpenZFS only).
    Bookmark,
}

impl DatasetType {
    /// The name `-t` and the `type` property use.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetType::Filesystem => "filesystem",
            DatasetType::Volume => "volume",
            DatasetType::Snapshot => "snapshot",
            DatasetType::Bookmark => "bookmark",
        }
    }
}

impl fmt::Display for DatasetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "filesystem" => DatasetType::Filesystem,
            "volume" => DatasetType::Volume,
            "snapshot" => DatasetType::Snapshot,
            "bookmark" => DatasetType::Bookmark,
            other => return Err(format!("unknown dataset type {other:?}")),
        })
    }
}

/// `zfs list` options.
#[derive(Debug, Clone, Default)]
pub struct ListOpts {
    /// Datasets to start from; empty: every pool.
    pub roots: Vec<String>,
    /// How far below the roots.
    pub depth: Depth,
    /// Types to return; empty: file systems and volumes.
    pub types: Vec<DatasetType>,
}

impl ListOpts {
    /// `root` and what is directly below it (`-d 1`: children and its own snapshots), of the
    /// given types.
    pub fn children(root: impl Into<String>, types: &[DatasetType]) -> Self {
        ListOpts {
            roots: vec![root.into()],
            depth: Depth::Max(1),
            types: types.to_vec(),
        }
    }

    pub(crate) fn effective_types(&self) -> Vec<DatasetType> {
        if self.types.is_empty() {
            vec![DatasetType::Filesystem, DatasetType::Volume]
        } else {
            self.types.clone()
        }
    }
}

/// The columns `list` reads, in this order.
pub const LIST_COLUMNS: [&str; 8] = [
    "name",
    "type",
    "used",
    "available",
    "referenced",
    "mountpoint",
    "origin",
    "creation",
];

/// One row of `zfs list -H -p -o name,type,used,available,referenced,mountpoint,origin,creation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Full name (`pool/a/b` or `pool/a@snap`).
    pub name: String,
    /// Its type.
    pub kind: DatasetType,
    /// Bytes used by it and its descendants.
    pub used: u64,
    /// Bytes available (`None` for snapshots).
    pub available: Option<u64>,
    /// Bytes referenced.
    pub referenced: u64,
    /// Mount point (`None` for snapshots, volumes and `none`; `legacy` is kept as is).
    pub mountpoint: Option<String>,
    /// The snapshot this is a clone of.
    pub origin: Option<String>,
    /// Creation time, seconds since the epoch.
    pub creation: u64,
}

/// Where a property's value comes from (`zfs get` SOURCE column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Set on this dataset.
    Local,
    /// The default.
    Default,
    /// Inherited from the named dataset.
    Inherited(String),
    /// Set at receive time.
    Received,
    /// Temporary (mount option).
    Temporary,
    /// Read-only or not applicable (`-`).
    None,
}

impl Source {
    pub(crate) fn parse(s: &str) -> Source {
        match s {
            "local" => Source::Local,
            "default" => Source::Default,
            "received" => Source::Received,
            "temporary" => Source::Temporary,
            s => match s.strip_prefix("inherited from ") {
                Some(from) => Source::Inherited(from.to_string()),
                None => Source::None,
            },
        }
    }
}

/// One row of `zfs get -H -p -o property,value,source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Property name.
    pub name: String,
    /// Value, `None` when the tool printed `-` (unset user property, not applicable).
    pub value: Option<String>,
    /// Where it comes from.
    pub source: Source,
}

/// Health of a pool (`zpool list -H -o name,health`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Pool name.
    pub name: String,
    /// `ONLINE`, `DEGRADED`, `FAULTED`, `OFFLINE`, `UNAVAIL`, `REMOVED`, …
    pub health: String,
}

impl Pool {
    /// Usable (ONLINE or DEGRADED).
    pub fn is_usable(&self) -> bool {
        matches!(self.health.as_str(), "ONLINE" | "DEGRADED")
    }
}
