//! One-sided tail probabilities and their inverses for the predictive
//! distributions of [`super::KpiModel`].
//!
//! Counts, sums and distinct counts are judged as *scaled Poisson*: a value
//! `x` with mean `m` and variance `v` is `s` times a Poisson variable of
//! mean `m / s`, `s = v / m`. That keeps three properties a business KPI
//! needs and a normal approximation lacks: nothing below zero, a right skew
//! that grows as volume falls (one large order is not a revenue "spike"),
//! and the exact probability of an empty bucket, `exp(-m / s)`, that an
//! outage at a quiet hour is judged by. The tails are the regularised
//! incomplete gamma functions (statrs), continuous in `x`, each computed on
//! the branch that stays accurate deep in its own tail.
//!
//! Sums of amounts (revenue) are *compound*: how many payments is Poisson,
//! what each is worth is skewed. Their lower tail is the scaled Poisson's
//! (an empty bucket keeps its Poisson probability), their upper tail the
//! log-normal's of the same mean and variance: a bucket with one large
//! order is far likelier than a Poisson in units of a typical order says
//! (five payments worth 625 where 180 was expected: about 1e-4, not 1e-6).
//!
//! Averages of non-negative values (basket sizes, prices) are judged as
//! *log-normal* with the mean and variance matched (Fenton–Wilkinson): the
//! mean of a few log-normal amounts is right-skewed about as a log-normal
//! of that mean and variance is, and a normal tail would read one large
//! basket among three as a one-in-a-million event. Averages that can be
//! negative are judged as normal.
//!
//! The expectation itself is uncertain (how well the seasonal profile is
//! known, how far the business wanders from it), and that uncertainty is
//! *multiplicative*: a Saturday factor known to 10 % may be 0.9 or 1.1 of
//! itself, never below zero. So the part of the variance that is the
//! expectation's own (`rate_var`) is not added to the noise as more of the
//! same: counts, ratios and sums mix their scaled Poisson over a
//! gamma-distributed rate of that relative variance, a scaled *negative
//! binomial*. Against
//! a scaled Poisson of the same variance it is skewed the way a rate is: a
//! fall to a fifth of the expectation is rarer (the rate would have to be
//! off by far more than its uncertainty), a doubling likelier. With
//! `rate_var` 0 it is the scaled Poisson.
//!
//! The inverses give the *band*: the values a test at level `alpha` would
//! not flag. They are found by bisection on the same tail functions, so a
//! value outside the band is exactly a value the test flags, which is what
//! makes an alert's "observed, normal band" never contradict its firing.

use statrs::function::beta::checked_beta_reg;
use statrs::function::erf::{erfc, erfc_inv};
use statrs::function::gamma::{checked_gamma_lr, checked_gamma_ur};

/// Above this Poisson mean the normal approximation is used: the
/// incomplete gamma functions converge slowly there, and the skew is
/// negligible.
const NORMAL_ABOVE: f64 = 1e5;

/// The gamma rate's shape (one over its relative variance) above which
/// the mixture is the Poisson: the incomplete beta function's continued
/// fraction converges slowly there, and the rate is known to 0.1 %.
const GAMMA_SHAPE_MAX: f64 = 1e6;

/// P(Z >= z) for a standard normal Z.
#[inline]
pub fn normal_upper(z: f64) -> f64 {
    0.5 * erfc(z * std::f64::consts::FRAC_1_SQRT_2)
}

/// The z with P(Z >= z) = `alpha`.
pub fn normal_quantile_upper(alpha: f64) -> f64 {
    let a = alpha.clamp(1e-300, 1.0 - 1e-16);
    std::f64::consts::SQRT_2 * erfc_inv(2.0 * a)
}

/// The shape of a predictive distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `scale` × Poisson(mean / scale): counts, sums, distinct counts.
    ScaledPoisson,
    /// Log-normal with this mean and variance: averages of non-negative
    /// values.
    LogNormal,
    /// Scaled Poisson below the mean, log-normal above: sums of amounts.
    Compound,
    /// Normal: averages of values that can be negative.
    Normal,
}

/// A predictive distribution: mean, variance and shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Predictive {
    /// Expected value.
    pub mean: f64,
    /// Variance around it.
    pub var: f64,
    /// The part of `var` that is the expectation's own uncertainty
    /// (relative model error × mean²), the rest being noise around it:
    /// for counts, ratios and sums, the variance of the gamma rate their
    /// Poisson is mixed over. 0 for none.
    pub rate_var: f64,
    /// Variance the upper tail has beyond `var`, for sums and averages of
    /// amounts: what their few largest values add (see
    /// [`super::amounts`]). 0 for none.
    pub heavy: f64,
    /// Its shape.
    pub shape: Shape,
}

/// A count-like predictive: `s` × K, K Poisson with mean `lambda`, or,
/// with a finite gamma shape `r`, negative binomial of that mean (its rate
/// gamma-distributed with relative variance 1 / `r`).
#[derive(Debug, Clone, Copy)]
struct Counts {
    lambda: f64,
    s: f64,
    r: f64,
}

impl Counts {
    /// P(K <= k).
    fn lower(&self, k: f64) -> f64 {
        if k < 0.0 {
            return 0.0;
        }
        if self.r.is_finite() {
            // P(K <= k) = I_p(r, k + 1), p = r / (r + lambda).
            let p = self.r / (self.r + self.lambda);
            if let Ok(v) = checked_beta_reg(self.r, k + 1.0, p) {
                return v.clamp(0.0, 1.0);
            }
        }
        if self.lambda > NORMAL_ABOVE {
            normal_upper((self.lambda - k) / self.lambda.sqrt())
        } else {
            // P(X <= k) = Q(k + 1, lambda).
            checked_gamma_ur(k + 1.0, self.lambda).unwrap_or(1.0)
        }
    }

    /// P(K >= k).
    fn upper(&self, k: f64) -> f64 {
        if k <= 0.0 {
            return 1.0;
        }
        if self.r.is_finite() {
            // P(K >= k) = I_{1-p}(k, r), computed on the tail's own side.
            let q = self.lambda / (self.r + self.lambda);
            if let Ok(v) = checked_beta_reg(k, self.r, q) {
                return v.clamp(0.0, 1.0);
            }
        }
        if self.lambda > NORMAL_ABOVE {
            normal_upper((k - self.lambda) / self.lambda.sqrt())
        } else {
            // P(X >= k) = P(k, lambda), the lower regularised gamma.
            checked_gamma_lr(k, self.lambda).unwrap_or(0.0)
        }
    }
}

impl Predictive {
    /// P(X <= x).
    pub fn lower(&self, x: f64) -> f64 {
        match self.counts() {
            Some(c) => c.lower(x / c.s),
            None if matches!(self.shape, Shape::ScaledPoisson | Shape::Compound) && x < 0.0 => 0.0,
            None => match self.log_normal() {
                Some(_) if x <= 0.0 => 0.0,
                Some((m, sd)) => normal_upper((m - x.ln()) / sd),
                None => normal_upper((self.mean - x) / self.var.sqrt().max(1e-300)),
            },
        }
    }

    /// P(X >= x).
    pub fn upper(&self, x: f64) -> f64 {
        if let Some((m, sd)) = self.upper_log_normal() {
            return if x <= 0.0 {
                1.0
            } else {
                normal_upper((x.ln() - m) / sd)
            };
        }
        match self.counts() {
            Some(c) => c.upper(x / c.s),
            None => normal_upper((x - self.mean) / self.var.sqrt().max(1e-300)),
        }
    }

    /// The smallest value the lower test at level `alpha` does not flag:
    /// `P(X <= lo) = alpha`, or 0 (scaled Poisson) / the far tail when
    /// even the lowest value is more likely than `alpha`.
    pub fn lower_edge(&self, alpha: f64) -> f64 {
        match self.counts() {
            Some(Counts { lambda, s, .. }) => {
                if self.lower(0.0) >= alpha {
                    return 0.0;
                }
                // lower() increases with x: bisect on [0, mean].
                let (mut lo, mut hi) = (0.0, self.mean.max(0.0));
                for _ in 0..80 {
                    let mid = 0.5 * (lo + hi);
                    if self.lower(mid) < alpha {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                    if hi - lo <= 1e-9 * s.max(1e-12) * lambda.max(1.0) {
                        break;
                    }
                }
                lo
            }
            None => match self.log_normal() {
                Some((m, sd)) => (m - normal_quantile_upper(alpha) * sd).exp(),
                None if matches!(self.shape, Shape::ScaledPoisson | Shape::Compound) => {
                    (self.mean - normal_quantile_upper(alpha) * self.var.sqrt()).max(0.0)
                }
                None => self.mean - normal_quantile_upper(alpha) * self.var.sqrt(),
            },
        }
    }

    /// The largest value the upper test at level `alpha` does not flag:
    /// `P(X >= hi) = alpha`.
    pub fn upper_edge(&self, alpha: f64) -> f64 {
        if let Some((m, sd)) = self.upper_log_normal() {
            return (m + normal_quantile_upper(alpha) * sd).exp();
        }
        match self.counts() {
            Some(Counts { lambda, s, .. }) => {
                // upper() decreases with x: find a bracket, then bisect.
                let mut hi = (self.mean.max(s) * 2.0).max(s);
                let mut guard = 0;
                while self.upper(hi) >= alpha && guard < 200 {
                    hi *= 2.0;
                    guard += 1;
                }
                let mut lo = 0.0;
                for _ in 0..80 {
                    let mid = 0.5 * (lo + hi);
                    if self.upper(mid) >= alpha {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                    if hi - lo <= 1e-9 * s.max(1e-12) * lambda.max(1.0) {
                        break;
                    }
                }
                hi
            }
            None => self.mean + normal_quantile_upper(alpha) * self.var.sqrt(),
        }
    }

    /// The Poisson (or negative binomial) part of a scaled-Poisson shape
    /// with a positive mean and at least Poisson's variance. Less than
    /// Poisson's (a ratio of counts near one half is binomial: its tails
    /// are lighter on the right and heavier on the left than a Poisson's
    /// of that variance), the normal tail is used instead, which errs on
    /// the side of less alarm. The rate is mixed over a gamma when its
    /// own variance is given and the noise alone is at least Poisson's;
    /// otherwise all the variance is taken as noise.
    #[inline]
    fn counts(&self) -> Option<Counts> {
        if !(matches!(self.shape, Shape::ScaledPoisson | Shape::Compound)
            && self.mean > 0.0
            && self.var >= self.mean)
        {
            return None;
        }
        let noise = self.var - self.rate_var;
        // `var` was built as noise + rate_var: at Poisson's floor the noise
        // equals the mean, and the subtraction may round it a hair below
        // (the mixture then vanished on a rounding, and a window of 0
        // where 11.6 were expected scored 4x likelier).
        if self.rate_var > 0.0 && noise >= self.mean * (1.0 - 1e-9) {
            let r = self.mean * self.mean / self.rate_var;
            let s = noise / self.mean;
            if r <= GAMMA_SHAPE_MAX {
                return Some(Counts {
                    lambda: self.mean / s,
                    s,
                    r,
                });
            }
        }
        let s = self.var / self.mean;
        Some(Counts {
            lambda: self.mean / s,
            s,
            r: f64::INFINITY,
        })
    }

    /// Mean and standard deviation of the logarithm, for log-normal shapes
    /// with a positive mean and variance (Fenton–Wilkinson matching).
    #[inline]
    fn log_normal(&self) -> Option<(f64, f64)> {
        self.log_normal_with(self.var)
    }

    /// The upper tail's log-normal, with its `heavy` variance: sums of
    /// amounts and averages of non-negative values.
    #[inline]
    fn upper_log_normal(&self) -> Option<(f64, f64)> {
        self.log_normal_with(self.var + self.heavy)
    }

    #[inline]
    fn log_normal_with(&self, var: f64) -> Option<(f64, f64)> {
        match self.shape {
            Shape::LogNormal | Shape::Compound if self.mean > 0.0 && var > 0.0 => {
                let s2 = (1.0 + var / (self.mean * self.mean)).ln();
                Some((self.mean.ln() - 0.5 * s2, s2.sqrt()))
            }
            _ => None,
        }
    }

    /// A quick z-score, for deciding whether the exact tail is worth
    /// computing: under it, no test can come near an alerting level.
    #[inline]
    pub fn z(&self, x: f64) -> f64 {
        (x - self.mean) / self.var.sqrt().max(1e-300)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poisson(mean: f64, scale: f64) -> Predictive {
        Predictive {
            mean,
            var: mean * scale,
            rate_var: 0.0,
            heavy: 0.0,
            shape: Shape::ScaledPoisson,
        }
    }

    #[test]
    fn an_empty_bucket_has_the_poisson_probability_of_zero() {
        let p = poisson(6.0, 1.0);
        assert!((p.lower(0.0) - (-6.0f64).exp()).abs() < 1e-12);
        // Overdispersed by 2: as likely as zero of Poisson(3).
        let q = poisson(6.0, 2.0);
        assert!((q.lower(0.0) - (-3.0f64).exp()).abs() < 1e-12);
    }

    #[test]
    fn integer_tails_are_the_poisson_cdf() {
        let p = poisson(4.0, 1.0);
        // P(X <= 1) = e^-4 (1 + 4); P(X >= 9) = 1 - P(X <= 8).
        assert!((p.lower(1.0) - 5.0 * (-4.0f64).exp()).abs() < 1e-12);
        let mut below8 = 0.0;
        let mut term = (-4.0f64).exp();
        for i in 0..=8 {
            if i > 0 {
                term *= 4.0 / i as f64;
            }
            below8 += term;
        }
        assert!((p.upper(9.0) - (1.0 - below8)).abs() < 1e-12);
    }

    #[test]
    fn deep_tails_keep_their_precision() {
        let p = poisson(100.0, 1.0);
        let zero = p.lower(0.0);
        assert!(zero > 0.0 && (zero.ln() + 100.0).abs() < 1e-9, "{zero}");
        assert!(p.upper(300.0) < 1e-40 && p.upper(300.0) > 0.0);
    }

    #[test]
    fn the_band_edges_invert_the_tails_and_never_go_below_zero() {
        let poissons = [(0.5, 1.0), (3.0, 1.0), (40.0, 2.5), (5000.0, 60.0)]
            .map(|(mean, scale)| poisson(mean, scale));
        // And with the expectation uncertain (a negative binomial).
        let mixed = [(0.5, 0.05), (30.0, 0.02), (3000.0, 1e-4), (9e4, 1e-3)]
            .map(|(mean, rel)| uncertain_rate(mean, rel));
        for p in poissons.into_iter().chain(mixed) {
            let mean = p.mean;
            for alpha in [1e-3, 1e-6, 1e-9] {
                let lo = p.lower_edge(alpha);
                let hi = p.upper_edge(alpha);
                assert!(lo >= 0.0 && lo <= mean && hi >= mean, "{mean} {alpha}");
                if lo > 0.0 {
                    assert!((p.lower(lo) / alpha - 1.0).abs() < 1e-3, "{mean}");
                    assert!(p.lower(lo * 0.999) < alpha);
                }
                assert!(p.upper(hi * 1.001) < alpha && p.upper(hi * 0.999) >= alpha * 0.99);
            }
        }
    }

    /// Mean 30 a window, Poisson noise, the expectation known to 14 %
    /// (relative variance 0.02).
    fn uncertain_rate(mean: f64, rel: f64) -> Predictive {
        Predictive {
            mean,
            var: mean + mean * mean * rel,
            rate_var: mean * mean * rel,
            heavy: 0.0,
            shape: Shape::ScaledPoisson,
        }
    }

    /// The negative binomial's probabilities of `ks`, summed term by term.
    fn negative_binomial(ks: std::ops::Range<u32>, mean: f64, rel: f64) -> f64 {
        let r = 1.0 / rel;
        let p = r / (r + mean);
        ks.map(|i| {
            let i = f64::from(i);
            (statrs::function::gamma::ln_gamma(i + r)
                - statrs::function::gamma::ln_gamma(r)
                - statrs::function::gamma::ln_gamma(i + 1.0)
                + r * p.ln()
                + i * (1.0 - p).ln())
            .exp()
        })
        .sum()
    }

    #[test]
    fn an_uncertain_expectation_mixes_the_poisson_over_a_gamma_rate() {
        let p = uncertain_rate(30.0, 0.02);
        for k in [0, 3, 9, 15, 30] {
            let exact = negative_binomial(0..k + 1, 30.0, 0.02);
            assert!((p.lower(f64::from(k)) / exact - 1.0).abs() < 1e-9, "{k}");
        }
        for k in [31, 45, 60, 90] {
            let exact = negative_binomial(k..k + 2000, 30.0, 0.02);
            assert!((p.upper(f64::from(k)) / exact - 1.0).abs() < 1e-9, "{k}");
        }
    }

    #[test]
    fn a_rate_known_to_fourteen_percent_makes_a_fall_to_a_fifth_rarer_and_a_doubling_likelier() {
        // Against a scaled Poisson of the same mean and variance.
        let mixed = uncertain_rate(30.0, 0.02);
        let flat = Predictive {
            rate_var: 0.0,
            heavy: 0.0,
            ..mixed
        };
        assert!(mixed.lower(6.0) < flat.lower(6.0) / 3.0);
        assert!(mixed.upper(60.0) > flat.upper(60.0) * 1.5);
        // Near the middle they agree.
        assert!((mixed.lower(24.0) / flat.lower(24.0) - 1.0).abs() < 0.2);
    }

    #[test]
    fn a_log_normal_average_is_skewed_right_and_positive() {
        let p = Predictive {
            mean: 45.0,
            var: 20.0f64.powi(2),
            rate_var: 0.0,
            heavy: 0.0,
            shape: Shape::LogNormal,
        };
        // Twice the mean is likelier than zero-ish: 2.5 sd either way.
        assert!(p.upper(95.0) > 10.0 * p.lower(0.5));
        assert!(p.lower_edge(1e-6) > 0.0);
        let lo = p.lower_edge(1e-3);
        assert!((p.lower(lo) / 1e-3 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn normal_shape_is_symmetric() {
        let p = Predictive {
            mean: 10.0,
            var: 4.0,
            rate_var: 0.0,
            heavy: 0.0,
            shape: Shape::Normal,
        };
        assert!((p.lower(6.0) - p.upper(14.0)).abs() < 1e-15);
        assert!((p.upper_edge(0.025) - (10.0 + 1.959_964 * 2.0)).abs() < 1e-4);
    }

    #[test]
    fn the_gamma_mixture_survives_a_variance_that_rounds_below_poisson() {
        // A window at Poisson's floor (noise = mean) with an uncertain
        // rate: mean + rate_var - rate_var is a hair below the mean in
        // floating point, which once dropped the mixture.
        let (mean, rate_var) = (11.583995580673218, 4.509078869658177);
        let p = Predictive {
            mean,
            var: mean + rate_var,
            rate_var,
            heavy: 0.0,
            shape: Shape::ScaledPoisson,
        };
        assert!(mean + rate_var - rate_var < mean, "the case rounds below");
        // P(0) of a negative binomial of that mean and rate variance.
        let r = mean * mean / rate_var;
        let nb = (r / (r + mean)).powf(r);
        assert!(
            (p.lower(0.0) / nb - 1.0).abs() < 1e-6,
            "{} vs {nb}",
            p.lower(0.0)
        );
    }
}
