//! `kpiwatch backtest --html`: the backtest as one self-contained page an
//! analyst and a product manager read together (no network: it opens
//! from disk and from a mail attachment).
//!
//! [`render`] turns the configured run ([`Run`], with its [`Points`]) and
//! the what-if runs ([`Swept`]) into a [`Page`], serialises it into one
//! `<script type="application/json">` and wraps it in the page template,
//! style and script under `assets/report/` (hand-written: canvas charts,
//! no library, nothing fetched).
//!
//! What the page holds, and why that much:
//!
//! - per KPI and setting (as configured, then each budget of the sweep),
//!   the report's row; per setting, every alert with its evidence in the
//!   words of the emails ([`crate::notify::phrase`]) and every incident's
//!   detection;
//! - one list of shaded spans, each with a kind (`alert`, `incident`,
//!   `quiet`, `calendar`, and `muted` for an alert a calendar kept from
//!   firing): a span names the KPIs it applies to and the labels a series
//!   must not contradict, or one series;
//! - every series at hourly resolution (min, max and mean observed, mean
//!   expected, the band's widest edges), one byte per figure on the
//!   series' own scale: a chart is a few hundred pixels high, and a
//!   thousand series over four weeks stay at a few MB;
//! - every 5-minute bucket (two bytes per figure) within
//!   [`FULL_AROUND`] of the alerts of a series, at any setting, and of
//!   incidents that name it, up to [`FULL_POINTS_MAX`] buckets in all
//!   (alerts at the configured level first).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;

use crate::alert::{EvidenceKind, Severity, Transition};
use crate::config::Config;
use crate::notify::phrase;

use super::labels::Labels;
use super::matching::{alerts, contradicts};
use super::points::{Point, Points, SeriesPoints};
use super::report::{Overall, Report};
use super::sweep::{level_text, Swept};
use super::Run;

/// Full resolution is kept this long before and after each alert and
/// incident of a series: a day on each side of the event fits the
/// chart's one-day zoom.
pub const FULL_AROUND: i64 = 12 * 3600;
/// At most this many buckets at full resolution in one page (~10 bytes
/// each in the file): beyond it, hourly figures only.
pub const FULL_POINTS_MAX: usize = 600_000;
/// Buckets are aggregated to this span for the hourly figures (or to one
/// bucket, if buckets are longer).
const AGGREGATE: i64 = 3600;

const TEMPLATE: &str = include_str!("../../assets/report/report.html");
const STYLE: &str = include_str!("../../assets/report/report.css");
const SCRIPT: &str = include_str!("../../assets/report/report.js");

/// What went into a page, for the command's closing line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Series charted.
    pub series: usize,
    /// Buckets embedded at full resolution.
    pub full_points: usize,
    /// Whether [`FULL_POINTS_MAX`] cut some.
    pub full_cut: bool,
}

/// The page's data, as the script reads it. Times are epoch seconds.
#[derive(Debug, Serialize)]
pub struct Page<'a> {
    topic: &'a str,
    from: Option<i64>,
    to: Option<i64>,
    weeks: f64,
    events: u64,
    rejected: u64,
    late: u64,
    labelled: bool,
    /// The settings' names: "as configured", then each budget.
    settings: Vec<String>,
    /// Per setting, the overall figures.
    overall: Vec<&'a Overall>,
    kpis: Vec<PageKpi>,
    /// Per setting, the incidents' detection (in file order).
    incidents: Vec<Vec<PageIncident>>,
    /// Per setting, the alerts in the order they fired.
    alerts: Vec<Vec<PageAlert>>,
    spans: Vec<Span>,
    series: Vec<PageSeries>,
    /// Whether full resolution was cut at [`FULL_POINTS_MAX`].
    full_cut: bool,
    /// Consistency violations of the configured run.
    violations: usize,
}

#[derive(Debug, Serialize)]
struct PageKpi {
    name: String,
    /// Bucket width, seconds.
    bucket: i64,
    group_by: Vec<String>,
    /// Its configured level, as the config writes it.
    level: String,
    /// Per setting: fired, warning, critical, false, false per week,
    /// incidents, detected, recall, still firing, median delay.
    rows: Vec<KpiFigures>,
}

#[derive(Debug, Serialize)]
struct KpiFigures {
    series: usize,
    fired: usize,
    warning: usize,
    critical: usize,
    #[serde(rename = "false")]
    false_alerts: usize,
    false_per_week: Option<f64>,
    incidents: usize,
    detected: usize,
    recall: Option<f64>,
    still_firing: usize,
    /// Median delay, minutes, of the incidents this KPI detected first.
    median_delay: Option<f64>,
}

#[derive(Debug, Serialize)]
struct PageIncident {
    id: String,
    kind: Option<String>,
    note: Option<String>,
    start: i64,
    end: i64,
    detected: bool,
    delay_minutes: Option<f64>,
    delay_buckets: Option<u64>,
    target_delay_buckets: Option<u32>,
    /// The first alert's KPI and series, in words.
    first: Option<String>,
    alerts: usize,
}

#[derive(Debug, Serialize)]
struct PageAlert {
    id: String,
    kpi: usize,
    /// Index into `series`, if its series was judged.
    series: Option<usize>,
    severity: Severity,
    direction: detectors::Direction,
    started: i64,
    fired: i64,
    resolved: Option<i64>,
    matched: Option<String>,
    evidence_kind: EvidenceKind,
    /// `checkouts dropped 63% (country=FI)`.
    summary: String,
    /// `0 in 14:05–14:10 UTC, expected 22 (normal 9 – 37)`.
    evidence: String,
    /// `about 1 in 30 million`.
    rarity: Option<String>,
}

/// A shaded stretch of time on charts. Either one series (`series`) or
/// every series of `kpis` whose labels do not contradict `labels`.
#[derive(Debug, Serialize)]
struct Span {
    /// `alert`, `incident`, `quiet`, `calendar`, `muted`.
    kind: &'static str,
    /// For an alert: the setting it fired at.
    setting: Option<usize>,
    series: Option<usize>,
    /// KPI indexes; empty with `series`, or for every KPI.
    kpis: Vec<usize>,
    labels: BTreeMap<String, String>,
    start: i64,
    end: i64,
    text: String,
}

#[derive(Debug, Serialize)]
struct PageSeries {
    kpi: usize,
    /// `checkouts country=FI, platform=ios`.
    name: String,
    labels: BTreeMap<String, String>,
    /// Start of bucket 0.
    t0: i64,
    /// Bucket width, seconds.
    step: i64,
    /// Buckets.
    n: usize,
    /// Buckets per aggregate.
    agg: usize,
    /// The scale every encoded figure is on: `lo + code / max * (hi - lo)`.
    lo: f64,
    hi: f64,
    /// Per aggregate, six bytes (255: none): min, max and mean observed,
    /// mean expected, lowest lower edge, highest upper edge. Base64.
    h: String,
    /// Full-resolution stretches.
    full: Vec<Full>,
    /// Alerts at each setting.
    alerts: Vec<usize>,
}

#[derive(Debug, Serialize)]
struct Full {
    /// First bucket.
    i: usize,
    /// Per bucket, four little-endian u16 (65535: none): observed,
    /// expected, lower, upper. Base64.
    d: String,
}

/// The page for the configured run `run` (which must have kept its
/// points; a run without them charts nothing) and the what-if runs
/// `sweeps`, with the labels both were scored against.
pub fn render(
    config: &Config,
    run: &Run,
    sweeps: &[Swept],
    labels: Option<&Labels>,
) -> (String, Stats) {
    let (page, stats) = page(config, run, sweeps, labels);
    // `<` escaped everywhere (it only occurs in strings): no label value
    // can close the script element or open a comment.
    let data = serde_json::to_string(&page)
        .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
        .replace('<', "\\u003c");
    let title = html_escape::encode_quoted_attribute(&format!("kpiwatch backtest: {}", page.topic))
        .into_owned();
    let html = fill(TEMPLATE, |key| match key {
        "title" => &title,
        "style" => STYLE,
        "data" => &data,
        "script" => SCRIPT,
        _ => "",
    });
    (html, stats)
}

/// The template with each `{{key}}` replaced by `value(key)`, in one
/// pass over the template: a value (a label in the data) that holds
/// `{{script}}` stays as it is.
fn fill<'v>(template: &str, value: impl Fn(&str) -> &'v str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[at..]);
            return out;
        };
        out.push_str(value(&after[..end]));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The page's data (see [`Page`]).
pub fn page<'a>(
    config: &'a Config,
    run: &'a Run,
    sweeps: &'a [Swept],
    labels: Option<&Labels>,
) -> (Page<'a>, Stats) {
    let empty = Points::default();
    let points = run.points.as_ref().unwrap_or(&empty);
    let kpi_index = |name: &str| config.kpis.iter().position(|k| k.name == name);
    // Settings: the configured run, then the sweep's.
    let runs: Vec<(&Report, &[Transition])> = std::iter::once((&run.report, &run.transitions[..]))
        .chain(sweeps.iter().map(|s| (&s.report, &s.transitions[..])))
        .collect();
    let mut settings = vec!["as configured".to_string()];
    settings.extend(sweeps.iter().map(|s| s.budget.text()));

    // (KPI, labels) → series, for alerts, whose transitions carry labels.
    let series_labels: Vec<BTreeMap<String, String>> =
        points.series.iter().map(|s| labels_of(config, s)).collect();
    let by_labels: BTreeMap<(usize, &BTreeMap<String, String>), usize> = points
        .series
        .iter()
        .zip(&series_labels)
        .enumerate()
        .map(|(i, (s, l))| ((s.kpi, l), i))
        .collect();

    let mut spans = Vec::new();
    let mut page_alerts = Vec::new();
    let mut alert_counts = vec![vec![0usize; runs.len()]; points.series.len()];
    let data_end = run.report.to.unwrap_or(0);
    for (setting, (report, transitions)) in runs.iter().enumerate() {
        let folded = alerts(transitions, &config.kpis, kpi_index);
        // `report.alerts` is built from the same fold, in the same order.
        let list: Vec<PageAlert> = folded
            .iter()
            .zip(&report.alerts)
            .map(|(a, row)| {
                let t = a.first;
                let series = by_labels.get(&(a.kpi, &t.labels)).copied();
                if let Some(i) = series {
                    alert_counts[i][setting] += 1;
                    spans.push(Span {
                        kind: "alert",
                        setting: Some(setting),
                        series: Some(i),
                        kpis: Vec::new(),
                        labels: BTreeMap::new(),
                        start: t.started_at,
                        end: a.resolved_at.unwrap_or(data_end.max(a.fired_at)),
                        text: phrase::headline(t),
                    });
                }
                PageAlert {
                    id: t.alert_id.clone(),
                    kpi: a.kpi,
                    series,
                    severity: a.severity,
                    direction: t.direction,
                    started: t.started_at,
                    fired: a.fired_at,
                    resolved: a.resolved_at,
                    matched: row.matched.clone(),
                    evidence_kind: t.evidence.kind,
                    summary: phrase::summary(t),
                    evidence: phrase::evidence(t),
                    rarity: phrase::rarity(t),
                }
            })
            .collect();
        page_alerts.push(list);
    }

    let incidents = labels.map_or(&[][..], |l| &l.incidents[..]);
    for incident in incidents {
        spans.push(Span {
            kind: "incident",
            setting: None,
            series: None,
            kpis: (0..config.kpis.len())
                .filter(|&k| incident.kpis.matches(&config.kpis[k].name))
                .collect(),
            labels: incident.labels.clone(),
            start: incident.start,
            end: incident.end,
            text: incident.id.clone(),
        });
    }
    for quiet in labels.map_or(&[][..], |l| &l.quiet[..]) {
        spans.push(Span {
            kind: "quiet",
            setting: None,
            series: None,
            kpis: Vec::new(),
            labels: BTreeMap::new(),
            start: quiet.start,
            end: quiet.end,
            text: quiet.id.clone(),
        });
    }

    spans.extend(calendar_spans(config, run, &by_labels));

    let page_incidents = runs
        .iter()
        .map(|(report, _)| {
            report
                .incidents
                .iter()
                .zip(incidents)
                .map(|(row, incident)| PageIncident {
                    id: row.id.clone(),
                    kind: row.kind.clone(),
                    note: incident.note.clone(),
                    start: row.start,
                    end: row.end,
                    detected: row.detected,
                    delay_minutes: row.delay_minutes,
                    delay_buckets: row.delay_buckets,
                    target_delay_buckets: row.target_delay_buckets,
                    first: row.first_alert.as_ref().map(|f| {
                        if f.labels.is_empty() {
                            f.kpi.clone()
                        } else {
                            format!("{} ({})", f.kpi, phrase::labels(&f.labels, 40))
                        }
                    }),
                    alerts: row.alerts,
                })
                .collect()
        })
        .collect();

    let kpis = run
        .report
        .kpis
        .iter()
        .filter_map(|row| {
            let k = kpi_index(&row.kpi)?;
            let def = &config.kpis[k];
            let rows = runs
                .iter()
                .map(|(report, _)| {
                    let r = report.kpis.iter().find(|r| r.kpi == row.kpi).unwrap_or(row);
                    let mut delays: Vec<f64> = report
                        .incidents
                        .iter()
                        .filter(|i| i.first_alert.as_ref().is_some_and(|f| f.kpi == row.kpi))
                        .filter_map(|i| i.delay_minutes)
                        .collect();
                    delays.sort_by(f64::total_cmp);
                    KpiFigures {
                        series: r.series,
                        fired: r.fired,
                        warning: r.warning,
                        critical: r.critical,
                        false_alerts: r.false_alerts,
                        false_per_week: r.false_per_week,
                        incidents: r.incidents,
                        detected: r.detected,
                        recall: r.recall,
                        still_firing: r.still_firing,
                        median_delay: (!delays.is_empty()).then(|| delays[delays.len() / 2]),
                    }
                })
                .collect();
            Some(PageKpi {
                name: def.name.clone(),
                bucket: def.bucket,
                group_by: def.group_by.iter().map(ToString::to_string).collect(),
                level: level_text(def.alerting.level),
                rows,
            })
        })
        .collect();

    // Full resolution: where each series has alerts or incidents of its
    // own, the series with alerts at the configured level first.
    let windows: Vec<Vec<(i64, i64)>> = points
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut w: Vec<(i64, i64)> = spans
                .iter()
                .filter(|span| match span.kind {
                    "alert" => span.series == Some(i),
                    // An incident over a whole grouped KPI would make every
                    // series of it full: only those it names by label, or
                    // an ungrouped KPI's one series.
                    "incident" => {
                        span.kpis.contains(&s.kpi)
                            && (!span.labels.is_empty() || config.kpis[s.kpi].group_by.is_empty())
                            && !contradicts(&span.labels, &series_labels[i])
                    }
                    _ => false,
                })
                .map(|span| (span.start - FULL_AROUND, span.end + FULL_AROUND))
                .collect();
            merge(&mut w);
            w
        })
        .collect();
    let mut order: Vec<usize> = (0..points.series.len()).collect();
    order.sort_by_key(|&i| {
        (
            std::cmp::Reverse(alert_counts[i][0] > 0),
            std::cmp::Reverse(alert_counts[i].iter().sum::<usize>()),
        )
    });
    let mut budget = FULL_POINTS_MAX;
    let mut full_cut = false;
    let mut full: Vec<Vec<Full>> = (0..points.series.len()).map(|_| Vec::new()).collect();
    for i in order {
        let s = &points.series[i];
        let (lo, hi) = scale(&s.values);
        for &(from, to) in &windows[i] {
            let a = index_of(s, from);
            let b = index_of(s, to + s.step).min(s.values.len());
            if a >= b {
                continue;
            }
            let n = b - a;
            if n > budget {
                full_cut = true;
                continue;
            }
            budget -= n;
            full[i].push(Full {
                i: a,
                d: encode16(&s.values[a..b], lo, hi),
            });
        }
    }

    let series: Vec<PageSeries> = points
        .series
        .iter()
        .zip(series_labels)
        .zip(full)
        .zip(alert_counts)
        .map(|(((s, labels), full), alerts)| {
            let (lo, hi) = scale(&s.values);
            let agg = usize::try_from((AGGREGATE / s.step.max(1)).max(1)).unwrap_or(1);
            let name = if labels.is_empty() {
                config.kpis[s.kpi].name.clone()
            } else {
                format!(
                    "{} {}",
                    config.kpis[s.kpi].name,
                    phrase::labels(&labels, usize::MAX)
                )
            };
            PageSeries {
                kpi: s.kpi,
                name,
                labels,
                t0: s.first,
                step: s.step,
                n: s.values.len(),
                agg,
                lo,
                hi,
                h: encode_hourly(&s.values, agg, lo, hi),
                full,
                alerts,
            }
        })
        .collect();

    let stats = Stats {
        series: series.len(),
        full_points: FULL_POINTS_MAX - budget,
        full_cut,
    };
    let r = &run.report;
    let page = Page {
        topic: &r.topic,
        from: r.from,
        to: r.to,
        weeks: r.weeks,
        events: r.events,
        rejected: r.rejected,
        late: r.late,
        labelled: r.labelled,
        settings,
        overall: runs.iter().map(|(report, _)| &report.overall).collect(),
        kpis,
        incidents: page_incidents,
        alerts: page_alerts,
        spans,
        series,
        full_cut,
        violations: r.overall.violations,
    };
    (page, stats)
}

/// A series' labels: its KPI's `group_by` names with the key's values.
fn labels_of(config: &Config, s: &SeriesPoints) -> BTreeMap<String, String> {
    let names: Vec<String> = config.kpis[s.kpi]
        .group_by
        .iter()
        .map(ToString::to_string)
        .collect();
    crate::pipeline::window::labels_of(&names, &s.key)
}

/// Sorts and joins overlapping stretches.
fn merge(w: &mut Vec<(i64, i64)>) {
    w.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(w.len());
    for &(a, b) in w.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *w = out;
}

/// The bucket of `s` that holds time `t`, clamped to the series.
fn index_of(s: &SeriesPoints, t: i64) -> usize {
    usize::try_from((t - s.first).div_euclid(s.step.max(1))).unwrap_or(0)
}

/// The range of every finite figure of a series (observed, expected and
/// band), never empty.
fn scale(values: &[Point]) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.iter().flatten().filter(|v| v.is_finite()) {
        lo = lo.min(f64::from(*v));
        hi = hi.max(f64::from(*v));
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    (lo, hi)
}

/// `v` on the scale `lo..hi` as `0..=max`; `max + 1` for none.
fn code(v: f64, lo: f64, hi: f64, max: u32) -> u32 {
    if !v.is_finite() {
        return max + 1;
    }
    let x = ((v - lo) / (hi - lo) * f64::from(max)).round();
    x.clamp(0.0, f64::from(max)) as u32
}

fn encode16(values: &[Point], lo: f64, hi: f64) -> String {
    let mut bytes = Vec::with_capacity(values.len() * 8);
    for p in values {
        for v in p {
            let c = code(f64::from(*v), lo, hi, 65_534) as u16;
            bytes.extend_from_slice(&c.to_le_bytes());
        }
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Per `agg` buckets: min, max and mean observed, mean expected, lowest
/// lower and highest upper edge, one byte each.
fn encode_hourly(values: &[Point], agg: usize, lo: f64, hi: f64) -> String {
    let mut bytes = Vec::with_capacity(values.len().div_ceil(agg.max(1)) * 6);
    for chunk in values.chunks(agg.max(1)) {
        let finite = |f: usize| {
            chunk
                .iter()
                .map(move |p| f64::from(p[f]))
                .filter(|v| v.is_finite())
        };
        let mean = |f: usize| {
            let (sum, n) = finite(f).fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
            if n == 0 {
                f64::NAN
            } else {
                sum / n as f64
            }
        };
        let min = |f: usize| finite(f).fold(f64::NAN, f64::min);
        let max = |f: usize| finite(f).fold(f64::NAN, f64::max);
        for v in [min(0), max(0), mean(0), mean(1), min(2), max(3)] {
            bytes.push(code(v, lo, hi, 254) as u8);
        }
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The spans of the calendars the KPIs follow (on every series of the
/// KPI) and the alerts they muted (on their series, from the first
/// anomalous bucket to the end of the bucket it would have fired at).
fn calendar_spans(
    config: &Config,
    run: &Run,
    by_labels: &BTreeMap<(usize, &BTreeMap<String, String>), usize>,
) -> Vec<Span> {
    let kpi_index = |name: &str| config.kpis.iter().position(|k| k.name == name);
    let mut spans = Vec::new();
    for c in &run.report.calendar_spans {
        let Some(k) = kpi_index(&c.kpi) else {
            continue;
        };
        let text = match c.widen {
            Some(n) => format!("{} (band widened {}×)", c.calendar, phrase::value(n)),
            None => format!("{} (muted)", c.calendar),
        };
        spans.push(Span {
            kind: "calendar",
            setting: None,
            series: None,
            kpis: vec![k],
            labels: BTreeMap::new(),
            start: c.start,
            end: c.end,
            text,
        });
    }
    for m in &run.report.muted {
        let Some(k) = kpi_index(&m.kpi) else {
            continue;
        };
        let Some(&series) = by_labels.get(&(k, &m.labels)) else {
            continue;
        };
        let went = match m.direction {
            detectors::Direction::Drop => "would have dropped",
            detectors::Direction::Spike => "would have risen",
            detectors::Direction::None => "would have fired",
        };
        spans.push(Span {
            kind: "muted",
            setting: None,
            series: Some(series),
            kpis: Vec::new(),
            labels: BTreeMap::new(),
            start: m.started_at,
            end: m.would_fire_at + config.kpis[k].bucket,
            text: format!(
                "muted by {}: {went}, observed {}, expected {}",
                m.calendar,
                phrase::value(m.observed),
                phrase::value(m.expected)
            ),
        });
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_coded_on_the_series_scale_with_the_top_code_for_none() {
        assert_eq!(code(0.0, 0.0, 10.0, 254), 0);
        assert_eq!(code(10.0, 0.0, 10.0, 254), 254);
        assert_eq!(code(5.0, 0.0, 10.0, 254), 127);
        assert_eq!(code(f64::NAN, 0.0, 10.0, 254), 255);
        assert_eq!(code(f64::NAN, 0.0, 10.0, 65_534), 65_535);
        assert_eq!(code(-3.0, 0.0, 10.0, 254), 0);
    }

    #[test]
    fn an_hour_keeps_its_extremes_and_means_and_skips_empty_buckets() {
        let p = |v: f32| [v, 5.0, v - 1.0, v + 1.0];
        let values = [p(2.0), super::super::points::GAP, p(6.0), p(4.0)];
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encode_hourly(&values, 3, 0.0, 10.0))
            .expect("base64");
        // Hour one: 2 and 6 (the gap skipped); hour two: 4 alone.
        let c = |v| code(v, 0.0, 10.0, 254) as u8;
        assert_eq!(bytes[..6], [c(2.0), c(6.0), c(4.0), c(5.0), c(1.0), c(7.0)]);
        assert_eq!(bytes[6..], [c(4.0), c(4.0), c(4.0), c(5.0), c(3.0), c(5.0)]);
    }

    #[test]
    fn a_value_holding_a_placeholder_is_not_filled_again() {
        let page = fill("<a>{{data}}</a><s>{{script}}</s>", |k| match k {
            "data" => "{{script}}",
            "script" => "run()",
            _ => "",
        });
        assert_eq!(page, "<a>{{script}}</a><s>run()</s>");
    }

    #[test]
    fn overlapping_stretches_merge() {
        let mut w = vec![(10, 20), (0, 5), (15, 30), (40, 50)];
        merge(&mut w);
        assert_eq!(w, [(0, 5), (10, 30), (40, 50)]);
    }
}
