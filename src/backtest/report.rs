//! The backtest's figures: [`build`] turns a replay's transitions, what it
//! saw of the data ([`Seen`]) and the labels into a [`Report`], whose
//! serde form is the `--json` schema (README, "Backtest"). Other tools
//! read that schema: fields may be added, never renamed or removed.
//!
//! Times are epoch seconds here and RFC 3339 text in JSON.

use std::collections::BTreeMap;

use detectors::Direction;
use serde::{Serialize, Serializer};

use crate::alert::{EvidenceKind, Severity, Transition};
use crate::config::model::{Aggregate, Config, Kpi, Measure};
use crate::pipeline::Summary;
use crate::timefmt::{rfc3339, rfc3339_secs};

use super::checks::{check, Violation};
use super::labels::{Incident, Labels};
use super::matching::{alerts, fires_after_end, matches, Alert, Delay};

const WEEK: f64 = 7.0 * 86_400.0;

/// What the replay saw of the data, besides the transitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    /// Events read, rejected, late.
    pub summary: Summary,
    /// Time of the earliest event accepted.
    pub first_event: Option<i64>,
    /// Time of the latest event accepted.
    pub last_event: Option<i64>,
    /// Series judged, per KPI (indexed like `Config::kpis`).
    pub series: Vec<usize>,
    /// Lowest value judged, per KPI; +∞ when none.
    pub lowest: Vec<f64>,
}

/// The whole backtest, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Events read.
    pub events: u64,
    /// Events refused as malformed.
    pub rejected: u64,
    /// Events whose buckets had closed.
    pub late: u64,
    /// Earliest event time.
    #[serde(serialize_with = "optional_time")]
    pub from: Option<i64>,
    /// Latest event time.
    #[serde(serialize_with = "optional_time")]
    pub to: Option<i64>,
    /// Weeks from `from` to `to`: what false alerts are counted per.
    pub weeks: f64,
    /// The replayed topic's KPIs, in config order.
    pub kpis: Vec<KpiRow>,
    /// The labels' incidents, in file order.
    pub incidents: Vec<IncidentRow>,
    /// The labels' quiet spans, in file order.
    pub quiet: Vec<QuietRow>,
    /// All KPIs together.
    pub overall: Overall,
    /// Every consistency violation, in transition order.
    pub violations: Vec<Violation>,
    /// Every alert, in the order they fired.
    pub alerts: Vec<AlertRow>,
    /// Added to the schema: whether a labels file was given. Without one
    /// every alert counts as false (it matches no incident), so `false`
    /// equals `fired`.
    pub labelled: bool,
    /// Added to the schema: the topic replayed.
    pub topic: String,
    /// Added to the schema: the spans of the calendars of expected events
    /// each KPI follows, within the data (a chart shades them as kind
    /// `calendar`), in KPI order, then time.
    pub calendar_spans: Vec<CalendarSpanRow>,
    /// Added to the schema: the alerts a mute calendar kept from firing,
    /// in bucket order. They are not in `alerts` and count as nothing.
    pub muted: Vec<MutedRow>,
}

/// One span of a calendar a KPI follows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalendarSpanRow {
    /// The KPI.
    pub kpi: String,
    /// The calendar's name.
    pub calendar: String,
    /// "mute" or "widen".
    pub effect: &'static str,
    /// For "widen": how many times rarer the evidence must be.
    pub widen: Option<f64>,
    /// First instant inside.
    #[serde(with = "rfc3339_secs")]
    pub start: i64,
    /// First instant after.
    #[serde(with = "rfc3339_secs")]
    pub end: i64,
}

/// An alert a calendar muted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MutedRow {
    /// The KPI.
    pub kpi: String,
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// The calendar that muted it.
    pub calendar: String,
    /// Start of its first anomalous bucket.
    #[serde(with = "rfc3339_secs")]
    pub started_at: i64,
    /// The bucket it would have fired at.
    #[serde(with = "rfc3339_secs")]
    pub would_fire_at: i64,
    /// Which way the series went.
    pub direction: Direction,
    /// The evidence's observed value.
    pub observed: f64,
    /// Its expected value.
    pub expected: f64,
}

/// The spans of the calendars the topic's KPIs follow, between `from` and
/// `to` (the data's first and last event).
pub fn calendar_spans(config: &Config, topic: usize, from: i64, to: i64) -> Vec<CalendarSpanRow> {
    let mut out = Vec::new();
    for k in config.kpis.iter().filter(|k| k.topic == topic) {
        for u in &k.calendars {
            let (effect, widen) = match u.effect {
                crate::calendar::Effect::Mute => ("mute", None),
                crate::calendar::Effect::Widen(n) => ("widen", Some(n)),
            };
            for (start, end) in u.calendar.spans(from, to + 1) {
                out.push(CalendarSpanRow {
                    kpi: k.name.clone(),
                    calendar: u.calendar.name.clone(),
                    effect,
                    widen,
                    start,
                    end,
                });
            }
        }
    }
    out
}

/// The muted alerts as report rows.
pub fn muted_rows(muted: &[crate::pipeline::engine::Muted]) -> Vec<MutedRow> {
    muted
        .iter()
        .map(|m| MutedRow {
            kpi: m.kpi.clone(),
            labels: m.labels.clone(),
            calendar: m.calendar.clone(),
            started_at: m.started_at,
            would_fire_at: m.bucket_start,
            direction: m.direction,
            observed: m.observed,
            expected: m.expected,
        })
        .collect()
}

/// One KPI's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiRow {
    /// KPI name.
    pub kpi: String,
    /// Series judged.
    pub series: usize,
    /// Alerts fired.
    pub fired: usize,
    /// Of those, warnings (their worst severity).
    pub warning: usize,
    /// Of those, critical.
    pub critical: usize,
    /// Alerts matching no incident.
    #[serde(rename = "false")]
    pub false_alerts: usize,
    /// `false` per week of data; null without a week's fraction of data.
    pub false_per_week: Option<f64>,
    /// Incidents whose `kpis` name this KPI.
    pub incidents: usize,
    /// Of those, detected by an alert of this KPI.
    pub detected: usize,
    /// `detected / incidents`; null when no incident names the KPI.
    pub recall: Option<f64>,
    /// Alerts not resolved when the data ended.
    pub still_firing: usize,
    /// Consistency violations of its transitions.
    pub violations: usize,
    /// Added to the schema: all alerts per week of data.
    pub alerts_per_week: Option<f64>,
    /// Added to the schema: alerts matching an expected event of the
    /// labels (feedback `expected`): neither false nor detections.
    pub expected: usize,
    /// Added to the schema: of the false alerts, those matching a known
    /// false alert of the labels (feedback `false`).
    pub known_false: usize,
}

/// One incident's detection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentRow {
    /// Its id.
    pub id: String,
    /// Its kind, as labelled.
    pub kind: Option<String>,
    /// Start.
    #[serde(with = "rfc3339_secs")]
    pub start: i64,
    /// End (exclusive).
    #[serde(with = "rfc3339_secs")]
    pub end: i64,
    /// Whether an alert matched it.
    pub detected: bool,
    /// Start to the first matching alert's firing, in minutes.
    pub delay_minutes: Option<f64>,
    /// The same in buckets of that alert's KPI, rounded up.
    pub delay_buckets: Option<u64>,
    /// The label's target, echoed.
    pub target_delay_buckets: Option<u32>,
    /// The first matching alert.
    pub first_alert: Option<FirstAlert>,
    /// Alerts matching it.
    pub alerts: usize,
    /// Of those, still firing after its end plus their grace.
    pub firing_after_end: usize,
    /// Added to the schema: of those, a series' second and later alerts
    /// in the same direction (it resolved and fired again: an alert that
    /// flapped while the incident went on).
    pub refired: usize,
    /// Added to the schema: detected within `target_delay_buckets`
    /// (null without a target).
    pub within_target: Option<bool>,
}

/// The alert that detected an incident first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirstAlert {
    /// Its id.
    pub alert_id: String,
    /// Its KPI.
    pub kpi: String,
    /// Its series.
    pub labels: BTreeMap<String, String>,
    /// The kind of evidence it fired on.
    pub evidence: EvidenceKind,
    /// When it fired.
    #[serde(with = "rfc3339_secs")]
    pub fired_at: i64,
}

/// One quiet span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuietRow {
    /// Its id.
    pub id: String,
    /// Its kind, as labelled.
    pub kind: Option<String>,
    /// False alerts that started inside it.
    pub alerts: usize,
    /// Added to the schema: start.
    #[serde(with = "rfc3339_secs")]
    pub start: i64,
    /// Added to the schema: end (exclusive).
    #[serde(with = "rfc3339_secs")]
    pub end: i64,
    /// Added to the schema: the ids of those alerts.
    pub alert_ids: Vec<String>,
}

/// All KPIs together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overall {
    /// Incidents labelled.
    pub incidents: usize,
    /// Of those, detected by some alert.
    pub detected: usize,
    /// `detected / incidents`; null without incidents.
    pub recall: Option<f64>,
    /// Alerts fired.
    pub fired: usize,
    /// Alerts matching no incident.
    #[serde(rename = "false")]
    pub false_alerts: usize,
    /// Weeks of data times the KPIs replayed.
    pub kpi_weeks: f64,
    /// `false / kpi_weeks`; null when that is 0.
    pub false_per_kpi_week: Option<f64>,
    /// Alerts not resolved when the data ended.
    pub still_firing_at_end: usize,
    /// Alerts still firing after the end (plus grace) of an incident
    /// they matched.
    pub firing_after_incident_end: usize,
    /// Consistency violations.
    pub violations: usize,
    /// Added to the schema: all alerts per KPI-week.
    pub alerts_per_kpi_week: Option<f64>,
    /// Added to the schema: alerts matching an expected event.
    pub expected: usize,
    /// Added to the schema: false alerts matching a known false alert.
    pub known_false: usize,
    /// Added to the schema: the incidents' `refired`, summed.
    pub refired: usize,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    /// Its id.
    pub alert_id: String,
    /// Its KPI.
    pub kpi: String,
    /// Its series.
    pub labels: BTreeMap<String, String>,
    /// Its worst severity.
    pub severity: Severity,
    /// Drop or spike.
    pub direction: Direction,
    /// Start of its first anomalous bucket.
    #[serde(with = "rfc3339_secs")]
    pub started_at: i64,
    /// End of the bucket that fired it.
    #[serde(with = "rfc3339_secs")]
    pub fired_at: i64,
    /// End of the bucket that resolved it; null if still firing.
    #[serde(serialize_with = "optional_time")]
    pub resolved_at: Option<i64>,
    /// The kind of evidence it fired on.
    pub evidence: EvidenceKind,
    /// The firing figures: observed, expected and the band (null for an
    /// open edge).
    pub observed: f64,
    /// Expected value.
    pub expected: f64,
    /// Lower band edge.
    pub lower: f64,
    /// Upper band edge.
    pub upper: f64,
    /// The first incident (in file order) it matched; null for a false
    /// alert.
    pub matched: Option<String>,
    /// Added to the schema: the first expected event it matched (when it
    /// matched no incident); such an alert is not false.
    pub expected_event: Option<String>,
    /// Added to the schema: the first known false alert it matched (when
    /// it matched no incident nor expected event).
    pub known_false: Option<String>,
}

fn optional_time<S: Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

/// `n` per `weeks`, if there is a fraction of a week to count per.
fn per(n: usize, weeks: f64) -> Option<f64> {
    (weeks > 0.0).then(|| n as f64 / weeks)
}

fn ratio(n: usize, of: usize) -> Option<f64> {
    (of > 0).then(|| n as f64 / of as f64)
}

/// Whether KPI `def` may take values below zero: never for counts,
/// distinct counts and ratios; for the others, when the data had such a
/// value (`lowest`).
pub fn may_be_negative(def: &Kpi, lowest: f64) -> bool {
    match &def.measure {
        Measure::Ratio { .. } => false,
        Measure::Events { aggregate, .. } => match aggregate {
            Aggregate::Count | Aggregate::Distinct(_) => false,
            Aggregate::Sum(_) | Aggregate::Avg(_) | Aggregate::Min(_) | Aggregate::Max(_) => {
                lowest < 0.0
            }
        },
    }
}

/// Scores the transitions of a replay of topic number `topic` of
/// `config` against `labels`.
pub fn build(
    config: &Config,
    topic: usize,
    transitions: &[Transition],
    seen: &Seen,
    labels: Option<&Labels>,
) -> Report {
    let index: BTreeMap<&str, usize> = config
        .kpis
        .iter()
        .enumerate()
        .map(|(i, k)| (k.name.as_str(), i))
        .collect();
    let alerts = alerts(transitions, &config.kpis, |k| index.get(k).copied());
    let incidents: &[Incident] = labels.map_or(&[], |l| &l.incidents);
    // matched[a]: the incidents alert number a matches, in file order.
    let matched: Vec<Vec<usize>> = alerts
        .iter()
        .map(|a| {
            (0..incidents.len())
                .filter(|&i| matches(&incidents[i], a))
                .collect()
        })
        .collect();
    // Expected events and known false alerts, for alerts that matched no
    // incident: an incident wins over both, an expected event over a
    // known false alert.
    let expected: &[Incident] = labels.map_or(&[], |l| &l.expected);
    let expected_of: Vec<Option<usize>> = alerts
        .iter()
        .zip(&matched)
        .map(|(a, m)| {
            m.is_empty()
                .then(|| expected.iter().position(|e| matches(e, a)))
                .flatten()
        })
        .collect();
    let known: &[super::labels::KnownFalse] = labels.map_or(&[], |l| &l.false_alerts);
    let known_of: Vec<Option<usize>> = alerts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            (matched[i].is_empty() && expected_of[i].is_none())
                .then(|| {
                    known.iter().position(|k| {
                        k.alert_id.as_deref() == Some(a.first.alert_id.as_str())
                            || matches(&k.span, a)
                    })
                })
                .flatten()
        })
        .collect();
    let is_false = |a: usize| matched[a].is_empty() && expected_of[a].is_none();
    let data_end = seen.last_event;

    let mut violations = Vec::new();
    for t in transitions {
        if let Some(&k) = index.get(t.kpi.as_str()) {
            let lowest = seen.lowest.get(k).copied().unwrap_or(f64::INFINITY);
            check(t, may_be_negative(&config.kpis[k], lowest), &mut violations);
        }
    }

    let weeks = match (seen.first_event, seen.last_event) {
        (Some(first), Some(last)) => (last - first) as f64 / WEEK,
        _ => 0.0,
    };
    let topic_kpis: Vec<usize> = (0..config.kpis.len())
        .filter(|&k| config.kpis[k].topic == topic)
        .collect();

    let kpis = topic_kpis
        .iter()
        .map(|&k| {
            let name = config.kpis[k].name.as_str();
            let mine: Vec<usize> = (0..alerts.len()).filter(|&a| alerts[a].kpi == k).collect();
            let count = |f: &dyn Fn(usize) -> bool| mine.iter().filter(|&&a| f(a)).count();
            let false_alerts = count(&|a| is_false(a));
            let named: Vec<usize> = (0..incidents.len())
                .filter(|&i| incidents[i].kpis.matches(name))
                .collect();
            let detected = named
                .iter()
                .filter(|&&i| mine.iter().any(|&a| matched[a].contains(&i)))
                .count();
            KpiRow {
                kpi: name.to_string(),
                series: seen.series.get(k).copied().unwrap_or(0),
                fired: mine.len(),
                warning: count(&|a| alerts[a].severity == Severity::Warning),
                critical: count(&|a| alerts[a].severity == Severity::Critical),
                false_alerts,
                false_per_week: per(false_alerts, weeks),
                incidents: named.len(),
                detected,
                recall: ratio(detected, named.len()),
                still_firing: count(&|a| alerts[a].resolved_at.is_none()),
                violations: violations.iter().filter(|v| v.kpi == name).count(),
                alerts_per_week: per(mine.len(), weeks),
                expected: count(&|a| expected_of[a].is_some()),
                known_false: count(&|a| known_of[a].is_some()),
            }
        })
        .collect();

    let mut after_end = vec![false; alerts.len()];
    let incident_rows: Vec<IncidentRow> = incidents
        .iter()
        .enumerate()
        .map(|(i, incident)| {
            let mine: Vec<usize> = (0..alerts.len())
                .filter(|&a| matched[a].contains(&i))
                .collect();
            let mut series = std::collections::HashSet::new();
            let refired = mine
                .iter()
                .filter(|&&a| {
                    let first = alerts[a].first;
                    !series.insert((&first.kpi, &first.labels, first.direction))
                })
                .count();
            let mut firing_after_end = 0;
            for &a in &mine {
                if fires_after_end(incident, &alerts[a], data_end) {
                    firing_after_end += 1;
                    after_end[a] = true;
                }
            }
            // The earliest firing; the first of those in firing order.
            let first: Option<&Alert<'_>> =
                mine.iter().map(|&a| &alerts[a]).min_by_key(|a| a.fired_at);
            let delay = first.map(|a| Delay::of(incident, a));
            IncidentRow {
                id: incident.id.clone(),
                kind: incident.kind.clone(),
                start: incident.start,
                end: incident.end,
                detected: first.is_some(),
                delay_minutes: delay.map(Delay::minutes),
                delay_buckets: delay.map(|d| d.buckets),
                target_delay_buckets: incident.target_delay_buckets,
                first_alert: first.map(|a| FirstAlert {
                    alert_id: a.first.alert_id.clone(),
                    kpi: a.first.kpi.clone(),
                    labels: a.first.labels.clone(),
                    evidence: a.first.evidence.kind,
                    fired_at: a.fired_at,
                }),
                alerts: mine.len(),
                firing_after_end,
                refired,
                within_target: incident
                    .target_delay_buckets
                    .map(|target| delay.is_some_and(|d| d.buckets <= u64::from(target))),
            }
        })
        .collect();

    let quiet = labels
        .map_or(&[][..], |l| &l.quiet)
        .iter()
        .map(|q| {
            let alert_ids: Vec<String> = (0..alerts.len())
                .filter(|&a| {
                    let started = alerts[a].first.started_at;
                    is_false(a) && q.start <= started && started < q.end
                })
                .map(|a| alerts[a].first.alert_id.clone())
                .collect();
            QuietRow {
                id: q.id.clone(),
                kind: q.kind.clone(),
                alerts: alert_ids.len(),
                start: q.start,
                end: q.end,
                alert_ids,
            }
        })
        .collect();

    let detected = incident_rows.iter().filter(|i| i.detected).count();
    let false_alerts = (0..alerts.len()).filter(|&a| is_false(a)).count();
    let kpi_weeks = weeks * topic_kpis.len() as f64;
    let overall = Overall {
        incidents: incidents.len(),
        detected,
        recall: ratio(detected, incidents.len()),
        fired: alerts.len(),
        false_alerts,
        kpi_weeks,
        false_per_kpi_week: per(false_alerts, kpi_weeks),
        still_firing_at_end: alerts.iter().filter(|a| a.resolved_at.is_none()).count(),
        firing_after_incident_end: after_end.iter().filter(|&&f| f).count(),
        violations: violations.len(),
        alerts_per_kpi_week: per(alerts.len(), kpi_weeks),
        expected: expected_of.iter().filter(|e| e.is_some()).count(),
        known_false: known_of.iter().filter(|k| k.is_some()).count(),
        refired: incident_rows.iter().map(|i| i.refired).sum(),
    };

    let alert_rows = alerts
        .iter()
        .zip(&matched)
        .enumerate()
        .map(|(i, (a, m))| {
            let t = a.first;
            AlertRow {
                alert_id: t.alert_id.clone(),
                kpi: t.kpi.clone(),
                labels: t.labels.clone(),
                severity: a.severity,
                direction: t.direction,
                started_at: t.started_at,
                fired_at: a.fired_at,
                resolved_at: a.resolved_at,
                evidence: t.evidence.kind,
                observed: t.observed,
                expected: t.expected,
                lower: t.lower,
                upper: t.upper,
                matched: m.first().map(|&i| incidents[i].id.clone()),
                expected_event: expected_of[i].map(|e| expected[e].id.clone()),
                known_false: known_of[i].map(|k| known[k].span.id.clone()),
            }
        })
        .collect();

    Report {
        events: seen.summary.events,
        rejected: seen.summary.rejected,
        late: seen.summary.late,
        from: seen.first_event,
        to: seen.last_event,
        weeks,
        kpis,
        incidents: incident_rows,
        quiet,
        overall,
        violations,
        alerts: alert_rows,
        labelled: labels.is_some(),
        topic: config.topics[topic].name.clone(),
        calendar_spans: Vec::new(),
        muted: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::testing::{firing, incident, resolved, shop as config, HOUR, T0};

    const WEEK_SECS: i64 = 7 * 86_400;

    /// Two weeks of data ending a week after [`T0`].
    fn seen() -> Seen {
        Seen {
            summary: Summary {
                events: 100,
                ..Summary::default()
            },
            first_event: Some(T0 - WEEK_SECS),
            last_event: Some(T0 + WEEK_SECS),
            series: vec![1, 2, 1, 0],
            lowest: vec![0.0, 0.0, 5.0, f64::INFINITY],
        }
    }

    fn labels(incidents: Vec<Incident>, quiet: Vec<super::super::labels::Quiet>) -> Labels {
        Labels {
            path: "incidents.json".into(),
            incidents,
            quiet,
            false_alerts: Vec::new(),
            expected: Vec::new(),
        }
    }

    fn row<'r>(r: &'r Report, kpi: &str) -> &'r KpiRow {
        r.kpis.iter().find(|k| k.kpi == kpi).expect("KPI row")
    }

    #[test]
    fn the_rows_are_the_replayed_topics_kpis_with_their_series() {
        let r = build(&config(), 0, &[], &seen(), None);
        let names: Vec<&str> = r.kpis.iter().map(|k| k.kpi.as_str()).collect();
        assert_eq!(names, ["checkouts", "checkouts_by_country", "refunds"]);
        assert_eq!(row(&r, "checkouts_by_country").series, 2);
        assert_eq!((r.weeks, r.overall.kpi_weeks), (2.0, 6.0));
        assert_eq!((r.events, r.topic.as_str()), (100, "shop"));
    }

    #[test]
    fn expected_events_are_neither_false_nor_detections_and_known_false_alerts_are_counted() {
        let outage = incident(&["checkouts"], &[], T0, 2);
        let mut sale = incident(&["checkouts"], &[], T0 + 24 * HOUR, 2);
        sale.id = "spring-sale".into();
        let mut noise = incident(&["checkouts"], &[], T0 + 48 * HOUR, 1);
        noise.id = "feedback-noise".into();
        let hit = firing("checkouts", &[], T0 + HOUR);
        let planned = firing("checkouts", &[], T0 + 25 * HOUR);
        let known = firing("checkouts", &[], T0 + 48 * HOUR);
        let other = firing("checkouts", &[], T0 + 96 * HOUR);
        let mut l = labels(vec![outage], vec![]);
        l.expected = vec![sale];
        l.false_alerts = vec![super::super::labels::KnownFalse {
            alert_id: None,
            span: noise,
        }];
        let r = build(
            &config(),
            0,
            &[hit, planned, known, other],
            &seen(),
            Some(&l),
        );
        let k = row(&r, "checkouts");
        assert_eq!(
            (k.fired, k.false_alerts, k.expected, k.known_false),
            (4, 2, 1, 1)
        );
        assert_eq!(
            (k.incidents, k.detected),
            (1, 1),
            "an expected event is no incident"
        );
        assert_eq!((r.overall.expected, r.overall.known_false), (1, 1));
        let rows: Vec<(Option<&str>, Option<&str>)> = r
            .alerts
            .iter()
            .map(|a| (a.expected_event.as_deref(), a.known_false.as_deref()))
            .collect();
        assert_eq!(
            rows,
            [
                (None, None),
                (Some("spring-sale"), None),
                (None, Some("feedback-noise")),
                (None, None)
            ]
        );
    }

    #[test]
    fn false_alerts_per_kpi_week_are_alerts_matching_no_incident_over_the_weeks_of_data() {
        let outage = incident(&["checkouts"], &[], T0, 2);
        let hit = firing("checkouts", &[], T0 + HOUR);
        let before = firing("checkouts", &[], T0 - 24 * HOUR);
        let after = firing("checkouts", &[], T0 + 48 * HOUR);
        let transitions = [before, hit, after];
        let r = build(
            &config(),
            0,
            &transitions,
            &seen(),
            Some(&labels(vec![outage], vec![])),
        );
        let k = row(&r, "checkouts");
        assert_eq!((k.fired, k.false_alerts), (3, 2));
        assert_eq!(k.false_per_week, Some(1.0));
        assert_eq!(row(&r, "refunds").false_per_week, Some(0.0));
        assert_eq!((r.overall.false_alerts, r.overall.fired), (2, 3));
        assert_eq!(r.overall.false_per_kpi_week, Some(2.0 / 6.0));
        let matched: Vec<Option<&str>> = r.alerts.iter().map(|a| a.matched.as_deref()).collect();
        assert_eq!(matched, [None, Some("outage"), None]);
    }

    #[test]
    fn false_alerts_per_week_are_null_without_a_span_of_data() {
        let one_event = Seen {
            first_event: Some(T0),
            last_event: Some(T0),
            ..seen()
        };
        let r = build(&config(), 0, &[], &one_event, None);
        assert_eq!((r.weeks, row(&r, "checkouts").false_per_week), (0.0, None));
        assert_eq!(r.overall.false_per_kpi_week, None);
    }

    #[test]
    fn an_incident_is_detected_by_its_earliest_matching_alert_with_its_delay() {
        let mut outage = incident(&["checkouts*"], &[], T0, 4);
        outage.target_delay_buckets = Some(1);
        let later = firing("checkouts", &[], T0 + 3 * HOUR);
        let first = firing("checkouts_by_country", &[("country", "FI")], T0 + HOUR);
        let transitions = [later, first.clone()];
        let r = build(
            &config(),
            0,
            &transitions,
            &seen(),
            Some(&labels(vec![outage.clone()], vec![])),
        );
        let i = &r.incidents[0];
        assert!(i.detected);
        assert_eq!((i.delay_minutes, i.delay_buckets), (Some(60.0), Some(1)));
        assert_eq!((i.alerts, i.within_target), (2, Some(true)));
        let a = i.first_alert.as_ref().expect("first alert");
        assert_eq!(
            (a.alert_id.as_str(), a.kpi.as_str()),
            (first.alert_id.as_str(), "checkouts_by_country")
        );
        assert_eq!((a.fired_at, a.evidence), (T0 + HOUR, EvidenceKind::Bucket));
        outage.target_delay_buckets = Some(0);
        let r = build(
            &config(),
            0,
            &transitions,
            &seen(),
            Some(&labels(vec![outage], vec![])),
        );
        assert_eq!(r.incidents[0].within_target, Some(false));
    }

    #[test]
    fn a_missed_incident_has_no_delay_and_lowers_recall() {
        let caught = incident(&["checkouts"], &[], T0, 2);
        let mut missed = incident(&["checkouts_by_country"], &[("country", "SE")], T0, 2);
        missed.id = "se".to_string();
        let transitions = [firing("checkouts", &[], T0 + HOUR)];
        let r = build(
            &config(),
            0,
            &transitions,
            &seen(),
            Some(&labels(vec![caught, missed], vec![])),
        );
        let i = &r.incidents[1];
        assert!(!i.detected);
        assert_eq!(
            (i.delay_minutes, i.delay_buckets, &i.first_alert),
            (None, None, &None)
        );
        assert_eq!((r.overall.detected, r.overall.incidents), (1, 2));
        assert_eq!(r.overall.recall, Some(0.5));
    }

    #[test]
    fn a_kpis_recall_counts_the_incidents_naming_it_detected_by_its_own_alerts() {
        let outage = incident(&["checkouts*"], &[], T0, 2);
        let transitions = [firing("checkouts", &[], T0 + HOUR)];
        let r = build(
            &config(),
            0,
            &transitions,
            &seen(),
            Some(&labels(vec![outage], vec![])),
        );
        let total = row(&r, "checkouts");
        assert_eq!(
            (total.incidents, total.detected, total.recall),
            (1, 1, Some(1.0))
        );
        let by_country = row(&r, "checkouts_by_country");
        assert_eq!(
            (by_country.incidents, by_country.detected, by_country.recall),
            (1, 0, Some(0.0))
        );
        assert_eq!(row(&r, "refunds").recall, None, "no incident names refunds");
    }

    #[test]
    fn alerts_without_a_resolution_are_still_firing_at_the_end() {
        let fired = firing("checkouts", &[], T0 + HOUR);
        let back = resolved(&fired, T0 + 3 * HOUR);
        let stuck = firing("checkouts_by_country", &[("country", "FI")], T0 + HOUR);
        let r = build(&config(), 0, &[fired, stuck.clone(), back], &seen(), None);
        assert_eq!(row(&r, "checkouts").still_firing, 0);
        assert_eq!(row(&r, "checkouts_by_country").still_firing, 1);
        assert_eq!(r.overall.still_firing_at_end, 1);
        let resolved_at: Vec<Option<i64>> = r.alerts.iter().map(|a| a.resolved_at).collect();
        assert_eq!(resolved_at, [Some(T0 + 3 * HOUR), None]);
    }

    #[test]
    fn a_series_that_resolves_and_fires_again_during_its_incident_counts_as_refired() {
        let outage = incident(&["checkouts*"], &[], T0, 6);
        let first = firing("checkouts", &[], T0 + HOUR);
        let first_back = resolved(&first, T0 + 2 * HOUR);
        let again = firing("checkouts", &[], T0 + 3 * HOUR);
        let again_back = resolved(&again, T0 + 4 * HOUR);
        let third = firing("checkouts", &[], T0 + 5 * HOUR);
        let other = firing("checkouts_by_country", &[("country", "FI")], T0 + HOUR);
        let transitions = [first, other, first_back, again, again_back, third];
        let r = build(
            &config(),
            0,
            &transitions,
            &seen(),
            Some(&labels(vec![outage], vec![])),
        );
        assert_eq!(r.incidents[0].alerts, 4);
        assert_eq!(
            r.incidents[0].refired, 2,
            "checkouts' second and third alerts; Finland's first is not"
        );
        assert_eq!(r.overall.refired, 2);
    }

    #[test]
    fn matched_alerts_firing_past_the_incident_end_plus_grace_are_counted() {
        let outage = incident(&["checkouts*"], &[], T0, 2);
        let end = T0 + 2 * HOUR;
        let on_time = firing("checkouts", &[], T0 + HOUR);
        let back_on_time = resolved(&on_time, end + 4 * HOUR);
        let late = firing("checkouts_by_country", &[("country", "FI")], T0 + HOUR);
        let back_late = resolved(&late, end + 5 * HOUR);
        let stuck = firing("checkouts_by_country", &[("country", "SE")], T0 + HOUR);
        let transitions = [on_time, late, stuck, back_on_time, back_late];
        let r = build(
            &config(),
            0,
            &transitions,
            &seen(),
            Some(&labels(vec![outage], vec![])),
        );
        assert_eq!(r.incidents[0].alerts, 3);
        assert_eq!(
            r.incidents[0].firing_after_end, 2,
            "the late one and the one never resolved"
        );
        assert_eq!(r.overall.firing_after_incident_end, 2);
        assert_eq!(r.overall.still_firing_at_end, 1);
    }

    #[test]
    fn quiet_spans_list_the_false_alerts_that_started_inside_them() {
        let quiet = super::super::labels::Quiet {
            id: "dst".to_string(),
            kind: Some("dst".to_string()),
            start: T0 + 24 * HOUR,
            end: T0 + 48 * HOUR,
            note: None,
        };
        let inside = firing("checkouts", &[], T0 + 30 * HOUR);
        let outside = firing("checkouts", &[], T0 + 60 * HOUR);
        let transitions = [inside.clone(), outside];
        let r = build(
            &config(),
            0,
            &transitions,
            &seen(),
            Some(&labels(vec![], vec![quiet])),
        );
        let q = &r.quiet[0];
        assert_eq!((q.id.as_str(), q.alerts), ("dst", 1));
        assert_eq!(q.alert_ids, [inside.alert_id]);
        assert_eq!(
            r.overall.false_alerts, 2,
            "alerts in quiet spans are false like any other"
        );
    }

    #[test]
    fn without_labels_every_alert_is_unlabelled_so_false_equals_fired_and_recall_is_null() {
        let transitions = [firing("checkouts", &[], T0 + HOUR)];
        let r = build(&config(), 0, &transitions, &seen(), None);
        assert!(!r.labelled);
        assert_eq!((r.overall.fired, r.overall.false_alerts), (1, 1));
        assert_eq!((r.overall.incidents, r.overall.recall), (0, None));
        assert_eq!(row(&r, "checkouts").alerts_per_week, Some(0.5));
        assert_eq!(r.overall.alerts_per_kpi_week, Some(1.0 / 6.0));
        assert!(r.incidents.is_empty() && r.quiet.is_empty());
    }

    #[test]
    fn a_band_below_zero_is_allowed_for_a_sum_whose_data_went_below_zero() {
        let mut refund = firing("refunds", &[], T0 + HOUR);
        refund.lower = -1.0;
        refund.observed = -5.0;
        refund.deviation_pct = Some(-150.0);
        let transitions = [refund];
        let r = build(&config(), 0, &transitions, &seen(), None);
        assert_eq!(
            r.violations.len(),
            1,
            "lowest value judged was 5: {:?}",
            r.violations
        );
        assert_eq!(row(&r, "refunds").violations, 1);
        let negative = Seen {
            lowest: vec![0.0, 0.0, -20.0, f64::INFINITY],
            ..seen()
        };
        assert!(build(&config(), 0, &transitions, &negative, None)
            .violations
            .is_empty());
    }

    #[test]
    fn the_json_has_the_schemas_names_and_rfc3339_times() {
        let outage = incident(&["checkouts"], &[], T0, 2);
        let transitions = [firing("checkouts", &[], T0 + HOUR)];
        let r = build(
            &config(),
            0,
            &transitions,
            &seen(),
            Some(&labels(vec![outage], vec![])),
        );
        let json = serde_json::to_value(&r).expect("serialises");
        for key in [
            "events",
            "rejected",
            "late",
            "from",
            "to",
            "weeks",
            "kpis",
            "incidents",
            "quiet",
            "overall",
            "violations",
            "alerts",
        ] {
            assert!(json.get(key).is_some(), "{key} in {json}");
        }
        assert_eq!(json["from"], "2024-01-13T10:00:00Z");
        let kpi = &json["kpis"][0];
        for key in [
            "kpi",
            "series",
            "fired",
            "warning",
            "critical",
            "false",
            "false_per_week",
            "incidents",
            "detected",
            "recall",
            "still_firing",
            "violations",
        ] {
            assert!(kpi.get(key).is_some(), "{key} in {kpi}");
        }
        let overall = &json["overall"];
        for key in [
            "incidents",
            "detected",
            "recall",
            "fired",
            "false",
            "kpi_weeks",
            "false_per_kpi_week",
            "still_firing_at_end",
            "firing_after_incident_end",
            "violations",
            "refired",
        ] {
            assert!(overall.get(key).is_some(), "{key} in {overall}");
        }
        let incident = &json["incidents"][0];
        assert_eq!(incident["start"], "2024-01-20T10:00:00Z");
        assert_eq!(incident["first_alert"]["evidence"], "bucket");
        assert_eq!(incident["first_alert"]["fired_at"], "2024-01-20T11:00:00Z");
        assert_eq!(incident["target_delay_buckets"], serde_json::Value::Null);
        let alert = &json["alerts"][0];
        assert_eq!(alert["resolved_at"], serde_json::Value::Null);
        assert_eq!(
            (&alert["severity"], &alert["direction"]),
            (&"warning".into(), &"drop".into())
        );
        assert_eq!(alert["matched"], "outage");
    }
}
