//! Kubernetes path, pods as a whole: containers sharing the pod's network namespace, one shim
//! per pod, host-network and CNI pods, pod-to-pod traffic on the test bridge, and the pod-level
//! backend choice (`nexcage.io/backend` pod annotation; a container annotation that disagrees
//! with its pod is refused). Every test removes its pods and checks that nothing is left.

use std::time::Duration;

use nexcage_e2e::containerd::CRI_NAMESPACE;
use nexcage_e2e::cri::{api, CriTest, CtrOpts, Footprint, Pod, PodOpts};
use nexcage_e2e::{backend_tests, cmd, leaks, Case};

backend_tests!(
    containers_share_the_pod_network_namespace,
    one_shim_serves_a_pod_of_three_containers,
    host_network_pod,
    cni_pods_get_ips_and_reach_each_other,
    pod_annotation_chooses_the_backend_of_every_container,
    container_annotation_disagreeing_with_the_pod_is_refused,
);

const BACKEND_ANNOTATION: &str = "nexcage.io/backend";

/// A one-shot listener on port 8080 that prints what it receives and exits when the peer
/// closes. Its stdin is a FIFO it holds open itself: with stdin at EOF (/dev/null, what CRI
/// gives a container) busybox `nc` shuts its sending side down at once, and a client that sees
/// that EOF before it has read its own stdin exits without sending anything.
const LISTENER: &[&str] = &[
    "sh",
    "-c",
    "mkfifo /tmp/in && exec 3<>/tmp/in && exec nc -l -p 8080 <&3",
];

/// Send `msg` with `nc` from container `from` to `addr:port` until the listener took it (the
/// listener may not be bound yet), then wait for the listening container `to` (in `to_pod`)
/// to exit 0 with `msg` in its log.
fn send_and_check(t: &CriTest<'_>, from: &str, addr: &str, to_pod: &Pod, to: &str, msg: &str) {
    let script = format!(
        "for i in $(seq 1 100); do echo {msg} | nc -w 2 {addr} 8080 && exit 0; sleep 0.2; done; exit 1"
    );
    let r = t.exec(from, &["sh", "-c", &script]);
    assert_eq!(
        r.exit_code,
        0,
        "nc {addr} 8080 from {from} failed: {r:?}\n{}",
        t.ctd.log_tail(20)
    );
    let listener = t
        .container_ids(to_pod)
        .into_iter()
        .find(|id| {
            t.status(id)
                .status
                .and_then(|s| s.metadata)
                .is_some_and(|m| m.name == to)
        })
        .unwrap_or_else(|| panic!("no container {to} in pod {}", to_pod.id));
    let st = t.wait_state(&listener, api::ContainerState::ContainerExited);
    assert_eq!(st.exit_code, 0, "{st:?}");
    t.wait_log_line(to_pod, to, "stdout", msg);
}

fn containers_share_the_pod_network_namespace(case: Case) {
    let t = case.cri();
    let pod = t.run_pod("p", &PodOpts::default());
    let server = t.start(&pod, "server", LISTENER);
    let client = t.start(&pod, "client", &["sleep", "1000000"]);
    let ns = |id: &str| {
        std::fs::read_link(format!("/proc/{}/ns/net", t.pid(id)))
            .unwrap_or_else(|e| panic!("readlink ns/net of {id}: {e}"))
    };
    let sandbox_ns = std::fs::read_link(format!("/proc/{}/ns/net", t.sandbox_pid(&pod)))
        .expect("readlink sandbox ns/net");
    assert_eq!(ns(&server), sandbox_ns, "server is not in the pod's netns");
    assert_eq!(ns(&client), sandbox_ns, "client is not in the pod's netns");
    t.assert_backend(&[&pod.id, &server, &client], case.backend);
    send_and_check(
        &t,
        &client,
        "127.0.0.1",
        &pod,
        "server",
        "hello-over-localhost",
    );
    t.remove_pod_and_check(&pod);
}

fn one_shim_serves_a_pod_of_three_containers(case: Case) {
    let t = case.cri();
    let pod = t.run_pod("p", &PodOpts::default());
    let ids: Vec<String> = (1..=3)
        .map(|i| t.start(&pod, &format!("c{i}"), &["sleep", "1000000"]))
        .collect();
    // Every container of the pod is served by the shim that containerd started for the sandbox
    // (its `-id` is the sandbox id); none has a shim of its own, and only the sandbox's
    // socket exists (containerd 2.x connects to the sandbox's shim for every container).
    let shims = t.shims_of(&pod.id);
    assert_eq!(
        shims.len(),
        1,
        "expected exactly one shim with -id {}: {shims:?}",
        pod.id
    );
    let all = leaks::shim_processes(&t.ctd.socket(), None);
    for id in &ids {
        let own = t.shims_of(id);
        assert!(own.is_empty(), "container {id} has its own shim: {own:?}");
        let sock = leaks::socket_path(&t.ctd.socket(), CRI_NAMESPACE, id);
        assert!(
            !sock.exists(),
            "container {id} has its own shim socket {}",
            sock.display()
        );
    }
    let shim_pid = shims[0].pid;
    let sock = leaks::socket_path(&t.ctd.socket(), CRI_NAMESPACE, &pod.id);
    assert!(
        sock.exists(),
        "the pod's shim socket {} is missing",
        sock.display()
    );
    // The shim is the parent (subreaper) of every container's init (under LXC, of the
    // `lxc-execute` whose child the init is).
    let ppid = |pid: u32| -> u32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    for id in &ids {
        let pid = t.pid(id);
        let mut parent = pid;
        for _ in 0..case.backend.shim_generation() {
            parent = ppid(parent);
        }
        assert_eq!(
            parent, shim_pid,
            "init {pid} of {id} is not supervised by the pod's shim {shim_pid} (all shims: {all:?})"
        );
    }
    t.assert_backend(&[&pod.id, &ids[0], &ids[1], &ids[2]], case.backend);
    // Removing one container cleans up after it (bundle, rootfs mount, backend state, cgroup)
    // while the shim keeps serving the others: containerd 2.x runs no `shim delete` for a
    // container attached to the sandbox's shim, so this is the Delete RPC's job.
    let gone = t.pid(&ids[2]);
    t.c()
        .stop_container(&ids[2], 0)
        .unwrap_or_else(|e| t.fail("StopContainer", &e));
    t.c()
        .remove_container(&ids[2])
        .unwrap_or_else(|e| t.fail("RemoveContainer", &e));
    t.assert_gone(&Footprint {
        ids: vec![ids[2].clone()],
        pids: vec![gone],
        ..Default::default()
    });
    assert!(
        leaks::alive(shim_pid),
        "the pod's shim exited with containers left"
    );
    assert_eq!(t.shims_of(&pod.id).len(), 1);
    let r = t.exec(&ids[0], &["echo", "still-served"]);
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "still-served");
    t.remove_pod_and_check(&pod);
    assert!(
        !leaks::alive(shim_pid),
        "the pod's shim {shim_pid} outlived the pod"
    );
    assert!(!sock.exists(), "{} left", sock.display());
}

fn host_network_pod(case: Case) {
    let t = case.cri();
    let pod = t.run_pod("p", &PodOpts::host_network());
    let id = t.start(&pod, "c", &["sleep", "1000000"]);
    let host_ns = std::fs::read_link("/proc/self/ns/net").expect("readlink own netns");
    for (what, pid) in [("sandbox", t.sandbox_pid(&pod)), ("container", t.pid(&id))] {
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .unwrap_or_else(|e| panic!("readlink ns/net of {pid}: {e}"));
        assert_eq!(
            ns, host_ns,
            "the {what} is not in the host's network namespace"
        );
    }
    // The host's interfaces are visible, and the container works.
    let r = t.exec(&id, &["cat", "/proc/net/dev"]);
    let host_dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    let ifaces = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = t
            .lines()
            .skip(2)
            .filter_map(|l| Some(l.split(':').next()?.trim().to_string()))
            .collect();
        v.sort();
        v
    };
    let inside = ifaces(&String::from_utf8_lossy(&r.stdout));
    assert!(
        ifaces(&host_dev)
            .iter()
            .all(|i| inside.contains(i) || i.starts_with("veth")),
        "host interfaces {:?} not all visible in the pod: {inside:?}",
        ifaces(&host_dev)
    );
    t.assert_backend(&[&pod.id, &id], case.backend);
    t.remove_pod_and_check(&pod);
}

fn cni_pods_get_ips_and_reach_each_other(case: Case) {
    let t = case.cri();
    let net = &t.ctd.cri().net;
    let a = t.run_pod("a", &PodOpts::default());
    let b = t.run_pod("b", &PodOpts::default());
    let ip_a = t.pod_ip(&a);
    let ip_b = t.pod_ip(&b);
    for (pod, ip) in [(&a, &ip_a), (&b, &ip_b)] {
        assert!(
            net.contains(ip),
            "pod {} got IP {ip:?}, not in the test network {}",
            pod.id,
            net.subnet
        );
    }
    assert_ne!(ip_a, ip_b, "both pods got the same IP");
    let server = t.start(&a, "server", LISTENER);
    let client = t.start(&b, "client", &["sleep", "1000000"]);
    // The pod sees its own address on eth0.
    let r = t.exec(&client, &["ip", "-4", "addr", "show", "eth0"]);
    assert!(
        String::from_utf8_lossy(&r.stdout).contains(&format!("inet {ip_b}/")),
        "eth0 of pod b lacks {ip_b}: {r:?}"
    );
    let r = t.exec(&client, &["ping", "-c", "1", "-W", "5", &ip_a]);
    eprintln!(
        "ping {ip_a} from pod b: exit {} {}",
        r.exit_code,
        String::from_utf8_lossy(&r.stdout).trim()
    );
    assert!(
        net.bridge_ports().len() >= 2,
        "the pods' veths are not on bridge {}: {:?}",
        net.name,
        net.bridge_ports()
    );
    t.assert_backend(&[&a.id, &b.id, &server, &client], case.backend);
    send_and_check(&t, &client, &ip_a, &a, "server", "hello-over-the-bridge");
    t.remove_pod_and_check(&a);
    t.remove_pod_and_check(&b);
}

fn pod_annotation_chooses_the_backend_of_every_container(case: Case) {
    let t = case.cri();
    // The instance's default backend is case.backend; the pod asks for the other one.
    let other = case.backend.other();
    let pod = t.run_pod("p", &PodOpts::annotated(BACKEND_ANNOTATION, other.0));
    let c1 = t.start(&pod, "c1", &["sleep", "1000000"]);
    let c2 = t.start(&pod, "c2", &["sleep", "1000000"]);
    t.assert_backend(&[&pod.id, &c1, &c2], other);
    let r = t.exec(&c2, &["echo", "on-the-pod-backend"]);
    assert_eq!(
        String::from_utf8_lossy(&r.stdout).trim(),
        "on-the-pod-backend"
    );
    t.remove_pod_and_check(&pod);
}

fn container_annotation_disagreeing_with_the_pod_is_refused(case: Case) {
    let t = case.cri();
    let other = case.backend.other();
    let mut opts = PodOpts::annotated(BACKEND_ANNOTATION, case.backend.0);
    opts.annotations
        .push(("nexcage.io/probe".into(), "from-pod".into()));
    let pod = t.run_pod("p", &opts);
    // What containerd puts into an app container's spec: the pod's `nexcage.io/*` annotations
    // (pod_annotations) and the container's (container_annotations), the container's applied
    // last, so on the same key the container's value wins.
    let probe = CtrOpts {
        annotations: vec![("nexcage.io/probe".into(), "from-container".into())],
    };
    let agree = t.start_with(&pod, "agree", &["sleep", "1000000"], &probe);
    let spec_path = t.ctd.bundle(CRI_NAMESPACE, &agree).join("config.json");
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&spec_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", spec_path.display())),
    )
    .expect("config.json");
    let ann = &spec["annotations"];
    assert_eq!(ann[BACKEND_ANNOTATION], case.backend.0, "{ann}");
    assert_eq!(ann["nexcage.io/probe"], "from-container", "{ann}");
    assert_eq!(
        ann["io.kubernetes.cri.sandbox-id"],
        pod.id.as_str(),
        "{ann}"
    );

    // So a container annotation naming another backend reaches the shim, which refuses it:
    // every container of a pod runs on the pod's backend.
    let opts = CtrOpts {
        annotations: vec![(BACKEND_ANNOTATION.into(), other.0.into())],
    };
    let id = t
        .try_create(&pod, "disagree", &["sleep", "1000000"], &opts)
        .unwrap_or_else(|e| t.fail("CreateContainer (disagreeing)", &e));
    let err = t.c().start_container(&id).expect_err(
        "StartContainer of a container whose backend annotation disagrees with its pod",
    );
    eprintln!("refusal: code {:?}: {}", err.code(), err.message());
    let msg = err.message();
    for want in [
        "disagrees with its pod".to_string(),
        format!("runs on {}", case.backend.0),
        format!("{BACKEND_ANNOTATION}={}", other.0),
    ] {
        assert!(msg.contains(&want), "refusal lacks {want:?}: {err:?}");
    }
    assert_eq!(
        err.code(),
        nexcage_e2e::cri::Code::FailedPrecondition,
        "{err:?}"
    );
    let st = t.status(&id).status.unwrap_or_default();
    assert_ne!(
        st.state,
        api::ContainerState::ContainerRunning as i32,
        "{st:?}"
    );
    // The refused container left nothing, and the pod is unharmed.
    let mut gone = Footprint {
        ids: vec![id.clone()],
        ..Default::default()
    };
    let mut leftovers = Vec::new();
    let clean = cmd::poll(Duration::from_secs(20), || {
        leftovers = t.leftovers(&gone);
        // Its CRI record stays until RemoveContainer.
        leftovers.retain(|l| !l.starts_with("CRI state dir left"));
        leftovers.is_empty().then_some(())
    });
    assert!(clean.is_some(), "the refused container left: {leftovers:?}");
    assert!(
        !t.backend_list(other).contains(&id) && !t.backend_list(case.backend).contains(&id),
        "the refused container is known to a backend"
    );
    t.c()
        .remove_container(&id)
        .unwrap_or_else(|e| t.fail("RemoveContainer (refused)", &e));
    gone.ids = vec![id];
    t.assert_gone(&gone);
    let r = t.exec(&agree, &["echo", "still-fine"]);
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "still-fine");
    t.assert_backend(&[&pod.id, &agree], case.backend);
    t.remove_pod_and_check(&pod);
}
