// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

//! A real SMTP server for tests: aiosmtpd (Python) on 127.0.0.1, storing
//! every message it accepts in a Maildir the test reads.
//!
//! ```ignore
//! #[path = "common/smtp.rs"]
//! mod smtp;
//!
//! let mut server = smtp::SmtpServer::start();
//! // ... point an SMTP client at 127.0.0.1:server.port() (no TLS; or
//! // start_with_starttls / start_with_smtps with a certificate) ...
//! let mails = server.wait_for_messages(1); // raw RFC 5322 bytes
//! server.stop(); // connections now refused
//! server.restart(); // same port, same Maildir
//! ```
//!
//! The Python comes from `KPIWATCH_TEST_PYTHON` (set by `scripts/test`,
//! which runs `scripts/ensure-test-deps` to install aiosmtpd), else the
//! first of the virtual environment that script makes (`target/test-venv`),
//! `python3`, `/usr/bin/python3` that can import aiosmtpd. Every wait is
//! bounded ([`WAIT`]); the process is killed on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long starting the server or waiting for a message may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// Pause between two polls of a condition.
const POLL: Duration = Duration::from_millis(20);

/// An aiosmtpd process on 127.0.0.1 with its Maildir.
pub struct SmtpServer {
    port: u16,
    /// Holds the Maildir (`mail/`) and the server's log (`aiosmtpd.log`).
    dir: tempfile::TempDir,
    /// Extra `python -m aiosmtpd` arguments, kept for [`SmtpServer::restart`].
    args: Vec<String>,
    /// `None` while stopped.
    child: Option<Child>,
}

impl SmtpServer {
    /// Starts a server on a free port and waits until it accepts
    /// connections.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Like [`SmtpServer::start`], but the server refuses (SMTP 552, a
    /// permanent error) any message larger than `bytes`.
    pub fn start_with_max_size(bytes: usize) -> Self {
        Self::start_with_args(&["--size".to_string(), bytes.to_string()])
    }

    /// Like [`SmtpServer::start`], but the server offers STARTTLS with this
    /// certificate chain and key (PEM files) and refuses mail before it.
    pub fn start_with_starttls(cert: &Path, key: &Path) -> Self {
        Self::start_with_args(&[
            "--tlscert".to_string(),
            cert.display().to_string(),
            "--tlskey".to_string(),
            key.display().to_string(),
        ])
    }

    /// Like [`SmtpServer::start`], but the server speaks TLS from the first
    /// byte (SMTPS) with this certificate chain and key (PEM files).
    pub fn start_with_smtps(cert: &Path, key: &Path) -> Self {
        Self::start_with_args(&[
            "--smtpscert".to_string(),
            cert.display().to_string(),
            "--smtpskey".to_string(),
            key.display().to_string(),
        ])
    }

    fn start_with_args(args: &[String]) -> Self {
        let mut server = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("a temporary directory for the Maildir"),
            args: args.to_vec(),
            child: None,
        };
        server.restart();
        server
    }

    /// The port on 127.0.0.1 (no authentication).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server and waits until its port refuses connections.
    /// Messages already received stay readable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let addr = self.addr();
        poll_until("the SMTP port to close", || {
            TcpStream::connect_timeout(&addr, POLL).is_err()
        });
    }

    /// Starts the server (again) on the same port with the same Maildir,
    /// and waits until it accepts connections. Stops it first if running.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let maildir = self.maildir();
        let log = std::fs::File::create(self.log_path()).expect("the server log is created");
        let mut child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .args(&self.args)
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file handle is cloned"))
            .stderr(log)
            .spawn()
            .expect("python starts (run scripts/ensure-test-deps, or set KPIWATCH_TEST_PYTHON)");
        let addr = self.addr();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "aiosmtpd exited ({status}) before listening on {addr}; is it installed? \
                     (scripts/ensure-test-deps)\n{}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            if TcpStream::connect_timeout(&addr, POLL).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "aiosmtpd did not listen on {addr} within {WAIT:?}\n{}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            std::thread::sleep(POLL);
        }
        self.child = Some(child);
    }

    /// The raw messages received so far (Maildir `new/`), in delivery order
    /// as far as file times tell.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let new = self.maildir().join("new");
        let Ok(entries) = std::fs::read_dir(&new) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| {
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (modified, e.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| std::fs::read(&path).expect("a delivered message is readable"))
            .collect()
    }

    /// Polls until at least `n` messages have arrived (panics after
    /// [`WAIT`]) and returns them all.
    pub fn wait_for_messages(&self, n: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        poll_until(&format!("{n} message(s) in the Maildir"), || {
            got = self.messages();
            got.len() >= n
        });
        got
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("aiosmtpd.log")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Python to run aiosmtpd with.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KPIWATCH_TEST_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
    for candidate in [
        venv.as_path(),
        Path::new("python3"),
        Path::new("/usr/bin/python3"),
    ] {
        let imports = Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if imports {
            return candidate.to_path_buf();
        }
    }
    // Let `restart` fail with the installation hint.
    Path::new("python3").to_path_buf()
}

/// A port that was free a moment ago. Another process could take it before
/// aiosmtpd binds it; then `restart` fails loudly rather than testing the
/// wrong server.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}
