//! The busybox test image, built without any registry (umoci + the static busybox, as in
//! shared/facts/containerd-shim.md §12.1) once per test process, and imported into a namespace
//! of a containerd instance. For CRI instances the same image is imported into `k8s.io` as
//! `docker.io/local/busybox:latest` (CRI normalizes `local/x` to `docker.io/local/x`, G13),
//! together with the sandbox image `docker.io/local/pause:latest`: the same filesystem whose
//! command blocks (`sleep 1000000`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::cmd::{self, TIMEOUT};
use crate::prereq::BUSYBOX;

/// Name the image is imported under.
pub const IMAGE: &str = "local/busybox:latest";

/// Name of the image in a CRI instance's `k8s.io` namespace.
pub const CRI_IMAGE: &str = "docker.io/local/busybox:latest";

/// Applets linked into /bin (those the busybox build does not know are left out).
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "ls", "true", "false", "head", "tail", "tr", "dd", "grep", "wc",
    "tty", "test", "[", "kill", "env", "id", "mkdir", "rm", "trap", "nc", "ping", "ip", "hostname",
    "touch", "readlink", "seq", "awk", "sed", "ps", "timeout", "usleep", "mkfifo",
];

/// Directory for the built image: `<workspace>/target/e2e-cache`.
pub fn cache_dir() -> PathBuf {
    crate::workspace_dir().join("target").join("e2e-cache")
}

fn step(cmd: Command) {
    let out = cmd::run(cmd, TIMEOUT);
    assert!(out.success(), "building the busybox image failed: {out:?}");
}

fn umoci(dir: &Path, args: &[&str]) {
    let mut c = Command::new("umoci");
    c.current_dir(dir).args(args);
    step(c);
}

/// The two archives of one build.
#[derive(Debug)]
struct Archives {
    busybox: PathBuf,
    pause: PathBuf,
}

fn tar_layout(layout: &Path, tar: &Path) {
    let mut t = Command::new("tar");
    t.arg("-C").arg(layout).arg("-cf").arg(tar).arg(".");
    step(t);
}

fn build(dir: &Path) -> std::io::Result<Archives> {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin"))?;
    std::fs::create_dir_all(rootfs.join("tmp"))?;
    std::fs::create_dir_all(rootfs.join("etc"))?;
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox"))?;
    let known = cmd::run(
        {
            let mut c = Command::new(BUSYBOX);
            c.arg("--list");
            c
        },
        TIMEOUT,
    )
    .stdout;
    for a in APPLETS.iter().filter(|a| known.lines().any(|l| l == **a)) {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a))?;
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
    umoci(dir, &["init", "--layout", "img"]);
    umoci(dir, &["new", "--image", "img:latest"]);
    umoci(dir, &["unpack", "--rootless", "--image", "img:latest", "b"]);
    let mut cp = Command::new("cp");
    cp.arg("-a").arg(rootfs.join(".")).arg(dir.join("b/rootfs"));
    step(cp);
    umoci(dir, &["repack", "--image", "img:latest", "b"]);
    umoci(
        dir,
        &[
            "config",
            "--image",
            "img:latest",
            "--config.env",
            "PATH=/bin",
            "--config.cmd",
            "sh",
        ],
    );
    let tar = dir.join("img.tar");
    tar_layout(&dir.join("img"), &tar);
    // The sandbox image: a copy of the layout whose command blocks.
    let mut cp = Command::new("cp");
    cp.arg("-a").arg(dir.join("img")).arg(dir.join("pause"));
    step(cp);
    umoci(
        dir,
        &[
            "config",
            "--image",
            "pause:latest",
            "--config.cmd",
            "sleep",
            "--config.cmd",
            "1000000",
        ],
    );
    let pause = dir.join("pause.tar");
    tar_layout(&dir.join("pause"), &pause);
    Ok(Archives {
        busybox: tar,
        pause,
    })
}

/// Build the image archives once per process.
fn archives() -> &'static Archives {
    static TARS: OnceLock<Archives> = OnceLock::new();
    TARS.get_or_init(|| {
        crate::prereq::check();
        crate::at_exit(cleanup_cache);
        let cache = cache_dir();
        std::fs::create_dir_all(&cache)
            .unwrap_or_else(|e| panic!("create {}: {e}", cache.display()));
        let work = tempfile::Builder::new()
            .prefix("busybox-")
            .tempdir_in(&cache)
            .unwrap_or_else(|e| panic!("temp dir in {}: {e}", cache.display()));
        let built =
            build(work.path()).unwrap_or_else(|e| panic!("building the busybox image: {e}"));
        // One file per process: concurrent test processes never see a half-written archive.
        let pid = std::process::id();
        let busybox = cache.join(format!("busybox-{pid}.tar"));
        let pause = cache.join(format!("pause-{pid}.tar"));
        for (from, to) in [(&built.busybox, &busybox), (&built.pause, &pause)] {
            std::fs::rename(from, to)
                .unwrap_or_else(|e| panic!("move image to {}: {e}", to.display()));
        }
        Archives { busybox, pause }
    })
}

/// The busybox image archive (built once per process).
pub fn archive() -> &'static Path {
    &archives().busybox
}

/// The sandbox image archive: busybox whose command is `sleep 1000000`.
pub fn pause_archive() -> &'static Path {
    &archives().pause
}

/// The unpacked root filesystem of the image (for `ctr run --rootfs` and `--config` specs):
/// `<cache>/rootfs-<pid>`.
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = cache_dir().join(format!("rootfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin"))
            .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        std::fs::copy(BUSYBOX, dir.join("bin/busybox"))
            .unwrap_or_else(|e| panic!("copy busybox: {e}"));
        for a in ["sh", "echo", "cat", "sleep", "true"] {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(a))
                .unwrap_or_else(|e| panic!("symlink {a}: {e}"));
        }
        dir
    })
}

/// Remove what this process put into the cache dir.
pub fn cleanup_cache() {
    let pid = std::process::id();
    let _ = std::fs::remove_file(cache_dir().join(format!("busybox-{pid}.tar")));
    let _ = std::fs::remove_file(cache_dir().join(format!("pause-{pid}.tar")));
    let _ = std::fs::remove_dir_all(cache_dir().join(format!("rootfs-{pid}")));
}

/// Import the image into namespace `ns` of the containerd listening on `sock`.
pub fn import(sock: &Path, ns: &str) {
    import_as(sock, ns, archive(), "local/busybox", IMAGE);
}

/// Import the busybox and the sandbox image into the CRI namespace of the containerd listening
/// on `sock`, under the names CRI looks up.
pub fn import_cri(sock: &Path) {
    let ns = crate::containerd::CRI_NAMESPACE;
    import_as(sock, ns, archive(), "docker.io/local/busybox", CRI_IMAGE);
    import_as(
        sock,
        ns,
        pause_archive(),
        "docker.io/local/pause",
        crate::containerd::PAUSE_IMAGE,
    );
}

/// Import `tar` (an OCI layout whose only tag is `latest`) as `<base>:latest`, which must then
/// be listed as `expect`.
fn import_as(sock: &Path, ns: &str, tar: &Path, base: &str, expect: &str) {
    let ctr = |args: &[&str]| {
        let mut c = crate::versions::ctr_command();
        c.arg("-a").arg(sock).arg("-n").arg(ns).args(args);
        c
    };
    // Only --base-name: the image is named from the layout's `ref.name` annotation
    // (`latest`). Adding `--index-name local/busybox:latest` (facts §12.2) makes ctr also record
    // the layout's index.json, which is no blob, so ctr fails with "content digest …: not
    // found" (G13) part-way through the unpack; the snapshots it had unpacked are then
    // garbage-collected at random, and a later `ctr run` fails with "parent snapshot … does not
    // exist". With --base-name alone the import succeeds (exit 0).
    let mut imp = ctr(&["images", "import", "--base-name", base]);
    imp.arg(tar);
    let out = cmd::run(imp, TIMEOUT);
    assert!(
        out.success(),
        "ctr images import into namespace {ns}: {out:?}"
    );
    let ls = cmd::run(ctr(&["images", "ls", "-q"]), TIMEOUT);
    assert!(
        ls.stdout.lines().any(|l| l.trim() == expect),
        "image {expect} not listed after import into namespace {ns}:\n{out:?}\n{ls:?}"
    );
}
