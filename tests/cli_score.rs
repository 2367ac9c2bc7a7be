//! The `kpiwatch score` and `kpiwatch check` command lines, as DESIGN.md
//! states them, run as a user would: the built binary, real files, stdin.
//!
//! - `score --input FILE.csv` reads `timestamp,value`, prints
//!   `timestamp,value,anomaly_score` with one row per input row and scores
//!   in `[0, 1]`, causally (a row's score uses only earlier rows).
//! - Exit codes: 0 success, 1 user error (bad input, bad config) reported as
//!   one line that names what to fix, 2 usage.
//! - `check --config FILE` validates a config and points at file:line:column.
//!
//! The fixture `tests/fixtures/checkouts_hourly.csv` is four weeks of hourly
//! checkout counts from Monday 2014-04-07 with a daily shape and quieter
//! weekends, three missing buckets (2014-04-17 03:00–05:00), and a collapse
//! to 15 % of normal on 2014-05-01 14:00–19:00.

mod common;

use common::{fixture, input_rows, kpiwatch, score, scored_rows, series_csv, Scratch};

const CHECKOUTS: &str = "checkouts_hourly.csv";

fn checkouts_csv() -> String {
    std::fs::read_to_string(fixture(CHECKOUTS)).expect("the fixture is readable")
}

/// Rows the detector set spends warming up (`detectors::set::WARM_UP`).
const WARM_UP: usize = 12;

// --- output ---------------------------------------------------------------

#[test]
fn score_prints_the_header_and_echoes_every_input_row() {
    let run = score(&fixture(CHECKOUTS), &[]);
    let rows = scored_rows(run.ok());
    let input = input_rows(&checkouts_csv());
    assert_eq!(rows.len(), input.len());
    for (row, (timestamp, value)) in rows.iter().zip(&input) {
        assert_eq!((&row.timestamp, &row.value), (timestamp, value));
    }
}

#[test]
fn every_score_is_in_unit_range_and_the_warm_up_rows_score_zero() {
    let run = score(&fixture(CHECKOUTS), &[]);
    let rows = scored_rows(run.ok());
    for row in &rows {
        assert!((0.0..=1.0).contains(&row.score), "{row:?}");
    }
    for row in &rows[..WARM_UP] {
        assert_eq!(row.score, 0.0, "warm-up row {row:?}");
    }
}

#[test]
fn the_checkout_collapse_scores_higher_than_any_hour_of_the_normal_week_before() {
    let rows = scored_rows(score(&fixture(CHECKOUTS), &[]).ok());
    let max = |from: &str, to: &str| {
        rows.iter()
            .filter(|r| r.timestamp.as_str() >= from && r.timestamp.as_str() < to)
            .map(|r| r.score)
            .fold(0.0, f64::max)
    };
    let normal = max("2014-04-24 00:00:00", "2014-05-01 00:00:00");
    let incident = max("2014-05-01 14:00:00", "2014-05-01 20:00:00");
    assert!(
        incident > normal && incident > 0.5,
        "incident {incident}, normal week {normal}"
    );
}

#[test]
fn input_dash_reads_stdin_and_prints_what_the_file_gives() {
    let from_stdin = kpiwatch(&["score", "--input", "-"], Some(&checkouts_csv()));
    let from_file = score(&fixture(CHECKOUTS), &[]);
    assert_eq!(from_stdin.ok(), from_file.ok());
}

#[test]
fn a_header_only_file_prints_only_the_header() {
    let dir = Scratch::new();
    let run = score(&dir.file("empty.csv", "timestamp,value\n"), &[]);
    assert_eq!(run.ok(), "timestamp,value,anomaly_score\n");
}

// --- causality --------------------------------------------------------------

#[test]
fn scoring_the_first_n_rows_gives_exactly_the_first_n_output_rows() {
    let full_input = checkouts_csv();
    let full = score(&fixture(CHECKOUTS), &[]).ok().to_owned();
    let full: Vec<&str> = full.lines().collect();
    let dir = Scratch::new();
    // Inside the warm-up, at its edge, across the gap (line 245) and the
    // incident (from line 591).
    for n in [1, 2, WARM_UP - 1, WARM_UP, WARM_UP + 1, 100, 250, 600] {
        let prefix: String = full_input
            .lines()
            .take(n + 1)
            .map(|l| format!("{l}\n"))
            .collect();
        let cut = score(&dir.file(&format!("first_{n}.csv"), &prefix), &[]);
        let cut: Vec<&str> = cut.ok().lines().collect();
        assert_eq!(cut.len(), n + 1, "header and {n} rows");
        assert_eq!(cut[..], full[..=n], "first {n} rows");
    }
}

// --- input errors: exit 1, one line naming the line to fix ------------------

#[test]
fn a_missing_value_column_exits_1_naming_line_1_and_the_column() {
    let dir = Scratch::new();
    let input = dir.file("no_value.csv", "timestamp,count\n2014-04-01 00:00:00,1\n");
    let err = score(&input, &[]).user_error().to_owned();
    assert!(err.contains("line 1:"), "{err}");
    assert!(err.contains("`value`"), "{err}");
    assert!(err.contains("no_value.csv"), "the file is named: {err}");
}

#[test]
fn a_missing_timestamp_column_exits_1_naming_the_column() {
    let dir = Scratch::new();
    let input = dir.file("no_time.csv", "time,value\n2014-04-01 00:00:00,1\n");
    let err = score(&input, &[]).user_error().to_owned();
    assert!(
        err.contains("line 1:") && err.contains("`timestamp`"),
        "{err}"
    );
}

#[test]
fn an_unparsable_number_exits_1_naming_its_line() {
    let dir = Scratch::new();
    // Once among the rows read ahead to infer the bucket width, once after.
    for bad_row in [3, 40] {
        let csv = series_csv(60, 300, |i| {
            if i == bad_row {
                "twelve".into()
            } else {
                (10 + i % 7).to_string()
            }
        });
        let err = score(&dir.file("bad_number.csv", &csv), &[])
            .user_error()
            .to_owned();
        let line = bad_row + 2; // 1-based, after the header
        assert!(err.contains(&format!("line {line}:")), "{err}");
        assert!(err.contains("\"twelve\""), "{err}");
    }
}

#[test]
fn a_non_finite_value_exits_1_naming_its_line() {
    let dir = Scratch::new();
    for word in ["NaN", "inf", "-inf", "1e999"] {
        let csv = series_csv(20, 60, |i| if i == 15 { word.into() } else { "5".into() });
        let err = score(&dir.file("non_finite.csv", &csv), &[])
            .user_error()
            .to_owned();
        assert!(err.contains("line 17:"), "{word}: {err}");
    }
}

#[test]
fn an_unreadable_timestamp_exits_1_naming_its_line_and_the_formats() {
    let dir = Scratch::new();
    let csv = "timestamp,value\n2014-04-01 00:00:00,1\n01/04/2014 00:05,2\n";
    let err = score(&dir.file("bad_time.csv", csv), &[])
        .user_error()
        .to_owned();
    assert!(err.contains("line 3:"), "{err}");
    assert!(err.contains("YYYY-MM-DD HH:MM:SS"), "{err}");
}

#[test]
fn unsorted_timestamps_exit_1_naming_the_line() {
    let dir = Scratch::new();
    // Naive timestamps may repeat up to an hour (a daylight-saving change);
    // two hours back is a broken file.
    let mut csv = series_csv(30, 300, |_| "5".into());
    csv.push_str("2014-04-01 00:10:00,5\n");
    let err = score(&dir.file("unsorted.csv", &csv), &[])
        .user_error()
        .to_owned();
    assert!(err.contains("line 32:"), "{err}");
    assert!(err.contains("sort the file"), "{err}");
}

#[test]
fn zoned_timestamps_stepping_back_at_all_exit_1_naming_the_line() {
    let dir = Scratch::new();
    let csv = "timestamp,value\n\
               2014-04-01T00:00:00Z,1\n\
               2014-04-01T00:05:00Z,1\n\
               2014-04-01T00:04:00Z,1\n";
    let err = score(&dir.file("zoned.csv", csv), &[])
        .user_error()
        .to_owned();
    assert!(err.contains("line 4:"), "{err}");
}

#[test]
fn an_empty_file_exits_1_asking_for_the_header() {
    let dir = Scratch::new();
    let err = score(&dir.file("nothing.csv", ""), &[])
        .user_error()
        .to_owned();
    assert!(err.contains("timestamp,value"), "{err}");
}

#[test]
fn a_missing_input_file_exits_1_naming_it() {
    let dir = Scratch::new();
    let missing = dir.file("here.csv", "").with_file_name("not_here.csv");
    let err = score(&missing, &[]).user_error().to_owned();
    assert!(err.contains("not_here.csv"), "{err}");
}

// --- usage errors: exit 2 ---------------------------------------------------

#[test]
fn score_without_input_is_a_usage_error_exit_2() {
    let run = kpiwatch(&["score"], None);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("--input"), "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
}

#[test]
fn check_without_config_is_a_usage_error_exit_2() {
    let run = kpiwatch(&["check"], None);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("--config"), "{run:#?}");
}

#[test]
fn an_unknown_subcommand_or_flag_is_a_usage_error_exit_2() {
    for args in [&["frobnicate"][..], &["score", "--input", "-", "--fast"]] {
        let run = kpiwatch(args, Some(""));
        assert_eq!(run.code, Some(2), "{args:?}: {run:#?}");
    }
}

// --- score --config ---------------------------------------------------------

#[test]
fn score_with_a_valid_detectors_table_scores_every_row() {
    let dir = Scratch::new();
    let config = dir.file(
        "detectors.toml",
        "[defaults.detectors]\n\
         seasonality = \"daily\"\n\
         level_shift = false\n\
         likelihood = false\n\
         band_coverage = 0.99\n",
    );
    let run = score(
        &fixture(CHECKOUTS),
        &["--config", config.to_str().expect("UTF-8 path")],
    );
    let rows = scored_rows(run.ok());
    assert_eq!(rows.len(), input_rows(&checkouts_csv()).len());
    assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.score)));
}

#[test]
fn a_configured_minimum_scores_every_row_below_it_one_from_the_first_row() {
    // A rule needs no history: it applies during the detectors' warm-up too.
    let dir = Scratch::new();
    let config = dir.file("min.toml", "[defaults.detectors]\nmin = 1000.0\n");
    let input = dir.file("steady.csv", &series_csv(40, 300, |_| "100".into()));
    let rows = scored_rows(score(&input, &["--config", config.to_str().unwrap()]).ok());
    assert_eq!(rows.len(), 40);
    assert!(rows.iter().all(|r| r.score == 1.0), "{rows:?}");
}

#[test]
fn score_config_with_an_unknown_key_exits_1_printing_file_line_column() {
    let dir = Scratch::new();
    let config = dir.file(
        "typo.toml",
        "[defaults.detectors]\nseasonality = \"daily\"\nlevelshift = true\n",
    );
    let run = score(&fixture(CHECKOUTS), &["--config", config.to_str().unwrap()]);
    let err = run.user_error();
    assert!(err.contains(&format!("{}:3:1:", config.display())), "{err}");
    assert!(err.contains("levelshift"), "{err}");
}

// --- check --config ---------------------------------------------------------

#[test]
fn check_accepts_a_good_config_exit_0() {
    let dir = Scratch::new();
    let config = dir.file(
        "good.toml",
        "[defaults.detectors]\nmin = 10.0\nmax = 1e6\nweek_over_week_pct = 30\n",
    );
    let run = kpiwatch(&["check", "--config", config.to_str().unwrap()], None);
    let out = run.ok();
    assert!(
        out.starts_with(&format!("{}: ok (", config.display())),
        "{out}"
    );
}

#[test]
fn check_accepts_the_shipped_example_config() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/score.toml");
    let run = kpiwatch(&["check", "--config", config.to_str().unwrap()], None);
    run.ok();
}

#[test]
fn check_refuses_an_unknown_key_exit_1_with_file_line_column() {
    let dir = Scratch::new();
    let config = dir.file(
        "typo.toml",
        "[defaults.detectors]\n\nseasonalty = \"daily\"\n",
    );
    let run = kpiwatch(&["check", "--config", config.to_str().unwrap()], None);
    let err = run.user_error();
    assert!(err.contains(&format!("{}:3:1:", config.display())), "{err}");
    assert!(err.contains("seasonalty"), "{err}");
}

#[test]
fn check_refuses_a_max_ahead_out_of_range_at_its_line_naming_the_range() {
    let dir = Scratch::new();
    let config = dir.file(
        "ahead.toml",
        "[[topic]]\nname = \"shop\"\nmax_ahead = \"30d\"\n",
    );
    let run = kpiwatch(&["check", "--config", config.to_str().unwrap()], None);
    let err = run.user_error();
    assert!(
        err.contains(&format!("{}:3:13:", config.display())),
        "{err}"
    );
    assert!(
        err.contains("max_ahead") && err.contains("1s to 7days"),
        "{err}"
    );
}

#[test]
fn check_refuses_an_out_of_range_value_at_its_column_naming_the_range() {
    let dir = Scratch::new();
    let config = dir.file(
        "range.toml",
        "[defaults.detectors]\nseasonality = \"auto\"\nband_coverage = 1.5\n",
    );
    let run = kpiwatch(&["check", "--config", config.to_str().unwrap()], None);
    let err = run.user_error();
    assert!(
        err.contains(&format!("{}:3:17:", config.display())),
        "{err}"
    );
    assert!(err.contains("0.5") && err.contains("0.999999"), "{err}");
}

#[test]
fn check_refuses_max_below_min_at_the_max() {
    let dir = Scratch::new();
    let config = dir.file("band.toml", "[defaults.detectors]\nmin = 10.0\nmax = 5.0\n");
    let run = kpiwatch(&["check", "--config", config.to_str().unwrap()], None);
    let err = run.user_error();
    assert!(err.contains(&format!("{}:3:7:", config.display())), "{err}");
}

#[test]
fn check_refuses_broken_toml_with_file_line_column() {
    let dir = Scratch::new();
    let config = dir.file("broken.toml", "[defaults.detectors]\nmin = \n");
    let run = kpiwatch(&["check", "--config", config.to_str().unwrap()], None);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr
            .starts_with(&format!("kpiwatch: {}:2:7:", config.display())),
        "{run:#?}"
    );
}

#[test]
fn a_toml_syntax_error_is_reported_on_one_line() {
    let dir = Scratch::new();
    let config = dir.file("broken.toml", "[defaults.detectors]\nmin = \n");
    let run = kpiwatch(&["check", "--config", config.to_str().unwrap()], None);
    let err = run.user_error();
    assert!(err.contains(&format!("{}:2:7:", config.display())), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn check_of_a_missing_file_exits_1_naming_it() {
    let dir = Scratch::new();
    let missing = dir.file("here.toml", "").with_file_name("not_here.toml");
    let run = kpiwatch(&["check", "--config", missing.to_str().unwrap()], None);
    let err = run.user_error();
    assert!(err.contains("not_here.toml"), "{err}");
}
