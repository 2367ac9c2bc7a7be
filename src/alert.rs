//! Alerts as everyone downstream of detection reads them: the
//! [`Transition`] the engine emits when a series starts or stops being
//! anomalous, with the [`Evidence`] behind it. One JSON line per transition
//! in `replay` and the alert log; the notifiers, the backtest and the demo
//! read the same record.
//!
//! A bottom module: detection (`pipeline`) writes these types and
//! notification (`notify`), configuration (`config`, for severities in
//! subscriptions) and telemetry read them, so none of those needs another.
//! Times are epoch seconds inside the program and RFC 3339 text in JSON
//! ([`crate::timefmt::rfc3339_secs`]).

use std::collections::BTreeMap;

use detectors::Direction;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::timefmt::rfc3339_secs;

/// Which departures from normal alert: a KPI's `direction`, a route's
/// and an incident label's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Only values below expected.
    Drop,
    /// Only values above expected.
    Spike,
    /// Both.
    Both,
}

/// Firing or resolved. An escalation is a firing transition of an alert
/// already firing (see [`Transition::escalated_from`]): the alert still
/// fires, so everything that asks "is it firing?" stays right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The series became anomalous, or (an escalation) got worse.
    Firing,
    /// The series recovered.
    Resolved,
}

impl Status {
    /// `firing` or `resolved`, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// How bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The evidence passed the KPI's alert threshold.
    Warning,
    /// The evidence passed the KPI's critical threshold.
    Critical,
}

impl Severity {
    /// `warning` or `critical`, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The severity called `name` (`warning` or `critical`, as
    /// [`Severity::name`] writes them); `None` for any other name.
    pub fn parse(name: &str) -> Option<Severity> {
        match name {
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// What an alert's figures (`observed`, `expected`, `lower`, `upper`)
/// describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// One bucket against its band.
    #[default]
    Bucket,
    /// The total of several consecutive buckets against their expected
    /// total: a sustained shift whose single buckets each look plausible,
    /// or a quiet series whose buckets are too small to judge alone.
    Window,
    /// The series against its peers (the other series of its KPI): its
    /// value against what its usual share of the group implies.
    Peers,
    /// An average's typical value over a window (the geometric mean of its
    /// events' values) against its expected: a change that scales every
    /// value, like a price bug, which the arithmetic mean's few largest
    /// values hide for longer.
    Typical,
    /// An analyst's rule (`min`, `max`, `week_over_week_pct`): the figures
    /// are the value and the rule's limit, not a probability.
    Rule,
}

impl EvidenceKind {
    /// `bucket`, `window`, `peers`, `typical` or `rule`, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            EvidenceKind::Bucket => "bucket",
            EvidenceKind::Window => "window",
            EvidenceKind::Peers => "peers",
            EvidenceKind::Typical => "typical",
            EvidenceKind::Rule => "rule",
        }
    }
}

/// Which analyst rule an alert broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// The value fell below the configured `min`.
    Min,
    /// The value rose above the configured `max`.
    Max,
    /// The value moved further from the same hour last week than
    /// `week_over_week_pct` allows.
    WeekOverWeek,
}

impl RuleKind {
    /// The rule as the config names it.
    pub fn name(self) -> &'static str {
        match self {
            RuleKind::Min => "min",
            RuleKind::Max => "max",
            RuleKind::WeekOverWeek => "week_over_week_pct",
        }
    }
}

/// A broken rule and its limit in the KPI's units (for week-over-week: the
/// value last week's figure and the percentage allow).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Which rule.
    pub kind: RuleKind,
    /// The limit the value crossed.
    #[serde(deserialize_with = "null_as_nan")]
    pub limit: f64,
}

/// A series' share of its group (the sum over the KPI's series) during the
/// evidence's span, and the share it usually has.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// Share during the span, 0-1.
    #[serde(deserialize_with = "null_as_nan")]
    pub observed: f64,
    /// Usual share, 0-1.
    #[serde(deserialize_with = "null_as_nan")]
    pub usual: f64,
}

/// What fired (or resolved) an alert: the span of buckets the alert's
/// figures cover and how rare they are.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Evidence {
    /// Bucket, window, peers or rule.
    pub kind: EvidenceKind,
    /// Start of the first bucket covered.
    #[serde(with = "rfc3339_secs")]
    pub from: i64,
    /// End of the last bucket covered.
    #[serde(with = "rfc3339_secs")]
    pub to: i64,
    /// Buckets covered.
    pub buckets: u32,
    /// Probability, under the series' model of normal, of figures at least
    /// this far from expected in this direction (none for rules). The
    /// score and the "1 in N" of messages come from it.
    #[serde(default)]
    pub p: Option<f64>,
    /// The rule broken, for rule evidence.
    #[serde(default)]
    pub rule: Option<Rule>,
    /// The series' share of its group, for peer evidence.
    #[serde(default)]
    pub share: Option<Share>,
}

impl Evidence {
    /// One bucket, `[start, end)`, with tail probability `p`.
    pub fn bucket(start: i64, end: i64, p: Option<f64>) -> Self {
        Self {
            kind: EvidenceKind::Bucket,
            from: start,
            to: end,
            buckets: 1,
            p,
            rule: None,
            share: None,
        }
    }
}

/// One recent bucket of a series, for charts: its value and the band the
/// detectors expected it in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecentBucket {
    /// Bucket start, epoch seconds.
    pub t: i64,
    /// Observed value.
    #[serde(deserialize_with = "null_as_nan")]
    pub value: f64,
    /// Expected value. f32: chart precision, and it halves the per-series
    /// memory of the recent-bucket ring.
    #[serde(deserialize_with = "null_as_nan_f32")]
    pub expected: f32,
    /// Lower edge of the normal band.
    #[serde(deserialize_with = "null_as_nan_f32")]
    pub lower: f32,
    /// Upper edge of the normal band.
    #[serde(deserialize_with = "null_as_nan_f32")]
    pub upper: f32,
    /// Whether the bucket was judged anomalous.
    pub anomalous: bool,
}

/// One alert transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Firing or resolved.
    pub status: Status,
    /// Deterministic: the same KPI, labels and start bucket give the same
    /// id, so a replay or restart never produces a second alert.
    pub alert_id: String,
    /// KPI name.
    pub kpi: String,
    /// Series labels (`group_by` field → value).
    pub labels: BTreeMap<String, String>,
    /// Severity at firing, or the new one of an escalation (the worst
    /// announced, when resolved).
    pub severity: Severity,
    /// Set on an escalation: a firing transition of an alert that was
    /// already firing, same `alert_id`, whose severity rose from this one
    /// to `severity`. Its figures are those of the evidence that raised
    /// it. Absent from the JSON of every other transition, so lines
    /// written before it existed read back as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_from: Option<Severity>,
    /// Drop or spike.
    pub direction: Direction,
    /// Start of the first anomalous bucket (epoch seconds; RFC 3339 in
    /// JSON).
    #[serde(with = "rfc3339_secs")]
    pub started_at: i64,
    /// Start of the bucket whose close caused this transition.
    #[serde(with = "rfc3339_secs")]
    pub bucket_start: i64,
    /// End of that bucket.
    #[serde(with = "rfc3339_secs")]
    pub bucket_end: i64,
    /// Observed value of the evidence: the bucket's value, or the window's
    /// total for window evidence.
    #[serde(deserialize_with = "null_as_nan")]
    pub observed: f64,
    /// Expected value of the evidence.
    #[serde(deserialize_with = "null_as_nan")]
    pub expected: f64,
    /// Lower edge of the evidence's normal band: a firing alert's
    /// `observed` is outside `lower..=upper`.
    #[serde(deserialize_with = "null_as_nan")]
    pub lower: f64,
    /// Upper edge of the evidence's normal band.
    #[serde(deserialize_with = "null_as_nan")]
    pub upper: f64,
    /// Anomaly score, 0-1, from the evidence's tail probability.
    #[serde(deserialize_with = "null_as_nan")]
    pub score: f64,
    /// (observed - expected) / expected in percent, when expected is not 0.
    pub deviation_pct: Option<f64>,
    /// What the figures above describe, and how rare they are.
    #[serde(default)]
    pub evidence: Evidence,
    /// The KPI's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The KPI's runbook link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    /// The KPI's dashboard link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<String>,
    /// Recent buckets with their bands, oldest first, ending with this
    /// transition's bucket.
    pub recent: Vec<RecentBucket>,
}

impl Transition {
    /// Whether this transition starts an alert: firing, and not an
    /// escalation of one that already fires. What counts alerts counts
    /// these.
    pub fn starts_alert(&self) -> bool {
        self.status == Status::Firing && self.escalated_from.is_none()
    }

    /// Whether this transition raises the severity of an alert already
    /// firing.
    pub fn is_escalation(&self) -> bool {
        self.status == Status::Firing && self.escalated_from.is_some()
    }

    /// `firing`, `escalated` or `resolved`: what happened to the alert,
    /// for metrics labels and logs.
    pub fn change_name(&self) -> &'static str {
        if self.is_escalation() {
            "escalated"
        } else {
            self.status.name()
        }
    }
}

/// JSON has no infinities or NaN: serde_json writes them as `null` (an
/// open band edge is infinite), and this reads `null` back as NaN so an
/// alert survives the outbox. Binary formats (the postcard snapshot) carry
/// the number itself and read it as is.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    if d.is_human_readable() {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    } else {
        f64::deserialize(d)
    }
}

fn null_as_nan_f32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    if d.is_human_readable() {
        Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
    } else {
        f32::deserialize(d)
    }
}

/// The id of the alert of `kpi`/`labels` that started at bucket `start`.
pub fn alert_id(kpi: &str, labels: &BTreeMap<String, String>, start: i64) -> String {
    let mut h = Sha256::new();
    h.update(kpi.as_bytes());
    for (k, v) in labels {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([b'=']);
        h.update(v.as_bytes());
    }
    h.update([0]);
    h.update(start.to_be_bytes());
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Constructors for the tests of the modules that take alert types
/// (`notify`'s silences and dispatcher, `feedback`'s register), so that
/// their tests share them without importing one another's.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A critical drop of alert `id` of `kpi` with `labels`, in `status`
    /// (the other fields fixed and plausible).
    pub(crate) fn transition(
        status: Status,
        id: &str,
        kpi: &str,
        labels: &[(&str, &str)],
    ) -> Transition {
        Transition {
            status,
            alert_id: id.to_string(),
            kpi: kpi.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            severity: Severity::Critical,
            escalated_from: None,
            direction: detectors::Direction::Drop,
            started_at: 1714564800,
            bucket_start: 1714564800,
            bucket_end: 1714565100,
            observed: 1.0,
            expected: 10.0,
            lower: 5.0,
            upper: 15.0,
            score: 0.9,
            deviation_pct: Some(-90.0),
            evidence: Default::default(),
            description: None,
            runbook: None,
            dashboard: None,
            recent: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_severity_parses_from_its_name_and_no_other_name_parses() {
        for s in [Severity::Warning, Severity::Critical] {
            assert_eq!(Severity::parse(s.name()), Some(s));
        }
        assert_eq!(Severity::parse("fatal"), None);
        assert_eq!(Severity::parse("Warning"), None);
        assert_eq!(Severity::parse(""), None);
    }

    #[test]
    fn alert_ids_are_stable_and_distinguish_series_and_start() {
        let fi = BTreeMap::from([("country".to_string(), "FI".to_string())]);
        let se = BTreeMap::from([("country".to_string(), "SE".to_string())]);
        let a = alert_id("checkouts", &fi, 600);
        assert_eq!(a, alert_id("checkouts", &fi, 600));
        assert_eq!(a.len(), 16);
        assert_ne!(a, alert_id("checkouts", &se, 600));
        assert_ne!(a, alert_id("checkouts", &fi, 900));
        assert_ne!(a, alert_id("carts", &fi, 600));
    }

    #[test]
    fn a_recent_bucket_round_trips_through_json_and_postcard_with_open_edges() {
        let b = RecentBucket {
            t: 600,
            value: 3.0,
            expected: 4.0,
            lower: f32::NEG_INFINITY,
            upper: f32::INFINITY,
            anomalous: true,
        };
        let json: RecentBucket = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert!(
            json.lower.is_nan() && json.upper.is_nan(),
            "null reads back as NaN"
        );
        assert_eq!((json.t, json.value, json.expected), (600, 3.0, 4.0));
        let bytes = postcard::to_stdvec(&b).unwrap();
        let binary: RecentBucket = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(binary, b, "binary formats keep the infinities");
    }

    #[test]
    fn times_are_integers_inside_and_rfc3339_in_json() {
        let t = Evidence::bucket(1_704_067_200, 1_704_067_500, Some(1e-9));
        let json = serde_json::to_value(t).unwrap();
        assert_eq!(json["from"], "2024-01-01T00:00:00Z");
        assert_eq!(json["to"], "2024-01-01T00:05:00Z");
        let back: Evidence = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
        let binary: Evidence = postcard::from_bytes(&postcard::to_stdvec(&t).unwrap()).unwrap();
        assert_eq!(binary, t);
    }
}
