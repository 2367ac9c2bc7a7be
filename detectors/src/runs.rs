//! Runs of buckets: "the last half hour as a whole is far below what was
//! expected", though no single bucket is.
//!
//! A checkout outage at a quiet hour is the case this exists for: with six
//! checkouts expected per bucket, one empty bucket has Poisson probability
//! e^-6 ≈ 2.5e-3 — a thing that happens every few days on a busy series, so
//! no point detector can alert on it without alerting every few days. Three
//! empty buckets in a row have probability e^-19: the evidence is in the
//! run, and it grows as fast as the outage lasts. CUSUM
//! ([`crate::shift`]) accumulates runs too, but with a fixed slack tuned for
//! moderate shifts; its Siegmund tail (e^-k·s) reads three empty buckets as
//! only about e^-6.
//!
//! [`RunSums`] keeps the last [`SPAN`] buckets and tests the windows of the
//! most recent 2, 3, 4, 6 and 12 of them:
//! - for any series, the sum of standardised residuals (each clipped to
//!   ±[`Z_CLIP`], so one absurd spike is a point anomaly, not a run) over
//!   `sqrt(k)`;
//! - for count series, the signed root deviance of the window's total count
//!   against its expected total — the likelihood-ratio statistic of a
//!   Poisson, which stays accurate far into the tail where the normal
//!   approximation underestimates the evidence of zeros — divided by the
//!   window's overdispersion (learned variance over Poisson variance), so
//!   bursty counts are not judged as if they were Poisson.
//!
//! The statistic is the largest |Z| over the windows; the caller calibrates
//! it against its own history (and a Bonferroni-corrected normal prior),
//! which also absorbs the multiplicity of looking at five windows.
//!
//! State is four arrays of [`SPAN`] `f32`, under 200 bytes.

use serde::{Deserialize, Serialize};

/// Buckets remembered: the longest window.
pub const SPAN: usize = 12;
/// Window lengths tested, in buckets; a single bucket is the point
/// detector's job.
pub const WINDOWS: [usize; 5] = [2, 3, 4, 6, 12];
/// `1 / sqrt(k)` for each window length `k`.
const INV_SQRT: [f64; 5] = [
    std::f64::consts::FRAC_1_SQRT_2,
    0.577_350_269_189_625_8,
    0.5,
    0.408_248_290_463_863,
    0.288_675_134_594_812_9,
];
/// Standardised residuals are clipped to this many spreads before summing.
pub const Z_CLIP: f64 = 4.0;

/// One bucket as the run detector sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunPoint {
    /// Residual in spreads (unclipped; clipped here).
    pub z: f64,
    /// Observed count, for count series (clipped here to `expected ±
    /// Z_CLIP` spreads, like `z`).
    pub observed: f64,
    /// Expected count.
    pub expected: f64,
    /// Spread (standard deviation) around `expected`.
    pub sd: f64,
}

/// The last [`SPAN`] buckets; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSums {
    /// Clipped standardised residuals, a ring indexed by `head`.
    z: [f32; SPAN],
    /// Clipped observed counts.
    observed: [f32; SPAN],
    /// Expected counts.
    expected: [f32; SPAN],
    /// Variances around `expected`.
    variance: [f32; SPAN],
    /// Slot the next bucket goes to.
    head: u8,
    /// Buckets stored, up to [`SPAN`].
    len: u8,
}

impl Default for RunSums {
    fn default() -> Self {
        Self {
            z: [0.0; SPAN],
            observed: [0.0; SPAN],
            expected: [0.0; SPAN],
            variance: [0.0; SPAN],
            head: 0,
            len: 0,
        }
    }
}

/// `f32` storage of a count-sized quantity; counts are below 9e15 and
/// variances below 1e32, but a non-count series may carry anything.
#[inline]
fn narrow(x: f64) -> f32 {
    x.clamp(-1e30, 1e30) as f32
}

impl RunSums {
    /// Nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    fn clipped(p: &RunPoint) -> (f64, f64) {
        let z = p.z.clamp(-Z_CLIP, Z_CLIP);
        let lim = Z_CLIP * p.sd;
        // max/min rather than clamp: a NaN or inverted bound (from an
        // absurd spread) must not panic.
        let x = p
            .observed
            .min(p.expected + lim)
            .max(p.expected - lim)
            .max(0.0);
        (z, x)
    }

    /// The largest |Z| over the windows ending with `point`, without
    /// storing it; `counts` selects the Poisson deviance. 0 while fewer
    /// than two buckets are known.
    #[inline]
    pub fn peek(&self, point: &RunPoint, counts: bool) -> f64 {
        let (z0, x0) = Self::clipped(point);
        let (mut sz, mut sx, mut se, mut sv) = (z0, x0, point.expected, point.sd * point.sd);
        let mut best: f64 = 0.0;
        let mut idx = self.head as usize;
        let mut w = 0;
        for k in 2..=(usize::from(self.len) + 1).min(SPAN) {
            idx = if idx == 0 { SPAN - 1 } else { idx - 1 };
            sz += f64::from(self.z[idx]);
            if counts {
                sx += f64::from(self.observed[idx]);
                se += f64::from(self.expected[idx]);
                sv += f64::from(self.variance[idx]);
            }
            if WINDOWS[w] != k {
                continue;
            }
            w += 1;
            let zk = if counts && se > 0.0 {
                // Signed root deviance, tempered by overdispersion.
                let dev = if sx > 0.0 {
                    sx * (sx / se).ln() - (sx - se)
                } else {
                    se
                };
                let r = (sv / se).max(1.0);
                (2.0 * dev.max(0.0) / r).sqrt()
            } else {
                sz.abs() * INV_SQRT[w - 1]
            };
            best = best.max(zk);
            if w == WINDOWS.len() {
                break;
            }
        }
        best
    }

    /// Stores `point`.
    #[inline]
    pub fn push(&mut self, point: &RunPoint) {
        let (z, x) = Self::clipped(point);
        let i = self.head as usize;
        self.z[i] = z as f32;
        self.observed[i] = narrow(x);
        self.expected[i] = narrow(point.expected);
        self.variance[i] = narrow(point.sd * point.sd);
        self.head = ((i + 1) % SPAN) as u8;
        self.len = (self.len + 1).min(SPAN as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(observed: f64, expected: f64) -> RunPoint {
        RunPoint {
            z: (observed - expected) / expected.sqrt(),
            observed,
            expected,
            sd: expected.sqrt(),
        }
    }

    #[test]
    fn three_empty_buckets_where_six_were_expected_are_a_strong_run() {
        let mut r = RunSums::new();
        for _ in 0..12 {
            r.push(&count(6.0, 6.0));
        }
        r.push(&count(0.0, 6.0));
        r.push(&count(0.0, 6.0));
        // Deviance of 0 against 18: z = sqrt(36) = 6, p ≈ 2e-9; the normal
        // approximation would say 18/sqrt(18) = 4.2.
        let z = r.peek(&count(0.0, 6.0), true);
        assert!(z > 5.9, "z = {z}");
    }

    #[test]
    fn one_huge_spike_is_not_a_run() {
        let mut r = RunSums::new();
        for _ in 0..12 {
            r.push(&RunPoint {
                z: 0.3,
                observed: 0.0,
                expected: 0.0,
                sd: 1.0,
            });
        }
        let z = r.peek(
            &RunPoint {
                z: 400.0,
                observed: 0.0,
                expected: 0.0,
                sd: 1.0,
            },
            false,
        );
        assert!(z < 3.5, "z = {z}");
    }
}
