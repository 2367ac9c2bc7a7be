//! The validated configuration the service runs on, and the validation
//! that builds it from [`super::raw`]. Every check names the key, what is
//! allowed, and points at the value.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use detectors::SetConfig;
use toml::Spanned;

use super::raw::{AlertingToml, ConfigToml, KpiToml, TopicToml};
use super::{detector_config, ConfigError, Source};

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP and state settings.
    pub service: Service,
    /// Kafka connection.
    pub kafka: Kafka,
    /// Topics read, in file order; [`Kpi::topic`] indexes this.
    pub topics: Vec<Topic>,
    /// KPIs, in file order; ratios index this.
    pub kpis: Vec<Kpi>,
    /// Receivers, subscriptions and delivery.
    pub notify: crate::notify::settings::NotifySettings,
}

/// `[service]`.
#[derive(Debug, Clone)]
pub struct Service {
    /// Address of /metrics, /healthz, /readyz.
    pub listen: SocketAddr,
    /// Where state snapshots live.
    pub state_dir: PathBuf,
    /// Optional JSONL file of alert transitions.
    pub alert_log: Option<PathBuf>,
    /// How often learned state is snapshotted.
    pub snapshot_interval: Duration,
    /// Tokens, TLS and silence limits of the HTTP API.
    pub api: crate::http::ApiSettings,
    /// /readyz fails when no batch was processed for this long while
    /// messages wait.
    pub stall_after: Duration,
}

/// `[kafka]` (the settings type is the Kafka module's, which must not
/// import the config).
pub use crate::kafka::Kafka;

/// How event time is written in a topic's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// An RFC 3339 string.
    Rfc3339,
    /// A number of seconds since the epoch (fractions allowed).
    EpochSeconds,
    /// A number of milliseconds since the epoch.
    EpochMillis,
}

/// `[[topic]]`.
#[derive(Debug, Clone)]
pub struct Topic {
    /// Kafka topic name.
    pub name: String,
    /// Where the event time is.
    pub time_field: FieldPath,
    /// How it is written.
    pub time_format: TimeFormat,
    /// After this long without messages a partition stops holding the
    /// watermark back.
    pub idle_timeout: Duration,
    /// How far ahead of its partition's time (and the wall clock) an event
    /// may be before it is refused, unless the jump is confirmed.
    pub max_ahead: Duration,
}

/// A dotted path into a JSON event, e.g. `payment.amount`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<String>);

impl FieldPath {
    fn parse(text: &str) -> Option<Self> {
        let parts: Vec<String> = text.split('.').map(str::to_string).collect();
        (!text.is_empty() && parts.iter().all(|p| !p.is_empty())).then_some(Self(parts))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// A scalar a filter compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    Str(String),
    /// A number (integers compare as floats).
    Num(f64),
    /// A boolean.
    Bool(bool),
}

/// One test on one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// Field equals the value.
    Equals(Scalar),
    /// Field is present and differs from the value, or is absent.
    NotEquals(Scalar),
    /// Field equals one of the values.
    In(Vec<Scalar>),
    /// Field is present (true) or absent (false).
    Exists(bool),
}

/// A test on one field of the event.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The field.
    pub field: FieldPath,
    /// The test.
    pub test: Test,
}

/// How a KPI aggregates the events of a bucket.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// Number of matching events.
    Count,
    /// Sum of a numeric field.
    Sum(FieldPath),
    /// Mean of a numeric field.
    Avg(FieldPath),
    /// Smallest value of a numeric field.
    Min(FieldPath),
    /// Largest value of a numeric field.
    Max(FieldPath),
    /// Approximate number of distinct values of a field (bounded memory).
    Distinct(FieldPath),
}

impl Aggregate {
    /// Whether an empty bucket has the value 0 (rather than no value):
    /// true for count, sum and distinct, which is what makes "no checkouts
    /// at all" visible.
    pub fn zero_when_empty(&self) -> bool {
        matches!(self, Self::Count | Self::Sum(_) | Self::Distinct(_))
    }

    /// The field aggregated, if any.
    pub fn field(&self) -> Option<&FieldPath> {
        match self {
            Self::Count => None,
            Self::Sum(f) | Self::Avg(f) | Self::Min(f) | Self::Max(f) | Self::Distinct(f) => {
                Some(f)
            }
        }
    }
}

/// What a KPI measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// An aggregate of the matching events.
    Events {
        /// All conditions must hold.
        filter: Vec<Condition>,
        /// How matching events become a value.
        aggregate: Aggregate,
    },
    /// One event KPI divided by another, per series and bucket.
    Ratio {
        /// Index of the numerator KPI.
        numerator: usize,
        /// Index of the denominator KPI.
        denominator: usize,
    },
}

/// Which departures from normal alert (an alert type: the notifiers'
/// routes read it too).
pub use crate::alert::Interest;

/// How rare evidence must be to fire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AlertLevel {
    /// At most this many false alerts per second, for the KPI's series
    /// together (`false_alarms`): each series' level is this budget shared
    /// out over its series and its buckets.
    Budget {
        /// False alerts per second.
        per_second: f64,
    },
    /// A fixed score (`threshold`), for every series alike.
    Score(f64),
}

impl AlertLevel {
    /// The tail probability (after the detectors' own multiple-test
    /// correction) at or below which a bucket of one of `series` series of
    /// `bucket`-second buckets is anomalous.
    pub fn p_star(&self, bucket: i64, series: usize) -> f64 {
        match *self {
            AlertLevel::Budget { per_second } => {
                (per_second * bucket as f64 / series.max(1) as f64).min(0.5)
            }
            AlertLevel::Score(s) => detectors::combine::tail_of_score(s),
        }
    }
}

/// When a series alerts and recovers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alerting {
    /// How rare evidence must be to fire.
    pub level: AlertLevel,
    /// Score from which an anomaly is critical, if set; otherwise evidence
    /// a thousand times rarer than the alert level is.
    pub critical: Option<f64>,
    /// Consecutive anomalous buckets before firing.
    pub fire_after: u32,
    /// Consecutive normal buckets before resolving.
    pub resolve_after: u32,
    /// Recent bucket values carried in alerts.
    pub recent_buckets: usize,
}

/// A validated KPI.
#[derive(Debug, Clone)]
pub struct Kpi {
    /// Unique name.
    pub name: String,
    /// What it means.
    pub description: Option<String>,
    /// Runbook link for notifications.
    pub runbook: Option<String>,
    /// Dashboard link for notifications.
    pub dashboard: Option<String>,
    /// Index into [`Config::topics`].
    pub topic: usize,
    /// What is measured.
    pub measure: Measure,
    /// Fields that split the KPI into series.
    pub group_by: Vec<FieldPath>,
    /// Bucket width in seconds.
    pub bucket: i64,
    /// Allowed lateness in seconds.
    pub lateness: i64,
    /// Time zone of the seasonality.
    pub timezone: Tz,
    /// Cap on live series.
    pub max_series: usize,
    /// A series silent this many seconds is forgotten.
    pub evict_after: i64,
    /// Which departures alert.
    pub direction: Interest,
    /// Buckets with fewer events are not judged.
    pub min_volume: f64,
    /// Detectors for each series.
    pub detectors: SetConfig,
    /// Alert lifecycle settings.
    pub alerting: Alerting,
    /// Calendars of expected events this KPI follows, with their effects.
    pub calendars: Vec<crate::calendar::CalendarUse>,
}

const DAY: i64 = 86_400;

/// `[[topic]] max_ahead` unless set. Minutes, not days: producers' clocks
/// disagree by seconds (devices by a few minutes), an event accepted this
/// far ahead can close at most this much of its partition's time early
/// (three 5-minute buckets), and a real gap of any length is followed once
/// three events agree on it, so a larger value would only let worse clocks
/// do more damage.
pub const DEFAULT_MAX_AHEAD: Duration = Duration::from_secs(15 * 60);

/// `[service] stall_after` unless set: far above a batch (under a
/// millisecond) or a snapshot (seconds), well inside the first minutes in
/// which someone wants to hear that KPIs are no longer watched.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(60);

/// Reads and validates a service configuration file.
pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    validate(&Source::new(path, &text))
}

/// Validates a service configuration: everything [`validate_parts`]
/// checks, and that there is something to watch (a topic, and KPIs reading
/// every topic), which `run` needs.
pub fn validate(src: &Source<'_>) -> Result<Config, ConfigError> {
    validate_as(src, Use::Service)
}

/// Validates every section a file has, without asking for topics and KPIs:
/// for `kpiwatch score --config`, whose files may hold only
/// `[defaults.detectors]`.
pub fn validate_parts(src: &Source<'_>) -> Result<Config, ConfigError> {
    validate_as(src, Use::Parts)
}

/// What a file is validated for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// `run`, `replay`, `check`...: a service that must watch something.
    Service,
    /// `score --config`: only the sections present.
    Parts,
}

fn validate_as(src: &Source<'_>, usage: Use) -> Result<Config, ConfigError> {
    let raw: ConfigToml = src.parse()?;
    let mut service = Service {
        listen: match &raw.service.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 9898)),
            Some(l) => l.get_ref().parse().map_err(|_| {
                src.error(
                    l.span(),
                    format!(
                        "service.listen = {:?} is not an address; write host:port, e.g. \"0.0.0.0:9898\"",
                        l.get_ref()
                    ),
                )
            })?,
        },
        state_dir: PathBuf::from(raw.service.state_dir.as_deref().unwrap_or("kpiwatch-state")),
        alert_log: raw.service.alert_log.as_ref().map(PathBuf::from),
        snapshot_interval: match &raw.service.snapshot_interval {
            None => Duration::from_secs(30),
            Some(d) => duration(src, d, "snapshot_interval", Duration::from_secs(1), Duration::from_secs(DAY as u64))?,
        },
        api: crate::http::ApiSettings::default(),
        stall_after: match &raw.service.stall_after {
            None => DEFAULT_STALL_AFTER,
            Some(d) => duration(src, d, "stall_after", Duration::from_secs(1), Duration::from_secs(DAY as u64))?,
        },
    };
    service.api = super::api::api(src, &raw.service)?;
    let kafka = super::kafka::kafka(src, &raw.kafka)?;
    let mut topics = Names::default();
    for t in &raw.topics {
        let topic = topic(src, t)?;
        if topics.index(&topic.name).is_some() {
            return Err(src.error(
                t.name.span(),
                format!(
                    "topic {:?} is defined twice; keep one [[topic]] per name",
                    topic.name
                ),
            ));
        }
        topics.push(topic.name.clone(), topic);
    }
    refuse_identity_keys_in_defaults(src, &raw.defaults)?;
    // Defaults are checked even when no KPI inherits them yet: a mistake
    // there must not wait for the KPI that first uses it.
    if let Some(d) = &raw.defaults.detectors {
        detector_config(src, d.get_ref(), 300)?;
    }
    alerting(src, raw.defaults.alerting.as_ref().map(Spanned::get_ref))?;
    let calendars = super::calendar::calendars(src, &raw)?;
    super::calendar::uses(src, &KpiToml::default(), &raw.defaults, &calendars)?;
    let mut kpis = Names::default();
    for k in &raw.kpis {
        let mut kpi = kpi(src, k, &raw.defaults, &topics, &kpis)?;
        kpi.calendars = super::calendar::uses(src, k, &raw.defaults, &calendars)?;
        kpis.push(kpi.name.clone(), kpi);
    }
    let (topics, kpis) = (topics.items, kpis.items);
    if usage == Use::Service {
        something_to_watch(src, &raw, &topics, &kpis)?;
    }
    let notify = super::notify::notify(src, &raw, &service.state_dir, &kpis)?;
    Ok(Config {
        service,
        kafka,
        topics,
        kpis,
        notify,
    })
}

/// Items in file order with an index by name, so that "defined twice" and
/// references by name ("the KPI named X") cost one lookup each, not a scan
/// of everything defined above (which made 32,000 KPIs take seconds).
struct Names<T> {
    items: Vec<T>,
    index: HashMap<String, usize>,
}

impl<T> Default for Names<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<T> Names<T> {
    fn index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    fn push(&mut self, name: String, item: T) {
        self.index.insert(name, self.items.len());
        self.items.push(item);
    }
}

/// What `run` needs to do anything: a topic, and KPIs reading every topic.
/// A file without them would start a service that consumes nothing (or
/// reads a topic only to throw its events away), so it is refused here,
/// where `check` reports it.
fn something_to_watch(
    src: &Source<'_>,
    raw: &ConfigToml,
    topics: &[Topic],
    kpis: &[Kpi],
) -> Result<(), ConfigError> {
    if topics.is_empty() {
        return Err(src.error(
            0..0,
            "there is no [[topic]] and no [[kpi]], so there is nothing to watch; add a [[topic]] with the Kafka topic's name (name = \"shop.events\") and [[kpi]] sections that count its events (config/shop.toml is an example; a file for `kpiwatch score --config` needs only [defaults.detectors], as config/score.toml)",
        ));
    }
    let mut read = vec![false; topics.len()];
    for k in kpis {
        read[k.topic] = true;
    }
    if let Some(i) = read.iter().position(|r| !r) {
        let name = &topics[i].name;
        let add = if topics.len() == 1 {
            "add a [[kpi]] that counts its events".to_string()
        } else {
            format!("add a [[kpi]] with topic = {name:?}")
        };
        return Err(src.error(
            raw.topics[i].name.span(),
            format!("topic {name:?} has no KPI, so its events would be read and thrown away; {add}, or remove this [[topic]]"),
        ));
    }
    Ok(())
}

fn topic(src: &Source<'_>, t: &TopicToml) -> Result<Topic, ConfigError> {
    let name = t.name.get_ref().trim().to_string();
    if name.is_empty() {
        return Err(src.error(
            t.name.span(),
            "topic name is empty; write the Kafka topic name",
        ));
    }
    let time_field = match &t.time_field {
        None => FieldPath(vec!["time".into()]),
        Some(f) => field_path(src, f, "time_field")?,
    };
    let time_format = match t.time_format.as_ref().map(|f| (f, f.get_ref().as_str())) {
        None | Some((_, "rfc3339")) => TimeFormat::Rfc3339,
        Some((_, "epoch_seconds")) => TimeFormat::EpochSeconds,
        Some((_, "epoch_millis")) => TimeFormat::EpochMillis,
        Some((f, other)) => {
            return Err(src.error(
                f.span(),
                format!("time_format = {other:?} is not known; use \"rfc3339\", \"epoch_seconds\" or \"epoch_millis\""),
            ))
        }
    };
    let idle_timeout = match &t.idle_timeout {
        None => Duration::from_secs(30),
        Some(d) => duration(
            src,
            d,
            "idle_timeout",
            Duration::from_secs(1),
            Duration::from_secs(DAY as u64),
        )?,
    };
    let max_ahead = match &t.max_ahead {
        None => DEFAULT_MAX_AHEAD,
        Some(d) => duration(
            src,
            d,
            "max_ahead",
            Duration::from_secs(1),
            Duration::from_secs(7 * DAY as u64),
        )?,
    };
    Ok(Topic {
        name,
        time_field,
        time_format,
        idle_timeout,
        max_ahead,
    })
}

fn refuse_identity_keys_in_defaults(src: &Source<'_>, d: &KpiToml) -> Result<(), ConfigError> {
    let spans = [
        ("name", d.name.as_ref().map(Spanned::span)),
        ("description", d.description.as_ref().map(Spanned::span)),
        ("runbook", d.runbook.as_ref().map(Spanned::span)),
        ("dashboard", d.dashboard.as_ref().map(Spanned::span)),
        ("aggregate", d.aggregate.as_ref().map(Spanned::span)),
        ("field", d.field.as_ref().map(Spanned::span)),
        ("numerator", d.numerator.as_ref().map(Spanned::span)),
        ("denominator", d.denominator.as_ref().map(Spanned::span)),
        ("where", d.filter.as_ref().map(Spanned::span)),
    ];
    for (key, span) in spans {
        if let Some(span) = span {
            return Err(src.error(
                span,
                format!("[defaults] cannot set `{key}`; it belongs to each [[kpi]]"),
            ));
        }
    }
    Ok(())
}

/// A KPI setting: the KPI's own value, else the default's.
fn pick<'a, T>(own: &'a Option<T>, default: &'a Option<T>) -> Option<&'a T> {
    own.as_ref().or(default.as_ref())
}

fn kpi(
    src: &Source<'_>,
    k: &KpiToml,
    d: &KpiToml,
    topics: &Names<Topic>,
    earlier: &Names<Kpi>,
) -> Result<Kpi, ConfigError> {
    let (name, name_span) = kpi_name(src, k, earlier)?;
    let Some(agg_s) = &k.aggregate else {
        return Err(src.error(
            name_span,
            format!("KPI {name:?} has no `aggregate`; use \"count\", \"sum\", \"avg\", \"min\", \"max\", \"distinct\" or \"ratio\""),
        ));
    };
    let bucket = match pick(&k.bucket, &d.bucket) {
        None => 300,
        Some(b) => bucket_width(src, b)?,
    };
    let group_by = match pick(&k.group_by, &d.group_by) {
        None => Vec::new(),
        Some(g) => g
            .iter()
            .map(|f| field_path(src, f, "group_by"))
            .collect::<Result<_, _>>()?,
    };
    let (measure, topic) = if agg_s.get_ref() == "ratio" {
        ratio(src, k, &name, bucket, &group_by, earlier)?
    } else {
        let topic = topic_of(src, k, d, topics, &name)?;
        (events_measure(src, k, agg_s)?, topic)
    };
    Ok(Kpi {
        name,
        description: k.description.as_ref().map(|s| s.get_ref().clone()),
        runbook: k.runbook.as_ref().map(|s| s.get_ref().clone()),
        dashboard: k.dashboard.as_ref().map(|s| s.get_ref().clone()),
        topic,
        measure,
        group_by,
        bucket,
        lateness: lateness(src, pick(&k.lateness, &d.lateness))?,
        timezone: timezone(src, pick(&k.timezone, &d.timezone))?,
        max_series: max_series(src, pick(&k.max_series, &d.max_series))?,
        evict_after: evict_after(src, pick(&k.evict_after, &d.evict_after), bucket)?,
        direction: direction(src, pick(&k.direction, &d.direction))?,
        min_volume: min_volume(src, pick(&k.min_volume, &d.min_volume))?,
        detectors: match pick(&k.detectors, &d.detectors) {
            None => SetConfig::new(bucket),
            Some(t) => detector_config(src, t.get_ref(), bucket)?,
        },
        alerting: alerting(src, pick(&k.alerting, &d.alerting).map(Spanned::get_ref))?,
        calendars: Vec::new(),
    })
}

/// A KPI's name, trimmed, and where it is written: present, made of
/// letters, digits, '_', '-' and '.', and not taken by an earlier KPI.
fn kpi_name(
    src: &Source<'_>,
    k: &KpiToml,
    earlier: &Names<Kpi>,
) -> Result<(String, std::ops::Range<usize>), ConfigError> {
    let Some(name_s) = &k.name else {
        return Err(src.error(
            0..0,
            "a [[kpi]] has no `name`; give every KPI a unique name",
        ));
    };
    let name = name_s.get_ref().trim().to_string();
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid_name {
        return Err(src.error(
            name_s.span(),
            format!("KPI name {name:?} must be letters, digits, '_', '-' or '.'"),
        ));
    }
    if earlier.index(&name).is_some() {
        return Err(src.error(
            name_s.span(),
            format!("KPI {name:?} is defined twice; names must be unique"),
        ));
    }
    Ok((name, name_s.span()))
}

/// What a KPI of events measures: its `filter` and its aggregate
/// (`aggregate`, with `field` for all but a count).
fn events_measure(
    src: &Source<'_>,
    k: &KpiToml,
    agg_s: &Spanned<String>,
) -> Result<Measure, ConfigError> {
    let field = k
        .field
        .as_ref()
        .map(|f| field_path(src, f, "field"))
        .transpose()?;
    let need_field = |make: fn(FieldPath) -> Aggregate| {
        field.clone().map(make).ok_or_else(|| {
            src.error(
                agg_s.span(),
                format!(
                    "aggregate = {:?} needs `field`, the dotted path of the value, e.g. field = \"payment.amount\"",
                    agg_s.get_ref()
                ),
            )
        })
    };
    let aggregate = match agg_s.get_ref().as_str() {
        "count" => Aggregate::Count,
        "sum" => need_field(Aggregate::Sum)?,
        "avg" => need_field(Aggregate::Avg)?,
        "min" => need_field(Aggregate::Min)?,
        "max" => need_field(Aggregate::Max)?,
        "distinct" => need_field(Aggregate::Distinct)?,
        other => {
            return Err(src.error(
                agg_s.span(),
                format!("aggregate = {other:?} is not known; use \"count\", \"sum\", \"avg\", \"min\", \"max\", \"distinct\" or \"ratio\""),
            ))
        }
    };
    let filter = match &k.filter {
        None => Vec::new(),
        Some(f) => f
            .get_ref()
            .iter()
            .map(|(key, value)| condition(src, key, value, f.span()))
            .collect::<Result<_, _>>()?,
    };
    Ok(Measure::Events { filter, aggregate })
}

/// `lateness` in seconds: 60 unless set, at most a day.
fn lateness(src: &Source<'_>, l: Option<&Spanned<String>>) -> Result<i64, ConfigError> {
    let Some(l) = l else { return Ok(60) };
    let d = duration(
        src,
        l,
        "lateness",
        Duration::ZERO,
        Duration::from_secs(DAY as u64),
    )?;
    Ok(d.as_secs() as i64)
}

/// `timezone`: an IANA zone, UTC unless set.
fn timezone(src: &Source<'_>, t: Option<&Spanned<String>>) -> Result<Tz, ConfigError> {
    let Some(t) = t else { return Ok(Tz::UTC) };
    t.get_ref().parse::<Tz>().map_err(|_| {
        src.error(
            t.span(),
            format!("timezone = {:?} is not an IANA time zone; write e.g. \"Europe/Helsinki\" or \"UTC\"", t.get_ref()),
        )
    })
}

/// `max_series`: 1,000 unless set, 1 to 10,000,000.
fn max_series(src: &Source<'_>, m: Option<&Spanned<i64>>) -> Result<usize, ConfigError> {
    let Some(m) = m else { return Ok(1000) };
    let v = *m.get_ref();
    if !(1..=10_000_000).contains(&v) {
        return Err(src.error(
            m.span(),
            format!("max_series = {v} is out of range; use 1 to 10000000"),
        ));
    }
    Ok(v as usize)
}

/// `evict_after` in seconds: a week unless set, from a bucket to a year.
fn evict_after(
    src: &Source<'_>,
    e: Option<&Spanned<String>>,
    bucket: i64,
) -> Result<i64, ConfigError> {
    let Some(e) = e else { return Ok(7 * DAY) };
    let d = duration(
        src,
        e,
        "evict_after",
        Duration::from_secs(bucket as u64),
        Duration::from_secs(365 * DAY as u64),
    )?;
    Ok(d.as_secs() as i64)
}

/// `direction` (a KPI's, a subscription's): "drop", "spike" or "both"
/// (the default).
pub(super) fn direction(
    src: &Source<'_>,
    s: Option<&Spanned<String>>,
) -> Result<Interest, ConfigError> {
    match s.map(|s| (s, s.get_ref().as_str())) {
        None | Some((_, "both")) => Ok(Interest::Both),
        Some((_, "drop")) => Ok(Interest::Drop),
        Some((_, "spike")) => Ok(Interest::Spike),
        Some((s, other)) => Err(src.error(
            s.span(),
            format!("direction = {other:?} is not known; use \"drop\", \"spike\" or \"both\""),
        )),
    }
}

/// `min_volume`: 0 unless set, never negative.
fn min_volume(src: &Source<'_>, m: Option<&Spanned<f64>>) -> Result<f64, ConfigError> {
    let Some(m) = m else { return Ok(0.0) };
    let v = *m.get_ref();
    if !(v >= 0.0 && v.is_finite()) {
        return Err(src.error(m.span(), format!("min_volume = {v} must be 0 or more")));
    }
    Ok(v)
}

fn topic_of(
    src: &Source<'_>,
    k: &KpiToml,
    d: &KpiToml,
    topics: &Names<Topic>,
    name: &str,
) -> Result<usize, ConfigError> {
    let topics_named = || {
        let names: Vec<&str> = topics.items.iter().map(|o| o.name.as_str()).collect();
        match names.len() {
            0 => "add a [[topic]] with its name".to_string(),
            _ => format!("add one or use one of: {}", names.join(", ")),
        }
    };
    match pick(&k.topic, &d.topic) {
        Some(t) => topics.index(t.get_ref()).ok_or_else(|| {
            src.error(
                t.span(),
                format!(
                    "topic {:?} has no [[topic]] section; {}",
                    t.get_ref(),
                    topics_named()
                ),
            )
        }),
        None if topics.items.len() == 1 => Ok(0),
        None if topics.items.is_empty() => Err(src.error(
            k.name.as_ref().map_or(0..0, Spanned::span),
            format!(
                "KPI {name:?} reads no topic: there is no [[topic]]; add a [[topic]] with the Kafka topic's name, e.g. name = \"shop.events\""
            ),
        )),
        None => Err(src.error(
            k.name.as_ref().map_or(0..0, Spanned::span),
            format!(
                "KPI {name:?} does not say its `topic`, and there are {} [[topic]] sections; add topic = \"...\"",
                topics.items.len()
            ),
        )),
    }
}

fn ratio(
    src: &Source<'_>,
    k: &KpiToml,
    name: &str,
    bucket: i64,
    group_by: &[FieldPath],
    earlier: &Names<Kpi>,
) -> Result<(Measure, usize), ConfigError> {
    let find = |key: &str, v: &Option<Spanned<String>>| -> Result<usize, ConfigError> {
        let Some(v) = v else {
            return Err(src.error(
                k.aggregate.as_ref().map_or(0..0, Spanned::span),
                format!("ratio KPI {name:?} needs `{key}`, the name of an earlier event KPI"),
            ));
        };
        let idx = earlier.index(v.get_ref()).ok_or_else(|| {
            src.error(
                v.span(),
                format!(
                    "{key} = {:?} is not a KPI defined above this one; a ratio refers to event KPIs earlier in the file",
                    v.get_ref()
                ),
            )
        })?;
        let other = &earlier.items[idx];
        if matches!(other.measure, Measure::Ratio { .. }) {
            return Err(src.error(
                v.span(),
                format!(
                    "{key} = {:?} is itself a ratio; use event KPIs",
                    v.get_ref()
                ),
            ));
        }
        if other.bucket != bucket || other.group_by != group_by {
            return Err(src.error(
                v.span(),
                format!(
                    "{key} = {:?} must have the same bucket and group_by as {name:?}",
                    v.get_ref()
                ),
            ));
        }
        Ok(idx)
    };
    let numerator = find("numerator", &k.numerator)?;
    let denominator = find("denominator", &k.denominator)?;
    if earlier.items[numerator].topic != earlier.items[denominator].topic {
        return Err(src.error(
            k.denominator.as_ref().map_or(0..0, Spanned::span),
            "numerator and denominator must read the same topic (their buckets close together)",
        ));
    }
    let topic = earlier.items[numerator].topic;
    Ok((
        Measure::Ratio {
            numerator,
            denominator,
        },
        topic,
    ))
}

fn alerting(src: &Source<'_>, a: Option<&AlertingToml>) -> Result<Alerting, ConfigError> {
    let default = AlertingToml::default();
    let a = a.unwrap_or(&default);
    let unit = |v: &Option<Spanned<f64>>, key: &str, dflt: f64| -> Result<f64, ConfigError> {
        match v {
            None => Ok(dflt),
            Some(s) if (0.0..=1.0).contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => Err(src.error(
                s.span(),
                format!(
                    "{key} = {} is out of range; scores are between 0 and 1",
                    s.get_ref()
                ),
            )),
        }
    };
    let count =
        |v: &Option<Spanned<i64>>, key: &str, dflt: i64, max: i64| -> Result<i64, ConfigError> {
            match v {
                None => Ok(dflt),
                Some(s) if (1..=max).contains(s.get_ref()) => Ok(*s.get_ref()),
                Some(s) => Err(src.error(
                    s.span(),
                    format!("{key} = {} is out of range; use 1 to {max}", s.get_ref()),
                )),
            }
        };
    let level = match (&a.false_alarms, &a.threshold) {
        (Some(f), Some(t)) => {
            let _ = f;
            return Err(src.error(
                t.span(),
                "threshold and false_alarms are both set; keep one: false_alarms = \"1/month\" (a rate of false alerts) or threshold (a fixed score)",
            ));
        }
        (Some(f), None) => AlertLevel::Budget {
            per_second: false_alarm_rate(src, f)?,
        },
        (None, Some(_)) => AlertLevel::Score(unit(&a.threshold, "threshold", 0.5)?),
        (None, None) => AlertLevel::Budget {
            per_second: DEFAULT_FALSE_ALARMS_PER_MONTH / (30.0 * DAY as f64),
        },
    };
    let critical = match &a.critical {
        None => None,
        Some(_) => Some(unit(&a.critical, "critical", 0.75)?),
    };
    if let (AlertLevel::Score(threshold), Some(c)) = (level, critical) {
        if c < threshold {
            let span = a.critical.as_ref().map_or(0..0, Spanned::span);
            return Err(src.error(span, format!("critical = {c} is below threshold = {threshold}; critical must be at least the threshold")));
        }
    }
    Ok(Alerting {
        level,
        critical,
        fire_after: count(&a.fire_after, "fire_after", 1, 1000)? as u32,
        resolve_after: count(&a.resolve_after, "resolve_after", 3, 1000)? as u32,
        recent_buckets: count(&a.recent_buckets, "recent_buckets", 24, 1000)? as usize,
    })
}

/// False alerts a month a KPI may raise by default: about one a month
/// keeps a product manager reading, where a few a week get an alert muted.
const DEFAULT_FALSE_ALARMS_PER_MONTH: f64 = 1.0;

/// `false_alarms = "N/period"` as false alerts per second.
fn false_alarm_rate(src: &Source<'_>, s: &Spanned<String>) -> Result<f64, ConfigError> {
    let text = s.get_ref().trim();
    let bad = || {
        src.error(
            s.span(),
            format!(
                "false_alarms = {text:?} is not a rate; write alerts per period, e.g. \"1/month\", \"2/week\" or \"0.5/day\" (periods: day, week, month, quarter, year)"
            ),
        )
    };
    let (n, period) = text.split_once('/').ok_or_else(bad)?;
    let n: f64 = n.trim().parse().map_err(|_| bad())?;
    let days = match period.trim() {
        "day" | "d" => 1.0,
        "week" | "w" => 7.0,
        "month" => 30.0,
        "quarter" => 91.0,
        "year" | "y" => 365.0,
        _ => return Err(bad()),
    };
    if !(n > 0.0 && n.is_finite() && n / days <= 100.0) {
        return Err(src.error(
            s.span(),
            format!("false_alarms = {text:?} is out of range; use a positive rate of at most 100 a day, e.g. \"1/month\""),
        ));
    }
    Ok(n / (days * DAY as f64))
}

fn field_path(src: &Source<'_>, s: &Spanned<String>, key: &str) -> Result<FieldPath, ConfigError> {
    FieldPath::parse(s.get_ref()).ok_or_else(|| {
        src.error(
            s.span(),
            format!(
                "{key} = {:?} is not a field path; write dotted names such as \"payment.amount\"",
                s.get_ref()
            ),
        )
    })
}

fn bucket_width(src: &Source<'_>, s: &Spanned<String>) -> Result<i64, ConfigError> {
    let d = duration(
        src,
        s,
        "bucket",
        Duration::from_secs(1),
        Duration::from_secs(7 * DAY as u64),
    )?;
    let secs = d.as_secs() as i64;
    if d.subsec_nanos() != 0 || (DAY % secs != 0 && secs % DAY != 0) {
        return Err(src.error(
            s.span(),
            format!("bucket = {:?} does not divide a day, so buckets would drift against the daily pattern; use e.g. \"1m\", \"5m\", \"15m\", \"1h\" or \"1d\"", s.get_ref()),
        ));
    }
    Ok(secs)
}

/// A duration key ("30s", "5m") within `min..=max`.
pub(super) fn duration(
    src: &Source<'_>,
    s: &Spanned<String>,
    key: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(s.get_ref()).map_err(|_| {
        src.error(
            s.span(),
            format!(
                "{key} = {:?} is not a duration; write e.g. \"30s\", \"5m\", \"1h\", \"7d\"",
                s.get_ref()
            ),
        )
    })?;
    if d < min || d > max {
        return Err(src.error(
            s.span(),
            format!(
                "{key} = {:?} is out of range; use {} to {}",
                s.get_ref(),
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(d)
}

fn scalar(v: &toml::Value) -> Option<Scalar> {
    match v {
        toml::Value::String(s) => Some(Scalar::Str(s.clone())),
        toml::Value::Integer(i) => Some(Scalar::Num(*i as f64)),
        toml::Value::Float(f) => Some(Scalar::Num(*f)),
        toml::Value::Boolean(b) => Some(Scalar::Bool(*b)),
        _ => None,
    }
}

fn condition(
    src: &Source<'_>,
    key: &str,
    value: &Spanned<toml::Value>,
    table_span: std::ops::Range<usize>,
) -> Result<Condition, ConfigError> {
    let field = FieldPath::parse(key).ok_or_else(|| {
        src.error(
            table_span.clone(),
            format!("where: {key:?} is not a field path"),
        )
    })?;
    let bad = |msg: String| src.error(value.span(), msg);
    let help = "write field = \"value\", field = { not = \"value\" }, field = { in = [\"a\", \"b\"] } or field = { exists = true }";
    let test = match value.get_ref() {
        toml::Value::Table(t) if t.len() == 1 => {
            let (op, arg) = t.iter().next().expect("one entry");
            match (op.as_str(), arg) {
                ("not", v) => Test::NotEquals(scalar(v).ok_or_else(|| bad(format!("where.{key}: `not` takes a string, number or boolean; {help}")))?),
                ("in", toml::Value::Array(items)) => Test::In(
                    items
                        .iter()
                        .map(|v| scalar(v).ok_or_else(|| bad(format!("where.{key}: `in` takes a list of strings, numbers or booleans"))))
                        .collect::<Result<_, _>>()?,
                ),
                ("exists", toml::Value::Boolean(b)) => Test::Exists(*b),
                _ => return Err(bad(format!("where.{key}: unknown test `{op}`; {help}"))),
            }
        }
        v => Test::Equals(scalar(v).ok_or_else(|| bad(format!("where.{key}: {help}")))?),
    };
    Ok(Condition { field, test })
}
