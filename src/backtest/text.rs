//! The backtest for people: [`render`] writes a [`Report`] as a per-KPI
//! table, then one line per incident, quiet span, false alert and
//! violation, so a reader can go and look, then an overall line. Numbers
//! are formatted as the notifications format them
//! ([`crate::notify::phrase`]).

use std::collections::BTreeMap;
use std::fmt::Write;

use comfy_table::{presets, CellAlignment, Table};

use crate::notify::phrase::{labels, percent, value, LABEL_VALUE_MAX_CHARS};
use crate::timefmt::rfc3339;

use super::checks::band;
use super::report::{AlertRow, IncidentRow, Report};

/// The report as text.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let span = match (r.from, r.to) {
        (Some(from), Some(to)) => format!(
            "from {} to {} ({} weeks)",
            rfc3339(from),
            rfc3339(to),
            value(r.weeks)
        ),
        _ => "no event accepted".to_string(),
    };
    let _ = writeln!(
        out,
        "kpiwatch backtest of topic {:?}: {} events ({} rejected, {} late) {span}\n",
        r.topic,
        value(r.events as f64),
        value(r.rejected as f64),
        value(r.late as f64),
    );
    out.push_str(&kpi_table(r));
    let by_id: BTreeMap<&str, &AlertRow> =
        r.alerts.iter().map(|a| (a.alert_id.as_str(), a)).collect();
    if r.labelled {
        let _ = writeln!(
            out,
            "\nIncidents ({} of {} detected)",
            r.overall.detected, r.overall.incidents
        );
        for i in &r.incidents {
            let _ = writeln!(out, "  {}", incident(i));
        }
        if !r.quiet.is_empty() {
            out.push_str("\nQuiet spans\n");
        }
        for q in &r.quiet {
            let what = if q.alerts == 0 {
                "no alerts".to_string()
            } else {
                format!("{} false alerts started inside", q.alerts)
            };
            let _ = writeln!(
                out,
                "  {}: {} to {}: {what}",
                named(&q.id, q.kind.as_deref()),
                rfc3339(q.start),
                rfc3339(q.end)
            );
            for id in &q.alert_ids {
                if let Some(a) = by_id.get(id.as_str()) {
                    let _ = writeln!(out, "    {}", alert(a));
                }
            }
        }
        let false_alerts: Vec<&AlertRow> = r
            .alerts
            .iter()
            .filter(|a| a.matched.is_none() && a.expected_event.is_none())
            .collect();
        let _ = writeln!(out, "\nFalse alerts ({})", false_alerts.len());
        for a in false_alerts {
            // Feedback said so too (a `false_alerts` label).
            let known = a
                .known_false
                .as_deref()
                .map_or(String::new(), |k| format!("; marked false ({k})"));
            let _ = writeln!(out, "  {}{known}", alert(a));
        }
        let expected: Vec<&AlertRow> = r
            .alerts
            .iter()
            .filter(|a| a.expected_event.is_some())
            .collect();
        if !expected.is_empty() {
            let _ = writeln!(
                out,
                "\nExpected ({}: neither false nor detections)",
                expected.len()
            );
            for a in expected {
                let _ = writeln!(
                    out,
                    "  {}; expected event {}",
                    alert(a),
                    a.expected_event.as_deref().unwrap_or_default()
                );
            }
        }
    } else {
        let _ = writeln!(
            out,
            "\nAlerts ({}; no labels given: pass --incidents to score them)",
            r.alerts.len()
        );
        for a in &r.alerts {
            let _ = writeln!(out, "  {}", alert(a));
        }
    }
    calendars(r, &mut out);
    let _ = writeln!(out, "\nViolations ({})", r.violations.len());
    for v in &r.violations {
        let _ = writeln!(
            out,
            "  {} {} {} at {}: {}: {}",
            v.kpi,
            v.alert_id,
            v.status.name(),
            rfc3339(v.at),
            v.kind.name(),
            v.detail
        );
    }
    let o = &r.overall;
    let rate = |x: Option<f64>| x.map_or_else(|| "-".to_string(), value);
    let _ = if r.labelled {
        writeln!(
            out,
            "\nOverall: recall {}, {} false per KPI-week ({} false in {} KPI-weeks), {} still firing, {} firing after incident end, {} re-fired during their incident, {} violations",
            recall(o.detected, o.incidents),
            rate(o.false_per_kpi_week),
            o.false_alerts,
            value(o.kpi_weeks),
            o.still_firing_at_end,
            o.firing_after_incident_end,
            o.refired,
            o.violations
        )
    } else {
        writeln!(
            out,
            "\nOverall: {} alerts, {} per KPI-week (in {} KPI-weeks), {} still firing, {} violations",
            o.fired,
            rate(o.alerts_per_kpi_week),
            value(o.kpi_weeks),
            o.still_firing_at_end,
            o.violations
        )
    };
    out
}

/// The calendar spans (one line per span, with the KPIs that follow it)
/// and the alerts they muted; nothing when no KPI follows a calendar.
fn calendars(r: &Report, out: &mut String) {
    if r.calendar_spans.is_empty() && r.muted.is_empty() {
        return;
    }
    // (calendar, effect, start, end) -> KPIs, in time order.
    let mut spans: BTreeMap<(i64, i64, &str, String), Vec<&str>> = BTreeMap::new();
    for c in &r.calendar_spans {
        let effect = match c.widen {
            Some(n) => format!("widen x{}", value(n)),
            None => c.effect.to_string(),
        };
        spans
            .entry((c.start, c.end, c.calendar.as_str(), effect))
            .or_default()
            .push(c.kpi.as_str());
    }
    let _ = writeln!(
        out,
        "\nCalendars of expected events ({} spans)",
        spans.len()
    );
    for ((start, end, calendar, effect), kpis) in &spans {
        let _ = writeln!(
            out,
            "  {calendar} ({effect}): {} to {}: {}",
            rfc3339(*start),
            rfc3339(*end),
            kpis.join(", ")
        );
    }
    let _ = writeln!(out, "\nMuted by calendars ({})", r.muted.len());
    for m in &r.muted {
        let _ = writeln!(
            out,
            "  {}{} {:?} by {} at {} (from {}): {} against {} expected",
            m.kpi,
            labels(&m.labels, LABEL_VALUE_MAX_CHARS),
            m.direction,
            m.calendar,
            rfc3339(m.would_fire_at),
            rfc3339(m.started_at),
            value(m.observed),
            value(m.expected)
        );
    }
}

fn kpi_table(r: &Report) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    let mut header = vec!["KPI", "series", "fired", "warning/critical"];
    if r.labelled {
        header.extend(["false", "false/week", "recall"]);
    } else {
        header.push("alerts/week");
    }
    header.extend(["still firing", "violations"]);
    let columns = header.len();
    table.set_header(header);
    let rate = |x: Option<f64>| x.map_or_else(|| "-".to_string(), value);
    for k in &r.kpis {
        let mut row = vec![
            k.kpi.clone(),
            k.series.to_string(),
            k.fired.to_string(),
            format!("{}/{}", k.warning, k.critical),
        ];
        if r.labelled {
            row.push(k.false_alerts.to_string());
            row.push(rate(k.false_per_week));
            row.push(if k.incidents == 0 {
                "-".to_string()
            } else {
                recall(k.detected, k.incidents)
            });
        } else {
            row.push(rate(k.alerts_per_week));
        }
        row.push(k.still_firing.to_string());
        row.push(k.violations.to_string());
        table.add_row(row);
    }
    for c in 1..columns {
        if let Some(column) = table.column_mut(c) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    // The borderless preset pads every cell, the last one too.
    let mut text = String::new();
    for line in table.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `1/2 (50%)`.
fn recall(detected: usize, of: usize) -> String {
    if of == 0 {
        return "-".to_string();
    }
    format!(
        "{detected}/{of} ({})",
        percent(detected as f64 / of as f64 * 100.0)
    )
}

/// `id (kind)`, or `id` without a kind.
fn named(id: &str, kind: Option<&str>) -> String {
    match kind {
        Some(kind) => format!("{id} ({kind})"),
        None => id.to_string(),
    }
}

/// `checkouts (country=FI)`, or `checkouts` for an ungrouped series.
fn series(kpi: &str, l: &BTreeMap<String, String>) -> String {
    if l.is_empty() {
        kpi.to_string()
    } else {
        format!("{kpi} ({})", labels(l, LABEL_VALUE_MAX_CHARS))
    }
}

fn incident(i: &IncidentRow) -> String {
    let name = named(&i.id, i.kind.as_deref());
    let target = i.target_delay_buckets.map(|t| {
        let met = if i.within_target == Some(true) {
            "met"
        } else {
            "missed"
        };
        format!(" (target {t}: {met})")
    });
    let (Some(first), Some(minutes), Some(buckets)) =
        (&i.first_alert, i.delay_minutes, i.delay_buckets)
    else {
        return format!(
            "{name}: MISSED{}",
            i.target_delay_buckets
                .map(|t| format!(" (target {t} buckets)"))
                .unwrap_or_default()
        );
    };
    format!(
        "{name}: detected after {} min, {buckets} buckets{} by {}, {} evidence, fired {}; {} alerts matched, {} firing after its end, {} re-fired",
        value(minutes),
        target.unwrap_or_default(),
        series(&first.kpi, &first.labels),
        first.evidence.name(),
        rfc3339(first.fired_at),
        i.alerts,
        i.firing_after_end,
        i.refired
    )
}

/// One alert for a person to look up: what, where, when, on which
/// evidence, and its figures.
fn alert(a: &AlertRow) -> String {
    format!(
        "{} fired {} ({} {}, {} evidence): observed {} vs expected {}, band {}; id {}",
        series(&a.kpi, &a.labels),
        rfc3339(a.fired_at),
        a.severity.name(),
        a.direction.name(),
        a.evidence.name(),
        value(a.observed),
        value(a.expected),
        band(a.lower, a.upper),
        a.alert_id
    )
}
