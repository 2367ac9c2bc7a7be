//! The template for writing a new detector: a trivial, complete one, and the
//! tests every detector must pass.
//!
//! # How to add a detector
//!
//! 1. Copy [`LastValue`] and the tests below into `detectors/src/NAME.rs`
//!    (`pub mod NAME;` in `lib.rs`, and a line in its layout list).
//! 2. Keep the split the crate relies on: [`Detector::score`] takes `&self`
//!    and judges an observation against what was learned *before* it;
//!    [`Detector::learn`] folds the observation in and looks at nothing but
//!    the observation and the detector's own state. No clock, no I/O, no
//!    randomness: the same inputs give the same bits, which is what makes
//!    snapshots and replays exact.
//! 3. Derive `Serialize` and `Deserialize` on the state, and keep it plain
//!    data. Prefer `Option<f64>` to a NaN sentinel: JSON has no NaN, and
//!    `serde_json` writes it as `null`, which does not read back as an `f64`.
//! 4. Return [`Verdict::warming_up`] until the detector can judge, and keep
//!    every other score in `[0, 1]` with the meaning "how unusual": 0 is
//!    normal, 1 is certainly anomalous.
//! 5. Add the detector to `detectors/tests/properties.rs` (a `Spec` variant
//!    and a `proptest!` block): the properties there are the contract this
//!    file's tests show on one example each.

use detectors::{Detector, Direction, Observation, Verdict};
use serde::{Deserialize, Serialize};

/// Expects each value to equal the previous one, within a fixed tolerance.
///
/// The simplest useful detector: "the heartbeat counter should not move by
/// more than 5 between buckets". Its score is binary, like a static
/// threshold: 1 outside the band, 0 inside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastValue {
    /// Largest tolerated change between consecutive buckets, in the
    /// series' unit; non-negative. Set by the analyst, never learned.
    tolerance: f64,
    /// The previous observation's value, or `None` before the first one:
    /// the whole learned state.
    last: Option<f64>,
}

impl LastValue {
    /// A detector tolerating changes up to `tolerance` (taken as its
    /// absolute value, so a sign slip cannot make every value anomalous).
    pub fn new(tolerance: f64) -> Self {
        Self {
            tolerance: tolerance.abs(),
            last: None,
        }
    }
}

impl Detector for LastValue {
    fn score(&self, obs: &Observation) -> Verdict {
        // Nothing learned yet: no expectation, score 0, flagged so callers
        // do not alert.
        let Some(expected) = self.last else {
            return Verdict::warming_up(obs.value);
        };
        let (lower, upper) = (expected - self.tolerance, expected + self.tolerance);
        let outside = obs.value < lower || obs.value > upper;
        Verdict {
            expected,
            lower,
            upper,
            score: if outside { 1.0 } else { 0.0 },
            direction: Direction::of(obs.value, expected),
            warming_up: false,
        }
    }

    fn learn(&mut self, obs: &Observation) {
        self.last = Some(obs.value);
    }
}

// What every detector must satisfy, shown on `LastValue`. Copy these with the
// detector and swap in its own example values.

/// Five-minute buckets from 2024-01-01 00:00 UTC.
fn at(i: i64, value: f64) -> Observation {
    Observation::utc(1_704_067_200 + i * 300, value)
}

/// Feeds `values` one bucket apart and returns the verdicts.
fn run(detector: &mut impl Detector, values: &[f64]) -> Vec<Verdict> {
    (0..)
        .zip(values)
        .map(|(i, &v)| detector.observe(&at(i, v)))
        .collect()
}

#[test]
fn the_first_observation_is_warming_up_with_score_zero() {
    let mut d = LastValue::new(5.0);
    let v = d.observe(&at(0, 1e9));
    assert!(v.warming_up, "{v:?}");
    assert_eq!(v.score, 0.0);
    assert_eq!(v.direction, Direction::None);
}

#[test]
fn a_value_inside_the_tolerance_scores_zero() {
    let mut d = LastValue::new(5.0);
    let v = run(&mut d, &[100.0, 105.0, 100.0]);
    assert_eq!(v[1].score, 0.0, "{:?}", v[1]);
    assert_eq!(v[2].score, 0.0, "{:?}", v[2]);
    assert_eq!((v[1].lower, v[1].upper), (95.0, 105.0));
}

#[test]
fn a_value_outside_the_tolerance_scores_one_with_its_direction() {
    let mut d = LastValue::new(5.0);
    let v = run(&mut d, &[100.0, 90.0, 200.0]);
    assert_eq!(
        (v[1].score, v[1].direction, v[1].expected),
        (1.0, Direction::Drop, 100.0)
    );
    assert_eq!(
        (v[2].score, v[2].direction, v[2].expected),
        (1.0, Direction::Spike, 90.0)
    );
}

#[test]
fn scoring_does_not_mutate_the_state() {
    let mut d = LastValue::new(5.0);
    run(&mut d, &[100.0, 101.0]);
    let before = d.clone();
    let probe = at(2, 500.0);
    let first = d.score(&probe);
    let second = d.score(&probe);
    assert_eq!(first, second);
    assert_eq!(d, before, "score changed the state");
}

#[test]
fn observe_is_score_then_learn() {
    let values = [3.0, 4.0, 40.0, 41.0, -7.0];
    let mut observed = LastValue::new(5.0);
    let mut stepped = LastValue::new(5.0);
    for (i, &x) in (0..).zip(&values) {
        let obs = at(i, x);
        let scored = stepped.score(&obs);
        stepped.learn(&obs);
        assert_eq!(observed.observe(&obs), scored, "observation {i}");
    }
    assert_eq!(observed, stepped);
}

#[test]
fn an_observation_is_judged_against_the_past_not_against_itself() {
    // Causality: had `observe` learned 1000 before scoring it, the spike
    // would have been its own expectation and scored 0.
    let mut d = LastValue::new(5.0);
    run(&mut d, &[10.0, 10.0, 10.0]);
    let spike = d.observe(&at(3, 1000.0));
    assert_eq!((spike.expected, spike.score), (10.0, 1.0), "{spike:?}");
}

#[test]
fn verdicts_on_a_prefix_do_not_depend_on_what_follows() {
    // Causality again, from the outside: two series sharing a prefix get
    // the same verdicts on it, whatever comes after.
    let prefix = [5.0, 6.0, 30.0, 29.0];
    let a = run(
        &mut LastValue::new(5.0),
        &[&prefix[..], &[0.0, 0.0]].concat(),
    );
    let b = run(&mut LastValue::new(5.0), &[&prefix[..], &[1e9]].concat());
    assert_eq!(a[..prefix.len()], b[..prefix.len()]);
}

#[test]
fn a_restored_snapshot_gives_identical_verdicts() {
    let mut original = LastValue::new(0.25);
    run(&mut original, &[0.1, 0.2, 0.1 + 0.2]);
    let json = serde_json::to_string(&original).expect("state serialises");
    let mut restored: LastValue = serde_json::from_str(&json).expect("state deserialises");
    for (i, x) in (3..).zip([0.3, 0.7, -1e12, 0.0]) {
        let obs = at(i, x);
        assert_eq!(original.observe(&obs), restored.observe(&obs), "{obs:?}");
    }
}

mod properties {
    //! The same contract on arbitrary input; `detectors/tests/properties.rs`
    //! checks it for every detector of the crate.

    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn scores_are_in_unit_range_and_zero_while_warming_up(
            tolerance in 0.0..1e6f64,
            values in proptest::collection::vec(-1e12..1e12f64, 1..100),
        ) {
            let mut d = LastValue::new(tolerance);
            for v in run(&mut d, &values) {
                prop_assert!((0.0..=1.0).contains(&v.score), "{:?}", v);
                prop_assert!(!v.warming_up || v.score == 0.0, "{:?}", v);
            }
        }
    }
}
