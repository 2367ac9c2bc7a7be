//! The streaming pipeline's synchronous core: events in, alert transitions
//! out. No async, no I/O, no clock: the shells (`replay`, the Kafka service)
//! feed it messages and, when they have one, the wall-clock time.
//!
//! # Layout
//!
//! - [`extract`] — pulls the fields KPIs need out of a JSON event.
//! - [`plan`] — per topic: which KPIs an event counts for, series key,
//!   contribution, event time.
//! - [`read`] — parsing and routing apart from the pipeline's state, into
//!   an owned batch ([`read::Reader`], [`read::ReadBatch`]).
//! - [`window`] — event-time tumbling buckets per KPI series; closing,
//!   zero-filled empty buckets, series cap and eviction.
//! - [`engine`] — per-series detectors and the firing/resolved lifecycle.
//! - [`alert`] — the [`alert::Transition`] record and deterministic ids.
//!
//! # One event's path
//!
//! [`Pipeline::record`] reads the event ([`plan::TopicPlan::read`]), moves
//! its partition's clock, and adds it to the open bucket of every KPI
//! series it matches. An event more than the topic's `max_ahead` ahead of
//! its partition's time (and of the wall clock, when there is one) moves
//! nothing: it is held until the partition's next events confirm the jump
//! or refuse it ([`Outcome::Held`], [`Pipeline::settled`]), and one that
//! far ahead of the wall clock is refused at once. The service splits that in two: a [`read::Reader`]
//! parses and routes batches of events on another thread, and
//! [`Pipeline::apply`] records each. [`Pipeline::advance`] computes each
//! topic's event-time progress (the minimum over its active partitions of
//! the newest event time; partitions idle for `idle_timeout` of wall-clock
//! time stop holding it back, and a wholly idle topic is advanced by the
//! wall clock), closes every bucket whose end plus lateness it passed,
//! derives ratio KPIs from their parts, and judges each closed bucket in
//! time order.

pub mod engine;
pub mod extract;
pub mod plan;
pub mod read;
pub mod reconfigure;
pub mod snapshot;
pub mod window;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus::IntCounter;

/// The hash map of the per-event and per-bucket paths (series indexes,
/// detector states, partitions): foldhash instead of SipHash, which cost
/// 7 % of an event. Series keys come from event fields, so a producer could
/// choose colliding labels; foldhash is seeded per map from a random
/// per-process seed, and `max_series` bounds every map keyed by labels, so
/// the worst a hostile producer gets is slower lookups among at most
/// `max_series` keys, not unbounded growth.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use crate::config::model::{Config, Measure};
use crate::telemetry::{
    BadValue, EventRejected, EventSkipped, LateEvent, Metrics, Origin, RejectReason, SkipReason,
    ValueSkipped,
};

use crate::alert::{Status, Transition};
use engine::Engine;
use extract::Field;
use plan::TopicPlan;
use read::{ReadBatch, Reader};
use window::{Closed, ClosedBucket, KpiWindows, Recorded};

/// How many events ahead [`Pipeline::apply`] prefetches the open buckets
/// of: enough to cover a cache miss (~100 ns) with the work of the events
/// in between.
const PREFETCH_AHEAD: usize = 4;

/// Largest event accepted, in bytes; larger ones are refused as
/// `too_large` before parsing.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Consecutive events of a partition, each more than `max_ahead` ahead of
/// its time, that make the jump its new time. Three: one or two events of
/// a broken clock (or a batch a producer stamped wrong) are rare; three in
/// a row, none of them contradicted by an event back in the old time, is
/// a partition that really moved on.
pub const CONFIRM_JUMP: usize = 3;

/// Closed buckets judged between two looks at the interrupt flag (a few
/// milliseconds of work): a shutdown in the middle of a burst of hundreds
/// of thousands of buckets stops within one chunk.
const JUDGE_CHUNK: usize = 16_384;

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Read and added to its KPIs' buckets (possibly none matched); every
    /// bucket it touched has closed once the topic's progress reaches
    /// `closed_at`.
    Accepted {
        /// The event's time.
        time: i64,
        /// Event-time progress at which every bucket the event counted in
        /// has closed (None: it matched no KPI, so nothing waits on it).
        closed_at: Option<i64>,
        /// This event took its partition past the topic's next bucket
        /// close: progress (the minimum over partitions) may now pass it,
        /// so the shell should [`Pipeline::advance`]. Only the crossing
        /// event says so — with many partitions, advancing on every event
        /// past the close would repeat a fruitless minimum until the last
        /// partition crosses.
        due: bool,
    },
    /// Refused as malformed or too far ahead.
    Rejected(RejectReason),
    /// Its buckets had closed for every KPI it matched.
    Late,
    /// More than `max_ahead` ahead of its partition's time: kept until the
    /// partition's next events confirm the jump or contradict it. What
    /// became of it is reported later by [`Pipeline::settled`].
    Held,
}

/// What a run of the pipeline saw (`replay`, `run`, the demo).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Events read.
    pub events: u64,
    /// Events refused as malformed.
    pub rejected: u64,
    /// Events whose buckets had closed.
    pub late: u64,
    /// Events refused as too far ahead (of their partition's time, of the
    /// wall clock, or of the buckets a series may hold open).
    pub ahead: u64,
    /// Alerts that fired.
    pub fired: u64,
    /// Escalations of alerts already firing (not counted in `fired`).
    pub escalated: u64,
    /// Alerts that resolved.
    pub resolved: u64,
}

impl Summary {
    /// Counts one event's outcome.
    pub fn event(&mut self, outcome: Outcome) {
        self.events += 1;
        self.settle(outcome);
    }

    /// Counts what became of an event counted earlier as held.
    pub fn settle(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Accepted { .. } | Outcome::Held => {}
            Outcome::Rejected(r) if r.is_ahead() => self.ahead += 1,
            Outcome::Rejected(_) => self.rejected += 1,
            Outcome::Late => self.late += 1,
        }
    }

    /// Counts one alert transition.
    pub fn transition(&mut self, t: &Transition) {
        match t.status {
            Status::Firing if t.is_escalation() => self.escalated += 1,
            Status::Firing => self.fired += 1,
            Status::Resolved => self.resolved += 1,
        }
    }
}

/// An event whose fate was decided after [`Pipeline::apply`] returned
/// [`Outcome::Held`] for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// Topic number.
    pub topic: usize,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// What became of it.
    pub outcome: Outcome,
    /// Its payload when it was refused (for dead letters) and the reader
    /// kept it; empty otherwise.
    pub payload: Vec<u8>,
}

/// One partition as the clock sees it.
#[derive(Debug)]
struct PartitionTime {
    /// Newest event time accepted; `None` until the partition's time is
    /// known (its first events agree, or the wall clock vouches for one).
    newest: Option<i64>,
    /// Wall time of the last message that was not refused (or of the
    /// assignment).
    seen: Option<i64>,
    /// Events more than `max_ahead` ahead of `newest`, in arrival order,
    /// waiting for [`CONFIRM_JUMP`] in a row (see [`Pipeline::apply`]).
    held: Option<Box<ReadBatch>>,
}

impl PartitionTime {
    fn new(now: Option<i64>) -> Self {
        Self {
            newest: None,
            seen: now,
            held: None,
        }
    }
}

/// Event-time progress of one topic, from its partitions.
#[derive(Debug, Default)]
struct Clock {
    partitions: FastMap<i32, PartitionTime>,
    idle_timeout: i64,
    progress: Option<i64>,
}

impl Clock {
    fn assign(&mut self, partition: i32, now: Option<i64>) {
        self.partitions
            .entry(partition)
            .or_insert_with(|| PartitionTime::new(now));
    }

    /// Forgets `partition`, returning the events it held.
    fn revoke(&mut self, partition: i32) -> Option<Box<ReadBatch>> {
        self.partitions.remove(&partition).and_then(|p| p.held)
    }

    /// Records an event of `partition`; returns the partition's newest
    /// event time before it.
    #[cfg(test)]
    fn observe(&mut self, partition: i32, time: i64, now: Option<i64>) -> Option<i64> {
        let p = self
            .partitions
            .entry(partition)
            .or_insert_with(|| PartitionTime::new(now));
        let before = p.newest;
        p.newest = Some(before.map_or(time, |n| n.max(time)));
        p.seen = now;
        before
    }

    /// True if a partition last seen at wall time `seen` has been silent
    /// for the idle timeout at `now`.
    fn idle(&self, seen: Option<i64>, now: Option<i64>) -> bool {
        match (now, seen) {
            (Some(now), Some(seen)) => now - seen >= self.idle_timeout,
            _ => false,
        }
    }

    /// Newest progress: the minimum newest event time over partitions that
    /// are not idle; with every partition idle, the wall clock minus the
    /// idle timeout. Never moves back.
    ///
    /// An assigned partition that has delivered nothing yet holds progress
    /// where it is until it has been silent for the idle timeout: after a
    /// restart it may still hold events of the oldest open bucket. And a
    /// topic that has delivered nothing at all does not move with the wall
    /// clock: idleness means "caught up", and a consumer that has read
    /// nothing may be far behind.
    fn progress(&mut self, now: Option<i64>) -> Option<i64> {
        let mut waiting = false;
        let mut active: Option<i64> = None;
        for p in self.partitions.values().filter(|p| !self.idle(p.seen, now)) {
            match p.newest {
                None => waiting = true,
                Some(t) => active = Some(active.map_or(t, |a| a.min(t))),
            }
        }
        let newest = self.partitions.values().filter_map(|p| p.newest).max();
        let candidate = match (waiting, active, now, newest) {
            (true, _, _, _) => None,
            (false, Some(t), _, _) => Some(t),
            (false, None, Some(now), Some(newest)) => Some(newest.max(now - self.idle_timeout)),
            _ => None,
        };
        if let Some(c) = candidate {
            self.progress = Some(self.progress.map_or(c, |p| p.max(c)));
        }
        self.progress
    }
}

struct RatioPlan {
    kpi: usize,
    numerator: usize,
    denominator: usize,
    zero_numerator: bool,
}

/// Per-KPI counters resolved once, so the hot path does not hash labels.
struct KpiCounters {
    /// The KPI's name, for the labels of counters made on first use.
    name: String,
    overflow: IntCounter,
    /// Skipped values by [`BadValue`], made on first use (a KPI that never
    /// skips a value shows no such lines).
    skipped: [Option<IntCounter>; BadValue::ALL.len()],
}

impl KpiCounters {
    fn skipped(&mut self, reason: BadValue, metrics: &Metrics) {
        ValueSkipped {
            kpi: &self.name,
            reason,
        }
        .log(metrics);
        let name = &self.name;
        self.skipped[reason as usize]
            .get_or_insert_with(|| {
                metrics
                    .values_skipped
                    .with_label_values(&[name, reason.label()])
            })
            .inc();
    }
}

struct TopicRuntime {
    name: String,
    plan: TopicPlan,
    /// Parallel to `plan.routes`.
    windows: Vec<KpiWindows>,
    counters: Vec<KpiCounters>,
    ratios: Vec<RatioPlan>,
    clock: Clock,
    consumed: IntCounter,
    /// Smallest event time at which some bucket of the topic can close.
    next_close: i64,
    /// `max_ahead` in seconds.
    max_ahead: i64,
    /// Every event before this time fits every window of the topic
    /// ([`KpiWindows::fits_until`], the smallest), as of the last close:
    /// the per-event check is one comparison.
    fits_until: i64,
    /// Held events released late took a partition past `next_close`, and
    /// the event that released them could not say so (it was late or
    /// refused): the next accepted event is due.
    due_pending: bool,
}

impl TopicRuntime {
    /// Records event `i` of `batch` at `time` (its event time): the
    /// partition's clock, then every KPI series it matched. With `check`,
    /// returns `None` instead, touching nothing but the partition's entry,
    /// if the partition holds events or the event is more than `max_ahead`
    /// ahead of the partition's time and not vouched for by the wall clock
    /// (`now`): the caller decides. Inlined: as a call it cost the hot
    /// path a fifth more instructions in the pipeline's own code.
    #[inline(always)]
    fn record(
        &mut self,
        batch: &ReadBatch,
        i: usize,
        time: i64,
        now: Option<i64>,
        check: bool,
        metrics: &Metrics,
    ) -> Option<Outcome> {
        let e = &batch.events[i];
        let p = self
            .clock
            .partitions
            .entry(e.partition)
            .or_insert_with(|| PartitionTime::new(now));
        if check {
            let ahead = self.max_ahead;
            let vouched = now.is_some_and(|now| time >= now.saturating_sub(ahead));
            let within = vouched || p.newest.is_some_and(|n| time <= n.saturating_add(ahead));
            if !within || p.held.is_some() {
                return None;
            }
        }
        let origin = Origin {
            topic: &self.name,
            partition: e.partition,
            offset: e.offset,
        };
        let hits = &batch.hits[e.hits.clone()];
        // Before anything moves: an event that cannot be added to every
        // series it matched is added to none.
        let fits = time < self.fits_until
            || hits
                .iter()
                .all(|h| !h.adds() || self.windows[h.route].fits(time));
        if !fits {
            let reason = RejectReason::TooManyOpenBuckets;
            EventRejected { origin, reason }.emit(metrics);
            return Some(Outcome::Rejected(reason));
        }
        let before = p.newest;
        p.newest = Some(before.map_or(time, |n| n.max(time)));
        p.seen = now;
        // Before any bucket opened `next_close` is MIN, and progress is
        // unknown while some assigned partition has delivered nothing: only
        // a partition's first event can change that (or its idle timeout,
        // which the shell's tick sees), so only that event is due. Advancing
        // on every event then scanned every partition per message until
        // the last one delivered (with 64 partitions, half of a catch-up).
        let due = (time >= self.next_close && before.is_none_or(|b| b < self.next_close))
            || std::mem::take(&mut self.due_pending);
        let mut matched = 0;
        let mut late = 0;
        let mut closed_at: Option<i64> = None;
        for hit in hits {
            let i = hit.route;
            match batch.hit(hit) {
                Err(reason) => self.counters[i].skipped(reason, metrics),
                Ok((key, c)) => {
                    matched += 1;
                    let due = self.windows[i].closes_at(time);
                    closed_at = Some(closed_at.map_or(due, |d| d.max(due)));
                    match self.windows[i].record(key, time, c) {
                        Recorded::Added => {}
                        Recorded::Overflowed => self.counters[i].overflow.inc(),
                        Recorded::Late => late += 1,
                        // `fits` said otherwise; refused rather than trusted.
                        Recorded::TooFarAhead => {
                            let reason = RejectReason::TooManyOpenBuckets;
                            EventRejected { origin, reason }.emit(metrics);
                            return Some(Outcome::Rejected(reason));
                        }
                    }
                }
            }
        }
        if matched > 0 && late == matched {
            self.due_pending |= due;
            LateEvent {
                origin,
                event_time: time,
                progress: self.clock.progress,
            }
            .emit(metrics);
            return Some(Outcome::Late);
        }
        Some(Outcome::Accepted {
            time,
            closed_at,
            due,
        })
    }

    /// [`TopicRuntime::record`] without the check: the caller has decided
    /// the event counts.
    fn record_unchecked(
        &mut self,
        batch: &ReadBatch,
        i: usize,
        time: i64,
        now: Option<i64>,
        metrics: &Metrics,
    ) -> Outcome {
        self.record(batch, i, time, now, false, metrics)
            .expect("recording without the check always decides")
    }
}

/// The pipeline core; see the module docs.
pub struct Pipeline {
    config: Config,
    metrics: Metrics,
    topics: Vec<TopicRuntime>,
    engine: Engine,
    closed: Vec<Closed>,
    buckets: Vec<ClosedBucket>,
    /// The plans again, for reading events apart from the pipeline.
    reader: Reader,
    /// The event being recorded by [`Pipeline::record`].
    scratch: ReadBatch,
    /// When set, every judged bucket is also kept here for the shell to
    /// take with [`Pipeline::take_judged`] (tests, debugging).
    tap: Option<Vec<ClosedBucket>>,
    /// Alerts a calendar muted, kept while buckets are tapped (for
    /// [`Pipeline::take_muted`]); otherwise only logged.
    muted: Vec<engine::Muted>,
    /// Held events decided since the shell last asked
    /// ([`Pipeline::settled`]).
    settled: Vec<Settled>,
    /// Transitions of buckets closed while recording (to make room for a
    /// confirmed jump), handed out by the next advance or finish.
    deferred: Vec<Transition>,
    /// Set by the shell to stop judging between chunks (shutdown).
    interrupt: Option<Arc<AtomicBool>>,
    /// Judging stopped on `interrupt` with closed buckets left unjudged.
    interrupted: bool,
}

impl Pipeline {
    /// A pipeline for `config`, counting into `metrics`.
    pub fn new(config: Config, metrics: Metrics) -> Self {
        let topics: Vec<TopicRuntime> = (0..config.topics.len())
            .map(|t| {
                let plan = TopicPlan::new(&config, t);
                let windows = plan
                    .routes
                    .iter()
                    .map(|r| {
                        let def = &config.kpis[r.kpi];
                        let Measure::Events { aggregate, .. } = &def.measure else {
                            unreachable!("routes are built for event KPIs only")
                        };
                        KpiWindows::new(r.kpi, def, aggregate.clone())
                    })
                    .collect();
                let counters = plan
                    .routes
                    .iter()
                    .map(|r| {
                        let name = config.kpis[r.kpi].name.as_str();
                        KpiCounters {
                            name: name.to_string(),
                            overflow: metrics.series_overflow.with_label_values(&[name]),
                            skipped: Default::default(),
                        }
                    })
                    .collect();
                let ratios = config
                    .kpis
                    .iter()
                    .enumerate()
                    .filter_map(|(kpi, def)| match def.measure {
                        Measure::Ratio {
                            numerator,
                            denominator,
                        } if def.topic == t => Some(RatioPlan {
                            kpi,
                            numerator,
                            denominator,
                            zero_numerator: matches!(
                                &config.kpis[numerator].measure,
                                Measure::Events { aggregate, .. } if aggregate.zero_when_empty()
                            ),
                        }),
                        _ => None,
                    })
                    .collect();
                let name = config.topics[t].name.clone();
                TopicRuntime {
                    next_close: i64::MIN,
                    consumed: metrics.events_consumed.with_label_values(&[&name]),
                    name,
                    plan,
                    windows,
                    counters,
                    ratios,
                    clock: Clock {
                        idle_timeout: config.topics[t].idle_timeout.as_secs() as i64,
                        ..Clock::default()
                    },
                    max_ahead: config.topics[t].max_ahead.as_secs() as i64,
                    fits_until: i64::MIN,
                    due_pending: false,
                }
            })
            .collect();
        let reader = Reader {
            plans: topics.iter().map(|t| t.plan.clone()).collect(),
            names: topics.iter().map(|t| t.name.clone()).collect(),
        };
        Self {
            engine: Engine::new(&config.kpis),
            reader,
            scratch: ReadBatch::default(),
            config,
            metrics,
            topics,
            closed: Vec::new(),
            buckets: Vec::new(),
            tap: None,
            muted: Vec::new(),
            settled: Vec::new(),
            deferred: Vec::new(),
            interrupt: None,
            interrupted: false,
        }
    }

    /// Judging stops, between chunks of closed buckets, once `flag` is
    /// set; [`Pipeline::interrupted`] then says so.
    pub fn interrupt_on(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    /// True if judging stopped on the interrupt flag with closed buckets
    /// not judged: the pipeline's state must not be snapshotted (a restart
    /// goes back to the last snapshot and reads those events again).
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// Events that [`Pipeline::apply`] held, decided since the last call,
    /// in offset order per partition: a shell that tracks offsets takes
    /// them before the outcome of the event it just applied (whose offset
    /// is larger).
    pub fn settled(&mut self) -> std::vec::Drain<'_, Settled> {
        self.settled.drain(..)
    }

    /// Keeps every judged bucket for [`Pipeline::take_judged`].
    pub fn tap_buckets(&mut self) {
        self.tap.get_or_insert_with(Vec::new);
    }

    /// From now on, keeps each judged bucket's expectation and band for
    /// [`Pipeline::take_points`] (the backtest's charts).
    pub fn tap_points(&mut self) {
        self.engine.tap_points();
    }

    /// The points judged since the last call (empty unless tapped).
    pub fn take_points(&mut self) -> Vec<engine::JudgedPoint> {
        self.engine.take_points()
    }

    /// The alerts calendars muted since the last call (empty unless
    /// buckets are tapped: a report's, not a service's, concern).
    pub fn take_muted(&mut self) -> Vec<engine::Muted> {
        std::mem::take(&mut self.muted)
    }

    /// The buckets judged since the last call (empty unless tapped).
    pub fn take_judged(&mut self) -> Vec<ClosedBucket> {
        self.tap.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The configuration this pipeline runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The metrics it counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Partition `partition` of topic number `topic` was assigned to this
    /// instance at wall time `now`: until it delivers (or stays silent for
    /// the idle timeout) it holds the topic's event time back.
    pub fn assign(&mut self, topic: usize, partition: i32, now: i64) {
        self.topics[topic].clock.assign(partition, Some(now));
    }

    /// The consumer could not reach Kafka until wall time `now`: a
    /// partition's silence so far says nothing about its topic, so each
    /// counts as heard from now. As after an assignment, it holds its
    /// topic's time back (and the wall clock cannot move a quiet topic)
    /// until it has been silent for its idle timeout since.
    pub fn reachable_again(&mut self, now: i64) {
        for t in &mut self.topics {
            for p in t.clock.partitions.values_mut() {
                p.seen = Some(now);
            }
        }
    }

    /// Partition `partition` of topic number `topic` was taken away. Events
    /// it held are dropped (counted as skipped): their new owner reads them.
    pub fn revoke(&mut self, topic: usize, partition: i32) {
        let t = &mut self.topics[topic];
        if let Some(held) = t.clock.revoke(partition) {
            for e in &held.events {
                let origin = Origin {
                    topic: &t.name,
                    partition,
                    offset: e.offset,
                };
                let reason = SkipReason::Revoked;
                EventSkipped { origin, reason }.emit(&self.metrics);
            }
        }
    }

    /// The learned state, for [`snapshot::save`].
    pub fn snapshot(&self) -> snapshot::Snapshot {
        let kpis = self
            .config
            .kpis
            .iter()
            .enumerate()
            .map(|(kpi, def)| {
                let (closed_until, windows) = self
                    .windows_of(kpi)
                    .map(KpiWindows::export)
                    .unwrap_or((None, Vec::new()));
                snapshot::KpiSnapshot {
                    name: def.name.clone(),
                    fingerprint: fingerprint(def),
                    closed_until,
                    windows,
                    series: self.engine.export(kpi),
                }
            })
            .collect();
        snapshot::Snapshot::new(kpis)
    }

    /// Restores a snapshot taken by [`Pipeline::snapshot`], KPI by KPI:
    /// a KPI that is gone or whose definition changed starts afresh.
    /// Returns the number of series restored.
    pub fn restore(&mut self, snapshot: snapshot::Snapshot) -> usize {
        let mut restored = 0;
        for k in snapshot.kpis {
            let Some(kpi) = self.config.kpis.iter().position(|d| d.name == k.name) else {
                tracing::info!(kpi = %k.name, "KPI no longer configured; its snapshot is dropped");
                continue;
            };
            if fingerprint(&self.config.kpis[kpi]) != k.fingerprint {
                tracing::warn!(kpi = %k.name, "KPI definition changed since the snapshot; it starts afresh");
                continue;
            }
            if let Some((t, w)) = self.window_index(kpi) {
                self.topics[t].windows[w].import(k.closed_until, k.windows);
            }
            restored += k.series.len();
            self.engine.import(kpi, k.series);
        }
        restored
    }

    fn window_index(&self, kpi: usize) -> Option<(usize, usize)> {
        self.topics.iter().enumerate().find_map(|(t, topic)| {
            topic
                .plan
                .routes
                .iter()
                .position(|r| r.kpi == kpi)
                .map(|w| (t, w))
        })
    }

    fn windows_of(&self, kpi: usize) -> Option<&KpiWindows> {
        self.window_index(kpi)
            .map(|(t, w)| &self.topics[t].windows[w])
    }

    /// What reads events apart from the pipeline (on another thread), for
    /// [`Pipeline::apply`].
    pub fn reader(&self) -> Reader {
        self.reader.clone()
    }

    /// Reads one message of topic number `topic` and adds it to its
    /// buckets. `now` is the wall-clock time in epoch seconds, if the shell
    /// has one (the service does, replay does not).
    pub fn record(
        &mut self,
        topic: usize,
        partition: i32,
        offset: i64,
        payload: &[u8],
        now: Option<i64>,
    ) -> Outcome {
        let mut batch = std::mem::take(&mut self.scratch);
        batch.clear();
        self.reader
            .read_event(topic, partition, offset, payload, &mut batch, false);
        let outcome = self.apply(&batch, 0, now);
        self.scratch = batch;
        outcome
    }

    /// Adds event number `i` of `batch` (read by this pipeline's
    /// [`Reader`]) to its buckets: [`Pipeline::record`] after the reading.
    ///
    /// It first asks the CPU to fetch the open buckets of event number
    /// `i + PREFETCH_AHEAD` (see [`KpiWindows::prefetch`]), so a batch
    /// applied in order overlaps its cache misses.
    pub fn apply(&mut self, batch: &ReadBatch, i: usize, now: Option<i64>) -> Outcome {
        if let Some(ahead) = batch.events.get(i + PREFETCH_AHEAD) {
            if let Ok(time) = ahead.time {
                let windows = &self.topics[ahead.topic].windows;
                for hit in &batch.hits[ahead.hits.clone()] {
                    if let Ok((key, _)) = batch.hit(hit) {
                        windows[hit.route].prefetch(key, time);
                    }
                }
            }
        }
        let e = &batch.events[i];
        let t = &mut self.topics[e.topic];
        t.consumed.inc();
        let origin = Origin {
            topic: &t.name,
            partition: e.partition,
            offset: e.offset,
        };
        let reason = match e.time {
            Ok(time) if now.is_some_and(|now| time > now.saturating_add(t.max_ahead)) => {
                RejectReason::AheadOfClock
            }
            Ok(time) => match t.record(batch, i, time, now, true, &self.metrics) {
                Some(outcome) => return outcome,
                None => return self.admit_ahead(batch, i, time, now),
            },
            Err(reason) => reason,
        };
        EventRejected { origin, reason }.emit(&self.metrics);
        Outcome::Rejected(reason)
    }

    /// The rest of [`Pipeline::apply`] for an event more than `max_ahead`
    /// ahead of its partition's time, or of a partition that holds such
    /// events (or whose time is not known yet).
    ///
    /// The rule (ARCHITECTURE.md, "An event far ahead..."): the partition
    /// holds such events in arrival order. An event back within
    /// `max_ahead` of the partition's time refuses the held events more
    /// than `max_ahead` ahead of it (they were a broken clock) and lets the
    /// others count; so does a held event whose successor is more than
    /// `max_ahead` before it. [`CONFIRM_JUMP`] held events in a row are the
    /// partition's new time: they count, and so does the jump. A partition
    /// silent for its idle timeout (or, in a replay, whose time was not
    /// known) lets what it holds count; at the end of a replay a jump not
    /// confirmed is refused.
    #[cold]
    fn admit_ahead(&mut self, batch: &ReadBatch, i: usize, time: i64, now: Option<i64>) -> Outcome {
        let e = &batch.events[i];
        let (topic, partition) = (e.topic, e.partition);
        let t = &mut self.topics[topic];
        let ahead = t.max_ahead;
        let Some(p) = t.clock.partitions.get_mut(&partition) else {
            unreachable!("TopicRuntime::record inserted the partition")
        };
        p.seen = now;
        let known = p.newest;
        let mut held = p.held.take().unwrap_or_default();
        // Held events far ahead of this one are contradicted by it: the
        // last ones held, since each held event is within `max_ahead` after
        // the one before it or later.
        let mut strays = Vec::new();
        while let Some(last) = held.events.last().and_then(|h| h.time.ok()) {
            if last.saturating_sub(ahead) <= time {
                break;
            }
            strays.extend(held.pop());
        }
        let vouched = now.is_some_and(|now| time >= now.saturating_sub(ahead));
        let within = vouched || known.is_some_and(|n| time <= n.saturating_add(ahead));
        if within && !held.is_empty() {
            // The partition's time is where it was (or where the wall clock
            // is): what it still holds is within `max_ahead` of this event.
            self.release(topic, partition, &held, now, None);
        }
        // Settled in offset order: the strays came after what is left.
        for (offset, payload) in strays.into_iter().rev() {
            self.refuse(topic, partition, offset, payload);
        }
        if within {
            return self.topics[topic].record_unchecked(batch, i, time, now, &self.metrics);
        }
        held.copy_event(batch, i);
        if held.len() < CONFIRM_JUMP {
            if let Some(p) = self.topics[topic].clock.partitions.get_mut(&partition) {
                p.held = Some(held);
            }
            return Outcome::Held;
        }
        let last = held.len() - 1;
        self.release(topic, partition, &held, now, Some(last))
            .unwrap_or(Outcome::Held)
    }

    /// Refuses a held event as too far ahead, and settles it.
    fn refuse(&mut self, topic: usize, partition: i32, offset: i64, payload: Vec<u8>) {
        let origin = Origin {
            topic: &self.topics[topic].name,
            partition,
            offset,
        };
        let reason = RejectReason::TooFarAhead;
        EventRejected { origin, reason }.emit(&self.metrics);
        self.settled.push(Settled {
            topic,
            partition,
            offset,
            outcome: Outcome::Rejected(reason),
            payload,
        });
    }

    /// Lets every event of `held` (of one partition) count, in order: the
    /// outcome of event number `keep` is returned, the others are settled.
    /// If some would open a bucket beyond what a series may hold open, the
    /// topic first closes what its progress allows with the earliest of
    /// them (their transitions wait in `deferred`), so a confirmed jump
    /// makes room for itself.
    fn release(
        &mut self,
        topic: usize,
        partition: i32,
        held: &ReadBatch,
        now: Option<i64>,
        keep: Option<usize>,
    ) -> Option<Outcome> {
        let t = &mut self.topics[topic];
        let times = || held.events.iter().filter_map(|e| e.time.ok());
        let fits = times().all(|time| t.windows.iter().all(|w| w.fits(time)));
        if let (false, Some(earliest)) = (fits, times().min()) {
            if let Some(p) = t.clock.partitions.get_mut(&partition) {
                p.newest = Some(p.newest.map_or(earliest, |n| n.max(earliest)));
            }
            let mut deferred = std::mem::take(&mut self.deferred);
            self.advance_topic(topic, now, &mut deferred);
            self.deferred = deferred;
        }
        let mut kept = None;
        for (j, e) in held.events.iter().enumerate() {
            let Ok(time) = e.time else {
                continue;
            };
            let t = &mut self.topics[topic];
            let outcome = t.record_unchecked(held, j, time, now, &self.metrics);
            if let Outcome::Accepted { due: true, .. } = outcome {
                t.due_pending = true;
            }
            if keep == Some(j) {
                kept = Some(outcome);
                continue;
            }
            let payload = match outcome {
                Outcome::Rejected(_) => held.event(j).3.to_vec(),
                _ => Vec::new(),
            };
            self.settled.push(Settled {
                topic,
                partition,
                offset: e.offset,
                outcome,
                payload,
            });
        }
        // Whoever takes the last outcome advances for all of them.
        if let Some(Outcome::Accepted { due, .. }) = &mut kept {
            *due |= std::mem::take(&mut self.topics[topic].due_pending);
        }
        kept
    }

    /// Lets what idle partitions hold count (`now` given), or, at the end
    /// of data, what partitions hold whose time was never known; refuses
    /// the rest.
    fn release_quiet(&mut self, now: Option<i64>) {
        for topic in 0..self.topics.len() {
            let clock = &self.topics[topic].clock;
            let quiet: Vec<i32> = clock
                .partitions
                .iter()
                .filter(|(_, p)| p.held.is_some() && (now.is_none() || clock.idle(p.seen, now)))
                .map(|(&partition, _)| partition)
                .collect();
            for partition in quiet {
                let Some(p) = self.topics[topic].clock.partitions.get_mut(&partition) else {
                    continue;
                };
                let known = p.newest.is_some();
                let Some(held) = p.held.take() else {
                    continue;
                };
                if now.is_none() && known {
                    for j in 0..held.len() {
                        let (_, _, offset, payload) = held.event(j);
                        self.refuse(topic, partition, offset, payload.to_vec());
                    }
                } else {
                    self.release(topic, partition, &held, now, None);
                }
            }
        }
    }

    /// Where the closed buckets of topic number `topic` end: the earliest
    /// `closed_until` of its KPIs that have closed a bucket (None if none
    /// has). A snapshot taken now holds every event of the topic before it
    /// and none at or after it (`kpiwatch warm`'s history end).
    pub fn closed_until(&self, topic: usize) -> Option<i64> {
        self.topics[topic]
            .windows
            .iter()
            .filter_map(KpiWindows::closed_until)
            .min()
    }

    /// Event-time progress of topic number `topic`, after the last
    /// [`Pipeline::advance`].
    pub fn progress(&self, topic: usize) -> Option<i64> {
        self.topics[topic].clock.progress
    }

    /// The event time from which a new event of `topic` may let a bucket
    /// close; below it, [`Pipeline::advance`] would find nothing to do.
    pub fn next_close(&self, topic: usize) -> i64 {
        self.topics[topic].next_close
    }

    /// Closes every bucket the topics' progress has passed and judges it,
    /// appending alert transitions to `out` in bucket order. With a wall
    /// clock (`now`), partitions silent for their idle timeout first let
    /// the events they held count.
    pub fn advance(&mut self, now: Option<i64>, out: &mut Vec<Transition>) {
        if now.is_some() {
            self.release_quiet(now);
        }
        out.append(&mut self.deferred);
        for t in 0..self.topics.len() {
            if self.interrupted {
                return;
            }
            self.advance_topic(t, now, out);
        }
    }

    /// [`Pipeline::advance`] for topic number `t`.
    fn advance_topic(&mut self, t: usize, now: Option<i64>, out: &mut Vec<Transition>) {
        let Some(progress) = self.topics[t].clock.progress(now) else {
            return;
        };
        let topic = &mut self.topics[t];
        let mut next_close = i64::MAX;
        let mut fits_until = i64::MAX;
        for w in &mut topic.windows {
            w.close(progress, &mut self.closed);
            next_close = next_close.min(w.next_close());
            fits_until = fits_until.min(w.fits_until());
        }
        topic.next_close = next_close;
        topic.fits_until = fits_until;
        self.judge_closed(t, out);
    }

    /// End of data: decides what partitions hold (see
    /// [`Pipeline::admit_ahead`]), then closes every open bucket and judges
    /// it.
    pub fn finish(&mut self, out: &mut Vec<Transition>) {
        self.release_quiet(None);
        out.append(&mut self.deferred);
        for t in 0..self.topics.len() {
            for w in &mut self.topics[t].windows {
                w.flush(&mut self.closed);
            }
            self.judge_closed(t, out);
        }
    }

    fn judge_closed(&mut self, topic: usize, out: &mut Vec<Transition>) {
        if self.closed.is_empty() {
            return;
        }
        self.buckets.clear();
        // A series' last buckets come out of the same close as its
        // eviction: they are judged first, and the detector state is
        // dropped after, or judging them would create it again.
        let mut evicted = Vec::new();
        for c in self.closed.drain(..) {
            match c {
                Closed::Bucket(b) => self.buckets.push(b),
                Closed::Evicted { kpi, key } => evicted.push((kpi, key)),
            }
        }
        derive_ratios(&self.topics[topic].ratios, &mut self.buckets);
        // Time order across series, so transitions come out in the order
        // things happened; stable within a series.
        self.buckets.sort_by(|a, b| {
            (a.start, a.kpi)
                .cmp(&(b.start, b.kpi))
                .then_with(|| a.key.cmp(&b.key))
        });
        let before = out.len();
        let mut per_kpi: FastMap<usize, u64> = FastMap::default();
        for b in &self.buckets {
            *per_kpi.entry(b.kpi).or_default() += 1;
        }
        // In chunks, in order (the same transitions as all at once), so a
        // shutdown need not wait for a burst of hundreds of thousands. Only
        // between chunks: a close of one chunk is always judged whole, so
        // a stop during ordinary work still ends with a snapshot.
        for (k, chunk) in self.buckets.chunks(JUDGE_CHUNK).enumerate() {
            if k > 0
                && self
                    .interrupt
                    .as_ref()
                    .is_some_and(|f| f.load(Ordering::Relaxed))
            {
                self.interrupted = true;
                return;
            }
            self.engine.judge_all(chunk, out);
        }
        for m in self.engine.take_muted() {
            tracing::info!(
                kpi = %m.kpi,
                labels = ?m.labels,
                calendar = %m.calendar,
                bucket = m.bucket_start,
                "alert muted by calendar"
            );
            if self.tap.is_some() {
                self.muted.push(m);
            }
        }
        if let Some(tap) = &mut self.tap {
            tap.extend(self.buckets.iter().cloned());
        }
        for (kpi, key) in evicted {
            // The window has forgotten the series; the engine keeps it
            // while its alert fires (see `Engine::evict`).
            self.engine.evict(kpi, &key);
            let name = &self.config.kpis[kpi].name;
            self.metrics.series_evicted.with_label_values(&[name]).inc();
            per_kpi.entry(kpi).or_default();
            for r in &self.topics[topic].ratios {
                if r.denominator == kpi {
                    self.engine.evict(r.kpi, &key);
                    per_kpi.entry(r.kpi).or_default();
                }
            }
        }
        for (kpi, n) in per_kpi {
            let name = self.config.kpis[kpi].name.as_str();
            self.metrics
                .buckets_closed
                .with_label_values(&[name])
                .inc_by(n);
            self.metrics
                .detector_evaluations
                .with_label_values(&[name])
                .inc_by(n);
            self.metrics
                .series_live
                .with_label_values(&[name])
                .set(self.engine.live_series(kpi) as i64);
        }
        for tr in &out[before..] {
            self.metrics
                .alert_transitions
                .with_label_values(&[&tr.kpi, tr.change_name()])
                .inc();
        }
    }
}

/// An empty vector on `v`'s allocation, for fields borrowed from another
/// event: collecting a `vec::IntoIter` into a vector of a same-sized type
/// reuses the allocation, so events need no allocation of their own.
fn recycle<'b>(mut v: Vec<Field<'_>>) -> Vec<Field<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| -> Field<'b> { unreachable!("the vector is empty") })
        .collect()
}

/// What a KPI's learned state depends on: if any of it changes, old state
/// would mislead the new definition.
fn fingerprint(def: &crate::config::Kpi) -> String {
    format!(
        "{:?}|{}|{}|{:?}|{:?}",
        def.measure, def.bucket, def.timezone, def.group_by, def.detectors
    )
}

/// Appends the buckets of ratio KPIs, computed from their numerator's and
/// denominator's buckets closed in the same pass.
fn derive_ratios(ratios: &[RatioPlan], buckets: &mut Vec<ClosedBucket>) {
    for r in ratios {
        let numerators: FastMap<(&str, i64), Option<f64>> = buckets
            .iter()
            .filter(|b| b.kpi == r.numerator)
            .map(|b| ((&*b.key, b.start), b.value))
            .collect();
        let derived: Vec<ClosedBucket> = buckets
            .iter()
            .filter(|b| b.kpi == r.denominator)
            .map(|d| {
                let num = numerators
                    .get(&(&*d.key, d.start))
                    .copied()
                    .unwrap_or(r.zero_numerator.then_some(0.0));
                let value = match (num, d.value) {
                    (Some(n), Some(den)) if den != 0.0 => Some(n / den),
                    _ => None,
                };
                ClosedBucket {
                    kpi: r.kpi,
                    key: d.key.clone(),
                    start: d.start,
                    value,
                    volume: d.volume,
                    logs: None,
                }
            })
            .collect();
        buckets.extend(derived);
    }
}

#[cfg(test)]
mod recycle_tests {
    use super::{recycle, Field};

    #[test]
    fn recycling_keeps_the_allocation() {
        let text = String::from("x");
        let mut v = vec![Field::Str(text.as_str().into()); 8];
        v.reserve(8);
        let (ptr, capacity) = (v.as_ptr() as usize, v.capacity());
        let v: Vec<Field<'static>> = recycle(v);
        assert!(v.is_empty());
        assert_eq!((v.as_ptr() as usize, v.capacity()), (ptr, capacity));
    }
}

#[cfg(test)]
mod clock_tests {
    use super::Clock;

    fn clock() -> Clock {
        Clock {
            idle_timeout: 30,
            ..Clock::default()
        }
    }

    #[test]
    fn a_topic_that_delivered_nothing_does_not_move_with_the_wall_clock() {
        let mut c = clock();
        assert_eq!(c.progress(Some(1_000_000)), None);
    }

    #[test]
    fn an_idle_partition_stops_holding_the_others_back() {
        let mut c = clock();
        c.observe(0, 1000, Some(5000));
        c.observe(1, 2000, Some(5000));
        assert_eq!(c.progress(Some(5010)), Some(1000));
        c.observe(1, 2100, Some(5040));
        // Partition 0 has been silent for 40 s of wall time: idle.
        assert_eq!(c.progress(Some(5040)), Some(2100));
    }

    #[test]
    fn a_wholly_idle_topic_follows_the_wall_clock_and_never_goes_back() {
        let mut c = clock();
        c.observe(0, 1000, Some(1000));
        assert_eq!(c.progress(Some(1100)), Some(1070));
        assert_eq!(c.progress(Some(1200)), Some(1170));
        c.observe(0, 1150, Some(1200));
        assert_eq!(c.progress(Some(1200)), Some(1170));
    }

    #[test]
    fn an_assigned_partition_that_has_not_delivered_holds_progress_until_idle() {
        let mut c = clock();
        c.assign(0, Some(1000));
        c.assign(1, Some(1000));
        c.observe(1, 5000, Some(1001));
        assert_eq!(c.progress(Some(1001)), None);
        c.observe(0, 4000, Some(1002));
        assert_eq!(c.progress(Some(1002)), Some(4000));
        let mut d = clock();
        d.assign(0, Some(1000));
        d.assign(1, Some(1000));
        d.observe(1, 5000, Some(1010));
        // Partition 0 delivered nothing for 30 s after its assignment.
        assert_eq!(d.progress(Some(1030)), Some(5000));
    }

    #[test]
    fn without_a_wall_clock_progress_is_event_time_only() {
        let mut c = clock();
        c.observe(0, 1000, None);
        c.observe(1, 900, None);
        assert_eq!(c.progress(None), Some(900));
    }
}
