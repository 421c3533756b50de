//! Opening containerd's FIFOs without blocking the runtime, without premature EOF, and without
//! hanging when the other side never shows up or the FIFO is unlinked meanwhile.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
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

/// A FIFO that containerd writes (stdin), held by an `O_PATH` descriptor: the inode stays
/// reachable through `/proc/self/fd/N` even after containerd unlinks the path, so a pending open
/// can always be released (the technique of containerd's own fifo package).
#[derive(Debug)]
pub struct StdinFifo {
    path: PathBuf,
    handle: OwnedFd,
}

impl StdinFifo {
    /// Take hold of the FIFO at `path` (does not block).
    pub fn new(path: PathBuf) -> Result<StdinFifo> {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(&path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        Ok(StdinFifo {
            path,
            handle: f.into(),
        })
    }

    fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.handle.as_raw_fd()))
    }

    /// Open for reading, waiting for the writer so the first read does not see a spurious EOF.
    /// [`StdinFifo::release`] ends the wait.
    pub async fn open_reader(&self) -> Result<File> {
        let (proc_path, path) = (self.proc_path(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            OpenOptions::new()
                .read(true)
                .open(&proc_path)
                .map_err(|e| Error::io(format!("open {}", path.display()), e))
        })
        .await
        .map_err(|e| Error::internal(format!("open fifo task: {e}")))?
    }

    /// Release a reader blocked in [`StdinFifo::open_reader`] by briefly opening the write side.
    pub fn release(&self) {
        let _ = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.proc_path());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pending_open_is_released_even_after_unlink() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("stdin");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let fifo = std::sync::Arc::new(StdinFifo::new(p.clone()).unwrap());
        let f2 = fifo.clone();
        let pending = tokio::spawn(async move { f2.open_reader().await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        std::fs::remove_file(&p).unwrap();
        fifo.release();
        let opened = tokio::time::timeout(std::time::Duration::from_secs(10), pending).await;
        assert!(opened
            .expect("release must end the pending open")
            .unwrap()
            .is_ok());
    }

    #[tokio::test]
    async fn reader_sees_data_from_a_late_writer() {
        use std::io::{Read, Write};
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("stdin");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let fifo = StdinFifo::new(p.clone()).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .write_all(b"late")
                .unwrap();
        });
        let mut r = fifo.open_reader().await.unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        writer.join().unwrap();
        assert_eq!(s, "late");
    }
}
