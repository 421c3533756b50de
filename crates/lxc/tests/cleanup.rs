//! Delete from a fresh backend instance after the shim that created the container was killed
//! with SIGKILL (lxc-execute orphaned, still running or still held before Start).
//!
//! The "shim" is this test binary run again as a helper process (`orphan_helper`, ignored in
//! normal runs): it creates the container and waits to be killed.

mod common;

use std::io::BufRead;
use std::time::Duration;

use common::*;
use nexcage_core::backend::Backend;
use nexcage_lxc::state::Record;

const ROOT: &str = "NEXCAGE_LXC_ORPHAN_ROOT";
const BUNDLE: &str = "NEXCAGE_LXC_ORPHAN_BUNDLE";
const ID: &str = "NEXCAGE_LXC_ORPHAN_ID";
const START: &str = "NEXCAGE_LXC_ORPHAN_START";

#[tokio::test]
#[ignore = "helper process for the orphan tests below, run by them"]
async fn orphan_helper() {
    require();
    let root = std::env::var(ROOT).expect("run by the orphan tests");
    let backend = nexcage_lxc::LxcBackend::new(&settings(root.as_ref()), "test");
    let id = std::env::var(ID).unwrap();
    let bundle_path = std::path::PathBuf::from(std::env::var(BUNDLE).unwrap());
    let cfg = nexcage_core::types::CreateConfig {
        id: id.clone(),
        namespace: "test".into(),
        bundle: bundle_path,
        spec: serde_json::from_value(spec(&id, &["/bin/sleep", "1000"])).unwrap(),
        io: Default::default(),
    };
    let s = backend.create(cfg).await.unwrap();
    if std::env::var(START).as_deref() == Ok("1") {
        backend.start(&id).await.unwrap();
    }
    println!("READY {}", s.pid);
    tokio::time::sleep(Duration::from_secs(600)).await;
}

async fn orphaned_container_is_cleaned_up(start: bool) {
    let env = Env::new();
    let bundle = Bundle::new();
    let id = unique(if start { "orph" } else { "orphc" });
    let since = std::time::Instant::now();
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "orphan_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROOT, env.root.path())
        .env(BUNDLE, bundle.path())
        .env(ID, &id)
        .env(START, if start { "1" } else { "0" })
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let hpid = helper.id();
    let _guard = KillOnDrop(hpid);
    let helper_exit = nexcage_core::reaper::watch(hpid, since);
    let out = helper.stdout.take().unwrap();
    drop(helper);
    let init: u32 = tokio::task::spawn_blocking(move || {
        let mut r = std::io::BufReader::new(out);
        let mut line = String::new();
        loop {
            line.clear();
            assert_ne!(
                r.read_line(&mut line).unwrap(),
                0,
                "the helper exited before READY"
            );
            // libtest prints `test orphan_helper ... ` on the same line first
            if let Some(p) = line.split("READY ").nth(1) {
                return p.trim().parse().unwrap();
            }
        }
    })
    .await
    .unwrap();
    let rec = Record::load(&env.lxcpath().join(&id).join("nexcage.json"))
        .unwrap()
        .unwrap();
    // The shim dies without cleaning anything up.
    nexcage_lxc::procfs::kill(hpid, libc::SIGKILL).unwrap();
    assert_eq!(exit_code(helper_exit, 10).await, 137);
    assert!(rec.monitor.alive(), "lxc-execute must survive its shim");
    assert!(
        nexcage_lxc::procfs::Proc::of(init).is_some(),
        "the container must survive its shim"
    );

    let fresh = env.fresh();
    fresh.delete(&id).await.unwrap();
    assert_eq!(
        leftovers(&env, &id, &[init, rec.monitor.pid]),
        Vec::<String>::new()
    );
    // and again: delete is idempotent
    fresh.delete(&id).await.unwrap();
}

#[tokio::test]
async fn delete_from_a_fresh_instance_cleans_up_after_a_killed_shim() {
    orphaned_container_is_cleaned_up(true).await;
}

#[tokio::test]
async fn delete_from_a_fresh_instance_cleans_up_a_created_container_after_a_killed_shim() {
    orphaned_container_is_cleaned_up(false).await;
}

#[tokio::test]
async fn delete_of_an_unknown_container_is_ok() {
    let env = Env::new();
    env.backend.delete("never-created").await.unwrap();
    env.fresh().delete("never-created").await.unwrap();
}
