//! Transitions, incidents and a configuration for the backtest's unit
//! tests, built by hand.

use std::collections::BTreeMap;
use std::path::Path;

use detectors::Direction;

use crate::alert::{Evidence, Severity, Status, Transition};
use crate::config::model::{Config, Interest};
use crate::notify::route::KpiGlobs;

use super::labels::Incident;

pub const HOUR: i64 = 3600;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
/// 2024-01-20T10:00:00Z.
pub const T0: i64 = 1_705_744_800;

/// A firing transition of `kpi` for a drop, fired by the bucket
/// `[bucket_end - 1h, bucket_end)`: observed 0 against 10 (band
/// 4-16), score and deviation consistent with its evidence.
pub fn firing(kpi: &str, labels: &[(&str, &str)], bucket_end: i64) -> Transition {
    let labels = map(labels);
    let p = 1e-8;
    Transition {
        status: Status::Firing,
        alert_id: crate::alert::alert_id(kpi, &labels, bucket_end - HOUR),
        kpi: kpi.to_string(),
        labels,
        severity: Severity::Warning,
        escalated_from: None,
        direction: Direction::Drop,
        started_at: bucket_end - HOUR,
        bucket_start: bucket_end - HOUR,
        bucket_end,
        observed: 0.0,
        expected: 10.0,
        lower: 4.0,
        upper: 16.0,
        score: detectors::combine::score_of_tail(p),
        deviation_pct: Some(-100.0),
        evidence: Evidence::bucket(bucket_end - HOUR, bucket_end, Some(p)),
        description: None,
        runbook: None,
        dashboard: None,
        recent: Vec::new(),
    }
}

/// The resolution of `firing` at `bucket_end`, back at its expectation.
pub fn resolved(firing: &Transition, bucket_end: i64) -> Transition {
    let p = 0.5;
    Transition {
        status: Status::Resolved,
        bucket_start: bucket_end - HOUR,
        bucket_end,
        observed: 10.0,
        deviation_pct: Some(0.0),
        score: detectors::combine::score_of_tail(p),
        evidence: Evidence::bucket(bucket_end - HOUR, bucket_end, Some(p)),
        ..firing.clone()
    }
}

/// The escalation of `firing` to critical at `bucket_end`: the same
/// alert, its bucket still at 0, now far rarer.
pub fn escalated(firing: &Transition, bucket_end: i64) -> Transition {
    let p = 1e-14;
    Transition {
        severity: Severity::Critical,
        escalated_from: Some(firing.severity),
        bucket_start: bucket_end - HOUR,
        bucket_end,
        score: detectors::combine::score_of_tail(p),
        evidence: Evidence::bucket(bucket_end - HOUR, bucket_end, Some(p)),
        ..firing.clone()
    }
}

/// An incident on `kpis` from `start` for `hours`, dropping.
pub fn incident(kpis: &[&str], labels: &[(&str, &str)], start: i64, hours: i64) -> Incident {
    Incident {
        id: "outage".to_string(),
        kind: None,
        start,
        end: start + hours * HOUR,
        kpis: KpiGlobs::new(kpis).expect("test globs compile"),
        labels: map(labels),
        direction: Interest::Drop,
        target_delay_buckets: None,
        note: None,
    }
}

/// Topic `shop` with three hourly KPIs (`resolve_after` 3, so a grace of
/// 4 h, except `refunds`: 2, so 3 h), and topic `auth` with one.
pub fn shop() -> Config {
    crate::config::validate(&crate::config::Source::new(
        Path::new("shop.toml"),
        r#"
[[topic]]
name = "shop"
[[topic]]
name = "auth"
[defaults]
bucket = "1h"
[[kpi]]
name = "checkouts"
topic = "shop"
aggregate = "count"
[[kpi]]
name = "checkouts_by_country"
topic = "shop"
aggregate = "count"
group_by = ["country"]
[[kpi]]
name = "refunds"
topic = "shop"
aggregate = "sum"
field = "amount"
alerting = { resolve_after = 2 }
[[kpi]]
name = "logins"
topic = "auth"
aggregate = "count"
"#,
    ))
    .expect("valid config")
}
