//! Run-time silences: "do not tell anyone about checkouts in FI until
//! 18:00, we know". A silenced alert is recorded by the dispatcher, not
//! sent.
//!
//! - [`Silence`] — matchers (the same [`Matcher`]s as subscriptions; `kpi`
//!   is the KPI name), a start and an end, who made it (the name of the API
//!   token that made it) and why.
//! - [`SilenceStore`] — the silences in memory; the notifier reads them
//!   under a short lock. [`SilenceStore::load`] reads them from their
//!   directory. Expired silences are kept [`RETENTION_SECS`] for the
//!   record, then pruned.
//! - [`SilenceDir`] — the directory, one file per silence
//!   (`<state_dir>/silences/<id>.json`), each written atomically and
//!   durably ([`crate::durable`]): adding or expiring a silence writes one
//!   small file, never all of them. A `silences.json` of older versions
//!   beside it is still read (never written or deleted); a silence's own
//!   file wins over it.
//! - [`api`] — the HTTP endpoints the service mounts: `GET
//!   /api/v1/silences` (a read), `POST /api/v1/silences` and `DELETE
//!   /api/v1/silences/{id}` (writes: [`crate::http`] checks the token).
//!
//! Limits, so no caller can grow the store without bound: [`MAX_SILENCES`]
//! silences, [`MAX_MATCHERS`] matchers each, [`MAX_VALUE_BYTES`] per label
//! name, value or regex, [`MAX_IN_VALUES`] values per `in`,
//! [`MAX_COMMENT_BYTES`] of comment, [`MAX_AUTHOR_BYTES`] of author,
//! [`MAX_SILENCE_BYTES`] in all as stored, an end at most
//! `silence_max_ahead` (30 days by default) after it is made, and regexes
//! of at most [`REGEX_SIZE_LIMIT`] bytes compiled.
//!
//! A change runs on tokio's blocking pool: regexes are compiled before any
//! lock is taken; a writer lock puts changes in order; the store's lock,
//! which the notifier also takes, is held only to check and to insert,
//! never across a compile or a file write.
//!
//! Times are epoch seconds (the [`Clock`](crate::clock::Clock)'s unit),
//! written as RFC 3339 in JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::route::{MatchTest, Matcher, Pattern, KPI_LABEL, REGEX_SIZE_LIMIT};
use crate::alert::Transition;
use crate::clock::Clock;
use crate::http::access::Caller;
use crate::http::{error, Endpoints};

/// Expired silences are kept this long (5 days, Alertmanager's default),
/// then pruned.
pub const RETENTION_SECS: i64 = 5 * 86_400;

/// Most silences kept at once, expired ones included: a runaway script
/// must not grow the store without bound.
pub const MAX_SILENCES: usize = 10_000;

/// Most matchers in one silence.
pub const MAX_MATCHERS: usize = 16;

/// Longest label name, value or regex of a matcher, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

/// Most values in one `in` matcher.
pub const MAX_IN_VALUES: usize = 64;

/// Longest comment, in bytes: a sentence or two and a ticket link.
pub const MAX_COMMENT_BYTES: usize = 1024;

/// Longest author (an API token's name, at most 64 characters), in bytes.
pub const MAX_AUTHOR_BYTES: usize = 256;

/// Largest silence as stored (JSON), in bytes: with [`MAX_SILENCES`], the
/// store stays under 80 MiB however it is filled.
pub const MAX_SILENCE_BYTES: usize = 8 * 1024;

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
    /// Random, unique in the store: 16 hex digits (also its file name).
    pub id: String,
    /// Every matcher must pass for an alert to be silenced.
    pub matchers: Vec<Matcher>,
    /// From when, epoch seconds.
    #[serde(with = "rfc3339_secs")]
    pub starts_at: i64,
    /// Until when (exclusive), epoch seconds; expiring sets it to now.
    #[serde(with = "rfc3339_secs")]
    pub ends_at: i64,
    /// Who made it: the name of the API token (`localhost` for a loopback
    /// listener without tokens).
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
#[derive(Debug, Clone, PartialEq)]
pub struct NewSilence {
    /// Every matcher must pass; at least one.
    pub matchers: Vec<Matcher>,
    /// From when, epoch seconds (now when absent).
    pub starts_at: Option<i64>,
    /// Until when, epoch seconds.
    pub ends_at: i64,
    /// Who makes it (required): the API sets the caller's token name.
    pub created_by: String,
    /// Why.
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
    /// A silence file or the directory could not be read or written.
    #[error("silences {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A silence file is not what kpiwatch writes.
    #[error(
        "silence file {path} is damaged: {message}; move it away to start without that silence"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What serde said.
        message: String,
    },
}

/// Checks one matcher's sizes (`values`: its value, regex or `in` list).
/// `at` names it in messages.
fn check_matcher_size(at: &str, name: &str, values: &[&str]) -> Result<(), SilenceError> {
    let too_long = |what: &str, len: usize| {
        SilenceError::Invalid(format!(
            "{at}: the {what} is {len} bytes; at most {MAX_VALUE_BYTES} are allowed"
        ))
    };
    if name.len() > MAX_VALUE_BYTES {
        return Err(too_long("label name", name.len()));
    }
    if values.len() > MAX_IN_VALUES {
        return Err(SilenceError::Invalid(format!(
            "{at}: `in` lists {} values; at most {MAX_IN_VALUES} are allowed (split the silence, or use a regex)",
            values.len()
        )));
    }
    match values.iter().find(|v| v.len() > MAX_VALUE_BYTES) {
        Some(v) => Err(too_long("value", v.len())),
        None => Ok(()),
    }
}

/// How a matcher is named in messages: "matcher 2 (country)".
fn matcher_at(i: usize, name: &str) -> String {
    let shown: String = name.chars().take(40).collect();
    format!("matcher {} ({shown})", i + 1)
}

/// The values a test holds, for the size checks.
fn test_values(test: &MatchTest) -> Vec<&str> {
    match test {
        MatchTest::Equals(v) | MatchTest::Not(v) => vec![v.as_str()],
        MatchTest::In(vs) => vs.iter().map(String::as_str).collect(),
        MatchTest::Regex(p) => vec![p.as_str()],
    }
}

/// The silences in memory.
#[derive(Debug)]
pub struct SilenceStore {
    /// Where they were loaded from, if anywhere; the API writes there.
    dir: Option<PathBuf>,
    silences: Vec<Silence>,
    /// Latest end allowed, in seconds after now.
    max_ahead: i64,
}

impl Default for SilenceStore {
    fn default() -> Self {
        Self {
            dir: None,
            silences: Vec::new(),
            max_ahead: crate::http::DEFAULT_SILENCE_MAX_AHEAD.as_secs() as i64,
        }
    }
}

impl SilenceStore {
    /// A store that is never saved (tests, `replay` without a state
    /// directory).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Reads the silences of `dir` (a missing directory is an empty store)
    /// and of a `silences.json` beside it left by older versions. The API
    /// writes changes back to `dir`.
    pub fn load(dir: &Path) -> Result<Self, SilenceError> {
        Ok(Self {
            dir: Some(dir.to_path_buf()),
            silences: SilenceDir::new(dir).load()?,
            ..Self::default()
        })
    }

    /// Changes how far ahead a new silence may end (a reload); silences
    /// already made keep their end.
    pub fn set_max_ahead(&mut self, max_ahead: Duration) {
        self.max_ahead = i64::try_from(max_ahead.as_secs()).unwrap_or(i64::MAX);
    }

    /// Limits how far ahead a silence may end (`silence_max_ahead`).
    pub fn with_max_ahead(mut self, max_ahead: Duration) -> Self {
        self.max_ahead = i64::try_from(max_ahead.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// Where the silences are kept, if anywhere.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Adds a silence in memory (nothing is written: the API writes each
    /// change to its [`SilenceDir`]) and returns its id; see
    /// [`prepare`](Self::prepare) for what is refused.
    pub fn add(&mut self, new: NewSilence, now: i64) -> Result<String, SilenceError> {
        self.prune(now);
        let silence = self.prepare(new, now)?;
        let id = silence.id.clone();
        self.insert(silence);
        Ok(id)
    }

    /// The silence `new` would be, with a fresh id, without adding it.
    /// Refuses no matchers, one without a label name, a missing or long
    /// author, sizes past the limits, an end not after the start and now,
    /// an end past the allowed maximum ahead, and a full store.
    pub fn prepare(&self, new: NewSilence, now: i64) -> Result<Silence, SilenceError> {
        if new.matchers.is_empty() {
            return Err(SilenceError::Invalid(format!(
                "a silence needs at least one matcher, e.g. {{\"name\": \"{KPI_LABEL}\", \"equals\": \"checkouts\"}}"
            )));
        }
        if new.matchers.len() > MAX_MATCHERS {
            return Err(SilenceError::Invalid(format!(
                "a silence has at most {MAX_MATCHERS} matchers, this one {}; split it, or use `in` or a regex",
                new.matchers.len()
            )));
        }
        for (i, m) in new.matchers.iter().enumerate() {
            if m.name.trim().is_empty() {
                return Err(SilenceError::Invalid(format!(
                    "matcher {m} has no label name"
                )));
            }
            check_matcher_size(&matcher_at(i, &m.name), &m.name, &test_values(&m.test))?;
        }
        if new.created_by.trim().is_empty() {
            return Err(SilenceError::Invalid(
                "created_by is empty; say who makes the silence".into(),
            ));
        }
        if new.created_by.len() > MAX_AUTHOR_BYTES {
            return Err(SilenceError::Invalid(format!(
                "created_by is {} bytes; at most {MAX_AUTHOR_BYTES} are allowed",
                new.created_by.len()
            )));
        }
        if new.comment.len() > MAX_COMMENT_BYTES {
            return Err(SilenceError::Invalid(format!(
                "the comment is {} bytes; at most {MAX_COMMENT_BYTES} are allowed (link to a ticket for more)",
                new.comment.len()
            )));
        }
        let starts_at = new.starts_at.unwrap_or(now).max(now);
        if new.ends_at <= starts_at {
            return Err(SilenceError::Invalid(format!(
                "ends_at ({}) must be after starts_at ({}) and after now",
                crate::timefmt::rfc3339(new.ends_at),
                crate::timefmt::rfc3339(starts_at)
            )));
        }
        let latest = now.saturating_add(self.max_ahead);
        if new.ends_at > latest {
            return Err(SilenceError::Invalid(format!(
                "ends_at ({}) is more than {} ahead; end it by {} (service.silence_max_ahead), and make a new silence then if it is still needed",
                crate::timefmt::rfc3339(new.ends_at),
                humantime::format_duration(Duration::from_secs(self.max_ahead.max(0) as u64)),
                crate::timefmt::rfc3339(latest)
            )));
        }
        let kept = self
            .silences
            .iter()
            .filter(|s| s.ends_at.saturating_add(RETENTION_SECS) > now)
            .count();
        if kept >= MAX_SILENCES {
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
        let silence = Silence {
            id,
            matchers: new.matchers,
            starts_at,
            ends_at: new.ends_at,
            created_by: new.created_by,
            comment: new.comment,
        };
        let size = serde_json::to_vec(&silence).map_or(usize::MAX, |b| b.len());
        if size > MAX_SILENCE_BYTES {
            return Err(SilenceError::Invalid(format!(
                "the silence is {size} bytes as stored; at most {MAX_SILENCE_BYTES} are allowed: use fewer or shorter matchers, or a shorter comment"
            )));
        }
        Ok(silence)
    }

    /// Adds `silence`, or replaces the one with its id.
    pub fn insert(&mut self, silence: Silence) {
        match self.silences.iter_mut().find(|s| s.id == silence.id) {
            Some(old) => *old = silence,
            None => self.silences.push(silence),
        }
    }

    /// Ends the silence `id` now in memory (a pending one never starts).
    pub fn expire(&mut self, id: &str, now: i64) -> Result<(), SilenceError> {
        let ended = self.expiring(id, now)?;
        self.insert(ended);
        Ok(())
    }

    /// The silence `id` as it is once ended at `now`, without changing it.
    pub fn expiring(&self, id: &str, now: i64) -> Result<Silence, SilenceError> {
        let s = self
            .silences
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
        if s.state(now) == SilenceState::Expired {
            return Err(SilenceError::AlreadyExpired(id.to_string()));
        }
        let mut ended = s.clone();
        ended.starts_at = ended.starts_at.min(now);
        ended.ends_at = now;
        Ok(ended)
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

    /// Forgets silences expired more than [`RETENTION_SECS`] ago and
    /// returns their ids (their files are then deleted).
    pub fn prune(&mut self, now: i64) -> Vec<String> {
        let mut pruned = Vec::new();
        self.silences.retain(|s| {
            let keep = s.ends_at.saturating_add(RETENTION_SECS) > now;
            if !keep {
                pruned.push(s.id.clone());
            }
            keep
        });
        pruned
    }
}

/// One silence file: the silence and the layout version.
#[derive(Serialize, Deserialize)]
struct SilenceFile {
    version: u32,
    silence: Silence,
}

/// The `silences.json` of older versions: every silence in one file.
#[derive(Deserialize)]
struct LegacyFile {
    silences: Vec<Silence>,
}

/// Layout version of a silence file.
const FILE_VERSION: u32 = 1;

/// The directory of silence files, `<id>.json` each.
#[derive(Debug, Clone)]
pub struct SilenceDir {
    path: PathBuf,
}

impl SilenceDir {
    /// The directory at `path` (created by the first write).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    fn file(&self, id: &str) -> PathBuf {
        self.path.join(format!("{id}.json"))
    }

    /// The `silences.json` older versions kept beside the directory.
    fn legacy(&self) -> PathBuf {
        self.path.with_extension("json")
    }

    /// Every silence in the directory and in the older `silences.json`
    /// (a silence's own file wins). Reads only: files that are not
    /// `<id>.json`, such as the temporary file of a write that never
    /// finished, are left alone.
    pub fn load(&self) -> Result<Vec<Silence>, SilenceError> {
        let mut by_id: BTreeMap<String, Silence> = BTreeMap::new();
        let legacy = self.legacy();
        match std::fs::read(&legacy) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SilenceError::Io {
                    path: legacy,
                    source,
                })
            }
            Ok(bytes) => {
                let file: LegacyFile =
                    serde_json::from_slice(&bytes).map_err(|e| SilenceError::Corrupt {
                        path: legacy.clone(),
                        message: e.to_string(),
                    })?;
                by_id.extend(file.silences.into_iter().map(|s| (s.id.clone(), s)));
            }
        }
        let entries = match std::fs::read_dir(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(by_id.into_values().collect())
            }
            Err(source) => {
                return Err(SilenceError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
            Ok(entries) => entries,
        };
        let io = |source| SilenceError::Io {
            path: self.path.clone(),
            source,
        };
        for entry in entries {
            let path = entry.map_err(io)?.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|id| is_id(id))
            else {
                continue;
            };
            let corrupt = |message: String| SilenceError::Corrupt {
                path: path.clone(),
                message,
            };
            let bytes = std::fs::read(&path).map_err(|source| SilenceError::Io {
                path: path.clone(),
                source,
            })?;
            let file: SilenceFile =
                serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
            if file.version != FILE_VERSION {
                return Err(corrupt(format!(
                    "layout version {} is not {FILE_VERSION} (written by another kpiwatch version)",
                    file.version
                )));
            }
            if file.silence.id != id {
                return Err(corrupt(format!(
                    "it holds silence {:?}, not {id:?}",
                    file.silence.id
                )));
            }
            by_id.insert(id.to_string(), file.silence);
        }
        Ok(by_id.into_values().collect())
    }

    /// Writes `silence` to its file, atomically and durably.
    pub fn write(&self, silence: &Silence) -> Result<(), SilenceError> {
        let io = |source| SilenceError::Io {
            path: self.path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.path).map_err(io)?;
        let body = serde_json::to_vec_pretty(&SilenceFile {
            version: FILE_VERSION,
            silence: silence.clone(),
        })
        .expect("silences serialise");
        crate::durable::write_atomic(&self.file(&silence.id), &body).map_err(io)
    }

    /// Deletes the file of the silence `id` (one of kpiwatch's ids, so a
    /// file this directory's writes made); a file already gone is fine.
    pub fn remove(&self, id: &str) -> Result<(), SilenceError> {
        if !is_id(id) {
            return Ok(());
        }
        let path = self.file(id);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                crate::durable::sync_dir(&self.path);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SilenceError::Io { path, source }),
        }
    }
}

/// Whether `id` is one kpiwatch makes: 16 lower-case hex digits.
fn is_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A silence as the API lists it.
#[derive(Debug, Serialize)]
struct SilenceView<'a> {
    #[serde(flatten)]
    silence: &'a Silence,
    state: SilenceState,
}

/// A silence as a client asks for it. Regexes are still text: they are
/// compiled, with a size limit, off the async workers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceRequest {
    matchers: Vec<MatcherRequest>,
    #[serde(default, with = "opt_rfc3339_secs")]
    starts_at: Option<i64>,
    #[serde(with = "rfc3339_secs")]
    ends_at: i64,
    #[serde(default)]
    comment: String,
    /// Refused when given: the author is the name of the caller's token,
    /// which the client cannot choose.
    #[serde(default)]
    created_by: Option<serde::de::IgnoredAny>,
}

/// `{"name": "country", "equals": "FI"}`, or `not`, `in`, `regex`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatcherRequest {
    name: String,
    equals: Option<String>,
    not: Option<String>,
    #[serde(rename = "in")]
    in_: Option<Vec<String>>,
    regex: Option<String>,
}

impl SilenceRequest {
    /// The silence, by `caller`: sizes checked, then regexes compiled (the
    /// part that costs CPU).
    fn compile(self, caller: &Caller) -> Result<NewSilence, SilenceError> {
        if self.created_by.is_some() {
            return Err(SilenceError::Invalid(format!(
                "created_by is not taken from the request: kpiwatch records the name of the API token that makes the silence (here {:?}); remove created_by",
                caller.0
            )));
        }
        if self.matchers.len() > MAX_MATCHERS {
            return Err(SilenceError::Invalid(format!(
                "a silence has at most {MAX_MATCHERS} matchers, this one {}; split it, or use `in` or a regex",
                self.matchers.len()
            )));
        }
        let mut matchers = Vec::with_capacity(self.matchers.len());
        for (i, m) in self.matchers.into_iter().enumerate() {
            let at = matcher_at(i, &m.name);
            let values: Vec<&str> = m
                .equals
                .iter()
                .chain(&m.not)
                .chain(m.in_.iter().flatten())
                .chain(&m.regex)
                .map(String::as_str)
                .collect();
            check_matcher_size(&at, &m.name, &values)?;
            let test = match (m.equals, m.not, m.in_, m.regex) {
                (Some(v), None, None, None) => MatchTest::Equals(v),
                (None, Some(v), None, None) => MatchTest::Not(v),
                (None, None, Some(vs), None) => MatchTest::In(vs),
                (None, None, None, Some(r)) => MatchTest::Regex(Pattern::new(&r).map_err(|e| {
                    let e = match e {
                        regex::Error::CompiledTooBig(_) => format!(
                            "it compiles to more than {} KiB; simplify it, or list the values with \"in\"",
                            REGEX_SIZE_LIMIT / 1024
                        ),
                        e => e.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
                    };
                    SilenceError::Invalid(format!("{at}: bad regex: {e}"))
                })?),
                _ => {
                    return Err(SilenceError::Invalid(format!(
                        "{at}: give exactly one of \"equals\", \"not\", \"in\" and \"regex\", e.g. {{\"name\": \"country\", \"equals\": \"FI\"}}"
                    )))
                }
            };
            matchers.push(Matcher { name: m.name, test });
        }
        Ok(NewSilence {
            matchers,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            created_by: caller.0.clone(),
            comment: self.comment,
        })
    }
}

/// The body of `POST /api/v1/silences` read as the handler reads it
/// (axum's `Json` is `serde_json` over the bytes), then checked and its
/// regexes compiled: the part of a request a client controls, for the fuzz
/// target `silence_body` and tests. (The handler keeps axum's extractor for
/// its content-type and size rejections.)
pub fn parse_new_silence(body: &[u8], caller: &Caller) -> Result<NewSilence, SilenceError> {
    let request: SilenceRequest = serde_json::from_slice(body)
        .map_err(|e| SilenceError::Invalid(format!("not a silence: {e}")))?;
    request.compile(caller)
}

#[derive(Clone)]
struct ApiState {
    store: Arc<Mutex<SilenceStore>>,
    /// Held for the whole of a change, so changes reach the files and the
    /// store in one order; `None` for a store kept in memory only.
    writer: Arc<Mutex<Option<SilenceDir>>>,
    clock: Arc<dyn Clock>,
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
/// - `POST /api/v1/silences` (write) with `{"matchers": [{"name":
///   "country", "equals": "FI"}], "ends_at": "2024-05-01T18:00:00Z",
///   "comment": "known outage"}` (optional `starts_at`) → `{"id"}`. The
///   author is the caller's token name; a `created_by` in the body is
///   refused, so nobody believes they set it.
/// - `GET /api/v1/silences` (read) → `{"silences": [...]}` with each
///   `state`.
/// - `DELETE /api/v1/silences/{id}` (write) expires it.
///
/// Refused input gets 400 (404 for an unknown id, 413 for a body over
/// [`crate::http::BODY_LIMIT`], 415 without `Content-Type:
/// application/json`) with `{"error": "..."}`. Every change is on disk
/// before the reply.
pub fn api(store: Arc<Mutex<SilenceStore>>, clock: Arc<dyn Clock>) -> Endpoints {
    let dir = lock(&store).dir().map(SilenceDir::new);
    let state = ApiState {
        store,
        writer: Arc::new(Mutex::new(dir)),
        clock,
    };
    Endpoints {
        open: Router::new(),
        read: Router::new()
            .route("/api/v1/silences", get(list))
            .with_state(state.clone()),
        write: Router::new()
            .route("/api/v1/silences", post(create))
            .route("/api/v1/silences/{id}", delete(expire))
            .with_state(state),
    }
}

// std mutexes: no critical section awaits. Changes run on tokio's blocking
// pool, so a file write (an fsync) or a regex compile never stalls an
// async worker; the store's lock is held only for checks and inserts.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a change to the store, and its file write, on the blocking pool.
async fn change(f: impl FnOnce() -> Result<Response, SilenceError> + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => store_error(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("silence change failed: {e}"),
        ),
    }
}

async fn create(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<SilenceRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(r)) => r,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                e.status(),
                format!(
                    "the body is larger than {} bytes; a silence is at most {MAX_SILENCE_BYTES}: shorten the comment or the matchers",
                    crate::http::BODY_LIMIT
                ),
            )
        }
        Err(e) => return error(e.status(), e.body_text()),
    };
    change(move || {
        // The costly part first, with no lock held.
        let new = request.compile(&caller)?;
        let writer = lock(&s.writer);
        let now = s.clock.now();
        let silence = lock(&s.store).prepare(new, now)?;
        if let Some(dir) = writer.as_ref() {
            dir.write(&silence)?;
        }
        let id = silence.id.clone();
        let pruned = {
            let mut store = lock(&s.store);
            store.insert(silence);
            store.prune(now)
        };
        if let Some(dir) = writer.as_ref() {
            for old in pruned {
                if let Err(e) = dir.remove(&old) {
                    tracing::warn!(error = %e, "an expired silence's file was not deleted");
                }
            }
        }
        tracing::info!(silence = %id, created_by = %caller.0, "silence created");
        Ok(Json(serde_json::json!({ "id": id })).into_response())
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

async fn expire(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    change(move || {
        let writer = lock(&s.writer);
        let now = s.clock.now();
        let ended = lock(&s.store).expiring(&id, now)?;
        if let Some(dir) = writer.as_ref() {
            dir.write(&ended)?;
        }
        lock(&s.store).insert(ended);
        tracing::info!(silence = %id, by = %caller.0, "silence expired");
        Ok(Json(serde_json::json!({ "id": id, "state": SilenceState::Expired })).into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testing::transition;
    use crate::alert::Status;
    use crate::notify::route::MatchTest;

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
    fn a_request_body_is_read_as_the_api_reads_it() {
        let caller = Caller("ops".into());
        let body = br#"{"matchers": [{"name": "country", "regex": "FI|SE"}], "ends_at": "2024-05-01T14:00:00Z", "comment": "switch"}"#;
        let new = parse_new_silence(body, &caller).unwrap();
        assert_eq!((new.ends_at, new.created_by.as_str()), (NOW + 7200, "ops"));
        assert!(matches!(new.matchers[0].test, MatchTest::Regex(_)));
        let err = parse_new_silence(br#"{"matchers": [], "ends_at": 5}"#, &caller).unwrap_err();
        assert!(err.to_string().starts_with("not a silence:"), "{err}");
        let author = br#"{"matchers": [{"name": "kpi", "equals": "x"}], "ends_at": "2024-05-01T14:00:00Z", "created_by": "maria"}"#;
        let err = parse_new_silence(author, &caller).unwrap_err();
        assert!(err.to_string().contains("remove created_by"), "{err}");
    }

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
        let id = store.add(fi_checkouts(None, NOW + 60), NOW).unwrap();
        assert!(store.prune(NOW + 60 + RETENTION_SECS - 1).is_empty());
        assert_eq!(store.list(NOW).len(), 1, "kept for the record");
        assert_eq!(store.prune(NOW + 60 + RETENTION_SECS), [id]);
        assert!(store.list(NOW).is_empty());
    }

    #[test]
    fn silences_survive_a_restart_through_their_files() {
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join("silences");
        let mut store = SilenceStore::load(&path).unwrap();
        assert!(store.list(NOW).is_empty(), "no directory yet");
        let dir = SilenceDir::new(&path);
        let kept = store.prepare(fi_checkouts(None, NOW + 3600), NOW).unwrap();
        dir.write(&kept).unwrap();
        store.insert(kept.clone());
        let ended = store.expiring(&kept.id, NOW + 60).unwrap();
        dir.write(&ended).unwrap();
        assert_eq!(
            std::fs::read_dir(&path).unwrap().count(),
            1,
            "one file per silence, rewritten in place, no temporary left"
        );
        let again = SilenceStore::load(&path).unwrap();
        assert_eq!(again.list(NOW + 60), [(SilenceState::Expired, &ended)]);
    }

    #[test]
    fn adding_a_silence_writes_its_own_file_and_leaves_the_others_alone() {
        let state = tempfile::tempdir().unwrap();
        let dir = SilenceDir::new(&state.path().join("silences"));
        let store = SilenceStore::in_memory();
        let first = store.prepare(fi_checkouts(None, NOW + 3600), NOW).unwrap();
        dir.write(&first).unwrap();
        let first_file = state.path().join(format!("silences/{}.json", first.id));
        let written = std::fs::metadata(&first_file).unwrap().modified().unwrap();
        let second = store.prepare(fi_checkouts(None, NOW + 7200), NOW).unwrap();
        dir.write(&second).unwrap();
        assert_eq!(
            std::fs::metadata(&first_file).unwrap().modified().unwrap(),
            written
        );
        assert_eq!(dir.load().unwrap().len(), 2);
    }

    #[test]
    fn the_older_silences_json_is_still_read_and_a_silences_own_file_wins() {
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join("silences");
        let mut old = SilenceStore::in_memory();
        let a = old.add(fi_checkouts(None, NOW + 3600), NOW).unwrap();
        let b = old.add(fi_checkouts(None, NOW + 3600), NOW).unwrap();
        let legacy = serde_json::json!({
            "version": 1,
            "silences": old.list(NOW).into_iter().map(|(_, s)| s).collect::<Vec<_>>(),
        });
        std::fs::write(state.path().join("silences.json"), legacy.to_string()).unwrap();
        SilenceDir::new(&path)
            .write(&old.expiring(&a, NOW + 10).unwrap())
            .unwrap();

        let loaded = SilenceStore::load(&path).unwrap();
        let states: BTreeMap<&str, SilenceState> = loaded
            .list(NOW + 10)
            .into_iter()
            .map(|(st, s)| (s.id.as_str(), st))
            .collect();
        assert_eq!(
            states[a.as_str()],
            SilenceState::Expired,
            "its own file wins"
        );
        assert_eq!(states[b.as_str()], SilenceState::Active);
        assert!(state.path().join("silences.json").exists(), "never deleted");
    }

    #[test]
    fn loading_reads_only_silence_files_and_deletes_nothing() {
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join("silences");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("README"), "notes").unwrap();
        std::fs::write(path.join("0123456789abcdef.json.tmp"), "{ half").unwrap();
        assert!(SilenceStore::load(&path).unwrap().list(NOW).is_empty());
        assert!(path.join("README").exists() && path.join("0123456789abcdef.json.tmp").exists());
        SilenceDir::new(&path).remove("README").unwrap();
        assert!(path.join("README").exists(), "only silence ids are removed");
    }

    #[test]
    fn a_damaged_file_is_refused_with_what_to_do() {
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join("silences");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("0123456789abcdef.json"), "{ not json").unwrap();
        let err = SilenceStore::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("0123456789abcdef.json is damaged") && err.contains("move it away"),
            "{err}"
        );
    }

    fn refusal(store: &SilenceStore, change: impl FnOnce(&mut NewSilence)) -> String {
        let mut new = fi_checkouts(None, NOW + 3600);
        change(&mut new);
        store.prepare(new, NOW).unwrap_err().to_string()
    }

    fn equals(name: &str, value: &str) -> Matcher {
        Matcher {
            name: name.into(),
            test: MatchTest::Equals(value.into()),
        }
    }

    #[test]
    fn each_size_limit_is_refused_with_the_limit() {
        let store = SilenceStore::in_memory();
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        for (change, says) in [
            (
                Box::new(|n: &mut NewSilence| n.matchers = vec![equals("k", "v"); MAX_MATCHERS + 1])
                    as Box<dyn FnOnce(&mut NewSilence)>,
                format!("at most {MAX_MATCHERS} matchers"),
            ),
            (
                Box::new({
                    let long = long.clone();
                    move |n: &mut NewSilence| n.matchers = vec![equals("country", &long)]
                }),
                format!(
                    "matcher 1 (country): the value is {} bytes",
                    MAX_VALUE_BYTES + 1
                ),
            ),
            (
                Box::new({
                    let long = long.clone();
                    move |n: &mut NewSilence| n.matchers = vec![equals(&long, "FI")]
                }),
                "the label name is".to_string(),
            ),
            (
                Box::new(|n: &mut NewSilence| {
                    n.matchers = vec![Matcher {
                        name: "country".into(),
                        test: MatchTest::In(vec!["FI".into(); MAX_IN_VALUES + 1]),
                    }]
                }),
                format!("at most {MAX_IN_VALUES} are allowed"),
            ),
            (
                Box::new(|n: &mut NewSilence| n.comment = "c".repeat(MAX_COMMENT_BYTES + 1)),
                format!("the comment is {} bytes", MAX_COMMENT_BYTES + 1),
            ),
            (
                Box::new(|n: &mut NewSilence| n.created_by = "a".repeat(MAX_AUTHOR_BYTES + 1)),
                format!("created_by is {} bytes", MAX_AUTHOR_BYTES + 1),
            ),
            (
                Box::new(|n: &mut NewSilence| {
                    n.matchers = (0..MAX_MATCHERS)
                        .map(|i| equals(&format!("label{i}"), &"v".repeat(900)))
                        .collect()
                }),
                format!("at most {MAX_SILENCE_BYTES} are allowed"),
            ),
        ] {
            let err = refusal(&store, change);
            assert!(err.contains(&says), "{says:?} in {err}");
        }
    }

    #[test]
    fn an_end_past_the_allowed_maximum_ahead_is_refused() {
        let store = SilenceStore::in_memory().with_max_ahead(Duration::from_secs(86_400));
        assert!(store.prepare(fi_checkouts(None, NOW + 86_400), NOW).is_ok());
        let far = fi_checkouts(Some(NOW + 3600), NOW + 86_401);
        let err = store.prepare(far, NOW).unwrap_err().to_string();
        assert!(
            err.contains("more than 1day ahead") && err.contains("silence_max_ahead"),
            "{err}"
        );
        let default = SilenceStore::in_memory();
        assert!(default
            .prepare(fi_checkouts(None, NOW + 31 * 86_400), NOW)
            .is_err());
    }
}
