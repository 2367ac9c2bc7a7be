//! The durable outbox: every notification is on disk before it is sent and
//! leaves only after its receiver accepted it.
//!
//! Layout under `notify.outbox_dir`:
//!
//! - `<receiver>/<seq>-<id>.json` — one pending notification per file,
//!   written to a temporary name, fsynced, renamed, and the directory
//!   fsynced. `seq` is a zero-padded counter, so a directory listing is the
//!   send order.
//! - `ledger` — one line per notification ever accepted into the outbox:
//!   `<id> <created_at_ms>`. A restart or a replay recreates notifications
//!   with the same deterministic ids; the ledger lets [`Outbox::put`] refuse
//!   them, so nothing is sent twice. Lines older than the retention are
//!   dropped when the ledger is compacted at open, and a pending file the
//!   ledger misses (a crash between the file and its line) is added.
//!
//! [`Outbox`] is owned by the notifier stage (the only writer);
//! [`Pending`] entries travel to the receivers' delivery workers, which
//! delete their files once delivered ([`Pending::remove`]). Receiver names
//! are config-validated identifiers, but they are still mapped to safe
//! directory names here.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Notification;
use crate::durable::{Disk, Storage};

/// How long ledger lines are kept: longer than any replay window (Kafka
/// offsets are committed at every snapshot, so a replay re-reads minutes,
/// not weeks).
pub const LEDGER_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// Errors of the outbox. All are I/O on the outbox directory. A
/// notification whose [`Outbox::put`] failed was not accepted: the caller
/// keeps it and puts it again (the service meanwhile commits no offset,
/// so a restart recreates it).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The file system refused.
    #[error("outbox {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A notification waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its file.
    pub path: PathBuf,
    /// Position in the outbox's send order.
    pub seq: u64,
    /// The notification.
    pub notification: Notification,
    /// Where its age (against `retry.give_up_after`) counts from, epoch ms
    /// on the delivery clock: its creation, unless the notifier routes in
    /// event time (a replay), where it is when this run queued it.
    pub queued_at_ms: i64,
}

impl Pending {
    /// Deletes the file: the receiver accepted the notification, or it was
    /// given up. A file already gone is fine.
    pub fn remove(&self) -> Result<(), OutboxError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(OutboxError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

/// The outbox directory, its ledger and the next sequence number.
pub struct Outbox {
    dir: PathBuf,
    /// Where the entries and the ledger are written.
    storage: Arc<dyn Storage>,
    ledger: File,
    /// The last append to the ledger failed, perhaps after part of its
    /// line: the next line would be glued to that part, losing both, so
    /// the ledger is rewritten whole first.
    torn: bool,
    /// Ids already accepted, with their creation time (for compaction).
    seen: HashMap<String, i64>,
    next_seq: u64,
}

/// A receiver name as a directory name: alphanumerics, `-` and `_` kept,
/// anything else hex-escaped, so no name can leave the outbox directory.
fn dir_name(receiver: &str) -> String {
    let mut out = String::with_capacity(receiver.len());
    for b in receiver.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

impl Outbox {
    /// Opens (creating) the outbox in `dir`, reading and compacting the
    /// ledger; `now_ms` decides which ledger lines are old enough to drop.
    pub fn open(dir: &Path, now_ms: i64) -> Result<Self, OutboxError> {
        Self::open_with_pending(dir, now_ms).map(|(outbox, _)| outbox)
    }

    /// [`open`](Self::open), also returning what
    /// [`pending`](Self::pending) would: opening reads every pending
    /// file anyway (for the next sequence number), and a notifier
    /// starting up needs them, so the directory is read once.
    pub fn open_with_pending(
        dir: &Path,
        now_ms: i64,
    ) -> Result<(Self, BTreeMap<String, Vec<Pending>>), OutboxError> {
        Self::open_on(Arc::new(Disk), dir, now_ms)
    }

    /// [`open_with_pending`](Self::open_with_pending), writing through
    /// `storage`.
    pub fn open_on(
        storage: Arc<dyn Storage>,
        dir: &Path,
        now_ms: i64,
    ) -> Result<(Self, BTreeMap<String, Vec<Pending>>), OutboxError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let ledger_path = dir.join("ledger");
        let mut seen = HashMap::new();
        let mut lines = 0usize;
        match File::open(&ledger_path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line.map_err(io(&ledger_path))?;
                    lines += 1;
                    // A torn last line (crash mid-append) has no time: skip.
                    let Some((id, t)) = line.split_once(' ') else {
                        continue;
                    };
                    let Ok(t) = t.parse::<i64>() else { continue };
                    if now_ms - t <= LEDGER_RETENTION_MS {
                        seen.insert(id.to_string(), t);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(OutboxError::Io {
                    path: ledger_path,
                    source,
                })
            }
        }
        if lines > seen.len() {
            Self::rewrite_ledger(&*storage, dir, &seen)?;
        }
        let ledger = Self::open_ledger(dir)?;
        let mut outbox = Self {
            dir: dir.to_path_buf(),
            storage,
            ledger,
            torn: false,
            seen,
            next_seq: 0,
        };
        let pending = outbox.pending()?;
        outbox.next_seq = pending
            .values()
            .flatten()
            .map(|p| p.seq + 1)
            .max()
            .unwrap_or(0);
        // A crash between a file's rename and its ledger line leaves a
        // pending file the ledger does not know; it is accepted all the
        // same, so a replay recreating it must be refused like any other.
        for p in pending.values().flatten() {
            let n = &p.notification;
            if !outbox.seen.contains_key(&n.id) {
                outbox.record(&n.id, n.created_at_ms)?;
            }
        }
        Ok((outbox, pending))
    }

    fn open_ledger(dir: &Path) -> Result<File, OutboxError> {
        let path = dir.join("ledger");
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))
    }

    fn rewrite_ledger(
        storage: &dyn Storage,
        dir: &Path,
        seen: &HashMap<String, i64>,
    ) -> Result<(), OutboxError> {
        let mut entries: Vec<_> = seen.iter().collect();
        entries.sort_by_key(|(_, t)| **t);
        let mut text = String::new();
        for (id, t) in entries {
            text.push_str(&format!("{id} {t}\n"));
        }
        let path = dir.join("ledger");
        storage
            .write_atomic(&path, text.as_bytes())
            .map_err(io(&path))
    }

    /// Whether a notification with this id was ever accepted.
    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains_key(id)
    }

    /// Stores `n` durably. Returns `None` if its id was accepted before (a
    /// replay or a restart recreated it): it must not be sent again.
    pub fn put(&mut self, n: &Notification) -> Result<Option<Pending>, OutboxError> {
        if self.seen.contains_key(&n.id) {
            return Ok(None);
        }
        let dir = self.dir.join(dir_name(&n.receiver));
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let seq = self.next_seq;
        let path = dir.join(format!("{seq:020}-{}.json", n.id));
        let bytes = serde_json::to_vec(n).expect("notifications serialise");
        self.storage
            .write_atomic(&path, &bytes)
            .map_err(io(&path))?;
        // The file is durable before the ledger says so: a crash between
        // the two leaves a file the ledger does not know, which is sent
        // rather than lost, and which `open` adds to the ledger. If the
        // ledger fails, the file stays, under the sequence number the
        // next `put` of the same notification writes again.
        self.record(&n.id, n.created_at_ms)?;
        self.next_seq += 1;
        Ok(Some(Pending {
            path,
            seq,
            notification: n.clone(),
            queued_at_ms: n.created_at_ms,
        }))
    }

    /// Appends `id` to the ledger (synced) and to `seen`.
    fn record(&mut self, id: &str, created_at_ms: i64) -> Result<(), OutboxError> {
        let ledger_path = self.dir.join("ledger");
        if self.torn {
            let mut seen = self.seen.clone();
            seen.insert(id.to_string(), created_at_ms);
            Self::rewrite_ledger(&*self.storage, &self.dir, &seen)?;
            // The old handle appends to the file the rename replaced.
            self.ledger = Self::open_ledger(&self.dir)?;
            self.torn = false;
            self.seen = seen;
            return Ok(());
        }
        let line = format!("{id} {created_at_ms}\n");
        if let Err(e) = self
            .storage
            .append(&mut self.ledger, &ledger_path, line.as_bytes())
        {
            self.torn = true;
            return Err(io(&ledger_path)(e));
        }
        self.seen.insert(id.to_string(), created_at_ms);
        Ok(())
    }

    /// Every pending notification, by receiver directory name, in send
    /// order. Unreadable files (torn writes cannot happen, but a person may
    /// edit the directory) are logged and moved aside as `.bad`.
    pub fn pending(&self) -> Result<BTreeMap<String, Vec<Pending>>, OutboxError> {
        let mut out: BTreeMap<String, Vec<Pending>> = BTreeMap::new();
        let entries = std::fs::read_dir(&self.dir).map_err(io(&self.dir))?;
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let mut list = Vec::new();
            for file in std::fs::read_dir(&path).map_err(io(&path))? {
                let file = file.map_err(io(&path))?.path();
                let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if !name.ends_with(".json") {
                    if name.ends_with(".tmp") {
                        // Never renamed: its put() did not return, so the
                        // notification was not accepted.
                        let _ = std::fs::remove_file(&file);
                    }
                    continue;
                }
                let seq = name.split('-').next().and_then(|s| s.parse::<u64>().ok());
                let parsed = std::fs::read(&file)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Notification>(&b).ok());
                match (seq, parsed) {
                    (Some(seq), Some(notification)) => list.push(Pending {
                        path: file,
                        seq,
                        queued_at_ms: notification.created_at_ms,
                        notification,
                    }),
                    _ => {
                        tracing::error!(file = %file.display(), "unreadable outbox entry moved aside");
                        let _ = std::fs::rename(&file, file.with_extension("bad"));
                    }
                }
            }
            list.sort_by_key(|p| p.seq);
            let receiver = list
                .first()
                .map(|p| p.notification.receiver.clone())
                .unwrap_or_else(|| entry.file_name().to_string_lossy().into_owned());
            out.insert(receiver, list);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::alert::Status;
    use crate::notify::Reason;

    fn note(id: &str, receiver: &str, t: i64) -> Notification {
        Notification {
            id: id.to_string(),
            receiver: receiver.to_string(),
            subscription: "s".to_string(),
            group: BTreeMap::new(),
            status: Status::Firing,
            reason: Reason::New,
            alerts: vec![],
            omitted: 0,
            created_at_ms: t,
        }
    }

    #[test]
    fn pending_notifications_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 0).unwrap();
        for (i, id) in ["c", "a", "b"].iter().enumerate() {
            o.put(&note(id, "team", i as i64)).unwrap().unwrap();
        }
        o.put(&note("x", "hook/../x", 3)).unwrap().unwrap();
        drop(o);
        let o = Outbox::open(dir.path(), 10).unwrap();
        let pending = o.pending().unwrap();
        let ids: Vec<_> = pending["team"]
            .iter()
            .map(|p| p.notification.id.as_str())
            .collect();
        assert_eq!(ids, ["c", "a", "b"]);
        // The odd name stayed inside the outbox directory.
        let odd = &pending["hook/../x"][0];
        assert!(odd.path.starts_with(dir.path()));
        assert_eq!(o.next_seq, 4);
    }

    #[test]
    fn an_id_once_accepted_is_refused_even_after_delivery_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 0).unwrap();
        let p = o.put(&note("n1", "team", 0)).unwrap().unwrap();
        assert!(o.put(&note("n1", "team", 1)).unwrap().is_none());
        p.remove().unwrap();
        drop(o);
        let mut o = Outbox::open(dir.path(), 1000).unwrap();
        assert!(o.pending().unwrap()["team"].is_empty());
        assert!(o.put(&note("n1", "team", 2)).unwrap().is_none());
        assert!(o.put(&note("n2", "team", 2)).unwrap().is_some());
    }

    #[test]
    fn a_pending_file_whose_ledger_line_was_lost_is_still_refused_when_recreated() {
        // The crash window of `put`: the file renamed into place, the
        // process killed before the ledger line.
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 0).unwrap();
        o.put(&note("n1", "team", 0)).unwrap().unwrap();
        o.put(&note("n2", "team", 1)).unwrap().unwrap();
        drop(o);
        std::fs::write(dir.path().join("ledger"), "n1 0\n").unwrap();
        let (mut o, pending) = Outbox::open_with_pending(dir.path(), 10).unwrap();
        assert_eq!(pending["team"].len(), 2);
        assert!(o.put(&note("n2", "team", 1)).unwrap().is_none());
        drop(o);
        // And the ledger now says so for the next restart too.
        let ledger = std::fs::read_to_string(dir.path().join("ledger")).unwrap();
        assert!(ledger.lines().any(|l| l == "n2 1"), "{ledger}");
    }

    #[test]
    fn old_ledger_lines_are_compacted_away() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 0).unwrap();
        o.put(&note("old", "team", 0))
            .unwrap()
            .unwrap()
            .remove()
            .unwrap();
        o.put(&note("new", "team", LEDGER_RETENTION_MS))
            .unwrap()
            .unwrap()
            .remove()
            .unwrap();
        drop(o);
        let o = Outbox::open(dir.path(), LEDGER_RETENTION_MS + 10).unwrap();
        assert!(!o.contains("old"));
        assert!(o.contains("new"));
        let ledger = std::fs::read_to_string(dir.path().join("ledger")).unwrap();
        assert_eq!(ledger.lines().count(), 1);
    }

    #[test]
    fn a_notification_the_disk_refuses_is_not_accepted_and_goes_in_once_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Arc::new(crate::durable::FullDisk::new());
        let (mut o, _) = Outbox::open_on(disk.clone(), dir.path(), 0).unwrap();
        disk.fill(dir.path());
        let err = o.put(&note("n1", "team", 0)).unwrap_err().to_string();
        assert!(err.contains("No space left on device"), "{err}");
        assert!(!o.contains("n1"), "not accepted");
        disk.free();
        let p = o
            .put(&note("n1", "team", 0))
            .unwrap()
            .expect("accepted now");
        assert_eq!(p.seq, 0);
        assert!(o.put(&note("n1", "team", 0)).unwrap().is_none());
    }

    #[test]
    fn a_ledger_line_cut_short_by_a_full_disk_does_not_swallow_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Arc::new(crate::durable::FullDisk::new());
        let (mut o, _) = Outbox::open_on(disk.clone(), dir.path(), 0).unwrap();
        o.put(&note("n0", "team", 5)).unwrap().unwrap();
        // The entry's file is written, then the ledger takes half a line.
        disk.fill(&dir.path().join("ledger"));
        assert!(o.put(&note("n1", "team", 10)).is_err());
        disk.free();
        o.put(&note("n1", "team", 10)).unwrap().unwrap();
        o.put(&note("n2", "team", 20)).unwrap().unwrap();
        drop(o);
        let ledger = std::fs::read_to_string(dir.path().join("ledger")).unwrap();
        assert_eq!(ledger, "n0 5\nn1 10\nn2 20\n");
        let (o, pending) = Outbox::open_with_pending(dir.path(), 30).unwrap();
        assert!(o.contains("n1") && o.contains("n2"));
        let ids: Vec<_> = pending["team"]
            .iter()
            .map(|p| p.notification.id.as_str())
            .collect();
        assert_eq!(ids, ["n0", "n1", "n2"], "one file each, in order");
    }

    #[test]
    fn a_torn_ledger_line_and_leftover_temp_files_are_tolerated() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 0).unwrap();
        o.put(&note("a", "team", 0)).unwrap().unwrap();
        drop(o);
        let mut ledger = OpenOptions::new()
            .append(true)
            .open(dir.path().join("ledger"))
            .unwrap();
        write!(ledger, "half-writ").unwrap();
        std::fs::write(
            dir.path().join("team/00000000000000000009-z.json.tmp"),
            b"{",
        )
        .unwrap();
        std::fs::write(dir.path().join("team/00000000000000000008-y.json"), b"{").unwrap();
        let o = Outbox::open(dir.path(), 0).unwrap();
        let pending = o.pending().unwrap();
        assert_eq!(pending["team"].len(), 1);
        assert!(o.contains("a"));
        assert!(dir.path().join("team/00000000000000000008-y.bad").exists());
        assert!(!dir
            .path()
            .join("team/00000000000000000009-z.json.tmp")
            .exists());
    }
}
