//! Event-time tumbling buckets for the series of one KPI.
//!
//! Buckets are aligned to the epoch (`start = floor(t / width) * width`) and
//! close when the topic's event-time progress (its watermark before
//! lateness) minus the KPI's allowed lateness passes their end. Closing is
//! KPI-wide: all series close the same buckets together, which is what lets
//! a series with no events get its empty bucket — a count of 0, the signal
//! behind "no checkouts at all for 10 minutes". Events for a bucket that has
//! already closed are late: refused and counted by the caller.
//!
//! Memory is bounded three ways: at most `max_series` series (later label
//! combinations are folded into one series whose labels read `__other__`),
//! at most [`MAX_OPEN_BUCKETS`] open buckets per series (events further
//! ahead are refused), and grouped series silent for `evict_after` are
//! forgotten. The unlabelled series of a KPI without `group_by` is never
//! evicted: silence is exactly what it must report.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use cardinality_estimator::CardinalityEstimator;

use detectors::kpi::typical::LogSums;

use crate::config::model::{Aggregate, Kpi};

use super::FastMap;

/// Most buckets a series may hold open ahead of the closed ones.
pub const MAX_OPEN_BUCKETS: usize = 4096;
/// The label value of the overflow series.
pub const OTHER: &str = "__other__";
/// Separates label values inside a [`SeriesKey`].
pub const KEY_SEPARATOR: char = '\u{1f}';

/// A series' labels: the KPI's `group_by` names, in order, with the values
/// of its key.
pub fn labels_of(names: &[String], key: &str) -> BTreeMap<String, String> {
    if names.is_empty() {
        return BTreeMap::new();
    }
    names
        .iter()
        .cloned()
        .zip(key.split(KEY_SEPARATOR).map(str::to_string))
        .collect()
}

/// Identity of a series within its KPI: its label values joined by
/// [`KEY_SEPARATOR`], in `group_by` order. Cheap to clone.
pub type SeriesKey = Arc<str>;

/// What one event adds to a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Contribution<'a> {
    /// One more event (count).
    Event,
    /// One more event with this numeric value (sum, avg, min, max).
    Value(f64),
    /// One more event with this item (distinct).
    Item(&'a str),
}

/// Registers of the distinct-count sketch: `cardinality-estimator`'s
/// default precision, 2^12 (the `CardinalityEstimator<str>` below).
const DISTINCT_REGISTERS: f64 = 4096.0;
/// Relative variance of a distinct count's estimate: HyperLogLog's
/// standard error, 1.04 / sqrt(registers), squared (1.6 %: measured
/// 1.1-1.5 % from a thousand to forty thousand items, and exact below a
/// few hundred). The KPI model adds it to the noise of distinct counts.
pub const DISTINCT_REL_VAR: f64 = 1.04 * 1.04 / DISTINCT_REGISTERS;

/// The running aggregate of one open bucket. Small (40 bytes): a sparse
/// stream caught up from a backlog holds hundreds of open buckets per
/// series, and adding an event to one is mostly a cache miss on it.
#[derive(Debug, Default)]
struct Acc {
    /// Events in the bucket.
    n: u32,
    /// Values without a logarithm (0 or less) among them (avg).
    logless: u32,
    /// The sum (sum, avg), the smallest value (min) or the largest (max).
    v: f64,
    /// The items (distinct); empty, and allocates nothing, otherwise. Not
    /// boxed: the estimator is one word, and a box is one more miss.
    distinct: CardinalityEstimator<str>,
    /// The sums of the values' logarithms and of their squares (avg), for
    /// the typical-value test. f32: a mean log of thousands of values is
    /// off by a few millionths of a value's spread.
    logs: [f32; 2],
    /// The sum of the values' squares and the largest value (sum, avg):
    /// the upper tail of a KPI of amounts, and what a spike must be more
    /// than. f32, as the logarithms.
    squares: f32,
    largest: f32,
}

impl Acc {
    fn add(&mut self, c: Contribution<'_>, aggregate: &Aggregate) {
        match c {
            Contribution::Event => {}
            Contribution::Value(x) => {
                self.v = match aggregate {
                    _ if self.n == 0 => x,
                    Aggregate::Min(_) => self.v.min(x),
                    Aggregate::Max(_) => self.v.max(x),
                    _ => self.v + x,
                };
                if matches!(aggregate, Aggregate::Sum(_) | Aggregate::Avg(_)) {
                    // f32: half the cost of an f64 logarithm per event.
                    let v = x as f32;
                    if v > 0.0 && v.is_finite() {
                        let l = v.ln();
                        self.logs[0] += l;
                        self.logs[1] += l * l;
                        self.squares += v * v;
                        self.largest = self.largest.max(v);
                    } else {
                        self.logless += 1;
                    }
                }
            }
            Contribution::Item(item) => self.distinct.insert(item),
        }
        self.n = self.n.saturating_add(1);
    }

    /// The logarithms of an average's values, if they were all positive.
    fn logs(&self, aggregate: &Aggregate) -> Option<LogSums> {
        (matches!(aggregate, Aggregate::Sum(_) | Aggregate::Avg(_))
            && self.n > 0
            && self.logless == 0)
            .then(|| LogSums {
                sum: f64::from(self.logs[0]),
                sum_sq: f64::from(self.logs[1]),
                squares: f64::from(self.squares),
                largest: f64::from(self.largest),
            })
    }

    fn value(&self, aggregate: &Aggregate) -> Option<f64> {
        match aggregate {
            Aggregate::Count => Some(self.n as f64),
            Aggregate::Sum(_) => Some(self.v),
            Aggregate::Distinct(_) => Some(self.distinct.estimate() as f64),
            Aggregate::Avg(_) => (self.n > 0).then(|| self.v / self.n as f64),
            Aggregate::Min(_) | Aggregate::Max(_) => (self.n > 0).then_some(self.v),
        }
    }
}

/// A bucket that closed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedBucket {
    /// Index of the KPI in the config.
    pub kpi: usize,
    /// The series.
    pub key: SeriesKey,
    /// Bucket start, epoch seconds.
    pub start: i64,
    /// The aggregate, or `None` for an empty bucket of avg/min/max.
    pub value: Option<f64>,
    /// Events in the bucket (for `min_volume`).
    pub volume: u64,
    /// For an avg KPI whose values in the bucket were all positive: their
    /// logarithms (the typical-value test). None otherwise.
    pub logs: Option<LogSums>,
}

/// What closing produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Closed {
    /// A bucket of a series.
    Bucket(ClosedBucket),
    /// A series was forgotten; its detector state can go too.
    Evicted {
        /// Index of the KPI.
        kpi: usize,
        /// The series.
        key: SeriesKey,
    },
}

/// How [`KpiWindows::record`] treated an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Added to its bucket.
    Added,
    /// Added to the `__other__` series because `max_series` was reached.
    Overflowed,
    /// Its bucket had already closed.
    Late,
    /// More than [`MAX_OPEN_BUCKETS`] ahead of the closed buckets.
    TooFarAhead,
}

struct Series {
    key: SeriesKey,
    /// Open buckets; `open[i]` starts at `closed_until + i * width`.
    open: VecDeque<Acc>,
    /// Start of the last bucket that had an event.
    last_event: i64,
}

/// The buckets of every series of one event KPI.
pub struct KpiWindows {
    kpi: usize,
    width: i64,
    lateness: i64,
    aggregate: Aggregate,
    grouped: bool,
    labels: usize,
    max_series: usize,
    evict_after: i64,
    index: FastMap<SeriesKey, usize>,
    series: Vec<Option<Series>>,
    free: Vec<usize>,
    /// Slots of `series` in key order: closing walks them in this order so
    /// that closed buckets come out sorted by (start, key) and the
    /// pipeline's time-order sort finds runs instead of sorting (the sort
    /// by string keys was 7 % of replay).
    order: Vec<usize>,
    /// Every bucket starting before this has closed; `None` until the
    /// first event or progress.
    closed_until: Option<i64>,
    /// True once a bucket has closed. Before that, `closed_until` is only
    /// where the first event happened to fall, and an earlier event (from a
    /// partition that was slower to deliver after a restart) moves it back
    /// instead of being late.
    started: bool,
    /// Bucket starts walked by closing, over the windows' life: what a
    /// close costs, which tests check does not grow with the length of a
    /// gap.
    walked: u64,
}

impl KpiWindows {
    /// Empty windows for KPI number `kpi`, whose measure must be events.
    pub fn new(kpi: usize, def: &Kpi, aggregate: Aggregate) -> Self {
        Self {
            kpi,
            width: def.bucket,
            lateness: def.lateness,
            aggregate,
            grouped: !def.group_by.is_empty(),
            labels: def.group_by.len(),
            max_series: def.max_series,
            evict_after: def.evict_after,
            index: FastMap::default(),
            series: Vec::new(),
            free: Vec::new(),
            order: Vec::new(),
            closed_until: None,
            started: false,
            walked: 0,
        }
    }

    /// Gives the windows to KPI number `kpi` (a reload that keeps the KPI
    /// may move it in the file): closed buckets carry this number.
    pub(crate) fn renumber(&mut self, kpi: usize) {
        self.kpi = kpi;
    }

    /// Bucket starts walked by closing so far (each over every series).
    pub fn walked(&self) -> u64 {
        self.walked
    }

    /// Series currently held.
    pub fn live_series(&self) -> usize {
        self.index.len()
    }

    fn floor(&self, t: i64) -> i64 {
        t.div_euclid(self.width) * self.width
    }

    /// Where closing starts: the bucket of the first event (or progress)
    /// seen. Starting earlier would close a bucket nobody observed as a
    /// false zero.
    fn start_at(&mut self, t: i64) -> i64 {
        let first = self.floor(t);
        *self.closed_until.get_or_insert(first)
    }

    fn ensure_unlabelled(&mut self) {
        if !self.grouped && self.index.is_empty() {
            self.insert(SeriesKey::from(""));
        }
    }

    fn insert(&mut self, key: SeriesKey) -> usize {
        let s = Series {
            key: key.clone(),
            open: VecDeque::new(),
            last_event: i64::MIN,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                self.series[i] = Some(s);
                i
            }
            None => {
                self.series.push(Some(s));
                self.series.len() - 1
            }
        };
        let series = &self.series;
        let at = self.order.partition_point(|&o| {
            series[o]
                .as_ref()
                .is_some_and(|s| s.key.as_ref() < key.as_ref())
        });
        self.order.insert(at, slot);
        self.index.insert(key, slot);
        slot
    }

    /// Adds an event at `time` to series `key`.
    pub fn record(&mut self, key: &str, time: i64, c: Contribution<'_>) -> Recorded {
        let mut closed_until = self.start_at(time);
        self.ensure_unlabelled();
        let bucket = self.floor(time);
        if bucket < closed_until && !self.started {
            let back = ((closed_until - bucket) / self.width) as usize;
            if back + self.longest_open() <= MAX_OPEN_BUCKETS {
                for s in self.series.iter_mut().flatten() {
                    for _ in 0..back {
                        s.open.push_front(Acc::default());
                    }
                }
                closed_until = bucket;
                self.closed_until = Some(bucket);
            }
        }
        if bucket < closed_until {
            return Recorded::Late;
        }
        let pos = ((bucket - closed_until) / self.width) as usize;
        if pos >= MAX_OPEN_BUCKETS {
            return Recorded::TooFarAhead;
        }
        let mut outcome = Recorded::Added;
        let slot = match self.index.get(key) {
            Some(&slot) => slot,
            None if self.index.len() < self.max_series => self.insert(SeriesKey::from(key)),
            None => {
                outcome = Recorded::Overflowed;
                let other = vec![OTHER; self.labels].join(&KEY_SEPARATOR.to_string());
                match self.index.get(other.as_str()) {
                    Some(&slot) => slot,
                    None => self.insert(SeriesKey::from(other)),
                }
            }
        };
        let s = self.series[slot].as_mut().expect("indexed series exists");
        if s.open.len() <= pos {
            s.open.resize_with(pos + 1, Acc::default);
        }
        s.open[pos].add(c, &self.aggregate);
        s.last_event = s.last_event.max(bucket);
        outcome
    }

    /// Asks the CPU to fetch the open bucket an event of series `key` at
    /// `time` would be added to, ahead of [`KpiWindows::record`]: with
    /// partitions read far apart in event time, that bucket is mostly out
    /// of cache, and a batch of events can wait for several at once
    /// instead of one after the other. Does nothing else.
    pub fn prefetch(&self, key: &str, time: i64) {
        let (Some(closed_until), Some(&slot)) = (self.closed_until, self.index.get(key)) else {
            return;
        };
        let bucket = self.floor(time);
        if bucket < closed_until {
            return;
        }
        let pos = ((bucket - closed_until) / self.width) as usize;
        if let Some(acc) = self.series[slot].as_ref().and_then(|s| s.open.get(pos)) {
            prefetch(acc);
        }
    }

    /// Closes every bucket whose end plus lateness is at or before
    /// `progress` (the topic's event-time progress), appending to `out`.
    pub fn close(&mut self, progress: i64, out: &mut Vec<Closed>) {
        let closed_until = self.start_at(progress);
        self.ensure_unlabelled();
        let target = self.floor(progress - self.lateness);
        if target <= closed_until {
            return;
        }
        self.close_to(closed_until, target, out);
    }

    /// What a snapshot keeps: where closing stands, and every series with
    /// the start of its last bucket that had an event. Open buckets are not
    /// kept: their events are read again from Kafka after a restart.
    pub fn export(&self) -> (Option<i64>, Vec<(String, i64)>) {
        let series = self
            .series
            .iter()
            .flatten()
            .map(|s| (s.key.to_string(), s.last_event))
            .collect();
        (self.started.then_some(self.closed_until).flatten(), series)
    }

    /// Restores what [`KpiWindows::export`] kept. Events for buckets before
    /// `closed_until` are then late: they were counted before the restart.
    pub fn import(&mut self, closed_until: Option<i64>, series: Vec<(String, i64)>) {
        if let Some(c) = closed_until {
            self.closed_until = Some(c);
            self.started = true;
        }
        for (key, last_event) in series {
            if self.index.contains_key(key.as_str()) {
                continue;
            }
            let slot = self.insert(SeriesKey::from(key));
            if let Some(s) = self.series[slot].as_mut() {
                s.last_event = last_event;
            }
        }
    }

    /// Every bucket before this has closed; None until one has.
    pub fn closed_until(&self) -> Option<i64> {
        self.started.then_some(self.closed_until).flatten()
    }

    /// False if an event at `time` would open a bucket more than
    /// [`MAX_OPEN_BUCKETS`] past the oldest open one ([`Recorded::TooFarAhead`]).
    pub fn fits(&self, time: i64) -> bool {
        self.closed_until
            .is_none_or(|c| time < c.saturating_add(MAX_OPEN_BUCKETS as i64 * self.width))
    }

    /// A time before which every event [`KpiWindows::fits`], and that only
    /// closing can move: `i64::MIN` until a bucket has closed (before that
    /// the first event sets where buckets start, and an earlier one may
    /// move the start back).
    pub fn fits_until(&self) -> i64 {
        match (self.started, self.closed_until) {
            (true, Some(c)) => c.saturating_add(MAX_OPEN_BUCKETS as i64 * self.width),
            _ => i64::MIN,
        }
    }

    /// The progress at which the bucket holding an event at `time` closes.
    pub fn closes_at(&self, time: i64) -> i64 {
        self.floor(time) + self.width + self.lateness
    }

    /// The progress at which the next bucket closes (`i64::MIN` before the
    /// first event).
    pub fn next_close(&self) -> i64 {
        self.closed_until
            .map_or(i64::MIN, |c| c + self.width + self.lateness)
    }

    /// Most open buckets any series holds.
    fn longest_open(&self) -> usize {
        self.series
            .iter()
            .flatten()
            .map(|s| s.open.len())
            .max()
            .unwrap_or(0)
    }

    /// Closes every open bucket (end of data), appending to `out`.
    pub fn flush(&mut self, out: &mut Vec<Closed>) {
        let Some(closed_until) = self.closed_until else {
            return;
        };
        let longest = self.longest_open();
        if longest > 0 {
            self.close_to(
                closed_until,
                closed_until + longest as i64 * self.width,
                out,
            );
        }
    }

    fn close_to(&mut self, from: i64, to: i64, out: &mut Vec<Closed>) {
        let w = self.width;
        let steps = (to - from) / w;
        // A series is judged at most until it would be evicted: after a
        // long silence (or a jump of event or wall-clock time) it emits at
        // most that many empty buckets, the last ones of the gap, not one
        // per bucket of the whole gap.
        let tail = steps.saturating_sub((self.evict_after / w).max(1));
        // Only the first `held` buckets can hold an event (no series has
        // more open), so the walk skips from there to the tail: closing a
        // gap of any length costs the buckets that hold data plus the
        // capped tail, not a step per bucket of the gap.
        let held = (self.longest_open() as i64).min(steps);
        let zero_when_empty = self.aggregate.zero_when_empty();
        // Bucket by bucket, each over the series in key order: the output
        // is sorted by (start, key).
        for i in (0..held).chain(tail.max(held)..steps) {
            self.walked += 1;
            let start = from + i * w;
            for &slot in &self.order {
                let Some(s) = self.series[slot].as_mut() else {
                    continue;
                };
                let acc = if i < held { s.open.pop_front() } else { None };
                if i < tail && acc.as_ref().is_none_or(|a| a.n == 0) {
                    continue;
                }
                let (value, volume, logs) = match &acc {
                    Some(a) if a.n > 0 => (
                        a.value(&self.aggregate),
                        u64::from(a.n),
                        a.logs(&self.aggregate),
                    ),
                    _ => (zero_when_empty.then_some(0.0), 0, None),
                };
                out.push(Closed::Bucket(ClosedBucket {
                    kpi: self.kpi,
                    key: s.key.clone(),
                    start,
                    value,
                    volume,
                    logs,
                }));
            }
        }
        if self.grouped {
            let mut kept = 0;
            for o in 0..self.order.len() {
                let slot = self.order[o];
                // Silent for `evict_after` since the end of the bucket
                // of its last event, however many closes that took.
                let evict = self.series[slot].as_ref().is_some_and(|s| {
                    s.open.is_empty()
                        && to.saturating_sub(s.last_event.saturating_add(w)) >= self.evict_after
                });
                if evict {
                    if let Some(s) = self.series[slot].take() {
                        self.free.push(slot);
                        self.index.remove(&s.key);
                        out.push(Closed::Evicted {
                            kpi: self.kpi,
                            key: s.key,
                        });
                    }
                } else {
                    self.order[kept] = slot;
                    kept += 1;
                }
            }
            self.order.truncate(kept);
        }
        self.closed_until = Some(to);
        self.started = true;
    }
}

/// A hint to load the cache line holding `value`.
#[inline]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 processor has;
    // a prefetch reads nothing into the program, never faults, and the
    // pointer comes from a live reference anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{Alerting, FieldPath, Interest, Measure};

    fn kpi(bucket: i64, lateness: i64, grouped: bool, max_series: usize) -> Kpi {
        Kpi {
            name: "checkouts".into(),
            description: None,
            runbook: None,
            dashboard: None,
            topic: 0,
            measure: Measure::Events {
                filter: vec![],
                aggregate: Aggregate::Count,
            },
            group_by: if grouped {
                vec![FieldPath(vec!["country".into()])]
            } else {
                vec![]
            },
            bucket,
            lateness,
            timezone: chrono_tz::Tz::UTC,
            max_series,
            evict_after: 10 * bucket,
            direction: Interest::Both,
            min_volume: 0.0,
            detectors: detectors::SetConfig::new(bucket),
            alerting: Alerting {
                level: crate::config::model::AlertLevel::Score(0.5),
                critical: Some(0.75),
                fire_after: 1,
                resolve_after: 3,
                recent_buckets: 24,
            },
            calendars: Vec::new(),
        }
    }

    fn buckets(out: &[Closed]) -> Vec<(String, i64, Option<f64>)> {
        out.iter()
            .filter_map(|c| match c {
                Closed::Bucket(b) => Some((b.key.to_string(), b.start, b.value)),
                Closed::Evicted { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_bucket_closes_only_after_its_end_plus_lateness() {
        let mut w = KpiWindows::new(0, &kpi(60, 10, false, 10), Aggregate::Count);
        w.record("", 600, Contribution::Event);
        w.record("", 630, Contribution::Event);
        let mut out = Vec::new();
        w.close(669, &mut out);
        assert!(out.is_empty(), "{out:?}");
        w.close(670, &mut out);
        assert_eq!(buckets(&out), vec![(String::new(), 600, Some(2.0))]);
    }

    #[test]
    fn empty_buckets_of_a_count_close_as_zero() {
        let mut w = KpiWindows::new(0, &kpi(60, 0, false, 10), Aggregate::Count);
        w.record("", 600, Contribution::Event);
        let mut out = Vec::new();
        w.close(600 + 4 * 60, &mut out);
        let values: Vec<_> = buckets(&out).into_iter().map(|b| b.2).collect();
        assert_eq!(values, vec![Some(1.0), Some(0.0), Some(0.0), Some(0.0)]);
    }

    #[test]
    fn empty_buckets_of_an_average_have_no_value() {
        let avg = Aggregate::Avg(FieldPath(vec!["amount".into()]));
        let mut w = KpiWindows::new(0, &kpi(60, 0, false, 10), avg);
        w.record("", 600, Contribution::Value(10.0));
        w.record("", 610, Contribution::Value(20.0));
        let mut out = Vec::new();
        w.close(720, &mut out);
        let values: Vec<_> = buckets(&out).into_iter().map(|b| b.2).collect();
        assert_eq!(values, vec![Some(15.0), None]);
    }

    #[test]
    fn an_event_for_a_closed_bucket_is_late() {
        let mut w = KpiWindows::new(0, &kpi(60, 0, false, 10), Aggregate::Count);
        w.record("", 600, Contribution::Event);
        w.close(720, &mut Vec::new());
        assert_eq!(w.record("", 650, Contribution::Event), Recorded::Late);
        assert_eq!(w.record("", 720, Contribution::Event), Recorded::Added);
    }

    #[test]
    fn before_the_first_close_an_earlier_event_moves_the_start_back() {
        let mut w = KpiWindows::new(0, &kpi(60, 0, false, 10), Aggregate::Count);
        w.record("", 660, Contribution::Event);
        assert_eq!(w.record("", 600, Contribution::Event), Recorded::Added);
        let mut out = Vec::new();
        w.close(720, &mut out);
        assert_eq!(
            buckets(&out),
            vec![
                (String::new(), 600, Some(1.0)),
                (String::new(), 660, Some(1.0))
            ]
        );
        assert_eq!(w.record("", 610, Contribution::Event), Recorded::Late);
    }

    #[test]
    fn series_past_the_cap_fold_into_other() {
        let mut w = KpiWindows::new(0, &kpi(60, 0, true, 2), Aggregate::Count);
        assert_eq!(w.record("FI", 600, Contribution::Event), Recorded::Added);
        assert_eq!(w.record("SE", 600, Contribution::Event), Recorded::Added);
        assert_eq!(
            w.record("NO", 600, Contribution::Event),
            Recorded::Overflowed
        );
        assert_eq!(
            w.record("DK", 600, Contribution::Event),
            Recorded::Overflowed
        );
        let mut out = Vec::new();
        w.close(660, &mut out);
        let mut got = buckets(&out);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got[2], ("__other__".to_string(), 600, Some(2.0)));
        assert_eq!(w.live_series(), 3);
    }

    #[test]
    fn a_silent_grouped_series_is_evicted_but_the_unlabelled_one_is_not() {
        let mut grouped = KpiWindows::new(0, &kpi(60, 0, true, 10), Aggregate::Count);
        grouped.record("FI", 600, Contribution::Event);
        let mut out = Vec::new();
        grouped.close(600 + 20 * 60, &mut out);
        assert!(out
            .iter()
            .any(|c| matches!(c, Closed::Evicted { key, .. } if &**key == "FI")));
        assert_eq!(grouped.live_series(), 0);

        let mut whole = KpiWindows::new(0, &kpi(60, 0, false, 10), Aggregate::Count);
        whole.record("", 600, Contribution::Event);
        whole.close(600 + 20 * 60, &mut Vec::new());
        assert_eq!(whole.live_series(), 1);
    }

    #[test]
    fn closing_a_gap_of_eight_thousand_years_walks_only_buckets_with_data_and_the_capped_tail() {
        // evict_after is ten buckets: each series gets at most ten empty
        // buckets judged, the last ten of the gap, then is forgotten.
        let mut w = KpiWindows::new(0, &kpi(60, 0, true, 10), Aggregate::Count);
        w.record("FI", 600, Contribution::Event);
        w.record("SE", 660, Contribution::Event);
        let mut out = Vec::new();
        // 9999-12-31T23:59:00Z: 4.2 billion one-minute buckets away.
        let far = 253_402_300_740;
        w.close(far, &mut out);
        let got = buckets(&out);
        assert_eq!(
            got[..2],
            [("FI".into(), 600, Some(1.0)), ("SE".into(), 660, Some(1.0))]
        );
        assert_eq!(
            got.len(),
            2 + 2 * 10,
            "data plus ten empty buckets per series"
        );
        assert!(got[2..]
            .iter()
            .all(|(_, start, v)| *start >= far - 10 * 60 && *v == Some(0.0)));
        assert_eq!(w.walked(), 2 + 10, "bucket starts walked");
        assert_eq!(
            w.live_series(),
            0,
            "both series were silent past evict_after"
        );
    }

    #[test]
    fn a_kpi_that_never_matched_still_reports_zero() {
        let mut w = KpiWindows::new(0, &kpi(60, 0, false, 10), Aggregate::Count);
        let mut out = Vec::new();
        w.close(600, &mut out);
        w.close(600 + 3 * 60, &mut out);
        let values: Vec<_> = buckets(&out).into_iter().map(|b| b.2).collect();
        assert_eq!(values, vec![Some(0.0), Some(0.0), Some(0.0)]);
    }

    #[test]
    fn flush_closes_everything_open() {
        let mut w = KpiWindows::new(0, &kpi(60, 30, false, 10), Aggregate::Count);
        w.record("", 600, Contribution::Event);
        w.record("", 700, Contribution::Event);
        let mut out = Vec::new();
        w.flush(&mut out);
        let got: Vec<_> = buckets(&out).into_iter().map(|b| (b.1, b.2)).collect();
        assert_eq!(got, vec![(600, Some(1.0)), (660, Some(1.0))]);
    }

    #[test]
    fn sum_min_max_and_avg_of_values() {
        let values = [3.0, -2.0, 10.0, 0.5];
        let closed = |aggregate: Aggregate| {
            let mut w = KpiWindows::new(0, &kpi(60, 0, false, 10), aggregate);
            for v in values {
                w.prefetch("", 600);
                w.record("", 600, Contribution::Value(v));
            }
            let mut out = Vec::new();
            w.close(720, &mut out);
            buckets(&out).into_iter().map(|b| b.2).collect::<Vec<_>>()
        };
        let field = || FieldPath(vec!["amount".into()]);
        assert_eq!(closed(Aggregate::Sum(field())), vec![Some(11.5), Some(0.0)]);
        assert_eq!(closed(Aggregate::Min(field())), vec![Some(-2.0), None]);
        assert_eq!(closed(Aggregate::Max(field())), vec![Some(10.0), None]);
        assert_eq!(closed(Aggregate::Avg(field())), vec![Some(2.875), None]);
    }

    #[test]
    fn sums_and_averages_carry_their_values_logarithms_and_squares_unless_one_is_not_positive() {
        let logs = |aggregate: Aggregate, values: &[f64]| {
            let mut w = KpiWindows::new(0, &kpi(60, 0, false, 10), aggregate);
            for &v in values {
                w.record("", 600, Contribution::Value(v));
            }
            let mut out = Vec::new();
            w.close(720, &mut out);
            out.into_iter()
                .filter_map(|c| match c {
                    Closed::Bucket(b) => Some(b.logs),
                    Closed::Evicted { .. } => None,
                })
                .collect::<Vec<_>>()
        };
        let field = || FieldPath(vec!["amount".into()]);
        let (a, b) = (2f64.ln(), 8f64.ln());
        for aggregate in [Aggregate::Sum(field()), Aggregate::Avg(field())] {
            let got = logs(aggregate.clone(), &[2.0, 8.0]);
            let first = got[0].expect("all positive");
            assert!(
                (first.sum - (a + b)).abs() < 1e-6 && (first.sum_sq - (a * a + b * b)).abs() < 1e-5
            );
            // And the values' own squares and the largest, for the upper
            // tail.
            assert_eq!((first.squares, first.largest), (68.0, 8.0));
            // The empty bucket after it has none to carry.
            assert_eq!(got[1], None);
            // A refund (or a free order) leaves the bucket without.
            assert_eq!(logs(aggregate, &[2.0, -8.0])[0], None);
        }
        assert_eq!(logs(Aggregate::Max(field()), &[2.0, 8.0])[0], None);
    }

    #[test]
    fn distinct_counts_approximately() {
        let d = Aggregate::Distinct(FieldPath(vec!["user".into()]));
        let mut w = KpiWindows::new(0, &kpi(60, 0, false, 10), d);
        for i in 0..1000 {
            let user = format!("u{}", i % 250);
            w.record("", 600, Contribution::Item(&user));
        }
        let mut out = Vec::new();
        w.close(660, &mut out);
        let v = buckets(&out)[0].2.unwrap();
        assert!((v - 250.0).abs() < 250.0 * 0.05, "estimate {v}");
    }

    #[test]
    fn the_distinct_sketch_errs_within_the_standard_error_the_model_is_told() {
        let d = Aggregate::Distinct(FieldPath(vec!["user".into()]));
        let n = 10_000;
        let mut squares = 0.0;
        let trials = 30;
        for trial in 0..trials {
            let mut acc = Acc::default();
            for i in 0..n {
                let user = format!("t{trial}u{i}");
                acc.add(Contribution::Item(&user), &d);
            }
            let v = acc.value(&d).expect("a count");
            squares += (v / n as f64 - 1.0).powi(2);
        }
        let rms = (squares / f64::from(trials)).sqrt();
        assert!(rms <= DISTINCT_REL_VAR.sqrt(), "relative error {rms}");
        assert!(
            rms > 0.2 * DISTINCT_REL_VAR.sqrt(),
            "relative error {rms}: exact?"
        );
    }
}
