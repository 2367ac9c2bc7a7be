//! Per-series state budget: the default detector set for a KPI in 5-minute
//! buckets, with its weekly seasonal baseline, fits in 4 KiB, stays that
//! size however long it runs, and survives a JSON snapshot exactly. A
//! million series then cost a few GiB, and a restarted process continues
//! where the old one stopped.
//!
//! `cargo run --release --example state_size` prints the same numbers for
//! the README.

use detectors::{Detector, DetectorSet, Direction, Observation, SetConfig, Verdict};

// The synthetic series the benches and the state-size example use, so the
// budget is checked on the data the README's numbers come from.
#[path = "../examples/common/mod.rs"]
mod series;

const BUDGET: usize = 4096;

fn fed(weeks: u64) -> DetectorSet {
    let mut set = DetectorSet::new(SetConfig::new(series::STEP));
    feed(&mut set, 0..weeks * series::WEEK);
    set
}

fn feed(set: &mut DetectorSet, buckets: std::ops::Range<u64>) -> Vec<Verdict> {
    series::observations(buckets, series::value)
        .iter()
        .map(|o: &Observation| set.observe(o))
        .collect()
}

/// A verdict as bits, so "identical" means identical (`-0.0 != 0.0`, and a
/// NaN equals itself).
fn bits(v: &Verdict) -> ([u64; 4], Direction, bool) {
    let floats = [v.expected, v.lower, v.upper, v.score].map(f64::to_bits);
    (floats, v.direction, v.warming_up)
}

#[test]
fn default_set_at_five_minute_buckets_fits_in_four_kib_after_two_weeks() {
    let set = fed(2);
    let bytes = set.state_bytes();
    assert!(bytes <= BUDGET, "state is {bytes} bytes, budget {BUDGET}");
}

#[test]
fn state_does_not_grow_with_the_data_seen() {
    let new = DetectorSet::new(SetConfig::new(series::STEP)).state_bytes();
    let mut set = fed(2);
    let two_weeks = set.state_bytes();
    feed(&mut set, 2 * series::WEEK..4 * series::WEEK);
    assert_eq!((new, set.state_bytes()), (two_weeks, two_weeks));
}

#[test]
fn a_json_snapshot_after_two_weeks_restores_the_same_state_and_verdicts() {
    let mut original = fed(2);
    let json = serde_json::to_string(&original).expect("state serialises");
    let mut restored: DetectorSet = serde_json::from_str(&json).expect("snapshot deserialises");
    // Debug prints every float so that it reads back to the same bits, so
    // equal text means equal state, NaN included.
    assert_eq!(format!("{restored:?}"), format!("{original:?}"));
    let next_day = 2 * series::WEEK..2 * series::WEEK + series::DAY;
    let a: Vec<_> = feed(&mut original, next_day.clone())
        .iter()
        .map(bits)
        .collect();
    let b: Vec<_> = feed(&mut restored, next_day).iter().map(bits).collect();
    assert_eq!(a, b);
}
