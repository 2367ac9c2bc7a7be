//! The default detector set: what `kpiwatch score` and every KPI series run
//! unless configured otherwise.
//!
//! Per observation, [`DetectorSet::assess`]:
//! 1. asks each baseline for an expectation — weekly and daily
//!    [`SeasonalBaseline`]s and the non-seasonal [`Holt`] forecaster — and
//!    uses the one configured, or under [`Seasonality::Auto`] the one with
//!    the smallest recent absolute error, so seasonality is detected by
//!    which model explains the series, causally;
//! 2. floors every spread at the series' own resolution (uniform rounding
//!    noise of its smallest step) or 0.5 % of its typical magnitude, and
//!    widens it to at least Poisson's for count series;
//! 3. judges the point by the chosen baseline, or by a *credible*
//!    alternative that explains it better (recent error within 1.2× of the
//!    chosen one's; Holt only within its short horizon), and turns that |z|
//!    into a tail probability against that baseline's own history of |z|
//!    ([`crate::tail`]), with the normal (or exact Poisson) tail as the
//!    prior beyond what has been seen. The residual is also judged as a
//!    share of the series' typical magnitude, drops and rises apart, and
//!    the rarer of the two counts: spreads change over time, and dips that
//!    were dozens of spreads deep in a calm week must not make a later
//!    collapse look ordinary. A baseline's history holds only its
//!    residuals from when it was credible, so a young or clearly worse
//!    model's wild residuals never make a real collapse look ordinary;
//!    a spiky series' usual spikes are unremarkable, and once an event's
//!    first extreme points are learned its next ones are no longer new;
//! 4. adds the evidence of runs, each calibrated the same way against its
//!    own history: the anomaly likelihood of the recent surprise, the CUSUM
//!    statistic of the chosen baseline's residuals, and the window sums of
//!    [`crate::runs`] (the last 2–12 buckets as a whole, with the Poisson
//!    deviance for counts — what catches checkouts stopping at a quiet
//!    hour, where each empty bucket alone is only unusual);
//! 5. combines them ([`crate::combine`]) and adds the analyst's rules
//!    (static thresholds, week-over-week change), which score 1 when broken.
//!
//! Values beyond ±[`ABSURD`] score 1 and are not learned, so one corrupt
//! number cannot overflow the baselines for ever.
//!
//! Learning folds the observation into every model, whichever was used, so
//! a baseline that is not chosen today is ready when it becomes better.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::combine::{score_of_tail, Likelihood, LikelihoodParams, NO_EVIDENCE};
use crate::counts::{is_count, poisson_band, poisson_two_sided, EXACT_BELOW};
use crate::forecast::{Holt, HoltParams};
use crate::runs::{RunPoint, RunSums, WINDOWS};
use crate::seasonal::{SeasonalBaseline, SeasonalParams, Seasonality};
use crate::shift::{Cusum, CusumParams};
use crate::stats::normal_two_sided;
use crate::tail::EmpiricalTail;
use crate::threshold::StaticThreshold;
use crate::wow::WeekOverWeek;
use crate::{Detector, Direction, Observation, Verdict};

/// Which detectors a [`DetectorSet`] runs, and their thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SetConfig {
    /// Width of one bucket in seconds.
    pub bucket_width: i64,
    /// Seasonal pattern to model.
    pub seasonality: Seasonality,
    /// Run the CUSUM level-shift detector.
    pub level_shift: bool,
    /// Run the anomaly likelihood over recent surprise.
    pub likelihood: bool,
    /// Coverage of the verdict's band, e.g. 0.999.
    pub band_coverage: f64,
    /// Static min/max rule, if configured.
    pub threshold: Option<StaticThreshold>,
    /// Week-over-week rule: largest tolerated change as a fraction.
    pub week_over_week: Option<f64>,
}

impl SetConfig {
    /// The default set for `bucket_width`-second buckets.
    pub fn new(bucket_width: i64) -> Self {
        Self {
            bucket_width,
            seasonality: Seasonality::Auto,
            level_shift: true,
            likelihood: true,
            band_coverage: 0.999,
            threshold: None,
            week_over_week: None,
        }
    }
}

/// Forgetting rate of each baseline's recent absolute error.
const ERROR_ALPHA: f64 = 0.02;
/// Largest surprise (-ln p) fed to the likelihood: one absurd point should
/// not dominate its long-term statistics.
const MAX_SURPRISE: f64 = 30.0;
/// Forgetting rate of the point residuals' empirical tail: the history a
/// residual is compared with is about this many observations long.
const POINT_FORGET: f64 = 1.0 / 2000.0;
/// Pseudo-observations given to the parametric (normal / Poisson) tail.
const POINT_PRIOR: f64 = 10.0;
/// A baseline other than the chosen one may explain a point only when its
/// recent error is genuinely comparable, within this factor of the chosen
/// one's: a clearly worse model (a lagging forecaster on a seasonal series,
/// a daily model on a weekly one) has a wide spread and a history of large
/// residuals, and would excuse anything — a six-hour checkout collapse to
/// 13 % scored 0.15 when 1.5 was allowed. On NAB, with [`SPREADS_ONLY`],
/// 1.2 and 1.25 score 61.8 and 61.7, 1.1 58.5, 1.15 60.6, 1.3 59.2 and
/// 1.5 about 55 (before the relative tails, 1.1 beat 1.2).
const CREDIBLE_ERROR: f64 = 1.2;
/// Residuals beyond this many spreads are judged in spreads only as far
/// as their share of the level allows (see [`SPREADS_ONLY`]). Normal
/// noise never reaches thirty spreads, so a residual this large says as
/// much about a collapsed spread as about the value: spreads collapse in
/// calm or flat stretches (a disk idle between bursts, a CPU quiet
/// overnight), and the next ordinary burst is then thousands of spreads,
/// beyond anything the |z| history holds, while as a share of the series'
/// typical magnitude it is one more of many.
const SPREAD_COLLAPSE: f64 = 30.0;
/// Beyond [`SPREAD_COLLAPSE`], how much rarer a residual may be in spreads
/// than as a share of the level: its tail probability in spreads counts
/// down to this fraction of the relative one, no further. The other way
/// round is not limited: a drop unprecedented as a share of the level is
/// news whatever the spreads say, which is what the relative tails are
/// for. On NAB the limit is worth 2 points (61.8 against 59.7 without;
/// 0.01 and 0.05 score 60.6 and 60.0). Applied from 10 or 100 spreads
/// instead of 30 it scores 61.8 and 61.5, and at any size 62.2, but then a
/// sustained 25 % drop at the quiet hour of a young series (a few spreads,
/// but a small share of the day's typical level) is no longer caught.
const SPREADS_ONLY: f64 = 0.02;
/// A run statistic at or below this many spreads is no evidence at all
/// (its Bonferroni null tail is above 0.2) and is not looked up, which
/// saves a tail evaluation on most buckets.
const RUN_EVIDENCE: f64 = 2.0;
/// Lower edge of the first non-zero bin of every [`EmpiricalTail`] here:
/// |z| and surprise averages below a quarter carry no evidence anyway.
const TAIL_ORIGIN: f64 = 0.25;
/// Lower edge of the first non-zero bin of the relative-residual tails: a
/// residual under 1 % of the series' typical magnitude is no evidence.
const REL_ORIGIN: f64 = 0.01;
/// Spread floor as a fraction of the series' typical magnitude: a change
/// smaller than this share of the level is never news.
const RELATIVE_FLOOR: f64 = 0.005;
/// Forgetting rate of the typical magnitude behind [`RELATIVE_FLOOR`].
const SCALE_ALPHA: f64 = 0.001;
/// Values beyond this magnitude are not learned (and score 1): the
/// seasonal slots store offsets in `f32` (max 3.4e38), squares and sums of
/// larger values overflow, and no business KPI comes near it.
pub const ABSURD: f64 = 1e30;

/// Whether `x` is beyond [`ABSURD`] (or not a number at all).
#[inline]
pub fn is_absurd(x: f64) -> bool {
    x.is_nan() || x.abs() > ABSURD
}
/// Observations before the set judges at all; their scores are 0.
pub const WARM_UP: u32 = 12;

/// Least overdispersion assumed by the absence rule: an empty run is judged
/// as if its expected count were this many times smaller (or the measured
/// dispersion, if larger).
const ABSENCE_DISPERSION: f64 = 1.25;
/// Above this dispersion a series is not Poisson-like (byte counters,
/// amounts rounded to integers) and the absence rule does not apply.
const MAX_ABSENCE_DISPERSION: f64 = 3.0;

/// Index of each baseline in [`DetectorSet::error`].
const HOLT: usize = 0;
const DAILY: usize = 1;
const WEEKLY: usize = 2;

/// The default detector set for one KPI series; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorSet {
    config: SetConfig,
    /// Normal quantile for `config.band_coverage`.
    band_z: f64,
    holt: Holt,
    daily: Option<SeasonalBaseline>,
    weekly: Option<SeasonalBaseline>,
    /// Recent mean absolute error of each baseline (`None` until it first
    /// makes a forecast); drives the choice under `Seasonality::Auto`.
    error: [Option<f64>; 3],
    cusum: Cusum,
    likelihood: Likelihood,
    /// Per baseline, the empirical tail of its |z|: calibrates a residual
    /// against that baseline's own history (see [`crate::tail`]).
    point_tails: [EmpiricalTail; 3],
    /// Empirical tails of the judged residual as a share of the series'
    /// typical magnitude (`scale`): rises in the first, drops in the
    /// second, each also holding zeros for the other side's buckets.
    rel_tails: [EmpiricalTail; 2],
    /// Empirical tail of the larger CUSUM sum, calibrating it the same way.
    cusum_tail: EmpiricalTail,
    /// The last buckets' residuals, for runs ([`crate::runs`]).
    runs: RunSums,
    /// Empirical tail of the run statistic.
    run_tail: EmpiricalTail,
    /// Smallest non-zero step between consecutive values (0 until one is
    /// seen): the series' resolution, below which nothing is predictable.
    resolution: f64,
    /// Previous value, for `resolution`.
    last: f64,
    /// Slowly forgetting mean of |value|, for the relative spread floor.
    scale: f64,
    wow: Option<WeekOverWeek>,
    /// True while every value seen was a non-negative integer.
    counts: bool,
    seen: u32,
    /// Sum of the expected counts over the current run of empty buckets
    /// (0 when the last bucket was not empty): the absence evidence.
    empty_run: f64,
    /// The expectation when the current empty run began. Adaptive
    /// baselines learn from the zeros and lower their expectation; the run
    /// is judged against the rate events had before they stopped.
    empty_ref: f64,
    /// The dispersion when the current empty run began, frozen likewise.
    empty_dispersion: f64,
}

/// Everything `assess` works out for one observation; `learn` reuses it.
struct Assessment {
    verdict: Verdict,
    /// Residual of each baseline that made a forecast.
    residuals: [Option<f64>; 3],
    /// Residual of the chosen baseline, in spreads (CUSUM's input).
    z: f64,
    /// Residual of each baseline, in spreads.
    zs: [Option<f64>; 3],
    /// -ln of the point tail probability.
    surprise: f64,
    /// The run statistic and the bucket to remember for it, once judged.
    run: Option<(f64, RunPoint)>,
    /// Daily and weekly slot of the observation.
    slots: [usize; 2],
    /// `empty_run` after this observation.
    empty_run: f64,
    /// Residual variance over expected count, for the absence rule.
    dispersion: f64,
    /// The judged residual as a share of `scale` (for `rel_tails`).
    rel: f64,
}

impl Assessment {
    /// An assessment that carries only a verdict: nothing for CUSUM, the
    /// runs, the likelihood or the absence rule to learn from.
    fn without_evidence(verdict: Verdict, residuals: [Option<f64>; 3], slots: [usize; 2]) -> Self {
        Self {
            verdict,
            residuals,
            z: 0.0,
            zs: [None; 3],
            surprise: 0.0,
            run: None,
            slots,
            empty_run: 0.0,
            dispersion: f64::INFINITY,
            rel: 0.0,
        }
    }
}

impl DetectorSet {
    /// An empty set.
    pub fn new(config: SetConfig) -> Self {
        let w = config.bucket_width;
        let (daily, weekly) = match config.seasonality {
            Seasonality::None => (None, None),
            Seasonality::Daily => (SeasonalParams::daily(w), None),
            Seasonality::Weekly | Seasonality::Auto => {
                (SeasonalParams::daily(w), SeasonalParams::weekly(w))
            }
        };
        let coverage = config.band_coverage.clamp(0.5, 1.0 - 1e-12);
        let tail = || EmpiricalTail::new(TAIL_ORIGIN, POINT_FORGET, POINT_PRIOR);
        Self {
            config,
            band_z: Normal::new(0.0, 1.0)
                .map(|n| n.inverse_cdf(0.5 + coverage / 2.0))
                .unwrap_or(3.29),
            holt: Holt::new(HoltParams::new(w)),
            daily: daily.map(SeasonalBaseline::new),
            weekly: weekly.map(SeasonalBaseline::new),
            error: [None; 3],
            cusum: Cusum::new(CusumParams::default()),
            likelihood: Likelihood::new(LikelihoodParams::default()),
            point_tails: std::array::from_fn(|_| tail()),
            rel_tails: std::array::from_fn(|_| {
                EmpiricalTail::new(REL_ORIGIN, POINT_FORGET, POINT_PRIOR)
            }),
            cusum_tail: tail(),
            runs: RunSums::new(),
            run_tail: tail(),
            resolution: 0.0,
            last: 0.0,
            scale: 0.0,
            wow: config
                .week_over_week
                .map(|change| WeekOverWeek::new(change, w)),
            counts: true,
            empty_run: 0.0,
            empty_ref: 0.0,
            empty_dispersion: 0.0,
            seen: 0,
        }
    }

    /// The configuration this set was built with.
    pub fn config(&self) -> &SetConfig {
        &self.config
    }

    /// Bytes of memory this series' state occupies (inline and heap).
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.daily.as_ref().map_or(0, SeasonalBaseline::heap_bytes)
            + self.weekly.as_ref().map_or(0, SeasonalBaseline::heap_bytes)
            + self.wow.as_ref().map_or(0, WeekOverWeek::heap_bytes)
    }

    /// Smallest spread. A flat or noise-free series must not make every
    /// rounding error infinitely surprising: values quantised to a step `q`
    /// carry at least uniform rounding noise of sd `q / sqrt(12)`, and a
    /// change below [`RELATIVE_FLOOR`] of the series' typical magnitude is
    /// not worth anyone's attention.
    #[inline]
    fn floor(&self) -> f64 {
        1e-9 + (self.resolution * 0.288_675).max(RELATIVE_FLOOR * self.scale)
    }

    /// Daily and weekly slot of `local` (0 for an absent season). Both
    /// seasons usually share one slot width, so the time is divided once.
    #[inline]
    fn slots(&self, local: i64) -> [usize; 2] {
        match (&self.daily, &self.weekly) {
            (Some(d), Some(w)) if d.params().slot_width == w.params().slot_width => {
                let q = w.period_of(local);
                let weekly = w.slot_of_period(q);
                // A week is a whole number of days, so the weekly slot
                // determines the daily one.
                [weekly % d.slots(), weekly]
            }
            (d, w) => [
                d.as_ref().map_or(0, |d| d.slot_of(local)),
                w.as_ref().map_or(0, |w| w.slot_of(local)),
            ],
        }
    }

    fn assess(&self, obs: &Observation) -> Assessment {
        let mut a = self.assess_models(obs);
        self.apply_rules(obs, &mut a);
        a
    }

    fn assess_models(&self, obs: &Observation) -> Assessment {
        let x = obs.value;
        let slots = self.slots(obs.local_time());
        let floor = self.floor();
        let mut residuals = [None; 3];
        let mut candidates = [None; 3];
        candidates[HOLT] = self.holt.expect(obs.time, floor);
        if let Some(d) = &self.daily {
            candidates[DAILY] = d.expect_slot(slots[0], floor).map(|e| (e.expected, e.sd));
        }
        if let Some(w) = &self.weekly {
            candidates[WEEKLY] = w.expect_slot(slots[1], floor).map(|e| (e.expected, e.sd));
        }
        let absurd = is_absurd(x);
        if !absurd {
            for (r, c) in residuals.iter_mut().zip(&candidates) {
                *r = c.map(|(e, _)| x - e);
            }
        }
        let chosen = self.choose(&candidates);
        let warming_up = self.seen < WARM_UP;
        let Some((expected, mut sd)) = chosen.and_then(|i| candidates[i]) else {
            let mut verdict = Verdict::warming_up(if absurd { 0.0 } else { x });
            if absurd && !warming_up {
                verdict.score = 1.0;
                verdict.warming_up = false;
            }
            return Assessment::without_evidence(verdict, residuals, slots);
        };
        let small_count = self.counts && expected < EXACT_BELOW;
        // How far the residual variance exceeds Poisson's: ~1 for event
        // counts, enormous for integer-valued byte counters.
        let dispersion = if expected > 0.0 {
            sd * sd / expected
        } else {
            f64::INFINITY
        };
        if self.counts {
            sd = sd.max(expected.max(0.0).sqrt());
        }
        let (lower, upper) = if small_count {
            let tail = (1.0 - self.config.band_coverage) / 2.0;
            poisson_band(expected, tail)
        } else {
            (expected - self.band_z * sd, expected + self.band_z * sd)
        };
        if absurd {
            return Assessment::without_evidence(
                Verdict {
                    expected,
                    lower,
                    upper,
                    score: if warming_up { 0.0 } else { 1.0 },
                    direction: Direction::of(x, expected),
                    warming_up,
                },
                residuals,
                slots,
            );
        }
        // Every baseline's residual in its own spreads, for its tail; the
        // point is judged by the chosen baseline, or by a credible
        // alternative that explains it better, against that baseline's own
        // history of residuals.
        let mut zs = [None; 3];
        let mut best: Option<(usize, f64, f64)> = None;
        let chosen_error = chosen.and_then(|c| self.error[c]).unwrap_or(f64::INFINITY);
        for (m, c) in candidates.iter().enumerate() {
            let Some((e, s)) = *c else { continue };
            let s = if self.counts {
                s.max(e.max(0.0).sqrt())
            } else {
                s
            };
            let zm = (x - e) / s;
            let stale = m == HOLT && !self.holt.within_horizon(obs.time);
            let credible = Some(m) == chosen
                || (!stale
                    && self.error[m].is_some_and(|err| err <= CREDIBLE_ERROR * chosen_error));
            if !credible {
                continue;
            }
            zs[m] = Some(zm);
            if !matches!(best, Some((_, zb, _)) if zb.abs() <= zm.abs()) {
                best = Some((m, zm, e));
            }
        }
        let (m, z, e) = best.unwrap_or((HOLT, 0.0, expected));
        // The level-shift detectors follow the chosen baseline: a
        // persistence forecaster "explains" a sustained drop after a few
        // buckets, which is exactly the drop they are there to accumulate.
        let z_chosen = (x - expected) / sd;
        let mut null = normal_two_sided(z);
        if self.counts && e < EXACT_BELOW {
            null = null.max(poisson_two_sided(e, x));
        }
        // The residual is judged twice against history: in spreads, and
        // as a share of the series' typical magnitude, drops and rises
        // apart. Spreads change: a 30 % dip during a calm week is forty
        // spreads, and would make a later collapse to zero look ordinary
        // in spreads, while as a share of the level it is unprecedented.
        // And a history of spikes says nothing about how rare a collapse is.
        let rel = (x - e) / self.scale.max(1e-9);
        let side = usize::from(rel < 0.0);
        // Under REL_ORIGIN a residual is no evidence: skip the lookup.
        let p_rel = if rel.abs() < REL_ORIGIN {
            1.0
        } else {
            (2.0 * self.rel_tails[side].p(rel.abs(), null / 2.0)).min(1.0)
        };
        let mut p_spreads = self.point_tails[m].p(z.abs(), null);
        if z.abs() > SPREAD_COLLAPSE {
            p_spreads = p_spreads.max(SPREADS_ONLY * p_rel);
        }
        let p_point = p_spreads.min(p_rel);
        let surprise = (-p_point.max(1e-300).ln()).min(MAX_SURPRISE);
        let mut p = p_point;
        if self.config.level_shift {
            let sums = self.cusum.peek(z_chosen);
            // Near zero (most buckets) the sums are no evidence: skip the
            // lookup.
            let neg_ln_null = self.cusum.neg_ln_tail(sums);
            if neg_ln_null > NO_EVIDENCE {
                let level = sums.0.max(sums.1);
                p = p.min(self.cusum_tail.p(level, (-neg_ln_null).exp()));
            }
        }
        let point = RunPoint {
            z: z_chosen,
            observed: x,
            expected,
            sd,
        };
        let run_z = self.runs.peek(&point, self.counts);
        if run_z > RUN_EVIDENCE {
            // Five windows are looked at; Bonferroni keeps the prior honest.
            let run_null = (normal_two_sided(run_z) * WINDOWS.len() as f64).min(1.0);
            p = p.min(self.run_tail.p(run_z, run_null));
        }
        if self.config.likelihood {
            p = p.min(self.likelihood.tail(surprise));
        }
        // Absence: a count series sitting at exactly zero while events were
        // expected. The Poisson probability that every bucket of the run is
        // empty is exp(-sum of expected); it is tempered for overdispersion
        // but deliberately not calibrated against the series' history —
        // events stopping where many were expected is the failure kpiwatch
        // exists to report, whatever the series did before.
        // During an empty run, the dispersion measured before it began.
        let dispersion = if self.empty_run > 0.0 {
            self.empty_dispersion
        } else {
            dispersion
        };
        let poisson_like = dispersion <= MAX_ABSENCE_DISPERSION;
        let empty_run = if self.counts && poisson_like && x == 0.0 {
            let reference = if self.empty_run > 0.0 {
                self.empty_ref
            } else {
                0.0
            };
            self.empty_run + expected.max(reference).max(0.0)
        } else {
            0.0
        };
        if empty_run > 0.0 {
            p = p.min((-empty_run / ABSENCE_DISPERSION.max(dispersion)).exp());
        }
        let score = score_of_tail(p);
        Assessment {
            verdict: Verdict {
                expected,
                lower,
                upper,
                score: if warming_up { 0.0 } else { score },
                direction: Direction::of(x, expected),
                warming_up,
            },
            residuals,
            z: z_chosen,
            zs,
            surprise,
            run: Some((run_z, point)),
            slots,
            empty_run,
            dispersion,
            rel,
        }
    }

    /// Applies the analyst's rules (static min/max, week-over-week) to a
    /// verdict. They need no history, so they apply during warm-up too, and
    /// a broken rule gives the verdict its direction.
    fn apply_rules(&self, obs: &Observation, a: &mut Assessment) {
        let broken = self
            .config
            .threshold
            .map(|t| t.score(obs))
            .into_iter()
            .chain(self.wow.as_ref().map(|w| w.score(obs)))
            .find(|v| v.score >= 1.0);
        if let Some(rule) = broken {
            a.verdict.score = 1.0;
            a.verdict.warming_up = false;
            a.verdict.direction = rule.direction;
        }
    }

    /// Which baseline's expectation to use.
    fn choose(&self, candidates: &[Option<(f64, f64)>; 3]) -> Option<usize> {
        let available = |i: usize| candidates[i].is_some();
        match self.config.seasonality {
            Seasonality::None => available(HOLT).then_some(HOLT),
            Seasonality::Daily | Seasonality::Weekly => {
                [WEEKLY, DAILY, HOLT].into_iter().find(|&i| available(i))
            }
            Seasonality::Auto => {
                // The smallest recent error wins, the first on a tie; a
                // model with no error record yet is tried last.
                let mut best: Option<(usize, f64)> = None;
                for i in [HOLT, DAILY, WEEKLY] {
                    if !available(i) {
                        continue;
                    }
                    let e = self.error[i].unwrap_or(f64::INFINITY);
                    if best.is_none_or(|(_, b)| e.total_cmp(&b).is_lt()) {
                        best = Some((i, e));
                    }
                }
                best.map(|(i, _)| i)
            }
        }
    }

    fn apply(&mut self, obs: &Observation, a: &Assessment) {
        let x = obs.value;
        if is_absurd(x) {
            // Refused: see `ABSURD`.
            return;
        }
        let floor = self.floor();
        for (err, r) in self.error.iter_mut().zip(a.residuals) {
            if let Some(r) = r {
                *err = Some(match *err {
                    None => r.abs(),
                    Some(e) => e + ERROR_ALPHA * (r.abs() - e),
                });
            }
        }
        if !a.verdict.warming_up {
            self.cusum.push(a.z);
            self.cusum_tail.push(self.cusum.level());
            self.likelihood.push(a.surprise);
            let [rises, drops] = &mut self.rel_tails;
            rises.push(a.rel.max(0.0));
            drops.push((-a.rel).max(0.0));
            if let Some((run_z, point)) = &a.run {
                self.runs.push(point);
                self.run_tail.push(*run_z);
            }
            // Only credible baselines' residuals are learned: a model's
            // history then holds its residuals from when it fitted the
            // series, not from its warm-up or from stretches where it was
            // far worse than the chosen one, and a real collapse is not
            // made ordinary by them.
            for (t, z) in self.point_tails.iter_mut().zip(a.zs) {
                if let Some(z) = z {
                    t.push(z.abs());
                }
            }
        }
        let step = (x - self.last).abs();
        if self.seen > 0 && step > 0.0 && (self.resolution == 0.0 || step < self.resolution) {
            self.resolution = step;
        }
        self.last = x;
        let a_scale = SCALE_ALPHA.max(1.0 / f64::from(self.seen + 1));
        self.scale += a_scale * (x.abs() - self.scale);
        self.holt.learn_value(obs.time, x, floor);
        if let Some(d) = &mut self.daily {
            d.learn_slot(a.slots[0], x, floor);
        }
        if let Some(w) = &mut self.weekly {
            w.learn_slot(a.slots[1], x, floor);
        }
        if let Some(w) = &mut self.wow {
            w.learn(obs);
        }
        self.counts &= is_count(x);
        self.seen = self.seen.saturating_add(1);
        if a.empty_run > 0.0 && self.empty_run == 0.0 {
            self.empty_ref = a.verdict.expected.max(0.0);
            self.empty_dispersion = a.dispersion;
        }
        self.empty_run = a.empty_run;
    }
}

impl Detector for DetectorSet {
    fn score(&self, obs: &Observation) -> Verdict {
        self.assess(obs).verdict
    }

    fn learn(&mut self, obs: &Observation) {
        let a = self.assess(obs);
        self.apply(obs, &a);
    }

    fn observe(&mut self, obs: &Observation) -> Verdict {
        let a = self.assess(obs);
        self.apply(obs, &a);
        a.verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_whose_events_stop_alerts_by_the_third_bucket_and_stays_alerting() {
        // ~7 checkouts a bucket with Poisson-like noise, then none at all.
        let mut set = DetectorSet::new(SetConfig {
            seasonality: Seasonality::None,
            ..SetConfig::new(300)
        });
        let seq = [7.0, 5.0, 9.0, 6.0, 8.0, 4.0, 7.0, 10.0, 6.0, 7.0, 3.0, 8.0];
        for i in 0..3000 {
            set.observe(&Observation::utc(i * 300, seq[(i % 12) as usize]));
        }
        let scores: Vec<f64> = (3000..3012)
            .map(|i| set.observe(&Observation::utc(i * 300, 0.0)).score)
            .collect();
        // Alerting by the third empty bucket, and not fading while the
        // outage lasts although the forecaster learns from the zeros.
        assert!(
            scores[2..].iter().all(|&s| s >= 0.5),
            "scores of the empty run {scores:?}"
        );
    }

    #[test]
    fn a_static_rule_applies_from_the_first_bucket_with_its_direction() {
        let mut set = DetectorSet::new(SetConfig {
            threshold: Some(StaticThreshold {
                min: None,
                max: Some(1.5),
            }),
            ..SetConfig::new(60)
        });
        let v = set.observe(&Observation::utc(0, 2.0));
        assert_eq!(
            (v.score, v.direction, v.warming_up),
            (1.0, Direction::Spike, false)
        );
        for i in 1..30 {
            set.observe(&Observation::utc(i * 60, 2.0));
        }
        // Value equal to the learned expectation: the rule still decides.
        let v = set.score(&Observation::utc(30 * 60, 2.0));
        assert_eq!((v.score, v.direction), (1.0, Direction::Spike));
    }

    const MONDAY: i64 = 1_704_067_200;

    fn shop(t: i64) -> f64 {
        let hour = ((t - MONDAY).rem_euclid(86_400) / 3600) as f64;
        let day = (t - MONDAY).rem_euclid(7 * 86_400) / 86_400;
        let weekend = if day >= 5 { 0.6 } else { 1.0 };
        weekend * (200.0 + 150.0 * ((hour - 6.0) / 24.0 * std::f64::consts::TAU).sin())
    }

    fn noise(i: i64) -> f64 {
        // Deterministic, roughly uniform noise in [-1, 1].
        let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
        x as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    fn run(set: &mut DetectorSet, from: i64, to: i64, f: impl Fn(i64) -> f64) -> Vec<Verdict> {
        (from..to)
            .map(|i| {
                let t = MONDAY + i * 300;
                set.observe(&Observation::utc(t, f(t) + 5.0 * noise(i)))
            })
            .collect()
    }

    #[test]
    fn seasonal_traffic_is_not_anomalous_after_three_weeks() {
        let mut set = DetectorSet::new(SetConfig::new(300));
        run(&mut set, 0, 3 * 2016, shop);
        let worst = run(&mut set, 3 * 2016, 4 * 2016, shop)
            .iter()
            .map(|v| v.score)
            .fold(0.0, f64::max);
        assert!(worst < 0.5, "worst score on normal traffic {worst}");
    }

    #[test]
    fn checkouts_collapsing_to_zero_score_near_one_as_a_drop() {
        let mut set = DetectorSet::new(SetConfig::new(300));
        run(&mut set, 0, 3 * 2016, shop);
        let t = MONDAY + (3 * 2016 + 150) * 300;
        let v = set.score(&Observation::utc(t, 0.0));
        assert_eq!(v.direction, Direction::Drop);
        assert!(v.score > 0.9 && v.lower > 0.0, "{v:?}");
    }

    #[test]
    fn zero_of_three_expected_payments_is_not_an_alarm() {
        let mut set = DetectorSet::new(SetConfig {
            seasonality: Seasonality::None,
            ..SetConfig::new(60)
        });
        let mut worst: f64 = 0.0;
        // A Poisson(3)-like deterministic sequence, zeros included.
        let seq = [
            3.0, 2.0, 4.0, 0.0, 3.0, 5.0, 1.0, 3.0, 2.0, 6.0, 3.0, 0.0, 4.0, 2.0, 3.0,
        ];
        for i in 0..3000 {
            let v = set.observe(&Observation::utc(i * 60, seq[(i % 15) as usize]));
            worst = worst.max(v.score);
        }
        assert!(worst < 0.5, "worst score {worst}");
    }

    #[test]
    fn a_sustained_twenty_five_percent_drop_is_caught() {
        let mut set = DetectorSet::new(SetConfig::new(300));
        run(&mut set, 0, 3 * 2016, shop);
        let during = run(&mut set, 3 * 2016, 3 * 2016 + 24, |t| 0.75 * shop(t));
        let best = during.iter().map(|v| v.score).fold(0.0, f64::max);
        assert!(best > 0.5, "best score during the drop {best}");
    }

    #[test]
    fn a_spiky_series_usual_spikes_are_not_news_but_a_collapse_is() {
        // Disk-write-like: calm around 100, a spike of +2000 every 40
        // buckets. Under a normal tail every spike would score 1; against
        // the series' own history they are ordinary.
        let mut set = DetectorSet::new(SetConfig {
            seasonality: Seasonality::None,
            ..SetConfig::new(300)
        });
        let value = |i: i64| 100.0 + 5.0 * noise(i) + if i % 40 == 7 { 2000.0 } else { 0.0 };
        for i in 0..3000 {
            set.observe(&Observation::utc(i * 300, value(i)));
        }
        let mut worst: f64 = 0.0;
        for i in 3000..3400 {
            worst = worst.max(set.observe(&Observation::utc(i * 300, value(i))).score);
        }
        assert!(worst < 0.35, "worst score on usual spikes {worst}");
        let v = set.score(&Observation::utc(3400 * 300, -5000.0));
        assert!(v.score > 0.9, "{v:?}");
    }

    #[test]
    fn a_usual_burst_after_an_idle_stretch_is_not_news() {
        // A disk idle at zero between bursts of writes of about fifty times
        // its average. After a long idle stretch the spread has collapsed
        // and the next burst is over ten thousand spreads, beyond anything
        // the |z| history holds; as a share of the series' typical
        // magnitude it is one of many. A burst ten times larger than any
        // before is still news.
        let mut set = DetectorSet::new(SetConfig {
            seasonality: Seasonality::None,
            ..SetConfig::new(300)
        });
        let burst = |i: i64| 1.5e8 * (1.0 + 0.5 * noise(i));
        // Between bursts, now and then a page or two written.
        let idle = |i: i64| {
            if i % 7 == 0 {
                4096.0 * (i % 3) as f64
            } else {
                0.0
            }
        };
        for i in 0..4000 {
            let x = if i % 100 < 2 { burst(i) } else { idle(i) };
            set.observe(&Observation::utc(i * 300, x));
        }
        for i in 4000..4300 {
            set.observe(&Observation::utc(i * 300, idle(i)));
        }
        let usual = set.score(&Observation::utc(4300 * 300, 1.5e8));
        // Below the default alert threshold (0.5); without the limit on
        // evidence in spreads alone it scored 1.
        assert!(usual.score < 0.5, "usual burst {usual:?}");
        let larger = set.score(&Observation::utc(4300 * 300, 1.5e9));
        assert!(larger.score > 0.9, "ten times larger {larger:?}");
    }

    #[test]
    fn a_collapse_is_news_after_dips_that_were_many_spreads_in_a_calm_past() {
        // Calm for a week (tiny spreads) with a 30 % dip now and then, each
        // dozens of spreads deep; then noisy. The collapse to almost zero
        // is fewer spreads than those dips were, but as a share of the
        // level nothing like it has been seen.
        let mut set = DetectorSet::new(SetConfig {
            seasonality: Seasonality::None,
            ..SetConfig::new(300)
        });
        for i in 0..1500 {
            let v = if i % 150 == 149 {
                23.0
            } else {
                33.5 + 0.05 * noise(i)
            };
            set.observe(&Observation::utc(i * 300, v));
        }
        for i in 1500..3500 {
            let v = if i % 2 == 0 { 31.0 } else { 36.0 } + noise(i);
            set.observe(&Observation::utc(i * 300, v));
        }
        let v = set.score(&Observation::utc(3500 * 300, 1.0));
        assert_eq!(v.direction, Direction::Drop);
        assert!(v.score > 0.5, "{v:?}");
    }

    #[test]
    fn a_noise_free_series_is_not_alarmed_by_rounding() {
        // A smooth daily shape rounded to two decimals: the residuals are
        // rounding noise, which the resolution floor absorbs.
        let mut set = DetectorSet::new(SetConfig::new(300));
        let mut worst: f64 = 0.0;
        for i in 0..(14 * 288) {
            let t = MONDAY + i * 300;
            let v = (shop(t) * 100.0).round() / 100.0;
            let score = set.observe(&Observation::utc(t, v)).score;
            if i > 7 * 288 {
                worst = worst.max(score);
            }
        }
        assert!(worst < 0.5, "worst score {worst}");
    }

    #[test]
    fn a_level_shift_alarms_at_its_start_not_throughout() {
        // Once the first buckets of a shift are learned as residuals, the
        // rest of the same event is no longer news.
        let mut set = DetectorSet::new(SetConfig {
            seasonality: Seasonality::None,
            ..SetConfig::new(60)
        });
        for i in 0..2000 {
            set.observe(&Observation::utc(i * 60, 50.0 + noise(i)));
        }
        let scores: Vec<f64> = (2000..2300)
            .map(|i| {
                set.observe(&Observation::utc(i * 60, 80.0 + noise(i)))
                    .score
            })
            .collect();
        let high = scores.iter().filter(|&&s| s > 0.5).count();
        assert!(scores[0] > 0.9, "first bucket {}", scores[0]);
        assert!(high < 30, "{high} buckets above 0.5");
    }

    #[test]
    fn the_first_buckets_are_warming_up_with_score_zero() {
        let mut set = DetectorSet::new(SetConfig::new(300));
        let v = set.observe(&Observation::utc(MONDAY, 5.0));
        assert!(v.warming_up && v.score == 0.0);
    }

    #[test]
    fn static_rule_fires_even_while_the_baseline_would_not() {
        let mut set = DetectorSet::new(SetConfig {
            threshold: Some(StaticThreshold {
                min: Some(150.0),
                max: None,
            }),
            ..SetConfig::new(300)
        });
        run(&mut set, 0, 2016, |_| 100.0);
        let v = set.score(&Observation::utc(MONDAY + 2016 * 300, 100.0));
        assert_eq!(v.score, 1.0);
    }
}
