//! Opening containerd's FIFOs without blocking the runtime and without premature EOF.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nexcage_core::{Error, Result};

/// Open a FIFO containerd reads, write-only. containerd opened its reader before Create, so the
/// blocking open returns at once; it runs on the blocking pool all the same (gotcha G3).
pub async fn open_writer(path: &Path) -> Result<File> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(format!("open {}", p.display()), e))
    })
    .await
    .map_err(|e| Error::internal(format!("open fifo task: {e}")))?
}

/// Open a FIFO containerd writes (stdin), waiting for the writer so that the first read does not
/// see a spurious EOF. `cancel` unblocks a pending open.
pub async fn open_reader(path: PathBuf) -> Result<File> {
    tokio::task::spawn_blocking(move || {
        OpenOptions::new()
            .read(true)
            .open(&path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))
    })
    .await
    .map_err(|e| Error::internal(format!("open fifo task: {e}")))?
}

/// Release a reader blocked in [`open_reader`] by briefly opening the write side.
pub fn unblock_reader(path: &Path) {
    let _ = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
}

/// Open (creating, appending) a `file://` target.
pub fn open_log_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))
}
