//! Operational events: one small struct per thing worth counting or logging,
//! whose `emit()` logs once and bumps its Prometheus metric, so a log line
//! and its counter can never disagree.
//!
//! [`Metrics`] owns a registry (one per pipeline, so tests read their own
//! counters); `/metrics` renders it. Label sets are bounded: topics, KPIs
//! and partitions come from config and Kafka, reasons are enums.
//!
//! Events that come in floods (refused, late, skipped values) are counted
//! every time but logged at most once per topic (or KPI) and reason every
//! [`LOG_EVERY`], each line saying how many went unlogged before it
//! ([`LogLimiter`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Least time between two log lines about the same kind of dropped event
/// of one topic (or KPI).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Every metric kpiwatch exports.
#[derive(Clone)]
pub struct Metrics {
    /// Log limiters by topic (or KPI) and reason, shared by the clones. A
    /// std mutex: taken only for dropped events, never across an await.
    log_limits: Arc<Mutex<HashMap<String, HashMap<&'static str, LogLimiter>>>>,
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Events read from a topic, before any check (messages skipped around
    /// a rebalance are counted in `events_skipped` instead).
    pub events_consumed: IntCounterVec,
    /// Events refused, by topic and [`RejectReason`].
    pub events_rejected: IntCounterVec,
    /// Events that arrived after their bucket had closed.
    pub events_late: IntCounterVec,
    /// Messages not taken into the pipeline around a rebalance, by topic
    /// and [`SkipReason`].
    pub events_skipped: IntCounterVec,
    /// Buckets closed and judged, by KPI.
    pub buckets_closed: IntCounterVec,
    /// Series currently held, by KPI.
    pub series_live: IntGaugeVec,
    /// Series forgotten after `evict_after` of silence, by KPI.
    pub series_evicted: IntCounterVec,
    /// Events folded into the "__other__" series past `max_series`, by KPI.
    pub series_overflow: IntCounterVec,
    /// Detector evaluations, by KPI.
    pub detector_evaluations: IntCounterVec,
    /// Alert transitions, by KPI and status (firing, escalated, resolved).
    pub alert_transitions: IntCounterVec,
    /// Matching events whose aggregated field could not be aggregated, by
    /// KPI and [`BadValue`].
    pub values_skipped: IntCounterVec,
    /// Consumer lag in messages, by topic and partition.
    pub consumer_lag: IntGaugeVec,
    /// Seconds from a batch of messages being received to its effects
    /// (buckets updated, closed buckets judged, transitions emitted) being
    /// recorded.
    pub processing_latency: Histogram,
    /// Notifications accepted by their receiver, by receiver.
    pub notifications_sent: IntCounterVec,
    /// Failed delivery attempts, by receiver and reason (transient,
    /// permanent).
    pub notifications_failed: IntCounterVec,
    /// Delivery attempts that were retries, by receiver.
    pub notifications_retried: IntCounterVec,
    /// Notifications given up, by receiver and reason (expired, rejected).
    pub notifications_dropped: IntCounterVec,
    /// Notifications recorded but not sent, by subscription and reason
    /// (silenced, muted, inactive).
    pub notifications_suppressed: IntCounterVec,
    /// Notifications refused by the outbox because their id was already
    /// accepted (a replay or restart recreated them), by receiver.
    pub notifications_deduplicated: IntCounterVec,
    /// Notifications waiting in the outbox, by receiver.
    pub outbox_depth: IntGaugeVec,
    /// Age in seconds of the oldest notification waiting, by receiver.
    pub outbox_oldest_age: GaugeVec,
    /// Seconds from a notification's creation to its receiver accepting
    /// it, by receiver.
    pub delivery_latency: HistogramVec,
    /// Durable writes that failed (a full disk), by [`StateWrite`]: each
    /// attempt, retries included.
    pub state_write_failures: IntCounterVec,
}

impl Metrics {
    /// Creates every metric in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let processing_latency = Histogram::with_opts(
            HistogramOpts::new(
                "kpiwatch_processing_latency_seconds",
                "Seconds from a batch of messages being received to its effects being recorded.",
            )
            .buckets(vec![0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(processing_latency.clone()))
            .expect("unique metric");
        let delivery_latency = HistogramVec::new(
            HistogramOpts::new(
                "kpiwatch_notification_delivery_seconds",
                "Seconds from a notification's creation to its receiver accepting it.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0, 3600.0,
            ]),
            &["receiver"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(delivery_latency.clone()))
            .expect("unique metric");
        let outbox_oldest_age = GaugeVec::new(
            Opts::new(
                "kpiwatch_outbox_oldest_age_seconds",
                "Age of the oldest notification waiting in the outbox.",
            ),
            &["receiver"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(outbox_oldest_age.clone()))
            .expect("unique metric");
        Self {
            notifications_sent: counter(
                "kpiwatch_notifications_sent_total",
                "Notifications accepted by their receiver (HTTP 2xx, SMTP 250).",
                &["receiver"],
            ),
            notifications_failed: counter(
                "kpiwatch_notifications_failed_total",
                "Failed delivery attempts.",
                &["receiver", "reason"],
            ),
            notifications_retried: counter(
                "kpiwatch_notifications_retried_total",
                "Delivery attempts that were retries.",
                &["receiver"],
            ),
            notifications_dropped: counter(
                "kpiwatch_notifications_dropped_total",
                "Notifications given up (expired: older than give_up_after; rejected: refused for good).",
                &["receiver", "reason"],
            ),
            notifications_suppressed: counter(
                "kpiwatch_notifications_suppressed_total",
                "Notifications recorded but not sent (silenced, muted, inactive).",
                &["subscription", "reason"],
            ),
            notifications_deduplicated: counter(
                "kpiwatch_notifications_deduplicated_total",
                "Notifications not sent again because the outbox had already accepted their id.",
                &["receiver"],
            ),
            outbox_depth: gauge(
                "kpiwatch_outbox_depth",
                "Notifications waiting in the outbox.",
                &["receiver"],
            ),
            outbox_oldest_age,
            delivery_latency,
            state_write_failures: counter(
                "kpiwatch_state_write_failures_total",
                "Durable writes that failed (full disk?), retries included; nothing is committed while one is failing.",
                &["what"],
            ),
            events_consumed: counter(
                "kpiwatch_events_consumed_total",
                "Events read from Kafka or a replay file.",
                &["topic"],
            ),
            events_rejected: counter(
                "kpiwatch_events_rejected_total",
                "Events refused as malformed, by reason.",
                &["topic", "reason"],
            ),
            events_late: counter(
                "kpiwatch_events_late_total",
                "Events dropped because their bucket had already closed.",
                &["topic"],
            ),
            events_skipped: counter(
                "kpiwatch_events_skipped_total",
                "Messages not counted because of a rebalance: read from a partition revoked before they were recorded, or read again after it was handed back.",
                &["topic", "reason"],
            ),
            buckets_closed: counter(
                "kpiwatch_buckets_closed_total",
                "Buckets closed and judged.",
                &["kpi"],
            ),
            series_live: gauge(
                "kpiwatch_series_live",
                "Series currently held in memory.",
                &["kpi"],
            ),
            series_evicted: counter(
                "kpiwatch_series_evicted_total",
                "Series forgotten after evict_after without events.",
                &["kpi"],
            ),
            series_overflow: counter(
                "kpiwatch_series_overflow_total",
                "Events folded into the __other__ series because max_series was reached.",
                &["kpi"],
            ),
            detector_evaluations: counter(
                "kpiwatch_detector_evaluations_total",
                "Closed buckets scored by the detectors.",
                &["kpi"],
            ),
            alert_transitions: counter(
                "kpiwatch_alert_transitions_total",
                "Alert transitions, by status: firing (a new alert), escalated (a firing alert's severity rose), resolved.",
                &["kpi", "status"],
            ),
            values_skipped: counter(
                "kpiwatch_values_skipped_total",
                "Matching events whose aggregated field could not be aggregated (missing, null, string, boolean, array, object), by KPI and reason.",
                &["kpi", "reason"],
            ),
            consumer_lag: gauge(
                "kpiwatch_consumer_lag_messages",
                "Messages between the partition's high watermark and the consumer's position.",
                &["topic", "partition"],
            ),
            processing_latency,
            registry,
            log_limits: Arc::default(),
        }
    }

    /// Every counter of `family` that has been touched, with its labels
    /// (name, value), for summaries (`replay`).
    pub fn counts(family: &IntCounterVec) -> Vec<(Vec<(String, String)>, u64)> {
        use prometheus::core::Collector;
        family
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .map(|m| {
                let labels = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect();
                (labels, m.get_counter().get_value() as u64)
            })
            .collect()
    }

    /// Whether to log one more `what` of `scope` (a topic or KPI) now; if
    /// so, how many went unlogged since the last line. See [`LogLimiter`].
    pub fn log_allowed(&self, scope: &str, what: &'static str) -> Option<u64> {
        let mut limits = self
            .log_limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let per_scope = match limits.get_mut(scope) {
            Some(p) => p,
            None => limits.entry(scope.to_string()).or_default(),
        };
        per_scope
            .entry(what)
            .or_default()
            .allow(Instant::now(), LOG_EVERY)
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// At most one log line per `every`: the first occurrence is logged, those
/// within `every` of the last logged one are only counted, and the next
/// line says how many there were. Time comes in as an argument, so tests
/// move it without sleeping.
#[derive(Debug, Default, Clone)]
pub struct LogLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// `Some(n)` if an occurrence at `now` is to be logged, `n` being the
    /// occurrences not logged since the last line; `None` if it is not.
    pub fn allow(&mut self, now: Instant, every: Duration) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Why an event was refused. The label values of
/// `kpiwatch_events_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Not JSON, or invalid UTF-8.
    InvalidJson,
    /// JSON, but not an object.
    NotAnObject,
    /// Larger than the configured maximum.
    TooLarge,
    /// No event-time field.
    MissingTime,
    /// The event-time field could not be read in the topic's format.
    BadTime,
    /// More than the topic's `max_ahead` ahead of its partition's time,
    /// and the partition's next events did not confirm the jump.
    TooFarAhead,
    /// More than the topic's `max_ahead` ahead of the wall clock (`run`).
    AheadOfClock,
    /// It would open a bucket more than [`crate::pipeline::window::MAX_OPEN_BUCKETS`]
    /// past the oldest open one of its KPI: the topic's partitions are
    /// that far apart in event time.
    TooManyOpenBuckets,
}

impl RejectReason {
    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::TooLarge => "too_large",
            Self::MissingTime => "missing_time",
            Self::BadTime => "bad_time",
            Self::TooFarAhead => "too_far_ahead",
            Self::AheadOfClock => "ahead_of_clock",
            Self::TooManyOpenBuckets => "too_many_open_buckets",
        }
    }

    /// True for the reasons that mean "too far ahead" rather than
    /// "malformed".
    pub fn is_ahead(self) -> bool {
        matches!(
            self,
            Self::TooFarAhead | Self::AheadOfClock | Self::TooManyOpenBuckets
        )
    }

    /// What the reason means and what to do about it, for the log.
    pub fn explain(self) -> &'static str {
        match self {
            Self::InvalidJson => "not JSON (or not UTF-8)",
            Self::NotAnObject => "JSON, but not an object",
            Self::TooLarge => "larger than 1 MiB",
            Self::MissingTime => "no event-time field (the topic's time_field)",
            Self::BadTime => "event time not readable in the topic's time_format, or outside the years 1970-9999",
            Self::TooFarAhead => "more than the topic's max_ahead ahead of its partition's time, and the next events did not confirm the jump (a producer's clock is wrong?)",
            Self::AheadOfClock => "more than the topic's max_ahead ahead of this machine's clock (a producer's clock, or this one, is wrong?)",
            Self::TooManyOpenBuckets => "would open more buckets than a series may hold open: the topic's partitions are too far apart in event time",
        }
    }
}

/// Why a matching event's value was not aggregated. The `reason` label
/// of `kpiwatch_values_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadValue {
    /// The field is not in the event.
    Missing,
    /// JSON null.
    Null,
    /// A string where sum/avg/min/max need a number (`"12"` included).
    String,
    /// A boolean where sum/avg/min/max need a number.
    Boolean,
    /// An array.
    Array,
    /// An object.
    Object,
    /// A number that is not finite (the JSON reader refuses such numbers,
    /// so this stays at 0).
    NotFinite,
}

impl BadValue {
    /// Every reason, in label order.
    pub const ALL: [BadValue; 7] = [
        Self::Missing,
        Self::Null,
        Self::String,
        Self::Boolean,
        Self::Array,
        Self::Object,
        Self::NotFinite,
    ];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Null => "null",
            Self::String => "string",
            Self::Boolean => "boolean",
            Self::Array => "array",
            Self::Object => "object",
            Self::NotFinite => "not_finite",
        }
    }
}

/// Where an event came from, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Partition (0 for a replay file).
    pub partition: i32,
    /// Offset (line number for a replay file).
    pub offset: i64,
}

/// An event was refused.
pub struct EventRejected<'a> {
    /// Where it came from.
    pub origin: Origin<'a>,
    /// Why.
    pub reason: RejectReason,
}

impl EventRejected<'_> {
    /// Counts, and logs at most once per topic and reason every
    /// [`LOG_EVERY`].
    pub fn emit(&self, m: &Metrics) {
        let o = self.origin;
        if let Some(suppressed) = m.log_allowed(o.topic, self.reason.label()) {
            tracing::warn!(
                topic = o.topic,
                partition = o.partition,
                offset = o.offset,
                reason = self.reason.label(),
                suppressed,
                "event rejected: {}",
                self.reason.explain()
            );
        }
        m.events_rejected
            .with_label_values(&[o.topic, self.reason.label()])
            .inc();
    }
}

/// An event arrived after its bucket closed.
pub struct LateEvent<'a> {
    /// Where it came from.
    pub origin: Origin<'a>,
    /// Its event time, seconds.
    pub event_time: i64,
    /// The topic's event-time progress when it came, seconds.
    pub progress: Option<i64>,
}

impl LateEvent<'_> {
    /// Counts, and logs (late events come in bursts) at most once per
    /// topic every [`LOG_EVERY`].
    pub fn emit(&self, m: &Metrics) {
        let o = self.origin;
        if let Some(suppressed) = m.log_allowed(o.topic, "late") {
            tracing::warn!(
                topic = o.topic,
                partition = o.partition,
                offset = o.offset,
                event_time = self.event_time,
                progress = self.progress,
                suppressed,
                "late event dropped: its bucket had closed (raise the KPI's lateness if such delays are normal)"
            );
        }
        m.events_late.with_label_values(&[o.topic]).inc();
    }
}

/// A matching event's value could not be aggregated.
pub struct ValueSkipped<'a> {
    /// The KPI.
    pub kpi: &'a str,
    /// Why.
    pub reason: BadValue,
}

impl ValueSkipped<'_> {
    /// Logs at most once per KPI and reason every [`LOG_EVERY`]; the
    /// caller counts (into a counter it resolved once).
    pub fn log(&self, m: &Metrics) {
        if let Some(suppressed) = m.log_allowed(self.kpi, self.reason.label()) {
            tracing::warn!(
                kpi = self.kpi,
                reason = self.reason.label(),
                suppressed,
                "value skipped: the KPI's field is {} in a matching event, so the event is not aggregated",
                self.reason.label()
            );
        }
    }
}

/// Why a message was not taken into the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Received before a rebalance revoked its partition, recorded after:
    /// the partition's new owner reads it from the committed offset.
    Revoked,
    /// Counted already: a rebalance handed its partition back, and
    /// librdkafka reads it again from the committed offset.
    Redelivered,
    /// Stamped before the history end of a warm start (`kpiwatch warm`):
    /// the snapshot holds it already.
    BeforeHistory,
}

impl SkipReason {
    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Redelivered => "redelivered",
            Self::BeforeHistory => "before_history",
        }
    }
}

/// A message was skipped around a rebalance.
pub struct EventSkipped<'a> {
    /// Where it came from.
    pub origin: Origin<'a>,
    /// Why.
    pub reason: SkipReason,
}

impl EventSkipped<'_> {
    /// Logs (at debug: skips come in bursts after a rebalance) and counts.
    pub fn emit(&self, m: &Metrics) {
        let o = self.origin;
        tracing::debug!(
            topic = o.topic,
            partition = o.partition,
            offset = o.offset,
            reason = self.reason.label(),
            "message skipped"
        );
        m.events_skipped
            .with_label_values(&[o.topic, self.reason.label()])
            .inc();
    }
}

/// A receiver accepted a notification.
pub struct NotificationSent<'a> {
    /// Receiver name.
    pub receiver: &'a str,
    /// Notification id.
    pub id: &'a str,
    /// Seconds since the notification was created.
    pub latency: f64,
    /// Attempts it took.
    pub attempts: u32,
}

impl NotificationSent<'_> {
    /// Logs and counts.
    pub fn emit(&self, m: &Metrics) {
        tracing::info!(
            receiver = self.receiver,
            id = self.id,
            latency_ms = (self.latency * 1000.0).round(),
            attempts = self.attempts,
            "notification sent"
        );
        m.notifications_sent
            .with_label_values(&[self.receiver])
            .inc();
        m.delivery_latency
            .with_label_values(&[self.receiver])
            .observe(self.latency);
    }
}

/// A delivery attempt failed.
pub struct NotificationFailed<'a> {
    /// Receiver name.
    pub receiver: &'a str,
    /// Notification id.
    pub id: &'a str,
    /// What went wrong, in words.
    pub error: &'a dyn std::fmt::Display,
    /// Whether it will be retried, as the `kind` label says it:
    /// `transient` or `permanent`.
    pub kind: &'static str,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

impl NotificationFailed<'_> {
    /// Logs and counts.
    pub fn emit(&self, m: &Metrics) {
        tracing::warn!(
            receiver = self.receiver,
            id = self.id,
            attempts = self.attempts,
            error = %self.error,
            "notification delivery failed"
        );
        m.notifications_failed
            .with_label_values(&[self.receiver, self.kind])
            .inc();
    }
}

/// What the service writes durably before it may commit an offset (or, for
/// the alert log, writes for people). The `what` label of
/// `kpiwatch_state_write_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateWrite {
    /// The pipeline's state snapshot.
    Snapshot,
    /// A notification's outbox entry, or the outbox's ledger.
    Outbox,
    /// The notification dispatcher's state.
    NotifierState,
    /// A line of `service.alert_log`.
    AlertLog,
}

impl StateWrite {
    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Outbox => "outbox",
            Self::NotifierState => "notifier_state",
            Self::AlertLog => "alert_log",
        }
    }

    /// What it is, for people.
    pub fn name(self) -> &'static str {
        match self {
            Self::Snapshot => "state snapshot",
            Self::Outbox => "notification outbox",
            Self::NotifierState => "notifier state",
            Self::AlertLog => "alert log",
        }
    }

    /// What its failure means, for people.
    pub fn consequence(self) -> &'static str {
        match self {
            Self::Snapshot => "baselines and alert states go on in memory, but no offset is committed until a snapshot is written, and a restart resumes from the last one written",
            Self::Outbox => "the notification waits in memory and is written, then sent, as soon as the disk takes it; no offset is committed meanwhile, so a restart recreates it",
            Self::NotifierState => "no offset is committed until it is written",
            Self::AlertLog => "its lines wait in a buffer while it has room, then are lost; alerts and notifications are not affected",
        }
    }
}

/// A durable write failed.
pub struct StateWriteFailed<'a> {
    /// What.
    pub what: StateWrite,
    /// Why (the file and the OS error).
    pub error: &'a dyn std::fmt::Display,
}

impl StateWriteFailed<'_> {
    /// Counts, and logs at error at most once per kind every
    /// [`LOG_EVERY`] (failed writes are retried).
    pub fn emit(&self, m: &Metrics) {
        if let Some(suppressed) = m.log_allowed("state_write", self.what.label()) {
            tracing::error!(
                what = self.what.label(),
                error = %self.error,
                suppressed,
                "cannot write the {}: {}",
                self.what.name(),
                self.what.consequence()
            );
        }
        m.state_write_failures
            .with_label_values(&[self.what.label()])
            .inc();
    }
}

/// A durable write that had been failing succeeded.
pub struct StateWriteRecovered {
    /// What.
    pub what: StateWrite,
    /// Failed attempts before it.
    pub failures: u64,
}

impl StateWriteRecovered {
    /// Logs.
    pub fn emit(&self) {
        tracing::info!(
            what = self.what.label(),
            failures = self.failures,
            "{} written again after {} failed attempts",
            self.what.name(),
            self.failures
        );
    }
}

/// Why a notification was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Still undelivered after `give_up_after`.
    Expired,
    /// The receiver refused it for good.
    Rejected,
}

impl DropReason {
    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Rejected => "rejected",
        }
    }
}

/// A notification was given up.
pub struct NotificationDropped<'a> {
    /// Receiver name.
    pub receiver: &'a str,
    /// Notification id.
    pub id: &'a str,
    /// Why.
    pub reason: DropReason,
}

impl NotificationDropped<'_> {
    /// Logs (at error: someone did not get told) and counts.
    pub fn emit(&self, m: &Metrics) {
        tracing::error!(
            receiver = self.receiver,
            id = self.id,
            reason = self.reason.label(),
            "notification given up"
        );
        m.notifications_dropped
            .with_label_values(&[self.receiver, self.reason.label()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_logged_once_per_interval_with_what_was_left_out() {
        let mut l = LogLimiter::default();
        let t0 = Instant::now();
        let every = Duration::from_secs(10);
        assert_eq!(l.allow(t0, every), Some(0));
        for s in 1..10 {
            assert_eq!(l.allow(t0 + Duration::from_secs(s), every), None);
        }
        assert_eq!(l.allow(t0 + every, every), Some(9));
        assert_eq!(l.allow(t0 + every + Duration::from_secs(1), every), None);
        assert_eq!(l.allow(t0 + 3 * every, every), Some(1));
    }

    #[test]
    fn limits_are_kept_per_topic_and_reason() {
        let m = Metrics::new();
        assert_eq!(m.log_allowed("shop", "late"), Some(0));
        assert_eq!(m.log_allowed("shop", "late"), None);
        assert_eq!(m.log_allowed("shop", "too_far_ahead"), Some(0));
        assert_eq!(m.log_allowed("other", "late"), Some(0));
    }
}
