//! The proxmox-lxc backend on the Proxmox simulator (`tests/pve-sim`): real LXC containers run
//! by this process under their VMID in the simulated node's lxcpath, CT configs written by the
//! simulated `pct`, ZFS volumes on the zfs-fuse pool. Ignored by default (root, LXC, busybox
//! and the pool `nexcage-test` from `tests/setup-zfs.sh`); `tests/run.sh` runs them.

#[path = "../../lxc/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{create_config, exit_code, spec, unique, Bundle, Stdio};
use nexcage_core::backend::Backend;
use nexcage_core::config::{BackendSettings, ProxmoxConfig};
use nexcage_core::{ErrorKind, HasKind};
use nexcage_pve::PveBackend;
use nexcage_pve_sim::testing::{bin_dir, capture, zfs_exists, SimRoot};
use serde_json::json;

const POOL: &str = "nexcage-test";
const IGNORE: &str =
    "needs root, LXC, busybox-static and the zfs pool nexcage-test (tests/setup-zfs.sh)";

/// A simulated node with a zfspool storage, a state root, and pct/pvesh wrappers that log
/// every call (to count control-plane calls).
struct Node {
    sim: SimRoot,
    pool: String,
    state: tempfile::TempDir,
    wrappers: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        common::require();
        let sim = SimRoot::new("pve1");
        // Not SimRoot::zfs_storage: it uses Command::output(), which the reaper started by
        // common::require() in this process makes fail with ECHILD.
        let pool = format!(
            "{POOL}/pvetest-{}",
            sim.root.file_name().unwrap().to_string_lossy()
        );
        let (_, err) = capture(Command::new("zfs").args(["create", &pool]));
        assert!(zfs_exists(&pool), "zfs create {pool}: {err}");
        sim.write_storage_cfg(&format!(
            "dir: local\n\tpath {}\n\tcontent iso,vztmpl,backup\n\nzfspool: local-zfs\n\tpool {pool}\n\tsparse\n\tcontent images,rootdir\n",
            sim.root.join("var/lib/vz").display()
        ));
        let wrappers = tempfile::tempdir().unwrap();
        for tool in ["pct", "pvesh"] {
            let p = wrappers.path().join(tool);
            std::fs::write(
                &p,
                format!(
                    "#!/bin/sh\necho \"{tool} $1\" >> {log}\nexec {real} \"$@\"\n",
                    log = wrappers.path().join("calls").display(),
                    real = bin_dir().join(tool).display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Node {
            sim,
            pool,
            state: tempfile::tempdir().unwrap(),
            wrappers,
        }
    }

    fn settings(&self) -> BackendSettings {
        BackendSettings {
            name: nexcage_pve::NAME.into(),
            enabled: true,
            priority: 30,
            binary: Some(self.wrappers.path().join("pct")),
            root: self.state.path().to_path_buf(),
            timeout: Duration::from_secs(30),
            proxmox: Some(ProxmoxConfig {
                storage: Some("local-zfs".into()),
                node: Some(self.sim.node.clone()),
                vmid_range: Some("100100-100199".into()),
                etc_pve: Some(self.sim.root.join("etc/pve")),
                lxcpath: Some(self.sim.lxcpath()),
            }),
        }
    }

    fn backend(&self, envs: &[(&str, &str)]) -> PveBackend {
        let mut b = PveBackend::new(&self.settings(), "test");
        for (k, v) in self.sim.envs() {
            b = b.tool_env(&k, &v);
        }
        for (k, v) in envs {
            b = b.tool_env(k, v);
        }
        b
    }

    /// Run a simulator tool as an administrator would.
    fn admin(&self, tool: &str, args: &[&str]) -> (String, String) {
        let mut c = Command::new(bin_dir().join(tool));
        c.args(args).envs(self.sim.envs());
        capture(&mut c)
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.wrappers.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn conf(&self, vmid: u32) -> PathBuf {
        self.sim
            .root
            .join(format!("etc/pve/nodes/{}/lxc/{vmid}.conf", self.sim.node))
    }

    fn records(&self) -> usize {
        std::fs::read_dir(self.state.path().join("records"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Nothing of CT `vmid` is left: config, LXC directory, volume, record.
    fn assert_gone(&self, vmid: u32) {
        assert!(!self.conf(vmid).exists(), "config of {vmid} left");
        assert!(
            !self.sim.lxcpath().join(vmid.to_string()).exists(),
            "lxc dir of {vmid} left"
        );
        assert!(
            !zfs_exists(&format!("{}/subvol-{vmid}-disk-0", self.pool)),
            "volume of {vmid} left"
        );
        assert_eq!(self.records(), 0, "records left");
        let (list, _) = self.admin("pct", &["list"]);
        assert!(
            !list.contains(&vmid.to_string()),
            "pct list still shows {vmid}: {list}"
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        nexcage_pve_sim::testing::stop_all(&self.sim.lxcpath());
        for _ in 0..10 {
            capture(Command::new("zfs").args(["destroy", "-r", &self.pool]));
            if !zfs_exists(&self.pool) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn pod_spec(id: &str, args: &[&str]) -> serde_json::Value {
    let mut s = spec(id, args);
    s["annotations"] = json!({
        "io.kubernetes.cri.sandbox-name": "web",
        "io.kubernetes.cri.sandbox-namespace": "shop",
        "io.kubernetes.cri.container-name": "app",
    });
    s["linux"]["resources"]["memory"] = json!({"limit": 134217728, "swap": 201326592});
    s["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000, "shares": 1024});
    s
}

#[tokio::test]
#[ignore = "needs root, LXC, busybox-static and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn a_ct_per_container_with_tags_and_limits_and_one_control_plane_call() {
    let _ = IGNORE;
    let node = Node::new();
    let b = node.backend(&[("PVE_SIM_LATENCY_MS", "1000-1700")]);
    let bundle = Bundle::new();
    let id = unique("pve");
    let mut io = Stdio::new();
    let before = node.calls().len();
    let t = Instant::now();
    let s = b
        .create(create_config(
            &id,
            &bundle,
            pod_spec(&id, &["sleep", "600"]),
            io.child(false),
        ))
        .await
        .unwrap();
    b.start(&id).await.unwrap();
    let took = t.elapsed();
    let critical: Vec<String> = node.calls()[before..].to_vec();
    assert_eq!(
        critical,
        ["pct create"],
        "control-plane calls on Create→Start"
    );
    let vmid = b.vmid(&id).unwrap();
    eprintln!(
        "proxmox-lxc create→running with sim latency 1000-1700 ms: {took:?}, calls {critical:?}"
    );

    // The plain lxc backend, same spec, for comparison.
    let lxc_root = tempfile::tempdir().unwrap();
    let lxc = nexcage_lxc::LxcBackend::new(&common::settings(lxc_root.path()), "test");
    let lbundle = Bundle::new();
    let lid = unique("lxc");
    let mut lio = Stdio::new();
    let t = Instant::now();
    lxc.create(create_config(
        &lid,
        &lbundle,
        pod_spec(&lid, &["sleep", "600"]),
        lio.child(false),
    ))
    .await
    .unwrap();
    lxc.start(&lid).await.unwrap();
    eprintln!("lxc create→running: {:?}", t.elapsed());
    lxc.delete(&lid).await.unwrap();

    let (status, _) = node.admin("pct", &["status", &vmid.to_string()]);
    assert_eq!(status.trim(), "status: running");
    let (list, _) = node.admin("pct", &["list"]);
    let row = list
        .lines()
        .find(|l| l.starts_with(&vmid.to_string()))
        .unwrap_or_default();
    assert!(row.contains("running"), "pct list: {list}");
    let (conf, err) = node.admin("pct", &["config", &vmid.to_string()]);
    for want in [
        "memory: 128\n",
        "swap: 64\n",
        "cores: 1\n",
        "cpulimit: 0.5\n",
        "cpuunits: 39\n",
        "ostype: unmanaged\n",
        "arch: amd64\n",
        "tags: nexcage;ns-test;pod-shop-web;ctr-app\n",
    ] {
        assert!(
            conf.contains(want),
            "{want:?} not in pct config: {conf}{err}"
        );
    }
    // The description is printed URI-escaped (proxmox.md §2.8).
    assert!(
        conf.contains("%0Apod%3A shop/web%0Acontainer%3A app\n"),
        "{conf}"
    );
    assert!(
        conf.contains(&format!("rootfs: {}", bundle.rootfs().display())),
        "bind rootfs: {conf}"
    );
    assert!(
        !conf.contains("unprivileged: 1"),
        "no user namespace: privileged, said so: {conf}"
    );
    let (host, _) = node.admin("pct", &["exec", &vmid.to_string(), "--", "hostname"]);
    assert_eq!(
        host.trim(),
        id.replace('_', "-"),
        "pct exec reaches the shim's container"
    );

    // Delete: task gone, CT gone.
    b.kill(&id, 9, false).await.unwrap();
    assert_eq!(exit_code(s.exit, 10).await, 137);
    b.delete(&id).await.unwrap();
    node.assert_gone(vmid);
    b.delete(&id).await.unwrap();
}

/// An "image" dataset with a busybox tree and `@snap`, like the ZFS image store's layers.
fn image_dataset(node: &Node) -> String {
    let img = format!("{}/img", node.pool);
    let (_, err) = capture(Command::new("zfs").args(["create", &img]));
    assert!(zfs_exists(&img), "zfs create {img}: {err}");
    let (mnt, _) =
        capture(Command::new("zfs").args(["get", "-H", "-o", "value", "mountpoint", &img]));
    let src = Bundle::new();
    let (_, err) = capture(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", src.rootfs().display()))
            .arg(mnt.trim()),
    );
    assert!(err.is_empty(), "{err}");
    capture(Command::new("zfs").args(["snapshot", &format!("{img}@snap")]));
    img
}

fn zfs_get(prop: &str, ds: &str) -> String {
    let (out, _) = capture(Command::new("zfs").args(["get", "-H", "-o", "value", prop, ds]));
    out.trim().to_string()
}

fn bind(src: &Path, dst: &Path) {
    nix::mount::mount(
        Some(src),
        dst,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
}

#[tokio::test]
#[ignore = "needs root, LXC, busybox-static and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn the_rootfs_is_a_clone_of_the_image_registered_as_the_ct_volume() {
    let node = Node::new();
    let b = node.backend(&[]);
    let img = image_dataset(&node);
    let bundle = Bundle::new();
    let id = unique("zfs");
    // What the runtime does with [rootfs] source = "image-store": clone under the reserved name
    // and bind it on <bundle>/rootfs.
    let r = b.reserve(&id, bundle.path()).unwrap();
    let ds = r.dataset.clone().unwrap();
    assert_eq!(ds, format!("{}/subvol-{}-disk-0", node.pool, r.vmid));
    capture(Command::new("zfs").args(["clone", &format!("{img}@snap"), &ds]));
    assert_eq!(zfs_get("origin", &ds), format!("{img}@snap"));
    bind(Path::new(&zfs_get("mountpoint", &ds)), &bundle.rootfs());
    let mut io = Stdio::new();
    let s = b
        .create(create_config(
            &id,
            &bundle,
            spec(&id, &["sh", "-c", "echo hi > /root/x; sleep 600"]),
            io.child(false),
        ))
        .await
        .unwrap();
    b.start(&id).await.unwrap();
    assert_eq!(b.vmid(&id).unwrap(), r.vmid);
    let (conf, _) = node.admin("pct", &["config", &r.vmid.to_string()]);
    assert!(
        conf.contains(&format!("rootfs: local-zfs:subvol-{}-disk-0\n", r.vmid)),
        "{conf}"
    );
    common::eventually("the write lands in the CT's volume", || {
        std::fs::read_to_string(Path::new(&zfs_get("mountpoint", &ds)).join("root/x"))
            .is_ok_and(|s| s == "hi\n")
    })
    .await;
    b.kill(&id, 15, false).await.unwrap();
    exit_code(s.exit, 10).await;
    b.delete(&id).await.unwrap();
    node.assert_gone(r.vmid);
    assert!(zfs_exists(&img), "the image is kept");
}

#[tokio::test]
#[ignore = "needs root, LXC, busybox-static and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn concurrent_creates_never_collide_and_taken_ids_are_skipped() {
    let node = Node::new();
    // An administrator's CT at the start of nexcage's range.
    let tmpl = node.sim.busybox_template("bb.tar");
    let (_, err) = node.admin(
        "pct",
        &[
            "create",
            "100100",
            &tmpl,
            "--rootfs",
            "local-zfs:0.1",
            "--tags",
            "mine",
        ],
    );
    assert!(node.conf(100100).exists(), "{err}");
    let lat = [("PVE_SIM_LATENCY_MS", "200-600")];
    let (b1, b2) = (node.backend(&lat), node.backend(&lat));
    let bundles: Vec<Bundle> = (0..4).map(|_| Bundle::new()).collect();
    let ids: Vec<String> = (0..4).map(|_| unique("cc")).collect();
    let mut ios: Vec<Stdio> = (0..4).map(|_| Stdio::new()).collect();
    let cfgs: Vec<_> = ios
        .iter_mut()
        .zip(&ids)
        .zip(&bundles)
        .map(|((io, id), bu)| create_config(id, bu, spec(id, &["sleep", "600"]), io.child(false)))
        .collect();
    let mut cfgs = cfgs.into_iter();
    let (r1, r2, r3, r4) = tokio::join!(
        b1.create(cfgs.next().unwrap()),
        b2.create(cfgs.next().unwrap()),
        b1.create(cfgs.next().unwrap()),
        b2.create(cfgs.next().unwrap()),
    );
    for r in [&r1, &r2, &r3, &r4] {
        assert!(r.is_ok(), "{:?}", r.as_ref().err());
    }
    let mut vmids: Vec<u32> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| if i % 2 == 0 { b1.vmid(id) } else { b2.vmid(id) }.unwrap())
        .collect();
    vmids.sort_unstable();
    assert_eq!(
        vmids,
        [100101, 100102, 100103, 100104],
        "distinct, the admin's 100100 skipped"
    );
    let (list, _) = node.admin("pct", &["list"]);
    assert_eq!(
        list.lines().count(),
        6,
        "header, the admin's CT and ours: {list}"
    );

    // A VMID taken behind the allocator's back (reserved, then created by someone else):
    // pct create says it exists and the backend moves on to the next one.
    let bundle = Bundle::new();
    let id = unique("race");
    let taken = b1.reserve(&id, bundle.path()).unwrap().vmid;
    let (_, err) = node.admin(
        "pct",
        &[
            "create",
            &taken.to_string(),
            &tmpl,
            "--rootfs",
            "local-zfs:0.1",
        ],
    );
    assert!(node.conf(taken).exists(), "{err}");
    let mut io = Stdio::new();
    b1.create(create_config(
        &id,
        &bundle,
        spec(&id, &["sleep", "600"]),
        io.child(false),
    ))
    .await
    .unwrap();
    assert_ne!(b1.vmid(&id).unwrap(), taken);
    for (i, id) in ids.iter().chain([&id]).enumerate() {
        let b = if i % 2 == 0 || i == 4 { &b1 } else { &b2 };
        b.delete(id).await.unwrap();
    }
    assert_eq!(node.records(), 0);
    assert!(
        node.conf(100100).exists() && node.conf(taken).exists(),
        "foreign CTs untouched"
    );
    node.admin("pct", &["destroy", "100100", "--purge"]);
    node.admin("pct", &["destroy", &taken.to_string(), "--purge"]);
}

#[tokio::test]
#[ignore = "needs root, LXC, busybox-static and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn lost_quorum_is_unavailable_and_creates_nothing() {
    let node = Node::new();
    let b = node.backend(&[("PVE_SIM_NO_QUORUM", "1")]);
    let bundle = Bundle::new();
    let id = unique("nq");
    let mut io = Stdio::new();
    let e = b
        .create(create_config(
            &id,
            &bundle,
            spec(&id, &["sleep", "600"]),
            io.child(false),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{}", e.chain());
    assert!(e.chain().contains("no quorum"), "{}", e.chain());
    assert_eq!(node.records(), 0);
    assert!(std::fs::read_dir(node.sim.lxcpath()).map_or(true, |d| d.count() == 0));
    let (list, _) = node.admin("pct", &["list"]);
    assert!(list.is_empty(), "{list}");
}

#[tokio::test]
#[ignore = "needs root, LXC, busybox-static and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn admin_stop_ends_the_task_and_admin_destroy_is_a_clear_error() {
    let node = Node::new();
    let b = node.backend(&[]);
    let bundle = Bundle::new();
    let id = unique("adm");
    let mut io = Stdio::new();
    let s = b
        .create(create_config(
            &id,
            &bundle,
            spec(&id, &["sleep", "600"]),
            io.child(false),
        ))
        .await
        .unwrap();
    b.start(&id).await.unwrap();
    let vmid = b.vmid(&id).unwrap().to_string();
    let (_, err) = node.admin("pct", &["stop", &vmid]);
    let code = exit_code(s.exit, 20).await;
    assert_ne!(
        code, 0,
        "pct stop ends the task with a failure exit ({err})"
    );
    eprintln!("admin pct stop: task exit {code}");
    node.admin("pct", &["destroy", &vmid]);
    assert!(!node.conf(vmid.parse().unwrap()).exists());
    let e = b.start(&id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    assert!(
        e.message().contains(&format!("CT {vmid}")) && e.message().contains("pct destroy"),
        "{}",
        e.message()
    );
    b.delete(&id).await.unwrap();
    node.assert_gone(vmid.parse().unwrap());
}

/// A CRI-annotated spec: `container-type` and `sandbox-id` as containerd's CRI plugin sets them.
fn cri_spec(id: &str, sandbox: &str, kind: &str, args: &[&str]) -> serde_json::Value {
    let mut s = pod_spec(id, args);
    s["annotations"]["io.kubernetes.cri.container-type"] = json!(kind);
    s["annotations"]["io.kubernetes.cri.sandbox-id"] = json!(sandbox);
    s
}

/// Create container `id` of pod `sandbox` (`kind`: `sandbox` or `container`) running `sleep
/// 600`; its bundle and stdio are returned to live as long as it.
async fn create_cri(
    b: &PveBackend,
    id: &str,
    sandbox: &str,
    kind: &str,
) -> (Bundle, Stdio, nexcage_core::types::Spawned) {
    let bundle = Bundle::new();
    let mut io = Stdio::new();
    let spec = cri_spec(id, sandbox, kind, &["sleep", "600"]);
    let s = b
        .create(create_config(id, &bundle, spec, io.child(false)))
        .await
        .unwrap();
    (bundle, io, s)
}

/// Poll `cond` every 100 ms for up to `secs`.
async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 10 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cond()
}

/// The pod's one control-plane call on the critical path: the sandbox registers its CT in
/// Create (`pct create`), an app container of that pod is created and started before its own
/// `pct create` has returned (the simulator sleeps 3 s per call), is registered in the
/// background, and a Delete that comes while that registration runs waits for it and leaves
/// nothing.
#[tokio::test]
#[ignore = "needs root, LXC, busybox-static and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn app_containers_of_a_registered_pod_register_in_the_background() {
    let node = Node::new();
    let b = node.backend(&[("PVE_SIM_LATENCY_MS", "3000")]);
    let sandbox = unique("sb");
    let app = unique("app");
    let _sb = create_cri(&b, &sandbox, &sandbox, "sandbox").await;
    let sb_vmid = b.vmid(&sandbox).unwrap();
    assert!(
        node.conf(sb_vmid).exists(),
        "the sandbox registers in Create"
    );
    b.start(&sandbox).await.unwrap();

    let calls = node.calls().len();
    let (_app_bundle, _app_io, s) = create_cri(&b, &app, &sandbox, "container").await;
    b.start(&app).await.unwrap();
    let vmid = b.vmid(&app).unwrap();
    // Started while its pct create still sleeps in the simulator: not registered yet.
    assert!(
        !node.conf(vmid).exists(),
        "CT {vmid} was registered before Start returned: Create waited for pct create"
    );
    assert!(
        b.pids(&app).await.unwrap().contains(&s.pid),
        "the app container runs before its CT is registered"
    );
    assert!(
        eventually(30, || node.conf(vmid).exists()).await,
        "CT {vmid} never registered"
    );
    assert_eq!(
        node.calls()[calls..],
        ["pct create"],
        "one call, in the background"
    );
    let (status, _) = node.admin("pct", &["status", &vmid.to_string()]);
    assert_eq!(status.trim(), "status: running");
    let (conf, _) = node.admin("pct", &["config", &vmid.to_string()]);
    assert!(
        conf.contains("tags: nexcage;ns-test;pod-shop-web;ctr-app\n"),
        "{conf}"
    );
    // The record says the CT exists (the sweep and Delete rely on it).
    let ok = eventually(10, || {
        std::fs::read_to_string(node.state.path().join(format!("records/{vmid}.json")))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|r| r["created"] == json!(true))
    })
    .await;
    assert!(ok, "the record of {vmid} does not say created");

    // Delete while the registration is still running: it waits, then destroys the CT.
    let late = unique("late");
    let _late = create_cri(&b, &late, &sandbox, "container").await;
    let late_vmid = b.vmid(&late).unwrap();
    assert!(
        !node.conf(late_vmid).exists(),
        "registered before Create returned"
    );
    b.delete(&late).await.unwrap();
    assert!(
        !node.conf(late_vmid).exists(),
        "CT {late_vmid} left after delete"
    );
    assert!(
        !node.sim.lxcpath().join(late_vmid.to_string()).exists(),
        "lxc dir of {late_vmid} left"
    );

    b.kill(&app, 9, false).await.unwrap();
    assert_eq!(exit_code(s.exit, 10).await, 137);
    b.delete(&app).await.unwrap();
    b.kill(&sandbox, 9, false).await.unwrap();
    b.delete(&sandbox).await.unwrap();
    node.assert_gone(vmid);
    node.assert_gone(sb_vmid);
}

/// Between Create and Start the CT's program waits inside the container (the lxc backend's
/// in-container hold), so LXC answers for the CT as PVE asks it (`lxc-info -p`, which `pct
/// status --verbose`, `pct list` and pvestatd use; `pct exec`) while the program has not run;
/// Start runs it.
#[tokio::test]
#[ignore = "needs root, LXC, busybox-static and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn a_created_ct_answers_proxmox_before_start_and_runs_nothing_until_then() {
    let node = Node::new();
    let b = node.backend(&[]);
    let bundle = Bundle::new();
    let id = unique("held");
    let mut io = Stdio::new();
    let script = "echo ran > /ran; exec sleep 600";
    let s = b
        .create(create_config(
            &id,
            &bundle,
            spec(&id, &["sh", "-c", script]),
            io.child(false),
        ))
        .await
        .unwrap();
    let vmid = b.vmid(&id).unwrap().to_string();
    let lxcpath = node.sim.lxcpath().display().to_string();
    // `timeout`: with the init held in the monitor's start-host hook this would never answer.
    let (info, err) = capture(
        Command::new("timeout").args(["20", "lxc-info", "-n", &vmid, "-P", &lxcpath, "-p"]),
    );
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("PID:"))
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        pid,
        s.pid.to_string(),
        "lxc-info -p before Start: {info}{err}"
    );
    let (status, _) = node.admin("pct", &["status", &vmid, "--verbose"]);
    assert!(
        status.contains(&format!("pid: {}", s.pid)) && status.contains("status: running"),
        "{status}"
    );
    let (ls, err) = node.admin("pct", &["exec", &vmid, "--", "ls", "/"]);
    assert!(ls.contains("bin"), "pct exec before Start: {ls}{err}");
    assert!(
        !bundle.rootfs().join("ran").exists(),
        "the program ran before Start"
    );

    b.start(&id).await.unwrap();
    assert!(
        eventually(20, || bundle.rootfs().join("ran").exists()).await,
        "the program did not run after Start"
    );
    b.kill(&id, 9, false).await.unwrap();
    assert_eq!(exit_code(s.exit, 10).await, 137);
    b.delete(&id).await.unwrap();
    node.assert_gone(vmid.parse().unwrap());
}

/// Kill before Start of a held CT: the program never runs and the task exits with 128+signal.
#[tokio::test]
#[ignore = "needs root, LXC, busybox-static and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn kill_before_start_of_a_held_ct_runs_nothing() {
    let node = Node::new();
    let b = node.backend(&[]);
    let bundle = Bundle::new();
    let id = unique("heldkill");
    let mut io = Stdio::new();
    let s = b
        .create(create_config(
            &id,
            &bundle,
            spec(&id, &["sh", "-c", "echo ran > /ran"]),
            io.child(false),
        ))
        .await
        .unwrap();
    let vmid = b.vmid(&id).unwrap();
    b.kill(&id, 15, false).await.unwrap();
    assert_eq!(exit_code(s.exit, 20).await, 143);
    assert!(!bundle.rootfs().join("ran").exists(), "the program ran");
    b.delete(&id).await.unwrap();
    node.assert_gone(vmid);
}

/// Delete while another process (a sweep in another shim) is destroying the same CT: `pct
/// destroy` says `CT is locked (destroyed)`; Delete waits for that destroy to finish instead of
/// failing and leaving the task's files to containerd.
#[tokio::test]
#[ignore = "needs root, LXC, busybox-static and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn delete_during_someone_elses_destroy_waits_for_it() {
    let node = Node::new();
    let b = node.backend(&[]);
    let bundle = Bundle::new();
    let id = unique("racedel");
    let mut io = Stdio::new();
    let s = b
        .create(create_config(
            &id,
            &bundle,
            spec(&id, &["sleep", "600"]),
            io.child(false),
        ))
        .await
        .unwrap();
    b.start(&id).await.unwrap();
    let vmid = b.vmid(&id).unwrap();
    b.kill(&id, 9, false).await.unwrap();
    assert_eq!(exit_code(s.exit, 10).await, 137);
    // The other destroy's first step (§2.5): the config replaced by `lock: destroyed`.
    let conf = node.conf(vmid);
    std::fs::write(&conf, "lock: destroyed\n").unwrap();
    let finisher = {
        let conf = conf.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            std::fs::remove_file(&conf).unwrap();
        })
    };
    b.delete(&id).await.unwrap();
    finisher.await.unwrap();
    node.assert_gone(vmid);
}

/// The "shim" of `killed_shim_then_sweep_leaves_nothing`: creates and starts a container on
/// the zfs volume, prints its VMID and waits to be killed.
#[tokio::test]
#[ignore = "helper process of killed_shim_then_sweep_leaves_nothing"]
async fn helper_shim() {
    let Ok(spec_json) = std::env::var("NEXCAGE_PVE_HELPER") else {
        panic!(
            "helper_shim is the child process of killed_shim_then_sweep_leaves_nothing, which \
             sets NEXCAGE_PVE_HELPER; it is not a test of its own"
        );
    };
    common::require();
    let settings: serde_json::Value = serde_json::from_str(&spec_json).unwrap();
    let px: ProxmoxConfig = serde_json::from_value(settings["proxmox"].clone()).unwrap();
    let st = BackendSettings {
        name: nexcage_pve::NAME.into(),
        enabled: true,
        priority: 30,
        binary: Some(settings["pct"].as_str().unwrap().into()),
        root: settings["root"].as_str().unwrap().into(),
        timeout: Duration::from_secs(30),
        proxmox: Some(px),
    };
    let b = PveBackend::new(&st, "test")
        .tool_env("PVE_SIM_ROOT", settings["sim_root"].as_str().unwrap())
        .tool_env("PVE_SIM_NODE", "pve1");
    let bundle = Bundle::new();
    let id = unique("helper");
    let r = b.reserve(&id, bundle.path()).unwrap();
    let ds = r.dataset.unwrap();
    capture(Command::new("zfs").args(["create", &ds]));
    bind(Path::new(&zfs_get("mountpoint", &ds)), &bundle.rootfs());
    let src = Bundle::new();
    capture(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", src.rootfs().display()))
            .arg(bundle.rootfs()),
    );
    let mut io = Stdio::new();
    b.create(create_config(
        &id,
        &bundle,
        spec(&id, &["sleep", "600"]),
        io.child(false),
    ))
    .await
    .unwrap();
    b.start(&id).await.unwrap();
    println!("vmid {}", r.vmid);
    std::mem::forget(bundle);
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test]
#[ignore = "needs root, LXC, busybox-static and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
async fn killed_shim_then_sweep_leaves_nothing() {
    use std::io::{BufRead, BufReader};
    let node = Node::new();
    let settings = node.settings();
    let arg = json!({
        "proxmox": settings.proxmox,
        "pct": settings.binary,
        "root": settings.root,
        "sim_root": node.sim.root,
    });
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_shim",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("NEXCAGE_PVE_HELPER", arg.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut vmid = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // libtest prints "test helper_shim ... " without a newline before the helper's output.
        if let Some((_, v)) = line.split_once("vmid ") {
            vmid = Some(v.trim().parse::<u32>().unwrap());
            break;
        }
    }
    let vmid = vmid.expect("the helper shim created a container");
    let (status, _) = node.admin("pct", &["status", &vmid.to_string()]);
    assert_eq!(status.trim(), "status: running");
    assert!(zfs_exists(&format!("{}/subvol-{vmid}-disk-0", node.pool)));
    // SAFETY: kill(2) on the helper's pid, a child of this process.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    // The process-wide reaper collects the status; wait() only releases the handle.
    let _ = child.wait();
    common::eventually("the helper is dead", || {
        std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
            .map_or(true, |s| s.contains(") Z"))
    })
    .await;
    // The container outlives its shim (lxc-execute runs in its own session) until the sweep.
    let b = node.backend(&[]);
    let gone = b.sweep().await.unwrap();
    assert_eq!(gone, [vmid]);
    node.assert_gone(vmid);
    let (status, _) = node.admin("pct", &["status", &vmid.to_string()]);
    assert!(!status.contains("running"));
    assert_eq!(
        b.sweep().await.unwrap(),
        Vec::<u32>::new(),
        "nothing left to sweep"
    );
}
