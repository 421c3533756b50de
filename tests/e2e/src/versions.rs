//! The containerd release series under test, `$E2E_CONTAINERD`: `1.6` (default, Debian 12's
//! package in /usr/bin), `1.7` or `2.1`. 1.7 and 2.1 are unpacked by `tests/fetch-containerd.sh`
//! into `/var/cache/nexcage-tests/containerd-<series>/usr/bin` (`tests/run.sh` calls it);
//! `$E2E_CONTAINERD_BIN` overrides that directory. Every `containerd` and `ctr` the harness runs
//! comes from there, so each series is driven by its own client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A containerd release series the suite supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// 1.6 (Debian 12), config version 2.
    V1_6,
    /// 1.7 (Debian 13), config version 2.
    V1_7,
    /// 2.1 (Debian unstable), config version 3, CRI split into several plugins.
    V2_1,
}

impl Series {
    /// `1.6`, `1.7` or `2.1`.
    pub fn name(self) -> &'static str {
        match self {
            Series::V1_6 => "1.6",
            Series::V1_7 => "1.7",
            Series::V2_1 => "2.1",
        }
    }

    /// Major version (1 or 2).
    pub fn major(self) -> u32 {
        match self {
            Series::V1_6 | Series::V1_7 => 1,
            Series::V2_1 => 2,
        }
    }

    /// Whether this is containerd 2.x.
    pub fn is_v2(self) -> bool {
        self.major() >= 2
    }
}

/// The series under test (`$E2E_CONTAINERD`); panics on an unknown value.
pub fn series() -> Series {
    static S: OnceLock<Series> = OnceLock::new();
    *S.get_or_init(|| {
        let v = std::env::var("E2E_CONTAINERD").unwrap_or_default();
        match v.trim() {
            "" | "1.6" => Series::V1_6,
            "1.7" => Series::V1_7,
            "2.1" | "2" => Series::V2_1,
            other => panic!("E2E_CONTAINERD={other:?}: supported are 1.6 (default), 1.7 and 2.1"),
        }
    })
}

/// Where `tests/fetch-containerd.sh` unpacks a series.
pub fn cache_dir(s: Series) -> PathBuf {
    let root = std::env::var_os("NEXCAGE_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/nexcage-tests"));
    root.join(format!("containerd-{}", s.name()))
}

/// Directory holding `containerd` and `ctr` of the series under test, or `None` for 1.6 without
/// `$E2E_CONTAINERD_BIN` (then both come from PATH).
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("E2E_CONTAINERD_BIN").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    match series() {
        Series::V1_6 => None,
        s => Some(cache_dir(s).join("usr/bin")),
    }
}

fn program(name: &str) -> PathBuf {
    match bin_dir() {
        Some(d) => d.join(name),
        None => crate::prereq::which(name).unwrap_or_else(|| PathBuf::from(name)),
    }
}

/// The `containerd` binary of the series under test.
pub fn containerd_bin() -> PathBuf {
    program("containerd")
}

/// The `ctr` binary of the series under test.
pub fn ctr_bin() -> PathBuf {
    program("ctr")
}

/// A `Command` running the series' `ctr`.
pub fn ctr_command() -> Command {
    Command::new(ctr_bin())
}

/// What is missing for the series under test (for [`crate::prereq::check`]).
pub fn missing() -> Vec<String> {
    let s = series();
    let Some(dir) = bin_dir() else {
        // 1.6 from PATH: prereq checks the programs.
        return Vec::new();
    };
    ["containerd", "ctr"]
        .iter()
        .filter(|b| !is_file(&dir.join(b)))
        .map(|b| {
            format!(
                "{} (containerd {} for E2E_CONTAINERD={}): run `tests/fetch-containerd.sh {}` \
                 (tests/run.sh does), or point E2E_CONTAINERD_BIN at its bin directory",
                dir.join(b).display(),
                s.name(),
                s.name(),
                s.name()
            )
        })
        .collect()
}

fn is_file(p: &Path) -> bool {
    p.is_file()
}
