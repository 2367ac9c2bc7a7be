//! `kpiwatch run`: the service. A thin async shell around the synchronous
//! [`Pipeline`]: a receiving thread (`receive`) polls Kafka and reads
//! (parses, routes) messages into batches, and one `tokio::select!` loop
//! takes those batches and the assignment changes, in order, an idle tick
//! (which lets the wall clock close buckets of quiet topics) and the
//! shutdown future; the HTTP endpoints run beside it. The loop alone
//! records, judges and decides offsets; it drops messages of a partition
//! revoked since they were received, and what a partition handed back by
//! a rebalance re-delivers ([`Revocations`], [`OffsetTracker`]).
//!
//! Per message: record it, and when its event time reaches the topic's next
//! bucket close, advance the pipeline and write the alert transitions
//! (alert log, log, observers). Offsets whose buckets have closed are held
//! until the next state snapshot (every `service.snapshot_interval`) is on
//! disk, and only then stored for commit ([`checkpoints`], the
//! runtime-free bookkeeping of which and when): a restart resumes from the
//! snapshot with baselines and alert states, re-reads the open buckets'
//! events, and treats events of buckets the snapshot closed as late.
//! Shutdown writes a snapshot, commits, leaves the group and stops the HTTP
//! server; open buckets are not flushed — their events are read again after
//! a restart. The shutdown future is watched by a task of its own, which
//! raises a flag the loop reads between messages and the pipeline between
//! chunks of judging, so a stop request is honoured within one chunk even
//! in a burst of millions of closed buckets. A stop that interrupts judging
//! writes no snapshot: the restart resumes from the last one and reads the
//! events behind it again, as after a crash.
//!
//! `/readyz` fails when the loop has finished nothing (batch, tick,
//! assignment) for `service.stall_after` while messages wait: batches
//! queued by the receiving thread, or messages on the broker that the
//! consumer has not read ([`Health`]).
//!
//! Faults it survives without stopping:
//!
//! - **Kafka unreachable** (librdkafka reports every broker down): the
//!   loop lets the wall clock close no bucket until a broker is back (the
//!   partitions are silent because of the outage, not the shop), then
//!   counts every partition as heard from at that moment; `/readyz` fails
//!   meanwhile. Events that waited in producers arrive and count.
//! - **A durable write failing** (a full disk; writes go through the
//!   [`Storage`] in [`Options`]): a snapshot that cannot be written is
//!   tried again at the next interval, and notifications the outbox
//!   cannot take wait in the notifier, which tries again every second.
//!   Consuming, judging and alerting go on, but no offset is stored while
//!   either fails, so what a restart reads again covers everything not
//!   on disk. Each failure is logged and counted
//!   (`kpiwatch_state_write_failures_total{what}`), and `/readyz` fails
//!   until the write succeeds. A full alert log only loses its lines.

mod checkpoints;

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_core::Stream;
use rdkafka::consumer::{CommitMode, Consumer, MessageStream, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use tokio::sync::{mpsc, oneshot};

use crate::alert::Transition;
use crate::clock::Clock;
use crate::config::Config;
use crate::durable::{Disk, Storage};
use crate::kafka::{self, Health, KafkaContext, OffsetTracker, Revocations};
use crate::pipeline::read::{ReadBatch, Reader};
pub use crate::pipeline::Summary;
use crate::pipeline::{snapshot, Outcome, Pipeline, Settled};
use crate::telemetry::{
    EventSkipped, Metrics, Origin, RejectReason, SkipReason, StateWrite, StateWriteFailed,
    StateWriteRecovered,
};
use checkpoints::Checkpoints;

/// A judged bucket as observers see it: KPI name, series key, bucket
/// start (epoch seconds), value.
pub type JudgedBucket = (String, String, i64, Option<f64>);

/// How the service is wired, beyond its config.
pub struct Options {
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
    /// Receives every alert transition (the demo prints them; tests read
    /// them).
    pub observer: Option<mpsc::UnboundedSender<Transition>>,
    /// Receives every judged bucket (KPI name, series key, start, value):
    /// for tests and debugging.
    pub buckets: Option<mpsc::UnboundedSender<JudgedBucket>>,
    /// Told after each state snapshot is on disk (tests wait on it).
    pub snapshots: Option<mpsc::UnboundedSender<()>>,
    /// Receives the HTTP server's bound address (useful with port 0).
    pub listening: Option<oneshot::Sender<SocketAddr>>,
    /// How often idle partitions and quiet topics are checked.
    pub tick: Duration,
    /// Metrics to count into (a fresh registry if None).
    pub metrics: Option<Metrics>,
    /// Receives the notifier's outbox backlog (the demo and tests wait for
    /// deliveries with it).
    pub backlog: Option<oneshot::Sender<Arc<crate::notify::deliver::Backlog>>>,
    /// Where the snapshot, the outbox and the notifier's state are written
    /// (tests fill it like a full disk).
    pub storage: Arc<dyn Storage>,
    /// The configuration file, read again by a reload (`POST
    /// /api/v1/reload`, SIGHUP); without one a reload is refused.
    pub config_path: Option<std::path::PathBuf>,
    /// Reload on SIGHUP (the binary; a test process leaves it off).
    pub reload_on_hangup: bool,
}

impl Options {
    /// Production wiring: system clock, 1 s tick.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            observer: None,
            buckets: None,
            snapshots: None,
            listening: None,
            tick: Duration::from_secs(1),
            metrics: None,
            backlog: None,
            storage: Arc::new(Disk),
            config_path: None,
            reload_on_hangup: false,
        }
    }
}

/// Errors that stop the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The HTTP address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Kafka refused the configuration.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The state snapshot could not be read or written.
    #[error(transparent)]
    Snapshot(#[from] crate::pipeline::snapshot::SnapshotError),
    /// The notifier could not start or keep an alert.
    #[error("notifications: {0}")]
    Notify(#[from] crate::notify::notifier::NotifyError),
    /// The silences could not be read.
    #[error("silences: {0}")]
    Silences(String),
    /// The alert feedback could not be read.
    #[error(transparent)]
    Feedback(#[from] crate::feedback::store::FeedbackError),
    /// The HTTP API's tokens cannot be used.
    #[error(transparent)]
    Access(#[from] crate::http::access::AccessError),
    /// A thread of the service (receiving, HTTP, shutdown watch) could not
    /// be started.
    #[error("cannot start a thread of the service (out of memory or threads?): {0}")]
    Thread(std::io::Error),
    /// The reload metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(String),
    /// The alert log could not be opened.
    #[error("alert log {path}: {source}")]
    AlertLog {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs the service until `shutdown` completes.
pub async fn run(
    config: Config,
    mut options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Summary, ServiceError> {
    let metrics = options.metrics.clone().unwrap_or_default();
    let health = Arc::new(Health::default());
    health.stall_after_ms.store(
        config.service.stall_after.as_millis() as i64,
        Ordering::Relaxed,
    );
    let watch = watch_shutdown(shutdown)?;
    let (listener, bound, access) = bind_api(&config)?;
    if let Some(tx) = options.listening.take() {
        let _ = tx.send(bound);
    }
    let silences = load_silences(&config)?;
    let notifier = crate::notify::notifier::Notifier::start_on(
        options.storage.clone(),
        &config.notify,
        &config.service.state_dir,
        silences.clone(),
        options.clock.clone(),
        metrics.clone(),
    )?;
    if let Some(tx) = options.backlog.take() {
        let _ = tx.send(notifier.backlog());
    }
    let feedback = crate::feedback::api::Feedback::load(
        &config.service.state_dir,
        config.notify.external_url.as_deref(),
        config.notify.feedback_links.as_ref(),
    )?;
    // Reloads: asked by the API and SIGHUP, applied by the loop.
    let (reload_tx, mut reloads) = mpsc::channel(crate::reload::QUEUE);
    let access = Arc::new(crate::http::access::LiveAccess::new(Arc::new(access)));
    let endpoints = crate::http::endpoints(metrics.clone(), health.clone(), options.clock.clone())
        .merge(crate::notify::silence::api(
            silences.clone(),
            options.clock.clone(),
        ))
        .merge(crate::feedback::api::api(
            feedback.clone(),
            options.clock.clone(),
            &metrics,
        ))
        .merge(crate::reload::api(reload_tx.clone()));
    let http = start_api(
        listener,
        endpoints,
        access.clone(),
        config.service.api.tls.clone(),
    )?;

    let alert_log = match &config.service.alert_log {
        Some(path) => Some(AlertLog::open(path)?),
        None => None,
    };
    let kafka = start_kafka(&config, &metrics, &health)?;
    let tls_on = config.service.api.tls.is_some();
    let state_dir = config.service.state_dir.clone();
    let snapshot_every = config.service.snapshot_interval.as_secs() as i64;
    let mut pipeline = restore_pipeline(config, &state_dir, &metrics, &kafka.starts)?;
    if options.buckets.is_some() {
        pipeline.tap_buckets();
    }
    pipeline.interrupt_on(watch.stop.clone());
    let readers = Arc::new(crate::reload::Readers::new(pipeline.reader()));
    let live = crate::reload::Live {
        path: options.config_path.clone(),
        readers: readers.clone(),
        access,
        bound,
        tls: tls_on,
        silences,
        health: health.clone(),
        clock: options.clock.clone(),
        metrics: crate::reload::ReloadMetrics::register(&metrics.registry, options.clock.now())
            .map_err(|e| ServiceError::Metrics(e.to_string()))?,
    };
    // Ends when `_hangups_watched` drops, however `run` returns.
    let _hangups_watched = options
        .reload_on_hangup
        .then(|| watch_hangups(reload_tx.clone()))
        .transpose()?;
    drop(reload_tx);
    let mut receiving = start_receiving(
        kafka.consumer.clone(),
        readers,
        kafka.revocations.clone(),
        kafka.assignments,
        health.clone(),
        kafka.starts,
    )?;
    let mut core = Core::new(
        pipeline,
        notifier,
        feedback,
        alert_log,
        kafka.dead_letters,
        Checkpoints::new(options.clock.now(), snapshot_every),
    );
    let shell = Shell {
        health: &health,
        options: &options,
        consumer: &kafka.consumer,
        topics: &kafka.topics,
        state_dir: &state_dir,
        revocations: &kafka.revocations,
    };
    main_loop(
        &mut core,
        &shell,
        &watch,
        &mut receiving,
        &mut reloads,
        &live,
        &metrics,
    )
    .await;
    Ok(shut_down(core, &shell, receiving, http).await)
}

/// The silences in `service.state_dir`, each kept no further ahead than
/// `silence_max_ahead`. Returns the store, which the notifier, the API and
/// a reload share.
fn load_silences(
    config: &Config,
) -> Result<Arc<std::sync::Mutex<crate::notify::silence::SilenceStore>>, ServiceError> {
    let silences_path = config
        .service
        .state_dir
        .join(crate::notify::notifier::SILENCES_DIR);
    Ok(Arc::new(std::sync::Mutex::new(
        crate::notify::silence::SilenceStore::load(&silences_path)
            .map_err(|e| ServiceError::Silences(e.to_string()))?
            .with_max_ahead(config.service.api.silence_max_ahead),
    )))
}

/// The HTTP server's thread (see [`start_api`]).
struct HttpServer {
    thread: std::thread::JoinHandle<()>,
    /// Asks the server to stop (it lets requests in progress finish).
    stopper: oneshot::Sender<()>,
}

impl HttpServer {
    /// Stops the server and waits for its thread to end.
    async fn stop(self) {
        stop_thread(self.stopper, self.thread).await;
    }
}

/// Asks a thread of [`on_own_thread`] to stop through `stopper` and waits
/// for it to end, without blocking the runtime.
async fn stop_thread(stopper: oneshot::Sender<()>, thread: std::thread::JoinHandle<()>) {
    let _ = stopper.send(());
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
}

/// Serves `endpoints` on `listener`, behind the access checks of `access`
/// (and over TLS with `tls`). On a thread of its own, so that /readyz
/// answers (and says so) while the loop is stuck in a long burst of work.
/// Returns the server, for the shutdown to stop.
fn start_api(
    listener: std::net::TcpListener,
    endpoints: crate::http::Endpoints,
    access: Arc<crate::http::access::LiveAccess>,
    tls: Option<crate::http::tls::TlsIdentity>,
) -> Result<HttpServer, ServiceError> {
    let (stopper, http_stopped) = oneshot::channel::<()>();
    let app = crate::http::router_live(endpoints, access);
    let thread = on_own_thread("kpiwatch-http", async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "HTTP server failed to start");
                return;
            }
        };
        let stopped = async {
            let _ = http_stopped.await;
        };
        if let Err(e) = crate::http::serve(listener, app, tls.as_ref(), stopped).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    })?;
    Ok(HttpServer { thread, stopper })
}

/// Kafka as the service uses it (see [`start_kafka`]).
struct Consuming {
    /// Subscribed to every topic of the config.
    consumer: Arc<StreamConsumer<KafkaContext>>,
    /// The topics' names, in the config's order: a topic's index in the
    /// pipeline is its index here.
    topics: Vec<String>,
    /// Assignment changes, queued by the rebalance callback for the
    /// receiving thread.
    assignments: mpsc::UnboundedReceiver<kafka::Assignment>,
    /// Revocation epochs, counted by the rebalance callback.
    revocations: Arc<Revocations>,
    /// Where partitions without a committed offset start: set from a warm
    /// snapshot's history (see [`restore_pipeline`]) before the receiving
    /// thread first polls.
    starts: Arc<kafka::start::Starts>,
    /// The dead-letter producer, with `kafka.dead_letter_topic`.
    dead_letters: Option<DeadLetters>,
}

/// Creates the consumer, subscribed to the config's topics, with the
/// rebalance context that queues assignment changes, counts revocations,
/// places partitions without a committed offset and reports Kafka's state
/// into `health`; and the dead-letter producer, if one is configured.
/// Returns them with what the context shares with the service.
fn start_kafka(
    config: &Config,
    metrics: &Metrics,
    health: &Arc<Health>,
) -> Result<Consuming, ServiceError> {
    let (assignments_tx, assignments) = mpsc::unbounded_channel();
    let revocations = Arc::new(Revocations::default());
    let starts = Arc::new(kafka::start::Starts::new(
        config.kafka.start_from,
        metrics.clone(),
    ));
    let context = KafkaContext::new(
        metrics.clone(),
        health.clone(),
        assignments_tx,
        revocations.clone(),
    )
    .with_starts(starts.clone());
    let topics: Vec<String> = config.topics.iter().map(|t| t.name.clone()).collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let consumer = Arc::new(kafka::consumer(&config.kafka, &names, context)?);
    let dead_letters = match &config.kafka.dead_letter_topic {
        Some(topic) => Some(DeadLetters::new(config, topic)?),
        None => None,
    };
    Ok(Consuming {
        consumer,
        topics,
        assignments,
        revocations,
        starts,
        dead_letters,
    })
}

/// The pipeline on `config`, with the learned state of the last snapshot
/// in `state_dir` if there is one; after a warm start (`kpiwatch warm`)
/// it also tells `starts` where each topic's history ends. Returns the
/// pipeline.
fn restore_pipeline(
    config: Config,
    state_dir: &std::path::Path,
    metrics: &Metrics,
    starts: &kafka::start::Starts,
) -> Result<Pipeline, ServiceError> {
    let mut pipeline = Pipeline::new(config, metrics.clone());
    if let Some(snapshot) = snapshot::load(state_dir)? {
        let series = pipeline.restore(snapshot);
        tracing::info!(series, dir = %state_dir.display(), "state restored from snapshot");
        crate::warm::resume(&pipeline, state_dir, starts);
    }
    Ok(pipeline)
}

/// Turns SIGHUP into reload requests on `requests`, on a thread of its
/// own. Returns the sender whose drop ends the watch.
fn watch_hangups(
    requests: mpsc::Sender<crate::reload::Request>,
) -> Result<oneshot::Sender<()>, ServiceError> {
    let (watching, unwatched) = oneshot::channel::<()>();
    on_own_thread("kpiwatch-sighup", async move {
        tokio::select! {
            () = crate::reload::on_hangup(requests) => {}
            _ = unwatched => {}
        }
    })?;
    Ok(watching)
}

/// The receiving thread, as the loop and the shutdown see it (see
/// [`start_receiving`]).
struct Receiving {
    /// Batches and assignment changes, in the order they happened.
    received: mpsc::Receiver<Received>,
    /// Batches handed back, for their allocations.
    spare: mpsc::UnboundedSender<ReadBatch>,
    /// Asks the thread to stop.
    stopper: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Receiving {
    /// Stops the thread and waits for it to end.
    async fn stop(self) {
        stop_thread(self.stopper, self.thread).await;
    }
}

/// Starts the receiving thread ([`receive`]) on `consumer`, reading with
/// the newest of `readers`. Receiving and reading (parsing, routing) run
/// on a thread of their own, so they overlap with recording and judging
/// in the loop. A thread, not a task: a task woken by the other lands in
/// its worker's LIFO slot, which no other worker may steal from, so the
/// two often took turns on one core. Returns the loop's ends of its
/// channels and the thread.
fn start_receiving(
    consumer: Arc<StreamConsumer<KafkaContext>>,
    readers: Arc<crate::reload::Readers>,
    revocations: Arc<Revocations>,
    assignments: mpsc::UnboundedReceiver<kafka::Assignment>,
    health: Arc<Health>,
    starts: Arc<kafka::start::Starts>,
) -> Result<Receiving, ServiceError> {
    let (received_tx, received) = mpsc::channel(RECEIVED_QUEUE);
    let (spare, spare_rx) = mpsc::unbounded_channel();
    let (stopper, stopped) = oneshot::channel();
    let receiving = receive(
        consumer,
        readers,
        revocations,
        assignments,
        received_tx,
        spare_rx,
        stopped,
        health,
        starts,
    );
    let thread = on_own_thread("kpiwatch-receive", receiving)?;
    Ok(Receiving {
        received,
        spare,
        stopper,
        thread,
    })
}

/// The loop: `core` takes, one at a time, a stop, the notifier's timer,
/// reload requests (applied with `live`), the idle tick, and the batches
/// and assignment changes of the receiving thread. Returns when a stop is
/// asked or judging was interrupted; `/readyz` counts the service as
/// running until then.
async fn main_loop(
    core: &mut Core,
    shell: &Shell<'_>,
    watch: &ShutdownWatch,
    receiving: &mut Receiving,
    reloads: &mut mpsc::Receiver<crate::reload::Request>,
    live: &crate::reload::Live,
    metrics: &Metrics,
) {
    let (options, health, stop) = (shell.options, shell.health, &watch.stop);
    shell.beat();
    health.running.store(true, Ordering::Relaxed);

    let mut tick = tokio::time::interval(options.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if stop.load(Ordering::Relaxed) || core.pipeline.interrupted() {
            break;
        }
        // When the notifier next has work (group waits, intervals,
        // repeats); read after each notifier call, not per message (it
        // scans the groups).
        let notify_in = core.notify_due.map(|t| {
            Duration::from_millis((t - options.clock.now_ms()).clamp(0, 3_600_000) as u64)
        });
        tokio::select! {
            biased;
            () = watch.stopping.notified() => break,
            () = sleep_or_never(notify_in) => core.notify_tick(shell),
            Some(request) = reloads.recv() => {
                // Between batches: the pipeline is not in the middle of
                // anything. Alerts resolved by it go out with this advance.
                crate::reload::serve(request, live, &mut core.pipeline, &mut core.notifier).await;
                core.notify_due = core.notifier.next_due_ms();
                // The next snapshot holds the new KPIs.
                core.checkpoints.touch();
                core.advance(shell);
                shell.beat();
            }
            _ = tick.tick() => {
                // An injected clock moves without tokio's timers noticing.
                if core.notify_due.is_some_and(|t| t <= options.clock.now_ms()) {
                    core.notify_tick(shell);
                }
                core.advance(shell);
                shell.beat();
            }
            Some(r) = receiving.received.recv() => match r {
                Received::Assignment(change) => {
                    apply_assignment(
                        &mut core.pipeline,
                        &mut core.tracker,
                        shell.topics,
                        change,
                        options.clock.now(),
                    );
                    core.advance(shell);
                    shell.beat();
                }
                Received::Events { mut batch, epoch, received, generation } => {
                    health.queued.fetch_sub(1, Ordering::Relaxed);
                    if generation != live.readers.generation() {
                        // Read with the plans of a configuration reloaded
                        // since: read again with the new ones.
                        let mut fresh = ReadBatch::default();
                        crate::pipeline::reconfigure::reread(&core.pipeline.reader(), &batch, &mut fresh);
                        batch = fresh;
                    }
                    // Wall time for the idle check, read once a batch (a
                    // fraction of a millisecond) and before any of its
                    // messages is counted.
                    let now = options.clock.now();
                    for i in 0..batch.len() {
                        // A stop between messages leaves the rest unread:
                        // their offsets were never tracked, so they are
                        // read again after a restart.
                        if stop.load(Ordering::Relaxed) || core.pipeline.interrupted() {
                            break;
                        }
                        // Advancing where a message lets buckets close, as
                        // one message at a time would.
                        if core.record(&batch, epoch, i, now, shell) {
                            core.advance(shell);
                        }
                    }
                    metrics.processing_latency.observe(received.elapsed().as_secs_f64());
                    let _ = receiving.spare.send(batch);
                    shell.beat();
                }
            },
        }
    }
    health.running.store(false, Ordering::Relaxed);
}

/// Stops what `run` started, after the loop: the receiving thread; then,
/// unless judging was interrupted, one more try for notifications still
/// waiting for the disk and the final snapshot (with the offsets it
/// covers); deliveries in flight, for up to [`SHUTDOWN_DELIVERY_GRACE`],
/// and the notifier; the consumer's group, after a last commit; and the
/// HTTP server. Returns what the run saw.
async fn shut_down(
    mut core: Core,
    shell: &Shell<'_>,
    receiving: Receiving,
    http: HttpServer,
) -> Summary {
    // Messages read but not recorded are read again after a restart: their
    // offsets were never stored.
    receiving.stop().await;
    if core.pipeline.interrupted() {
        // Buckets closed but not all judged: a snapshot now would say they
        // were. The restart goes back to the last snapshot (whose offsets
        // are the ones committed) and judges them with their events.
        tracing::warn!(
            "stopped in the middle of judging closed buckets; no snapshot written: the restart resumes from the last one and reads the events after it again"
        );
    } else {
        // One more try for notifications still waiting for the disk.
        if !core.notifier.is_durable() {
            core.notify_tick(shell);
        }
        if core.checkpoint(shell) {
            tracing::debug!("final snapshot written");
        } else {
            tracing::warn!(
                "stopping without a final snapshot (see the errors before): the restart resumes from the last one written and reads the events after it again"
            );
        }
    }
    // Give deliveries in flight a moment; whatever is left stays in the
    // outbox for the next start.
    let backlog = core.notifier.backlog();
    let _ = tokio::time::timeout(SHUTDOWN_DELIVERY_GRACE, backlog.drained()).await;
    core.notifier.stop().await;
    leave_group(shell.consumer).await;
    http.stop().await;
    let summary = core.summary;
    tracing::info!(?summary, "stopped");
    summary
}

/// What the receiving thread hands the loop, in the order it happened.
enum Received {
    /// Messages read, up to [`BATCH`], all received in one revocation
    /// epoch (see [`Revocations`]).
    Events {
        /// The messages.
        batch: ReadBatch,
        /// The epoch they were received in.
        epoch: u64,
        /// When the first was received: the processing-latency histogram
        /// counts the wait in the channel too.
        received: Instant,
        /// The generation of the reader that read them
        /// ([`crate::reload::Readers`]).
        generation: u64,
    },
    /// A rebalance changed the partitions; messages before it came first.
    Assignment(kafka::Assignment),
}

/// Batches in flight between the receiving thread and the loop: enough to
/// keep both busy, few enough that backpressure reaches librdkafka (the
/// receiving thread stops polling while the queue is full).
const RECEIVED_QUEUE: usize = 4;

/// The receiving thread's work: messages from Kafka, read into batches
/// with `reader`, and assignment changes in between, in order, to `out`.
/// Each batch is stamped with the revocation epoch its messages were
/// received in, so that the loop can drop those of a partition revoked
/// since. Batches come back through `spare` for their allocations. Ends
/// on `stop` or when the loop drops its end. `health.queued` counts the
/// batches handed over (or waiting to be) that the loop has not taken.
#[allow(clippy::too_many_arguments)]
async fn receive(
    consumer: Arc<StreamConsumer<KafkaContext>>,
    readers: Arc<crate::reload::Readers>,
    revocations: Arc<Revocations>,
    mut assignments: mpsc::UnboundedReceiver<kafka::Assignment>,
    out: mpsc::Sender<Received>,
    mut spare: mpsc::UnboundedReceiver<ReadBatch>,
    mut stop: oneshot::Receiver<()>,
    health: Arc<Health>,
    starts: Arc<kafka::start::Starts>,
) {
    // One stream for the whole run: `recv()` registers and drops a waker
    // slot per call.
    let mut messages = consumer.stream();
    let mut reader = readers.current();
    loop {
        // The rebalance callback runs inside the stream's poll, so a change
        // is queued before any message that follows it.
        let first = tokio::select! {
            biased;
            _ = &mut stop => return,
            Some(change) = assignments.recv() => {
                if out.send(Received::Assignment(change)).await.is_err() {
                    return;
                }
                continue;
            }
            Some(message) = std::future::poll_fn(|cx| Pin::new(&mut messages).poll_next(cx)) => message,
        };
        // A message is proof that Kafka is reachable, sooner than the next
        // statistics.
        if first.is_ok() && health.kafka_unreachable.load(Ordering::Relaxed) {
            health.kafka_unreachable.store(false, Ordering::Relaxed);
        }
        // The rebalance callback runs inside a poll of the stream, on this
        // thread: a message returned after it sees the new epoch.
        let epoch = revocations.epoch();
        let received = Instant::now();
        // A reload may have replaced the plans: the batch is read whole
        // with the newest.
        readers.refresh(&mut reader);
        let (generation, reader) = (reader.0, &reader.1);
        let mut batch = spare.try_recv().unwrap_or_default();
        batch.clear();
        read(reader, &starts, first, &mut batch);
        // Then what librdkafka already holds, without a round through the
        // runtime per message; an assignment change ends the batch.
        while batch.len() < BATCH && assignments.is_empty() && revocations.epoch() == epoch {
            let Some(message) = ready(&mut messages) else {
                break;
            };
            read(reader, &starts, message, &mut batch);
        }
        if batch.is_empty() {
            continue;
        }
        health.queued.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            biased;
            _ = &mut stop => return,
            sent = out.send(Received::Events { batch, epoch, received, generation }) => if sent.is_err() {
                return;
            },
        }
    }
}

fn read(
    reader: &Reader,
    starts: &kafka::start::Starts,
    message: KafkaResult<BorrowedMessage<'_>>,
    batch: &mut ReadBatch,
) {
    match message {
        Ok(m) => {
            // Before a warm start's history end: in the snapshot already.
            if starts.any_armed()
                && !starts.admit(
                    m.topic(),
                    m.partition(),
                    m.offset(),
                    m.timestamp().to_millis(),
                )
            {
                return;
            }
            // With one topic, its name need not be fetched from librdkafka
            // and compared for every message (5 % of this thread).
            let topic = reader.sole_topic().or_else(|| reader.topic(m.topic()));
            if let Some(topic) = topic {
                let payload = m.payload().unwrap_or_default();
                reader.read(topic, m.partition(), m.offset(), payload, batch);
            }
        }
        Err(e) => tracing::warn!(error = %e, "kafka consumer error"),
    }
}

/// Most messages in one batch (a quarter of a millisecond of the loop's
/// work): the loop checks shutdown and its timers between batches.
const BATCH: usize = 256;

/// The next message if librdkafka already holds one (polled with a no-op
/// waker: a pending poll only parks that waker in the stream's slot, and the
/// receiving thread's next `select!` poll replaces it).
fn ready<'c>(
    messages: &mut MessageStream<'c, KafkaContext>,
) -> Option<KafkaResult<BorrowedMessage<'c>>> {
    match Pin::new(messages).poll_next(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(message) => message,
        Poll::Pending => None,
    }
}

/// What the loop reads but does not change.
struct Shell<'s> {
    /// Readiness: the loop reports outages and failing writes into it.
    health: &'s Health,
    options: &'s Options,
    consumer: &'s StreamConsumer<KafkaContext>,
    topics: &'s [String],
    state_dir: &'s std::path::Path,
    revocations: &'s Revocations,
}

impl Shell<'_> {
    /// Notes that the loop finished something (batch, tick, assignment,
    /// reload): `/readyz`'s stall check counts from now.
    fn beat(&self) {
        self.health
            .heartbeat_ms
            .store(self.options.clock.now_ms(), Ordering::Relaxed);
    }
}

/// The loop's state: the pipeline and everything that must be written
/// before an offset may be stored.
struct Core {
    pipeline: Pipeline,
    notifier: crate::notify::notifier::Notifier,
    /// The alerts fired, which feedback may name.
    feedback: crate::feedback::api::Feedback,
    /// When the notifier next has work.
    notify_due: Option<i64>,
    alert_log: Option<AlertLog>,
    dead_letters: Option<DeadLetters>,
    /// Offsets whose buckets have closed, waiting for a snapshot that
    /// covers those closes before they may be stored.
    checkpoints: Checkpoints,
    tracker: OffsetTracker,
    transitions: Vec<Transition>,
    released: Vec<(i32, i64)>,
    /// Held events the pipeline decided, taken after each message.
    settled: Vec<Settled>,
    summary: Summary,
    /// Since when (wall time) Kafka has been unreachable, while it is.
    outage: Option<i64>,
    /// Durable writes failing now, with their failed attempts so far.
    failing: HashMap<StateWrite, u64>,
}

impl Core {
    /// The loop's state at the start: nothing tracked, held, settled or
    /// failing yet.
    fn new(
        pipeline: Pipeline,
        notifier: crate::notify::notifier::Notifier,
        feedback: crate::feedback::api::Feedback,
        alert_log: Option<AlertLog>,
        dead_letters: Option<DeadLetters>,
        checkpoints: Checkpoints,
    ) -> Self {
        Self {
            checkpoints,
            notify_due: notifier.next_due_ms(),
            pipeline,
            notifier,
            feedback,
            alert_log,
            dead_letters,
            tracker: OffsetTracker::default(),
            transitions: Vec::new(),
            released: Vec::new(),
            settled: Vec::new(),
            summary: Summary::default(),
            outage: None,
            failing: HashMap::new(),
        }
    }

    /// Records event `i` of `batch`; true if the pipeline should advance
    /// now (the event took its partition past the topic's next bucket
    /// close).
    /// A message received before a rebalance revoked its partition, or
    /// counted already before a rebalance handed its partition back, is
    /// skipped.
    fn record(
        &mut self,
        batch: &ReadBatch,
        epoch: u64,
        i: usize,
        now: i64,
        shell: &Shell<'_>,
    ) -> bool {
        let (topic, partition, offset, payload) = batch.event(i);
        let skip = if shell
            .revocations
            .revoked_since(&shell.topics[topic], partition, epoch)
        {
            Some(SkipReason::Revoked)
        } else if self.tracker.already_counted(topic, partition, offset) {
            Some(SkipReason::Redelivered)
        } else {
            None
        };
        if let Some(reason) = skip {
            let origin = Origin {
                topic: &shell.topics[topic],
                partition,
                offset,
            };
            EventSkipped { origin, reason }.emit(self.pipeline.metrics());
            return false;
        }
        let outcome = self.pipeline.apply(batch, i, Some(now));
        self.summary.event(outcome);
        tracing::trace!(partition, offset, ?outcome, progress = ?self.pipeline.progress(topic), "message");
        // Held events decided by this one have smaller offsets: first.
        let due = self.take_settled(shell);
        self.after(shell, topic, partition, offset, outcome, payload) || due
    }

    /// Tracks the held events the pipeline has decided since the last
    /// call; true if one is due to advance.
    fn take_settled(&mut self, shell: &Shell<'_>) -> bool {
        let mut settled = std::mem::take(&mut self.settled);
        settled.extend(self.pipeline.settled());
        let mut due = false;
        for s in settled.drain(..) {
            self.summary.settle(s.outcome);
            due |= self.after(shell, s.topic, s.partition, s.offset, s.outcome, &s.payload);
        }
        self.settled = settled;
        due
    }

    /// Tracks the offset of an event whose outcome is known (dead-letters
    /// it if refused); true if it is due to advance.
    fn after(
        &mut self,
        shell: &Shell<'_>,
        topic: usize,
        partition: i32,
        offset: i64,
        outcome: Outcome,
        payload: &[u8],
    ) -> bool {
        match outcome {
            Outcome::Accepted { closed_at, due, .. } => {
                self.tracker.track(topic, partition, offset, closed_at);
                due
            }
            Outcome::Rejected(reason) => {
                if let Some(d) = &self.dead_letters {
                    d.send(&shell.topics[topic], partition, offset, reason, payload);
                }
                self.tracker.track(topic, partition, offset, None);
                false
            }
            Outcome::Late => {
                self.tracker.track(topic, partition, offset, None);
                false
            }
            Outcome::Held => {
                self.tracker.hold(topic, partition, offset);
                false
            }
        }
    }

    /// Notes how a durable write went: a failure is counted, logged and
    /// shown by `/readyz` (except the alert log's) until the write works.
    fn wrote(&mut self, shell: &Shell<'_>, what: StateWrite, result: Result<(), String>) {
        match result {
            Err(error) => {
                StateWriteFailed {
                    what,
                    error: &error,
                }
                .emit(self.pipeline.metrics());
                *self.failing.entry(what).or_default() += 1;
                if what != StateWrite::AlertLog {
                    shell.health.write_failing(what, Some(error));
                }
            }
            Ok(()) => {
                if let Some(failures) = self.failing.remove(&what) {
                    StateWriteRecovered { what, failures }.emit();
                    shell.health.write_failing(what, None);
                }
            }
        }
    }

    /// Notes how a notifier call went (see [`Core::wrote`]).
    fn notified(
        &mut self,
        shell: &Shell<'_>,
        result: Result<(), crate::notify::notifier::NotifyError>,
    ) {
        use crate::notify::notifier::NotifyError;
        self.notify_due = self.notifier.next_due_ms();
        match result {
            Ok(()) => {
                self.wrote(shell, StateWrite::Outbox, Ok(()));
                self.wrote(shell, StateWrite::NotifierState, Ok(()));
            }
            Err(e @ NotifyError::State { .. }) => {
                self.wrote(shell, StateWrite::Outbox, Ok(()));
                self.wrote(shell, StateWrite::NotifierState, Err(e.to_string()));
            }
            Err(e) => self.wrote(shell, StateWrite::Outbox, Err(e.to_string())),
        }
    }

    /// Lets the notifier send (or write) what is due.
    fn notify_tick(&mut self, shell: &Shell<'_>) {
        let result = self.notifier.tick();
        self.notified(shell, result);
    }

    /// Writes a snapshot and stores the offsets it covers, unless a
    /// notification is not on disk yet (a snapshot would then cover a
    /// transition a crash could lose). False if nothing was written.
    fn checkpoint(&mut self, shell: &Shell<'_>) -> bool {
        if !self.notifier.is_durable() {
            return false;
        }
        let started = Instant::now();
        let written = snapshot::save(
            &*shell.options.storage,
            shell.state_dir,
            &self.pipeline.snapshot(),
        );
        if written.is_ok() {
            tracing::debug!(elapsed = ?started.elapsed(), "snapshot written");
            store_offsets(shell.consumer, shell.topics, self.checkpoints.written());
        }
        let ok = written.is_ok();
        self.wrote(
            shell,
            StateWrite::Snapshot,
            written.map_err(|e| e.to_string()),
        );
        ok
    }

    /// Notices Kafka becoming unreachable or reachable again; the wall
    /// time the pipeline may follow now (none during an outage).
    fn wall_clock(&mut self, shell: &Shell<'_>) -> Option<i64> {
        let now = shell.options.clock.now();
        let unreachable = shell.health.kafka_unreachable.load(Ordering::Relaxed);
        match (unreachable, self.outage) {
            (true, None) => {
                tracing::warn!(
                    "no Kafka broker reachable: nothing is consumed, and until one is back no bucket closes on the wall clock (the partitions are silent because of the outage, not the shop)"
                );
                self.outage = Some(now);
            }
            (false, Some(since)) => {
                tracing::info!(
                    outage_s = now - since,
                    "Kafka reachable again: every partition counts as heard from now"
                );
                self.pipeline.reachable_again(now);
                self.outage = None;
            }
            _ => {}
        }
        self.outage.is_none().then_some(now)
    }

    /// Snapshots when due, closes and judges what progress allows, writes
    /// the transitions (observers, notifier, log, alert log) and holds the
    /// offsets they release until the next snapshot.
    fn advance(&mut self, shell: &Shell<'_>) {
        let options = shell.options;
        // Not while the notifier waits for the disk: then at once when it
        // is done (see `checkpoint`). A snapshot that fails is tried again
        // an interval later, as it is costly to build.
        if self
            .checkpoints
            .due(options.clock.now(), self.notifier.is_durable())
        {
            self.checkpoints.attempted(options.clock.now());
            if self.checkpoint(shell) {
                if let Some(tx) = &options.snapshots {
                    let _ = tx.send(());
                }
            }
        }
        let wall = self.wall_clock(shell);
        self.pipeline.advance(wall, &mut self.transitions);
        if self.pipeline.interrupted() {
            // Stopping: nothing of this advance may be written (see `run`).
            self.transitions.clear();
            return;
        }
        // Held events of partitions gone idle now count (their buckets
        // close at a later advance).
        self.take_settled(shell);
        // The feedback API knows an alert before anyone can learn of it:
        // an observer, or a subscriber following the feedback link of its
        // notification, would otherwise be told "unknown alert".
        if !self.transitions.is_empty() {
            self.feedback.record(&self.transitions);
        }
        // Then observers: their receipt time marks the bucket close (the
        // notification latency benchmark measures from it).
        if let Some(o) = &options.observer {
            for t in &self.transitions {
                let _ = o.send(t.clone());
            }
        }
        // On disk (dispatcher state, outbox) before the offsets behind
        // these transitions can be stored; if the disk refuses, the
        // notifier keeps them and no offset is stored until it has them.
        if !self.transitions.is_empty() {
            let result = self.notifier.alerts(&self.transitions);
            self.notified(shell, result);
        }
        let mut logged = Ok(());
        for t in self.transitions.drain(..) {
            self.summary.transition(&t);
            tracing::info!(
                status = ?t.status, escalated = t.is_escalation(), severity = t.severity.name(), kpi = %t.kpi, labels = ?t.labels, observed = t.observed,
                expected = t.expected, score = t.score, alert_id = %t.alert_id, "alert transition"
            );
            if let Some(log) = &mut self.alert_log {
                logged = logged.and(log.write(&t));
            }
        }
        if let Some(log) = &mut self.alert_log {
            let result = logged.and(log.flush());
            self.wrote(shell, StateWrite::AlertLog, result);
        }
        if let Some(tx) = &options.buckets {
            for b in self.pipeline.take_judged() {
                let _ = tx.send((
                    self.pipeline.config().kpis[b.kpi].name.clone(),
                    b.key.to_string(),
                    b.start,
                    b.value,
                ));
            }
        }
        // Alerts are written; the offsets wait for the next snapshot.
        for topic in 0..shell.topics.len() {
            let Some(progress) = self.pipeline.progress(topic) else {
                continue;
            };
            self.tracker.release(topic, progress, &mut self.released);
            for (partition, offset) in self.released.drain(..) {
                self.checkpoints.hold(topic, partition, offset);
            }
        }
    }
}

/// The shutdown future, watched apart from the loop (see
/// [`watch_shutdown`]).
struct ShutdownWatch {
    /// Raised when a stop is asked: read between messages and between
    /// chunks of judging.
    stop: Arc<AtomicBool>,
    /// Wakes the loop's select.
    stopping: Arc<tokio::sync::Notify>,
    /// Ends the watch when dropped, however `run` returns.
    _watching: oneshot::Sender<()>,
}

/// Watches `shutdown` apart from the loop, which may be busy for a while
/// inside one arm of its select. On a thread of its own: a task of this
/// runtime can wait behind the loop's work (see `on_own_thread`).
fn watch_shutdown(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ShutdownWatch, ServiceError> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::new(tokio::sync::Notify::new());
    let (watching, unwatched) = oneshot::channel::<()>();
    on_own_thread("kpiwatch-shutdown", {
        let (stop, stopping) = (stop.clone(), stopping.clone());
        async move {
            tokio::select! {
                () = shutdown => {
                    stop.store(true, Ordering::Relaxed);
                    stopping.notify_one();
                }
                _ = unwatched => {}
            }
        }
    })?;
    Ok(ShutdownWatch {
        stop,
        stopping,
        _watching: watching,
    })
}

/// Binds `service.listen` (the address it got, for port 0) and works out
/// who may call the API: its tokens, read from their environment
/// variables (one left unset is logged and left off).
fn bind_api(
    config: &Config,
) -> Result<
    (
        std::net::TcpListener,
        SocketAddr,
        crate::http::access::Access,
    ),
    ServiceError,
> {
    let listen = config.service.listen;
    let listener = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| ServiceError::Listen {
            addr: listen,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(listen);
    let api = &config.service.api;
    let access = crate::http::access::Access::new(bound, api.tls.is_some(), &api.tokens, |name| {
        std::env::var(name).ok()
    })?;
    for missing in access.missing() {
        tracing::warn!(
            token = %missing.name,
            env = %missing.env,
            "API token left off: its environment variable is unset or empty"
        );
    }
    tracing::info!(
        %bound,
        tls = api.tls.is_some(),
        writes = ?access.writes(),
        reads_need_token = access.reads_need_token(),
        "serving /metrics, /healthz, /readyz, /api/v1/silences, /api/v1/reload"
    );
    Ok((listener, bound, access))
}

/// Runs `future` on a thread of its own, in a single-threaded runtime with
/// timers and I/O. For what must go on while the loop works through a long
/// burst synchronously: a task of the loop's runtime may sit in the busy
/// worker's LIFO slot, which other workers do not steal from, and /readyz
/// and the shutdown signal then wait for the burst to end.
fn on_own_thread<F>(
    name: &str,
    future: F,
) -> Result<std::thread::JoinHandle<F::Output>, ServiceError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServiceError::Thread)?;
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || runtime.block_on(future))
        .map_err(ServiceError::Thread)
}

/// How long shutdown waits for notifications in flight.
const SHUTDOWN_DELIVERY_GRACE: Duration = Duration::from_secs(5);

async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Stores `offsets` (topic, partition, next offset to read) for the
/// next commit.
fn store_offsets(
    consumer: &StreamConsumer<KafkaContext>,
    topics: &[String],
    offsets: Vec<(usize, i32, i64)>,
) {
    for (topic, partition, offset) in offsets {
        // store_offset takes the last processed offset; `offset` is the
        // next one to read.
        if let Err(e) = consumer.store_offset(&topics[topic], partition, offset - 1) {
            tracing::debug!(error = %e, topic = %topics[topic], partition, "offset not stored (partition revoked?)");
        }
    }
}

fn apply_assignment(
    pipeline: &mut Pipeline,
    tracker: &mut OffsetTracker,
    topics: &[String],
    change: kafka::Assignment,
    now: i64,
) {
    let index = |name: &str| topics.iter().position(|t| t == name);
    tracing::debug!(?change, now, "assignment change");
    match change {
        kafka::Assignment::Assigned(list) => {
            for (t, p) in list {
                if let Some(t) = index(&t) {
                    pipeline.assign(t, p, now);
                    tracker.assign(t, p);
                }
            }
        }
        kafka::Assignment::Revoked(list) => {
            for (t, p) in list {
                if let Some(t) = index(&t) {
                    pipeline.revoke(t, p);
                    tracker.revoke(t, p);
                }
            }
        }
    }
}

/// Commits stored offsets and leaves the group. Dropping a consumer
/// straight after use can hang in librdkafka; unsubscribing and polling
/// briefly first lets its threads finish.
async fn leave_group(consumer: &StreamConsumer<KafkaContext>) {
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final commit (nothing stored?)");
    }
    consumer.unsubscribe();
    let _ = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await;
}

/// The JSONL file of alert transitions.
struct AlertLog {
    path: String,
    file: std::io::BufWriter<std::fs::File>,
}

impl AlertLog {
    fn open(path: &std::path::Path) -> Result<Self, ServiceError> {
        let shown = path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ServiceError::AlertLog {
                path: shown.clone(),
                source,
            })?;
        Ok(Self {
            path: shown,
            file: std::io::BufWriter::new(file),
        })
    }

    /// Appends a line (buffered). A failure is the caller's to report:
    /// the alert log is for people, not part of what must be durable.
    fn write(&mut self, t: &Transition) -> Result<(), String> {
        let line = serde_json::to_string(t).unwrap_or_default();
        writeln!(self.file, "{line}").map_err(|e| format!("alert log {}: {e}", self.path))
    }

    fn flush(&mut self) -> Result<(), String> {
        self.file
            .flush()
            .map_err(|e| format!("alert log {}: {e}", self.path))
    }
}

/// Copies refused events to the dead-letter topic, with headers saying
/// where they came from and why.
struct DeadLetters {
    topic: String,
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl DeadLetters {
    fn new(config: &Config, topic: &str) -> Result<Self, ServiceError> {
        Ok(Self {
            topic: topic.to_string(),
            producer: kafka::service_producer(&config.kafka)?,
        })
    }

    fn send(&self, topic: &str, partition: i32, offset: i64, reason: RejectReason, payload: &[u8]) {
        // A message too large to parse is also too large to forward whole.
        let payload = if reason == RejectReason::TooLarge {
            &payload[..payload.len().min(64 * 1024)]
        } else {
            payload
        };
        let partition = partition.to_string();
        let offset = offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "kpiwatch-reason",
                value: Some(reason.label()),
            })
            .insert(Header {
                key: "kpiwatch-source-topic",
                value: Some(topic),
            })
            .insert(Header {
                key: "kpiwatch-source-partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "kpiwatch-source-offset",
                value: Some(&offset),
            });
        let record: BaseRecord<'_, (), [u8]> = BaseRecord::to(&self.topic)
            .payload(payload)
            .headers(headers);
        if let Err((e, _)) = self.producer.send(record) {
            tracing::warn!(error = %e, "dead-letter produce failed; the event is still counted and logged");
        }
    }
}
