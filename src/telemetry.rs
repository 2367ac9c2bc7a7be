//! Operational events: one small struct per thing worth counting or logging,
//! whose `emit()` logs once and bumps its Prometheus metric, so a log line
//! and its counter can never disagree.
//!
//! [`Metrics`] owns a registry (one per pipeline, so tests read their own
//! counters); `/metrics` renders it. Label sets are bounded: topics, KPIs
//! and partitions come from config and Kafka, reasons are enums.

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric kpiwatch exports.
#[derive(Clone)]
pub struct Metrics {
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
    /// Alert transitions, by KPI and status (firing, resolved).
    pub alert_transitions: IntCounterVec,
    /// Matching events whose aggregated field was missing or not a number.
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
                "Alert transitions.",
                &["kpi", "status"],
            ),
            values_skipped: counter(
                "kpiwatch_values_skipped_total",
                "Matching events whose aggregated field was missing or not a number.",
                &["kpi"],
            ),
            consumer_lag: gauge(
                "kpiwatch_consumer_lag_messages",
                "Messages between the partition's high watermark and the consumer's position.",
                &["topic", "partition"],
            ),
            processing_latency,
            registry,
        }
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
    /// Event time too far ahead of the stream.
    TooFarAhead,
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
    /// Logs and counts.
    pub fn emit(&self, m: &Metrics) {
        let o = self.origin;
        tracing::warn!(
            topic = o.topic,
            partition = o.partition,
            offset = o.offset,
            reason = self.reason.label(),
            "event rejected"
        );
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
}

impl LateEvent<'_> {
    /// Logs (at debug: late events come in bursts) and counts.
    pub fn emit(&self, m: &Metrics) {
        let o = self.origin;
        tracing::debug!(
            topic = o.topic,
            partition = o.partition,
            offset = o.offset,
            event_time = self.event_time,
            "late event dropped"
        );
        m.events_late.with_label_values(&[o.topic]).inc();
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
}

impl SkipReason {
    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Redelivered => "redelivered",
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
    /// What went wrong.
    pub error: &'a crate::notify::DeliveryError,
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
            .with_label_values(&[self.receiver, self.error.label()])
            .inc();
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
