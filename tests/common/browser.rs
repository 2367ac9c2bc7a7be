// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

//! A real browser for tests: headless Chromium driven over the DevTools protocol by
//! `tests/common/browser.py` (on a pipe: no port, no extra package), two
//! ways:
//!
//! - [`Page`]: pages served by the service (the feedback page and its
//!   button), opened and clicked.
//! - [`check_report`]: the backtest's HTML report from `file://`, checked
//!   (console errors, requests, charts drawn, search) and screenshot.
//!
//! ```ignore
//! #[path = "common/browser.rs"]
//! mod browser;
//!
//! let (mut page, text) = browser::Page::open("http://127.0.0.1:8080/x");
//! let next = page.click("button"); // the text of the page it leads to
//! ```
//!
//! Chromium is `KPIWATCH_TEST_CHROMIUM`, else the first of `chromium`,
//! `chromium-browser`, `google-chrome` on the PATH (Debian: `apt-get
//! install chromium`); Python is `KPIWATCH_TEST_PYTHON` or `python3`.
//! Every wait in the driver is bounded (30 s); the browser is closed on
//! drop.
//!
//! `scripts/ensure-browser` (which `scripts/test` runs) installs Debian's
//! chromium as root, or says the one command to run. [`check_report`] is
//! bounded ([`WAIT`]) and killed after it; screenshots go to
//! [`ci_output`].

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The Chromium to run.
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("KPIWATCH_TEST_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("no Chromium for the browser tests: install it (apt-get install chromium) or set KPIWATCH_TEST_CHROMIUM");
}

/// One tab of a headless Chromium.
pub struct Page {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Page {
    /// Opens `url` in a new headless Chromium; returns the page and its
    /// text once loaded.
    pub fn open(url: &str) -> (Self, String) {
        let python = std::env::var("KPIWATCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/browser.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(chromium())
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the browser driver starts");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let stdin = child.stdin.take();
        let mut page = Self {
            child,
            stdin,
            stdout,
        };
        let text = page.text();
        (page, text)
    }

    fn text(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the driver answers");
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the browser driver failed ({e}): {line:?}"));
        v["text"].as_str().unwrap_or_default().to_string()
    }

    /// Clicks the first element matching `selector` and returns the text
    /// of the page that loads.
    pub fn click(&mut self, selector: &str) -> String {
        let stdin = self.stdin.as_mut().expect("open");
        writeln!(stdin, "click {selector}").expect("the driver reads");
        stdin.flush().expect("the driver reads");
        self.text()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // End of input: the driver closes the browser.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// How long the browser may take for one page.
pub const WAIT: Duration = Duration::from_secs(120);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the test writes screenshots: `target/ci-output/`, which
/// `.ci/run` names at the end. Created if missing.
pub fn ci_output() -> PathBuf {
    let dir = root().join("target/ci-output");
    std::fs::create_dir_all(&dir).expect("target/ci-output is created");
    dir
}

/// Opens `html` from `file://` in headless Chromium; with `query`, types
/// it into the search box and presses Enter; saves a full-page
/// screenshot to `screenshot`. Returns what `tests/common/browser.py
/// --report` found, as JSON (see its docs).
pub fn check_report(html: &Path, screenshot: &Path, query: Option<&str>) -> serde_json::Value {
    let python = std::env::var("KPIWATCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out_file = tempfile::NamedTempFile::new().expect("a temporary file");
    let err_file = tempfile::NamedTempFile::new().expect("a temporary file");
    let mut child = Command::new(python)
        .arg(root().join("tests/common/browser.py"))
        .arg(chromium())
        .arg("--report")
        .arg(html)
        .arg(screenshot)
        .args(query)
        .stdin(Stdio::null())
        .stdout(out_file.reopen().expect("reopened"))
        .stderr(err_file.reopen().expect("reopened"))
        .spawn()
        .expect("the browser driver starts");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the browser driver is waited for") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser driver took over {WAIT:?}");
        }
        // A child process cannot be awaited with a timeout in std; a short
        // poll bounds the wait.
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(out_file.path()).unwrap_or_default();
    let stderr = std::fs::read_to_string(err_file.path()).unwrap_or_default();
    assert!(
        status.success(),
        "the browser driver failed ({status}):\n{stderr}\n{stdout}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}
