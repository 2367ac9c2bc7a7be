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
//! - **bucket noise** proportional to the expected value squared
//!   (`c2 × expected²`), for counts, sums and distinct counts: a rate that
//!   jitters from one bucket to the next by a few percent (traffic comes
//!   in bursts; a campaign mail lands in a minute). Poisson's variance
//!   grows with the mean, this one with its square, so one dispersion
//!   `phi` fitted over a day is too wide at night and too narrow at the
//!   peak: fitted alone on a shop whose 5-minute rates jitter by 15 %,
//!   it put 1 % of peak buckets beyond 3.5 standard deviations. The two
//!   are fitted together, on the unit and on `expected²`, and are told
//!   apart by how a day's buckets differ in volume. Independent from
//!   bucket to bucket, it averages out over a window, unlike the model
//!   error below. For averages and ratios `expected²` hardly varies (an
//!   intercept, which would take any misfit of the unit for noise of its
//!   own): `c2` stays 0.
//! - **model error** proportional to the expected value squared
//!   (`kappa² × expected²`): what no noise model explains — a busy day, a
//!   profile not quite right. It dominates at high volume, where Poisson
//!   noise alone would make a 3 % wobble look like an outage. It is
//!   measured where it shows without the noise: on totals of whole days
//!   and of whole hours, each against its expected total, less its noise
//!   and the profile's own uncertainty. (Fitted per bucket beside the
//!   noise, it would take any misfit of the noise model for model error:
//!   for a ratio with no seasonality `expected²` is a constant, and became
//!   an intercept.) Days measure the part every bucket of a day shares (a
//!   busy day); hours measure, on top of it, the part particular to an hour
//!   (a lunch peak the profile draws too flat, a country whose share moves
//!   with its time zone), which whole days cannot see: such errors cancel
//!   over a day. A window shares the first, and averages the second over
//!   the hours it spans, which is what keeps a long window from being more
//!   confident than the profile is.
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
    /// Bucket noise per expected value squared (0 unless `multiplicative`).
    c2: f64,
    kappa2: f64,
    phi_prior: f64,
    phi_min: f64,
    /// Whether the bucket noise `c2` is learnt.
    multiplicative: bool,
    /// Weighted means of u², u·m, m², u·y, and of u·y' and m·y' (u:
    /// unit, m: expected value squared, y: squared residual net of model
    /// error and what is known, y': net of the profile's uncertainty too).
    uu: f64,
    um: f64,
    mm: f64,
    uy: f64,
    uy_net: f64,
    my_net: f64,
    /// Buckets learnt.
    n: f64,
    /// Forgetting memory, in buckets.
    memory: f64,
    /// The relative model error particular to an hour, squared.
    kappa2_hourly: f64,
    /// Relative excess of whole days, and of whole hours.
    days: Excess,
    hours: Excess,
}

/// A weighted mean of blocks' relative excess (squared residual, less
/// what the noise and the profile's uncertainty explain, over the expected
/// total squared): the model error they show.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Excess {
    /// Forgetting means of weight × excess and of the weights, and of
    /// their squares' (weight² × excess², weight² × excess, weight²),
    /// for the mean's standard error.
    excess_w: f64,
    weight: f64,
    ww_xx: f64,
    ww_x: f64,
    ww: f64,
    /// Blocks learnt.
    blocks: f64,
}

impl Excess {
    /// Folds in a block of `excess`, whose relative variance is `rel_var`
    /// in all, forgetting over `memory` blocks. Weighted by the inverse
    /// variance of the estimate, which is about the block's relative
    /// variance squared: a block whose expectation the profile knows only
    /// roughly (a young series) says little about the model error, and
    /// subtracting the profile's uncertainty, which is only an estimate,
    /// made such blocks pull it down to its floor for weeks.
    pub fn learn(&mut self, excess: f64, rel_var: f64, memory: f64) {
        let w = 1.0 / (rel_var * rel_var).max(1e-300);
        self.blocks += 1.0;
        let a = (1.0 / self.blocks).max(1.0 / memory);
        self.excess_w += a * (w * excess - self.excess_w);
        self.weight += a * (w - self.weight);
        let ww = w * w;
        self.ww_xx += a * (ww * excess * excess - self.ww_xx);
        self.ww_x += a * (ww * excess - self.ww_x);
        self.ww += a * (ww - self.ww);
    }

    /// The mean as evidence that there is any such error at all: shrunk
    /// towards 0 by its own sampling variance (positive-part
    /// James–Stein), so the noise of a quiet series' blocks, whose
    /// squared residuals scatter widely around 0, is not read as an error
    /// of a few percent.
    pub fn positive(&self, memory: f64) -> f64 {
        // One block has no spread to measure its own sampling error by:
        // unshrunk, the first hour of a series (one with a bulk order in
        // it) set the hour's model error to 500 %.
        let n = self.blocks.min(memory);
        if self.weight <= 0.0 || n < 2.0 {
            return 0.0;
        }
        let mean = self.excess_w / self.weight;
        let spread = self.ww_xx - 2.0 * mean * self.ww_x + mean * mean * self.ww;
        // The weighted mean's variance, with Bessel's correction.
        let se2 = spread.max(0.0) / ((n - 1.0) * self.weight * self.weight);
        if mean <= 0.0 {
            return 0.0;
        }
        mean * (1.0 - se2 / (mean * mean)).max(0.0)
    }

    /// The mean, shrunk towards `prior` as if it were `prior_blocks`
    /// blocks like the ones seen (`prior` itself before any).
    pub fn mean(&self, prior: f64, prior_blocks: f64, memory: f64) -> f64 {
        if self.weight <= 0.0 {
            return prior;
        }
        let n = self.blocks.min(memory);
        (n * self.excess_w / self.weight + prior_blocks * prior) / (n + prior_blocks)
    }
}

impl Noise {
    /// A noise model with prior dispersion `phi_prior`, never below
    /// `phi_min`, forgetting over `memory` buckets; with bucket noise
    /// proportional to the expected value squared if `multiplicative`.
    pub fn new(phi_prior: f64, phi_min: f64, memory: f64, multiplicative: bool) -> Self {
        Self {
            phi: phi_prior.max(phi_min),
            c2: 0.0,
            kappa2: KAPPA_PRIOR * KAPPA_PRIOR,
            phi_prior: phi_prior.max(phi_min),
            phi_min,
            multiplicative,
            uu: 0.0,
            um: 0.0,
            mm: 0.0,
            uy: 0.0,
            uy_net: 0.0,
            my_net: 0.0,
            n: 0.0,
            memory: memory.max(10.0),
            kappa2_hourly: 0.0,
            days: Excess::default(),
            hours: Excess::default(),
        }
    }

    /// The dispersion: noise variance per unit.
    #[inline]
    pub fn phi(&self) -> f64 {
        self.phi
    }

    /// The bucket noise's variance per expected value squared:
    /// independent from one bucket to the next, on top of `phi × unit`.
    #[inline]
    pub fn c2(&self) -> f64 {
        self.c2
    }

    /// The relative model error every bucket of a day shares, squared.
    #[inline]
    pub fn kappa2(&self) -> f64 {
        self.kappa2
    }

    /// The relative model error particular to an hour, squared: on top of
    /// [`Noise::kappa2`], and independent from one hour to the next.
    #[inline]
    pub fn kappa2_hourly(&self) -> f64 {
        self.kappa2_hourly
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
            self.c2 = 0.0;
            // What was learnt before was in the wrong unit.
            self.uu = 0.0;
            self.um = 0.0;
            self.mm = 0.0;
            self.uy = 0.0;
            self.uy_net = 0.0;
            self.my_net = 0.0;
            self.n = 0.0;
        }
    }

    /// Learns the dispersion from a residual `r` of a bucket with noise
    /// unit `u`, expected value `mu`, judged with total variance `var` of
    /// which `known` is known beforehand (the estimation error of a
    /// sketched value) and `profile` is the profile's uncertainty.
    pub fn learn(&mut self, r: f64, u: f64, mu: f64, known: f64, profile: f64, var: f64) {
        if !(r.is_finite() && u.is_finite() && u > 0.0 && mu.is_finite() && var > 0.0) {
            return;
        }
        // Net of the hour's model error, which whole hours measure, and of
        // what is known (the caller's: the day's factor's uncertainty, a
        // sketch's error); not of the profile's uncertainty, which is only an
        // estimate: subtracted, an overestimate of it drove the dispersion
        // to its floor. The caller learns from buckets whose profile
        // uncertainty is small instead.
        //
        // The bucket noise is fitted net of it: the profile's uncertainty
        // is proportional to the expected value squared as well, and would
        // be counted twice, as itself and as bucket noise (on a shop with
        // none, 4 % of it). An overestimate of it lowers only the fitted
        // `c2` (the term it shares a regressor with); one that would take
        // `c2` below 0 leaves the dispersion fitted alone, as above.
        let m = mu * mu;
        let y = (r * r).min(CLIP * var) - m * self.kappa2_hourly - known;
        self.fold(y, y - profile.max(0.0), u, m, var);
    }

    /// Learns the noise from the difference `d` of two adjacent buckets
    /// of a count-like series, the older scaled to the newer's expected
    /// value (`d = x₂ − x₁ μ₂/μ₁`), whose noise units (the expected values
    /// for counts and sums) are `mu1` and `mu2` and whose estimation error
    /// `known` is known beforehand. What the two buckets share (the
    /// profile's error at that hour, the day's) cancels: a series whose
    /// profile is still young, whose residuals say more about the profile
    /// than the noise, shows its noise here. `d` has variance
    /// `v₂ + ρ² v₁` (`ρ = μ₂/μ₁`, `v = phi μ + c2 μ²`), so the regressors
    /// are `μ₂ + ρ² μ₁` and `2 μ₂²`.
    pub fn learn_pair(&mut self, d: f64, mu1: f64, mu2: f64, known: f64) {
        if !(d.is_finite() && mu1 > 0.0 && mu2 > 0.0) {
            return;
        }
        let rho = mu2 / mu1;
        let u = mu2 + rho * rho * mu1;
        let m = 2.0 * mu2 * mu2;
        let var = self.phi * u + self.c2 * m + known;
        if !(var > 0.0 && var.is_finite()) {
            return;
        }
        let y = (d * d).min(CLIP * var) - known;
        self.fold(y, y, u, m, var);
    }

    /// One observation `y` (and `y_net`, for the bucket noise) of the
    /// noise variance with unit `u` and expected value squared `m`,
    /// judged at variance `var`.
    fn fold(&mut self, y: f64, y_net: f64, u: f64, m: f64, var: f64) {
        // Weighted by 1 / var²: squared residuals of big buckets vary more.
        let w = 1.0 / (var * var);
        let a = (1.0 / (self.n + 1.0)).max(1.0 / self.memory);
        self.uu += a * (w * u * u - self.uu);
        self.uy += a * (w * u * y - self.uy);
        if self.multiplicative {
            self.um += a * (w * u * m - self.um);
            self.mm += a * (w * m * m - self.mm);
            self.uy_net += a * (w * u * y_net - self.uy_net);
            self.my_net += a * (w * m * y_net - self.my_net);
        }
        self.n += 1.0;
        self.fit();
    }

    /// Weighted least squares with a ridge towards the prior
    /// (`phi_prior`, and no bucket noise) that fades as buckets
    /// accumulate: of `y'` on the unit and on `expected²` where that finds
    /// bucket noise, else of `y` on the unit alone; `phi` at least
    /// `phi_min`.
    fn fit(&mut self) {
        let fade = PRIOR_BUCKETS / (self.n + PRIOR_BUCKETS);
        let (lu, lm) = (fade * self.uu, fade * self.mm);
        let (auu, amm) = (self.uu + lu, self.mm + lm);
        let mut phi = (self.uy + lu * self.phi_prior) / auu.max(1e-300);
        let mut c2 = 0.0;
        let det = auu * amm - self.um * self.um;
        if self.multiplicative && det > 1e-12 * auu * amm {
            let bu = self.uy_net + lu * self.phi_prior;
            let joint = (amm * bu - self.um * self.my_net) / det;
            let slope = (auu * self.my_net - self.um * bu) / det;
            // With the dispersion at its floor, the slope that is left.
            let at_floor = (self.my_net - self.um * self.phi_min) / amm;
            if slope > 0.0 && joint >= self.phi_min {
                (phi, c2) = (joint, slope);
            } else if slope > 0.0 && at_floor > 0.0 {
                (phi, c2) = (self.phi_min, at_floor);
            }
        }
        if phi.is_finite() && c2.is_finite() {
            self.phi = phi.max(self.phi_min);
            self.c2 = c2.min(1.0);
        }
    }

    /// Learns the model error from a whole day: its total `x` against its
    /// expected total `expected`, with noise variance `noise_var` (the
    /// buckets' noise summed) and the profile's relative variance
    /// `rel_var`.
    pub fn learn_day(&mut self, x: f64, expected: f64, noise_var: f64, rel_var: f64) {
        let kappa2 = self.kappa2;
        let memory = self.memory_days();
        if let Some((excess, v)) = excess(x, expected, noise_var, rel_var, kappa2) {
            self.days.learn(excess, v, memory);
            self.kappa2 = self
                .days
                .mean(KAPPA_PRIOR * KAPPA_PRIOR, PRIOR_DAYS, memory)
                .max(KAPPA_MIN * KAPPA_MIN);
        }
    }

    /// Learns the model error particular to an hour from a whole hour, as
    /// [`Noise::learn_day`] does from a day. `expected` already carries the day's factor, and `rel_var` its
    /// uncertainty: what is left is the hour's own.
    pub fn learn_hour(&mut self, x: f64, expected: f64, noise_var: f64, rel_var: f64) {
        let kappa2 = self.kappa2_hourly;
        let memory = self.memory_days() * 24.0;
        if let Some((excess, v)) = excess(x, expected, noise_var, rel_var, kappa2) {
            self.hours.learn(excess, v, memory);
            self.kappa2_hourly = self.hours.positive(memory);
        }
    }

    /// The model error's memory, in days.
    fn memory_days(&self) -> f64 {
        (self.memory / 288.0).max(14.0)
    }
}

/// A block's relative excess (see [`Excess`]) and its relative variance
/// in all, or None for a block that says nothing.
fn excess(x: f64, expected: f64, noise_var: f64, rel_var: f64, kappa2: f64) -> Option<(f64, f64)> {
    let e2 = expected * expected;
    // A block whose noise alone exceeds its expected total (a quiet
    // series' hour, with less than an event in it) cannot show a relative
    // error below 100 %: its squared residual is noise, heavy-tailed.
    if !(x.is_finite() && expected > 0.0 && noise_var >= 0.0 && noise_var <= e2) {
        return None;
    }
    let var = noise_var + e2 * (rel_var + kappa2);
    let r = x - expected;
    let excess = ((r * r).min(CLIP * var) - noise_var) / e2 - rel_var;
    Some((excess, var / e2))
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
    fn one_block_says_nothing_about_the_model_error_and_two_that_agree_do() {
        // The first hour of a series had a bulk order in it: 5x its
        // expected total squared, beyond its noise.
        let mut hours = Excess::default();
        hours.learn(5.0, 1.0, 336.0);
        assert_eq!(hours.positive(336.0), 0.0);
        hours.learn(5.0, 1.0, 336.0);
        assert!((hours.positive(336.0) - 5.0).abs() < 1e-9);
        // Two that disagree as much as noise does: shrunk to nothing.
        let mut hours = Excess::default();
        hours.learn(5.0, 1.0, 336.0);
        hours.learn(-1.0, 1.0, 336.0);
        assert_eq!(hours.positive(336.0), 0.0);
    }

    #[test]
    fn learns_overdispersion_per_bucket_and_model_error_from_whole_days() {
        // A day of 288 buckets whose expected values range from 2 to 200;
        // each day is off by a common factor of sd 8 % (model error), and
        // each bucket has noise 1.8 × its mean.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut noise = Noise::new(1.0, 1.0, 4032.0, true);
        for _ in 0..60 {
            let day = 1.0 + 0.08 * gauss(&mut rng);
            let (mut x, mut e, mut v) = (0.0, 0.0, 0.0);
            for i in 0..288u64 {
                let mu = 2.0 * 100f64.powf((i % 48) as f64 / 47.0);
                let value = mu * day + gauss(&mut rng) * (1.8 * mu).sqrt();
                let var = noise.phi() * mu + noise.kappa2() * mu * mu;
                noise.learn(value - mu, mu, mu, noise.kappa2() * mu * mu, 0.0, var);
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
    fn tells_poisson_noise_from_a_rate_that_jitters_by_the_bucket() {
        // Buckets expected from 5 to 500 (a day's rhythm), each drawn with
        // a rate off by its own 15 % and Poisson around it: variance
        // mu + 0.0225 mu². One dispersion alone, fitted over the day,
        // gives the peak less than half its variance.
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let mut noise = Noise::new(1.0, 1.0, 4032.0, true);
        let mut plain = Noise::new(1.0, 1.0, 4032.0, false);
        for i in 0..8000u64 {
            let mu = 5.0 * 100f64.powf((i % 96) as f64 / 95.0);
            let var_true = mu + 0.0225 * mu * mu;
            let r = gauss(&mut rng) * var_true.sqrt();
            let var = noise.phi() * mu + noise.c2() * mu * mu;
            noise.learn(r, mu, mu, 0.0, 0.0, var);
            plain.learn(r, mu, mu, 0.0, 0.0, plain.phi() * mu);
        }
        let c = noise.c2().sqrt();
        assert!((c / 0.15 - 1.0).abs() < 0.1, "c {c}");
        assert!(noise.phi() < 1.5, "phi {}", noise.phi());
        // The variance at the peak, relative to the truth.
        let peak =
            |n: &Noise| (n.phi() * 500.0 + n.c2() * 250_000.0) / (500.0 + 0.0225 * 250_000.0);
        assert!((peak(&noise) - 1.0).abs() < 0.2, "{}", peak(&noise));
        assert!(peak(&plain) < 0.5, "{}", peak(&plain));
        assert_eq!(plain.c2(), 0.0);
    }

    #[test]
    fn adjacent_buckets_show_the_noise_through_a_profile_that_is_off() {
        // A young profile, off by its own 30 % each hour (both buckets of
        // a pair share it); the buckets jitter by 10 % and are Poisson
        // around that. Pairs see the jitter, not the profile's error.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut noise = Noise::new(1.0, 1.0, 4032.0, true);
        let draw = |rng: &mut ChaCha8Rng, mean: f64| {
            let var = mean + 0.01 * mean * mean;
            mean + gauss(rng) * var.sqrt()
        };
        for i in 0..4000u64 {
            let mu1 = 20.0 * 50f64.powf((i % 48) as f64 / 47.0);
            let mu2 = mu1 * 1.05;
            let off = 1.0 + 0.3 * gauss(&mut rng);
            let x1 = draw(&mut rng, mu1 * off);
            let x2 = draw(&mut rng, mu2 * off);
            noise.learn_pair(x2 - x1 * mu2 / mu1, mu1, mu2, 0.0);
        }
        let c = noise.c2().sqrt();
        assert!((c / 0.1 - 1.0).abs() < 0.15, "c {c}");
        assert!(noise.phi() < 1.5, "phi {}", noise.phi());
    }

    #[test]
    fn counts_are_never_judged_tighter_than_poisson() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut noise = Noise::new(1.0, 1.0, 4000.0, true);
        for i in 0..5000u64 {
            let mu = 10.0 + (i % 7) as f64;
            // Under-dispersed residuals.
            let r = 0.3 * gauss(&mut rng) * mu.sqrt();
            noise.learn(r, mu, mu, 0.0, 0.0, mu);
        }
        assert_eq!(noise.phi(), 1.0);
        assert!(noise.kappa2() >= KAPPA_MIN * KAPPA_MIN);
    }

    #[test]
    fn one_huge_residual_moves_little() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut noise = Noise::new(1.0, 1.0, 4000.0, true);
        for _ in 0..3000 {
            let mu: f64 = 50.0;
            noise.learn(gauss(&mut rng) * mu.sqrt(), mu, mu, 0.0, 0.0, mu);
        }
        let before = (noise.phi(), noise.kappa2());
        noise.learn(1e6, 50.0, 50.0, 0.0, 0.0, 50.0 * before.0);
        assert!(
            noise.phi() < before.0 * 1.05 + 0.05,
            "{before:?} {}",
            noise.phi()
        );
    }

    #[test]
    fn an_error_that_cancels_over_a_day_is_learnt_from_hours() {
        // Each hour is off by its own 10 % (a shape drawn too flat), the
        // errors cancel over the day: days see ~1 % at most, hours 10 %.
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut noise = Noise::new(1.0, 1.0, 4032.0, true);
        for _ in 0..28 {
            let (mut day_x, mut day_e) = (0.0, 0.0);
            for h in 0..24 {
                let e: f64 = 1200.0;
                let off = if h % 2 == 0 { 1.1 } else { 0.9 };
                let x = e * off + gauss(&mut rng) * e.sqrt();
                noise.learn_hour(x, e, e, 0.0);
                day_x += x;
                day_e += e;
            }
            noise.learn_day(day_x, day_e, day_e, 0.0);
        }
        let hourly = noise.kappa2_hourly().sqrt();
        assert!((hourly / 0.1 - 1.0).abs() < 0.2, "hourly {hourly}");
        assert!(
            noise.kappa2().sqrt() < 0.03,
            "day {}",
            noise.kappa2().sqrt()
        );
    }

    #[test]
    fn the_noise_of_quiet_hours_is_not_taken_for_an_error() {
        // Poisson hours of 3 to 30 events and nothing else: their squared
        // residuals scatter widely around what Poisson explains.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut noise = Noise::new(1.0, 1.0, 4032.0, true);
        for i in 0..28 * 24 {
            let e = 3.0 + 27.0 * ((i % 24) as f64 / 23.0);
            let x = e + gauss(&mut rng) * e.sqrt();
            noise.learn_hour(x, e, e, 0.0);
        }
        let hourly = noise.kappa2_hourly().sqrt();
        assert!(hourly < 0.05, "hourly {hourly}");
    }
}
