//! Run-time silences: "do not tell anyone about checkouts in FI until
//! 18:00, we know". A silenced alert is recorded by the dispatcher, not
//! sent.
//!
//! - [`Silence`] — matchers (the same [`Matcher`]s as subscriptions; `kpi`
//!   is the KPI name), a start and an end, who made it and why.
//! - [`SilenceStore`] — the silences of one kpiwatch, kept in one JSON file
//!   written atomically (temporary file, fsync, rename, fsync of the
//!   directory) so they survive a restart. Expired silences are kept
//!   [`RETENTION_SECS`] for the record, then pruned.
//! - [`api`] — the HTTP API the service mounts: `POST`, `GET`
//!   `/api/v1/silences` and `DELETE /api/v1/silences/{id}` (expire).
//!
//! Times are epoch seconds (the [`Clock`](crate::clock::Clock)'s unit),
//! written as RFC 3339 in JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::route::{Matcher, KPI_LABEL};
use crate::alert::Transition;
use crate::clock::Clock;

/// Expired silences are kept this long (5 days, Alertmanager's default),
/// then pruned.
pub const RETENTION_SECS: i64 = 5 * 86_400;

/// Most silences kept at once, expired ones included: a runaway script
/// must not grow the file without bound.
pub const MAX_SILENCES: usize = 10_000;

/// RFC 3339 in JSON, epoch seconds in memory.
mod rfc3339_secs {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::timefmt::rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not an RFC 3339 time such as \"2024-05-01T18:00:00Z\""
            ))
        })
    }

    pub fn parse(text: &str) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp())
    }
}

/// One silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Random, unique in the store.
    pub id: String,
    /// Every matcher must pass for an alert to be silenced.
    pub matchers: Vec<Matcher>,
    /// From when, epoch seconds.
    #[serde(with = "rfc3339_secs")]
    pub starts_at: i64,
    /// Until when (exclusive), epoch seconds; expiring sets it to now.
    #[serde(with = "rfc3339_secs")]
    pub ends_at: i64,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// Where a silence is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilenceState {
    /// Starts in the future.
    Pending,
    /// Silencing now.
    Active,
    /// Over (ended or expired).
    Expired,
}

impl Silence {
    /// Its state at `now`.
    pub fn state(&self, now: i64) -> SilenceState {
        if now >= self.ends_at {
            SilenceState::Expired
        } else if now < self.starts_at {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// Whether its matchers take the alert (whatever the time).
    pub fn matches(&self, kpi: &str, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| m.matches(kpi, labels))
    }
}

/// A silence to add.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Every matcher must pass; at least one.
    pub matchers: Vec<Matcher>,
    /// From when, epoch seconds (now when absent).
    #[serde(default, with = "opt_rfc3339_secs")]
    pub starts_at: Option<i64>,
    /// Until when, epoch seconds.
    #[serde(with = "rfc3339_secs")]
    pub ends_at: i64,
    /// Who makes it (required).
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

mod opt_rfc3339_secs {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => super::rfc3339_secs::parse(&text).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not an RFC 3339 time such as \"2024-05-01T18:00:00Z\""
                ))
            }),
        }
    }
}

/// Why a silence operation failed, written for whoever sent it.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// Refused input.
    #[error("{0}")]
    Invalid(String),
    /// No silence has this id.
    #[error("no silence has id {0:?}")]
    NotFound(String),
    /// The silence is already over.
    #[error("silence {0:?} has already expired")]
    AlreadyExpired(String),
    /// The store file could not be read or written.
    #[error("silences file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store file is not what kpiwatch writes.
    #[error("silences file {path} is damaged: {message}; move it away to start without silences")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What serde said.
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    silences: Vec<Silence>,
}

/// The silences, optionally backed by a file.
#[derive(Debug, Default)]
pub struct SilenceStore {
    path: Option<PathBuf>,
    silences: Vec<Silence>,
}

impl SilenceStore {
    /// A store that is never saved (tests, `replay`).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Reads `path`; a missing file is an empty store. [`save`](Self::save)
    /// writes back to it.
    pub fn load(path: &Path) -> Result<Self, SilenceError> {
        let io = |source| SilenceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let silences = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
            Ok(bytes) => {
                let file: StoreFile =
                    serde_json::from_slice(&bytes).map_err(|e| SilenceError::Corrupt {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                file.silences
            }
        };
        Ok(Self {
            path: Some(path.to_path_buf()),
            silences,
        })
    }

    /// Writes the store to its file atomically: a crash leaves the old file
    /// or the new one, never half of one. Does nothing in memory.
    pub fn save(&self) -> Result<(), SilenceError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |source| SilenceError::Io {
            path: path.clone(),
            source,
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let body = serde_json::to_vec_pretty(&StoreFile {
            version: 1,
            silences: self.silences.clone(),
        })
        .expect("silences serialise");
        crate::durable::write_atomic(path, &body).map_err(io)
    }

    /// Adds a silence and returns its id. Refuses no matchers, a missing
    /// author, an end not after the start, and an end already past.
    pub fn add(&mut self, new: NewSilence, now: i64) -> Result<String, SilenceError> {
        self.prune(now);
        if new.matchers.is_empty() {
            return Err(SilenceError::Invalid(format!(
                "a silence needs at least one matcher, e.g. {{\"name\": \"{KPI_LABEL}\", \"equals\": \"checkouts\"}}"
            )));
        }
        if let Some(m) = new.matchers.iter().find(|m| m.name.trim().is_empty()) {
            return Err(SilenceError::Invalid(format!(
                "matcher {m} has no label name"
            )));
        }
        if new.created_by.trim().is_empty() {
            return Err(SilenceError::Invalid(
                "created_by is empty; say who makes the silence".into(),
            ));
        }
        let starts_at = new.starts_at.unwrap_or(now).max(now);
        if new.ends_at <= starts_at {
            return Err(SilenceError::Invalid(format!(
                "ends_at ({}) must be after starts_at ({}) and after now",
                crate::timefmt::rfc3339(new.ends_at),
                crate::timefmt::rfc3339(starts_at)
            )));
        }
        if self.silences.len() >= MAX_SILENCES {
            return Err(SilenceError::Invalid(format!(
                "there are already {MAX_SILENCES} silences; expire some first"
            )));
        }
        let id = loop {
            let id = format!("{:016x}", rand::random::<u64>());
            if !self.silences.iter().any(|s| s.id == id) {
                break id;
            }
        };
        self.silences.push(Silence {
            id: id.clone(),
            matchers: new.matchers,
            starts_at,
            ends_at: new.ends_at,
            created_by: new.created_by,
            comment: new.comment,
        });
        Ok(id)
    }

    /// Ends the silence `id` now (a pending one never starts).
    pub fn expire(&mut self, id: &str, now: i64) -> Result<(), SilenceError> {
        let s = self
            .silences
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
        if s.state(now) == SilenceState::Expired {
            return Err(SilenceError::AlreadyExpired(id.to_string()));
        }
        s.starts_at = s.starts_at.min(now);
        s.ends_at = now;
        Ok(())
    }

    /// Every silence with its state at `now`: active first, then pending,
    /// then expired; newest end first within each.
    pub fn list(&self, now: i64) -> Vec<(SilenceState, &Silence)> {
        let mut all: Vec<(SilenceState, &Silence)> =
            self.silences.iter().map(|s| (s.state(now), s)).collect();
        let rank = |st: SilenceState| match st {
            SilenceState::Active => 0,
            SilenceState::Pending => 1,
            SilenceState::Expired => 2,
        };
        all.sort_by(|a, b| {
            (rank(a.0), std::cmp::Reverse(a.1.ends_at), &a.1.id).cmp(&(
                rank(b.0),
                std::cmp::Reverse(b.1.ends_at),
                &b.1.id,
            ))
        });
        all
    }

    /// The active silence that silences `t` at `now`, if any (the one
    /// ending last, so a recheck at its end is final).
    pub fn silenced_by(&self, t: &Transition, now: i64) -> Option<&Silence> {
        self.silences
            .iter()
            .filter(|s| s.state(now) == SilenceState::Active && s.matches(&t.kpi, &t.labels))
            .max_by_key(|s| s.ends_at)
    }

    /// Forgets silences expired more than [`RETENTION_SECS`] ago.
    pub fn prune(&mut self, now: i64) {
        self.silences.retain(|s| s.ends_at + RETENTION_SECS > now);
    }
}

/// A silence as the API lists it.
#[derive(Debug, Serialize)]
struct SilenceView<'a> {
    #[serde(flatten)]
    silence: &'a Silence,
    state: SilenceState,
}

#[derive(Clone)]
struct ApiState {
    store: Arc<Mutex<SilenceStore>>,
    clock: Arc<dyn Clock>,
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

fn store_error(e: SilenceError) -> Response {
    let status = match &e {
        SilenceError::Invalid(_) | SilenceError::AlreadyExpired(_) => StatusCode::BAD_REQUEST,
        SilenceError::NotFound(_) => StatusCode::NOT_FOUND,
        SilenceError::Io { .. } | SilenceError::Corrupt { .. } => {
            tracing::error!(error = %e, "silences not saved");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, e)
}

/// The silences HTTP API, for the service to mount:
///
/// - `POST /api/v1/silences` with `{"matchers": [{"name": "country",
///   "equals": "FI"}], "ends_at": "2024-05-01T18:00:00Z", "created_by":
///   "ann", "comment": "known outage"}` (optional `starts_at`) → `{"id"}`.
/// - `GET /api/v1/silences` → `{"silences": [...]}` with each `state`.
/// - `DELETE /api/v1/silences/{id}` expires it.
///
/// Refused input gets 400 (404 for an unknown id) with `{"error": "..."}`.
/// Every change is saved before the reply.
pub fn api(store: Arc<Mutex<SilenceStore>>, clock: Arc<dyn Clock>) -> Router {
    Router::new()
        .route("/api/v1/silences", get(list).post(create))
        .route("/api/v1/silences/{id}", delete(expire))
        .with_state(ApiState { store, clock })
}

// A std mutex: the critical sections are short and never await. Changes
// save the file (an fsync) before the reply, so they run on tokio's
// blocking pool: the fsync neither stalls an async worker nor, beyond the
// file write itself, the notifier waiting for the same lock.
fn lock(store: &Mutex<SilenceStore>) -> std::sync::MutexGuard<'_, SilenceStore> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a change to the store, and its save, on the blocking pool.
async fn change(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("silence change failed: {e}"),
        )
    })
}

async fn create(
    State(s): State<ApiState>,
    body: Result<Json<NewSilence>, JsonRejection>,
) -> Response {
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    change(move || {
        let mut store = lock(&s.store);
        let id = match store.add(new, s.clock.now()) {
            Ok(id) => id,
            Err(e) => return store_error(e),
        };
        if let Err(e) = store.save() {
            return store_error(e);
        }
        tracing::info!(silence = %id, "silence created");
        Json(serde_json::json!({ "id": id })).into_response()
    })
    .await
}

async fn list(State(s): State<ApiState>) -> Response {
    let store = lock(&s.store);
    let silences: Vec<SilenceView<'_>> = store
        .list(s.clock.now())
        .into_iter()
        .map(|(state, silence)| SilenceView { silence, state })
        .collect();
    Json(serde_json::json!({ "silences": silences })).into_response()
}

async fn expire(State(s): State<ApiState>, UrlPath(id): UrlPath<String>) -> Response {
    change(move || {
        let mut store = lock(&s.store);
        if let Err(e) = store.expire(&id, s.clock.now()).and_then(|()| store.save()) {
            return store_error(e);
        }
        tracing::info!(silence = %id, "silence expired");
        Json(serde_json::json!({ "id": id, "state": SilenceState::Expired })).into_response()
    })
    .await
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::alert::{Severity, Status};
    use crate::clock::ManualClock;
    use crate::notify::route::MatchTest;

    /// A transition of alert `id` of `kpi` with `labels`, for tests here
    /// and in the dispatcher.
    pub(crate) fn transition(
        status: Status,
        id: &str,
        kpi: &str,
        labels: &[(&str, &str)],
    ) -> Transition {
        Transition {
            status,
            alert_id: id.to_string(),
            kpi: kpi.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            severity: Severity::Critical,
            direction: detectors::Direction::Drop,
            started_at: 1714564800,
            bucket_start: 1714564800,
            bucket_end: 1714565100,
            observed: 1.0,
            expected: 10.0,
            lower: 5.0,
            upper: 15.0,
            score: 0.9,
            deviation_pct: Some(-90.0),
            evidence: Default::default(),
            description: None,
            runbook: None,
            dashboard: None,
            recent: Vec::new(),
        }
    }

    fn fi_checkouts(starts_at: Option<i64>, ends_at: i64) -> NewSilence {
        NewSilence {
            matchers: vec![
                Matcher {
                    name: "kpi".into(),
                    test: MatchTest::Equals("checkouts".into()),
                },
                Matcher {
                    name: "country".into(),
                    test: MatchTest::Equals("FI".into()),
                },
            ],
            starts_at,
            ends_at,
            created_by: "ann".into(),
            comment: "payment provider outage".into(),
        }
    }

    const NOW: i64 = 1_714_564_800; // 2024-05-01T12:00:00Z

    #[test]
    fn a_silence_silences_matching_alerts_only_while_active() {
        let mut store = SilenceStore::in_memory();
        let id = store
            .add(fi_checkouts(Some(NOW + 60), NOW + 3600), NOW)
            .unwrap();
        let fi = transition(Status::Firing, "a", "checkouts", &[("country", "FI")]);
        let se = transition(Status::Firing, "b", "checkouts", &[("country", "SE")]);
        assert!(store.silenced_by(&fi, NOW).is_none(), "pending");
        assert_eq!(
            store.silenced_by(&fi, NOW + 60).map(|s| s.id.as_str()),
            Some(id.as_str())
        );
        assert!(store.silenced_by(&se, NOW + 60).is_none(), "other label");
        assert!(store.silenced_by(&fi, NOW + 3600).is_none(), "ended");
    }

    #[test]
    fn add_refuses_no_matchers_no_author_and_ends_not_after_start() {
        let mut store = SilenceStore::in_memory();
        let mut none = fi_checkouts(None, NOW + 60);
        none.matchers.clear();
        assert!(store
            .add(none, NOW)
            .unwrap_err()
            .to_string()
            .contains("at least one matcher"));
        let mut anonymous = fi_checkouts(None, NOW + 60);
        anonymous.created_by = " ".into();
        assert!(store
            .add(anonymous, NOW)
            .unwrap_err()
            .to_string()
            .contains("created_by"));
        let backwards = fi_checkouts(Some(NOW + 600), NOW + 60);
        assert!(store
            .add(backwards, NOW)
            .unwrap_err()
            .to_string()
            .contains("must be after"));
        let past = fi_checkouts(None, NOW - 1);
        assert!(store.add(past, NOW).is_err());
        assert!(store.list(NOW).is_empty());
    }

    #[test]
    fn expire_ends_a_silence_and_list_reports_states() {
        let mut store = SilenceStore::in_memory();
        let active = store.add(fi_checkouts(None, NOW + 3600), NOW).unwrap();
        let pending = store
            .add(fi_checkouts(Some(NOW + 600), NOW + 3600), NOW)
            .unwrap();
        let ended = store.add(fi_checkouts(None, NOW + 3600), NOW).unwrap();
        store.expire(&ended, NOW + 10).unwrap();
        let states: Vec<(SilenceState, &str)> = store
            .list(NOW + 10)
            .into_iter()
            .map(|(st, s)| (st, s.id.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                (SilenceState::Active, active.as_str()),
                (SilenceState::Pending, pending.as_str()),
                (SilenceState::Expired, ended.as_str()),
            ]
        );
        assert!(matches!(
            store.expire(&ended, NOW + 20),
            Err(SilenceError::AlreadyExpired(_))
        ));
        assert!(matches!(
            store.expire("nope", NOW),
            Err(SilenceError::NotFound(_))
        ));
    }

    #[test]
    fn expired_silences_are_pruned_after_the_retention() {
        let mut store = SilenceStore::in_memory();
        store.add(fi_checkouts(None, NOW + 60), NOW).unwrap();
        store.prune(NOW + 60 + RETENTION_SECS - 1);
        assert_eq!(store.list(NOW).len(), 1, "kept for the record");
        store.prune(NOW + 60 + RETENTION_SECS);
        assert!(store.list(NOW).is_empty());
    }

    #[test]
    fn silences_survive_a_restart_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/silences.json");
        let mut store = SilenceStore::load(&path).unwrap();
        assert!(store.list(NOW).is_empty(), "no file yet");
        let id = store.add(fi_checkouts(None, NOW + 3600), NOW).unwrap();
        store.save().unwrap();
        assert!(
            !path.with_extension("json.tmp").exists(),
            "renamed into place"
        );
        let again = SilenceStore::load(&path).unwrap();
        let listed = again.list(NOW);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1, store.list(NOW)[0].1);
        assert_eq!(listed[0].1.id, id);
    }

    #[test]
    fn a_damaged_file_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silences.json");
        std::fs::write(&path, "{ not json").unwrap();
        let err = SilenceStore::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("damaged") && err.contains("move it away"),
            "{err}"
        );
    }

    async fn serve(store: Arc<Mutex<SilenceStore>>) -> String {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(NOW));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, api(store, clock)).await });
        format!("http://{addr}/api/v1/silences")
    }

    #[tokio::test]
    async fn the_api_creates_lists_and_expires_silences_and_saves_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silences.json");
        let store = Arc::new(Mutex::new(SilenceStore::load(&path).unwrap()));
        let url = serve(store.clone()).await;
        let http = reqwest::Client::new();

        let created: serde_json::Value = http
            .post(&url)
            .json(&serde_json::json!({
                "matchers": [{"name": "country", "equals": "FI"}],
                "ends_at": "2024-05-01T18:00:00Z",
                "created_by": "ann",
                "comment": "known outage"
            }))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(
            SilenceStore::load(&path).unwrap().list(NOW)[0].1.id,
            id,
            "saved"
        );

        let listed: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(listed["silences"][0]["id"], id.as_str());
        assert_eq!(listed["silences"][0]["state"], "active");
        assert_eq!(listed["silences"][0]["starts_at"], "2024-05-01T12:00:00Z");
        assert_eq!(listed["silences"][0]["matchers"][0]["equals"], "FI");

        let expired = http.delete(format!("{url}/{id}")).send().await.unwrap();
        assert_eq!(expired.status(), 200);
        let reloaded = SilenceStore::load(&path).unwrap();
        assert_eq!(reloaded.list(NOW)[0].0, SilenceState::Expired);
        let again = http.delete(format!("{url}/{id}")).send().await.unwrap();
        assert_eq!(again.status(), 400);
        let unknown = http.delete(format!("{url}/nope")).send().await.unwrap();
        assert_eq!(unknown.status(), 404);
    }

    #[tokio::test]
    async fn the_api_refuses_bad_silences_with_a_json_message() {
        let url = serve(Arc::new(Mutex::new(SilenceStore::in_memory()))).await;
        let http = reqwest::Client::new();
        for (body, expect) in [
            (
                serde_json::json!({"matchers": [], "ends_at": "2024-05-01T18:00:00Z", "created_by": "ann"}),
                "at least one matcher",
            ),
            (
                serde_json::json!({"matchers": [{"name": "kpi", "equals": "x"}], "ends_at": "tomorrow", "created_by": "ann"}),
                "RFC 3339",
            ),
            (
                serde_json::json!({"matchers": [{"name": "kpi", "regex": "(x"}], "ends_at": "2024-05-01T18:00:00Z", "created_by": "ann"}),
                "bad regex",
            ),
        ] {
            let resp = http.post(&url).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 400, "{body}");
            let err: serde_json::Value = resp.json().await.unwrap();
            let message = err["error"].as_str().unwrap();
            assert!(message.contains(expect), "{message}");
        }
    }
}
