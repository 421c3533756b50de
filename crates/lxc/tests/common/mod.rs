//! Shared pieces of the LXC integration tests: they need root, LXC 5 (`apt-get install lxc`) and
//! a static busybox (`apt-get install busybox-static`), and fail naming whichever is missing.
#![allow(dead_code)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nexcage_core::config::BackendSettings;
use nexcage_core::reaper::ExitReceiver;
use nexcage_core::types::{ChildIo, CreateConfig};
use nexcage_lxc::LxcBackend;
use serde_json::{json, Value};

/// Panic (never skip) unless the host can run these tests.
pub fn require() {
    // SAFETY: geteuid has no preconditions and only reads this process's credentials.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the LXC integration tests need root");
    assert!(
        Path::new("/usr/bin/lxc-execute").exists(),
        "lxc-execute is missing: apt-get install -y lxc"
    );
    let bb = std::fs::read("/bin/busybox")
        .expect("/bin/busybox is missing: apt-get install -y busybox-static");
    assert!(
        !has_interpreter(&bb),
        "/bin/busybox is dynamically linked: apt-get install -y busybox-static"
    );
    nexcage_core::reaper::start().expect("reaper");
}

/// Whether an ELF64 file has a PT_INTERP program header (is dynamically linked).
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, num) = (u16_at(0x36), u16_at(0x38));
    (0..num).any(|i| {
        let o = phoff + i * size;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == 3
    })
}

/// A unique container id.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "sleep", "id", "ls", "ps", "grep", "tail", "head", "env", "pwd", "true",
    "false", "test", "hostname", "stty", "readlink", "kill", "dd", "mkdir", "touch", "wc", "tr",
    "cut", "uname", "ip", "dirname", "umask", "stat",
];

/// A bundle with a busybox rootfs.
pub struct Bundle {
    pub dir: tempfile::TempDir,
}

impl Bundle {
    pub fn new() -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("nexcage-lxc-bundle-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        // A fixed list: running `busybox --list` here would race the process-wide reaper.
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        Bundle { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

/// A backend over a private root.
pub struct Env {
    pub root: tempfile::TempDir,
    pub backend: LxcBackend,
}

pub fn settings(root: &Path) -> BackendSettings {
    BackendSettings {
        name: "lxc".into(),
        enabled: true,
        priority: 30,
        binary: Some("/usr/bin/lxc-execute".into()),
        root: root.to_path_buf(),
        timeout: Duration::from_secs(30),
        proxmox: None,
    }
}

impl Env {
    pub fn new() -> Env {
        require();
        let root = tempfile::Builder::new()
            .prefix("nexcage-lxc-root-")
            .tempdir()
            .unwrap();
        let backend = LxcBackend::new(&settings(root.path()), "test");
        Env { root, backend }
    }

    /// A second backend instance over the same root (as `shim delete` builds one).
    pub fn fresh(&self) -> LxcBackend {
        LxcBackend::new(&settings(self.root.path()), "test")
    }

    pub fn lxcpath(&self) -> PathBuf {
        self.root.path().join("test")
    }
}

impl Drop for Env {
    /// A failed test must not leave containers running: delete whatever is left in the lxcpath
    /// (from a thread with its own runtime, as this may run inside a test's runtime).
    fn drop(&mut self) {
        let root = self.root.path().to_path_buf();
        let ids: Vec<String> = std::fs::read_dir(self.lxcpath())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return;
        }
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let b = LxcBackend::new(&settings(&root), "test");
                for id in ids.iter().filter(|i| !i.starts_with('.')) {
                    let _ = nexcage_core::backend::Backend::delete(&b, id).await;
                }
            });
        })
        .join();
    }
}

/// Kills a helper process when the test ends, however it ends.
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nexcage_lxc::procfs::kill(self.0, libc::SIGKILL);
    }
}

/// A spec like containerd's default for `args`, in cgroup `/nexcage-lxc-test/<id>`.
pub fn spec(id: &str, args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.1.0",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_NET_RAW", "CAP_SYS_CHROOT"],
                "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_NET_RAW", "CAP_SYS_CHROOT"],
                "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_NET_RAW", "CAP_SYS_CHROOT"]
            },
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs"},
        "hostname": id,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "cgroupsPath": format!("/nexcage-lxc-test/{id}"),
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
            "maskedPaths": ["/proc/kcore", "/proc/acpi", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// Output files and a stdin pipe for a process.
pub struct Stdio {
    pub dir: tempfile::TempDir,
    pub stdin: Option<OwnedFd>,
}

impl Stdio {
    pub fn new() -> Stdio {
        Stdio {
            dir: tempfile::tempdir().unwrap(),
            stdin: None,
        }
    }

    /// ChildIo writing stdout/stderr to files; with `stdin`, a pipe whose writer is kept here.
    pub fn child(&mut self, stdin: bool) -> ChildIo {
        let open = |n: &str| -> OwnedFd {
            std::fs::File::create(self.dir.path().join(n))
                .unwrap()
                .into()
        };
        let mut io = ChildIo {
            stdout: Some(open("out")),
            stderr: Some(open("err")),
            ..Default::default()
        };
        if stdin {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
            io.stdin = Some(r);
            self.stdin = Some(w);
        }
        io
    }

    pub fn out(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out")).unwrap_or_default()
    }

    pub fn err(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("err")).unwrap_or_default()
    }
}

pub fn create_config(id: &str, bundle: &Bundle, spec: Value, io: ChildIo) -> CreateConfig {
    CreateConfig {
        id: id.to_string(),
        namespace: "test".into(),
        bundle: bundle.path().to_path_buf(),
        spec: serde_json::from_value(spec).expect("spec parses"),
        io,
    }
}

/// The exit code, within `secs`.
pub async fn exit_code(rx: ExitReceiver, secs: u64) -> i32 {
    tokio::time::timeout(Duration::from_secs(secs), rx)
        .await
        .expect("the container did not exit in time")
        .expect("exit status lost")
        .code
}

/// Poll `f` until true (for state that settles asynchronously).
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..250 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Every trace a container could leave on the host, as a list of what is still there.
pub fn leftovers(env: &Env, id: &str, pids: &[u32]) -> Vec<String> {
    let mut left = Vec::new();
    let dir = env.lxcpath().join(id);
    if dir.exists() {
        left.push(format!("lxcpath entry {}", dir.display()));
    }
    for d in nexcage_lxc::cgroups::dirs(&format!("nexcage-lxc-test/{id}"))
        .into_iter()
        .chain(nexcage_lxc::cgroups::dirs(&format!(
            "nexcage-lxc.monitor/test/{id}"
        )))
    {
        if d.exists() {
            left.push(format!("cgroup {}", d.display()));
        }
    }
    for p in pids {
        if Path::new(&format!("/proc/{p}")).exists() {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            if !stat.contains(") Z") {
                left.push(format!("process {p}: {stat}"));
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for l in mounts
        .lines()
        .filter(|l| l.contains(&dir.display().to_string()))
    {
        left.push(format!("mount {l}"));
    }
    left
}

/// Receive the fd sent over a console socket connection.
pub fn recv_fd(sock: i32) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel installed this fd in our process for us; nobody else owns it.
            return unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd on the console socket");
}
