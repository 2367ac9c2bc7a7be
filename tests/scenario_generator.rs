//! What `kpiwatch simulate --scenario` promises about the events it writes:
//! each incident mechanism changes what it targets, in its window, and
//! nothing else (byte for byte); scale and seed do what they say; the daily
//! shape follows local time across DST; growth compounds; late delivery
//! stays within its bound; bad scenario files are refused at the line and
//! column of the mistake, with the fix.

use std::path::Path;

use kpiwatch::simulate::scenario::{Scenario, Shop};
use kpiwatch::simulate::stream::{expected, generate};

/// A small shop over one weekday (Tuesday 2025-03-11, Berlin), busy enough
/// that every count below is in the hundreds. `extra` is appended (shop
/// keys go in `shop_extra`).
fn scenario(shop_extra: &str, extra: &str) -> Scenario {
    let text = format!(
        r#"
[shop]
start = "2025-03-11T00:00:00"
days = 1
timezone = "Europe/Berlin"
peak_page_views = 80
users = 5000
nodes = 3
countries = {{ DE = 0.6, FR = 0.4 }}
platforms = {{ web = 0.7, ios = 0.3 }}
{shop_extra}
{extra}
"#
    );
    Scenario::parse(Path::new("test.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn shop(extra: &str) -> Shop {
    scenario("", extra).at(1.0, 7).unwrap()
}

/// One event as written, with its position in the file.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    line: String,
    time: i64,
    kind: String,
    user: u32,
    country: String,
    platform: String,
    node: Option<String>,
    amount: Option<f64>,
}

fn events(shop: &Shop) -> Vec<Event> {
    let mut out = Vec::new();
    generate(shop, |t, line| {
        let text = std::str::from_utf8(line).unwrap().to_string();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let time = kpiwatch::timefmt::parse(v["time"].as_str().unwrap())
            .unwrap()
            .epoch;
        assert_eq!(time, t, "the callback gets the event's time");
        out.push(Event {
            time,
            kind: v["type"].as_str().unwrap().to_string(),
            user: v["user"].as_str().unwrap()[1..].parse().unwrap(),
            country: v["country"].as_str().unwrap().to_string(),
            platform: v["platform"].as_str().unwrap().to_string(),
            node: v["node"].as_str().map(str::to_string),
            amount: v["amount"].as_f64(),
            line: text,
        });
    });
    out
}

/// 2025-03-11 13:00 and 15:00 Berlin (UTC+1): the incident window of most
/// tests below.
const FROM: i64 = 1_741_694_400;
const TO: i64 = FROM + 2 * 3600;

fn in_window(e: &Event) -> bool {
    (FROM..TO).contains(&e.time)
}

/// Splits `events` into those `pick` selects in the window and the rest,
/// in file order.
fn split(events: &[Event], pick: impl Fn(&Event) -> bool) -> (Vec<Event>, Vec<Event>) {
    events
        .iter()
        .cloned()
        .partition(|e| in_window(e) && pick(e))
}

const WINDOW: &str = r#"start = "2025-03-11T13:00:00"
duration = "2h"
kind = "test"
kpis = ["checkouts"]"#;

fn incident(body: &str) -> String {
    format!("[[incident]]\nid = \"x\"\n{WINDOW}\n{body}\n")
}

#[test]
fn an_outage_removes_its_event_types_in_its_window_and_changes_nothing_else() {
    let base = events(&shop(""));
    let hit = events(&shop(&incident(
        "effect = \"rate\"\nfactor = 0\ntypes = [\"checkout\", \"payment\"]",
    )));
    let targeted = |e: &Event| e.kind == "checkout" || e.kind == "payment";
    let (base_in, base_rest) = split(&base, targeted);
    let (hit_in, hit_rest) = split(&hit, targeted);
    assert!(
        base_in.len() > 100,
        "{} checkouts and payments normally",
        base_in.len()
    );
    assert_eq!(hit_in.len(), 0);
    assert_eq!(
        hit_rest, base_rest,
        "everything else is byte for byte the same"
    );
}

#[test]
fn a_segment_drop_keeps_its_share_and_leaves_other_segments_alone() {
    let base = events(&shop(""));
    let hit = events(&shop(&incident(
        "effect = \"rate\"\nfactor = 0.3\ntypes = [\"checkout\"]\nplatform = \"ios\"",
    )));
    let ios = |e: &Event| e.kind == "checkout" && e.platform == "ios";
    let (base_in, base_rest) = split(&base, ios);
    let (hit_in, hit_rest) = split(&hit, ios);
    let ratio = hit_in.len() as f64 / base_in.len() as f64;
    assert!(
        (0.15..0.45).contains(&ratio),
        "{} of {} iOS checkouts left",
        hit_in.len(),
        base_in.len()
    );
    assert_eq!(hit_rest, base_rest);
}

#[test]
fn a_ramp_declines_then_holds_then_recovers() {
    let shop = shop(&incident(
        "effect = \"rate\"\nfactor = 0.5\nramp_in = \"1h\"\nramp_out = \"30m\"\ntypes = [\"page_view\"]",
    ));
    let c = &shop.incidents[0];
    assert_eq!(c.level(FROM - 60), 0.0);
    assert_eq!(c.level(FROM), 0.0);
    assert_eq!(c.level(FROM + 1800), 0.5);
    assert_eq!(c.level(FROM + 3600), 1.0);
    assert_eq!(c.level(FROM + 5400), 1.0);
    assert_eq!(c.level(TO - 900), 0.5);
    assert_eq!(c.level(TO), 0.0);
    let base = events(&self::shop(""));
    let hit = events(&shop);
    let views = |es: &[Event], from: i64, to: i64| {
        es.iter()
            .filter(|e| e.kind == "page_view" && (from..to).contains(&e.time))
            .count() as f64
    };
    // Held at half for 30 minutes.
    let held = views(&hit, FROM + 3600, FROM + 5400) / views(&base, FROM + 3600, FROM + 5400);
    assert!((0.43..0.57).contains(&held), "held at {held}");
    // On the way down, between full and half.
    let ramp = views(&hit, FROM, FROM + 3600) / views(&base, FROM, FROM + 3600);
    assert!((0.68..0.82).contains(&ramp), "ramp at {ramp}");
}

#[test]
fn an_amount_bug_on_a_node_scales_its_amounts_only() {
    let base = events(&shop(""));
    let hit = events(&shop(&incident(
        "effect = \"amount\"\nfactor = 0.5\nnode = \"node-2\"",
    )));
    let node2 = |e: &Event| e.node.as_deref() == Some("node-2") && e.kind == "payment";
    let (base_in, base_rest) = split(&base, node2);
    let (hit_in, hit_rest) = split(&hit, node2);
    assert_eq!(hit_rest, base_rest);
    assert_eq!(hit_in.len(), base_in.len(), "the same payments");
    assert!(base_in.len() > 30);
    for (b, h) in base_in.iter().zip(&hit_in) {
        assert_eq!((b.time, b.user), (h.time, h.user));
        let (b, h) = (b.amount.unwrap(), h.amount.unwrap());
        assert!((h - b * 0.5).abs() <= 0.011, "{b} became {h}");
    }
}

#[test]
fn routing_away_from_a_node_moves_its_payments_to_its_peers() {
    let base = events(&shop(""));
    let hit = events(&shop(&incident(
        "effect = \"route\"\nfactor = 0.4\nnode = \"node-2\"",
    )));
    let count = |es: &[Event], node: Option<&str>| {
        es.iter()
            .filter(|e| {
                in_window(e)
                    && e.kind == "payment"
                    && node.is_none_or(|n| e.node.as_deref() == Some(n))
            })
            .count() as f64
    };
    assert_eq!(
        count(&hit, None),
        count(&base, None),
        "the fleet processes every payment"
    );
    let kept = count(&hit, Some("node-2")) / count(&base, Some("node-2"));
    assert!((0.3..0.5).contains(&kept), "node-2 kept {kept}");
    assert!(count(&hit, Some("node-1")) > count(&base, Some("node-1")));
    let outside = |es: &[Event]| {
        es.iter()
            .filter(|e| !in_window(e))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(outside(&hit), outside(&base));
}

#[test]
fn locked_out_users_vanish_and_everyone_else_is_unchanged() {
    let shop_hit = shop(&incident("effect = \"users\"\nshare = 0.3"));
    let locked = |e: &Event| f64::from(e.user) < 0.3 * f64::from(shop_hit.users);
    let base = events(&shop(""));
    let hit = events(&shop_hit);
    let (base_in, base_rest) = split(&base, locked);
    let (hit_in, hit_rest) = split(&hit, locked);
    assert!(base_in.len() > 1000);
    assert_eq!(
        hit_in.len(),
        0,
        "no event of a locked-out user in the window"
    );
    assert_eq!(hit_rest, base_rest);
    let distinct = |es: &[Event]| {
        es.iter()
            .filter(|e| in_window(e))
            .map(|e| e.user)
            .collect::<std::collections::BTreeSet<_>>()
            .len() as f64
    };
    let fell = distinct(&hit) / distinct(&base);
    assert!(
        (0.6..0.8).contains(&fell),
        "distinct users at {fell} of normal"
    );
}

#[test]
fn a_retry_storm_writes_copies_of_its_events_and_nothing_else() {
    let base = events(&shop(""));
    let hit = events(&shop(&incident(
        "effect = \"duplicate\"\nshare = 0.5\ntypes = [\"checkout\"]",
    )));
    let checkout = |e: &Event| e.kind == "checkout";
    let (base_in, base_rest) = split(&base, checkout);
    let (hit_in, hit_rest) = split(&hit, checkout);
    assert_eq!(hit_rest, base_rest);
    let extra = hit_in.len() as f64 / base_in.len() as f64 - 1.0;
    assert!((0.35..0.65).contains(&extra), "{extra} duplicated");
    let unique: std::collections::BTreeSet<&str> = hit_in.iter().map(|e| e.line.as_str()).collect();
    let originals: std::collections::BTreeSet<&str> =
        base_in.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(
        unique, originals,
        "every extra line is a copy of an original"
    );
}

/// The largest amount by which an event's time is earlier than one written
/// before it.
fn worst_disorder(es: &[Event]) -> i64 {
    let mut newest = es.first().map_or(0, |e| e.time);
    let mut worst = 0;
    for e in es {
        worst = worst.max(newest - e.time);
        newest = newest.max(e.time);
    }
    worst
}

#[test]
fn late_delivery_stays_within_its_bound_and_only_where_declared() {
    let on_time = events(&shop(""));
    assert_eq!(
        worst_disorder(&on_time),
        0,
        "without late delivery, events are in time order"
    );
    let late_span = "[[quiet]]\nid = \"slow\"\nkind = \"late_delivery\"\nstart = \"2025-03-11T13:00:00\"\nduration = \"2h\"\neffect = \"late\"\nshare = 1.0\nmax_delay = \"100s\"\n";
    let late = events(&shop(late_span));
    let worst = worst_disorder(&late);
    assert!((60..=100).contains(&worst), "out of order by {worst} s");
    let outside = |es: &[Event]| {
        es.iter()
            .filter(|e| e.time < FROM - 120)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(outside(&late), outside(&on_time));
    // The shop's own late delivery applies everywhere, within its bound.
    let always = scenario("late = { share = 0.2, max_delay = \"45s\" }", "")
        .at(1.0, 7)
        .unwrap();
    let es = events(&always);
    assert!(
        (30..=45).contains(&worst_disorder(&es)),
        "{}",
        worst_disorder(&es)
    );
    let mut sorted = es.clone();
    sorted.sort_by_key(|e| e.time);
    assert_ne!(sorted, es, "some events are out of order");
}

#[test]
fn same_scale_and_seed_give_the_same_bytes_and_a_new_seed_new_ones() {
    let s = scenario("", "");
    let bytes = |scale: f64, seed: u64| {
        let mut out = Vec::new();
        generate(&s.at(scale, seed).unwrap(), |_, l| {
            out.extend_from_slice(l);
            out.push(b'\n');
        });
        out
    };
    let a = bytes(1.0, 3);
    assert_eq!(a, bytes(1.0, 3));
    let other_seed = bytes(1.0, 4);
    assert_ne!(a, other_seed);
    let lines = |b: &[u8]| b.iter().filter(|c| **c == b'\n').count() as f64;
    let seeds = lines(&other_seed) / lines(&a);
    assert!((0.97..1.03).contains(&seeds), "{seeds}");
    let doubled = lines(&bytes(2.0, 3)) / lines(&a);
    assert!(
        (1.9..2.1).contains(&doubled),
        "scale 2 wrote {doubled} times the events"
    );
}

#[test]
fn scale_grows_the_user_pool_with_the_traffic() {
    let s = scenario("", "");
    let users = |scale: f64| {
        let shop = s.at(scale, 1).unwrap();
        let es = events(&shop);
        assert!(es.iter().all(|e| e.user < shop.users));
        es.iter()
            .map(|e| e.user)
            .collect::<std::collections::BTreeSet<_>>()
            .len() as f64
    };
    let (one, two) = (users(1.0), users(2.0));
    assert!(two / one > 1.6, "{one} users at scale 1, {two} at scale 2");
}

/// The hour of the day (UTC) around which events of one UTC day centre: the
/// phase of their daily cycle.
fn daily_phase_hours(es: &[Event], day_start: i64) -> f64 {
    let (mut x, mut y) = (0.0, 0.0);
    for e in es
        .iter()
        .filter(|e| (day_start..day_start + 86_400).contains(&e.time))
    {
        let angle = (e.time - day_start) as f64 / 86_400.0 * std::f64::consts::TAU;
        x += angle.cos();
        y += angle.sin();
    }
    y.atan2(x).rem_euclid(std::f64::consts::TAU) / std::f64::consts::TAU * 24.0
}

#[test]
fn the_daily_shape_follows_local_time_across_the_dst_change() {
    let text = r#"
[shop]
start = "2025-03-28T00:00:00Z"
days = 5
timezone = "Europe/Berlin"
peak_page_views = 40
countries = { DE = 1.0 }
platforms = { web = 1.0 }
"#;
    let shop = Scenario::parse(Path::new("dst.toml"), text.into())
        .unwrap()
        .at(1.0, 1)
        .unwrap();
    let es = events(&shop);
    // Friday before the change, Tuesday after it (both weekdays).
    let before = daily_phase_hours(&es, 1_743_120_000);
    let after = daily_phase_hours(&es, 1_743_465_600);
    let shift = before - after;
    assert!(
        (0.8..1.2).contains(&shift),
        "the daily peak moved {shift} h earlier in UTC"
    );
}

#[test]
fn growth_compounds_week_over_week() {
    let text = r#"
[shop]
start = "2025-03-10T00:00:00Z"
days = 8
timezone = "UTC"
peak_page_views = 20
growth_per_week = 0.5
countries = { DE = 1.0 }
platforms = { web = 1.0 }
"#;
    let shop = Scenario::parse(Path::new("g.toml"), text.into())
        .unwrap()
        .at(1.0, 1)
        .unwrap();
    let mut per_day = [0f64; 8];
    generate(&shop, |t, _| {
        per_day[((t - shop.start) / 86_400) as usize] += 1.0
    });
    let week = per_day[7] / per_day[0];
    assert!(
        (1.42..1.58).contains(&week),
        "a Monday a week later has {week} times the events"
    );
    assert!(per_day[1] > per_day[0], "growth is steady, day by day");
}

#[test]
fn expected_effects_match_what_is_written() {
    let shop = shop(&incident(
        "effect = \"rate\"\nfactor = 0\ntypes = [\"checkout\"]",
    ));
    let x = &expected(&shop)[0];
    assert_eq!(x.event_type, "checkout");
    assert_eq!(x.delta_events, -x.events);
    let base = events(&self::shop(""));
    let written = base
        .iter()
        .filter(|e| in_window(e) && e.kind == "checkout")
        .count() as f64;
    assert!(
        (written - x.events).abs() < 4.0 * x.events.sqrt(),
        "{written} written, {} expected",
        x.events
    );
    assert!((x.per_5min - x.events / 24.0).abs() < 1e-9);
}

/// The error `text` (a scenario file) gives, as printed.
fn error(text: &str) -> String {
    match Scenario::parse(Path::new("bad.toml"), text.into()) {
        Ok(s) => match s.at(1.0, 1) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

const SHOP: &str = r#"[shop]
start = "2025-03-10T00:00:00"
days = 2
timezone = "Europe/Berlin"
peak_page_views = 10
countries = { DE = 0.5, FR = 0.5 }
platforms = { web = 1.0 }
"#;

#[test]
fn bad_scenario_files_are_refused_at_the_mistake_with_the_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[shop]\nstart = \"2025-03-10T00:00:00\"\ndays = 2\ntimezone = \"Europe/Berlinn\"\npeak_page_views = 1\ncountries = { DE = 1.0 }\nplatforms = { web = 1.0 }\n",
            "bad.toml:4:12:",
            "not an IANA time zone",
        ),
        (
            "[shop]\nstart = \"2025-03-10T00:00:00\"\ndays = 2\ntimezone = \"UTC\"\npeak_page_views = 1\ncountries = { DE = 0.5, FR = 0.4 }\nplatforms = { web = 1.0 }\n",
            "bad.toml:6:13:",
            "make them add up to 1",
        ),
        (
            &format!("{SHOP}peak_page_view = 3\n"),
            "bad.toml:8:1:",
            "unknown field `peak_page_view`",
        ),
        (
            &format!("{SHOP}[[incident]]\nid = \"a\"\nkind = \"k\"\nstart = \"2025-03-10T12:00:00\"\nduration = \"1h\"\neffect = \"rate\"\nfactor = 0\ncountry = \"SE\"\nkpis = [\"x\"]\n"),
            "bad.toml:15:11:",
            "not one of the shop's countries: DE, FR",
        ),
        (
            &format!("{SHOP}[[incident]]\nid = \"a\"\nkind = \"k\"\nstart = \"2025-03-10T12:00:00\"\nduration = \"1h\"\neffect = \"rate\"\nfactor = 0\ntypes = [\"refund\"]\nkpis = [\"x\"]\n"),
            "bad.toml:15:10:",
            "not an event type; use page_view, login",
        ),
        (
            &format!("{SHOP}[[incident]]\nid = \"a\"\nkind = \"k\"\nstart = \"2025-03-10T12:00:00\"\nduration = \"1h\"\neffect = \"rate\"\nfactor = 0\n"),
            "bad.toml:9:6:",
            "has no `kpis`; add e.g. kpis = ",
        ),
        (
            &format!("{SHOP}[[incident]]\nid = \"a\"\nkind = \"k\"\nstart = \"2025-03-10T12:00:00\"\nduration = \"1h\"\neffect = \"slow\"\nkpis = [\"x\"]\n"),
            "bad.toml:13:10:",
            "use \"rate\", \"amount\"",
        ),
        (
            &format!("{SHOP}[[incident]]\nid = \"a\"\nkind = \"k\"\nstart = \"2025-03-20T12:00:00\"\nduration = \"1h\"\neffect = \"rate\"\nfactor = 0\nkpis = [\"x\"]\n"),
            "bad.toml:11:9:",
            "outside the shop's events",
        ),
        (
            &format!("{SHOP}[[quiet]]\nid = \"d\"\nkind = \"dst\"\nstart = \"2025-03-10T00:00:00\"\nduration = \"1d\"\n"),
            "bad.toml:10:8:",
            "does not change its UTC offset",
        ),
        (
            &format!("{SHOP}[[quiet]]\nid = \"q\"\nkind = \"k\"\nstart = \"2025-03-10T10:00:00\"\nduration = \"1h\"\nkpis = [\"x\"]\n"),
            "bad.toml:13:8:",
            "a quiet span must not alert",
        ),
        (
            &format!("{SHOP}[[incident]]\nid = \"a\"\nkind = \"k\"\nstart = \"2025-03-10T12:00:00\"\nduration = \"2h\"\neffect = \"rate\"\nfactor = 0\nkpis = [\"x\"]\n[[incident]]\nid = \"b\"\nkind = \"k\"\nstart = \"2025-03-10T13:00:00\"\nduration = \"1h\"\neffect = \"rate\"\nfactor = 2\nkpis = [\"x\"]\n"),
            "bad.toml:8:1:",
            "overlaps \"b\"",
        ),
        (
            &format!("{SHOP}[[incident]]\nid = \"a\"\nkind = \"k\"\nstart = \"2025-03-10T12:00:00\"\nduration = \"1h\"\neffect = \"rate\"\nfactor = 0\nkpis = [\"x\"]\n[incident.at_scale.\"0.1\"]\nid = \"b\"\n"),
            "bad.toml:16:1:",
            "`id` cannot change per scale",
        ),
        (
            &format!("{SHOP}[[incident]]\nid = \"a\"\nkind = \"k\"\nstart = \"2025-03-30T02:30:00\"\nduration = \"1h\"\neffect = \"rate\"\nfactor = 0\nkpis = [\"x\"]\n"),
            "bad.toml:11:9:",
            "does not exist in Europe/Berlin",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .map(|(text, place, fix)| (error(text), place, fix))
        .filter(|(e, place, fix)| !(e.starts_with(*place) && e.contains(*fix)))
        .map(|(e, place, fix)| format!("expected {place} ... {fix}\n     got {e}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn an_incident_without_a_target_at_a_scale_names_the_missing_override() {
    let text = format!(
        "{SHOP}[[incident]]\nid = \"small\"\nkind = \"k\"\nstart = \"2025-03-10T12:00:00\"\nduration = \"1h\"\nkpis = [\"x\"]\nfactor = 0\n[incident.at_scale.\"1\"]\neffect = \"rate\"\n"
    );
    let s = Scenario::parse(Path::new("s.toml"), text).unwrap();
    assert!(s.at(1.0, 1).is_ok());
    // Below every scale the file names, an entry has only its own fields.
    let e = s.at(0.5, 1).unwrap_err().to_string();
    assert!(
        e.starts_with("s.toml:9:6:") && e.contains("no `effect`") && e.contains("at_scale.\"0.5\""),
        "{e}"
    );
    assert_eq!(s.named_scales(), vec![1.0]);
}

#[test]
fn a_scale_the_file_does_not_name_gets_the_incidents_of_the_nearest_one_below() {
    // Sized for x0.1: a 5-hour drop; for x1: 2 hours; its own fields: 1 hour
    // (below every scale named, as before).
    let text = format!(
        "{SHOP}[[incident]]\nid = \"drop\"\nkind = \"k\"\nstart = \"2025-03-10T12:00:00\"\nduration = \"1h\"\neffect = \"rate\"\nfactor = 0.2\nkpis = [\"x\"]\n[incident.at_scale.\"0.1\"]\nduration = \"5h\"\n[incident.at_scale.\"1\"]\nduration = \"2h\"\n"
    );
    let s = Scenario::parse(Path::new("s.toml"), text).unwrap();
    let hours = |scale: f64| {
        let c = &s.at(scale, 1).unwrap().incidents[0];
        (c.end - c.start) / 3600
    };
    assert_eq!(
        [0.05, 0.1, 0.3, 1.0, 3.0, 10.0].map(hours),
        [1, 5, 5, 2, 2, 2]
    );
    assert_eq!(
        [0.05, 0.3, 3.0].map(|k| s.sizing_scale(k)),
        [0.05, 0.1, 1.0]
    );
    // The traffic is the scale asked for.
    assert_eq!(s.at(0.3, 1).unwrap().scale, 0.3);
}

#[test]
fn incidents_may_run_at_some_scales_only() {
    let text = format!(
        "{SHOP}[[incident]]\nid = \"big-only\"\nkind = \"k\"\nstart = \"2025-03-10T12:00:00\"\nduration = \"1h\"\neffect = \"rate\"\nfactor = 0\nkpis = [\"x\"]\nscales = [1, 10]\n"
    );
    let s = Scenario::parse(Path::new("s.toml"), text).unwrap();
    assert_eq!(s.at(10.0, 1).unwrap().incidents.len(), 1);
    assert_eq!(s.at(0.1, 1).unwrap().incidents.len(), 0);
}
