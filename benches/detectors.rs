//! Per-observation cost of each detector and of the default set.
//!
//! Every benchmark feeds the same pre-generated synthetic series
//! (`examples/common/mod.rs`: 5-minute buckets, daily and weekly seasonality,
//! noise) to a detector that has already learned three weeks of it, and
//! times two more weeks of `observe` calls (score, then learn). Generating
//! the series, warming up and cloning the warmed state happen outside the
//! timed region (`iter_batched`). Throughput is reported in elements, so
//! criterion prints observations per second; time per iteration divided by
//! [`MEASURED`] is ns per observation.
//!
//! The target from the issue: the default set at ≥ 5 million observations
//! per second on one core.
//!
//! Run with `cargo bench --bench detectors` (about a minute).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use detectors::forecast::{Holt, HoltParams};
use detectors::seasonal::{SeasonalBaseline, SeasonalParams};
use detectors::shift::{CusumParams, LevelShift};
use detectors::threshold::StaticThreshold;
use detectors::wow::WeekOverWeek;
use detectors::{Detector, DetectorSet, Observation, SetConfig};

#[path = "../examples/common/mod.rs"]
mod series;

/// Buckets learned before timing starts: three weeks, so every weekly slot
/// is trusted and the set has picked its baseline.
const WARM: u64 = 3 * series::WEEK;
/// Buckets timed per iteration: two weeks.
const MEASURED: u64 = 2 * series::WEEK;

/// Times `observe` over `obs` on clones of `warmed`.
fn bench_observe<D: Detector + Clone>(
    c: &mut Criterion,
    name: &str,
    warmed: &D,
    obs: &[Observation],
) {
    let mut group = c.benchmark_group("observe");
    group.throughput(Throughput::Elements(obs.len() as u64));
    group.bench_function(name, |b| {
        b.iter_batched(
            || warmed.clone(),
            |mut d| {
                for o in obs {
                    black_box(d.observe(black_box(o)));
                }
                d
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn warmed<D: Detector>(mut d: D, warm: &[Observation]) -> D {
    for o in warm {
        d.observe(o);
    }
    d
}

fn detectors(c: &mut Criterion) {
    let warm = series::observations(0..WARM, series::value);
    let obs = series::observations(WARM..WARM + MEASURED, series::value);

    let set = warmed(DetectorSet::new(SetConfig::new(series::STEP)), &warm);
    bench_observe(c, "default_set", &set, &obs);

    // The same set on a small-count series (orders per bucket), where the
    // exact Poisson tail and band replace the normal ones.
    let warm_counts = series::observations(0..WARM, series::count);
    let obs_counts = series::observations(WARM..WARM + MEASURED, series::count);
    let set_counts = warmed(DetectorSet::new(SetConfig::new(series::STEP)), &warm_counts);
    bench_observe(c, "default_set_counts", &set_counts, &obs_counts);

    let holt = warmed(Holt::new(HoltParams::new(series::STEP)), &warm);
    bench_observe(c, "holt", &holt, &obs);

    let shift = warmed(LevelShift::new(CusumParams::default(), 0.01), &warm);
    bench_observe(c, "level_shift", &shift, &obs);

    let threshold = StaticThreshold {
        min: Some(200.0),
        max: Some(5000.0),
    };
    bench_observe(c, "static_threshold", &threshold, &obs);

    let wow = warmed(WeekOverWeek::new(0.3, series::STEP), &warm);
    bench_observe(c, "week_over_week", &wow, &obs);

    // SeasonalBaseline is not a `Detector`: its caller asks `expect`, then
    // `learn`, with the same floor the default set uses.
    let floor = |x: f64| 1e-9 + 1e-4 * x.abs();
    let params = SeasonalParams::weekly(series::STEP).expect("5-minute buckets resolve a week");
    let mut weekly = SeasonalBaseline::new(params);
    for o in &warm {
        weekly.learn(o.local_time(), o.value, floor(o.value));
    }
    let mut group = c.benchmark_group("observe");
    group.throughput(Throughput::Elements(obs.len() as u64));
    group.bench_function("seasonal_weekly", |b| {
        b.iter_batched(
            || weekly.clone(),
            |mut s| {
                for o in &obs {
                    let t = black_box(o).local_time();
                    black_box(s.expect(t, floor(o.value)));
                    s.learn(t, o.value, floor(o.value));
                }
                s
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn config() -> Criterion {
    // Seven benchmarks at about 4 s each keep the whole run near a minute.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = detectors
}
criterion_main!(benches);
