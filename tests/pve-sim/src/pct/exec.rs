//! `pct exec <vmid> [--keep-env 0|1] -- <cmd> [args...]` (§2.10): checks, then this process
//! becomes `lxc-attach`, so the exit status is the command's.

use super::load;
use crate::args::{parse, Spec};
use crate::lxc;
use crate::schema::Ty;
use crate::sim::{Failure, Sim};
use crate::Res;

/// `pct exec`.
pub fn run(sim: &Sim, args: &[String]) -> Res {
    let p = parse(
        &Spec {
            tool: "pct",
            cmd: "exec",
            positional: &[("vmid", Ty::Vmid)],
            extra_args: true,
            opt: &|k| (k == "keep-env").then_some(Ty::Bool),
        },
        args,
    )?;
    let vmid = p.vmid();
    load(sim, vmid)?;
    if !lxc::running(sim, vmid) {
        return Err(Failure::die(format!("container '{vmid}' not running!")));
    }
    if p.extra.is_empty() {
        // `die "missing command"` without a newline: Perl appends the location.
        return Err(Failure::die(
            "missing command at /usr/share/perl5/PVE/CLI/pct.pm line 214.",
        ));
    }
    let err = lxc::attach_exec(sim, vmid, p.flag("keep-env", true), &p.extra);
    Err(Failure::die(format!("exec lxc-attach: {err}")))
}
