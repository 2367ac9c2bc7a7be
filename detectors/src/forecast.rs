//! Short-horizon forecaster for series without clear seasonality.
//!
//! Damped Holt (level + trend) in error-correction form:
//!
//! ```text
//! forecast = level + phi * trend            (one bucket ahead)
//! level'   = forecast + alpha * e           e = clipped residual
//! trend'   = phi * trend + alpha * beta * e
//! ```
//!
//! The residual scale is an exponentially-forgetting mean absolute
//! residual, and the prediction interval is `forecast ± z * sd` with `z` the
//! normal quantile for the configured coverage, taken once from `statrs` at
//! construction so the hot path multiplies instead of inverting a CDF.
//! Missing buckets are forecast through: a gap of `k` buckets projects the
//! damped trend `k` steps.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::stats::{normal_two_sided, MAD_TO_SD};
use crate::{Detector, Direction, Observation, Verdict};

/// Parameters of a [`Holt`] forecaster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HoltParams {
    /// Width of one bucket in seconds.
    pub bucket_width: i64,
    /// Level smoothing, in (0, 1].
    pub alpha: f64,
    /// Trend smoothing relative to `alpha`, in [0, 1].
    pub beta: f64,
    /// Trend damping per step, in [0, 1]; below 1 keeps long gaps sane.
    pub phi: f64,
    /// Forgetting rate of the residual scale.
    pub spread_alpha: f64,
    /// Huber clip, in spreads.
    pub clip: f64,
    /// Coverage of the prediction interval, e.g. 0.999.
    pub coverage: f64,
    /// Observations before the forecaster judges.
    pub warm_up: u32,
}

impl HoltParams {
    /// Defaults for `bucket_width`-second buckets.
    pub fn new(bucket_width: i64) -> Self {
        Self {
            bucket_width,
            alpha: 0.2,
            beta: 0.05,
            phi: 0.95,
            spread_alpha: 0.02,
            clip: 4.0,
            coverage: 0.999,
            warm_up: 12,
        }
    }
}

/// Damped Holt forecaster; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holt {
    params: HoltParams,
    /// Normal quantile for `params.coverage`.
    z: f64,
    level: f64,
    trend: f64,
    /// Mean absolute one-step residual.
    mad: f64,
    n: u32,
    last_time: i64,
}

impl Holt {
    /// An empty forecaster.
    pub fn new(params: HoltParams) -> Self {
        let coverage = params.coverage.clamp(0.5, 1.0 - 1e-12);
        let z = Normal::new(0.0, 1.0)
            .map(|n| n.inverse_cdf(0.5 + coverage / 2.0))
            .unwrap_or(3.29);
        Self {
            params,
            z,
            level: 0.0,
            trend: 0.0,
            mad: 0.0,
            n: 0,
            last_time: 0,
        }
    }

    /// Observations learned so far (saturating).
    pub fn seen(&self) -> u32 {
        self.n
    }

    /// Whether a forecast for `time` is still a short-horizon one: within
    /// the level's memory (about `1/alpha` buckets) of the last value seen.
    /// Across a longer gap the forecast is only the last level carried
    /// forward, which explains nothing about a seasonal series.
    #[inline]
    pub fn within_horizon(&self, time: i64) -> bool {
        f64::from(self.steps_to(time)) <= (1.0 / self.params.alpha.max(1e-3)).ceil()
    }

    fn steps_to(&self, time: i64) -> i32 {
        let w = self.params.bucket_width.max(1);
        ((time - self.last_time) / w).clamp(1, 10_000) as i32
    }

    /// The forecast for `time` and its residual scale, once warm.
    #[inline]
    pub fn expect(&self, time: i64, floor: f64) -> Option<(f64, f64)> {
        if self.n < self.params.warm_up.max(2) {
            return None;
        }
        Some((self.forecast(time), (self.mad * MAD_TO_SD).max(floor)))
    }

    #[inline]
    fn forecast(&self, time: i64) -> f64 {
        let phi = self.params.phi;
        let k = self.steps_to(time);
        let damp = if phi >= 1.0 {
            f64::from(k)
        } else if k == 1 {
            phi
        } else {
            phi * (1.0 - phi.powi(k)) / (1.0 - phi)
        };
        self.level + damp * self.trend
    }

    /// Folds in `value` observed at `time`; `floor` is the smallest spread.
    pub fn learn_value(&mut self, time: i64, value: f64, floor: f64) {
        let p = self.params;
        if crate::set::is_absurd(value) {
            // Refused: two such values of opposite sign overflow the level.
            return;
        }
        if self.n == 0 {
            self.level = value;
            self.n = 1;
            self.last_time = time;
            return;
        }
        let k = self.steps_to(time);
        let forecast = self.forecast(time);
        let e = value - forecast;
        let sd = (self.mad * MAD_TO_SD).max(floor);
        let e_clipped = if self.n > p.warm_up {
            e.clamp(-p.clip * sd, p.clip * sd)
        } else {
            e
        };
        let a = p.spread_alpha.max(1.0 / f64::from(self.n));
        self.mad += a * (e_clipped.abs() - self.mad);
        self.level = forecast + p.alpha * e_clipped;
        self.trend = self.trend * p.phi.powi(k) + p.alpha * p.beta * e_clipped;
        self.n = self.n.saturating_add(1);
        self.last_time = time;
    }
}

impl Detector for Holt {
    fn score(&self, obs: &Observation) -> Verdict {
        let Some((expected, sd)) = self.expect(obs.time, 1e-9) else {
            return Verdict::warming_up(obs.value);
        };
        let z = (obs.value - expected) / sd;
        let absurd = crate::set::is_absurd(obs.value);
        Verdict {
            expected,
            lower: expected - self.z * sd,
            upper: expected + self.z * sd,
            score: if absurd {
                1.0
            } else {
                1.0 - normal_two_sided(z)
            },
            direction: Direction::of(obs.value, expected),
            warming_up: false,
        }
    }

    fn learn(&mut self, obs: &Observation) {
        self.learn_value(obs.time, obs.value, 1e-9);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_linear_trend() {
        let mut h = Holt::new(HoltParams::new(60));
        for i in 0..500 {
            h.learn_value(i * 60, 10.0 + 0.5 * i as f64, 1e-9);
        }
        let (f, _) = h.expect(500 * 60, 1e-9).unwrap();
        assert!((f - 260.0).abs() < 2.0, "forecast {f}");
    }

    #[test]
    fn flags_a_jump_as_a_spike_outside_the_band() {
        let mut h = Holt::new(HoltParams::new(60));
        for i in 0..200 {
            h.observe(&Observation::utc(i * 60, 100.0 + (i % 5) as f64));
        }
        let v = h.score(&Observation::utc(200 * 60, 200.0));
        assert_eq!(v.direction, Direction::Spike);
        assert!(200.0 > v.upper, "band {}..{}", v.lower, v.upper);
        assert!(v.score > 0.999, "score {}", v.score);
    }

    #[test]
    fn a_gap_projects_the_damped_trend_without_exploding() {
        let mut h = Holt::new(HoltParams::new(60));
        for i in 0..100 {
            h.learn_value(i * 60, i as f64, 1e-9);
        }
        let (f, _) = h.expect(100_000 * 60, 1e-9).unwrap();
        assert!(f.is_finite() && f < 200.0, "forecast {f}");
    }

    #[test]
    fn interval_quantile_comes_from_the_configured_coverage() {
        let h = Holt::new(HoltParams {
            coverage: 0.95,
            ..HoltParams::new(60)
        });
        assert!((h.z - 1.959_964).abs() < 1e-5);
    }
}
