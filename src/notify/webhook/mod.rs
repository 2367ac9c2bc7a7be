//! Webhooks: one HTTP POST per [`Notification`](super::Notification).
//!
//! # Map
//!
//! - `body` — [`body()`], the JSON body in one of three
//!   [`WebhookFormat`](super::settings::WebhookFormat)s, a pure function of
//!   the notification (the same notification always gives the same bytes,
//!   so a retry sends what the first try sent):
//!   - kpiwatch's own versioned schema ([`SCHEMA_VERSION`], documented field
//!     by field in `docs/webhooks.md`);
//!   - Alertmanager's webhook payload, version 4, so any existing
//!     Alertmanager receiver works unchanged;
//!   - a Slack incoming-webhook message with blocks.
//! - `sign` — [`signature`] / [`verify`]: Stripe-style HMAC-SHA256 over
//!   `"{timestamp}.{body}"`, sent as [`SIGNATURE_HEADER`]; the timestamp lets
//!   receivers refuse replays.
//! - `client` — [`WebhookSender`], the async shell: one pooled `reqwest`
//!   client, the per-request timeout, the headers ([`IDEMPOTENCY_KEY_HEADER`]
//!   carries the notification id) and the classification of the answer into
//!   `Ok`, [`DeliveryError::Transient`](super::DeliveryError::Transient)
//!   (retry) or [`DeliveryError::Permanent`](super::DeliveryError::Permanent)
//!   (drop). Retrying is the `deliver` worker's job, not this module's.
//!
//! Flow: `client` asks `body` for the bytes, signs them with `sign` when the
//! hook has a secret, and POSTs them. `body` and `sign` do no I/O.
//!
//! Secrets never reach an error message or a log line: the signing secret is
//! read from its environment variable at send time, and errors name the
//! receiver by its origin only (a Slack webhook URL's path *is* a secret).

mod body;
mod client;
mod sign;

pub use body::{body, SCHEMA_VERSION};
pub(crate) use client::client;
pub use client::{WebhookSender, IDEMPOTENCY_KEY_HEADER, NOTIFICATION_ID_HEADER};
pub use sign::{signature, verify, SIGNATURE_HEADER};
