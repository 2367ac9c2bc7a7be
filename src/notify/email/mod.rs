//! Email notifications: one multipart message per [`Notification`], with a
//! chart of each alert inline.
//!
//! # Map
//!
//! - [`message`](mod@message) — what the email says, a pure function of
//!   the notification:
//!   - [`subject`] — the inbox line: `[FIRING:3] checkouts dropped 63%
//!     (country=FI) and 2 more`;
//!   - [`message()`] — the whole email as a lettre `Message`:
//!
//!     ```text
//!     multipart/alternative
//!     ├── text/plain                 every alert, for plain-text readers
//!     └── multipart/related
//!         ├── text/html              the same content, inline CSS only
//!         └── image/png × ≤5         charts (chart::render_png), by cid:
//!     ```
//!
//!     Headers: a deterministic `Message-ID: <{id}@kpiwatch>`,
//!     `X-Kpiwatch-Notification-Id`, `X-Kpiwatch-Status`, and a `Date` from
//!     the notification's creation, so a retried notification is the same
//!     email. The text of each alert (what changed, observed vs expected,
//!     how unusual, since when) is computed once as rows and written both
//!     as text and as HTML, so the two parts cannot disagree.
//! - [`smtp`](mod@smtp) — delivery: [`EmailSender`], lettre's pooled
//!   async SMTP transport when `[notify.smtp]` is configured, otherwise
//!   `{id}.eml` files in `mail_dir`. [`EmailSender::send`] sorts failures
//!   into [`DeliveryError::Transient`](super::DeliveryError::Transient)
//!   (retry) and [`DeliveryError::Permanent`](super::DeliveryError::Permanent)
//!   (drop) for the `deliver` worker.

#[cfg(doc)]
use super::Notification;

pub mod message;
pub mod smtp;

pub use message::{message, message_with_links, subject, MAX_CHARTS, MAX_DETAILED};
pub(crate) use smtp::tls_parameters;
pub use smtp::{eml_path, EmailError, EmailSender};
