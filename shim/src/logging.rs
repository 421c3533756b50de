//! tracing into the bundle's `log` FIFO, which containerd copies into its own log.

use std::fs::OpenOptions;
use std::sync::Mutex;

/// Install the subscriber (serve mode only). `RUST_LOG`-style levels are not parsed: `-debug`
/// selects debug, otherwise info.
pub fn init(debug: bool) {
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let Ok(fifo) = OpenOptions::new().write(true).open("log") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false)
        .with_writer(Mutex::new(fifo))
        .try_init();
}
