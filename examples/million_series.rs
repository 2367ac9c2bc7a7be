//! Peak memory of the pipeline holding a million live series: one KPI
//! grouped by a field with 1,000,000 distinct values (`max_series =
//! 1000000`, 5-minute buckets), fed BUCKETS buckets in which every series
//! has an event, so every series has its window and, once its first bucket
//! closes, its detector set and alert state. Each series is judged BUCKETS
//! times (the detector state is allocated whole when a series is first
//! judged, so a few buckets show the steady size).
//!
//! Prints the process's peak resident set (VmHWM from /proc/self/status),
//! its resident set at the end, and both per series above the resident set
//! before the pipeline existed. Stops early, saying so, if the resident
//! set passes 8 GiB.
//!
//! usage: `cargo run --release --example million_series [SERIES] [BUCKETS]`
//!   SERIES defaults to 1000000, BUCKETS to 5.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use kpiwatch::config::{validate, Source};
use kpiwatch::pipeline::{Outcome, Pipeline};
use kpiwatch::telemetry::Metrics;

/// 2024-01-01 00:00:00 UTC, a Monday.
const T0: i64 = 1_704_067_200;
const BUCKET: i64 = 300;
const LIMIT_KIB: u64 = 8 << 20;

/// A `/proc/self/status` line's value in KiB (`VmHWM`, `VmRSS`).
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let series: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let buckets: i64 = args.next().map_or(Ok(5), |a| a.parse())?;
    let text = format!(
        r#"
[[topic]]
name = "events"
time_field = "time"
time_format = "epoch_seconds"

[[kpi]]
name = "page_views_by_user"
where = {{ type = "page_view" }}
aggregate = "count"
group_by = ["user"]
bucket = "5m"
lateness = "1m"
max_series = {series}
"#
    );
    let config = validate(&Source::new(Path::new("million_series.toml"), &text))?;
    let before = status_kib("VmRSS");
    let metrics = Metrics::new();
    let mut pipeline = Pipeline::new(config, metrics.clone());
    let mut transitions = Vec::new();
    let mut line = Vec::with_capacity(128);
    let started = Instant::now();
    let mut offset = 0;
    for b in 0..buckets {
        for u in 0..series {
            let time = T0 + b * BUCKET + (u % BUCKET as u64) as i64;
            line.clear();
            write!(
                line,
                r#"{{"time":{time},"type":"page_view","user":"u{u:07}","country":"FI"}}"#
            )?;
            offset += 1;
            // An event the pipeline holds (as it holds any partition's
            // first jump, until later events confirm it) is settled later,
            // as `replay` settles it.
            let outcome = pipeline.record(0, 0, offset, &line, None);
            let mut due = matches!(outcome, Outcome::Accepted { due: true, .. });
            for s in std::iter::once(outcome).chain(pipeline.settled().map(|s| s.outcome)) {
                match s {
                    Outcome::Accepted { due: d, .. } => due |= d,
                    Outcome::Held => {}
                    other => {
                        return Err(format!("event {offset} was not accepted: {other:?}").into())
                    }
                }
            }
            if due {
                pipeline.advance(None, &mut transitions);
                transitions.clear();
            }
            if u % 100_000 == 0 && status_kib("VmRSS") > LIMIT_KIB {
                println!(
                    "stopped: resident set passed 8 GiB after {offset} events (bucket {b}, series {u})"
                );
                return Ok(());
            }
        }
        println!(
            "bucket {b}: {offset} events, {:.1} s, VmRSS {} MiB",
            started.elapsed().as_secs_f64(),
            status_kib("VmRSS") >> 10
        );
    }
    pipeline.finish(&mut transitions);
    let seconds = started.elapsed().as_secs_f64();

    let kpi = "page_views_by_user";
    let live = metrics.series_live.with_label_values(&[kpi]).get();
    let judged = metrics.detector_evaluations.with_label_values(&[kpi]).get();
    let overflow = metrics.series_overflow.with_label_values(&[kpi]).get();
    let (peak, end) = (status_kib("VmHWM"), status_kib("VmRSS"));
    let per = |kib: u64| (kib.saturating_sub(before) * 1024) as f64 / live.max(1) as f64;
    println!(
        "{live} series live ({overflow} events overflowed), {judged} buckets judged, {offset} events in {seconds:.1} s"
    );
    println!("resident set before the pipeline: {before} KiB");
    println!(
        "peak resident set (VmHWM): {peak} KiB = {:.2} GiB, {:.0} bytes per series",
        peak as f64 / (1 << 20) as f64,
        per(peak)
    );
    println!(
        "resident set at the end (VmRSS): {end} KiB = {:.2} GiB, {:.0} bytes per series",
        end as f64 / (1 << 20) as f64,
        per(end)
    );
    Ok(())
}
