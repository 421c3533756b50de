//! `storage.cfg` (proxmox.md §6.1) and container volumes on `zfspool` (real `zfs` on the test
//! pool, Proxmox's names, §6.2–6.3) and `dir` storages (size 0 only: a directory).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use crate::sim::Sim;

/// One storage definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// Storage id (`local-zfs`).
    pub id: String,
    /// Type (`dir`, `zfspool`, …).
    pub kind: String,
    /// Properties; a bare key is `1`.
    pub props: BTreeMap<String, String>,
}

impl Storage {
    /// Whether `content` lists `what`.
    pub fn has_content(&self, what: &str) -> bool {
        self.props
            .get("content")
            .is_some_and(|c| c.split(',').any(|c| c.trim() == what))
    }

    fn zfs_pool(&self) -> &str {
        self.props.get("pool").map(String::as_str).unwrap_or("")
    }

    fn mountpoint(&self) -> PathBuf {
        match self.props.get("mountpoint") {
            Some(m) => PathBuf::from(m),
            None => PathBuf::from(format!("/{}", self.zfs_pool())),
        }
    }

    /// Host path of a volume of this storage.
    pub fn path_of(&self, volname: &str) -> PathBuf {
        match self.kind.as_str() {
            "zfspool" => self.mountpoint().join(volname),
            _ => PathBuf::from(self.props.get("path").cloned().unwrap_or_default())
                .join("images")
                .join(volname),
        }
    }

    /// Host path of a `vztmpl` file of this (dir) storage.
    pub fn template_path(&self, file: &str) -> PathBuf {
        PathBuf::from(self.props.get("path").cloned().unwrap_or_default())
            .join("template/cache")
            .join(file)
    }
}

/// Parse `storage.cfg`: `<type>: <id>` headers, TAB-indented `key value` lines.
pub fn parse(text: &str) -> Vec<Storage> {
    let mut out: Vec<Storage> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with(['\t', ' ']) {
            if let Some(s) = out.last_mut() {
                let l = line.trim();
                let (k, v) = l.split_once(char::is_whitespace).unwrap_or((l, "1"));
                s.props.insert(k.to_string(), v.trim().to_string());
            }
        } else if let Some((kind, id)) = line.split_once(':') {
            out.push(Storage {
                id: id.trim().to_string(),
                kind: kind.trim().to_string(),
                props: BTreeMap::new(),
            });
        }
    }
    out
}

/// Read the node's `storage.cfg`.
pub fn load(sim: &Sim) -> Vec<Storage> {
    parse(&std::fs::read_to_string(sim.etc_pve().join("storage.cfg")).unwrap_or_default())
}

/// `storage_config`: `storage 'X' does not exist`.
pub fn find(sim: &Sim, id: &str) -> Result<Storage, String> {
    load(sim)
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| format!("storage '{id}' does not exist"))
}

/// Run `zfs` with `args`; `Err(stderr)` on failure.
pub fn zfs(args: &[&str]) -> Result<String, String> {
    let out = Command::new("zfs")
        .args(args)
        .output()
        .map_err(|e| format!("zfs: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The volume names of `vmid` on a storage (the disk counter is shared by every prefix, §6.2).
fn used_disk_numbers(st: &Storage, vmid: u32) -> Result<Vec<u32>, String> {
    let names: Vec<String> = match st.kind.as_str() {
        "zfspool" => {
            let pool = st.zfs_pool();
            zfs(&["list", "-H", "-o", "name", "-r", pool])?
                .lines()
                .filter_map(|l| l.strip_prefix(pool)?.strip_prefix('/'))
                .filter(|l| !l.contains('/'))
                .map(str::to_string)
                .collect()
        }
        _ => std::fs::read_dir(st.path_of(&vmid.to_string()))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut nums = Vec::new();
    for n in names {
        for prefix in ["vm", "base", "subvol", "basevol"] {
            let p = format!("{prefix}-{vmid}-disk-");
            if let Some(rest) = n.strip_prefix(&p) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(d) = digits.parse() {
                    nums.push(d);
                }
            }
        }
    }
    Ok(nums)
}

/// Allocate a container volume of `size_kib` (0: no quota) and return its volname.
pub fn alloc_subvol(st: &Storage, vmid: u32, size_kib: u64) -> Result<String, String> {
    let used = used_disk_numbers(st, vmid)?;
    let n = (0..1024).find(|n| !used.contains(n)).ok_or_else(|| {
        format!(
            "unable to allocate an image name for VM {vmid} in storage '{}'",
            st.id
        )
    })?;
    match st.kind.as_str() {
        "zfspool" => {
            let name = format!("subvol-{vmid}-disk-{n}");
            let ds = format!("{}/{name}", st.zfs_pool());
            let quota = if size_kib == 0 {
                "refquota=none".to_string()
            } else {
                format!("refquota={size_kib}k")
            };
            let full = [
                "create",
                "-o",
                "acltype=posixacl",
                "-o",
                "xattr=sa",
                "-o",
                &quota,
                &ds,
            ];
            if let Err(e) = zfs(&full) {
                // zfs-fuse (pool version 23) knows neither property; PVE's own command
                // would fail there, so drop them and keep everything else as PVE does it.
                if !e.contains("invalid property") {
                    return Err(e);
                }
                zfs(&["create", "-o", &quota, &ds])?;
            }
            activate(st, &name)?;
            Ok(name)
        }
        "dir" if size_kib == 0 => {
            let name = format!("{vmid}/subvol-{vmid}-disk-{n}.subvol");
            std::fs::create_dir_all(st.path_of(&name)).map_err(|e| e.to_string())?;
            Ok(name)
        }
        "dir" => Err("pve-sim: raw images on dir storages are not simulated (use size 0)".into()),
        k => Err(format!("pve-sim: storage type '{k}' is not simulated")),
    }
}

/// Whether an existing volume is there.
pub fn exists(st: &Storage, volname: &str) -> bool {
    match st.kind.as_str() {
        "zfspool" => zfs(&[
            "list",
            "-H",
            "-o",
            "name",
            &format!("{}/{volname}", st.zfs_pool()),
        ])
        .is_ok(),
        _ => st.path_of(volname).exists(),
    }
}

/// Make a volume usable (a subvol: mounted, §6.3 "activate").
pub fn activate(st: &Storage, volname: &str) -> Result<(), String> {
    if st.kind != "zfspool" {
        return Ok(());
    }
    let ds = format!("{}/{volname}", st.zfs_pool());
    if zfs(&["get", "-o", "value", "-H", "mounted", &ds])?.trim() != "yes" {
        zfs(&["mount", &ds])?;
    }
    Ok(())
}

/// Free a volume: `zfs destroy -r`, retried 6 times on "dataset is busy", "does not exist"
/// ignored (§6.3); a directory is removed.
pub fn free(st: &Storage, volname: &str) -> Result<(), String> {
    match st.kind.as_str() {
        "zfspool" => {
            let ds = format!("{}/{volname}", st.zfs_pool());
            let mut last = String::new();
            for _ in 0..6 {
                match zfs(&["destroy", "-r", &ds]) {
                    Ok(_) => return Ok(()),
                    Err(e) if e.contains("does not exist") => return Ok(()),
                    Err(e) if e.contains("busy") => {
                        last = e;
                        std::thread::sleep(std::time::Duration::from_secs(1));
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(last)
        }
        _ => match std::fs::remove_dir_all(st.path_of(volname)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
            _ => Ok(()),
        },
    }
}

/// A volume reference as written in `rootfs`/`mpN`.
#[derive(Debug, Clone, PartialEq)]
pub enum VolRef {
    /// `STORAGE:SIZE_GiB`: allocate.
    New {
        /// Storage id.
        storage: String,
        /// Size in GiB.
        gib: f64,
    },
    /// `STORAGE:VOLNAME`.
    Existing {
        /// Storage id.
        storage: String,
        /// Volume name.
        volname: String,
    },
    /// `/abs/path` (bind mount or device).
    Path(String),
}

/// Classify a volume string; a bare number means `<default_storage>:<N>`.
pub fn volref(v: &str, default_storage: &str) -> VolRef {
    let is_size = |s: &str| !s.is_empty() && s.parse::<f64>().is_ok_and(|f| f >= 0.0);
    if v.starts_with('/') {
        return VolRef::Path(v.to_string());
    }
    if is_size(v) {
        return VolRef::New {
            storage: default_storage.to_string(),
            gib: v.parse().unwrap_or(0.0),
        };
    }
    match v.split_once(':') {
        Some((s, size)) if is_size(size) => VolRef::New {
            storage: s.to_string(),
            gib: size.parse().unwrap_or(0.0),
        },
        Some((s, name)) => VolRef::Existing {
            storage: s.to_string(),
            volname: name.to_string(),
        },
        None => VolRef::Existing {
            storage: default_storage.to_string(),
            volname: v.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_zfs_install() {
        let s = parse("dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\nzfspool: local-zfs\n\tpool rpool/data\n\tsparse\n\tcontent images,rootdir\n");
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].kind.as_str(), s[0].id.as_str()), ("dir", "local"));
        assert!(s[0].has_content("vztmpl") && !s[0].has_content("rootdir"));
        assert_eq!(s[1].props["sparse"], "1");
        assert!(s[1].has_content("rootdir"));
        assert_eq!(
            s[1].path_of("subvol-200-disk-0"),
            PathBuf::from("/rpool/data/subvol-200-disk-0")
        );
        assert_eq!(
            s[0].template_path("a.tar"),
            PathBuf::from("/var/lib/vz/template/cache/a.tar")
        );
    }

    #[test]
    fn volume_references() {
        assert_eq!(
            volref("local-zfs:8", "local"),
            VolRef::New {
                storage: "local-zfs".into(),
                gib: 8.0
            }
        );
        assert_eq!(
            volref("0.5", "tank"),
            VolRef::New {
                storage: "tank".into(),
                gib: 0.5
            }
        );
        assert_eq!(
            volref("local-zfs:subvol-200-disk-0", "local"),
            VolRef::Existing {
                storage: "local-zfs".into(),
                volname: "subvol-200-disk-0".into()
            }
        );
        assert_eq!(
            volref("/srv/root", "local"),
            VolRef::Path("/srv/root".into())
        );
    }
}
