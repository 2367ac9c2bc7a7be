//! The service configuration as written: serde structs that mirror the TOML
//! one to one. Unknown keys are refused; values an analyst may get wrong are
//! [`Spanned`] so validation can point at them. `model.rs` turns these into
//! runtime types.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::DetectorsToml;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigToml {
    /// How the service listens and where it keeps state.
    #[serde(default)]
    pub service: ServiceToml,
    /// How to reach Kafka.
    #[serde(default)]
    pub kafka: KafkaToml,
    /// The topics events are read from.
    #[serde(default, rename = "topic")]
    pub topics: Vec<TopicToml>,
    /// Settings every KPI inherits unless it sets them itself.
    #[serde(default)]
    pub defaults: KpiToml,
    /// The KPIs.
    #[serde(default, rename = "kpi")]
    pub kpis: Vec<KpiToml>,
}

/// `[service]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceToml {
    /// Address of the HTTP server for /metrics, /healthz and /readyz
    /// (default "127.0.0.1:9898").
    pub listen: Option<Spanned<String>>,
    /// Directory for state snapshots and the alert log (default
    /// "./kpiwatch-state").
    pub state_dir: Option<String>,
    /// Append every alert transition as one JSON line to this file.
    pub alert_log: Option<String>,
    /// How often learned state is written to `state_dir` (default "30s").
    /// Kafka offsets are committed only up to the last snapshot, so a
    /// restart resumes with baselines and alert states intact.
    pub snapshot_interval: Option<Spanned<String>>,
}

/// `[kafka]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaToml {
    /// Bootstrap servers, "host:port[,host:port]" (default "localhost:9092").
    pub brokers: Option<String>,
    /// Consumer group; instances in one group split the partitions (default
    /// "kpiwatch").
    pub group_id: Option<String>,
    /// Malformed events are produced to this topic when set.
    pub dead_letter_topic: Option<String>,
    /// Extra librdkafka properties, passed as they are (e.g.
    /// "security.protocol" = "SASL_SSL"). Credentials belong in the
    /// environment: KPIWATCH_KAFKA_USERNAME and KPIWATCH_KAFKA_PASSWORD.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// `[[topic]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicToml {
    /// Kafka topic name.
    pub name: Spanned<String>,
    /// Dotted path of the field holding the event time (default "time").
    pub time_field: Option<Spanned<String>>,
    /// "rfc3339" (default), "epoch_seconds" or "epoch_millis".
    pub time_format: Option<Spanned<String>>,
    /// A partition with no message for this long stops holding the
    /// watermark back, and a topic that is entirely quiet is advanced by the
    /// wall clock, so empty buckets close (default "30s").
    pub idle_timeout: Option<Spanned<String>>,
}

/// `[kpi.alerting]` / `[defaults.alerting]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingToml {
    /// Score from which a bucket is anomalous, 0-1 (default 0.5).
    pub threshold: Option<Spanned<f64>>,
    /// Score from which an anomaly is critical rather than a warning
    /// (default 0.75).
    pub critical: Option<Spanned<f64>>,
    /// Consecutive anomalous buckets before an alert fires (default 1).
    pub fire_after: Option<Spanned<i64>>,
    /// Consecutive normal buckets before a firing alert resolves
    /// (default 3): one quiet bucket does not end an incident.
    pub resolve_after: Option<Spanned<i64>>,
    /// Recent bucket values carried in each alert, for charts (default 24).
    pub recent_buckets: Option<Spanned<i64>>,
}

/// `[[kpi]]`, and `[defaults]` (which may set only the settings below
/// `group_by`, and every KPI inherits). One struct serves both because
/// `serde(flatten)` would lose the spans that errors point at.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiToml {
    /// Unique name, used in alerts and metrics.
    pub name: Option<Spanned<String>>,
    /// What the KPI means, for people reading alerts.
    pub description: Option<Spanned<String>>,
    /// Link to the runbook, shown in every notification about this KPI.
    pub runbook: Option<Spanned<String>>,
    /// Link to a dashboard of this KPI, shown in notifications.
    pub dashboard: Option<Spanned<String>>,
    /// Topic the events come from (default: the only `[[topic]]`).
    pub topic: Option<Spanned<String>>,
    /// Which events count: `field = value` (equals), `field = { not = v }`,
    /// `field = { in = [..] }`, `field = { exists = true|false }`. Fields
    /// are dotted paths into the JSON event.
    #[serde(rename = "where")]
    pub filter: Option<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    /// "count", "sum", "avg", "min", "max", "distinct" or "ratio".
    pub aggregate: Option<Spanned<String>>,
    /// The field aggregated by sum/avg/min/max/distinct (dotted path).
    pub field: Option<Spanned<String>>,
    /// For "ratio": the KPI divided.
    pub numerator: Option<Spanned<String>>,
    /// For "ratio": the KPI divided by.
    pub denominator: Option<Spanned<String>>,
    /// Fields whose values split the KPI into series, e.g. ["country"].
    pub group_by: Option<Vec<Spanned<String>>>,
    /// Bucket width: "1m", "5m", "1h" (default "5m").
    pub bucket: Option<Spanned<String>>,
    /// How late an event may arrive after its bucket ended and still count
    /// (default "1m"). Later events are dropped and counted.
    pub lateness: Option<Spanned<String>>,
    /// IANA time zone for daily and weekly seasonality (default "UTC").
    pub timezone: Option<Spanned<String>>,
    /// Most series one KPI may have; past it, new label combinations are
    /// folded into one series whose labels read "__other__" (default 1000).
    pub max_series: Option<Spanned<i64>>,
    /// A series with no events for this long is forgotten (default "7d").
    pub evict_after: Option<Spanned<String>>,
    /// Which departures alert: "drop", "spike" or "both" (default "both").
    pub direction: Option<Spanned<String>>,
    /// Buckets with fewer events than this are not judged (default 0).
    pub min_volume: Option<Spanned<f64>>,
    /// Detector choice and thresholds.
    pub detectors: Option<Spanned<DetectorsToml>>,
    /// When a series alerts and when it recovers.
    pub alerting: Option<Spanned<AlertingToml>>,
}
