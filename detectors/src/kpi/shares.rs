//! A member's share of its group by local hour of day.
//!
//! A group's members do not keep one share all day: a country's evening
//! ends at its own hour, mobile takes the evening from the web, a node
//! behind a regional balancer follows its region's day. The ratio to
//! peers learnt over all hours ([`super::KpiModel`]'s `Peers`) is then
//! right on average and wrong by the hour, every night the same way, and
//! a model error that counted it would blunt every other hour too.
//!
//! So each of the 24 local hours keeps its own discounted sums of the
//! member's values and the rest's, and the hour's *factor* is its ratio
//! over the all-hours ratio of the same sums. The hours' factors are
//! shrunk toward 1 (empirical Bayes): each hour's factor is known to its
//! sampling error (about one over the events it was measured from, times
//! the dispersion), the factors' spread around 1 beyond that error is
//! measured across the 24 hours, and an hour keeps as much of its
//! departure from 1 as that spread is of the two together. A member whose
//! share is flat (a node of a fleet) then keeps a factor of 1 whatever its
//! hours' counts say; a country whose night share triples keeps most of
//! it once a few nights have been seen. What is left of the factor's
//! uncertainty is part of the hour's error against peers.
//!
//! The sums forget over a week of each hour (the weekend's hours count as
//! often as they occur); the all-hours ratio they are divided by forgets
//! as they do, so a member's share that grows moves the level
//! (`Peers`'s ratio, with its shorter memory), not the factors.

use serde::{Deserialize, Serialize};

/// Memory of an hour's sums, in days of that hour.
const MEMORY_DAYS: f64 = 7.0;

/// The hour-of-day shares of a member of a group; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourShares {
    own: [f32; 24],
    others: [f32; 24],
    /// The all-hours ratio of the sums, and the factors' spread around 1
    /// beyond their sampling error, squared (both measured when an hour
    /// ends).
    ratio: f32,
    spread2: f32,
}

impl Default for HourShares {
    fn default() -> Self {
        Self {
            own: [0.0; 24],
            others: [0.0; 24],
            ratio: f32::NAN,
            spread2: 0.0,
        }
    }
}

impl HourShares {
    /// Folds a bucket of local hour `hour` (0-23) in: the member's value
    /// and the rest's, with `weight` (small for an anomalous bucket), for
    /// series of `per_hour` buckets an hour.
    pub fn learn(&mut self, hour: usize, own: f64, others: f64, weight: f64, per_hour: f64) {
        let keep = 1.0 - 1.0 / (MEMORY_DAYS * per_hour).max(2.0);
        let h = hour % 24;
        self.own[h] = (f64::from(self.own[h]) * keep + weight * own) as f32;
        self.others[h] = (f64::from(self.others[h]) * keep + weight * others) as f32;
    }

    /// The all-hours ratio of the sums (NaN before anything was learnt).
    fn mean_ratio(&self) -> f64 {
        let own: f64 = self.own.iter().map(|&v| f64::from(v)).sum();
        let others: f64 = self.others.iter().map(|&v| f64::from(v)).sum();
        if others > 0.0 && own > 0.0 {
            own / others
        } else {
            f64::NAN
        }
    }

    /// Hour `h`'s raw factor and its sampling relative variance, given the
    /// all-hours ratio `ratio` and the values' `dispersion` (variance per
    /// unit): the member's sum is known to `dispersion / expected sum`,
    /// the rest's to `dispersion / its sum`. None for an hour without
    /// any of the rest's values.
    fn raw(&self, h: usize, ratio: f64, dispersion: f64) -> Option<(f64, f64)> {
        let others = f64::from(self.others[h]);
        if others <= 0.0 {
            return None;
        }
        let factor = f64::from(self.own[h]) / others / ratio;
        let var = dispersion * (1.0 / ratio + 1.0) / others;
        Some((factor, var))
    }

    /// Measures the all-hours ratio, and the factors' spread around 1
    /// beyond their sampling error: the precision-weighted mean of
    /// `(f - 1)² - var` over the hours (weights from the last spread
    /// measured), kept at 0 or above.
    pub fn refit(&mut self, dispersion: f64) {
        let ratio = self.mean_ratio();
        self.ratio = ratio as f32;
        if !ratio.is_finite() || dispersion.is_nan() || dispersion <= 0.0 {
            self.spread2 = 0.0;
            return;
        }
        let prior = f64::from(self.spread2).max(1e-4);
        let (mut sum, mut weights) = (0.0, 0.0);
        for h in 0..24 {
            if let Some((factor, var)) = self.raw(h, ratio, dispersion) {
                let w = 1.0 / (var + prior).powi(2);
                sum += w * ((factor - 1.0).powi(2) - var);
                weights += w;
            }
        }
        if weights > 0.0 {
            self.spread2 = (sum / weights).max(0.0) as f32;
        }
    }

    /// Hour `hour`'s factor, shrunk toward 1 by its sampling error against
    /// the hours' spread, and its remaining relative variance: (1, 0)
    /// while nothing sets the hour apart.
    pub fn factor(&self, hour: usize, dispersion: f64) -> (f64, f64) {
        let spread2 = f64::from(self.spread2);
        let ratio = f64::from(self.ratio);
        if spread2 <= 0.0 || !ratio.is_finite() {
            return (1.0, 0.0);
        }
        match self.raw(hour % 24, ratio, dispersion) {
            Some((factor, var)) => {
                let keep = spread2 / (spread2 + var);
                (1.0 + keep * (factor - 1.0), keep * var)
            }
            None => (1.0, spread2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member with `share(h)` of the group at hour h, `group` per bucket,
    /// 12 buckets an hour, over `days` days (expected values, no noise).
    fn learnt(days: usize, group: f64, share: impl Fn(usize) -> f64) -> HourShares {
        let mut s = HourShares::default();
        for _ in 0..days {
            for h in 0..24 {
                for _ in 0..12 {
                    let own = group * share(h);
                    s.learn(h, own, group - own, 1.0, 12.0);
                }
                s.refit(1.0);
            }
        }
        s
    }

    #[test]
    fn a_share_that_moves_with_the_hour_is_learnt_hour_by_hour() {
        // 10 % of the group by day, 30 % from 22:00 to 02:00.
        let night = |h: usize| if !(2..22).contains(&h) { 0.3 } else { 0.1 };
        let s = learnt(7, 1000.0, night);
        let (day, _) = s.factor(12, 1.0);
        let (late, var) = s.factor(23, 1.0);
        // Against the all-hours ratio (0.133 / 0.867 of the rest), the
        // night's ratio (0.3 / 0.7) is 2.8 times the day's (0.1 / 0.9).
        let ratio = (late / day) / ((0.3 / 0.7) / (0.1 / 0.9));
        assert!((ratio - 1.0).abs() < 0.01, "night over day {ratio}");
        assert!(var < 1e-3, "the factor is known: {var}");
    }

    #[test]
    fn a_flat_share_keeps_a_factor_of_one_whatever_its_hours_draw() {
        // Noise only: a quiet member (2 % of 50 a bucket, one event an
        // hour) whose hours' counts scatter as Poisson ones do.
        let mut s = HourShares::default();
        let mut state = 7_u64;
        for _ in 0..7 {
            for h in 0..24 {
                for _ in 0..12 {
                    // A Bernoulli draw of probability 0.02 × 50 / 12 a bucket.
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                    let own = if u < 1.0 / 12.0 { 1.0 } else { 0.0 };
                    s.learn(h, own, 49.0, 1.0, 12.0);
                }
                s.refit(1.0);
            }
        }
        for h in 0..24 {
            let (factor, _) = s.factor(h, 1.0);
            assert!((factor - 1.0).abs() < 0.15, "hour {h}: {factor}");
        }
    }

    #[test]
    fn nothing_learnt_sets_no_hour_apart() {
        assert_eq!(HourShares::default().factor(3, 1.0), (1.0, 0.0));
    }
}
