//! Files that survive a crash whole: written to `<path>.tmp`, fsynced,
//! renamed over `path`, and the directory fsynced, so a reader (or a
//! restart) sees the old file or the new one, never half of one. Used by
//! the state snapshot, the outbox and its ledger, the notifier's state,
//! the silences and the `.eml` files.
//!
//! [`Storage`] is the seam for the writes the service's at-least-once
//! promise rests on (snapshot, outbox, ledger, notifier state): [`Disk`]
//! in production, and in tests a double that fails on demand, the way a
//! full disk does (`ENOSPC`, [`std::io::ErrorKind::StorageFull`]), which
//! no test can make a real file system do without root.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Where durable files are written.
pub trait Storage: Send + Sync {
    /// Replaces `path` with `bytes` atomically and durably (see
    /// [`write_atomic`]).
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;

    /// Appends `bytes` to `file` (opened for appending at `path`) and
    /// syncs its data. On an error some of `bytes` may have been written.
    fn append(&self, file: &mut File, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct Disk;

impl Storage for Disk {
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        write_atomic(path, bytes)
    }

    fn append(&self, file: &mut File, _path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        file.write_all(bytes)?;
        file.sync_data()
    }
}

/// A [`Disk`] that tests fill: a write under a path marked full fails as
/// on a full disk (raw OS error 28, `ENOSPC`: kind
/// [`std::io::ErrorKind::StorageFull`]), an append after writing half of
/// its bytes, as a real one may; everything else goes to the disk. For the
/// fault tests (`tests/fault_disk_full.rs`): it runs anywhere, as any
/// user, where a real full file system needs root and a mount.
#[derive(Debug, Default)]
pub struct FullDisk {
    /// Paths under which writes fail.
    full: Mutex<Vec<PathBuf>>,
    /// Writes refused so far.
    refused: AtomicU64,
}

impl FullDisk {
    /// A disk with room everywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes to `under` and anything below it fail from now on.
    pub fn fill(&self, under: &Path) {
        self.full
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(under.to_path_buf());
    }

    /// Space returns everywhere.
    pub fn free(&self) {
        self.full
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// How many writes it has refused.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    fn check(&self, path: &Path) -> std::io::Result<()> {
        let full = self.full.lock().unwrap_or_else(PoisonError::into_inner);
        if full.iter().any(|f| path.starts_with(f)) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(std::io::Error::from_raw_os_error(ENOSPC));
        }
        Ok(())
    }
}

/// "No space left on device" (Linux, and the BSDs and macOS alike).
const ENOSPC: i32 = 28;

impl Storage for FullDisk {
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        self.check(path)?;
        Disk.write_atomic(path, bytes)
    }

    fn append(&self, file: &mut File, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        if let Err(e) = self.check(path) {
            file.write_all(&bytes[..bytes.len() / 2])?;
            return Err(e);
        }
        Disk.append(file, path, bytes)
    }
}

/// The temporary name `write_atomic` uses for `path`: a leftover one is
/// from a write that never finished and may be deleted.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Replaces `path` with `bytes` atomically and durably. The directory must
/// exist. A write that fails (a full disk) deletes its temporary file, so
/// what it had written does not keep the space.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Makes a rename or delete in `dir` durable (best effort: some file
/// systems refuse to open a directory for syncing).
pub fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!temp_path(&path).exists());
        assert_eq!(temp_path(&path), dir.path().join("state.json.tmp"));
    }

    #[test]
    fn a_full_disk_refuses_writes_below_what_was_filled_until_freed() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FullDisk::new();
        disk.fill(&dir.path().join("outbox"));
        let refused = disk
            .write_atomic(&dir.path().join("outbox/a.json"), b"x")
            .unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(refused.raw_os_error(), Some(28));
        disk.write_atomic(&dir.path().join("snapshot"), b"x")
            .unwrap();
        assert_eq!(disk.refused(), 1);
        disk.free();
        std::fs::create_dir(dir.path().join("outbox")).unwrap();
        disk.write_atomic(&dir.path().join("outbox/a.json"), b"x")
            .unwrap();
    }

    #[test]
    fn a_write_that_fails_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old").unwrap();
        // The rename fails: a directory stands where the file would go.
        // The temporary was written whole by then, and must go.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inside"), b"x").unwrap();
        assert!(write_atomic(&blocked, b"new").is_err());
        assert!(!temp_path(&blocked).exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }
}
