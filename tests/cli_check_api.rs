//! `kpiwatch check` on the HTTP API's settings: how writes will be taken
//! is a note on stdout (exit 0: the environment `run` gets may differ from
//! this one); a TLS file that cannot be used is an error at its
//! file:line:column (exit 1).

// Shared helpers; this file uses only `kpiwatch_with_env` and `Scratch`.
#[allow(dead_code)]
mod common;

use common::{kpiwatch_with_env, Scratch};

const TOKEN_ENV: &str = "KPIWATCH_TEST_CHECK_API_TOKEN";

/// `kpiwatch check` on `config` followed by a topic and a KPI (which every
/// service config needs), with `env` added.
fn check(config: &str, env: &[(&str, &str)]) -> common::Run {
    let dir = Scratch::new();
    let path = dir.file("kpiwatch.toml", &format!("{config}\n{}", common::WATCHED));
    kpiwatch_with_env(&["check", "--config", path.to_str().unwrap()], None, env)
}

fn notes(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("note: "))
        .collect()
}

#[test]
fn a_listener_other_hosts_reach_without_a_token_is_noted_as_write_api_off() {
    let run = check("[service]\nlisten = \"0.0.0.0:9898\"\n", &[]);
    let notes = notes(run.ok());
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with("the write API is off") && notes[0].contains("[[service.api_token]]"),
        "{notes:?}"
    );
}

#[test]
fn a_token_whose_variable_is_unset_is_noted_and_a_set_one_is_not() {
    let config = format!(
        "[service]\nlisten = \"0.0.0.0:9898\"\n[[service.api_token]]\nname = \"ops\"\nenv = \"{TOKEN_ENV}\"\n"
    );
    let unset = check(&config, &[]);
    let noted = notes(unset.ok());
    assert!(
        noted
            .iter()
            .any(|n| n.contains(&format!("{TOKEN_ENV} is not set here"))),
        "{noted:?}"
    );
    let set = check(&config, &[(TOKEN_ENV, "check-0123456789abcdef")]);
    assert_eq!(notes(set.ok()), Vec::<&str>::new());
}

#[test]
fn the_default_loopback_listener_is_noted_as_taking_writes_from_this_host() {
    let run = check("", &[]);
    let notes = notes(run.ok());
    assert!(
        notes
            .iter()
            .any(|n| n.contains("without a token from this host only")),
        "{notes:?}"
    );
}

#[test]
fn a_cert_file_that_cannot_be_read_is_an_error_at_its_line_and_column() {
    let run = check(
        "[service]\nlisten = \"0.0.0.0:9443\"\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n",
        &[],
    );
    let line = run.user_error();
    assert!(
        line.contains("kpiwatch.toml:3:13: cannot read cert_file /nonexistent/cert.pem"),
        "{line}"
    );
}
