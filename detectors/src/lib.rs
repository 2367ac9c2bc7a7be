//! Pure anomaly-detection algorithms for kpiwatch.
//!
//! # Layout
//!
//! Everything here is a deterministic function of its inputs: no I/O, no
//! clock, no threads. Inputs are [`Observation`]s (one value of one KPI
//! series for one bucket of fixed width), outputs are [`Verdict`]s (expected
//! value, band, score in `[0, 1]`, direction, warm-up flag). Every detector
//! separates *scoring* (`&self`, judges an observation against what was
//! learned before it) from *learning* (`&mut self`, folds the observation
//! in), so a point's score never depends on the point itself having been
//! learned — the whole crate is causal by construction.
//!
//! - [`seasonal::SeasonalBaseline`] — per season slot (hour of day, hour of
//!   week, ...) a robust level offset and spread on top of a slowly drifting
//!   level; falls back to the non-seasonal estimate while slots are empty.
//! - [`forecast::Holt`] — damped level + trend forecaster with a prediction
//!   interval from a `statrs` normal quantile, for series without seasonality.
//! - [`shift::Cusum`] — two-sided CUSUM on standardised residuals: catches a
//!   sustained 20–30 % drop whose single points each look plausible.
//! - [`threshold::StaticThreshold`] and [`wow::WeekOverWeek`] — the two rules
//!   analysts ask for by name: fixed min/max, and % change against the same
//!   slot last week.
//! - [`runs`] — window sums over the last few buckets (Poisson deviance for
//!   counts): an outage whose single buckets are each merely unusual.
//! - [`counts`] — Poisson-aware tails and bands for small counts.
//! - [`tail::EmpiricalTail`] — calibrates a statistic (|z|, a surprise
//!   average, a CUSUM sum) against the series' own recent history, with a
//!   parametric null tail as prior: what makes one threshold mean the same
//!   rarity on a calm series and a spiky one.
//! - [`set::DetectorSet`] — the default set: runs the baselines, picks the
//!   expectation that explains the series best, and combines the evidence of
//!   every detector into one calibrated score ([`combine`]).
//!
//! All state is `serde`-serialisable; a snapshot restored into a fresh
//! process gives bit-identical verdicts (tested with proptest).
//!
//! # Writing a new detector
//!
//! Implement [`Detector`]: `score` must not mutate, `learn` must not look at
//! anything but the observation and the detector's own state. See
//! `tests/template_detector.rs` for a complete, tested template.

pub mod combine;
pub mod counts;
pub mod forecast;
pub mod kpi;
pub mod runs;
pub mod seasonal;
pub mod set;
pub mod shift;
pub mod stats;
pub mod tail;
pub mod threshold;
pub mod wow;

use serde::{Deserialize, Serialize};

pub use seasonal::Seasonality;
pub use set::{DetectorSet, SetConfig};

/// One value of one KPI series for one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Start of the bucket, seconds since the Unix epoch (UTC).
    pub time: i64,
    /// Offset of the series' local time zone from UTC at `time`, in seconds.
    /// Season slots are computed in local time, because analysts think of
    /// "Monday 09:00 in the shop's time zone", and daylight-saving changes
    /// move that instant. The caller (which owns time zones) fills it in.
    pub utc_offset: i32,
    /// The KPI value for the bucket.
    pub value: f64,
}

impl Observation {
    /// An observation whose local time is UTC.
    pub fn utc(time: i64, value: f64) -> Self {
        Self {
            time,
            utc_offset: 0,
            value,
        }
    }

    /// Seconds since the epoch as read on the local wall clock.
    pub fn local_time(&self) -> i64 {
        self.time + i64::from(self.utc_offset)
    }
}

/// Which way an observation departs from what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Observed below expected.
    Drop,
    /// Observed above expected.
    Spike,
    /// Observed equals expected (or nothing is expected yet).
    None,
}

impl Direction {
    /// `drop`, `spike` or `none`, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Drop => "drop",
            Direction::Spike => "spike",
            Direction::None => "none",
        }
    }

    /// The direction of `observed` relative to `expected`.
    pub fn of(observed: f64, expected: f64) -> Self {
        if observed < expected {
            Direction::Drop
        } else if observed > expected {
            Direction::Spike
        } else {
            Direction::None
        }
    }
}

/// A detector's judgement of one observation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The value the detector expected for this bucket.
    pub expected: f64,
    /// Lower edge of the band of normal values.
    pub lower: f64,
    /// Upper edge of the band of normal values.
    pub upper: f64,
    /// How anomalous the observation is, in `[0, 1]`; calibrated so one
    /// threshold means roughly the same rarity on every series.
    pub score: f64,
    /// Which way the observation departs from `expected`.
    pub direction: Direction,
    /// True while the detector has seen too little data to judge; the score
    /// is then 0 and should not alert.
    pub warming_up: bool,
}

impl Verdict {
    /// The verdict of a detector that knows nothing yet.
    pub fn warming_up(value: f64) -> Self {
        Self {
            expected: value,
            lower: f64::NEG_INFINITY,
            upper: f64::INFINITY,
            score: 0.0,
            direction: Direction::None,
            warming_up: true,
        }
    }
}

/// The contract every detector in this crate follows.
///
/// Scoring and learning are separate so that an observation is always judged
/// against a state that has not seen it.
pub trait Detector {
    /// Judges `obs` against what has been learned so far. Must not mutate.
    fn score(&self, obs: &Observation) -> Verdict;

    /// Folds `obs` into the learned state. Called after [`Detector::score`]
    /// for the same observation.
    fn learn(&mut self, obs: &Observation);

    /// Scores, then learns: the one call a streaming caller needs.
    fn observe(&mut self, obs: &Observation) -> Verdict {
        let verdict = self.score(obs);
        self.learn(obs);
        verdict
    }
}
