//! Properties every detector in this crate must have, checked with proptest
//! on arbitrary series.
//!
//! # Layout
//!
//! - [`Spec`] names one detector and its parameters; [`AnyDetector`] is the
//!   built detector, one serde type for all of them so a snapshot can be
//!   taken and restored whatever the detector.
//! - [`series`] generates what a KPI series can look like: arbitrary finite
//!   values, zeros, ±1e12, constants, small integer counts, plausible traffic
//!   with an incident, at bucket-aligned, increasing timestamps with
//!   occasional gaps.
//! - Each detector gets one test per property (`<detector>_<property>`):
//!   1. **verdicts are well formed** — every score is in `[0, 1]` (never
//!      NaN), a warming-up verdict scores 0, and the band is ordered with
//!      no NaN in it; the score part is also checked on values anywhere in
//!      the finite range up to `±f64::MAX`, which `kpiwatch score` accepts;
//!   2. **snapshots are exact** — state serialised with `serde_json` at any
//!      cut point and restored continues with bit-identical verdicts;
//!   3. **scoring does not mutate** — `score` twice gives the same verdict,
//!      probing with extra `score` calls changes nothing, and `observe` is
//!      `score` followed by `learn`.
//! - At the end, the failures once found, on their smallest inputs, kept
//!   as regression tests.
//!
//! Case counts are kept small so the file runs in seconds in debug builds;
//! raise them with `PROPTEST_CASES=2000 cargo test -p detectors --test
//! properties` when changing a detector.

use detectors::forecast::{Holt, HoltParams};
use detectors::shift::{CusumParams, LevelShift};
use detectors::threshold::StaticThreshold;
use detectors::wow::WeekOverWeek;
use detectors::{Detector, DetectorSet, Direction, Observation, Seasonality, SetConfig, Verdict};
use proptest::collection::vec;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// 2024-01-01 00:00 UTC, a Monday: slot 0 of every weekly season.
const MONDAY: i64 = 1_704_067_200;
const WEEK: i64 = 7 * 86_400;
/// Longest generated series. Long enough to get past the set's warm-up (12)
/// and the anomaly likelihood's (100 more).
const MAX_LEN: usize = 300;
/// Bucket widths: minute, five minutes, hour, day, and 7000 s, which divides
/// neither a day nor a week (no seasonal slot geometry).
const WIDTHS: [i64; 5] = [60, 300, 3600, 86_400, 7000];

/// Which detector a case runs, with its parameters.
#[derive(Debug, Clone)]
enum Spec {
    /// The default set; `rules` adds a static threshold and a
    /// week-over-week rule on top of the statistical detectors.
    Set {
        width: i64,
        seasonality: Seasonality,
        rules: bool,
    },
    Holt {
        width: i64,
    },
    LevelShift {
        width: i64,
        alpha: f64,
    },
    Threshold {
        width: i64,
        min: Option<f64>,
        max: Option<f64>,
    },
    WeekOverWeek {
        width: i64,
        max_change: f64,
    },
}

impl Spec {
    fn width(&self) -> i64 {
        match *self {
            Spec::Set { width, .. }
            | Spec::Holt { width }
            | Spec::LevelShift { width, .. }
            | Spec::Threshold { width, .. }
            | Spec::WeekOverWeek { width, .. } => width,
        }
    }

    fn build(&self) -> AnyDetector {
        match *self {
            Spec::Set {
                width,
                seasonality,
                rules,
            } => {
                let mut config = SetConfig {
                    seasonality,
                    ..SetConfig::new(width)
                };
                if rules {
                    config.threshold = Some(StaticThreshold {
                        min: Some(1.0),
                        max: Some(1e9),
                    });
                    config.week_over_week = Some(0.3);
                }
                AnyDetector::Set(Box::new(DetectorSet::new(config)))
            }
            Spec::Holt { width } => AnyDetector::Holt(Holt::new(HoltParams::new(width))),
            Spec::LevelShift { alpha, .. } => {
                AnyDetector::LevelShift(LevelShift::new(CusumParams::default(), alpha))
            }
            Spec::Threshold { min, max, .. } => {
                AnyDetector::Threshold(StaticThreshold { min, max })
            }
            Spec::WeekOverWeek { width, max_change } => {
                AnyDetector::WeekOverWeek(WeekOverWeek::new(max_change, width))
            }
        }
    }
}

/// Every detector of the crate behind one type.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum AnyDetector {
    // Boxed: the set is a few hundred bytes, the threshold sixteen.
    Set(Box<DetectorSet>),
    Holt(Holt),
    LevelShift(LevelShift),
    Threshold(StaticThreshold),
    WeekOverWeek(WeekOverWeek),
}

impl AnyDetector {
    fn inner(&self) -> &dyn Detector {
        match self {
            AnyDetector::Set(d) => d.as_ref(),
            AnyDetector::Holt(d) => d,
            AnyDetector::LevelShift(d) => d,
            AnyDetector::Threshold(d) => d,
            AnyDetector::WeekOverWeek(d) => d,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Detector {
        match self {
            AnyDetector::Set(d) => d.as_mut(),
            AnyDetector::Holt(d) => d,
            AnyDetector::LevelShift(d) => d,
            AnyDetector::Threshold(d) => d,
            AnyDetector::WeekOverWeek(d) => d,
        }
    }

    /// The whole state as text. `Debug` prints every float so that it reads
    /// back to the same bits and shows NaN, so equal text means equal state
    /// (derived `PartialEq` would call two NaN-holding states different).
    fn state(&self) -> String {
        format!("{self:?}")
    }
}

// Delegates explicitly, so each detector's own `observe` (the set
// overrides it) is what the properties check.
impl Detector for AnyDetector {
    fn score(&self, obs: &Observation) -> Verdict {
        self.inner().score(obs)
    }

    fn learn(&mut self, obs: &Observation) {
        self.inner_mut().learn(obs);
    }

    fn observe(&mut self, obs: &Observation) -> Verdict {
        self.inner_mut().observe(obs)
    }
}

/// A verdict as bits, so "identical" means identical: `-0.0 != 0.0` and a
/// NaN equals itself.
fn bits(v: &Verdict) -> (u64, u64, u64, u64, Direction, bool) {
    (
        v.expected.to_bits(),
        v.lower.to_bits(),
        v.upper.to_bits(),
        v.score.to_bits(),
        v.direction,
        v.warming_up,
    )
}

fn width() -> impl Strategy<Value = i64> {
    prop::sample::select(&WIDTHS[..])
}

fn seasonality() -> impl Strategy<Value = Seasonality> {
    prop::sample::select(
        &[
            Seasonality::None,
            Seasonality::Daily,
            Seasonality::Weekly,
            Seasonality::Auto,
        ][..],
    )
}

fn set_spec() -> impl Strategy<Value = Spec> {
    (width(), seasonality(), prop::bool::weighted(0.25)).prop_map(|(width, seasonality, rules)| {
        Spec::Set {
            width,
            seasonality,
            rules,
        }
    })
}

fn holt_spec() -> impl Strategy<Value = Spec> {
    width().prop_map(|width| Spec::Holt { width })
}

fn level_shift_spec() -> impl Strategy<Value = Spec> {
    (width(), prop::sample::select(&[0.001, 0.01, 0.1][..]))
        .prop_map(|(width, alpha)| Spec::LevelShift { width, alpha })
}

fn threshold_spec() -> impl Strategy<Value = Spec> {
    (
        width(),
        prop::option::of(-1e6..1e6f64),
        prop::option::of(0.0..1e6f64),
    )
        .prop_map(|(width, min, span)| Spec::Threshold {
            width,
            min,
            // The config refuses max < min, so the detector never sees it.
            max: span.map(|s| min.unwrap_or(0.0) + s),
        })
}

fn week_over_week_spec() -> impl Strategy<Value = Spec> {
    (width(), prop::sample::select(&[0.05, 0.3, 1.0][..]))
        .prop_map(|(width, max_change)| Spec::WeekOverWeek { width, max_change })
}

/// One value, from the whole range a KPI may take.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => (0u32..20).prop_map(f64::from),
        2 => -10.0..10.0f64,
        2 => -1e12..1e12f64,
        1 => Just(0.0),
        1 => Just(-0.0),
        1 => prop::sample::select(&[1e12, -1e12, 1e-12, f64::MIN_POSITIVE][..]),
    ]
}

/// The values of one series.
fn values() -> impl Strategy<Value = Vec<f64>> {
    let len = 1..MAX_LEN;
    prop_oneof![
        // Anything at all, mixed.
        vec(value(), len.clone()),
        // A constant: zero spread must not make rounding look surprising.
        (value(), len.clone()).prop_map(|(v, n)| vec![v; n]),
        // Small counts, zeros included.
        vec((0u32..8).prop_map(f64::from), len.clone()),
        // Plausible traffic around a level, with an incident: a stretch
        // replaced by a collapse, a huge spike or a sustained drop.
        (
            1.0..1e6f64,
            vec(-0.2..0.2f64, len),
            any::<prop::sample::Index>(),
            0usize..40,
            prop::sample::select(&[0.0, 1e12, 0.7][..]),
        )
            .prop_map(|(level, noise, at, span, incident)| {
                let mut v: Vec<f64> = noise.iter().map(|e| level * (1.0 + e)).collect();
                let start = at.index(v.len());
                for x in v.iter_mut().skip(start).take(span) {
                    *x = if incident == 0.7 { *x * 0.7 } else { incident };
                }
                v
            }),
    ]
}

/// Gap to the previous bucket, in buckets: mostly the next bucket,
/// sometimes a few missing, rarely weeks missing.
fn gap() -> impl Strategy<Value = i64> {
    prop_oneof![
        20 => Just(1i64),
        3 => 2i64..12,
        1 => 12i64..3000,
    ]
}

/// A series for `spec`'s bucket width: observations at increasing,
/// bucket-aligned times from an arbitrary start, in a fixed time zone.
fn series(width: i64) -> impl Strategy<Value = Vec<Observation>> {
    (
        0..WEEK / width,
        prop::sample::select(&[0, 3600, -18_000, 19_800][..]),
        values(),
    )
        .prop_flat_map(move |(start, utc_offset, values)| {
            let n = values.len();
            (vec(gap(), n), Just(values)).prop_map(move |(gaps, values)| {
                let mut time = MONDAY + start * width;
                gaps.iter()
                    .zip(values)
                    .map(|(gap, value)| {
                        time += gap * width;
                        Observation {
                            time,
                            utc_offset,
                            value,
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
}

/// Any finite value at all, up to `±f64::MAX`: `kpiwatch score` accepts
/// every finite number a CSV can hold.
fn any_finite_values() -> impl Strategy<Value = Vec<f64>> {
    use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    vec(
        prop_oneof![
            3 => NORMAL | SUBNORMAL | ZERO | POSITIVE | NEGATIVE,
            2 => (0u32..20).prop_map(f64::from),
            1 => prop::sample::select(&[f64::MAX, -f64::MAX, f64::MIN_POSITIVE][..]),
        ],
        1..MAX_LEN,
    )
}

/// A detector and a series it can run on.
fn case(spec: impl Strategy<Value = Spec>) -> impl Strategy<Value = (Spec, Vec<Observation>)> {
    spec.prop_flat_map(|spec| {
        let width = spec.width();
        (Just(spec), series(width))
    })
}

/// A detector and a series of values anywhere in the finite range, one
/// bucket apart.
fn extreme_case(
    spec: impl Strategy<Value = Spec>,
) -> impl Strategy<Value = (Spec, Vec<Observation>)> {
    (spec, any_finite_values()).prop_map(|(spec, values)| {
        let width = spec.width();
        let series = (0..)
            .zip(values)
            .map(|(i, value)| Observation::utc(MONDAY + i * width, value))
            .collect();
        (spec, series)
    })
}

/// A case plus a cut point in `0..=len`.
fn cut_case(
    spec: impl Strategy<Value = Spec>,
) -> impl Strategy<Value = (Spec, Vec<Observation>, usize)> {
    case(spec).prop_flat_map(|(spec, series)| {
        let n = series.len();
        (Just(spec), Just(series), 0..=n)
    })
}

/// Property 1: every score is a number in `[0, 1]`, and a detector that is
/// warming up scores 0.
fn scores_are_probabilities(spec: &Spec, series: &[Observation]) -> Result<(), TestCaseError> {
    let mut d = spec.build();
    for (i, obs) in series.iter().enumerate() {
        check_score(i, obs, &d.observe(obs))?;
    }
    Ok(())
}

fn check_score(i: usize, obs: &Observation, v: &Verdict) -> Result<(), TestCaseError> {
    prop_assert!(
        (0.0..=1.0).contains(&v.score),
        "observation {i} {obs:?} scored {v:?}"
    );
    if v.warming_up {
        prop_assert_eq!(v.score, 0.0, "warming up at {}: {:?}", i, v);
    }
    Ok(())
}

/// Property 1 and more: the verdict a person reads ("expected 120, normal
/// 95..140") is never NaN and its band is ordered.
fn verdicts_are_well_formed(spec: &Spec, series: &[Observation]) -> Result<(), TestCaseError> {
    let mut d = spec.build();
    for (i, obs) in series.iter().enumerate() {
        let v = d.observe(obs);
        check_score(i, obs, &v)?;
        prop_assert!(
            !v.expected.is_nan() && v.lower <= v.upper,
            "observation {i} {obs:?} got the band {v:?}"
        );
    }
    Ok(())
}

/// Writes `d` as `serde_json` text, as a snapshot file or a Kafka message
/// holds it, and reads it back.
fn json_round_trip(d: &AnyDetector) -> Result<AnyDetector, String> {
    let json = serde_json::to_string(d).map_err(|e| format!("serialise: {e}"))?;
    serde_json::from_str(&json).map_err(|e| format!("deserialise: {e}, in {json}"))
}

/// Property 2: a snapshot taken after `cut` observations and restored
/// continues exactly like the original: same state, bit-identical verdicts.
fn snapshot_restores_identical_verdicts(
    spec: &Spec,
    series: &[Observation],
    cut: usize,
) -> Result<(), TestCaseError> {
    let (prefix, suffix) = series.split_at(cut);
    let mut original = spec.build();
    for obs in prefix {
        original.observe(obs);
    }
    let mut restored = json_round_trip(&original).map_err(TestCaseError::fail)?;
    prop_assert_eq!(restored.state(), original.state(), "state after restore");
    for (i, obs) in suffix.iter().enumerate() {
        let (a, b) = (original.observe(obs), restored.observe(obs));
        prop_assert_eq!(
            bits(&a),
            bits(&b),
            "{} after the cut: {:?} vs {:?}",
            i,
            a,
            b
        );
    }
    Ok(())
}

/// Property 3: scoring is a pure function of the state. `score` twice gives
/// the same verdict, extra `score` calls change nothing, and `observe` is
/// `score` followed by `learn`.
fn scoring_does_not_mutate(spec: &Spec, series: &[Observation]) -> Result<(), TestCaseError> {
    // `a` only observes; `b` scores the observation and a few probes, then
    // learns. They must walk in lockstep.
    let mut a = spec.build();
    let mut b = spec.build();
    for (i, obs) in series.iter().enumerate() {
        let first = b.score(obs);
        let second = b.score(obs);
        prop_assert_eq!(bits(&first), bits(&second), "score twice at {}", i);
        for value in [0.0, -1e12, 1e12, obs.value * 2.0] {
            b.score(&Observation { value, ..*obs });
        }
        b.learn(obs);
        let observed = a.observe(obs);
        prop_assert_eq!(
            bits(&observed),
            bits(&first),
            "observe vs score at {}: {:?} vs {:?}",
            i,
            observed,
            first
        );
    }
    prop_assert_eq!(a.state(), b.state());
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        // `ProptestConfig::default()` reads PROPTEST_CASES; honour it so a
        // longer run needs no edit.
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            ProptestConfig::default().cases
        } else {
            cases
        },
        // Shrinking a 300-point series is slow in debug builds; a failure
        // is reported with a counterexample well before this runs out.
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

// The snapshot tests of the set and the week-over-week rule once failed:
// their state held NaN sentinels, which serde_json writes as `null` and
// refuses on the way back. The state now uses `Option` and flags instead.

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn detector_set_verdicts_are_well_formed(
        (spec, series) in case(set_spec())
    ) {
        verdicts_are_well_formed(&spec, &series)?;
    }

    #[test]
    fn detector_set_scores_are_probabilities_for_any_finite_value(
        (spec, series) in extreme_case(set_spec())
    ) {
        scores_are_probabilities(&spec, &series)?;
    }

    #[test]
    fn detector_set_snapshot_restores_bit_identical_verdicts(
        (spec, series, cut) in cut_case(set_spec())
    ) {
        snapshot_restores_identical_verdicts(&spec, &series, cut)?;
    }

    #[test]
    fn detector_set_scoring_does_not_mutate((spec, series) in case(set_spec())) {
        scoring_does_not_mutate(&spec, &series)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn holt_verdicts_are_well_formed((spec, series) in case(holt_spec())) {
        verdicts_are_well_formed(&spec, &series)?;
    }

    #[test]
    fn holt_scores_are_probabilities_for_any_finite_value(
        (spec, series) in extreme_case(holt_spec())
    ) {
        scores_are_probabilities(&spec, &series)?;
    }

    #[test]
    fn holt_snapshot_restores_bit_identical_verdicts(
        (spec, series, cut) in cut_case(holt_spec())
    ) {
        snapshot_restores_identical_verdicts(&spec, &series, cut)?;
    }

    #[test]
    fn holt_scoring_does_not_mutate((spec, series) in case(holt_spec())) {
        scoring_does_not_mutate(&spec, &series)?;
    }

    #[test]
    fn level_shift_verdicts_are_well_formed(
        (spec, series) in case(level_shift_spec())
    ) {
        verdicts_are_well_formed(&spec, &series)?;
    }

    #[test]
    fn level_shift_scores_are_probabilities_for_any_finite_value(
        (spec, series) in extreme_case(level_shift_spec())
    ) {
        scores_are_probabilities(&spec, &series)?;
    }

    #[test]
    fn level_shift_snapshot_restores_bit_identical_verdicts(
        (spec, series, cut) in cut_case(level_shift_spec())
    ) {
        snapshot_restores_identical_verdicts(&spec, &series, cut)?;
    }

    #[test]
    fn level_shift_scoring_does_not_mutate((spec, series) in case(level_shift_spec())) {
        scoring_does_not_mutate(&spec, &series)?;
    }

    #[test]
    fn static_threshold_verdicts_are_well_formed(
        (spec, series) in case(threshold_spec())
    ) {
        verdicts_are_well_formed(&spec, &series)?;
    }

    #[test]
    fn static_threshold_scores_are_probabilities_for_any_finite_value(
        (spec, series) in extreme_case(threshold_spec())
    ) {
        scores_are_probabilities(&spec, &series)?;
    }

    #[test]
    fn static_threshold_snapshot_restores_bit_identical_verdicts(
        (spec, series, cut) in cut_case(threshold_spec())
    ) {
        snapshot_restores_identical_verdicts(&spec, &series, cut)?;
    }

    #[test]
    fn static_threshold_scoring_does_not_mutate((spec, series) in case(threshold_spec())) {
        scoring_does_not_mutate(&spec, &series)?;
    }

    #[test]
    fn week_over_week_verdicts_are_well_formed(
        (spec, series) in case(week_over_week_spec())
    ) {
        verdicts_are_well_formed(&spec, &series)?;
    }

    #[test]
    fn week_over_week_scores_are_probabilities_for_any_finite_value(
        (spec, series) in extreme_case(week_over_week_spec())
    ) {
        scores_are_probabilities(&spec, &series)?;
    }

    #[test]
    fn week_over_week_snapshot_restores_bit_identical_verdicts(
        (spec, series, cut) in cut_case(week_over_week_spec())
    ) {
        snapshot_restores_identical_verdicts(&spec, &series, cut)?;
    }

    #[test]
    fn week_over_week_scoring_does_not_mutate((spec, series) in case(week_over_week_spec())) {
        scoring_does_not_mutate(&spec, &series)?;
    }
}

// The snapshot bugs on their smallest inputs, kept as regressions.

#[test]
fn a_fresh_detector_set_survives_a_json_round_trip() {
    let set = AnyDetector::Set(Box::new(DetectorSet::new(SetConfig::new(300))));
    let restored = json_round_trip(&set).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(restored.state(), set.state());
}

#[test]
fn a_fresh_week_over_week_rule_survives_a_json_round_trip() {
    let rule = AnyDetector::WeekOverWeek(WeekOverWeek::new(0.3, 300));
    let restored = json_round_trip(&rule).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(restored.state(), rule.state());
}

/// Regression: serde_json's default float parser reads 1085886.7722951653
/// back as 1085886.772295165; its `float_roundtrip` feature (workspace
/// Cargo.toml) makes it exact.
#[test]
fn a_float_in_a_snapshot_reads_back_to_the_same_bits() {
    let rule = AnyDetector::Threshold(StaticThreshold {
        min: None,
        max: Some(1_085_886.772_295_165_3),
    });
    let restored = json_round_trip(&rule).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(restored.state(), rule.state());
}

// Absurd but finite values, which `kpiwatch score` accepts, on the smallest
// inputs.

#[test]
fn two_values_near_f64_max_do_not_blind_the_set_for_ever() {
    let mut set = DetectorSet::new(SetConfig {
        seasonality: Seasonality::None,
        ..SetConfig::new(300)
    });
    let values = [10.0; 11]
        .into_iter()
        .chain([f64::MAX, -f64::MAX])
        .chain([10.0; 300]);
    let mut time = MONDAY;
    for value in values {
        set.observe(&Observation::utc(time, value));
        time += 300;
    }
    let v = set.score(&Observation::utc(time, 1e6));
    assert!(!v.expected.is_nan() && v.score > 0.9, "{v:?}");
}

#[test]
fn a_value_beyond_f32_range_does_not_blind_the_week_over_week_rule() {
    let mut rule = WeekOverWeek::new(0.3, 3600);
    rule.observe(&Observation::utc(MONDAY, 1e39));
    let v = rule.score(&Observation::utc(MONDAY + WEEK, 1.0));
    assert!(!v.lower.is_nan() && v.score == 1.0, "{v:?}");
}
