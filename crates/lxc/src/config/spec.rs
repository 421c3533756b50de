//! Spec-level sections: what is refused outright, namespaces, the cgroup path and the rootfs
//! settings applied by the mount hook.

use nexcage_core::Result;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::lines::{clean_absolute, refuse, Conf};
use super::{CgroupDirs, MONITOR_CGROUP_ROOT};

pub(super) fn unsupported_sections(spec: &Spec) -> Result<()> {
    let hooks = spec.hooks().as_ref();
    let any_hook = hooks.is_some_and(|h| {
        [
            h.prestart(),
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
            h.poststart(),
            h.poststop(),
        ]
        .iter()
        .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
    });
    if any_hook {
        return Err(refuse("hooks", "OCI hooks are not supported"));
    }
    if let Some(d) = spec.domainname().as_ref().filter(|d| !d.is_empty()) {
        return Err(refuse(
            "domainname",
            format!("{d:?}: LXC cannot set a NIS domain name"),
        ));
    }
    let other = [
        ("solaris", spec.solaris().is_some()),
        ("windows", spec.windows().is_some()),
        ("vm", spec.vm().is_some()),
        ("zos", spec.zos().is_some()),
        ("uidMappings", spec.uid_mappings().is_some()),
        ("gidMappings", spec.gid_mappings().is_some()),
    ];
    if let Some((name, _)) = other.iter().find(|(_, set)| *set) {
        return Err(refuse(name, "is not supported on Linux"));
    }
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let linux_other = [
        (
            "linux.uidMappings",
            linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()),
        ),
        (
            "linux.gidMappings",
            linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty()),
        ),
        (
            "linux.netDevices",
            linux.net_devices().as_ref().is_some_and(|m| !m.is_empty()),
        ),
        ("linux.intelRdt", linux.intel_rdt().is_some()),
        ("linux.memoryPolicy", linux.memory_policy().is_some()),
        (
            "linux.timeOffsets",
            linux.time_offsets().as_ref().is_some_and(|m| !m.is_empty()),
        ),
        (
            "linux.mountLabel",
            linux.mount_label().as_ref().is_some_and(|m| !m.is_empty()),
        ),
    ];
    if let Some((name, _)) = linux_other.iter().find(|(_, set)| *set) {
        return Err(refuse(name, "is not supported"));
    }
    if let Some(p) = linux.personality() {
        let plain = matches!(
            p.domain(),
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux
        ) && p.flags().as_ref().is_none_or(|f| f.is_empty());
        if !plain {
            return Err(refuse(
                "linux.personality",
                "only LINUX without flags is supported",
            ));
        }
    }
    Ok(())
}

/// Write the namespace lines; returns the namespaces the container does not share with the host
/// (new or joined), by their `/proc/<pid>/ns` names.
pub(super) fn namespaces(spec: &Spec, c: &mut Conf) -> Result<Vec<&'static str>> {
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut clone = Vec::new();
    let mut shares = Vec::new();
    let mut uts = None;
    let mut mount = false;
    for (i, n) in list.iter().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        let name = match n.typ() {
            LinuxNamespaceType::Mount => "mnt",
            LinuxNamespaceType::Pid => "pid",
            LinuxNamespaceType::Network => "net",
            LinuxNamespaceType::Ipc => "ipc",
            LinuxNamespaceType::Uts => "uts",
            LinuxNamespaceType::Cgroup => "cgroup",
            LinuxNamespaceType::User => {
                return Err(refuse(field, "user namespaces are not supported yet"))
            }
            LinuxNamespaceType::Time => {
                return Err(refuse(field, "time namespaces are not supported"))
            }
        };
        if clone.contains(&name) || shares.iter().any(|(s, _)| *s == name) {
            return Err(refuse(field, format!("namespace {name} is listed twice")));
        }
        match n.path() {
            None => clone.push(name),
            Some(_) if name == "mnt" => {
                return Err(refuse(field, "LXC cannot join an existing mount namespace"))
            }
            Some(p) => {
                if !clean_absolute(p) {
                    return Err(refuse(field, format!("path {p:?} must be absolute")));
                }
                shares.push((name, p.display().to_string()));
            }
        }
        if name == "mnt" {
            mount = true;
        }
        if name == "uts" {
            uts = Some(n.path().is_none());
        }
    }
    if !mount {
        return Err(refuse(
            "linux.namespaces",
            "must include a new mount namespace (LXC always creates one)",
        ));
    }
    if let Some(h) = spec.hostname().as_ref().filter(|h| !h.is_empty()) {
        match uts {
            Some(true) => c.set("lxc.uts.name", h, "hostname")?,
            Some(false) => {
                return Err(refuse(
                    "hostname",
                    "LXC does not set the hostname of a joined uts namespace",
                ))
            }
            None => return Err(refuse("hostname", "needs a uts namespace")),
        }
    }
    c.set("lxc.namespace.clone", &clone.join(" "), "linux.namespaces")?;
    for (name, path) in &shares {
        c.set(
            &format!("lxc.namespace.share.{name}"),
            path,
            "linux.namespaces",
        )?;
    }
    // A new network namespace gets only loopback; otherwise the host's or the joined one is used.
    let net = if clone.contains(&"net") {
        "empty"
    } else {
        "none"
    };
    c.set("lxc.net.0.type", net, "linux.namespaces")?;
    Ok(clone
        .iter()
        .copied()
        .chain(shares.iter().map(|(n, _)| *n))
        .collect())
}

pub(super) fn cgroup_dirs(spec: &Spec, namespace: &str, id: &str) -> Result<CgroupDirs> {
    let path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let container = match path {
        None => format!("nexcage/{namespace}/{id}"),
        Some(p) => {
            let s = p.to_string_lossy();
            if s.contains(':') {
                return Err(refuse(
                    "linux.cgroupsPath",
                    format!("{s:?} is a systemd cgroup driver path; use the cgroupfs driver"),
                ));
            }
            if !clean_absolute(&p) || s.trim_matches('/').is_empty() {
                return Err(refuse(
                    "linux.cgroupsPath",
                    format!("{s:?} must be an absolute path below the cgroup root"),
                ));
            }
            s.trim_matches('/').to_string()
        }
    };
    Ok(CgroupDirs {
        container,
        monitor: format!("{MONITOR_CGROUP_ROOT}/{namespace}/{id}"),
    })
}

/// The `lxc.hook.mount` script: runs in the container's mount namespace after every mount entry,
/// before pivot_root, so a read-only rootfs can still receive mount points.
pub(super) fn mount_hook(spec: &Spec, readonly: bool) -> Result<Option<String>> {
    let prop = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    let make_private = match prop.as_str() {
        "" => false,
        "private" | "rprivate" => true,
        other => {
            return Err(refuse(
                "linux.rootfsPropagation",
                format!("{other:?}: LXC's rootfs is not linked to the host's mounts, only private is possible"),
            ))
        }
    };
    if !readonly && !make_private {
        return Ok(None);
    }
    let mut s = String::from(
        "#!/bin/sh\n# written by nexcage: rootfs settings applied after LXC's mounts\nset -e\n",
    );
    if make_private {
        s.push_str("mount --make-rprivate \"$LXC_ROOTFS_MOUNT\"\n");
    }
    if readonly {
        s.push_str("mount -o remount,bind,ro \"$LXC_ROOTFS_MOUNT\"\n");
    }
    Ok(Some(s))
}

/// `linux.sysctl`, checked as runc does: only namespaced sysctls, and only when the container has
/// its own (new or joined) namespace of that kind. Returned for the backend to write into the
/// container's namespaces before Start: LXC's own `lxc.sysctl` runs after the read-only
/// `/proc/sys` mount and fails.
pub(super) fn sysctls(spec: &Spec, own: &[&str]) -> Result<Vec<(String, String)>> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let mut out: Vec<(String, String)> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    out.sort();
    for (k, v) in &out {
        let field = format!("linux.sysctl[{k:?}]");
        let ok = !k.is_empty()
            && k.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-/".contains(ch));
        if !ok || k.split(['.', '/']).any(|p| p.is_empty() || p == "..") {
            return Err(refuse(field, "is not a valid sysctl name"));
        }
        if v.contains('\n') {
            return Err(refuse(field, "the value contains a line break"));
        }
        let ns = if IPC.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
            "ipc"
        } else if k.starts_with("net.") {
            "net"
        } else if k == "kernel.hostname" || k == "kernel.domainname" {
            "uts"
        } else {
            return Err(refuse(field, "is not in a separate kernel namespace"));
        };
        if !own.contains(&ns) {
            return Err(refuse(
                field,
                format!("needs the container's own {ns} namespace"),
            ));
        }
    }
    Ok(out)
}
