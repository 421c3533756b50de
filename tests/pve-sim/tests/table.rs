//! proxmox.md §11 rows (and the other documented outputs) that need neither LXC nor ZFS: CTs on
//! bind-mount root file systems that are never started, VMs, nextid, quorum, latency, argument
//! errors. Each asserts exact stdout, stderr and exit code.

mod common;

use common::*;

const USAGE_CREATE: &str = "pct create <vmid> <ostemplate> [OPTIONS]\n";

#[test]
fn row_pct_create_success_writes_the_documented_config() {
    let (sim, tmpl, dirs) = plain();
    let o = create_plain(
        &sim,
        &tmpl,
        &dirs,
        100,
        &[
            "--hostname",
            "web",
            "--memory",
            "256",
            "--swap",
            "0",
            "--tags",
            "nexcage;pod-web",
            "--description",
            "pod: default/web",
            "--net0",
            "ip=dhcp,name=eth0,bridge=vmbr0",
        ],
    );
    assert_ok(&o);
    assert!(o.stdout.starts_with("extracting archive '"), "{o:?}");
    let text = conf_text(&sim, 100).unwrap();
    let net = text
        .lines()
        .find(|l| l.starts_with("net0: "))
        .unwrap()
        .to_string();
    assert!(
        net.starts_with("net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:")
            && net.ends_with(",ip=dhcp,type=veth"),
        "{net}"
    );
    let want = format!(
        "#pod%3A default/web\narch: amd64\nhostname: web\nmemory: 256\n{net}\nostype: unmanaged\nrootfs: {dirs}/100\nswap: 0\ntags: nexcage;pod-web\nunprivileged: 1\n"
    );
    assert_eq!(text, want);
    // pct config: sorted keys, description escaped, raw lxc lines last.
    std::fs::write(
        sim.root.join("etc/pve/lxc/100.conf"),
        format!("{want}lxc.init.cmd: /bin/sh\n"),
    )
    .unwrap();
    let c = run(&sim, "pct", &["config", "100"]);
    assert_ok(&c);
    assert_eq!(
        c.stdout,
        format!("arch: amd64\ndescription: pod%3A default/web\nhostname: web\nmemory: 256\n{net}\nostype: unmanaged\nrootfs: {dirs}/100\nswap: 0\ntags: nexcage;pod-web\nunprivileged: 1\nlxc.init.cmd: /bin/sh\n")
    );
}

#[test]
fn row_pct_create_defaults_are_written() {
    let (sim, tmpl, dirs) = plain();
    assert_ok(&create_plain(&sim, &tmpl, &dirs, 101, &[]));
    let c = run(&sim, "pct", &["config", "101"]);
    assert_eq!(
        c.stdout,
        format!("arch: amd64\nhostname: CT101\nmemory: 512\nostype: unmanaged\nrootfs: {dirs}/101\nswap: 512\nunprivileged: 1\n")
    );
}

#[test]
fn row_pct_create_existing_vmid() {
    let (sim, tmpl, dirs) = plain();
    assert_ok(&create_plain(&sim, &tmpl, &dirs, 100, &[]));
    assert_dies(
        &create_plain(&sim, &tmpl, &dirs, 100, &[]),
        "CT 100 already exists on node 'pve1'\n",
    );
    // A VM with that id: the word is the existing guest's type.
    assert_ok(&run(&sim, "qm", &["create", "120", "--name", "vm120"]));
    assert_dies(
        &create_plain(&sim, &tmpl, &dirs, 120, &[]),
        "VM 120 already exists on node 'pve1'\n",
    );
}

#[test]
fn row_pct_create_bad_storage() {
    let (sim, tmpl, _) = plain();
    let o = run(
        &sim,
        "pct",
        &["create", "100", &tmpl, "--rootfs", "local:4"],
    );
    assert_dies(
        &o,
        &format!("400 Parameter verification failed.\nstorage: storage 'local' does not support container directories\n{USAGE_CREATE}"),
    );
    let o = run(&sim, "pct", &["create", "100", &tmpl, "--storage", "nope"]);
    assert_dies(&o, "storage 'nope' does not exist\n");
    assert_eq!(conf_text(&sim, 100), None, "nothing created");
}

#[test]
fn pct_create_parameter_errors() {
    let (sim, tmpl, _) = plain();
    let o = run(
        &sim,
        "pct",
        &["create", "99", &tmpl, "--memory", "8", "--arch", "sparc"],
    );
    assert_dies(
        &o,
        &format!(
            "400 Parameter verification failed.\narch: value 'sparc' does not have a value in the enumeration 'amd64, i386, arm64, armhf, riscv32, riscv64'\nmemory: value must have a minimum value of 16\nvmid: invalid format - value does not look like a valid VM ID\n{USAGE_CREATE}"
        ),
    );
    assert_dies(
        &run(&sim, "pct", &["create", "100"]),
        &format!("400 not enough arguments\n{USAGE_CREATE}"),
    );
    assert_dies(
        &run(&sim, "pct", &["create", "100", &tmpl, "--bogus", "1"]),
        &format!("Unknown option: bogus\n400 unable to parse option\n{USAGE_CREATE}"),
    );
    assert_dies(
        &run(
            &sim,
            "pct",
            &[
                "create",
                "100",
                "local:iso/x.iso",
                "--rootfs",
                "/nonexistent",
            ],
        ),
        "unable to use volume local:iso/x.iso - content type needs to be 'vztmpl'\n",
    );
}

#[test]
fn pct_create_failure_in_the_worker_removes_the_config() {
    let (sim, _, dirs) = plain();
    let bad = sim.root.join("not-a-tar");
    std::fs::write(&bad, "garbage").unwrap();
    let o = create_plain(&sim, bad.to_str().unwrap(), &dirs, 100, &[]);
    assert_eq!(o.code, 255, "{o:?}");
    assert_eq!(
        o.stderr,
        format!(
            "unable to create CT 100 - command 'tar xpf {} --totals' failed: exit code 2\n",
            bad.display()
        )
    );
    assert_eq!(conf_text(&sim, 100), None);
}

#[test]
fn row_pct_status_and_missing_config() {
    let (sim, tmpl, dirs) = plain();
    let missing = "Configuration file 'nodes/pve1/lxc/100.conf' does not exist\n";
    for cmd in ["status", "start", "stop", "config", "destroy"] {
        let o = run(&sim, "pct", &[cmd, "100"]);
        assert_dies(&o, missing);
        assert_eq!(o.stdout, "", "{cmd}");
    }
    assert_dies(&run(&sim, "pct", &["exec", "100", "--", "true"]), missing);
    assert_ok(&create_plain(&sim, &tmpl, &dirs, 100, &[]));
    let o = run(&sim, "pct", &["status", "100"]);
    assert_ok(&o);
    assert_eq!(o.stdout, "status: stopped\n");
}

#[test]
fn row_pct_list_empty_and_with_lock_column() {
    let (sim, tmpl, dirs) = plain();
    let o = run(&sim, "pct", &["list"]);
    assert_ok(&o);
    assert_eq!(o.stdout, "", "no CTs: not even a header");
    assert_ok(&create_plain(
        &sim,
        &tmpl,
        &dirs,
        101,
        &["--hostname", "web"],
    ));
    assert_ok(&create_plain(&sim, &tmpl, &dirs, 100, &[]));
    assert_ok(&run(&sim, "pct", &["set", "101", "--lock", "backup"]));
    let o = run(&sim, "pct", &["list"]);
    assert_ok(&o);
    assert_eq!(
        o.stdout,
        "VMID       Status     Lock         Name                \n\
         100        stopped                 CT100               \n\
         101        stopped    backup       web                 \n"
    );
}

#[test]
fn row_pct_start_precondition_failures() {
    let (sim, tmpl, dirs) = plain();
    assert_ok(&create_plain(&sim, &tmpl, &dirs, 100, &[]));
    assert_ok(&run(&sim, "pct", &["set", "100", "--lock", "backup"]));
    assert_dies(
        &run(&sim, "pct", &["start", "100"]),
        "CT is locked (backup)\n",
    );
    assert_ok(&run(&sim, "pct", &["unlock", "100"]));
    assert_ok(&run(&sim, "pct", &["set", "100", "--template", "1"]));
    assert_dies(
        &run(&sim, "pct", &["start", "100"]),
        "you can't start a CT if it's a template\n",
    );
}

#[test]
fn row_pct_stop_and_exec_on_a_stopped_ct() {
    let (sim, tmpl, dirs) = plain();
    assert_ok(&create_plain(&sim, &tmpl, &dirs, 100, &[]));
    assert_dies(&run(&sim, "pct", &["stop", "100"]), "CT 100 not running\n");
    assert_dies(
        &run(&sim, "pct", &["shutdown", "100", "--timeout", "1"]),
        "CT 100 not running\n",
    );
    assert_dies(
        &run(&sim, "pct", &["exec", "100", "--", "true"]),
        "container '100' not running!\n",
    );
}

#[test]
fn row_pct_destroy_stopped_removes_config_not_bind_dirs() {
    let (sim, tmpl, dirs) = plain();
    assert_ok(&create_plain(&sim, &tmpl, &dirs, 100, &[]));
    assert_ok(&run(&sim, "pct", &["set", "100", "--protection", "1"]));
    assert_dies(
        &run(&sim, "pct", &["destroy", "100"]),
        "can't remove CT 100 - protection mode enabled\n",
    );
    assert_ok(&run(&sim, "pct", &["set", "100", "--protection", "0"]));
    let o = run(&sim, "pct", &["destroy", "100", "--purge"]);
    assert_ok(&o);
    assert_eq!(o.stdout, "");
    assert_eq!(conf_text(&sim, 100), None);
    assert!(
        exists(&std::path::Path::new(&dirs).join("100/bin/busybox")),
        "a bind-mount rootfs is not a volume"
    );
}

#[test]
fn row_pct_set_refusals() {
    let (sim, tmpl, dirs) = plain();
    assert_ok(&create_plain(&sim, &tmpl, &dirs, 100, &[]));
    assert_dies(&run(&sim, "pct", &["set", "100"]), "no options specified\n");
    assert_dies(
        &run(&sim, "pct", &["set", "100", "--unprivileged", "0"]),
        "unable to modify read-only option: 'unprivileged'\n",
    );
    assert_dies(
        &run(&sim, "pct", &["set", "100", "--delete", "memory"]),
        "unable to delete required option 'memory'\n",
    );
    assert_ok(&run(
        &sim,
        "pct",
        &[
            "set", "100", "--memory", "1024", "--cores", "2", "--delete", "swap",
        ],
    ));
    let c = run(&sim, "pct", &["config", "100"]).stdout;
    assert!(
        c.contains("cores: 2\n") && c.contains("memory: 1024\n") && !c.contains("swap:"),
        "{c}"
    );
    assert_ok(&run(&sim, "pct", &["set", "100", "--lock", "create"]));
    assert_dies(
        &run(&sim, "pct", &["set", "100", "--memory", "64"]),
        "CT is locked (create)\n",
    );
    assert_dies(
        &run(&sim, "pct", &["destroy", "100"]),
        "CT is locked (create)\n",
    );
    assert_ok(&run(&sim, "pct", &["unlock", "100"]));
    assert_dies(
        &run(&sim, "pct", &["unlock", "100"]),
        "no lock found trying to remove any lock\n",
    );
}

#[test]
fn row_pvesh_nextid_without_reservation() {
    let (sim, tmpl, dirs) = plain();
    let o = run(&sim, "pvesh", &["get", "/cluster/nextid"]);
    assert_ok(&o);
    assert_eq!(o.stdout, "100\n");
    assert_eq!(
        run(&sim, "pvesh", &["get", "/cluster/nextid"]).stdout,
        "100\n",
        "nothing reserved"
    );
    assert_ok(&create_plain(&sim, &tmpl, &dirs, 100, &[]));
    assert_ok(&run(&sim, "qm", &["create", "101"]));
    let o = run(
        &sim,
        "pvesh",
        &["get", "/cluster/nextid", "--output-format", "json"],
    );
    assert_eq!((o.stdout.as_str(), o.code), ("102\n", 0));
    let o = run(
        &sim,
        "pvesh",
        &[
            "get",
            "/cluster/nextid",
            "--vmid",
            "150",
            "--output-format",
            "json",
        ],
    );
    assert_eq!((o.stdout.as_str(), o.code), ("\"150\"\n", 0));
    assert_dies(
        &run(&sim, "pvesh", &["get", "/cluster/nextid", "--vmid", "101"]),
        "400 Parameter verification failed.\nvmid: VM 101 already exists\npvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n",
    );
    std::fs::write(
        sim.root.join("etc/pve/datacenter.cfg"),
        "next-id: lower=100,upper=102\n",
    )
    .unwrap();
    assert_dies(
        &run(&sim, "pvesh", &["get", "/cluster/nextid"]),
        "unable to get any free VMID in range [100, 102]\n",
    );
}

#[test]
fn pvesh_status_current_json() {
    let (sim, tmpl, dirs) = plain();
    assert_ok(&create_plain(
        &sim,
        &tmpl,
        &dirs,
        100,
        &[
            "--hostname",
            "web",
            "--memory",
            "256",
            "--swap",
            "0",
            "--tags",
            "a",
        ],
    ));
    let o = run(
        &sim,
        "pvesh",
        &[
            "get",
            "/nodes/pve1/lxc/100/status/current",
            "--output-format",
            "json",
        ],
    );
    assert_ok(&o);
    assert_eq!(
        o.stdout,
        "{\"cpus\":1,\"disk\":0,\"diskread\":0,\"diskwrite\":0,\"ha\":{\"managed\":0},\"maxdisk\":4294967296,\"maxmem\":268435456,\"maxswap\":0,\"mem\":0,\"name\":\"web\",\"netin\":0,\"netout\":0,\"status\":\"stopped\",\"swap\":0,\"tags\":\"a\",\"type\":\"lxc\",\"uptime\":0,\"vmid\":100}\n"
    );
    assert_dies(
        &run(
            &sim,
            "pvesh",
            &[
                "get",
                "/nodes/pve1/lxc/105/status/current",
                "--output-format",
                "json",
            ],
        ),
        "Configuration file 'nodes/pve1/lxc/105.conf' does not exist\n",
    );
}

#[test]
fn lost_quorum_refuses_writes_and_creates_nothing() {
    let (sim, tmpl, dirs) = plain();
    assert_ok(&create_plain(&sim, &tmpl, &dirs, 100, &[]));
    let env = [("PVE_SIM_NO_QUORUM", "1")];
    let msg = "cluster not ready - no quorum?\n";
    std::fs::create_dir_all(format!("{dirs}/101")).unwrap();
    let root101 = format!("{dirs}/101");
    assert_dies(
        &run_env(
            &sim,
            &env,
            "pct",
            &["create", "101", &tmpl, "--rootfs", &root101],
        ),
        msg,
    );
    assert_eq!(conf_text(&sim, 101), None);
    assert_dies(&run_env(&sim, &env, "pct", &["start", "100"]), msg);
    assert_dies(
        &run_env(&sim, &env, "pct", &["set", "100", "--memory", "64"]),
        msg,
    );
    assert_dies(&run_env(&sim, &env, "pct", &["destroy", "100"]), msg);
    assert_dies(&run_env(&sim, &env, "qm", &["create", "300"]), msg);
    // Reads still work without quorum.
    assert_eq!(
        run_env(&sim, &env, "pct", &["status", "100"]).stdout,
        "status: stopped\n"
    );
    // The file switch, flipped while the node "runs".
    std::fs::write(sim.root.join("etc/pve/.sim-no-quorum"), "").unwrap();
    assert_dies(
        &run(&sim, "pct", &["create", "101", &tmpl, "--rootfs", &root101]),
        msg,
    );
    std::fs::remove_file(sim.root.join("etc/pve/.sim-no-quorum")).unwrap();
    assert_ok(&run(
        &sim,
        "pct",
        &["create", "101", &tmpl, "--rootfs", &root101],
    ));
}

#[test]
fn latency_applies_to_every_call() {
    let (sim, _, _) = plain();
    let t = std::time::Instant::now();
    let o = run_env(
        &sim,
        &[("PVE_SIM_LATENCY_MS", "300-400")],
        "pvesh",
        &["get", "/cluster/nextid"],
    );
    assert_eq!(o.stdout, "100\n");
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    let t = std::time::Instant::now();
    run(&sim, "pct", &["list"]);
    assert!(
        t.elapsed() < std::time::Duration::from_millis(300),
        "latency is off by default"
    );
}

#[test]
fn unknown_and_unsimulated_commands() {
    let (sim, _, _) = plain();
    assert_dies(
        &run(&sim, "pct", &["bogus"]),
        "ERROR: unknown command 'pct bogus'\nUSAGE: pct <COMMAND> [ARGS] [OPTIONS]\n",
    );
    assert_dies(
        &run(&sim, "pct", &["start"]),
        "400 not enough arguments\npct start <vmid> [OPTIONS]\n",
    );
    assert_dies(
        &run(&sim, "pct", &["status", "100", "200"]),
        "400 too many arguments\npct status <vmid> [OPTIONS]\n",
    );
    assert_dies(
        &run(&sim, "pct", &["snapshot", "100", "s1"]),
        "pve-sim: 'pct snapshot' is not simulated\n",
    );
}

#[test]
fn rows_qm_power_status_destroy() {
    let (sim, _, _) = plain();
    assert_dies(
        &run(&sim, "qm", &["status", "300"]),
        "Configuration file 'nodes/pve1/qemu-server/300.conf' does not exist\n",
    );
    assert_ok(&run(
        &sim,
        "qm",
        &[
            "create",
            "300",
            "--name",
            "vm300",
            "--memory",
            "1024",
            "--net0",
            "virtio,bridge=vmbr0",
        ],
    ));
    let c = run(&sim, "qm", &["config", "300"]).stdout;
    assert!(
        c.contains("memory: 1024\nname: vm300\nnet0: virtio=BC:24:11:"),
        "{c}"
    );
    assert_eq!(
        run(&sim, "qm", &["status", "300"]).stdout,
        "status: stopped\n"
    );
    let o = run(&sim, "qm", &["stop", "300"]);
    assert_ok(&o);
    assert_eq!(o.stdout, "", "stopping a stopped VM is a no-op");
    assert_ok(&run(&sim, "qm", &["start", "300"]));
    assert_eq!(
        run(&sim, "qm", &["status", "300"]).stdout,
        "status: running\n"
    );
    assert_dies(
        &run(&sim, "qm", &["start", "300"]),
        "VM 300 already running\n",
    );
    assert_dies(
        &run(&sim, "qm", &["destroy", "300"]),
        "VM 300 is running - destroy failed\n",
    );
    assert_ok(&run(&sim, "qm", &["stop", "300"]));
    assert_ok(&run(&sim, "qm", &["destroy", "300", "--purge"]));
    assert_dies(
        &run(&sim, "qm", &["status", "300"]),
        "Configuration file 'nodes/pve1/qemu-server/300.conf' does not exist\n",
    );
}

#[test]
fn rows_qm_agent_and_guest_exec() {
    let (sim, _, _) = plain();
    assert_ok(&run(&sim, "qm", &["create", "300"]));
    assert_dies(
        &run(&sim, "qm", &["agent", "300", "ping"]),
        "No QEMU guest agent configured\n",
    );
    assert_ok(&run(&sim, "qm", &["destroy", "300"]));
    assert_ok(&run(&sim, "qm", &["create", "300", "--agent", "1"]));
    assert_dies(
        &run(&sim, "qm", &["agent", "300", "ping"]),
        "VM 300 is not running\n",
    );
    assert_dies(
        &run(&sim, "qm", &["guest", "exec", "300", "--", "true"]),
        "VM 300 is not running\n",
    );
    assert_ok(&run(&sim, "qm", &["start", "300"]));
    assert_dies(
        &run(&sim, "qm", &["agent", "300", "ping"]),
        "QEMU guest agent is not running\n",
    );
    std::fs::write(sim.root.join("run/qemu-server/300.qga-sim"), "").unwrap();
    let o = run(&sim, "qm", &["agent", "300", "ping"]);
    assert_ok(&o);
    assert_eq!(o.stdout, "", "a successful ping prints nothing");
    let o = run(
        &sim,
        "qm",
        &[
            "guest",
            "exec",
            "300",
            "--",
            "sh",
            "-c",
            "echo hello; exit 3",
        ],
    );
    assert_ok(&o);
    assert_eq!(
        o.stdout,
        "{\n   \"exitcode\" : 3,\n   \"exited\" : 1,\n   \"out-data\" : \"hello\\n\"\n}\n",
        "qm exits 0 whatever the command returned"
    );
}

#[test]
fn qm_list_format() {
    let (sim, _, _) = plain();
    assert_eq!(run(&sim, "qm", &["list"]).stdout, "");
    assert_ok(&run(
        &sim,
        "qm",
        &["create", "300", "--name", "vm300", "--memory", "1024"],
    ));
    assert_eq!(
        run(&sim, "qm", &["list"]).stdout,
        "      VMID NAME                 STATUS     MEM(MB)    BOOTDISK(GB) PID       \n       300 vm300                stopped    1024               0.00 0         \n"
    );
}
