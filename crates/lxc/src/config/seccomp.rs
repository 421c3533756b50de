//! `linux.seccomp` → an LXC version-2 seccomp policy (`lxc.seccomp.profile`).
//!
//! LXC 5 understands the actions allow, errno N, kill and trap (plus notify, which goes to its own
//! proxy), compares arguments like libseccomp (`[index,value,op]`, `[index,value,SCMP_CMP_MASKED_EQ,mask]`),
//! and on x86_64/aarch64 always applies the rules to the compat architectures too. Anything else is
//! refused.

use nexcage_core::Result;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction as A, LinuxSeccompOperator};

use super::lines::refuse;

fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn action(a: A, errno: Option<u32>, field: &str) -> Result<String> {
    Ok(match a {
        A::ScmpActAllow => "allow".to_string(),
        A::ScmpActErrno => format!("errno {}", errno.unwrap_or(libc::EPERM as u32)),
        A::ScmpActKill | A::ScmpActKillThread => "kill".to_string(),
        A::ScmpActTrap => "trap".to_string(),
        other => {
            return Err(refuse(
                field,
                format!(
                    "action {} is not supported by LXC's seccomp policies",
                    name_of(&other)
                ),
            ))
        }
    })
}

/// The architectures LXC's policy covers on this host (native plus compat).
fn lxc_arches(host_arch: &str) -> Option<&'static [&'static str]> {
    match host_arch {
        "x86_64" => Some(&["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]),
        "aarch64" => Some(&["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
        _ => None,
    }
}

/// The policy text for `s` on a host of `host_arch` (`uname -m`).
pub fn policy(s: &LinuxSeccomp, host_arch: &str) -> Result<String> {
    if s.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(refuse(
            "linux.seccomp.flags",
            "seccomp filter flags are not supported",
        ));
    }
    if s.listener_path().is_some() || s.listener_metadata().is_some() {
        return Err(refuse(
            "linux.seccomp.listenerPath",
            "seccomp notify listeners are not supported",
        ));
    }
    let want = lxc_arches(host_arch).ok_or_else(|| {
        refuse(
            "linux.seccomp",
            format!("seccomp translation is not available on {host_arch}"),
        )
    })?;
    let mut have: Vec<String> = s.architectures().iter().flatten().map(name_of).collect();
    have.sort();
    have.dedup();
    let mut expected: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    expected.sort();
    if have != expected {
        return Err(refuse(
            "linux.seccomp.architectures",
            format!(
                "LXC filters exactly {} on this host, the spec lists {have:?}",
                want.join(", ")
            ),
        ));
    }
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    let mut out = String::from("2\n");
    if default == "allow" {
        out.push_str("denylist\n");
    } else {
        out.push_str(&format!("allowlist {default}\n"));
    }
    out.push_str("[all]\n");
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(sc.action(), sc.errno_ret(), &format!("{field}.action"))?;
        let args = sc.args().clone().unwrap_or_default();
        let mut conds = Vec::new();
        for (j, a) in args.iter().enumerate() {
            if a.index() >= 6 {
                return Err(refuse(
                    format!("{field}.args[{j}].index"),
                    "must be below 6",
                ));
            }
            let op = name_of(&a.op());
            conds.push((
                a.index(),
                match a.op() {
                    // libseccomp: datum_a is the mask (OCI value), datum_b the value (OCI valueTwo).
                    LinuxSeccompOperator::ScmpCmpMaskedEq => {
                        format!(
                            "[{},{},{op},{}]",
                            a.index(),
                            a.value_two().unwrap_or(0),
                            a.value()
                        )
                    }
                    _ => format!("[{},{},{op}]", a.index(), a.value()),
                },
            ));
        }
        if act == default {
            continue; // libseccomp refuses rules that repeat the default action (runc skips them too)
        }
        // As runc: conditions on distinct arguments are ANDed in one rule; several conditions on
        // the same argument become one rule each (ORed).
        let mut indexes: Vec<usize> = conds.iter().map(|c| c.0).collect();
        indexes.sort();
        let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
        let groups: Vec<String> = if conds.is_empty() {
            vec![String::new()]
        } else if repeated {
            conds.iter().map(|c| format!(" {}", c.1)).collect()
        } else {
            vec![conds.iter().map(|c| format!(" {}", c.1)).collect()]
        };
        for name in sc.names() {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(refuse(
                    format!("{field}.names"),
                    format!("{name:?} is not a syscall name"),
                ));
            }
            for g in &groups {
                out.push_str(&format!("{name} {act}{g}\n"));
            }
        }
    }
    Ok(out)
}
