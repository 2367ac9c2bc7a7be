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

use super::alert::{alert_id, rfc3339, RecentBucket, Severity, Status, Transition};
use super::window::{ClosedBucket, SeriesKey, KEY_SEPARATOR};
use super::FastMap;

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
}

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
        let value = b.value?;
        let k = &mut self.kpis[b.kpi];
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
            started_at: rfc3339(started),
            bucket_start: rfc3339(b.start),
            bucket_end: rfc3339(b.start + def.bucket),
            observed: value,
            expected: verdict.expected,
            lower: verdict.lower,
            upper: verdict.upper,
            score: verdict.score,
            deviation_pct: (verdict.expected != 0.0)
                .then(|| (value - verdict.expected) / verdict.expected.abs() * 100.0),
            description: def.description.clone(),
            runbook: def.runbook.clone(),
            dashboard: def.dashboard.clone(),
            recent: s.recent.iter().copied().collect(),
        });
        Some(verdict)
    }
}
