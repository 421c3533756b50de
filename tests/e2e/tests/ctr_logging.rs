//! `ctr run --log-uri`: the shim writes the container's stdout and stderr to a file
//! (`file://PATH`) or pipes them into a logging program (`binary://PATH?k=v`, containerd's
//! binary logger contract: stdout on fd 3, stderr on fd 4, fd 5 closed once ready, query
//! `?k=v` as arguments `k v`, CONTAINER_ID and CONTAINER_NAMESPACE in the environment).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nexcage_e2e::ctr::{Ctr, RunOpts};
use nexcage_e2e::{backend_tests, cmd, leaks, Case};

backend_tests!(
    file_log_uri_gets_both_streams,
    binary_log_uri_feeds_the_logger,
    binary_log_uri_query_is_passed_as_containerd_does,
);

const SCRIPT: &str = "echo to-out; echo to-err >&2";

/// A fresh directory for this test inside the containerd instance's temp dir.
fn test_dir(ctr: &Ctr<'_>, name: &str) -> PathBuf {
    let dir = ctr
        .ctd
        .dir()
        .join(format!("{name}-{}-{}", ctr.backend.0, ctr.test));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn log_opts(uri: String) -> RunOpts {
    RunOpts {
        flags: vec!["--log-uri".into(), uri],
        ..Default::default()
    }
}

fn file_log_uri_gets_both_streams(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let dir = test_dir(&ctr, "filelog");
    let log = dir.join("out.log");
    let out = ctr.run(
        &log_opts(format!("file://{}", log.display())),
        &id,
        &["sh", "-c", SCRIPT],
    );
    ctr.expect(&out, "ctr run --rm --log-uri file://");
    // Everything went to the file, nothing to ctr.
    assert!(
        !out.all().contains("to-out") && !out.all().contains("to-err"),
        "{out:?}"
    );
    let text = read(&log);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["to-err", "to-out"], "{}: {text:?}", log.display());
    ctr.assert_nothing_left(&id, &[]);
}

/// The logger: records its arguments and environment, copies fd 3 and fd 4 into files of the
/// directory given as `-dir DIR` or `dir DIR` (see
/// [`binary_log_uri_query_is_passed_as_containerd_does`]), closes fd 5 (ready; the copies must
/// not inherit it) and writes `done` once both streams reached EOF.
const LOGGER: &str = r#"#!/bin/sh
# containerd's Go shim sends SIGTERM once the container exited: keep draining to EOF.
trap '' TERM
case "$#:$1" in
  2:-dir|2:dir) dir=$2 ;;
  *) echo "usage: $0 -dir DIR (got: $*)" >&2; exit 2 ;;
esac
printf '%s\n' "$@" > "$dir/args"
printf 'CONTAINER_ID=%s\nCONTAINER_NAMESPACE=%s\n' "$CONTAINER_ID" "$CONTAINER_NAMESPACE" > "$dir/env"
cat <&3 > "$dir/stdout" 4<&- 5>&- &
cat <&4 > "$dir/stderr" 3<&- 5>&- &
exec 5>&-
wait
echo done > "$dir/done"
"#;

/// Run the scenario with the logger above; returns its output directory once the logger has
/// finished, after checking the streams, the environment and that the logger is gone.
fn run_with_logger(ctr: &Ctr<'_>, id: &str) -> PathBuf {
    let dir = test_dir(ctr, "binlog");
    let logger = dir.join("logger.sh");
    std::fs::write(&logger, LOGGER).expect("write logger.sh");
    std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755))
        .expect("chmod logger.sh");
    let outdir = dir.join("bin-out");
    std::fs::create_dir(&outdir).expect("create bin-out");
    let uri = format!("binary://{}?dir={}", logger.display(), outdir.display());
    let out = ctr.run(&log_opts(uri), id, &["sh", "-c", SCRIPT]);
    ctr.expect(&out, "ctr run --rm --log-uri binary://");
    assert!(
        !out.all().contains("to-out") && !out.all().contains("to-err"),
        "{out:?}"
    );
    // The logger drains its pipes after the container exited: wait for it (hang guard).
    let done = cmd::poll(Duration::from_secs(20), || {
        outdir.join("done").exists().then_some(())
    });
    let listing = || {
        std::fs::read_dir(&outdir)
            .map(|rd| {
                rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert!(
        done.is_some(),
        "the logger never finished; {} holds {:?}\n{}",
        outdir.display(),
        listing(),
        ctr.ctd.log_tail(30)
    );
    assert_eq!(read(&outdir.join("stdout")), "to-out\n");
    assert_eq!(read(&outdir.join("stderr")), "to-err\n");
    assert_eq!(
        read(&outdir.join("env")),
        format!("CONTAINER_ID={id}\nCONTAINER_NAMESPACE={}\n", ctr.ns)
    );
    // The logger itself is gone too.
    let script = logger.display().to_string();
    let gone = cmd::poll(Duration::from_secs(20), || {
        (!leaks::processes().iter().any(|p| p.args.contains(&script))).then_some(())
    });
    assert!(gone.is_some(), "logger process {script} still running");
    ctr.assert_nothing_left(id, &[]);
    outdir
}

fn binary_log_uri_feeds_the_logger(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let outdir = run_with_logger(&ctr, &id);
    // The query reached the logger as a flag and its value (either form, see below).
    let args = read(&outdir.join("args"));
    let dir = outdir.display();
    assert!(
        args == format!("-dir\n{dir}\n") || args == format!("dir\n{dir}\n"),
        "logger arguments: {args:?}"
    );
}

/// containerd's shims (`NewBinaryCmd` in pkg/process and runtime/v2/logging, every release)
/// pass each query key verbatim, then its first value: `?dir=X` gives the arguments `dir X`,
/// with no dash. A logger written for containerd must get the same from nexcage.
fn binary_log_uri_query_is_passed_as_containerd_does(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let outdir = run_with_logger(&ctr, &id);
    assert_eq!(
        read(&outdir.join("args")),
        format!("dir\n{}\n", outdir.display()),
        "logger arguments for ?dir={} (one per line)",
        outdir.display()
    );
}
