//! Running the simulator binaries against a [`SimRoot`].
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub use nexcage_pve_sim::testing::SimRoot;

/// Why the privileged tests are ignored by default.
pub const NEEDS: &str = "needs root, LXC and the zfs pool nexcage-test (tests/setup-zfs.sh)";

/// What a call printed and returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

pub fn bin(tool: &str) -> &'static str {
    match tool {
        "pct" => env!("CARGO_BIN_EXE_pct"),
        "pvesh" => env!("CARGO_BIN_EXE_pvesh"),
        "qm" => env!("CARGO_BIN_EXE_qm"),
        t => panic!("no tool {t}"),
    }
}

/// Run `tool args` on `sim` with extra environment `env`.
pub fn run_env(sim: &SimRoot, env: &[(&str, &str)], tool: &str, args: &[&str]) -> Out {
    let mut c = Command::new(bin(tool));
    c.args(args)
        .env_remove("PVE_SIM_LATENCY_MS")
        .env_remove("PVE_SIM_NO_QUORUM");
    for (k, v) in sim.envs() {
        c.env(k, v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run sim");
    Out {
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        code: o.status.code().unwrap_or(-1),
    }
}

/// Run `tool args` on `sim`.
pub fn run(sim: &SimRoot, tool: &str, args: &[&str]) -> Out {
    run_env(sim, &[], tool, args)
}

/// Assert a failure: exactly this stderr, nothing on stdout, exit 255.
pub fn assert_dies(o: &Out, stderr: &str) {
    assert_eq!(o.stderr, stderr, "{o:?}");
    assert_eq!(o.code, 255, "{o:?}");
}

/// Assert success with nothing on stderr.
pub fn assert_ok(o: &Out) {
    assert_eq!((o.code, o.stderr.as_str()), (0, ""), "{o:?}");
}

/// A root on node `pve1` with a template archive and a bind-mount rootfs directory: CTs that
/// need neither ZFS nor LXC (they are never started).
pub fn plain() -> (SimRoot, String, String) {
    let sim = SimRoot::new("pve1");
    let tmpl = sim.busybox_template("bb.tar");
    let dir = sim.root.join("rootfs-dirs");
    std::fs::create_dir_all(&dir).unwrap();
    (sim, tmpl, dir.display().to_string())
}

/// `pct create <vmid>` with a bind-mount rootfs under `dirs`.
pub fn create_plain(sim: &SimRoot, tmpl: &str, dirs: &str, vmid: u32, extra: &[&str]) -> Out {
    let rootfs = format!("{dirs}/{vmid}");
    std::fs::create_dir_all(&rootfs).unwrap();
    let v = vmid.to_string();
    let mut args = vec![
        "create",
        &v,
        tmpl,
        "--rootfs",
        &rootfs,
        "--ostype",
        "unmanaged",
    ];
    args.extend_from_slice(extra);
    run(sim, "pct", &args)
}

pub fn conf_text(sim: &SimRoot, vmid: u32) -> Option<String> {
    std::fs::read_to_string(
        sim.root
            .join(format!("etc/pve/nodes/{}/lxc/{vmid}.conf", sim.node)),
    )
    .ok()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
