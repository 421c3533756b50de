//! Task events as `ctr events` sees them: their order for a run, OOM kills and execs.
//!
//! ctr 1.6 prints one line per event: `TIMESTAMP NAMESPACE TOPIC BODY`, the timestamp in Go's
//! `time.Time` format (with spaces, never ` /`), the body the event as JSON
//! (`{"container_id":"…","pid":…}`). The subscriber is started first and proven subscribed with a
//! sentinel event of its own (a namespace label update) before the scenario runs.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nexcage_e2e::ctr::{Ctr, RunOpts};
use nexcage_e2e::{backend_tests, cmd, Case};
use serde_json::Value;

backend_tests!(
    run_events_are_ordered,
    oom_kill_is_reported,
    exec_events_are_ordered
);

/// One line of `ctr events`.
#[derive(Debug, Clone)]
struct Event {
    topic: String,
    /// The event as JSON (`Null` when the body is missing or not JSON).
    body: Value,
    line: String,
}

impl Event {
    fn str(&self, key: &str) -> &str {
        self.body.get(key).and_then(Value::as_str).unwrap_or("")
    }

    fn num(&self, key: &str) -> Option<u64> {
        self.body.get(key).and_then(Value::as_u64)
    }
}

/// Parse `ctr events` output: the topic is the first word starting with `/`, the body the JSON
/// after it. Lines without a topic are skipped.
fn parse(text: &str) -> Vec<Event> {
    text.lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(" /")?;
            let (topic, body) = rest.split_once(' ').unwrap_or((rest, ""));
            Some(Event {
                topic: format!("/{topic}"),
                body: serde_json::from_str(body.trim()).unwrap_or(Value::Null),
                line: line.to_string(),
            })
        })
        .collect()
}

/// `/tasks/*` events of container `id`.
fn task_events(events: &[Event], id: &str) -> Vec<Event> {
    events
        .iter()
        .filter(|e| e.topic.starts_with("/tasks/") && e.str("container_id") == id)
        .cloned()
        .collect()
}

fn topics(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.topic.as_str()).collect()
}

/// `ctr -a SOCK events` running in the background, its stdout going to a file that can be read
/// at any time. Killed when dropped.
struct Watcher {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Watcher {
    /// Start `ctr events` and wait (hang guard 30 s) until it has provably subscribed: a label
    /// set on the namespace with a key unique to this test shows up in its output.
    fn start(ctr: &Ctr<'_>) -> Watcher {
        let base = ctr
            .ctd
            .dir()
            .join(format!("events-{}-{}", ctr.backend.0, ctr.test));
        let out = base.with_extension("out");
        let err = base.with_extension("err");
        let open = |p: &PathBuf| File::create(p).unwrap_or_else(|e| panic!("create {p:?}: {e}"));
        let mut c = Command::new("ctr");
        c.arg("-a").arg(ctr.ctd.socket()).arg("events");
        let line = cmd::cmdline(&c);
        let child = c
            .stdin(Stdio::null())
            .stdout(open(&out))
            .stderr(open(&err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
        let w = Watcher { child, out, err };
        let key = format!("e2e.sentinel.{}.{}", ctr.backend.0, ctr.test);
        let mut n = 0;
        let seen = cmd::poll(Duration::from_secs(30), || {
            n += 1;
            let out = ctr.ctr(&["namespaces", "label", &ctr.ns, &format!("{key}={n}")]);
            ctr.expect(&out, "ctr namespaces label (sentinel)");
            std::thread::sleep(Duration::from_millis(100));
            w.text().contains(&key).then_some(())
        });
        assert!(
            seen.is_some(),
            "`{line}` never showed the sentinel label {key}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            w.text(),
            std::fs::read_to_string(&w.err).unwrap_or_default()
        );
        // Clear the label again (an empty value removes it).
        ctr.ctr(&["namespaces", "label", &ctr.ns, &format!("{key}=")]);
        w
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn events(&self) -> Vec<Event> {
        parse(&self.text())
    }

    /// Wait (hang guard 20 s) until an event satisfies `f`: events are forwarded asynchronously,
    /// so the last ones may arrive after the ctr command that caused them returned.
    fn wait_for(&self, what: &str, f: impl Fn(&Event) -> bool) {
        let found = cmd::poll(Duration::from_secs(20), || {
            self.events().iter().any(&f).then_some(())
        });
        assert!(
            found.is_some(),
            "no {what} event in `ctr events` output:\n{}",
            self.text()
        );
    }

    /// Kill `ctr events` and return every event it printed.
    fn stop(mut self) -> Vec<Event> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.events()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dump(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| e.line.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_events_are_ordered(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let w = Watcher::start(&ctr);
    let out = ctr.run_rm(&id, &["sh", "-c", "exit 3"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    w.wait_for("/tasks/delete", |e| {
        e.topic == "/tasks/delete" && e.str("container_id") == id
    });
    w.wait_for("/containers/delete", |e| {
        e.topic == "/containers/delete" && e.str("id") == id
    });
    let all = w.stop();
    let ev = task_events(&all, &id);
    assert_eq!(
        topics(&ev),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "task events of {id}:\n{}",
        dump(&all)
    );
    let pid = ev[0].num("pid").filter(|p| *p > 0);
    assert!(pid.is_some(), "/tasks/create without a pid: {}", ev[0].line);
    for e in &ev {
        assert_eq!(
            e.num("pid"),
            pid,
            "pid differs from /tasks/create: {}",
            e.line
        );
    }
    // The init's exit carries the container id as process id; exit and delete carry status 3.
    assert_eq!(ev[2].str("id"), id, "{}", ev[2].line);
    assert_eq!(ev[2].num("exit_status"), Some(3), "{}", ev[2].line);
    assert_eq!(ev[3].num("exit_status"), Some(3), "{}", ev[3].line);
    // containerd's own container events bracket the task's.
    let pos = |topic: &str| {
        all.iter()
            .position(|e| e.topic == topic && (e.str("id") == id || e.str("container_id") == id))
            .unwrap_or_else(|| panic!("no {topic} for {id}:\n{}", dump(&all)))
    };
    assert!(
        pos("/containers/create") < pos("/tasks/create"),
        "{}",
        dump(&all)
    );
    assert!(
        pos("/tasks/delete") < pos("/containers/delete"),
        "{}",
        dump(&all)
    );
    ctr.assert_nothing_left(&id, &[]);
}

fn oom_kill_is_reported(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let w = Watcher::start(&ctr);
    let limit: u64 = 32 * 1024 * 1024;
    let opts = RunOpts {
        flags: vec!["--memory-limit".into(), limit.to_string()],
        ..Default::default()
    };
    // `tail` keeps the one endless "line" of /dev/zero in memory: it grows until the cgroup's
    // OOM killer ends it (this host has no swap; with swap the memsw limit, which ctr 1.6
    // cannot set, would have to be reached first).
    let out = ctr.run(&opts, &id, &["sh", "-c", "tail /dev/zero"]);
    assert_eq!(
        out.code,
        Some(137),
        "OOM-killed task must exit 137: {out:?}"
    );
    w.wait_for("/tasks/delete", |e| {
        e.topic == "/tasks/delete" && e.str("container_id") == id
    });
    let all = w.stop();
    let ev = task_events(&all, &id);
    let t = topics(&ev);
    let oom = t.iter().position(|t| *t == "/tasks/oom");
    let start = t.iter().position(|t| *t == "/tasks/start");
    let delete = t.iter().position(|t| *t == "/tasks/delete");
    assert!(
        oom.is_some() && start < oom && oom < delete,
        "expected a /tasks/oom for {id} between /tasks/start and /tasks/delete, got {t:?}:\n{}\n{}",
        dump(&all),
        ctr.ctd.log_tail(30)
    );
    let exit = ev.iter().find(|e| e.topic == "/tasks/exit");
    assert_eq!(
        exit.and_then(|e| e.num("exit_status")),
        Some(137),
        "{}",
        dump(&ev)
    );
    ctr.assert_nothing_left(&id, &[]);
}

fn exec_events_are_ordered(case: Case) {
    let ctr = case.ctr();
    let id = ctr.id("1");
    let _g = ctr.guard(&[&id]);
    let pid = ctr.start_detached(&id, &["sleep", "1000"]);
    let w = Watcher::start(&ctr);
    let exec_id = "ev-exec-1";
    let out = ctr.exec(&id, exec_id, &["sh", "-c", "exit 5"]);
    assert_eq!(out.code, Some(5), "{out:?}");
    let of_exec = |e: &Event| {
        e.str("container_id") == id
            && (e.str("exec_id") == exec_id || (e.topic == "/tasks/exit" && e.str("id") == exec_id))
    };
    w.wait_for("/tasks/exit of the exec", |e| {
        e.topic == "/tasks/exit" && of_exec(e)
    });
    let all = w.stop();
    let ev: Vec<Event> = all.iter().filter(|e| of_exec(e)).cloned().collect();
    assert_eq!(
        topics(&ev),
        ["/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"],
        "events of exec {exec_id}:\n{}",
        dump(&all)
    );
    let exec_pid = ev[1].num("pid").filter(|p| *p > 0);
    assert!(
        exec_pid.is_some(),
        "/tasks/exec-started without a pid: {}",
        ev[1].line
    );
    assert_ne!(
        exec_pid,
        Some(pid.into()),
        "exec pid is the init's: {}",
        ev[1].line
    );
    assert_eq!(ev[2].num("pid"), exec_pid, "{}", ev[2].line);
    assert_eq!(ev[2].num("exit_status"), Some(5), "{}", ev[2].line);
    // The init did not exit.
    assert!(
        !task_events(&all, &id)
            .iter()
            .any(|e| e.topic == "/tasks/exit" && e.str("id") == id),
        "{}",
        dump(&all)
    );
    assert_eq!(ctr.wait_status(&id, "RUNNING").pid, pid);
    ctr.remove_and_check(&id, pid);
}
