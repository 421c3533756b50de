//! Builds `hold/hold.rs` (the in-container start gate, see its header) as a static executable
//! into `OUT_DIR/nexcage-hold`; `src/hold.rs` embeds it.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "hold/hold.rs";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("nexcage-hold");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--crate-name",
            "nexcage_hold",
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "strip=symbols",
            src,
            "-o",
        ])
        .arg(&out)
        .status()
        .expect("run rustc for hold/hold.rs");
    assert!(status.success(), "rustc hold/hold.rs failed: {status}");
}
