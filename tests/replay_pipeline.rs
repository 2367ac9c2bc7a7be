//! The pipeline core and `kpiwatch replay` over files: golden fixtures
//! (`tests/fixtures/replay/NAME.jsonl` + `NAME.toml` → `NAME.alerts.jsonl`)
//! and bad input that must be counted, never fatal.
//!
//! To accept a deliberate change of detector behaviour, regenerate the
//! expected files with `UPDATE_GOLDEN=1 cargo test --test replay_pipeline`
//! and review the diff like code.

use std::path::{Path, PathBuf};

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
    let ok = br#"{"time":"2024-01-01T00:00:01Z","type":"checkout"}"#;
    assert!(matches!(
        p.record(0, 0, 1, ok, None),
        Outcome::Accepted { .. }
    ));
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
        .expect("replay runs");
    assert_eq!(
        (summary.events, summary.rejected, summary.late),
        (125, 4, 1)
    );
}
