//! Create and Start.
//!
//! Create writes `<lxcpath>/<id>/config` and runs `lxc-execute` in the foreground as the shim's
//! child with the task's stdio. LXC sets the container up and, right before running its init,
//! calls the `lxc.hook.start-host` hook on the host with `LXC_PID` = the init's host pid. The hook
//! writes that pid to a file and blocks reading a FIFO (the gate). Create returns that pid and an
//! exit future on lxc-execute, whose exit status is the application's. Start writes `start` into
//! the gate; anything else (`abort`, written by Kill before Start and by Delete, also from a fresh
//! backend after the shim died) makes the hook fail and LXC abort the start, cleaning up itself.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nexcage_core::reaper;
use nexcage_core::types::{ChildIo, CreateConfig, Spawned};
use nexcage_core::{Error, Result};

use crate::config::{self, Input, Paths, RealHost};
use crate::procfs::Proc;
use crate::spawn::{self, Launch};
use crate::state::{ExecBase, Record};
use crate::{Container, LxcBackend};

/// The start hook: report the init's pid, then hold it until Start; with `in_container` (the
/// program itself waits on the gate, see [`crate::hold`]) only report the pid.
pub fn start_hook(paths: &Paths, in_container: bool) -> String {
    let pid = paths.pid_file().display().to_string();
    let gate = paths.gate().display().to_string();
    if in_container {
        return format!(
            "#!/bin/sh\n\
             # written by nexcage: report the init's host pid (the program waits on the gate)\n\
             printf '%s\\n' \"$LXC_PID\" > '{pid}.tmp' && mv -f '{pid}.tmp' '{pid}'\n"
        );
    }
    // The gate is opened read-write first (which does not block on a FIFO), so from the moment
    // the pid file exists a writer's non-blocking open finds a reader.
    format!(
        "#!/bin/sh\n\
         # written by nexcage: report the init's host pid, then hold it until Start\n\
         exec 3<> '{gate}' || exit 1\n\
         printf '%s\\n' \"$LXC_PID\" > '{pid}.tmp' && mv -f '{pid}.tmp' '{pid}' || exit 1\n\
         read -r go <&3 || exit 1\n\
         [ \"$go\" = start ]\n"
    )
}

/// The stop hook. LXC runs it after the container's processes are gone and before it removes
/// the container's cgroup: after an OOM kill it waits a second, so that the shim's OOM watcher
/// reads the kill counter before the cgroup (and the counter) disappears.
pub fn stop_hook(oom_file: Option<&Path>) -> String {
    let mut s = String::from(
        "#!/bin/sh\n# written by nexcage: let the shim see an OOM kill before LXC removes the cgroup\n",
    );
    if let Some(f) = oom_file {
        s.push_str(&format!(
            "grep -q '^oom_kill [1-9]' {} 2>/dev/null && sleep 1\n",
            sh_quote(&f.display().to_string())
        ));
    }
    s.push_str("exit 0\n");
    s
}

/// `s` as one single-quoted shell word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Paths LXC hands to a shell (hooks) must not need quoting.
fn check_safe(dir: &Path) -> Result<()> {
    let s = dir.to_string_lossy();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "lxc backend directory {s:?} may only contain letters, digits and /._- (LXC runs hooks through a shell)"
        )))
    }
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// Errors LXC logged, most recent last (`… ERROR    confile - file.c:fn:164 - message`).
pub fn log_errors(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(" CRIT "))
        .map(|l| l.splitn(3, " - ").nth(2).unwrap_or(l).trim().to_string())
        .collect()
}

fn failure(paths: &Paths, what: String) -> Error {
    let log = std::fs::read_to_string(paths.log()).unwrap_or_default();
    let errors = log_errors(&log);
    let tail: Vec<&str> = errors
        .iter()
        .rev()
        .take(6)
        .rev()
        .map(String::as_str)
        .collect();
    let detail = if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.join("; "))
    };
    let kind = crate::cli::classify(&detail);
    let kind = if kind == nexcage_core::ErrorKind::NotFound {
        nexcage_core::ErrorKind::Internal
    } else {
        kind
    };
    Error::new(kind, format!("{what}{detail}"))
}

/// Create container `cfg.id`.
pub async fn create(b: &LxcBackend, cfg: CreateConfig) -> Result<Spawned> {
    config::validate(&cfg.spec)?;
    let id = cfg.id.clone();
    nexcage_core::types::validate_id("container id", &id)?;
    let paths = b.paths(&id);
    check_safe(&paths.dir)?;
    if paths.dir.exists() {
        match Record::load(&paths.state()) {
            Ok(Some(r)) if r.monitor.alive() => {
                return Err(Error::already_exists(format!(
                    "container {id:?} already exists in the lxc backend"
                )))
            }
            _ => crate::delete::delete(b, &id).await?, // leftovers of a dead shim
        }
    }
    std::fs::create_dir_all(&b.cli.lxcpath)
        .map_err(|e| Error::io(format!("create {}", b.cli.lxcpath.display()), e))?;
    std::fs::create_dir(&paths.dir)
        .map_err(|e| Error::io(format!("create {}", paths.dir.display()), e))?;
    let _ = std::fs::set_permissions(&paths.dir, std::fs::Permissions::from_mode(0o700));
    match launch(b, &paths, cfg).await {
        Ok(s) => Ok(s),
        Err(e) => {
            if let Err(d) = crate::delete::delete(b, &id).await {
                tracing::warn!(id = %id, error = %d, "cleanup after failed create");
            }
            Err(e)
        }
    }
}

async fn launch(b: &LxcBackend, paths: &Paths, cfg: CreateConfig) -> Result<Spawned> {
    let input = Input {
        id: &cfg.id,
        namespace: &b.namespace,
        bundle: &cfg.bundle,
        spec: &cfg.spec,
        paths,
    };
    let generated = config::generate(&input, &RealHost)?;
    clear_stale_monitor_cgroup(&generated.cgroups.monitor).await?;
    let process = cfg.spec.process().clone().unwrap_or_default();
    let (stdio, pty) = stdio(cfg.io, &process.console_size())?;
    let mut text = generated.config.clone();
    if let Some((_, pty)) = &pty {
        text.push_str(&console_entry(&pty.slave)?);
    }
    let hold = match &b.hold_dir {
        Some(dir) => Some(crate::hold::install(dir)?),
        None => None,
    };
    if let Some(h) = &hold {
        text.push_str(&crate::hold::mount_entries(h, &paths.gate()));
    }
    write_file(&paths.config(), &text, 0o600)?;
    if let Some(s) = &generated.seccomp {
        write_file(&paths.seccomp(), s, 0o600)?;
    }
    if let Some(h) = &generated.mount_hook {
        write_file(&paths.mount_hook(), h, 0o700)?;
    }
    write_file(
        &paths.start_hook(),
        &start_hook(paths, hold.is_some()),
        0o700,
    )?;
    let oom_file = match crate::cgroups::controller_dir(&generated.cgroups.container, "memory") {
        Some(d) if config::Host::cgroup2(&RealHost) => Some(d.join("memory.events")),
        Some(d) => Some(d.join("memory.oom_control")),
        None => None,
    };
    write_file(&paths.stop_hook(), &stop_hook(oom_file.as_deref()), 0o700)?;
    // Read by the hold as the process's user when it is inside the container.
    let mode = if hold.is_some() { 0o644 } else { 0o600 };
    nix::unistd::mkfifo(
        &paths.gate(),
        nix::sys::stat::Mode::from_bits_truncate(mode),
    )
    .map_err(|e| Error::internal(format!("mkfifo {}: {e}", paths.gate().display())))?;
    if hold.is_some() {
        // mkfifo applies the umask; the process's user needs to read it.
        std::fs::set_permissions(paths.gate(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(format!("chmod {}", paths.gate().display()), e))?;
    }
    std::fs::create_dir(paths.rootfs_mount())
        .map_err(|e| Error::io(format!("create {}", paths.rootfs_mount().display()), e))?;

    let mut args = process.args().clone().unwrap_or_default();
    if hold.is_some() {
        args = crate::hold::wrap(&args);
    }
    let cmd = b.cli.execute(&cfg.id, &paths.config(), &args);
    let launch = Launch {
        stdio,
        setsid: true,
        ignore_sigpipe: true,
        umask: Some(generated.umask),
        ..Default::default()
    };
    let (pid, since) = spawn::spawn(cmd, launch)?;
    let mut rx = reaper::watch(pid, since);
    let monitor = Proc::of(pid).unwrap_or(Proc { pid, start: 0 });
    let root = cfg
        .spec
        .root()
        .as_ref()
        .map(|r| cfg.bundle.join(r.path()))
        .unwrap_or_default();
    let caps = process
        .capabilities()
        .as_ref()
        .and_then(|c| c.bounding().clone());
    let record = Record {
        id: cfg.id.clone(),
        rootfs: root,
        monitor,
        init: None,
        started: false,
        cgroups: generated.cgroups.clone(),
        exec_base: ExecBase {
            caps: config::process::cap_names(caps.as_ref()),
            no_new_privs: process.no_new_privileges() == Some(true),
            apparmor: process
                .apparmor_profile()
                .clone()
                .filter(|p| !p.is_empty() && p != "unconfined"),
        },
    };
    record.save(&paths.state())?;
    if let Some((socket, pty)) = pty {
        spawn::send_master(&socket, &pty.master)?;
    }
    let deadline = Instant::now() + b.cli.timeout;
    let init_pid = loop {
        if let Some(p) = std::fs::read_to_string(paths.pid_file())
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            break p;
        }
        if let Ok(st) = rx.try_recv() {
            return Err(failure(
                paths,
                format!(
                    "lxc-execute exited with status {} before the container was set up",
                    st.code
                ),
            ));
        }
        if Instant::now() > deadline {
            return Err(Error::deadline(format!(
                "the container was not set up within {:?}",
                b.cli.timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let init = Proc::of(init_pid).ok_or_else(|| {
        failure(
            paths,
            format!("the container's init {init_pid} vanished before Start"),
        )
    })?;
    crate::sysctl::apply(init.pid, &generated.sysctls)?;
    let delivered = Arc::new(Mutex::new(None));
    let c = Arc::new(Container {
        paths: paths.clone(),
        record: Mutex::new(Record {
            init: Some(init),
            ..record
        }),
        delivered: delivered.clone(),
        execs: Mutex::default(),
    });
    c.update(|_| ())?;
    b.insert(&cfg.id, c);
    Ok(Spawned {
        pid: init.pid,
        exit: crate::kill::wrap_exit(rx, delivered),
    })
}

/// A monitor cgroup left by a monitor that was killed (a killed lxc-execute removes nothing;
/// Delete removes it, a crashed shim or test process does not) makes LXC refuse the next
/// container of that name with "Failed to create monitor cgroup" (ERANGE). Remove it when no
/// process is in it; a cgroup with processes is left alone (LXC then fails with its error).
async fn clear_stale_monitor_cgroup(rel: &str) -> Result<()> {
    let exists = crate::cgroups::dirs(rel).iter().any(|d| d.is_dir());
    if exists && crate::cgroups::procs(rel)?.is_empty() {
        tracing::warn!(cgroup = rel, "removing a stale monitor cgroup");
        crate::cgroups::remove(rel).await?;
    }
    Ok(())
}

type Stdio = (
    [Option<std::os::fd::OwnedFd>; 3],
    Option<(std::path::PathBuf, spawn::Pty)>,
);

/// The process's stdio: the given fds, or with a console socket a new pty's slave on all three.
pub fn stdio(io: ChildIo, size: &Option<oci_spec::runtime::Box>) -> Result<Stdio> {
    match io.console_socket {
        None => Ok(([io.stdin, io.stdout, io.stderr], None)),
        Some(socket) => {
            let (rows, cols) = size
                .as_ref()
                .map_or((0, 0), |b| (b.height() as u16, b.width() as u16));
            let pty = spawn::open_pty(rows, cols)?;
            let dup = |fd: &std::os::fd::OwnedFd| {
                fd.try_clone().map_err(|e| Error::io("dup pty slave", e))
            };
            let stdio = [
                Some(dup(&pty.slave)?),
                Some(dup(&pty.slave)?),
                Some(dup(&pty.slave)?),
            ];
            Ok((stdio, Some((socket, pty))))
        }
    }
}

/// The terminal's slave bound on the container's `/dev/console`, as runc does: the slave is a
/// host pty, absent from the container's own devpts, so without it `ttyname()` (`tty`) finds no
/// name for the process's terminal. The bind keeps the inode, and glibc's ttyname scans `/dev`.
fn console_entry(slave: &std::os::fd::OwnedFd) -> Result<String> {
    use std::os::fd::AsRawFd;
    let link = format!("/proc/self/fd/{}", slave.as_raw_fd());
    let path = std::fs::read_link(&link).map_err(|e| Error::io(format!("readlink {link}"), e))?;
    let path = path
        .to_str()
        .filter(|p| p.starts_with("/dev/pts/") && !p.contains(' '));
    let path = path
        .ok_or_else(|| Error::internal(format!("the pty slave {link} is not a /dev/pts path")))?;
    Ok(format!(
        "lxc.mount.entry = {path} dev/console none bind,create=file 0 0\n"
    ))
}

/// Let the init run: write `start` into the gate the start hook is reading.
pub async fn start(b: &LxcBackend, id: &str) -> Result<()> {
    let c = b.container(id)?;
    let r = c.record();
    if r.started {
        return Err(Error::precondition(format!(
            "container {id:?} was already started"
        )));
    }
    if !write_gate(&c.paths, &r.monitor, b"start\n", b.cli.timeout).await? {
        return Err(Error::not_found(format!(
            "container {id:?} is no longer waiting to start"
        )));
    }
    c.update(|r| r.started = true)
}

/// Write `word` into the gate once somebody reads it (the start hook, or the hold inside the
/// container, which opens the gate only once the container runs), while `monitor` lives and
/// for at most `timeout`. False when nobody came to read it.
pub async fn write_gate(
    paths: &Paths,
    monitor: &Proc,
    word: &[u8],
    timeout: Duration,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        match open_gate(paths)? {
            Some(mut f) => {
                f.write_all(word)
                    .map_err(|e| Error::io("write to the start gate", e))?;
                return Ok(true);
            }
            None if monitor.alive() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            None => return Ok(false),
        }
    }
}

/// The gate opened for writing, None when nobody is reading it (yet, or any more).
pub fn open_gate(paths: &Paths) -> Result<Option<std::fs::File>> {
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(paths.gate())
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO) | Some(libc::ENOENT)) => Ok(None),
        Err(e) => Err(Error::io(format!("open {}", paths.gate().display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_reports_the_pid_and_waits_for_start() {
        let h = start_hook(&Paths::new("/run/nexcage/lxc/ns/c1"), false);
        assert!(h.starts_with("#!/bin/sh\n"));
        assert!(
            h.contains("printf '%s\\n' \"$LXC_PID\" > '/run/nexcage/lxc/ns/c1/init.pid.tmp'"),
            "{h}"
        );
        assert!(h.contains("exec 3<> '/run/nexcage/lxc/ns/c1/gate'"), "{h}");
        assert!(
            h.find("exec 3<>") < h.find("LXC_PID"),
            "the gate has a reader before the pid is reported"
        );
        assert!(h.contains("read -r go <&3"), "{h}");
        assert!(h.ends_with("[ \"$go\" = start ]\n"));
        assert!(check_safe(Path::new("/run/nexcage/lxc/k8s.io/abc-1")).is_ok());
        assert!(check_safe(Path::new("/run/my lxc/c1")).is_err());
    }

    #[test]
    fn stop_hook_waits_only_after_an_oom_kill() {
        let h = stop_hook(Some(Path::new(
            "/sys/fs/cgroup/memory/default/c1/memory.oom_control",
        )));
        assert!(h.contains("grep -q '^oom_kill [1-9]' '/sys/fs/cgroup/memory/default/c1/memory.oom_control' 2>/dev/null && sleep 1"), "{h}");
        assert!(h.ends_with("exit 0\n"));
        assert_eq!(stop_hook(None).lines().count(), 3);
        assert_eq!(sh_quote("/a b/it's"), "'/a b/it'\\''s'");
    }

    #[test]
    fn log_errors_keep_the_message() {
        let log = "lxc-execute c1 20261123144803.943 ERROR    confile - ../src/lxc/confile.c:set_config_unsupported_key:164 - Invalid argument - Unsupported config key \"lxc.bogus\"\n\
                   lxc-execute c1 20261123144803.944 WARN     x - y.c:z:1 - noise\n";
        assert_eq!(
            log_errors(log),
            ["Invalid argument - Unsupported config key \"lxc.bogus\""]
        );
    }
}
