//! Small numeric helpers shared by the detectors: normal tails and robust,
//! exponentially-forgetting estimates of location and spread.

use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc;

/// Ratio of the standard deviation to the mean absolute deviation of a normal
/// distribution (sqrt(pi/2)); turns an EW mean absolute residual into a
/// standard-deviation-like scale.
pub const MAD_TO_SD: f64 = 1.253_314_137_315_500_3;

/// Upper tail probability P(Z > z) of the standard normal.
#[inline]
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z * std::f64::consts::FRAC_1_SQRT_2)
}

/// Two-sided tail probability P(|Z| > |z|) of the standard normal.
#[inline]
pub fn normal_two_sided(z: f64) -> f64 {
    erfc(z.abs() * std::f64::consts::FRAC_1_SQRT_2)
}

/// An exponentially-forgetting mean and mean absolute deviation with Huber
/// clipping: a residual further than `clip` spreads from the mean moves the
/// estimate only as far as `clip` spreads would. That keeps a single outlier
/// (or the first buckets of an incident) from dragging the baseline along.
///
/// The first `1/alpha` updates use `1/n` weights so the estimate is an honest
/// average while little data has been seen, instead of being biased towards
/// its zero initial value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RobustEw {
    /// Current location estimate.
    pub mean: f64,
    /// Current mean absolute deviation from `mean`.
    pub mad: f64,
    /// Number of updates, saturating; drives the warm-up weights.
    pub n: u32,
}

impl Default for RobustEw {
    fn default() -> Self {
        Self {
            mean: 0.0,
            mad: 0.0,
            n: 0,
        }
    }
}

impl RobustEw {
    /// Folds in `x` with forgetting rate `alpha` and Huber clip `clip`
    /// (in spreads). `floor` is the smallest spread used for clipping.
    #[inline]
    pub fn update(&mut self, x: f64, alpha: f64, clip: f64, floor: f64) {
        self.n = self.n.saturating_add(1);
        let a = alpha.max(1.0 / f64::from(self.n));
        if self.n == 1 {
            self.mean = x;
            self.mad = 0.0;
            return;
        }
        let r = x - self.mean;
        let limit = clip * (self.mad * MAD_TO_SD).max(floor);
        let clipped = if self.n > 8 {
            r.clamp(-limit, limit)
        } else {
            r
        };
        self.mean += a * clipped;
        self.mad += a * (clipped.abs() - self.mad);
    }

    /// Spread as a standard-deviation-like scale, never below `floor`.
    #[inline]
    pub fn sd(&self, floor: f64) -> f64 {
        (self.mad * MAD_TO_SD).max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tails_match_known_values() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-12);
        assert!((normal_two_sided(1.959_964) - 0.05).abs() < 1e-6);
        assert!((normal_sf(3.0) - 0.001_349_898).abs() < 1e-8);
    }

    #[test]
    fn robust_ew_ignores_a_single_outlier() {
        let mut ew = RobustEw::default();
        for i in 0..200 {
            ew.update(10.0 + f64::from(i % 3) - 1.0, 0.05, 3.0, 1e-9);
        }
        let before = ew.mean;
        ew.update(1e6, 0.05, 3.0, 1e-9);
        assert!((ew.mean - before).abs() < 1.0, "mean moved to {}", ew.mean);
    }

    #[test]
    fn robust_ew_averages_honestly_during_warm_up() {
        let mut ew = RobustEw::default();
        for x in [2.0, 4.0, 6.0] {
            ew.update(x, 0.001, 3.0, 1e-9);
        }
        assert!((ew.mean - 4.0).abs() < 1e-12);
    }
}
