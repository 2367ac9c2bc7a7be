//! The labels file `kpiwatch backtest --incidents` reads, written from a
//! [`Shop`]'s incidents and quiet spans: [`Labels::of`] builds it, serde
//! writes it. The format is the backtest's (README, "Backtest labels");
//! each incident's note also states what it should change in expectation
//! ([`super::stream::expected`]), so a reader can judge whether a miss was
//! a detector's fault or an unfair test.

use std::collections::BTreeMap;

use serde::Serialize;

use super::scenario::{Change, Shop};
use super::stream::Expected;
use crate::timefmt::rfc3339_secs;

/// `{"incidents": [...], "quiet": [...]}`.
#[derive(Debug, Serialize)]
pub struct Labels {
    /// Changes that should alert.
    pub incidents: Vec<IncidentLabel>,
    /// Changes that must not alert.
    pub quiet: Vec<QuietLabel>,
}

/// What incidents and quiet spans share: which, what kind, when.
#[derive(Debug, Serialize)]
pub struct Span {
    /// Unique id.
    pub id: String,
    /// Kind, for grouping results ("total_outage"; quiet: "dst", "growth",
    /// "late_delivery", "expected_holiday", ...).
    pub kind: String,
    /// Start, RFC 3339 UTC.
    #[serde(with = "rfc3339_secs")]
    pub start: i64,
    /// End (exclusive), RFC 3339 UTC.
    #[serde(with = "rfc3339_secs")]
    pub end: i64,
}

/// One labelled incident.
#[derive(Debug, Serialize)]
pub struct IncidentLabel {
    /// Id, kind and time.
    #[serde(flatten)]
    pub span: Span,
    /// KPI names or globs that should alert.
    pub kpis: Vec<String>,
    /// Series labels an alert must not contradict.
    pub labels: BTreeMap<String, String>,
    /// "drop", "spike" or "both".
    pub direction: String,
    /// Detection delay aimed at, in buckets of the alerting KPI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_delay_buckets: Option<u32>,
    /// What happened, and what it changes in expectation.
    pub note: String,
}

/// One quiet span.
#[derive(Debug, Serialize)]
pub struct QuietLabel {
    /// Id, kind and time.
    #[serde(flatten)]
    pub span: Span,
    /// What changes, and why it must not alert.
    pub note: String,
}

impl Span {
    fn of(c: &Change) -> Self {
        Span {
            id: c.id.clone(),
            kind: c.kind.clone(),
            start: c.start,
            end: c.end,
        }
    }
}

impl Labels {
    /// The labels of `shop`, with `expected` (from
    /// [`super::stream::expected`], in incident order) stated in the notes.
    pub fn of(shop: &Shop, expected: &[Expected]) -> Self {
        let incidents = shop
            .incidents
            .iter()
            .zip(expected)
            // Validation gives every incident labels; none is skipped.
            .filter_map(|(c, x)| {
                let label = c.label.clone()?;
                Some(IncidentLabel {
                    span: Span::of(c),
                    kpis: label.kpis,
                    labels: label.labels,
                    direction: label.direction,
                    target_delay_buckets: label.target_delay_buckets,
                    note: with_expectation(&c.note, x, shop.scale),
                })
            })
            .collect();
        let quiet = shop
            .quiet
            .iter()
            .map(|c| QuietLabel {
                span: Span::of(c),
                note: c.note.clone(),
            })
            .collect();
        Labels { incidents, quiet }
    }
}

/// `note (at scale 1: 403 checkout events of its targets expected in the
/// window, 44.8 per 5 min; change -403 checkout events)`.
fn with_expectation(note: &str, x: &Expected, scale: f64) -> String {
    let mut change = String::new();
    if x.delta_events != 0.0 {
        change.push_str(&format!("{:+.0} {} events", x.delta_events, x.event_type));
    }
    if x.delta_euros != 0.0 {
        if !change.is_empty() {
            change.push_str(", ");
        }
        change.push_str(&format!("{:+.0} euros", x.delta_euros));
    }
    if change.is_empty() {
        change.push_str("none expected");
    }
    let stated = format!(
        "at scale {scale}: {:.0} {} events of its targets expected in the window, {:.1} per 5 min; change {change}",
        x.events, x.event_type, x.per_5min
    );
    if note.is_empty() {
        stated
    } else {
        format!("{note} ({stated})")
    }
}
