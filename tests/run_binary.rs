//! `kpiwatch run` as an SRE runs it: the binary, a config file, a Kafka
//! broker on 127.0.0.1 (librdkafka's mock cluster, in this test process),
//! `/metrics` scraped over HTTP, and SIGTERM for a clean stop.

#[path = "common/kafka.rs"]
mod kafka;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_consumes_serves_metrics_and_stops_cleanly_on_sigterm() {
    let broker = broker("shop", 2);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kpiwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[service]
listen = "127.0.0.1:0"
state_dir = "{}"
[kafka]
brokers = "{}"
group_id = "run-binary"
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
            dir.path().join("state").display(),
            broker.bootstrap_servers()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpiwatch"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
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

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + WAIT;
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "kpiwatch did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
        log.push(line);
    }
    assert_eq!(exit.code(), Some(0), "{}", log.join("\n"));
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
