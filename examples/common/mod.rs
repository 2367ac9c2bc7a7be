//! The synthetic KPI series every performance measurement uses: the
//! criterion benches (`benches/detectors.rs`), the end-to-end CSV
//! (`examples/gen_nab_csv.rs`, run by `benches/score_throughput.sh`), the
//! state-size report (`examples/state_size.rs`) and its test
//! (`tests/state_size.rs`). One definition, so the numbers the README quotes
//! are measured on the same data.
//!
//! Five-minute buckets from Monday 2024-01-01 00:00 UTC. The value has a
//! daily shape (night trough, afternoon peak), quieter weekends, a slow
//! upward drift and about ±4 % of deterministic noise from a hash of the
//! bucket index, so there is no `rand` dependency and every run sees the
//! same numbers.

// Each target that includes this file uses a different subset of it.
#![allow(dead_code)]

use detectors::Observation;

/// Monday 2024-01-01 00:00:00 UTC.
pub const START: i64 = 1_704_067_200;
/// Bucket width in seconds.
pub const STEP: i64 = 300;
/// Buckets per day and per week at [`STEP`].
pub const DAY: u64 = 288;
pub const WEEK: u64 = 7 * DAY;

/// Start of bucket `i`, seconds since the epoch.
pub fn time(i: u64) -> i64 {
    START + i as i64 * STEP
}

/// SplitMix64 of `i` mapped to `[-1, 1)`.
fn unit_noise(i: u64) -> f64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// The noiseless shape at bucket `i`, around 1.
fn shape(i: u64) -> f64 {
    let day_phase = (i % DAY) as f64 / DAY as f64;
    // Trough around 03:00, peak around 15:00.
    let daily = 1.0 + 0.6 * ((day_phase - 0.375) * std::f64::consts::TAU).sin();
    let weekend = if (i % WEEK) / DAY >= 5 { 0.7 } else { 1.0 };
    let drift = 1.0 + 0.002 * (i as f64 / WEEK as f64);
    daily * weekend * drift
}

/// A revenue-like KPI (non-integer, around 1000) at bucket `i`.
pub fn value(i: u64) -> f64 {
    let noise = 0.02 * (unit_noise(i) + unit_noise(i ^ 0xA5A5_A5A5));
    1000.0 * shape(i) * (1.0 + noise)
}

/// An order-count-like KPI (small non-negative integers, mean around 12) at
/// bucket `i`: exercises the set's Poisson path for count series.
pub fn count(i: u64) -> f64 {
    (12.0 * shape(i) + 3.0 * unit_noise(i)).round().max(0.0)
}

/// Observations of `f` for the buckets in `range`, UTC.
pub fn observations(range: std::ops::Range<u64>, f: fn(u64) -> f64) -> Vec<Observation> {
    range.map(|i| Observation::utc(time(i), f(i))).collect()
}
