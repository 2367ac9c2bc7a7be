//! The feedback endpoints the service mounts.
//!
//! - `POST /api/v1/alerts/{id}/feedback` (write) with `{"verdict":
//!   "true" | "false" | "expected", "comment": "...", "by": "..."}`;
//!   `by` defaults to the API token's name, which is recorded as `via`
//!   whatever `by` says. An id this service never fired is a 404.
//! - `GET /api/v1/alerts/{id}/feedback` (read): the alert, its latest
//!   verdict and all of them.
//! - `GET /feedback/{token}` (open): the page an email link opens. It
//!   says which alert and which verdict, and records nothing: mail
//!   scanners and link previews fetch every link in a message. Its button
//!   POSTs to the same address.
//! - `POST /feedback/{token}` (open, the token is the authority): records
//!   the verdict the token carries, `via` "email link".
//!
//! A refused token gets a page that says why (expired, altered,
//! incomplete). Each recorded verdict bumps
//! `kpiwatch_alert_feedback_total{kpi, verdict}`; KPI names come from the
//! alerts this service fired, so the label set stays bounded by the
//! configuration.

use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Form, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{IntCounterVec, Opts};
use serde::Deserialize;

use super::link::{LinkError, LinkSigner};
use super::register::AlertRegister;
use super::store::{FeedbackError, FeedbackStore, NewVerdict};
use super::{is_alert_id, KnownAlert, Verdict};
use crate::clock::Clock;
use crate::http::access::Caller;
use crate::http::{error, Endpoints};
use crate::telemetry::Metrics;

/// `via` of a verdict given through an email link.
pub const VIA_LINK: &str = "email link";

/// What the feedback endpoints share with the service.
#[derive(Clone)]
pub struct Feedback {
    /// The alerts fired; the service loop records into it.
    pub register: Arc<Mutex<AlertRegister>>,
    /// The verdicts.
    pub store: Arc<Mutex<FeedbackStore>>,
    /// The email links' signer, when links are on.
    pub links: Option<LinkSigner>,
}

impl Feedback {
    /// The feedback of `state_dir` (register and verdicts) and the link
    /// signer that `notify.external_url`, `notify.feedback_links` and the
    /// environment allow. A register line that does not parse is skipped
    /// with a warning; a damaged verdict file stops the start (as a
    /// damaged silence does), saying which.
    pub fn load(
        state_dir: &std::path::Path,
        external_url: Option<&str>,
        link_settings: Option<&super::link::LinkSettings>,
    ) -> Result<Self, FeedbackError> {
        let dir = state_dir.join(super::FEEDBACK_DIR);
        let (register, skipped) =
            AlertRegister::load(state_dir).map_err(|source| FeedbackError::Io {
                path: dir.clone(),
                source,
            })?;
        if skipped > 0 {
            tracing::warn!(
                skipped,
                dir = %dir.display(),
                "alert register lines skipped (torn by a crash?): feedback on those alerts is refused"
            );
        }
        let store = FeedbackStore::load(state_dir)?;
        let env = |name: &str| std::env::var(name).ok();
        let links = LinkSigner::from_env(external_url, link_settings, env);
        if let Some(why) = super::link::why_no_links(external_url, link_settings, env) {
            tracing::info!("{why}");
        }
        Ok(Self {
            register: Arc::new(Mutex::new(register)),
            store: Arc::new(Mutex::new(store)),
            links,
        })
    }

    /// Takes note of the alerts in `transitions` (the service loop calls
    /// this with every batch). A failed write is logged: it costs only
    /// feedback on those alerts after a restart.
    pub fn record(&self, transitions: &[crate::alert::Transition]) {
        if let Err(e) = lock(&self.register).record(transitions) {
            tracing::warn!(error = %e, "alert register not written: feedback on these alerts is refused after a restart");
        }
    }
}

/// One verdict recorded: logs once and counts it.
pub struct FeedbackRecorded<'a> {
    /// The alert's KPI.
    pub kpi: &'a str,
    /// The alert.
    pub alert_id: &'a str,
    /// What was said.
    pub verdict: Verdict,
    /// How (token name or email link).
    pub via: &'a str,
}

impl FeedbackRecorded<'_> {
    /// Logs and counts it in `counter`.
    pub fn emit(&self, counter: &IntCounterVec) {
        tracing::info!(
            kpi = %self.kpi, alert_id = %self.alert_id, verdict = self.verdict.name(),
            via = %self.via, "alert feedback recorded"
        );
        counter
            .with_label_values(&[self.kpi, self.verdict.name()])
            .inc();
    }
}

/// `kpiwatch_alert_feedback_total{kpi, verdict}`, registered in
/// `metrics`' registry (once: a second registration is logged and the
/// counter then only counts in memory).
pub fn feedback_counter(metrics: &Metrics) -> IntCounterVec {
    let c = IntCounterVec::new(
        Opts::new(
            "kpiwatch_alert_feedback_total",
            "Verdicts given on alerts (API and email links), by KPI and verdict (true, false, expected).",
        ),
        &["kpi", "verdict"],
    )
    .expect("valid metric");
    if let Err(e) = metrics.registry.register(Box::new(c.clone())) {
        tracing::warn!(error = %e, "kpiwatch_alert_feedback_total not registered");
    }
    c
}

#[derive(Clone)]
struct ApiState {
    feedback: Feedback,
    /// Held for the whole of a change, so files and memory agree.
    writer: Arc<Mutex<()>>,
    clock: Arc<dyn Clock>,
    counter: IntCounterVec,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The endpoints, for the service to mount (see the module docs).
pub fn api(feedback: Feedback, clock: Arc<dyn Clock>, metrics: &Metrics) -> Endpoints {
    let state = ApiState {
        feedback,
        writer: Arc::new(Mutex::new(())),
        clock,
        counter: feedback_counter(metrics),
    };
    Endpoints {
        open: Router::new()
            .route("/feedback/{token}", get(link_page).post(link_post))
            .with_state(state.clone()),
        read: Router::new()
            .route("/api/v1/alerts/{id}/feedback", get(show))
            .with_state(state.clone()),
        write: Router::new()
            .route("/api/v1/alerts/{id}/feedback", axum::routing::post(give))
            .with_state(state),
    }
}

/// A verdict as a client sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    verdict: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    by: String,
}

fn store_error(e: FeedbackError) -> Response {
    let status = match &e {
        FeedbackError::Invalid(_) => StatusCode::BAD_REQUEST,
        FeedbackError::UnknownAlert(_) => StatusCode::NOT_FOUND,
        FeedbackError::Io { .. } | FeedbackError::Corrupt { .. } => {
            tracing::error!(error = %e, "feedback not saved");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, e)
}

impl ApiState {
    fn known(&self, id: &str) -> Result<KnownAlert, FeedbackError> {
        if !is_alert_id(id) {
            return Err(FeedbackError::UnknownAlert(id.chars().take(64).collect()));
        }
        lock(&self.feedback.register)
            .get(id)
            .cloned()
            .ok_or_else(|| FeedbackError::UnknownAlert(id.to_string()))
    }

    /// Records `new` on `alert`: on disk, then in memory, then counted.
    fn record(
        &self,
        alert: &KnownAlert,
        new: NewVerdict,
    ) -> Result<super::store::Record, FeedbackError> {
        let _writer = lock(&self.writer);
        let now = self.clock.now();
        let (entry, dir) = {
            let store = lock(&self.feedback.store);
            (
                store.prepare(alert, new, now)?,
                store.dir().map(|d| d.to_path_buf()),
            )
        };
        // The writer lock orders changes; the store's lock is not held
        // across the fsync, so reads go on meanwhile.
        super::store::write_entry(dir.as_deref(), &entry)?;
        let record = entry.latest().cloned().expect("a verdict was just added");
        lock(&self.feedback.store).insert(entry);
        FeedbackRecorded {
            kpi: &alert.kpi,
            alert_id: &alert.alert_id,
            verdict: record.verdict,
            via: &record.via,
        }
        .emit(&self.counter);
        Ok(record)
    }
}

/// Runs a change (a file write and its fsync) on the blocking pool.
async fn blocking(
    f: impl FnOnce() -> Result<Response, FeedbackError> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => store_error(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("feedback failed: {e}"),
        ),
    }
}

async fn give(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
    body: Result<Json<FeedbackRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(r)) => r,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let Some(verdict) = Verdict::parse(&request.verdict) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "verdict {:?} is not known; use \"true\" (a real problem), \"false\" (nothing was wrong) or \"expected\" (a known, planned change)",
                request.verdict.chars().take(64).collect::<String>()
            ),
        );
    };
    blocking(move || {
        let alert = s.known(&id)?;
        let record = s.record(
            &alert,
            NewVerdict {
                verdict,
                comment: request.comment,
                by: request.by,
                via: caller.0,
            },
        )?;
        Ok(Json(serde_json::json!({
            "alert_id": alert.alert_id,
            "recorded": record,
        }))
        .into_response())
    })
    .await
}

async fn show(State(s): State<ApiState>, UrlPath(id): UrlPath<String>) -> Response {
    let alert = match s.known(&id) {
        Ok(a) => a,
        Err(e) => {
            // An alert forgotten by the register may still have feedback.
            match lock(&s.feedback.store).get(&id) {
                Some(f) => f.alert.clone(),
                None => return store_error(e),
            }
        }
    };
    let store = lock(&s.feedback.store);
    let verdicts = store
        .get(&id)
        .map(|f| f.verdicts.clone())
        .unwrap_or_default();
    Json(serde_json::json!({
        "alert_id": alert.alert_id,
        "alert": alert,
        "latest": verdicts.last(),
        "verdicts": verdicts,
    }))
    .into_response()
}

// ---------------------------------------------------------------------------
// The link page

fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_quoted_attribute(s)
}

/// A small self-contained page (no script, no external resource).
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>{t}</title></head>\n<body style=\"font-family:Arial,Helvetica,sans-serif;\
         max-width:40em;margin:2em auto;padding:0 1em;color:#24292e;line-height:1.45;\">\n\
         <h1 style=\"font-size:1.3em;\">{t}</h1>\n{body}\n</body></html>\n",
        t = esc(title)
    );
    (
        status,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Html(html),
    )
        .into_response()
}

/// The link's alert, or the page saying why not.
fn check_link(s: &ApiState, token: &str) -> Result<(KnownAlert, Verdict), Box<Response>> {
    let Some(signer) = &s.feedback.links else {
        return Err(Box::new(page(
            StatusCode::NOT_FOUND,
            "Feedback links are off",
            "<p>This kpiwatch does not take feedback through links (no key is set). Use <code>POST /api/v1/alerts/{id}/feedback</code>.</p>",
        )));
    };
    let signed = signer.verify(token, s.clock.now()).map_err(|e| {
        let title = match e {
            LinkError::Expired(_) => "This feedback link has expired",
            LinkError::Altered => "This feedback link is not valid",
            LinkError::Malformed => "This feedback link is incomplete",
        };
        Box::new(page(
            StatusCode::FORBIDDEN,
            title,
            &format!("<p>{}</p>", esc(&e.to_string())),
        ))
    })?;
    let alert = s.known(&signed.alert_id).map_err(|_| {
        Box::new(page(
            StatusCode::NOT_FOUND,
            "Unknown alert",
            "<p>This kpiwatch no longer knows this alert, so it cannot take feedback on it.</p>",
        ))
    })?;
    Ok((alert, signed.verdict))
}

async fn link_page(State(s): State<ApiState>, UrlPath(token): UrlPath<String>) -> Response {
    let (alert, verdict) = match check_link(&s, &token) {
        Ok(v) => v,
        Err(page) => return *page,
    };
    let latest = lock(&s.feedback.store)
        .get(&alert.alert_id)
        .and_then(|f| f.latest().cloned());
    let already = match latest {
        Some(r) => format!(
            "<p style=\"color:#586069;\">Already marked <b>{}</b> by {} on {}; a new verdict replaces it (both are kept).</p>",
            esc(r.verdict.name()),
            esc(&r.by),
            esc(&crate::timefmt::human_utc(r.at))
        ),
        None => String::new(),
    };
    page(
        StatusCode::OK,
        "Was this alert right?",
        &format!(
            "<p>Alert <code>{id}</code>: {what}.</p>\n{already}\n\
             <form method=\"post\">\n\
             <p><label>Comment (optional)<br><textarea name=\"comment\" rows=\"3\" cols=\"50\" maxlength=\"1024\"></textarea></label></p>\n\
             <p><label>Your name (optional)<br><input name=\"by\" maxlength=\"200\"></label></p>\n\
             <p><button type=\"submit\" style=\"font-size:1.1em;padding:0.4em 1em;\">Mark it {words}</button></p>\n\
             </form>",
            id = esc(&alert.alert_id),
            what = esc(&alert.describe()),
            words = esc(verdict.words()),
        ),
    )
}

/// The link page's form.
#[derive(Debug, Deserialize)]
struct LinkForm {
    #[serde(default)]
    comment: String,
    #[serde(default)]
    by: String,
}

async fn link_post(
    State(s): State<ApiState>,
    UrlPath(token): UrlPath<String>,
    form: Result<Form<LinkForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (alert, verdict) = match check_link(&s, &token) {
        Ok(v) => v,
        Err(page) => return *page,
    };
    let form = form.map(|Form(f)| f).unwrap_or_else(|_| LinkForm {
        comment: String::new(),
        by: String::new(),
    });
    let what = alert.describe();
    let result = tokio::task::spawn_blocking(move || {
        s.record(
            &alert,
            NewVerdict {
                verdict,
                comment: form.comment,
                by: form.by,
                via: VIA_LINK.to_string(),
            },
        )
    })
    .await;
    match result {
        Ok(Ok(_)) => page(
            StatusCode::OK,
            "Thank you",
            &format!(
                "<p>The alert on {} is marked <b>{}</b>. Analysts tune kpiwatch with this.</p>",
                esc(&what),
                esc(verdict.words())
            ),
        ),
        Ok(Err(FeedbackError::Invalid(m))) => page(
            StatusCode::BAD_REQUEST,
            "Feedback not recorded",
            &format!("<p>{}</p>", esc(&m)),
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "feedback not saved");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Feedback not recorded",
                "<p>kpiwatch could not save it; try again later.</p>",
            )
        }
        Err(_) => page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Feedback not recorded",
            "<p>Try again later.</p>",
        ),
    }
}
