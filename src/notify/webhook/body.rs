//! The JSON body of a webhook in its three formats — kpiwatch's own
//! versioned schema, Alertmanager's webhook payload and a Slack Block Kit
//! message — and the text and number helpers they share. A pure function of
//! the [`Notification`]: no I/O, no clock.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use detectors::Direction;
use serde::Serialize;
use serde_json::json;

use crate::alert::{Severity, Status, Transition};
use crate::notify::phrase::{self, percent_signed, summary};
use crate::notify::settings::WebhookFormat;
use crate::notify::{Notification, Reason};
use crate::timefmt::{human_utc, rfc3339};

/// Version of the kpiwatch JSON schema, the body's `version` field. Adding a
/// field keeps it; removing, renaming or retyping one bumps it.
pub const SCHEMA_VERSION: &str = "1";

/// Alertmanager's "not yet ended" time: Go's zero `time.Time`.
const AM_NOT_ENDED: &str = "0001-01-01T00:00:00Z";

/// Slack allows 50 blocks per message; each alert takes two, so ten alerts
/// (plus header and the "and N more" line) keep well inside it and stay
/// readable.
const SLACK_MAX_ALERTS: usize = 10;

/// Slack truncates (or refuses) header text longer than this.
const SLACK_HEADER_MAX_CHARS: usize = 150;

/// The JSON body of `n` in `format`. `external_url` is this kpiwatch's base
/// URL (`notify.external_url`), used for Alertmanager's `externalURL` and
/// links.
pub fn body(n: &Notification, format: WebhookFormat, external_url: Option<&str>) -> Vec<u8> {
    // Serialising plain structs and `Value`s with string keys cannot fail.
    match format {
        WebhookFormat::Kpiwatch => serde_json::to_vec(&KpiwatchBody::new(n, external_url)),
        WebhookFormat::Alertmanager => serde_json::to_vec(&AmBody::new(n, external_url)),
        WebhookFormat::Slack => serde_json::to_vec(&slack_body(n, external_url)),
    }
    .expect("webhook bodies serialise")
}

// ---------------------------------------------------------------------------
// kpiwatch format. Its own structs rather than `Transition`'s serde form, so
// the published schema does not move when the internal type does.

#[derive(Serialize)]
struct KpiwatchBody<'a> {
    version: &'static str,
    id: &'a str,
    receiver: &'a str,
    subscription: &'a str,
    status: Status,
    reason: Reason,
    group: &'a BTreeMap<String, String>,
    created_at: String,
    external_url: Option<&'a str>,
    alerts: Vec<KpiwatchAlert<'a>>,
    omitted: u64,
}

#[derive(Serialize)]
struct KpiwatchAlert<'a> {
    alert_id: &'a str,
    status: Status,
    kpi: &'a str,
    labels: &'a BTreeMap<String, String>,
    severity: Severity,
    /// The severity an escalation rose from; null otherwise (schema 1
    /// addition: `status` stays `firing`, so receivers that do not know
    /// escalations see the alert, at its new severity, as they would a
    /// firing one).
    escalated_from: Option<Severity>,
    direction: Direction,
    summary: String,
    observed: Option<f64>,
    expected: Option<f64>,
    lower: Option<f64>,
    upper: Option<f64>,
    score: Option<f64>,
    deviation_pct: Option<f64>,
    /// What the figures above describe (bucket, window, peers, rule), its
    /// span, tail probability, rule and share.
    evidence: &'a crate::alert::Evidence,
    /// The evidence in words, as the email says it.
    evidence_text: String,
    started_at: String,
    bucket_start: String,
    bucket_end: String,
    description: Option<&'a str>,
    runbook: Option<&'a str>,
    dashboard: Option<&'a str>,
    recent: Vec<KpiwatchBucket>,
}

#[derive(Serialize)]
struct KpiwatchBucket {
    bucket_start: String,
    value: Option<f64>,
    expected: Option<f32>,
    lower: Option<f32>,
    upper: Option<f32>,
    anomalous: bool,
}

impl<'a> KpiwatchBody<'a> {
    fn new(n: &'a Notification, external_url: Option<&'a str>) -> Self {
        Self {
            version: SCHEMA_VERSION,
            id: &n.id,
            receiver: &n.receiver,
            subscription: &n.subscription,
            status: n.status,
            reason: n.reason,
            group: &n.group,
            created_at: rfc3339_ms(n.created_at_ms),
            external_url,
            alerts: n.alerts.iter().map(KpiwatchAlert::new).collect(),
            omitted: n.omitted,
        }
    }
}

impl<'a> KpiwatchAlert<'a> {
    fn new(a: &'a Transition) -> Self {
        Self {
            alert_id: &a.alert_id,
            status: a.status,
            kpi: &a.kpi,
            labels: &a.labels,
            severity: a.severity,
            escalated_from: a.escalated_from.filter(|_| a.is_escalation()),
            direction: a.direction,
            summary: summary(a),
            observed: finite(a.observed),
            expected: finite(a.expected),
            lower: finite(a.lower),
            upper: finite(a.upper),
            score: finite(a.score),
            deviation_pct: a.deviation_pct.and_then(finite),
            evidence: &a.evidence,
            evidence_text: phrase::evidence(a),
            started_at: rfc3339(a.started_at),
            bucket_start: rfc3339(a.bucket_start),
            bucket_end: rfc3339(a.bucket_end),
            description: a.description.as_deref(),
            runbook: a.runbook.as_deref(),
            dashboard: a.dashboard.as_deref(),
            recent: a
                .recent
                .iter()
                .map(|b| KpiwatchBucket {
                    bucket_start: rfc3339(b.t),
                    value: finite(b.value),
                    expected: finite32(b.expected),
                    lower: finite32(b.lower),
                    upper: finite32(b.upper),
                    anomalous: b.anomalous,
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// Alertmanager format: field names exactly as Alertmanager's
// `webhook.Message` (template.Data plus version, groupKey, truncatedAlerts).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AmBody {
    version: &'static str,
    group_key: String,
    truncated_alerts: u64,
    status: Status,
    receiver: String,
    group_labels: BTreeMap<String, String>,
    common_labels: BTreeMap<String, String>,
    common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    external_url: String,
    alerts: Vec<AmAlert>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AmAlert {
    status: Status,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: String,
    fingerprint: String,
}

impl AmBody {
    fn new(n: &Notification, external_url: Option<&str>) -> Self {
        // Alertmanager names the alert by `alertname`; kpiwatch's group key
        // for the KPI name is `kpi`. Renaming keeps groupLabels a subset of
        // every alert's labels, as receivers expect.
        let group_labels: BTreeMap<String, String> = n
            .group
            .iter()
            .map(|(k, v)| {
                let k = if k == "kpi" { "alertname" } else { k.as_str() };
                (k.to_string(), v.clone())
            })
            .collect();
        let alerts: Vec<AmAlert> = n
            .alerts
            .iter()
            .map(|a| AmAlert::new(a, external_url))
            .collect();
        let common_labels = common(alerts.iter().map(|a| &a.labels));
        let common_annotations = common(alerts.iter().map(|a| &a.annotations));
        Self {
            version: "4",
            group_key: group_key(&n.subscription, &group_labels),
            truncated_alerts: n.omitted,
            status: n.status,
            receiver: n.receiver.clone(),
            group_labels,
            common_labels,
            common_annotations,
            external_url: external_url.unwrap_or_default().to_string(),
            alerts,
        }
    }
}

impl AmAlert {
    fn new(a: &Transition, external_url: Option<&str>) -> Self {
        let mut labels = a.labels.clone();
        // kpiwatch's own labels win over a series label of the same name.
        labels.insert("alertname".into(), a.kpi.clone());
        labels.insert("severity".into(), a.severity.name().into());
        labels.insert("direction".into(), a.direction.name().into());

        let mut annotations = BTreeMap::new();
        annotations.insert("summary".into(), summary(a));
        annotations.insert(
            "description".into(),
            a.description.clone().unwrap_or_else(|| details(a)),
        );
        annotations.insert("evidence".into(), phrase::evidence(a));
        annotations.insert("observed".into(), exact(a.observed));
        annotations.insert("expected".into(), exact(a.expected));
        annotations.insert("score".into(), fmt_score(a.score));
        if let Some(from) = a.escalated_from.filter(|_| a.is_escalation()) {
            annotations.insert("escalated_from".into(), from.name().into());
        }
        if let Some(url) = &a.runbook {
            annotations.insert("runbook_url".into(), url.clone());
        }
        if let Some(url) = &a.dashboard {
            annotations.insert("dashboard_url".into(), url.clone());
        }

        let ends_at = match a.status {
            Status::Firing => AM_NOT_ENDED.to_string(),
            Status::Resolved => rfc3339(a.bucket_end),
        };
        Self {
            status: a.status,
            labels,
            annotations,
            starts_at: rfc3339(a.started_at),
            ends_at,
            generator_url: a
                .dashboard
                .as_deref()
                .or(external_url)
                .unwrap_or_default()
                .to_string(),
            fingerprint: a.alert_id.clone(),
        }
    }
}

/// Alertmanager-style group key: `{}/{subscription="…"}:{k="v", …}`, the
/// route part standing for the subscription. Deterministic, so receivers
/// that key state by it see one group per subscription and group labels.
fn group_key(subscription: &str, group_labels: &BTreeMap<String, String>) -> String {
    let labels: Vec<String> = group_labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!(
        "{{}}/{{subscription={subscription:?}}}:{{{}}}",
        labels.join(", ")
    )
}

/// The pairs every map has with the same value.
fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut out = first.clone();
    for m in maps {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

// ---------------------------------------------------------------------------
// Slack format: Block Kit, one section of number fields per alert.

fn slack_body(n: &Notification, external_url: Option<&str>) -> serde_json::Value {
    let title = notification_title(n);
    let emoji = match n.status {
        Status::Resolved => "✅",
        Status::Firing if n.firing().any(|a| a.severity == Severity::Critical) => "🔴",
        Status::Firing => "🟠",
    };
    let status = match n.status {
        Status::Firing => "FIRING",
        Status::Resolved => "RESOLVED",
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": slack_escape_within(&format!("{emoji} {status}: {title}"), SLACK_HEADER_MAX_CHARS),
            "emoji": true,
        }
    })];
    for a in n.alerts.iter().take(SLACK_MAX_ALERTS) {
        let mut fields = vec![
            mrkdwn(&format!(
                "*Evidence*\n{}",
                slack_escape(&phrase::evidence(a))
            )),
            mrkdwn(&format!(
                "*Deviation*\n{}",
                slack_escape(
                    &a.deviation_pct
                        .and_then(finite)
                        .map(percent_signed)
                        .unwrap_or_else(|| "n/a".into())
                )
            )),
            mrkdwn(&format!(
                "*Severity*\n{}{}",
                a.severity.name(),
                phrase::escalation(a)
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )),
            mrkdwn(&format!(
                "*Since*\n{}",
                slack_escape(&human_utc(a.started_at))
            )),
        ];
        if a.status == Status::Resolved {
            fields.push(mrkdwn(&format!(
                "*Resolved*\n{}",
                slack_escape(&human_utc(a.bucket_end))
            )));
        }
        blocks.push(json!({
            "type": "section",
            "text": mrkdwn(&format!("*{}*", slack_escape(&summary(a)))),
            "fields": fields,
        }));
        let mut links = Vec::new();
        if let Some(url) = &a.runbook {
            links.push(format!("<{}|Runbook>", slack_escape(url)));
        }
        if let Some(url) = &a.dashboard {
            links.push(format!("<{}|Dashboard>", slack_escape(url)));
        }
        links.push(format!("alert `{}`", slack_escape(&a.alert_id)));
        blocks.push(json!({
            "type": "context",
            "elements": [mrkdwn(&links.join(" · "))],
        }));
    }
    let more = n.alerts.len().saturating_sub(SLACK_MAX_ALERTS) + n.omitted as usize;
    if more > 0 {
        let mut text = format!("…and {more} more alert{}", plural(more));
        if let Some(url) = external_url {
            text.push_str(&format!(" · <{}|kpiwatch>", slack_escape(url)));
        }
        blocks.push(json!({"type": "context", "elements": [mrkdwn(&text)]}));
    }
    json!({
        "text": slack_escape(&format!("[{status}] {title}")),
        "blocks": blocks,
    })
}

fn mrkdwn(text: &str) -> serde_json::Value {
    json!({"type": "mrkdwn", "text": text})
}

/// Text for any Slack text field (top-level `text`, header, sections,
/// fields, context), following Slack's "escaping text": `&`, `<` and `>`
/// become entities, so a label value cannot make a link (`<https://…|x>`),
/// a mention (`<@U123>`) or a broadcast (`<!channel>`). Slack defines no
/// escape for a bare `@channel`, `@here` or `@everyone`, which a workspace
/// that turns on `link_names` would ping: a word joiner (U+2060, invisible)
/// after the `@` keeps them text.
fn slack_escape(s: &str) -> String {
    slack_escape_within(s, usize::MAX)
}

/// [`slack_escape`], cut to at most `max` characters as sent (Slack counts
/// the escaped text), with `…` at the end when cut; an entity is never cut
/// in half.
fn slack_escape_within(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut count = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let piece: std::borrow::Cow<'_, str> = match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '@' if ["channel", "here", "everyone"]
                .iter()
                .any(|w| s[i + 1..].starts_with(w)) =>
            {
                "@\u{2060}".into()
            }
            c => c.to_string().into(),
        };
        let n = piece.chars().count();
        // Room for this piece, and for the ellipsis if more follows.
        let room = if chars.peek().is_some() { max - 1 } else { max };
        if count + n > room {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        count += n;
    }
    out
}

/// One alert's summary, or a count and the group for several.
fn notification_title(n: &Notification) -> String {
    if let [only] = n.alerts.as_slice() {
        return summary(only);
    }
    let firing = n.firing().count();
    let resolved = n.resolved().count();
    let counts = match (firing, resolved) {
        (0, r) => format!("{r} alert{} resolved", plural(r)),
        (f, 0) => format!("{f} alert{}", plural(f)),
        (f, r) => format!("{f} firing, {r} resolved"),
    };
    format!("{counts}{}", labels_suffix(&n.group))
}

// ---------------------------------------------------------------------------
// Text shared by the formats.

/// The evidence in a sentence, for Alertmanager's `description` when the
/// KPI has none.
fn details(a: &Transition) -> String {
    let rarity = phrase::rarity(a)
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    format!(
        "{}{rarity}; {}; since {}.",
        phrase::evidence(a),
        a.severity.name(),
        rfc3339(a.started_at)
    )
}

/// " (k=v, k2=v2)", or nothing without labels.
fn labels_suffix(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return String::new();
    }
    format!(" ({})", phrase::labels(labels, usize::MAX))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// JSON has no NaN or infinity: an open band edge or a missing value is
/// `null` in every body.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn finite32(x: f32) -> Option<f32> {
    x.is_finite().then_some(x)
}

/// A number in full for annotations that programs read (`210.5`, `37`);
/// `unknown` when not finite. People's phrasing is [`phrase::value`]'s.
fn exact(x: f64) -> String {
    if x.is_finite() {
        x.to_string()
    } else {
        "unknown".into()
    }
}

fn fmt_score(s: f64) -> String {
    if s.is_finite() {
        format!("{s:.2}")
    } else {
        "unknown".into()
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds
/// (`2024-01-01T10:15:12.345Z`); the bare number if chrono cannot
/// represent it.
fn rfc3339_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Evidence, RecentBucket};
    use crate::notify::phrase::value;
    use serde_json::Value;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn firing_fi() -> Transition {
        Transition {
            status: Status::Firing,
            alert_id: "3f2a9c0d1e4b5a69".into(),
            kpi: "checkouts".into(),
            labels: labels(&[("country", "FI")]),
            severity: Severity::Critical,
            escalated_from: None,
            direction: Direction::Drop,
            started_at: 1704103500,
            bucket_start: 1704103800,
            bucket_end: 1704104100,
            observed: 37.0,
            expected: 100.0,
            lower: 80.0,
            upper: f64::INFINITY,
            score: 0.97,
            deviation_pct: Some(-63.0),
            evidence: Evidence::bucket(1704103800, 1704104100, Some(3.2e-12)),
            description: Some("Completed checkouts per 5 minutes".into()),
            runbook: Some("https://wiki.example/runbooks/checkouts".into()),
            dashboard: None,
            recent: vec![RecentBucket {
                t: 1_704_103_800,
                value: 37.0,
                expected: 100.0,
                lower: 80.0,
                upper: f32::INFINITY,
                anomalous: true,
            }],
        }
    }

    fn resolved_se() -> Transition {
        Transition {
            status: Status::Resolved,
            alert_id: "77aa00bb11cc22dd".into(),
            labels: labels(&[("country", "SE")]),
            severity: Severity::Warning,
            escalated_from: None,
            observed: f64::NAN,
            expected: 210.5,
            lower: f64::NEG_INFINITY,
            upper: 260.0,
            score: 0.2,
            deviation_pct: None,
            evidence: Evidence::bucket(1704104100, 1704104400, Some(0.2)),
            description: None,
            runbook: None,
            bucket_start: 1704104100,
            bucket_end: 1704104400,
            ..firing_fi()
        }
    }

    fn notification(alerts: Vec<Transition>) -> Notification {
        Notification {
            id: "n-5d41402abc4b2a76".into(),
            receiver: "shop-hook".into(),
            subscription: "checkout-team".into(),
            group: labels(&[("kpi", "checkouts")]),
            status: Status::Firing,
            reason: Reason::New,
            alerts,
            omitted: 0,
            created_at_ms: 1_704_104_112_345,
        }
    }

    fn json_of(n: &Notification, format: WebhookFormat) -> Value {
        serde_json::from_slice(&body(n, format, Some("https://kpiwatch.example"))).unwrap()
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    /// The notification behind the example bodies in `docs/webhooks.md`.
    fn docs_example() -> Notification {
        let bucket =
            |t: i64, value: f64, expected: f32, lower: f32, anomalous: bool| RecentBucket {
                t,
                value,
                expected,
                lower,
                upper: f32::INFINITY,
                anomalous,
            };
        let firing = Transition {
            dashboard: Some("https://grafana.example/d/shop".into()),
            recent: vec![
                bucket(1_704_103_200, 98.0, 101.0, 81.0, false),
                bucket(1_704_103_500, 41.0, 100.0, 80.0, true),
                bucket(1_704_103_800, 37.0, 100.0, 80.0, true),
            ],
            ..firing_fi()
        };
        let resolved = Transition {
            status: Status::Resolved,
            alert_id: "77aa00bb11cc22dd".into(),
            labels: labels(&[("country", "SE")]),
            severity: Severity::Warning,
            escalated_from: None,
            started_at: 1704102600,
            observed: 205.0,
            expected: 210.5,
            lower: 168.5,
            score: 0.12,
            deviation_pct: Some(-2.6),
            evidence: Evidence::bucket(1704103800, 1704104100, Some(0.3)),
            dashboard: None,
            recent: vec![bucket(1_704_103_800, 205.0, 210.5, 168.5, false)],
            ..firing_fi()
        };
        Notification {
            reason: Reason::Update,
            ..notification(vec![firing, resolved])
        }
    }

    /// The JSON block after `<!-- example: {name} -->` in docs/webhooks.md.
    fn docs_example_body(name: &str) -> Value {
        let doc = include_str!("../../../docs/webhooks.md");
        let marker = format!("<!-- example: {name} -->\n```json\n");
        let start = doc.find(&marker).expect("the example is in the docs") + marker.len();
        let len = doc[start..].find("\n```").expect("the example block ends");
        serde_json::from_str(&doc[start..start + len]).expect("the example is JSON")
    }

    #[test]
    fn the_documented_examples_are_what_kpiwatch_sends() {
        let n = docs_example();
        for (name, format) in [
            ("kpiwatch", WebhookFormat::Kpiwatch),
            ("alertmanager", WebhookFormat::Alertmanager),
            ("slack", WebhookFormat::Slack),
        ] {
            assert_eq!(
                docs_example_body(name),
                json_of(&n, format),
                "docs/webhooks.md's {name} example is out of date"
            );
        }
    }

    /// The documented example's firing alert, escalated from warning, as
    /// the update a subscription already told of it gets.
    fn escalation_example() -> Notification {
        let docs = docs_example();
        let escalated = Transition {
            escalated_from: Some(Severity::Warning),
            ..docs.alerts[0].clone()
        };
        Notification {
            reason: Reason::Update,
            ..notification(vec![escalated])
        }
    }

    /// Whether every field of `part` is in `whole` with the same value
    /// (arrays element by element).
    fn includes(whole: &Value, part: &Value) -> bool {
        match (whole, part) {
            (Value::Object(w), Value::Object(p)) => p
                .iter()
                .all(|(k, v)| w.get(k).is_some_and(|x| includes(x, v))),
            (Value::Array(w), Value::Array(p)) => {
                w.len() == p.len() && w.iter().zip(p).all(|(x, v)| includes(x, v))
            }
            _ => whole == part,
        }
    }

    #[test]
    fn the_documented_escalation_fields_are_what_kpiwatch_sends() {
        let sent = json_of(&escalation_example(), WebhookFormat::Kpiwatch);
        let documented = docs_example_body("kpiwatch escalation (fields)");
        assert!(includes(&sent, &documented), "{sent:#}");
    }

    #[test]
    fn an_escalation_stays_firing_in_every_format_and_says_what_it_rose_from() {
        let n = escalation_example();
        let k = json_of(&n, WebhookFormat::Kpiwatch);
        assert_eq!(k["alerts"][0]["status"], "firing");
        assert_eq!(k["alerts"][0]["severity"], "critical");
        assert_eq!(k["alerts"][0]["escalated_from"], "warning");
        assert_eq!(
            k["alerts"][0]["summary"],
            "checkouts dropped 63% (country=FI) (escalated from warning)"
        );
        let plain = json_of(&docs_example(), WebhookFormat::Kpiwatch);
        assert_eq!(
            plain["alerts"][0]["escalated_from"],
            Value::Null,
            "present, null"
        );
        assert_eq!(plain["alerts"][1]["escalated_from"], Value::Null);

        let am = json_of(&n, WebhookFormat::Alertmanager);
        let alert = &am["alerts"][0];
        assert_eq!(alert["status"], "firing");
        assert_eq!(alert["endsAt"], AM_NOT_ENDED);
        assert_eq!(alert["fingerprint"], "3f2a9c0d1e4b5a69", "the same alert");
        assert_eq!(alert["labels"]["severity"], "critical");
        assert_eq!(alert["annotations"]["escalated_from"], "warning");
        assert!(
            json_of(&docs_example(), WebhookFormat::Alertmanager)["alerts"][0]["annotations"]
                .get("escalated_from")
                .is_none()
        );

        let slack = json_of(&n, WebhookFormat::Slack);
        let severity = slack["blocks"][1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|f| f["text"].as_str().filter(|t| t.starts_with("*Severity*")))
            .unwrap();
        assert_eq!(severity, "*Severity*\ncritical (escalated from warning)");
        assert!(slack["text"]
            .as_str()
            .unwrap()
            .ends_with("(escalated from warning)"));
    }

    #[test]
    fn kpiwatch_body_is_versioned_and_writes_non_finite_numbers_as_null() {
        let n = notification(vec![firing_fi(), resolved_se()]);
        let v = json_of(&n, WebhookFormat::Kpiwatch);
        assert_eq!(v["version"], "1");
        assert_eq!(v["id"], "n-5d41402abc4b2a76");
        assert_eq!(v["receiver"], "shop-hook");
        assert_eq!(v["subscription"], "checkout-team");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["reason"], "new");
        assert_eq!(v["group"]["kpi"], "checkouts");
        assert_eq!(v["created_at"], "2024-01-01T10:15:12.345Z");
        assert_eq!(v["external_url"], "https://kpiwatch.example");

        let a = &v["alerts"][0];
        assert_eq!(a["alert_id"], "3f2a9c0d1e4b5a69");
        assert_eq!(a["kpi"], "checkouts");
        assert_eq!(a["labels"]["country"], "FI");
        assert_eq!(a["severity"], "critical");
        assert_eq!(a["direction"], "drop");
        assert_eq!(a["summary"], "checkouts dropped 63% (country=FI)");
        assert_eq!(a["observed"], 37.0);
        assert_eq!(a["lower"], 80.0);
        assert!(a["upper"].is_null(), "open band edge is null: {a}");
        assert_eq!(a["deviation_pct"], -63.0);
        assert_eq!(a["runbook"], "https://wiki.example/runbooks/checkouts");
        assert!(
            a["dashboard"].is_null(),
            "absent links are null, not missing"
        );
        assert_eq!(a["recent"][0]["bucket_start"], "2024-01-01T10:10:00Z");
        assert!(a["recent"][0]["upper"].is_null());
        assert_eq!(a["recent"][0]["anomalous"], true);

        let r = &v["alerts"][1];
        assert_eq!(r["status"], "resolved");
        assert!(r["observed"].is_null());
        assert!(r["lower"].is_null());
        assert!(r["deviation_pct"].is_null());
        assert_eq!(r["summary"], "checkouts back to normal (country=SE)");
        // Every alert has every key, set or not: a stable schema.
        assert_eq!(keys(a), keys(r));
    }

    #[test]
    fn alertmanager_body_uses_alertmanagers_field_names_exactly() {
        let n = notification(vec![firing_fi(), resolved_se()]);
        let v = json_of(&n, WebhookFormat::Alertmanager);
        assert_eq!(
            keys(&v),
            [
                "alerts",
                "commonAnnotations",
                "commonLabels",
                "externalURL",
                "groupKey",
                "groupLabels",
                "receiver",
                "status",
                "truncatedAlerts",
                "version"
            ]
        );
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["truncatedAlerts"], 0);
        assert_eq!(v["externalURL"], "https://kpiwatch.example");
        assert_eq!(
            v["groupLabels"],
            serde_json::json!({"alertname": "checkouts"})
        );
        assert_eq!(
            v["groupKey"],
            r#"{}/{subscription="checkout-team"}:{alertname="checkouts"}"#
        );
        let a = &v["alerts"][0];
        assert_eq!(
            keys(a),
            [
                "annotations",
                "endsAt",
                "fingerprint",
                "generatorURL",
                "labels",
                "startsAt",
                "status"
            ]
        );
        assert_eq!(
            a["labels"],
            serde_json::json!({
                "alertname": "checkouts", "country": "FI",
                "severity": "critical", "direction": "drop"
            })
        );
        assert_eq!(
            a["annotations"]["summary"],
            "checkouts dropped 63% (country=FI)"
        );
        assert_eq!(
            a["annotations"]["description"],
            "Completed checkouts per 5 minutes"
        );
        assert_eq!(a["annotations"]["observed"], "37");
        assert_eq!(a["annotations"]["expected"], "100");
        assert_eq!(a["annotations"]["score"], "0.97");
        assert_eq!(
            a["annotations"]["runbook_url"],
            "https://wiki.example/runbooks/checkouts"
        );
        assert!(a["annotations"].get("dashboard_url").is_none());
        assert_eq!(a["fingerprint"], "3f2a9c0d1e4b5a69");
        assert_eq!(a["generatorURL"], "https://kpiwatch.example");
        // Labels the two alerts share; annotations they do not.
        assert_eq!(
            v["commonLabels"],
            serde_json::json!({"alertname": "checkouts", "direction": "drop"})
        );
        assert_eq!(v["commonAnnotations"], serde_json::json!({}));
    }

    #[test]
    fn alertmanager_ends_at_is_zero_time_while_firing_and_the_bucket_end_once_resolved() {
        let n = notification(vec![firing_fi(), resolved_se()]);
        let v = json_of(&n, WebhookFormat::Alertmanager);
        assert_eq!(v["alerts"][0]["status"], "firing");
        assert_eq!(v["alerts"][0]["startsAt"], "2024-01-01T10:05:00Z");
        assert_eq!(v["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(v["alerts"][1]["status"], "resolved");
        assert_eq!(v["alerts"][1]["endsAt"], "2024-01-01T10:20:00Z");
        // No description: the evidence stands in; NaN reads as "no data".
        let d = v["alerts"][1]["annotations"]["description"]
            .as_str()
            .unwrap();
        assert!(
            d.starts_with("no data in 10:15–10:20 UTC, expected 210 (normal at most 260)"),
            "{d}"
        );
    }

    #[test]
    fn alertmanager_group_key_is_deterministic_and_distinguishes_groups() {
        let mut n = notification(vec![firing_fi()]);
        let key = |n: &Notification| json_of(n, WebhookFormat::Alertmanager)["groupKey"].clone();
        let first = key(&n);
        assert_eq!(first, key(&n));
        n.group.insert("country".into(), "FI".into());
        let with_country = key(&n);
        assert_ne!(first, with_country);
        assert_eq!(
            with_country,
            r#"{}/{subscription="checkout-team"}:{alertname="checkouts", country="FI"}"#
        );
        n.subscription = "other".into();
        assert_ne!(with_country, key(&n));
    }

    #[test]
    fn slack_body_has_a_header_and_one_section_of_numbers_per_alert() {
        let n = notification(vec![firing_fi(), resolved_se()]);
        let v = json_of(&n, WebhookFormat::Slack);
        assert_eq!(v["text"], "[FIRING] 1 firing, 1 resolved (kpi=checkouts)");
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        let sections: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "section").collect();
        assert_eq!(sections.len(), 2);
        let fields: Vec<&str> = sections[0]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "*Evidence*\n37 in 10:10–10:15 UTC, expected 100 (normal at least 80)",
                "*Deviation*\n-63%",
                "*Severity*\ncritical",
                "*Since*\n2024-01-01 10:05 UTC"
            ]
        );
        assert_eq!(
            sections[0]["text"]["text"],
            "*checkouts dropped 63% (country=FI)*"
        );
        let links = blocks[2]["elements"][0]["text"].as_str().unwrap();
        assert!(links.contains("<https://wiki.example/runbooks/checkouts|Runbook>"));
        let resolved_fields = sections[1]["fields"].as_array().unwrap();
        assert_eq!(
            resolved_fields.last().unwrap()["text"],
            "*Resolved*\n2024-01-01 10:20 UTC"
        );
    }

    #[test]
    fn slack_body_caps_the_alerts_and_says_how_many_more() {
        let alerts: Vec<Transition> = (0..13)
            .map(|i| Transition {
                alert_id: format!("{i:016x}"),
                labels: labels(&[("shop", &i.to_string())]),
                ..firing_fi()
            })
            .collect();
        let v = json_of(&notification(alerts), WebhookFormat::Slack);
        let blocks = v["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50, "Slack's block limit");
        let sections = blocks.iter().filter(|b| b["type"] == "section").count();
        assert_eq!(sections, SLACK_MAX_ALERTS);
        let last = blocks.last().unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert!(last.starts_with("…and 3 more alerts"), "{last}");
    }

    #[test]
    fn alerts_a_full_group_left_out_are_counted_in_every_format() {
        let n = Notification {
            omitted: 4,
            ..notification(vec![firing_fi()])
        };
        assert_eq!(json_of(&n, WebhookFormat::Kpiwatch)["omitted"], 4);
        assert_eq!(
            json_of(&n, WebhookFormat::Alertmanager)["truncatedAlerts"],
            4
        );
        let slack = json_of(&n, WebhookFormat::Slack);
        let last = slack["blocks"].as_array().unwrap().last().unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(last.starts_with("…and 4 more alerts"), "{last}");
    }

    #[test]
    fn slack_text_escapes_its_control_characters() {
        let mut a = firing_fi();
        a.labels = labels(&[("shop", "<b&c>")]);
        let v = json_of(&notification(vec![a]), WebhookFormat::Slack);
        assert_eq!(
            v["blocks"][1]["text"]["text"],
            "*checkouts dropped 63% (shop=&lt;b&amp;c&gt;)*"
        );
    }

    #[test]
    fn summaries_say_what_happened_in_words() {
        let spike = Transition {
            direction: Direction::Spike,
            observed: 412.0,
            deviation_pct: Some(4.46),
            evidence: Default::default(),
            labels: BTreeMap::new(),
            ..firing_fi()
        };
        assert_eq!(summary(&spike), "checkouts rose 4.5%");
        let from_zero = Transition {
            deviation_pct: None,
            evidence: Default::default(),
            expected: 0.0,
            ..spike
        };
        assert_eq!(summary(&from_zero), "checkouts rose to 412 (expected 0)");
        assert_eq!(value(0.012345), "0.0123");
        assert_eq!(value(1234.56), "1,235");
        assert_eq!(value(-3.0), "-3");
        assert_eq!(exact(210.5), "210.5");
        assert_eq!(exact(f64::NAN), "unknown");
    }

    #[test]
    fn the_same_notification_always_gives_the_same_bytes() {
        let n = notification(vec![firing_fi(), resolved_se()]);
        for f in [
            WebhookFormat::Kpiwatch,
            WebhookFormat::Alertmanager,
            WebhookFormat::Slack,
        ] {
            assert_eq!(body(&n, f, None), body(&n, f, None), "{f:?}");
        }
    }
}
