//! Subscriptions and routing: which alerts a subscription wants and who
//! receives them.
//!
//! - [`Matcher`] — one test on one label (`kpi` is the KPI name): equals,
//!   not, in, regex. Subscriptions and run-time silences share it.
//! - [`Subscription`] — KPI globs, label matchers, minimum severity and
//!   direction select alerts; receivers, grouping, timing and time windows
//!   say what happens to them. Built by `config::notify` from
//!   `[[subscription]]`.
//! - [`routes`] — every subscription an alert reaches, in file order; the
//!   [`group`](super::group) dispatcher calls it per transition.
//! - [`explain`] — the text `kpiwatch routes` prints.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use detectors::Direction;
use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use super::settings::{NotifySettings, ReceiverKind, WebhookFormat};
use crate::alert::{Interest, Severity};

/// The label name that stands for the KPI name in matchers and `group_by`.
pub const KPI_LABEL: &str = "kpi";

/// Largest compiled size of a [`Pattern`], in bytes. A short pattern can
/// compile to hundreds of megabytes (`\w{1000}{1000}`); the regex crate's
/// default limit (10 MiB) still let one silence cost a second of CPU and
/// 300 MB. Label matchers need a tiny fraction of this.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// A regular expression, anchored at both ends like Alertmanager's
/// (`=~ "FI|SE"` matches "FI", not "FIN"); serialised as the pattern the
/// user wrote.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source`, anchored, refusing one that compiles to more than
    /// [`REGEX_SIZE_LIMIT`] bytes.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()?;
        Ok(Self {
            source: source.to_string(),
            regex,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Pattern::new(&source).map_err(|e| serde::de::Error::custom(format!("bad regex: {e}")))
    }
}

/// How a [`Matcher`] tests a label value. In JSON (silences) it is the key
/// next to `name`: `{"name": "country", "equals": "FI"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchTest {
    /// The value equals this.
    Equals(String),
    /// The value differs from this (an absent label differs).
    Not(String),
    /// The value is one of these.
    In(Vec<String>),
    /// The whole value matches this regular expression.
    Regex(Pattern),
}

/// One test on one label. An absent label reads as the empty string, as in
/// Alertmanager: `{ not = "web" }` matches a series without `platform`, and
/// `equals` never does (unless it tests for "").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matcher {
    /// Label name; `kpi` is the KPI name.
    pub name: String,
    /// The test.
    #[serde(flatten)]
    pub test: MatchTest,
}

impl Matcher {
    /// Whether the alert of `kpi` with `labels` passes.
    pub fn matches(&self, kpi: &str, labels: &BTreeMap<String, String>) -> bool {
        let value = if self.name == KPI_LABEL {
            kpi
        } else {
            labels.get(&self.name).map_or("", String::as_str)
        };
        match &self.test {
            MatchTest::Equals(v) => value == v,
            MatchTest::Not(v) => value != v,
            MatchTest::In(vs) => vs.iter().any(|v| v == value),
            MatchTest::Regex(p) => p.is_match(value),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.test {
            MatchTest::Equals(v) => write!(f, "{} = {v:?}", self.name),
            MatchTest::Not(v) => write!(f, "{} != {v:?}", self.name),
            MatchTest::In(vs) => write!(f, "{} in {vs:?}", self.name),
            MatchTest::Regex(p) => write!(f, "{} =~ {:?}", self.name, p.as_str()),
        }
    }
}

/// KPI name globs (`checkout*`); an empty list takes every KPI.
#[derive(Debug, Clone, Default)]
pub struct KpiGlobs {
    patterns: Vec<String>,
    matchers: Vec<GlobMatcher>,
}

impl KpiGlobs {
    /// Compiles the globs; the error names the one that is wrong.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, (usize, globset::Error)> {
        let mut globs = Self::default();
        for (i, p) in patterns.iter().enumerate() {
            let glob = Glob::new(p.as_ref()).map_err(|e| (i, e))?;
            globs.patterns.push(p.as_ref().to_string());
            globs.matchers.push(glob.compile_matcher());
        }
        Ok(globs)
    }

    /// The globs as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `kpi` matches one of the globs (or there are none).
    pub fn matches(&self, kpi: &str) -> bool {
        self.matchers.is_empty() || self.matchers.iter().any(|m| m.is_match(kpi))
    }
}

impl PartialEq for KpiGlobs {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

/// Which alerts share one message.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupBy {
    /// Alerts with equal values of these labels (`kpi` is the KPI name)
    /// share a group; an absent label is left out of the group's labels.
    Labels(Vec<String>),
    /// `["..."]`: every alert series alone.
    Each,
}

impl GroupBy {
    /// The group labels of an alert.
    pub fn key(&self, kpi: &str, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        match self {
            GroupBy::Each => {
                let mut key = labels.clone();
                key.insert(KPI_LABEL.to_string(), kpi.to_string());
                key
            }
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| {
                    let v = if n == KPI_LABEL {
                        Some(kpi)
                    } else {
                        labels.get(n).map(String::as_str)
                    };
                    v.map(|v| (n.clone(), v.to_string()))
                })
                .collect(),
        }
    }
}

/// A subscription: which alerts it wants and who receives them.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Unique name.
    pub name: String,
    /// Receiver names, each one in [`NotifySettings::receivers`].
    pub receivers: Vec<String>,
    /// KPI name globs.
    pub kpis: KpiGlobs,
    /// Every matcher must pass.
    pub labels: Vec<Matcher>,
    /// Alerts below this severity are not wanted.
    pub min_severity: Severity,
    /// Drops, spikes or both.
    pub direction: Interest,
    /// Which alerts share one message.
    pub group_by: GroupBy,
    /// How long a new group waits for more alerts before its first message.
    pub group_wait: Duration,
    /// Least time between messages about changes to a group.
    pub group_interval: Duration,
    /// A group still firing with nothing new is re-sent after this long.
    pub repeat_interval: Duration,
    /// Whether recoveries are sent.
    pub send_resolved: bool,
    /// Indices into [`NotifySettings::time_windows`]: messages go out only
    /// inside one of these (always when empty).
    pub active_during: Vec<usize>,
    /// Indices into [`NotifySettings::time_windows`]: never inside these.
    pub mute_during: Vec<usize>,
}

impl Subscription {
    /// A subscription for `receivers` that takes every alert, with
    /// Alertmanager's default timing; a starting point for tests.
    pub fn new(name: &str, receivers: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            receivers: receivers.iter().map(|r| r.to_string()).collect(),
            kpis: KpiGlobs::default(),
            labels: Vec::new(),
            min_severity: Severity::Warning,
            direction: Interest::Both,
            group_by: GroupBy::Labels(vec![KPI_LABEL.to_string()]),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            send_resolved: true,
            active_during: Vec::new(),
            mute_during: Vec::new(),
        }
    }

    /// Whether this subscription wants the alert.
    pub fn matches(
        &self,
        kpi: &str,
        labels: &BTreeMap<String, String>,
        severity: Severity,
        direction: Direction,
    ) -> bool {
        let direction_ok = matches!(
            (self.direction, direction),
            (Interest::Both, _)
                | (Interest::Drop, Direction::Drop)
                | (Interest::Spike, Direction::Spike)
        );
        direction_ok
            && severity >= self.min_severity
            && self.kpis.matches(kpi)
            && self.labels.iter().all(|m| m.matches(kpi, labels))
    }
}

/// Every subscription the alert reaches, in file order.
pub fn routes<'a>(
    settings: &'a NotifySettings,
    kpi: &str,
    labels: &BTreeMap<String, String>,
    severity: Severity,
    direction: Direction,
) -> Vec<&'a Subscription> {
    settings
        .subscriptions
        .iter()
        .filter(|s| s.matches(kpi, labels, severity, direction))
        .collect()
}

/// What `kpiwatch routes` prints: each subscription the alert reaches with
/// its receivers, grouping, timing and windows, or "no subscription
/// matches".
pub fn explain(
    settings: &NotifySettings,
    kpi: &str,
    labels: &BTreeMap<String, String>,
    severity: Severity,
    direction: Direction,
) -> String {
    let mut out = String::new();
    let shown: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        out,
        "alert: kpi={kpi}{}{} severity={} direction={}",
        if shown.is_empty() { "" } else { " " },
        shown.join(" "),
        severity.name(),
        direction.name()
    );
    let matched = routes(settings, kpi, labels, severity, direction);
    if matched.is_empty() {
        out.push_str("no subscription matches\n");
        return out;
    }
    for s in matched {
        let _ = writeln!(out, "\nsubscription {:?}", s.name);
        for name in &s.receivers {
            let what = match settings.receiver(name).map(|r| &r.kind) {
                Some(ReceiverKind::Email { to }) => format!("email {}", to.join(", ")),
                Some(ReceiverKind::Webhook(w)) => {
                    format!("webhook {} ({})", w.url, format_name(w.format))
                }
                None => "(not defined)".to_string(),
            };
            let _ = writeln!(out, "  receiver {name:?}: {what}");
        }
        let group = match &s.group_by {
            GroupBy::Each => "each alert alone".to_string(),
            GroupBy::Labels(l) if l.is_empty() => "all alerts in one group".to_string(),
            GroupBy::Labels(l) => {
                let key = s.group_by.key(kpi, labels);
                format!(
                    "by {} (this alert's group: {})",
                    l.join(", "),
                    key.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            }
        };
        let _ = writeln!(out, "  group: {group}");
        let _ = writeln!(
            out,
            "  timing: group_wait {}, group_interval {}, repeat_interval {}, send_resolved {}",
            humantime::format_duration(s.group_wait),
            humantime::format_duration(s.group_interval),
            humantime::format_duration(s.repeat_interval),
            s.send_resolved
        );
        let names = |idx: &[usize]| {
            idx.iter()
                .filter_map(|&i| settings.time_windows.get(i))
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !s.active_during.is_empty() {
            let _ = writeln!(out, "  active during: {}", names(&s.active_during));
        }
        if !s.mute_during.is_empty() {
            let _ = writeln!(out, "  muted during: {}", names(&s.mute_during));
        }
    }
    out
}

fn format_name(f: WebhookFormat) -> &'static str {
    match f {
        WebhookFormat::Kpiwatch => "kpiwatch",
        WebhookFormat::Alertmanager => "alertmanager",
        WebhookFormat::Slack => "slack",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn m(name: &str, test: MatchTest) -> Matcher {
        Matcher {
            name: name.to_string(),
            test,
        }
    }

    #[test]
    fn absent_labels_read_as_empty_like_alertmanager() {
        let none = labels(&[]);
        assert!(!m("country", MatchTest::Equals("FI".into())).matches("k", &none));
        assert!(m("country", MatchTest::Not("FI".into())).matches("k", &none));
        assert!(m("country", MatchTest::Regex(Pattern::new(".*").unwrap())).matches("k", &none));
    }

    #[test]
    fn regex_matchers_are_anchored_and_kpi_is_the_kpi_name() {
        let fi = labels(&[("country", "FIN")]);
        let re = m("country", MatchTest::Regex(Pattern::new("FI|SE").unwrap()));
        assert!(!re.matches("k", &fi));
        assert!(re.matches("k", &labels(&[("country", "SE")])));
        let kpi = m(
            KPI_LABEL,
            MatchTest::In(vec!["carts".into(), "checkouts".into()]),
        );
        assert!(kpi.matches("checkouts", &fi));
        assert!(!kpi.matches("signups", &fi));
    }

    #[test]
    fn matchers_round_trip_as_json_with_the_test_beside_the_name() {
        let json =
            r#"[{"name":"country","equals":"FI"},{"name":"platform","regex":"ios|android"}]"#;
        let ms: Vec<Matcher> = serde_json::from_str(json).unwrap();
        assert_eq!(ms[0], m("country", MatchTest::Equals("FI".into())));
        assert!(ms[1].matches("k", &labels(&[("platform", "ios")])));
        assert_eq!(serde_json::to_string(&ms).unwrap(), json);
    }

    #[test]
    fn a_subscription_filters_on_kpi_glob_labels_severity_and_direction() {
        let mut s = Subscription::new("owners", &["team"]);
        s.kpis = KpiGlobs::new(&["checkout*"]).unwrap();
        s.labels = vec![m("platform", MatchTest::Not("web".into()))];
        s.min_severity = Severity::Critical;
        s.direction = Interest::Drop;
        let ios = labels(&[("platform", "ios")]);
        let (c, d) = (Severity::Critical, Direction::Drop);
        assert!(s.matches("checkouts_by_platform", &ios, c, d));
        assert!(!s.matches("carts", &ios, c, d), "glob");
        assert!(
            !s.matches("checkouts", &labels(&[("platform", "web")]), c, d),
            "label"
        );
        assert!(
            !s.matches("checkouts", &ios, Severity::Warning, d),
            "severity"
        );
        assert!(
            !s.matches("checkouts", &ios, c, Direction::Spike),
            "direction"
        );
    }

    #[test]
    fn routes_returns_every_matching_subscription_in_file_order() {
        let mut settings = NotifySettings::none(std::path::Path::new("/tmp"));
        let mut critical = Subscription::new("critical-only", &["a"]);
        critical.min_severity = Severity::Critical;
        settings.subscriptions = vec![
            Subscription::new("all", &["a"]),
            critical,
            Subscription::new("also-all", &["a"]),
        ];
        let names = |sev| {
            routes(&settings, "k", &labels(&[]), sev, Direction::Drop)
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Severity::Warning), ["all", "also-all"]);
        assert_eq!(
            names(Severity::Critical),
            ["all", "critical-only", "also-all"]
        );
    }

    #[test]
    fn group_keys_take_the_named_labels_or_the_whole_series() {
        let l = labels(&[("country", "FI"), ("platform", "ios")]);
        let by = GroupBy::Labels(vec!["kpi".into(), "country".into(), "absent".into()]);
        assert_eq!(
            by.key("carts", &l),
            labels(&[("country", "FI"), ("kpi", "carts")])
        );
        assert_eq!(
            GroupBy::Each.key("carts", &l),
            labels(&[("country", "FI"), ("kpi", "carts"), ("platform", "ios")])
        );
    }
}
