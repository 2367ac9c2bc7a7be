//! Turning the detectors' evidence into one calibrated score.
//!
//! Each detector's evidence is a tail probability under "nothing is wrong":
//! the point residual's, the CUSUM statistic's, and the anomaly likelihood's
//! below. Tail probabilities mean the same on every series, which is what
//! lets one threshold serve series nobody tuned. The combined score is
//! `1 - min(p)`, mapped onto a log scale so the interesting region near 1
//! (p = 1e-3 … 1e-9) is spread across the range instead of squashed into
//! its last thousandth.
//!
//! [`Likelihood`] is the anomaly likelihood of Ahmad et al. (Numenta, 2017):
//! it compares the short-term average of the per-point surprise with its
//! long-term distribution, so a burst of moderately surprising points is
//! flagged even when no single point is, and a series that is always noisy
//! stops looking surprising.

use serde::{Deserialize, Serialize};

use crate::tail::EmpiricalTail;

/// -ln of the null tail probability at or below which a statistic is no
/// evidence (null tail above 0.2) and its history is not looked up.
pub const NO_EVIDENCE: f64 = 1.609_437_912_434_100_3;

/// Smallest tail probability the log mapping distinguishes.
pub const P_FLOOR: f64 = 1e-12;

/// Maps a tail probability onto `[0, 1]`: `-log10(p) / 12`, so p = 1e-3
/// scores 0.25, p = 1e-6 scores 0.5 and p ≤ 1e-12 scores 1.
#[inline]
pub fn score_of_tail(p: f64) -> f64 {
    // ln, not log10: glibc's log10 costs twice as much, and this runs once
    // per observation. 1 / ln(1e12), spelled out because `ln` is not const.
    const INV_LN_FLOOR: f64 = 1.0 / 27.631_021_115_928_547;
    let p = p.clamp(P_FLOOR, 1.0);
    (-p.ln() * INV_LN_FLOOR).clamp(0.0, 1.0)
}

/// Inverse of [`score_of_tail`].
#[inline]
pub fn tail_of_score(score: f64) -> f64 {
    10f64.powf(-score.clamp(0.0, 1.0) * -P_FLOOR.log10())
}

/// Parameters of a [`Likelihood`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LikelihoodParams {
    /// Forgetting rate of the short-term surprise average.
    pub short_alpha: f64,
    /// Forgetting rate of the long-term distribution of that average.
    pub long_alpha: f64,
    /// Observations before the likelihood is trusted.
    pub warm_up: u32,
}

impl Default for LikelihoodParams {
    fn default() -> Self {
        Self {
            short_alpha: 0.35,
            long_alpha: 0.001,
            warm_up: 100,
        }
    }
}

/// Pseudo-observations of the null tail in the long-term distribution.
const LIKELIHOOD_PRIOR: f64 = 10.0;

/// Anomaly likelihood over a stream of surprise values.
///
/// The surprise fed in is `-ln p` of a calibrated point tail probability,
/// so under "nothing is wrong" it is roughly exponential with mean 1. The
/// long-term distribution of the short-term average is kept as an
/// [`EmpiricalTail`] rather than a normal (Numenta's choice): a short
/// average of exponentials is skewed, and series whose residuals are
/// correlated in time have bursts that are normal *for them*. Its null
/// tail is the one-dominant-term bound for an exponentially weighted mean
/// of unit exponentials, `exp(-(s - (1 - a)) / a)`: a single point of
/// surprise `S` then carries no more evidence than the point itself, and
/// only a run of surprising points does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Likelihood {
    params: LikelihoodParams,
    short: f64,
    long: EmpiricalTail,
    n: u32,
}

impl Likelihood {
    /// Nothing seen yet.
    pub fn new(params: LikelihoodParams) -> Self {
        Self {
            params,
            short: 1.0,
            long: EmpiricalTail::new(0.25, params.long_alpha, LIKELIHOOD_PRIOR),
            n: 0,
        }
    }

    /// The short-term average after `surprise`, without storing it.
    #[inline]
    pub fn peek_short(&self, surprise: f64) -> f64 {
        self.short + self.params.short_alpha * (surprise - self.short)
    }

    /// Tail probability of the short-term average after `surprise` under
    /// the long-term distribution; 1 while warming up.
    #[inline]
    pub fn tail(&self, surprise: f64) -> f64 {
        if self.n < self.params.warm_up {
            return 1.0;
        }
        let a = self.params.short_alpha.clamp(1e-6, 1.0);
        let s = self.peek_short(surprise);
        let exponent = (s - (1.0 - a)) / a;
        if exponent <= NO_EVIDENCE {
            return 1.0;
        }
        let null = (-exponent).exp().min(1.0);
        self.long.p(s, null)
    }

    /// Stores `surprise`.
    #[inline]
    pub fn push(&mut self, surprise: f64) {
        self.short = self.peek_short(surprise);
        self.n = self.n.saturating_add(1);
        self.long.push(self.short);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_mapping_is_monotone_and_invertible() {
        let mut last = -1.0;
        for e in 0..=12 {
            let p = 10f64.powi(-e);
            let s = score_of_tail(p);
            assert!(s > last);
            assert!((tail_of_score(s) - p).abs() / p < 1e-9);
            last = s;
        }
        assert_eq!(score_of_tail(1.0), 0.0);
        assert_eq!(score_of_tail(0.0), 1.0);
    }

    #[test]
    fn a_burst_of_moderate_surprise_is_unlikely_under_a_calm_history() {
        let mut l = Likelihood::new(LikelihoodParams::default());
        for i in 0..1000 {
            l.push(if i % 10 == 0 { 1.0 } else { 0.3 });
        }
        let calm = l.tail(0.3);
        for _ in 0..5 {
            l.push(3.0);
        }
        // Each point alone has p = e^-3 = 0.05. The null tail is the
        // conservative one-dominant-term bound, so five in a row read as
        // about 1e-4 rather than the 1e-6 independence would give.
        assert!(
            l.tail(3.0) < 1e-3 && calm > 0.1,
            "calm {calm}, burst {}",
            l.tail(3.0)
        );
    }
}
