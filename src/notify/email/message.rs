//! What an email says: its subject, its text and HTML parts and the charts
//! inline, built from a [`Notification`] alone (a retried notification is
//! the same email).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use detectors::Direction;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;

use crate::alert::{Severity, Status, Transition};
use crate::feedback::link::LinkSigner;
use crate::feedback::Verdict;
use crate::notify::chart;
use crate::notify::phrase::{self, headline, labels, percent_signed, LABEL_VALUE_MAX_CHARS};
use crate::notify::{DeliveryError, Notification, Reason};
use crate::timefmt::human_utc;

/// At most this many alerts get a chart: each PNG is ~15-30 KB, and a
/// group of 200 alerts must not become a 5 MB email.
pub const MAX_CHARTS: usize = 5;

/// At most this many alerts are described in full; the rest are counted.
pub const MAX_DETAILED: usize = 50;

/// Chart size in pixels: fits the 640 px column of the HTML.
const CHART_WIDTH: u32 = 600;
const CHART_HEIGHT: u32 = 240;

/// The inbox line for `n`.
///
/// `[FIRING] checkouts dropped 63% (country=FI)`,
/// `[FIRING:3] checkouts dropped 63% (country=FI) and 2 more`,
/// `[FIRING] (reminder) …` for a repeat,
/// `[CRITICAL] checkouts dropped to 0 (country=FI) (escalated from
/// warning)` when an alert escalated (it leads, and the tag is its new
/// severity),
/// `[RESOLVED] checkouts back to normal (country=FI)`.
pub fn subject(n: &Notification) -> String {
    let firing: Vec<&Transition> = n.firing().collect();
    let (tag, lead, others) = match n.status {
        Status::Firing if !firing.is_empty() => {
            // Alerts the group had no room for are firing too.
            let count = firing.len() + n.omitted as usize;
            let escalated = firing.iter().copied().find(|a| a.is_escalation());
            let tag = match escalated {
                Some(a) => format!("[{}]", a.severity.name().to_uppercase()),
                None if count > 1 => format!("[FIRING:{count}]"),
                None => "[FIRING]".to_string(),
            };
            (tag, Some(escalated.unwrap_or(firing[0])), count - 1)
        }
        Status::Firing => ("[FIRING]".to_string(), n.alerts.first(), 0),
        Status::Resolved => (
            "[RESOLVED]".to_string(),
            n.alerts.first(),
            n.alerts.len().saturating_sub(1),
        ),
    };
    let mut s = tag;
    if n.reason == Reason::Repeat {
        s.push_str(" (reminder)");
    }
    match lead {
        Some(a) => {
            let _ = write!(s, " {}", headline(a));
            if !a.labels.is_empty() {
                let _ = write!(s, " ({})", labels(&a.labels, LABEL_VALUE_MAX_CHARS));
            }
            if let Some(e) = phrase::escalation(a) {
                let _ = write!(s, " ({e})");
            }
        }
        None => s.push_str(" no alerts"),
    }
    if others > 0 {
        let _ = write!(s, " and {others} more");
    }
    one_line(&s).into_owned()
}

/// The email for `n` from `from` to `to`. `external_url` (this kpiwatch's
/// base URL) adds a link in the footer.
///
/// A bad `from` or `to` address is [`DeliveryError::Permanent`]: sending
/// again cannot fix it. A chart that fails to render is left out (and
/// logged); the email still goes.
pub fn message(
    n: &Notification,
    from: &str,
    to: &[String],
    external_url: Option<&str>,
) -> Result<Message, DeliveryError> {
    message_with_links(n, from, to, external_url, None)
}

/// [`message`], with "useful" / "not useful" feedback links under each
/// alert when `links` is set (see [`crate::feedback::link`]).
pub fn message_with_links(
    n: &Notification,
    from: &str,
    to: &[String],
    external_url: Option<&str>,
    links: Option<&LinkSigner>,
) -> Result<Message, DeliveryError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| DeliveryError::Permanent(format!("invalid From address {from:?}: {e}")))?;
    if to.is_empty() {
        return Err(DeliveryError::Permanent(
            "the email receiver has no To address".to_string(),
        ));
    }
    let mut builder = Message::builder()
        .from(from)
        .subject(subject(n))
        .message_id(Some(format!("<{}@kpiwatch>", safe_id(&n.id))))
        .date(created_at(n))
        .raw_header(header("X-Kpiwatch-Notification-Id", &n.id))
        .raw_header(header("X-Kpiwatch-Status", status_word(n.status)))
        // RFC 3834: no vacation auto-replies to a machine.
        .raw_header(header("Auto-Submitted", "auto-generated"));
    for address in to {
        let mailbox: Mailbox = address.parse().map_err(|e| {
            DeliveryError::Permanent(format!("invalid To address {address:?}: {e}"))
        })?;
        builder = builder.to(mailbox);
    }

    let detailed = &n.alerts[..n.alerts.len().min(MAX_DETAILED)];
    let charts: Vec<Option<(String, Vec<u8>)>> = detailed
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if i >= MAX_CHARTS {
                return None;
            }
            match chart::render_png(a, CHART_WIDTH, CHART_HEIGHT) {
                Ok(png) => Some((format!("chart{i}.{}@kpiwatch", safe_id(&a.alert_id)), png)),
                Err(e) => {
                    tracing::warn!(alert = %a.alert_id, error = %e, "chart left out of the email");
                    None
                }
            }
        })
        .collect();

    let mut related =
        MultiPart::related().singlepart(SinglePart::html(html(n, external_url, links, &charts)));
    for (cid, png) in charts.into_iter().flatten() {
        related = related.singlepart(
            Attachment::new_inline(cid).body(png, ContentType::parse("image/png").expect("valid")),
        );
    }
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(text(n, external_url, links)))
                .multipart(related),
        )
        .map_err(|e| DeliveryError::Permanent(format!("the email cannot be built: {e}")))
}

/// `id` with everything but `[A-Za-z0-9._-]` replaced by `_`: usable in a
/// Message-ID, a Content-ID and a file name.
pub(super) fn safe_id(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("n{s}")
    } else {
        s
    }
}

fn header(name: &'static str, value: &str) -> HeaderValue {
    // The value is encoded (RFC 2047) and folded by lettre; only the name
    // must be ASCII, and these are constants.
    HeaderValue::new(
        HeaderName::new_from_ascii_str(name),
        one_line(value).into_owned(),
    )
}

/// `created_at_ms` as a time, for the Date header (the epoch for a
/// negative or absurd value).
fn created_at(n: &Notification) -> SystemTime {
    u64::try_from(n.created_at_ms)
        .ok()
        .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Firing => "firing",
        Status::Resolved => "resolved",
    }
}

/// What happened to one alert, as its heading in the body says it:
/// `FIRING`, `ESCALATED`, `RESOLVED`.
fn alert_word(a: &Transition) -> String {
    a.change_name().to_uppercase()
}

/// Control characters (a newline in a label value) become spaces.
fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

// ---------------------------------------------------------------------------
// What the email says about an alert

/// `4 min`, `1 h 20 min`, `2 d 3 h`.
fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

fn parse_time(t: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t, 0)
}

/// One line of an alert's details.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    /// `Observed`, `Since`, ….
    name: &'static str,
    /// The text.
    value: String,
    /// For links: the URL (the value is the URL too).
    link: bool,
}

impl Row {
    fn text(name: &'static str, value: String) -> Self {
        Self {
            name,
            value,
            link: false,
        }
    }
}

/// The details of one alert, in reading order.
fn rows(a: &Transition) -> Vec<Row> {
    let mut rows = Vec::new();
    if !a.labels.is_empty() {
        rows.push(Row::text("Series", labels(&a.labels, 200)));
    }
    rows.push(Row::text(
        if a.status == Status::Firing {
            "Evidence"
        } else {
            "Now"
        },
        phrase::evidence(a),
    ));
    if let Some(d) = a.deviation_pct.filter(|d| d.is_finite()) {
        rows.push(Row::text("Deviation", percent_signed(d)));
    }
    if let Some(r) = phrase::rarity(a) {
        rows.push(Row::text("Unusual", format!("{r} (score {:.2})", a.score)));
    }
    let started = parse_time(a.started_at);
    let ended = parse_time(a.bucket_end);
    let lasted = match (started, ended) {
        (Some(s), Some(e)) => format!(" ({})", duration((e - s).num_seconds())),
        _ => String::new(),
    };
    match a.status {
        Status::Firing => rows.push(Row::text(
            "Since",
            format!("{}{lasted}", human_utc(a.started_at)),
        )),
        Status::Resolved => rows.push(Row::text(
            "Lasted",
            format!(
                "{} to {}{lasted}",
                human_utc(a.started_at),
                ended
                    .map(|e| e.format("%H:%M UTC").to_string())
                    .unwrap_or_else(|| a.bucket_end.to_string())
            ),
        )),
    }
    let direction = match a.direction {
        Direction::None => String::new(),
        d => format!(", {}", d.name()),
    };
    let escalation = phrase::escalation(a)
        .map(|e| format!(" ({e} at {})", human_utc(a.bucket_end)))
        .unwrap_or_default();
    rows.push(Row::text(
        "Severity",
        format!("{}{escalation}{direction}", a.severity.name()),
    ));
    for (name, url) in [("Runbook", &a.runbook), ("Dashboard", &a.dashboard)] {
        if let Some(url) = url.as_deref().filter(|u| !u.trim().is_empty()) {
            rows.push(Row {
                name,
                value: url.trim().to_string(),
                link: is_web_url(url.trim()),
            });
        }
    }
    rows
}

/// Only http(s) URLs become links (a `javascript:` runbook stays text).
fn is_web_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// One sentence about the whole notification.
fn intro(n: &Notification) -> String {
    let firing = n.firing().count();
    let resolved = n.resolved().count();
    let mut s = match (firing, resolved) {
        (0, r) => format!("{} resolved.", plural(r, "alert")),
        (f, 0) => format!("{} firing.", plural(f, "alert")),
        (f, r) => format!("{} firing, {r} resolved.", plural(f, "alert")),
    };
    if n.reason == Reason::Repeat {
        s.push_str(" Reminder: nothing has changed since the last message.");
    }
    s
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Alerts of the group without details in the message: past
/// [`MAX_DETAILED`], and those the group had no room for.
fn not_shown(n: &Notification) -> usize {
    n.alerts.len().saturating_sub(MAX_DETAILED) + n.omitted as usize
}

// ---------------------------------------------------------------------------
// text/plain

/// The "useful" and "not useful" links of alert `a`, if links are on.
fn feedback_urls(
    n: &Notification,
    a: &Transition,
    links: Option<&LinkSigner>,
) -> Option<(String, String)> {
    let links = links?;
    let created = n.created_at_ms.div_euclid(1000);
    Some((
        links.url(&a.alert_id, Verdict::True, created),
        links.url(&a.alert_id, Verdict::False, created),
    ))
}

fn text(n: &Notification, external_url: Option<&str>, links: Option<&LinkSigner>) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "{}", subject(n));
    let _ = writeln!(t, "{}\n", intro(n));
    for a in n.alerts.iter().take(MAX_DETAILED) {
        let _ = writeln!(t, "{} {}", alert_word(a), headline(a));
        if let Some(d) = &a.description {
            let _ = writeln!(t, "{}", one_line(d));
        }
        for row in rows(a) {
            let _ = writeln!(
                t,
                "  {:<10} {}",
                format!("{}:", row.name),
                one_line(&row.value)
            );
        }
        if let Some((useful, not_useful)) = feedback_urls(n, a, links) {
            let _ = writeln!(t, "  Was this alert right?");
            let _ = writeln!(t, "  Useful:     {useful}");
            let _ = writeln!(t, "  Not useful: {not_useful}");
        }
        t.push('\n');
    }
    if not_shown(n) > 0 {
        let _ = writeln!(
            t,
            "… and {} not shown.\n",
            plural(not_shown(n), "more alert")
        );
    }
    let _ = writeln!(t, "-- ");
    let _ = write!(t, "kpiwatch, subscription {}", one_line(&n.subscription));
    if let Some(url) = external_url {
        let _ = write!(t, ", {url}");
    }
    let _ = writeln!(t, "\nNotification {}", n.id);
    t
}

// ---------------------------------------------------------------------------
// text/html

/// Escapes text for HTML element content and quoted attribute values.
fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_quoted_attribute(s)
}

const FONT: &str = "font-family:Arial,Helvetica,sans-serif;";
const MUTED: &str = "#586069";
const RED: &str = "#d62728";
const ORANGE: &str = "#e36209";
const GREEN: &str = "#22863a";

fn colour(a: &Transition) -> &'static str {
    match (a.status, a.severity) {
        (Status::Resolved, _) => GREEN,
        (Status::Firing, Severity::Critical) => RED,
        (Status::Firing, Severity::Warning) => ORANGE,
    }
}

/// The HTML part. `charts[i]` is the Content-ID of alert `i`'s chart, if
/// it has one.
fn html(
    n: &Notification,
    external_url: Option<&str>,
    links: Option<&LinkSigner>,
    charts: &[Option<(String, Vec<u8>)>],
) -> String {
    let top = match n.status {
        Status::Firing if n.firing().any(|a| a.severity == Severity::Critical) => RED,
        Status::Firing => ORANGE,
        Status::Resolved => GREEN,
    };
    let mut h = String::with_capacity(8 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head>\n\
         <body style=\"margin:0;padding:0;background:#f4f5f7;\">\n\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" \
         style=\"background:#f4f5f7;\"><tr><td align=\"center\" style=\"padding:16px 8px;\">\n\
         <table role=\"presentation\" width=\"640\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" \
         style=\"width:100%;max-width:640px;background:#ffffff;border:1px solid #e1e4e8;\
         border-top:4px solid {top};{FONT}color:#24292e;font-size:14px;line-height:1.45;\">\n\
         <tr><td style=\"padding:16px 20px 8px 20px;\">\
         <div style=\"{FONT}font-size:18px;font-weight:bold;\">{title}</div>\
         <div style=\"{FONT}color:{MUTED};padding-top:4px;\">{intro}</div></td></tr>\n",
        title = esc(&subject(n)),
        intro = esc(&intro(n)),
    );
    for (i, a) in n.alerts.iter().take(MAX_DETAILED).enumerate() {
        let c = colour(a);
        let _ = write!(
            h,
            "<tr><td style=\"padding:12px 20px 16px 20px;border-top:1px solid #e1e4e8;\">\
             <div style=\"{FONT}font-size:16px;font-weight:bold;\">\
             <span style=\"color:{c};\">{status}</span> {headline}</div>",
            status = alert_word(a),
            headline = esc(&headline(a)),
        );
        if let Some(d) = &a.description {
            let _ = write!(
                h,
                "<div style=\"{FONT}color:{MUTED};padding-top:2px;\">{}</div>",
                esc(d)
            );
        }
        h.push_str(
            "<table role=\"presentation\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" \
             style=\"margin-top:8px;\">",
        );
        for row in rows(a) {
            let value = if row.link {
                format!(
                    "<a href=\"{u}\" style=\"color:#0366d6;\">{u}</a>",
                    u = esc(&row.value)
                )
            } else {
                esc(&row.value).into_owned()
            };
            let _ = write!(
                h,
                "<tr><td style=\"{FONT}font-size:14px;color:{MUTED};padding:2px 16px 2px 0;\
                 vertical-align:top;white-space:nowrap;\">{name}</td>\
                 <td style=\"{FONT}font-size:14px;padding:2px 0;word-break:break-word;\">{value}</td></tr>",
                name = row.name,
            );
        }
        h.push_str("</table>");
        if let Some((useful, not_useful)) = feedback_urls(n, a, links) {
            let _ = write!(
                h,
                "<div style=\"{FONT}font-size:14px;padding-top:8px;\">Was this alert right? \
                 <a href=\"{u}\" style=\"color:#0366d6;\">Useful</a> · \
                 <a href=\"{nu}\" style=\"color:#0366d6;\">Not useful</a></div>",
                u = esc(&useful),
                nu = esc(&not_useful),
            );
        }
        if let Some(Some((cid, _))) = charts.get(i) {
            let _ = write!(
                h,
                "<img src=\"cid:{cid}\" width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" \
                 alt=\"Chart of {alt}: recent values against the normal band\" \
                 style=\"display:block;width:100%;max-width:{CHART_WIDTH}px;height:auto;\
                 border:0;margin-top:12px;\">\
                 <div style=\"{FONT}font-size:12px;color:{MUTED};padding-top:4px;\">\
                 Dark line: observed. Blue line: expected. Shaded: normal band. \
                 <span style=\"color:{RED};\">Red dots</span>: anomalous buckets. Times in UTC.</div>",
                cid = esc(cid),
                alt = esc(&a.kpi),
            );
        }
        h.push_str("</td></tr>\n");
    }
    if not_shown(n) > 0 {
        let _ = writeln!(
            h,
            "<tr><td style=\"{FONT}padding:8px 20px;color:{MUTED};\">… and {} not shown.</td></tr>",
            plural(not_shown(n), "more alert")
        );
    }
    let _ = write!(
        h,
        "<tr><td style=\"{FONT}font-size:12px;color:{MUTED};padding:12px 20px 16px 20px;\
         border-top:1px solid #e1e4e8;\">Sent by kpiwatch for subscription {sub}",
        sub = esc(&n.subscription),
    );
    if let Some(url) = external_url.filter(|u| is_web_url(u)) {
        let _ = write!(
            h,
            " · <a href=\"{u}\" style=\"color:#0366d6;\">{u}</a>",
            u = esc(url)
        );
    }
    let _ = write!(
        h,
        "<br>Notification {}</td></tr>\n</table>\n</td></tr></table>\n</body></html>\n",
        esc(&n.id)
    );
    h
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::notify::chart::testing::checkouts_drop;
    use crate::notify::phrase::{band, percent, value};

    fn notification(alerts: Vec<Transition>) -> Notification {
        let status = if alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        };
        Notification {
            id: "n-3f2a9c1d".to_string(),
            receiver: "growth-team".to_string(),
            subscription: "checkouts".to_string(),
            group: BTreeMap::from([("kpi".to_string(), "checkouts".to_string())]),
            status,
            reason: Reason::New,
            alerts,
            omitted: 0,
            created_at_ms: 1_704_105_000_000,
        }
    }

    fn spike(country: &str, pct: f64) -> Transition {
        let mut a = checkouts_drop();
        a.labels = BTreeMap::from([("country".to_string(), country.to_string())]);
        a.direction = Direction::Spike;
        a.deviation_pct = Some(pct);
        a.observed = a.expected * (1.0 + pct / 100.0);
        a
    }

    fn resolved(mut a: Transition) -> Transition {
        a.status = Status::Resolved;
        a
    }

    fn formatted(m: &Message) -> String {
        String::from_utf8_lossy(&m.formatted()).into_owned()
    }

    #[test]
    fn subject_names_the_kpi_the_change_and_the_series() {
        let n = notification(vec![checkouts_drop()]);
        assert_eq!(subject(&n), "[FIRING] checkouts dropped 63% (country=FI)");
    }

    #[test]
    fn subject_counts_firing_alerts_and_says_how_many_more() {
        let n = notification(vec![checkouts_drop(), spike("SE", 40.0), spike("NO", 12.0)]);
        assert_eq!(
            subject(&n),
            "[FIRING:3] checkouts dropped 63% (country=FI) and 2 more"
        );
    }

    #[test]
    fn alerts_a_full_group_left_out_are_counted_in_subject_and_text() {
        let n = Notification {
            omitted: 7,
            ..notification(vec![checkouts_drop(), spike("SE", 40.0)])
        };
        assert_eq!(
            subject(&n),
            "[FIRING:9] checkouts dropped 63% (country=FI) and 8 more"
        );
        assert!(
            text(&n, None, None).contains("… and 7 more alerts not shown."),
            "{}",
            text(&n, None, None)
        );
    }

    #[test]
    fn subject_for_spikes_resolutions_and_reminders() {
        let n = notification(vec![spike("SE", 40.0)]);
        assert_eq!(subject(&n), "[FIRING] checkouts rose 40% (country=SE)");

        let mut n = notification(vec![resolved(checkouts_drop())]);
        n.reason = Reason::Resolved;
        assert_eq!(
            subject(&n),
            "[RESOLVED] checkouts back to normal (country=FI)"
        );

        let mut n = notification(vec![checkouts_drop()]);
        n.reason = Reason::Repeat;
        assert_eq!(
            subject(&n),
            "[FIRING] (reminder) checkouts dropped 63% (country=FI)"
        );
    }

    #[test]
    fn subject_without_labels_has_no_parentheses() {
        let mut a = checkouts_drop();
        a.labels.clear();
        assert_eq!(
            subject(&notification(vec![a])),
            "[FIRING] checkouts dropped 63%"
        );
    }

    #[test]
    fn subject_keeps_to_one_line_whatever_the_labels() {
        let mut a = checkouts_drop();
        a.labels.insert(
            "shop".to_string(),
            "a\r\nBcc: victim@example.com".to_string(),
        );
        let s = subject(&notification(vec![a]));
        assert!(!s.contains('\n') && !s.contains('\r'), "{s:?}");
    }

    #[test]
    fn subject_for_a_drop_to_zero_and_a_spike_from_zero() {
        let mut a = checkouts_drop();
        a.observed = 0.0;
        a.deviation_pct = Some(-100.0);
        assert_eq!(
            subject(&notification(vec![a])),
            "[FIRING] checkouts dropped to 0 (country=FI)"
        );
        let mut a = spike("FI", 0.0);
        a.expected = 0.0;
        a.observed = 12.0;
        a.deviation_pct = None;
        assert_eq!(
            subject(&notification(vec![a])),
            "[FIRING] checkouts rose to 12 (expected 0) (country=FI)"
        );
    }

    #[test]
    fn values_durations_and_bands_read_naturally() {
        assert_eq!(value(44.4444), "44.4");
        assert_eq!(value(120.0), "120");
        assert_eq!(value(12_345.6), "12,346");
        assert_eq!(value(0.01234), "0.0123");
        assert_eq!(value(f64::NAN), "no data");
        assert_eq!(percent(63.04), "63%");
        assert_eq!(percent(4.25), "4.2%");
        assert_eq!(percent(1150.0), "1,150%");
        assert_eq!(duration(240), "4 min");
        assert_eq!(duration(4800), "1 h 20 min");
        assert_eq!(duration(3 * 86_400 + 7200 + 60), "3 d 2 h");
        assert_eq!(band(96.0, 144.0).as_deref(), Some("96 – 144"));
        assert_eq!(
            band(f64::NEG_INFINITY, 144.0).as_deref(),
            Some("at most 144")
        );
        assert_eq!(band(f64::NAN, f64::NAN), None);
    }

    #[test]
    fn message_has_deterministic_ids_and_kpiwatch_headers() {
        let n = notification(vec![checkouts_drop()]);
        let to = ["pm@example.com".to_string()];
        let m = message(&n, "kpiwatch <kpiwatch@example.com>", &to, None).expect("message");
        let raw = formatted(&m);
        assert!(raw.contains("Message-ID: <n-3f2a9c1d@kpiwatch>"), "{raw}");
        assert!(raw.contains("X-Kpiwatch-Notification-Id: n-3f2a9c1d"));
        assert!(raw.contains("X-Kpiwatch-Status: firing"));
        assert!(
            raw.contains("Date: Mon, 01 Jan 2024 10:30:00 +0000"),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("multipart/related"));
        assert!(raw.contains("Content-Type: image/png"));
    }

    #[test]
    fn bad_addresses_are_permanent_errors() {
        let n = notification(vec![checkouts_drop()]);
        let good = ["pm@example.com".to_string()];
        let bad = ["not an address".to_string()];
        assert!(matches!(
            message(&n, "kpiwatch@example.com", &bad, None),
            Err(DeliveryError::Permanent(_))
        ));
        assert!(matches!(
            message(&n, "kpiwatch at example", &good, None),
            Err(DeliveryError::Permanent(_))
        ));
        assert!(matches!(
            message(&n, "kpiwatch@example.com", &[], None),
            Err(DeliveryError::Permanent(_))
        ));
    }

    #[test]
    fn charts_are_capped() {
        let alerts: Vec<Transition> = (0..8).map(|i| spike(&format!("C{i}"), 40.0)).collect();
        let n = notification(alerts);
        let m =
            message(&n, "kpiwatch@example.com", &["a@example.com".into()], None).expect("message");
        let raw = formatted(&m);
        assert_eq!(raw.matches("Content-Type: image/png").count(), MAX_CHARTS);
        assert_eq!(
            raw.matches("src=3D\"cid:").count() + raw.matches("src=\"cid:").count(),
            MAX_CHARTS
        );
    }

    #[test]
    fn html_escapes_labels_and_only_links_web_urls() {
        let mut a = checkouts_drop();
        a.labels
            .insert("shop".to_string(), "<b>Tom & \"Jerry's\"</b>".to_string());
        a.runbook = Some("javascript:alert(1)".to_string());
        a.dashboard = Some("https://grafana.example.com/d/x?a=1&b=2".to_string());
        let n = notification(vec![a]);
        let h = html(&n, Some("https://kpiwatch.example.com"), None, &[]);
        assert!(
            h.contains("shop=&lt;b&gt;Tom &amp; &quot;Jerry&#x27;s&quot;&lt;/b&gt;"),
            "{h}"
        );
        assert!(!h.contains("<b>Tom"));
        assert!(!h.contains("href=\"javascript:"));
        assert!(h.contains("href=\"https://grafana.example.com/d/x?a=1&amp;b=2\""));
        assert!(h.contains("href=\"https://kpiwatch.example.com\""));
    }

    #[test]
    fn text_part_says_the_evidence_deviation_rarity_and_since() {
        let mut a = checkouts_drop();
        a.evidence = crate::alert::Evidence {
            kind: crate::alert::EvidenceKind::Window,
            from: a.bucket_end - 3 * 60,
            to: a.bucket_end,
            buckets: 3,
            p: Some(3.3e-8),
            rule: None,
            share: None,
        };
        let n = notification(vec![a]);
        let t = text(&n, None, None);
        assert!(t.contains("FIRING checkouts dropped 63%"), "{t}");
        assert!(
            t.contains("Evidence:  44.4 over the last 3 minutes (3 buckets), expected 120 (normal 96 – 144)"),
            "{t}"
        );
        assert!(t.contains("Deviation: -63%"), "{t}");
        assert!(t.contains("Since:     2024-01-01 10:44 UTC (4 min)"), "{t}");
        assert!(t.contains("Unusual:   about 1 in 30 million"), "{t}");
        assert!(
            t.contains("Runbook:   https://wiki.example.com/runbooks/checkouts"),
            "{t}"
        );
    }

    /// `checkouts_drop` escalated from warning: checkouts in FI at 0.
    fn escalated() -> Transition {
        let mut a = checkouts_drop();
        a.observed = 0.0;
        a.deviation_pct = Some(-100.0);
        a.escalated_from = Some(Severity::Warning);
        a
    }

    #[test]
    fn an_escalation_leads_the_subject_at_its_new_severity_and_says_what_it_rose_from() {
        let n = notification(vec![escalated()]);
        assert_eq!(
            subject(&n),
            "[CRITICAL] checkouts dropped to 0 (country=FI) (escalated from warning)"
        );
        // Among other firing alerts it leads, whatever their order.
        let n = notification(vec![spike("SE", 40.0), escalated()]);
        assert_eq!(
            subject(&n),
            "[CRITICAL] checkouts dropped to 0 (country=FI) (escalated from warning) and 1 more"
        );
        let t = text(&n, None, None);
        assert!(t.contains("ESCALATED checkouts dropped to 0"), "{t}");
        assert!(t.contains("FIRING checkouts rose 40%"), "{t}");
        assert!(
            t.contains(
                "Severity:  critical (escalated from warning at 2024-01-01 10:48 UTC), drop"
            ),
            "{t}"
        );
        let h = html(&n, None, None, &[None, None]);
        assert!(h.contains(">ESCALATED</span>"), "{h}");
    }

    #[test]
    fn resolved_alerts_say_how_long_they_lasted() {
        let n = notification(vec![resolved(checkouts_drop())]);
        let t = text(&n, None, None);
        assert!(t.contains("RESOLVED checkouts back to normal"), "{t}");
        assert!(
            t.contains("Lasted:    2024-01-01 10:44 UTC to 10:48 UTC (4 min)"),
            "{t}"
        );
        assert!(!t.contains("Unusual:"), "{t}");
    }
}
