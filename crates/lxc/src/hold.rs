//! The start gate inside the container (`hold/hold.rs`, built statically by `build.rs`), for
//! backends whose containers other tools inspect between Create and Start (proxmox-lxc: `pct
//! list`, `pct status` and pvestatd ask LXC for the init's pid).
//!
//! LXC's monitor answers commands (`lxc-info`, `lxc-attach`) only after the container's init has
//! exec'd: `lxc_spawn` runs the start-host hook, then waits for the child to exec, and only then
//! enters its main loop. The default gate holds the init in that hook, so for the whole
//! Create→Start window the monitor answers nobody. With the hold, the hook only reports the
//! pid; the container starts at once with `/.nexcage-hold /.nexcage-gate PROGRAM…` as its
//! program (LXC's init runs it), which waits on the gate FIFO (bound read-only at
//! `/.nexcage-gate`) and execs PROGRAM when Start writes `start`. The monitor answers throughout.
//! The cost: two empty mountpoints, `/.nexcage-hold` and `/.nexcage-gate`, in the container's
//! root file system, as LXC itself leaves `/.lxc-init`-style bind targets.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nexcage_core::{Error, Result};

use crate::config::lines::fstab_escape;

static HOLD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/nexcage-hold"));

/// The hold's path inside the container.
pub const HOLD_PATH: &str = "/.nexcage-hold";
/// The gate FIFO's path inside the container.
pub const GATE_PATH: &str = "/.nexcage-gate";

/// FNV-1a of the embedded executable: a new build gets a new file name, never a half-replaced
/// file under a running container.
fn digest() -> u64 {
    static D: OnceLock<u64> = OnceLock::new();
    *D.get_or_init(|| {
        HOLD.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    })
}

/// Install the hold in `dir` (once per build: `nexcage-hold.<digest>`, mode 0755) and return
/// its path.
pub fn install(dir: &Path) -> Result<PathBuf> {
    let p = dir.join(format!("nexcage-hold.{:016x}", digest()));
    if std::fs::metadata(&p).is_ok_and(|m| m.len() == HOLD.len() as u64) {
        return Ok(p);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let tmp = dir.join(format!("nexcage-hold.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o755)
            .open(&tmp)?;
        f.write_all(HOLD)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("install {}", p.display()), e)
    })?;
    Ok(p)
}

/// The LXC lines that bind the hold and the gate FIFO (both read-only) into the container.
pub fn mount_entries(hold: &Path, gate: &Path) -> String {
    let entry = |src: &Path, dst: &str| {
        format!(
            "lxc.mount.entry = {} {} none bind,ro,create=file 0 0\n",
            fstab_escape(&src.display().to_string()),
            dst.trim_start_matches('/')
        )
    };
    entry(hold, HOLD_PATH) + &entry(gate, GATE_PATH)
}

/// The container's program wrapped in the hold.
pub fn wrap(args: &[String]) -> Vec<String> {
    [HOLD_PATH.to_string(), GATE_PATH.to_string()]
        .into_iter()
        .chain(args.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_hold_is_a_static_executable() {
        assert_eq!(&HOLD[..4], b"\x7fELF");
        // No PT_INTERP program header: no dynamic loader to find in the container.
        let u16_at = |o: usize| u16::from_le_bytes([HOLD[o], HOLD[o + 1]]) as usize;
        let phoff = u64::from_le_bytes(HOLD[0x20..0x28].try_into().unwrap()) as usize;
        let (size, count) = (u16_at(0x36), u16_at(0x38));
        assert!(count > 0);
        for i in 0..count {
            let o = phoff + i * size;
            let p_type = u32::from_le_bytes(HOLD[o..o + 4].try_into().unwrap());
            assert_ne!(
                p_type, 3,
                "the hold has a PT_INTERP header (dynamically linked)"
            );
        }
    }

    #[test]
    fn install_is_idempotent_and_executable() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let a = install(d.path()).unwrap();
        let b = install(d.path()).unwrap();
        assert_eq!(a, b);
        let m = std::fs::metadata(&a).unwrap();
        assert_eq!(m.len(), HOLD.len() as u64);
        assert_eq!(m.permissions().mode() & 0o777, 0o755);
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn entries_and_program() {
        let e = mount_entries(
            Path::new("/run/n/nexcage-hold.1"),
            Path::new("/run/l/c1/gate"),
        );
        assert_eq!(
            e,
            "lxc.mount.entry = /run/n/nexcage-hold.1 .nexcage-hold none bind,ro,create=file 0 0\n\
             lxc.mount.entry = /run/l/c1/gate .nexcage-gate none bind,ro,create=file 0 0\n"
        );
        assert_eq!(
            wrap(&["sleep".into(), "1".into()]),
            ["/.nexcage-hold", "/.nexcage-gate", "sleep", "1"]
        );
    }

    #[test]
    fn the_hold_runs_the_program_on_start_and_exits_1_on_abort() {
        use std::process::Command;
        let d = tempfile::tempdir().unwrap();
        let hold = install(d.path()).unwrap();
        let gate = d.path().join("gate");
        for (word, want) in [("start\n", Some(0)), ("abort\n", Some(1))] {
            nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
            let child = Command::new(&hold)
                .arg(&gate)
                .args(["sh", "-c", "echo ran"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::fs::write(&gate, word).unwrap();
            let out = child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), want, "{word:?}");
            let ran = String::from_utf8_lossy(&out.stdout).contains("ran");
            assert_eq!(ran, word == "start\n", "{word:?}: {out:?}");
            std::fs::remove_file(&gate).unwrap();
        }
    }
}
