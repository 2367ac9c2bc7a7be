//! Helpers shared by the integration tests that run the `kpiwatch` binary:
//! running it ([`kpiwatch`], [`kpiwatch_with_env`]), writing input files
//! into a scratch directory ([`Scratch`]), making series ([`series_csv`])
//! and reading its CSV output ([`scored_rows`]).

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// Exit code; `None` if it was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts a user error (exit 1) reported as exactly one line of stderr,
    /// and returns that line.
    pub fn user_error(&self) -> &str {
        assert_eq!(self.code, Some(1), "expected exit 1: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 1, "expected a one-line error: {self:#?}");
        lines[0]
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected exit 0: {self:#?}");
        &self.stdout
    }
}

/// Runs `kpiwatch ARGS`, feeding `stdin` (or nothing: stdin is closed).
pub fn kpiwatch<S: AsRef<OsStr>>(args: &[S], stdin: Option<&str>) -> Run {
    kpiwatch_with_env(args, stdin, &[])
}

/// [`kpiwatch`] with `env` added to the child's environment (the test
/// process's own environment is left alone: setting it races other tests).
pub fn kpiwatch_with_env<S: AsRef<OsStr>>(
    args: &[S],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpiwatch"))
        .args(args)
        .envs(env.iter().copied())
        // Keep stderr to what the CLI itself prints, whatever the caller's
        // environment asks of tracing.
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the kpiwatch binary starts");
    let input = child.stdin.take().expect("stdin is piped");
    // Written from a thread: a large input must not deadlock against a
    // child that fills its stdout pipe before reading all of stdin.
    let text = stdin.unwrap_or_default().to_owned();
    let writer = std::thread::spawn(move || {
        let mut input = input;
        // The child may exit before reading everything (an error on line
        // 2); a broken pipe is then expected, not a test failure.
        let _ = input.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().expect("the kpiwatch binary runs");
    writer.join().expect("stdin writer finishes");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// `kpiwatch score --input PATH` plus `extra` arguments.
pub fn score(input: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        OsStr::new("score"),
        OsStr::new("--input"),
        input.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    kpiwatch(&args, None)
}

/// A temporary directory for input files, removed when dropped.
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new() -> Self {
        Self(tempfile::tempdir().expect("a temporary directory"))
    }

    /// Writes `contents` to `name` in the directory and returns its path.
    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, contents).expect("the scratch file is written");
        path
    }
}

/// A topic and a KPI reading it: what a config file needs besides the
/// sections a test is about (`check`, `run` and `replay` refuse a file with
/// nothing to watch).
#[allow(dead_code)] // not every test crate writes configs
pub const WATCHED: &str = r#"
[[topic]]
name = "shop.events"

[[kpi]]
name = "checkouts"
where = { type = "checkout" }
aggregate = "count"
"#;

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// 2014-04-01 00:00:00 UTC, in the era of NAB's files.
pub const START: i64 = 1_396_310_400;

/// `t` (seconds since the epoch) as NAB writes it: `YYYY-MM-DD HH:MM:SS`.
pub fn naive(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .expect("timestamp in range")
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A `timestamp,value` CSV of `n` rows, `width` seconds apart from
/// [`START`], with `value(i)` on row `i` (0-based, not counting the header).
pub fn series_csv(n: usize, width: i64, value: impl Fn(usize) -> String) -> String {
    let mut csv = String::from("timestamp,value\n");
    for i in 0..n {
        let t = START + width * i64::try_from(i).expect("small row count");
        csv.push_str(&format!("{},{}\n", naive(t), value(i)));
    }
    csv
}

/// One output row of `kpiwatch score`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub timestamp: String,
    pub value: String,
    pub score: f64,
}

/// The data rows of `kpiwatch score`'s output, after checking its header.
pub fn scored_rows(stdout: &str) -> Vec<Scored> {
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp,value,anomaly_score"),
        "header of {stdout:?}"
    );
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 3, "three fields in {line:?}");
            Scored {
                timestamp: fields[0].to_owned(),
                value: fields[1].to_owned(),
                score: fields[2]
                    .parse()
                    .unwrap_or_else(|e| panic!("score in {line:?}: {e}")),
            }
        })
        .collect()
}

/// The data rows of an input CSV as `(timestamp, value)` text.
pub fn input_rows(csv: &str) -> Vec<(String, String)> {
    csv.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (t, v) = l.split_once(',').expect("two fields");
            (t.to_owned(), v.to_owned())
        })
        .collect()
}
