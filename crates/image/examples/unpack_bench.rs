//! Unpack throughput and rootfs creation time of the image store, against `umoci unpack` and
//! `tar -x`, on images built here (no registry).
//!
//! ```text
//! cargo run --release -p nexcage-image --example unpack_bench \
//!     [-- --runs N --mb SIZE --dir DIR --pool NAME --containerd PATH|none --unpack-only]
//! ```
//!
//! - Builds two images with umoci: `small` = busybox-static with its applet links (about 2 MB),
//!   and `large` = that layer plus a second one of about `--mb` MB (default 200) of mixed files:
//!   many small text-like files, medium files half random and half compressible, a few large
//!   random files.
//! - **Unpack throughput** of the large image's layers (uncompressed tar bytes per second, median
//!   of `--runs`, default 3): nexcage's `apply_layer` (blob and diff-id digests checked), `umoci
//!   unpack` (which also writes an mtree manifest of the tree), `tar -xzf` per layer, and
//!   containerd's own unpack into its overlayfs snapshotter: a private containerd (`--containerd`,
//!   default `/usr/bin/containerd`, with the `ctr` next to it; `none` leaves the row out) with its
//!   root, state and socket under the work dir, the layout imported as an OCI archive with
//!   `ctr images import --no-unpack` (untimed), then `ctr images mount` timed: the client-side
//!   `Image.Unpack` (per layer a snapshot, the daemon's diff service applies the blob and returns
//!   the diff id, which is checked, commit), a read-only view of the top snapshot and its overlay
//!   mount. Between runs the mount and the image are removed with a synchronous GC (`ctr images
//!   unmount --rm`, `ctr images rm --sync`), so every run starts from no snapshots and the blobs
//!   freshly imported; the time of the same `ctr images mount` of the already unpacked image (ctr
//!   start, lease, view, mount: everything but the unpack) is printed too.
//! - **Import and rootfs creation** for both images: the DirStore (`--dir`, default
//!   `/var/tmp`, so on disk: a rootfs is a deep copy) and, when the zfs-fuse pool `nexcage-test`
//!   is there (tests/setup-zfs.sh), the ZfsStore (a rootfs is `zfs clone`).
//!
//! - `--unpack-only` leaves out the import and rootfs part.
//!
//! Prints markdown tables. No timing is asserted anywhere: the figures depend on the machine.
//! Needs root (device nodes, chown, mounts), umoci, busybox-static and GNU tar; containerd stops
//! and its directory goes also when the example panics (a panic hook: the release profile aborts).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use nexcage_core::cmd::Cmd;
use nexcage_image::images;
use nexcage_image::{
    apply_layer, resolve, ApplyOptions, BlobSource, DirStore, LayerBlob, LayoutDir, NoProgress,
    Platform, ResolvedImage, Store, ZfsStore, ZfsStoreConfig,
};

struct Args {
    runs: usize,
    mb: u64,
    dir: PathBuf,
    pool: String,
    /// containerd binary for the containerd row, `None` = no such row.
    containerd: Option<PathBuf>,
    unpack_only: bool,
}

fn args() -> Args {
    let mut a = Args {
        runs: 3,
        mb: 200,
        dir: PathBuf::from("/var/tmp"),
        pool: std::env::var("NEXCAGE_ZFS_POOL").unwrap_or_else(|_| "nexcage-test".into()),
        containerd: Some(PathBuf::from("/usr/bin/containerd")),
        unpack_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--unpack-only" {
            a.unpack_only = true;
            continue;
        }
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--runs" => a.runs = v.parse().expect("--runs N"),
            "--mb" => a.mb = v.parse().expect("--mb SIZE"),
            "--dir" => a.dir = PathBuf::from(v),
            "--pool" => a.pool = v,
            "--containerd" => a.containerd = (v != "none").then(|| PathBuf::from(v)),
            other => panic!(
                "unknown argument {other} (--runs N, --mb SIZE, --dir DIR, --pool NAME, \
                 --containerd PATH|none, --unpack-only)"
            ),
        }
    }
    a
}

/// Run a tool to completion (through nexcage's reaper-aware runner); panics on failure.
async fn run(program: &str, args: &[&str]) -> String {
    let cmd = Cmd::new(program)
        .args(args)
        .timeout(Duration::from_secs(1800));
    let argv = cmd.argv();
    match cmd.run().await {
        Ok(o) => o.stdout,
        Err(e) => panic!("{argv}: {e}"),
    }
}

/// The running private containerd (pid, its directory), for [`stop_containerd`].
static CONTAINERD: Mutex<Option<(u32, PathBuf)>> = Mutex::new(None);

/// A private containerd for the containerd row: config, root, state, socket and log under `dir`.
struct Containerd {
    ctr: PathBuf,
    sock: String,
    version: String,
}

/// Image name prefix of the imported archive (`ctr images import --base-name`).
const CTD_BASE: &str = "docker.io/nexcage/bench";
/// containerd namespace of the benchmark.
const CTD_NS: &str = "bench";

impl Containerd {
    /// Start containerd (`bin`) on `dir` and wait until `ctr version` answers.
    async fn start(bin: &Path, dir: &Path) -> Containerd {
        let ctr = bin.with_file_name("ctr");
        let version = run(bin.to_str().unwrap(), &["--version"]).await;
        let version = version
            .split_whitespace()
            .nth(2)
            .unwrap_or("?")
            .split('~')
            .next()
            .unwrap()
            .to_string();
        std::fs::create_dir_all(dir).unwrap();
        let sock = dir.join("containerd.sock").to_str().unwrap().to_string();
        assert!(
            sock.len() < 100,
            "socket path {sock} too long for sockaddr_un"
        );
        let d = dir.display();
        // containerd 1.6: config version 2; no CRI (nothing but the content store, the images,
        // the overlayfs snapshotter and the walking differ is used).
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{sock}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
        );
        let cfg = dir.join("config.toml");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        // Through nexcage's reaper like every other child here; the reaper collects its status.
        nexcage_core::reaper::start().unwrap();
        let child = std::process::Command::new(bin)
            .arg("--config")
            .arg(&cfg)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let pid = child.id();
        drop(child);
        *CONTAINERD.lock().unwrap() = Some((pid, dir.to_path_buf()));
        let c = Containerd { ctr, sock, version };
        let t = Instant::now();
        loop {
            let up = Cmd::new(&c.ctr)
                .args(["-a", &c.sock, "version"])
                .timeout(Duration::from_secs(10))
                .run()
                .await
                .is_ok();
            if up {
                return c;
            }
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None);
            if alive.is_err() || t.elapsed() > Duration::from_secs(30) {
                let log = std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default();
                panic!("containerd did not come up:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `ctr -a SOCK -n bench ARGS…`
    async fn ctr(&self, args: &[&str]) -> String {
        let mut v = vec!["-a", &self.sock, "-n", CTD_NS];
        v.extend_from_slice(args);
        run(self.ctr.to_str().unwrap(), &v).await
    }

    /// Import the OCI archive without unpacking (untimed); images `CTD_BASE:small` / `:large`.
    async fn import(&self, archive: &Path) {
        self.ctr(&[
            "images",
            "import",
            "--no-unpack",
            "--base-name",
            CTD_BASE,
            archive.to_str().unwrap(),
        ])
        .await;
    }

    /// The timed part: `ctr images mount` = unpack (if not unpacked yet) + view + overlay mount.
    async fn mount(&self, target: &Path) {
        self.ctr(&[
            "images",
            "mount",
            "--snapshotter",
            "overlayfs",
            &format!("{CTD_BASE}:large"),
            target.to_str().unwrap(),
        ])
        .await;
    }

    /// Unmount `target` and remove its view snapshot and lease.
    async fn unmount(&self, target: &Path) {
        self.ctr(&[
            "images",
            "unmount",
            "--snapshotter",
            "overlayfs",
            "--rm",
            target.to_str().unwrap(),
        ])
        .await;
    }

    /// Remove both images with a synchronous GC (content and snapshots) and check that no
    /// snapshot is left.
    async fn remove_images(&self) {
        self.ctr(&[
            "images",
            "rm",
            "--sync",
            &format!("{CTD_BASE}:small"),
            &format!("{CTD_BASE}:large"),
        ])
        .await;
        let left = self
            .ctr(&["snapshots", "--snapshotter", "overlayfs", "ls"])
            .await;
        assert!(
            left.lines().count() <= 1,
            "snapshots left after images rm --sync:\n{left}"
        );
    }
}

/// Stop the private containerd (SIGTERM, SIGKILL after 15 s), unmount what is left under its
/// directory and delete it. Idempotent; also called from the panic hook.
fn stop_containerd() {
    let taken = match CONTAINERD.try_lock() {
        Ok(mut g) => g.take(),
        Err(TryLockError::Poisoned(p)) => p.into_inner().take(),
        Err(TryLockError::WouldBlock) => None,
    };
    let Some((pid, dir)) = taken else { return };
    use nix::sys::signal::{kill, Signal};
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    // The reaper thread collects it; until then the zombie still answers signal 0.
    let gone = |limit: Duration| {
        let t = Instant::now();
        while t.elapsed() < limit {
            if kill(pid, None).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    let _ = kill(pid, Signal::SIGTERM);
    if !gone(Duration::from_secs(15)) {
        let _ = kill(pid, Signal::SIGKILL);
        gone(Duration::from_secs(5));
    }
    let prefix = dir.to_str().unwrap().to_string();
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// xorshift64*: fast, reproducible bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn random(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }

    fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "container",
            "layer",
            "image",
            "root",
            "file",
            "system",
            "nexcage",
            "zfs",
            "the",
            "of",
            "and",
            "config",
            "rootfs",
            "digest",
            "sha256",
            "tar",
            "gzip",
            "\n",
            "0",
            "42",
        ];
        let mut v = Vec::with_capacity(len + 16);
        while v.len() < len {
            v.extend_from_slice(WORDS[self.below(WORDS.len() as u64) as usize].as_bytes());
            v.push(b' ');
        }
        v.truncate(len);
        v
    }
}

/// About `mb` MB of mixed files under `root`.
fn generate(root: &Path, mb: u64) -> u64 {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let budget = mb * 1_000_000;
    let mut total = 0u64;
    let mut n = 0u64;
    let write = |rel: String, data: Vec<u8>| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::File::create(&p)
            .and_then(|mut f| f.write_all(&data))
            .unwrap();
        data.len() as u64
    };
    // 40%: large random files (8 MB); 35%: medium (64 KB – 1 MB), half random; 25%: small text
    // files (100 B – 16 KB) in many directories.
    while total < budget * 40 / 100 {
        total += write(format!("data/large/blob{n}.bin"), rng.random(8_000_000));
        n += 1;
    }
    while total < budget * 75 / 100 {
        let len = 64_000 + rng.below(936_000) as usize;
        let data = if n.is_multiple_of(2) {
            rng.random(len)
        } else {
            rng.text(len)
        };
        total += write(format!("data/medium/{}/m{n}", n % 16), data);
        n += 1;
    }
    while total < budget {
        let len = 100 + rng.below(16_000) as usize;
        total += write(
            format!("data/small/{}/{}/s{n}.txt", n % 32, n % 7),
            rng.text(len),
        );
        n += 1;
    }
    total
}

/// busybox-static and its applet links under `rootfs` (as tests/build-image.sh does).
async fn busybox(rootfs: &Path) {
    for d in ["bin", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static");
    let list = run("/bin/busybox", &["--list"]).await;
    for a in list.lines().filter(|a| *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
}

/// A layout at `dir/layout` with images `small` (busybox) and `large` (busybox + data).
async fn build_images(dir: &Path, mb: u64) -> (PathBuf, u64) {
    let layout = dir.join("layout");
    let l = layout.to_str().unwrap();
    run("umoci", &["init", "--layout", l]).await;
    run("umoci", &["new", "--image", &format!("{l}:small")]).await;
    let b1 = dir.join("b1");
    let b1s = b1.to_str().unwrap();
    run("umoci", &["unpack", "--image", &format!("{l}:small"), b1s]).await;
    busybox(&b1.join("rootfs")).await;
    run("umoci", &["repack", "--image", &format!("{l}:small"), b1s]).await;
    let b2 = dir.join("b2");
    let b2s = b2.to_str().unwrap();
    run("umoci", &["unpack", "--image", &format!("{l}:small"), b2s]).await;
    let bytes = generate(&b2.join("rootfs"), mb);
    run("umoci", &["repack", "--image", &format!("{l}:large"), b2s]).await;
    std::fs::remove_dir_all(&b1).unwrap();
    std::fs::remove_dir_all(&b2).unwrap();
    (layout, bytes)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.2} ms", d.as_secs_f64() * 1000.0)
    } else if d < Duration::from_secs(1) {
        format!("{:.0} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

fn mbps(bytes: u64, d: Duration) -> String {
    format!("{:.0}", bytes as f64 / 1e6 / d.as_secs_f64())
}

/// Uncompressed size of every layer of `image` (the tar streams).
fn tar_bytes(src: &LayoutDir, image: &ResolvedImage) -> u64 {
    image
        .layers
        .iter()
        .map(|l| {
            let (r, _) = src.open(&l.digest).unwrap();
            let mut d = flate2::read::GzDecoder::new(r);
            std::io::copy(&mut d, &mut std::io::sink()).unwrap()
        })
        .sum()
}

fn fresh(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    dir.to_path_buf()
}

async fn time<F: std::future::Future<Output = ()>>(f: F) -> Duration {
    let t = Instant::now();
    f.await;
    t.elapsed()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args();
    let work = a.dir.join(format!("nexcage-bench-{}", std::process::id()));
    fresh(&work);
    eprintln!(
        "building images in {} ({} MB of data)…",
        work.display(),
        a.mb
    );
    let t = Instant::now();
    let (layout, data_bytes) = build_images(&work, a.mb).await;
    eprintln!("built in {}", secs(t.elapsed()));
    let src = LayoutDir::open(&layout).unwrap();
    let host = Platform::host();
    let small = resolve(&src, Some("small"), &host).unwrap();
    let large = resolve(&src, Some("large"), &host).unwrap();
    let large_tar = tar_bytes(&src, &large);
    let small_tar = tar_bytes(&src, &small);
    let blob = |i: &ResolvedImage| i.layers.iter().map(|l| l.size).sum::<u64>();
    println!(
        "images: small = 1 layer, {:.1} MB uncompressed ({:.1} MB gzip); large = 2 layers, \
         {:.1} MB uncompressed ({:.1} MB gzip; {:.1} MB of generated files)\n",
        small_tar as f64 / 1e6,
        blob(&small) as f64 / 1e6,
        large_tar as f64 / 1e6,
        blob(&large) as f64 / 1e6,
        data_bytes as f64 / 1e6
    );

    // ---- unpack throughput ----
    // The unpackers take turns (run 1 of each, run 2 of each, …) and the page cache is written
    // back before each run, so no unpacker pays for another's dirty pages.
    let target = work.join("target");
    let l = layout.to_str().unwrap();
    let mut names = vec![
        "nexcage `apply_layer` (digests checked)".to_string(),
        "`umoci unpack` (digests checked, mtree written)".to_string(),
        "`tar -xzf` per layer (no digests)".to_string(),
    ];
    // containerd's own unpack: a private daemon and the layout as an OCI archive.
    let ctd_dir = work.join("ctd");
    let ctd_mnt = ctd_dir.join("mnt");
    let archive = ctd_dir.join("layout.tar");
    let ctd = match &a.containerd {
        Some(bin) if bin.exists() => {
            let prev = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                prev(info);
                stop_containerd();
            }));
            let c = Containerd::start(bin, &ctd_dir).await;
            std::fs::create_dir_all(&ctd_mnt).unwrap();
            run(
                "tar",
                &[
                    "-cf",
                    archive.to_str().unwrap(),
                    "-C",
                    l,
                    "oci-layout",
                    "index.json",
                    "blobs",
                ],
            )
            .await;
            names.push(format!(
                "containerd {} `ctr images mount` (unpack into overlayfs, diff ids checked)",
                c.version
            ));
            Some(c)
        }
        Some(bin) => {
            eprintln!("no {}: containerd row left out", bin.display());
            None
        }
        None => None,
    };
    // `ctr images mount` of the already unpacked image: everything but the unpack.
    let mut ctd_rest = Vec::new();
    let mut runs: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for _ in 0..a.runs {
        for (i, r) in runs.iter_mut().enumerate() {
            let dir = fresh(&target);
            if let (3, Some(c)) = (i, &ctd) {
                c.import(&archive).await;
            }
            run("sync", &[]).await;
            let t = Instant::now();
            match i {
                0 => {
                    for l in &large.layers {
                        let (r, _) = src.open(&l.digest).unwrap();
                        let blob = LayerBlob {
                            media_type: Some(l.media_type.clone()),
                            digest: Some(l.digest.clone()),
                            size: Some(l.size),
                            diff_id: Some(l.diff_id.clone()),
                        };
                        apply_layer(r, &blob, &dir, &ApplyOptions::default()).unwrap();
                    }
                }
                1 => {
                    let b = dir.join("bundle");
                    run(
                        "umoci",
                        &[
                            "unpack",
                            "--image",
                            &format!("{l}:large"),
                            b.to_str().unwrap(),
                        ],
                    )
                    .await;
                }
                3 => ctd.as_ref().unwrap().mount(&ctd_mnt).await,
                _ => {
                    for ly in &large.layers {
                        let p = layout.join("blobs/sha256").join(ly.digest.hex());
                        run(
                            "tar",
                            &["-xzf", p.to_str().unwrap(), "-C", dir.to_str().unwrap()],
                        )
                        .await;
                    }
                }
            }
            r.push(t.elapsed());
            if let (3, Some(c)) = (i, &ctd) {
                c.unmount(&ctd_mnt).await;
                run("sync", &[]).await;
                ctd_rest.push(time(c.mount(&ctd_mnt)).await);
                c.unmount(&ctd_mnt).await;
                c.remove_images().await;
            }
        }
    }
    // Stops containerd and removes its directory (root, state, socket, archive, mount point).
    stop_containerd();
    let rows: Vec<(String, Duration, String)> = names
        .into_iter()
        .zip(runs)
        .map(|(n, r)| {
            let all = r.iter().map(|d| secs(*d)).collect::<Vec<_>>().join(" / ");
            (n, median(r), all)
        })
        .collect();
    let _ = std::fs::remove_dir_all(&target);
    println!(
        "Unpack of the large image ({:.1} MB of tar, 2 gzip layers), median of {} runs:\n",
        large_tar as f64 / 1e6,
        a.runs
    );
    println!("| unpacker | time | MB/s (uncompressed) | every run |");
    println!("|---|---:|---:|---|");
    for (name, d, all) in &rows {
        println!(
            "| {name} | {} | {} | {all} |",
            secs(*d),
            mbps(large_tar, *d)
        );
    }
    println!();
    if !ctd_rest.is_empty() {
        println!(
            "containerd: `ctr images mount` of the already unpacked image (no unpack: ctr start, \
             lease, view, mount), median of {} runs: {}\n",
            a.runs,
            secs(median(ctd_rest))
        );
    }
    if a.unpack_only {
        let _ = std::fs::remove_dir_all(&work);
        return;
    }

    // ---- import and rootfs creation ----
    let src: Arc<dyn BlobSource> = Arc::new(src);
    let mut table: Vec<(String, String, Duration, Duration)> = Vec::new();
    let dir_root = work.join("dirstore");
    let store = DirStore::open(&dir_root, ApplyOptions::default()).unwrap();
    for (name, image) in [("small", &small), ("large", &large)] {
        let imp = time(async {
            images::import(&store, &src, image, name, "bench", Arc::new(NoProgress))
                .await
                .unwrap();
        })
        .await;
        let top = image.top().unwrap().clone();
        let mut runs = Vec::new();
        for i in 0..a.runs {
            let n = format!("{name}-{i}");
            runs.push(time(async { drop(store.create_rootfs(&top, &n).await.unwrap()) }).await);
            store.remove_rootfs(&n).await.unwrap();
        }
        table.push((
            "DirStore (deep copy)".into(),
            name.into(),
            imp,
            median(runs),
        ));
    }
    let _ = std::fs::remove_dir_all(&dir_root);

    let zfs = nexcage_zfs::Zfs::new();
    let zfs_ok = zfs
        .pool(&a.pool)
        .await
        .map(|p| p.is_usable())
        .unwrap_or(false);
    if zfs_ok {
        let parent = format!("{}/bench-img-{}", a.pool, std::process::id());
        let ct = format!("{}/bench-ct-{}", a.pool, std::process::id());
        let mut cfg = ZfsStoreConfig::new(&parent);
        cfg.lock_dir = work.join("locks");
        let store = ZfsStore::open(zfs.clone(), cfg, ApplyOptions::default())
            .await
            .unwrap();
        zfs.create(&ct, &Default::default()).await.unwrap();
        for (name, image) in [("small", &small), ("large", &large)] {
            let imp = time(async {
                images::import(&store, &src, image, name, "bench", Arc::new(NoProgress))
                    .await
                    .unwrap();
            })
            .await;
            let top = image.top().unwrap().clone();
            let mut runs = Vec::new();
            for i in 0..a.runs {
                let ds = format!("{ct}/{name}-{i}");
                runs.push(
                    time(async { drop(store.create_rootfs(&top, &ds).await.unwrap()) }).await,
                );
                store.remove_rootfs(&ds).await.unwrap();
            }
            table.push((
                format!("ZfsStore on {} (clone)", a.pool),
                name.into(),
                imp,
                median(runs),
            ));
        }
        let all = nexcage_zfs::DestroyOpts {
            recursive: true,
            dependents: true,
            force: true,
        };
        zfs.destroy_if_exists(&ct, &all).await.unwrap();
        zfs.destroy_if_exists(&parent, &all).await.unwrap();
    } else {
        eprintln!(
            "no usable pool {}: ZfsStore rows left out (tests/setup-zfs.sh)",
            a.pool
        );
    }
    let _ = std::fs::remove_dir_all(&work);

    println!(
        "Import (unpack into the store) and rootfs creation; rootfs: median of {} runs:\n",
        a.runs
    );
    println!("| store | image | import | create rootfs |");
    println!("|---|---|---:|---:|");
    for (store, image, imp, rootfs) in table {
        let size = if image == "small" {
            small_tar
        } else {
            large_tar
        };
        println!(
            "| {store} | {image} ({:.0} MB) | {} | {} |",
            size as f64 / 1e6,
            secs(imp),
            secs(rootfs)
        );
    }
}
