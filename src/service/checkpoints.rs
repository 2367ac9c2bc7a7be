//! The service loop's at-least-once bookkeeping, without I/O or a
//! runtime: which offsets may be stored for commit, and when a snapshot
//! is due.
//!
//! An offset may be stored only once a snapshot covers the closes of the
//! buckets its events went into (the transitions those closes caused are
//! on disk before: the loop writes them first). A crash then resumes from
//! that snapshot and reads the events after the stored offsets again;
//! none is lost and none counted twice in a closed bucket. So after each
//! advance the loop [`Checkpoints::hold`]s the offsets the closes
//! released; a snapshot is [`Checkpoints::due`] once something is held
//! and `service.snapshot_interval` has passed since the last attempt, and
//! only while the notifier has every transition on disk; once it is
//! written, [`Checkpoints::written`] hands over the held offsets to store.
//! A snapshot that fails keeps them, and is tried again an interval after
//! the attempt (building one is costly).

use std::collections::HashMap;

/// Offsets waiting for a snapshot, and when one is due; see the module
/// docs.
#[derive(Debug)]
pub struct Checkpoints {
    /// Per (topic, partition): the next offset to read once the snapshot
    /// that covers its closes is written.
    held: HashMap<(usize, i32), i64>,
    /// Something the last snapshot does not cover.
    dirty: bool,
    /// Wall time (seconds) of the last attempt, or of the start.
    last_attempt: i64,
    /// `service.snapshot_interval`, in seconds.
    every: i64,
}

impl Checkpoints {
    /// Nothing held at wall time `now`; a snapshot at most every `every`
    /// seconds.
    pub fn new(now: i64, every: i64) -> Self {
        Self {
            held: HashMap::new(),
            dirty: false,
            last_attempt: now,
            every,
        }
    }

    /// Closes released `partition` of `topic` up to `next` (the next
    /// offset to read): stored once the next snapshot is written.
    pub fn hold(&mut self, topic: usize, partition: i32, next: i64) {
        self.held.insert((topic, partition), next);
        self.dirty = true;
    }

    /// The next snapshot must be written even with no offset held (a
    /// reloaded configuration: the snapshot must hold its KPIs).
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// Whether to write a snapshot at `now`: something is not covered yet,
    /// an interval has passed since the last attempt, and the notifier has
    /// its transitions on disk (`durable`; else a snapshot could cover a
    /// transition a crash would lose).
    pub fn due(&self, now: i64, durable: bool) -> bool {
        self.dirty && now - self.last_attempt >= self.every && durable
    }

    /// A snapshot is attempted at `now`: the next is due an interval
    /// later, whether this one is written or not.
    pub fn attempted(&mut self, now: i64) {
        self.last_attempt = now;
    }

    /// A snapshot was written: everything is covered, and the offsets held
    /// may be stored, as (topic, partition, next offset to read).
    pub fn written(&mut self) -> Vec<(usize, i32, i64)> {
        self.dirty = false;
        let mut out: Vec<(usize, i32, i64)> =
            self.held.drain().map(|((t, p), o)| (t, p, o)).collect();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: i64 = 60;

    #[test]
    fn nothing_is_due_until_a_close_released_an_offset() {
        let mut c = Checkpoints::new(1_000, EVERY);
        assert!(!c.due(1_000 + 10 * EVERY, true), "nothing to cover");
        c.hold(0, 3, 42);
        assert!(!c.due(1_000 + EVERY - 1, true), "not before an interval");
        assert!(c.due(1_000 + EVERY, true));
    }

    #[test]
    fn no_snapshot_while_a_transition_is_not_on_disk() {
        let mut c = Checkpoints::new(0, EVERY);
        c.hold(0, 0, 7);
        assert!(!c.due(EVERY, false));
        assert!(c.due(EVERY, true), "as soon as the notifier is durable");
    }

    #[test]
    fn a_written_snapshot_hands_over_the_latest_offset_of_each_partition_once() {
        let mut c = Checkpoints::new(0, EVERY);
        c.hold(0, 1, 10);
        c.hold(0, 1, 25);
        c.hold(1, 0, 5);
        c.attempted(EVERY);
        assert_eq!(c.written(), vec![(0, 1, 25), (1, 0, 5)]);
        assert!(c.written().is_empty(), "stored once");
        assert!(!c.due(100 * EVERY, true), "covered until the next close");
    }

    #[test]
    fn a_failed_snapshot_keeps_its_offsets_and_is_tried_an_interval_after_the_attempt() {
        let mut c = Checkpoints::new(0, EVERY);
        c.hold(0, 0, 9);
        assert!(c.due(EVERY, true));
        c.attempted(EVERY);
        // Not written (a full disk): the offsets stay held, unstored.
        assert!(!c.due(EVERY + 1, true), "not retried at once");
        assert!(c.due(2 * EVERY, true));
        c.attempted(2 * EVERY);
        assert_eq!(c.written(), vec![(0, 0, 9)]);
    }

    #[test]
    fn a_reload_makes_the_next_snapshot_due_with_no_offset_to_store() {
        let mut c = Checkpoints::new(0, EVERY);
        c.touch();
        assert!(c.due(EVERY, true));
        assert!(c.written().is_empty());
        assert!(!c.due(10 * EVERY, true));
    }
}
