//! Alert transitions: what the engine emits when a series starts or stops
//! being anomalous. One JSON line per transition in `replay`, the JSONL
//! alert log and (next) the notifiers.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use detectors::Direction;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The series became anomalous.
    Firing,
    /// The series recovered.
    Resolved,
}

/// How bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Score at or above the KPI's threshold.
    Warning,
    /// Score at or above the KPI's critical threshold.
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
    /// Severity at firing (the worst seen, when resolved).
    pub severity: Severity,
    /// Drop or spike.
    pub direction: Direction,
    /// Start of the first anomalous bucket, RFC 3339.
    pub started_at: String,
    /// Start of the bucket that caused this transition, RFC 3339.
    pub bucket_start: String,
    /// End of that bucket, RFC 3339.
    pub bucket_end: String,
    /// Observed value in that bucket.
    #[serde(deserialize_with = "null_as_nan")]
    pub observed: f64,
    /// Expected value.
    #[serde(deserialize_with = "null_as_nan")]
    pub expected: f64,
    /// Lower edge of the normal band.
    #[serde(deserialize_with = "null_as_nan")]
    pub lower: f64,
    /// Upper edge of the normal band.
    #[serde(deserialize_with = "null_as_nan")]
    pub upper: f64,
    /// Detector score, 0-1.
    #[serde(deserialize_with = "null_as_nan")]
    pub score: f64,
    /// (observed - expected) / expected in percent, when expected is not 0.
    pub deviation_pct: Option<f64>,
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

/// RFC 3339 in UTC for epoch seconds.
pub fn rfc3339(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| t.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(1_704_067_200), "2024-01-01T00:00:00Z");
    }
}
