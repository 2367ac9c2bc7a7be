//! A real browser for tests of the HTML report: [`check_report`] runs
//! `tests/browser/check_report.mjs` (playwright-core driving Debian's
//! headless Chromium) on a page and returns what it found, as JSON.
//!
//! What it needs comes from `scripts/ensure-browser` (which
//! `scripts/test` runs): playwright-core in `KPIWATCH_TEST_BROWSER` (else
//! `target/browser-test`), Chromium at `KPIWATCH_TEST_CHROMIUM` (else
//! `/usr/bin/chromium`), `node` on PATH. Missing any, the test fails
//! saying which command installs it. The run is bounded ([`WAIT`]) and
//! killed after it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Opens `html` from `file://` in headless Chromium; with `query`, types
/// it into the search box and presses Enter; saves a full-page
/// screenshot to `screenshot`. Returns the script's JSON (see
/// `tests/browser/check_report.mjs`).
pub fn check_report(html: &Path, screenshot: &Path, query: Option<&str>) -> serde_json::Value {
    let dir =
        env_path("KPIWATCH_TEST_BROWSER").unwrap_or_else(|| root().join("target/browser-test"));
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .exists(),
        "playwright-core is not installed in {}: run scripts/ensure-browser (scripts/test does)",
        dir.display()
    );
    let chromium =
        env_path("KPIWATCH_TEST_CHROMIUM").unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "no Chromium at {}: as root, apt-get install chromium (scripts/ensure-browser does), or set KPIWATCH_TEST_CHROMIUM",
        chromium.display()
    );
    let out_file = tempfile::NamedTempFile::new().expect("a temporary file");
    let err_file = tempfile::NamedTempFile::new().expect("a temporary file");
    let mut child = Command::new("node")
        .arg(root().join("tests/browser/check_report.mjs"))
        .arg(&dir)
        .arg(&chromium)
        .arg(html)
        .arg(screenshot)
        .args(query)
        .stdin(Stdio::null())
        .stdout(out_file.reopen().expect("reopened"))
        .stderr(err_file.reopen().expect("reopened"))
        .spawn()
        .expect("node starts (Node.js 20 or later on PATH; see scripts/ensure-browser)");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the browser script is waited for") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser script took over {WAIT:?}");
        }
        // A child process cannot be awaited with a timeout in std; a short
        // poll bounds the wait.
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(out_file.path()).unwrap_or_default();
    let stderr = std::fs::read_to_string(err_file.path()).unwrap_or_default();
    assert!(
        status.success(),
        "the browser script failed ({status}):\n{stderr}\n{stdout}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}
