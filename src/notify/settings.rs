//! Validated notification settings: where messages go and how delivery
//! behaves. `config::model` builds these from `[notify]`, `[[receiver]]`,
//! `[[subscription]]` and `[[time_window]]`; the notifier reads them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::route::Subscription;
use super::timewindow::TimeWindow;

/// Everything about notifications.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// SMTP relay; `None` writes each email as an `.eml` file to `mail_dir`
    /// (lettre's file transport).
    pub smtp: Option<Smtp>,
    /// Where `.eml` files go without an SMTP relay.
    pub mail_dir: PathBuf,
    /// The From address of every email.
    pub from: String,
    /// Where the durable outbox lives (one directory per receiver).
    pub outbox_dir: PathBuf,
    /// Base URL of this kpiwatch, for links in notifications (Alertmanager's
    /// `externalURL`).
    pub external_url: Option<String>,
    /// Retry policy shared by every receiver.
    pub retry: Retry,
    /// Named receivers, in file order.
    pub receivers: Vec<Receiver>,
    /// Subscriptions, in file order.
    pub subscriptions: Vec<Subscription>,
    /// Named recurring time windows that subscriptions refer to.
    pub time_windows: Vec<TimeWindow>,
    /// The feedback links of emails (`feedback_key_env`,
    /// `feedback_link_ttl`); `None` when no key variable is named.
    pub feedback_links: Option<crate::feedback::link::LinkSettings>,
}

impl NotifySettings {
    /// No receivers, no subscriptions: nothing is sent.
    pub fn none(state_dir: &std::path::Path) -> Self {
        Self {
            smtp: None,
            mail_dir: state_dir.join("mail"),
            from: "kpiwatch <kpiwatch@localhost>".to_string(),
            outbox_dir: state_dir.join("outbox"),
            external_url: None,
            retry: Retry::default(),
            receivers: Vec::new(),
            subscriptions: Vec::new(),
            time_windows: Vec::new(),
            feedback_links: None,
        }
    }

    /// The receiver called `name`.
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// First wait after a failure.
    pub initial: Duration,
    /// Longest wait between tries (the backoff doubles up to this).
    pub max: Duration,
    /// A notification still undelivered this long after it was created is
    /// given up and counted as dropped.
    pub give_up_after: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// An SMTP relay.
#[derive(Debug, Clone, PartialEq)]
pub struct Smtp {
    /// Host name (also the TLS server name).
    pub host: String,
    /// Port (default 587 for STARTTLS, 465 for TLS, 25 for none).
    pub port: u16,
    /// How the connection is secured.
    pub security: SmtpSecurity,
    /// Environment variable holding the user name (default
    /// `KPIWATCH_SMTP_USERNAME`); no credentials when it is unset.
    pub username_env: String,
    /// Environment variable holding the password (default
    /// `KPIWATCH_SMTP_PASSWORD`).
    pub password_env: String,
    /// Per-message timeout.
    pub timeout: Duration,
    /// Connections kept open and reused (lettre's pool).
    pub pool_size: u32,
    /// Certificate authorities trusted for the relay's certificate besides
    /// the built-in web roots.
    pub ca: Option<CaFile>,
}

/// A PEM file of certificate authorities, read when the configuration is
/// validated, so a missing or unreadable file is a configuration error
/// and not a delivery failure hours later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    /// Where it was read from, for messages.
    pub path: PathBuf,
    /// The file's contents: one or more PEM certificates.
    pub pem: Vec<u8>,
}

/// SMTP connection security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
    /// No TLS: only for a relay on localhost.
    None,
}

/// A named destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    /// Unique name, used by subscriptions, metrics and the outbox.
    pub name: String,
    /// What kind of destination.
    pub kind: ReceiverKind,
}

/// Email or webhook.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    /// One email to all these addresses per notification.
    Email {
        /// Recipient addresses.
        to: Vec<String>,
    },
    /// An HTTP POST per notification.
    Webhook(Webhook),
}

/// A webhook receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// Where to POST (http or https).
    pub url: String,
    /// Body format.
    pub format: WebhookFormat,
    /// Environment variable with the HMAC-SHA256 secret; when set (and the
    /// variable is non-empty), requests carry a signature header.
    pub secret_env: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Extra headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// Certificate authorities trusted for an https URL besides the
    /// built-in web roots.
    pub ca: Option<CaFile>,
}

/// Webhook body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// kpiwatch's own versioned JSON.
    Kpiwatch,
    /// Alertmanager's webhook payload (version 4).
    Alertmanager,
    /// A Slack incoming-webhook message with blocks.
    Slack,
}
