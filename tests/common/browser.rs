// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

//! A real browser for tests: headless Chromium driven over the DevTools
//! protocol by `tests/common/browser.py` (on a pipe: no port, no extra
//! package).
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
//! Every wait in the driver is bounded (20 s); the browser is closed on
//! drop.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

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
