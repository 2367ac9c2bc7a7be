//! Level-shift detection: two-sided CUSUM on standardised residuals.
//!
//! A checkout rate that drops 25 % and stays there produces residuals of
//! about -1.5 spreads: no single bucket is alarming, but their sum is.
//! CUSUM accumulates `z - k` (and `-z - k`) and forgets below zero, so it
//! grows only under a sustained shift of more than `k` spreads. Under the
//! null hypothesis the statistic's tail is close to exponential,
//! `P(S > s) ≈ exp(-2 k s)` (Siegmund), which turns it into a tail
//! probability comparable with the point detectors'.

use serde::{Deserialize, Serialize};

use crate::stats::RobustEw;
use crate::{Detector, Direction, Observation, Verdict};

/// Parameters of a [`Cusum`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CusumParams {
    /// Slack per observation, in spreads: shifts smaller than this are
    /// ignored.
    pub slack: f64,
    /// Residuals are clipped to ±`z_clip` before accumulating, so a single
    /// huge outlier is a point anomaly, not a level shift.
    pub z_clip: f64,
    /// Largest value either sum may reach; bounds the time to recover
    /// after a shift has been absorbed by the baseline.
    pub cap: f64,
}

impl Default for CusumParams {
    fn default() -> Self {
        Self {
            slack: 0.5,
            z_clip: 4.0,
            cap: 30.0,
        }
    }
}

/// The two CUSUM sums.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cusum {
    params: CusumParams,
    /// Evidence for an upward shift.
    up: f64,
    /// Evidence for a downward shift.
    down: f64,
}

impl Cusum {
    /// Both sums at zero.
    pub fn new(params: CusumParams) -> Self {
        Self {
            params,
            up: 0.0,
            down: 0.0,
        }
    }

    /// The sums after a residual of `z` spreads, without storing them.
    #[inline]
    pub fn peek(&self, z: f64) -> (f64, f64) {
        let p = self.params;
        let z = z.clamp(-p.z_clip, p.z_clip);
        let up = (self.up + z - p.slack).clamp(0.0, p.cap);
        let down = (self.down - z - p.slack).clamp(0.0, p.cap);
        (up, down)
    }

    /// Stores the sums after a residual of `z` spreads.
    #[inline]
    pub fn push(&mut self, z: f64) {
        (self.up, self.down) = self.peek(z);
    }

    /// The larger of the two sums.
    #[inline]
    pub fn level(&self) -> f64 {
        self.up.max(self.down)
    }

    /// -ln of the approximate null tail probability of the larger sum.
    #[inline]
    pub fn neg_ln_tail(&self, sums: (f64, f64)) -> f64 {
        2.0 * self.params.slack * sums.0.max(sums.1)
    }

    /// Approximate null tail probability of the larger sum.
    #[inline]
    pub fn tail(&self, sums: (f64, f64)) -> f64 {
        (-self.neg_ln_tail(sums)).exp()
    }
}

/// CUSUM as a stand-alone detector against its own slowly-forgetting
/// robust reference level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelShift {
    cusum: Cusum,
    reference: RobustEw,
    alpha: f64,
    warm_up: u32,
}

impl LevelShift {
    /// A detector whose reference forgets at `alpha` per observation.
    pub fn new(params: CusumParams, alpha: f64) -> Self {
        Self {
            cusum: Cusum::new(params),
            reference: RobustEw::default(),
            alpha,
            warm_up: 12,
        }
    }

    fn z(&self, value: f64) -> f64 {
        (value - self.reference.mean) / self.reference.sd(1e-9 + 1e-6 * self.reference.mean.abs())
    }
}

impl Detector for LevelShift {
    fn score(&self, obs: &Observation) -> Verdict {
        if self.reference.n < self.warm_up {
            return Verdict::warming_up(obs.value);
        }
        let absurd = crate::set::is_absurd(obs.value);
        let sums = self.cusum.peek(self.z(obs.value));
        let sd = self.reference.sd(1e-9);
        let expected = self.reference.mean;
        let direction = if sums.0 > sums.1 {
            Direction::Spike
        } else if sums.1 > sums.0 {
            Direction::Drop
        } else {
            Direction::None
        };
        Verdict {
            expected,
            lower: expected - 3.0 * sd,
            upper: expected + 3.0 * sd,
            score: if absurd {
                1.0
            } else {
                1.0 - self.cusum.tail(sums)
            },
            direction,
            warming_up: false,
        }
    }

    fn learn(&mut self, obs: &Observation) {
        if crate::set::is_absurd(obs.value) {
            // Refused, like the set does: see `crate::set::ABSURD`.
            return;
        }
        if self.reference.n >= self.warm_up {
            self.cusum.push(self.z(obs.value));
        }
        self.reference.update(obs.value, self.alpha, 3.0, 1e-9);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(i: i64) -> f64 {
        100.0 + [-4.0, 3.0, -1.0, 5.0, -2.0, 0.0, 2.0, -3.0][(i % 8) as usize]
    }

    #[test]
    fn a_sustained_25_percent_drop_is_caught_though_each_point_is_plausible() {
        let mut d = LevelShift::new(CusumParams::default(), 0.001);
        for i in 0..500 {
            d.observe(&Observation::utc(i * 60, noisy(i)));
        }
        let mut last = None;
        for i in 500..530 {
            let v = d.observe(&Observation::utc(i * 60, noisy(i) * 0.75 + 20.0));
            last = Some(v);
        }
        let v = last.unwrap();
        assert_eq!(v.direction, Direction::Drop);
        assert!(v.score > 0.999, "score {}", v.score);
    }

    #[test]
    fn stationary_noise_keeps_the_sums_low() {
        let mut d = LevelShift::new(CusumParams::default(), 0.01);
        let mut worst: f64 = 0.0;
        for i in 0..2000 {
            worst = worst.max(d.observe(&Observation::utc(i * 60, noisy(i))).score);
        }
        assert!(worst < 0.99, "worst score {worst}");
    }
}
