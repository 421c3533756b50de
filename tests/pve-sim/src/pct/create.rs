//! `pct create <vmid> <ostemplate> [options]` (proxmox.md §2.1): quorum, VMID, storage and
//! template checks before the "fork"; then a config holding only `lock: create`, the volume, the
//! extraction with the real `tar`, and the final config; on failure everything is removed and
//! the error is `unable to create CT <vmid> - <err>`.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use super::{conf_path, power, save};
use crate::args::{parse, Parsed, Spec};
use crate::conf::Conf;
use crate::propstr::{canonical_net, format_size, PropStr};
use crate::schema::{create_extra, ct_key, Ty};
use crate::sim::{exists_msg, Failure, Sim};
use crate::storage::{self, Storage, VolRef};
use crate::Res;

const KNOWN_OSTYPES: &[&str] = &[
    "debian",
    "devuan",
    "ubuntu",
    "centos",
    "fedora",
    "opensuse",
    "archlinux",
    "alpine",
    "gentoo",
    "nixos",
];

/// `pct create`.
pub fn run(sim: &Sim, args: &[String]) -> Res {
    let spec = Spec {
        tool: "pct",
        cmd: "create",
        positional: &[("vmid", Ty::Vmid), ("ostemplate", Ty::Str(255))],
        extra_args: false,
        opt: &|k| ct_key(k).or_else(|| create_extra(k)),
    };
    let p = parse(&spec, args)?;
    sim.check_quorum()?;
    let vmid = p.vmid();
    for unsupported in ["restore", "force", "unique"] {
        if p.flag(unsupported, false) {
            return Err(Failure::die(format!(
                "pve-sim: --{unsupported} is not simulated"
            )));
        }
    }
    sim.check_vmid_unused(vmid)?;
    let default_storage = p.get("storage").unwrap_or("local").to_string();
    let rootfs_arg = p
        .get("rootfs")
        .map_or(format!("{default_storage}:4"), str::to_string);
    let rootfs = PropStr::parse(&rootfs_arg, Some("volume"))
        .map_err(|e| Failure::params(&[("rootfs".into(), e)], &spec.usage()))?;
    let vol = storage::volref(rootfs.default.as_deref().unwrap_or(""), &default_storage);
    let st = match &vol {
        VolRef::New { storage: s, .. } | VolRef::Existing { storage: s, .. } => {
            let st = storage::find(sim, s).map_err(Failure::die)?;
            if !st.has_content("rootdir") {
                let e = format!("storage '{s}' does not support container directories");
                return Err(Failure::params(&[("storage".into(), e)], &spec.usage()));
            }
            Some(st)
        }
        VolRef::Path(_) => None,
    };
    let template = template_path(sim, &p.pos[1])?;
    let path = conf_path(sim, vmid);
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| f.write_all(b"lock: create\n"));
    if let Err(e) = created {
        let msg = if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists_msg(vmid, true, &sim.node)
        } else {
            e.to_string()
        };
        return Err(Failure::die(format!("unable to create CT {vmid} - {msg}")));
    }
    let mut allocated: Option<(Storage, String)> = None;
    match worker(
        vmid,
        &p,
        rootfs,
        &vol,
        st.as_ref(),
        &template,
        &mut allocated,
    ) {
        Ok(conf) => save(sim, vmid, &conf)?,
        Err(e) => {
            if let Some((st, name)) = allocated {
                let _ = storage::free(&st, &name);
            }
            let _ = std::fs::remove_file(&path);
            return Err(Failure::die(format!("unable to create CT {vmid} - {e}")));
        }
    }
    if p.flag("start", false) {
        // A failed nested start is printed but does not fail create (§2.1).
        if let Err(f) = power::start_ct(sim, vmid, false) {
            print!("{}", f.stderr);
        }
    }
    Ok(0)
}

fn template_path(sim: &Sim, t: &str) -> Result<PathBuf, Failure> {
    if t == "-" {
        return Err(Failure::die("pve-sim: restore from stdin is not simulated"));
    }
    if t.starts_with('/') {
        return Ok(PathBuf::from(t));
    }
    let (sid, volname) = t
        .split_once(':')
        .ok_or_else(|| Failure::die(format!("unable to parse volume ID '{t}'")))?;
    let st = storage::find(sim, sid).map_err(Failure::die)?;
    match volname.strip_prefix("vztmpl/") {
        Some(file) if st.has_content("vztmpl") => Ok(st.template_path(file)),
        _ => Err(Failure::die(format!(
            "unable to use volume {t} - content type needs to be 'vztmpl'"
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
fn worker(
    vmid: u32,
    p: &Parsed,
    mut rootfs: PropStr,
    vol: &VolRef,
    st: Option<&Storage>,
    template: &std::path::Path,
    allocated: &mut Option<(Storage, String)>,
) -> Result<Conf, String> {
    let host_path = match (vol, st) {
        (VolRef::New { gib, .. }, Some(st)) => {
            let kib = (gib * 1024.0 * 1024.0).round() as u64;
            let name = storage::alloc_subvol(st, vmid, kib)?;
            *allocated = Some((st.clone(), name.clone()));
            rootfs.default = Some(format!("{}:{name}", st.id));
            rootfs.props.insert("size".into(), format_size(kib * 1024));
            st.path_of(&name)
        }
        (VolRef::Existing { volname, .. }, Some(st)) => {
            if !storage::exists(st, volname) {
                return Err(format!("volume '{}:{volname}' does not exist", st.id));
            }
            storage::activate(st, volname)?;
            st.path_of(volname)
        }
        (VolRef::Path(p), _) => PathBuf::from(p),
        _ => return Err("pve-sim: bad rootfs".into()),
    };
    println!("extracting archive '{}'", template.display());
    let out = Command::new("tar")
        .arg("-xpf")
        .arg(template)
        .arg("-C")
        .arg(&host_path)
        .arg("--totals")
        .output()
        .map_err(|e| format!("tar: {e}"))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    print!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!(
            "command 'tar xpf {} --totals' failed: exit code {}",
            template.display(),
            out.status.code().unwrap_or(-1)
        ));
    }
    let mut conf = Conf::default();
    let keys = &mut conf.main.keys;
    for (k, v) in &p.opts {
        if ct_key(k).is_some() && k != "rootfs" && k != "unprivileged" && !k.starts_with("unused") {
            let v = if k.starts_with("net") {
                canonical_net(v)?
            } else {
                v.clone()
            };
            keys.insert(k.clone(), v);
        }
    }
    keys.insert("rootfs".into(), rootfs.print(&[]));
    if p.flag("unprivileged", true) {
        keys.insert("unprivileged".into(), "1".into());
    }
    keys.entry("arch".into()).or_insert_with(|| "amd64".into());
    keys.entry("hostname".into())
        .or_insert_with(|| format!("CT{vmid}"));
    keys.entry("memory".into()).or_insert_with(|| "512".into());
    keys.entry("swap".into()).or_insert_with(|| "512".into());
    if !keys.contains_key("ostype") {
        let os = detect_ostype(&host_path)?;
        keys.insert("ostype".into(), os);
    }
    Ok(conf)
}

/// OS detection from `/etc/os-release`: a missing file means `unmanaged` (with a warning), an
/// unknown ID is fatal.
fn detect_ostype(root: &std::path::Path) -> Result<String, String> {
    let Ok(text) = std::fs::read_to_string(root.join("etc/os-release")) else {
        println!("WARN: /etc/os-release file not found and autodetection failed, falling back to 'unmanaged'");
        return Ok("unmanaged".into());
    };
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("ID="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default();
    if KNOWN_OSTYPES.contains(&id.as_str()) {
        Ok(id)
    } else {
        Err("unable to detect OS distribution".into())
    }
}
