//! Poisson-aware judgement of small counts.
//!
//! A KPI of "3 payments per minute" is a count: a bucket with 0 payments has
//! probability e^-3 ≈ 5 % and happens every twenty minutes. A z-score built
//! from a small, learned spread fires on every such zero. For series that
//! look like counts (non-negative integers), the set widens the band to at
//! least the Poisson one and takes the tail probability from the Poisson
//! distribution while the expected count is small enough for it to matter.

use statrs::distribution::{DiscreteCDF, Poisson};

/// Below this expected count the exact Poisson tail is used; above it the
/// normal approximation with variance `lambda` is within a few percent.
pub const EXACT_BELOW: f64 = 40.0;

/// Tracks whether every value seen so far was a non-negative integer.
#[inline]
pub fn is_count(x: f64) -> bool {
    x >= 0.0 && x.fract() == 0.0 && x < 9.0e15
}

/// Two-sided tail probability of observing `k` when `lambda` is expected:
/// `2 * min(P(X <= k), P(X >= k))`, capped at 1.
pub fn poisson_two_sided(lambda: f64, k: f64) -> f64 {
    let lambda = lambda.max(1e-3);
    let Ok(dist) = Poisson::new(lambda) else {
        return 1.0;
    };
    let k = k.max(0.0).round() as u64;
    let below = dist.cdf(k);
    let above = if k == 0 { 1.0 } else { dist.sf(k - 1) };
    (2.0 * below.min(above)).min(1.0)
}

/// Central band holding `1 - 2 * tail` of a Poisson(`lambda`) distribution.
pub fn poisson_band(lambda: f64, tail: f64) -> (f64, f64) {
    let lambda = lambda.max(1e-3);
    let Ok(dist) = Poisson::new(lambda) else {
        return (0.0, f64::INFINITY);
    };
    let lo = if dist.cdf(0) >= tail {
        0
    } else {
        dist.inverse_cdf(tail)
    };
    let hi = dist.inverse_cdf(1.0 - tail);
    (lo as f64, hi as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_payments_when_three_expected_is_not_rare() {
        let p = poisson_two_sided(3.0, 0.0);
        assert!((p - 2.0 * (-3.0f64).exp()).abs() < 1e-9, "p = {p}");
        assert!(p > 0.05);
    }

    #[test]
    fn zero_checkouts_when_forty_expected_is_very_rare() {
        assert!(poisson_two_sided(40.0, 0.0) < 1e-15);
    }

    #[test]
    fn band_around_three_includes_zero() {
        let (lo, hi) = poisson_band(3.0, 0.001);
        assert_eq!(lo, 0.0);
        assert!((9.0..=11.0).contains(&hi), "hi = {hi}");
    }

    #[test]
    fn counts_are_recognised() {
        assert!(is_count(0.0) && is_count(17.0));
        assert!(!is_count(1.5) && !is_count(-1.0) && !is_count(f64::NAN));
    }
}
