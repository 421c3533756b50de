//! `mounts`, `linux.maskedPaths`, `linux.readonlyPaths` and `linux.devices` → `lxc.mount.entry`
//! (plus `lxc.autodev`, `lxc.pty.max` and `lxc.mount.auto` for /dev, /dev/pts and /sys/fs/cgroup).
//!
//! LXC mounts the entries in order, relative to the rootfs, after its own /dev tmpfs; a spec
//! tmpfs on /dev is mounted over that one and LXC then fills the standard device nodes into it.

use std::path::{Path, PathBuf};

use nexcage_core::Result;
use oci_spec::runtime::{LinuxDeviceType, Mount};

use super::host::{Host, Kind};
use super::lines::{clean_absolute, fstab_escape, refuse, relative, Conf};
use super::Input;

/// Mount flags LXC understands (passed to mount(2) as flags, not data).
const FLAGS: &[&str] = &[
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "relatime",
    "norelatime",
    "noatime",
    "atime",
    "strictatime",
    "nostrictatime",
    "nodiratime",
    "diratime",
    "sync",
    "async",
    "dirsync",
    "lazytime",
    "nolazytime",
    "defaults",
];
/// Propagation that LXC can honour: its mounts are not linked to the host's, so only private.
const PROPAGATION: &[&str] = &["private", "rprivate"];
/// Filesystem data options accepted per type.
fn data_ok(typ: &str, opt: &str) -> bool {
    let key = opt.split_once('=').map_or(opt, |(k, _)| k);
    match typ {
        "tmpfs" => matches!(
            key,
            "mode" | "size" | "uid" | "gid" | "nr_inodes" | "nr_blocks" | "huge" | "noswap"
        ),
        "proc" => matches!(key, "hidepid" | "subset" | "gid"),
        _ => false,
    }
}

/// Write every mount-related line.
pub fn write(input: &Input, rootfs: &Path, host: &dyn Host, c: &mut Conf) -> Result<()> {
    c.set("lxc.autodev", "1", "mounts")?;
    let spec = input.spec;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        mount(i, m, input.bundle, host, c)?;
    }
    let linux = spec.linux().as_ref();
    for (i, p) in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("linux.maskedPaths[{i}]");
        let path = checked_path(p, &field)?;
        match kind_in_container(&path, rootfs, host) {
            None => {}
            Some(Kind::Dir) => entry(c, "tmpfs", &path, "tmpfs", &["ro".into()], &field)?,
            Some(Kind::File) => entry(c, "/dev/null", &path, "none", &["bind".into()], &field)?,
        }
    }
    let mnt = input.paths.rootfs_mount();
    for (i, p) in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("linux.readonlyPaths[{i}]");
        let path = checked_path(p, &field)?;
        if kind_in_container(&path, rootfs, host).is_some() {
            // The source is the path inside the mounted rootfs: a bind of the path onto itself.
            let src = mnt.join(relative(&path)).display().to_string();
            entry(
                c,
                &src,
                &path,
                "none",
                &["rbind".into(), "ro".into()],
                &field,
            )?;
        }
    }
    devices(input, host, c)
}

fn checked_path(p: &str, field: &str) -> Result<PathBuf> {
    let path = PathBuf::from(p);
    if !clean_absolute(&path) {
        return Err(refuse(field, format!("{p:?} must be an absolute path")));
    }
    Ok(path)
}

/// What `path` is inside the container: /proc and /sys are the host kernel's, anything else is
/// looked up in the rootfs. None: it does not exist (runc skips those too).
fn kind_in_container(path: &Path, rootfs: &Path, host: &dyn Host) -> Option<Kind> {
    if path.starts_with("/proc") || path.starts_with("/sys") {
        host.kind(path)
    } else {
        host.kind(&rootfs.join(relative(path)))
    }
}

fn entry(
    c: &mut Conf,
    src: &str,
    dest: &Path,
    typ: &str,
    opts: &[String],
    field: &str,
) -> Result<()> {
    let opts = if opts.is_empty() {
        "defaults".to_string()
    } else {
        opts.join(",")
    };
    let line = format!(
        "{} {} {} {} 0 0",
        fstab_escape(src),
        fstab_escape(&relative(dest)),
        typ,
        opts
    );
    c.set("lxc.mount.entry", &line, field)
}

fn mount(i: usize, m: &Mount, bundle: &Path, host: &dyn Host, c: &mut Conf) -> Result<()> {
    let field = format!("mounts[{i}]");
    let dest = m.destination();
    if !clean_absolute(dest) {
        return Err(refuse(
            format!("{field}.destination"),
            format!("{dest:?} must be an absolute path without . or .."),
        ));
    }
    if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
        return Err(refuse(&field, "idmapped mounts are not supported"));
    }
    let typ = m.typ().as_deref().unwrap_or("");
    let opts = m.options().clone().unwrap_or_default();
    let is_bind = typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
    if is_bind {
        return bind(&field, m, &opts, bundle, host, c);
    }
    let ofield = format!("{field}.options");
    match (typ, dest.to_str().unwrap_or("")) {
        ("devpts", "/dev/pts") => {
            let mut max = "1024".to_string();
            for o in &opts {
                match o.as_str() {
                    "nosuid" | "noexec" | "newinstance" | "ptmxmode=0666" | "ptmxmode=666" | "mode=0620"
                    | "mode=620" | "gid=5" | "rw" | "relatime" => {}
                    o if o.starts_with("max=") => max = o["max=".len()..].to_string(),
                    o => return Err(refuse(&ofield, format!("{o:?}: LXC mounts devpts with newinstance,ptmxmode=0666,mode=0620,gid=5"))),
                }
            }
            c.set("lxc.pty.max", &max, &ofield)
        }
        ("devpts", _) => Err(refuse(&field, "devpts is only supported on /dev/pts")),
        ("cgroup" | "cgroup2", "/sys/fs/cgroup") => {
            let mut ro = false;
            for o in &opts {
                match o.as_str() {
                    "ro" => ro = true,
                    "rw" | "nosuid" | "noexec" | "nodev" | "relatime" => {}
                    o => {
                        return Err(refuse(
                            &ofield,
                            format!("{o:?} is not supported for the cgroup mount"),
                        ))
                    }
                }
            }
            c.set(
                "lxc.mount.auto",
                if ro {
                    "cgroup:ro:force"
                } else {
                    "cgroup:rw:force"
                },
                &field,
            )
        }
        ("cgroup" | "cgroup2", _) => Err(refuse(
            &field,
            "a cgroup filesystem is only supported on /sys/fs/cgroup",
        )),
        ("proc" | "sysfs" | "mqueue" | "tmpfs", _) => {
            let mut out = Vec::new();
            for o in &opts {
                if FLAGS.contains(&o.as_str()) || data_ok(typ, o) {
                    out.push(o.clone());
                } else {
                    return Err(refuse(&ofield, format!("{o:?} is not supported for {typ}")));
                }
            }
            if dest != Path::new("/dev") {
                out.push("create=dir".into());
            }
            let src = m
                .source()
                .as_ref()
                .map_or(typ.to_string(), |s| s.display().to_string());
            entry(c, &src, dest, typ, &out, &field)
        }
        (other, _) => Err(refuse(
            format!("{field}.type"),
            format!(
                "{other:?} is not supported (bind, tmpfs, proc, sysfs, mqueue, devpts, cgroup are)"
            ),
        )),
    }
}

fn bind(
    field: &str,
    m: &Mount,
    opts: &[String],
    bundle: &Path,
    host: &dyn Host,
    c: &mut Conf,
) -> Result<()> {
    let src = m
        .source()
        .as_ref()
        .ok_or_else(|| refuse(format!("{field}.source"), "a bind mount needs a source"))?;
    let src = if src.is_absolute() {
        src.clone()
    } else {
        bundle.join(src)
    };
    let kind = match host.kind(&src) {
        Some(k) => k,
        None if host.strict() => {
            return Err(refuse(
                format!("{field}.source"),
                format!("{} does not exist", src.display()),
            ))
        }
        None => Kind::Dir,
    };
    let mut out = Vec::new();
    let mut recursive = false;
    for o in opts {
        match o.as_str() {
            "bind" => {}
            "rbind" => recursive = true,
            o if FLAGS.contains(&o) || PROPAGATION.contains(&o) => out.push(o.to_string()),
            o @ ("shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable") => {
                return Err(refuse(
                    format!("{field}.options"),
                    format!("{o:?}: LXC's mounts are not linked to the host's, only private propagation is possible"),
                ))
            }
            o => return Err(refuse(format!("{field}.options"), format!("{o:?} is not supported for a bind mount"))),
        }
    }
    out.insert(0, if recursive { "rbind" } else { "bind" }.to_string());
    out.push(
        if kind == Kind::Dir {
            "create=dir"
        } else {
            "create=file"
        }
        .to_string(),
    );
    entry(
        c,
        &src.display().to_string(),
        m.destination(),
        "none",
        &out,
        field,
    )
}

/// `linux.devices`: bind the host's node (found through /sys/dev) and allow it in the devices
/// cgroup, as runc allows the devices it creates.
fn devices(input: &Input, host: &dyn Host, c: &mut Conf) -> Result<()> {
    let list = input
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let prefix = if host.cgroup2() {
        "lxc.cgroup2"
    } else {
        "lxc.cgroup"
    };
    for (i, d) in list.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        if !clean_absolute(d.path()) {
            return Err(refuse(format!("{field}.path"), "must be an absolute path"));
        }
        let (block, letter) = match d.typ() {
            LinuxDeviceType::B => (true, 'b'),
            LinuxDeviceType::C | LinuxDeviceType::U => (false, 'c'),
            other => {
                return Err(refuse(
                    format!("{field}.type"),
                    format!("{other:?} devices cannot be passed through"),
                ))
            }
        };
        let node = host.device(block, d.major(), d.minor());
        let src = match node {
            Some(n) => {
                let checks = [
                    ("fileMode", d.file_mode().map(|m| m & 0o7777), n.mode),
                    ("uid", d.uid(), n.uid),
                    ("gid", d.gid(), n.gid),
                ];
                for (name, want, have) in checks {
                    if want.is_some_and(|w| w != have) {
                        return Err(refuse(
                            format!("{field}.{name}"),
                            format!(
                                "{} is passed through as a bind mount and has {name} {have:o}",
                                n.path.display()
                            ),
                        ));
                    }
                }
                n.path.display().to_string()
            }
            None if host.strict() => {
                return Err(refuse(
                    &field,
                    format!(
                        "no host device node {letter} {}:{} to pass through",
                        d.major(),
                        d.minor()
                    ),
                ))
            }
            None => "/dev/null".to_string(),
        };
        entry(
            c,
            &src,
            d.path(),
            "none",
            &["bind".into(), "create=file".into()],
            &field,
        )?;
        c.set(
            &format!("{prefix}.devices.allow"),
            &format!("{letter} {}:{} rwm", d.major(), d.minor()),
            &field,
        )?;
    }
    Ok(())
}
