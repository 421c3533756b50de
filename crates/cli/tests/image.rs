//! `nexcage image import|ls|rm|prune` against real OCI images built locally (umoci and
//! busybox-static, as tests/setup-host.sh installs them): a busybox archive from
//! tests/build-image.sh, and a layout with images `a` and `b` that each add one layer to it.
//! The directory store lives in a temporary directory; root file systems are made through the
//! store API, as the shim would. The ZFS tests need the zfs-fuse pool (tests/setup-zfs.sh).
//!
//! Every child runs through `nexcage_core::cmd`: the ZFS store API starts the process-wide
//! reaper (as in the shim), after which `std::process::Command::output` would find its child
//! already reaped.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use nexcage_core::cmd::Cmd;

use nexcage_image::{Digest, DirStore, Store, ZfsStore, ZfsStoreConfig};
use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_nexcage");

/// The images, built once per test binary.
struct Images {
    _dir: TempDir,
    /// tests/build-image.sh output: one layer, ref `latest`.
    archive: PathBuf,
    /// A layout holding `latest`, `a` (= latest + /app-a) and `b` (= latest + /app-b).
    layout: PathBuf,
}

/// Run `program args…` to completion, whatever its status.
fn exec<S: AsRef<OsStr>>(program: impl AsRef<Path>, args: &[S]) -> Run {
    let cmd = Cmd::new(program)
        .args(args)
        .timeout(Duration::from_secs(300))
        .status_ok();
    let argv = cmd.argv();
    let out = rt()
        .block_on(cmd.run())
        .unwrap_or_else(|e| panic!("{argv}: {e}"));
    Run {
        code: Some(out.status),
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// Run and require success.
fn sh<S: AsRef<OsStr>>(program: impl AsRef<Path>, args: &[S]) {
    exec(program, args).ok();
}

fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("busybox.tar");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/build-image.sh");
        sh(
            "bash",
            &[script.as_os_str(), archive.as_os_str(), "sh".as_ref()],
        );
        let layout = dir.path().join("layout");
        std::fs::create_dir(&layout).unwrap();
        sh(
            "tar",
            &[
                "-C".as_ref(),
                layout.as_os_str(),
                "-xf".as_ref(),
                archive.as_os_str(),
            ],
        );
        for name in ["a", "b"] {
            let bundle = dir.path().join(format!("bundle-{name}"));
            let bundle = bundle.to_str().unwrap();
            let latest = format!("{}:latest", layout.display());
            sh(
                "umoci",
                &["unpack", "--rootless", "--image", &latest, bundle],
            );
            std::fs::write(Path::new(bundle).join(format!("rootfs/app-{name}")), name).unwrap();
            let tagged = format!("{}:{name}", layout.display());
            sh("umoci", &["repack", "--image", &tagged, bundle]);
        }
        Images {
            _dir: dir,
            archive,
            layout,
        }
    })
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{self:?}");
        self
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A config file naming a store, and a temporary state dir for its locks.
struct Env {
    dir: TempDir,
    config: PathBuf,
}

impl Env {
    fn new(image_store: &str) -> Env {
        Env::in_dir(tempfile::tempdir().unwrap(), image_store)
    }

    fn in_dir(dir: TempDir, image_store: &str) -> Env {
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\n[image_store]\n{image_store}",
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        Env { dir, config }
    }

    /// The directory store, in `<temp dir>/store`.
    fn dir_store() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        Env::in_dir(
            dir,
            &format!("kind = \"dir\"\npath = \"{}\"\n", store.display()),
        )
    }

    fn store_root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut argv = vec!["--config", self.config.to_str().unwrap()];
        argv.extend_from_slice(args);
        exec(BIN, &argv)
    }

    fn ls(&self) -> Vec<Value> {
        self.run(&["--json", "image", "ls"])
            .ok()
            .json()
            .as_array()
            .expect("array")
            .clone()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn digest(v: &Value) -> Digest {
    v.as_str().expect("a digest string").parse().unwrap()
}

fn layer_dirs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn image<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no image {name} in {rows:?}"))
}

#[test]
fn import_an_archive_under_its_reference_and_list_it() {
    let img = images();
    let env = Env::dir_store();
    let archive = img.archive.to_str().unwrap();
    let r = env.run(&["image", "import", archive]).ok();
    // Not a terminal: no progress bar, no escape sequences, nothing on stderr.
    assert!(r.stderr.is_empty(), "{r:?}");
    assert!(
        r.stdout.contains("layer 1/1 sha256:") && r.stdout.contains("unpacked"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("imported latest (sha256:")
            && r.stdout.contains("1 layer, 1 unpacked, 0 already present"),
        "{r:?}"
    );

    let r = env.run(&["image", "ls"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{r:?}");
    assert!(
        lines[0].starts_with("NAME    DIGEST               PLATFORM     LAYERS  SIZE"),
        "{r:?}"
    );
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cols[0], "latest");
    assert!(
        cols[1].starts_with("sha256:") && cols[1].len() == 19,
        "{r:?}"
    );
    assert_eq!(cols[3], "1");
    assert_eq!(cols.last(), Some(&"0"), "in use: {r:?}");

    let rows = env.ls();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["layers"], 1);
    assert_eq!(row["in_use"], 0);
    assert_eq!(row["platform"], "linux/amd64");
    assert_eq!(row["source"], archive);
    // busybox-static is about 2 MB: the uncompressed layer is bigger than its gzip blob.
    let (size, blob) = (
        row["size"].as_u64().unwrap(),
        row["blob_size"].as_u64().unwrap(),
    );
    assert!(size > 1_000_000 && blob < size, "{row}");
    let top = digest(&row["chain_ids"][0]);
    assert_eq!(layer_dirs(&env.store_root()), [top.hex()]);

    // The same archive again under another name: nothing to unpack.
    let r = env
        .run(&["--json", "image", "import", archive, "--name", "busybox:1"])
        .ok();
    let v = r.json();
    assert_eq!(v["name"], "busybox:1");
    assert_eq!(v["layers"][0]["status"], "present");
    assert_eq!(v["replaced"], Value::Null);
    assert_eq!(env.ls().len(), 2);
}

#[test]
fn shared_layers_rm_and_prune_respect_rootfs_users() {
    let img = images();
    let env = Env::dir_store();
    let layout = img.layout.to_str().unwrap();
    let root = env.store_root();

    let a = env
        .run(&["--json", "image", "import", layout, "--name", "a"])
        .ok()
        .json();
    let statuses: Vec<&Value> = a["layers"].as_array().unwrap().iter().collect();
    assert_eq!(statuses.len(), 2, "{a}");
    assert!(statuses.iter().all(|l| l["status"] == "unpacked"), "{a}");

    // `b` shares the base layer: only its own layer is unpacked.
    let b = env
        .run(&["--json", "image", "import", layout, "--name", "b"])
        .ok()
        .json();
    assert_eq!(b["layers"][0]["status"], "present", "{b}");
    assert_eq!(b["layers"][1]["status"], "unpacked", "{b}");
    assert_eq!(b["layers"][0]["chain_id"], a["layers"][0]["chain_id"]);
    assert_ne!(b["layers"][1]["chain_id"], a["layers"][1]["chain_id"]);
    let rows = env.ls();
    let (ra, rb) = (image(&rows, "a"), image(&rows, "b"));
    assert_eq!(ra["chain_ids"][0], rb["chain_ids"][0]);
    let base = digest(&ra["chain_ids"][0]);
    let top_a = digest(&ra["chain_ids"][1]);
    let top_b = digest(&rb["chain_ids"][1]);
    assert_eq!(layer_dirs(&root).len(), 3, "base + a + b, the base once");

    // A container's rootfs from `a`, made through the store API (as the shim would).
    let store = DirStore::open(&root, Default::default()).unwrap();
    let rootfs = rt().block_on(store.create_rootfs(&top_a, "ctr-1")).unwrap();
    assert_eq!(
        std::fs::read_to_string(rootfs.path.join("app-a")).unwrap(),
        "a"
    );
    assert!(rootfs.path.join("bin/busybox").is_file());
    let rows = env.ls();
    assert_eq!(image(&rows, "a")["in_use"], 1);
    assert_eq!(image(&rows, "a")["rootfs"][0], "ctr-1");
    assert_eq!(image(&rows, "b")["in_use"], 0);
    let r = env.run(&["image", "ls"]).ok();
    let a_line = r.stdout.lines().find(|l| l.starts_with("a ")).unwrap();
    assert!(a_line.ends_with(" 1"), "{r:?}");

    // rm forgets the name only, and says who still uses the layers.
    let r = env.run(&["--json", "image", "rm", "a"]).ok().json();
    assert_eq!(r["rootfs"][0], "ctr-1");
    assert_eq!(env.ls().len(), 1);
    let r = env.run(&["image", "rm", "a"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("image \"a\" not found"), "{r:?}");

    // Prune refuses to remove the layer ctr-1 uses (and, below it, the base b also uses).
    let dry = env
        .run(&["--json", "image", "prune", "--dry-run"])
        .ok()
        .json();
    assert_eq!(dry["removed"], Value::Array(vec![]), "{dry}");
    let p = env.run(&["--json", "image", "prune"]).ok().json();
    assert_eq!(p["removed"], Value::Array(vec![]), "{p}");
    assert_eq!(p["in_use"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(digest(&p["in_use"][0]["chain_id"]), top_a);
    assert_eq!(p["in_use"][0]["rootfs"][0], "ctr-1");
    assert_eq!(p["kept_for_images"], 2, "base and b: {p}");
    assert_eq!(layer_dirs(&root).len(), 3);
    let r = env.run(&["image", "prune"]).ok();
    assert!(
        r.stdout.contains(&format!(
            "kept layer sha256:{}: in use by rootfs ctr-1",
            &top_a.hex()[..12]
        )),
        "{r:?}"
    );

    // Once the rootfs is gone, its layer goes; the base stays for b.
    rt().block_on(store.remove_rootfs("ctr-1")).unwrap();
    let p = env.run(&["--json", "image", "prune"]).ok().json();
    let removed: Vec<Digest> = p["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| digest(&l["chain_id"]))
        .collect();
    assert_eq!((removed.len(), &removed[0]), (1, &top_a), "{p}");
    assert!(p["freed"].as_u64().unwrap() > 0, "{p}");
    let mut left = vec![base.hex().to_string(), top_b.hex().to_string()];
    left.sort();
    assert_eq!(layer_dirs(&root), left);

    // Without images, everything goes, topmost first.
    env.run(&["image", "rm", "b"]).ok();
    let p = env.run(&["--json", "image", "prune"]).ok().json();
    let removed: Vec<Digest> = p["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| digest(&l["chain_id"]))
        .collect();
    assert_eq!(removed, [top_b, base], "{p}");
    assert!(layer_dirs(&root).is_empty());
    assert!(env.ls().is_empty());
    let r = env.run(&["image", "prune"]).ok();
    assert!(r.stdout.contains("removed 0 layers"), "{r:?}");
    let catalog: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("catalog.json")).unwrap()).unwrap();
    assert_eq!(catalog["layers"], serde_json::json!({}), "{catalog}");
    assert_eq!(catalog["rootfs"], serde_json::json!({}), "{catalog}");
}

#[test]
fn choosing_and_naming_images_of_a_layout() {
    let img = images();
    let env = Env::dir_store();
    let layout = img.layout.to_str().unwrap();
    // Three references: one must be chosen (usage error, exit 2, naming them).
    let r = env.run(&["image", "import", layout]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr
            .contains("holds 3 images (a, b, latest): choose one with --name NAME"),
        "{r:?}"
    );
    let r = env.run(&["image", "import", layout, "--name", "c"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("none is named \"c\""), "{r:?}");
    let r = env.run(&["image", "import", layout, "--name", "bad name"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("invalid image name \"bad name\""),
        "{r:?}"
    );
    let r = env.run(&["image", "import", "/nonexistent/x.tar"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("/nonexistent/x.tar"), "{r:?}");
    // Not an OCI archive.
    let junk = env.dir.path().join("junk.tar");
    std::fs::write(&junk, b"not a tar").unwrap();
    let r = env.run(&["image", "import", junk.to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("junk.tar"), "{r:?}");
    // A layout directory imports like an archive; its `latest` under another name.
    let r = env
        .run(&["--json", "image", "import", layout, "--name", "latest"])
        .ok()
        .json();
    assert_eq!(r["layers"].as_array().unwrap().len(), 1);
    // Re-importing another image under a taken name moves the name.
    let r = env.run(&["image", "import", layout, "--name", "a"]).ok();
    assert!(r.stdout.contains("1 already present"), "{r:?}");
    std::fs::create_dir(env.dir.path().join("only")).unwrap();
    let single = env.dir.path().join("only");
    sh(
        "tar",
        &[
            "-C".as_ref(),
            single.as_os_str(),
            "-xf".as_ref(),
            img.archive.as_os_str(),
        ],
    );
    let r = env
        .run(&[
            "--json",
            "image",
            "import",
            single.to_str().unwrap(),
            "--name",
            "a",
        ])
        .ok()
        .json();
    assert!(r["replaced"].is_string(), "{r}");
}

#[test]
fn a_corrupt_catalog_is_an_error_not_a_reset() {
    let env = Env::dir_store();
    env.run(&["image", "ls"]).ok();
    let file = env.store_root().join("catalog.json");
    std::fs::write(&file, "{oops").unwrap();
    for args in [
        &["image", "ls"][..],
        &["image", "prune"],
        &["image", "rm", "x"],
    ] {
        let r = env.run(args);
        assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("malformed catalog") && r.stderr.contains("catalog.json"),
            "{r:?}"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{oops");
}

#[test]
fn bad_image_store_config_is_a_usage_error() {
    let env = Env::new("kind = \"zfs\"\n");
    let r = env.run(&["image", "ls"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("image_store.dataset is required"),
        "{r:?}"
    );
    let env = Env::new("path = \"relative\"\n");
    let r = env.run(&["image", "ls"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr
            .contains("image_store.path = \"relative\": must be an absolute path"),
        "{r:?}"
    );
}

// ---- the ZFS store (zfs-fuse pool from tests/setup-zfs.sh) ----

fn pool() -> String {
    std::env::var("NEXCAGE_ZFS_POOL").unwrap_or_else(|_| "nexcage-test".into())
}

fn zfs(args: &[&str]) -> (bool, String) {
    let r = exec("zfs", args);
    (r.code == Some(0), r.stdout + &r.stderr)
}

/// Destroy `ds` and everything depending on it; zfs-fuse is briefly busy after unmounts.
fn destroy(ds: &str) {
    let mut out = String::new();
    for _ in 0..20 {
        if !zfs(&["list", ds]).0 {
            return;
        }
        let (ok, o) = zfs(&["destroy", "-R", "-f", ds]);
        if ok {
            return;
        }
        out = o;
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("destroy {ds}: {out}");
}

#[test]
#[ignore = "needs the zfs-fuse pool: tests/setup-zfs.sh"]
fn zfs_store_import_ls_rm_prune() {
    let img = images();
    let parent = format!("{}/cli-img", pool());
    let ct = format!("{}/cli-ct", pool());
    destroy(&ct);
    destroy(&parent);
    let env = Env::new(&format!("kind = \"zfs\"\ndataset = \"{parent}\"\n"));
    let layout = img.layout.to_str().unwrap();
    let a = env
        .run(&["--json", "image", "import", layout, "--name", "a"])
        .ok()
        .json();
    assert!(a["store"].as_str().unwrap().contains(&parent), "{a}");
    let b = env
        .run(&["--json", "image", "import", layout, "--name", "b"])
        .ok()
        .json();
    assert_eq!(b["layers"][0]["status"], "present", "{b}");
    let top_a = digest(&a["layers"][1]["chain_id"]);
    let base = digest(&a["layers"][0]["chain_id"]);
    let (_, children) = zfs(&["list", "-H", "-o", "name", "-r", &parent]);
    assert_eq!(children.lines().count(), 4, "parent + 3 layers: {children}");

    // A rootfs clone of `a` outside the store, through the store API.
    let (ok, out) = zfs(&["create", &ct]);
    assert!(ok, "create {ct}: {out}");
    let rootfs = rt().block_on(async {
        let mut cfg = ZfsStoreConfig::new(&parent);
        cfg.lock_dir = env.dir.path().join("state/image");
        let store = ZfsStore::open(nexcage_zfs::Zfs::new(), cfg, Default::default())
            .await
            .unwrap();
        let r = store
            .create_rootfs(&top_a, &format!("{ct}/subvol-100-disk-0"))
            .await
            .unwrap();
        (store, r)
    });
    assert!(rootfs.1.path.join("app-a").is_file());
    let rows = env.ls();
    assert_eq!(image(&rows, "a")["in_use"], 1, "{rows:?}");

    env.run(&["image", "rm", "a"]).ok();
    let p = env.run(&["--json", "image", "prune"]).ok().json();
    assert_eq!(p["removed"], Value::Array(vec![]), "{p}");
    assert_eq!(digest(&p["in_use"][0]["chain_id"]), top_a, "{p}");
    assert!(zfs(&["list", &format!("{parent}/{}", top_a.hex())]).0);

    rt().block_on(rootfs.0.remove_rootfs(&rootfs.1.name))
        .unwrap();
    let p = env.run(&["--json", "image", "prune"]).ok().json();
    assert_eq!(digest(&p["removed"][0]["chain_id"]), top_a, "{p}");
    assert!(!zfs(&["list", &format!("{parent}/{}", top_a.hex())]).0);
    assert!(zfs(&["list", &format!("{parent}/{}", base.hex())]).0);

    env.run(&["image", "rm", "b"]).ok();
    let p = env.run(&["--json", "image", "prune"]).ok().json();
    assert_eq!(p["removed"].as_array().unwrap().len(), 2, "{p}");
    let (_, children) = zfs(&["list", "-H", "-o", "name", "-r", &parent]);
    assert_eq!(children.lines().count(), 1, "{children}");
    destroy(&ct);
    destroy(&parent);
}
