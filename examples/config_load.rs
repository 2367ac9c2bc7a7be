//! Times loading a configuration of many KPIs (default 100,000; the first
//! argument sets another count): the text is made in memory, then
//! validated as `kpiwatch check` validates a file, three times; prints the
//! fastest. The README's Performance table quotes it.
//!
//! usage: `cargo run --release --example config_load [KPIS]`

use std::path::Path;
use std::time::Instant;

use kpiwatch::config::{validate, Source};

#[path = "common/kpis.rs"]
mod kpis;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 100_000,
    };
    let text = kpis::config_of(n);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let began = Instant::now();
        let config = validate(&Source::new(Path::new("many.toml"), &text))?;
        best = best.min(began.elapsed().as_secs_f64());
        assert_eq!(config.kpis.len(), n);
    }
    println!(
        "{n} KPIs ({:.1} MB of TOML) loaded in {best:.2} s (fastest of 3), {:.1} us per KPI",
        text.len() as f64 / 1e6,
        best / n as f64 * 1e6
    );
    Ok(())
}
