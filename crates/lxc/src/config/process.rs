//! `process`: user, environment, working directory, capabilities, rlimits and LSM labels.

use nexcage_core::Result;
use oci_spec::runtime::{Capabilities, Process, Spec};

use super::lines::{clean_absolute, refuse, Conf};

/// Settings of the init that are applied outside the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessOut {
    /// umask for lxc-execute, which LXC passes through to the init (runc's default is 022).
    pub umask: u32,
}

/// Write the init process's settings.
pub fn write(spec: &Spec, c: &mut Conf) -> Result<ProcessOut> {
    let p = spec
        .process()
        .as_ref()
        .ok_or_else(|| refuse("process", "is required"))?;
    common_refusals(p, "process")?;
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(refuse("process.args", "must not be empty"));
    }
    if !clean_absolute(p.cwd()) {
        return Err(refuse(
            "process.cwd",
            format!("{:?} must be an absolute path", p.cwd()),
        ));
    }
    let user = p.user();
    c.set("lxc.init.uid", &user.uid().to_string(), "process.user.uid")?;
    c.set("lxc.init.gid", &user.gid().to_string(), "process.user.gid")?;
    if let Some(g) = user.additional_gids().as_ref().filter(|g| !g.is_empty()) {
        let list: Vec<String> = g.iter().map(u32::to_string).collect();
        c.set(
            "lxc.init.groups",
            &list.join(","),
            "process.user.additionalGids",
        )?;
    }
    c.set(
        "lxc.init.cwd",
        &p.cwd().display().to_string(),
        "process.cwd",
    )?;
    for (i, e) in env_entries(p, "process")?.iter().enumerate() {
        c.set("lxc.environment", e, &format!("process.env[{i}]"))?;
    }
    let keep = match p.capabilities() {
        Some(caps) => cap_names(caps.bounding().as_ref()),
        None => Vec::new(),
    };
    let keep = if keep.is_empty() {
        "none".to_string()
    } else {
        keep.join(" ")
    };
    c.set("lxc.cap.keep", &keep, "process.capabilities.bounding")?;
    if p.no_new_privileges() == Some(true) {
        c.set("lxc.no_new_privs", "1", "process.noNewPrivileges")?;
    }
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        let field = format!("process.rlimits[{i}]");
        let name = rlimit_name(r)?;
        let v = |n: u64| {
            if n == u64::MAX {
                "unlimited".to_string()
            } else {
                n.to_string()
            }
        };
        c.set(
            &format!("lxc.prlimit.{name}"),
            &format!("{}:{}", v(r.soft()), v(r.hard())),
            &field,
        )?;
    }
    let profile = p.apparmor_profile().as_deref().filter(|s| !s.is_empty());
    c.set(
        "lxc.apparmor.profile",
        profile.unwrap_or("unconfined"),
        "process.apparmorProfile",
    )?;
    if let Some(l) = p.selinux_label().as_deref().filter(|s| !s.is_empty()) {
        c.set("lxc.selinux.context", l, "process.selinuxLabel")?;
    }
    if let Some(adj) = p.oom_score_adj() {
        c.set(
            "lxc.proc.oom_score_adj",
            &adj.to_string(),
            "process.oomScoreAdj",
        )?;
    }
    Ok(ProcessOut {
        umask: user.umask().unwrap_or(0o022),
    })
}

/// Fields of a process (init or exec) that LXC has no way to apply.
pub fn common_refusals(p: &Process, prefix: &str) -> Result<()> {
    if p.command_line().is_some() {
        return Err(refuse(format!("{prefix}.commandLine"), "is Windows-only"));
    }
    if p.io_priority().is_some() {
        return Err(refuse(format!("{prefix}.ioPriority"), "is not supported"));
    }
    if p.scheduler().is_some() {
        return Err(refuse(format!("{prefix}.scheduler"), "is not supported"));
    }
    if p.exec_cpu_affinity().is_some() {
        return Err(refuse(
            format!("{prefix}.execCPUAffinity"),
            "is not supported",
        ));
    }
    if let Some(caps) = p.capabilities() {
        if caps.ambient().as_ref().is_some_and(|a| !a.is_empty()) {
            return Err(refuse(
                format!("{prefix}.capabilities.ambient"),
                "LXC clears ambient capabilities",
            ));
        }
        if caps.inheritable().as_ref().is_some_and(|a| !a.is_empty()) {
            return Err(refuse(
                format!("{prefix}.capabilities.inheritable"),
                "LXC cannot set the inheritable set",
            ));
        }
    }
    Ok(())
}

/// `process.env` checked: every entry is `NAME=value` with a non-empty name.
pub fn env_entries<'a>(p: &'a Process, prefix: &str) -> Result<Vec<&'a str>> {
    let mut out = Vec::new();
    for (i, e) in p.env().iter().flatten().enumerate() {
        match e.split_once('=') {
            Some((k, _)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                out.push(e.as_str())
            }
            _ => {
                return Err(refuse(
                    format!("{prefix}.env[{i}]"),
                    format!("{e:?} is not NAME=value"),
                ))
            }
        }
    }
    Ok(out)
}

/// LXC capability names (`sys_admin`) of a set, sorted.
pub fn cap_names(set: Option<&Capabilities>) -> Vec<String> {
    let mut v: Vec<String> = set
        .into_iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .map(|s| s.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn rlimit_name(r: &oci_spec::runtime::PosixRlimit) -> Result<String> {
    let v = serde_json::to_value(r.typ()).map_err(|e| refuse("process.rlimits", e))?;
    let s = v.as_str().unwrap_or_default();
    s.strip_prefix("RLIMIT_")
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| refuse("process.rlimits", format!("unknown rlimit {s:?}")))
}
