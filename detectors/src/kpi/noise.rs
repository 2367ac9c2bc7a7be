//! How much a KPI varies around its expected value, learnt from the series.
//!
//! A bucket's variance has two parts with different causes and different
//! behaviour as volume changes:
//!
//! - **noise** proportional to a *unit* the aggregate fixes (`phi × unit`):
//!   for a count (or a distinct count, or a sum of amounts) the unit is the
//!   expected value — Poisson's variance is its mean, and overdispersion
//!   (`phi` > 1) or the amounts' spread (`phi` = E[amount²]/E[amount] for a
//!   sum) scale it; for an average of `n` values it is `1 / n` (`phi` is the
//!   values' variance); for a ratio of counts it is `expected / n` (`phi`
//!   about 1 − p, binomial). Fitted by weighted least squares of the
//!   squared residuals, net of the model error below, on the unit.
//! - **model error** proportional to the expected value squared
//!   (`kappa² × expected²`): what no noise model explains — a busy day, a
//!   profile not quite right. It dominates at high volume, where Poisson
//!   noise alone would make a 3 % wobble look like an outage. It is
//!   measured where it shows without the noise: on whole days, the day's
//!   total against its expected total, less the day's noise and the
//!   profile's own uncertainty. (Fitted per bucket beside the noise, it
//!   would take any misfit of the noise model for model error: for a ratio
//!   with no seasonality `expected²` is a constant, and became an
//!   intercept.) The buckets of one window share it, which is what keeps a
//!   long window from being more confident than the profile is.
//!
//! Both forget over about two weeks, start from a weak prior, and clip
//! residuals at ten standard deviations (anomalous buckets are not learnt
//! at all); `phi` is never below Poisson's 1 for counts, `kappa` never
//! below 1 %.

use serde::{Deserialize, Serialize};

/// Least relative model error: no business KPI is known to better than 1 %.
pub const KAPPA_MIN: f64 = 0.01;
/// Prior relative model error, before the series shows its own.
const KAPPA_PRIOR: f64 = 0.05;
/// Weight of the dispersion's prior, in buckets.
const PRIOR_BUCKETS: f64 = 50.0;
/// Weight of the model error's prior, in days.
const PRIOR_DAYS: f64 = 3.0;
/// Squared residuals beyond this many variances are clipped. Generous:
/// anomalous buckets are not learnt at all, and the residuals of sums are
/// skewed (one large order), so a tight clip would cut the very spread it
/// measures and drive the variance down a spiral (clipped at five standard
/// deviations of its own estimate, a node's revenue learnt a third of its
/// dispersion).
const CLIP: f64 = 100.0;

/// The noise model; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Noise {
    phi: f64,
    kappa2: f64,
    phi_prior: f64,
    phi_min: f64,
    /// Weighted means of u² and u·y (u: unit, y: squared residual net of
    /// model error and profile uncertainty).
    uu: f64,
    uy: f64,
    /// Buckets learnt.
    n: f64,
    /// Forgetting memory, in buckets.
    memory: f64,
    /// Mean relative excess of whole days, and days learnt.
    day_excess: f64,
    days: f64,
}

impl Noise {
    /// A noise model with prior dispersion `phi_prior`, never below
    /// `phi_min`, forgetting over `memory` buckets.
    pub fn new(phi_prior: f64, phi_min: f64, memory: f64) -> Self {
        Self {
            phi: phi_prior.max(phi_min),
            kappa2: KAPPA_PRIOR * KAPPA_PRIOR,
            phi_prior: phi_prior.max(phi_min),
            phi_min,
            uu: 0.0,
            uy: 0.0,
            n: 0.0,
            memory: memory.max(10.0),
            day_excess: KAPPA_PRIOR * KAPPA_PRIOR,
            days: 0.0,
        }
    }

    /// The dispersion: noise variance per unit.
    #[inline]
    pub fn phi(&self) -> f64 {
        self.phi
    }

    /// The relative model error, squared.
    #[inline]
    pub fn kappa2(&self) -> f64 {
        self.kappa2
    }

    /// Whether buckets have been learnt from (the prior no longer rules).
    pub fn learning(&self) -> bool {
        self.n > 0.0
    }

    /// Resets the prior dispersion and its floor (a sum's first buckets
    /// show the size of its amounts).
    pub fn set_prior(&mut self, phi_prior: f64, phi_min: f64) {
        if phi_prior.is_finite() && phi_prior > 0.0 {
            self.phi_min = phi_min;
            self.phi_prior = phi_prior.max(phi_min);
            self.phi = self.phi_prior;
            // What was learnt before was in the wrong unit.
            self.uu = 0.0;
            self.uy = 0.0;
            self.n = 0.0;
        }
    }

    /// Learns the dispersion from a residual `r` of a bucket with noise
    /// unit `u`, expected value `mu`, judged with total variance `var` of
    /// which `known` is known beforehand (the estimation error of a
    /// sketched value).
    pub fn learn(&mut self, r: f64, u: f64, mu: f64, known: f64, var: f64) {
        if !(r.is_finite() && u.is_finite() && u > 0.0 && mu.is_finite() && var > 0.0) {
            return;
        }
        // Net of the model error, which whole days measure, and of what is
        // known; not of the profile's uncertainty, which is only an
        // estimate: subtracted, an overestimate of it drove the dispersion
        // to its floor. The caller learns from buckets whose profile
        // uncertainty is small instead.
        let y = (r * r).min(CLIP * var) - mu * mu * self.kappa2 - known;
        // Weighted by 1 / var²: squared residuals of big buckets vary more.
        let w = 1.0 / (var * var);
        let a = (1.0 / (self.n + 1.0)).max(1.0 / self.memory);
        self.uu += a * (w * u * u - self.uu);
        self.uy += a * (w * u * y - self.uy);
        self.n += 1.0;
        // Ridge towards the prior, fading as buckets accumulate.
        let fade = PRIOR_BUCKETS / (self.n + PRIOR_BUCKETS);
        let lp = fade * self.uu;
        let phi = (self.uy + lp * self.phi_prior) / (self.uu + lp).max(1e-300);
        if phi.is_finite() {
            self.phi = phi.max(self.phi_min);
        }
    }

    /// Learns the model error from a whole day: its total `x` against its
    /// expected total `expected`, with noise variance `noise_var` (the
    /// buckets' noise summed) and the profile's relative variance
    /// `rel_var`.
    pub fn learn_day(&mut self, x: f64, expected: f64, noise_var: f64, rel_var: f64) {
        if !(x.is_finite() && expected > 0.0 && noise_var >= 0.0) {
            return;
        }
        let e2 = expected * expected;
        let var = noise_var + e2 * (rel_var + self.kappa2);
        let r = x - expected;
        let excess = ((r * r).min(CLIP * var) - noise_var) / e2 - rel_var;
        self.days += 1.0;
        let a = (1.0 / (self.days + PRIOR_DAYS)).max(1.0 / (self.memory / 288.0).max(14.0));
        self.day_excess += a * (excess - self.day_excess);
        self.kappa2 = self.day_excess.max(KAPPA_MIN * KAPPA_MIN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn gauss(rng: &mut ChaCha8Rng) -> f64 {
        StandardNormal.sample(rng)
    }

    #[test]
    fn learns_overdispersion_per_bucket_and_model_error_from_whole_days() {
        // A day of 288 buckets whose expected values range from 2 to 200;
        // each day is off by a common factor of sd 8 % (model error), and
        // each bucket has noise 1.8 × its mean.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut noise = Noise::new(1.0, 1.0, 4032.0);
        for _ in 0..60 {
            let day = 1.0 + 0.08 * gauss(&mut rng);
            let (mut x, mut e, mut v) = (0.0, 0.0, 0.0);
            for i in 0..288u64 {
                let mu = 2.0 * 100f64.powf((i % 48) as f64 / 47.0);
                let value = mu * day + gauss(&mut rng) * (1.8 * mu).sqrt();
                let var = noise.phi() * mu + noise.kappa2() * mu * mu;
                noise.learn(value - mu, mu, mu, 0.0, var);
                x += value;
                e += mu;
                v += noise.phi() * mu;
            }
            noise.learn_day(x, e, v, 0.0);
        }
        let kappa = noise.kappa2().sqrt();
        assert!((kappa / 0.08 - 1.0).abs() < 0.3, "kappa {kappa}");
        assert!((noise.phi() / 1.8 - 1.0).abs() < 0.3, "phi {}", noise.phi());
    }

    #[test]
    fn counts_are_never_judged_tighter_than_poisson() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut noise = Noise::new(1.0, 1.0, 4000.0);
        for i in 0..5000u64 {
            let mu = 10.0 + (i % 7) as f64;
            // Under-dispersed residuals.
            let r = 0.3 * gauss(&mut rng) * mu.sqrt();
            noise.learn(r, mu, mu, 0.0, mu);
        }
        assert_eq!(noise.phi(), 1.0);
        assert!(noise.kappa2() >= KAPPA_MIN * KAPPA_MIN);
    }

    #[test]
    fn one_huge_residual_moves_little() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut noise = Noise::new(1.0, 1.0, 4000.0);
        for _ in 0..3000 {
            let mu: f64 = 50.0;
            noise.learn(gauss(&mut rng) * mu.sqrt(), mu, mu, 0.0, mu);
        }
        let before = (noise.phi(), noise.kappa2());
        noise.learn(1e6, 50.0, 50.0, 0.0, 50.0 * before.0);
        assert!(
            noise.phi() < before.0 * 1.05 + 0.05,
            "{before:?} {}",
            noise.phi()
        );
    }
}
