#![doc = include_str!("../README.md")]

pub mod backends;
pub mod events;
pub mod io;
pub mod manager;
pub mod mount;
mod pids;
mod pod;
pub mod process;
pub mod rootfs;

pub use backends::{AnyBackend, BackendRecord, Registry};
pub use events::{Event, EventSender};
pub use manager::{CreateRequest, TaskManager};
