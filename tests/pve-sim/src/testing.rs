//! Helpers for tests that drive the simulator (its own tests and the wrappers' and backends'):
//! a temporary sim root, a ZFS parent dataset that is destroyed on drop, and where the binaries
//! are.
//!
//! These helpers may run in a process whose `nexcage_core` reaper collects every child, so they
//! never rely on a child's exit status: success is judged from output and effects.

use std::path::PathBuf;
use std::process::Command;

/// The directory holding the `pct`, `pvesh` and `qm` binaries: `PVE_SIM_BIN_DIR`, else the
/// directory of the running test's target profile (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PVE_SIM_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A simulated node in a temporary directory. Dropping it stops and removes every backing LXC
/// container and destroys every dataset made under [`SimRoot::zfs_storage`].
#[derive(Debug)]
pub struct SimRoot {
    /// The root (`PVE_SIM_ROOT`).
    pub root: PathBuf,
    /// Node name used (`PVE_SIM_NODE`).
    pub node: String,
    datasets: Vec<String>,
}

impl SimRoot {
    /// A fresh root under `/tmp` with node name `node`.
    pub fn new(node: &str) -> SimRoot {
        let root = std::env::temp_dir().join(format!(
            "pve-sim-{}-{}",
            std::process::id(),
            crate::sim::random_u64() % 1_000_000_000
        ));
        std::fs::create_dir_all(&root).expect("create sim root");
        SimRoot {
            root,
            node: node.to_string(),
            datasets: Vec::new(),
        }
    }

    /// The environment a tool call needs.
    pub fn envs(&self) -> Vec<(String, String)> {
        vec![
            (crate::sim::ENV_ROOT.into(), self.root.display().to_string()),
            (crate::sim::ENV_NODE.into(), self.node.clone()),
        ]
    }

    /// `<root>/var/lib/lxc`.
    pub fn lxcpath(&self) -> PathBuf {
        self.root.join("var/lib/lxc")
    }

    /// `<root>/var/lib/vz/template/cache` (the `local` dir storage's templates).
    pub fn template_dir(&self) -> PathBuf {
        let d = self.root.join("var/lib/vz/template/cache");
        std::fs::create_dir_all(&d).expect("template dir");
        d
    }

    /// Write `storage.cfg`.
    pub fn write_storage_cfg(&self, text: &str) {
        let d = self.root.join("etc/pve");
        std::fs::create_dir_all(&d).expect("etc/pve");
        std::fs::write(d.join("storage.cfg"), text).expect("storage.cfg");
    }

    /// Create a parent dataset on `pool` for this root and define storages `local` (dir) and
    /// `id` (zfspool on that dataset). The dataset is destroyed on drop.
    pub fn zfs_storage(&mut self, pool: &str, id: &str) -> String {
        let ds = format!(
            "{pool}/pvesim-{}-{}",
            std::process::id(),
            crate::sim::random_u64() % 1_000_000
        );
        let out = Command::new("zfs")
            .args(["create", &ds])
            .output()
            .expect("zfs");
        assert!(
            out.status.success(),
            "zfs create {ds}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.datasets.push(ds.clone());
        let local = self.root.join("var/lib/vz");
        self.write_storage_cfg(&format!(
            "dir: local\n\tpath {}\n\tcontent iso,vztmpl,backup\n\nzfspool: {id}\n\tpool {ds}\n\tsparse\n\tcontent images,rootdir\n",
            local.display()
        ));
        ds
    }

    /// A busybox template archive (`local:vztmpl/<name>`): static busybox and a few applets.
    pub fn busybox_template(&self, name: &str) -> String {
        let stage = self.root.join("stage-busybox");
        for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root"] {
            std::fs::create_dir_all(stage.join(d)).expect("stage");
        }
        std::fs::copy("/bin/busybox", stage.join("bin/busybox"))
            .expect("/bin/busybox (apt-get install busybox-static)");
        for a in [
            "sh", "sleep", "cat", "echo", "hostname", "id", "ls", "true", "false",
        ] {
            let _ = std::os::unix::fs::symlink("busybox", stage.join("bin").join(a));
        }
        let out = self.template_dir().join(name);
        let (_, err) = capture(
            Command::new("tar")
                .arg("-cf")
                .arg(&out)
                .arg("-C")
                .arg(&stage)
                .arg("."),
        );
        let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        assert!(len >= 10240, "tar -cf {}: {err}", out.display());
        format!("local:vztmpl/{name}")
    }
}

impl Drop for SimRoot {
    fn drop(&mut self) {
        stop_all(&self.lxcpath());
        for ds in self.datasets.iter().rev() {
            for _ in 0..10 {
                // Judged by effect: a process-wide reaper in the test may collect the status.
                capture(Command::new("zfs").args(["destroy", "-r", ds]));
                if !zfs_exists(ds) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Stop every LXC container under `lxcpath`: `lxc-stop --kill`, and where that does not answer
/// within 5 s (a monitor held in a start hook answers no command), SIGKILL to every process
/// started with that lxcpath (the `lxc-execute` monitors and their hooks).
pub fn stop_all(lxcpath: &std::path::Path) {
    let mut stuck = false;
    for e in std::fs::read_dir(lxcpath).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let mut c = Command::new("lxc-stop");
        c.arg("-P").arg(lxcpath).args(["-n", &name, "--kill"]);
        stuck |= !finishes_within(&mut c, std::time::Duration::from_secs(5));
    }
    if !stuck {
        return;
    }
    let needle = lxcpath.display().to_string();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let ours = args.iter().any(|a| a.starts_with(needle.as_bytes()));
        let lxc = args
            .first()
            .is_some_and(|a| a.ends_with(b"lxc-execute") || a.ends_with(b"/bin/sh"));
        if ours && lxc && pid != std::process::id() as i32 {
            // SAFETY: kill(2) with a pid and a signal number has no memory effects here.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Run `cmd` (output discarded); false, after killing it, when it is still running at `limit`.
pub fn finishes_within(cmd: &mut Command, limit: std::time::Duration) -> bool {
    use std::process::Stdio;
    let Ok(mut child) = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return true;
    };
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            // ECHILD: a process-wide reaper collected it, so it has finished.
            Err(_) => return true,
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// Run `cmd` to completion and return its stdout and stderr; the exit status is not used (a
/// process-wide reaper may have collected it).
pub fn capture(cmd: &mut Command) -> (String, String) {
    use std::io::Read;
    use std::process::Stdio;
    let Ok(mut child) = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return (String::new(), String::new());
    };
    let mut err_pipe = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let mut out = String::new();
    if let Some(mut p) = child.stdout.take() {
        let _ = p.read_to_string(&mut out);
    }
    let err = err_reader.join().unwrap_or_default();
    let _ = child.wait();
    (out, err)
}

/// Whether dataset `ds` exists (judged from `zfs list` output).
pub fn zfs_exists(ds: &str) -> bool {
    let (out, _) = capture(Command::new("zfs").args(["list", "-H", "-o", "name", ds]));
    out.trim() == ds
}
