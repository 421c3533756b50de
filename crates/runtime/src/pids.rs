//! Which exec a process of a container belongs to, for the Pids RPC.
//!
//! An exec's task pid is either a process of the container itself (runc, crun: the exec's
//! process) or a helper outside it (lxc: `lxc-attach`, whose descendant in the container is the
//! exec's process). A pid of the container is tagged with an exec when it is that exec's pid or,
//! for an exec whose pid is not in the container, when that pid is among its ancestors.

use std::collections::{HashMap, HashSet};

/// How far up the parent chain to look (lxc-attach → attached child → the exec's process).
const MAX_DEPTH: usize = 4;

/// Tag each of `pids` with the exec id it belongs to (`execs`: exec task pid → exec id);
/// `ppid` gives a process's parent.
pub fn tag_execs(
    pids: Vec<u32>,
    execs: &HashMap<u32, String>,
    ppid: impl Fn(u32) -> Option<u32>,
) -> Vec<(u32, Option<String>)> {
    let inside: HashSet<u32> = pids.iter().copied().collect();
    let outside: HashMap<u32, &String> = execs
        .iter()
        .filter(|(pid, _)| !inside.contains(pid))
        .map(|(pid, id)| (*pid, id))
        .collect();
    pids.into_iter()
        .map(|p| {
            let tag = execs.get(&p).cloned().or_else(|| {
                if outside.is_empty() {
                    return None;
                }
                let mut cur = p;
                for _ in 0..MAX_DEPTH {
                    cur = ppid(cur).filter(|&q| q > 1)?;
                    if let Some(id) = outside.get(&cur) {
                        return Some((*id).clone());
                    }
                }
                None
            });
            (p, tag)
        })
        .collect()
}

/// The parent of `pid` from `/proc/<pid>/stat` (`None` when it is gone).
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execs(list: &[(u32, &str)]) -> HashMap<u32, String> {
        list.iter().map(|(p, id)| (*p, id.to_string())).collect()
    }

    #[test]
    fn an_exec_inside_the_container_is_tagged_by_its_own_pid_only() {
        // runc: 20 is the exec, 21 its child; the init is 10.
        let parents = HashMap::from([(20, 5), (21, 20), (10, 5)]);
        let got = tag_execs(vec![10, 20, 21], &execs(&[(20, "e1")]), |p| {
            parents.get(&p).copied()
        });
        assert_eq!(got, vec![(10, None), (20, Some("e1".into())), (21, None)]);
    }

    #[test]
    fn an_exec_outside_the_container_tags_its_descendants() {
        // lxc: 30 is lxc-attach (outside), 31 its attached child, 32 the exec's program.
        let parents = HashMap::from([(10, 9), (11, 10), (31, 30), (32, 31), (30, 2)]);
        let got = tag_execs(vec![10, 11, 32], &execs(&[(30, "e1")]), |p| {
            parents.get(&p).copied()
        });
        assert_eq!(got, vec![(10, None), (11, None), (32, Some("e1".into()))]);
    }

    #[test]
    fn own_parent_is_read_from_proc() {
        let me = std::process::id();
        assert_eq!(ppid(me), Some(std::os::unix::process::parent_id()));
        assert_eq!(ppid(u32::MAX), None);
    }
}
