//! Where a partition starts reading: `kafka.start_from`, and the end of a
//! warm start's history.
//!
//! - [`StartFrom`] — the config's choice for partitions the group has no
//!   committed offset for: `committed` (the default: librdkafka's
//!   `auto.offset.reset = earliest`, or, after `kpiwatch warm`, the
//!   history's end), `earliest`, `latest`. A committed offset always wins:
//!   a restart never seeks back.
//! - [`Starts`] — what the rebalance callback needs to place a partition
//!   at the history's end, and the [`Starts::admit`] guard the receiving
//!   thread asks about each message of such a partition.
//! - [`start_of`] and [`placed`] — the decisions, pure and synchronous
//!   (unit-tested without a broker); [`place`] asks the broker (committed
//!   offsets, offsets for times) and applies them to an assignment.
//!
//! The history's end `T` of a topic is where the warm snapshot's closed
//! buckets stop: the earliest `closed_until` of the topic's KPIs. Events
//! before `T` are in the snapshot, events at or after it are not (their
//! buckets were still open at the end of the history, and a snapshot
//! holds no open bucket). A partition without a committed offset is
//! therefore placed at the first message whose Kafka timestamp is at or
//! after `T` (offsets for times, librdkafka's `rd_kafka_offsets_for_times`).
//! The guard repeats that test on the messages themselves until the first
//! one at or after `T`: a broker that finds no such message (or cannot
//! look up by time, like librdkafka's mock cluster, which answers "none"
//! to every time) gets the partition from its earliest message instead,
//! and the guard skips what comes before `T` (counted as
//! `kpiwatch_events_skipped_total{reason="before_history"}`). After the
//! first message at or after `T` everything counts, as after a seek: an
//! event of a bucket the snapshot already closed is then late (dropped and
//! counted as late by the pipeline), never counted twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::telemetry::{EventSkipped, Metrics, Origin, SkipReason};

/// Where a partition without a committed offset starts
/// (`kafka.start_from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The group's committed offset; without one, a warm snapshot's
    /// history end, else the earliest message the topic retains (as
    /// kpiwatch always did).
    #[default]
    Committed,
    /// The earliest message the topic retains: to learn from what the
    /// topic holds. With a warm snapshot, events of buckets it closed are
    /// dropped as late.
    Earliest,
    /// Only messages produced from now on.
    Latest,
}

impl StartFrom {
    /// The values `start_from` takes, as written in the config.
    pub const NAMES: [&'static str; 3] = ["committed", "earliest", "latest"];

    /// Reads a config value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "committed" => Some(Self::Committed),
            "earliest" => Some(Self::Earliest),
            "latest" => Some(Self::Latest),
            _ => None,
        }
    }

    /// librdkafka's `auto.offset.reset` for it: where a partition without
    /// a committed offset (or whose committed offset the topic no longer
    /// holds) starts.
    pub fn auto_offset_reset(self) -> &'static str {
        match self {
            Self::Committed | Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

/// Where one assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// As librdkafka would: the committed offset, else `auto.offset.reset`.
    AsConfigured,
    /// The first message at or after this time (epoch milliseconds).
    At(i64),
}

/// Where a partition starts, given `start_from`, its topic's history end
/// (epoch seconds, from a warm snapshot) and its committed offset (None if
/// the group has none). A committed offset wins; only `committed` uses the
/// history end (`earliest` and `latest` say where to start explicitly).
pub fn start_of(from: StartFrom, history_end: Option<i64>, committed: Option<i64>) -> Start {
    match (from, history_end, committed) {
        (StartFrom::Committed, Some(end), None) => Start::At(end.saturating_mul(1000)),
        _ => Start::AsConfigured,
    }
}

/// The offset to assign a partition that starts at a time, given the
/// broker's answer (the first offset at or after the time, None if it
/// found none): that offset, or the earliest one, with the guard
/// skipping what comes before the time.
pub fn placed(found: Option<i64>) -> Offset {
    match found {
        Some(o) if o >= 0 => Offset::Offset(o),
        _ => Offset::Beginning,
    }
}

/// The history ends and the guard; shared by the rebalance callback (which
/// arms the guard) and the receiving thread (which asks it). See the
/// module docs.
#[derive(Default)]
pub struct Starts {
    from: StartFrom,
    /// Topic name -> history end, epoch seconds. Set once, before the
    /// first poll (after the snapshot is loaded).
    ends: Mutex<HashMap<String, i64>>,
    /// (topic, partition) -> the time (epoch ms) before which messages are
    /// skipped, until the first message at or after it. A std mutex: the
    /// callback and the receiving thread run on the same thread.
    armed: Mutex<HashMap<(String, i32), i64>>,
    /// `armed.len()`, read without the lock: the guard costs nothing when
    /// no partition is armed, which is always the case without a warm
    /// snapshot.
    armed_count: AtomicUsize,
    metrics: Option<Metrics>,
}

impl Starts {
    /// For `from`, counting skipped messages into `metrics`.
    pub fn new(from: StartFrom, metrics: Metrics) -> Self {
        Self {
            from,
            metrics: Some(metrics),
            ..Self::default()
        }
    }

    /// The config's `start_from`.
    pub fn from(&self) -> StartFrom {
        self.from
    }

    /// Sets the history end (epoch seconds) of each topic named.
    pub fn set_history(&self, ends: impl IntoIterator<Item = (String, i64)>) {
        let mut e = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        e.extend(ends);
    }

    /// The history end of `topic`, if a warm snapshot gave one.
    pub fn history_end(&self, topic: &str) -> Option<i64> {
        self.ends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .copied()
    }

    /// True if no topic has a history end (nothing to place).
    fn no_history(&self) -> bool {
        self.ends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Skips messages of `topic`/`partition` stamped before `at_ms` until
    /// the first one at or after it.
    pub fn arm(&self, topic: &str, partition: i32, at_ms: i64) {
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        armed.insert((topic.to_string(), partition), at_ms);
        self.armed_count.store(armed.len(), Ordering::Release);
    }

    /// The partition was revoked: a new assignment decides afresh.
    pub fn disarm(&self, topic: &str, partition: i32) {
        if self.armed_count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        armed.remove(&(topic.to_string(), partition));
        self.armed_count.store(armed.len(), Ordering::Release);
    }

    /// True if some partition's messages are being checked (else
    /// [`Starts::admit`] admits everything: ask this first).
    pub fn any_armed(&self) -> bool {
        self.armed_count.load(Ordering::Acquire) > 0
    }

    /// True if a message of `topic`/`partition` at `offset` with Kafka
    /// timestamp `timestamp_ms` (None: the message has none) counts; false
    /// if it comes before the history end (counted as skipped). The first
    /// message at or after the end, or without a timestamp, disarms the
    /// partition.
    pub fn admit(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
    ) -> bool {
        if self.armed_count.load(Ordering::Acquire) == 0 {
            return true;
        }
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (topic.to_string(), partition);
        let Some(&at) = armed.get(&key) else {
            return true;
        };
        if timestamp_ms.is_some_and(|ts| ts < at) {
            drop(armed);
            if let Some(m) = &self.metrics {
                let origin = Origin {
                    topic,
                    partition,
                    offset,
                };
                let reason = SkipReason::BeforeHistory;
                EventSkipped { origin, reason }.emit(m);
            }
            return false;
        }
        armed.remove(&key);
        self.armed_count.store(armed.len(), Ordering::Release);
        true
    }
}

/// How long the rebalance callback waits for the broker's answers
/// (committed offsets, offsets for times). Failing that, the partition
/// starts as configured; the pipeline then drops what the snapshot
/// covers as late.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Places the partitions of `assignment` (a rebalance's, before it is
/// applied) that have no committed offset at their topic's history end,
/// and arms the guard for them. Does nothing without a history end or
/// with `start_from` other than `committed`.
pub fn place<C: ConsumerContext>(
    starts: &Starts,
    consumer: &BaseConsumer<C>,
    assignment: &mut TopicPartitionList,
) {
    if starts.from != StartFrom::Committed || starts.no_history() {
        return;
    }
    let committed = match consumer.committed_offsets(assignment.clone(), LOOKUP_TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "committed offsets not known: partitions start at their committed offset or the earliest message, and the events the warm snapshot already covers are dropped as late");
            return;
        }
    };
    let mut wanted = TopicPartitionList::new();
    for e in assignment.elements() {
        let topic = e.topic();
        let offset = committed
            .find_partition(topic, e.partition())
            .and_then(|c| match c.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        if let Start::At(ms) = start_of(starts.from, starts.history_end(topic), offset) {
            let _ = wanted.add_partition_offset(topic, e.partition(), Offset::Offset(ms));
        } else if offset.is_some() {
            tracing::debug!(
                topic,
                partition = e.partition(),
                "committed offset wins over the history end"
            );
        }
    }
    if wanted.count() == 0 {
        return;
    }
    let found = consumer.offsets_for_times(wanted.clone(), LOOKUP_TIMEOUT);
    if let Err(e) = &found {
        tracing::warn!(error = %e, "offsets for the history end not found; reading from the earliest message and skipping those before the history end");
    }
    for w in wanted.elements() {
        let (topic, partition) = (w.topic(), w.partition());
        let Offset::Offset(ms) = w.offset() else {
            continue;
        };
        let answer = found
            .as_ref()
            .ok()
            .and_then(|f| f.find_partition(topic, partition))
            .and_then(|p| match p.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        let offset = placed(answer);
        tracing::info!(
            topic,
            partition,
            history_end_ms = ms,
            ?offset,
            "no committed offset: starting at the warm history's end"
        );
        let _ = assignment.set_partition_offset(topic, partition, offset);
        starts.arm(topic, partition, ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_offset_wins_over_the_history_end() {
        assert_eq!(
            start_of(StartFrom::Committed, Some(1_000), Some(42)),
            Start::AsConfigured
        );
    }

    #[test]
    fn a_partition_without_a_commit_starts_at_the_history_end_in_milliseconds() {
        assert_eq!(
            start_of(StartFrom::Committed, Some(1_000), None),
            Start::At(1_000_000)
        );
    }

    #[test]
    fn without_a_warm_snapshot_nothing_changes() {
        for from in [StartFrom::Committed, StartFrom::Earliest, StartFrom::Latest] {
            assert_eq!(start_of(from, None, None), Start::AsConfigured);
        }
    }

    #[test]
    fn earliest_and_latest_are_explicit_and_ignore_the_history_end() {
        assert_eq!(
            start_of(StartFrom::Earliest, Some(1_000), None),
            Start::AsConfigured
        );
        assert_eq!(
            start_of(StartFrom::Latest, Some(1_000), None),
            Start::AsConfigured
        );
        assert_eq!(StartFrom::Latest.auto_offset_reset(), "latest");
        assert_eq!(StartFrom::Committed.auto_offset_reset(), "earliest");
    }

    #[test]
    fn a_broker_that_finds_no_message_at_the_time_gives_the_earliest_and_the_guard_skips() {
        assert_eq!(placed(Some(17)), Offset::Offset(17));
        assert_eq!(placed(None), Offset::Beginning);
        assert_eq!(placed(Some(-1)), Offset::Beginning);
    }

    #[test]
    fn the_guard_skips_until_the_first_message_at_the_history_end_then_admits_all() {
        let s = Starts::new(StartFrom::Committed, Metrics::new());
        s.arm("shop", 0, 10_000);
        assert!(!s.admit("shop", 0, 0, Some(9_000)));
        assert!(!s.admit("shop", 0, 1, Some(9_999)));
        // Another partition and another topic are not armed.
        assert!(s.admit("shop", 1, 0, Some(1)));
        assert!(s.admit("other", 0, 0, Some(1)));
        assert!(s.admit("shop", 0, 2, Some(10_000)));
        // Past the first message at the end, as after a seek: an earlier
        // stamp later on counts (the pipeline judges it late or not).
        assert!(s.admit("shop", 0, 3, Some(5_000)));
        let m = s.metrics.as_ref().unwrap();
        assert_eq!(
            m.events_skipped
                .with_label_values(&["shop", "before_history"])
                .get(),
            2
        );
    }

    #[test]
    fn a_message_without_a_timestamp_disarms_the_guard() {
        let s = Starts::new(StartFrom::Committed, Metrics::new());
        s.arm("shop", 0, 10_000);
        assert!(s.admit("shop", 0, 0, None));
        assert!(s.admit("shop", 0, 1, Some(1)));
    }

    #[test]
    fn a_revoked_partition_is_disarmed() {
        let s = Starts::new(StartFrom::Committed, Metrics::new());
        s.arm("shop", 0, 10_000);
        s.disarm("shop", 0);
        assert!(s.admit("shop", 0, 0, Some(1)));
    }
}
