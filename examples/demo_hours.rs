//! The demo's shop and incidents (`kpiwatch demo`), replayed in event time
//! as if the demo had been run at each of a week's hours: the issue asks
//! that the demo fire only on its two incidents "at whatever hour it is
//! run", and `kpiwatch demo` itself can only be run now.
//!
//! For each end time it prints the alerts that fired and whether each
//! falls in an injected incident (from its start to 20 minutes after its
//! end, on checkouts, conversion or revenue), then a count of the runs
//! with an alert outside them.
//!
//! `cargo run --release --example demo_hours [HOURS] [STEP] [FROM]`: HOURS
//! end times (default 24), STEP hours apart (default 7, so that 24 runs
//! cover every hour of the day and every weekday), from 2026-12-07 00:17
//! UTC plus FROM steps (default 0). `DEMO_SEED=N` simulates with another
//! seed than the demo's 7; `RUST_LOG=kpiwatch::pipeline::engine=trace`
//! prints each judged bucket to stderr.
//!
//! The replay judges the same config, shop, time zone and incidents in
//! event time. The demo learns all but its last `kpiwatch::demo::LIVE`
//! seconds as `kpiwatch warm` does (judged, learnt, not alerted), so only
//! alerts from buckets after that count here (`LIVE_MINUTES=N`: the last N
//! minutes instead, to see what a longer live part would judge); `ALL=1`
//! counts the history's too, as the demo did when it judged its history
//! live.

use kpiwatch::alert::Transition;
use kpiwatch::pipeline::Pipeline;
use kpiwatch::simulate::ShopModel;
use kpiwatch::telemetry::Metrics;

/// 2026-12-07T00:00:00Z.
const FIRST_END: i64 = 1_796_601_600;
/// The demo's defaults: 14 days at 150 page views a minute, seed 7.
const DAYS: i64 = 14;
const RATE: f64 = 150.0;
const SEED: u64 = 7;
/// After an incident's end, an alert starting this much later is still
/// the incident's (a window still summing it).
const GRACE: i64 = 20 * 60;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let hours: i64 = args.next().map_or(Ok(24), |a| a.parse())?;
    let step: i64 = args.next().map_or(Ok(7), |a| a.parse())?;
    let from: i64 = args.next().map_or(Ok(0), |a| a.parse())?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let (mut runs_with_other, mut runs_missing) = (0, 0);
    for n in from..from + hours {
        // A demo run at minute 17 of its hour, as at any minute: the end
        // is a whole number of 5-minute buckets.
        let end = (FIRST_END + n * step * 3600 + 17 * 60).div_euclid(300) * 300;
        let live_from = if std::env::var_os("ALL").is_some() {
            i64::MIN
        } else {
            end - std::env::var("LIVE_MINUTES").map_or(Ok(kpiwatch::demo::LIVE), |m| {
                m.parse::<i64>().map(|m| m * 60)
            })?
        };
        let fired: Vec<Transition> = run(end)?
            .into_iter()
            .filter(|t| t.bucket_start >= live_from)
            .collect();
        let incidents = kpiwatch::demo::incidents(end);
        let mut other = 0;
        let mut caught = vec![false; incidents.len()];
        for t in &fired {
            let mut matched = false;
            for (i, incident) in incidents.iter().enumerate() {
                if (incident.start..incident.end + GRACE).contains(&t.started_at)
                    && ["checkouts", "conversion", "revenue"]
                        .iter()
                        .any(|k| t.kpi.starts_with(k))
                {
                    caught[i] = true;
                    matched = true;
                }
            }
            if !matched {
                other += 1;
            }
            println!(
                "end {} {} {}{:?} {} started {} min before the end{}",
                kpiwatch::timefmt::rfc3339(end),
                if matched { "  incident" } else { "  OTHER   " },
                t.kpi,
                t.labels,
                t.direction.name(),
                (end - t.started_at) / 60,
                if matched { "" } else { " <-" }
            );
        }
        if other > 0 {
            runs_with_other += 1;
        }
        if caught.contains(&false) {
            runs_missing += 1;
            println!(
                "end {} MISSED an incident (caught: {caught:?})",
                kpiwatch::timefmt::rfc3339(end)
            );
        }
    }
    println!(
        "{runs_with_other} of {hours} end times fired an alert outside the injected incidents"
    );
    println!("{runs_missing} of {hours} end times missed an injected incident");
    Ok(())
}

/// The demo's config, time zone and shop ending at `end`, replayed; the
/// transitions that start an alert.
fn run(end: i64) -> anyhow::Result<Vec<Transition>> {
    let mut config = kpiwatch::config::load(std::path::Path::new("config/shop.toml"))?;
    let (local_offset, time_zone) = kpiwatch::demo::shop_time_zone(end);
    for k in &mut config.kpis {
        k.timezone = time_zone;
    }
    let mut pipeline = Pipeline::new(config, Metrics::new());
    let model = ShopModel {
        start: end - DAYS * 86_400,
        end,
        peak_page_views: RATE,
        incidents: kpiwatch::demo::incidents(end),
        seed: std::env::var("DEMO_SEED").map_or(Ok(SEED), |s| s.parse())?,
        local_offset,
    };
    Ok(kpiwatch::replay::shop(&mut pipeline, &model)
        .into_iter()
        .filter(Transition::starts_alert)
        .collect())
}
