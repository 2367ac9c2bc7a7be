//! Alert transitions: what the engine emits when a series starts or stops
//! being anomalous. One JSON line per transition in `replay`, the JSONL
//! alert log and (next) the notifiers.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use detectors::Direction;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The series became anomalous.
    Firing,
    /// The series recovered.
    Resolved,
}

/// How bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Score at or above the KPI's threshold.
    Warning,
    /// Score at or above the KPI's critical threshold.
    Critical,
}

/// One alert transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    pub observed: f64,
    /// Expected value.
    pub expected: f64,
    /// Lower edge of the normal band.
    pub lower: f64,
    /// Upper edge of the normal band.
    pub upper: f64,
    /// Detector score, 0-1.
    pub score: f64,
    /// (observed - expected) / expected in percent, when expected is not 0.
    pub deviation_pct: Option<f64>,
    /// The KPI's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Recent buckets as `[start_epoch_seconds, value]`, oldest first.
    pub recent: Vec<(i64, f64)>,
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
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(1_704_067_200), "2024-01-01T00:00:00Z");
    }
}
