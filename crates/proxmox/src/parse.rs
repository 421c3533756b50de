//! Parsers of the documented outputs (proxmox.md §2.6–2.8, §7, §8.2–8.3, §10.3). Each returns
//! `Err(reason)` on anything that does not look exactly as documented.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::Vmid;

/// A container's state (`pct status`: containers have only these two; frozen is running).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtState {
    /// `status: running`.
    Running,
    /// `status: stopped`.
    Stopped,
}

/// A VM's state (`qm status`: the QMP status or `stopped`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmState {
    /// `running`.
    Running,
    /// `stopped`.
    Stopped,
    /// `paused`.
    Paused,
    /// Anything else QMP reports (`prelaunch`, `suspended`, `inmigrate`, …).
    Other(String),
}

/// `status: running` / `status: stopped`.
pub fn ct_status(stdout: &str) -> Result<CtState, String> {
    match status_value(stdout)? {
        "running" => Ok(CtState::Running),
        "stopped" => Ok(CtState::Stopped),
        v => Err(format!("unknown container status '{v}'")),
    }
}

/// `status: <qmpstatus>`.
pub fn vm_status(stdout: &str) -> Result<VmState, String> {
    Ok(match status_value(stdout)? {
        "running" => VmState::Running,
        "stopped" => VmState::Stopped,
        "paused" => VmState::Paused,
        v => VmState::Other(v.to_string()),
    })
}

fn status_value(stdout: &str) -> Result<&str, String> {
    let mut lines = stdout.lines();
    match (lines.next(), lines.next()) {
        (Some(l), None) => l
            .strip_prefix("status: ")
            .filter(|v| !v.is_empty() && !v.contains(' '))
            .ok_or_else(|| format!("expected 'status: <state>', got {l:?}")),
        _ => Err(format!(
            "expected one line 'status: <state>', got {stdout:?}"
        )),
    }
}

/// One row of `pct list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtListEntry {
    /// VMID.
    pub vmid: Vmid,
    /// Running or stopped.
    pub status: CtState,
    /// The config lock (`create`, `destroyed`, …), `None` when the column is empty.
    pub lock: Option<String>,
    /// Hostname without whitespace, or `CT<vmid>`.
    pub name: String,
}

const LIST_HEADER: &str = "VMID       Status     Lock         Name";

/// `pct list`: nothing, or a header and `%-10s %-10s %-12s %-20s` rows. The Lock column is
/// read by position (it may be empty, §13.5); a lock longer than 12 characters pushes the name
/// one word further.
pub fn ct_list(stdout: &str) -> Result<Vec<CtListEntry>, String> {
    let mut lines = stdout.lines();
    let Some(header) = lines.next() else {
        return Ok(Vec::new());
    };
    if header.trim_end() != LIST_HEADER {
        return Err(format!("unexpected pct list header {header:?}"));
    }
    let mut out = Vec::new();
    for line in lines {
        if line.len() < 23 || !line.is_char_boundary(22) {
            return Err(format!("short pct list row {line:?}"));
        }
        let (fixed, rest) = line.split_at(22);
        let mut cols = fixed.split_whitespace();
        let vmid = cols
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("bad VMID in pct list row {line:?}"))?;
        let status = match cols.next() {
            Some("running") => CtState::Running,
            Some("stopped") => CtState::Stopped,
            _ => return Err(format!("bad status in pct list row {line:?}")),
        };
        let (lock, name) = if rest.starts_with(' ') {
            (None, rest.trim())
        } else {
            let (l, n) = rest.split_once(' ').unwrap_or((rest, ""));
            (Some(l.to_string()), n.trim())
        };
        if name.is_empty() {
            return Err(format!("missing name in pct list row {line:?}"));
        }
        out.push(CtListEntry {
            vmid,
            status,
            lock,
            name: name.to_string(),
        });
    }
    Ok(out)
}

/// A guest config as `pct config` / `qm config` print it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtConfig {
    /// `key: value` properties (`description` still URI-escaped, `env` NUL-separated).
    pub keys: BTreeMap<String, String>,
    /// Raw `lxc.*` entries, in order.
    pub lxc: Vec<(String, String)>,
}

impl CtConfig {
    /// A property.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.keys.get(k).map(String::as_str)
    }

    /// The `lock` value.
    pub fn lock(&self) -> Option<&str> {
        self.get("lock")
    }

    /// `description`, URI-unescaped.
    pub fn description(&self) -> Option<String> {
        self.get("description").map(decode_text)
    }

    /// `tags`, split on `;`, `,` and spaces.
    pub fn tags(&self) -> Vec<String> {
        self.get("tags")
            .map(|t| {
                t.split([';', ',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `pct config`: `key: value` lines, raw `lxc.*` lines last.
pub fn config(stdout: &str) -> Result<CtConfig, String> {
    let mut c = CtConfig::default();
    for line in stdout.lines().filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once(": ")
            .or_else(|| line.strip_suffix(':').map(|k| (k, "")))
            .ok_or_else(|| format!("config line without 'key: value': {line:?}"))?;
        if k.starts_with("lxc.") {
            c.lxc.push((k.to_string(), v.to_string()));
        } else {
            c.keys.insert(k.to_string(), v.to_string());
        }
    }
    Ok(c)
}

/// Undo the `%XX` escaping of descriptions (§4.1).
pub fn decode_text(s: &str) -> String {
    nexcage_core::percent::decode(s)
}

/// `pvesh get /cluster/nextid` in text (`100\n`) or JSON (`100` or `"100"`) form.
pub fn nextid(stdout: &str) -> Result<Vmid, String> {
    let t = stdout.trim();
    let t = t
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(t);
    t.parse()
        .ok()
        .filter(|v| (100..=999_999_999).contains(v))
        .ok_or_else(|| format!("not a VMID: {stdout:?}"))
}

/// A container's vmstatus (`pvesh get /nodes/<n>/lxc/<vmid>/status/current --output-format json`).
#[derive(Debug, Clone, PartialEq)]
pub struct VmStatus {
    /// VMID.
    pub vmid: Vmid,
    /// `running` / `stopped`.
    pub status: CtState,
    /// Hostname or `CT<vmid>`.
    pub name: String,
    /// The config lock.
    pub lock: Option<String>,
    /// Tags as configured.
    pub tags: Option<String>,
    /// Host pid of init, when running.
    pub pid: Option<u32>,
    /// Memory limit, bytes.
    pub maxmem: u64,
    /// Swap limit, bytes.
    pub maxswap: u64,
    /// CPUs.
    pub cpus: f64,
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str()?.parse().ok())
}

/// One vmstatus object (numbers may come as JSON numbers or strings).
pub fn vmstatus(v: &Value) -> Result<VmStatus, String> {
    let field = |k: &str| v.get(k).filter(|x| !x.is_null());
    let vmid = field("vmid").and_then(num).ok_or("vmstatus without vmid")? as Vmid;
    let status = match field("status").and_then(Value::as_str) {
        Some("running") => CtState::Running,
        Some("stopped") => CtState::Stopped,
        s => return Err(format!("vmstatus with status {s:?}")),
    };
    let text = |k: &str| field(k).map(|x| x.as_str().map_or(x.to_string(), str::to_string));
    Ok(VmStatus {
        vmid,
        status,
        name: text("name").unwrap_or_default(),
        lock: text("lock"),
        tags: text("tags"),
        pid: field("pid").and_then(num).map(|p| p as u32),
        maxmem: field("maxmem").and_then(num).unwrap_or(0.0) as u64,
        maxswap: field("maxswap").and_then(num).unwrap_or(0.0) as u64,
        cpus: field("cpus").and_then(num).unwrap_or(0.0),
    })
}

/// The JSON of `pvesh … --output-format json`.
pub fn json(stdout: &str) -> Result<Value, String> {
    serde_json::from_str(stdout.trim()).map_err(|e| format!("invalid JSON: {e}"))
}

/// The result of `qm guest exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestExec {
    /// Whether the process ended (else only `pid` is known: timeout or `--synchronous 0`).
    pub exited: bool,
    /// Exit code.
    pub exitcode: Option<i32>,
    /// Signal that ended it.
    pub signal: Option<i32>,
    /// Decoded stdout.
    pub out_data: String,
    /// Decoded stderr.
    pub err_data: String,
    /// The guest pid, when it has not exited.
    pub pid: Option<u32>,
}

/// `qm guest exec`'s pretty JSON (`exited` as 1/0 after qm's conversion).
pub fn guest_exec(stdout: &str) -> Result<GuestExec, String> {
    let v = json(stdout)?;
    if !v.is_object() {
        return Err(format!("expected an object, got {v}"));
    }
    let int = |k: &str| v.get(k).and_then(num).map(|n| n as i64);
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let exited = v
        .get("exited")
        .is_some_and(|e| e.as_bool().unwrap_or(false) || num(e).is_some_and(|n| n != 0.0));
    Ok(GuestExec {
        exited,
        exitcode: int("exitcode").map(|n| n as i32),
        signal: int("signal").map(|n| n as i32),
        out_data: text("out-data"),
        err_data: text("err-data"),
        pid: int("pid").map(|n| n as u32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(ct_status("status: running\n"), Ok(CtState::Running));
        assert_eq!(ct_status("status: stopped\n"), Ok(CtState::Stopped));
        assert!(ct_status("status: paused\n").is_err());
        assert!(ct_status("").is_err());
        assert!(ct_status("status: running\nextra\n").is_err());
        assert_eq!(vm_status("status: paused\n"), Ok(VmState::Paused));
        assert_eq!(
            vm_status("status: prelaunch\n"),
            Ok(VmState::Other("prelaunch".into()))
        );
    }

    #[test]
    fn list_with_and_without_locks() {
        let row = |v: &str, s: &str, l: &str, n: &str| format!("{v:<10} {s:<10} {l:<12} {n:<20}\n");
        let out = format!(
            "{}{}{}{}",
            row("VMID", "Status", "Lock", "Name"),
            row("100", "running", "", "web"),
            row("101", "stopped", "create", "CT101"),
            row("102", "stopped", "snapshot-delete", "db"),
        );
        let l = ct_list(&out).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(
            l[0],
            CtListEntry {
                vmid: 100,
                status: CtState::Running,
                lock: None,
                name: "web".into()
            }
        );
        assert_eq!(l[1].lock.as_deref(), Some("create"));
        assert_eq!(l[1].name, "CT101");
        assert_eq!(l[2].lock.as_deref(), Some("snapshot-delete"));
        assert_eq!(l[2].name, "db");
        assert_eq!(ct_list(""), Ok(vec![]));
        assert!(ct_list("garbage\n").is_err());
    }

    #[test]
    fn config_keys_then_raw_lines() {
        let out = "arch: amd64\ndescription: pod%3A default/web%0Aline 2\nenv: A=1\0B=2\nhostname: web\n\
                   memory: 512\ntags: nexcage;pod-web\nlxc.init.cmd: /bin/sh\nlxc.mount.entry: /a b none bind 0 0\n";
        let c = config(out).unwrap();
        assert_eq!(c.get("memory"), Some("512"));
        assert_eq!(c.get("env"), Some("A=1\0B=2"));
        assert_eq!(c.description().as_deref(), Some("pod: default/web\nline 2"));
        assert_eq!(c.tags(), ["nexcage", "pod-web"]);
        assert_eq!(c.lxc.len(), 2);
        assert_eq!(
            c.lxc[1],
            ("lxc.mount.entry".into(), "/a b none bind 0 0".into())
        );
        assert!(config("no colon here\n").is_err());
    }

    #[test]
    fn nextid_forms() {
        assert_eq!(nextid("100\n"), Ok(100));
        assert_eq!(nextid("\"123\"\n"), Ok(123));
        assert!(nextid("99\n").is_err());
        assert!(nextid("").is_err());
    }

    #[test]
    fn vmstatus_numbers_or_strings() {
        let v: Value = serde_json::from_str(
            r#"{"vmid":"105","status":"running","name":"web","pid":4242,"maxmem":268435456,"maxswap":0,"cpus":2,"lock":"backup","ha":{"managed":0}}"#,
        )
        .unwrap();
        let s = vmstatus(&v).unwrap();
        assert_eq!(
            (s.vmid, s.status, s.pid),
            (105, CtState::Running, Some(4242))
        );
        assert_eq!(s.maxmem, 256 << 20);
        assert_eq!(s.lock.as_deref(), Some("backup"));
        assert_eq!(s.tags, None);
    }

    #[test]
    fn guest_exec_documented_sample() {
        let out =
            "{\n   \"exitcode\" : 0,\n   \"exited\" : 1,\n   \"out-data\" : \"hello\\n\"\n}\n";
        let g = guest_exec(out).unwrap();
        assert_eq!(
            g,
            GuestExec {
                exited: true,
                exitcode: Some(0),
                signal: None,
                out_data: "hello\n".into(),
                err_data: String::new(),
                pid: None
            }
        );
        let t = guest_exec("{\n   \"pid\" : 77\n}\n").unwrap();
        assert!(!t.exited);
        assert_eq!(t.pid, Some(77));
    }
}
