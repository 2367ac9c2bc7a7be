//! Calibrating a statistic against the series' own history.
//!
//! A z-score's normal tail probability is honest only when residuals are
//! normal. Business and machine series rarely are: a disk-write series
//! spikes to fifty spreads every hour, a CPU series is flat for a day and
//! then noisy. Under a normal tail such a series scores 1 all day, and no
//! single threshold can serve it and a calm series together.
//!
//! [`EmpiricalTail`] instead answers "what fraction of this series' recent
//! history was at least this extreme?", from an exponentially forgetting
//! histogram of a non-negative statistic (|z|, or a short-term average of
//! surprise). Bins are half an octave wide on a log scale, so 32 of them
//! cover four and a half decades, and the mass within a bin is interpolated
//! linearly. Beyond what has been seen the histogram knows nothing, so the
//! estimate is a Bayesian mix with a parametric *prior* tail — `prior`
//! pseudo-observations distributed like the statistic would be if nothing
//! were wrong:
//!
//! ```text
//! p(x) = (mass at or above x + prior * p_null(x)) / (total mass + prior)
//! ```
//!
//! While history is short the null tail dominates; once it is long, a
//! value as extreme as the 1 % most extreme of the recent past gets
//! p ≈ 0.01, and a value beyond everything seen gets at most
//! `prior / (total + prior)` times its null tail. That same mechanism stops
//! re-alarms: once an event's first extreme points have been learned, the
//! next points of the same size are no longer unseen.
//!
//! State is 32 `f32` bin masses, 4 group sums and a few scalars: 164
//! bytes, no allocation. A push adds to one bin and its group; a lookup
//! sums the groups and bins above its value (forgetting is done by giving
//! each new observation more weight, see `unit`).

use serde::{Deserialize, Serialize};

/// Number of histogram bins.
pub const BINS: usize = 32;
/// Bins per group; see [`EmpiricalTail::groups`].
const GROUP: usize = 8;
/// Weight at which the histogram is rescaled to keep `f32` precise.
const RESCALE_AT: f32 = 1024.0;

/// Exponentially forgetting histogram of a non-negative statistic, with a
/// prior tail; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmpiricalTail {
    /// Lower edge of bin 1; bin 0 holds `[0, origin)`.
    origin: f32,
    /// Forgetting rate per observation: the history is about `1/forget`
    /// observations long.
    forget: f32,
    /// Pseudo-observations given to the null tail.
    prior: f32,
    /// Forgotten mass in each bin, in units of `unit`.
    mass: [f32; BINS],
    /// Mass of each group of [`GROUP`] consecutive bins. A push adds to
    /// one bin and its group; a lookup adds the whole groups above its bin
    /// and the bins above it in its own group, a dozen adds at most. (A
    /// cumulative layout read one entry per lookup, but its push added to
    /// every bin below its own: the pushes cost a fifth of the whole set's
    /// time.) Sums run only over masses above `x`, never subtract, so
    /// "nothing seen beyond `x`" stays exactly zero.
    groups: [f32; BINS / GROUP],
    /// Sum of `groups`.
    total: f32,
    /// Weight of the next observation. Instead of multiplying all 32 bins
    /// by `1 - forget` per observation, each new observation weighs
    /// `1 / (1 - forget)` times the previous one; only ratios are ever read,
    /// and everything is rescaled when the weight grows large.
    unit: f32,
}

impl EmpiricalTail {
    /// An empty histogram whose first bin edge is `origin`, remembering
    /// about `1/forget` observations, with `prior` pseudo-observations on
    /// the null tail.
    pub fn new(origin: f64, forget: f64, prior: f64) -> Self {
        Self {
            origin: origin as f32,
            forget: forget as f32,
            prior: prior as f32,
            mass: [0.0; BINS],
            groups: [0.0; BINS / GROUP],
            total: 0.0,
            unit: 1.0,
        }
    }

    /// Mass observed so far (forgotten), i.e. the effective history length.
    pub fn total(&self) -> f64 {
        f64::from(self.total) / f64::from(self.unit)
    }

    /// Bin of `x` and the fraction of the bin lying above `x` (0 in the
    /// open-ended last bin). Reads the octave from the float's exponent
    /// bits instead of calling `log2`: this runs several times per
    /// observation.
    #[inline]
    fn locate(&self, x: f64) -> (usize, f64) {
        let origin = f64::from(self.origin);
        if x.is_nan() || x < origin {
            let frac = if x.is_nan() {
                1.0
            } else {
                1.0 - x.max(0.0) / origin
            };
            return (0, frac);
        }
        let r = x / origin;
        let bits = r.to_bits();
        let octave = ((bits >> 52) & 0x7ff) as i64 - 1023;
        let mantissa = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
        let upper_half = mantissa >= std::f64::consts::SQRT_2;
        let pos = 2 * octave + i64::from(upper_half);
        if pos >= (BINS - 1) as i64 - 1 {
            return (BINS - 1, 0.0);
        }
        let (lo, hi) = if upper_half {
            (std::f64::consts::SQRT_2, 2.0)
        } else {
            (1.0, std::f64::consts::SQRT_2)
        };
        (1 + pos as usize, (hi - mantissa) / (hi - lo))
    }

    /// Tail probability of a value at least as large as `x`, mixing the
    /// history with `null_tail` (the null hypothesis' P(X ≥ x)).
    #[inline]
    pub fn p(&self, x: f64, null_tail: f64) -> f64 {
        let (bin, frac) = self.locate(x);
        let group = bin / GROUP;
        let mut above = 0.0f32;
        for m in &self.mass[bin + 1..(group + 1) * GROUP] {
            above += m;
        }
        for g in &self.groups[group + 1..] {
            above += g;
        }
        let seen = f64::from(above) + frac * f64::from(self.mass[bin]);
        let prior = f64::from(self.prior) * f64::from(self.unit);
        ((seen + prior * null_tail.clamp(0.0, 1.0)) / (f64::from(self.total) + prior)).min(1.0)
    }

    /// Folds in `x`.
    #[inline]
    pub fn push(&mut self, x: f64) {
        let bin = if x < f64::from(self.origin) {
            0
        } else {
            self.locate(x).0
        };
        self.mass[bin] += self.unit;
        self.groups[bin / GROUP] += self.unit;
        self.total += self.unit;
        self.unit /= 1.0 - self.forget;
        if self.unit > RESCALE_AT {
            let shrink = 1.0 / self.unit;
            for m in &mut self.mass {
                *m *= shrink;
            }
            for (g, bins) in self.groups.iter_mut().zip(self.mass.chunks_exact(GROUP)) {
                *g = bins.iter().sum();
            }
            self.total = self.groups.iter().sum();
            self.unit = 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_no_history_the_null_tail_is_the_answer() {
        let t = EmpiricalTail::new(0.25, 1e-3, 10.0);
        assert!((t.p(3.0, 0.0027) - 0.0027).abs() < 1e-12);
    }

    #[test]
    fn a_value_as_common_as_the_history_says_is_not_rare() {
        // A spiky series: one point in ten is 50 spreads out. Under a normal
        // tail every spike has p ≈ 0; against its own history p ≈ 0.1.
        let mut t = EmpiricalTail::new(0.25, 1e-3, 10.0);
        for i in 0..3000 {
            t.push(if i % 10 == 0 { 50.0 } else { 0.7 });
        }
        let p = t.p(50.0, 0.0);
        assert!(p > 0.03 && p < 0.2, "p = {p}");
    }

    #[test]
    fn beyond_everything_seen_only_the_prior_speaks() {
        let mut t = EmpiricalTail::new(0.25, 1e-3, 10.0);
        for i in 0..3000 {
            t.push(f64::from(i % 3));
        }
        let p = t.p(40.0, 1e-30);
        assert!(p < 1e-30, "p = {p}");
    }

    #[test]
    fn an_event_learned_once_is_less_surprising_the_second_time() {
        let mut t = EmpiricalTail::new(0.25, 1e-3, 10.0);
        for i in 0..2000 {
            t.push(f64::from(i % 3) * 0.5);
        }
        let first = t.p(30.0, 1e-12);
        t.push(30.0);
        let second = t.p(30.0, 1e-12);
        assert!(first < 1e-12 && second > 1e-4, "{first} then {second}");
    }

    #[test]
    fn tail_is_monotone_in_x() {
        let mut t = EmpiricalTail::new(0.25, 1e-3, 10.0);
        for i in 0..500 {
            t.push(f64::from(i % 17) * 0.3);
        }
        let mut last = 2.0;
        for k in 0..200 {
            let x = f64::from(k) * 0.05;
            let p = t.p(x, (-x).exp());
            assert!(p <= last, "p({x}) = {p} > {last}");
            last = p;
        }
    }
}
