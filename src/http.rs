//! The service's HTTP API on `service.listen`.
//!
//! # Map
//!
//! - [`Endpoints`] — routes grouped by who may call them: `open`
//!   (`/healthz`, `/readyz`), `read` (`/metrics`, listing silences) and
//!   `write` (changing silences; later `/api/v1/reload` and alert
//!   feedback). A module adding an endpoint puts it in one of the three;
//!   that is all it declares about access. A write handler finds the
//!   [`access::Caller`] in the request's extensions.
//! - [`router`] — the endpoints behind the checks of [`access`]: on a
//!   loopback listener the Host check (outermost, against DNS rebinding),
//!   then the body limit ([`BODY_LIMIT`], answered with 413), then the
//!   token checks of reads and writes, which run before a body is read.
//! - [`serve`] — axum-server on the bound listener, plain or https
//!   ([`tls`]), HTTP/1.1 only, with time limits for slow clients, until
//!   the shutdown future completes.
//! - [`ApiSettings`] — the `[service]` keys behind all this: tokens, TLS,
//!   how far ahead a silence may reach.
//! - [`endpoints`] — this module's own: metrics and health (`/readyz`
//!   fails when the service is stalled: see [`Health::ready`]).

pub mod access;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::clock::Clock;
use crate::kafka::Health;
use crate::telemetry::Metrics;
use access::{Access, TokenSource};

/// Largest request body, in bytes; larger ones get 413. A silence, the
/// largest thing the API takes, is at most 8 KiB stored.
pub const BODY_LIMIT: usize = 16 * 1024;

/// How long a client may take to send a request's headers, and to send a
/// first request on a new connection, before it is dropped (a client
/// trickling bytes must not hold a connection for ever).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long requests in flight get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Default for `service.silence_max_ahead`: 30 days.
pub const DEFAULT_SILENCE_MAX_AHEAD: Duration = Duration::from_secs(30 * 86_400);

/// `[service]` settings of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `[[service.api_token]]`: who holds a token, where it is, what it
    /// allows.
    pub tokens: Vec<TokenSource>,
    /// `cert_file` and `key_file`: https on the listener.
    pub tls: Option<tls::TlsIdentity>,
    /// `silence_max_ahead`: a silence must end at most this long after it
    /// is made.
    pub silence_max_ahead: Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            tls: None,
            silence_max_ahead: DEFAULT_SILENCE_MAX_AHEAD,
        }
    }
}

/// Routes grouped by who may call them.
#[derive(Default)]
pub struct Endpoints {
    /// Anyone who reaches the listener (and passes the Host check).
    pub open: Router,
    /// Reads: open until a token of scope `read` is configured.
    pub read: Router,
    /// Changes: a token of scope `write` (or, with no token configured, a
    /// loopback listener).
    pub write: Router,
}

impl Endpoints {
    /// Both sets of routes.
    pub fn merge(self, other: Endpoints) -> Self {
        Self {
            open: self.open.merge(other.open),
            read: self.read.merge(other.read),
            write: self.write.merge(other.write),
        }
    }
}

/// The endpoints behind the access checks of `access`.
pub fn router(endpoints: Endpoints, access: Arc<Access>) -> Router {
    router_live(endpoints, Arc::new(access::LiveAccess::new(access)))
}

/// [`router`] with a policy a reload can replace.
pub fn router_live(endpoints: Endpoints, access: Arc<access::LiveAccess>) -> Router {
    let read = endpoints
        .read
        .route_layer(from_fn_with_state(access.clone(), access::need_read));
    let write = endpoints
        .write
        .route_layer(from_fn_with_state(access.clone(), access::need_write));
    endpoints
        .open
        .merge(read)
        .merge(write)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn_with_state(access, access::check_host))
}

/// Serves `app` on `listener` (https with `tls`) until `shutdown`
/// completes, then lets requests in flight finish for a few seconds.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<&tls::TlsIdentity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    let service = app.into_make_service();
    match tls {
        None => {
            let server = axum_server::from_tcp(listener)?;
            tuned(server, handle).serve(service).await
        }
        Some(identity) => {
            let config =
                axum_server::tls_rustls::RustlsConfig::from_config(identity.server_config());
            let server = axum_server::tls_rustls::from_tcp_rustls(listener, config)?;
            tuned(server, handle).serve(service).await
        }
    }
}

/// HTTP/1.1 only (all the API needs), and slow clients dropped.
fn tuned<A>(
    server: axum_server::Server<std::net::SocketAddr, A>,
    handle: axum_server::Handle<std::net::SocketAddr>,
) -> axum_server::Server<std::net::SocketAddr, A> {
    let mut server = server
        .http1_only()
        .first_request_timeout(CLIENT_TIMEOUT)
        .handle(handle);
    server
        .http_builder()
        .http1()
        .header_read_timeout(CLIENT_TIMEOUT);
    server
}

/// A JSON error body, `{"error": message}`, with `status`.
pub fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Arc<Health>,
    /// The service's clock, against which a stall is measured.
    clock: Arc<dyn Clock>,
}

/// `/metrics` (a read), `/healthz` and `/readyz` (open: probes reveal
/// nothing and often cannot send a token). `clock` is the service's, against
/// which a stall is measured.
pub fn endpoints(metrics: Metrics, health: Arc<Health>, clock: Arc<dyn Clock>) -> Endpoints {
    let state = AppState {
        metrics,
        health,
        clock,
    };
    Endpoints {
        open: Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(ready_handler))
            .with_state(state.clone()),
        read: Router::new()
            .route("/metrics", get(metrics_handler))
            .with_state(state),
        write: Router::new(),
    }
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn ready_handler(State(s): State<AppState>) -> impl IntoResponse {
    match s.health.ready(s.clock.now_ms()) {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}
