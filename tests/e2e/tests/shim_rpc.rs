//! The shim's Task service over ttrpc, bypassing containerd: Update, Checkpoint, Pids details,
//! Connect and the exact status codes of refused requests (ctr 1.6 reaches none of these, or
//! turns the codes into text). The task itself is created and removed with ctr.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use nexcage_e2e::ctr::Ctr;
use nexcage_e2e::shim_client::{self, api, ctx, expect_status, Code, ShimClient};
use nexcage_e2e::{backend_tests, cmd, leaks, Case};
use serde_json::json;

backend_tests!(
    update_changes_the_memory_limit,
    checkpoint_is_unimplemented,
    refusals_have_precise_codes,
    pids_carry_exec_details,
    connect_reports_shim_and_task_pids,
);

/// `ctr run -d IMAGE ID sleep 1000`: returns the init pid and a client to its shim.
fn detached(ctr: &Ctr<'_>, id: &str) -> (u32, ShimClient) {
    let pid = ctr.start_detached(id, &["sleep", "1000"]);
    ctr.assert_backend(id, ctr.backend);
    let client = ShimClient::for_bundle(&ctr.ctd.bundle(&ctr.ns, id));
    (pid, client)
}

fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn update_memory(client: &ShimClient, id: &str, limit: u64) {
    let req = api::UpdateTaskRequest {
        id: id.to_string(),
        resources: Some(shim_client::json_any(
            shim_client::LINUX_RESOURCES_TYPE_URL,
            &json!({ "memory": { "limit": limit } }),
        ))
        .into(),
        ..Default::default()
    };
    client
        .call(client.task().update(ctx(), &req))
        .unwrap_or_else(|e| panic!("Update memory.limit={limit}: {e:?}"));
}

fn update_changes_the_memory_limit(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let (pid, client) = detached(&ctr, &id);
    let file = leaks::memory_limit_file(pid);
    for limit in [64u64 << 20, 96 << 20] {
        update_memory(&client, &id, limit);
        assert_eq!(
            read_trimmed(&file),
            limit.to_string(),
            "{} after Update",
            file.display()
        );
    }
    assert_eq!(ctr.wait_status(&id, "RUNNING").pid, pid);
    drop(client);
    ctr.remove_and_check(&id, pid);
}

fn checkpoint_is_unimplemented(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let (pid, client) = detached(&ctr, &id);
    let image = ctr
        .ctd
        .dir()
        .join(format!("checkpoint-{}-{}", case.backend.0, case.name));
    let req = api::CheckpointTaskRequest {
        id: id.clone(),
        path: image.display().to_string(),
        ..Default::default()
    };
    let r = client.call(client.task().checkpoint(ctx(), &req));
    let msg = expect_status("Checkpoint", r, Code::UNIMPLEMENTED, &[]);
    assert!(
        msg.to_lowercase().contains("checkpoint"),
        "Checkpoint: message {msg:?} does not mention checkpoint"
    );
    assert!(!image.exists(), "Checkpoint wrote {}", image.display());
    // Nothing happened to the task.
    assert_eq!(ctr.wait_status(&id, "RUNNING").pid, pid);
    drop(client);
    ctr.remove_and_check(&id, pid);
}

/// A valid OCI process (as `ctr task exec` sends it), so that only the field under test is bad.
fn process_spec(args: &[&str]) -> serde_json::Value {
    json!({
        "terminal": false,
        "user": { "uid": 0, "gid": 0 },
        "args": args,
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/"
    })
}

fn refusals_have_precise_codes(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let (pid, client) = detached(&ctr, &id);
    let task = client.task();

    let kill = api::KillRequest {
        id: id.clone(),
        exec_id: "no-such-exec".into(),
        signal: 9,
        ..Default::default()
    };
    expect_status(
        "Kill of an unknown exec",
        client.call(task.kill(ctx(), &kill)),
        Code::NOT_FOUND,
        &["no-such-exec"],
    );

    let state = api::StateRequest {
        id: format!("{id}-unknown"),
        ..Default::default()
    };
    expect_status(
        "State of an unknown container",
        client.call(task.state(ctx(), &state)),
        Code::NOT_FOUND,
        &[],
    );

    let start = api::StartRequest {
        id: id.clone(),
        ..Default::default()
    };
    expect_status(
        "Start of the running init",
        client.call(task.start(ctx(), &start)),
        Code::FAILED_PRECONDITION,
        &["running"],
    );

    let exec = |exec_id: &str, spec: Any| api::ExecProcessRequest {
        id: id.clone(),
        exec_id: exec_id.to_string(),
        spec: Some(spec).into(),
        ..Default::default()
    };
    let good = shim_client::json_any(shim_client::PROCESS_TYPE_URL, &process_spec(&["true"]));
    expect_status(
        "Exec with exec id ../x",
        client.call(task.exec(ctx(), &exec("../x", good))),
        Code::INVALID_ARGUMENT,
        &["exec id", "../x"],
    );
    let bad = Any {
        type_url: shim_client::PROCESS_TYPE_URL.into(),
        value: b"not json".to_vec(),
        ..Default::default()
    };
    expect_status(
        "Exec with a spec that is not JSON",
        client.call(task.exec(ctx(), &exec("bad-spec", bad))),
        Code::INVALID_ARGUMENT,
        &["exec process spec"],
    );

    // None of it touched the task: still running, no exec registered.
    let st = client
        .call(task.state(
            ctx(),
            &api::StateRequest {
                id: id.clone(),
                ..Default::default()
            },
        ))
        .unwrap_or_else(|e| panic!("State of {id}: {e:?}"));
    assert_eq!(
        (st.pid, st.status.enum_value_or_default()),
        (pid, api::Status::RUNNING),
        "{st:?}"
    );
    let bad_spec_state = api::StateRequest {
        id: id.clone(),
        exec_id: "bad-spec".into(),
        ..Default::default()
    };
    expect_status(
        "State of the refused exec",
        client.call(task.state(ctx(), &bad_spec_state)),
        Code::NOT_FOUND,
        &["bad-spec"],
    );
    drop(client);
    ctr.remove_and_check(&id, pid);
}

/// The memory cgroup directory of `pid`.
fn cgroup_dir(pid: u32) -> PathBuf {
    let file = leaks::memory_limit_file(pid);
    file.parent().expect("cgroup dir").to_path_buf()
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn pids_carry_exec_details(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let (pid, client) = detached(&ctr, &id);
    let exec_id = "rpc-exec-1";
    let mut c = ctr.base();
    c.args([
        "tasks",
        "exec",
        "--detach",
        "--exec-id",
        exec_id,
        "--fifo-dir",
    ])
    .arg(ctr.ctd.fifo_dir())
    .args([id.as_str(), "sleep", "2000"]);
    let out = cmd::run(c, cmd::TIMEOUT);
    ctr.expect(&out, "ctr task exec --detach");
    // The exec's host pid: the `sleep 2000` in the container's cgroup.
    let procs = cgroup_dir(pid).join("cgroup.procs");
    let exec_pid = cmd::poll(Duration::from_secs(20), || {
        read_trimmed(&procs)
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|p| cmdline(*p) == ["sleep", "2000"])
    })
    .unwrap_or_else(|| panic!("no `sleep 2000` in {}", procs.display()));

    let req = api::PidsRequest {
        id: id.clone(),
        ..Default::default()
    };
    let resp = client
        .call(client.task().pids(ctx(), &req))
        .unwrap_or_else(|e| panic!("Pids: {e:?}"));
    let mut got: Vec<u32> = resp.processes.iter().map(|p| p.pid).collect();
    got.sort_unstable();
    // Under LXC the task pid is LXC's init; the application, its child, is a process of the
    // container too (without exec details).
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let app: Vec<u32> = if case.backend.is_lxc() {
        children
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    } else {
        Vec::new()
    };
    let mut want = vec![pid, exec_pid];
    want.extend(&app);
    want.sort_unstable();
    assert_eq!(got, want, "Pids: {resp:?}");
    for p in &resp.processes {
        if p.pid == pid || app.contains(&p.pid) {
            assert!(p.info.is_none(), "the init has exec details: {p:?}");
            continue;
        }
        let info = p
            .info
            .as_ref()
            .unwrap_or_else(|| panic!("exec pid {} without details: {resp:?}", p.pid));
        assert_eq!(
            info.type_url,
            shim_client::PROCESS_DETAILS_TYPE_URL,
            "{p:?}"
        );
        let d = shim_client::ProcessDetails::parse_from_bytes(&info.value)
            .unwrap_or_else(|e| panic!("decode ProcessDetails of {p:?}: {e}"));
        assert_eq!(d.exec_id, exec_id, "{p:?}");
    }
    drop(client);
    ctr.remove_and_check(&id, pid);
    ctr.assert_nothing_left(&id, &[pid, exec_pid]);
}

fn connect_reports_shim_and_task_pids(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let (pid, client) = detached(&ctr, &id);
    let shims = leaks::shim_processes(&ctr.ctd.socket(), Some(&id));
    assert_eq!(shims.len(), 1, "shim processes of {id}: {shims:?}");
    let req = api::ConnectRequest {
        id: id.clone(),
        ..Default::default()
    };
    let resp = client
        .call(client.task().connect(ctx(), &req))
        .unwrap_or_else(|e| panic!("Connect: {e:?}"));
    assert_eq!(
        (resp.shim_pid, resp.task_pid),
        (shims[0].pid, pid),
        "Connect: {resp:?}; shim {:?}",
        shims[0]
    );
    drop(client);
    ctr.remove_and_check(&id, pid);
}
