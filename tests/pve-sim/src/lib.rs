#![doc = include_str!("../README.md")]

pub mod args;
pub mod conf;
mod lock;
mod lxc;
mod pct;
mod perljson;
mod propstr;
mod pvesh;
mod qm;
pub mod schema;
pub mod sim;
pub mod storage;
pub mod testing;

use sim::{Failure, Sim};

/// The call log under the sim root: two lines per call, `<unix ms> start <tool> <args…>` when it
/// begins and `<unix ms> end <tool> <args…>` when it returns (none for `pct exec`/`enter`, which
/// become `lxc-attach`). A benchmark tells from it which calls a window waited for.
pub const CALL_LOG: &str = "calls.log";

/// Which tool this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `pct`.
    Pct,
    /// `pvesh`.
    Pvesh,
    /// `qm`.
    Qm,
}

/// Run `tool` with `args` (without argv\[0\]) and return the exit code; output goes to the real
/// stdout and stderr as the Perl tools print it.
pub fn main_of(tool: Tool, args: Vec<String>) -> i32 {
    let result = Sim::from_env().and_then(|sim| {
        sim.log_call("start", tool, &args);
        sim.latency();
        let r = match tool {
            Tool::Pct => pct::run(&sim, args.clone()),
            Tool::Pvesh => pvesh::run(&sim, args.clone()),
            Tool::Qm => qm::run(&sim, args.clone()),
        };
        sim.log_call("end", tool, &args);
        r
    });
    match result {
        Ok(code) => code,
        Err(f) => f.emit(),
    }
}

impl Tool {
    /// The tool's command name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Pct => "pct",
            Tool::Pvesh => "pvesh",
            Tool::Qm => "qm",
        }
    }
}

pub(crate) type Res<T = i32> = Result<T, Failure>;
