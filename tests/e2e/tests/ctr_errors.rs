//! Bad input gives a precise error and leaves nothing behind: no shim process, mount, socket,
//! cgroup, bundle or backend state.

use std::path::PathBuf;

use nexcage_e2e::ctr::{Ctr, RunOpts};
use nexcage_e2e::{backend_tests, cmd, image, leaks, Case};
use serde_json::{json, Value};

backend_tests!(
    spec_without_process_args,
    spec_with_invalid_json_shape,
    missing_rootfs,
    unknown_backend_annotation,
    malformed_config_file,
    path_traversal_id_is_refused,
);

/// `ctr oci spec` adjusted to run from the unpacked busybox rootfs, then edited by `edit`.
fn write_spec(ctr: &Ctr<'_>, id: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut c = nexcage_e2e::versions::ctr_command();
    c.args(["oci", "spec"]);
    let out = cmd::run(c, cmd::TIMEOUT);
    assert!(out.success(), "ctr oci spec: {out:?}");
    let mut spec: Value = serde_json::from_str(&out.stdout).expect("ctr oci spec prints JSON");
    spec["root"] = json!({ "path": image::rootfs(), "readonly": false });
    spec["process"]["args"] = json!(["echo", "hi"]);
    spec["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", ctr.ns));
    edit(&mut spec);
    let path = ctr.ctd.dir().join(format!("{id}.json"));
    std::fs::write(&path, spec.to_string()).expect("write spec");
    path
}

/// Run and expect a failure whose message contains every string of `want`.
fn run_fails(ctr: &Ctr<'_>, opts: &RunOpts, id: &str, args: &[&str], want: &[&str]) {
    let out = ctr.run(opts, id, args);
    assert!(
        !out.success() && !out.timed_out,
        "expected a failure: {out:?}"
    );
    let text = out.all();
    for w in want {
        assert!(
            text.contains(w),
            "error lacks {w:?}: {out:?}\n{}",
            ctr.ctd.log_tail(30)
        );
    }
    assert!(
        !ctr.containers().contains(&id.to_string()),
        "container {id} still listed"
    );
}

fn spec_without_process_args(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let spec = write_spec(&ctr, &id, |s| {
        s["process"].as_object_mut().unwrap().remove("args");
    });
    let opts = RunOpts {
        image: None,
        flags: vec!["--config".into(), spec.display().to_string()],
        ..Default::default()
    };
    run_fails(
        &ctr,
        &opts,
        &id,
        &[],
        &["failed to create shim task", "args"],
    );
    ctr.assert_nothing_left(&id, &[]);
}

fn spec_with_invalid_json_shape(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let spec = write_spec(&ctr, &id, |s| s["process"] = json!("not an object"));
    let opts = RunOpts {
        image: None,
        flags: vec!["--config".into(), spec.display().to_string()],
        ..Default::default()
    };
    // ctr itself refuses it: the shim is never started.
    let want = ["decoding spec config file failed", "Spec.process"];
    run_fails(&ctr, &opts, &id, &[], &want);
    ctr.assert_nothing_left(&id, &[]);
}

fn missing_rootfs(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let opts = RunOpts {
        image: Some("/nonexistent".into()),
        flags: vec!["--rootfs".into()],
        ..Default::default()
    };
    let want = ["failed to create shim task", "/nonexistent"];
    run_fails(&ctr, &opts, &id, &["echo", "hi"], &want);
    ctr.assert_nothing_left(&id, &[]);
}

fn unknown_backend_annotation(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let opts = RunOpts {
        annotations: vec!["nexcage.io/backend=docker".into()],
        ..Default::default()
    };
    let want = ["failed to create shim task", "unknown backend \"docker\""];
    run_fails(&ctr, &opts, &id, &["echo", "hi"], &want);
    ctr.assert_nothing_left(&id, &[]);
}

fn malformed_config_file(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let config = ctr.write_config(&format!(
        "default_backend = \"{}\"\nbogus_key = 1\n",
        case.backend.0
    ));
    let opts = RunOpts {
        config: Some(config.clone()),
        ..Default::default()
    };
    let path = config.display().to_string();
    run_fails(&ctr, &opts, &id, &["echo", "hi"], &[&path, "bogus_key"]);
    ctr.assert_nothing_left(&id, &[]);
}

fn path_traversal_id_is_refused(case: Case) {
    let ctr = case.ctr();
    let sock = ctr.ctd.socket();
    let before = leaks::shim_processes(&sock, Some("../x"));
    assert!(before.is_empty(), "{before:?}");
    // containerd validates the id before any shim is involved.
    let want = [
        "container.ID: identifier \"../x\" must match",
        "^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument",
    ];
    run_fails(&ctr, &RunOpts::default(), "../x", &["echo", "hi"], &want);
    let shims = leaks::shim_processes(&sock, Some("../x"));
    assert!(shims.is_empty(), "shim started for ../x: {shims:?}");
    let outside = ctr
        .ctd
        .state_dir()
        .join("io.containerd.runtime.v2.task")
        .join("x");
    assert!(!outside.exists(), "{} was created", outside.display());
    for b in nexcage_e2e::BACKENDS {
        let x = ctr.ctd.nexcage_state().join(b).join("x");
        assert!(!x.exists(), "{} was created", x.display());
    }
}

/// The lxc backend refuses what LXC cannot express, naming the field, and leaves nothing (no
/// lxcpath entry, as `assert_nothing_left` checks through `lxc-ls`).
#[test]
fn lxc_refuses_a_field_it_cannot_express() {
    let case = Case {
        backend: nexcage_e2e::Backend("lxc"),
        name: "lxc_refuses_a_field_it_cannot_express",
    };
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let spec = write_spec(&ctr, &id, |s| s["domainname"] = json!("example.org"));
    let opts = RunOpts {
        image: None,
        flags: vec!["--config".into(), spec.display().to_string()],
        ..Default::default()
    };
    let mut want = vec!["failed to create shim task", "domainname", "example.org"];
    // ctr 1.x prints the gRPC code as ": invalid argument"; ctr 2.x prints only the message.
    if !nexcage_e2e::versions::series().is_v2() {
        want.push("invalid argument");
    }
    run_fails(&ctr, &opts, &id, &[], &want);
    ctr.assert_nothing_left(&id, &[]);
}
