//! The service configuration as written: serde structs that mirror the TOML
//! one to one. Unknown keys are refused; values an analyst may get wrong are
//! [`Spanned`] so validation can point at them. `model.rs` turns these into
//! runtime types.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::DetectorsToml;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigToml {
    /// How the service listens and where it keeps state.
    #[serde(default)]
    pub service: ServiceToml,
    /// How to reach Kafka.
    #[serde(default)]
    pub kafka: KafkaToml,
    /// The topics events are read from.
    #[serde(default, rename = "topic")]
    pub topics: Vec<TopicToml>,
    /// Settings every KPI inherits unless it sets them itself.
    #[serde(default)]
    pub defaults: KpiToml,
    /// The KPIs.
    #[serde(default, rename = "kpi")]
    pub kpis: Vec<KpiToml>,
    /// How notifications are delivered (sender, SMTP, retries).
    /// (Not `Spanned`: toml cannot locate a table that exists only
    /// through `[notify.smtp]`.)
    pub notify: Option<NotifyToml>,
    /// Named destinations: an email list or a webhook.
    #[serde(default, rename = "receiver")]
    pub receivers: Vec<Spanned<ReceiverToml>>,
    /// Named recurring time windows that subscriptions refer to.
    #[serde(default, rename = "time_window")]
    pub time_windows: Vec<Spanned<TimeWindowToml>>,
    /// Who wants which alerts, and how often.
    #[serde(default, rename = "subscription")]
    pub subscriptions: Vec<Spanned<SubscriptionToml>>,
    /// Named calendars of expected events (holidays, Black Friday, a
    /// migration) that KPIs name in `calendars`.
    #[serde(default, rename = "calendar")]
    pub calendars: Vec<Spanned<CalendarToml>>,
}

/// `[service]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceToml {
    /// Address of the HTTP server for /metrics, /healthz and /readyz
    /// (default "127.0.0.1:9898").
    pub listen: Option<Spanned<String>>,
    /// Directory for state snapshots and the alert log (default
    /// "./kpiwatch-state").
    pub state_dir: Option<String>,
    /// Append every alert transition as one JSON line to this file.
    pub alert_log: Option<String>,
    /// How often learned state is written to `state_dir` (default "30s").
    /// Kafka offsets are committed only up to the last snapshot, so a
    /// restart resumes with baselines and alert states intact.
    pub snapshot_interval: Option<Spanned<String>>,
    /// PEM certificate chain for https on `listen` (with `key_file`).
    pub cert_file: Option<Spanned<String>>,
    /// PEM private key of `cert_file`'s certificate.
    pub key_file: Option<Spanned<String>>,
    /// A silence must end at most this long after it is made (default
    /// "30d").
    pub silence_max_ahead: Option<Spanned<String>>,
    /// Bearer tokens of the HTTP API, each read from an environment
    /// variable.
    #[serde(default, rename = "api_token")]
    pub api_tokens: Vec<Spanned<ApiTokenToml>>,
    /// /readyz fails when the service loop has finished no batch for this
    /// long while messages wait for it (read and queued, or on the broker
    /// and not yet read): the loop is stuck or far behind (default "1m";
    /// "1s" to "1d").
    pub stall_after: Option<Spanned<String>>,
}

/// `[[service.api_token]]`: a bearer token of the HTTP API. The token is
/// read from the environment when the service starts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenToml {
    /// Who holds it, e.g. "ops" or "prometheus"; the silences it makes
    /// record it as their author (letters, digits, '.', '_', '-', '@'; at
    /// most 64).
    pub name: Option<Spanned<String>>,
    /// Environment variable holding the token (16 characters or more).
    pub env: Option<Spanned<String>>,
    /// "write" (default): reads and changes (silences); "read": /metrics
    /// and listing silences only.
    pub scope: Option<Spanned<String>>,
    /// Refused: tokens do not belong in config files (use `env`).
    pub token: Option<Spanned<toml::Value>>,
}

/// `[kafka]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaToml {
    /// Bootstrap servers, "host:port[,host:port]" (default "localhost:9092").
    pub brokers: Option<String>,
    /// Consumer group; instances in one group split the partitions (default
    /// "kpiwatch").
    pub group_id: Option<String>,
    /// Malformed events are produced to this topic when set.
    pub dead_letter_topic: Option<String>,
    /// Extra librdkafka properties, passed as they are and checked by
    /// librdkafka (e.g. "security.protocol" = "SASL_PLAINTEXT",
    /// "session.timeout.ms" = 6000). No secrets: SASL credentials come from
    /// KPIWATCH_KAFKA_USERNAME and KPIWATCH_KAFKA_PASSWORD, and any other
    /// property can be read from an environment variable with the `_env`
    /// suffix: "ssl.key.password_env" = "KAFKA_SSL_KEY_PASSWORD".
    #[serde(default)]
    pub options: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    /// Where a partition the group has no committed offset for starts:
    /// "committed" (default: after `kpiwatch warm`, at the history's end;
    /// otherwise at the earliest message the topic retains), "earliest"
    /// (learn from everything the topic retains) or "latest" (only new
    /// messages). A committed offset always wins.
    pub start_from: Option<Spanned<String>>,
}

/// `[[topic]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicToml {
    /// Kafka topic name.
    pub name: Spanned<String>,
    /// Dotted path of the field holding the event time (default "time").
    pub time_field: Option<Spanned<String>>,
    /// "rfc3339" (default), "epoch_seconds" or "epoch_millis".
    pub time_format: Option<Spanned<String>>,
    /// A partition with no message for this long stops holding the
    /// watermark back, and a topic that is entirely quiet is advanced by the
    /// wall clock, so empty buckets close (default "30s").
    pub idle_timeout: Option<Spanned<String>>,
    /// How far ahead of its partition's newest event time an event may be
    /// (and, in `run`, of the wall clock) before it is refused and counted
    /// as too far ahead instead of moving the partition's time (default
    /// "15m"; "1s" to "7d"). A partition that really jumps (a producer
    /// silent for hours, a quiet night missing from a file) is followed
    /// once three events in a row agree on the jump, or live when the
    /// events agree with the wall clock; one stray event is refused.
    pub max_ahead: Option<Spanned<String>>,
}

/// `[kpi.alerting]` / `[defaults.alerting]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingToml {
    /// How many false alerts of this KPI (all its series together) are
    /// acceptable per period: "1/month" (default), "2/week", "1/quarter";
    /// periods day, week, month (30 days), quarter (91 days), year. The
    /// rarer, the stronger the evidence an alert needs.
    pub false_alarms: Option<Spanned<String>>,
    /// Instead of `false_alarms`: a fixed score (0-1, from the evidence's
    /// tail probability p as -log10(p)/12) from which a bucket is
    /// anomalous, for every series alike.
    pub threshold: Option<Spanned<f64>>,
    /// Score from which an anomaly is critical rather than a warning
    /// (default: evidence a thousand times rarer than the alert level).
    pub critical: Option<Spanned<f64>>,
    /// Consecutive anomalous buckets before an alert fires (default 1).
    pub fire_after: Option<Spanned<i64>>,
    /// Consecutive normal buckets before a firing alert resolves
    /// (default 3): one quiet bucket does not end an incident.
    pub resolve_after: Option<Spanned<i64>>,
    /// Recent bucket values carried in each alert, for charts (default 24).
    pub recent_buckets: Option<Spanned<i64>>,
}

/// `[[kpi]]`, and `[defaults]` (which may set only the settings below
/// `group_by`, and every KPI inherits). One struct serves both because
/// `serde(flatten)` would lose the spans that errors point at.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiToml {
    /// Unique name, used in alerts and metrics.
    pub name: Option<Spanned<String>>,
    /// What the KPI means, for people reading alerts.
    pub description: Option<Spanned<String>>,
    /// Link to the runbook, shown in every notification about this KPI.
    pub runbook: Option<Spanned<String>>,
    /// Link to a dashboard of this KPI, shown in notifications.
    pub dashboard: Option<Spanned<String>>,
    /// Topic the events come from (default: the only `[[topic]]`).
    pub topic: Option<Spanned<String>>,
    /// Which events count: `field = value` (equals), `field = { not = v }`,
    /// `field = { in = [..] }`, `field = { exists = true|false }`. Fields
    /// are dotted paths into the JSON event.
    #[serde(rename = "where")]
    pub filter: Option<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    /// "count", "sum", "avg", "min", "max", "distinct" or "ratio".
    pub aggregate: Option<Spanned<String>>,
    /// The field aggregated by sum/avg/min/max/distinct (dotted path).
    pub field: Option<Spanned<String>>,
    /// For "ratio": the KPI divided.
    pub numerator: Option<Spanned<String>>,
    /// For "ratio": the KPI divided by.
    pub denominator: Option<Spanned<String>>,
    /// Fields whose values split the KPI into series, e.g. ["country"].
    pub group_by: Option<Vec<Spanned<String>>>,
    /// Bucket width: "1m", "5m", "1h" (default "5m").
    pub bucket: Option<Spanned<String>>,
    /// How late an event may arrive after its bucket ended and still count
    /// (default "1m"). Later events are dropped and counted.
    pub lateness: Option<Spanned<String>>,
    /// IANA time zone for daily and weekly seasonality (default "UTC").
    pub timezone: Option<Spanned<String>>,
    /// Most series one KPI may have; past it, new label combinations are
    /// folded into one series whose labels read "__other__" (default 1000).
    pub max_series: Option<Spanned<i64>>,
    /// A series with no events for this long is forgotten (default "7d").
    pub evict_after: Option<Spanned<String>>,
    /// Which departures alert: "drop", "spike" or "both" (default "both").
    pub direction: Option<Spanned<String>>,
    /// Buckets with fewer events than this are not judged (default 0).
    pub min_volume: Option<Spanned<f64>>,
    /// Detector choice and thresholds.
    pub detectors: Option<Spanned<DetectorsToml>>,
    /// When a series alerts and when it recovers.
    pub alerting: Option<Spanned<AlertingToml>>,
    /// Calendars of expected events this KPI follows: a name mutes alerts
    /// during the calendar ("de-holidays"); `{ name = "black-friday",
    /// widen = 100 }` asks for evidence 100 times rarer instead. Buckets
    /// inside any of them are not learnt.
    pub calendars: Option<Spanned<Vec<Spanned<toml::Value>>>>,
}

/// `[notify]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyToml {
    /// The From of every email, e.g. "kpiwatch <alerts@shop.example>"
    /// (default "kpiwatch <kpiwatch@localhost>").
    pub from: Option<Spanned<String>>,
    /// Base URL of this kpiwatch, for links in notifications, e.g.
    /// "https://kpiwatch.shop.example".
    pub external_url: Option<Spanned<String>>,
    /// Without `[notify.smtp]`, each email is written here as an `.eml`
    /// file (default: `mail` inside `service.state_dir`).
    pub mail_dir: Option<String>,
    /// A notification still undelivered this long after it was made is
    /// dropped and counted (default "24h").
    pub give_up_after: Option<Spanned<String>>,
    /// First wait after a failed delivery (default "1s"); it doubles on
    /// each failure up to `retry_max`.
    pub retry_initial: Option<Spanned<String>>,
    /// Longest wait between delivery attempts (default "5m").
    pub retry_max: Option<Spanned<String>>,
    /// An SMTP relay; without it emails are written to `mail_dir`.
    pub smtp: Option<Spanned<SmtpToml>>,
    /// The environment variable holding the key (at least 32 characters)
    /// that signs the "useful" / "not useful" links of emails, e.g.
    /// "KPIWATCH_FEEDBACK_KEY"; links also need `external_url`.
    pub feedback_key_env: Option<Spanned<String>>,
    /// How long an email's feedback links work (default "14d").
    pub feedback_link_ttl: Option<Spanned<String>>,
}

/// `[notify.smtp]`. Credentials come only from the environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpToml {
    /// Host name of the relay (also the TLS server name).
    pub host: Option<Spanned<String>>,
    /// Port (default 587 for "starttls", 465 for "tls", 25 for "none").
    pub port: Option<Spanned<i64>>,
    /// "starttls" (default), "tls" or "none" (only for a relay on the same
    /// host or network).
    pub security: Option<Spanned<String>>,
    /// Per-message timeout (default "10s").
    pub timeout: Option<Spanned<String>>,
    /// PEM file of certificate authorities trusted for the relay's
    /// certificate besides the built-in web roots (an internal CA).
    pub ca_file: Option<Spanned<String>>,
    /// Connections kept open and reused (default 4).
    pub pool_size: Option<Spanned<i64>>,
    /// Environment variable holding the user name (default
    /// "KPIWATCH_SMTP_USERNAME"); without it, no login.
    pub username_env: Option<Spanned<String>>,
    /// Environment variable holding the password (default
    /// "KPIWATCH_SMTP_PASSWORD").
    pub password_env: Option<Spanned<String>>,
    /// Refused: secrets do not belong in config files (use `username_env`).
    pub username: Option<Spanned<toml::Value>>,
    /// Refused: secrets do not belong in config files (use `password_env`).
    pub password: Option<Spanned<toml::Value>>,
}

/// `[[receiver]]`: exactly one of `email` and `webhook`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverToml {
    /// Unique name that subscriptions use.
    pub name: Option<Spanned<String>>,
    /// Email addresses; one email per notification goes to all of them.
    pub email: Option<Spanned<Vec<Spanned<String>>>>,
    /// An HTTP endpoint that gets one POST per notification.
    pub webhook: Option<Spanned<WebhookToml>>,
}

/// `webhook = { ... }` of a receiver.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookToml {
    /// Where to POST: an http:// or https:// URL.
    pub url: Option<Spanned<String>>,
    /// Body format: "kpiwatch" (default), "alertmanager" or "slack".
    pub format: Option<Spanned<String>>,
    /// Environment variable holding an HMAC-SHA256 secret; when it is set,
    /// requests carry a signature header.
    pub secret_env: Option<Spanned<String>>,
    /// Per-request timeout (default "10s").
    pub timeout: Option<Spanned<String>>,
    /// PEM file of certificate authorities trusted for an https URL's
    /// certificate besides the built-in web roots (an internal CA).
    pub ca_file: Option<Spanned<String>>,
    /// Extra headers sent with every request, e.g. { "X-Team" = "shop" }.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
}

/// `[[time_window]]`: a recurring window in a time zone. Every listed
/// condition must hold; a condition left out holds always.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindowToml {
    /// Unique name that subscriptions use in `active_during`/`mute_during`.
    pub name: Option<Spanned<String>>,
    /// Days of the week: "mon", "sat-sun", "mon-fri" (default every day).
    pub weekdays: Option<Vec<Spanned<String>>>,
    /// Times of day "HH:MM-HH:MM" (default the whole day); "22:00-02:00"
    /// crosses midnight and belongs to the day it starts on.
    pub times: Option<Vec<Spanned<String>>>,
    /// Days of the month: "1", "1:7", "-1" (the last day), "-7:-1"
    /// (default every day).
    pub days_of_month: Option<Vec<Spanned<String>>>,
    /// Months: "jan", "jan-mar", "12" (default every month).
    pub months: Option<Vec<Spanned<String>>>,
    /// IANA time zone whose wall clock the window follows, e.g.
    /// "Europe/Helsinki" (default "UTC").
    pub timezone: Option<Spanned<String>>,
}

/// `[[subscription]]`: which alerts, to whom, how grouped and how often.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionToml {
    /// Unique name, shown in notifications and `kpiwatch routes`.
    pub name: Option<Spanned<String>>,
    /// KPI name globs, e.g. ["checkout*", "conversion"] (default every KPI).
    pub kpis: Option<Vec<Spanned<String>>>,
    /// Label matchers, all of which must hold: `label = "value"` (equals),
    /// `label = { not = "v" }`, `label = { in = ["a", "b"] }`,
    /// `label = { regex = "FI|SE" }` (whole value). `kpi` is the KPI name;
    /// an absent label reads as "".
    pub labels: Option<BTreeMap<String, Spanned<toml::Value>>>,
    /// "warning" (default) or "critical": alerts below it are not sent.
    pub min_severity: Option<Spanned<String>>,
    /// "drop", "spike" or "both" (default).
    pub direction: Option<Spanned<String>>,
    /// Receiver names; each must be a `[[receiver]]`.
    pub receivers: Option<Spanned<Vec<Spanned<String>>>>,
    /// Labels whose values split alerts into separate messages (default
    /// ["kpi"]); ["..."] sends every alert series alone, [] one message for
    /// all.
    pub group_by: Option<Vec<Spanned<String>>>,
    /// How long a new group waits for more alerts before its first message
    /// (default "30s"; "0s" sends at once).
    pub group_wait: Option<Spanned<String>>,
    /// Least time between messages about changes to a group: new alerts,
    /// recoveries (default "5m").
    pub group_interval: Option<Spanned<String>>,
    /// A group still firing with nothing new is re-sent after this long
    /// (default "4h").
    pub repeat_interval: Option<Spanned<String>>,
    /// Send a message when alerts recover (default true).
    pub send_resolved: Option<bool>,
    /// Time window names: send only inside one of them (default always).
    pub active_during: Option<Vec<Spanned<String>>>,
    /// Time window names: never send inside them; held messages go out
    /// when the window ends.
    pub mute_during: Option<Vec<Spanned<String>>>,
}

/// `[[calendar]]`: expected events in a time zone. Every listed date, span
/// and recurring day belongs to the calendar.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarToml {
    /// Unique name that KPIs use in `calendars`.
    pub name: Option<Spanned<String>>,
    /// IANA time zone whose wall clock the dates and times are read on,
    /// e.g. "Europe/Berlin" (default "UTC").
    pub timezone: Option<Spanned<String>>,
    /// Whole local days: ["2026-12-25", "2026-12-26"] (quoted or TOML
    /// dates).
    pub dates: Option<Vec<Spanned<toml::Value>>>,
    /// Spans with local times: [{ start = "2026-11-27T00:00", end =
    /// "2026-11-28T06:00" }]; the end is outside.
    pub spans: Option<Vec<Spanned<CalendarSpanToml>>>,
    /// Recurring days: yearly dates "12-25", weekdays "sun", either with
    /// times: "12-24 14:00-24:00", "sun 02:00-04:00".
    pub every: Option<Vec<Spanned<String>>>,
}

/// One `spans` entry of a `[[calendar]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpanToml {
    /// First local time inside, "2026-11-27T00:00".
    pub start: Option<Spanned<toml::Value>>,
    /// First local time outside, "2026-11-28T06:00".
    pub end: Option<Spanned<toml::Value>>,
}
