//! How an alert is put into words, the same everywhere people read it:
//! email subjects and bodies, webhook summaries (kpiwatch, Alertmanager,
//! Slack) and the demo's console lines.
//!
//! `checkouts dropped 63% (country=FI)`, `refunds rose 40%`,
//! `checkouts dropped to 0 (country=SE)`, `signups rose to 412 (expected
//! 0)`, `checkouts back to normal (country=FI)`, `checkouts dropped to 0
//! (escalated from warning)`; and the evidence behind
//! it: `166 over the last 45 minutes (9 buckets), expected 280 (normal 240
//! – 320)`, `about 1 in 30 million`.

use std::collections::BTreeMap;

use crate::alert::{EvidenceKind, RuleKind, Status, Transition};
use crate::timefmt::rfc3339;
use detectors::Direction;

/// Longest label value shown in a summary; longer ones are cut with `…`
/// (the full labels travel in their own fields).
pub const LABEL_VALUE_MAX_CHARS: usize = 40;

/// The KPI and what it did, with its labels and, for an escalation, the
/// severity it rose from: `checkouts dropped 63% (country=FI)`,
/// `checkouts dropped to 0 (country=FI) (escalated from warning)`.
pub fn summary(a: &Transition) -> String {
    let mut s = headline(a);
    if !a.labels.is_empty() {
        s.push_str(&format!(" ({})", labels(&a.labels, LABEL_VALUE_MAX_CHARS)));
    }
    if let Some(e) = escalation(a) {
        s.push_str(&format!(" ({e})"));
    }
    s
}

/// `escalated from warning`, for an escalation (an alert already firing
/// whose evidence became rare enough for a higher severity); none for
/// any other transition.
pub fn escalation(a: &Transition) -> Option<String> {
    a.escalated_from
        .filter(|_| a.is_escalation())
        .map(|from| format!("escalated from {}", from.name()))
}

/// The KPI and what it did, without labels: `checkouts dropped 63%`; for
/// evidence from the typical value, what one event is worth:
/// `revenue's typical value per event dropped 50%`.
pub fn headline(a: &Transition) -> String {
    if a.evidence.kind == EvidenceKind::Typical && a.status == Status::Firing {
        format!("{}'s typical value per event {}", a.kpi, change(a))
    } else {
        format!("{} {}", a.kpi, change(a))
    }
}

/// What the KPI did: `dropped 63%`, `rose 4.5%`, `dropped to 0`,
/// `rose to 412 (expected 0)` (no percentage against an expectation of 0),
/// `has no data`, `is unusual`, `back to normal`.
pub fn change(a: &Transition) -> String {
    if a.status == Status::Resolved {
        return "back to normal".to_string();
    }
    if a.observed.is_nan() {
        return "has no data".to_string();
    }
    let down = match a.direction {
        Direction::Drop => true,
        Direction::Spike => false,
        Direction::None => match a.deviation_pct {
            Some(d) if d < 0.0 => true,
            Some(d) if d > 0.0 => false,
            _ => return "is unusual".to_string(),
        },
    };
    let verb = if down { "dropped" } else { "rose" };
    match a.deviation_pct {
        _ if down && a.observed == 0.0 => "dropped to 0".to_string(),
        Some(d) if d.is_finite() => format!("{verb} {}", percent(d.abs())),
        _ => format!(
            "{verb} to {} (expected {})",
            value(a.observed),
            value(a.expected)
        ),
    }
}

/// What fired (or resolved) the alert, in one sentence that names its
/// span and gives the figures the alert carries, so the reader sees the
/// same numbers the detector judged:
///
/// - one bucket: `0 in 14:05–14:10 UTC, expected 22 (normal 9 – 37)`;
/// - a window: `166 over the last 45 minutes (9 buckets), expected 280
///   (normal 240 – 320)`;
/// - peers: `1,030 over the last 2 h (8 buckets), where its usual 16 % of
///   the group implies 2,400 (normal 1,900 – 2,900); its share was 7.3 %`;
/// - the typical value: `21.2 per event (the geometric mean of the events'
///   values) over the last 55 minutes (11 buckets), expected 36.1 (normal
///   21.6 – 60.2)`;
/// - a rule: `2 is below the configured min of 5`.
pub fn evidence(a: &Transition) -> String {
    let e = &a.evidence;
    // An alert written before evidence was recorded covers its bucket.
    let (from, to) = if e.from < e.to {
        (e.from, e.to)
    } else {
        (a.bucket_start, a.bucket_end)
    };
    let span = if e.buckets > 1 {
        format!(
            "over the last {} ({} buckets)",
            span_duration(to - from),
            e.buckets
        )
    } else {
        format!("in {}–{} UTC", clock(from), clock(to))
    };
    let normal = band(a.lower, a.upper)
        .map(|b| format!(" (normal {b})"))
        .unwrap_or_default();
    match e.kind {
        EvidenceKind::Rule => match e.rule {
            Some(rule) => match rule.kind {
                RuleKind::Min => format!(
                    "{} {span} is below the configured min of {}",
                    value(a.observed),
                    value(rule.limit)
                ),
                RuleKind::Max => format!(
                    "{} {span} is above the configured max of {}",
                    value(a.observed),
                    value(rule.limit)
                ),
                RuleKind::WeekOverWeek => format!(
                    "{} {span} is beyond the week-over-week limit of {} (the same hour last week: {})",
                    value(a.observed),
                    value(rule.limit),
                    value(a.expected)
                ),
            },
            None => format!("{} {span}", value(a.observed)),
        },
        EvidenceKind::Peers => {
            let share = e
                .share
                .map(|s| {
                    format!(
                        ", where its usual {} of the group implies {}{normal}; its share was {}",
                        percent(s.usual * 100.0),
                        value(a.expected),
                        percent(s.observed * 100.0)
                    )
                })
                .unwrap_or_else(|| format!(", expected from its peers {}{normal}", value(a.expected)));
            format!("{} {span}{share}", value(a.observed))
        }
        EvidenceKind::Typical => format!(
            "{} per event (the geometric mean of the events' values) {span}, expected {}{normal}",
            value(a.observed),
            value(a.expected)
        ),
        EvidenceKind::Bucket | EvidenceKind::Window => format!(
            "{} {span}, expected {}{normal}",
            value(a.observed),
            value(a.expected)
        ),
    }
}

/// How unusual the evidence is, from its tail probability: `about 1 in 30
/// million`; none for a rule (it is broken or not) or a resolution.
pub fn rarity(a: &Transition) -> Option<String> {
    if a.status != Status::Firing {
        return None;
    }
    let p = a.evidence.p.filter(|p| p.is_finite() && *p > 0.0)?;
    let n = 1.0 / p;
    if n < 2.0 {
        return None;
    }
    // One significant digit: "1 in 30 million", not "1 in 27,542,287".
    let magnitude = 10f64.powf(n.log10().floor());
    let rounded = (n / magnitude).round() * magnitude;
    let words = if rounded >= 1e15 {
        "more than a quadrillion".to_string()
    } else if rounded >= 1e12 {
        format!("{} trillion", trim_zeros(&format!("{:.1}", rounded / 1e12)))
    } else if rounded >= 1e9 {
        format!("{} billion", rounded / 1e9)
    } else if rounded >= 1e6 {
        format!("{} million", rounded / 1e6)
    } else {
        thousands(rounded)
    };
    Some(format!("about 1 in {words}"))
}

/// The band as words: `96 – 144`, `at most 144`, `at least 96`.
pub fn band(lower: f64, upper: f64) -> Option<String> {
    let known = |v: f64| v.is_finite();
    match (known(lower), known(upper)) {
        (true, true) => Some(format!("{} – {}", value(lower), value(upper))),
        (false, true) => Some(format!("at most {}", value(upper))),
        (true, false) => Some(format!("at least {}", value(lower))),
        (false, false) => None,
    }
}

/// `14:05` (UTC) for epoch seconds.
fn clock(t: i64) -> String {
    let text = rfc3339(t);
    text.get(11..16).unwrap_or(&text).to_string()
}

/// `45 minutes`, `2 h`, `3 h 30 min`, `2 d`.
pub fn span_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, m) => format!("{m} minutes"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// `country=FI, device=ios`, each value cut to `max` characters.
pub fn labels(labels: &BTreeMap<String, String>, max: usize) -> String {
    labels
        .iter()
        .map(|(k, v)| {
            if v.chars().count() > max {
                let cut: String = v.chars().take(max - 1).collect();
                format!("{k}={cut}…")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A percentage magnitude: `63%`, `4.2%`, `1,150%`.
pub fn percent(p: f64) -> String {
    if p < 10.0 {
        format!("{}%", trim_zeros(&format!("{p:.1}")))
    } else {
        format!("{}%", thousands(p.round()))
    }
}

/// A signed percentage: `-63%`, `+4.2%`.
pub fn percent_signed(p: f64) -> String {
    let sign = if p < 0.0 { "-" } else { "+" };
    format!("{sign}{}", percent(p.abs()))
}

/// A value as people read it: 3 significant digits, thousands separated,
/// `no data` for NaN.
pub fn value(v: f64) -> String {
    if v.is_nan() {
        return "no data".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞" } else { "-∞" }.to_string();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e15).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 1000.0 {
        thousands(v.round())
    } else {
        let decimals = (2 - a.log10().floor() as i32).clamp(0, 5) as usize;
        trim_zeros(&format!("{v:.decimals$}"))
    }
}

/// `4.50` → `4.5`, `3.0` → `3`.
pub fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// `12345` → `12,345` (integral values only).
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if v < 0.0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Evidence, Rule, Severity, Share};
    use std::collections::BTreeMap;

    const T: i64 = 1_742_479_500; // 2025-03-20T14:05:00Z

    fn alert(kind: EvidenceKind, buckets: u32) -> Transition {
        Transition {
            status: Status::Firing,
            alert_id: "a".into(),
            kpi: "logins".into(),
            labels: BTreeMap::new(),
            severity: Severity::Critical,
            escalated_from: None,
            direction: Direction::Drop,
            started_at: T,
            bucket_start: T,
            bucket_end: T + 300,
            observed: 166.0,
            expected: 280.0,
            lower: 240.0,
            upper: 320.0,
            score: 0.7,
            deviation_pct: Some(-40.7),
            evidence: Evidence {
                kind,
                from: T + 300 - i64::from(buckets) * 300,
                to: T + 300,
                buckets,
                p: Some(3.2e-8),
                rule: None,
                share: None,
            },
            description: None,
            runbook: None,
            dashboard: None,
            recent: Vec::new(),
        }
    }

    #[test]
    fn a_window_names_its_span_and_its_totals() {
        assert_eq!(
            evidence(&alert(EvidenceKind::Window, 9)),
            "166 over the last 45 minutes (9 buckets), expected 280 (normal 240 – 320)"
        );
    }

    #[test]
    fn a_bucket_names_its_time() {
        assert_eq!(
            evidence(&alert(EvidenceKind::Bucket, 1)),
            "166 in 14:05–14:10 UTC, expected 280 (normal 240 – 320)"
        );
    }

    #[test]
    fn peers_say_what_the_usual_share_implies() {
        let mut a = alert(EvidenceKind::Peers, 8);
        a.evidence.share = Some(Share {
            observed: 0.073,
            usual: 0.165,
        });
        assert_eq!(
            evidence(&a),
            "166 over the last 40 minutes (8 buckets), where its usual 17% of the group implies 280 (normal 240 – 320); its share was 7.3%"
        );
    }

    #[test]
    fn the_typical_value_is_per_event_in_the_headline_and_the_evidence() {
        let mut a = alert(EvidenceKind::Typical, 11);
        a.kpi = "revenue".into();
        (a.observed, a.expected, a.lower, a.upper) = (21.2, 36.1, 21.6, 60.2);
        a.deviation_pct = Some(-41.3);
        assert_eq!(
            headline(&a),
            "revenue's typical value per event dropped 41%"
        );
        assert_eq!(
            evidence(&a),
            "21.2 per event (the geometric mean of the events' values) over the last 55 minutes (11 buckets), expected 36.1 (normal 21.6 – 60.2)"
        );
        a.status = Status::Resolved;
        assert_eq!(headline(&a), "revenue back to normal");
    }

    #[test]
    fn a_rule_names_its_limit_and_no_probability() {
        let mut a = alert(EvidenceKind::Rule, 1);
        a.evidence.p = None;
        a.observed = 2.0;
        a.evidence.rule = Some(Rule {
            kind: RuleKind::Min,
            limit: 5.0,
        });
        assert_eq!(
            evidence(&a),
            "2 in 14:05–14:10 UTC is below the configured min of 5"
        );
        assert_eq!(rarity(&a), None);
    }

    #[test]
    fn rarity_reads_as_one_in_n_from_the_evidences_probability() {
        let mut a = alert(EvidenceKind::Window, 9);
        assert_eq!(rarity(&a).as_deref(), Some("about 1 in 30 million"));
        a.evidence.p = Some(1e-3);
        assert_eq!(rarity(&a).as_deref(), Some("about 1 in 1,000"));
        a.evidence.p = Some(1e-13);
        assert_eq!(rarity(&a).as_deref(), Some("about 1 in 10 trillion"));
        a.status = Status::Resolved;
        assert_eq!(rarity(&a), None);
    }

    #[test]
    fn an_escalation_says_which_severity_it_rose_from() {
        let mut a = alert(EvidenceKind::Bucket, 1);
        a.observed = 0.0;
        a.labels = BTreeMap::from([("country".to_string(), "FI".to_string())]);
        assert_eq!(summary(&a), "logins dropped to 0 (country=FI)");
        a.escalated_from = Some(Severity::Warning);
        assert_eq!(
            summary(&a),
            "logins dropped to 0 (country=FI) (escalated from warning)"
        );
        assert_eq!(
            headline(&a),
            "logins dropped to 0",
            "the headline is the change"
        );
        assert_eq!(rarity(&a).as_deref(), Some("about 1 in 30 million"));
    }
}
