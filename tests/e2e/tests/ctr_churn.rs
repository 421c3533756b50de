//! Many short-lived containers must not leak mounts, shims, sockets, cgroups or containerd
//! file descriptors. Each test has its own containerd so the counts are its own.

use std::collections::BTreeSet;
use std::time::Duration;

use nexcage_e2e::containerd::Containerd;
use nexcage_e2e::{backend_tests, cmd, leaks, Case};

backend_tests!(fifty_run_rm_cycles_leak_nothing);

const CYCLES: usize = 50;
/// containerd may keep a few more descriptors (connections, caches) after a burst.
const FD_SLACK: usize = 10;

fn fifty_run_rm_cycles_leak_nothing(case: Case) {
    let ctd = Containerd::start();
    let ctr = case.ctr_on(&ctd);
    let prefix = ctd.dir().to_string_lossy().into_owned();
    // Warm up containerd (gRPC connections, snapshotter, plugin state) before measuring.
    for i in 0..3 {
        let id = ctr.id(&format!("warm{i}"));
        ctr.expect(&ctr.run_rm(&id, &["true"]), "warm-up ctr run --rm");
    }
    let settle = |what: &str, f: &dyn Fn() -> bool| {
        cmd::poll(Duration::from_secs(20), || f().then_some(()))
            .unwrap_or_else(|| panic!("{what}\n{}", ctd.log_tail(40)));
    };
    settle("warm-up shims did not exit", &|| {
        leaks::shim_processes(&ctd.socket(), None).is_empty()
    });
    let mounts_before: BTreeSet<String> = leaks::mounts_under(&prefix).into_iter().collect();
    let sockets_before = leaks::sockets();
    let fds_before = leaks::fd_count(ctd.pid());

    let ids: Vec<String> = (0..CYCLES).map(|i| ctr.id(&i.to_string())).collect();
    for id in &ids {
        let out = ctr.run_rm(id, &["true"]);
        ctr.expect(&out, &format!("ctr run --rm {id} true"));
    }

    settle("shim processes left after the cycles", &|| {
        leaks::shim_processes(&ctd.socket(), None).is_empty()
    });
    let left: Vec<_> = leaks::shim_processes(&ctd.socket(), None);
    assert!(left.is_empty(), "shims left: {left:?}");
    let mounts_after: BTreeSet<String> = leaks::mounts_under(&prefix).into_iter().collect();
    let new_mounts: Vec<_> = mounts_after.difference(&mounts_before).collect();
    assert!(new_mounts.is_empty(), "mounts left: {new_mounts:?}");
    let ours: BTreeSet<String> = ids
        .iter()
        .map(|id| leaks::socket_path(&ctd.socket(), &ctr.ns, id))
        .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
        .collect();
    let new_sockets: BTreeSet<String> = leaks::sockets()
        .difference(&sockets_before)
        .cloned()
        .collect();
    let leaked: Vec<_> = new_sockets.intersection(&ours).collect();
    assert!(
        leaked.is_empty(),
        "shim sockets left in {}: {leaked:?}",
        leaks::SOCKET_DIR
    );
    let cgroups = leaks::cgroup_children(&ctr.ns);
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    let leftover_containers = ctr.containers();
    assert!(
        leftover_containers.is_empty(),
        "containers left: {leftover_containers:?}"
    );
    for b in nexcage_e2e::BACKENDS {
        let root = ctd.nexcage_state().join(b).join(&ctr.ns);
        let entries: Vec<_> = std::fs::read_dir(&root)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            entries.is_empty(),
            "{b} state left in {}: {entries:?}",
            root.display()
        );
    }
    let mut fds_after = 0;
    let ok = cmd::poll(Duration::from_secs(20), || {
        fds_after = leaks::fd_count(ctd.pid());
        (fds_after <= fds_before + FD_SLACK).then_some(())
    });
    assert!(
        ok.is_some(),
        "containerd's open fds grew from {fds_before} to {fds_after} over {CYCLES} cycles"
    );
}
