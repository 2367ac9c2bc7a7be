//! `kpiwatch backtest --html`: the report as one page, opened in a real
//! browser (headless Chromium over the DevTools protocol, `tests/common/browser.rs`)
//! from `file://`, as an analyst would open a mail attachment.
//!
//! The events are the golden replay fixture (`checkout_outage`: three
//! weeks of checkouts and carts in FI and SE, every checkout stopping on
//! 2024-01-20 10:00-14:00 UTC) with its labels: two incidents and a quiet
//! weekend.
//!
//! - The page loads with no console error and fetches nothing, its tables
//!   hold every KPI and incident, a chart draws, and the search box finds
//!   a series and draws it; a screenshot goes to `target/ci-output/`.
//! - Each alert says what its email says (`notify::phrase`).
//! - What-if: the 1/month budget is the default level, so its alerts are
//!   the configured run's; the page holds a list per setting.
//! - `--html` with `--events -` is refused: the what-if replays the file.

// Shared helpers; this file uses `kpiwatch`, `fixture` and `Scratch`.
#[path = "common/browser.rs"]
mod browser;
#[allow(dead_code)]
mod common;

use std::ffi::OsStr;
use std::io::BufReader;
use std::path::PathBuf;

use common::{fixture, kpiwatch, Scratch};
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

/// Runs `backtest --html` on the fixture into `dir`; returns the page.
fn page(dir: &Scratch) -> (PathBuf, String) {
    let html = dir.file("report.html", "");
    let (config, events, incidents) = (config(), events(), incidents());
    let run = kpiwatch(
        &[
            "backtest".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--events".as_ref(),
            events.as_os_str(),
            "--incidents".as_ref(),
            incidents.as_os_str(),
            "--html".as_ref(),
            html.as_os_str(),
        ] as &[&OsStr],
        None,
    );
    let stdout = run.ok();
    assert!(
        stdout.contains("checkouts-stop"),
        "the text report still prints: {stdout}"
    );
    assert!(
        run.stderr.contains("MB"),
        "the size is stated: {}",
        run.stderr
    );
    let text = std::fs::read_to_string(&html).expect("the page is written");
    (html, text)
}

/// The JSON the page's script reads.
fn data(html: &str) -> Value {
    let open = r#"<script type="application/json" id="data">"#;
    let from = html.find(open).expect("the data element") + open.len();
    let to = from + html[from..].find("</script>").expect("its end");
    serde_json::from_str(&html[from..to]).expect("the data is JSON")
}

#[test]
fn the_page_loads_draws_a_chart_and_finds_a_series_in_headless_chromium() {
    let dir = Scratch::new();
    let (html, _) = page(&dir);
    let screenshot = browser::ci_output().join("backtest-report.png");
    let _ = std::fs::remove_file(&screenshot);
    let found = browser::check_report(&html, &screenshot, Some("by_country SE"));

    assert_eq!(found["console_errors"], Value::Array(vec![]), "{found:#}");
    assert_eq!(
        found["requests"],
        Value::Array(vec![]),
        "nothing fetched: {found:#}"
    );
    assert_eq!(found["kpi_rows"], 4, "{found:#}");
    assert_eq!(found["incident_rows"], 2, "{found:#}");
    assert!(found["alert_rows"].as_u64().unwrap_or(0) >= 1, "{found:#}");
    assert!(found["charts"].as_u64().unwrap_or(0) >= 1, "{found:#}");
    let words = found["first_alert_words"].as_str().unwrap_or_default();
    assert!(words.contains("expected"), "evidence in words: {words}");
    // The observed line is blue: a drawn chart has many such pixels.
    let blue = |v: &Value| v["blue"].as_u64().unwrap_or(0);
    assert!(blue(&found["first_chart"]) > 200, "{found:#}");
    assert_eq!(
        found["search_hits"],
        serde_json::json!(["checkouts_by_country country=SE"]),
        "{found:#}"
    );
    assert_eq!(
        found["picked"], "checkouts_by_country country=SE",
        "{found:#}"
    );
    assert!(blue(&found["picked_chart"]) > 200, "{found:#}");
    let png = std::fs::read(&screenshot).expect("the screenshot is written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}

#[test]
fn the_page_is_one_file_with_nothing_to_fetch() {
    let dir = Scratch::new();
    let (_, html) = page(&dir);
    for outside in ["<link", " src=", "@import", "url(", "http://", "https://"] {
        assert!(
            !html.contains(outside),
            "the page refers outside itself: {outside}"
        );
    }
    let d = data(&html);
    assert_eq!(d["topic"], "shop");
    // checkouts, checkouts_by_country FI and SE, carts, conversion.
    let series = d["series"].as_array().expect("series");
    assert_eq!(series.len(), 5);
    let se = series
        .iter()
        .find(|s| s["name"] == "checkouts_by_country country=SE")
        .expect("Sweden's series");
    // Three weeks of hourly buckets, six bytes an hour.
    let n = se["n"].as_u64().expect("n");
    assert!((21 * 24 - 24..=21 * 24).contains(&n), "{n} buckets");
    let h = se["h"].as_str().expect("hourly figures");
    assert_eq!(h.len() as u64, (n * 6).div_ceil(3) * 4);
    // The spans: the alerts, both incidents and the quiet weekend.
    let kinds: Vec<&str> = d["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .filter_map(|s| s["kind"].as_str())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "incident").count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == "quiet").count(), 1);
    assert!(kinds.contains(&"alert"));
}

#[test]
fn each_alert_says_what_its_email_says() {
    let dir = Scratch::new();
    let (_, html) = page(&dir);
    let d = data(&html);
    let config = kpiwatch::config::load(&config()).expect("the fixture's config");
    let labels = kpiwatch::backtest::Labels::load(&incidents()).expect("the fixture's labels");
    let input = BufReader::new(std::fs::File::open(events()).expect("the fixture's events"));
    let run = kpiwatch::backtest::run(config, None, input, None, Some(&labels), false)
        .expect("the backtest runs");
    let page_alerts = d["alerts"][0].as_array().expect("the configured alerts");
    let mut firing = run
        .transitions
        .iter()
        .filter(|t| t.status == kpiwatch::alert::Status::Firing);
    assert_eq!(page_alerts.len(), run.report.alerts.len());
    for a in page_alerts {
        let t = firing
            .find(|t| t.alert_id == a["id"].as_str().unwrap_or_default())
            .expect("the alert's first firing transition");
        assert_eq!(a["summary"], kpiwatch::notify::phrase::summary(t));
        assert_eq!(a["evidence"], kpiwatch::notify::phrase::evidence(t));
        assert_eq!(
            a["rarity"].as_str().map(str::to_string),
            kpiwatch::notify::phrase::rarity(t)
        );
    }
}

#[test]
fn what_if_at_one_a_month_is_the_default_level_and_every_setting_has_its_alerts() {
    let dir = Scratch::new();
    let (_, html) = page(&dir);
    let d = data(&html);
    assert_eq!(
        d["settings"],
        serde_json::json!(["as configured", "1/week", "1/month", "1/quarter"])
    );
    let ids = |setting: usize| -> Vec<String> {
        d["alerts"][setting]
            .as_array()
            .expect("alerts of a setting")
            .iter()
            .map(|a| a["id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert!(!ids(0).is_empty());
    assert_eq!(ids(2), ids(0), "1/month is every KPI's configured level");
    for kpi in d["kpis"].as_array().expect("kpis") {
        assert_eq!(kpi["level"], "1/month");
        assert_eq!(kpi["rows"].as_array().map(Vec::len), Some(4));
    }
    // A looser budget never fires fewer alerts on this outage.
    assert!(
        ids(1).len() >= ids(3).len(),
        "{} at 1/week, {} at 1/quarter",
        ids(1).len(),
        ids(3).len()
    );
}

#[test]
fn html_needs_an_events_file_since_the_what_if_replays_it() {
    let dir = Scratch::new();
    let html = dir.file("report.html", "");
    let config = config();
    let run = kpiwatch(
        &[
            "backtest".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--events".as_ref(),
            "-".as_ref(),
            "--html".as_ref(),
            html.as_os_str(),
        ] as &[&OsStr],
        Some(""),
    );
    let line = run.user_error();
    assert!(line.contains("--events FILE"), "{line}");
    assert_eq!(
        std::fs::read_to_string(&html).ok().as_deref(),
        Some(""),
        "nothing written"
    );
}
