//! Kubernetes on Proxmox: a pod run through CRI on `proxmox-lxc` is one Proxmox CT per
//! container on the (simulated) node, running, tagged and described with its pod, while
//! Kubernetes sees an ordinary pod; removing the pod removes the CTs. The ctr and CRI scenarios
//! of the other suites also run on proxmox-lxc (`backend_tests!`); this checks the Proxmox view.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use nexcage_e2e::cri::PodOpts;
use nexcage_e2e::{cmd, pve, Backend, Case};

/// `pct ARGS` on the simulated node of the test's containerd instance.
fn pct(dir: &std::path::Path, args: &[&str]) -> cmd::Output {
    let mut c = Command::new(pve::pct_binary());
    c.args(args).envs(pve::envs(dir));
    let out = cmd::run(c, Duration::from_secs(30));
    assert!(out.success(), "pct {args:?}: {out:?}");
    out
}

/// `%XX` decoding of `pct config`'s description.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_pod_is_one_running_ct_per_container_tagged_with_the_pod() {
    let case = Case {
        backend: Backend(pve::NAME),
        name: "a_pod_is_one_running_ct_per_container",
    };
    let t = case.cri();
    let dir = t.ctd.dir();
    let pod = t.run_pod("web", &PodOpts::default());
    let app = t.start(&pod, "app", &["sleep", "1000000"]);
    t.assert_backend(&[&pod.id, &app], case.backend);

    // `pct list`: a header and this pod's two CTs (sandbox and app), running, named by hostname.
    // The app container's CT is registered in the background (docs/backends/proxmox.md): it
    // shows up within a few seconds of StartContainer.
    let pod_ours = || -> (String, BTreeMap<String, String>) {
        let list = pct(dir, &["list"]).stdout;
        let ours = list
            .lines()
            .skip(1)
            .filter_map(|r| {
                let vmid = r.split_whitespace().next()?.to_string();
                let cfg = pct(dir, &["config", &vmid]).stdout;
                cfg.contains(&format!("pod-e2e-{}", pod.name))
                    .then(|| (vmid, r.to_string()))
            })
            .collect();
        (list, ours)
    };
    let mut seen = pod_ours();
    for _ in 0..100 {
        if seen.1.len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        seen = pod_ours();
    }
    let (list, ours) = seen;
    assert_eq!(ours.len(), 2, "one CT per container of the pod:\n{list}");
    for (vmid, row) in &ours {
        assert!(row.contains("running"), "CT {vmid} not running: {row}");
        let status = pct(dir, &["status", vmid]).stdout;
        assert_eq!(status.trim(), "status: running");
        let cfg = pct(dir, &["config", vmid]).stdout;
        let key = |k: &str| {
            cfg.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                .map(unescape)
                .unwrap_or_default()
        };
        let tags: Vec<String> = key("tags").split(';').map(str::to_string).collect();
        assert!(tags.contains(&"nexcage".to_string()), "{cfg}");
        assert!(tags.contains(&"ns-k8s.io".to_string()), "{cfg}");
        assert!(
            key("description").contains(&format!("pod: e2e/{}", pod.name)),
            "{cfg}"
        );
        assert_eq!(key("ostype"), "unmanaged", "{cfg}");
    }
    let app_ct = ours
        .keys()
        .find(|v| pct(dir, &["config", v]).stdout.contains("ctr-app"))
        .unwrap_or_else(|| panic!("no CT tagged ctr-app: {ours:?}"));
    // pct exec reaches the app container (it is the same LXC container the shim runs).
    let ps = pct(dir, &["exec", app_ct, "--", "ps"]).stdout;
    assert!(ps.contains("sleep 1000000"), "{ps}");

    t.remove_pod_and_check(&pod);
    let list = pct(dir, &["list"]).stdout;
    for vmid in ours.keys() {
        assert!(!list.contains(vmid.as_str()), "CT {vmid} left:\n{list}");
    }
}
