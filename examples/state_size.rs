//! Prints how much memory one series' detector state takes: the default
//! set at 5-minute buckets (weekly seasonality detected automatically) after
//! two weeks of the shared synthetic series, in memory and as a JSON
//! snapshot. The README quotes these numbers; `tests/state_size.rs` holds
//! them to the 4 KiB budget.
//!
//! usage: `cargo run --release --example state_size`

use detectors::{Detector, DetectorSet, SetConfig};

mod common;

fn main() -> Result<(), serde_json::Error> {
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
