//! `[rootfs] source = "image-store"` through `ctr run`: the shim asks the `nexcage` CLI to
//! unpack the container's image from containerd's content store into nexcage's image store,
//! mounts a rootfs made by the store on `<bundle>/rootfs` (a `zfs clone` on the ZFS store, a
//! copy on the directory store) and removes it when the container is deleted. nexcage only;
//! the rootfs scenarios run on every backend, the others on runc. The ZFS scenario needs the zfs-fuse pool of `tests/setup-zfs.sh`
//! (`NEXCAGE_ZFS_POOL`, default `nexcage-test`), which `tests/run.sh` sets up before this
//! suite; the CLI must be built (`cargo build -p nexcage-cli`).

use std::path::{Path, PathBuf};
use std::process::Command;

use nexcage_e2e::cmd::{self, TIMEOUT};
use nexcage_e2e::containerd::Containerd;
use nexcage_e2e::ctr::{Ctr, RunOpts};
use nexcage_e2e::{backend_tests, pve, Backend, Case};

/// The backend of the scenarios that are not about backends.
const BACKEND: Backend = Backend("runc");

// The store's rootfs on every backend (crun, runc, lxc).
backend_tests!(
    dir_store_rootfs_is_a_copy_removed_on_delete,
    zfs_store_rootfs_is_a_clone_destroyed_on_delete,
);

fn require_nexcage() {
    assert!(
        nexcage_e2e::is_nexcage(),
        "the image store is a nexcage feature; this scenario cannot run with E2E_RUNTIME={}",
        nexcage_e2e::runtime()
    );
}

/// The CLI next to the shim under test.
fn cli() -> PathBuf {
    let cli = nexcage_e2e::shim_binary()
        .parent()
        .expect("the shim has a directory")
        .join("nexcage");
    assert!(
        cli.is_file(),
        "{} does not exist: build it with `cargo build -p nexcage-cli`",
        cli.display()
    );
    cli
}

fn pool() -> String {
    std::env::var("NEXCAGE_ZFS_POOL").unwrap_or_else(|_| "nexcage-test".into())
}

fn zfs(args: &[&str]) -> cmd::Output {
    let mut c = Command::new("zfs");
    c.args(args);
    cmd::run(c, TIMEOUT)
}

/// `zfs get -H -p -o value PROP DATASET`, `None` when the dataset does not exist.
fn zfs_get(ds: &str, prop: &str) -> Option<String> {
    let out = zfs(&["get", "-H", "-p", "-o", "value", prop, ds]);
    out.success().then(|| out.stdout.trim().to_string())
}

/// Destroys the test's datasets when dropped (also on panic), retrying while zfs-fuse still
/// says "dataset is busy" after the last unmount.
struct Datasets(Vec<String>);

impl Drop for Datasets {
    fn drop(&mut self) {
        for ds in &self.0 {
            let mut last = None;
            let gone = cmd::poll(std::time::Duration::from_secs(20), || {
                if zfs_get(ds, "name").is_none() {
                    return Some(());
                }
                last = Some(zfs(&["destroy", "-r", "-f", ds]));
                None
            });
            if gone.is_none() {
                eprintln!("cleanup: zfs destroy -r {ds} keeps failing: {last:?}");
            }
        }
    }
}

/// The catalog JSON of a store.
fn catalog(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read the catalog {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Start `id` detached: it writes a file into its root, then sleeps. Returns the init pid.
fn start_writer(ctr: &Ctr<'_>, config: &Path, id: &str) -> u32 {
    let opts = RunOpts {
        config: Some(config.to_path_buf()),
        ..RunOpts::detached()
    };
    let out = ctr.run(
        &opts,
        id,
        &[
            "sh",
            "-c",
            "echo from-the-container > /written; exec sleep 1000",
        ],
    );
    ctr.expect(&out, "ctr run -d with rootfs.source = image-store");
    ctr.wait_status(id, "RUNNING").pid
}

/// The container sees its image's files: `ls /bin` of a `--rm` container.
fn assert_sees_image(ctr: &Ctr<'_>, config: &Path, id: &str) {
    let opts = RunOpts {
        config: Some(config.to_path_buf()),
        ..Default::default()
    };
    let out = ctr.run(&opts, id, &["ls", "/bin"]);
    ctr.expect(&out, "ctr run --rm ls /bin");
    for f in ["busybox", "sh", "sleep"] {
        assert!(
            out.stdout.split_whitespace().any(|w| w == f),
            "/bin of the image-store rootfs lacks {f}: {out:?}"
        );
    }
}

/// Poll until `path` holds the line the writer container writes.
fn wait_written(path: &Path) {
    let seen = cmd::poll(std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(path)
            .ok()
            .filter(|s| s.trim() == "from-the-container")
    });
    assert!(
        seen.is_some(),
        "{} never held what the container wrote into its root",
        path.display()
    );
}

fn dir_store_rootfs_is_a_copy_removed_on_delete(case: Case) {
    require_nexcage();
    let ctr = case.ctr();
    let store = ctr.ctd.dir().join("image-store");
    let config = ctr.write_config(&format!(
        "default_backend = \"{}\"\n[image_store]\nkind = \"dir\"\npath = \"{}\"\n\
         [rootfs]\nsource = \"image-store\"\ncli = \"{}\"\n",
        case.backend.0,
        store.display(),
        cli().display()
    ));
    let id = ctr.id("1");
    let ls = ctr.id("ls");
    let _g = ctr.guard(&[&id, &ls]);

    let pid = start_writer(&ctr, &config, &id);
    let rootfs = store.join("rootfs").join(format!("{}_{id}", ctr.ns));
    assert!(
        rootfs.join("bin/busybox").is_file(),
        "the store's rootfs {} has no /bin/busybox",
        rootfs.display()
    );
    // What the container writes lands in the store's copy: it is the container's root.
    wait_written(&rootfs.join("written"));
    let bundle = ctr.ctd.bundle(&ctr.ns, &id);
    assert!(bundle.join("nexcage-rootfs.json").is_file());
    let cat = catalog(&store.join("catalog.json"));
    let images = cat["images"].as_object().expect("catalog images");
    assert!(
        images.keys().any(|k| k.contains("busybox")),
        "the image was not recorded under containerd's name: {images:?}"
    );
    assert!(cat["rootfs"]
        .as_object()
        .is_some_and(|r| r.contains_key(&format!("{}_{id}", ctr.ns))));

    assert_sees_image(&ctr, &config, &ls);

    ctr.remove_and_check(&id, pid);
    assert!(
        !rootfs.exists(),
        "the rootfs copy {} is still there after delete",
        rootfs.display()
    );
    let cat = catalog(&store.join("catalog.json"));
    assert_eq!(
        cat["rootfs"].as_object().map(|r| r.len()),
        Some(0),
        "rootfs records left after delete: {}",
        cat["rootfs"]
    );
    let left: Vec<_> = std::fs::read_dir(store.join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temporaries left in the store: {left:?}");
}

fn zfs_store_rootfs_is_a_clone_destroyed_on_delete(case: Case) {
    require_nexcage();
    let pool = pool();
    assert!(
        zfs_get(&pool, "name").is_some(),
        "the ZFS pool {pool} does not exist: run `bash tests/setup-zfs.sh` (or set \
         NEXCAGE_ZFS_POOL)"
    );
    let ctr = case.ctr();
    let parent = format!("{pool}/e2e-{}-{}-img", std::process::id(), case.backend.0);
    let clones = format!("{pool}/e2e-{}-{}-ct", std::process::id(), case.backend.0);
    let _ds = Datasets(vec![clones.clone(), parent.clone()]);
    let config = ctr.write_config(&format!(
        "default_backend = \"{}\"\n[image_store]\nkind = \"zfs\"\ndataset = \"{parent}\"\n\
         [rootfs]\nsource = \"image-store\"\ndataset = \"{clones}\"\ncli = \"{}\"\n",
        case.backend.0,
        cli().display()
    ));
    let a = ctr.id("a");
    let b = ctr.id("b");
    let ls = ctr.id("ls");
    let _g = ctr.guard(&[&a, &b, &ls]);

    let pid_a = start_writer(&ctr, &config, &a);
    let pid_b = start_writer(&ctr, &config, &b);
    let clone_a = format!("{clones}/{}_{a}", ctr.ns);
    let clone_b = format!("{clones}/{}_{b}", ctr.ns);
    let origin_a = zfs_get(&clone_a, "origin")
        .unwrap_or_else(|| panic!("no dataset {clone_a}\n{}", ctr.ctd.log_tail(30)));
    let origin_b = zfs_get(&clone_b, "origin").unwrap_or_else(|| panic!("no dataset {clone_b}"));
    // Both are clones of the same layer snapshot of the store: unpacked once, cloned twice.
    assert!(
        origin_a.starts_with(&format!("{parent}/")) && origin_a.ends_with("@snap"),
        "{clone_a} is not a clone of a store layer: origin {origin_a:?}"
    );
    assert_eq!(
        origin_a, origin_b,
        "the second container did not reuse the layer"
    );
    let layers = zfs(&["list", "-H", "-o", "name", "-r", &parent]);
    assert_eq!(
        layers.stdout.lines().filter(|l| *l != parent).count(),
        1,
        "the one-layer image unpacked into more than one dataset: {layers:?}"
    );
    let mp = zfs_get(&clone_a, "mountpoint").expect("mountpoint");
    wait_written(&Path::new(&mp).join("written"));

    assert_sees_image(&ctr, &config, &ls);
    assert_eq!(
        zfs_get(&format!("{clones}/{}_{ls}", ctr.ns), "name"),
        None,
        "the --rm container's clone is still there"
    );

    ctr.remove_and_check(&a, pid_a);
    assert_eq!(
        zfs_get(&clone_a, "name"),
        None,
        "{clone_a} still exists after delete"
    );
    assert!(zfs_get(&clone_b, "name").is_some(), "{clone_b} went too");
    ctr.remove_and_check(&b, pid_b);
    assert_eq!(zfs_get(&clone_b, "name"), None, "{clone_b} still exists");
    let tmp = zfs(&["list", "-H", "-o", "name", "-r", &parent]);
    assert!(
        !tmp.stdout.contains("/tmp-"),
        "temporary datasets left: {tmp:?}"
    );
}

/// proxmox-lxc on a node with a zfspool storage: the image store's clone is made under the CT
/// volume's name, `<pool>/subvol-<vmid>-disk-0`, registered as `rootfs: local-zfs:subvol-…`;
/// delete (`pct destroy --purge`) destroys it, and the store's catalog forgets it.
#[test]
fn proxmox_zfs_clone_is_the_ct_volume() {
    require_nexcage();
    let pool = pool();
    assert!(
        zfs_get(&pool, "name").is_some(),
        "the ZFS pool {pool} does not exist: run `bash tests/setup-zfs.sh`"
    );
    // An instance of its own: its simulated node gets the zfspool storage.
    let ctd = Containerd::start();
    let case = Case {
        backend: Backend(pve::NAME),
        name: "istore_pve_volume",
    };
    let vols = format!("{pool}/e2e-{}-pvevol", std::process::id());
    let parent = format!("{pool}/e2e-{}-pve-img", std::process::id());
    let _ds = Datasets(vec![vols.clone(), parent.clone()]);
    let made = zfs(&["create", &vols]);
    assert!(made.success(), "zfs create {vols}: {made:?}");
    pve::add_zfs_storage(ctd.dir(), &vols);
    let ctr = case.ctr_on(&ctd);
    let config = ctr.write_config(&format!(
        "default_backend = \"{}\"\n[image_store]\nkind = \"zfs\"\ndataset = \"{parent}\"\n\
         [rootfs]\nsource = \"image-store\"\ncli = \"{}\"\n",
        pve::NAME,
        cli().display()
    ));
    assert!(
        std::fs::read_to_string(&config).is_ok_and(|t| t.contains("storage = \"local-zfs\"")),
        "the config does not name the zfspool storage"
    );
    let a = ctr.id("a");
    let _g = ctr.guard(&[&a]);
    let pid = start_writer(&ctr, &config, &a);

    let volumes: Vec<String> = zfs(&["list", "-H", "-o", "name", "-r", &vols])
        .stdout
        .lines()
        .filter(|l| *l != vols)
        .map(str::to_string)
        .collect();
    assert_eq!(volumes.len(), 1, "one CT volume: {volumes:?}");
    let vol = &volumes[0];
    let vmid = vol
        .strip_prefix(&format!("{vols}/subvol-"))
        .and_then(|r| r.strip_suffix("-disk-0"))
        .unwrap_or_else(|| panic!("{vol} is not named subvol-<vmid>-disk-0"));
    let origin = zfs_get(vol, "origin").unwrap_or_default();
    assert!(
        origin.starts_with(&format!("{parent}/")) && origin.ends_with("@snap"),
        "{vol} is not a clone of a store layer: origin {origin:?}"
    );
    let mp = zfs_get(vol, "mountpoint").expect("mountpoint");
    wait_written(&Path::new(&mp).join("written"));
    let mut c = Command::new(pve::pct_binary());
    c.args(["config", vmid]).envs(pve::envs(ctd.dir()));
    let conf = cmd::run(c, TIMEOUT);
    assert!(
        conf.stdout
            .lines()
            .any(|l| l == format!("rootfs: local-zfs:subvol-{vmid}-disk-0")),
        "CT {vmid} does not use the volume: {conf:?}"
    );
    let store_mp = zfs_get(&parent, "mountpoint").expect("store mountpoint");
    let cat = catalog(&Path::new(&store_mp).join("catalog.json"));
    assert!(
        cat["rootfs"].get(vol).is_some(),
        "catalog lacks {vol}: {cat}"
    );

    ctr.remove_and_check(&a, pid);
    assert_eq!(
        zfs_get(vol, "name"),
        None,
        "{vol} still exists after delete"
    );
    let cat = catalog(&Path::new(&store_mp).join("catalog.json"));
    assert!(
        cat["rootfs"].get(vol).is_none(),
        "the catalog still lists {vol}: {cat}"
    );
}

/// The CLI on its own: by image name (what the shim runs for a CRI container), twice (the
/// second finds every layer present), and an unknown image named in the error.
#[test]
fn cli_pulls_by_image_name_from_containerd() {
    require_nexcage();
    let case = Case {
        backend: BACKEND,
        name: "istore_cli",
    };
    let ctr = case.ctr();
    let store = ctr.ctd.dir().join("image-store-cli");
    let config = ctr.write_config(&format!(
        "[image_store]\nkind = \"dir\"\npath = \"{}\"\n",
        store.display()
    ));
    let pull = |image: &str| {
        let mut c = Command::new(cli());
        c.arg("--config")
            .arg(&config)
            .args(["--json", "image", "pull-from-containerd", "--address"])
            .arg(ctr.ctd.socket())
            .args(["--namespace", &ctr.ns, image]);
        cmd::run(c, TIMEOUT)
    };
    let image = nexcage_e2e::image::IMAGE;
    for (round, status) in [(1, "unpacked"), (2, "present")] {
        let out = pull(image);
        assert!(out.success(), "pull {round}: {out:?}");
        let v: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("pull {round}: not JSON ({e}): {out:?}"));
        assert_eq!(v["name"], image, "{v}");
        assert_eq!(
            v["source"],
            format!("containerd://{}/{image}", ctr.ns),
            "{v}"
        );
        let layers = v["layers"].as_array().expect("layers");
        assert!(!layers.is_empty());
        assert!(
            layers.iter().all(|l| l["status"] == status),
            "pull {round}: every layer should be {status}: {v}"
        );
    }
    let out = pull("local/no-such-image:latest");
    assert!(!out.success(), "an unknown image was pulled: {out:?}");
    assert!(
        out.stderr.contains("local/no-such-image:latest") && out.stderr.contains("not found"),
        "the error does not name the image: {out:?}"
    );
}

/// A Create that fails after the rootfs was made (the backend cannot start a missing binary)
/// leaves no rootfs, record or mount; a missing CLI fails Create with a message naming it.
#[test]
fn failed_create_leaves_no_rootfs() {
    require_nexcage();
    let case = Case {
        backend: BACKEND,
        name: "istore_fail",
    };
    let ctr = case.ctr();
    let store = ctr.ctd.dir().join("image-store-fail");
    let body = |cli: &Path| {
        format!(
            "default_backend = \"{}\"\n[image_store]\nkind = \"dir\"\npath = \"{}\"\n\
             [rootfs]\nsource = \"image-store\"\ncli = \"{}\"\n",
            BACKEND.0,
            store.display(),
            cli.display()
        )
    };
    let opts = |config: PathBuf| RunOpts {
        config: Some(config),
        ..Default::default()
    };
    let id = ctr.id("nobin");
    let nocli = ctr.id("nocli");
    let _g = ctr.guard(&[&id, &nocli]);

    let out = ctr.run(
        &opts(ctr.write_config(&body(&cli()))),
        &id,
        &["/no/such/binary"],
    );
    assert!(!out.success(), "a missing binary ran: {out:?}");
    let rootfs = store.join("rootfs").join(format!("{}_{id}", ctr.ns));
    assert!(
        !rootfs.exists(),
        "the failed create left its rootfs {}",
        rootfs.display()
    );
    let cat = catalog(&store.join("catalog.json"));
    assert_eq!(
        cat["rootfs"].as_object().map(|r| r.len()),
        Some(0),
        "rootfs records left: {}",
        cat["rootfs"]
    );
    ctr.assert_nothing_left(&id, &[]);

    let missing = Path::new("/nonexistent/nexcage");
    let out = ctr.run(&opts(ctr.write_config(&body(missing))), &nocli, &["true"]);
    assert!(!out.success(), "ran without the CLI: {out:?}");
    assert!(
        out.stderr.contains("/nonexistent/nexcage") && out.stderr.contains("rootfs.cli"),
        "the error does not name the missing CLI and its key: {out:?}"
    );
    ctr.assert_nothing_left(&nocli, &[]);
}
