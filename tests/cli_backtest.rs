//! `kpiwatch backtest`, run as an analyst would: the built binary over the
//! golden replay fixture `tests/fixtures/replay/checkout_outage.jsonl`
//! (three weeks of checkouts and carts in FI and SE; every checkout stops
//! on 2024-01-20, 10:00-14:00 UTC) with its config and the labels file
//! `checkout_outage.incidents.json`: the outage on the totals and per
//! country (`checkouts-stop`), the same outage in Sweden's own series
//! (`checkouts-stop-se`: two to three checkouts an hour stopping, caught
//! by its fourth empty hour, later than its target), and a quiet first
//! weekend.
//!
//! - Text: a per-KPI table, a line per incident, quiet span, false alert
//!   and violation, an overall line. `--json`: one object of the schema
//!   in the README's "Backtest" section.
//! - `--events -` reads stdin; without `--incidents` every alert is
//!   unlabelled.
//! - Exit 0 whatever the recall; 1 with one line naming what to fix for a
//!   bad config, events or labels file; 2 for bad usage.

// Shared helpers; this file uses `kpiwatch`, `fixture` and `Scratch`.
#[allow(dead_code)]
mod common;

use std::path::PathBuf;

use common::{fixture, kpiwatch, Run, Scratch};
use serde_json::Value;

fn events() -> PathBuf {
    fixture("replay/checkout_outage.jsonl")
}

fn config() -> PathBuf {
    fixture("replay/checkout_outage.toml")
}

fn incidents() -> PathBuf {
    fixture("replay/checkout_outage.incidents.json")
}

/// `kpiwatch backtest` on the fixture's config and events, plus `extra`.
fn backtest(extra: &[&str]) -> Run {
    let (config, events) = (config(), events());
    let mut args = vec![
        "backtest",
        "--config",
        config.to_str().expect("UTF-8 path"),
        "--events",
        events.to_str().expect("UTF-8 path"),
    ];
    args.extend(extra);
    kpiwatch(&args, None)
}

fn json(run: &Run) -> Value {
    serde_json::from_str(run.ok()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// `backtest` with a labels file `labels.json` holding `labels`.
fn with_labels(labels: &str) -> Run {
    let dir = Scratch::new();
    let path = dir.file("labels.json", labels);
    backtest(&["--incidents", path.to_str().expect("UTF-8 path")])
}

fn labelled(extra: &[&str]) -> Run {
    let labels = incidents();
    let mut args = vec!["--incidents", labels.to_str().expect("UTF-8 path")];
    args.extend(extra);
    backtest(&args)
}

// --- against the fixture's labels -------------------------------------------

#[test]
fn the_text_report_has_a_kpi_table_a_line_per_incident_and_an_overall_line() {
    let run = labelled(&[]);
    let text = run.ok();
    let line = |start: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        text.starts_with(
            "kpiwatch backtest of topic \"shop\": 12,144 events (0 rejected, 0 late) from 2024-01-01T00:00:26Z to 2024-01-21T23:57:48Z (3 weeks)"
        ),
        "{text}"
    );
    assert_eq!(
        line("KPI"),
        "KPI series fired warning/critical false false/week recall still firing violations"
    );
    assert_eq!(line("checkouts "), "checkouts 1 1 0/1 0 0 1/1 (100%) 0 0");
    assert_eq!(
        line("checkouts_by_country"),
        "checkouts_by_country 2 2 2/0 0 0 2/2 (100%) 0 0"
    );
    assert_eq!(line("carts"), "carts 1 0 0/0 0 0 - 0 0");
    assert_eq!(
        line("checkouts-stop "),
        "checkouts-stop (outage): detected after 120 min, 2 buckets (target 2: met) by checkouts, window evidence, fired 2024-01-20T12:00:00Z; 4 alerts matched, 0 firing after its end, 0 re-fired"
    );
    assert_eq!(
        line("checkouts-stop-se"),
        "checkouts-stop-se (segment_outage): detected after 240 min, 4 buckets (target 2: missed) by checkouts_by_country (country=SE), window evidence, fired 2024-01-20T14:00:00Z; 1 alerts matched, 0 firing after its end, 0 re-fired"
    );
    assert_eq!(
        line("first-weekend"),
        "first-weekend (weekend): 2024-01-06T00:00:00Z to 2024-01-08T00:00:00Z: no alerts"
    );
    assert_eq!(line("False alerts"), "False alerts (0)");
    assert_eq!(line("Violations"), "Violations (0)", "{text}");
    assert!(
        line("Overall").starts_with(
            "Overall: recall 2/2 (100%), 0 false per KPI-week (0 false in 12 KPI-weeks), 0 still firing, 0 firing after incident end, 0 re-fired during their incident,"
        ),
        "{text}"
    );
}

#[test]
fn the_json_report_scores_the_checkout_outage() {
    let r = json(&labelled(&["--json"]));
    assert_eq!(
        (&r["events"], &r["rejected"], &r["late"]),
        (&12144.into(), &0.into(), &0.into())
    );
    assert_eq!(r["from"], "2024-01-01T00:00:26Z");
    assert_eq!(r["to"], "2024-01-21T23:57:48Z");
    let weeks = r["weeks"].as_f64().expect("weeks");
    assert!((weeks - 3.0).abs() < 0.01, "{weeks}");

    let kpi = |name: &str| {
        r["kpis"]
            .as_array()
            .expect("kpis")
            .iter()
            .find(|k| k["kpi"] == name)
            .unwrap_or_else(|| panic!("no row for {name}"))
            .clone()
    };
    let checkouts = kpi("checkouts");
    assert_eq!(checkouts["series"], 1);
    assert_eq!(
        (&checkouts["fired"], &checkouts["critical"]),
        (&1.into(), &1.into())
    );
    assert_eq!(
        (&checkouts["false"], &checkouts["false_per_week"]),
        (&0.into(), &0.0.into())
    );
    assert_eq!(checkouts["recall"], 1.0);
    let by_country = kpi("checkouts_by_country");
    assert_eq!(by_country["series"], 2);
    assert_eq!(
        (&by_country["incidents"], &by_country["detected"]),
        (&2.into(), &2.into())
    );
    assert_eq!(by_country["recall"], 1.0);
    assert_eq!(
        kpi("carts")["recall"],
        Value::Null,
        "no incident names carts"
    );

    let outage = &r["incidents"][0];
    assert_eq!(outage["id"], "checkouts-stop");
    assert_eq!(outage["detected"], true);
    assert_eq!(
        (&outage["delay_minutes"], &outage["delay_buckets"]),
        (&120.0.into(), &2.into())
    );
    assert_eq!(outage["target_delay_buckets"], 2);
    assert_eq!(outage["first_alert"]["kpi"], "checkouts");
    assert_eq!(outage["first_alert"]["evidence"], "window");
    assert_eq!(outage["first_alert"]["fired_at"], "2024-01-20T12:00:00Z");
    assert_eq!(
        (&outage["alerts"], &outage["firing_after_end"]),
        (&4.into(), &0.into())
    );
    let sweden = &r["incidents"][1];
    assert_eq!(sweden["detected"], true);
    assert_eq!(
        (&sweden["delay_buckets"], &sweden["within_target"]),
        (&4.into(), &false.into())
    );
    assert_eq!(sweden["first_alert"]["labels"]["country"], "SE");
    assert_eq!(r["quiet"][0]["alerts"], 0);

    let overall = &r["overall"];
    assert_eq!(
        (&overall["incidents"], &overall["detected"]),
        (&2.into(), &2.into())
    );
    assert_eq!(overall["recall"], 1.0);
    assert_eq!(
        (&overall["fired"], &overall["false"]),
        (&4.into(), &0.into())
    );
    let kpi_weeks = overall["kpi_weeks"].as_f64().expect("kpi_weeks");
    assert!(
        (kpi_weeks - 4.0 * weeks).abs() < 1e-9,
        "four KPIs: {kpi_weeks}"
    );
    assert_eq!(overall["still_firing_at_end"], 0);

    let alerts = r["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 4);
    for a in alerts {
        assert_eq!(a["matched"], "checkouts-stop", "{a}");
        assert_ne!(a["resolved_at"], Value::Null, "{a}");
    }
    let violations = r["violations"].as_array().expect("violations");
    assert_eq!(overall["violations"], violations.len());
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn events_dash_reads_stdin_and_gives_what_the_file_gives() {
    let (config, labels) = (config(), incidents());
    let text = std::fs::read_to_string(events()).expect("fixture");
    let args = [
        "backtest",
        "--config",
        config.to_str().expect("UTF-8 path"),
        "--events",
        "-",
        "--incidents",
        labels.to_str().expect("UTF-8 path"),
        "--json",
    ];
    let from_stdin = kpiwatch(&args, Some(&text));
    assert_eq!(from_stdin.ok(), labelled(&["--json"]).ok());
}

// --- other labels, or none ------------------------------------------------

#[test]
fn without_incidents_every_alert_is_listed_unlabelled() {
    let run = backtest(&[]);
    let text = run.ok();
    assert!(text.contains("alerts/week"), "{text}");
    assert!(
        text.contains("Alerts (4; no labels given: pass --incidents to score them)"),
        "{text}"
    );
    assert!(!text.contains("Incidents"), "{text}");
    let r = json(&backtest(&["--json"]));
    assert_eq!(r["labelled"], false);
    assert_eq!(
        (&r["overall"]["fired"], &r["overall"]["false"]),
        (&4.into(), &4.into())
    );
    assert_eq!(r["overall"]["recall"], Value::Null);
    assert_eq!(r["incidents"], Value::Array(vec![]));
}

#[test]
fn alerts_matching_no_incident_are_false_and_listed_under_their_quiet_span() {
    let run = with_labels(
        r#"{
          "incidents": [{"id": "a-week-early", "start": "2024-01-13T10:00:00Z",
                         "end": "2024-01-13T14:00:00Z", "kpis": ["checkouts"]}],
          "quiet": [{"id": "release-day", "kind": "release", "start": "2024-01-20T00:00:00Z",
                     "end": "2024-01-21T00:00:00Z"}]
        }"#,
    );
    let text = run.ok();
    assert!(text.contains("a-week-early: MISSED"), "{text}");
    assert!(text.contains("False alerts (4)"), "{text}");
    assert!(
        text.contains("  checkouts fired 2024-01-20T12:00:00Z (critical drop, window evidence): observed 0 vs expected 11.8, band 0.902 to 28.7; id 95e374b9abe5e7f3"),
        "{text}"
    );
    assert!(
        text.contains("release-day (release): 2024-01-20T00:00:00Z to 2024-01-21T00:00:00Z: 4 false alerts started inside"),
        "{text}"
    );
    assert!(
        text.contains(
            "Overall: recall 0/1 (0%), 0.333 false per KPI-week (4 false in 12 KPI-weeks)"
        ),
        "{text}"
    );
}

// --- errors -----------------------------------------------------------------

#[test]
fn a_labels_file_with_a_missing_field_exits_1_naming_the_file_the_incident_and_the_field() {
    let run = with_labels(
        r#"{"incidents": [{"id": "se-stop", "end": "2024-01-20T14:00:00Z", "kpis": ["checkouts"]}]}"#,
    );
    let line = run.user_error();
    assert!(
        line.contains("labels.json: incident \"se-stop\": `start` is missing"),
        "{line}"
    );
}

#[test]
fn a_labels_file_naming_an_unknown_kpi_exits_1_with_the_kpis_there_are() {
    let run = with_labels(
        r#"{"incidents": [{"id": "x", "start": "2024-01-20T10:00:00Z", "end": "2024-01-20T14:00:00Z", "kpis": ["checkout"]}]}"#,
    );
    let line = run.user_error();
    assert!(
        line.contains("incident \"x\": `kpis`: \"checkout\" matches no [[kpi]] of the config; use one of: checkouts, checkouts_by_country, carts, conversion"),
        "{line}"
    );
}

#[test]
fn a_missing_events_or_labels_file_or_a_bad_config_exits_1() {
    let config = config();
    let run = kpiwatch(
        &[
            "backtest",
            "--config",
            config.to_str().expect("UTF-8 path"),
            "--events",
            "/nonexistent/events.jsonl",
        ],
        None,
    );
    assert!(run
        .user_error()
        .contains("cannot open /nonexistent/events.jsonl"));
    let run = backtest(&["--incidents", "/nonexistent/labels.json"]);
    assert!(run
        .user_error()
        .contains("cannot read the labels file /nonexistent/labels.json"));
    let dir = Scratch::new();
    let bad = dir.file("bad.toml", "[[kpi]]\nname = 3\n");
    let run = kpiwatch(
        &[
            "backtest",
            "--config",
            bad.to_str().expect("UTF-8 path"),
            "--events",
            "-",
        ],
        Some(""),
    );
    assert!(run.user_error().contains("bad.toml:"), "{run:?}");
}

#[test]
fn an_unknown_topic_exits_1() {
    let run = backtest(&["--topic", "payments"]);
    assert!(run
        .user_error()
        .contains("--topic \"payments\" is not a [[topic]]"));
}

#[test]
fn usage_errors_exit_2() {
    let run = kpiwatch(&["backtest", "--events", "-"], Some(""));
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--config"), "{run:?}");
}
