//! `kpiwatch warm` and `replay --save-state` as an analyst runs them: the
//! state and `history.json` written, the history's end said, an existing
//! snapshot never replaced, and `check` pointing at a wrong
//! `kafka.start_from`.

// Shared helpers; this file uses only some of them.
#[allow(dead_code)]
mod common;

use common::{kpiwatch, Scratch, WATCHED};

/// 2024-01-01 00:00:00 UTC.
const T0: i64 = 1_704_067_200;

/// A checkout every 10 s for `minutes`, from T0, as JSON lines.
fn checkouts(minutes: i64) -> String {
    (0..minutes * 6)
        .map(|i| {
            format!(
                "{{\"time\":\"{}\",\"type\":\"checkout\"}}\n",
                kpiwatch::timefmt::rfc3339(T0 + 10 * i)
            )
        })
        .collect()
}

#[test]
fn warm_writes_the_state_and_says_where_the_history_ends() {
    let dir = Scratch::new();
    let config = dir.file("kpiwatch.toml", WATCHED);
    // 61 minutes of 5-minute buckets with the default lateness (1m): the
    // bucket from 00:55 closes only at 01:01, and the one from 01:00 is
    // partial; both are left to `run`.
    let events = dir.file("history.jsonl", &checkouts(61));
    let state = events.with_file_name("state");
    let args = [
        "warm",
        "--config",
        config.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let run = kpiwatch(&args, None);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stderr.contains("replayed 366 events")
            && run
                .stderr
                .contains("shop.events: history ends at 2024-01-01T00:55:00Z"),
        "{run:#?}"
    );
    assert!(state.join("snapshot.postcard").is_file());
    let history = std::fs::read_to_string(state.join("history.json")).unwrap();
    assert!(
        history.contains("\"end_utc\": \"2024-01-01T00:55:00Z\""),
        "{history}"
    );

    // Again into the same directory: refused, the snapshot untouched.
    let before = std::fs::read(state.join("snapshot.postcard")).unwrap();
    let line = kpiwatch(&args, None).user_error().to_string();
    assert!(line.contains("already holds a snapshot"), "{line}");
    assert_eq!(
        std::fs::read(state.join("snapshot.postcard")).unwrap(),
        before
    );
}

#[test]
fn replay_with_save_state_prints_the_alerts_and_writes_the_same_state_as_warm() {
    let dir = Scratch::new();
    let config = dir.file("kpiwatch.toml", WATCHED);
    let events = dir.file("history.jsonl", &checkouts(61));
    let (warmed, replayed) = (dir.file("w", ""), dir.file("r", ""));
    std::fs::remove_file(&warmed).unwrap();
    std::fs::remove_file(&replayed).unwrap();
    let common = [
        "--config",
        config.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
    ];
    let mut warm = vec!["warm"];
    warm.extend(common);
    warm.extend(["--state-dir", warmed.to_str().unwrap()]);
    kpiwatch(&warm, None).ok();
    let mut replay = vec!["replay"];
    replay.extend(common);
    replay.extend(["--save-state", replayed.to_str().unwrap()]);
    let run = kpiwatch(&replay, None);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stderr.contains("history ends at 2024-01-01T00:55:00Z"),
        "{run:#?}"
    );
    assert_eq!(
        std::fs::read(warmed.join("snapshot.postcard")).unwrap(),
        std::fs::read(replayed.join("snapshot.postcard")).unwrap(),
        "the snapshot is taken before the replay's end-of-file flush"
    );
}

#[test]
fn a_wrong_start_from_is_pointed_at_with_the_values_it_takes() {
    let dir = Scratch::new();
    let config = dir.file(
        "kpiwatch.toml",
        &format!("[kafka]\nstart_from = \"oldest\"\n{WATCHED}"),
    );
    let run = kpiwatch(&["check", "--config", config.to_str().unwrap()], None);
    let line = run.user_error();
    assert!(
        line.contains("kpiwatch.toml:2:14: kafka.start_from: \"oldest\"")
            && line.contains("\"committed\"")
            && line.contains("\"earliest\"")
            && line.contains("\"latest\""),
        "{line}"
    );
}
