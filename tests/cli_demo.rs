//! `kpiwatch demo --out DIR` as a person runs it, pointed at a folder that
//! already holds their own files: the demo writes into a new run folder
//! and leaves everything else where it was.

// Shared helpers; this file uses only `kpiwatch`.
#[allow(dead_code)]
mod common;

use common::kpiwatch;

#[test]
fn demo_writes_into_a_new_run_folder_and_deletes_nothing_it_did_not_create() {
    let out = tempfile::tempdir().unwrap();
    std::fs::create_dir(out.path().join("mail")).unwrap();
    let planted = out.path().join("mail/keep.eml");
    std::fs::write(&planted, "someone's own mail").unwrap();
    let log = out.path().join("webhook.jsonl");
    std::fs::write(&log, "someone's own log\n").unwrap();

    // A short history keeps the run to a few seconds; what is checked here
    // is where it writes, not what it detects.
    let args = ["demo", "--json", "--days", "0.1", "--rate", "20", "--out"];
    let mut argv: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    argv.push(out.path().as_os_str());
    let run = kpiwatch(&argv, None);
    let summary: serde_json::Value = serde_json::from_str(run.ok()).expect("a JSON summary");

    assert_eq!(
        std::fs::read_to_string(&planted).unwrap(),
        "someone's own mail"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "someone's own log\n"
    );
    let mail_dir = std::path::PathBuf::from(summary["mail_dir"].as_str().unwrap());
    let run_dir = mail_dir.parent().unwrap();
    assert_eq!(run_dir.parent().unwrap(), out.path());
    assert!(
        run_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("run-"),
        "{}",
        run_dir.display()
    );
    assert!(mail_dir.is_dir() && run_dir.join("webhook.jsonl").is_file());
    assert!(
        !run_dir.join("state").exists(),
        "the run's own state folder is removed at the end"
    );
}
