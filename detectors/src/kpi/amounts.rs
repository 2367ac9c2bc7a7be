//! The large single amounts of a sum or an average, and what its upper
//! tail owes to them.
//!
//! Revenue is a count of payments times what each is worth, and what each
//! is worth is skewed: most baskets near the median, a few bulk or B2B
//! orders ten to sixty times it. One such order lifts its bucket, and
//! every window over it, far above the expectation. It is an ordinary
//! event of the business — a shop where 0.4 % of orders are bulk sees one
//! in about every fortieth bucket of seven payments — but the noise learnt
//! from residuals cannot learn it as ordinary: a bucket with one is judged
//! anomalous, and anomalous buckets do not teach the noise. The model then
//! reads each one as a one-in-a-million spike.
//!
//! So the amounts' moments are learnt from the values themselves (the
//! aggregator sums their squares per bucket), over every bucket of the
//! last two weeks, anomalous or not. `E[x²] / E[x]` is a compound Poisson
//! sum's variance per unit of its mean, and `E[x²] − E[x]²` a mean's
//! variance per event. What these exceed the dispersion learnt from
//! residuals by is added to the variance of the *upper* tail only. The
//! lower tail keeps the learnt noise. A sum falls when payments stop or
//! shrink, and no single large order explains that; an empty bucket
//! keeps the probability its count gives it.
//!
//! A variance does not reach every order: one 150x a basket (a bulk
//! order's multiplier two to three σ out) is still a one-in-ten-million
//! total for a log-normal of matched variance. So a spike is also judged
//! with the window's largest value counted as an ordinary one
//! (`KpiModel::without_largest`, from the largest value the aggregator
//! keeps per bucket): one order, however large, is not a level that
//! moved.

use serde::{Deserialize, Serialize};

use super::typical::LogSums;
use super::Kind;

/// Values seen before the moments are used: as for the typical value,
/// fifty (until then the upper tail is the learnt noise's alone).
const LEAST: f64 = 50.0;

/// Discounted sums of a series' values, their squares and their number.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Amounts {
    events: f64,
    sum: f64,
    squares: f64,
}

impl Amounts {
    /// Learns a bucket of `events` values whose sum is `sum` and whose
    /// squares are in `logs`, forgetting the past by `keep`.
    pub fn learn(&mut self, logs: &LogSums, events: f64, sum: f64, keep: f64) {
        if !(logs.squares.is_finite() && sum.is_finite() && events > 0.0) {
            return;
        }
        self.events = self.events * keep + events;
        self.sum = self.sum * keep + sum;
        self.squares = self.squares * keep + logs.squares;
    }

    /// What the values' dispersion exceeds `phi` by, in `phi`'s unit: for
    /// a sum, `E[x²] / E[x]` (its variance per unit of mean); for an
    /// average, `E[x²] − E[x]²` (its variance per event). 0 until
    /// [`LEAST`] values are seen, and for other aggregates.
    pub fn excess(&self, kind: Kind, phi: f64) -> f64 {
        if self.events < LEAST || self.sum <= 0.0 {
            return 0.0;
        }
        let mean = self.sum / self.events;
        let dispersion = match kind {
            Kind::Sum => self.squares / self.sum,
            Kind::Avg => self.squares / self.events - mean * mean,
            _ => return 0.0,
        };
        (dispersion - phi).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(values: &[f64]) -> (LogSums, f64, f64) {
        let logs = LogSums {
            sum: values.iter().map(|v| v.ln()).sum(),
            sum_sq: values.iter().map(|v| v.ln() * v.ln()).sum(),
            squares: values.iter().map(|v| v * v).sum(),
            largest: values.iter().fold(0.0, |m, v| v.max(m)),
        };
        (logs, values.len() as f64, values.iter().sum())
    }

    #[test]
    fn one_large_order_in_a_hundred_dominates_a_sums_dispersion() {
        // 99 baskets of 50 and one bulk order of 1,250 (25x) per 100.
        let mut a = Amounts::default();
        for i in 0..1000 {
            let v = if i % 100 == 0 { 1250.0 } else { 50.0 };
            let (logs, n, sum) = bucket(&[v]);
            a.learn(&logs, n, sum, 1.0);
        }
        let mean = (99.0 * 50.0 + 1250.0) / 100.0;
        let second = (99.0 * 2500.0 + 1250.0 * 1250.0) / 100.0;
        let expected = second / mean;
        // A residual-learnt dispersion of a basket's 50 leaves the rest.
        let excess = a.excess(Kind::Sum, 50.0);
        assert!((excess - (expected - 50.0)).abs() < 1e-6 * expected);
        assert!(excess > 200.0, "{excess}");
        // An average's variance per event, in the values' squared unit.
        let var = second - mean * mean;
        assert!((a.excess(Kind::Avg, 0.0) - var).abs() < 1e-6 * var);
    }

    #[test]
    fn nothing_is_added_where_the_learnt_noise_already_covers_it_or_too_little_is_seen() {
        let mut a = Amounts::default();
        let (logs, n, sum) = bucket(&[40.0, 60.0]);
        for _ in 0..10 {
            a.learn(&logs, n, sum, 1.0);
        }
        assert_eq!(a.excess(Kind::Sum, 0.0), 0.0, "20 values: not yet");
        for _ in 0..40 {
            a.learn(&logs, n, sum, 1.0);
        }
        // E[x²]/E[x] = 2600/50 = 52.
        assert!((a.excess(Kind::Sum, 0.0) - 52.0).abs() < 1e-9);
        assert_eq!(a.excess(Kind::Sum, 60.0), 0.0);
        assert_eq!(a.excess(Kind::Count, 0.0), 0.0);
    }
}
