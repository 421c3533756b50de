//! Kubernetes path across a containerd restart: the pod's shim outlives containerd, which
//! reconnects to it (the bundle's `address` file); the containers keep running and serve execs.
//! Each test has its own CRI containerd, since it restarts it.

use nexcage_e2e::containerd::Containerd;
use nexcage_e2e::cri::{api, PodOpts};
use nexcage_e2e::{backend_tests, Case};

backend_tests!(pod_survives_containerd_restart);

fn pod_survives_containerd_restart(case: Case) {
    let ctd = Containerd::start_cri(case.backend);
    let t = case.cri_on(&ctd);
    let pod = t.run_pod("p", &PodOpts::default());
    let c1 = t.start(&pod, "c1", &["sleep", "1000000"]);
    let c2 = t.start(
        &pod,
        "c2",
        &["sh", "-c", "while :; do echo tick; sleep 1; done"],
    );
    let pids = [t.sandbox_pid(&pod), t.pid(&c1), t.pid(&c2)];
    let shims = t.shims_of(&pod.id);
    assert_eq!(shims.len(), 1, "{shims:?}");
    let ip = t.pod_ip(&pod);

    ctd.restart();
    t.reconnect();

    let shims_after = t.shims_of(&pod.id);
    assert_eq!(
        shims_after, shims,
        "the pod's shim changed across the containerd restart"
    );
    for id in [&c1, &c2] {
        let st = t.wait_state(id, api::ContainerState::ContainerRunning);
        assert_eq!(st.exit_code, 0, "{st:?}");
    }
    assert_eq!(
        [t.sandbox_pid(&pod), t.pid(&c1), t.pid(&c2)],
        pids,
        "pids changed across the restart"
    );
    assert_eq!(
        t.pod_ip(&pod),
        ip,
        "the pod's IP changed across the restart"
    );
    let r = t.exec(&c1, &["echo", "after-restart"]);
    assert_eq!(
        (r.exit_code, String::from_utf8_lossy(&r.stdout).trim()),
        (0, "after-restart"),
        "{r:?}"
    );
    // Output keeps flowing into the CRI log after the restart.
    let before = std::fs::read_to_string(t.log_file(&pod, "c2"))
        .unwrap_or_default()
        .lines()
        .count();
    let more = nexcage_e2e::cmd::poll(std::time::Duration::from_secs(30), || {
        let n = std::fs::read_to_string(t.log_file(&pod, "c2"))
            .unwrap_or_default()
            .lines()
            .count();
        (n > before).then_some(())
    });
    assert!(more.is_some(), "c2's log stopped growing after the restart");
    // A new container still joins the pod after the restart.
    let c3 = t.start(&pod, "c3", &["sleep", "1000000"]);
    assert_eq!(
        t.shims_of(&pod.id),
        shims,
        "a second shim appeared for the pod"
    );
    t.assert_backend(&[&pod.id, &c1, &c2, &c3], case.backend);
    t.remove_pod_and_check(&pod);
}
