//! Per-series state budget: the model of a business KPI in 5-minute
//! buckets (`KpiModel`, for every aggregate) and the default detector set
//! (what `score` runs), each with its weekly seasonal baseline, fit in 4
//! KiB, stay that size however long they run, and survive a JSON snapshot
//! exactly. A million series then cost a few GiB, and a restarted process
//! continues where the old one stopped.
//!
//! `cargo run --release --example state_size` prints the same numbers for
//! the README.

use detectors::kpi::typical::LogSums;
use detectors::kpi::{Input, Kind, KpiConfig, KpiModel};
use detectors::{Detector, DetectorSet, Direction, Observation, Seasonality, SetConfig, Verdict};

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

const KINDS: [Kind; 5] = [
    Kind::Count,
    Kind::Sum,
    Kind::Avg,
    Kind::Ratio,
    Kind::Distinct,
];

fn kpi_model(kind: Kind) -> KpiModel {
    KpiModel::new(KpiConfig {
        kind,
        bucket_width: series::STEP,
        seasonality: Seasonality::Auto,
        min_volume: 0.0,
        threshold: None,
        week_over_week: None,
        estimate_rel_var: 0.0,
    })
}

/// Assesses and learns `buckets` of the shared series, as the engine does
/// with an ordinary bucket; the assessments, printed.
fn feed_kpi(model: &mut KpiModel, buckets: std::ops::Range<u64>) -> Vec<String> {
    series::observations(buckets, series::value)
        .iter()
        .map(|o| {
            let kind = model.config().kind;
            let events = o.value.max(1.0);
            // A sum's or an average's events, each worth the mean.
            let per_event = if kind == Kind::Sum {
                o.value / events
            } else {
                o.value
            };
            let l = per_event.max(1e-9).ln();
            let input = Input {
                time: o.time,
                utc_offset: 0,
                // A ratio: about a third of the events convert.
                value: if kind == Kind::Ratio {
                    0.3 + o.value / 1e4
                } else {
                    o.value
                },
                events,
                others: None,
                logs: matches!(kind, Kind::Sum | Kind::Avg).then_some(LogSums {
                    sum: events * l,
                    sum_sq: events * l * l,
                    squares: events * (2.0 * l).exp(),
                    largest: l.exp(),
                }),
            };
            let a = model.assess(&input);
            model.learn(&input, &a, 1.0);
            format!("{a:?}")
        })
        .collect()
}

/// What sums, averages and distinct counts add: the histograms of their
/// ordinary buckets' rises and drops, which calibrate a one-bucket test of
/// a skewed aggregate (two of 164 bytes).
const CALIBRATION: usize = 2 * 164;
/// What sums and averages add besides: the typical-value test, its model
/// (seven sums, and the hour its wander is summing: four more), the
/// values' count, sum and sum of squares (the upper tail's second moment),
/// and the sum of logs and the largest value of each of the 48 buckets
/// its windows read.
const TYPICAL: usize = 160 + 2 * 48 * 4;
/// What the model error particular to an hour adds to every KPI model:
/// the hour being summed (as the day is), and the weighted means that
/// learn it from hours, own and against peers, and the days' weighted
/// mean (216 bytes; f32 totals would win most of it back).
const HOURS: usize = 216;
/// What the bucket noise (variance growing with the volume squared) adds
/// to every KPI model: its coefficient, whether it is learnt, and the
/// four weighted means of its regression beside the dispersion's.
const BUCKET_NOISE: usize = 48;
/// What a group member's share by hour and weekday adds to every KPI
/// model: the pointer to its hours' sums (on the heap, 200 bytes, only
/// for a member of a group), the last local day learnt and the weekdays
/// seen.
const PEER_SHARES: usize = 16;

#[test]
fn the_kpi_model_of_every_aggregate_fits_its_budget_and_does_not_grow() {
    for kind in KINDS {
        let mut model = kpi_model(kind);
        feed_kpi(&mut model, 0..2 * series::WEEK);
        let two_weeks = model.state_bytes();
        let budget = HOURS
            + BUCKET_NOISE
            + PEER_SHARES
            + match kind {
                Kind::Count | Kind::Ratio => BUDGET,
                Kind::Sum | Kind::Avg => BUDGET + CALIBRATION + TYPICAL,
                Kind::Distinct => BUDGET + CALIBRATION,
            };
        assert!(
            two_weeks <= budget,
            "{kind:?}: {two_weeks} bytes, budget {budget}"
        );
        feed_kpi(&mut model, 2 * series::WEEK..4 * series::WEEK);
        assert_eq!(model.state_bytes(), two_weeks, "{kind:?}");
        assert_eq!(kpi_model(kind).state_bytes(), two_weeks, "{kind:?}");
    }
}

#[test]
fn a_json_snapshot_of_the_kpi_model_restores_the_same_assessments() {
    for kind in KINDS {
        let mut original = kpi_model(kind);
        feed_kpi(&mut original, 0..2 * series::WEEK);
        let json = serde_json::to_string(&original).expect("state serialises");
        let mut restored: KpiModel = serde_json::from_str(&json).expect("snapshot deserialises");
        let next_day = 2 * series::WEEK..2 * series::WEEK + series::DAY;
        assert_eq!(
            feed_kpi(&mut original, next_day.clone()),
            feed_kpi(&mut restored, next_day),
            "{kind:?}"
        );
    }
}
