//! Feedback on alerts: "was this alert right?", from the people who got
//! it, kept so that an analyst can tune on it.
//!
//! # Map
//!
//! - [`Verdict`] — `true` (a real problem), `false` (nothing was wrong) or
//!   `expected` (real, but known in advance: a release, a campaign).
//! - [`register`] — [`AlertRegister`](register::AlertRegister): the alerts
//!   this service fired (id, KPI, series, direction, span), fed by the
//!   service loop with every batch of transitions and appended to
//!   `<state_dir>/feedback/alerts.jsonl`, so feedback on an unknown id is
//!   a 404 and an export knows each alert's span.
//! - [`store`] — [`FeedbackStore`](store::FeedbackStore): every verdict
//!   given, one durable file per alert (`<state_dir>/feedback/verdicts/
//!   <alert_id>.json`, [`crate::durable::write_atomic`]), the latest
//!   verdict winning, all kept; bounded like the silences.
//! - [`link`] — the signed links of emails: HMAC-SHA256 over alert id,
//!   verdict and expiry, with a key from the environment.
//! - [`api`] — `POST`/`GET /api/v1/alerts/{id}/feedback` (write/read) and
//!   the page a link opens (`/feedback/{token}`, open: the token is the
//!   authority), whose button POSTs; a GET never records anything, since
//!   mail scanners and link previews fetch links.
//! - [`export`] — `kpiwatch feedback export`: the verdicts as a labels
//!   file `kpiwatch backtest` and `kpiwatch tune` read.
//!
//! Data flow: service loop → `AlertRegister::record` (transitions) → the
//! API checks ids against it → `FeedbackStore` (files) → `export` →
//! labels JSON → `backtest` / `tune`.

pub mod api;
pub mod export;
pub mod link;
pub mod register;
pub mod store;

use std::collections::BTreeMap;

use detectors::Direction;
use serde::{Deserialize, Serialize};

use crate::timefmt::rfc3339_secs;

/// The directory of feedback inside the state directory.
pub const FEEDBACK_DIR: &str = "feedback";

/// What someone says of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Something was really wrong: the alert was useful.
    #[serde(rename = "true")]
    True,
    /// Nothing was wrong: the alert was noise.
    #[serde(rename = "false")]
    False,
    /// Something really changed, but it was planned or known (a release,
    /// a campaign): neither a miss nor a false alert.
    #[serde(rename = "expected")]
    Expected,
}

impl Verdict {
    /// Every verdict, for metrics and pages.
    pub const ALL: [Verdict; 3] = [Verdict::True, Verdict::False, Verdict::Expected];

    /// `true`, `false` or `expected`, as in JSON, links and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::True => "true",
            Verdict::False => "false",
            Verdict::Expected => "expected",
        }
    }

    /// The verdict named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The verdict in words, for the link page.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::True => "useful: something was really wrong",
            Verdict::False => "not useful: nothing was wrong",
            Verdict::Expected => "expected: a known, planned change",
        }
    }
}

/// An alert as feedback needs it: which series, which way, when. Taken
/// from its transitions (see [`register`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownAlert {
    /// The alert's deterministic id.
    pub alert_id: String,
    /// Its KPI.
    pub kpi: String,
    /// Its series.
    pub labels: BTreeMap<String, String>,
    /// Drop or spike.
    pub direction: Direction,
    /// Start of its first anomalous bucket.
    #[serde(with = "rfc3339_secs")]
    pub started_at: i64,
    /// End of the bucket that fired it.
    #[serde(with = "rfc3339_secs")]
    pub fired_at: i64,
    /// End of the bucket that resolved it, once it has.
    #[serde(default, with = "opt_secs")]
    pub resolved_at: Option<i64>,
}

impl KnownAlert {
    /// The end of its span: resolved, or (still firing) its firing bucket's
    /// end.
    pub fn end(&self) -> i64 {
        self.resolved_at.unwrap_or(self.fired_at).max(self.fired_at)
    }

    /// "checkouts (country=FI), drop since 2024-05-01 12:00 UTC".
    pub fn describe(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let series = if labels.is_empty() {
            String::new()
        } else {
            format!(" ({})", labels.join(", "))
        };
        let way = self.direction.name();
        format!(
            "{}{series}, {way} since {}",
            self.kpi,
            crate::timefmt::human_utc(self.started_at)
        )
    }
}

/// Whether `id` has the shape of an alert id: 16 lower-case hex digits
/// ([`crate::alert::alert_id`]). Anything else is refused before it can
/// name a file.
pub fn is_alert_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An optional time as RFC 3339 text (or absent).
pub(crate) mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => crate::timefmt::rfc3339_secs::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "crate::timefmt::rfc3339_secs")] i64);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}
