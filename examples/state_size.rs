//! Prints how much memory one series' detector state takes after two weeks
//! of the shared synthetic series at 5-minute buckets: the KPI model the
//! service runs for each aggregate, and the default set `score` runs
//! (weekly seasonality detected automatically), in memory and as a JSON
//! snapshot. The README quotes these numbers; `tests/state_size.rs` holds
//! them to the 4 KiB budget.
//!
//! usage: `cargo run --release --example state_size`

use detectors::kpi::{Input, Kind, KpiConfig, KpiModel};
use detectors::{Detector, DetectorSet, Seasonality, SetConfig};

mod common;

fn main() -> Result<(), serde_json::Error> {
    println!("KPI model (the service), 5-minute buckets, weekly seasonality:");
    for kind in [
        Kind::Count,
        Kind::Sum,
        Kind::Avg,
        Kind::Ratio,
        Kind::Distinct,
    ] {
        let mut model = KpiModel::new(KpiConfig {
            kind,
            bucket_width: common::STEP,
            seasonality: Seasonality::Auto,
            min_volume: 0.0,
            threshold: None,
            week_over_week: None,
            estimate_rel_var: 0.0,
        });
        for o in common::observations(0..2 * common::WEEK, common::value) {
            let input = Input {
                time: o.time,
                utc_offset: 0,
                value: if kind == Kind::Ratio { 0.3 } else { o.value },
                events: o.value,
                others: None,
                logs: None,
            };
            let a = model.assess(&input);
            model.learn(&input, &a, 1.0);
        }
        println!(
            "  {:<9} state_bytes() {} bytes (budget 4096), JSON snapshot {} bytes",
            format!("{kind:?}:"),
            model.state_bytes(),
            serde_json::to_string(&model)?.len()
        );
    }
    let mut set = DetectorSet::new(SetConfig::new(common::STEP));
    let empty = set.state_bytes();
    for o in common::observations(0..2 * common::WEEK, common::value) {
        set.observe(&o);
    }
    let snapshot = serde_json::to_string(&set)?;
    println!("default set, 5-minute buckets, weekly seasonality (auto):");
    println!("  state_bytes() when new:           {empty} bytes");
    println!(
        "  state_bytes() after two weeks:    {} bytes (budget 4096)",
        set.state_bytes()
    );
    println!(
        "  JSON snapshot after two weeks:    {} bytes",
        snapshot.len()
    );
    Ok(())
}
