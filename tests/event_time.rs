//! Event time that one bad clock cannot break: an event far ahead of its
//! partition's time (or, live, of the wall clock) is refused without moving
//! that time, while a partition that really jumps (a quiet night missing
//! from a file, a producer silent for hours) is followed; closing a gap of
//! any length costs the buckets that hold data, not the gap.

use std::path::Path;

use kpiwatch::alert::Transition;
use kpiwatch::config::{validate, Source};
use kpiwatch::pipeline::{Outcome, Pipeline, Settled};
use kpiwatch::replay::Report;
use kpiwatch::telemetry::{Metrics, RejectReason};

/// 2024-01-01 00:00:00 UTC, a Monday.
const T0: i64 = 1_704_067_200;
/// 9999-12-31T23:59:59Z, the last second a time field may hold.
const YEAR_9999: i64 = 253_402_300_799;

/// Page views counted per minute, one series, max_ahead 15 minutes (the
/// default).
const VIEWS: &str = r#"
[[topic]]
name = "shop"
time_format = "epoch_seconds"
[defaults]
bucket = "1m"
lateness = "0s"
[[kpi]]
name = "page_views"
where = { type = "page_view" }
aggregate = "count"
"#;

fn pipeline(toml: &str) -> Pipeline {
    let config =
        validate(&Source::new(Path::new("t.toml"), toml)).unwrap_or_else(|e| panic!("{e}"));
    Pipeline::new(config, Metrics::new())
}

fn view(t: i64) -> String {
    format!(r#"{{"time":{t},"type":"page_view"}}"#)
}

/// Replays `lines` (JSONL) with `toml`.
fn replay(toml: &str, lines: &[String]) -> (Report, Vec<Transition>) {
    let config =
        validate(&Source::new(Path::new("t.toml"), toml)).unwrap_or_else(|e| panic!("{e}"));
    let input = lines.join("\n");
    let mut out = Vec::new();
    let mut kept = Vec::new();
    let report = kpiwatch::replay::replay(
        config,
        None,
        input.as_bytes(),
        None,
        &mut out,
        Some(&mut kept),
    )
    .expect("replay runs");
    (report, kept)
}

/// `n` page views, one every 20 seconds from `from`.
fn views(from: i64, n: i64) -> Vec<String> {
    (0..n).map(|i| view(from + 20 * i)).collect()
}

/// Records `payload` as the next message of partition 0, advancing as a
/// shell would; returns its outcome and what it settled.
fn feed(
    p: &mut Pipeline,
    offset: &mut i64,
    payload: &str,
    now: Option<i64>,
) -> (Outcome, Vec<Settled>) {
    *offset += 1;
    let outcome = p.record(0, 0, *offset, payload.as_bytes(), now);
    let settled: Vec<Settled> = p.settled().collect();
    p.advance(now, &mut Vec::new());
    (outcome, settled)
}

#[test]
fn one_event_stamped_in_the_year_9999_after_a_thousand_ordinary_ones_is_refused_and_nothing_else_is_lost(
) {
    let mut lines = views(T0, 1000);
    lines.push(view(YEAR_9999));
    lines.extend(views(T0 + 20_000, 200));
    let (report, alerts) = replay(VIEWS, &lines);
    let s = report.summary;
    assert_eq!((s.events, s.rejected, s.late, s.ahead), (1201, 0, 0, 1));
    assert_eq!(report.refused, vec![("too_far_ahead".to_string(), 1)]);
    assert!(
        report
            .to_string()
            .starts_with("replayed 1,201 events (0 rejected, 0 late, 1 too far ahead)"),
        "{report}"
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn one_page_view_stamped_days_ahead_drops_no_other_event_and_fires_no_alert() {
    // Ten days of page views; one in the middle is 3.5 days ahead.
    let mut lines = Vec::new();
    for m in 0..10 * 1440 {
        lines.push(view(T0 + 60 * m + 7));
        if m == 5 * 1440 {
            lines.push(view(T0 + 60 * m + 84 * 3600));
        }
    }
    let (report, alerts) = replay(VIEWS, &lines);
    let s = report.summary;
    assert_eq!((s.late, s.ahead, s.rejected), (0, 1, 0), "{report}");
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn a_quiet_night_missing_from_a_file_is_followed_and_nothing_is_refused() {
    // Events until 22:00, nothing until 06:00, events again.
    let mut lines = views(T0, 3 * 22 * 60);
    lines.extend(views(T0 + 30 * 3600, 3 * 60));
    let (report, _) = replay(VIEWS, &lines);
    let s = report.summary;
    assert_eq!(
        (s.events, s.late, s.ahead, s.rejected),
        (lines.len() as u64, 0, 0, 0),
        "{report}"
    );
}

#[test]
fn a_stray_event_just_before_a_real_jump_is_refused_and_the_jump_is_followed() {
    let mut lines = views(T0, 100);
    lines.push(view(YEAR_9999));
    // The producer comes back eight hours later.
    lines.extend(views(T0 + 8 * 3600, 100));
    let (report, _) = replay(VIEWS, &lines);
    let s = report.summary;
    assert_eq!((s.late, s.ahead), (0, 1), "{report}");
}

#[test]
fn an_event_refused_as_too_far_ahead_never_moves_its_partitions_time() {
    let mut p = pipeline(VIEWS);
    let mut offset = 0;
    for i in 0..10 {
        feed(&mut p, &mut offset, &view(T0 + 60 * i), None);
    }
    assert_eq!(p.progress(0), Some(T0 + 9 * 60));
    let (outcome, _) = feed(&mut p, &mut offset, &view(T0 + 3 * 86_400), None);
    assert_eq!(outcome, Outcome::Held);
    assert_eq!(p.progress(0), Some(T0 + 9 * 60), "held: time has not moved");
    // The next event is back in the partition's time: the stray is refused.
    let (outcome, settled) = feed(&mut p, &mut offset, &view(T0 + 10 * 60), None);
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
    assert_eq!(settled.len(), 1);
    assert_eq!(
        (settled[0].offset, settled[0].outcome),
        (11, Outcome::Rejected(RejectReason::TooFarAhead))
    );
    assert_eq!(p.progress(0), Some(T0 + 10 * 60));
}

#[test]
fn three_events_in_a_row_far_ahead_are_the_partitions_new_time_and_count() {
    let mut p = pipeline(VIEWS);
    let mut offset = 0;
    for i in 0..10 {
        feed(&mut p, &mut offset, &view(T0 + 60 * i), None);
    }
    let later = T0 + 5 * 3600;
    assert_eq!(
        feed(&mut p, &mut offset, &view(later), None).0,
        Outcome::Held
    );
    assert_eq!(
        feed(&mut p, &mut offset, &view(later + 1), None).0,
        Outcome::Held
    );
    let (third, settled) = feed(&mut p, &mut offset, &view(later + 2), None);
    assert!(
        matches!(third, Outcome::Accepted { due: true, .. }),
        "{third:?}"
    );
    let firsts: Vec<_> = settled.iter().map(|s| (s.offset, s.outcome)).collect();
    assert!(
        firsts
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Accepted { .. }))
            && firsts.len() == 2,
        "{firsts:?}"
    );
    assert_eq!(p.progress(0), Some(later + 2));
}

#[test]
fn live_an_event_near_the_wall_clock_is_accepted_at_once_after_hours_of_silence() {
    let mut p = pipeline(VIEWS);
    let mut offset = 0;
    for i in 0..10 {
        feed(&mut p, &mut offset, &view(T0 + 60 * i), Some(T0 + 60 * i));
    }
    // Silent for five hours; the first event back agrees with the clock.
    let now = T0 + 5 * 3600;
    let (outcome, _) = feed(&mut p, &mut offset, &view(now - 3), Some(now));
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
}

#[test]
fn live_an_event_days_ahead_of_the_wall_clock_is_refused_and_counted_by_reason() {
    let mut p = pipeline(VIEWS);
    let mut offset = 0;
    let now = T0 + 600;
    for i in 0..10 {
        feed(&mut p, &mut offset, &view(T0 + 60 * i), Some(now));
    }
    let (outcome, _) = feed(&mut p, &mut offset, &view(now + 3 * 86_400), Some(now));
    assert_eq!(outcome, Outcome::Rejected(RejectReason::AheadOfClock));
    assert_eq!(p.progress(0), Some(T0 + 9 * 60));
    let rendered = p.metrics().render();
    assert!(
        rendered
            .contains(r#"kpiwatch_events_rejected_total{reason="ahead_of_clock",topic="shop"} 1"#),
        "{rendered}"
    );
}

#[test]
fn a_partition_gone_idle_lets_the_events_it_held_count() {
    // A backlog far behind the wall clock: the clock cannot vouch for a
    // jump, and only two events follow it before the partition is idle.
    let mut p = pipeline(VIEWS);
    let mut offset = 0;
    let now = T0 + 30 * 86_400;
    for i in 0..10 {
        feed(&mut p, &mut offset, &view(T0 + 60 * i), Some(now));
    }
    assert_eq!(
        feed(&mut p, &mut offset, &view(T0 + 7200), Some(now)).0,
        Outcome::Held
    );
    assert_eq!(
        feed(&mut p, &mut offset, &view(T0 + 7201), Some(now)).0,
        Outcome::Held
    );
    // 30 s of wall time without a message (the default idle timeout).
    p.advance(Some(now + 30), &mut Vec::new());
    let settled: Vec<_> = p.settled().map(|s| (s.offset, s.outcome)).collect();
    assert_eq!(settled.len(), 2, "{settled:?}");
    assert!(settled
        .iter()
        .all(|(_, o)| matches!(o, Outcome::Accepted { .. })));
}

#[test]
fn at_the_end_of_a_replay_an_unconfirmed_jump_is_refused_but_a_tiny_file_counts() {
    let mut lines = views(T0, 50);
    lines.push(view(T0 + 86_400));
    let (report, _) = replay(VIEWS, &lines);
    assert_eq!(
        (report.summary.ahead, report.summary.late),
        (1, 0),
        "{report}"
    );

    let (report, _) = replay(VIEWS, &views(T0, 2));
    assert_eq!(
        (report.summary.events, report.summary.ahead),
        (2, 0),
        "{report}"
    );
}

#[test]
fn a_jump_of_eight_thousand_years_confirmed_by_three_events_judges_only_the_capped_tail() {
    // One hundred series, evicted after an hour of silence: each gets at
    // most 60 empty one-minute buckets judged, whatever the gap.
    let toml = r#"
[[topic]]
name = "shop"
time_format = "epoch_seconds"
[defaults]
bucket = "1m"
lateness = "0s"
evict_after = "1h"
[[kpi]]
name = "views"
where = { type = "page_view" }
aggregate = "count"
group_by = ["user"]
"#;
    let mut p = pipeline(toml);
    p.tap_buckets();
    let mut offset = 0;
    let mut out = Vec::new();
    for i in 0..300 {
        offset += 1;
        let e = format!(
            r#"{{"time":{},"type":"page_view","user":"u{}"}}"#,
            T0 + 2 * i,
            i % 100
        );
        p.record(0, 0, offset, e.as_bytes(), None);
        p.advance(None, &mut out);
    }
    let before = p.take_judged().len();
    let far = YEAR_9999 - 10;
    for k in 0..3 {
        offset += 1;
        p.record(0, 0, offset, view(far + k).as_bytes(), None);
        p.advance(None, &mut out);
    }
    let judged = p.take_judged();
    assert_eq!(p.progress(0), Some(far + 2));
    // The ten minutes of data, then per series the last hour of the gap:
    // not one bucket per minute of eight thousand years.
    assert!(
        judged.len() <= 100 * (10 + 60) + 10,
        "{} buckets judged",
        judged.len()
    );
    assert!(
        judged.len() >= 100 * 60,
        "{} buckets judged (before: {before})",
        judged.len()
    );
}

#[test]
fn a_stop_flag_interrupts_a_burst_between_chunks_but_never_a_close_of_one_chunk() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let toml = r#"
[[topic]]
name = "shop"
time_format = "epoch_seconds"
[defaults]
bucket = "1m"
lateness = "0s"
evict_after = "7d"
[[kpi]]
name = "views"
where = { type = "page_view" }
aggregate = "count"
group_by = ["user"]
"#;
    let run = |stop: bool, days: i64| {
        let mut p = pipeline(toml);
        p.tap_buckets();
        p.interrupt_on(Arc::new(AtomicBool::new(stop)));
        let mut offset = 0;
        for user in 0..10 {
            for k in 0..3 {
                offset += 1;
                let e = format!(
                    r#"{{"time":{},"type":"page_view","user":"u{user}"}}"#,
                    T0 + k
                );
                p.record(0, 0, offset, e.as_bytes(), Some(T0));
            }
        }
        // The topic idles 30 s after its last message; then the wall clock
        // moves it on.
        p.advance(Some(T0 + 90 + days * 86_400), &mut Vec::new());
        (p.interrupted(), p.take_judged().len())
    };
    // Ten series and a minute: one chunk, judged whole even when stopping.
    assert_eq!(run(true, 0), (false, 10));
    // Ten series and a week: the first minute and a week of empty
    // buckets each, 100,810 buckets in seven chunks.
    assert_eq!(run(false, 7), (false, 100_810));
    let (interrupted, judged) = run(true, 7);
    assert!(interrupted);
    assert_eq!(judged, 0, "the burst's judged buckets are not handed out");
}
