//! Detection and the alert lifecycle, per series.
//!
//! Each closed bucket goes to its series' model, created on first sight and
//! dropped on eviction: a [`KpiModel`] for counts, sums, averages, ratios
//! and distinct counts (it knows its aggregate's noise, judges windows of
//! buckets and, for grouped additive KPIs, the series against its peers),
//! a [`DetectorSet`] for min and max. The engine then:
//!
//! - decides: a bucket is anomalous when some evidence in a direction the
//!   KPI cares about is rarer than the KPI's alert level — the tail
//!   probability its `false_alarms` budget allows one series one bucket
//!   (the budget shared over the KPI's series and its buckets), or its
//!   fixed `threshold` — or when an analyst's rule breaks;
//! - learns: the model folds the bucket in fully when it is ordinary, and
//!   with a small, bounded weight while it is anomalous or an alert fires,
//!   so a baseline does not learn its own incident and an alert lasts as
//!   long as the incident does;
//! - runs the lifecycle: `fire_after` consecutive anomalous buckets fire an
//!   alert (a window's evidence only while its newest bucket is not back to
//!   normal, or it would announce an incident that has ended); it
//!   resolves once the last `resolve_after` buckets since its first
//!   anomalous one are better explained by normal than by the state the
//!   alert claims (its evidence's ratio to expected), whatever their
//!   volume; while it fires, evidence in its direction that passes the
//!   critical level escalates it once (a firing transition of the same
//!   alert with `escalated_from`), and severity never falls back;
//! - follows the KPI's calendars of expected events ([`crate::calendar`]):
//!   during one, no bucket is learnt (weight 0), and alerts are muted
//!   (would-be alerts are kept as [`Muted`] records for reports) or need
//!   evidence `widen` times rarer; when the calendar ends, windows start
//!   afresh so none reaches back into it;
//! - describes: a transition's figures are its evidence's — one bucket's
//!   band, a window's total against its expected total, or the series
//!   against its peers — with the band the alert level accepts, so a firing
//!   alert's observed value is always outside its band.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Offset, TimeZone};
use detectors::combine::{score_of_tail, tail_of_score};
use detectors::kpi::tails::Predictive;
use detectors::kpi::{
    self, Assessment, Finding, Input, Kind, KpiConfig, KpiModel, RuleBreak, RuleKind, Source,
};
use detectors::{Detector, DetectorSet, Direction, Observation, Verdict};

use crate::alert::{
    alert_id, Evidence, EvidenceKind, RecentBucket, Rule, Severity, Share, Status, Transition,
};
use crate::calendar::{self, Effect};
use crate::config::model::{Aggregate, Interest, Kpi, Measure};

use super::window::{self, labels_of, ClosedBucket, SeriesKey};
use super::FastMap;

/// Weight an anomalous bucket, or one while an alert fires, is learnt
/// with: small enough that a four-hour outage moves a two-day level by
/// under half a percent, large enough that a lasting change of level is
/// learnt within weeks rather than never (an alert cannot fire for ever
/// about a new normal).
pub const LEARN_WHILE_ANOMALOUS: f64 = 0.05;
/// Without an explicit `critical`, evidence this many times rarer than the
/// alert level is critical.
const CRITICAL_RARER: f64 = 1000.0;
/// Peers are compared once a group has at least this many series.
const MIN_PEERS: usize = 3;

/// The model of one series. Not boxed although the KPI model is much the
/// larger: it is the common case, and a box would be one more cache miss
/// per judged bucket.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[allow(clippy::large_enum_variant)]
enum Model {
    /// Counts, sums, averages, ratios, distinct counts.
    Kpi(KpiModel),
    /// Min and max: the general detector set.
    Set(DetectorSet),
}

/// What the alert claims while it fires: how its evidence was found, and
/// the series' value then as a share of expected.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
enum Claim {
    /// Own model, peers or the typical value, at `ratio` times expected.
    Model { source: Source, ratio: f64 },
    /// A broken rule or a detector-set score: calm buckets resolve it.
    Calm,
}

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
        /// The severity last announced (at firing, or by an escalation):
        /// only a rarer finding than this one escalates.
        severity: Severity,
        direction: Direction,
        claim: Claim,
        /// Consecutive calm buckets so far (for `Claim::Calm`).
        calm: u32,
    },
}

/// One recent bucket as kept: its value and its predictive distribution
/// (for a KPI model, whose band is drawn at the alert level of the moment
/// the chart is made), or its band (for a detector set).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Recent {
    t: i64,
    value: f64,
    expected: f32,
    spread: Spread,
}

impl Recent {
    /// A bucket a KPI model judged, with its predictive distribution.
    fn predicted(t: i64, value: f64, a: &Assessment) -> Self {
        Recent {
            t,
            value,
            expected: a.expected as f32,
            spread: Spread::Predictive {
                var: a.point.var as f32,
                rate_var: a.point.rate_var as f32,
            },
        }
    }

    /// A bucket a detector set judged, with its band.
    fn banded(t: i64, value: f64, v: &Verdict) -> Self {
        Recent {
            t,
            value,
            expected: v.expected as f32,
            spread: Spread::Band {
                lower: v.lower as f32,
                upper: v.upper as f32,
            },
        }
    }
}

/// How far a recent bucket could have gone without surprise.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
enum Spread {
    /// A KPI model's predictive variance, and the part of it that is the
    /// expectation's own uncertainty.
    Predictive { var: f32, rate_var: f32 },
    /// A detector set's band.
    Band { lower: f32, upper: f32 },
}

/// Everything kept per series; snapshotted whole.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeriesState {
    model: Model,
    recent: VecDeque<Recent>,
    lifecycle: Lifecycle,
    /// Whether the last bucket judged was inside one of the KPI's
    /// calendars, so the first one after forgets windows. Not in
    /// snapshots (their layout stays as it was): after a restart the
    /// bucket before is looked up in the calendar instead.
    #[serde(skip)]
    in_calendar: bool,
    /// Whether a muted alert of this series was recorded during the
    /// calendar under way: one record per series and calendar span.
    #[serde(skip)]
    muted_recorded: bool,
}

/// An alert a calendar muted: the series would have fired at
/// `bucket_start` (its anomalous run began at `started_at`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Muted {
    /// The KPI.
    pub kpi: String,
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// The calendar that muted it.
    pub calendar: String,
    /// Start of the anomalous run, epoch seconds.
    pub started_at: i64,
    /// The bucket that would have fired it.
    pub bucket_start: i64,
    /// Which way the series went.
    pub direction: Direction,
    /// The evidence's observed and expected values.
    pub observed: f64,
    /// See `observed`.
    pub expected: f64,
}

/// What the KPI's calendars do to the buckets of one bucket start.
#[derive(Debug, Clone, Copy, PartialEq)]
struct During {
    /// The effect and the calendar's index in the KPI's `calendars`, if
    /// the bucket is inside one.
    effect: Option<(Effect, usize)>,
    /// The bucket before was inside one and this one is not: windows
    /// start afresh.
    ended: bool,
}

impl During {
    const NONE: During = During {
        effect: None,
        ended: false,
    };
}

struct KpiState {
    def: Kpi,
    /// The aggregate as the KPI model knows it; None for min and max.
    kind: Option<Kind>,
    label_names: Vec<String>,
    series: FastMap<SeriesKey, SeriesState>,
    /// Last (bucket start, UTC offset) looked up in the KPI's time zone.
    offset_cache: (i64, i32),
    /// Every judged bucket with its band, while someone taps them
    /// ([`Engine::tap_points`]; the backtest's charts). Per KPI so that
    /// each judging thread writes only its own.
    points: Option<Vec<JudgedPoint>>,
    /// Alerts muted by a calendar since [`Engine::take_muted`].
    muted: Vec<Muted>,
}

/// One judged bucket as a chart draws it: the value, what the model
/// expected and the band the alert level accepted at that moment (the
/// band an alert's recent buckets show). NaN edges: no band (warming
/// up, or an open side).
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedPoint {
    /// Index of the KPI in the config.
    pub kpi: usize,
    /// The series.
    pub key: SeriesKey,
    /// Bucket start, epoch seconds.
    pub start: i64,
    /// The bucket's value.
    pub value: f64,
    /// Expected value.
    pub expected: f32,
    /// Lower edge of the band.
    pub lower: f32,
    /// Upper edge of the band.
    pub upper: f32,
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
        labels_of(&self.label_names, key)
    }
}

/// A series' labels from its key.
/// The detectors and alert states of every series of every KPI.
pub struct Engine {
    kpis: Vec<KpiState>,
    /// Bursts of at least this many buckets are judged on two threads
    /// ([`Engine::judge_all`]).
    parallel_from: usize,
    /// The thread that judges beside the caller's, started at the first
    /// burst and kept (starting one per burst cost a few percent of
    /// replay); None before, or if it could not be started.
    helper: Option<rayon_core::ThreadPool>,
}

/// Buckets from which [`Engine::judge_all`] uses a second thread: about
/// half a millisecond of judging (replay judges ~0.5 us a bucket), against
/// the tens of microseconds that waking the helper and waiting for its last
/// KPI can cost. 250 measured the same as 1,000 in
/// `benches/replay_throughput.sh`, whose bursts are ~1,000 buckets.
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
                    kind: kind_of(k),
                    def: k.clone(),
                    label_names: k.group_by.iter().map(ToString::to_string).collect(),
                    series: FastMap::default(),
                    offset_cache: (i64::MIN, 0),
                    points: None,
                    muted: Vec::new(),
                })
                .collect(),
            parallel_from: PARALLEL_FROM,
            helper: None,
        }
    }

    /// From now on, keeps every judged bucket's value, expectation and
    /// band for [`Engine::take_points`].
    pub fn tap_points(&mut self) {
        for k in &mut self.kpis {
            k.points.get_or_insert_with(Vec::new);
        }
    }

    /// The points judged since the last call, KPI by KPI (each KPI's in
    /// judging order); empty unless tapped.
    pub fn take_points(&mut self) -> Vec<JudgedPoint> {
        let mut out = Vec::new();
        for k in &mut self.kpis {
            if let Some(points) = &mut k.points {
                out.append(points);
            }
        }
        out
    }

    /// The alerts calendars muted since the last call, in bucket order.
    pub fn take_muted(&mut self) -> Vec<Muted> {
        let mut out: Vec<Muted> = self
            .kpis
            .iter_mut()
            .flat_map(|k| std::mem::take(&mut k.muted))
            .collect();
        out.sort_by_key(|m| m.bucket_start);
        out
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

    /// Moves the series (models, recent buckets, alert states) of KPI
    /// `from` of `old` to KPI `to` of this engine, on a reload that keeps
    /// the KPI's state: this engine's definition stays, so new judging
    /// settings apply from the next bucket.
    pub(crate) fn adopt(&mut self, to: usize, old: &mut Engine, from: usize) {
        let k = &mut self.kpis[to];
        k.series = std::mem::take(&mut old.kpis[from].series);
        // The ring is trimmed only as one bucket in, one out.
        let keep = k.def.alerting.recent_buckets.max(1);
        for s in k.series.values_mut() {
            while s.recent.len() > keep {
                s.recent.pop_front();
            }
        }
    }

    /// Resolves every firing alert of KPI number `kpi` and drops its
    /// series, for a reload that removes the KPI or starts it afresh: a
    /// subscriber hears "resolved" (with `why` after the description)
    /// rather than about an alert that would never end. The figures are
    /// the last bucket's.
    pub(crate) fn withdraw(&mut self, kpi: usize, why: &str) -> Vec<Transition> {
        let mut out = Vec::new();
        let k = &mut self.kpis[kpi];
        let series = std::mem::take(&mut k.series);
        let mut firing: Vec<(SeriesKey, SeriesState)> = series
            .into_iter()
            .filter(|(_, s)| matches!(s.lifecycle, Lifecycle::Firing { .. }))
            .collect();
        firing.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, s) in firing {
            let Lifecycle::Firing {
                id,
                started,
                severity,
                direction,
                ..
            } = s.lifecycle
            else {
                continue;
            };
            let last = s.recent.back().copied();
            let t = last.map_or(started, |r| r.t);
            let (observed, expected) =
                last.map_or((f64::NAN, f64::NAN), |r| (r.value, f64::from(r.expected)));
            let def = &k.def;
            out.push(Transition {
                status: Status::Resolved,
                alert_id: id,
                kpi: def.name.clone(),
                labels: k.labels(&key),
                severity,
                escalated_from: None,
                direction,
                started_at: started,
                bucket_start: t,
                bucket_end: t + def.bucket,
                observed,
                expected,
                lower: f64::NAN,
                upper: f64::NAN,
                score: 0.0,
                deviation_pct: (expected != 0.0 && expected.is_finite())
                    .then(|| (observed - expected) / expected.abs() * 100.0),
                evidence: Evidence::bucket(t, t + def.bucket, None),
                description: Some(match &def.description {
                    Some(d) => format!("{d} ({why})"),
                    None => why.to_string(),
                }),
                runbook: def.runbook.clone(),
                dashboard: def.dashboard.clone(),
                recent: Vec::new(),
            });
        }
        out
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

    /// Judges one closed bucket alone (no peers); appends a transition to
    /// `out` if the series' alert state changes.
    pub fn judge(&mut self, b: &ClosedBucket, out: &mut Vec<Transition>) {
        self.kpis[b.kpi].judge_group(std::slice::from_ref(b), out);
    }

    /// Judges `buckets` (sorted by start, KPI and key, as the pipeline
    /// closes them) and appends their transitions to `out` in that order:
    /// the same as [`Engine::judge`] on each in turn.
    ///
    /// A burst of at least `PARALLEL_FROM` buckets is judged on two
    /// threads that take its KPIs in turn, largest first, from a shared
    /// queue: each KPI's series are judged in order on one thread, KPIs
    /// share no state, and the transitions are put back in bucket order.
    /// Taken in turn rather than split beforehand, because a KPI's cost
    /// per bucket depends on its aggregate and group (a split by bucket
    /// counts left one thread judging 1.6 times as long as the other in
    /// `benches/replay_throughput.sh`, perf). Bursts are what a
    /// partitioned backlog produces (a bucket closes only when the slowest
    /// partition has passed it, so most close at once when its next chunk
    /// arrives), and then the thread that receives from Kafka has little
    /// to do.
    pub fn judge_all(&mut self, buckets: &[ClosedBucket], out: &mut Vec<Transition>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Mutex, PoisonError};
        let mut groups = Vec::new();
        for_each_group(buckets, |kpi, group| groups.push((kpi, group)));
        let order = largest_first(self.kpis.len(), &groups);
        if buckets.len() < self.parallel_from || order.len() < 2 {
            for (kpi, group) in groups {
                self.kpis[kpi].judge_group(group, out);
            }
            return;
        }
        // Each KPI is taken from the queue once, so its lock is never
        // waited for; it only hands the `&mut` to whichever thread took it.
        let states: Vec<Mutex<&mut KpiState>> = self.kpis.iter_mut().map(Mutex::new).collect();
        let next = AtomicUsize::new(0);
        // The transitions one thread judged, each with the index of its
        // bucket in `buckets`.
        let judge_queue = || {
            let mut judged = Vec::new();
            let mut one = Vec::new();
            while let Some(&k) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                let mut state = states[k].lock().unwrap_or_else(PoisonError::into_inner);
                let mut at = 0;
                for (kpi, group) in &groups {
                    if *kpi == k {
                        state.judge_group(group, &mut one);
                        judged.extend(one.drain(..).map(|t| (at, t)));
                    }
                    at += group.len();
                }
            }
            judged
        };
        if self.helper.is_none() {
            self.helper = rayon_core::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|_| "kpiwatch-judge".into())
                .build()
                .map_err(|e| tracing::warn!(error = %e, "cannot start a judging thread"))
                .ok();
        }
        let (mut judged, mut theirs) = (Vec::new(), Vec::new());
        match &self.helper {
            // A panic on the helper is raised here when the scope ends.
            Some(helper) => helper.in_place_scope(|scope| {
                scope.spawn(|_| theirs = judge_queue());
                judged = judge_queue();
            }),
            // Without a second thread, this one empties the queue alone.
            None => judged = judge_queue(),
        }
        judged.append(&mut theirs);
        // Stable: a bucket's transitions come from one thread, in order.
        judged.sort_by_key(|(at, _)| *at);
        out.extend(judged.into_iter().map(|(_, t)| t));
    }
}

/// The KPIs that have buckets among `groups` (`(kpi, its buckets of one
/// start)`), most buckets first: the order in which [`Engine::judge_all`]'s
/// threads take them, so that the last one taken is a small one.
fn largest_first(kpis: usize, groups: &[(usize, &[ClosedBucket])]) -> Vec<usize> {
    let mut load = vec![0usize; kpis];
    for (kpi, group) in groups {
        load[*kpi] += group.len();
    }
    let mut order: Vec<usize> = (0..kpis).filter(|&k| load[k] > 0).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(load[k]));
    order
}

/// Calls `f` with each run of `buckets` that share a bucket start and a
/// KPI (the pipeline sorts closed buckets by start, KPI and key): a KPI's
/// series of one bucket, which peers are compared within.
fn for_each_group<'a>(buckets: &'a [ClosedBucket], mut f: impl FnMut(usize, &'a [ClosedBucket])) {
    let mut from = 0;
    while from < buckets.len() {
        let (kpi, start) = (buckets[from].kpi, buckets[from].start);
        let len = buckets[from..]
            .iter()
            .take_while(|b| b.kpi == kpi && b.start == start)
            .count();
        f(kpi, &buckets[from..from + len]);
        from += len;
    }
}

/// The aggregate a KPI model is built for; None for min and max, which run
/// the general detector set.
fn kind_of(def: &Kpi) -> Option<Kind> {
    match &def.measure {
        Measure::Ratio { .. } => Some(Kind::Ratio),
        Measure::Events { aggregate, .. } => match aggregate {
            Aggregate::Count => Some(Kind::Count),
            Aggregate::Sum(_) => Some(Kind::Sum),
            Aggregate::Avg(_) => Some(Kind::Avg),
            Aggregate::Distinct(_) => Some(Kind::Distinct),
            Aggregate::Min(_) | Aggregate::Max(_) => None,
        },
    }
}

/// What a judged bucket does to its series' alert.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Change {
    /// A new alert fires.
    Fire,
    /// The firing alert's evidence became rarer than its severity (the
    /// one before is kept): told as a firing transition of the same alert.
    Escalate(Severity),
    /// The firing alert resolves.
    Resolve,
}

/// A step a series' alert takes on a judged bucket.
#[derive(Debug, Clone, Copy)]
struct Step {
    change: Change,
    /// Start of the alert's anomalous run, epoch seconds.
    started: i64,
    /// Which way the series went.
    direction: Direction,
    /// The evidence the step is told with.
    decision: Decision,
}

/// The evidence that decided one bucket, in a direction.
#[derive(Debug, Clone, Copy)]
enum Decision {
    /// A model finding rarer than the alert level.
    Finding(Finding),
    /// A broken analyst rule.
    Rule(RuleBreak),
    /// A detector set's score, with its verdict.
    Score(Verdict),
}

impl KpiState {
    fn new_series(&self) -> SeriesState {
        let d = &self.def.detectors;
        let model = match self.kind {
            Some(kind) => Model::Kpi(KpiModel::new(KpiConfig {
                kind,
                bucket_width: self.def.bucket,
                seasonality: d.seasonality,
                min_volume: self.def.min_volume,
                threshold: d.threshold,
                week_over_week: d.week_over_week,
                estimate_rel_var: if kind == Kind::Distinct {
                    window::DISTINCT_REL_VAR
                } else {
                    0.0
                },
            })),
            None => Model::Set(DetectorSet::new(*d)),
        };
        SeriesState {
            model,
            recent: VecDeque::new(),
            lifecycle: Lifecycle::Normal { run: 0, first: 0 },
            in_calendar: false,
            muted_recorded: false,
        }
    }

    /// What the KPI's calendars do to the buckets starting at `start`.
    fn during(&self, start: i64) -> During {
        let uses = &self.def.calendars;
        if uses.is_empty() {
            return During::NONE;
        }
        let w = self.def.bucket;
        let index = |name: &str| uses.iter().position(|u| u.calendar.name == name);
        let effect = calendar::during(uses, start, start + w)
            .and_then(|(e, name)| index(name).map(|i| (e, i)));
        let ended = effect.is_none() && calendar::during(uses, start - w, start).is_some();
        During { effect, ended }
    }

    /// The alert level of one bucket during `d`: `widen` times rarer
    /// evidence inside a widening calendar.
    fn p_star_during(&self, d: During) -> f64 {
        match d.effect {
            Some((Effect::Widen(n), _)) => self.p_star() / n,
            _ => self.p_star(),
        }
    }

    /// Judges a KPI's buckets of one bucket start (one per series). For an
    /// additive grouped KPI with enough members, each series is also
    /// compared with the rest of its group, in which a member whose own
    /// evidence is anomalous counts at its expectation, and a sum's
    /// largest amount as an ordinary one: one member's incident, or its
    /// bulk order, must not make its peers look odd.
    fn judge_group(&mut self, group: &[ClosedBucket], out: &mut Vec<Transition>) {
        let during = group.first().map_or(During::NONE, |b| self.during(b.start));
        let peers = self
            .kind
            .is_some_and(|k| matches!(k, Kind::Count | Kind::Sum | Kind::Distinct))
            && !self.def.group_by.is_empty()
            && group.iter().filter(|b| b.value.is_some()).count() >= MIN_PEERS;
        if !peers {
            for b in group {
                if let Some(a) = self.assess(b, during, &mut None) {
                    self.judge_assessed(b, a, during, out);
                }
            }
            return;
        }
        // Assessed and judged in place: an assessment is a few hundred
        // bytes, and moving it through the vector and into the judge was a
        // tenth of replay's time in memcpy (perf).
        let mut assessed: Vec<Option<Assessed>> = vec![None; group.len()];
        for (b, slot) in group.iter().zip(assessed.iter_mut()) {
            self.assess(b, during, slot);
        }
        let p_star = self.p_star_during(during);
        let robust = |a: &Assessed| match &a.assessment {
            Some(x) if own_anomalous(x, p_star) => x.expected,
            Some(x) => x.for_peers,
            None => a.input.value,
        };
        let total: f64 = assessed.iter().flatten().map(robust).sum();
        for (b, a) in group.iter().zip(assessed.iter_mut()) {
            let Some(a) = a else {
                continue;
            };
            a.input.others = Some(total - robust(a));
            self.judge_assessed(b, a, during, out);
        }
    }

    /// The alert level of one bucket of one series, now.
    fn p_star(&self) -> f64 {
        self.def
            .alerting
            .level
            .p_star(self.def.bucket, self.series.len())
    }

    /// Looks up (or creates) the series of `b` and judges the bucket with
    /// its KPI model, into `slot`; None for a bucket without a value. The
    /// first bucket after a calendar starts windows and the anomalous run
    /// afresh, so no window reaches back into the calendar's buckets.
    fn assess<'a>(
        &mut self,
        b: &ClosedBucket,
        during: During,
        slot: &'a mut Option<Assessed>,
    ) -> Option<&'a mut Assessed> {
        let value = b.value?;
        let utc_offset = self.utc_offset(b.start);
        let input = Input {
            time: b.start,
            utc_offset,
            value,
            events: b.volume as f64,
            others: None,
            logs: b.logs,
        };
        // Looked up by `&str`, once: cloning the key for `entry` is an
        // atomic increment per judged bucket, which waits for every store
        // of the previous series' detectors to drain (perf put 70 % of
        // judge's own time on it); a new series is the rare case.
        let s = if let Some(s) = self.series.get_mut(&*b.key) {
            s
        } else {
            let state = self.new_series();
            self.series.entry(b.key.clone()).or_insert(state)
        };
        if during.effect.is_none() && (during.ended || s.in_calendar) {
            s.in_calendar = false;
            s.muted_recorded = false;
            if let Model::Kpi(model) = &mut s.model {
                model.forget_windows();
            }
            if let Lifecycle::Normal { run, .. } = &mut s.lifecycle {
                *run = 0;
            }
        }
        let assessed = slot.insert(Assessed {
            input,
            assessment: None,
        });
        if let Model::Kpi(model) = &s.model {
            model.assess_into(&assessed.input, &mut assessed.assessment);
        }
        Some(assessed)
    }

    /// Decides, learns and runs the lifecycle of one assessed bucket; one
    /// whose input knows the rest of its group is first compared with its
    /// peers.
    fn judge_assessed(
        &mut self,
        b: &ClosedBucket,
        assessed: &mut Assessed,
        during: During,
        out: &mut Vec<Transition>,
    ) {
        let p_star = self.p_star_during(during);
        let at = Judging::new(b, &self.def, &self.label_names, during, p_star);
        let s = self.series.get_mut(&*b.key).expect("series assessed");
        s.compare_with_peers(assessed);
        s.in_calendar = during.effect.is_some();
        let Some((decision, recent)) = s.decide_and_learn(&at, assessed) else {
            return;
        };
        if let Some(points) = &mut self.points {
            points.push(judged_point(&at, &s.model, &recent));
        }
        s.remember(recent, at.def.alerting.recent_buckets);
        if let Some(step) = s.advance(&at, decision, &recent, &mut self.muted) {
            out.push(s.announce(&at, step));
        }
    }
}

/// One bucket being judged, with what each step of judging it reads: its
/// KPI, the KPI's calendars at its start and the levels it is judged at.
struct Judging<'a> {
    b: &'a ClosedBucket,
    def: &'a Kpi,
    /// The KPI's label names, whose values the bucket's key holds.
    label_names: &'a [String],
    during: During,
    /// The alert level of this bucket, a widening calendar applied.
    p_star: f64,
    /// The level from which evidence is critical.
    critical_p: f64,
}

impl<'a> Judging<'a> {
    fn new(
        b: &'a ClosedBucket,
        def: &'a Kpi,
        label_names: &'a [String],
        during: During,
        p_star: f64,
    ) -> Self {
        let critical_p = def
            .alerting
            .critical
            .map_or(p_star / CRITICAL_RARER, tail_of_score);
        Judging {
            b,
            def,
            label_names,
            during,
            p_star,
            critical_p,
        }
    }

    /// The series' labels.
    fn labels(&self) -> BTreeMap<String, String> {
        labels_of(self.label_names, &self.b.key)
    }
}

impl SeriesState {
    /// Adds the evidence of its peers to the assessment of a bucket whose
    /// input knows the rest of its group.
    fn compare_with_peers(&self, assessed: &mut Assessed) {
        if let (Some(x), Model::Kpi(model), Some(_)) =
            (&mut assessed.assessment, &self.model, assessed.input.others)
        {
            model.add_peers(x, &assessed.input);
        }
    }

    /// Decides on a bucket and learns it, with the series' KPI model or
    /// detector set: the decision, and the bucket as the recent buckets
    /// keep it. None, and nothing learnt, for a KPI model's bucket without
    /// an assessment.
    fn decide_and_learn(
        &mut self,
        at: &Judging,
        assessed: &Assessed,
    ) -> Option<(Option<(Direction, Decision)>, Recent)> {
        let Assessed { input, assessment } = assessed;
        let firing = matches!(self.lifecycle, Lifecycle::Firing { .. });
        match (&mut self.model, assessment) {
            (Model::Kpi(model), Some(assessment)) => {
                Some(judge_with_model(model, at, input, assessment, firing))
            }
            (Model::Kpi(_), None) => None,
            (Model::Set(set), _) => Some(judge_with_set(set, at, input)),
        }
    }

    /// Adds `recent` as the newest of the series' recent buckets, dropping
    /// the oldest once there are `keep` (at least one: a resolution's
    /// figures are the last bucket's).
    fn remember(&mut self, recent: Recent, keep: usize) {
        if self.recent.len() >= keep.max(1) {
            self.recent.pop_front();
        }
        self.recent.push_back(recent);
    }

    /// Runs the series' lifecycle over a judged bucket: the step its alert
    /// takes, if any. A series without an alert counts its anomalous run
    /// and fires once it is long enough (or, during a muting calendar,
    /// records in `muted` the alert it would have fired); a firing alert
    /// resolves or escalates.
    fn advance(
        &mut self,
        at: &Judging,
        decision: Option<(Direction, Decision)>,
        recent: &Recent,
        muted: &mut Vec<Muted>,
    ) -> Option<Step> {
        match &mut self.lifecycle {
            Lifecycle::Normal { run, first } => {
                let (direction, evidence) = extend_run(run, first, &self.model, at, decision)?;
                let fire = Step {
                    change: Change::Fire,
                    started: *first,
                    direction,
                    decision: evidence,
                };
                self.fire_unless_muted(fire, at, recent.value, muted)
            }
            Lifecycle::Firing {
                started,
                severity,
                direction,
                claim,
                calm,
                ..
            } => {
                let (started, severity, direction) = (*started, *severity, *direction);
                if recovered(&self.model, *claim, started, direction, calm, decision, at) {
                    let decision = resolution(recent);
                    Some(Step {
                        change: Change::Resolve,
                        started,
                        direction,
                        decision,
                    })
                } else {
                    escalation(&self.model, severity, direction, decision, at).map(
                        |(direction, decision)| Step {
                            change: Change::Escalate(severity),
                            started,
                            direction,
                            decision,
                        },
                    )
                }
            }
        }
    }

    /// The alert `fire`, unless a muting calendar is under way: then it is
    /// kept for reports in `muted` instead, once per anomalous run, when it
    /// would have fired (the bucket's value is `value`).
    fn fire_unless_muted(
        &mut self,
        fire: Step,
        at: &Judging,
        value: f64,
        muted: &mut Vec<Muted>,
    ) -> Option<Step> {
        let Some((Effect::Mute, calendar)) = at.during.effect else {
            return Some(fire);
        };
        if !self.muted_recorded {
            self.muted_recorded = true;
            muted.push(muted_alert(at, calendar, &fire, value));
        }
        None
    }

    /// Takes `step` and tells it: the series' alert moves, and the
    /// transition carries the figures of its evidence (of the last bucket,
    /// for a resolution) and the recent buckets.
    fn announce(&mut self, at: &Judging, step: Step) -> Transition {
        let labels = at.labels();
        let id = match &self.lifecycle {
            Lifecycle::Firing { id, .. } => id.clone(),
            Lifecycle::Normal { .. } => alert_id(&at.def.name, &labels, step.started),
        };
        let figures = match step.change {
            Change::Fire | Change::Escalate(_) => figures(&step.decision, at.b, at.def, at.p_star),
            Change::Resolve => {
                let r = *self.recent.back().expect("this bucket");
                resolved_figures(&self.model, &r, at.b, at.def, at.p_star)
            }
        };
        let severity = match (&self.lifecycle, step.change) {
            (Lifecycle::Firing { severity, .. }, Change::Resolve) => *severity,
            _ => severity_of(&step.decision, at.critical_p),
        };
        self.enter(&step, &id, severity);
        let recent = recent_buckets(&self.model, &self.recent, at.p_star);
        transition(at, &step, id, labels, severity, figures, recent)
    }

    /// Moves the series' alert by `step`: a new one fires as `id` at
    /// `severity`, an escalated one is told at `severity` from now on, and
    /// a resolved one leaves the series normal, its windows started afresh
    /// so that those still holding the incident do not fire it again.
    fn enter(&mut self, step: &Step, id: &str, severity: Severity) {
        match step.change {
            Change::Fire => {
                self.lifecycle = Lifecycle::Firing {
                    id: id.to_owned(),
                    started: step.started,
                    severity,
                    direction: step.direction,
                    claim: claim_of(&step.decision),
                    calm: 0,
                };
            }
            // The claim (what resolving tests against) stays the one the
            // alert fired with: an escalation changes what is told, not
            // when the alert ends.
            Change::Escalate(_) => {
                if let Lifecycle::Firing { severity: told, .. } = &mut self.lifecycle {
                    *told = severity;
                }
            }
            Change::Resolve => {
                if let Model::Kpi(model) = &mut self.model {
                    model.forget_windows();
                }
                self.lifecycle = Lifecycle::Normal { run: 0, first: 0 };
            }
        }
    }
}

/// Decides on a bucket a KPI model assessed, and learns it: fully when it
/// is ordinary, with [`LEARN_WHILE_ANOMALOUS`] while it is anomalous or an
/// alert fires.
fn judge_with_model(
    model: &mut KpiModel,
    at: &Judging,
    input: &Input,
    assessment: &Assessment,
    firing: bool,
) -> (Option<(Direction, Decision)>, Recent) {
    let decision = decide(assessment, at.def.direction, at.p_star);
    trace_assessment(
        &at.def.name,
        at.b,
        input.value,
        assessment,
        model,
        at.p_star,
        firing,
    );
    let anomalous = own_anomalous(assessment, at.p_star);
    // A calendar's buckets teach nothing: next year's normal must not be
    // bent by this year's holiday.
    let weight = if at.during.effect.is_some() {
        0.0
    } else if anomalous || firing {
        LEARN_WHILE_ANOMALOUS
    } else {
        1.0
    };
    model.learn(input, assessment, weight);
    let recent = Recent::predicted(at.b.start, input.value, assessment);
    (decision, recent)
}

/// Scores a min or max bucket with the detector set, which learns it
/// unless a calendar is under way, and decides on it.
fn judge_with_set(
    set: &mut DetectorSet,
    at: &Judging,
    input: &Input,
) -> (Option<(Direction, Decision)>, Recent) {
    let obs = Observation {
        time: at.b.start,
        utc_offset: input.utc_offset,
        value: input.value,
    };
    let verdict = if at.during.effect.is_some() {
        set.score(&obs)
    } else {
        set.observe(&obs)
    };
    let judged = (at.b.volume as f64) >= at.def.min_volume;
    let anomalous = judged
        && !verdict.warming_up
        && tail_of_score(verdict.score) <= at.p_star
        && interested(at.def.direction, verdict.direction);
    let decision = anomalous.then_some((verdict.direction, Decision::Score(verdict)));
    (decision, Recent::banded(at.b.start, input.value, &verdict))
}

/// The bucket as a chart draws it, with the band of `recent` at the
/// bucket's alert level.
fn judged_point(at: &Judging, model: &Model, recent: &Recent) -> JudgedPoint {
    let (lower, upper) = recent_band(model, recent, at.p_star);
    JudgedPoint {
        kpi: at.b.kpi,
        key: at.b.key.clone(),
        start: at.b.start,
        value: recent.value,
        expected: recent.expected,
        lower: lower as f32,
        upper: upper as f32,
    }
}

/// Counts a judged bucket into the anomalous run of a series without an
/// alert (`run` buckets so far, the first starting at `first`): the
/// bucket's direction and evidence once the run is `fire_after` buckets
/// long. A bucket without a decision ends the run.
fn extend_run(
    run: &mut u32,
    first: &mut i64,
    model: &Model,
    at: &Judging,
    decision: Option<(Direction, Decision)>,
) -> Option<(Direction, Decision)> {
    // A window's (or the peers') evidence whose newest bucket is already
    // better explained by normal than by what the evidence claims: the
    // anomaly is over, and the window is still summing it. Firing now would
    // announce a drop that has ended (and resolve it a few buckets later).
    let Some((direction, evidence)) = decision.filter(|(_, e)| !stale_window(model, e)) else {
        *run = 0;
        return None;
    };
    if *run == 0 {
        *first = at.b.start;
    }
    *run += 1;
    (*run >= at.def.alerting.fire_after).then_some((direction, evidence))
}

/// Whether `e` is a window's evidence whose newest bucket is already
/// better explained by normal than by what the evidence claims: the window
/// still sums an anomaly that is over.
fn stale_window(model: &Model, e: &Decision) -> bool {
    matches!(e, Decision::Finding(f) if f.buckets > 1 && newest_looks_normal(model, f))
}

/// Whether a firing alert (started at `started`, going `direction`)
/// resolves with this bucket; `calm` counts its consecutive calm buckets.
///
/// A model's alert resolves once the last buckets are better explained by
/// normal than by what it claims, even while longer windows still hold the
/// incident's buckets (they would keep it firing for hours after the
/// recovery); a rule's or a score's after calm buckets. Only buckets since
/// the alert's first anomalous one count: a normal bucket from before the
/// incident would outweigh its first few and resolve an outage still under
/// way.
fn recovered(
    model: &Model,
    claim: Claim,
    started: i64,
    direction: Direction,
    calm: &mut u32,
    decision: Option<(Direction, Decision)>,
    at: &Judging,
) -> bool {
    let a = at.def.alerting;
    match (claim, model) {
        (Claim::Model { source, ratio }, Model::Kpi(model)) => {
            let this_bucket_still = decision.is_some_and(|(d, e)| {
                d == direction && matches!(e, Decision::Finding(f) if f.buckets == 1)
            });
            let since_start = (at.b.start - started) / at.def.bucket.max(1) + 1;
            let buckets =
                (a.resolve_after as usize).min(usize::try_from(since_start).unwrap_or(usize::MAX));
            !this_bucket_still && back_to_normal(model, source, ratio, buckets)
        }
        _ => {
            if decision.is_some_and(|(d, _)| d == direction) {
                *calm = 0;
            } else {
                *calm += 1;
            }
            *calm >= a.resolve_after
        }
    }
}

/// The decision a resolution carries: the last bucket against its
/// expectation, with no band and a score of 0.
fn resolution(recent: &Recent) -> Decision {
    Decision::Score(Verdict {
        expected: f64::from(recent.expected),
        lower: f64::NAN,
        upper: f64::NAN,
        score: 0.0,
        direction: Direction::of(recent.value, f64::from(recent.expected)),
        warming_up: false,
    })
}

/// The escalation this bucket's decision asks of a firing alert (announced
/// at `severity`, going `direction`), with its direction and evidence.
fn escalation(
    model: &Model,
    severity: Severity,
    direction: Direction,
    decision: Option<(Direction, Decision)>,
    at: &Judging,
) -> Option<(Direction, Decision)> {
    // Worse than announced: an escalation, told with the evidence that
    // raised it. Not from a window still summing buckets that are back to
    // normal (the rule that keeps such a window from firing), and not
    // during a muting calendar, which mutes every alert.
    let muted = matches!(at.during.effect, Some((Effect::Mute, _)));
    decision.filter(|(d, e)| {
        *d == direction
            && !muted
            && severity_of(e, at.critical_p) > severity
            && !stale_window(model, e)
    })
}

/// The record of the alert `fire` that a calendar (`calendar`, an index
/// into the KPI's calendars) muted at a bucket whose value is `value`.
fn muted_alert(at: &Judging, calendar: usize, fire: &Step, value: f64) -> Muted {
    let (observed, expected) = match fire.decision {
        Decision::Finding(f) => (f.observed(), f.expected()),
        Decision::Rule(r) => (value, r.reference),
        Decision::Score(v) => (value, v.expected),
    };
    Muted {
        kpi: at.def.name.clone(),
        labels: at.labels(),
        calendar: at.def.calendars[calendar].calendar.name.clone(),
        started_at: fire.started,
        bucket_start: at.b.start,
        direction: fire.direction,
        observed,
        expected,
    }
}

/// The transition that tells `step` of the alert `id`.
fn transition(
    at: &Judging,
    step: &Step,
    id: String,
    labels: BTreeMap<String, String>,
    severity: Severity,
    figures: Figures,
    recent: Vec<RecentBucket>,
) -> Transition {
    let (b, def) = (at.b, at.def);
    Transition {
        status: match step.change {
            Change::Fire | Change::Escalate(_) => Status::Firing,
            Change::Resolve => Status::Resolved,
        },
        alert_id: id,
        kpi: def.name.clone(),
        labels,
        severity,
        escalated_from: match step.change {
            Change::Escalate(from) => Some(from),
            Change::Fire | Change::Resolve => None,
        },
        direction: step.direction,
        started_at: step.started,
        bucket_start: b.start,
        bucket_end: b.start + def.bucket,
        observed: figures.observed,
        expected: figures.expected,
        lower: figures.lower,
        upper: figures.upper,
        score: figures.score,
        deviation_pct: (figures.expected != 0.0 && figures.expected.is_finite())
            .then(|| (figures.observed - figures.expected) / figures.expected.abs() * 100.0),
        evidence: figures.evidence,
        description: def.description.clone(),
        runbook: def.runbook.clone(),
        dashboard: def.dashboard.clone(),
        recent,
    }
}

/// Why a bucket did or did not alert, for an analyst tuning a KPI:
/// `RUST_LOG=kpiwatch::pipeline::engine=trace` logs every judged bucket.
fn trace_assessment(
    kpi: &str,
    b: &ClosedBucket,
    value: f64,
    assessment: &Assessment,
    model: &KpiModel,
    p_star: f64,
    firing: bool,
) {
    if !tracing::enabled!(tracing::Level::TRACE) {
        return;
    }
    let rarest = [Direction::Drop, Direction::Spike]
        .into_iter()
        .filter_map(|d| assessment.finding(d))
        .min_by(|x, y| x.p_adjusted().total_cmp(&y.p_adjusted()));
    let learnt = model.diagnostics();
    tracing::trace!(
        kpi,
        key = &*b.key,
        bucket = b.start,
        value,
        events = b.volume,
        expected = assessment.expected,
        sd = assessment.point.var.sqrt(),
        rel_vars = ?assessment.rel_vars(),
        day = ?assessment.day_factor(),
        ready = assessment.ready,
        p_star,
        firing,
        finding = ?rarest.map(|f| (f.source, f.buckets, f.p_adjusted(), f.observed(), f.expected())),
        level = learnt.level,
        phi = learnt.phi,
        kappa = learnt.kappa,
        kappa_hourly = learnt.kappa_hourly,
        bucket_noise = learnt.bucket_noise,
        shift = learnt.shift,
        typical_spread = learnt.typical_spread,
        typical_wander = learnt.typical_wander,
        "judged"
    );
}

/// A bucket as its KPI model judged it, before the engine decides.
#[derive(Clone, Copy)]
struct Assessed {
    input: Input,
    /// None for a detector set (min, max), which judges as it learns.
    assessment: Option<Assessment>,
}

/// Whether a member's own evidence is anomalous, in either direction.
fn own_anomalous(a: &Assessment, p_star: f64) -> bool {
    [Direction::Drop, Direction::Spike]
        .into_iter()
        .any(|d| a.finding(d).is_some_and(|f| f.p_adjusted() <= p_star))
}

/// The decision for one bucket of a KPI model: a broken rule first (an
/// analyst asked for it by name), else the rarest finding in a direction
/// the KPI cares about, if rarer than `p_star`.
fn decide(a: &Assessment, interest: Interest, p_star: f64) -> Option<(Direction, Decision)> {
    if let Some(rule) = a.rule.filter(|r| interested(interest, r.direction)) {
        return Some((rule.direction, Decision::Rule(rule)));
    }
    [Direction::Drop, Direction::Spike]
        .into_iter()
        .filter(|&d| interested(interest, d))
        .filter_map(|d| a.finding(d).map(|f| (d, *f)))
        .filter(|(_, f)| f.p_adjusted() <= p_star)
        .min_by(|x, y| x.1.p_adjusted().total_cmp(&y.1.p_adjusted()))
        .map(|(d, f)| (d, Decision::Finding(f)))
}

fn severity_of(d: &Decision, critical_p: f64) -> Severity {
    let p = match d {
        Decision::Finding(f) => f.p_adjusted(),
        Decision::Score(v) => tail_of_score(v.score),
        Decision::Rule(_) => return Severity::Warning,
    };
    if p <= critical_p {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

/// Whether the newest bucket of a KPI model's series is better explained
/// by normal than by the ratio to expected that finding `f` claims (the
/// test that resolves an alert, over one bucket).
fn newest_looks_normal(model: &Model, f: &Finding) -> bool {
    match (model, claim_of(&Decision::Finding(*f))) {
        (Model::Kpi(model), Claim::Model { source, ratio }) => {
            back_to_normal(model, source, ratio, 1)
        }
        _ => false,
    }
}

/// Whether the last `buckets` buckets are better explained by normal than
/// by `ratio` times expected (against the series' own model, its peers or
/// its typical value): the test that resolves a model's alert.
fn back_to_normal(model: &KpiModel, source: Source, ratio: f64, buckets: usize) -> bool {
    model.recovery(source, ratio, buckets) > 0.0
}

fn claim_of(d: &Decision) -> Claim {
    match d {
        Decision::Finding(f) => Claim::Model {
            source: f.source,
            ratio: if f.expected() > 0.0 {
                f.observed() / f.expected()
            } else {
                1.0
            },
        },
        _ => Claim::Calm,
    }
}

/// A transition's figures: what its evidence observed and expected, the
/// band the alert level accepts, its score and the evidence itself.
struct Figures {
    observed: f64,
    expected: f64,
    lower: f64,
    upper: f64,
    score: f64,
    evidence: Evidence,
}

fn figures(d: &Decision, b: &ClosedBucket, def: &Kpi, p_star: f64) -> Figures {
    let end = b.start + def.bucket;
    match d {
        Decision::Finding(f) => {
            let (lower, upper) = f.band(p_star);
            let p = f.p_adjusted();
            let from = end - i64::from(f.buckets) * def.bucket;
            let kind = match (f.source, f.buckets) {
                (Source::Peers, _) => EvidenceKind::Peers,
                (Source::Typical, _) => EvidenceKind::Typical,
                (Source::Own, 1) => EvidenceKind::Bucket,
                (Source::Own, _) => EvidenceKind::Window,
            };
            Figures {
                observed: f.observed(),
                expected: f.expected(),
                lower,
                upper,
                score: score_of_tail(p),
                evidence: Evidence {
                    kind,
                    from,
                    to: end,
                    buckets: f.buckets,
                    p: Some(p),
                    rule: None,
                    share: f.share.map(|(observed, usual)| Share { observed, usual }),
                },
            }
        }
        Decision::Rule(r) => {
            let (lower, upper) = match r.direction {
                Direction::Drop => (r.limit, f64::INFINITY),
                _ => (f64::NEG_INFINITY, r.limit),
            };
            let (lower, upper) = match (r.kind, def.detectors.threshold) {
                (RuleKind::Min | RuleKind::Max, Some(t)) => (
                    t.min.unwrap_or(f64::NEG_INFINITY),
                    t.max.unwrap_or(f64::INFINITY),
                ),
                _ => (lower, upper),
            };
            Figures {
                observed: b.value.unwrap_or(f64::NAN),
                expected: r.reference,
                lower,
                upper,
                score: 1.0,
                evidence: Evidence {
                    kind: EvidenceKind::Rule,
                    from: b.start,
                    to: end,
                    buckets: 1,
                    p: None,
                    rule: Some(Rule {
                        kind: match r.kind {
                            RuleKind::Min => crate::alert::RuleKind::Min,
                            RuleKind::Max => crate::alert::RuleKind::Max,
                            RuleKind::WeekOverWeek => crate::alert::RuleKind::WeekOverWeek,
                        },
                        limit: r.limit,
                    }),
                    share: None,
                },
            }
        }
        Decision::Score(v) => {
            let p = tail_of_score(v.score);
            let (lower, upper) = set_band(v, p_star);
            Figures {
                observed: b.value.unwrap_or(f64::NAN),
                expected: v.expected,
                lower,
                upper,
                score: v.score,
                evidence: Evidence::bucket(b.start, end, Some(p)),
            }
        }
    }
}

/// A detector set's band widened or narrowed to the alert level: its band
/// covers `band_coverage` of normal values; the alert level's covers all
/// but `p_star`. Approximate (a normal scale), and only for min and max.
fn set_band(v: &Verdict, p_star: f64) -> (f64, f64) {
    if !(v.lower.is_finite() && v.upper.is_finite()) {
        return (v.lower, v.upper);
    }
    let z_band = kpi::tails::normal_quantile_upper(0.0005);
    let sd = (v.upper - v.lower) / (2.0 * z_band);
    let z = kpi::tails::normal_quantile_upper(p_star / 2.0);
    (v.expected - z * sd, v.expected + z * sd)
}

/// The figures of a resolution: the last bucket, inside its band.
fn resolved_figures(
    model: &Model,
    r: &Recent,
    b: &ClosedBucket,
    def: &Kpi,
    p_star: f64,
) -> Figures {
    let band = recent_band(model, r, p_star);
    let end = b.start + def.bucket;
    Figures {
        observed: r.value,
        expected: f64::from(r.expected),
        lower: band.0,
        upper: band.1,
        score: 0.0,
        evidence: Evidence::bucket(b.start, end, None),
    }
}

/// The point band of a recent bucket at the alert level: the KPI model's
/// one-bucket test level (the alert level shared over its windows).
fn recent_band(model: &Model, r: &Recent, p_star: f64) -> (f64, f64) {
    match (model, r.spread) {
        (Model::Kpi(m), Spread::Predictive { var, rate_var }) => {
            if !(var.is_finite() && var > 0.0) {
                return (f64::NAN, f64::NAN);
            }
            let noise = f64::from(var) - f64::from(rate_var);
            let predictive = Predictive {
                mean: f64::from(r.expected),
                var: f64::from(var),
                rate_var: f64::from(rate_var),
                heavy: noise.max(0.0) * m.heavy_ratio(),
                shape: m.shape(),
            };
            let alpha = p_star / kpi::WINDOWS.len() as f64;
            (predictive.lower_edge(alpha), predictive.upper_edge(alpha))
        }
        (Model::Set(_), Spread::Band { lower, upper }) => set_band(
            &Verdict {
                expected: f64::from(r.expected),
                lower: f64::from(lower),
                upper: f64::from(upper),
                score: 0.0,
                direction: Direction::None,
                warming_up: false,
            },
            p_star,
        ),
        _ => (f64::NAN, f64::NAN),
    }
}

/// The recent buckets as a chart shows them: each with its band at the
/// alert level of now, and marked anomalous when outside it.
fn recent_buckets(model: &Model, recent: &VecDeque<Recent>, p_star: f64) -> Vec<RecentBucket> {
    recent
        .iter()
        .map(|r| {
            let (lower, upper) = recent_band(model, r, p_star);
            RecentBucket {
                t: r.t,
                value: r.value,
                expected: r.expected,
                lower: lower as f32,
                upper: upper as f32,
                anomalous: r.value < lower || r.value > upper,
            }
        })
        .collect()
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
                level: crate::config::model::AlertLevel::Score(0.5),
                critical: Some(0.75),
                fire_after: 2,
                resolve_after: 2,
                recent_buckets: 4,
            },
            calendars: Vec::new(),
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
                        logs: None,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn judging_a_burst_on_two_threads_gives_what_judging_step_by_step_gives() {
        let kpis = [kpi("a"), kpi("b"), kpi("c")];
        let all = buckets();
        // One bucket start at a time (12 buckets: 3 KPIs x 4 series), on
        // one thread.
        let mut one_by_one = Engine::new(&kpis);
        one_by_one.parallel_from = usize::MAX;
        let mut expected = Vec::new();
        for step in all.chunks(12) {
            one_by_one.judge_all(step, &mut expected);
        }
        let mut split = Engine::new(&kpis);
        split.parallel_from = 0;
        let mut got = Vec::new();
        // Bursts of uneven sizes, cut at bucket boundaries in time.
        for burst in all.chunks(12 * 37) {
            split.judge_all(burst, &mut got);
        }
        assert!(expected.len() > 50, "{} transitions", expected.len());
        // As JSON: a band not known yet is NaN, which equals nothing.
        let json = |t: &[Transition]| serde_json::to_string(t).expect("transitions serialise");
        assert_eq!(json(&got), json(&expected));
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
    fn tapped_points_are_every_judged_bucket_with_its_value_and_the_same_on_two_threads() {
        let kpis = [kpi("a"), kpi("b"), kpi("c")];
        let all = buckets();
        let points = |parallel_from: usize| {
            let mut e = Engine::new(&kpis);
            e.parallel_from = parallel_from;
            e.tap_points();
            let mut out = Vec::new();
            let mut points = Vec::new();
            for burst in all.chunks(12 * 37) {
                e.judge_all(burst, &mut out);
                points.extend(e.take_points());
            }
            points.sort_by(|a, b| (a.kpi, &a.key, a.start).cmp(&(b.kpi, &b.key, b.start)));
            points
        };
        let one = points(usize::MAX);
        let judged = all.iter().filter(|b| b.value.is_some()).count();
        assert_eq!(one.len(), judged);
        for p in &one {
            let b = all
                .iter()
                .find(|b| (b.kpi, &b.key, b.start) == (p.kpi, &p.key, p.start))
                .expect("the point's bucket");
            assert_eq!(Some(p.value), b.value);
            assert!(p.expected.is_finite());
        }
        // Bands where the model knows its spread, lower below upper.
        assert!(one.iter().any(|p| p.lower.is_finite() && p.lower < p.upper));
        let json = |p: &[JudgedPoint]| format!("{p:?}");
        assert_eq!(json(&points(0)), json(&one));
        // Untapped, nothing is kept.
        let mut e = Engine::new(&kpis);
        e.judge_all(&all[..12], &mut Vec::new());
        assert!(e.take_points().is_empty());
    }

    #[test]
    fn a_burst_s_kpis_are_taken_largest_first_and_only_those_with_buckets() {
        let b = |kpi, start| ClosedBucket {
            kpi,
            key: SeriesKey::from(""),
            start,
            value: Some(1.0),
            volume: 1,
            logs: None,
        };
        // KPI 3 has the most buckets over two starts, KPI 1 none.
        let burst: Vec<_> = [
            (0, 0),
            (2, 0),
            (2, 0),
            (3, 0),
            (3, 0),
            (0, 300),
            (3, 300),
            (3, 300),
        ]
        .into_iter()
        .map(|(kpi, start)| b(kpi, start))
        .collect();
        let mut groups = Vec::new();
        for_each_group(&burst, |kpi, group| groups.push((kpi, group)));
        assert_eq!(groups.len(), 5);
        assert_eq!(largest_first(4, &groups), [3, 0, 2]);
    }

    /// A count series at about 100 a bucket for two days, then `last`.
    fn model_after(last: f64) -> Model {
        let mut model = KpiModel::new(KpiConfig {
            kind: Kind::Count,
            bucket_width: 300,
            seasonality: detectors::Seasonality::None,
            min_volume: 0.0,
            threshold: None,
            week_over_week: None,
            estimate_rel_var: 0.0,
        });
        let values = (0..576).map(|i| 95.0 + f64::from(i % 11)).chain([last]);
        for (i, value) in values.enumerate() {
            let input = Input {
                time: 1_705_276_800 + 300 * i as i64,
                utc_offset: 0,
                value,
                events: value,
                others: None,
                logs: None,
            };
            let a = model.assess(&input);
            model.learn(&input, &a, 1.0);
        }
        Model::Kpi(model)
    }

    /// Six buckets that together fell 60 %: what a window test reports.
    fn window_drop() -> Finding {
        Finding {
            source: Source::Own,
            p: 1e-12,
            tests: 11,
            buckets: 6,
            total: 240.0,
            predictive: Predictive {
                mean: 600.0,
                var: 600.0,
                rate_var: 0.0,
                heavy: 0.0,
                shape: kpi::tails::Shape::ScaledPoisson,
            },
            divisor: 1.0,
            share: None,
        }
    }

    /// A checkout count without seasonality at `level` a bucket (give or
    /// take 2) for three days, then 0 during `outage` (bucket numbers),
    /// then back: its transitions, with the bucket number of each.
    fn checkouts_with_outage(level: f64, outage: std::ops::Range<i64>) -> Vec<(i64, Transition)> {
        let mut def = kpi("checkouts");
        def.group_by = Vec::new();
        def.detectors.threshold = None;
        def.detectors.seasonality = detectors::Seasonality::None;
        def.alerting = Alerting {
            level: crate::config::model::AlertLevel::Budget {
                per_second: 1.0 / (30.0 * 86_400.0),
            },
            critical: None,
            fire_after: 1,
            resolve_after: 3,
            recent_buckets: 4,
        };
        let mut engine = Engine::new(&[def]);
        let t0 = 1_704_067_200;
        let mut out = Vec::new();
        for step in 0..outage.end + 16 {
            let value = if outage.contains(&step) {
                0.0
            } else {
                level - 2.0 + ((step * 7) % 5) as f64
            };
            engine.judge(
                &ClosedBucket {
                    kpi: 0,
                    key: SeriesKey::from(""),
                    start: t0 + 300 * step,
                    value: Some(value),
                    volume: value as u64,
                    logs: None,
                },
                &mut out,
            );
        }
        out.into_iter()
            .map(|t| ((t.bucket_start - t0) / 300, t))
            .collect()
    }

    #[test]
    fn an_outage_stays_firing_while_the_kpi_is_at_zero_and_resolves_once_it_is_back() {
        // A count at about 20 a bucket for three days, then 0 for 20
        // minutes, then back. The alert fires on the first zero bucket;
        // the normal buckets from before the outage must not count as
        // evidence of its recovery (they once resolved it one bucket
        // later, still at zero, and it fired again). The bucket before
        // the outage is a busy one (22), as chance has it in real data.
        let outage = 863..867;
        let steps: Vec<(Status, i64)> = checkouts_with_outage(20.0, outage.clone())
            .iter()
            .map(|(i, t)| (t.status, *i))
            .collect();
        assert_eq!(
            steps.first(),
            Some(&(Status::Firing, outage.start)),
            "{steps:?}"
        );
        assert_eq!(steps.len(), 2, "one alert, resolved once: {steps:?}");
        assert_eq!(steps[1].0, Status::Resolved);
        assert!(
            steps[1].1 >= outage.end,
            "resolved while still at zero: {steps:?}"
        );
    }

    #[test]
    fn an_outage_that_fires_as_warning_escalates_once_to_critical_as_the_same_alert() {
        // About 16 checkouts a bucket, then none for seven buckets: the
        // first empty bucket is "about 1 in a million" (a warning at this
        // budget), two empty buckets together are far past critical.
        let outage = 863..870;
        let got = checkouts_with_outage(16.0, outage.clone());
        let steps: Vec<(i64, Status, Severity, Option<Severity>)> = got
            .iter()
            .map(|(i, t)| (*i, t.status, t.severity, t.escalated_from))
            .collect();
        assert_eq!(
            steps[..2],
            [
                (outage.start, Status::Firing, Severity::Warning, None),
                (
                    outage.start + 1,
                    Status::Firing,
                    Severity::Critical,
                    Some(Severity::Warning)
                ),
            ],
            "{steps:?}"
        );
        assert_eq!(
            steps.len(),
            3,
            "one escalation while it stays critical: {steps:?}"
        );
        let (fired, escalated, resolved) = (&got[0].1, &got[1].1, &got[2].1);
        assert!(fired.starts_alert() && !fired.is_escalation());
        assert!(escalated.is_escalation() && !escalated.starts_alert());
        assert_eq!(escalated.alert_id, fired.alert_id);
        assert_eq!(escalated.started_at, fired.started_at);
        // Its figures are those of the evidence that escalated it: both
        // empty buckets together, outside their band, rarer than critical.
        assert_eq!(escalated.evidence.kind, EvidenceKind::Window);
        assert_eq!(escalated.evidence.buckets, 2);
        assert_eq!(
            (escalated.evidence.from, escalated.evidence.to),
            (fired.bucket_start, escalated.bucket_end)
        );
        assert_eq!(escalated.observed, 0.0);
        assert!(escalated.observed < escalated.lower, "{escalated:?}");
        assert!(escalated.evidence.p < fired.evidence.p);
        assert!(escalated.score > fired.score);
        // The resolution keeps the worst severity, and is no escalation.
        assert_eq!(
            (resolved.status, resolved.severity, resolved.escalated_from),
            (Status::Resolved, Severity::Critical, None)
        );
        assert_eq!(resolved.alert_id, fired.alert_id);
    }

    #[test]
    fn an_outage_critical_from_its_first_bucket_does_not_escalate() {
        let got = checkouts_with_outage(20.0, 863..870);
        let steps: Vec<(Status, Severity, Option<Severity>)> = got
            .iter()
            .map(|(_, t)| (t.status, t.severity, t.escalated_from))
            .collect();
        assert_eq!(
            steps,
            [
                (Status::Firing, Severity::Critical, None),
                (Status::Resolved, Severity::Critical, None),
            ]
        );
    }

    #[test]
    fn a_window_whose_newest_bucket_is_back_to_normal_does_not_fire_and_one_still_low_does() {
        assert!(newest_looks_normal(&model_after(101.0), &window_drop()));
        assert!(!newest_looks_normal(&model_after(38.0), &window_drop()));
    }
}
