//! The typical value per event of a sum or an average: what a fault that
//! changes every amount shows in ([`super::Source::Typical`]).
//!
//! A price bug that makes every basket 40 % cheaper, or a node that books
//! every payment at half its amount, changes each event's value by one
//! factor. The bucket's sum or mean shows it too, but against noise that
//! is the few largest amounts' (amounts as skewed as baskets have a
//! standard deviation near their mean) and an expectation that follows
//! traffic through a seasonal profile, known at low volume to ~10 %: at
//! two payments a bucket that took three hours or was missed
//! (`docs/tuning-log.md`). The mean of the values' logarithms, the log of
//! their geometric mean, moves by the same factor (ln 0.6) with a spread
//! that does not depend on the largest values, and its expectation needs
//! no seasonal profile: what one payment is worth does not follow traffic.
//!
//! So the model of an event's log value is flat: its mean `m` and spread
//! `s²`, learnt from every ordinary event of the last days (thousands even
//! at two a bucket), and how far the buckets' mean logs wander from `m`
//! beyond their noise, `w²` (a shop whose evening baskets are larger, or
//! whose mix changes by the hour: learnt, not assumed away). A window of
//! `n` events then has mean log `m` with variance `s²/n + w² + s²/N` (`N`
//! the events `m` was learnt from); the wander is taken as shared by the
//! whole window, as a model error is.

use serde::{Deserialize, Serialize};

use super::noise::KAPPA_MIN;

/// A bucket's logarithms, for a sum or an average whose values in it were
/// all positive (a value of 0 or less has none: such a bucket is left out
/// of the test, and so is every window over it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogSums {
    /// Sum of the values' natural logarithms.
    pub sum: f64,
    /// Sum of their squares.
    pub sum_sq: f64,
}

/// Least degrees of freedom behind `s²`, and least events behind `m`,
/// before the test runs: with 50, `s²` is known within about ±20 % (its
/// relative standard error is sqrt(2/50)), and `m` within a seventh of one
/// value's spread.
const LEAST: f64 = 50.0;

/// Discounted sums over the ordinary events of the last days; see the
/// module docs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Typical {
    /// Events and the sum of their logarithms (`m`).
    events: f64,
    logs: f64,
    /// Squared deviations of the logs from their bucket's mean, and their
    /// degrees of freedom (`s²`).
    dev2: f64,
    dof: f64,
    /// Buckets' squared wander beyond noise, weighted, and the weights
    /// (`w²`); and the buckets behind it.
    wander: f64,
    wander_weight: f64,
    buckets: f64,
}

impl Typical {
    /// Learns one ordinary bucket of `n` events; `keep` is the discount
    /// per bucket of the mean and spread, `keep_wander` of the wander (a
    /// small variance measured from noisy buckets: at two events a bucket
    /// three days of them leave it uncertain by ~0.003, as large as a
    /// wander that matters, so it is learnt over longer).
    pub fn learn(&mut self, logs: &LogSums, n: f64, keep: f64, keep_wander: f64) {
        if n < 1.0 {
            return;
        }
        // The wander, against what was known before this bucket.
        if self.events >= LEAST && self.dof >= LEAST {
            let noise = self.var() / n + self.mean_var();
            let r = logs.sum / n - self.mean();
            // Inverse variance of r² (2 (noise + w²)²), so the busy buckets,
            // whose mean log is measured well, teach it most.
            let spread = noise + self.wander_var();
            let weight = 1.0 / (2.0 * spread * spread);
            self.wander = self.wander * keep_wander + weight * (r * r - noise);
            self.wander_weight = self.wander_weight * keep_wander + weight;
            self.buckets = self.buckets * keep_wander + 1.0;
        }
        self.dev2 *= keep;
        self.dof *= keep;
        if n >= 2.0 {
            self.dev2 += (logs.sum_sq - logs.sum * logs.sum / n).max(0.0);
            self.dof += n - 1.0;
        }
        self.events = self.events * keep + n;
        self.logs = self.logs * keep + logs.sum;
    }

    /// Whether enough was learnt to test: the spread and mean from
    /// [`LEAST`] events, and the wander from a day of buckets (`per_day`),
    /// so it has seen the day's hours.
    pub fn known(&self, per_day: f64) -> bool {
        self.dof >= LEAST && self.events >= LEAST && self.buckets >= per_day
    }

    /// The mean log value `m`.
    pub fn mean(&self) -> f64 {
        self.logs / self.events.max(1e-300)
    }

    /// One value's variance of logarithms, `s²`.
    pub fn var(&self) -> f64 {
        self.dev2 / self.dof.max(1e-300)
    }

    /// The variance of `m` as learnt.
    pub fn mean_var(&self) -> f64 {
        self.var() / self.events.max(1e-300)
    }

    /// How far a bucket's mean log wanders from `m` beyond its noise,
    /// squared, `w²`: at least a relative 1 % (the least model error of
    /// the other tests).
    pub fn wander_var(&self) -> f64 {
        let w = if self.wander_weight > 0.0 {
            self.wander / self.wander_weight
        } else {
            0.0
        };
        w.max(KAPPA_MIN * KAPPA_MIN)
    }

    /// The predictive mean and variance of the sum of logs of `n` events.
    pub fn predictive(&self, n: f64) -> (f64, f64) {
        (
            n * self.mean(),
            n * self.var() + n * n * (self.wander_var() + self.mean_var()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(logs: &[f64]) -> LogSums {
        LogSums {
            sum: logs.iter().sum(),
            sum_sq: logs.iter().map(|l| l * l).sum(),
        }
    }

    #[test]
    fn learns_the_mean_and_spread_of_log_values_and_no_wander_where_there_is_none() {
        // Two values a bucket at ±s/√2 around ln 30: a within-bucket
        // variance of s², and every bucket's mean log exactly ln 30.
        let s = 0.6_f64;
        let mut t = Typical::default();
        let d = s / 2f64.sqrt();
        for _ in 0..2000 {
            t.learn(&sums(&[30f64.ln() - d, 30f64.ln() + d]), 2.0, 0.999, 0.999);
        }
        assert!(t.known(288.0));
        assert!((t.var() - s * s).abs() < 1e-9, "{}", t.var());
        assert!((t.mean() - 30f64.ln()).abs() < 1e-9, "{}", t.mean());
        // Buckets closer to m than their noise says: the floor.
        assert_eq!(t.wander_var(), KAPPA_MIN * KAPPA_MIN);
    }

    #[test]
    fn learns_how_far_the_buckets_wander_beyond_their_noise() {
        // Buckets of 100 log-normal values whose centre alternates between
        // ln 30 ± 0.1: a wander of 0.1², beside a noise of s²/100 = 0.0036.
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let s = 0.6_f64;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let noise = Normal::new(0.0, s).expect("normal");
        let mut t = Typical::default();
        for i in 0..3000 {
            let centre = 30f64.ln() + if i % 2 == 0 { 0.1 } else { -0.1 };
            let logs: Vec<f64> = (0..100).map(|_| centre + noise.sample(&mut rng)).collect();
            t.learn(&sums(&logs), 100.0, 0.999, 0.999);
        }
        assert!(t.known(288.0));
        let w = t.wander_var().sqrt();
        assert!((w - 0.1).abs() < 0.01, "{w}");
    }

    #[test]
    fn a_bucket_of_one_value_teaches_the_mean_but_not_the_spread() {
        let mut t = Typical::default();
        t.learn(&sums(&[3.0]), 1.0, 1.0, 1.0);
        assert_eq!(t.dof, 0.0);
        assert_eq!(t.mean(), 3.0);
        assert!(!t.known(1.0));
    }
}
