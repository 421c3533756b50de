//! The guest config file (`/etc/pve/lxc/<vmid>.conf`, also used for `qemu-server`): parsing and
//! writing as pve-container `parse_pct_config` / `write_pct_config` do (proxmox.md §4.1).

use std::collections::BTreeMap;

/// One section: the main config, `[pve:pending]` or a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// `key: value` properties (description decoded, `env` NUL-joined from
    /// `lxc.environment.runtime` lines).
    pub keys: BTreeMap<String, String>,
    /// Raw `lxc.*` entries other than `lxc.environment.runtime`, in file order.
    pub lxc: Vec<(String, String)>,
}

/// A whole config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conf {
    /// The current config.
    pub main: Section,
    /// `[pve:pending]`, when present.
    pub pending: Option<Section>,
    /// Snapshot sections by name.
    pub snapshots: BTreeMap<String, Section>,
}

/// Escape a description line: control characters, bytes ≥ 0x7f, `:` and `%`.
pub fn encode_text(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if !(0x20..0x7f).contains(&b) || b == b':' || b == b'%' {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Undo [`encode_text`].
pub fn decode_text(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Bytes, not a &str slice: a `%` before a multi-byte character must not panic.
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_key_line(line: &str) -> Option<(String, String)> {
    let (k, v) = line.split_once(':')?;
    let mut chars = k.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && k.trim_end_matches(|c: char| c.is_ascii_digit())
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-');
    (ok && !v.trim().is_empty()).then(|| (k.to_string(), v.trim().to_string()))
}

fn parse_lxc_line(line: &str) -> Option<(String, String)> {
    if !line.starts_with("lxc.") {
        return None;
    }
    let idx = line.find([':', '='])?;
    Some((
        line[..idx].trim().to_string(),
        line[idx + 1..].trim().to_string(),
    ))
}

impl Conf {
    /// Parse a config file.
    pub fn parse(text: &str) -> Conf {
        let mut conf = Conf::default();
        let mut cur = Section::default();
        let mut cur_name: Option<String> = None;
        let mut descr: Vec<String> = Vec::new();
        let mut env: Vec<String> = Vec::new();
        let finish = |conf: &mut Conf,
                      name: &Option<String>,
                      mut sec: Section,
                      descr: &mut Vec<String>,
                      env: &mut Vec<String>| {
            if !descr.is_empty() {
                sec.keys.insert("description".into(), descr.join("\n"));
            }
            if !env.is_empty() {
                sec.keys.insert("env".into(), env.join("\0"));
            }
            descr.clear();
            env.clear();
            match name.as_deref() {
                None => conf.main = sec,
                Some("pve:pending") => conf.pending = Some(sec),
                Some(n) => {
                    conf.snapshots.insert(n.to_string(), sec);
                }
            }
        };
        for line in text.lines() {
            let line = line.trim_end();
            if line.trim().is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let sec = std::mem::take(&mut cur);
                finish(&mut conf, &cur_name, sec, &mut descr, &mut env);
                cur_name = Some(name.to_string());
                continue;
            }
            if let Some(d) = line.strip_prefix('#') {
                descr.push(decode_text(d));
            } else if let Some((k, v)) = parse_lxc_line(line) {
                if k == "lxc.environment.runtime" {
                    env.push(v);
                } else {
                    cur.lxc.push((k, v));
                }
            } else if let Some((k, v)) = parse_key_line(line) {
                cur.keys.insert(k, v);
            }
        }
        finish(&mut conf, &cur_name, cur, &mut descr, &mut env);
        conf
    }

    /// Write the file: main section, `[pve:pending]`, snapshots sorted by name.
    pub fn write(&self) -> String {
        let mut out = write_section(&self.main);
        if let Some(p) = &self.pending {
            out.push_str("\n[pve:pending]\n");
            out.push_str(&write_section(p));
        }
        for (name, s) in &self.snapshots {
            out.push_str(&format!("\n[{name}]\n"));
            out.push_str(&write_section(s));
        }
        out
    }

    /// The config as `pct config` shows it: pending values merged in (pending deletes
    /// removed) unless `current`.
    pub fn effective(&self, current: bool) -> Section {
        let mut s = self.main.clone();
        if let (false, Some(p)) = (current, &self.pending) {
            for (k, v) in &p.keys {
                if k == "delete" {
                    for d in v.split(',') {
                        s.keys.remove(d.trim_start_matches('!'));
                    }
                } else {
                    s.keys.insert(k.clone(), v.clone());
                }
            }
        }
        s
    }

    /// Apply `[pve:pending]` to the main section and drop it.
    pub fn apply_pending(&mut self) {
        self.main = self.effective(false);
        self.pending = None;
    }

    /// The `lock` value, if any.
    pub fn lock(&self) -> Option<&str> {
        self.main.keys.get("lock").map(String::as_str)
    }
}

fn write_section(s: &Section) -> String {
    let mut out = String::new();
    if let Some(d) = s.keys.get("description") {
        for l in d.split('\n') {
            out.push('#');
            out.push_str(&encode_text(l));
            out.push('\n');
        }
    }
    for (k, v) in &s.keys {
        if k != "description" && k != "env" {
            out.push_str(&format!("{k}: {v}\n"));
        }
    }
    if let Some(env) = s.keys.get("env") {
        for e in env.split('\0').filter(|e| !e.is_empty()) {
            out.push_str(&format!("lxc.environment.runtime: {e}\n"));
        }
    }
    for (k, v) in &s.lxc {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out
}

/// `pct config` / `qm config` output: sorted `key: value` lines (`digest` omitted, description
/// escaped, `env` raw), then the raw `lxc.*` lines in file order.
pub fn show(s: &Section) -> String {
    let mut out = String::new();
    for (k, v) in &s.keys {
        if k == "digest" {
            continue;
        }
        let v = if k == "description" {
            encode_text(v)
        } else {
            v.clone()
        };
        out.push_str(&format!("{k}: {v}\n"));
    }
    for (k, v) in &s.lxc {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str =
        "#web server%3A front\n#second line\narch: amd64\nhostname: web\nmemory: 512\n\
net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:5E:3A:9C,ip=dhcp,type=veth\nostype: debian\n\
rootfs: local-zfs:subvol-200-disk-0,size=8G\nswap: 512\nunprivileged: 1\n\
lxc.environment.runtime: PATH=/bin\nlxc.environment.runtime: A=1\nlxc.signal.halt: SIGQUIT\n\
\n[pve:pending]\ndelete: swap\nmemory: 1024\n";

    #[test]
    fn round_trip_is_byte_exact() {
        let c = Conf::parse(SAMPLE);
        assert_eq!(c.main.keys["description"], "web server: front\nsecond line");
        assert_eq!(c.main.keys["env"], "PATH=/bin\0A=1");
        assert_eq!(
            c.main.lxc,
            [("lxc.signal.halt".to_string(), "SIGQUIT".to_string())]
        );
        assert_eq!(c.write(), SAMPLE);
    }

    #[test]
    fn show_merges_pending_unless_current() {
        let c = Conf::parse(SAMPLE);
        let merged = show(&c.effective(false));
        assert!(
            merged.contains("memory: 1024\n") && !merged.contains("swap:"),
            "{merged}"
        );
        let cur = show(&c.effective(true));
        assert!(
            cur.starts_with("arch: amd64\ndescription: web server%3A front%0Asecond line\n"),
            "{cur}"
        );
        assert!(cur.contains("env: PATH=/bin\0A=1\n"));
        assert!(
            cur.ends_with("unprivileged: 1\nlxc.signal.halt: SIGQUIT\n"),
            "{cur}"
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(encode_text("a:b%c\té"), "a%3Ab%25c%09%C3%A9");
        assert_eq!(decode_text("a%3Ab%25c%09%C3%A9"), "a:b%c\té");
    }
}
