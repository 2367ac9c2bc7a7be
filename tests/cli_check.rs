//! `kpiwatch check` refuses what `run` would refuse, at the line and column
//! to change, in one line that says what to write instead: a file with
//! nothing to watch, librdkafka options librdkafka rejects, secrets written
//! in clear, values of the wrong type; and a file it cannot read, with the
//! cause said once.

// Shared helpers; this file uses only some of them.
#[allow(dead_code)]
mod common;

use common::{kpiwatch, Scratch, WATCHED};

fn check(config: &str) -> common::Run {
    let dir = Scratch::new();
    let path = dir.file("kpiwatch.toml", config);
    kpiwatch(&["check", "--config", path.to_str().unwrap()], None)
}

#[test]
fn an_empty_config_is_an_error_that_says_what_to_add() {
    for empty in [
        "",
        "# only a comment\n",
        "[service]\nlisten = \"127.0.0.1:9898\"\n",
    ] {
        let run = check(empty);
        let line = run.user_error();
        assert!(
            line.contains("kpiwatch.toml:1:1: there is no [[topic]] and no [[kpi]]")
                && line.contains("add a [[topic]]"),
            "{line}"
        );
    }
}

#[test]
fn detector_settings_alone_are_checked_as_a_score_config() {
    let run = check("[defaults.detectors]\nseasonality = \"daily\"\n");
    assert!(
        run.ok()
            .contains("ok (detector settings for `kpiwatch score --config`"),
        "{run:#?}"
    );
    let run = check("[defaults.detectors]\nseasonality = \"hourly\"\n");
    assert!(run.user_error().contains("kpiwatch.toml:2:15:"), "{run:#?}");
}

#[test]
fn a_topic_without_kpis_is_an_error_at_its_name() {
    let run = check(
        "[[topic]]\nname = \"shop.events\"\n[[topic]]\nname = \"auth.events\"\n[[kpi]]\nname = \"checkouts\"\ntopic = \"shop.events\"\naggregate = \"count\"\n",
    );
    let line = run.user_error();
    assert!(
        line.contains("kpiwatch.toml:4:8: topic \"auth.events\" has no KPI")
            && line.contains("add a [[kpi]] with topic = \"auth.events\""),
        "{line}"
    );
}

#[test]
fn kafka_options_librdkafka_refuses_are_reported_at_the_option() {
    let run = check(&format!(
        "[kafka]\nbrokers = \"127.0.0.1:9\"\n[kafka.options]\n\"session.timeout.ms\" = 6000\n\"ssl.ca.locaton\" = \"ca.pem\"\n{WATCHED}"
    ));
    let line = run.user_error();
    assert!(
        line.contains("kpiwatch.toml:5:1: kafka.options: librdkafka refuses")
            && line.contains("No such configuration property: \"ssl.ca.locaton\""),
        "{line}"
    );
}

#[test]
fn kafka_options_librdkafka_accepts_pass_check() {
    let run = check(&format!(
        "[kafka]\nbrokers = \"127.0.0.1:9\"\n[kafka.options]\n\"session.timeout.ms\" = 6000\n\"sasl.password_env\" = \"KAFKA_PASSWORD\"\n{WATCHED}"
    ));
    assert!(run.ok().contains("ok (1 topics, 1 KPIs"), "{run:#?}");
}

#[test]
fn a_kafka_password_in_clear_is_refused_without_showing_it() {
    let run = check(&format!(
        "[kafka.options]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.password\" = \"hunter2\"\n{WATCHED}"
    ));
    let line = run.user_error();
    assert!(
        line.contains("kpiwatch.toml:3:1: kafka.options: sasl.password is a secret")
            && line.contains("KPIWATCH_KAFKA_PASSWORD"),
        "{line}"
    );
    assert!(!run.stderr.contains("hunter2") && !run.stdout.contains("hunter2"));
}

#[test]
fn a_value_of_the_wrong_type_says_what_to_write() {
    let run = check(&format!("{WATCHED}bucket = 5\n"));
    let line = run.user_error();
    assert!(
        line.contains(
            "kpiwatch.toml:9:10: bucket = 5 must be a string in quotes. Bucket width: \"1m\""
        ),
        "{line}"
    );
}

#[test]
fn a_file_that_cannot_be_read_gives_its_cause_once() {
    let dir = Scratch::new();
    let path = dir.file("x", "");
    let folder = path.parent().unwrap();
    let run = kpiwatch(&["check", "--config", folder.to_str().unwrap()], None);
    let line = run.user_error();
    assert!(line.contains("cannot read the config file"), "{line}");
    assert_eq!(line.matches("os error").count(), 1, "{line}");
}
