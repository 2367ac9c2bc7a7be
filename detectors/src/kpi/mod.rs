//! The model of a business KPI series that knows its aggregate: what the
//! streaming pipeline runs for count, sum, avg, ratio and distinct KPIs.
//!
//! # Layout
//!
//! - [`profile::Profile`] — the expected value: level × daily × weekday ×
//!   hour-of-week factors in local time, each with its precision.
//! - [`noise::Noise`] — the variance around it: noise in the aggregate's
//!   own unit (Poisson for counts, amounts' spread for sums, a mean of `n`
//!   values for averages, binomial-like for ratios) plus relative model
//!   error, both learnt.
//! - [`tails`] — one-sided tail probabilities (scaled Poisson or normal)
//!   and their inverses, the bands.
//! - [`typical`] — what one event of a sum or an average is usually worth
//!   (its values' geometric mean); [`amounts`] — how far its few largest
//!   values lift its upper tail.
//! - [`KpiModel`] (here) — per bucket, [`KpiModel::assess`] judges the
//!   bucket and the windows ending with it, against the series' own model
//!   and against its peers; [`KpiModel::learn`] folds the bucket in, with a
//!   weight the caller chooses (small while the bucket is anomalous or an
//!   alert fires, so a baseline does not learn its incident).
//!
//! # Evidence
//!
//! Every test is one-sided and gives a tail probability under the model of
//! normal; a finding is the test with the smallest probability in each
//! direction, together with how many tests were looked at (the caller
//! multiplies, Bonferroni, before comparing with its alert level):
//!
//! - **windows of the own model**: the total of the last 1, 2, 3, 4, 6, 8,
//!   12, 16, 24, 36 and 48 buckets against its expected total. One bucket is
//!   a point anomaly; longer windows catch a sustained 30 % drop whose
//!   buckets each look plausible, and a quiet series stopping (three empty
//!   buckets where one event each was expected are as rare as e^-3, ten as
//!   e^-10). The expectation is the profile's times **today's factor**:
//!   days differ as a whole (a busy Monday), every bucket of a day shares
//!   that, so the day's ordinary buckets so far say how the rest of it
//!   stands ([`KpiModel::day_factor`]). Its remaining uncertainty is shared
//!   by all buckets of a window, and the model error particular to an hour
//!   (a shape drawn too flat, learnt from whole hours: see [`noise`]) is
//!   averaged over the hours a window spans, so a long window is not more
//!   confident than the profile is.
//! - **windows against peers**: for a series of a grouped additive KPI, its
//!   value against its usual ratio to the rest of its group. A node making
//!   40 % fewer euros than its peers while traffic as a whole is unusual
//!   stands out here, where its own seasonal model is uncertain. The
//!   ratio's error is learnt from whole days and whole hours: a member
//!   whose share moves with the time of day (its customers in another
//!   time zone, mobile in the evening) has a steady daily share and hours
//!   that are not, and is compared within what its hours show.
//! - **a long empty run**: a count series at zero for longer than the
//!   longest window, judged as one window since the run began.
//! - **absence during warm-up**: before a day has been seen no seasonal
//!   evidence is used, but a count series that sits at zero where even the
//!   quietest hour seen so far had events is judged, so a series that stops
//!   on its first day is still reported.
//! - **rules**: static `min`/`max` and week-over-week, from the first
//!   bucket, reported with their limit.
//!
//! Windows only cover buckets judged after warm-up, and only those with at
//! least `min_volume` events (observed or expected) are tested.

pub mod amounts;
pub mod noise;
pub mod profile;
pub mod shares;
pub mod tails;
pub mod typical;
mod windows;

use serde::{Deserialize, Serialize};

use crate::tail::EmpiricalTail;
use crate::threshold::StaticThreshold;
use crate::wow::WeekOverWeek;
use crate::{Detector, Direction, Observation, Seasonality};

use amounts::Amounts;
use noise::Noise;
use profile::{Position, Profile};
use shares::HourShares;
use tails::{Predictive, Shape};
use typical::{LogSums, Typical};
use windows::WindowSums;

/// Window lengths tested, in buckets.
pub const WINDOWS: [usize; 11] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 36, 48];
/// Buckets remembered: the longest window.
pub const SPAN: usize = 48;
/// Below this many standard deviations no test can come near an alerting
/// level (one-sided p > 0.006, before multiplying by the tests), and the
/// exact tail is not computed.
const Z_GATE: f64 = 2.5;
/// Residuals are clipped at this many standard deviations before they are
/// learnt.
const LEARN_CLIP: f64 = 4.0;
/// Seconds of a series seen before its seasonal evidence counts.
pub const READY_AFTER: i64 = 86_400;
/// Buckets seen before evidence counts for a series without seasonality.
const READY_AFTER_BUCKETS: u32 = 24;
/// The noise is learnt only from buckets whose profile uncertainty is at
/// most this share of their noise.
const NOISE_GATE: f64 = 0.2;
/// Forgetting of the noise model, in days of buckets.
const NOISE_MEMORY_DAYS: f64 = 14.0;
/// The calibration tails of sums and averages: first bin edge (in
/// standard deviations), memory in days, pseudo-observations of the model's
/// own tail.
const TAIL_ORIGIN: f64 = 0.25;
const TAIL_MEMORY_DAYS: f64 = 14.0;
const TAIL_PRIOR: f64 = 10.0;
/// Least events behind a tested mean or ratio.
const MIN_EVENTS: f64 = 10.0;
/// Forgetting of the ratio to peers, in days of buckets.
const PEER_MEMORY_DAYS: f64 = 3.0;
/// Forgetting of the typical value's mean, in days of buckets: three days
/// hold thousands of events even at two a bucket, and follow prices that
/// change. Its spread and wander are learnt over [`NOISE_MEMORY_DAYS`]
/// (see [`typical::Typical::learn`]).
const TYPICAL_MEMORY_DAYS: f64 = 3.0;

/// What the series aggregates; decides its noise and its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Events counted.
    Count,
    /// A field summed (amounts).
    Sum,
    /// A field averaged over the bucket's events.
    Avg,
    /// One count (or sum) divided by another, per bucket.
    Ratio,
    /// Distinct values of a field (approximate).
    Distinct,
}

impl Kind {
    fn shape(self, negative_seen: bool) -> Shape {
        match self {
            Kind::Avg if negative_seen => Shape::Normal,
            Kind::Avg => Shape::LogNormal,
            Kind::Sum if negative_seen => Shape::Normal,
            Kind::Sum => Shape::Compound,
            _ => Shape::ScaledPoisson,
        }
    }

    /// Whether a bucket's weight in windows is its events (averages and
    /// ratios: a window's value is the total over its events) or 1.
    fn weighs_by_events(self) -> bool {
        matches!(self, Kind::Avg | Kind::Ratio)
    }

    /// Whether an empty run is an outage to judge (the value is 0 when no
    /// events arrive).
    fn counts_events(self) -> bool {
        matches!(self, Kind::Count | Kind::Sum | Kind::Distinct)
    }

    /// Whether peers' totals make sense: the group's values add up.
    fn additive(self) -> bool {
        matches!(self, Kind::Count | Kind::Sum | Kind::Distinct)
    }

    /// Least dispersion: Poisson's for counts and distinct counts (each of
    /// a large population of users or items shows up in a bucket rarely
    /// and on its own: a distinct count steadier than Poisson needs most of
    /// the population present in every bucket); for other aggregates a
    /// hundredth of the first guess (a sum's amounts, an average's values
    /// can be steadier than guessed, but not without limit).
    fn phi_min(self, prior: f64) -> f64 {
        match self {
            Kind::Count | Kind::Distinct => 1.0,
            _ => 0.01 * prior,
        }
    }

    /// The noise unit of a bucket with expected value `mu` over `n` events.
    #[inline]
    fn unit(self, mu: f64, n: f64) -> f64 {
        match self {
            Kind::Count | Kind::Sum | Kind::Distinct => mu,
            Kind::Avg => 1.0 / n.max(1.0),
            Kind::Ratio => mu / n.max(1.0),
        }
    }
}

/// What a [`KpiModel`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KpiConfig {
    /// The aggregate.
    pub kind: Kind,
    /// Width of one bucket in seconds.
    pub bucket_width: i64,
    /// Which seasonal factors to learn (`Auto` and `Weekly`: all).
    pub seasonality: Seasonality,
    /// Windows (and buckets) with fewer events than this, observed and
    /// expected, are not tested.
    pub min_volume: f64,
    /// Static min/max rule.
    pub threshold: Option<StaticThreshold>,
    /// Week-over-week rule, largest tolerated change as a fraction.
    pub week_over_week: Option<f64>,
    /// Relative variance of each value's own estimation error, independent
    /// from bucket to bucket: 0 for exact values; for a distinct count
    /// estimated by a HyperLogLog sketch of `m` registers, `1.04² / m`
    /// (its standard error). It adds `estimate_rel_var × value²` to a
    /// bucket's noise, which no dispersion of counts describes: at ten
    /// thousand users a 4,096-register sketch errs by ~1.5 %, more than
    /// Poisson's 1 %, and a dispersion fitted over the day's quiet and busy
    /// hours alike underestimated the busy ones.
    #[serde(default)]
    pub estimate_rel_var: f64,
}

/// One closed bucket of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Input {
    /// Bucket start, epoch seconds.
    pub time: i64,
    /// Offset of the series' local time from UTC at `time`, seconds.
    pub utc_offset: i32,
    /// The aggregate.
    pub value: f64,
    /// Events behind it (for a ratio: the denominator).
    pub events: f64,
    /// The sum of the other series of the group in the same bucket, for
    /// peer comparison (None: not grouped, or fewer than two peers).
    pub others: Option<f64>,
    /// For a sum or an average: its values' logarithms, when they were all
    /// positive (the typical-value test; None otherwise, and for other
    /// aggregates).
    pub logs: Option<LogSums>,
}

impl Input {
    fn local_time(&self) -> i64 {
        self.time + i64::from(self.utc_offset)
    }
}

/// Where a finding's evidence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// The series against its own model: one bucket (`buckets` = 1) or a
    /// window.
    Own,
    /// The series against its peers.
    Peers,
    /// A sum's or an average's typical value per event, the geometric mean
    /// of its events' values, against what one event is usually worth
    /// (see [`typical`]): a fault that changes every amount by one factor.
    Typical,
}

/// The strongest evidence in one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finding {
    /// Own model or peers.
    pub source: Source,
    /// One-sided tail probability of this test.
    pub p: f64,
    /// Tests looked at in this direction: the caller's Bonferroni factor.
    pub tests: u32,
    /// Buckets the test covers, ending with the bucket assessed.
    pub buckets: u32,
    /// Observed total of the window (for averages and ratios: the sum over
    /// events, see `divisor`; for the typical value: the sum of the
    /// values' logarithms, over events).
    pub total: f64,
    /// Predictive distribution of that total under normal.
    pub predictive: Predictive,
    /// Divides totals into the KPI's unit for people: events for averages,
    /// ratios and the typical value, buckets for distinct counts, 1 for
    /// counts and sums.
    pub divisor: f64,
    /// Share of the group during the window, and the usual share (peers).
    pub share: Option<(f64, f64)>,
}

impl Finding {
    /// `p` times the tests looked at, at most 1.
    pub fn p_adjusted(&self) -> f64 {
        (self.p * f64::from(self.tests)).min(1.0)
    }

    /// The observed value, in the KPI's unit (for the typical value: the
    /// geometric mean of the window's values, per event).
    pub fn observed(&self) -> f64 {
        self.in_unit(self.total)
    }

    /// The expected value, in the KPI's unit.
    pub fn expected(&self) -> f64 {
        self.in_unit(self.predictive.mean)
    }

    /// The band a test at adjusted level `p_star` accepts, in the KPI's
    /// unit: a value outside it has `p_adjusted() <= p_star`.
    pub fn band(&self, p_star: f64) -> (f64, f64) {
        let alpha = p_star / f64::from(self.tests.max(1));
        (
            self.in_unit(self.predictive.lower_edge(alpha)),
            self.in_unit(self.predictive.upper_edge(alpha)),
        )
    }

    /// A total of the test in the KPI's unit: divided by `divisor`, and
    /// for the typical value (a mean of logarithms) exponentiated, which
    /// keeps the order: a value outside the band in the test is outside it
    /// in the unit.
    fn in_unit(&self, total: f64) -> f64 {
        let per = total / self.divisor;
        if self.source == Source::Typical {
            per.exp()
        } else {
            per
        }
    }
}

/// Which analyst rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// Below `min`.
    Min,
    /// Above `max`.
    Max,
    /// Beyond the week-over-week change.
    WeekOverWeek,
}

/// A broken analyst rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleBreak {
    /// Which rule.
    pub kind: RuleKind,
    /// The limit crossed.
    pub limit: f64,
    /// The reference value (last week's, for week-over-week; the limit for
    /// static rules).
    pub reference: f64,
    /// Which way.
    pub direction: Direction,
}

/// The judgement of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    /// Expected value of the bucket (the value itself before anything was
    /// learnt).
    pub expected: f64,
    /// Predictive distribution of the bucket, in the KPI's unit.
    pub point: Predictive,
    /// Whether seasonal evidence counts yet (a day seen).
    pub ready: bool,
    /// Strongest evidence of a drop.
    pub drop: Option<Finding>,
    /// Strongest evidence of a spike.
    pub spike: Option<Finding>,
    /// A broken rule.
    pub rule: Option<RuleBreak>,
    /// What the bucket adds to the rest of its group's total, for its
    /// peers: its value, with its largest value counted as an ordinary
    /// one for a sum of positive amounts. A node that takes a bulk order
    /// does not make each of its peers look short of it.
    pub for_peers: f64,
    at: Position,
    rel_var: f64,
    unit: f64,
    noise_var: f64,
    peer: Option<(f64, f64)>,
    /// The part of `rel_var` particular to the hour.
    rel_hourly: f64,
    /// Today's factor the expectation was multiplied by (see
    /// [`KpiModel::day_factor`]), and its relative variance.
    day: f64,
    day_var: f64,
    /// Tests looked at so far, drops and spikes.
    tests: [u32; 2],
}

impl Assessment {
    /// Gives each finding the number of tests it counts against: half the
    /// windows looked at in its direction. Nested windows of lengths
    /// growing by a third to a half share most of their buckets, and the
    /// own and peer tests see the same values; counted as independent,
    /// a scan of 22 windows demanded evidence twice as strong as its false
    /// alerts warrant (measured on the scenario suite's incident-free
    /// weeks: docs/tuning-log.md).
    fn settle_tests(&mut self) {
        let tests = self.tests;
        for (f, t) in [(&mut self.drop, tests[0]), (&mut self.spike, tests[1])] {
            if let Some(f) = f {
                f.tests = t.div_ceil(2).max(1);
            }
        }
    }

    /// Today's factor in the expectation, and its relative variance.
    pub fn day_factor(&self) -> (f64, f64) {
        (self.day, self.day_var)
    }

    /// The expectation's relative variance: (shared by a window, particular to the hour).
    pub fn rel_vars(&self) -> (f64, f64) {
        (self.rel_var - self.rel_hourly, self.rel_hourly)
    }

    /// The finding in direction `d`.
    pub fn finding(&self, d: Direction) -> Option<&Finding> {
        match d {
            Direction::Drop => self.drop.as_ref(),
            Direction::Spike => self.spike.as_ref(),
            Direction::None => None,
        }
    }
}

/// A judged bucket, remembered for windows, in totals (value × weight).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct Entry {
    x: f32,
    /// Events (for averages and ratios also the bucket's weight: `x`, `mu`
    /// and `vn` are totals over its events).
    n: f32,
    mu: f32,
    vn: f32,
    /// Expected from peers and its noise variance; NaN without peers.
    #[serde(with = "nan")]
    mu_p: f32,
    #[serde(with = "nan")]
    vn_p: f32,
}

impl Entry {
    /// Expected value and noise variance from `source` (NaN for peers
    /// before they were compared, and for the typical value, whose sums
    /// the ring does not hold: see `TypicalTest`).
    #[inline]
    fn expected(&self, source: Source) -> (f32, f32) {
        match source {
            Source::Own => (self.mu, self.vn),
            Source::Peers => (self.mu_p, self.vn_p),
            Source::Typical => (f32::NAN, f32::NAN),
        }
    }
}

/// The series' ratio to the rest of its group, as a ratio estimator:
/// discounted sums of its values and of the rest's, so the ratio is the
/// share of the group's recent volume it had (buckets weighted by the
/// group's volume, which a quiet member's empty buckets do not bias).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Peers {
    own: f64,
    others: f64,
    kappa2: f64,
    /// Buckets learnt.
    n: u32,
    /// Days whose totals taught `kappa2`.
    days: u32,
    /// The relative error particular to an hour, squared, on top of
    /// `kappa2` (a member's share that moves with the time of day), and
    /// the hours that taught it.
    kappa2_hourly: f64,
    hours: noise::Excess,
    /// The share by local hour of day (see [`shares`]): only for a member
    /// of a group, of buckets no wider than an hour.
    by_hour: Option<Box<HourShares>>,
    /// The local day last learnt, and the weekdays learnt to their end
    /// (bit 0 Monday): a share is compared on a weekday it has been seen
    /// on, as a share moves with the day too (mobile at the weekend).
    day: i32,
    weekdays: u8,
}

impl Default for Peers {
    fn default() -> Self {
        Self {
            own: 0.0,
            others: 0.0,
            kappa2: 0.05 * 0.05,
            n: 0,
            days: 0,
            kappa2_hourly: 0.0,
            hours: noise::Excess::default(),
            by_hour: None,
            day: i32::MIN,
            weekdays: 0,
        }
    }
}

impl Peers {
    /// Whether the local day `day` is a weekday seen before.
    fn knows(&self, day: i64) -> bool {
        self.weekdays & weekday_bit(day) != 0
    }

    /// The ratio (NaN before anything was learnt).
    fn ratio(&self) -> f64 {
        if self.others > 0.0 {
            self.own / self.others
        } else {
            f64::NAN
        }
    }
}

/// An empty run in progress.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct Run {
    len: u32,
    expected: f64,
    noise_var: f64,
}

/// What a model has learnt, for reports and debugging.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diagnostics {
    /// Deseasonalised level.
    pub level: f64,
    /// Noise per unit (see [`noise`]).
    pub phi: f64,
    /// Relative model error every bucket of a day shares.
    pub kappa: f64,
    /// Relative model error particular to an hour.
    pub kappa_hourly: f64,
    /// Relative noise of one bucket beyond `phi`'s (see [`noise`]).
    pub bucket_noise: f64,
    /// Ratio of the series to the rest of its group (NaN without peers).
    pub peer_ratio: f64,
    /// Relative error of the peer expectation.
    pub peer_kappa: f64,
    /// Seconds the seasonal profile is read ahead of local time (the day
    /// moved; see [`profile`]).
    pub shift: f64,
    /// The typical value per event's spread of one value's logarithm and
    /// its wander, both as standard deviations (NaN for other KPIs).
    pub typical_spread: f64,
    pub typical_wander: f64,
}

/// The sums of the local day so far, for the model error.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct DayTotal {
    day: i64,
    x: f64,
    expected: f64,
    noise_var: f64,
    rel_var: f64,
    buckets: u32,
    /// The same against peers: value, expected from peers, noise.
    peer_x: f64,
    peer_expected: f64,
    peer_noise_var: f64,
    peer_buckets: u32,
}

/// The per-series model; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiModel {
    config: KpiConfig,
    profile: Profile,
    noise: Noise,
    peers: Peers,
    ring: Vec<Entry>,
    /// Sums of the ring's newest entries per window (not saved: derived).
    #[serde(skip)]
    sums: WindowSums,
    head: u8,
    len: u8,
    /// Entries pushed since the series became ready (saturating at SPAN).
    ready_len: u8,
    first: i64,
    seen: u32,
    run: Run,
    /// Typical value per event (sums), for the expected events of a window.
    #[serde(with = "nan")]
    per_event: f64,
    /// Lowest hourly mean seen during warm-up (NaN before the first whole
    /// hour), and the hour being summed.
    #[serde(with = "nan")]
    quiet: f64,
    hour: (i64, f64, u32),
    /// Boxed, as few KPIs configure the rule.
    wow: Option<Box<WeekOverWeek>>,
    /// Buckets per day, for memories.
    per_day: f64,
    /// Whether a value below zero was seen (averages are then judged as
    /// normal, not log-normal).
    negative_seen: bool,
    /// Whether the last bucket learnt was learnt in full (not anomalous).
    #[serde(default)]
    learnt_in_full: bool,
    /// Today's ordinary buckets, and this hour's, for the model error.
    today: DayTotal,
    this_hour: DayTotal,
    /// Whether the noise's prior has been sized from values, and the
    /// typical value (per event for sums) it was sized from.
    sized: bool,
    size: f64,
    /// For sums and averages, whose values come from a skewed
    /// distribution (one large basket), and distinct counts, which are
    /// estimates with an error of their own, the ordinary buckets'
    /// standardised rises and drops: a one-bucket test is calibrated
    /// against them.
    /// Boxed: most series (counts, ratios) have none, and need not carry
    /// the room inline.
    tails: Option<Box<[EmpiricalTail; 2]>>,
    /// For sums and averages: the typical-value test. Boxed, as for
    /// `tails`.
    typical: Option<Box<TypicalTest>>,
}

/// The typical-value test of a series: its model, and the sums of
/// logarithms of the ring's buckets (at the ring's indices).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TypicalTest {
    model: Typical,
    /// The values' moments, for the upper tail.
    amounts: Amounts,
    /// The largest value of each of the ring's buckets (0 for none).
    largest: Vec<f32>,
    logs: Vec<f32>,
    /// Newest entries in a row that have logarithms (a bucket with a value
    /// of 0 or less has none, and windows stop before it).
    valid: u8,
}

impl KpiModel {
    /// A model that has seen nothing.
    pub fn new(config: KpiConfig) -> Self {
        let per_day = 86_400.0 / config.bucket_width.max(1) as f64;
        Self {
            profile: Profile::new(config.bucket_width, config.seasonality),
            noise: Noise::new(
                1.0,
                config.kind.phi_min(1.0),
                NOISE_MEMORY_DAYS * per_day,
                config.kind.additive(),
            ),
            peers: Peers::default(),
            ring: vec![Entry::default(); SPAN],
            sums: WindowSums::default(),
            head: 0,
            len: 0,
            ready_len: 0,
            first: i64::MIN,
            seen: 0,
            run: Run::default(),
            per_event: f64::NAN,
            quiet: f64::NAN,
            hour: (i64::MIN, 0.0, 0),
            wow: config
                .week_over_week
                .map(|c| Box::new(WeekOverWeek::new(c, config.bucket_width))),
            per_day,
            negative_seen: false,
            learnt_in_full: false,
            today: DayTotal::default(),
            this_hour: DayTotal::default(),
            sized: false,
            size: 0.0,
            tails: matches!(config.kind, Kind::Sum | Kind::Avg | Kind::Distinct).then(|| {
                let tail = || {
                    EmpiricalTail::new(TAIL_ORIGIN, 1.0 / (TAIL_MEMORY_DAYS * per_day), TAIL_PRIOR)
                };
                Box::new([tail(), tail()])
            }),
            typical: matches!(config.kind, Kind::Sum | Kind::Avg).then(|| {
                Box::new(TypicalTest {
                    model: Typical::default(),
                    amounts: Amounts::default(),
                    largest: vec![0.0; SPAN],
                    logs: vec![0.0; SPAN],
                    valid: 0,
                })
            }),
            config,
        }
    }

    /// Memory this series' model holds, in bytes: the struct, the seasonal
    /// profile's cells, the window ring and the week-over-week rule's
    /// history. It does not grow with the data seen.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.heap_bytes()
    }

    /// The configuration.
    pub fn config(&self) -> &KpiConfig {
        &self.config
    }

    /// The shape of this series' predictive distributions.
    pub fn shape(&self) -> Shape {
        self.config.kind.shape(self.negative_seen)
    }

    /// Today's factor: how today's ordinary buckets so far compare with
    /// what the profile expected of them, and its relative variance. Days
    /// differ by `kappa2` (a busy Monday, a rainy Saturday), and every
    /// bucket of a day shares it, so the day's morning says how its
    /// evening will stand: the factor is the precision-weighted mean of 1
    /// (the prior, with the days' variance) and the ratio the day has
    /// shown (with its noise, and the hours' own error averaged over the
    /// hours seen). At midnight it starts again from 1. Buckets judged
    /// anomalous do not count, so an incident is not taken for the day's
    /// mood.
    fn day_factor(&self, day: i64) -> (f64, f64) {
        let prior = self.noise.kappa2();
        let t = &self.today;
        if self.negative_seen || t.day != day || t.buckets == 0 || t.expected <= 0.0 {
            return (1.0, prior);
        }
        let e2 = t.expected * t.expected;
        let per_hour = (3600.0 / self.config.bucket_width.max(1) as f64).max(1.0);
        let hours = (f64::from(t.buckets) / per_hour).max(1.0);
        let var = t.noise_var / e2 + self.noise.kappa2_hourly() / hours;
        let precision = 1.0 / prior + 1.0 / var.max(1e-12);
        let factor = (1.0 / prior + t.x / t.expected / var.max(1e-12)) / precision;
        (factor.max(0.0), 1.0 / precision)
    }

    fn ready(&self, time: i64) -> bool {
        if !self.profile.started() || self.first == i64::MIN {
            return false;
        }
        match self.config.seasonality {
            Seasonality::None => self.seen >= READY_AFTER_BUCKETS,
            _ => time - self.first >= READY_AFTER,
        }
    }

    /// Noise variance of a bucket expected at `scale` from `events`
    /// events: the dispersion learnt, and the value's own estimation error.
    #[inline]
    fn noise_var(&self, scale: f64, events: f64) -> f64 {
        self.noise.phi() * self.config.kind.unit(scale, events)
            + self.config.estimate_rel_var * scale * scale
    }

    /// The upper tail's extra variance per unit of noise variance: what
    /// the amounts' own dispersion exceeds the learnt one by, relative to
    /// it (see [`amounts`]). 0 but for sums and averages of values never
    /// negative.
    pub fn heavy_ratio(&self) -> f64 {
        let phi = self.noise.phi();
        match self.typical.as_deref() {
            Some(t) if !self.negative_seen && phi > 0.0 => {
                t.amounts.excess(self.config.kind, phi) / phi
            }
            _ => 0.0,
        }
    }

    /// Floor of an expected value, for variances: a hundredth of an event
    /// (for a ratio over `events` denominator events, a hundredth of a
    /// numerator event: a floor relative to the ratio's own level kept a
    /// level learnt from a first value of 0 at 1e-12 for a whole day, and
    /// the day's shape then read as factors of 10¹⁰).
    fn mu_floor(&self, events: f64) -> f64 {
        match self.config.kind {
            Kind::Count | Kind::Distinct => 0.01,
            Kind::Sum if self.per_event.is_finite() => 0.01 * self.per_event,
            Kind::Ratio => 0.01 / events.max(1.0),
            _ => 1e-6 * self.profile.level().abs().max(1e-6),
        }
    }

    /// Judges the bucket `input` and the windows ending with it, before
    /// learning it.
    pub fn assess(&self, input: &Input) -> Assessment {
        *self.assess_into(input, &mut None)
    }

    /// [`KpiModel::assess`] written into `slot`, where the caller keeps
    /// it: an assessment is a few hundred bytes, and returned by value it
    /// was copied twice more on its way into the engine's vector (callgrind:
    /// 2.7 % of replay's instructions in memcpy).
    pub fn assess_into<'a>(
        &self,
        input: &Input,
        slot: &'a mut Option<Assessment>,
    ) -> &'a mut Assessment {
        let kind = self.config.kind;
        let x = input.value;
        let at = self.profile.position(input.local_time());
        let rule = self.rules(input);
        if !self.profile.started() || !x.is_finite() {
            let point = Predictive {
                mean: x,
                var: f64::INFINITY,
                rate_var: 0.0,
                heavy: 0.0,
                shape: self.shape(),
            };
            return slot.insert(Assessment {
                expected: x,
                point,
                ready: false,
                drop: None,
                spike: None,
                rule,
                for_peers: x,
                at,
                rel_var: 1.0,
                unit: 0.0,
                noise_var: 0.0,
                peer: None,
                rel_hourly: 0.0,
                day: 1.0,
                day_var: 0.0,
                tests: [0; 2],
            });
        }
        let (factor, shared, hourly) = self.profile.seasonal(&at);
        let rel_var = shared + hourly;
        let (day, day_var) = self.day_factor(input.local_time().div_euclid(86_400));
        let mu = self.profile.level() * factor * day;
        let mu_v = mu.max(self.mu_floor(input.events));
        let unit = kind.unit(mu_v, input.events);
        let noise_var = self.noise_var(mu_v, input.events);
        // The bucket's own jitter is a rate too: it is mixed in as one.
        let rho2 = rel_var + day_var + self.noise.kappa2_hourly() + self.noise.c2();
        let point = Predictive {
            mean: mu,
            var: noise_var + mu_v * mu_v * rho2,
            rate_var: mu * mu * rho2,
            heavy: noise_var * self.heavy_ratio(),
            shape: self.shape(),
        };
        let ready = self.ready(input.time);
        let entry = self.entry(input, mu, noise_var, None);
        let a = slot.insert(Assessment {
            expected: mu,
            point,
            ready,
            drop: None,
            spike: None,
            rule,
            for_peers: self.ordinary_total(input),
            at,
            rel_var,
            unit,
            noise_var,
            peer: None,
            rel_hourly: hourly,
            day,
            day_var,
            tests: [0; 2],
        });
        if ready {
            let largest = input.logs.map(|l| l.largest);
            let basis = Basis {
                source: Source::Own,
                rho2,
                hourly: a.rel_hourly + self.noise.kappa2_hourly(),
                ratio: f64::NAN,
            };
            self.scan(&entry, largest, basis, a);
            self.scan_typical(input, a);
            self.long_run(input, mu_v, noise_var, rho2, a);
        } else {
            self.absence_while_warming(input, a);
        }
        a.settle_tests();
        a
    }

    /// Adds the evidence of peers to an assessment of `input`, whose
    /// `others` is the rest of its group in the same bucket (the caller
    /// counts members whose own evidence is anomalous at their
    /// expectation, so one member's incident does not make its peers look
    /// odd). Nothing is added before the series is ready, nor for
    /// aggregates whose values do not add up.
    pub fn add_peers(&self, a: &mut Assessment, input: &Input) {
        if !a.ready {
            return;
        }
        let (factor, factor_var) = self.hour_factor(input);
        let Some(peer) = self.peer_expectation(input, factor) else {
            return;
        };
        a.peer = Some(peer);
        let entry = self.entry(input, a.expected, a.noise_var, a.peer);
        // The ratio's own uncertainty: about one over the events it was
        // measured from (times the dispersion), plus what it is learnt to
        // miss by; the hour's factor is known to its own error, particular
        // to the hour.
        let hourly = self.peers.kappa2_hourly + factor_var;
        let basis = Basis {
            source: Source::Peers,
            rho2: self.noise.phi() / self.peers.own.max(1e-9)
                + self.peers.kappa2
                + hourly
                + self.noise.c2(),
            hourly,
            ratio: self.peers.ratio() * factor,
        };
        // The first Saturday a member is seen, its share is a guess from
        // weekdays: its expectation is kept (the day's total teaches the
        // ratio's error), but nothing is judged against it.
        if !self.peers.knows(input.local_time().div_euclid(86_400)) {
            return;
        }
        let largest = input.logs.map(|l| l.largest);
        self.scan(&entry, largest, basis, a);
        a.settle_tests();
    }

    /// The ring entry `input` will become.
    fn entry(&self, input: &Input, mu: f64, noise_var: f64, peer: Option<(f64, f64)>) -> Entry {
        let m = if self.config.kind.weighs_by_events() {
            input.events.max(0.0)
        } else {
            1.0
        };
        let (mu_p, vn_p) = peer.unwrap_or((f64::NAN, f64::NAN));
        Entry {
            x: (input.value * m) as f32,
            n: input.events as f32,
            mu: (mu * m) as f32,
            vn: (noise_var * m * m) as f32,
            mu_p: (mu_p * m) as f32,
            vn_p: (vn_p * m * m) as f32,
        }
    }

    /// Events a window of `n` observed events and expected total `e`
    /// stands for, for `min_volume`.
    fn volume(&self, total: f64, expected: f64, events: f64) -> f64 {
        match self.config.kind {
            Kind::Count => total.max(expected),
            Kind::Sum if self.per_event > 0.0 => events.max(expected / self.per_event),
            Kind::Distinct => events.max(expected),
            _ => events,
        }
    }

    /// Tests the windows ending with `first` (the bucket being assessed)
    /// against `basis`, the own model or the peers.
    fn scan(&self, first: &Entry, first_largest: Option<f64>, basis: Basis, a: &mut Assessment) {
        let source = basis.source;
        let frame = ScanFrame {
            source,
            rho2: basis.rho2,
            hourly: basis.hourly,
            bucket: self.noise.c2(),
            per_hour: (3600.0 / self.config.bucket_width.max(1) as f64).max(1.0),
            shape: self.shape(),
            ratio: basis.ratio,
            heavy: self.heavy_ratio(),
            largest: match (&self.typical, first_largest) {
                (Some(_), Some(l)) if !self.negative_seen => l,
                _ => f64::NAN,
            },
            others: if source == Source::Peers {
                basis.ratio * self.dispersion()
            } else {
                0.0
            },
            // Every volume is at least 0.
            by_volume: self.config.min_volume > 0.0,
        };
        let available = usize::from(self.ready_len) + 1;
        let test =
            |a: &mut Assessment, k: usize, totals: [f64; 4]| self.test_window(&frame, a, k, totals);
        // The short windows, summed from the ring's newest entries.
        let (first_mu, first_vn) = first.expected(source);
        let mut totals = [first.x, first.n, first_mu, first_vn].map(f64::from);
        let (before, after) = self.ring.split_at(usize::from(self.head));
        let mut newest = before.iter().rev().chain(after.iter().rev());
        let mut summed = 1;
        for &k in &WINDOWS[..windows::SUMMED_FROM] {
            if k > available {
                break;
            }
            for e in newest.by_ref().take(k - summed) {
                let (mu, vn) = e.expected(source);
                for (t, v) in totals.iter_mut().zip([e.x, e.n, mu, vn]) {
                    *t += f64::from(v);
                }
            }
            summed = k;
            if !test(a, k, totals) {
                return;
            }
        }
        // The long ones, from the sums kept as buckets enter.
        let fresh;
        let sums = if self.sums.valid {
            &self.sums
        } else {
            fresh = WindowSums::of(&self.ring, usize::from(self.head));
            &fresh
        };
        for (w, &k) in WINDOWS[windows::SUMMED_FROM..].iter().enumerate() {
            // Windows reach back only over buckets judged since the series
            // was ready, and, against peers, since they were compared.
            let Some(before) = sums.before(w, source).filter(|_| k <= available) else {
                break;
            };
            let (x_b, n_b) = before.x_n();
            let (mu_b, vn_b) = before.expected(source);
            let totals = [
                f64::from(first.x) + x_b,
                f64::from(first.n) + n_b,
                f64::from(first_mu) + mu_b,
                f64::from(first_vn) + vn_b,
            ];
            if !test(a, k, totals) {
                return;
            }
        }
    }

    /// Tests the windows ending with `input` for the typical value per
    /// event: the mean log of their events' values against the series'
    /// usual one (see [`typical`]).
    fn scan_typical(&self, input: &Input, a: &mut Assessment) {
        let Some(t) = self.typical.as_deref() else {
            return;
        };
        let Some(first) = logs_of(input) else {
            return;
        };
        if self.negative_seen || !t.model.known(self.hours_per_day()) {
            return;
        }
        let available = usize::from(t.valid).min(usize::from(self.ready_len)) + 1;
        let by_volume = self.config.min_volume > 0.0;
        let (mut l, mut n) = (first.sum, input.events);
        let mut newest = self.newest();
        let mut next = WINDOWS.iter().peekable();
        for k in 1..=available.min(SPAN) {
            if k > 1 {
                let idx = newest.next().expect("k <= SPAN");
                l += f64::from(t.logs[idx]);
                n += f64::from(self.ring[idx].n);
            }
            if next.next_if_eq(&&k).is_none() {
                continue;
            }
            // As for a mean: not judged on a handful of events.
            if n < MIN_EVENTS || (by_volume && n < self.config.min_volume) {
                continue;
            }
            let (mean, var) = t.model.predictive(n);
            // Spikes: the largest value's log counted as an ordinary one.
            let largest = self.window_largest(first.largest, k);
            let spike_total = if largest > 0.0 && l > mean {
                l - largest.ln() + mean / n
            } else {
                l
            };
            let candidate = Candidate {
                source: Source::Typical,
                buckets: k,
                total: l,
                spike_total,
                predictive: Predictive {
                    mean,
                    var,
                    rate_var: 0.0,
                    heavy: 0.0,
                    shape: Shape::Normal,
                },
                divisor: n,
                ratio: None,
            };
            consider(a, candidate, None);
        }
    }

    /// Tests the window of the newest `k` buckets, whose value, events,
    /// expected value and noise variance are `totals`, for
    /// [`KpiModel::scan`]; false when it reaches back before its
    /// expectations were known (and so will every longer one). Always
    /// inlined into the scan's loops: out of line (as a closure the
    /// compiler chose not to inline) it cost replay 2 % more instructions
    /// (callgrind).
    #[inline(always)]
    fn test_window(
        &self,
        f: &ScanFrame,
        a: &mut Assessment,
        k: usize,
        [t, n, mu, vn]: [f64; 4],
    ) -> bool {
        if !(mu.is_finite() && vn.is_finite()) {
            return false;
        }
        // Peers with nothing in the whole window: nothing to compare with.
        if f.source == Source::Peers && mu <= 0.0 {
            return true;
        }
        let kind = self.config.kind;
        let divisor = match kind {
            Kind::Avg | Kind::Ratio => n.max(1e-300),
            Kind::Distinct => k as f64,
            _ => 1.0,
        };
        // A mean or a ratio over a handful of events is not judged
        // alone (the mean of two baskets is whatever one basket was):
        // it waits for a window with enough events behind it.
        let enough = !matches!(kind, Kind::Avg | Kind::Ratio) || n >= MIN_EVENTS;
        if enough && (!f.by_volume || self.volume(t, mu, n) >= self.config.min_volume) {
            let cells = (k as f64 / f.per_hour).max(1.0);
            // Of the bucket noise, a window has the mean of its buckets':
            // as much as a sum of k independent ones has if they are
            // alike (at least as much as a window of unequal buckets).
            let jitter = f.bucket / k as f64;
            let rel = f.rho2 - f.hourly + f.hourly / cells - f.bucket + jitter;
            let rate_var = mu * mu * rel + f.others * mu;
            let predictive = Predictive {
                mean: mu,
                var: vn + rate_var,
                rate_var,
                heavy: vn * f.heavy,
                shape: f.shape,
            };
            // Most windows fail `consider`'s gate: counted here, without
            // building a candidate and calling it (callgrind: 4 % of
            // replay's instructions).
            if !beyond_gate(t, &predictive) {
                a.tests[0] += 1;
                a.tests[1] += 1;
                return true;
            }
            let spike_total = self.without_largest(f, k, t, mu, n, &predictive);
            let candidate = Candidate {
                source: f.source,
                buckets: k,
                total: t,
                spike_total,
                predictive,
                divisor,
                ratio: (f.source == Source::Peers).then_some(f.ratio),
            };
            consider(a, candidate, self.tails.as_deref());
        }
        true
    }

    /// The largest value of the window of the newest `k` buckets whose
    /// first (the one assessed) had `first` as its largest: 0 when unknown.
    fn window_largest(&self, first: f64, k: usize) -> f64 {
        let Some(t) = self.typical.as_deref() else {
            return 0.0;
        };
        self.newest()
            .take(k - 1)
            .map(|idx| f64::from(t.largest[idx]))
            .fold(first.max(0.0), f64::max)
    }

    /// The bucket's value with its largest value counted as an ordinary
    /// one (its own value but for sums of positive amounts).
    fn ordinary_total(&self, input: &Input) -> f64 {
        match input.logs {
            Some(l)
                if self.config.kind == Kind::Sum
                    && !self.negative_seen
                    && self.per_event.is_finite() =>
            {
                largest_as_ordinary(input.value, l.largest, self.per_event)
            }
            _ => input.value,
        }
    }

    /// The total a spike test of a sum or an average judges for the
    /// window of the newest `k` buckets (`t` in all over `n` events,
    /// expected `mu`): `t` with the window's largest value counted as an
    /// ordinary one. One order, however large, is not a level that moved
    /// (a single value beyond a log-normal's reach, 150x a basket, is as
    /// ordinary in a shop of bulk orders as any other of them); a spike
    /// must be more than it. Worked out only for a window past the gate.
    #[inline]
    fn without_largest(
        &self,
        f: &ScanFrame,
        k: usize,
        t: f64,
        mu: f64,
        n: f64,
        predictive: &Predictive,
    ) -> f64 {
        let d = t - mu;
        if !f.largest.is_finite() || d <= 0.0 || d * d <= Z_GATE * Z_GATE * predictive.var {
            return t;
        }
        let ordinary = match self.config.kind {
            Kind::Sum if self.per_event.is_finite() => self.per_event,
            Kind::Avg if n > 0.0 => mu / n,
            _ => return t,
        };
        largest_as_ordinary(t, self.window_largest(f.largest, k), ordinary)
    }

    /// A count series at zero for longer than the longest window: the run
    /// as one window.
    fn long_run(&self, input: &Input, mu: f64, noise_var: f64, rho2: f64, a: &mut Assessment) {
        if !self.config.kind.counts_events() || input.value != 0.0 || (self.run.len as usize) < SPAN
        {
            return;
        }
        let expected = self.run.expected + mu;
        let c2 = self.noise.c2();
        let rate_var = expected * expected * (rho2 - c2 + c2 / f64::from(self.run.len + 1));
        let predictive = Predictive {
            mean: expected,
            var: self.run.noise_var + noise_var + rate_var,
            rate_var,
            heavy: 0.0,
            shape: self.shape(),
        };
        if self.volume(0.0, expected, 0.0) < self.config.min_volume {
            return;
        }
        let divisor = if self.config.kind == Kind::Distinct {
            f64::from(self.run.len + 1)
        } else {
            1.0
        };
        let candidate = Candidate {
            source: Source::Own,
            buckets: self.run.len as usize + 1,
            total: 0.0,
            spike_total: 0.0,
            predictive,
            divisor,
            ratio: None,
        };
        consider(a, candidate, None);
    }

    /// Before a day is seen: a count series at zero where even the quietest
    /// hour seen had events.
    fn absence_while_warming(&self, input: &Input, a: &mut Assessment) {
        if !self.config.kind.counts_events() || input.value != 0.0 || !self.quiet.is_finite() {
            return;
        }
        // A sum's noise is in its amounts' unit, known after its first
        // values.
        if self.config.kind == Kind::Sum && !self.per_event.is_finite() {
            return;
        }
        let k = self.run.len + 1;
        if k < 2 {
            return;
        }
        let expected = self.quiet * f64::from(k);
        let predictive = Predictive {
            mean: expected,
            var: self.noise.phi() * expected,
            rate_var: 0.0,
            heavy: 0.0,
            shape: self.shape(),
        };
        if self.volume(0.0, expected, 0.0) < self.config.min_volume {
            return;
        }
        let divisor = if self.config.kind == Kind::Distinct {
            f64::from(k)
        } else {
            1.0
        };
        let candidate = Candidate {
            source: Source::Own,
            buckets: k as usize,
            total: 0.0,
            spike_total: 0.0,
            predictive,
            divisor,
            ratio: None,
        };
        consider(a, candidate, None);
    }

    /// The member's share at this local hour against its share over all
    /// hours (see [`shares`]), and the factor's relative variance.
    fn hour_factor(&self, input: &Input) -> (f64, f64) {
        match self.peers.by_hour.as_deref() {
            Some(s) => s.factor(local_hour(input), self.dispersion()),
            None => (1.0, 0.0),
        }
    }

    /// Expected value from peers, the ratio times the hour's `factor`,
    /// and its noise variance.
    fn peer_expectation(&self, input: &Input, factor: f64) -> Option<(f64, f64)> {
        let others = input.others?;
        if !self.config.kind.additive()
            || others.is_nan()
            || others < 0.0
            || !self.peers.ratio().is_finite()
            || f64::from(self.peers.n) < self.per_day
        {
            return None;
        }
        let mu_p = self.peers.ratio() * factor * others;
        let own = self.noise_var(mu_p.max(self.mu_floor(input.events)), input.events);
        // The rest of the group is itself noisy. Its count noise is not
        // added here: the rest's rate is known to about one over the
        // events the window's rest had, a relative variance of the whole
        // window's expectation, mixed into the tails as an uncertain rate
        // (`ScanFrame::others`); as each bucket's noise, it would make a
        // window whose rest had two events sure of a tenth of an event.
        // What stays here is the rest's estimation error (distinct
        // counts), independent from bucket to bucket.
        //
        // A bucket in which the rest had nothing expects nothing from
        // peers and is still a comparison: a window sums it with its
        // neighbours (one without any is not tested, see `test_window`).
        // Were it none, every peer window would stop at it, and with the
        // rest of a group at two events a bucket one bucket in seven is
        // such a bucket: no peer window would reach past a few buckets.
        let estimate = self.config.estimate_rel_var * mu_p * mu_p;
        Some((mu_p, own + estimate))
    }

    /// Against peers, the variance that the rest of the group's count
    /// puts on an expectation `mu` from peers, per unit of `mu` (see
    /// `ScanFrame::others`), at the all-hours ratio.
    fn rest_rate_var_per_mu(&self) -> f64 {
        self.peers.ratio() * self.dispersion()
    }

    /// The dispersion of the group's values with their large ones: what
    /// the rest of a group's total, and a ratio learnt from totals, are
    /// known to. A node whose peer takes a bulk order is not short of its
    /// peers for it.
    fn dispersion(&self) -> f64 {
        self.noise.phi() * (1.0 + self.heavy_ratio())
    }

    fn rules(&self, input: &Input) -> Option<RuleBreak> {
        let obs = Observation {
            time: input.time,
            utc_offset: input.utc_offset,
            value: input.value,
        };
        if let Some(t) = self.config.threshold {
            if let Some(min) = t.min.filter(|&m| input.value < m) {
                return Some(RuleBreak {
                    kind: RuleKind::Min,
                    limit: min,
                    reference: min,
                    direction: Direction::Drop,
                });
            }
            if let Some(max) = t.max.filter(|&m| input.value > m) {
                return Some(RuleBreak {
                    kind: RuleKind::Max,
                    limit: max,
                    reference: max,
                    direction: Direction::Spike,
                });
            }
        }
        let w = self.wow.as_ref()?;
        let v = w.score(&obs);
        if v.score < 1.0 || v.warming_up {
            return None;
        }
        let (limit, direction) = if input.value < v.expected {
            (v.lower, Direction::Drop)
        } else {
            (v.upper, Direction::Spike)
        };
        Some(RuleBreak {
            kind: RuleKind::WeekOverWeek,
            limit,
            reference: v.expected,
            direction,
        })
    }

    /// Folds the bucket in: fully with `weight` 1, barely with a small
    /// weight (an anomalous bucket, or one while an alert fires), not at all
    /// with 0 (a bucket the caller knows to be unusual: a holiday in a
    /// calendar of expected events).
    ///
    /// A bucket of weight 0 teaches nothing: not the level, the profile,
    /// the noise, the peers nor the week-over-week rule; its local day,
    /// if it has no other bucket, is not a day of the weekday profile (the
    /// midnight step learns the day's other buckets only). It still ends
    /// the previous local day (learnt at its midnight as usual) and enters
    /// the windows, so that windows judged during the unusual span see it;
    /// the caller calls [`KpiModel::forget_windows`] when the span ends.
    pub fn learn(&mut self, input: &Input, a: &Assessment, weight: f64) {
        let x = input.value;
        if !x.is_finite() {
            return;
        }
        if weight <= 0.0 {
            self.skip(input, a);
            return;
        }
        let kind = self.config.kind;
        self.negative_seen |= x < 0.0;
        if self.first == i64::MIN {
            self.first = input.time;
        }
        // Until the noise is learnt, its prior follows the size of the
        // values seen: a sum's unit is its amounts' (E[amount²]/E[amount],
        // taken as twice the typical amount: amounts as spread as their
        // mean), an average's variance its values' squared.
        if matches!(kind, Kind::Sum | Kind::Avg)
            && input.events > 0.0
            && x > 0.0
            && !self.noise.learning()
        {
            let size = if self.sized {
                self.size
                    + 0.05
                        * (x.abs() / if kind == Kind::Sum { input.events } else { 1.0 } - self.size)
            } else {
                x.abs() / if kind == Kind::Sum { input.events } else { 1.0 }
            };
            self.size = size;
            let prior = match kind {
                Kind::Sum => 2.0 * size,
                _ => size * size,
            };
            self.noise.set_prior(prior, kind.phi_min(prior));
            self.sized = true;
        }
        if kind == Kind::Sum && input.events > 0.0 && x > 0.0 {
            let per = x / input.events;
            self.per_event = if self.per_event.is_finite() {
                self.per_event + 0.01 * (per - self.per_event)
            } else {
                per
            };
        }
        let floor = self.mu_floor(input.events);
        let kappa2 = self.noise.kappa2();
        let weekly = self.first != i64::MIN && input.time - self.first >= READY_AFTER;
        if !self.profile.started() {
            let scale = x.abs().max(floor);
            let noise_var = self.noise_var(scale, input.events);
            self.profile
                .learn(&a.at, x, noise_var, kappa2, weight.max(1e-3), floor, false);
        } else {
            let mu = a.expected;
            let sd = a.point.var.sqrt();
            // Clipped once the model knows the series (a day seen): before
            // that, its spread is no measure of what is unusual.
            let mut clipped = if a.ready {
                x.clamp(mu - LEARN_CLIP * sd, mu + LEARN_CLIP * sd)
            } else {
                x
            };
            if kind.counts_events() {
                clipped = clipped.max(0.0);
            }
            let scale = mu.abs().max(floor);
            let noise_var = self.noise_var(scale, input.events);
            self.profile
                .learn(&a.at, clipped, noise_var, kappa2, weight, floor, weekly);
            if weight > 0.0 && a.ready {
                self.profile.regress_shift(&a.at, x, noise_var, kappa2);
            }
            // The noise is learnt from buckets whose expectation is known
            // much better than the noise around it: where the profile is
            // still young, a residual says more about the profile than the
            // noise. The noise is all of it, the bucket noise too: a busy
            // series' Poisson part alone is so small that the gate stayed
            // shut until its profile was known to 1 %, two weeks at 1,000
            // sessions a bucket, and then let it judge those weeks' rhythm
            // with Poisson's noise (47 buckets beyond 3 standard deviations
            // in a day). Opened at the quiet hours first, it lets the bucket
            // noise it finds open it at the busier ones.
            let noise = a.noise_var + self.noise.c2() * mu * mu;
            if weight >= 1.0 && a.ready && a.rel_var * mu * mu < NOISE_GATE * noise {
                let scale = mu.max(floor);
                // What the day's factor is not sure of is known too.
                let known = (self.config.estimate_rel_var + a.day_var) * scale * scale;
                let profile = a.rel_var * scale * scale;
                self.noise
                    .learn(x - mu, a.unit, scale, known, profile, a.point.var);
            } else if weight >= 1.0 && a.ready && self.learnt_in_full {
                self.learn_noise_from_pair(input, a);
            }
            self.add_to_day(input, a, weight);
            if let Some([rises, drops]) = self.tails.as_deref_mut() {
                if weight >= 1.0 && a.ready {
                    let z = a.point.z(x);
                    rises.push(z.max(0.0));
                    drops.push((-z).max(0.0));
                }
            }
            self.learn_peers(input, a, weight);
            self.learn_typical(input, weight);
            // The first anomalous bucket after normal ones, found by a
            // window: the window's earlier buckets, learnt in full, were
            // the anomaly's start; their hours teach no shape tonight.
            if weight < 1.0 && self.learnt_in_full {
                let strongest = [a.drop, a.spike]
                    .into_iter()
                    .flatten()
                    .min_by(|x, y| x.p.total_cmp(&y.p));
                if let Some(f) = strongest.filter(|f| f.buckets > 1) {
                    self.profile.taint(input.local_time(), f.buckets as usize);
                }
            }
        }
        self.learnt_in_full = weight >= 1.0;
        self.enter_windows(input, a);
        self.track_quiet(input);
        if let Some(w) = &mut self.wow {
            w.learn(&Observation {
                time: input.time,
                utc_offset: input.utc_offset,
                value: x,
            });
        }
        self.seen = self.seen.saturating_add(1);
    }

    /// Where the profile is still too young for a bucket's residual to
    /// measure the noise, a count-like series learns it from the bucket
    /// and the one before it, both ordinary: their difference does not
    /// have the profile's error in it (see [`Noise::learn_pair`]). A busy
    /// series' profile is young for weeks by that measure; judged with
    /// Poisson's noise when it matured, one of 1,000 sessions a bucket put
    /// 47 buckets beyond 3 standard deviations in a day.
    fn learn_noise_from_pair(&mut self, input: &Input, a: &Assessment) {
        if !self.config.kind.additive() || self.len == 0 {
            return;
        }
        let prev = &self.ring[(usize::from(self.head) + SPAN - 1) % SPAN];
        let floor = self.mu_floor(input.events);
        let (mu1, mu2) = (f64::from(prev.mu).max(floor), a.expected.max(floor));
        let d = input.value - f64::from(prev.x) * mu2 / mu1;
        let known = self.config.estimate_rel_var * 2.0 * mu2 * mu2;
        self.noise.learn_pair(d, mu1, mu2, known);
    }

    /// A bucket kept out of learning (see [`KpiModel::learn`]).
    fn skip(&mut self, input: &Input, a: &Assessment) {
        if self.profile.started() {
            self.profile.skip(&a.at, self.noise.kappa2());
            // Ends the model error's day as a bucket of the next day would;
            // a weight of 0 adds nothing to it.
            self.add_to_day(input, a, 0.0);
        }
        self.enter_windows(input, a);
    }

    /// The bucket into the ring the windows read, and into the run of
    /// zeros (learnt or skipped alike).
    fn enter_windows(&mut self, input: &Input, a: &Assessment) {
        self.push(input, a);
        if a.ready {
            self.ready_len = (self.ready_len + 1).min(SPAN as u8);
        }
        if self.config.kind.counts_events() && input.value == 0.0 {
            self.run.len += 1;
            self.run.expected += a.expected.max(0.0);
            self.run.noise_var += a.noise_var;
        } else {
            self.run = Run::default();
        }
    }

    /// Adds an ordinary bucket of a known series to today's totals and
    /// this hour's; at a new local day (hour), the last one's totals teach
    /// the model error, own and against peers, if most of it was ordinary.
    /// Hours teach only series of buckets shorter than an hour: an hour of
    /// one bucket cannot tell the hour's error from the bucket's noise.
    fn add_to_day(&mut self, input: &Input, a: &Assessment, weight: f64) {
        let local = input.local_time();
        let day = local.div_euclid(86_400);
        if day != self.today.day {
            let t = std::mem::replace(
                &mut self.today,
                DayTotal {
                    day,
                    ..DayTotal::default()
                },
            );
            if f64::from(t.buckets) >= 0.5 * self.per_day && t.buckets > 0 {
                let rel_var = t.rel_var / f64::from(t.buckets);
                self.noise.learn_day(t.x, t.expected, t.noise_var, rel_var);
            }
            if f64::from(t.peer_buckets) >= 0.5 * self.per_day && t.peer_expected > 0.0 {
                self.learn_peer_block(&t, false);
            }
        }
        let per_hour = 3600.0 / self.config.bucket_width.max(1) as f64;
        let hour = local.div_euclid(3600);
        if per_hour >= 2.0 && hour != self.this_hour.day {
            let t = std::mem::replace(
                &mut self.this_hour,
                DayTotal {
                    day: hour,
                    ..DayTotal::default()
                },
            );
            if f64::from(t.buckets) >= 0.5 * per_hour && t.buckets > 0 {
                let rel_var = t.rel_var / f64::from(t.buckets);
                self.noise.learn_hour(t.x, t.expected, t.noise_var, rel_var);
            }
            if f64::from(t.peer_buckets) >= 0.5 * per_hour && t.peer_expected > 0.0 {
                self.learn_peer_block(&t, true);
            }
        }
        if weight < 1.0 || !a.ready {
            return;
        }
        let m = if self.config.kind.weighs_by_events() {
            input.events.max(0.0)
        } else {
            1.0
        };
        // The day's totals are against the profile alone (what the day's
        // factor is measured from); the hour's against the expectation
        // with the day's factor, which leaves the hour's own error.
        let prior_expected = if a.day > 0.0 {
            a.expected / a.day
        } else {
            a.expected
        };
        // A block's noise has its large amounts in it: an hour with a
        // bulk order is not an hour the profile missed.
        let heavy = 1.0 + self.heavy_ratio();
        let c2 = self.noise.c2();
        for (t, expected, rel_var) in [
            (&mut self.today, prior_expected, a.rel_var),
            (&mut self.this_hour, a.expected, a.rel_var + a.day_var),
        ] {
            t.x += input.value * m;
            t.expected += expected * m;
            t.noise_var += (a.noise_var * heavy + c2 * expected * expected) * m * m;
            t.rel_var += rel_var;
            t.buckets += 1;
            if let Some((mu_p, vn_p)) = a.peer {
                t.peer_x += input.value;
                t.peer_expected += mu_p;
                t.peer_noise_var += vn_p * heavy + c2 * mu_p * mu_p;
                t.peer_buckets += 1;
            }
        }
    }

    /// The peer expectation's relative error, from a whole day (or hour)
    /// against its peers (one bucket of a quiet series says nothing about
    /// it): the day's teaches `kappa2`, the hour's what it adds.
    fn learn_peer_block(&mut self, t: &DayTotal, hour: bool) {
        let dispersion = self.dispersion();
        let ratio_var = dispersion / self.peers.own.max(1e-9);
        let p = &mut self.peers;
        let e2 = t.peer_expected * t.peer_expected;
        let kappa2 = p.kappa2 + if hour { p.kappa2_hourly } else { 0.0 };
        let var = t.peer_noise_var + e2 * (ratio_var + kappa2);
        let r = t.peer_x - t.peer_expected;
        // Less than an event's worth says nothing (see `noise::Excess`).
        if t.peer_noise_var > e2 {
            return;
        }
        // Less the noise of the rest's count, which the expectation from
        // peers carries (`ScanFrame::others`): an hour of a quiet group
        // knows its rest to a few tens of percent, which is not an error
        // of the ratio.
        let rest_var = dispersion * p.ratio() / t.peer_expected;
        let excess = ((r * r).min(25.0 * var) - t.peer_noise_var) / e2 - ratio_var - rest_var;
        if hour {
            let memory = NOISE_MEMORY_DAYS * 24.0;
            p.hours.learn(excess, var / e2, memory);
            p.kappa2_hourly = (p.hours.positive(memory) - p.kappa2).max(0.0);
            return;
        }
        let days = f64::from(p.days);
        let alpha = (1.0 / (days + 3.0)).max(1.0 / NOISE_MEMORY_DAYS);
        p.kappa2 += alpha * (excess - p.kappa2);
        p.kappa2 = p.kappa2.max(noise::KAPPA_MIN * noise::KAPPA_MIN);
        p.days = p.days.saturating_add(1);
    }

    fn push(&mut self, input: &Input, a: &Assessment) {
        let e = self.entry(input, a.expected, a.noise_var, a.peer);
        let head = usize::from(self.head);
        if self.sums.valid {
            self.sums.slide(&self.ring, head, &e);
        }
        self.ring[head] = e;
        if let Some(t) = self.typical.as_deref_mut() {
            match logs_of(input) {
                Some(logs) => {
                    t.logs[head] = logs.sum as f32;
                    t.largest[head] = logs.largest as f32;
                    t.valid = (t.valid + 1).min(SPAN as u8 - 1);
                }
                None => {
                    t.logs[head] = 0.0;
                    t.largest[head] = 0.0;
                    t.valid = 0;
                }
            }
        }
        self.head = ((head + 1) % SPAN) as u8;
        self.len = (self.len + 1).min(SPAN as u8);
        // Summed afresh once a turn of the ring (sliding sums drift by
        // their rounding), and after a restore.
        if self.head == 0 || !self.sums.valid {
            self.sums = WindowSums::of(&self.ring, usize::from(self.head));
        }
    }

    /// Hours a day for the typical value's wander (buckets, if wider).
    fn hours_per_day(&self) -> f64 {
        self.per_day.min(24.0)
    }

    /// An ordinary bucket teaches the typical-value test.
    fn learn_typical(&mut self, input: &Input, weight: f64) {
        // Every bucket teaches the amounts, anomalous or not: a large
        // order is part of the business, and the bucket it lifts is the
        // one that says so (see [`amounts`]).
        if let (Some(t), Some(logs)) = (self.typical.as_deref_mut(), input.logs) {
            let sum = match self.config.kind {
                Kind::Avg => input.value * input.events,
                _ => input.value,
            };
            let keep = 1.0 - 1.0 / (TAIL_MEMORY_DAYS * self.per_day).max(2.0);
            t.amounts.learn(&logs, input.events, sum, keep);
        }
        let Some(logs) = input.logs.filter(|_| weight >= 1.0) else {
            return;
        };
        let hour_width = self.config.bucket_width.max(3600);
        let keep = 1.0 - 1.0 / (TYPICAL_MEMORY_DAYS * self.per_day).max(2.0);
        let keep_spread = 1.0 - 1.0 / (NOISE_MEMORY_DAYS * self.per_day).max(2.0);
        let keep_wander = 1.0 - 1.0 / (NOISE_MEMORY_DAYS * self.hours_per_day()).max(2.0);
        if let Some(t) = self.typical.as_deref_mut() {
            let hour = input.time.div_euclid(hour_width);
            t.model
                .learn(&logs, input.events, hour, [keep, keep_spread, keep_wander]);
        }
    }

    fn learn_peers(&mut self, input: &Input, a: &Assessment, weight: f64) {
        // A bucket in which the rest of the group had nothing teaches the
        // ratio too: leaving out its own events would bias it low.
        let Some(others) = input.others.filter(|o| *o >= 0.0) else {
            return;
        };
        if !self.config.kind.additive() {
            return;
        }
        let x = input.value.max(0.0);
        let keep = 1.0 - 1.0 / (PEER_MEMORY_DAYS * self.per_day).max(2.0);
        let _ = a;
        let width = self.config.bucket_width.max(1);
        let dispersion = self.dispersion();
        let p = &mut self.peers;
        p.own = p.own * keep + weight * x;
        p.others = p.others * keep + weight * others;
        p.n = p.n.saturating_add(1);
        let day = input.local_time().div_euclid(86_400) as i32;
        if day != p.day {
            if p.day != i32::MIN {
                p.weekdays |= weekday_bit(i64::from(p.day));
            }
            p.day = day;
        }
        if width <= 3600 {
            let hour = local_hour(input);
            let shares = p.by_hour.get_or_insert_with(Box::default);
            shares.learn(hour, x, others, weight, 3600.0 / width as f64);
            // Once an hour, as its first bucket is learnt.
            if input.local_time().rem_euclid(3600) < width {
                shares.refit(dispersion);
            }
        }
    }

    fn track_quiet(&mut self, input: &Input) {
        if self.ready(input.time) || !self.config.kind.counts_events() {
            return;
        }
        let hour = input.time.div_euclid(3600);
        if hour != self.hour.0 {
            let per_hour = (3600 / self.config.bucket_width.max(1)).max(1) as u32;
            if self.hour.0 != i64::MIN && self.hour.2 >= per_hour.div_ceil(2) {
                self.quiet = self.quiet.min(self.hour.1 / f64::from(self.hour.2));
            }
            self.hour = (hour, 0.0, 0);
        }
        self.hour.1 += input.value;
        self.hour.2 += 1;
    }

    /// How much better the last `buckets` buckets (this one included, after
    /// [`KpiModel::learn`]) are explained by normal than by the state an
    /// alert claims: the series at `ratio` times its expectation (0.2 for
    /// "down 80 %"), judged by `source`. Positive: normal explains them
    /// better, and the alert can resolve.
    pub fn recovery(&self, source: Source, ratio: f64, buckets: usize) -> f64 {
        let ratio = ratio.clamp(0.05, 20.0);
        if source == Source::Typical {
            return self.typical_recovery(ratio, buckets);
        }
        let mut llr = 0.0;
        for idx in self.newest().take(buckets.min(usize::from(self.len))) {
            let e = self.ring[idx];
            let (mu, vn) = e.expected(source);
            let (mu, mut vn) = (f64::from(mu), f64::from(vn));
            if !(mu.is_finite() && vn.is_finite()) || mu <= 0.0 {
                continue;
            }
            if source == Source::Peers {
                vn += self.rest_rate_var_per_mu() * mu;
            }
            let x = f64::from(e.x).max(0.0);
            llr += match self.shape() {
                Shape::ScaledPoisson | Shape::Compound => {
                    // Log-likelihoods of scaled Poisson with scale s:
                    // (x/s) ln(m) - m/s, compared at m = mu and ratio × mu.
                    let s = (vn / mu).max(1e-12);
                    (x / s) * (-ratio.ln()) - mu * (1.0 - ratio) / s
                }
                Shape::Normal | Shape::LogNormal => {
                    let v = vn.max(1e-300);
                    let alt = ratio * mu;
                    ((x - alt).powi(2) - (x - mu).powi(2)) / (2.0 * v)
                }
            };
        }
        llr
    }

    /// [`KpiModel::recovery`] for the typical value: each bucket's sum of
    /// logs, normal, against its events at the usual mean log or shifted
    /// by ln(`ratio`).
    fn typical_recovery(&self, ratio: f64, buckets: usize) -> f64 {
        let Some(t) = self.typical.as_deref() else {
            return 0.0;
        };
        let mut llr = 0.0;
        let reach = buckets.min(usize::from(self.len)).min(usize::from(t.valid));
        for idx in self.newest().take(reach) {
            let n = f64::from(self.ring[idx].n);
            if n < 1.0 {
                continue;
            }
            let x = f64::from(t.logs[idx]);
            let (mu, v) = t.model.predictive(n);
            let alt = mu + n * ratio.ln();
            llr += ((x - alt).powi(2) - (x - mu).powi(2)) / (2.0 * v.max(1e-300));
        }
        llr
    }

    /// The ring's indices from the newest entry back, once round.
    fn newest(&self) -> impl Iterator<Item = usize> {
        let head = usize::from(self.head);
        (1..=SPAN).map(move |back| (head + SPAN - back) % SPAN)
    }

    /// What the model has learnt, for people and reports: the level, the
    /// dispersion, the relative model error, and the ratio to peers.
    pub fn diagnostics(&self) -> Diagnostics {
        let (typical_spread, typical_wander) =
            self.typical.as_deref().map_or((f64::NAN, f64::NAN), |t| {
                (t.model.var().sqrt(), t.model.wander_var().sqrt())
            });
        Diagnostics {
            level: self.profile.level(),
            phi: self.noise.phi(),
            kappa: self.noise.kappa2().sqrt(),
            kappa_hourly: self.noise.kappa2_hourly().sqrt(),
            bucket_noise: self.noise.c2().sqrt(),
            peer_ratio: self.peers.ratio(),
            peer_kappa: self.peers.kappa2.sqrt(),
            shift: self.profile.shift(),
            typical_spread,
            typical_wander,
        }
    }

    /// Starts windows afresh from the next bucket: called when an alert
    /// resolves, so that windows still holding the incident's buckets do
    /// not fire it again.
    pub fn forget_windows(&mut self) {
        self.ready_len = 0;
        self.run = Run::default();
    }

    /// Bytes on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.profile.heap_bytes()
            + self.ring.capacity() * std::mem::size_of::<Entry>()
            + self
                .peers
                .by_hour
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<HourShares>())
            + self
                .wow
                .as_deref()
                .map_or(0, |w| std::mem::size_of::<WeekOverWeek>() + w.heap_bytes())
            + self
                .tails
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<[EmpiricalTail; 2]>())
            + self.typical.as_ref().map_or(0, |t| {
                std::mem::size_of::<TypicalTest>()
                    + (t.logs.capacity() + t.largest.capacity()) * std::mem::size_of::<f32>()
            })
    }
}

/// The bit of local day `day`'s weekday (days since 1970-01-01, a
/// Thursday; bit 0 Monday).
fn weekday_bit(day: i64) -> u8 {
    1 << (day + 3).rem_euclid(7)
}

/// The local hour of day of `input`'s bucket, 0-23.
fn local_hour(input: &Input) -> usize {
    input.local_time().div_euclid(3600).rem_euclid(24) as usize
}

/// A bucket's logarithms, for the typical-value test: those it came with,
/// or none at all for a bucket without events (a sum of 0).
fn logs_of(input: &Input) -> Option<LogSums> {
    input.logs.or((input.events == 0.0).then_some(LogSums {
        sum: 0.0,
        sum_sq: 0.0,
        squares: 0.0,
        largest: 0.0,
    }))
}

/// `total` with its `largest` value counted as an `ordinary` one (as
/// it is, if that is not larger): one order, however large, is not a
/// level that moved.
#[inline]
fn largest_as_ordinary(total: f64, largest: f64, ordinary: f64) -> f64 {
    if largest > ordinary {
        total - largest + ordinary
    } else {
        total
    }
}

/// What the window tests of one scan share.
struct ScanFrame {
    source: Source,
    /// The correlated relative variance, its part particular to the
    /// hour, and its part particular to the bucket (its jitter,
    /// independent from bucket to bucket).
    rho2: f64,
    hourly: f64,
    bucket: f64,
    /// Buckets per hour (at least 1).
    per_hour: f64,
    shape: Shape,
    /// The series' usual ratio to the rest of its group.
    ratio: f64,
    /// Against peers, the rest of the group's count in a window knows its
    /// rate to a relative variance `φ / others` (`others` the rest's
    /// events in the window), so the window's expectation `mu = ratio ×
    /// others` carries a rate variance `mu² φ / others`, which is this
    /// times `mu`: `ratio × φ` (0 against the own model).
    others: f64,
    /// Whether `min_volume` asks anything.
    by_volume: bool,
    /// The upper tail's extra variance per unit of noise variance
    /// ([`KpiModel::heavy_ratio`]).
    heavy: f64,
    /// The largest value of the bucket assessed, for sums and averages of
    /// positive values (NaN otherwise).
    largest: f64,
}

/// What a scan's windows are judged against: the own model or the
/// peers, with the expectation's correlated relative variance and its
/// part particular to the hour (which a window over several hours
/// averages), and against peers the usual ratio at this hour.
#[derive(Debug, Clone, Copy)]
struct Basis {
    source: Source,
    rho2: f64,
    hourly: f64,
    ratio: f64,
}

/// One test of a window, before it is looked up.
struct Candidate {
    source: Source,
    buckets: usize,
    total: f64,
    /// What the spike test judges: `total`, or for sums and averages the
    /// total with the window's largest value counted as an ordinary one
    /// (see [`KpiModel::without_largest`]).
    spike_total: f64,
    predictive: Predictive,
    divisor: f64,
    /// The series' usual ratio to the rest of its group (peers).
    ratio: Option<f64>,
}

impl Candidate {
    /// Shares of the group during the window, this series' and its usual
    /// one (peers): worked out only for a finding kept.
    fn share(&self) -> Option<(f64, f64)> {
        self.ratio.map(|ratio| {
            let others = self.predictive.mean / ratio.max(1e-300);
            (
                self.total / (self.total + others).max(1e-300),
                ratio / (1.0 + ratio),
            )
        })
    }
}

/// Whether `total` is more than [`Z_GATE`] standard deviations from the
/// mean of `p`, tested squared: most windows are not, and a square root
/// and a division per window were a quarter of the scan (perf). NaN
/// anywhere: not beyond, as the z-score's NaN was.
#[inline(always)]
fn beyond_gate(total: f64, p: &Predictive) -> bool {
    let d = total - p.mean;
    d * d > Z_GATE * Z_GATE * p.var.max(0.0)
}

/// Keeps `c` as the finding of its direction when its tail is the smallest
/// so far; counts the test either way. A one-bucket test of a skewed
/// aggregate is also calibrated against the series' own history (`tails`,
/// rises and drops): it is never rarer than the ordinary buckets that were
/// as far out.
#[inline]
fn consider(a: &mut Assessment, c: Candidate, tails: Option<&[EmpiricalTail; 2]>) {
    a.tests[0] += 1;
    a.tests[1] += 1;
    if !beyond_gate(c.total, &c.predictive) {
        return;
    }
    let z = c.predictive.z(c.total);
    let (slot, side, mut p) = if z < -Z_GATE {
        (&mut a.drop, 1, c.predictive.lower(c.total))
    } else if z > Z_GATE {
        (
            &mut a.spike,
            0,
            c.predictive.upper(c.spike_total.min(c.total)),
        )
    } else {
        return;
    };
    if c.buckets == 1 {
        if let Some(t) = tails {
            p = p.max(t[side].p(z.abs(), p));
        }
    }
    if slot.as_ref().is_none_or(|f| p < f.p) {
        *slot = Some(Finding {
            source: c.source,
            p,
            tests: 0,
            buckets: c.buckets as u32,
            total: c.total,
            predictive: c.predictive,
            divisor: c.divisor,
            share: c.share(),
        });
    }
}

#[cfg(test)]
mod tests;

/// Serde for floats that use NaN for "none yet": JSON has no NaN, so it
/// travels as `null` (postcard keeps the bits either way).
pub(crate) mod nan {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes NaN as none.
    pub fn serialize<T: Copy + Into<f64>, S: Serializer>(x: &T, s: S) -> Result<S::Ok, S::Error>
    where
        Option<T>: Serialize,
    {
        let v: f64 = (*x).into();
        (!v.is_nan()).then_some(*x).serialize(s)
    }

    /// Reads none as NaN.
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: Deserialize<'de> + NanValue,
        D: Deserializer<'de>,
    {
        Ok(Option::<T>::deserialize(d)?.unwrap_or(T::NAN))
    }

    /// A float type's NaN.
    pub trait NanValue {
        /// NaN.
        const NAN: Self;
    }
    impl NanValue for f32 {
        const NAN: Self = f32::NAN;
    }
    impl NanValue for f64 {
        const NAN: Self = f64::NAN;
    }
}
