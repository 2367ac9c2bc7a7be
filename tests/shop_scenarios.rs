//! What a product manager expects from the default detectors, on the
//! simulated shop with `config/shop.toml` (the file the demo runs): each
//! injected incident alerts promptly, and normal weeks stay quiet.
//!
//! Everything is deterministic (seeded simulation, event-time replay), so
//! these are exact specifications, not flaky statistics.

use std::path::Path;
use std::sync::OnceLock;

use kpiwatch::alert::{Status, Transition};
use kpiwatch::pipeline::Pipeline;
use kpiwatch::simulate::ShopModel;
use kpiwatch::telemetry::Metrics;

/// 2024-01-01, a Monday.
const START: i64 = 1_704_067_200;
const DAYS: i64 = 15;
const END: i64 = START + DAYS * 86_400;

fn run(incidents: Vec<kpiwatch::simulate::Incident>) -> Vec<Transition> {
    let config =
        kpiwatch::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/shop.toml"))
            .expect("config/shop.toml is valid");
    let mut pipeline = Pipeline::new(config, Metrics::new());
    let model = ShopModel {
        start: START,
        end: END,
        peak_page_views: 100.0,
        incidents,
        seed: 11,
        local_offset: 0,
    };
    kpiwatch::replay::shop(&mut pipeline, &model)
}

fn firing<'a>(ts: &'a [Transition], kpi: &str) -> Vec<&'a Transition> {
    ts.iter()
        .filter(|t| t.starts_alert() && t.kpi == kpi)
        .collect()
}

/// The demo's incidents, three hours before the end.
const DEMO_END: i64 = END - 3 * 3600;

/// The shop with the demo's incidents, simulated and replayed once.
fn with_incidents() -> &'static [Transition] {
    static RUN: OnceLock<Vec<Transition>> = OnceLock::new();
    RUN.get_or_init(|| run(kpiwatch::demo::incidents(DEMO_END)))
}

#[test]
fn checkouts_stopping_fires_within_ten_minutes_and_resolves_after() {
    let ts = with_incidents();
    // The outage: checkouts at factor 0 from 35 to 15 minutes before the end.
    let outage = DEMO_END - 35 * 60;
    let hits: Vec<_> = firing(ts, "checkouts")
        .into_iter()
        .filter(|t| (outage..outage + 20 * 60).contains(&t.bucket_start))
        .collect();
    assert!(
        !hits.is_empty(),
        "no checkouts alert during the outage: {:#?}",
        firing(ts, "checkouts")
    );
    let first = hits[0];
    assert!(first.bucket_start <= outage + 10 * 60, "{first:#?}");
    assert_eq!(first.direction, detectors::Direction::Drop);
    assert!(
        ts.iter()
            .any(|t| t.status == Status::Resolved && t.alert_id == first.alert_id),
        "the outage alert never resolved"
    );
}

#[test]
fn ios_checkouts_stopping_alerts_for_ios_within_twenty_minutes() {
    let ts = with_incidents();
    let start = DEMO_END - 80 * 60;
    let ios: Vec<_> = firing(ts, "checkouts_by_platform")
        .into_iter()
        .filter(|t| t.labels.get("platform").map(String::as_str) == Some("ios"))
        .filter(|t| (start..start + 40 * 60).contains(&t.bucket_start))
        .collect();
    assert!(!ios.is_empty(), "no alert for the iOS outage");
    assert!(ios[0].bucket_start <= start + 20 * 60, "{:#?}", ios[0]);
    let others = firing(ts, "checkouts_by_platform")
        .into_iter()
        .filter(|t| t.labels.get("platform").map(String::as_str) != Some("ios"))
        .filter(|t| (start..start + 40 * 60).contains(&t.bucket_start))
        .count();
    assert_eq!(others, 0, "web and android were fine during the iOS outage");
}

/// One node of six processing a tenth of its usual amounts: its own sums
/// are heavy-tailed (one large basket can fill a bucket), but against its
/// peers' share it stands out.
#[test]
fn a_node_making_a_tenth_of_its_usual_revenue_alerts() {
    let start = DEMO_END - 5 * 3600;
    let spec = format!(
        "node=node-3,factor=0.1,start={},duration=90m",
        kpiwatch::timefmt::rfc3339(start)
    );
    let ts = run(vec![kpiwatch::simulate::Incident::parse(&spec).unwrap()]);
    let node3 = firing(&ts, "revenue_by_node")
        .into_iter()
        .filter(|t| t.labels.get("node").map(String::as_str) == Some("node-3"))
        .filter(|t| (start..start + 90 * 60).contains(&t.bucket_start))
        .count();
    assert!(node3 > 0, "no alert for node-3's revenue");
}

#[test]
fn a_normal_fortnight_raises_at_most_a_few_alerts() {
    let ts = run(vec![]);
    // The first week is learning; judge the rest.
    let judged: Vec<_> = ts
        .iter()
        .filter(|t| t.starts_alert() && t.bucket_start >= START + 7 * 86_400)
        .collect();
    let listing: Vec<String> = judged
        .iter()
        .map(|t| {
            format!(
                "{} {:?} {} score {:.2}",
                t.kpi, t.labels, t.bucket_start, t.score
            )
        })
        .collect();
    assert!(
        judged.len() <= 3,
        "{} false alerts in 8 normal days:\n{}",
        judged.len(),
        listing.join("\n")
    );
}
