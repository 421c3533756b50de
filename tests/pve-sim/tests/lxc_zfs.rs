//! proxmox.md §11 rows that need the real backing: ZFS subvols on the zfs-fuse pool with
//! Proxmox's names, CTs started as real LXC containers, `pct status/exec/stop` answered from
//! LXC. Ignored by default; `tests/run.sh` runs them after `tests/setup-zfs.sh`.

mod common;

use std::process::Command;

use common::*;

const POOL: &str = "nexcage-test";

fn zfs_get(prop: &str, ds: &str) -> Option<String> {
    let o = Command::new("zfs")
        .args(["get", "-H", "-o", "value", prop, ds])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn zfs_sim() -> (SimRoot, String, String) {
    let mut sim = SimRoot::new("pve1");
    let ds = sim.zfs_storage(POOL, "local-zfs");
    let tmpl = sim.busybox_template("bb.tar");
    (sim, ds, tmpl)
}

fn create_zfs(sim: &SimRoot, tmpl: &str, vmid: &str) -> Out {
    run(
        sim,
        "pct",
        &[
            "create",
            vmid,
            tmpl,
            "--rootfs",
            "local-zfs:1",
            "--ostype",
            "unmanaged",
            "--hostname",
            "web",
            "--entrypoint",
            "/bin/sleep 3600",
        ],
    )
}

#[test]
#[ignore = "needs root, LXC and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
fn row_pct_create_allocates_a_proxmox_named_subvol() {
    let (sim, ds, tmpl) = zfs_sim();
    assert_ok(&create_zfs(&sim, &tmpl, "200"));
    let vol = format!("{ds}/subvol-200-disk-0");
    assert_eq!(zfs_get("refquota", &vol).as_deref(), Some("1G"));
    assert!(conf_text(&sim, 200)
        .unwrap()
        .contains("\nrootfs: local-zfs:subvol-200-disk-0,size=1G\n"));
    assert!(
        std::path::Path::new(&format!("/{vol}/bin/busybox")).exists(),
        "template extracted into the subvol"
    );
    // The disk counter is shared per VMID: the first mount point is disk-1.
    assert_ok(&run(
        &sim,
        "pct",
        &["set", "200", "--mp0", "local-zfs:1,mp=/data"],
    ));
    let c = run(&sim, "pct", &["config", "200"]).stdout;
    assert!(
        c.contains("mp0: local-zfs:subvol-200-disk-1,mp=/data,size=1G\n"),
        "{c}"
    );
    // destroy frees every volume.
    assert_ok(&run(&sim, "pct", &["destroy", "200"]));
    assert_eq!(zfs_get("name", &vol), None);
    assert_eq!(zfs_get("name", &format!("{ds}/subvol-200-disk-1")), None);
    assert_eq!(conf_text(&sim, 200), None);
}

#[test]
#[ignore = "needs root, LXC and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
fn rows_pct_start_status_exec_stop_on_real_lxc() {
    let (sim, _ds, tmpl) = zfs_sim();
    assert_ok(&create_zfs(&sim, &tmpl, "201"));
    let o = run(&sim, "pct", &["start", "201"]);
    assert_ok(&o);
    assert_eq!(o.stdout, "");
    assert_eq!(
        run(&sim, "pct", &["status", "201"]).stdout,
        "status: running\n"
    );
    let lxc = Command::new("lxc-info")
        .arg("-P")
        .arg(sim.lxcpath())
        .args(["-n", "201", "-s", "-H"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&lxc.stdout).trim(), "RUNNING");
    assert_eq!(
        run(&sim, "pct", &["list"]).stdout,
        "VMID       Status     Lock         Name                \n201        running                 web                 \n"
    );
    assert_dies(
        &run(&sim, "pct", &["start", "201"]),
        "CT 201 already running\n",
    );
    let o = run(
        &sim,
        "pct",
        &[
            "exec",
            "201",
            "--",
            "sh",
            "-c",
            "hostname; echo err >&2; exit 7",
        ],
    );
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.code),
        ("web\n", "err\n", 7),
        "exit = the command's status"
    );
    assert_dies(
        &run(&sim, "pct", &["destroy", "201"]),
        "unable to destroy CT 201 - container is running\n",
    );
    let v = run(&sim, "pct", &["status", "201", "--verbose"]).stdout;
    assert!(
        v.contains("\npid: ") && v.contains("\nstatus: running\n"),
        "{v}"
    );
    let o = run(&sim, "pct", &["stop", "201"]);
    assert_ok(&o);
    assert_eq!(
        run(&sim, "pct", &["status", "201"]).stdout,
        "status: stopped\n"
    );
    assert_dies(&run(&sim, "pct", &["stop", "201"]), "CT 201 not running\n");
    // An administrator's lxc-stop outside pct: status follows LXC.
    assert_ok(&run(&sim, "pct", &["start", "201"]));
    let st = Command::new("lxc-stop")
        .arg("-P")
        .arg(sim.lxcpath())
        .args(["-n", "201", "--kill"])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        run(&sim, "pct", &["status", "201"]).stdout,
        "status: stopped\n"
    );
}

#[test]
#[ignore = "needs root, LXC and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
fn rows_pct_shutdown_and_destroy_force() {
    let (sim, ds, tmpl) = zfs_sim();
    assert_ok(&create_zfs(&sim, &tmpl, "202"));
    assert_ok(&run(&sim, "pct", &["start", "202"]));
    // sleep as init ignores the halt signal: without forceStop the shutdown times out.
    assert_dies(
        &run(&sim, "pct", &["shutdown", "202", "--timeout", "1"]),
        "container did not stop\n",
    );
    assert_eq!(
        run(&sim, "pct", &["status", "202"]).stdout,
        "status: running\n"
    );
    let o = run(&sim, "pct", &["destroy", "202", "--force", "--purge"]);
    assert_ok(&o);
    assert_eq!(o.stdout, "forced to stop CT 202 before destroying!\n");
    assert_eq!(zfs_get("name", &format!("{ds}/subvol-202-disk-0")), None);
    assert!(!sim.lxcpath().join("202").exists());
    assert_eq!(run(&sim, "pct", &["list"]).stdout, "");
}

#[test]
#[ignore = "needs root, LXC and the zfs pool nexcage-test (tests/setup-zfs.sh)"]
fn pct_set_on_a_running_ct_goes_pending_for_non_hotplug_keys() {
    let (sim, _ds, tmpl) = zfs_sim();
    assert_ok(&create_zfs(&sim, &tmpl, "203"));
    assert_ok(&run(&sim, "pct", &["start", "203"]));
    assert_ok(&run(
        &sim,
        "pct",
        &[
            "set",
            "203",
            "--memory",
            "128",
            "--entrypoint",
            "/bin/sleep 7",
        ],
    ));
    let text = conf_text(&sim, 203).unwrap();
    assert!(
        text.contains("memory: 128\n")
            && text.contains("\n[pve:pending]\nentrypoint: /bin/sleep 7\n"),
        "{text}"
    );
    assert!(run(&sim, "pct", &["config", "203"])
        .stdout
        .contains("entrypoint: /bin/sleep 7\n"));
    assert!(run(&sim, "pct", &["config", "203", "--current"])
        .stdout
        .contains("entrypoint: /bin/sleep 3600\n"));
    assert_ok(&run(&sim, "pct", &["stop", "203"]));
    assert!(
        !conf_text(&sim, 203).unwrap().contains("[pve:pending]"),
        "applied at stop"
    );
    assert_ok(&run(&sim, "pct", &["destroy", "203"]));
}
