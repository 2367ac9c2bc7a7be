//! Seasonal baseline: a robust level and spread per season slot.
//!
//! The model is additive: `expected = level + offset[slot]`. `level` is the
//! deseasonalised level and drifts slowly (exponential forgetting), so a KPI
//! that grows 1 % a week does not look anomalous every Monday; `offset[slot]`
//! is how this slot (say, Tuesday 14:00–15:00 local time) usually differs
//! from the level, and `spread[slot]` how much it varies. All updates are
//! Huber-clipped, so an incident does not teach the baseline that the
//! incident is normal — it takes a sustained change to move it.
//!
//! Slots that have not been seen often enough answer `None`; the caller
//! ([`crate::set::DetectorSet`]) then falls back to a coarser season or to
//! the non-seasonal forecaster, so the first weeks are not silent.
//!
//! Per-slot state is `f32` on purpose: a weekly baseline at one-hour slots
//! is 168 slots × 9 bytes, which keeps a whole series under 4 KiB and a
//! million series in a few GiB.

use serde::{Deserialize, Serialize};

use crate::stats::{RobustEw, MAD_TO_SD};

const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;
/// 1970-01-01 was a Thursday; shifting by four days makes slot 0 of a
/// weekly season start on Monday 00:00 local time.
const MONDAY_SHIFT: i64 = 4 * DAY;

/// Which seasonal pattern a series follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Seasonality {
    /// No seasonal pattern: only the non-seasonal forecaster is used.
    None,
    /// Hour-of-day pattern.
    Daily,
    /// Hour-of-week pattern (falls back to hour-of-day while weekly slots
    /// are still empty).
    Weekly,
    /// Let the series decide: weekly, daily and non-seasonal baselines run
    /// side by side and the one with the smallest recent error is used.
    #[default]
    Auto,
}

/// Parameters of a [`SeasonalBaseline`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeasonalParams {
    /// Length of the season in seconds (a day or a week).
    pub period: i64,
    /// Width of one slot in seconds; divides `period`.
    pub slot_width: i64,
    /// Width of one bucket in seconds.
    pub bucket_width: i64,
    /// Forgetting rate of the deseasonalised level, per observation.
    pub level_alpha: f64,
    /// Smallest forgetting rate of a slot's offset and spread, per
    /// observation falling in that slot.
    pub slot_alpha: f64,
    /// Huber clip, in spreads.
    pub clip: f64,
    /// Observations a slot needs before it is trusted.
    pub min_slot_obs: u8,
}

impl SeasonalParams {
    /// Slot geometry for a season of `period` seconds at `bucket_width`
    /// seconds per bucket, or `None` when the season is not resolvable (a
    /// bucket of a day cannot show a daily pattern).
    pub fn for_period(period: i64, bucket_width: i64) -> Option<Self> {
        if bucket_width <= 0 || bucket_width * 4 > period {
            return None;
        }
        // Hour slots when buckets are finer than an hour: 12 five-minute
        // buckets per slot learn the slot 12x faster than 5-minute slots
        // would, and the hour-to-hour shape of business traffic is smooth.
        let slot_width = bucket_width.max(3600);
        if period % slot_width != 0 {
            return None;
        }
        let obs_per_slot_pass = (slot_width / bucket_width).max(1);
        let passes_per_obs = 1.0 / obs_per_slot_pass as f64;
        let slots = (period / slot_width) as f64;
        Some(Self {
            period,
            slot_width,
            bucket_width,
            // The level forgets over roughly two seasons.
            level_alpha: (1.0 / (2.0 * slots * obs_per_slot_pass as f64)).min(0.1),
            // A slot forgets over roughly eight passes.
            slot_alpha: (passes_per_obs / 8.0).min(0.5),
            clip: 3.0,
            min_slot_obs: (obs_per_slot_pass.min(12) as u8).max(2),
        })
    }

    /// Daily (hour-of-day) slots for this bucket width.
    pub fn daily(bucket_width: i64) -> Option<Self> {
        Self::for_period(DAY, bucket_width)
    }

    /// Weekly (hour-of-week) slots for this bucket width.
    pub fn weekly(bucket_width: i64) -> Option<Self> {
        Self::for_period(WEEK, bucket_width)
    }

    fn slots(&self) -> usize {
        (self.period / self.slot_width) as usize
    }
}

/// What a baseline expects for one observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    /// Expected value.
    pub expected: f64,
    /// Standard-deviation-like spread around it.
    pub sd: f64,
}

/// Robust seasonal baseline; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeasonalBaseline {
    params: SeasonalParams,
    /// Deseasonalised level and its spread.
    level: RobustEw,
    /// Per slot: usual difference from `level`.
    offset: Vec<f32>,
    /// Per slot: mean absolute residual.
    spread: Vec<f32>,
    /// Per slot: observations seen, saturating.
    seen: Vec<u8>,
}

impl SeasonalBaseline {
    /// An empty baseline.
    pub fn new(params: SeasonalParams) -> Self {
        let slots = params.slots();
        Self {
            params,
            level: RobustEw::default(),
            offset: vec![0.0; slots],
            spread: vec![0.0; slots],
            seen: vec![0; slots],
        }
    }

    /// The slot geometry and rates.
    pub fn params(&self) -> &SeasonalParams {
        &self.params
    }

    /// Index of the slot `local_time` falls in.
    #[inline]
    pub fn slot_of(&self, local_time: i64) -> usize {
        self.slot_of_period(self.period_of(local_time))
    }

    /// Number of whole slot widths from the first Monday 00:00 to
    /// `local_time`. Baselines with the same slot width share it, so a
    /// caller running several seasons divides by the width once.
    #[inline]
    pub fn period_of(&self, local_time: i64) -> i64 {
        (local_time - MONDAY_SHIFT).div_euclid(self.params.slot_width)
    }

    /// Slot of the `period_of` index `q`.
    #[inline]
    pub fn slot_of_period(&self, q: i64) -> usize {
        q.rem_euclid(self.offset.len() as i64) as usize
    }

    /// Number of slots in the season.
    #[inline]
    pub fn slots(&self) -> usize {
        self.offset.len()
    }

    /// What this baseline expects at `local_time`, or `None` while that
    /// slot has not been seen often enough. `floor` is the smallest spread.
    #[inline]
    pub fn expect(&self, local_time: i64, floor: f64) -> Option<Expectation> {
        self.expect_slot(self.slot_of(local_time), floor)
    }

    /// [`Self::expect`] for a slot the caller has already located.
    #[inline]
    pub fn expect_slot(&self, slot: usize, floor: f64) -> Option<Expectation> {
        if self.seen[slot] < self.params.min_slot_obs {
            return None;
        }
        Some(Expectation {
            expected: self.level.mean + f64::from(self.offset[slot]),
            sd: (f64::from(self.spread[slot]) * MAD_TO_SD).max(floor),
        })
    }

    /// Folds in `value` observed at `local_time`.
    pub fn learn(&mut self, local_time: i64, value: f64, floor: f64) {
        self.learn_slot(self.slot_of(local_time), value, floor);
    }

    /// [`Self::learn`] for a slot the caller has already located.
    pub fn learn_slot(&mut self, slot: usize, value: f64, floor: f64) {
        let p = self.params;
        if self.level.n == 0 {
            self.level.update(value, p.level_alpha, p.clip, floor);
        }
        let seen = self.seen[slot];
        let offset = f64::from(self.offset[slot]);
        let spread = f64::from(self.spread[slot]);
        let expected = self.level.mean + offset;
        let residual = value - expected;
        let (new_offset, new_spread) = if seen == 0 {
            (value - self.level.mean, self.level.mad)
        } else {
            let a = p.slot_alpha.max(1.0 / (f64::from(seen) + 1.0));
            let limit = p.clip * (spread * MAD_TO_SD).max(floor);
            let clipped = if seen >= p.min_slot_obs {
                residual.clamp(-limit, limit)
            } else {
                residual
            };
            (offset + a * clipped, spread + a * (clipped.abs() - spread))
        };
        self.offset[slot] = new_offset as f32;
        self.spread[slot] = new_spread as f32;
        self.seen[slot] = seen.saturating_add(1);
        if self.level.n > 0 {
            // The level learns from the deseasonalised value, so it follows
            // slow drift without absorbing the daily shape.
            self.level
                .update(value - new_offset, p.level_alpha, p.clip, floor);
        }
    }

    /// Heap bytes held by the per-slot arrays.
    pub fn heap_bytes(&self) -> usize {
        self.offset.capacity() * 4 + self.spread.capacity() * 4 + self.seen.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daily_shape(t: i64) -> f64 {
        let hour = (t.rem_euclid(DAY) / 3600) as f64;
        100.0 + 50.0 * (hour / 24.0 * std::f64::consts::TAU).sin()
    }

    #[test]
    fn learns_a_daily_shape_and_expects_it() {
        let p = SeasonalParams::daily(300).unwrap();
        let mut b = SeasonalBaseline::new(p);
        for i in 0..(14 * 288) {
            let t = i * 300;
            b.learn(t, daily_shape(t), 1e-6);
        }
        let t = 15 * DAY + 6 * 3600 + 600;
        let e = b.expect(t, 1e-6).unwrap();
        assert!((e.expected - daily_shape(t)).abs() < 2.0, "{e:?}");
    }

    #[test]
    fn unseen_slots_answer_none() {
        let p = SeasonalParams::weekly(300).unwrap();
        let mut b = SeasonalBaseline::new(p);
        b.learn(0, 1.0, 1e-6);
        assert!(b.expect(3 * DAY, 1e-6).is_none());
    }

    #[test]
    fn weekly_slot_zero_is_monday_midnight() {
        let b = SeasonalBaseline::new(SeasonalParams::weekly(3600).unwrap());
        // 2024-01-01 was a Monday.
        assert_eq!(b.slot_of(1_704_067_200), 0);
        assert_eq!(b.slot_of(1_704_067_200 + 25 * 3600), 25);
    }

    #[test]
    fn bucket_too_wide_for_the_season_gives_no_geometry() {
        assert!(SeasonalParams::daily(DAY).is_none());
        assert!(SeasonalParams::weekly(DAY).is_some());
    }
}
