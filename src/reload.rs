//! Live reload of the configuration: `SIGHUP` or `POST /api/v1/reload`
//! (scope write) rereads the file `run` was started with and, if it is
//! good, applies it without a restart.
//!
//! # Map
//!
//! - [`crate::config::diff`] — the pure comparison of the old and the new
//!   configuration: what needs a restart, each KPI's
//!   [`Fate`](crate::config::diff::Fate), receivers, subscriptions and the
//!   other live settings.
//! - [`Request`] — what the HTTP handler ([`api`]) and the signal watcher
//!   ([`on_hangup`]) send the service loop over a channel; the loop alone
//!   applies a reload ([`apply`]), between two batches, so no event is
//!   read under one configuration and judged under another. The API waits
//!   for the loop's answer.
//! - [`apply`] — reads and validates the file as `kpiwatch check` does,
//!   refuses it if it fails or changes what only a restart can (nothing is
//!   applied then: the service runs on the last good configuration), else
//!   gives the notifier its new receivers and subscriptions, the HTTP API
//!   its new tokens, the silences their new limit, and the pipeline its new
//!   KPIs ([`crate::pipeline::Pipeline::reconfigure`]); the receiving
//!   thread reads with the new plans from its next batch ([`Readers`]).
//! - [`ConfigReloaded`], [`ConfigReloadFailed`] — the two operational
//!   events, logged once and counted ([`ReloadMetrics`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use prometheus::{Gauge, IntCounter, IntGauge, Opts, Registry};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::config::diff::{self, KpiNames, Names};
use crate::http::access::{Access, Caller, LiveAccess};
use crate::http::Endpoints;
use crate::kafka::Health;
use crate::notify::notifier::Notifier;
use crate::notify::silence::SilenceStore;
use crate::pipeline::read::Reader;
use crate::pipeline::Pipeline;

/// Who asked for a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `SIGHUP`.
    Signal,
    /// `POST /api/v1/reload`, by the token of this name.
    Api(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Signal => f.write_str("SIGHUP"),
            Origin::Api(caller) => write!(f, "API ({caller})"),
        }
    }
}

/// A reload asked of the service loop.
#[derive(Debug)]
pub struct Request {
    /// Who asked.
    pub origin: Origin,
    /// Where the outcome goes (the API waits for it; a signal does not).
    pub reply: Option<oneshot::Sender<Result<Report, Failure>>>,
}

/// Requests waiting for the loop; more are refused with 503 (a signal
/// waits): each reload rereads the whole file, so a queue of them is the
/// same as one.
pub const QUEUE: usize = 8;

/// What a reload changed: the API's answer and the log's fields.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The file read.
    pub file: String,
    /// KPIs by what happened to them.
    pub kpis: KpiNames,
    /// Firing alerts resolved because their KPI was removed or restarted.
    pub alerts_resolved: usize,
    /// Receivers.
    pub receivers: Names,
    /// Subscriptions.
    pub subscriptions: Names,
    /// Time windows.
    pub time_windows: Names,
    /// SMTP relay, From, mail directory, external URL or retry policy
    /// changed: every receiver's worker started again with them.
    pub delivery_changed: bool,
    /// The API tokens changed (in force from the next request).
    pub tokens_changed: bool,
    /// Other live settings that changed.
    pub settings: Vec<String>,
    /// Time to read, check and apply the file, in milliseconds.
    pub elapsed_ms: f64,
}

/// Why a reload was refused; the service runs on as before.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    /// HTTP status of the API's answer.
    #[serde(skip)]
    pub status: StatusCode,
    /// One line saying what to do.
    pub error: String,
    /// Each problem, as `kpiwatch check` prints it (file:line:column for
    /// the file's errors).
    pub errors: Vec<String>,
}

impl Failure {
    fn new(status: StatusCode, error: impl Into<String>, errors: Vec<String>) -> Self {
        Self {
            status,
            error: error.into(),
            errors,
        }
    }
}

/// The receiving thread's reader, replaced by a reload. The thread looks
/// at the generation once a batch (one atomic load) and takes the new
/// reader when it moved; the loop reads again a batch stamped with an
/// older generation.
#[derive(Debug)]
pub struct Readers {
    generation: AtomicU64,
    current: Mutex<(u64, Reader)>,
}

impl Readers {
    /// Starts at generation 0 with `reader`.
    pub fn new(reader: Reader) -> Self {
        Self {
            generation: AtomicU64::new(0),
            current: Mutex::new((0, reader)),
        }
    }

    /// The generation published last.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The reader now, with its generation.
    pub fn current(&self) -> (u64, Reader) {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces `held` by the reader now if a newer one was published.
    pub fn refresh(&self, held: &mut (u64, Reader)) {
        if self.generation() != held.0 {
            *held = self.current();
        }
    }

    /// Publishes `reader` as the next generation.
    pub fn publish(&self, reader: Reader) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.0 += 1;
        current.1 = reader;
        self.generation.store(current.0, Ordering::Release);
    }
}

/// The reload metrics, in the pipeline's registry.
#[derive(Clone)]
pub struct ReloadMetrics {
    /// `kpiwatch_config_reload_failures_total`.
    pub failures: IntCounter,
    /// `kpiwatch_config_reloads_total`: reloads applied.
    pub reloads: IntCounter,
    /// `kpiwatch_config_last_reload_successful`: 1 unless the last reload
    /// was refused (what Prometheus's own
    /// `prometheus_config_last_reload_successful` says).
    pub last_successful: IntGauge,
    /// `kpiwatch_config_last_reload_success_timestamp_seconds`: when the
    /// configuration in force was read (the start, until a reload).
    pub last_success: Gauge,
}

impl ReloadMetrics {
    /// Registers the reload metrics in `registry`, the last good load at
    /// `now` (the start).
    pub fn register(registry: &Registry, now: i64) -> prometheus::Result<Self> {
        let m = Self {
            failures: IntCounter::with_opts(Opts::new(
                "kpiwatch_config_reload_failures_total",
                "Reloads of the configuration refused (the service kept the last good one)",
            ))?,
            reloads: IntCounter::with_opts(Opts::new(
                "kpiwatch_config_reloads_total",
                "Reloads of the configuration applied",
            ))?,
            last_successful: IntGauge::with_opts(Opts::new(
                "kpiwatch_config_last_reload_successful",
                "1 if the last reload of the configuration was applied (or none was tried), 0 if it was refused",
            ))?,
            last_success: Gauge::with_opts(Opts::new(
                "kpiwatch_config_last_reload_success_timestamp_seconds",
                "When the configuration in force was read: the start, or the last reload applied",
            ))?,
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 4] = [
            Box::new(m.failures.clone()),
            Box::new(m.reloads.clone()),
            Box::new(m.last_successful.clone()),
            Box::new(m.last_success.clone()),
        ];
        for c in collectors {
            match registry.register(c) {
                // A registry shared with an earlier run (`Options::metrics`)
                // shows that run's; this one's counts go unseen rather than
                // stopping the start.
                Ok(()) | Err(prometheus::Error::AlreadyReg) => {}
                Err(e) => return Err(e),
            }
        }
        m.last_successful.set(1);
        m.last_success.set(now as f64);
        Ok(m)
    }
}

/// A reload applied.
pub struct ConfigReloaded<'a> {
    /// Who asked.
    pub origin: &'a Origin,
    /// What changed.
    pub report: &'a Report,
    /// Wall time, epoch seconds.
    pub now: i64,
}

impl ConfigReloaded<'_> {
    /// Logs once and counts.
    pub fn emit(&self, m: &ReloadMetrics) {
        // Counted before the line is written: whoever reads the line
        // (a test, a person) finds the metric already moved.
        m.reloads.inc();
        m.last_successful.set(1);
        m.last_success.set(self.now as f64);
        let r = self.report;
        tracing::info!(
            origin = %self.origin,
            file = %r.file,
            kept = r.kpis.kept.len(),
            retuned = ?r.kpis.retuned,
            restarted = ?r.kpis.restarted,
            added = ?r.kpis.added,
            removed = ?r.kpis.removed,
            alerts_resolved = r.alerts_resolved,
            receivers_added = ?r.receivers.added,
            receivers_changed = ?r.receivers.changed,
            receivers_removed = ?r.receivers.removed,
            subscriptions_added = ?r.subscriptions.added,
            subscriptions_changed = ?r.subscriptions.changed,
            subscriptions_removed = ?r.subscriptions.removed,
            tokens_changed = r.tokens_changed,
            settings = ?r.settings,
            elapsed_ms = r.elapsed_ms,
            "configuration reloaded"
        );
    }
}

/// A reload refused.
pub struct ConfigReloadFailed<'a> {
    /// Who asked.
    pub origin: &'a Origin,
    /// Why.
    pub failure: &'a Failure,
}

impl ConfigReloadFailed<'_> {
    /// Logs once and counts.
    pub fn emit(&self, m: &ReloadMetrics) {
        m.failures.inc();
        m.last_successful.set(0);
        tracing::error!(
            origin = %self.origin,
            error = %self.failure.error,
            errors = ?self.failure.errors,
            "configuration reload refused; still running on the last good configuration"
        );
    }
}

/// What a reload changes besides the pipeline and the notifier: owned by
/// the service, shared with the threads that read it.
pub struct Live {
    /// The file to read again; `None` refuses reloads.
    pub path: Option<PathBuf>,
    /// The receiving thread's reader.
    pub readers: Arc<Readers>,
    /// The HTTP API's policy.
    pub access: Arc<LiveAccess>,
    /// The listener's bound address and whether it speaks https (for a new
    /// policy).
    pub bound: SocketAddr,
    /// Whether the listener speaks https.
    pub tls: bool,
    /// The silences (their `silence_max_ahead`).
    pub silences: Arc<Mutex<SilenceStore>>,
    /// Readiness (its `stall_after`).
    pub health: Arc<Health>,
    /// Wall time.
    pub clock: Arc<dyn Clock>,
    /// Counted into.
    pub metrics: ReloadMetrics,
}

/// Reads the configuration file again and applies it (see the module
/// docs), then logs, counts and answers `request`. On success the next
/// [`Pipeline::advance`] hands out the transitions of alerts it resolved.
pub async fn serve(
    request: Request,
    live: &Live,
    pipeline: &mut Pipeline,
    notifier: &mut Notifier,
) {
    let outcome = apply(live, pipeline, notifier).await;
    match &outcome {
        Ok(report) => ConfigReloaded {
            origin: &request.origin,
            report,
            now: live.clock.now(),
        }
        .emit(&live.metrics),
        Err(failure) => ConfigReloadFailed {
            origin: &request.origin,
            failure,
        }
        .emit(&live.metrics),
    }
    if let Some(reply) = request.reply {
        let _ = reply.send(outcome);
    }
}

/// [`serve`] without the logging and answering.
pub async fn apply(
    live: &Live,
    pipeline: &mut Pipeline,
    notifier: &mut Notifier,
) -> Result<Report, Failure> {
    let started = Instant::now();
    let Some(path) = &live.path else {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "this service was started without a configuration file to read again; restart it to change its configuration",
            Vec::new(),
        ));
    };
    let unprocessable =
        |error: &str, errors| Failure::new(StatusCode::UNPROCESSABLE_ENTITY, error, errors);
    // Validation reads CA and TLS files; a few milliseconds, on the loop
    // (the loop must apply it anyway, and reading elsewhere would let two
    // reloads race).
    let new = crate::config::load(path).map_err(|e| {
        unprocessable(
            "the configuration file is not valid (as `kpiwatch check` says); nothing was changed",
            vec![e.to_string()],
        )
    })?;
    let old = pipeline.config();
    let diff = diff::diff(old, &new);
    if !diff.restart.is_empty() {
        let what = diff.restart.clone();
        return Err(unprocessable(
            "the file changes settings a running service cannot take; nothing was changed: restart to change them, or put them back to reload the rest",
            what.into_iter().map(|w| format!("restart to change {w}")).collect(),
        ));
    }
    let access = if diff.tokens_changed {
        let api = &new.service.api;
        let access = Access::new(live.bound, live.tls, &api.tokens, |name| {
            std::env::var(name).ok()
        })
        .map_err(|e| {
            unprocessable(
                "the API tokens cannot be used; nothing was changed",
                vec![e.to_string()],
            )
        })?;
        for missing in access.missing() {
            tracing::warn!(token = %missing.name, env = %missing.env, "API token left off: its environment variable is unset or empty");
        }
        Some(access)
    } else {
        None
    };
    if let Err(e) = notifier.reconfigure(&new.notify).await {
        return Err(unprocessable(
            "the notification settings cannot be used; nothing was changed",
            vec![e.to_string()],
        ));
    }
    // Nothing below can fail.
    let names = diff.kpi_names(old, &new);
    if let Some(access) = access {
        live.access.set(access);
    }
    live.silences
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .set_max_ahead(new.service.api.silence_max_ahead);
    live.health.stall_after_ms.store(
        new.service.stall_after.as_millis() as i64,
        Ordering::Relaxed,
    );
    let alerts_resolved = pipeline.reconfigure(new, &diff.fates, &diff.removed);
    live.readers.publish(pipeline.reader());
    Ok(Report {
        file: path.display().to_string(),
        kpis: names,
        alerts_resolved,
        receivers: diff.receivers,
        subscriptions: diff.subscriptions,
        time_windows: diff.time_windows,
        delivery_changed: diff.delivery_changed,
        tokens_changed: diff.tokens_changed,
        settings: diff.settings,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// `POST /api/v1/reload` (scope write), answered once the service loop
/// has applied or refused the file: 200 with a [`Report`], 422 with a
/// [`Failure`] (409 when there is no file to read), 415 without
/// `Content-Type: application/json` (the body is ignored), 503 while
/// stopping or when reloads are queued already.
pub fn api(requests: mpsc::Sender<Request>) -> Endpoints {
    Endpoints {
        write: Router::new()
            .route("/api/v1/reload", post(reload))
            .with_state(requests),
        ..Endpoints::default()
    }
}

async fn reload(
    State(requests): State<mpsc::Sender<Request>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    // As for every write: a JSON content type needs a CORS preflight,
    // which kpiwatch never grants, so another origin's page cannot post.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == "application/json");
    if !json {
        return crate::http::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send `Content-Type: application/json` (the body may be empty or {})",
        );
    }
    let (reply, answer) = oneshot::channel();
    let request = Request {
        origin: Origin::Api(caller.0),
        reply: Some(reply),
    };
    if let Err(e) = requests.try_send(request) {
        let why = match e {
            mpsc::error::TrySendError::Full(_) => {
                "reloads are queued already; try again when they are done"
            }
            mpsc::error::TrySendError::Closed(_) => "the service is stopping",
        };
        return crate::http::error(StatusCode::SERVICE_UNAVAILABLE, why);
    }
    match answer.await {
        Ok(Ok(report)) => (StatusCode::OK, Json(report)).into_response(),
        Ok(Err(failure)) => (failure.status, Json(failure)).into_response(),
        Err(_) => crate::http::error(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping"),
    }
}

/// Sends a reload request on every `SIGHUP` until `requests` closes.
/// Without this handler a `SIGHUP` would end the process.
pub async fn on_hangup(requests: mpsc::Sender<Request>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP; reload through the API");
                return;
            }
        };
        tracing::info!("SIGHUP reloads the configuration");
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            let request = Request {
                origin: Origin::Signal,
                reply: None,
            };
            if requests.send(request).await.is_err() {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = requests;
    }
}
