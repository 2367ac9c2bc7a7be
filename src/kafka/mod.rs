//! Kafka: the consumer, its group semantics, and at-least-once offsets.
//!
//! - [`KafkaContext`] — librdkafka callbacks: on a rebalance that revokes
//!   partitions, note the revocation in [`Revocations`] and commit what has
//!   been stored (the effects of those events are recorded); on
//!   assignment, mark the service ready; librdkafka statistics (every 5 s)
//!   feed the per-partition consumer-lag gauge. librdkafka's "all brokers
//!   down" marks Kafka unreachable ([`Health::kafka_unreachable`]) until
//!   the statistics show a broker up again or a message arrives.
//! - [`Revocations`] — which partitions a rebalance took away, and when, so
//!   the consume loop drops messages it received from them before the
//!   revocation but had not recorded yet (the new owner reads them).
//! - [`OffsetTracker`] — which offsets may be committed: an event's offset
//!   is stored only once every bucket it touched has closed and its alerts
//!   were written. Auto-commit then commits stored offsets only
//!   (`enable.auto.offset.store = false`). It also knows which offsets this
//!   process has already counted, for a partition that a rebalance hands
//!   back and librdkafka reads again from the committed offset. An event the
//!   pipeline holds (far ahead of its partition's time, until the jump is
//!   confirmed or refused) keeps the commit below it until it is settled,
//!   even when it is settled after later offsets.
//! - [`check_config`] — librdkafka's own checks of `[kafka.options]`, run
//!   by config validation (so by `kpiwatch check`) without connecting.
//! - [`start`] — where a partition without a committed offset starts
//!   (`kafka.start_from`, a warm snapshot's history end), applied to each
//!   assignment before librdkafka starts fetching.
//! - [`mock`] — the in-process mock cluster for the demo and tests.

pub mod mock;
pub mod start;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Statistics};

use crate::telemetry::{Metrics, StateWrite};

/// `[kafka]`, as validated (`config` builds it; defined here so that
/// this module does not import the config).
#[derive(Debug, Clone)]
pub struct Kafka {
    /// Bootstrap servers.
    pub brokers: String,
    /// Consumer group id.
    pub group_id: String,
    /// Topic for malformed events, if any.
    pub dead_letter_topic: Option<String>,
    /// Extra librdkafka properties, as written (numbers and booleans as
    /// text).
    pub options: BTreeMap<String, String>,
    /// librdkafka properties whose values are read from the environment
    /// when a client is made: property -> variable (`"sasl.password_env" =
    /// "VAR"`). Secrets are never in the file.
    pub options_from_env: BTreeMap<String, String>,
    /// Where a partition without a committed offset starts.
    pub start_from: start::StartFrom,
}

/// A map keyed by (topic index, partition), looked up for every message:
/// foldhash, as the pipeline's maps.
type PartitionMap<V> = HashMap<(usize, i32), V, foldhash::fast::RandomState>;

/// Shared health flags, read by `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    /// At least one partition is assigned to this instance.
    pub assigned: AtomicBool,
    /// The pipeline is running (state loaded, consuming).
    pub running: AtomicBool,
    /// Wall time (ms, the service's clock) when the loop last finished a
    /// batch, a tick or an assignment change.
    pub heartbeat_ms: AtomicI64,
    /// Batches the receiving thread has read that the loop has not taken.
    pub queued: AtomicI64,
    /// Messages on the broker the consumer has not read yet, over its
    /// partitions, from librdkafka's statistics (every 5 s): the high
    /// watermark minus the position. (Not the consumer-lag gauge, which
    /// counts from the committed offset: kpiwatch commits only what its
    /// closed buckets and snapshots cover, so that lag is never 0.)
    pub unread: AtomicI64,
    /// `service.stall_after` in milliseconds.
    pub stall_after_ms: AtomicI64,
    /// librdkafka reported every broker connection down, and neither its
    /// statistics nor a message have shown one up since. Nothing can be
    /// consumed, so the silence of the partitions says nothing about the
    /// shop: the service loop stops the wall clock from moving event time
    /// meanwhile.
    pub kafka_unreachable: AtomicBool,
    /// Durable writes failing now, with the error: the service runs on,
    /// but commits nothing until they succeed again. Set and cleared by
    /// the service loop ([`Health::write_failing`]). A std mutex: written
    /// on failures and recoveries, read by `/readyz`.
    failing_writes: Mutex<BTreeMap<StateWrite, String>>,
}

impl Health {
    /// Ready: running with partitions, and not stalled — the loop has
    /// finished something within `stall_after` of `now_ms`, or nothing
    /// waits for it. The error says why not.
    pub fn ready(&self, now_ms: i64) -> Result<(), String> {
        if !self.running.load(Ordering::Relaxed) {
            return Err("not ready: not consuming (starting or stopping)".into());
        }
        if self.kafka_unreachable.load(Ordering::Relaxed) {
            return Err("not ready: no Kafka broker reachable (librdkafka reports every broker connection down); consuming resumes when one is back, and no bucket closes on the wall clock meanwhile".into());
        }
        let failing = self
            .failing_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((what, error)) = failing.iter().next() {
            return Err(format!(
                "not ready: cannot write the {} ({error}): {}",
                what.name(),
                what.consequence()
            ));
        }
        drop(failing);
        if !self.assigned.load(Ordering::Relaxed) {
            return Err("not ready: no partitions assigned yet".into());
        }
        let quiet_ms = now_ms - self.heartbeat_ms.load(Ordering::Relaxed);
        let queued = self.queued.load(Ordering::Relaxed);
        let unread = self.unread.load(Ordering::Relaxed);
        if quiet_ms >= self.stall_after_ms.load(Ordering::Relaxed) && (queued > 0 || unread > 0) {
            return Err(format!(
                "not ready: no batch processed for {} s while {queued} batches are queued and {unread} messages are unread on the broker (stuck, or far behind: see the log and kpiwatch_processing_latency_seconds)",
                quiet_ms / 1000
            ));
        }
        Ok(())
    }
}

impl Health {
    /// Notes that writing `what` fails now with `error`, or (None) works.
    pub fn write_failing(&self, what: StateWrite, error: Option<String>) {
        let mut failing = self
            .failing_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match error {
            Some(e) => failing.insert(what, e),
            None => failing.remove(&what),
        };
    }
}

/// A change of the partitions this instance owns, for the consume loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// These (topic, partition) pairs were assigned.
    Assigned(Vec<(String, i32)>),
    /// These were revoked.
    Revoked(Vec<(String, i32)>),
}

/// librdkafka callbacks; see the module docs.
pub struct KafkaContext {
    metrics: Metrics,
    health: Arc<Health>,
    /// The callbacks run inside the consumer's poll; the receiving thread
    /// forwards what they send before the messages that follow.
    assignments: tokio::sync::mpsc::UnboundedSender<Assignment>,
    /// Told of a revocation before it commits, so that the consume loop,
    /// which may still hold messages of the revoked partitions, drops them.
    revocations: Arc<Revocations>,
    /// Where partitions without a committed offset start (a warm
    /// snapshot's history end); None: as librdkafka decides.
    starts: Option<Arc<start::Starts>>,
}

impl KafkaContext {
    /// A context reporting into `metrics` and `health`, and assignment
    /// changes into `assignments`.
    pub fn new(
        metrics: Metrics,
        health: Arc<Health>,
        assignments: tokio::sync::mpsc::UnboundedSender<Assignment>,
        revocations: Arc<Revocations>,
    ) -> Self {
        Self {
            metrics,
            health,
            assignments,
            revocations,
            starts: None,
        }
    }

    /// Places each assigned partition without a committed offset as
    /// `starts` says (see [`start::place`]).
    pub fn with_starts(mut self, starts: Arc<start::Starts>) -> Self {
        self.starts = Some(starts);
        self
    }
}

/// Revocations as the consume loop needs to see them, at once and not in
/// turn behind the messages it has queued: every rebalance that revokes
/// partitions starts a new epoch. Messages are received within an epoch;
/// one whose partition was revoked in a later epoch belongs to another
/// member now (which reads it again from the committed offset) and must
/// not be counted here.
#[derive(Debug, Default)]
pub struct Revocations {
    /// The current epoch; written only by the rebalance callback.
    epoch: AtomicU64,
    /// For each topic, partition -> epoch of its last revocation. A std
    /// mutex: the callback writes it rarely, the loop reads it only for
    /// messages received before the latest revocation.
    revoked: Mutex<HashMap<String, HashMap<i32, u64>>>,
}

impl Revocations {
    /// The current epoch: read it after receiving a message to learn the
    /// epoch the message was received in.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Starts a new epoch in which `list` is revoked.
    pub fn revoke(&self, list: &[(String, i32)]) {
        let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        let epoch = self.epoch.load(Ordering::Relaxed) + 1;
        for (topic, partition) in list {
            revoked
                .entry(topic.clone())
                .or_default()
                .insert(*partition, epoch);
        }
        self.epoch.store(epoch, Ordering::Release);
    }

    /// True if a message of `topic`/`partition` received in `epoch` must be
    /// dropped: the partition has been revoked since.
    pub fn revoked_since(&self, topic: &str, partition: i32, epoch: u64) -> bool {
        if epoch >= self.epoch() {
            return false;
        }
        let revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        revoked
            .get(topic)
            .and_then(|t| t.get(&partition))
            .is_some_and(|&at| at > epoch)
    }
}

fn pairs(list: &rdkafka::TopicPartitionList) -> Vec<(String, i32)> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ClientContext for KafkaContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown) {
            // Repeated at every reconnection attempt; the service loop logs
            // the outage once when it notices, and once when it ends.
            tracing::debug!(%reason, "librdkafka: all brokers down");
            self.health.kafka_unreachable.store(true, Ordering::Relaxed);
        } else {
            // What rdkafka's default does, through tracing.
            tracing::error!(%error, %reason, "librdkafka error");
        }
    }

    fn stats(&self, stats: Statistics) {
        // A broker connection up again ends an outage (logical brokers
        // such as the group coordinator ride on a real one's connection).
        if stats
            .brokers
            .values()
            .any(|b| b.state == "UP" && b.source != "logical" && b.source != "internal")
        {
            self.health
                .kafka_unreachable
                .store(false, Ordering::Relaxed);
        }
        let mut unread = 0;
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 {
                    continue;
                }
                if p.desired {
                    // Where reading stands: past the last message handed
                    // to the application, else where it starts.
                    let position = [p.app_offset, p.committed_offset, p.lo_offset]
                        .into_iter()
                        .find(|&o| o >= 0);
                    if let (Some(position), true) = (position, p.hi_offset >= 0) {
                        unread += (p.hi_offset - position).max(0);
                    }
                }
                if p.consumer_lag < 0 {
                    continue;
                }
                self.metrics
                    .consumer_lag
                    .with_label_values(&[topic, &partition.to_string()])
                    .set(p.consumer_lag);
            }
        }
        self.health.unread.store(unread, Ordering::Relaxed);
    }
}

impl ConsumerContext for KafkaContext {
    /// rdkafka's own rebalance (pre_rebalance, assign, post_rebalance),
    /// with the assignment's start offsets placed first (see
    /// [`start::place`]): librdkafka starts fetching at the offsets the
    /// assignment carries.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        tpl: &mut rdkafka::TopicPartitionList,
    ) {
        use rdkafka::consumer::RebalanceProtocol;
        use rdkafka::types::RDKafkaRespErr;
        let assigning = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        let revoking = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS;
        if assigning {
            if let Some(starts) = &self.starts {
                start::place(starts, consumer, tpl);
            }
        }
        let rebalance = if assigning {
            Rebalance::Assign(tpl)
        } else if revoking {
            Rebalance::Revoke(tpl)
        } else {
            let code: rdkafka::types::RDKafkaErrorCode = err.into();
            Rebalance::Error(rdkafka::error::KafkaError::Rebalance(code))
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let applied = match (assigning, cooperative) {
            (true, true) => consumer.incremental_assign(tpl),
            (true, false) => consumer.assign(tpl),
            (false, true) => consumer.incremental_unassign(tpl),
            (false, false) => consumer.unassign(),
        };
        if let Err(e) = applied {
            tracing::warn!(error = %e, assigning, "rebalance not applied");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let revoked = pairs(list);
            if let Some(starts) = &self.starts {
                for (topic, partition) in &revoked {
                    starts.disarm(topic, *partition);
                }
            }
            // First, so that the loop records nothing more from these
            // partitions that this commit does not cover.
            self.revocations.revoke(&revoked);
            // Offsets stored so far cover only recorded effects: commit them
            // before another member takes the partitions over.
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "commit on revoke (nothing stored yet?)");
            }
            tracing::info!(partitions = list.count(), "partitions revoked");
            let _ = self.assignments.send(Assignment::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(partitions = list.count(), "partitions assigned");
                let _ = self.assignments.send(Assignment::Assigned(pairs(list)));
                self.health
                    .assigned
                    .store(list.count() > 0, Ordering::Relaxed);
            }
            Rebalance::Revoke(_) => {
                let left = consumer.assignment().map(|a| a.count()).unwrap_or(0);
                self.health.assigned.store(left > 0, Ordering::Relaxed);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// A producer for `brokers` (the simulator), with `options` applied last.
pub fn producer(
    brokers: &str,
    options: &std::collections::BTreeMap<String, String>,
) -> KafkaResult<rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>> {
    let mut cc = base_config(brokers);
    cc.set("linger.ms", "5");
    with_options(&mut cc, options).create()
}

/// The service's producer (the dead-letter topic): `[kafka]` with its
/// options and the secrets they name in the environment.
pub fn service_producer(
    kafka: &Kafka,
) -> KafkaResult<rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>> {
    let mut cc = producer_config(kafka);
    with_secrets(&mut cc, kafka, |var| std::env::var(var).ok())?;
    cc.create()
}

fn producer_config(kafka: &Kafka) -> ClientConfig {
    let mut cc = base_config(&kafka.brokers);
    cc.set("linger.ms", "5");
    with_options(&mut cc, &kafka.options);
    cc
}

/// What every kpiwatch Kafka client shares: the brokers, librdkafka logs at
/// warning level, and SASL credentials from the environment
/// (`KPIWATCH_KAFKA_USERNAME`, `KPIWATCH_KAFKA_PASSWORD`), never from the
/// config file.
fn base_config(brokers: &str) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", brokers).set("log_level", "4");
    if let (Ok(user), Ok(pass)) = (
        std::env::var("KPIWATCH_KAFKA_USERNAME"),
        std::env::var("KPIWATCH_KAFKA_PASSWORD"),
    ) {
        cc.set("sasl.username", user).set("sasl.password", pass);
    }
    cc
}

/// Applies `[kafka.options]` last, so an operator can override any default.
fn with_options<'a>(
    cc: &'a mut ClientConfig,
    options: &std::collections::BTreeMap<String, String>,
) -> &'a mut ClientConfig {
    for (k, v) in options {
        cc.set(k, v);
    }
    cc
}

/// Sets the properties `[kafka.options]` takes from the environment
/// (`"sasl.password_env" = "VAR"`), each from `lookup(VAR)`. A variable
/// that is unset or empty stops the start, naming the variable (never a
/// value).
fn with_secrets(
    cc: &mut ClientConfig,
    kafka: &Kafka,
    lookup: impl Fn(&str) -> Option<String>,
) -> KafkaResult<()> {
    for (property, var) in &kafka.options_from_env {
        match lookup(var).filter(|v| !v.is_empty()) {
            Some(value) => {
                cc.set(property, value);
            }
            None => {
                return Err(rdkafka::error::KafkaError::ClientCreation(format!(
                    "[kafka.options] takes {property} from the environment variable {var}, which is not set; export it before starting kpiwatch"
                )))
            }
        }
    }
    Ok(())
}

/// librdkafka's refusal of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The property librdkafka names, when it names one of `[kafka.options]`
    /// (its own messages put property names in quotes or backticks).
    pub property: Option<String>,
    /// librdkafka's message.
    pub message: String,
}

/// A client context that says nothing: the clients [`check_config`] makes
/// exist only to be refused or dropped.
struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, _: &str) {}
    fn error(&self, _: rdkafka::error::KafkaError, _: &str) {}
}

/// Has librdkafka check the clients `run` would make from `kafka` (the
/// consumer, and the dead-letter producer when there is a dead-letter
/// topic), without connecting to anything.
///
/// Two steps, because librdkafka checks in two places: setting each
/// property (unknown names, values of the wrong type or out of range,
/// features this build lacks, such as SSL), then creating the client
/// (properties that contradict each other, SASL mechanisms without a
/// provider). The client is created with no bootstrap servers, so it has
/// no broker to connect to, and is destroyed at once: about half a
/// millisecond. (A `BaseConsumer` with servers connects to them as soon as
/// it is created, and waits up to 100 ms on close.) Properties taken from
/// the environment, and SASL credentials not set here, get a placeholder:
/// their values are the operator's secrets, in the environment `run` will
/// have, not necessarily this one.
pub fn check_config(kafka: &Kafka) -> Result<(), Refusal> {
    use rdkafka::client::Client;
    use rdkafka::types::RDKafkaType;

    let placeholder = |_: &str| Some("placeholder".to_string());
    let mut clients = vec![(consumer_config(kafka), RDKafkaType::RD_KAFKA_CONSUMER)];
    if kafka.dead_letter_topic.is_some() {
        clients.push((producer_config(kafka), RDKafkaType::RD_KAFKA_PRODUCER));
    }
    let refusal = |e: rdkafka::error::KafkaError| match e {
        rdkafka::error::KafkaError::ClientConfig(_, message, key, _) => Refusal {
            property: Some(key),
            message,
        },
        rdkafka::error::KafkaError::ClientCreation(message) => Refusal {
            property: named_property(kafka, &message),
            message,
        },
        other => Refusal {
            property: None,
            message: other.to_string(),
        },
    };
    for (mut cc, kind) in clients {
        with_secrets(&mut cc, kafka, placeholder).map_err(refusal)?;
        // SASL credentials come from the environment `run` gets, which may
        // not be this one's: librdkafka refuses SASL/PLAIN without them.
        for credential in ["sasl.username", "sasl.password"] {
            if cc.get(credential).is_none() {
                cc.set(credential, "placeholder");
            }
        }
        cc.create_native_config().map_err(refusal)?;
        cc.remove("bootstrap.servers");
        let native = cc.create_native_config().map_err(refusal)?;
        drop(Client::new(&cc, native, kind, Quiet).map_err(refusal)?);
    }
    Ok(())
}

/// The first property of `[kafka.options]` that `message` names.
fn named_property(kafka: &Kafka, message: &str) -> Option<String> {
    let properties = kafka.options.keys().chain(kafka.options_from_env.keys());
    properties
        .filter_map(|p| {
            ["`", "\""]
                .iter()
                .filter_map(|q| message.find(&format!("{q}{p}{q}")))
                .min()
                .map(|at| (at, p))
        })
        .min()
        .map(|(_, p)| p.clone())
}

/// Queues `record`, waiting while the producer's local queue is full (the
/// producer's own thread drains it) instead of failing.
pub fn send_waiting<C: rdkafka::producer::ProducerContext>(
    producer: &rdkafka::producer::ThreadedProducer<C>,
    mut record: rdkafka::producer::BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
) -> KafkaResult<()> {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                std::thread::sleep(std::time::Duration::from_millis(1));
                record = r;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// The consumer of `topics`, in `kafka`'s consumer group.
pub fn consumer(
    kafka: &Kafka,
    topics: &[&str],
    context: KafkaContext,
) -> KafkaResult<StreamConsumer<KafkaContext>> {
    let mut cc = consumer_config(kafka);
    with_secrets(&mut cc, kafka, |var| std::env::var(var).ok())?;
    let consumer: StreamConsumer<KafkaContext> = cc.create_with_context(context)?;
    consumer.subscribe(topics)?;
    Ok(consumer)
}

/// The consumer's configuration: kpiwatch's settings, then
/// `[kafka.options]` (without the secrets from the environment).
fn consumer_config(kafka: &Kafka) -> ClientConfig {
    let mut cc = base_config(&kafka.brokers);
    cc.set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", kafka.start_from.auto_offset_reset())
        .set("statistics.interval.ms", "5000")
        // librdkafka's default waits 1 s after its queue fills (100,000
        // messages), which caps catching up on a backlog at ~0.15 M msg/s
        // here (benches/kafka_e2e.rs); 20 ms keeps the fetcher busy.
        .set("fetch.queue.backoff.ms", "20");
    with_options(&mut cc, &kafka.options);
    cc
}

/// Offsets that may be committed; see the module docs.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: PartitionMap<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    /// (first offset, event-time at which it and everything up to the next
    /// entry is closed). Close times increase along the queue: a new entry
    /// is pushed only when an event needs a later close time than all
    /// before it, so the front entry always bounds what may be committed.
    queue: VecDeque<(i64, i64)>,
    /// One past the newest offset seen.
    next: i64,
    /// The offset last stored.
    stored: i64,
    /// Assigned to this instance now: only then may its offsets be stored.
    assigned: bool,
    /// Revoked with events still in open buckets, then assigned again, and
    /// no new message read since: librdkafka reads it again from the
    /// committed offset, and offsets below `next` are already counted.
    handed_back: bool,
    /// Offsets read but not counted yet: held by the pipeline (or dropped
    /// with the partition's revocation while held). Nothing at or past the
    /// smallest is committed, and none is "already counted". A handful at
    /// most.
    held: Vec<i64>,
}

impl OffsetTracker {
    /// Notes an event at `offset` whose effects are recorded once the
    /// topic's progress reaches `close_at` (None: recorded already, e.g. a
    /// rejected event).
    pub fn track(&mut self, topic: usize, partition: i32, offset: i64, close_at: Option<i64>) {
        let p = Self::pending(&mut self.partitions, topic, partition, offset);
        if let Some(k) = p.held.iter().position(|&h| h == offset) {
            // A held event settled, after later offsets were tracked: its
            // entry goes where its offset is, unless the entry before it
            // closes no sooner (and so covers it already).
            p.held.swap_remove(k);
            if let Some(c) = close_at {
                let at = p.queue.partition_point(|&(first, _)| first < offset);
                if at == 0 || p.queue[at - 1].1 < c {
                    p.queue.insert(at, (offset, c));
                }
            }
            p.next = p.next.max(offset + 1);
            return;
        }
        if p.handed_back {
            p.handed_back = false;
            if offset > p.next {
                // Another member read the partition meanwhile and committed
                // up to here: the events still open here are no longer
                // this instance's to commit.
                p.queue.clear();
                p.stored = offset;
            }
        }
        if let Some(c) = close_at {
            if p.queue.back().is_none_or(|&(_, last)| c > last) {
                p.queue.push_back((offset, c));
            }
        }
        p.next = p.next.max(offset + 1);
    }

    /// Notes an event at `offset` that the pipeline holds: nothing from it
    /// on is committed until [`OffsetTracker::track`] is told what became
    /// of it.
    pub fn hold(&mut self, topic: usize, partition: i32, offset: i64) {
        let p = Self::pending(&mut self.partitions, topic, partition, offset);
        p.held.push(offset);
    }

    fn pending(
        partitions: &mut PartitionMap<Pending>,
        topic: usize,
        partition: i32,
        offset: i64,
    ) -> &mut Pending {
        partitions
            .entry((topic, partition))
            .or_insert_with(|| Pending {
                stored: offset,
                assigned: true,
                ..Pending::default()
            })
    }

    /// True if this process has counted `offset` already: the partition
    /// was revoked while some of its events were in open buckets, handed
    /// back, and is read again from the committed offset. Such a message
    /// must be skipped, or its open bucket counts it twice.
    pub fn already_counted(&self, topic: usize, partition: i32, offset: i64) -> bool {
        self.partitions
            .get(&(topic, partition))
            .is_some_and(|p| p.handed_back && offset < p.next && !p.held.contains(&offset))
    }

    /// Offsets to store now that `topic`'s progress is `progress`:
    /// `(partition, offset)` for every assigned partition whose commit
    /// point moved.
    pub fn release(&mut self, topic: usize, progress: i64, out: &mut Vec<(i32, i64)>) {
        for (&(t, partition), p) in &mut self.partitions {
            if t != topic || !p.assigned {
                continue;
            }
            while p.queue.front().is_some_and(|&(_, c)| c <= progress) {
                p.queue.pop_front();
            }
            let mut commit = p.queue.front().map_or(p.next, |&(first, _)| first);
            if let Some(&held) = p.held.iter().min() {
                commit = commit.min(held);
            }
            if commit > p.stored {
                p.stored = commit;
                out.push((partition, commit));
            }
        }
    }

    /// The partition was taken away. It is forgotten unless some of its
    /// events are in buckets still open here: then what was read is kept,
    /// for [`OffsetTracker::already_counted`] if it comes back.
    pub fn revoke(&mut self, topic: usize, partition: i32) {
        let key = (topic, partition);
        match self.partitions.get_mut(&key) {
            Some(p) if !p.queue.is_empty() => p.assigned = false,
            // Held events were dropped with the partition: read again by
            // whoever gets it.
            _ => {
                self.partitions.remove(&key);
            }
        }
    }

    /// The partition was assigned (again).
    pub fn assign(&mut self, topic: usize, partition: i32) {
        if let Some(p) = self.partitions.get_mut(&(topic, partition)) {
            p.assigned = true;
            p.handed_back = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka_with_secret(var: &str) -> Kafka {
        Kafka {
            brokers: "127.0.0.1:9".into(),
            group_id: "g".into(),
            dead_letter_topic: None,
            options: Default::default(),
            options_from_env: [("sasl.password".to_string(), var.to_string())].into(),
            start_from: Default::default(),
        }
    }

    #[test]
    fn a_secret_option_is_read_from_its_variable_when_a_client_is_made() {
        let kafka = kafka_with_secret("KAFKA_PW");
        let mut cc = consumer_config(&kafka);
        with_secrets(&mut cc, &kafka, |v| {
            (v == "KAFKA_PW").then(|| "s3cret".into())
        })
        .unwrap();
        assert_eq!(cc.get("sasl.password"), Some("s3cret"));
    }

    #[test]
    fn an_unset_secret_variable_stops_the_start_naming_the_variable() {
        let kafka = kafka_with_secret("KAFKA_PW");
        let mut cc = consumer_config(&kafka);
        let err = with_secrets(&mut cc, &kafka, |_| Some(String::new()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("KAFKA_PW") && err.contains("not set") && err.contains("sasl.password"),
            "{err}"
        );
    }

    #[test]
    fn librdkafka_names_the_refused_property_among_the_options() {
        let mut kafka = kafka_with_secret("KAFKA_PW");
        kafka
            .options
            .insert("fetch.max.bytes".into(), "1000".into());
        kafka
            .options
            .insert("message.max.bytes".into(), "100000".into());
        let refusal = check_config(&kafka).unwrap_err();
        assert_eq!(
            refusal.property.as_deref(),
            Some("fetch.max.bytes"),
            "{refusal:?}"
        );
    }

    fn released(t: &mut OffsetTracker, progress: i64) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        t.release(0, progress, &mut out);
        out.sort();
        out
    }

    #[test]
    fn an_offset_is_released_only_when_its_bucket_has_closed() {
        let mut t = OffsetTracker::default();
        t.track(0, 0, 10, Some(100));
        t.track(0, 0, 11, Some(100));
        t.track(0, 0, 12, Some(200));
        assert_eq!(released(&mut t, 99), vec![]);
        assert_eq!(released(&mut t, 100), vec![(0, 12)]);
        assert_eq!(released(&mut t, 150), vec![]);
        assert_eq!(released(&mut t, 200), vec![(0, 13)]);
    }

    #[test]
    fn an_out_of_order_event_never_lets_the_commit_pass_an_open_bucket() {
        let mut t = OffsetTracker::default();
        t.track(0, 0, 0, Some(200));
        // Offset 1 belongs to an earlier bucket: it is covered by offset 0's
        // entry, which closes later.
        t.track(0, 0, 1, Some(100));
        assert_eq!(released(&mut t, 150), vec![]);
        assert_eq!(released(&mut t, 200), vec![(0, 2)]);
    }

    #[test]
    fn rejected_events_are_committable_at_once_when_nothing_is_open() {
        let mut t = OffsetTracker::default();
        t.track(0, 3, 40, None);
        t.track(0, 3, 41, None);
        assert_eq!(released(&mut t, 0), vec![(3, 42)]);
    }

    #[test]
    fn a_partition_handed_back_skips_what_was_counted_and_commits_nothing_past_an_open_bucket() {
        let mut t = OffsetTracker::default();
        t.track(0, 0, 10, Some(100));
        t.track(0, 0, 11, Some(200));
        t.revoke(0, 0);
        // While revoked, nothing of it is stored.
        assert_eq!(released(&mut t, 100), vec![]);
        t.assign(0, 0);
        // Read again from the committed offset 10.
        assert!(t.already_counted(0, 0, 10));
        assert!(t.already_counted(0, 0, 11));
        assert!(!t.already_counted(0, 0, 12));
        t.track(0, 0, 12, Some(200));
        assert!(
            !t.already_counted(0, 0, 11),
            "only right after the hand-back"
        );
        assert_eq!(released(&mut t, 150), vec![(0, 11)]);
        assert_eq!(released(&mut t, 200), vec![(0, 13)]);
    }

    #[test]
    fn a_partition_read_elsewhere_meanwhile_starts_from_where_the_other_member_left_it() {
        let mut t = OffsetTracker::default();
        t.track(0, 0, 10, Some(100));
        t.revoke(0, 0);
        t.assign(0, 0);
        t.track(0, 0, 500, Some(900));
        assert!(!t.already_counted(0, 0, 20));
        // Never back to offset 10, which the other member committed past.
        assert_eq!(released(&mut t, 100), vec![]);
        assert_eq!(released(&mut t, 900), vec![(0, 501)]);
    }

    #[test]
    fn a_partition_revoked_with_nothing_open_is_forgotten() {
        let mut t = OffsetTracker::default();
        t.track(0, 0, 10, None);
        t.revoke(0, 0);
        t.assign(0, 0);
        assert!(!t.already_counted(0, 0, 5));
    }

    #[test]
    fn a_message_received_before_its_partition_was_revoked_is_dropped() {
        let r = Revocations::default();
        let before = r.epoch();
        r.revoke(&[("shop".to_string(), 1)]);
        assert!(r.revoked_since("shop", 1, before));
        assert!(!r.revoked_since("shop", 0, before));
        assert!(!r.revoked_since("other", 1, before));
        // Received after the revocation (the partition came back).
        assert!(!r.revoked_since("shop", 1, r.epoch()));
        let later = r.epoch();
        r.revoke(&[("shop".to_string(), 0)]);
        assert!(!r.revoked_since("shop", 1, later));
        assert!(r.revoked_since("shop", 0, later));
    }

    #[test]
    fn a_held_event_keeps_the_commit_below_it_until_it_is_settled_after_later_offsets() {
        let mut t = OffsetTracker::default();
        t.track(0, 0, 9, Some(100));
        t.hold(0, 0, 10);
        // A later offset is refused outright (ahead of the wall clock)
        // while 10 is held.
        t.track(0, 0, 11, None);
        assert_eq!(released(&mut t, 100), vec![(0, 10)]);
        assert_eq!(released(&mut t, 10_000), vec![], "10 is still held");
        assert!(!t.already_counted(0, 0, 10));
        // The jump is confirmed: 10 counts, in a bucket closing at 500.
        t.track(0, 0, 10, Some(500));
        assert_eq!(released(&mut t, 400), vec![]);
        assert_eq!(released(&mut t, 500), vec![(0, 12)]);
    }

    #[test]
    fn a_held_event_settled_as_refused_releases_the_commit_at_once() {
        let mut t = OffsetTracker::default();
        t.hold(0, 0, 3);
        t.track(0, 0, 4, Some(100));
        t.track(0, 0, 3, None);
        assert_eq!(released(&mut t, 100), vec![(0, 5)]);
    }

    #[test]
    fn readiness_fails_only_when_nothing_was_finished_for_stall_after_while_messages_wait() {
        let h = Health::default();
        assert!(h.ready(0).is_err(), "not running yet");
        h.running.store(true, Ordering::Relaxed);
        h.assigned.store(true, Ordering::Relaxed);
        h.stall_after_ms.store(60_000, Ordering::Relaxed);
        h.heartbeat_ms.store(1_000, Ordering::Relaxed);
        // Quiet for an hour with nothing to do: ready.
        assert_eq!(h.ready(3_600_000), Ok(()));
        // Messages unread on the broker, but the loop finished something
        // 59 s ago: still ready.
        h.unread.store(5, Ordering::Relaxed);
        assert_eq!(h.ready(60_000), Ok(()));
        let why = h.ready(61_000).unwrap_err();
        assert!(why.contains("no batch processed for 60 s"), "{why}");
        h.unread.store(0, Ordering::Relaxed);
        h.queued.store(1, Ordering::Relaxed);
        assert!(h.ready(61_000).is_err(), "a batch waits in the channel");
        h.heartbeat_ms.store(61_000, Ordering::Relaxed);
        assert_eq!(h.ready(61_000), Ok(()));
    }

    #[test]
    fn partitions_are_released_independently() {
        let mut t = OffsetTracker::default();
        t.track(0, 0, 5, Some(100));
        t.track(0, 1, 7, Some(300));
        assert_eq!(released(&mut t, 100), vec![(0, 6)]);
        assert_eq!(released(&mut t, 300), vec![(1, 8)]);
    }
}
