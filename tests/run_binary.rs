//! `kpiwatch run` as an SRE runs it: the binary, a config file, a Kafka
//! broker on 127.0.0.1 (librdkafka's mock cluster, in this test process),
//! `/metrics` scraped over HTTP, an API token in the environment, and
//! SIGTERM for a clean stop.

#[path = "common/kafka.rs"]
mod kafka;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kafka::{broker, event, T0, WAIT};

async fn metric(addr: &str, name: &str) -> f64 {
    let Ok(r) = reqwest::get(format!("http://{addr}/metrics")).await else {
        return -1.0;
    };
    let body = r.text().await.unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(name))
        .find_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// A `kpiwatch run` child process and its log.
struct Running {
    child: Child,
    /// The address it serves, from its "serving" log line.
    addr: String,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Running {
    /// Starts `kpiwatch run --config config` with `env` added to its
    /// environment, and waits for the address it serves.
    fn start(config: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kpiwatch"))
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kpiwatch starts");
        // Read the log on a thread; the address comes from the "serving" line.
        let (lines_tx, lines) = mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let mut log = Vec::new();
        let addr = loop {
            let line = lines.recv_timeout(WAIT).expect("kpiwatch logs its address");
            log.push(line.clone());
            if let Some(rest) = line.split("bound=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        Self {
            child,
            addr,
            lines,
            log,
        }
    }

    /// Sends SIGTERM, waits for the exit, and returns its code and the
    /// whole log.
    async fn stop(mut self) -> (Option<i32>, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        let exit = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "kpiwatch did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            self.log.push(line);
        }
        (exit.code(), self.log)
    }
}

/// A config for the broker at `brokers`, state in `dir`, with `extra`
/// lines in `[service]`.
fn write_config(dir: &Path, brokers: &str, group: &str, extra: &str) -> std::path::PathBuf {
    let config = dir.join("kpiwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[service]
listen = "127.0.0.1:0"
state_dir = "{}"
{extra}
[kafka]
brokers = "{brokers}"
group_id = "{group}"
[[topic]]
name = "shop"
time_format = "epoch_seconds"
[defaults]
bucket = "1m"
[[kpi]]
name = "checkouts"
where = {{ type = "checkout" }}
aggregate = "count"
"#,
            dir.join("state").display(),
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_consumes_serves_metrics_and_stops_cleanly_on_sigterm() {
    let broker = broker("shop", 2);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), broker.bootstrap_servers(), "run-binary", "");
    let running = Running::start(&config, &[]);
    let addr = running.addr.clone();

    for m in 0..30 {
        broker
            .send(
                "shop",
                Some(m % 2),
                b"",
                &event(T0 + 60 * m as i64, "checkout"),
            )
            .unwrap();
    }
    broker.send("shop", Some(0), b"", b"not json").unwrap();
    broker.flush().unwrap();

    // An external process offers no channel to wait on: poll /metrics,
    // bounded by WAIT.
    let deadline = Instant::now() + WAIT;
    let consumed = "kpiwatch_events_consumed_total{topic=\"shop\"}";
    while metric(&addr, consumed).await < 31.0 {
        assert!(
            Instant::now() < deadline,
            "consumed only {}",
            metric(&addr, consumed).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(
            &addr,
            "kpiwatch_events_rejected_total{reason=\"invalid_json\""
        )
        .await,
        1.0
    );
    let healthz = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(healthz.status().as_u16(), 200);

    let (code, log) = running.stop().await;
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert!(
        log.iter().any(|l| l.contains("shutdown requested")),
        "{}",
        log.join("\n")
    );
    assert!(
        log.iter().any(|l| l.contains("stopped")),
        "{}",
        log.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_takes_silences_only_with_the_token_in_its_environment_and_keeps_them_across_a_restart()
{
    const TOKEN: &str = "e2e-token-0123456789abcdef";
    let broker = broker("shop", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        broker.bootstrap_servers(),
        "run-binary-api",
        "[[service.api_token]]\nname = \"ops\"\nenv = \"KPIWATCH_TEST_API_TOKEN\"\n",
    );
    let env = [("KPIWATCH_TEST_API_TOKEN", TOKEN)];
    let silence = serde_json::json!({
        "matchers": [{"name": "kpi", "equals": "checkouts"}],
        "ends_at": chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 3600, 0)
            .unwrap()
            .to_rfc3339(),
        "comment": "release"
    });
    let http = reqwest::Client::new();

    let first = Running::start(&config, &env);
    let url = format!("http://{}/api/v1/silences", first.addr);
    let refused = http.post(&url).json(&silence).send().await.unwrap();
    assert_eq!(
        refused.status().as_u16(),
        401,
        "a token is configured, none sent"
    );
    let created = http
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&silence)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 200);
    let id: serde_json::Value = created.json().await.unwrap();
    let (code, log) = first.stop().await;
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert!(
        !log.iter().any(|l| l.contains(TOKEN)),
        "the token is never logged:\n{}",
        log.join("\n")
    );

    let second = Running::start(&config, &env);
    let listed: serde_json::Value = http
        .get(format!("http://{}/api/v1/silences", second.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = &listed["silences"][0];
    assert_eq!(s["id"], id["id"]);
    assert_eq!(
        (s["created_by"].as_str(), s["state"].as_str()),
        (Some("ops"), Some("active"))
    );
    let (code, _) = second.stop().await;
    assert_eq!(code, Some(0));
}
