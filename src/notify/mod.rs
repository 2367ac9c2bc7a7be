//! Notifications: from alert transitions to the people who subscribed.
//!
//! # Layout
//!
//! - [`settings`] — validated receivers, SMTP, retry policy.
//! - [`route`] — subscriptions and which alerts they want (KPI globs,
//!   label matchers, severity, direction); `kpiwatch routes`.
//! - [`timewindow`] — recurring active/mute windows in a time zone.
//! - [`silence`] — run-time silences (HTTP API), persisted on disk.
//! - [`group`] — the dispatcher: groups alerts per subscription, applies
//!   `group_wait`, `group_interval`, `repeat_interval`, resolved-once,
//!   silences and time windows, and emits [`Notification`]s. Pure, driven by
//!   an injected time.
//! - [`outbox`] — every notification is written here (fsync) before it is
//!   sent and removed after the receiver accepted it.
//! - [`deliver`] — one worker per receiver: in order, retries with
//!   exponential backoff and jitter, gives up after a configured age.
//! - [`email`] and [`chart`] — multipart emails via lettre with an inline
//!   PNG chart (plotters); SMTP pool or `.eml` files.
//! - [`webhook`] — kpiwatch JSON, Alertmanager and Slack bodies, HMAC
//!   signatures, via reqwest.
//! - [`notifier`] — the stage the service owns: transitions in, dispatcher
//!   state and due notifications on disk, delivery workers started.
//!
//! Flow: `Transition` → `group::Dispatcher` → `Notification` per receiver →
//! `outbox` → `deliver` worker → `email` / `webhook`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::{Status, Transition};

pub mod chart;
pub mod deliver;
pub mod email;
pub mod group;
pub mod notifier;
pub mod outbox;
pub mod phrase;
pub mod route;
pub mod settings;
pub mod silence;
pub mod timewindow;
pub mod webhook;

/// One message to one receiver about one group of alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Deterministic (alert ids and their transitions, the repeat number and
    /// the receiver): a restart or replay that produces the same
    /// notification produces the same id, and the outbox refuses it twice.
    /// Receivers get it as the idempotency key.
    pub id: String,
    /// The receiver's name.
    pub receiver: String,
    /// The subscription that routed it.
    pub subscription: String,
    /// The group's labels (the subscription's `group_by` values; `kpi` for
    /// the KPI name).
    pub group: BTreeMap<String, String>,
    /// Firing while any alert in the group fires; resolved when all have.
    pub status: Status,
    /// Why it is sent now.
    pub reason: Reason,
    /// The group's alerts, each as its latest transition; firing first.
    pub alerts: Vec<Transition>,
    /// Firing alerts of the group left out of `alerts` because the group
    /// already held [`group::MAX_ALERTS_PER_GROUP`]: the message says how
    /// many there were instead of hiding them (0 in notifications written
    /// before the field existed).
    #[serde(default)]
    pub omitted: u64,
    /// When the notifier created it, epoch milliseconds (latency, age).
    pub created_at_ms: i64,
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The group's first notification.
    New,
    /// Alerts were added to, escalated in or resolved in a group already
    /// notified.
    Update,
    /// Nothing changed for `repeat_interval`: a reminder.
    Repeat,
    /// Every alert in the group resolved.
    Resolved,
}

impl Notification {
    /// The alerts still firing.
    pub fn firing(&self) -> impl Iterator<Item = &Transition> {
        self.alerts.iter().filter(|a| a.status == Status::Firing)
    }

    /// The alerts that resolved.
    pub fn resolved(&self) -> impl Iterator<Item = &Transition> {
        self.alerts.iter().filter(|a| a.status == Status::Resolved)
    }
}

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver may accept it later (connection refused, timeout, 5xx,
    /// 429, SMTP 4xx): retried with backoff.
    #[error("{0} (will retry)")]
    Transient(String),
    /// The receiver refused it for good (4xx, SMTP 5xx, a bad address):
    /// dropped and counted.
    #[error("{0} (not retried)")]
    Permanent(String),
}

impl DeliveryError {
    /// A short, bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            DeliveryError::Transient(_) => "transient",
            DeliveryError::Permanent(_) => "permanent",
        }
    }
}
