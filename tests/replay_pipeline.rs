//! The pipeline core and `kpiwatch replay` over files: golden fixtures
//! (`tests/fixtures/replay/NAME.jsonl` + `NAME.toml` → `NAME.alerts.jsonl`)
//! and bad input that must be counted, never fatal.
//!
//! To accept a deliberate change of detector behaviour, regenerate the
//! expected files with `UPDATE_GOLDEN=1 cargo test --test replay_pipeline`
//! and review the diff like code.

use std::path::{Path, PathBuf};

use kpiwatch::alert::{Status, Transition};
use kpiwatch::config::{load, validate, Source};
use kpiwatch::pipeline::{Outcome, Pipeline};
use kpiwatch::telemetry::{Metrics, RejectReason};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replay")
}

fn replay(events: &Path, config: &Path) -> String {
    let config = load(config).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let input = std::io::BufReader::new(std::fs::File::open(events).expect("fixture"));
    kpiwatch::replay::replay(config, None, input, None, &mut out, None).expect("replay runs");
    String::from_utf8(out).expect("utf-8 output")
}

#[test]
fn golden_fixtures_give_their_expected_alert_transitions() {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures()).expect("fixtures dir") {
        let events = entry.expect("entry").path();
        if events.extension().is_none_or(|e| e != "jsonl")
            || events.to_string_lossy().ends_with(".alerts.jsonl")
        {
            continue;
        }
        let config = events.with_extension("toml");
        let expected_path = events.with_extension("alerts.jsonl");
        let got = replay(&events, &config);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&expected_path, &got).expect("write golden file");
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!(
                "{} missing; run with UPDATE_GOLDEN=1",
                expected_path.display()
            )
        });
        assert_eq!(got, expected, "{} changed", events.display());
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} golden fixtures found");
}

fn shop() -> Pipeline {
    let text = r#"
[[topic]]
name = "shop"
[[kpi]]
name = "checkouts"
where = { type = "checkout" }
aggregate = "count"
"#;
    let config = validate(&Source::new(Path::new("shop.toml"), text)).expect("valid");
    Pipeline::new(config, Metrics::new())
}

#[test]
fn a_ten_megabyte_event_is_refused_as_too_large_without_parsing() {
    let mut p = shop();
    let huge = format!(
        r#"{{"time":"2024-01-01T00:00:00Z","type":"checkout","pad":"{}"}}"#,
        "x".repeat(10 << 20)
    );
    assert_eq!(
        p.record(0, 0, 0, huge.as_bytes(), None),
        Outcome::Rejected(RejectReason::TooLarge)
    );
    // The next event is read as usual (the partition's first: it waits
    // for two more to agree on the partition's time).
    let ok = br#"{"time":"2024-01-01T00:00:01Z","type":"checkout"}"#;
    assert_eq!(p.record(0, 0, 1, ok, None), Outcome::Held);
    let rendered = p.metrics().render();
    assert!(
        rendered.contains(r#"kpiwatch_events_rejected_total{reason="too_large",topic="shop"} 1"#),
        "{rendered}"
    );
}

#[test]
fn invalid_utf8_and_binary_garbage_are_refused_as_invalid_json() {
    let mut p = shop();
    for garbage in [
        &b"\xff\xfe\xfd"[..],
        b"{\"time\":\"2024-01-01T00:00:00Z\",\"type\":\"\xc3\x28\"}",
        b"\x00\x01{",
    ] {
        assert_eq!(
            p.record(0, 0, 0, garbage, None),
            Outcome::Rejected(RejectReason::InvalidJson)
        );
    }
}

#[test]
fn replay_counts_malformed_and_late_lines_and_goes_on() {
    let dir = fixtures();
    let config = load(&dir.join("bad_input.toml")).expect("valid");
    let input =
        std::io::BufReader::new(std::fs::File::open(dir.join("bad_input.jsonl")).expect("fixture"));
    let summary = kpiwatch::replay::replay(config, None, input, None, std::io::sink(), None)
        .expect("replay runs")
        .summary;
    assert_eq!(
        (summary.events, summary.rejected, summary.late),
        (125, 4, 1)
    );
}

/// A pipeline grouping checkouts by country, one-minute buckets, series
/// evicted after ten silent minutes.
fn by_country() -> Pipeline {
    let text = r#"
[[topic]]
name = "shop"
[defaults]
bucket = "1m"
lateness = "0s"
evict_after = "10m"
[[kpi]]
name = "checkouts"
where = { type = "checkout" }
aggregate = "count"
group_by = ["country"]
"#;
    let config = validate(&Source::new(Path::new("shop.toml"), text)).expect("valid");
    Pipeline::new(config, Metrics::new())
}

/// Records one checkout and lets event time close what it can. (A
/// partition's first events are held until three agree on its time.)
fn checkout(p: &mut Pipeline, offset: &mut i64, t: i64, country: &str, out: &mut Vec<Transition>) {
    let time = chrono::DateTime::from_timestamp(t, 0).expect("valid time");
    let event = format!(
        r#"{{"time":"{}","type":"checkout","country":"{country}"}}"#,
        time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    *offset += 1;
    assert!(matches!(
        p.record(0, 0, *offset, event.as_bytes(), None),
        Outcome::Accepted { .. } | Outcome::Held
    ));
    p.advance(None, out);
}

fn metric(p: &Pipeline, line_start: &str) -> String {
    let rendered = p.metrics().render();
    rendered
        .lines()
        .find(|l| l.starts_with(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in\n{rendered}"))
        .to_string()
}

#[test]
fn a_series_silent_for_evict_after_is_evicted_while_buckets_close_one_at_a_time() {
    // SE checks out three times and goes quiet (too few buckets to judge,
    // so no alert); FI keeps buying every minute, closing one bucket at a
    // time. After ten silent minutes SE is forgotten, by the windows and
    // by the engine alike.
    let mut p = by_country();
    let (mut offset, mut out) = (0, Vec::new());
    let t0 = 1_704_067_200;
    for m in 0..40 {
        checkout(&mut p, &mut offset, t0 + m * 60 + 5, "FI", &mut out);
        if m < 3 {
            checkout(&mut p, &mut offset, t0 + m * 60 + 7, "SE", &mut out);
        }
    }
    assert_eq!(
        metric(&p, "kpiwatch_series_evicted_total{kpi=\"checkouts\"}"),
        "kpiwatch_series_evicted_total{kpi=\"checkouts\"} 1"
    );
    assert_eq!(
        metric(&p, "kpiwatch_series_live{kpi=\"checkouts\"}"),
        "kpiwatch_series_live{kpi=\"checkouts\"} 1"
    );
}

#[test]
fn a_firing_series_outlives_its_eviction_and_resolves_when_its_events_return() {
    // FI buys steadily, stops for twenty minutes (absence fires, then the
    // windows forget the silent series), then buys again: the alert that
    // fired must still resolve.
    let mut p = by_country();
    let (mut offset, mut out) = (0, Vec::new());
    let t0 = 1_704_067_200;
    let buy =
        |p: &mut Pipeline, offset: &mut i64, out: &mut Vec<Transition>, from: i64, to: i64| {
            let per_minute = [5, 7, 4, 6, 5, 8, 3, 6, 5, 7, 4, 6];
            for m in from..to {
                for k in 0..per_minute[(m % 12) as usize] {
                    checkout(p, offset, t0 + m * 60 + 1 + k, "FI", out);
                }
            }
        };
    let mut minute = 0;
    buy(&mut p, &mut offset, &mut out, 0, 90);
    minute += 90;
    // Silence: only SE's rare checkouts move event time on.
    for m in minute..minute + 20 {
        checkout(&mut p, &mut offset, t0 + m * 60 + 30, "SE", &mut out);
    }
    minute += 20;
    let fired = out
        .iter()
        .filter(|t| t.starts_alert() && t.labels.get("country").map(String::as_str) == Some("FI"))
        .count();
    assert_eq!(fired, 1, "{out:#?}");
    assert!(metric(&p, "kpiwatch_series_evicted_total{kpi=\"checkouts\"}").ends_with(" 1"));
    buy(&mut p, &mut offset, &mut out, minute, minute + 20);
    let resolved = out
        .iter()
        .filter(|t| {
            t.status == Status::Resolved
                && t.labels.get("country").map(String::as_str) == Some("FI")
        })
        .count();
    assert_eq!(resolved, 1, "{out:#?}");
}

/// Revenue summed from `amount`, distinct users from `user`, one-minute
/// buckets.
const REVENUE: &str = r#"
[[topic]]
name = "shop"
[defaults]
bucket = "1m"
[[kpi]]
name = "revenue"
where = { type = "payment" }
aggregate = "sum"
field = "amount"
[[kpi]]
name = "payers"
where = { type = "payment" }
aggregate = "distinct"
field = "user"
"#;

fn replay_text(toml: &str, input: &str) -> kpiwatch::replay::Report {
    let config = validate(&Source::new(Path::new("t.toml"), toml)).expect("valid");
    kpiwatch::replay::replay(config, None, input.as_bytes(), None, std::io::sink(), None)
        .expect("replay runs")
}

#[test]
fn sum_values_that_are_not_numbers_are_counted_by_kpi_and_reason_and_named_in_the_summary() {
    let input = [
        r#"{"time":"2024-01-01T00:00:01Z","type":"payment","user":"a","amount":"12"}"#,
        r#"{"time":"2024-01-01T00:00:02Z","type":"payment","user":"b","amount":null}"#,
        r#"{"time":"2024-01-01T00:00:03Z","type":"payment","user":"c","amount":true}"#,
        r#"{"time":"2024-01-01T00:00:04Z","type":"payment","user":"d","amount":[1]}"#,
        r#"{"time":"2024-01-01T00:00:05Z","type":"payment","user":"e","amount":{"eur":1}}"#,
        r#"{"time":"2024-01-01T00:00:06Z","type":"payment","user":"f"}"#,
        r#"{"time":"2024-01-01T00:00:07Z","type":"payment","user":"g","amount":"7"}"#,
    ]
    .join("\n");
    let report = replay_text(REVENUE, &input);
    let reasons: Vec<(&str, &str, u64)> = report
        .skipped
        .iter()
        .map(|(k, r, n)| (k.as_str(), r.as_str(), *n))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("revenue", "string", 2),
            ("revenue", "array", 1),
            ("revenue", "boolean", 1),
            ("revenue", "missing", 1),
            ("revenue", "null", 1),
            ("revenue", "object", 1),
        ]
    );
    let text = report.to_string();
    assert!(
        text.contains("values skipped (not aggregated): revenue 7 (string 2, array 1, boolean 1, missing 1, null 1, object 1)"),
        "{text}"
    );
}

#[test]
fn distinct_counts_numbers_and_booleans_and_skips_only_what_is_not_a_scalar() {
    let mut p = Pipeline::new(
        validate(&Source::new(Path::new("t.toml"), REVENUE)).expect("valid"),
        Metrics::new(),
    );
    p.tap_buckets();
    let events = [
        r#"{"time":"2024-01-01T00:00:01Z","type":"payment","user":17,"amount":1}"#,
        r#"{"time":"2024-01-01T00:00:02Z","type":"payment","user":true,"amount":1}"#,
        r#"{"time":"2024-01-01T00:00:03Z","type":"payment","user":"17","amount":1}"#,
        r#"{"time":"2024-01-01T00:00:04Z","type":"payment","user":[17],"amount":1}"#,
    ];
    for (i, e) in events.iter().enumerate() {
        p.record(0, 0, i as i64, e.as_bytes(), None);
    }
    p.finish(&mut Vec::new());
    let payers: Vec<Option<f64>> = p
        .take_judged()
        .iter()
        .filter(|b| b.kpi == 1)
        .map(|b| b.value)
        .collect();
    // 17 and "17" are one payer; true is another.
    assert_eq!(payers, vec![Some(2.0)]);
    assert_eq!(
        metric(&p, "kpiwatch_values_skipped_total{kpi=\"payers\""),
        "kpiwatch_values_skipped_total{kpi=\"payers\",reason=\"array\"} 1"
    );
}

#[test]
fn a_byte_order_mark_before_the_first_event_of_a_file_is_not_part_of_it() {
    let input = "\u{feff}{\"time\":\"2024-01-01T00:00:01Z\",\"type\":\"payment\",\"user\":\"a\",\"amount\":3}\n";
    let report = replay_text(REVENUE, input);
    assert_eq!(
        (report.summary.events, report.summary.rejected),
        (1, 0),
        "{report}"
    );
}
