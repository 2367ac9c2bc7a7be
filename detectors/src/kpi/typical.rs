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
//!
//! The wander is learnt from whole hours, not from buckets. A wander that
//! matters to a window is one its buckets share, and an hour measures it
//! far better than its buckets one by one: at two payments a bucket each
//! bucket's mean log has a noise of `s²/2` = 0.18, and two weeks of them
//! leave `w²` uncertain by ~0.004, so an estimate of a shop whose baskets
//! do not wander at all came out anywhere between 0 and 0.09² (traced on
//! the scenario suite at ×0.1, and reproduced on simulated amounts), and
//! a band that wide hid a price bug. An hour of the same shop has a noise
//! of `s²/25`, and two weeks of hours know `w²` to ~0.001. Where an hour
//! holds a payment or two they do not: the estimate is then mostly the
//! error of the spread it is measured against, and a wander is claimed
//! only beyond two standard errors of it ([`Typical::wander_var`]).

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
    /// Sum of the squares of the values themselves (not of their
    /// logarithms): the amounts' second moment, which a few large orders
    /// dominate (see [`super::amounts`]).
    pub squares: f64,
    /// The largest value: what a spike of a sum or an average must be
    /// more than (see [`super::amounts`]).
    pub largest: f64,
}

/// Least degrees of freedom behind `s²`, and least events behind `m`,
/// before the test runs: with 50, `s²` is known within about ±20 % (its
/// relative standard error is sqrt(2/50)), and `m` within a seventh of one
/// value's spread.
const LEAST: f64 = 50.0;

/// Standard errors ([`Typical::wander_se2`]) by which the hours' squared
/// deviations must exceed their noise before any of it is taken as
/// wander ([`Typical::wander_var`]).
const WANDER_SE: f64 = 2.0;

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
    /// Hours' squared wander beyond noise, weighted, and the weights
    /// (`w²`); and the hours behind it.
    wander: f64,
    wander_weight: f64,
    hours: f64,
    /// The hour being summed.
    hour: Hour,
}

/// The ordinary events of one hour so far, and what was known before it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct Hour {
    /// Which hour (the caller's number; see [`Typical::learn`]).
    id: i64,
    events: f64,
    logs: f64,
    /// `m` when the hour began, or NaN when too little was known to
    /// measure the wander against.
    mean: f64,
}

impl Typical {
    /// Learns one ordinary bucket of `n` events, of hour `hour` (any
    /// number that changes when the hour does: a bucket wider than an hour
    /// is an hour of its own); `keep` is the discount per bucket of the
    /// mean, `keep_spread` per bucket of the spread, `keep_wander` per
    /// hour of the wander. The mean follows prices within days; the
    /// spread, a property of the business that moves slowly, is learnt
    /// over as long as the wander is, which is measured against it: a
    /// spread known from three days of a few payments a bucket (its
    /// estimate off by a quarter) read as wander whenever it was low.
    pub fn learn(
        &mut self,
        logs: &LogSums,
        n: f64,
        hour: i64,
        [keep, keep_spread, keep_wander]: [f64; 3],
    ) {
        if n < 1.0 {
            return;
        }
        if hour != self.hour.id || self.hour.events == 0.0 {
            self.close_hour(keep_wander);
            let known = self.events >= LEAST && self.dof >= LEAST;
            self.hour = Hour {
                id: hour,
                events: 0.0,
                logs: 0.0,
                mean: if known { self.mean() } else { f64::NAN },
            };
        }
        self.hour.events += n;
        self.hour.logs += logs.sum;
        self.dev2 *= keep_spread;
        self.dof *= keep_spread;
        if n >= 2.0 {
            self.dev2 += (logs.sum_sq - logs.sum * logs.sum / n).max(0.0);
            self.dof += n - 1.0;
        }
        self.events = self.events * keep + n;
        self.logs = self.logs * keep + logs.sum;
    }

    /// Folds the hour just ended into the wander, against what was known
    /// before it began.
    fn close_hour(&mut self, keep_wander: f64) {
        let h = self.hour;
        if h.events <= 0.0 || !h.mean.is_finite() {
            return;
        }
        let noise = self.var() / h.events + self.mean_var();
        let r = h.logs / h.events - h.mean;
        // Inverse variance of r² (2 (noise + w²)²), so the busy hours,
        // whose mean log is measured well, teach it most.
        let spread = noise + self.wander_var();
        let weight = 1.0 / (2.0 * spread * spread);
        self.wander = self.wander * keep_wander + weight * (r * r - noise);
        self.wander_weight = self.wander_weight * keep_wander + weight;
        self.hours = self.hours * keep_wander + 1.0;
    }

    /// Whether enough was learnt to test: the spread and mean from
    /// [`LEAST`] events, and the wander from a day of hours
    /// (`hours_per_day`), so it has seen the day's hours.
    pub fn known(&self, hours_per_day: f64) -> bool {
        self.dof >= LEAST && self.events >= LEAST && self.hours >= hours_per_day
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
    /// squared, `w²`: what the hours showed beyond their noise when that
    /// is more than [`WANDER_SE`] standard errors of the estimate
    /// ([`Typical::wander_se2`]), and at least a relative 1 % (the least
    /// model error of the other tests).
    ///
    /// The estimate is a small difference of two large numbers where the
    /// hours hold a few events: an hour of two payments has a noise of
    /// `s²/2` ≈ 0.36, which a spread learnt a fifth too low (as it is,
    /// from the few buckets of two payments or more) understates by 0.07,
    /// and one bulk order 25 times the usual basket adds 2.6 to its
    /// squared wander. On the nodes of a small shop (0.4 payments a
    /// bucket) three weeks of hours left `w` anywhere between 0.01 and
    /// 0.37 on nodes that do not wander at all (measured from their
    /// events: `w²` 0.00 ± 0.03), and a window of 17 payments, whose mean
    /// log has a variance of 0.04, was judged with up to four times that:
    /// a canary node booking 40 % of each amount for four hours was never
    /// flagged. A wander within two standard errors of none is taken as
    /// none; a busy series knows `w²` to a few 1e-4 and keeps it whole
    /// (taking the margin off every estimate instead cut a wander of 0.1
    /// measured to 7 standard errors to 0.075).
    pub fn wander_var(&self) -> f64 {
        let w = if self.wander_weight > 0.0 {
            let w = self.wander / self.wander_weight;
            if w * w > WANDER_SE * WANDER_SE * self.wander_se2() {
                w
            } else {
                0.0
            }
        } else {
            0.0
        };
        w.max(KAPPA_MIN * KAPPA_MIN)
    }

    /// The variance of the wander's estimate when there is none: each
    /// hour's term has variance `2 (noise + w²)²`, the inverse of its
    /// weight, so the hours' own noise gives `1 / Σ weights` (for hours
    /// not discounted; down to half that in the discounted steady state);
    /// and every term subtracts a noise of about `s²/n` with the same
    /// `s²`, known to a relative `sqrt(2 / dof)`, which moves them all
    /// together by their noise times that error: `hours / (Σ weights ·
    /// dof)` more, as the mean squared noise of an hour is
    /// `hours / (2 Σ weights)`. Where hours hold a payment or two, the
    /// second dominates: `s²` is learnt only within buckets of two or more.
    fn wander_se2(&self) -> f64 {
        (1.0 + self.hours / self.dof.max(1.0)) / self.wander_weight.max(1e-300)
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
            squares: logs.iter().map(|l| (2.0 * l).exp()).sum(),
            largest: logs.iter().fold(0.0, |m, l| l.exp().max(m)),
        }
    }

    /// Poisson payments a bucket through a day of `per_day` buckets:
    /// `night` × `peak` at 04:00, `peak` at 16:00.
    fn payments(per_day: usize, peak: f64, night: f64) -> Vec<rand_distr::Poisson<f64>> {
        (0..per_day)
            .map(|b| {
                let hour = 24.0 * b as f64 / per_day as f64;
                let day = night
                    + (1.0 - night) * (std::f64::consts::PI * (hour - 4.0) / 24.0).sin().powi(2);
                rand_distr::Poisson::new(peak * day).expect("poisson")
            })
            .collect()
    }

    /// Learns `days` of buckets of `counts` payments, each one's log value
    /// drawn from `value`, with the engine's memories (the mean's three
    /// days, the spread's and the wander's two weeks).
    fn learn_days(
        t: &mut Typical,
        rng: &mut rand_chacha::ChaCha8Rng,
        counts: &[rand_distr::Poisson<f64>],
        days: usize,
        value: &rand_distr::Normal<f64>,
    ) {
        use rand_distr::Distribution;
        let per_day = counts.len();
        let keep = 1.0 - 1.0 / (3.0 * per_day as f64);
        let keep_spread = 1.0 - 1.0 / (14.0 * per_day as f64);
        let keep_wander = 1.0 - 1.0 / (14.0 * 24.0);
        for i in 0..days * per_day {
            let n: f64 = counts[i % per_day].sample(rng);
            let logs: Vec<f64> = (0..n as usize).map(|_| value.sample(rng)).collect();
            if n >= 1.0 {
                let hour = (i * 24 / per_day) as i64;
                t.learn(&sums(&logs), n, hour, [keep, keep_spread, keep_wander]);
            }
        }
    }

    #[test]
    fn learns_the_mean_and_spread_of_log_values_and_no_wander_where_there_is_none() {
        // Two values a bucket at ±s/√2 around ln 30: a within-bucket
        // variance of s², and every bucket's mean log exactly ln 30.
        let s = 0.6_f64;
        let mut t = Typical::default();
        let d = s / 2f64.sqrt();
        for hour in 0..2000 {
            t.learn(
                &sums(&[30f64.ln() - d, 30f64.ln() + d]),
                2.0,
                hour,
                [0.999; 3],
            );
        }
        assert!(t.known(288.0));
        assert!((t.var() - s * s).abs() < 1e-9, "{}", t.var());
        assert!((t.mean() - 30f64.ln()).abs() < 1e-9, "{}", t.mean());
        // Buckets closer to m than their noise says: the floor.
        assert_eq!(t.wander_var(), KAPPA_MIN * KAPPA_MIN);
    }

    #[test]
    fn learns_how_far_the_hours_wander_beyond_their_noise() {
        // Hours of twelve buckets of two log-normal values whose centre
        // alternates between ln 30 ± 0.1 by the hour: a wander of 0.1²,
        // beside a bucket's noise of s²/2 = 0.18 and an hour's of 0.015.
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let s = 0.6_f64;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let noise = Normal::new(0.0, s).expect("normal");
        let mut t = Typical::default();
        let keep_wander = 1.0 - 1.0 / (14.0 * 24.0);
        for i in 0..(28 * 288) {
            let hour = i / 12;
            let centre = 30f64.ln() + if hour % 2 == 0 { 0.1 } else { -0.1 };
            let logs: Vec<f64> = (0..2).map(|_| centre + noise.sample(&mut rng)).collect();
            t.learn(&sums(&logs), 2.0, hour, [0.999, 0.999, keep_wander]);
        }
        assert!(t.known(24.0));
        let w = t.wander_var().sqrt();
        assert!((w - 0.1).abs() < 0.02, "{w}");
    }

    #[test]
    fn learns_no_wander_from_noise_at_two_events_a_bucket() {
        // A quiet shop: Poisson payments a 5-minute bucket (0.6 at night,
        // 2.3 at the peak), all from one log-normal (s = 0.6), learnt with
        // the engine's memories for four weeks, in eight shops.
        use rand::SeedableRng;
        let s = 0.6_f64;
        let noise = rand_distr::Normal::new(30f64.ln(), s).expect("normal");
        let counts = payments(288, 2.3, 0.25);
        let mut raw = Vec::new();
        for seed in 0..8 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut t = Typical::default();
            learn_days(&mut t, &mut rng, &counts, 28, &noise);
            // Never as wide as the 0.09 the buckets one by one gave.
            assert!(
                t.wander_var().sqrt() < 0.06,
                "{seed}: {}",
                t.wander_var().sqrt()
            );
            raw.push(t.wander / t.wander_weight);
        }
        let mean = raw.iter().sum::<f64>() / raw.len() as f64;
        assert!(mean.abs() < 0.001, "{raw:?}");
    }

    #[test]
    fn a_node_of_a_small_shop_claims_no_wander_from_the_noise_of_its_hours() {
        // A node taking 0.4 payments a 15-minute bucket on average (0.1 at
        // night, 0.7 at the peak), baskets log-normal (s = 0.85), learnt
        // with the engine's memories for three weeks, in twelve shops. No
        // hour wanders; the estimate from hours of one to three payments
        // came out as high as 0.08 (a wander of 0.29), mostly from a
        // spread learnt a fifth too low.
        use rand::SeedableRng;
        let basket = rand_distr::Normal::new(40f64.ln(), 0.85).expect("normal");
        let counts = payments(96, 0.7, 0.15);
        for seed in 0..12 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut t = Typical::default();
            learn_days(&mut t, &mut rng, &counts, 21, &basket);
            assert!(t.known(24.0));
            assert_eq!(
                t.wander_var(),
                KAPPA_MIN * KAPPA_MIN,
                "{seed}: w = {:.3} from {:.4} ± {:.4}",
                t.wander_var().sqrt(),
                t.wander / t.wander_weight,
                t.wander_se2().sqrt()
            );
        }
    }

    #[test]
    fn a_bucket_of_one_value_teaches_the_mean_but_not_the_spread() {
        let mut t = Typical::default();
        t.learn(&sums(&[3.0]), 1.0, 0, [1.0; 3]);
        assert_eq!(t.dof, 0.0);
        assert_eq!(t.mean(), 3.0);
        assert!(!t.known(1.0));
    }
}
