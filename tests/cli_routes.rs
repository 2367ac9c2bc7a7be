//! `kpiwatch routes`, run as a user would: which subscriptions and
//! receivers an alert would reach (like `amtool config routes test`).
//!
//! - Prints each matching subscription with its receivers (addresses,
//!   webhook URL and format), grouping, timing and time windows; "no
//!   subscription matches" otherwise. Exit 0 in both cases.
//! - Exit 1 with one located line on a bad config; exit 2 on bad usage.

// Shared helpers; this file uses only `kpiwatch` and `Scratch`.
#[allow(dead_code)]
mod common;

use common::{kpiwatch, Scratch};

const CONFIG: &str = r#"
[[topic]]
name = "shop.events"

[[kpi]]
name = "checkouts"
where = { type = "checkout" }
aggregate = "count"
group_by = ["country", "platform"]

[[kpi]]
name = "signups"
where = { type = "signup" }
aggregate = "count"

[[receiver]]
name = "shop-team"
email = ["pm@example.com", "analyst@example.com"]

[[receiver]]
name = "oncall"
webhook = { url = "https://oncall.example.com/hook", format = "alertmanager" }

[[time_window]]
name = "business-hours"
weekdays = ["mon-fri"]
times = ["08:00-20:00"]
timezone = "Europe/Helsinki"

[[subscription]]
name = "checkout-fi"
kpis = ["checkout*"]
labels = { country = "FI", platform = { not = "web" } }
direction = "drop"
receivers = ["shop-team", "oncall"]
group_by = ["kpi", "country"]
group_wait = "0s"
active_during = ["business-hours"]

[[subscription]]
name = "critical-everything"
min_severity = "critical"
receivers = ["oncall"]
group_by = ["..."]
"#;

fn routes(config: &str, extra: &[&str]) -> common::Run {
    let dir = Scratch::new();
    let path = dir.file("kpiwatch.toml", config);
    let mut args = vec!["routes", "--config", path.to_str().expect("UTF-8 path")];
    args.extend(extra);
    kpiwatch(&args, None)
}

#[test]
fn routes_lists_each_matching_subscription_with_receivers_grouping_timing_and_windows() {
    let run = routes(
        CONFIG,
        &[
            "--kpi",
            "checkouts",
            "--label",
            "country=FI",
            "--label",
            "platform=ios",
        ],
    );
    let out = run.ok();
    assert!(
        out.starts_with(
            "alert: kpi=checkouts country=FI platform=ios severity=critical direction=drop\n"
        ),
        "{out}"
    );
    assert!(out.contains("subscription \"checkout-fi\""), "{out}");
    assert!(
        out.contains("receiver \"shop-team\": email pm@example.com, analyst@example.com"),
        "{out}"
    );
    assert!(
        out.contains("receiver \"oncall\": webhook https://oncall.example.com/hook (alertmanager)"),
        "{out}"
    );
    assert!(
        out.contains("group: by kpi, country (this alert's group: country=FI kpi=checkouts)"),
        "{out}"
    );
    assert!(
        out.contains("group_wait 0s, group_interval 5m, repeat_interval 4h, send_resolved true"),
        "{out}"
    );
    assert!(
        out.contains(
            "active during: business-hours (mon,tue,wed,thu,fri 08:00-20:00 Europe/Helsinki)"
        ),
        "{out}"
    );
    assert!(
        out.contains("subscription \"critical-everything\""),
        "{out}"
    );
    assert!(out.contains("group: each alert alone"), "{out}");
    assert!(
        out.find("checkout-fi") < out.find("critical-everything"),
        "file order: {out}"
    );
}

#[test]
fn routes_applies_labels_severity_and_direction() {
    let web = routes(
        CONFIG,
        &[
            "--kpi",
            "checkouts",
            "--label",
            "country=FI",
            "--label",
            "platform=web",
        ],
    );
    assert!(!web.ok().contains("checkout-fi"), "platform != web");
    let warning = routes(
        CONFIG,
        &[
            "--kpi",
            "checkouts",
            "--label",
            "country=FI",
            "--severity",
            "warning",
        ],
    );
    let out = warning.ok();
    assert!(
        out.contains("checkout-fi") && !out.contains("critical-everything"),
        "{out}"
    );
    let spike = routes(
        CONFIG,
        &[
            "--kpi",
            "checkouts",
            "--label",
            "country=FI",
            "--direction",
            "spike",
        ],
    );
    let out = spike.ok();
    assert!(
        !out.contains("checkout-fi") && out.contains("critical-everything"),
        "{out}"
    );
}

#[test]
fn routes_says_when_no_subscription_matches_and_exits_0() {
    let run = routes(CONFIG, &["--kpi", "signups", "--severity", "warning"]);
    assert_eq!(
        run.ok(),
        "alert: kpi=signups severity=warning direction=drop\nno subscription matches\n"
    );
}

#[test]
fn routes_on_a_bad_config_exits_1_with_the_place_to_fix() {
    let bad = CONFIG.replace(
        "receivers = [\"oncall\"]\ngroup_by",
        "receivers = [\"on-call\"]\ngroup_by",
    );
    let run = routes(&bad, &["--kpi", "checkouts"]);
    let line = run.user_error();
    assert!(
        line.contains("kpiwatch.toml:43:14: receiver \"on-call\" is not defined"),
        "{line}"
    );
    // `check` reports the same.
    let dir = Scratch::new();
    let path = dir.file("kpiwatch.toml", &bad);
    let check = kpiwatch(
        &["check", "--config", path.to_str().expect("UTF-8 path")],
        None,
    );
    assert!(check.user_error().contains(":43:14:"), "{check:?}");
}

#[test]
fn routes_refuses_an_unknown_kpi_and_bad_usage() {
    let unknown = routes(CONFIG, &["--kpi", "checkout"]);
    let line = unknown.user_error();
    assert!(
        line.contains("\"checkout\" is not a [[kpi]]") && line.contains("checkouts, signups"),
        "{line}"
    );
    let no_equals = routes(CONFIG, &["--kpi", "checkouts", "--label", "FI"]);
    assert_eq!(no_equals.code, Some(2), "{no_equals:?}");
    assert!(no_equals.stderr.contains("name=value"), "{no_equals:?}");
    let severity = routes(CONFIG, &["--kpi", "checkouts", "--severity", "page"]);
    assert_eq!(severity.code, Some(2), "{severity:?}");
}
