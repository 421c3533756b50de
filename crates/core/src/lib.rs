#![doc = include_str!("../README.md")]

pub mod backend;
pub mod cgroup;
pub mod cmd;
pub mod config;
pub mod error;
pub mod percent;
pub mod reaper;
pub mod routing;
pub mod state;
pub mod stats;
pub mod types;

pub use error::{Error, ErrorKind, HasKind, Result};
