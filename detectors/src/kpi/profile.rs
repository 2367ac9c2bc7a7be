//! The expected value of a business KPI: a level times a seasonal profile,
//! `expected = level × day(hour) × weekday(day) × week(hour of week)`, in the
//! series' local time.
//!
//! Business traffic is multiplicative: Saturday is "25 % quieter", not "40
//! checkouts fewer", and the same shape holds when the shop doubles. Each
//! factor is estimated by precision-weighted averaging of what the
//! observations say it is (`value / expected-without-it`), each observation
//! weighted by how precisely it measures it (its expected value squared over
//! its noise variance: a busy hour says more than a quiet one). That is the
//! ratio estimator of a Poisson rate for counts, and it keeps, per factor,
//! its *precision*: how well it is known, which widens the band while a
//! factor is young instead of trusting a slot seen twice.
//!
//! - **Hourly cells, interpolated.** The daily and hour-of-week factors have
//!   one cell per hour, read at the bucket's centre by linear interpolation
//!   between the two nearest cell centres and learnt by both in proportion:
//!   a 5-minute bucket on the morning ramp gets the ramp, not its hour's
//!   average, and each cell borrows strength from its neighbours.
//! - **Shrinkage.** Every factor starts at 1 with a prior precision: the
//!   daily shape is unknown (weak prior), weekdays differ by up to ~30 %
//!   (moderate), and the hour-of-week correction on top of day × weekday is
//!   small (strong prior). A weekday not seen yet is the average day, with
//!   a band wide enough for that, and it is learnt within its first hours.
//! - **Judge today with what was learnt up to yesterday.** The level learns
//!   bucket by bucket and forgets over about a week: a whole weekly cycle,
//!   so it follows growth without dipping every weekend (a two-day level
//!   did, and then read Mondays as 15 % quiet);
//!   the seasonal factors learn once a day, at local midnight, from the
//!   day's sums: first the weekday (the day's level against its expected
//!   shape), then each hour's share of the day, then what is left for the
//!   hour of the week. A slow decline, or an incident not flagged yet,
//!   then does not teach the profile that its own hours are normal while
//!   they are being judged; one visit of a cell (a Monday 10:00) counts as
//!   one observation of it, however many buckets it had, with the
//!   precision its events give, capped by the series' model error (the
//!   buckets of one day share that day's mood); and the first day's shape
//!   is measured against that day's level, not against a level still
//!   finding itself. The daily shape forgets over about two weeks,
//!   weekdays over four, the weekly cells over six.
//! - **Normalisation.** At each local midnight the daily factors are scaled
//!   to average 1 and the weekday factors likewise, the level taking the
//!   difference, so factors cannot drift against each other.
//!
//! - **The day can move.** A shop whose clocks change (daylight saving
//!   time, with `timezone` left at UTC) or whose customers' habits shift
//!   keeps its shape but moves it: every ramp then looks like a rise in the
//!   morning and a drop in the evening, for weeks, while cells that forget
//!   over weeks re-learn it. So the profile is read at the local time plus
//!   a *shift*, one number learnt at each local midnight: the day's
//!   residuals regressed on the profile's slope (a shift `δ` changes a
//!   bucket by `δ × slope`). It moves only when the day says so clearly,
//!   from a week on (`SHIFT_Z` standard errors, and most of the day's
//!   residual explained by it); an incident's buckets are not in the
//!   regression (they learn with a small weight), and a drop is not shaped
//!   like a slope, so a shift does not hide one.
//!
//! State is `f32` per cell (value and precision): 199 cells, 1.6 KB, plus
//! the day being summed, 0.6 KB.

use serde::{Deserialize, Serialize};

use crate::Seasonality;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;
/// 1970-01-01 was a Thursday: shifting by four days puts Monday 00:00 at
/// the start of a week.
const MONDAY_SHIFT: i64 = 4 * DAY;

/// Prior relative standard deviation of an hour's share of the day.
const DAY_PRIOR_SD: f64 = 1.0;
/// Prior relative standard deviation of a weekday's level.
const WEEKDAY_PRIOR_SD: f64 = 0.3;
/// Prior relative standard deviation of an hour-of-week cell against day
/// × weekday.
const WEEK_PRIOR_SD: f64 = 0.05;
/// Memories: the level's in days, the factors' in visits (days for the
/// daily shape, weeks for weekdays and hour-of-week cells).
const LEVEL_MEMORY_DAYS: f64 = 7.0;
const DAY_MEMORY_VISITS: f64 = 14.0;
const WEEKDAY_MEMORY_VISITS: f64 = 4.0;
const WEEK_MEMORY_VISITS: f64 = 6.0;
/// How many standard errors a day's shift estimate needs before the shift
/// moves, and the share of the day's (weighted) residual it must explain:
/// a day whose residuals are noise, or are shaped like something other
/// than a moved day, leaves the shift where it is.
const SHIFT_Z: f64 = 6.0;
/// Standard errors each slope (rising, falling) needs on its own.
const SHIFT_Z_SIDE: f64 = 3.0;
const SHIFT_EXPLAINED: f64 = 0.25;
/// Days learnt before the shift is estimated: until the shape is known,
/// its errors would read as shifts.
const SHIFT_AFTER_DAYS: u32 = 7;
/// Bounds: a day moves the shift by at most two hours, and the shift stays
/// within three of the configured time zone.
const SHIFT_STEP_MAX: f64 = 2.0 * HOUR as f64;
const SHIFT_MAX: f64 = 3.0 * HOUR as f64;
/// Half the span over which the profile's slope is measured.
const SLOPE_HALF_SPAN: i64 = 15 * 60;

/// One factor: its value and the precision of its relative error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Cell {
    value: f32,
    precision: f32,
}

impl Cell {
    fn prior(sd: f64) -> Self {
        Self {
            value: 1.0,
            precision: (1.0 / (sd * sd)) as f32,
        }
    }

    /// Folds in one visit saying the factor is `ratio`, with relative
    /// precision `pi`, forgetting by `keep` per visit; the precision never
    /// falls below the prior's `floor`.
    ///
    /// The value moves as the ratio estimator of a rate does (the visit
    /// weighted by the events it expected); the precision grows by the
    /// events the visit expected or the ones it saw, whichever are fewer
    /// (`pi` scaled by `ratio / value`, at most 1). A rate's relative
    /// precision is its count of events: an hour that expected five
    /// orders and saw none has said the hour is quieter, not that its
    /// rate is known to within 45 %. Grown by the expected events, a
    /// quiet hour's cell drawn low by a few empty visits claimed a
    /// precision its events never gave, learnt the hour's real rate over
    /// weeks, and in the meantime its misfit was taken for the series'
    /// noise (a shop's early-morning payment failures expected at a
    /// tenth of their rate, and a dispersion of 2.3 where the counts had
    /// 1.1, which then made every test of the series lenient).
    #[inline]
    fn learn(&mut self, ratio: f64, pi: f64, keep: f64, floor: f64) {
        if !(pi > 0.0 && ratio.is_finite()) {
            return;
        }
        let kept = f64::from(self.precision) * keep;
        let p = (kept + pi).max(floor);
        let v = f64::from(self.value);
        let seen = pi * (ratio / v.max(1e-6)).min(1.0);
        let v = v + pi * (ratio - v) / p;
        self.value = v.max(1e-6) as f32;
        self.precision = (kept + seen).max(floor) as f32;
    }

    #[inline]
    fn value(&self) -> f64 {
        f64::from(self.value)
    }

    #[inline]
    fn rel_var(&self) -> f64 {
        1.0 / f64::from(self.precision).max(1e-9)
    }
}

/// Where a bucket falls: the two neighbouring cells and their weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    day: (usize, usize, f64),
    weekday: usize,
    week: (usize, usize, f64),
    /// Local day number (shifted), for learning at midnight.
    local_day: i64,
    /// The bucket's centre in shifted local time, for the slope.
    centre: i64,
}

/// Sums of one hour cell over the day being learnt, kernel-weighted: the
/// value, the hour-of-week factor it was expected with, the noise
/// variance, and the weight itself.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct HourSums {
    x: f32,
    rest: f32,
    var: f32,
    /// Kernel weight.
    k: f32,
}

/// What the day so far says, learnt at its end.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Today {
    /// Per hour cell of the day.
    hours: Vec<HourSums>,
    /// The day as a whole: value, and its expected shape (daily × week
    /// factors, without level and weekday), and noise variance.
    x: f64,
    shape: f64,
    var: f64,
    /// Whether the whole day may teach weekdays and weekly cells.
    weekly: bool,
    /// The local weekday.
    weekday: usize,
    /// The shift regression, on rising slopes and on falling ones.
    shift_sums: [ShiftSums; 2],
    /// Hour cells (a bit each) fed today by buckets that a window later
    /// found anomalous: tonight teaches them nothing.
    #[serde(default)]
    tainted: u32,
}

/// Sums of the shift regression: Σ w·slope·residual, Σ w·slope²,
/// Σ w·residual².
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct ShiftSums {
    slope_residual: f64,
    slope_slope: f64,
    residual_residual: f64,
}

impl ShiftSums {
    fn add(&mut self, w: f64, g: f64, r: f64) {
        self.slope_residual += w * g * r;
        self.slope_slope += w * g * g;
        self.residual_residual += w * r * r;
    }

    /// The shift these buckets say, in seconds, and its z-score.
    fn estimate(&self) -> (f64, f64) {
        if self.slope_slope > 0.0 {
            (
                self.slope_residual / self.slope_slope,
                self.slope_residual / self.slope_slope.sqrt(),
            )
        } else {
            (0.0, 0.0)
        }
    }
}

/// Level × seasonal profile; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    bucket_width: i64,
    daily: bool,
    weekly: bool,
    /// NaN until the first value.
    #[serde(with = "super::nan")]
    level: f64,
    level_precision: f64,
    day: Vec<Cell>,
    weekday: Vec<Cell>,
    week: Vec<Cell>,
    /// Local day of the last bucket learnt (the day's sums are learnt when
    /// it changes); `i64::MIN` before the first.
    last_day: i64,
    /// The day being summed.
    today: Today,
    /// The last seven days' levels (their totals over their expected
    /// shape, without level and weekday), by weekday; 0 for a weekday not
    /// seen. A weekday's factor is its level over the week's average: no
    /// learnt level enters it, so it is not biased by where that level
    /// stood (after a first weekend it stood low).
    week_days: [f32; 7],
    /// Forgetting: the level's per bucket, the factors' per visit.
    keep: [f64; 4],
    /// Seconds added to local time before reading the cells (see the
    /// module docs).
    shift: f64,
    /// Local days learnt.
    days: u32,
}

/// Interpolation between hourly cells `0..n` at hour position `h` (hours
/// since the start of the cycle, of the bucket's centre).
#[inline]
fn between(h: f64, n: usize) -> (usize, usize, f64) {
    let x = h - 0.5;
    let i = x.floor();
    let frac = x - i;
    let i0 = (i as i64).rem_euclid(n as i64) as usize;
    (i0, (i0 + 1) % n, frac)
}

impl Profile {
    /// An empty profile for `bucket_width`-second buckets.
    pub fn new(bucket_width: i64, seasonality: Seasonality) -> Self {
        let width = bucket_width.max(1);
        // An hourly shape needs buckets shorter than a few hours to show;
        // weekdays need buckets of at most a day.
        let daily = !matches!(seasonality, Seasonality::None) && width * 4 <= DAY;
        let weekly = matches!(seasonality, Seasonality::Weekly | Seasonality::Auto) && width <= DAY;
        let per_day = DAY as f64 / width as f64;
        let keep = |memory: f64| 1.0 - 1.0 / memory.max(2.0);
        Self {
            bucket_width: width,
            daily,
            weekly,
            level: f64::NAN,
            level_precision: 0.0,
            day: if daily {
                vec![Cell::prior(DAY_PRIOR_SD); 24]
            } else {
                Vec::new()
            },
            weekday: if weekly {
                vec![Cell::prior(WEEKDAY_PRIOR_SD); 7]
            } else {
                Vec::new()
            },
            week: if weekly && daily {
                vec![Cell::prior(WEEK_PRIOR_SD); 168]
            } else {
                Vec::new()
            },
            last_day: i64::MIN,
            week_days: [0.0; 7],
            today: Today {
                hours: if daily {
                    vec![HourSums::default(); 24]
                } else {
                    Vec::new()
                },
                ..Today::default()
            },
            keep: [
                keep(LEVEL_MEMORY_DAYS * per_day),
                keep(DAY_MEMORY_VISITS),
                keep(WEEKDAY_MEMORY_VISITS),
                keep(WEEK_MEMORY_VISITS),
            ],
            shift: 0.0,
            days: 0,
        }
    }

    /// Whether anything has been learnt.
    pub fn started(&self) -> bool {
        self.level.is_finite()
    }

    /// The cells a bucket starting at `local_time` reads.
    #[inline]
    pub fn position(&self, local_time: i64) -> Position {
        let shifted = local_time + self.shift.round() as i64;
        Self::at_centre(shifted + self.bucket_width / 2, shifted.div_euclid(DAY))
    }

    /// The cells read at `centre`, shifted local time.
    #[inline]
    fn at_centre(centre: i64, local_day: i64) -> Position {
        let in_day = centre.rem_euclid(DAY) as f64 / HOUR as f64;
        let in_week = (centre - MONDAY_SHIFT).rem_euclid(WEEK) as f64 / HOUR as f64;
        Position {
            day: between(in_day, 24),
            weekday: ((centre - MONDAY_SHIFT).div_euclid(DAY)).rem_euclid(7) as usize,
            week: between(in_week, 168),
            local_day,
            centre,
        }
    }

    /// The profile's relative slope at `at`, per second: how much a
    /// bucket's expectation changes, as a share, if the day moves by a
    /// second.
    fn slope(&self, at: &Position) -> f64 {
        let factor = |c: i64| self.factor(&Self::at_centre(c, at.local_day));
        let here = factor(at.centre);
        if here <= 0.0 {
            return 0.0;
        }
        let (before, after) = (
            factor(at.centre - SLOPE_HALF_SPAN),
            factor(at.centre + SLOPE_HALF_SPAN),
        );
        (after - before) / (2 * SLOPE_HALF_SPAN) as f64 / here
    }

    /// Seconds the profile is read ahead of local time.
    pub fn shift(&self) -> f64 {
        self.shift
    }

    /// The seasonal factor at `at` alone: [`Self::seasonal`]'s first part,
    /// without the variances' divisions (the slope reads it three times a
    /// bucket).
    #[inline]
    fn factor(&self, at: &Position) -> f64 {
        let mut factor = 1.0;
        if self.daily {
            let (i, j, f) = at.day;
            factor *= (1.0 - f) * self.day[i].value() + f * self.day[j].value();
        }
        if self.weekly {
            factor *= self.weekday[at.weekday].value();
            if self.daily {
                let (i, j, f) = at.week;
                factor *= (1.0 - f) * self.week[i].value() + f * self.week[j].value();
            }
        }
        factor
    }

    /// The seasonal factor at `at` (1 without seasonality) and its relative
    /// variance (how uncertain the profile is there, level included), in
    /// two parts: what the buckets of a window share (level, weekday, and
    /// the hour-of-week cells: a weekday's own shape, such as a Sunday's
    /// late morning, errs the same way for hours, so a window does not
    /// average it away), and what is particular to the hour (the daily
    /// cells, learnt from every day), which a window spanning several
    /// hours averages over.
    #[inline]
    pub fn seasonal(&self, at: &Position) -> (f64, f64, f64) {
        let mut factor = 1.0;
        let mut shared = 1.0 / self.level_precision.max(1e-9);
        let mut hourly = 0.0;
        if self.daily {
            let (i, j, f) = at.day;
            let (a, b) = (&self.day[i], &self.day[j]);
            factor *= (1.0 - f) * a.value() + f * b.value();
            hourly += (1.0 - f) * a.rel_var() + f * b.rel_var();
        }
        if self.weekly {
            let w = &self.weekday[at.weekday];
            factor *= w.value();
            shared += w.rel_var();
            if self.daily {
                let (i, j, f) = at.week;
                let (a, b) = (&self.week[i], &self.week[j]);
                factor *= (1.0 - f) * a.value() + f * b.value();
                shared += (1.0 - f) * a.rel_var() + f * b.rel_var();
            }
        }
        (factor, shared, hourly)
    }

    /// The level (NaN before the first value).
    pub fn level(&self) -> f64 {
        self.level
    }

    /// The level's precision (relative).
    pub fn level_precision(&self) -> f64 {
        self.level_precision
    }

    /// Folds in `value` (already clipped by the caller). `noise_var` is the
    /// bucket's noise variance, `kappa2` the series' relative model error,
    /// `weight` the caller's learning weight (1 for an ordinary bucket,
    /// small for an anomalous one). The level learns now, with the
    /// bucket's precision capped by the model error a day's buckets share;
    /// the seasonal factors learn at the end of the local day (see the
    /// module docs). `weekly` says whether the bucket may teach weekdays and
    /// weekly cells: not on the first day, when the level and the daily
    /// shape are still finding each other.
    #[allow(clippy::too_many_arguments)]
    pub fn learn(
        &mut self,
        at: &Position,
        value: f64,
        noise_var: f64,
        kappa2: f64,
        weight: f64,
        floor: f64,
        weekly: bool,
    ) {
        // A day ends when a later one starts; a shift moved back at
        // midnight leaves a bucket or two in the day just learnt, which
        // count for the day under way.
        if at.local_day > self.last_day {
            if self.last_day != i64::MIN {
                self.end_of_day(kappa2);
            }
            self.last_day = at.local_day;
            self.today.weekly = weekly;
            self.today.weekday = at.weekday;
        }
        self.today.weekly &= weekly;
        let (factor, shared, hourly) = self.seasonal(at);
        // How uncertain the season is here, apart from the level: a bucket
        // of a weekday never seen says little about the level (it would
        // read the first weekend's dip as the level falling).
        let season_rel = shared - 1.0 / self.level_precision.max(1e-9) + hourly;
        if !self.level.is_finite() {
            self.level = (value / factor).max(0.0);
            self.level_precision = weight.max(1e-9);
            return;
        }
        let per_day = (DAY as f64 / self.bucket_width as f64).max(1.0);
        // Weighted at the expectation, never at the value: weighting busy
        // buckets by what they turned out to be would bias a quiet series'
        // level upwards (its buckets with events would count more than its
        // empty ones). The caller's noise variance is at the same scale,
        // floored at a hundredth of an event.
        let scale = (self.level * factor).max(floor).max(1e-300);
        let noise_rel = noise_var / (scale * scale);
        let pi = weight / (noise_rel + per_day * kappa2 + per_day * season_rel.max(0.0)).max(1e-12);
        let level_p = self.level_precision * self.keep[0] + pi;
        if level_p > 0.0 {
            self.level += pi * (value / factor - self.level) / level_p;
            self.level = self.level.max(0.0);
            self.level_precision = level_p;
        }
        if weight <= 0.0 {
            return;
        }
        // The day's sums. The weekday factor is not in the hour cells'
        // "rest": it is learnt first, from the day, and the hours after it.
        let week = self.week_factor(at);
        let day = self.day_factor(at);
        let t = &mut self.today;
        t.x += weight * value;
        t.shape += weight * day * week;
        t.var += weight * noise_var;
        if self.daily {
            let (i, j, f) = at.day;
            for (h, k) in [(i, 1.0 - f), (j, f)] {
                let c = &mut t.hours[h];
                c.x += (weight * k * value) as f32;
                c.rest += (weight * k * week) as f32;
                c.var += (weight * k * k * noise_var) as f32;
                c.k += (weight * k) as f32;
            }
        }
    }

    /// Keeps the hour cells fed today by the `buckets` buckets ending at
    /// `local_time` (the last one's start, local time) out of tonight's
    /// learning. A slow decline, or a small drop, is caught by a window
    /// some buckets after it began, and those buckets, each normal enough
    /// on its own, were learnt in full: the hour-of-week cells then
    /// expected the same hours a week later to be as low, and read the
    /// normal traffic as a spike (most false alerts of the scenario
    /// suite's ×1 and ×10 shops fell on the Wednesday after its slow
    /// decline). Buckets of an earlier day were learnt at its midnight
    /// and stay learnt.
    pub fn taint(&mut self, local_time: i64, buckets: usize) {
        if !self.daily {
            return;
        }
        for n in 0..buckets {
            let at = self.position(local_time - n as i64 * self.bucket_width);
            if at.local_day != self.last_day {
                break;
            }
            let (i, j, _) = at.day;
            self.today.tainted |= (1 << i) | (1 << j);
        }
    }

    /// A bucket kept out of learning (weight 0): it only ends the day
    /// before it, whose sums are learnt at its midnight as usual. A local
    /// day all of whose buckets are skipped sums nothing, so it teaches no
    /// weekday, hour or hour-of-week cell; one partly skipped teaches them
    /// from its other buckets only (each cell from the buckets that fell in
    /// it, the weekday from those buckets' total against their expected
    /// shape).
    pub fn skip(&mut self, at: &Position, kappa2: f64) {
        if !self.started() {
            return;
        }
        if at.local_day > self.last_day {
            if self.last_day != i64::MIN {
                self.end_of_day(kappa2);
            }
            self.last_day = at.local_day;
            // The day's other buckets may still teach weekdays: each ANDs
            // its own flag in.
            self.today.weekly = true;
            self.today.weekday = at.weekday;
        }
    }

    fn day_factor(&self, at: &Position) -> f64 {
        if !self.daily {
            return 1.0;
        }
        let (i, j, f) = at.day;
        (1.0 - f) * self.day[i].value() + f * self.day[j].value()
    }

    fn week_factor(&self, at: &Position) -> f64 {
        if !(self.weekly && self.daily) {
            return 1.0;
        }
        let (i, j, f) = at.week;
        (1.0 - f) * self.week[i].value() + f * self.week[j].value()
    }

    /// Learns the seasonal factors from the day that ended: the weekday,
    /// then each hour's share of the day, then the hour of the week.
    fn end_of_day(&mut self, kappa2: f64) {
        let t = std::mem::take(&mut self.today);
        self.days = self.days.saturating_add(1);
        self.learn_shift(&t);
        let level = self.level;
        // Relative precision of a visit: its noise over its expected
        // value, and the model error the whole visit shares.
        let pi = |expected: f64, var: f64| {
            if expected > 0.0 {
                1.0 / (var / (expected * expected) + kappa2).max(1e-12)
            } else {
                0.0
            }
        };
        let mut weekday = 1.0;
        if self.weekly && t.weekly && t.shape > 0.0 {
            self.week_days[t.weekday] = (t.x / t.shape) as f32;
            let seen: Vec<f64> = self
                .week_days
                .iter()
                .filter(|&&d| d > 0.0)
                .map(|&d| f64::from(d))
                .collect();
            let mean = seen.iter().sum::<f64>() / seen.len().max(1) as f64;
            let cell = &mut self.weekday[t.weekday];
            if mean > 0.0 {
                let expected = level * cell.value() * t.shape;
                let floor = Cell::prior(WEEKDAY_PRIOR_SD).precision as f64;
                cell.learn(
                    t.x / t.shape / mean,
                    pi(expected, t.var),
                    self.keep[2],
                    floor,
                );
            }
            weekday = cell.value();
        } else if self.weekly {
            weekday = self.weekday[t.weekday].value();
        }
        if self.daily {
            for (h, c) in t.hours.iter().enumerate() {
                let rest = f64::from(c.rest) * level * weekday;
                if rest <= 0.0 || t.tainted & (1 << h) != 0 {
                    continue;
                }
                let observed = f64::from(c.x) / rest;
                let p = pi(rest * self.day[h].value(), f64::from(c.var));
                let floor = Cell::prior(DAY_PRIOR_SD).precision as f64;
                self.day[h].learn(observed, p, self.keep[1], floor);
                if self.weekly && t.weekly {
                    // What is left for the hour of the week, after the
                    // weekday and the hour's share of the day.
                    let w = t.weekday * 24 + h;
                    let base = level * weekday * self.day[h].value() * f64::from(c.k);
                    if base > 0.0 {
                        let expected = base * self.week[w].value();
                        let floor = Cell::prior(WEEK_PRIOR_SD).precision as f64;
                        let p = pi(expected, f64::from(c.var));
                        self.week[w].learn(f64::from(c.x) / base, p, self.keep[3], floor);
                    }
                }
            }
        }
        self.normalise();
        self.today.hours = t.hours.into_iter().map(|_| HourSums::default()).collect();
    }

    /// Adds a bucket to the day's shift regression: `value` as observed
    /// (not clipped: a moved day's ramps are far outside the band),
    /// `noise_var` its noise variance, `kappa2` the model's relative error.
    /// A residual larger than any allowed shift could make (a drop to
    /// nothing on a flat afternoon) is no evidence of one and is left out.
    pub fn regress_shift(&mut self, at: &Position, value: f64, noise_var: f64, kappa2: f64) {
        if !(self.daily && self.days >= SHIFT_AFTER_DAYS && value.is_finite()) {
            return;
        }
        let expected = self.level * self.factor(at);
        // Also false for NaN.
        if expected.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return;
        }
        let rel_var = (noise_var / (expected * expected) + kappa2).max(1e-12);
        let g = self.slope(at);
        let r = value / expected - 1.0;
        if g == 0.0 || r.abs() > g.abs() * SHIFT_MAX + 4.0 * rel_var.sqrt() {
            return;
        }
        self.today.shift_sums[usize::from(g < 0.0)].add(1.0 / rel_var, g, r);
    }

    /// Moves the shift by what the day's regression says, if it says it
    /// clearly (see the module docs): the rising and the falling slopes
    /// each show the same move (an incident is on one of them), together
    /// by `SHIFT_Z` standard errors, explaining most of the residual.
    fn learn_shift(&mut self, t: &Today) {
        let [rising, falling] = t.shift_sums;
        let (up, z_up) = rising.estimate();
        let (down, z_down) = falling.estimate();
        let both = ShiftSums {
            slope_residual: rising.slope_residual + falling.slope_residual,
            slope_slope: rising.slope_slope + falling.slope_slope,
            residual_residual: rising.residual_residual + falling.residual_residual,
        };
        let (estimate, z) = both.estimate();
        if both.residual_residual <= 0.0 || up * down <= 0.0 {
            return;
        }
        let explained =
            both.slope_residual * both.slope_residual / both.slope_slope / both.residual_residual;
        if z.abs() >= SHIFT_Z
            && z_up.abs() >= SHIFT_Z_SIDE
            && z_down.abs() >= SHIFT_Z_SIDE
            && explained >= SHIFT_EXPLAINED
        {
            self.shift = (self.shift + estimate.clamp(-SHIFT_STEP_MAX, SHIFT_STEP_MAX))
                .clamp(-SHIFT_MAX, SHIFT_MAX);
        }
    }

    /// Scales the daily and weekday factors seen so far to average 1, the
    /// level taking the difference.
    fn normalise(&mut self) {
        for (cells, prior) in [
            (&mut self.day, DAY_PRIOR_SD),
            (&mut self.weekday, WEEKDAY_PRIOR_SD),
        ] {
            // Over the cells seen: one not seen yet stays the average (1),
            // and must not pull the seen ones towards it.
            let seen = Cell::prior(prior).precision * 1.5;
            let (sum, n) = cells
                .iter()
                .filter(|c| c.precision > seen)
                .fold((0.0, 0usize), |(s, n), c| (s + c.value(), n + 1));
            let mean = if n > 0 { sum / n as f64 } else { 1.0 };
            if mean > 0.0 && mean.is_finite() && n > 0 {
                for c in cells.iter_mut().filter(|c| c.precision > seen) {
                    c.value = (c.value() / mean) as f32;
                }
                self.level *= mean;
            }
        }
    }

    /// Bytes on the heap: the seasonal cells and the day's hourly sums.
    pub fn heap_bytes(&self) -> usize {
        (self.day.capacity() + self.weekday.capacity() + self.week.capacity())
            * std::mem::size_of::<Cell>()
            + self.today.hours.capacity() * std::mem::size_of::<HourSums>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONDAY: i64 = 1_704_067_200;

    #[test]
    fn a_visit_adds_the_precision_of_the_events_it_expected_or_saw_whichever_are_fewer() {
        let mut empty = Cell::prior(DAY_PRIOR_SD);
        empty.learn(0.0, 5.0, 1.0, 1.0);
        assert!(empty.value() < 0.25, "an empty visit pulls the value down");
        assert_eq!(
            empty.precision, 1.0,
            "but saw no events: no precision beyond the prior"
        );

        let mut half = Cell::prior(DAY_PRIOR_SD);
        half.learn(0.5, 4.0, 1.0, 1.0);
        assert!(
            (f64::from(half.precision) - 3.0).abs() < 1e-6,
            "1 + 4 x 0.5"
        );

        let mut busy = Cell::prior(DAY_PRIOR_SD);
        busy.learn(2.0, 4.0, 1.0, 1.0);
        assert!(
            (f64::from(busy.precision) - 5.0).abs() < 1e-6,
            "1 + the 4 expected"
        );
    }

    fn shape(t: i64) -> f64 {
        let hour = (t.rem_euclid(DAY)) as f64 / 3600.0;
        let weekend = if (t - MONDAY).rem_euclid(WEEK) >= 5 * DAY {
            0.7
        } else {
            1.0
        };
        weekend * (100.0 + 80.0 * ((hour - 9.0) / 24.0 * std::f64::consts::TAU).cos())
    }

    fn learn(p: &mut Profile, from: i64, to: i64, f: impl Fn(i64) -> f64) {
        let mut t = from;
        while t < to {
            let at = p.position(t);
            let x = f(t);
            p.learn(&at, x, x.max(1e-9), 1e-4, 1.0, 1e-9, t >= MONDAY + DAY);
            t += 300;
        }
    }

    #[test]
    fn learns_a_weekly_multiplicative_shape_within_a_few_percent() {
        let mut p = Profile::new(300, Seasonality::Auto);
        learn(&mut p, MONDAY, MONDAY + 3 * WEEK, shape);
        let mut worst: f64 = 0.0;
        let mut t = MONDAY + 3 * WEEK;
        while t < MONDAY + 4 * WEEK {
            let (s, _, _) = p.seasonal(&p.position(t));
            worst = worst.max((p.level() * s / shape(t) - 1.0).abs());
            t += 300;
        }
        // Noise-free data; what is left is the weekday factors still
        // converging in their third week.
        assert!(worst < 0.08, "worst relative error {worst}");
    }

    /// As [`learn`], with every bucket also in the shift regression.
    fn learn_shifting(p: &mut Profile, from: i64, to: i64, f: impl Fn(i64) -> f64) {
        let mut t = from;
        while t < to {
            let at = p.position(t);
            let x = f(t);
            p.learn(&at, x, x.max(1e-9), 1e-4, 1.0, 1e-9, t >= MONDAY + DAY);
            p.regress_shift(&at, x, x.max(1e-9), 1e-4);
            t += 300;
        }
    }

    #[test]
    fn a_day_that_moves_an_hour_is_followed_after_one_day() {
        let mut p = Profile::new(300, Seasonality::Auto);
        let start = MONDAY + 2 * WEEK;
        learn_shifting(&mut p, MONDAY, start, shape);
        assert_eq!(p.shift(), 0.0);
        // The clocks change: everything happens an hour earlier.
        let moved = |t: i64| shape(t + 3600);
        learn_shifting(&mut p, start, start + DAY, moved);
        // Learnt at midnight, from the day's slopes.
        let at = p.position(start + DAY);
        p.learn(&at, moved(start + DAY), 1.0, 1e-4, 1.0, 1e-9, true);
        assert!((p.shift() - 3600.0).abs() < 900.0, "shift {}", p.shift());
        let mut worst: f64 = 0.0;
        let mut t = start + DAY + 3600;
        while t < start + 2 * DAY {
            let (s, _, _) = p.seasonal(&p.position(t));
            worst = worst.max((p.level() * s / moved(t) - 1.0).abs());
            t += 300;
        }
        assert!(worst < 0.1, "worst relative error {worst}");
    }

    #[test]
    fn a_drop_on_the_evening_slope_does_not_move_the_day() {
        let mut p = Profile::new(300, Seasonality::Auto);
        let start = MONDAY + 2 * WEEK;
        learn_shifting(&mut p, MONDAY, start, shape);
        // Three hours at half, while the day winds down: the falling slope
        // alone says "later", the rising one nothing.
        let evening_outage = |t: i64| {
            let hour = (t - start) / 3600;
            shape(t) * if (18..21).contains(&hour) { 0.5 } else { 1.0 }
        };
        learn_shifting(&mut p, start, start + DAY + 300, evening_outage);
        assert_eq!(p.shift(), 0.0);
    }

    #[test]
    fn interpolation_follows_a_ramp_inside_an_hour() {
        let mut p = Profile::new(300, Seasonality::Daily);
        let ramp = |t: i64| 10.0 + (t.rem_euclid(DAY) as f64 / 3600.0) * 10.0;
        learn(&mut p, MONDAY, MONDAY + 14 * DAY, ramp);
        // 08:05 and 08:55 are expected differently, in the ramp's direction.
        let at = |m: i64| {
            let t = MONDAY + 14 * DAY + 8 * 3600 + m * 60;
            p.level() * p.seasonal(&p.position(t)).0
        };
        assert!(at(55) > at(5) + 5.0, "{} vs {}", at(5), at(55));
    }

    #[test]
    fn an_unseen_weekday_is_uncertain_until_it_is_seen() {
        let mut p = Profile::new(300, Seasonality::Auto);
        // Up to Saturday morning: Friday has been learnt at its midnight.
        learn(&mut p, MONDAY, MONDAY + 5 * DAY + 3600, shape);
        let saturday = p.position(MONDAY + 5 * DAY + 12 * 3600);
        let friday = p.position(MONDAY + 4 * DAY + 12 * 3600);
        let (_, u1, u2) = p.seasonal(&saturday);
        let unseen = u1 + u2;
        let (_, s1, s2) = p.seasonal(&friday);
        let seen = s1 + s2;
        assert!(unseen > 0.05 && unseen > 3.0 * seen, "{unseen} {seen}");
    }

    #[test]
    fn hours_that_are_not_learnt_do_not_move_the_expectation() {
        let mut p = Profile::new(300, Seasonality::Auto);
        learn(&mut p, MONDAY, MONDAY + 14 * DAY + 3600, shape);
        let noon = p.position(MONDAY + 14 * DAY + 12 * 3600);
        let before = p.level() * p.seasonal(&noon).0;
        let mut t = MONDAY + 14 * DAY + 3600;
        while t < MONDAY + 14 * DAY + 5 * 3600 {
            let at = p.position(t);
            let e = p.level() * p.seasonal(&at).0;
            p.learn(&at, 0.0, e, 1e-4, 0.0, 1e-9, true);
            t += 300;
        }
        let after = p.level() * p.seasonal(&noon).0;
        assert!((after / before - 1.0).abs() < 1e-6, "{before} {after}");
    }
}
