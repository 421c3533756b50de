//! The zfs-fuse fallback and error paths, against a fake `zfs` that prints recorded output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nexcage_core::{ErrorKind, HasKind};
use nexcage_zfs::{DatasetType, Depth, ListOpts, Zfs};

/// A fake zfs-fuse 0.7: `list -p` is an invalid option; `get` prints recorded rows; every call
/// is appended to `calls`.
fn fake(dir: &Path) -> PathBuf {
    let script = dir.join("zfs");
    let calls = dir.join("calls");
    let body = format!(
        r#"#!/bin/sh
echo "$*" >> {calls}
case "$1 $2 $3" in
  "list -H -p") printf "invalid option 'p'\nusage:\n\tlist [-rH][-d max] ...\n" >&2; exit 2 ;;
  "get -H -p")
    printf 'p/s\ttype\tfilesystem\np/s\tused\t1000\np/s\tavailable\t5000\np/s\treferenced\t900\n'
    printf 'p/s\tmountpoint\t/p/s\np/s\torigin\t-\np/s\tcreation\t17\n'
    printf 'p/s@a\ttype\tsnapshot\np/s@a\tused\t0\np/s@a\tavailable\t-\np/s@a\treferenced\t900\n'
    printf 'p/s@a\tmountpoint\t-\np/s@a\torigin\t-\np/s@a\tcreation\t18\n'
    exit 0 ;;
esac
case "$1" in
  destroy) for last; do :; done; echo "cannot destroy '$last': dataset is busy" >&2; exit 1 ;;
esac
exit 0
"#,
        calls = calls.display()
    );
    std::fs::write(&script, body).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[tokio::test]
async fn list_falls_back_to_get_once() {
    let dir = tempfile::tempdir().unwrap();
    let zfs = Zfs::new().with_programs(fake(dir.path()), "/bin/false");
    let o = ListOpts {
        roots: vec!["p/s".into()],
        depth: Depth::Max(1),
        types: vec![DatasetType::Filesystem, DatasetType::Snapshot],
    };
    let rows = zfs.list(&o).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].used, 1000);
    assert_eq!(rows[1].kind, DatasetType::Snapshot);
    let only_fs = zfs.list(&ListOpts::children("p/s", &[])).await.unwrap();
    assert_eq!(
        only_fs.len(),
        1,
        "the snapshot is filtered out: {only_fs:?}"
    );
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    let lines: Vec<_> = calls.lines().collect();
    assert_eq!(lines.len(), 3, "probe once, then get twice: {calls}");
    assert!(lines[0].starts_with("list -H -p -o name,type,used"));
    assert!(lines[1].starts_with("get -H -p -o name,property,value -d 1 type,used"));
    assert!(lines[1].ends_with(" p/s"));
}

#[tokio::test]
async fn busy_destroy_is_retried_then_reported() {
    let dir = tempfile::tempdir().unwrap();
    let zfs = Zfs::new()
        .with_programs(fake(dir.path()), "/bin/false")
        .busy_retries(2, std::time::Duration::from_millis(1));
    let e = zfs
        .destroy("p/x", &nexcage_zfs::DestroyOpts::recursive())
        .await
        .unwrap_err();
    assert!(e.is_busy());
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(
        e.to_string(),
        "zfs destroy p/x: cannot destroy 'p/x': dataset is busy"
    );
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    assert_eq!(calls.lines().filter(|l| *l == "destroy -r p/x").count(), 3);
}

#[tokio::test]
async fn missing_tool_is_unavailable() {
    let zfs = Zfs::new().with_programs("/nonexistent/zfs", "/nonexistent/zpool");
    let e = zfs.exists("p/x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let e = zfs.pools(&[]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
}
