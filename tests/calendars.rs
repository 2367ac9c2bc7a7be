//! Calendars of expected events: the config (`[[calendar]]`, a KPI's
//! `calendars`), refusals at their file:line:column, the engine muting and
//! widening during a calendar, learning skipped (the model after a calendar
//! day is the model that never saw it), and the backtest listing the spans
//! and the muted alerts.

#[allow(dead_code)] // this test uses a few of the shared helpers
mod common;

use std::path::Path;

use detectors::kpi::{Input, Kind, KpiConfig, KpiModel};
use detectors::Seasonality;
use kpiwatch::alert::Status;
use kpiwatch::config::{validate, Config, Source};
use kpiwatch::pipeline::engine::Engine;
use kpiwatch::pipeline::window::{ClosedBucket, SeriesKey};

/// Monday 2026-11-02 00:00 UTC.
const MONDAY: i64 = 1_793_577_600;
const DAY: i64 = 86_400;
const BUCKET: i64 = 300;

fn config(extra: &str) -> Result<Config, String> {
    let text = format!(
        "[[topic]]\nname = \"shop.events\"\n\n[[kpi]]\nname = \"checkouts\"\naggregate = \"count\"\n{extra}"
    );
    validate(&Source::new(Path::new("cal.toml"), &text)).map_err(|e| e.to_string())
}

/// `config` with the calendar section after the KPI.
fn with_calendar(kpi_keys: &str, calendar: &str) -> Result<Config, String> {
    config(&format!("{kpi_keys}\n\n[[calendar]]\n{calendar}"))
}

#[test]
fn dates_spans_and_yearly_days_are_read_in_the_calendars_zone() {
    let c = with_calendar(
        "calendars = [\"de-holidays\", { name = \"de-holidays-2\", widen = 100 }]",
        "name = \"de-holidays\"\ntimezone = \"Europe/Berlin\"\ndates = [\"2026-12-25\", 2026-12-26]\nspans = [{ start = \"2026-11-27T00:00\", end = 2026-11-28T06:00:00 }]\nevery = [\"01-01\", \"sun 02:00-04:00\"]\n\n[[calendar]]\nname = \"de-holidays-2\"\ndates = [\"2026-05-01\"]\n",
    )
    .expect("valid");
    let uses = &c.kpis[0].calendars;
    assert_eq!(uses.len(), 2);
    let cal = &uses[0].calendar;
    assert_eq!(uses[0].effect, kpiwatch::calendar::Effect::Mute);
    assert_eq!(uses[1].effect, kpiwatch::calendar::Effect::Widen(100.0));
    // Christmas and Boxing Day, merged; Black Friday to 06:00 Saturday.
    let berlin_midnight_25 = 1_798_153_200; // 2026-12-24T23:00:00Z
    assert!(cal.contains(berlin_midnight_25));
    assert!(!cal.contains(berlin_midnight_25 - 1));
    assert!(cal.contains(berlin_midnight_25 + 2 * DAY - 1));
    assert!(!cal.contains(berlin_midnight_25 + 2 * DAY));
    let black_friday = 1_795_734_000; // 2026-11-26T23:00:00Z
    assert!(cal.contains(black_friday + 30 * 3600 - 1));
    assert!(!cal.contains(black_friday + 30 * 3600));
    // Every New Year's Day, in any year.
    assert!(cal.contains(1_893_452_400 + 3600)); // 2030-01-01T00:00 Berlin + 1 h
}

#[test]
fn defaults_may_name_calendars_for_every_kpi() {
    let text = "[[topic]]\nname = \"t\"\n[defaults]\ncalendars = [\"h\"]\n[[kpi]]\nname = \"a\"\naggregate = \"count\"\n[[kpi]]\nname = \"b\"\naggregate = \"count\"\ncalendars = []\n[[calendar]]\nname = \"h\"\ndates = [\"2026-12-25\"]\n";
    let c = validate(&Source::new(Path::new("d.toml"), text)).expect("valid");
    assert_eq!(c.kpis[0].calendars.len(), 1);
    assert!(
        c.kpis[1].calendars.is_empty(),
        "a KPI's own list replaces the default"
    );
}

#[test]
fn mistakes_are_refused_at_their_place_with_what_to_write() {
    // The KPI section starts on line 4; `calendars` is line 7.
    let unknown = with_calendar(
        "calendars = [\"de-holiday\"]",
        "name = \"de-holidays\"\ndates = [\"2026-12-25\"]\n",
    )
    .unwrap_err();
    assert!(
        unknown.starts_with("cal.toml:7:14:") && unknown.contains("use one of: de-holidays"),
        "{unknown}"
    );
    let bad_date = with_calendar(
        "calendars = [\"h\"]",
        "name = \"h\"\ndates = [\"2026-12-25\", \"25.12.2026\"]\n",
    )
    .unwrap_err();
    assert!(
        bad_date.starts_with("cal.toml:11:24:") && bad_date.contains("YYYY-MM-DD"),
        "{bad_date}"
    );
    let zone = with_calendar(
        "calendars = [\"h\"]",
        "name = \"h\"\ntimezone = \"Berlin\"\ndates = [\"2026-12-25\"]\n",
    )
    .unwrap_err();
    assert!(
        zone.starts_with("cal.toml:11:12:") && zone.contains("Europe/Berlin"),
        "{zone}"
    );
    let backwards = with_calendar(
        "calendars = [\"h\"]",
        "name = \"h\"\nspans = [{ start = \"2026-11-28T06:00\", end = \"2026-11-27T00:00\" }]\n",
    )
    .unwrap_err();
    assert!(backwards.contains("not after `start`"), "{backwards}");
    let skipped = with_calendar(
        "calendars = [\"h\"]",
        "name = \"h\"\ntimezone = \"Europe/Berlin\"\nspans = [{ start = \"2026-03-29T02:30\", end = \"2026-03-29T05:00\" }]\n",
    )
    .unwrap_err();
    assert!(skipped.contains("clocks skip"), "{skipped}");
    let every = with_calendar(
        "calendars = [\"h\"]",
        "name = \"h\"\nevery = [\"christmas\"]\n",
    )
    .unwrap_err();
    assert!(
        every.starts_with("cal.toml:11:10:") && every.contains("\"12-25\""),
        "{every}"
    );
    let widen = with_calendar(
        "calendars = [{ name = \"h\", widen = 0.5 }]",
        "name = \"h\"\ndates = [\"2026-12-25\"]\n",
    )
    .unwrap_err();
    assert!(
        widen.starts_with("cal.toml:7:14:") && widen.contains("above 1"),
        "{widen}"
    );
    let empty = with_calendar("calendars = [\"h\"]", "name = \"h\"\n").unwrap_err();
    assert!(empty.contains("lists no days"), "{empty}");
    let twice = with_calendar(
        "",
        "name = \"h\"\ndates = [\"2026-12-25\"]\n[[calendar]]\nname = \"h\"\ndates = [\"2026-12-26\"]\n",
    )
    .unwrap_err();
    assert!(twice.contains("defined twice"), "{twice}");
    let key = with_calendar(
        "calendars = [\"h\"]",
        "name = \"h\"\ndate = [\"2026-12-25\"]\n",
    )
    .unwrap_err();
    assert!(key.starts_with("cal.toml:11:1:"), "{key}");
}

/// A deterministic count near `mean` (a Poisson-like spread from a hash).
fn noisy(mean: f64, i: i64) -> f64 {
    let h = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17);
    let u = (h % 10_000) as f64 / 10_000.0 - 0.5;
    (mean + u * 2.0 * mean.sqrt()).round().max(0.0)
}

/// Traffic with a daily shape: `level` events a bucket at the day's peak.
fn traffic(t: i64, level: f64) -> f64 {
    let hour = (t.rem_euclid(DAY)) as f64 / 3600.0;
    level * (0.55 + 0.45 * (std::f64::consts::PI * (hour - 4.0) / 12.0).sin().abs())
}

/// Buckets of one series from `MONDAY` for `days`, at `share` of normal
/// traffic on day `quiet_day`.
fn buckets(days: i64, quiet_day: i64, share: f64) -> Vec<ClosedBucket> {
    (0..days * DAY / BUCKET)
        .map(|i| {
            let t = MONDAY + i * BUCKET;
            let factor = if (t - MONDAY) / DAY == quiet_day {
                share
            } else {
                1.0
            };
            let v = noisy(traffic(t, 60.0) * factor, i);
            ClosedBucket {
                kpi: 0,
                key: SeriesKey::from(""),
                start: t,
                value: Some(v),
                volume: v as u64,
                logs: None,
            }
        })
        .collect()
}

/// A calendar holding day 16 (a Wednesday) of the buckets above.
fn holiday_calendar(effect: &str) -> String {
    format!(
        "[[calendar]]\nname = \"holiday\"\ndates = [\"2026-11-18\"]\n\n[[kpi]]\nname = \"with\"\naggregate = \"count\"\ncalendars = [{effect}]\n"
    )
}

fn judge(config: &Config, kpi: usize, all: &[ClosedBucket]) -> (Vec<(Status, i64)>, Engine) {
    let mut engine = Engine::new(&config.kpis);
    let mut out = Vec::new();
    for b in all {
        let b = ClosedBucket { kpi, ..b.clone() };
        engine.judge_all(std::slice::from_ref(&b), &mut out);
    }
    (
        out.iter().map(|t| (t.status, t.bucket_start)).collect(),
        engine,
    )
}

#[test]
fn a_quiet_day_in_a_mute_calendar_does_not_alert_and_is_kept_as_muted_and_the_next_week_is_calm() {
    let c = config(&holiday_calendar("\"holiday\"")).expect("valid");
    let all = buckets(24, 16, 0.4);
    let holiday = (MONDAY + 16 * DAY, MONDAY + 17 * DAY);
    // Without the calendar (KPI 0) the day alerts.
    let (without, _) = judge(&c, 0, &all);
    assert!(
        without
            .iter()
            .any(|&(s, t)| s == Status::Firing && t >= holiday.0 && t < holiday.1),
        "{without:?}"
    );
    // With it (KPI 1): no transition at all, the would-be alert is kept.
    let (with, mut engine) = judge(&c, 1, &all);
    assert!(with.is_empty(), "{with:?}");
    let muted = engine.take_muted();
    assert_eq!(muted.len(), 1, "one record per series and calendar span");
    assert_eq!(muted[0].calendar, "holiday");
    assert!(muted[0].bucket_start >= holiday.0 && muted[0].bucket_start < holiday.1);
    assert!(muted[0].observed < muted[0].expected);
}

#[test]
fn an_outage_after_the_calendar_still_fires_and_a_widened_calendar_lets_only_strong_evidence_through(
) {
    // Events stop for the day after the holiday: the first buckets after
    // the calendar are judged afresh, and fire.
    let mut all = buckets(20, 16, 0.4);
    for b in all.iter_mut().filter(|b| (b.start - MONDAY) / DAY == 17) {
        b.value = Some(0.0);
        b.volume = 0;
    }
    let c = config(&holiday_calendar("\"holiday\"")).expect("valid");
    let (with, _) = judge(&c, 1, &all);
    let first = with.first().copied().expect("the outage fires");
    assert_eq!(first.0, Status::Firing);
    assert!(
        (MONDAY + 17 * DAY..MONDAY + 17 * DAY + 3 * BUCKET).contains(&first.1),
        "fired at {}",
        first.1 - MONDAY - 17 * DAY
    );
    // Widened a million times: a 40 % day's single buckets are not rare
    // enough, an outage inside the calendar is.
    let wide = config(&holiday_calendar("{ name = \"holiday\", widen = 1e6 }")).expect("valid");
    let quiet = buckets(20, 16, 0.85);
    let (with, _) = judge(&wide, 1, &quiet);
    assert!(with.is_empty(), "a 15 % dip, widened: {with:?}");
    let mut outage = buckets(20, 16, 1.0);
    for b in outage.iter_mut().filter(|b| {
        (MONDAY + 16 * DAY + 12 * 3600..MONDAY + 16 * DAY + 14 * 3600).contains(&b.start)
    }) {
        b.value = Some(0.0);
        b.volume = 0;
    }
    let (with, _) = judge(&wide, 1, &outage);
    assert!(
        with.iter().any(|&(s, _)| s == Status::Firing),
        "a two-hour outage inside a widened calendar still fires"
    );
}

fn model() -> KpiModel {
    KpiModel::new(KpiConfig {
        kind: Kind::Count,
        bucket_width: BUCKET,
        seasonality: Seasonality::Auto,
        min_volume: 0.0,
        threshold: None,
        week_over_week: None,
        estimate_rel_var: 0.0,
    })
}

fn learn(m: &mut KpiModel, t: i64, value: f64, weight: f64) -> f64 {
    let input = Input {
        time: t,
        utc_offset: 0,
        value,
        events: value,
        others: None,
        logs: None,
    };
    let a = m.assess(&input);
    m.learn(&input, &a, weight);
    a.expected
}

#[test]
fn a_calendar_day_teaches_the_model_nothing_it_is_as_if_never_seen() {
    // Three weeks; day 16 (a Wednesday) at 40 %, learnt at weight 0 by
    // one model and never shown to the other.
    let mut skipped = model();
    let mut never = model();
    let mut learnt = model();
    let mut i = 0;
    for t in (MONDAY..MONDAY + 23 * DAY).step_by(BUCKET as usize) {
        i += 1;
        let day = (t - MONDAY) / DAY;
        let v = noisy(traffic(t, 60.0) * if day == 16 { 0.4 } else { 1.0 }, i);
        if day == 16 {
            learn(&mut skipped, t, v, 0.0);
            learn(&mut learnt, t, v, 1.0);
        } else {
            learn(&mut skipped, t, v, 1.0);
            learn(&mut never, t, v, 1.0);
            learn(&mut learnt, t, v, 1.0);
        }
    }
    // The next Wednesday (day 23), as each model expects it.
    let expect = |m: &KpiModel| {
        (MONDAY + 23 * DAY..MONDAY + 24 * DAY)
            .step_by(BUCKET as usize)
            .map(|t| {
                m.assess(&Input {
                    time: t,
                    utc_offset: 0,
                    value: 0.0,
                    events: 0.0,
                    others: None,
                    logs: None,
                })
                .expected
            })
            .sum::<f64>()
    };
    let (s, n, l) = (expect(&skipped), expect(&never), expect(&learnt));
    assert!((s / n - 1.0).abs() < 0.005, "skipped {s} vs never seen {n}");
    assert!(
        l < 0.97 * n,
        "learning the holiday bends next week: {l} vs {n}"
    );
}

#[test]
fn the_backtest_lists_the_calendar_spans_and_the_alerts_they_muted() {
    let dir = common::Scratch::new();
    let mut events = String::new();
    for b in buckets(19, 16, 0.3) {
        let n = b.value.unwrap_or(0.0) as i64;
        for k in 0..n {
            let t = b.start + k * BUCKET / n.max(1);
            events.push_str(&format!(
                "{{\"time\":\"{}\"}}\n",
                kpiwatch::timefmt::rfc3339(t)
            ));
        }
    }
    let events = dir.file("events.jsonl", &events);
    let config = dir.file(
        "cal.toml",
        "[[topic]]\nname = \"shop.events\"\n[[kpi]]\nname = \"checkouts\"\naggregate = \"count\"\nlateness = \"0s\"\ncalendars = [\"holiday\"]\n[[calendar]]\nname = \"holiday\"\ndates = [\"2026-11-18\"]\n",
    );
    let run = common::kpiwatch(
        &[
            "backtest",
            "--config",
            config.to_str().expect("utf-8"),
            "--events",
            events.to_str().expect("utf-8"),
            "--json",
        ],
        None,
    );
    let json: serde_json::Value = serde_json::from_str(run.ok()).expect("json");
    let spans = json["calendar_spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0]["kpi"], "checkouts");
    assert_eq!(spans[0]["calendar"], "holiday");
    assert_eq!(spans[0]["effect"], "mute");
    assert_eq!(spans[0]["start"], "2026-11-18T00:00:00Z");
    assert_eq!(spans[0]["end"], "2026-11-19T00:00:00Z");
    assert_eq!(json["alerts"].as_array().map(Vec::len), Some(0));
    let muted = json["muted"].as_array().expect("muted");
    assert_eq!(muted.len(), 1, "{muted:?}");
    assert_eq!(muted[0]["direction"], "drop");
    let text = common::kpiwatch(
        &[
            "backtest",
            "--config",
            config.to_str().expect("utf-8"),
            "--events",
            events.to_str().expect("utf-8"),
        ],
        None,
    );
    let text = text.ok();
    assert!(
        text.contains("holiday (mute): 2026-11-18T00:00:00Z to 2026-11-19T00:00:00Z: checkouts"),
        "{text}"
    );
    assert!(text.contains("Muted by calendars (1)"), "{text}");

    // The page shades the calendar on the KPI's charts and the muted
    // alert on its series.
    let page = dir.file("report.html", "");
    common::kpiwatch(
        &[
            "backtest",
            "--config",
            config.to_str().expect("utf-8"),
            "--events",
            events.to_str().expect("utf-8"),
            "--html",
            page.to_str().expect("utf-8"),
        ],
        None,
    )
    .ok();
    let html = std::fs::read_to_string(&page).expect("the page is written");
    let open = r#"<script type="application/json" id="data">"#;
    let from = html.find(open).expect("the data element") + open.len();
    let to = from + html[from..].find("</script>").expect("its end");
    let data: serde_json::Value = serde_json::from_str(&html[from..to]).expect("json");
    let spans = data["spans"].as_array().expect("spans");
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        spans.iter().filter(|s| s["kind"] == kind).collect()
    };
    let calendar = of("calendar");
    assert_eq!(calendar.len(), 1, "{spans:?}");
    assert_eq!(calendar[0]["text"], "holiday (muted)");
    assert_eq!(calendar[0]["kpis"], serde_json::json!([0]));
    let muted = of("muted");
    assert_eq!(muted.len(), 1, "{spans:?}");
    assert!(
        muted[0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("muted by holiday: would have dropped")),
        "{muted:?}"
    );
    assert!(muted[0]["series"].is_u64(), "on its series: {muted:?}");
}
