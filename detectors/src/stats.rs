//! Small numeric helpers shared by the detectors: normal tails and robust,
//! exponentially-forgetting estimates of location and spread.

use serde::{Deserialize, Serialize};

/// Complementary error function, |relative error| < 1.2e-7 (Numerical
/// Recipes' Chebyshev fit). The detectors call it for every observation;
/// statrs' full-precision series costs several times more, and scores do
/// not need more than six digits.
#[inline]
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    // The fit overshoots 1 by ~3e-8 at 0; clamping keeps erfc monotone
    // and tail probabilities within [0, 1].
    let r = (t * poly.exp()).min(1.0);
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

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
    fn fast_erfc_matches_statrs() {
        for i in -60..=120 {
            let x = f64::from(i) * 0.1;
            let exact = statrs::function::erf::erfc(x);
            assert!((erfc(x) - exact).abs() <= 1.3e-7 * exact, "erfc({x})");
        }
    }

    #[test]
    fn normal_tails_match_known_values() {
        // The fast erfc is good to ~1e-7 relative, plenty for scoring.
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
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
