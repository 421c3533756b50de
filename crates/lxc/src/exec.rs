//! Exec: `lxc-attach` as the shim's child with the exec's stdio; its exit status is the exec's.
//!
//! lxc-attach gives the process the container's namespaces, cgroup, capability bounding set,
//! LSM profile, seccomp policy and no_new_privs; what the exec's spec may change on top is applied
//! to lxc-attach itself before it runs (rlimits, umask, oom score, no_new_privs) and inherited.
//! lxc-attach has no working-directory flag (it reuses the caller's path): a cwd other than `/` is
//! reached through the container's `/bin/sh` (`cd -- "$0" && exec "$@"`), and refused without one.

use nexcage_core::types::{ExecConfig, Spawned};
use nexcage_core::{reaper, Error, Result};
use oci_spec::runtime::Process;

use crate::cli::AttachOpts;
use crate::config::lines::{clean_absolute, refuse};
use crate::config::process::{cap_names, common_refusals, env_entries};
use crate::procfs::{self, Proc};
use crate::spawn::{self, Launch};
use crate::state::Record;
use crate::LxcBackend;

const SH_CD: &str = "cd -- \"$0\" && exec \"$@\"";

fn rlimit_resource(name: &str) -> Option<i32> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    } as i32)
}

/// The lxc-attach options and launch settings for `p`, or the refusal naming the field.
pub fn plan(p: &Process, r: &Record) -> Result<(AttachOpts, Launch)> {
    common_refusals(p, "process")?;
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(refuse("process.args", "must not be empty"));
    }
    let cwd = p.cwd();
    if !clean_absolute(cwd) {
        return Err(refuse(
            "process.cwd",
            format!("{cwd:?} must be an absolute path"),
        ));
    }
    let user = p.user();
    if user
        .additional_gids()
        .iter()
        .flatten()
        .any(|g| *g != user.gid())
    {
        return Err(refuse(
            "process.user.additionalGids",
            "lxc-attach cannot set supplementary groups for an exec",
        ));
    }
    let caps = cap_names(
        p.capabilities()
            .as_ref()
            .and_then(|c| c.bounding().as_ref()),
    );
    if caps != r.exec_base.caps {
        return Err(refuse(
            "process.capabilities.bounding",
            format!(
                "an exec gets the container's bounding set {:?}, not {caps:?}",
                r.exec_base.caps
            ),
        ));
    }
    let nnp = p.no_new_privileges() == Some(true);
    if r.exec_base.no_new_privs && !nnp {
        return Err(refuse(
            "process.noNewPrivileges",
            "the container's processes all have no_new_privs",
        ));
    }
    let profile = p
        .apparmor_profile()
        .clone()
        .filter(|s| !s.is_empty() && s != "unconfined");
    if profile != r.exec_base.apparmor {
        return Err(refuse(
            "process.apparmorProfile",
            "an exec runs under the container's AppArmor profile",
        ));
    }
    let mut rlimits = Vec::new();
    for (i, l) in p.rlimits().iter().flatten().enumerate() {
        let name = serde_json::to_value(l.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let res = rlimit_resource(&name).ok_or_else(|| {
            refuse(
                format!("process.rlimits[{i}]"),
                format!("unknown rlimit {name:?}"),
            )
        })?;
        rlimits.push((res, l.soft(), l.hard()));
    }
    let args = if cwd.as_os_str() == "/" {
        args
    } else {
        let sh = r.rootfs.join("bin/sh");
        if std::fs::symlink_metadata(&sh).is_err() {
            return Err(refuse(
                "process.cwd",
                format!("{cwd:?}: lxc-attach cannot change directory and the container has no /bin/sh to do it"),
            ));
        }
        let mut v = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            SH_CD.into(),
            cwd.display().to_string(),
        ];
        v.extend(args);
        v
    };
    let opts = AttachOpts {
        env: env_entries(p, "process")?
            .into_iter()
            .map(str::to_owned)
            .collect(),
        uid: user.uid(),
        gid: user.gid(),
        selinux: p.selinux_label().clone().filter(|s| !s.is_empty()),
        args,
    };
    let launch = Launch {
        setsid: true,
        ctty: p.terminal() == Some(true),
        umask: user.umask(),
        rlimits,
        no_new_privs: nnp,
        oom_score_adj: p.oom_score_adj(),
        ..Default::default()
    };
    Ok((opts, launch))
}

/// Start an exec in a running container.
pub async fn exec(b: &LxcBackend, cfg: ExecConfig) -> Result<Spawned> {
    let (c, _init) = b.running_init(&cfg.id)?;
    let r = c.record();
    if !r.started {
        return Err(Error::precondition(format!(
            "container {:?} has not been started",
            cfg.id
        )));
    }
    let (opts, mut launch) = plan(&cfg.process, &r)?;
    let terminal = cfg.io.console_socket.is_some();
    launch.ctty = terminal;
    let (stdio, pty) = crate::create::stdio(cfg.io, &cfg.process.console_size())?;
    launch.stdio = stdio;
    let log = c.paths.dir.join(format!("exec-{}.log", cfg.exec_id));
    let mut cmd = b.cli.attach(&cfg.id, &log, &opts);
    cmd.current_dir("/");
    let (pid, since) = spawn::spawn(cmd, launch)?;
    let exit = reaper::watch(pid, since);
    if let Some((socket, pty)) = pty {
        if let Err(e) = spawn::send_master(&socket, &pty.master) {
            let _ = procfs::kill(pid, libc::SIGKILL);
            return Err(e);
        }
    }
    if let Some(p) = Proc::of(pid) {
        c.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, p);
    }
    Ok(Spawned { pid, exit })
}

/// Signal an exec: the process lxc-attach runs in the container when it can be found, else
/// lxc-attach itself (which forwards nothing, but ends the exec).
pub fn kill_exec(b: &LxcBackend, id: &str, pid: u32, signal: u32) -> Result<()> {
    let c = b.container(id)?;
    let signal = i32::try_from(signal)
        .map_err(|_| Error::invalid(format!("signal {signal} is out of range")))?;
    let attach = c
        .execs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&pid)
        .copied()
        .ok_or_else(|| Error::not_found(format!("pid {pid} is not an exec of container {id:?}")))?;
    if !attach.alive() {
        return Err(Error::not_found(format!("exec process {pid} has exited")));
    }
    let inner = c
        .record()
        .init
        .and_then(|i| procfs::pid_ns(i.pid))
        .and_then(|ns| procfs::descendant_in_ns(pid, ns));
    procfs::kill(inner.unwrap_or(pid), signal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CgroupDirs;
    use crate::state::ExecBase;
    use serde_json::json;

    fn record(rootfs: &std::path::Path) -> Record {
        Record {
            id: "c1".into(),
            rootfs: rootfs.into(),
            monitor: Proc { pid: 1, start: 1 },
            init: None,
            started: true,
            cgroups: CgroupDirs {
                container: "c".into(),
                monitor: "m".into(),
            },
            exec_base: ExecBase {
                caps: vec!["kill".into()],
                no_new_privs: true,
                apparmor: None,
            },
        }
    }

    fn process(v: serde_json::Value) -> Process {
        let mut base = json!({"user": {"uid": 1000, "gid": 100, "additionalGids": [100]}, "args": ["id"], "cwd": "/",
            "env": ["A=1"], "noNewPrivileges": true, "capabilities": {"bounding": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn plan_maps_user_env_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let (o, l) = plan(&process(json!({})), &record(dir.path())).unwrap();
        assert_eq!((o.uid, o.gid), (1000, 100));
        assert_eq!(o.env, ["A=1"]);
        assert_eq!(o.args, ["id"]);
        assert_eq!(l.rlimits, [(libc::RLIMIT_NOFILE as i32, 10, 20)]);
        assert!(l.no_new_privs && l.setsid);
    }

    #[test]
    fn cwd_goes_through_the_containers_sh_or_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = process(json!({"cwd": "/srv/app"}));
        let e = plan(&p, &record(dir.path())).unwrap_err();
        assert!(e.message().contains("process.cwd"), "{e}");
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::os::unix::fs::symlink("busybox", dir.path().join("bin/sh")).unwrap();
        let (o, _) = plan(&p, &record(dir.path())).unwrap();
        assert_eq!(o.args, ["/bin/sh", "-c", SH_CD, "/srv/app", "id"]);
    }

    #[test]
    fn what_lxc_attach_cannot_do_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = record(dir.path());
        let cases = [
            (
                json!({"user": {"uid": 0, "gid": 0, "additionalGids": [0, 10]}}),
                "process.user.additionalGids",
            ),
            (
                json!({"capabilities": {"bounding": ["CAP_SYS_ADMIN"]}}),
                "process.capabilities.bounding",
            ),
            (json!({"noNewPrivileges": false}), "process.noNewPrivileges"),
            (
                json!({"apparmorProfile": "other"}),
                "process.apparmorProfile",
            ),
            (
                json!({"scheduler": {"policy": "SCHED_FIFO"}}),
                "process.scheduler",
            ),
            (json!({"args": []}), "process.args"),
        ];
        for (v, field) in cases {
            let e = plan(&process(v), &r).unwrap_err();
            assert!(e.message().contains(field), "{field}: {e}");
        }
    }
}
