//! Detection and the alert lifecycle, per series.
//!
//! Each closed bucket goes to its series' [`DetectorSet`] (created on first
//! sight, dropped on eviction). The verdict then drives a small state
//! machine: `fire_after` consecutive anomalous buckets fire an alert,
//! `resolve_after` consecutive normal ones resolve it — hysteresis, so one
//! noisy bucket neither opens nor closes an incident. A bucket is anomalous
//! when the detectors are warm, its score reaches the KPI's threshold, its
//! direction is one the KPI cares about, and it had at least `min_volume`
//! events; a bucket below `min_volume` (or without a value) is not judged
//! and moves neither counter. Quiet means both observed and expected
//! volume are low, so a collapse to zero is still judged.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Offset, TimeZone};
use detectors::{Detector, DetectorSet, Direction, Observation, Verdict};

use crate::config::model::{Aggregate, Interest, Kpi, Measure};

use super::window::{ClosedBucket, SeriesKey, KEY_SEPARATOR};
use super::FastMap;
use crate::alert::{alert_id, Evidence, RecentBucket, Severity, Status, Transition};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Lifecycle {
    Normal {
        /// Consecutive anomalous buckets so far, and the first one's start.
        run: u32,
        first: i64,
    },
    Firing {
        id: String,
        started: i64,
        severity: Severity,
        direction: Direction,
        /// Consecutive normal buckets so far.
        calm: u32,
    },
}

/// Everything kept per series; snapshotted whole.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeriesState {
    detectors: DetectorSet,
    recent: VecDeque<RecentBucket>,
    lifecycle: Lifecycle,
}

struct KpiState {
    def: Kpi,
    label_names: Vec<String>,
    series: FastMap<SeriesKey, SeriesState>,
    /// Last (bucket start, UTC offset) looked up in the KPI's time zone.
    offset_cache: (i64, i32),
}

impl KpiState {
    fn utc_offset(&mut self, t: i64) -> i32 {
        if self.offset_cache.0 != t {
            let offset = DateTime::from_timestamp(t, 0)
                .map(|d| {
                    self.def
                        .timezone
                        .offset_from_utc_datetime(&d.naive_utc())
                        .fix()
                        .local_minus_utc()
                })
                .unwrap_or(0);
            self.offset_cache = (t, offset);
        }
        self.offset_cache.1
    }

    fn labels(&self, key: &str) -> BTreeMap<String, String> {
        if self.label_names.is_empty() {
            return BTreeMap::new();
        }
        self.label_names
            .iter()
            .cloned()
            .zip(key.split(KEY_SEPARATOR).map(str::to_string))
            .collect()
    }
}

/// The detectors and alert states of every series of every KPI.
pub struct Engine {
    kpis: Vec<KpiState>,
    /// Bursts of at least this many buckets are judged on two threads
    /// ([`Engine::judge_all`]).
    parallel_from: usize,
}

/// Buckets from which [`Engine::judge_all`] uses a second thread: about a
/// millisecond of judging, against some tens of microseconds to start a
/// thread.
const PARALLEL_FROM: usize = 1000;

fn interested(interest: Interest, d: Direction) -> bool {
    match interest {
        Interest::Both => d != Direction::None,
        Interest::Drop => d == Direction::Drop,
        Interest::Spike => d == Direction::Spike,
    }
}

impl Engine {
    /// An engine for these KPIs (in config order).
    pub fn new(kpis: &[Kpi]) -> Self {
        Self {
            kpis: kpis
                .iter()
                .map(|k| KpiState {
                    def: k.clone(),
                    label_names: k.group_by.iter().map(ToString::to_string).collect(),
                    series: FastMap::default(),
                    offset_cache: (i64::MIN, 0),
                })
                .collect(),
            parallel_from: PARALLEL_FROM,
        }
    }

    /// Series with detector state, for KPI number `kpi`.
    pub fn live_series(&self, kpi: usize) -> usize {
        self.kpis[kpi].series.len()
    }

    /// Every series of KPI number `kpi`, for a snapshot.
    pub fn export(&self, kpi: usize) -> Vec<(String, SeriesState)> {
        self.kpis[kpi]
            .series
            .iter()
            .map(|(k, s)| (k.to_string(), s.clone()))
            .collect()
    }

    /// Restores series of KPI number `kpi` from a snapshot.
    pub fn import(&mut self, kpi: usize, series: Vec<(String, SeriesState)>) {
        let k = &mut self.kpis[kpi];
        for (key, state) in series {
            k.series.insert(SeriesKey::from(key), state);
        }
    }

    /// Forgets a silent series, unless its alert is firing: that alert
    /// must still resolve if the events come back (the window then sees
    /// the series as new, and its buckets meet this state again), and
    /// dropping it would leave receivers a firing alert that never ends.
    pub fn evict(&mut self, kpi: usize, key: &str) {
        let series = &mut self.kpis[kpi].series;
        if !series
            .get(key)
            .is_some_and(|s| matches!(s.lifecycle, Lifecycle::Firing { .. }))
        {
            series.remove(key);
        }
    }

    /// Judges one closed bucket; appends a transition to `out` if the
    /// series' alert state changes. Returns the verdict, if the bucket had
    /// a value.
    pub fn judge(&mut self, b: &ClosedBucket, out: &mut Vec<Transition>) -> Option<Verdict> {
        self.kpis[b.kpi].judge(b, out)
    }

    /// Judges `buckets` (sorted by start, KPI and key, as the pipeline
    /// closes them) and appends their transitions to `out` in that order:
    /// the same as [`Engine::judge`] on each in turn.
    ///
    /// A burst of at least `PARALLEL_FROM` buckets is judged on two
    /// threads, the KPIs split between them by their share of the burst:
    /// each KPI's series are judged in order on one thread, KPIs share no
    /// state, and the transitions are put back in bucket order. Bursts
    /// are what a partitioned backlog produces (a bucket closes only when
    /// the slowest partition has passed it, so most close at once when
    /// its next chunk arrives), and then the thread that receives from
    /// Kafka has little to do.
    pub fn judge_all(&mut self, buckets: &[ClosedBucket], out: &mut Vec<Transition>) {
        let sides = (buckets.len() >= self.parallel_from)
            .then(|| split_by_load(self.kpis.len(), buckets))
            .flatten();
        let Some(side) = sides else {
            for b in buckets {
                self.judge(b, out);
            }
            return;
        };
        let (mut first, second): (Vec<_>, Vec<_>) = self
            .kpis
            .iter_mut()
            .enumerate()
            .map(|(k, state)| (side[k], k, Some(state)))
            .partition(|(s, _, _)| !s);
        // One side's transitions, each with the index of its bucket.
        let judge_side = |kpis: &mut [(bool, usize, Option<&mut KpiState>)]| {
            let mut mine: Vec<Option<&mut KpiState>> = Vec::new();
            mine.resize_with(side.len(), || None);
            for (_, k, state) in kpis.iter_mut() {
                mine[*k] = state.take();
            }
            let mut judged = Vec::new();
            let mut one = Vec::new();
            for (i, b) in buckets.iter().enumerate() {
                if let Some(k) = mine[b.kpi].as_deref_mut() {
                    k.judge(b, &mut one);
                    judged.extend(one.drain(..).map(|t| (i, t)));
                }
            }
            judged
        };
        // Behind a mutex only so that this thread can judge the second
        // side too if no thread can be started for it.
        let second = std::sync::Mutex::new(second);
        let judge_second = || {
            let mut kpis = second
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            judge_side(&mut kpis)
        };
        let (a, b) = std::thread::scope(|scope| {
            let other = std::thread::Builder::new()
                .spawn_scoped(scope, judge_second)
                .map_err(|e| tracing::warn!(error = %e, "cannot start a judging thread"));
            let a = judge_side(&mut first);
            let b = match other {
                Ok(other) => other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(()) => judge_second(),
            };
            (a, b)
        });
        // Each side is in bucket order: merge them.
        let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
        while let Some(take_a) = match (a.peek(), b.peek()) {
            (Some((i, _)), Some((j, _))) => Some(i < j),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        } {
            if let Some((_, t)) = if take_a { a.next() } else { b.next() } {
                out.push(t);
            }
        }
    }
}

/// Which of two sides judges each KPI (true: the second), balancing the
/// buckets of `buckets` between them, largest KPI first; None if one side
/// would get nothing.
fn split_by_load(kpis: usize, buckets: &[ClosedBucket]) -> Option<Vec<bool>> {
    let mut load = vec![0usize; kpis];
    for b in buckets {
        load[b.kpi] += 1;
    }
    let mut order: Vec<usize> = (0..kpis).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(load[k]));
    let mut side = vec![false; kpis];
    let mut weight = [0usize; 2];
    for k in order {
        let second = weight[1] < weight[0];
        side[k] = second;
        weight[usize::from(second)] += load[k];
    }
    (weight[1] > 0).then_some(side)
}

impl KpiState {
    /// [`Engine::judge`] for a bucket of this KPI.
    fn judge(&mut self, b: &ClosedBucket, out: &mut Vec<Transition>) -> Option<Verdict> {
        let value = b.value?;
        let k = self;
        let utc_offset = k.utc_offset(b.start);
        let def = &k.def;
        // Looked up by `&str` first: cloning the key for `entry` is an
        // atomic increment per judged bucket, which waits for every store
        // of the previous series' detectors to drain (perf put 70 % of
        // judge's own time on it).
        if !k.series.contains_key(&*b.key) {
            k.series.insert(
                b.key.clone(),
                SeriesState {
                    detectors: DetectorSet::new(def.detectors),
                    recent: VecDeque::new(),
                    lifecycle: Lifecycle::Normal { run: 0, first: 0 },
                },
            );
        }
        let s = k.series.get_mut(&*b.key).expect("series inserted above");
        let verdict = s.detectors.observe(&Observation {
            time: b.start,
            utc_offset,
            value,
        });
        let a = def.alerting;
        // Quiet buckets (night-time, a tiny country) are not judged, but a
        // count that collapses from a busy expectation is: the volume that
        // counts is the larger of observed and expected events.
        let expected_events = match &def.measure {
            Measure::Events {
                aggregate: Aggregate::Count,
                ..
            } => verdict.expected,
            _ => 0.0,
        };
        let judged = (b.volume as f64).max(expected_events) >= def.min_volume;
        let anomalous = judged
            && !verdict.warming_up
            && verdict.score >= a.threshold
            && interested(def.direction, verdict.direction);
        if s.recent.len() == a.recent_buckets {
            s.recent.pop_front();
        }
        s.recent.push_back(RecentBucket {
            t: b.start,
            value,
            expected: verdict.expected as f32,
            lower: verdict.lower as f32,
            upper: verdict.upper as f32,
            anomalous,
        });
        if !judged {
            return Some(verdict);
        }
        let severity = if verdict.score >= a.critical {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let transition = match &mut s.lifecycle {
            Lifecycle::Normal { run, first } => {
                if !anomalous {
                    *run = 0;
                    None
                } else {
                    if *run == 0 {
                        *first = b.start;
                    }
                    *run += 1;
                    (*run >= a.fire_after).then_some((
                        Status::Firing,
                        *first,
                        severity,
                        verdict.direction,
                    ))
                }
            }
            Lifecycle::Firing {
                started,
                severity: worst,
                direction,
                calm,
                ..
            } => {
                if anomalous {
                    *calm = 0;
                    *worst = (*worst).max(severity);
                    None
                } else {
                    *calm += 1;
                    (*calm >= a.resolve_after).then_some((
                        Status::Resolved,
                        *started,
                        *worst,
                        *direction,
                    ))
                }
            }
        };
        let (status, started, severity, direction) = transition?;
        let labels = k.labels(&b.key);
        let def = &k.def;
        let s = k.series.get_mut(&b.key).expect("series just judged");
        let id = match &s.lifecycle {
            Lifecycle::Firing { id, .. } => id.clone(),
            Lifecycle::Normal { .. } => alert_id(&def.name, &labels, started),
        };
        s.lifecycle = match status {
            Status::Firing => Lifecycle::Firing {
                id: id.clone(),
                started,
                severity,
                direction,
                calm: 0,
            },
            Status::Resolved => Lifecycle::Normal { run: 0, first: 0 },
        };
        out.push(Transition {
            status,
            alert_id: id,
            kpi: def.name.clone(),
            labels,
            severity,
            direction,
            started_at: started,
            bucket_start: b.start,
            bucket_end: b.start + def.bucket,
            observed: value,
            expected: verdict.expected,
            lower: verdict.lower,
            upper: verdict.upper,
            score: verdict.score,
            deviation_pct: (verdict.expected != 0.0)
                .then(|| (value - verdict.expected) / verdict.expected.abs() * 100.0),
            evidence: Evidence::bucket(
                b.start,
                b.start + def.bucket,
                Some(detectors::combine::tail_of_score(verdict.score)),
            ),
            description: def.description.clone(),
            runbook: def.runbook.clone(),
            dashboard: def.dashboard.clone(),
            recent: s.recent.iter().copied().collect(),
        });
        Some(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{Alerting, FieldPath};

    fn kpi(name: &str) -> Kpi {
        let mut detectors = detectors::SetConfig::new(300);
        detectors.threshold = Some(detectors::threshold::StaticThreshold {
            min: Some(5.0),
            max: None,
        });
        Kpi {
            name: name.into(),
            description: None,
            runbook: None,
            dashboard: None,
            topic: 0,
            measure: Measure::Events {
                filter: vec![],
                aggregate: Aggregate::Count,
            },
            group_by: vec![FieldPath(vec!["country".into()])],
            bucket: 300,
            lateness: 0,
            timezone: chrono_tz::Tz::UTC,
            max_series: 100,
            evict_after: 3000,
            direction: Interest::Both,
            min_volume: 0.0,
            detectors,
            alerting: Alerting {
                threshold: 0.5,
                critical: 0.75,
                fire_after: 2,
                resolve_after: 2,
                recent_buckets: 4,
            },
        }
    }

    /// Buckets of three KPIs with four series each, sorted as the
    /// pipeline closes them, with drops below the static floor of 5 that
    /// start and end at times that differ by KPI and series.
    fn buckets() -> Vec<ClosedBucket> {
        let mut out = Vec::new();
        for step in 0..400i64 {
            for kpi in 0..3 {
                for (s, key) in ["DE", "FI", "SE", "US"].into_iter().enumerate() {
                    let phase = (step + 17 * kpi as i64 + 31 * s as i64) % 50;
                    let value = if phase < 6 {
                        1.0
                    } else {
                        20.0 + (step % 7) as f64
                    };
                    out.push(ClosedBucket {
                        kpi,
                        key: SeriesKey::from(key),
                        start: 1_704_067_200 + 300 * step,
                        value: Some(value),
                        volume: value as u64,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn judging_a_burst_on_two_threads_gives_what_judging_one_by_one_gives() {
        let kpis = [kpi("a"), kpi("b"), kpi("c")];
        let all = buckets();
        let mut one_by_one = Engine::new(&kpis);
        let mut expected = Vec::new();
        for b in &all {
            one_by_one.judge(b, &mut expected);
        }
        let mut split = Engine::new(&kpis);
        split.parallel_from = 0;
        let mut got = Vec::new();
        // Bursts of uneven sizes, cut at bucket boundaries in time.
        for burst in all.chunks(12 * 37) {
            split.judge_all(burst, &mut got);
        }
        assert!(expected.len() > 50, "{} transitions", expected.len());
        assert_eq!(got, expected);
        for k in 0..kpis.len() {
            let state = |e: &Engine| {
                let mut s = e.export(k);
                s.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::to_string(&s).expect("state serialises")
            };
            assert_eq!(state(&split), state(&one_by_one));
        }
    }

    #[test]
    fn a_burst_is_split_by_load_and_one_kpi_is_not_split() {
        let b = |kpi| ClosedBucket {
            kpi,
            key: SeriesKey::from(""),
            start: 0,
            value: Some(1.0),
            volume: 1,
        };
        let burst: Vec<_> = [0, 0, 0, 0, 1, 1, 2, 2, 3].into_iter().map(b).collect();
        let side = split_by_load(4, &burst).expect("two sides");
        let weight = |second: bool| burst.iter().filter(|b| side[b.kpi] == second).count();
        assert_eq!((weight(false), weight(true)), (5, 4));
        assert_eq!(split_by_load(4, &[b(2), b(2)]), None);
    }
}
