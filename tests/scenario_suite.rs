//! The scenario suite under `benches/scenarios/`, checked without running
//! the backtest: the smoke scenario through the `kpiwatch simulate` binary
//! (events and labels as files), the main scenario's shape at every scale
//! it names (fair, separate incidents; the KPIs its labels name exist in
//! the suite's config), and the aggregator on hand-written backtest
//! results.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use kpiwatch::simulate::scenario::{Change, Effect, Scenario, Shop};
use kpiwatch::simulate::stream::{expected, Expected, RETRY_DELAY};

fn suite(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/scenarios")
        .join(file)
}

fn epoch(text: &str) -> i64 {
    kpiwatch::timefmt::parse(text)
        .unwrap_or_else(|| panic!("{text:?} is not RFC 3339"))
        .epoch
}

/// The hour of the UTC day around which `times` of that day centre.
fn daily_phase_hours(times: &[i64], day_start: i64) -> f64 {
    let (mut x, mut y) = (0.0, 0.0);
    for t in times
        .iter()
        .filter(|t| (day_start..day_start + 86_400).contains(*t))
    {
        let angle = (t - day_start) as f64 / 86_400.0 * std::f64::consts::TAU;
        x += angle.cos();
        y += angle.sin();
    }
    y.atan2(x).rem_euclid(std::f64::consts::TAU) / std::f64::consts::TAU * 24.0
}

/// Simulates the smoke scenario (two days at a tenth) into `dir`: the
/// events, the labels, and what `simulate` printed on stderr.
fn smoke(dir: &Path) -> (PathBuf, PathBuf, String) {
    let (events, labels) = (dir.join("events.jsonl"), dir.join("labels.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_kpiwatch"))
        .args(["simulate", "--scenario"])
        .arg(suite("testdata/smoke.toml"))
        .args(["--scale", "0.1", "--seed", "5", "--output"])
        .arg(&events)
        .arg("--labels")
        .arg(&labels)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (events, labels, stderr)
}

#[test]
fn a_backtest_of_the_smoke_scenario_says_nothing_its_own_figures_contradict() {
    let dir = tempfile::tempdir().unwrap();
    let (events, labels, _) = smoke(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_kpiwatch"))
        .args(["backtest", "--json", "--config"])
        .arg(suite("shop.toml"))
        .arg("--events")
        .arg(&events)
        .arg("--incidents")
        .arg(&labels)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Every firing alert's value outside its band, no band below zero for
    // a KPI that cannot be negative (its own or a recent bucket's), a drop
    // below expected and a spike above, a rule's value beyond its limit.
    let violations = report["violations"].as_array().unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
    let alerts = report["alerts"].as_array().unwrap();
    for a in alerts {
        let lower = a["lower"].as_f64().unwrap_or(f64::NEG_INFINITY);
        assert!(lower >= 0.0 || lower == f64::NEG_INFINITY, "{a}");
    }
    // The checkout outage, on the first day, is caught by its absence
    // before any seasonal model is ready.
    let outage = &report["incidents"][0];
    assert_eq!(outage["id"], "checkouts-stop");
    assert_eq!(outage["detected"], true, "{outage}");
}

#[test]
fn smoke_two_days_at_a_tenth_write_events_and_labels_as_the_scenario_says() {
    let dir = tempfile::tempdir().unwrap();
    let (events, labels, stderr) = smoke(dir.path());
    assert!(
        stderr.contains("M events/s"),
        "the summary reports the rate: {stderr}"
    );

    let labels: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&labels).unwrap()).unwrap();
    let incidents = labels["incidents"].as_array().unwrap();
    let kinds: Vec<&str> = incidents
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "total_outage",
            "duplicate_events",
            "users_locked_out",
            "basket_value_spike"
        ]
    );
    let window = |id: &str| {
        let i = incidents.iter().find(|i| i["id"] == id).unwrap();
        epoch(i["start"].as_str().unwrap())..epoch(i["end"].as_str().unwrap())
    };
    let outage = &incidents[0];
    assert_eq!(
        outage["start"], "2025-03-29T12:00:00Z",
        "local 13:00 is 12:00 UTC before DST"
    );
    assert_eq!(outage["end"], "2025-03-29T13:00:00Z");
    assert_eq!(outage["kpis"], serde_json::json!(["checkouts*"]));
    assert_eq!(outage["direction"], "drop");
    assert_eq!(outage["target_delay_buckets"], 2);
    assert!(
        outage["note"].as_str().unwrap().contains("checkout events"),
        "{}",
        outage["note"]
    );
    assert!(
        incidents[1].get("target_delay_buckets").is_none(),
        "absent, not null"
    );
    assert_eq!(
        incidents[3]["labels"],
        serde_json::json!({"node": "node-2"})
    );
    assert_eq!(
        window("price-10x").start,
        epoch("2025-03-30T13:00:00Z"),
        "local 15:00 is 13:00 UTC after DST"
    );
    let quiet: Vec<&str> = labels["quiet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["kind"].as_str().unwrap())
        .collect();
    assert_eq!(quiet, ["dst", "late_delivery"]);

    // The events, in the order written.
    let text = std::fs::read_to_string(&events).unwrap();
    let mut times = Vec::new();
    let mut per_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut lines_in_storm: Vec<&str> = Vec::new();
    let (mut newest, mut worst_late, mut worst_late_outside_slow_span) = (i64::MIN, 0, 0);
    let slow = epoch("2025-03-29T07:00:00Z")..epoch("2025-03-29T09:00:00Z");
    let (mut amounts_in, mut amounts_out) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = epoch(v["time"].as_str().unwrap());
        let kind = v["type"].as_str().unwrap();
        if newest != i64::MIN {
            worst_late = worst_late.max(newest - t);
            if !slow.contains(&t) {
                worst_late_outside_slow_span = worst_late_outside_slow_span.max(newest - t);
            }
        }
        newest = newest.max(t);
        times.push(t);
        if window("checkouts-stop").contains(&t) && (kind == "checkout" || kind == "payment") {
            *per_kind.entry("total_outage").or_default() += 1;
        }
        if window("retry-storm").contains(&t) && kind == "checkout" {
            lines_in_storm.push(line);
        }
        let user: f64 = v["user"].as_str().unwrap()[1..].parse().unwrap();
        if window("lockout").contains(&t) && user < 0.4 * 2000.0 {
            *per_kind.entry("users_locked_out").or_default() += 1;
        }
        if v["node"] == "node-2" && kind == "payment" {
            let a = v["amount"].as_f64().unwrap();
            if window("price-10x").contains(&t) {
                amounts_in.push(a)
            } else {
                amounts_out.push(a)
            }
        }
    }
    assert!(times.len() > 50_000, "{} events", times.len());
    assert_eq!(
        per_kind.get("total_outage"),
        None,
        "no checkout or payment during the outage"
    );
    assert_eq!(
        per_kind.get("users_locked_out"),
        None,
        "no event of a locked-out user"
    );
    let unique: BTreeSet<&&str> = lines_in_storm.iter().collect();
    let copies = lines_in_storm.len() - unique.len();
    assert!(
        (40..=110).contains(&copies),
        "{copies} duplicated checkouts of {}",
        unique.len()
    );
    let mean = |a: &[f64]| a.iter().sum::<f64>() / a.len() as f64;
    assert!(
        mean(&amounts_in) > 5.0 * mean(&amounts_out),
        "baskets 10x on node-2: {} vs {}",
        mean(&amounts_in),
        mean(&amounts_out)
    );

    // Late delivery: out of order by at most the configured 100 s (the slow
    // producer) and 40 s (the shop) or a retry's 30 s elsewhere.
    assert!(
        (60..=100).contains(&worst_late),
        "out of order by {worst_late} s"
    );
    assert!(
        worst_late_outside_slow_span <= 40.max(RETRY_DELAY) + 2,
        "{worst_late_outside_slow_span} s"
    );

    // DST: the daily cycle's centre moves an hour earlier in UTC.
    let saturday = daily_phase_hours(&times, epoch("2025-03-29T00:00:00Z"));
    let sunday = daily_phase_hours(&times, epoch("2025-03-30T00:00:00Z"));
    assert!(
        (0.7..1.3).contains(&(saturday - sunday)),
        "Saturday {saturday:.2} h, Sunday {sunday:.2} h UTC"
    );
}

#[test]
fn simulate_refuses_a_bad_scenario_file_at_its_line_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(suite("testdata/smoke.toml")).unwrap();
    std::fs::write(&file, text.replace("factor = 10", "factor = -10")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kpiwatch"))
        .args(["simulate", "--scenario"])
        .arg(&file)
        .arg("--output")
        .arg(dir.path().join("events.jsonl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = text.lines().position(|l| l == "factor = 10").unwrap() + 1;
    let place = format!(
        "{}:{line}:10: factor = -10 is out of range; a multiplier >= 0",
        file.display()
    );
    assert!(stderr.contains(&place), "{stderr}");
    assert!(!dir.path().join("events.jsonl").exists(), "nothing written");
}

/// The main scenario at each scale it names, with each incident's expected
/// effect.
fn main_shops() -> Vec<(Shop, Vec<Expected>)> {
    let scenario = Scenario::load(&suite("scenario-main.toml")).unwrap_or_else(|e| panic!("{e}"));
    let scales = scenario.named_scales();
    assert_eq!(scales, [0.1, 1.0, 10.0]);
    scales
        .into_iter()
        .map(|s| {
            let shop = scenario.at(s, 1).unwrap_or_else(|e| panic!("{e}"));
            let x = expected(&shop);
            (shop, x)
        })
        .collect()
}

/// Detectable in principle: enough events change.
fn assert_detectable(scale: f64, c: &Change, x: &Expected) {
    assert!(
        x.affected() >= 15.0,
        "x{scale} {}: only {:.1} {} events change",
        c.id,
        x.affected(),
        x.event_type
    );
}

#[test]
fn the_main_scenario_has_fair_separate_incidents_at_every_scale() {
    for (shop, expected) in main_shops() {
        let scale = shop.scale;
        let days = (shop.end - shop.start) as f64 / 86_400.0;
        assert!((27.0..=31.0).contains(&days), "about four weeks: {days}");
        let kinds: BTreeSet<&str> = shop.incidents.iter().map(|c| c.kind.as_str()).collect();
        assert!(
            kinds.len() >= 15,
            "{} kinds at x{scale}: {kinds:?}",
            kinds.len()
        );
        assert!(
            shop.incidents[0].start >= shop.start + 10 * 86_400,
            "the first ten days are for learning"
        );
        for pair in shop.incidents.windows(2) {
            let gap = (pair[1].start - pair[0].end) as f64 / 3600.0;
            assert!(
                gap >= 18.0,
                "x{scale}: {} starts {gap} h after {} ended",
                pair[1].id,
                pair[0].id
            );
        }
        let dst = shop
            .quiet
            .iter()
            .find(|q| q.kind == "dst")
            .expect("a DST span");
        assert!(shop.start < dst.start && dst.end < shop.end);
        for (c, x) in shop.incidents.iter().zip(&expected) {
            let label = c.label.as_ref().unwrap();
            assert_detectable(scale, c, x);
            // The strictest target is for drops of a busy series.
            let counted = !matches!(c.effect, Effect::Amount { .. });
            if label.direction == "drop" && label.target_delay_buckets <= Some(2) && counted {
                assert!(
                    x.per_5min >= 20.0,
                    "x{scale} {}: target 2 buckets for {:.1} events per 5 min",
                    c.id,
                    x.per_5min
                );
            }
            if c.kind == "low_volume_outage" {
                assert!(
                    (1.0..=3.0).contains(&x.per_5min),
                    "x{scale}: {:.2} per 5 min",
                    x.per_5min
                );
            }
        }
    }
}

#[test]
fn at_scales_the_file_does_not_name_every_incident_is_still_detectable_in_principle() {
    // x0.3 runs the x0.1 incidents, x3 the x1 ones, x30 the x10 ones: each
    // on more traffic than it was sized for, none on less.
    let scenario = Scenario::load(&suite("scenario-main.toml")).unwrap_or_else(|e| panic!("{e}"));
    for (scale, sized) in [(0.3, 0.1), (3.0, 1.0), (30.0, 10.0)] {
        assert_eq!(scenario.sizing_scale(scale), sized);
        let shop = scenario.at(scale, 1).unwrap_or_else(|e| panic!("{e}"));
        let named = scenario.at(sized, 1).unwrap_or_else(|e| panic!("{e}"));
        let ids = |s: &Shop| s.incidents.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&shop), ids(&named), "x{scale}");
        for (c, x) in shop.incidents.iter().zip(expected(&shop)) {
            assert_detectable(scale, c, &x);
        }
    }
}

/// `*` globs, as the backtest reads `kpis` (KPI names are ASCII).
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            name.starts_with(head) && (head.len()..=name.len()).any(|i| glob(rest, &name[i..]))
        }
    }
}

#[test]
fn every_label_names_kpis_and_labels_of_the_suite_config() {
    let config = kpiwatch::config::load(&suite("shop.toml")).unwrap_or_else(|e| panic!("{e}"));
    let lateness = config.kpis.iter().map(|k| k.lateness).min().unwrap();
    for (shop, _) in main_shops() {
        let late_spans = shop
            .quiet
            .iter()
            .chain(&shop.incidents)
            .filter_map(|c| match c.effect {
                Effect::Late { max_delay, .. } => Some(max_delay),
                _ => None,
            });
        let latest = late_spans
            .chain([shop.late.max_delay, RETRY_DELAY])
            .max()
            .unwrap();
        assert!(
            latest <= lateness,
            "events up to {latest} s late, lateness {lateness} s"
        );
        for c in &shop.incidents {
            let label = c.label.as_ref().unwrap();
            let matched: Vec<_> = config
                .kpis
                .iter()
                .filter(|k| label.kpis.iter().any(|p| glob(p, &k.name)))
                .collect();
            for p in &label.kpis {
                assert!(
                    config.kpis.iter().any(|k| glob(p, &k.name)),
                    "{}: no KPI matches {p:?}",
                    c.id
                );
            }
            for key in label.labels.keys() {
                assert!(
                    matched
                        .iter()
                        .any(|k| k.group_by.iter().any(|g| g.to_string() == *key)),
                    "{}: none of its KPIs is grouped by {key:?}",
                    c.id
                );
            }
        }
    }
}

#[test]
fn globs_match_as_the_backtest_reads_them() {
    assert!(glob("checkouts*", "checkouts"));
    assert!(glob("checkouts*", "checkouts_by_country"));
    assert!(glob("revenue*", "revenue_by_node"));
    assert!(glob("signups*", "signups_by_country"));
    assert!(!glob("checkouts*", "carts"));
    assert!(glob("conversion", "conversion"));
    assert!(!glob("conversion", "conversions"));
}

#[test]
fn the_holiday_scenario_declares_one_holiday_in_its_configs_calendar_and_forgets_the_other() {
    let shop = Scenario::load(&suite("scenario-holiday.toml"))
        .unwrap()
        .at(1.0, 1)
        .unwrap();
    let declared = &shop.quiet[0];
    assert_eq!(declared.kind, "declared_holiday");
    assert_eq!(declared.effect, Effect::Rate { factor: 0.4 });
    assert!(
        declared.start >= shop.start + 14 * 86_400,
        "two weeks to learn the normal first"
    );
    assert_eq!(
        shop.quiet[1].start,
        declared.start + 7 * 86_400,
        "the Friday after"
    );
    assert_eq!(shop.incidents.len(), 1);
    assert_eq!(shop.incidents[0].kind, "undeclared_holiday");
    let config = kpiwatch::config::load(&suite("shop-holiday.toml")).unwrap();
    for k in &config.kpis {
        let cal = &k.calendars[0].calendar;
        assert!(cal.contains(declared.start) && cal.contains(declared.start + 86_399));
        assert!(!cal.contains(declared.start + 86_400));
        assert!(
            !cal.contains(shop.incidents[0].start),
            "Easter Monday is forgotten"
        );
    }
    let main = std::fs::read_to_string(suite("scenario-main.toml")).unwrap();
    assert!(
        !main.contains("holiday"),
        "the holidays run with their own config, apart from the default suite"
    );
}

#[test]
fn the_aggregator_tables_scales_and_fails_the_targets_missed() {
    let python = std::env::var("KPIWATCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let out = Command::new(&python)
        .arg(suite("aggregate.py"))
        .arg("--out")
        .arg(&summary)
        .args(
            [
                "backtest-scale1-seed1.json",
                "backtest-scale1-seed2.json",
                "backtest-scale0.1-seed1.json",
            ]
            .map(|f| suite("testdata").join(f)),
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (set KPIWATCH_TEST_PYTHON): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "targets missed at x1: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("verdict x0.1: PASS"), "{stdout}");
    assert!(stdout.contains("verdict x1: FAIL"), "{stdout}");
    assert!(stdout.contains("OVERALL: FAIL (not met at x1)"), "{stdout}");
    assert!(
        stdout.find("== scale x0.1") < stdout.find("== scale x1 "),
        "scales in order: {stdout}"
    );

    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let x1 = &s["scales"]["1"];
    assert_eq!(x1["recall"], 0.75);
    assert_eq!(x1["seeds"], serde_json::json!([1, 2]));
    assert_eq!(x1["by_kind"]["total_outage"]["over_target"], 1);
    assert_eq!(x1["by_kind"]["total_outage"]["delay_buckets_max"], 3);
    assert_eq!(x1["by_kind"]["low_volume_outage"]["detected"], 1);
    assert_eq!(x1["worst_kpi"], "revenue_by_node");
    assert_eq!(x1["worst_kpi_false_per_week"], 1.0);
    assert_eq!(x1["false_per_kpi_week"], 9.0 / 16.0);
    assert_eq!(x1["violations"], 1);
    assert_eq!(x1["still_firing_at_end"], 1);
    assert_eq!(x1["quiet_alerts"]["dst"], 1);
    assert_eq!(
        x1["checks"],
        serde_json::json!({
            "recall": false, "delays": false, "false_per_kpi_week": true,
            "firing_after_incident_end": true, "violations": false
        })
    );
    assert_eq!(s["scales"]["0.1"]["pass"], true);
    assert_eq!(s["pass"], false);
}
