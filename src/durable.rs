//! Files that survive a crash whole: written to `<path>.tmp`, fsynced,
//! renamed over `path`, and the directory fsynced, so a reader (or a
//! restart) sees the old file or the new one, never half of one. Used by
//! the state snapshot, the outbox and its ledger, the notifier's state,
//! the silences and the `.eml` files.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary name `write_atomic` uses for `path`: a leftover one is
/// from a write that never finished and may be deleted.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Replaces `path` with `bytes` atomically and durably. The directory must
/// exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
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
}
