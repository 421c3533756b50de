//! Unit tests of the task manager's pure helpers.

use super::*;
use crate::pod::has_own_pid_namespace;
use nexcage_core::routing::BACKEND_ANNOTATION;
use nexcage_core::HasKind;

fn spec_with(ns: serde_json::Value) -> oci_spec::runtime::Spec {
    serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "linux": {"namespaces": ns}
    }))
    .unwrap()
}

#[test]
fn a_container_disagreeing_with_its_pod_is_refused() {
    let ann: HashMap<String, String> =
        [(BACKEND_ANNOTATION.to_string(), "runc".to_string())].into();
    let subject = Subject {
        id: "app",
        annotations: Some(&ann),
    };
    let e = pod_backend_check("app", &subject, "sb1", "crun").unwrap_err();
    assert_eq!(e.kind(), nexcage_core::ErrorKind::FailedPrecondition);
    assert!(
        e.message().contains("nexcage.io/backend=runc") && e.message().contains("sb1 runs on crun"),
        "{}",
        e.message()
    );
    pod_backend_check("app", &subject, "sb1", "runc").unwrap();
    pod_backend_check(
        "app",
        &Subject {
            id: "app",
            annotations: None,
        },
        "sb1",
        "crun",
    )
    .unwrap();
}

#[test]
fn pid_namespace_ownership() {
    assert!(has_own_pid_namespace(&spec_with(
        serde_json::json!([{"type": "pid"}])
    )));
    assert!(!has_own_pid_namespace(&spec_with(
        serde_json::json!([{"type": "pid", "path": "/proc/1/ns/pid"}])
    )));
    assert!(!has_own_pid_namespace(&spec_with(
        serde_json::json!([{"type": "mount"}])
    )));
}

#[test]
fn missing_config_json_is_not_found_and_bad_json_is_invalid() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(
        read_spec(d.path()).unwrap_err().kind(),
        nexcage_core::ErrorKind::NotFound
    );
    std::fs::write(d.path().join("config.json"), "{\"ociVersion\": 3}").unwrap();
    let e = read_spec(d.path()).unwrap_err();
    assert_eq!(e.kind(), nexcage_core::ErrorKind::InvalidArgument);
    assert!(e.message().contains("config.json"), "{}", e.message());
}
