#![doc = include_str!("../README.md")]

mod create;
pub mod error;
pub mod parse;
mod pct;
mod pvesh;
mod qm;
mod tools;

pub use create::{sanitize_tag, CreateCt};
pub use error::Error;
pub use parse::{CtConfig, CtListEntry, CtState, GuestExec, VmState, VmStatus};
pub use pct::{DestroyOpts, ExecOutput};
pub use tools::{Proxmox, Timeouts};

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A guest id (100..=999999999).
pub type Vmid = u32;
