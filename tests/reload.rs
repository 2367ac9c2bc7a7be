//! Reloading the configuration of a running service (`POST
//! /api/v1/reload`, SIGHUP): a good file is applied between batches,
//! keeping the state and alerts of KPIs it did not change; a bad one is
//! refused with the service running on. The service runs against
//! librdkafka's mock cluster on 127.0.0.1, with a [`ManualClock`]; the
//! SIGHUP tests run the binary.

#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/webhook.rs"]
mod webhook;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka::{broker, config_text, event, minute, Service, StateDir, WAIT};
use kpiwatch::alert::Status;
use kpiwatch::clock::ManualClock;
use serde_json::Value;

/// The write token's variable and value (one per test process: every
/// test of this file uses the same, so setting it cannot race).
const TOKEN_ENV: &str = "KPIWATCH_RELOAD_TEST_WRITE_TOKEN";
const TOKEN: &str = "reload-test-token-0123456789";
const READ_ENV: &str = "KPIWATCH_RELOAD_TEST_READ_TOKEN";
const READ_TOKEN: &str = "reload-test-read-token-0123456789";

fn set_tokens() {
    std::env::set_var(TOKEN_ENV, TOKEN);
    std::env::set_var(READ_ENV, READ_TOKEN);
}

/// Two KPIs of the `shop` topic, each alerting on its first empty minute
/// (a static floor, so nothing depends on what baselines learn), behind a
/// write token; `extra` is appended.
fn body(carts_where: &str, extra: &str) -> String {
    format!(
        r#"
[[service.api_token]]
name = "ops"
env = "{TOKEN_ENV}"

[[topic]]
name = "shop"
time_format = "epoch_seconds"
idle_timeout = "5s"

[defaults]
bucket = "1m"
lateness = "0s"

[defaults.alerting]
fire_after = 1
resolve_after = 1

[[kpi]]
name = "checkouts"
where = {{ type = "checkout" }}
aggregate = "count"
direction = "drop"

[kpi.detectors]
min = 1.0

[[kpi]]
name = "carts"
where = {carts_where}
aggregate = "count"
direction = "drop"
{extra}"#
    )
}

const CARTS_FLOOR: &str = "[kpi.detectors]\nmin = 1.0\n";

/// A token of scope read, for `extra`.
fn read_token() -> String {
    format!(
        "[[service.api_token]]\nname = \"prometheus\"\nenv = \"{READ_ENV}\"\nscope = \"read\"\n"
    )
}

/// The config file of a test, in its state directory.
struct File {
    path: PathBuf,
    state: StateDir,
    brokers: String,
    group: String,
}

impl File {
    fn new(brokers: &str, group: &str) -> Self {
        let state = StateDir::new();
        Self {
            path: state.path().join("kpiwatch.toml"),
            state,
            brokers: brokers.to_string(),
            group: group.to_string(),
        }
    }

    fn write(&self, body: &str) {
        let text = config_text(&self.state, &self.brokers, &self.group, body);
        std::fs::write(&self.path, text).unwrap();
    }
}

/// POSTs a reload with `token`: (status, body).
async fn reload(service: &Service, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/api/v1/reload", service.addr))
        .header("content-type", "application/json");
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let r = tokio::time::timeout(WAIT, request.send())
        .await
        .expect("an answer in time")
        .expect("HTTP request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The learned state of every series of `kpi` in the snapshot on disk,
/// as JSON (opaque, but equal when nothing changed it).
fn snapshot_series(state: &Path, kpi: &str) -> Vec<(String, Value)> {
    let snapshot = kpiwatch::pipeline::snapshot::load(state)
        .expect("the snapshot reads")
        .expect("a snapshot was written");
    let k = snapshot
        .kpis
        .into_iter()
        .find(|k| k.name == kpi)
        .unwrap_or_else(|| panic!("{kpi} in the snapshot"));
    k.series
        .into_iter()
        .map(|(key, s)| (key, serde_json::to_value(&s).unwrap()))
        .collect()
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect()
}

/// Sends checkouts and carts for minutes 0-9 and only page views at
/// minutes 10 and 11 (which close minute 10 with neither), on partition
/// 0; returns how many messages were sent.
fn shop_until_both_stop(broker: &kpiwatch::kafka::mock::MockBroker) -> usize {
    let mut n = 0;
    for m in 0..10 {
        for (s, kind) in [
            (5, "checkout"),
            (10, "cart"),
            (25, "checkout"),
            (30, "cart"),
        ] {
            broker
                .send("shop", Some(0), b"", &event(minute(m) + s, kind))
                .unwrap();
            n += 1;
        }
    }
    for m in [10, 11] {
        broker
            .send("shop", Some(0), b"", &event(minute(m) + 1, "view"))
            .unwrap();
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_an_unchanged_kpis_alert_model_and_open_bucket_and_restarts_a_changed_one() {
    set_tokens();
    let broker = broker("shop", 1);
    let file = File::new(broker.bootstrap_servers(), "reload-good");
    file.write(&body("{ type = \"cart\" }", CARTS_FLOOR));
    let clock = Arc::new(ManualClock::at(minute(20)));
    let mut service = Service::start_from_file(&file.path, clock.clone()).await;

    let mut n = shop_until_both_stop(&broker);
    broker.flush().unwrap();
    let mut fired = Vec::new();
    for _ in 0..2 {
        let t = service.next_transition().await;
        assert_eq!((t.status, t.bucket_start), (Status::Firing, minute(10)));
        fired.push(t);
    }
    fired.sort_by(|a, b| a.kpi.cmp(&b.kpi));
    let (carts_alert, checkouts_alert) = (&fired[0], &fired[1]);
    // Two checkouts in minute 11, still open when the reload comes.
    for s in [20, 40] {
        broker
            .send("shop", Some(0), b"", &event(minute(11) + s, "checkout"))
            .unwrap();
        n += 1;
    }
    broker.flush().unwrap();
    service.processed(n as f64).await;
    clock.advance(1);
    service.next_snapshot().await;
    let before = snapshot_series(file.state.path(), "checkouts");
    assert!(!before.is_empty());

    // carts now also counts baskets: a new definition. checkouts is the
    // same, written differently (a comment, keys reordered elsewhere).
    file.write(&format!(
        "# retuned\n{}",
        body("{ type = { in = [\"cart\", \"basket\"] } }", "")
    ));
    let (status, answer) = reload(&service, Some(TOKEN)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(names(&answer["kpis"]["kept"]), ["checkouts"]);
    assert_eq!(names(&answer["kpis"]["restarted"]), ["carts"]);
    assert_eq!(answer["alerts_resolved"], 1);

    // The changed KPI's alert resolves, saying why; the unchanged one's
    // does not.
    let t = service.next_transition().await;
    assert_eq!(
        (t.status, t.kpi.as_str(), t.alert_id.as_str()),
        (Status::Resolved, "carts", carts_alert.alert_id.as_str())
    );
    assert!(
        t.description
            .as_deref()
            .is_some_and(|d| d.contains("configuration reload")),
        "{t:?}"
    );
    // The next snapshot: checkouts' models and alert state exactly as
    // before (nothing was judged since), carts' gone.
    clock.advance(1);
    service.next_snapshot().await;
    assert_eq!(snapshot_series(file.state.path(), "checkouts"), before);
    assert!(snapshot_series(file.state.path(), "carts").is_empty());
    assert_eq!(
        service.metric("kpiwatch_config_reloads_total", &[]).await,
        1.0
    );

    // Minute 12 closes minute 11: the two checkouts counted before the
    // reload are in its bucket, and the alert that fired before the
    // reload resolves as itself.
    broker
        .send("shop", Some(0), b"", &event(minute(12) + 1, "checkout"))
        .unwrap();
    broker.flush().unwrap();
    let seen = service
        .buckets_until(|b| b.0 == "checkouts" && b.2 == minute(11))
        .await;
    assert_eq!(seen.last().unwrap().3, Some(2.0));
    let t = service.next_transition().await;
    assert_eq!(
        (t.status, t.kpi.as_str(), t.alert_id.as_str()),
        (
            Status::Resolved,
            "checkouts",
            checkouts_alert.alert_id.as_str()
        )
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_is_refused_with_422_where_check_would_say_and_the_old_config_keeps_serving() {
    set_tokens();
    let broker = broker("shop", 1);
    let file = File::new(broker.bootstrap_servers(), "reload-bad");
    file.write(&body("{ type = \"cart\" }", CARTS_FLOOR));
    let clock = Arc::new(ManualClock::at(minute(20)));
    let mut service = Service::start_from_file(&file.path, clock.clone()).await;

    // A misspelt aggregate, and then a new broker: both refused.
    file.write(&body("{ type = \"cart\" }", CARTS_FLOOR).replace("\"count\"", "\"cnt\""));
    let (status, answer) = reload(&service, Some(TOKEN)).await;
    assert_eq!(status, 422, "{answer}");
    let error = answer["errors"][0].as_str().unwrap();
    let check = kpiwatch::config::load(&file.path).unwrap_err().to_string();
    assert_eq!(error, check);
    assert!(
        error.starts_with(&format!("{}:", file.path.display())) && error.contains("cnt"),
        "{error}"
    );
    let good = config_text(
        &file.state,
        "127.0.0.1:1",
        "reload-bad",
        &body("{ type = \"cart\" }", CARTS_FLOOR),
    );
    std::fs::write(&file.path, good).unwrap();
    let (status, answer) = reload(&service, Some(TOKEN)).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("restart to change kafka.brokers"),
        "{answer}"
    );
    assert_eq!(
        service
            .metric("kpiwatch_config_reload_failures_total", &[])
            .await,
        2.0
    );
    assert_eq!(
        service
            .metric("kpiwatch_config_last_reload_successful", &[])
            .await,
        0.0
    );
    assert_eq!(
        service.metric("kpiwatch_config_reloads_total", &[]).await,
        0.0
    );

    // Still the old configuration: both KPIs judged, and they fire.
    shop_until_both_stop(&broker);
    broker.flush().unwrap();
    let mut kpis = vec![
        service.next_transition().await.kpi,
        service.next_transition().await.kpi,
    ];
    kpis.sort();
    assert_eq!(kpis, ["carts", "checkouts"]);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_needs_a_write_token_and_one_without_changes_nothing() {
    set_tokens();
    let broker = broker("shop", 1);
    let file = File::new(broker.bootstrap_servers(), "reload-token");
    file.write(&body("{ type = \"cart\" }", CARTS_FLOOR));
    let clock = Arc::new(ManualClock::at(minute(20)));
    let service = Service::start_from_file(&file.path, clock.clone()).await;
    // A file that would restart carts, and add a read token: nothing of
    // it may happen.
    file.write(&body("{ type = \"basket\" }", &read_token()));
    let (status, answer) = reload(&service, None).await;
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = reload(&service, Some("not-the-token-at-all-0000")).await;
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = reload(&service, Some(READ_TOKEN)).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(
        service.metric("kpiwatch_config_reloads_total", &[]).await
            + service
                .metric("kpiwatch_config_reload_failures_total", &[])
                .await,
        0.0
    );
    // Without the JSON content type, as for every write.
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/reload", service.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    // With the token it goes through, and the new read token is in
    // force from the next request: it may read, not reload.
    let (status, answer) = reload(&service, Some(TOKEN)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(names(&answer["kpis"]["restarted"]), ["carts"]);
    assert_eq!(answer["tokens_changed"], true);
    let (status, answer) = reload(&service, Some(READ_TOKEN)).await;
    assert_eq!(status, 403, "{answer}");
    let (status, _) = service.get("/metrics").await;
    assert_eq!(status, 401, "reads need a token once a read token is set");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_added_by_a_reload_routes_the_next_alert_to_its_new_receiver() {
    set_tokens();
    let broker = broker("shop", 1);
    let hooks = webhook::Hooks::start().await;
    let file = File::new(broker.bootstrap_servers(), "reload-route");
    file.write(&body("{ type = \"cart\" }", CARTS_FLOOR));
    let clock = Arc::new(ManualClock::at(minute(20)));
    let mut service = Service::start_from_file(&file.path, clock.clone()).await;

    file.write(&body(
        "{ type = \"cart\" }",
        &format!("{CARTS_FLOOR}{}", webhook::notify_everything(&hooks.url)),
    ));
    let (status, answer) = reload(&service, Some(TOKEN)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(names(&answer["receivers"]["added"]), ["oncall"]);
    assert_eq!(names(&answer["subscriptions"]["added"]), ["everything"]);
    assert_eq!(names(&answer["kpis"]["kept"]), ["checkouts", "carts"]);

    shop_until_both_stop(&broker);
    broker.flush().unwrap();
    service.next_transition().await;
    service.next_transition().await;
    hooks.wait_for_distinct(2, WAIT).await;
    let mut kpis: Vec<String> = hooks
        .posts()
        .iter()
        .map(|p| {
            p.body["alerts"][0]["kpi"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    kpis.sort();
    kpis.dedup();
    assert_eq!(kpis, ["carts", "checkouts"], "{:?}", hooks.posts());
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_changed_by_a_reload_gets_its_next_notification_at_the_new_address() {
    set_tokens();
    let broker = broker("shop", 1);
    let (first, second) = (webhook::Hooks::start().await, webhook::Hooks::start().await);
    let file = File::new(broker.bootstrap_servers(), "reload-receiver");
    let with = |url: &str| {
        body(
            "{ type = \"cart\" }",
            &format!("{CARTS_FLOOR}{}", webhook::notify_everything(url)),
        )
    };
    file.write(&with(&first.url));
    let clock = Arc::new(ManualClock::at(minute(20)));
    let mut service = Service::start_from_file(&file.path, clock.clone()).await;
    shop_until_both_stop(&broker);
    broker.flush().unwrap();
    service.next_transition().await;
    service.next_transition().await;
    first.wait_for_distinct(2, WAIT).await;

    file.write(&with(&second.url));
    let (status, answer) = reload(&service, Some(TOKEN)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(names(&answer["receivers"]["changed"]), ["oncall"]);
    assert_eq!(names(&answer["subscriptions"]["kept"]), ["everything"]);

    // Checkouts come back: minute 11 closes with one, and the alert
    // resolves. Its group (kept across the reload) sends the resolution a
    // group interval after the firing message, to the new address.
    for t in [minute(11) + 30, minute(12) + 1] {
        broker
            .send("shop", Some(0), b"", &event(t, "checkout"))
            .unwrap();
    }
    broker.flush().unwrap();
    let t = service.next_transition().await;
    assert_eq!((t.status, t.kpi.as_str()), (Status::Resolved, "checkouts"));
    clock.advance(2);
    second.wait_for_distinct(1, WAIT).await;
    let post = &second.posts()[0];
    assert_eq!(
        post.body["alerts"][0]["kpi"], "checkouts",
        "{:?}",
        post.body
    );
    assert_eq!(
        post.body["alerts"][0]["status"], "resolved",
        "{:?}",
        post.body
    );
    assert_eq!(first.posts().len(), 2, "{:?}", first.posts());
    service.stop().await;
}

/// A firing checkouts alert, as the pipeline would hand it over.
fn firing() -> kpiwatch::alert::Transition {
    let labels = std::collections::BTreeMap::new();
    kpiwatch::alert::Transition {
        status: Status::Firing,
        alert_id: kpiwatch::alert::alert_id("checkouts", &labels, minute(10)),
        kpi: "checkouts".into(),
        labels,
        severity: kpiwatch::alert::Severity::Warning,
        escalated_from: None,
        direction: detectors::Direction::Drop,
        started_at: minute(10),
        bucket_start: minute(10),
        bucket_end: minute(11),
        observed: 0.0,
        expected: 2.0,
        lower: 1.0,
        upper: f64::INFINITY,
        score: 1.0,
        deviation_pct: Some(-100.0),
        evidence: Default::default(),
        description: None,
        runbook: None,
        dashboard: None,
        recent: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_receivers_notifications_stay_in_the_outbox_until_it_is_configured_again() {
    use kpiwatch::notify::notifier::Notifier;
    let state = StateDir::new();
    let settings = |extra: &str| {
        let text = config_text(
            &state,
            "127.0.0.1:9",
            "g",
            &body("{ type = \"cart\" }", extra),
        );
        kpiwatch::config::validate(&kpiwatch::config::Source::new(Path::new("t.toml"), &text))
            .unwrap()
            .notify
    };
    // Nothing listens on port 1: the notification waits, retried.
    let down = settings(&webhook::notify_everything("http://127.0.0.1:1/hook"));
    let silences = Arc::new(std::sync::Mutex::new(
        kpiwatch::notify::silence::SilenceStore::in_memory(),
    ));
    let clock = Arc::new(kpiwatch::clock::SystemClock);
    let mut notifier = Notifier::start(
        &down,
        state.path(),
        silences,
        clock,
        kpiwatch::telemetry::Metrics::default(),
    )
    .unwrap();
    notifier.alerts(&[firing()]).unwrap();
    let entries = || {
        std::fs::read_dir(down.outbox_dir.join("oncall"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(entries(), 1);
    assert_eq!(notifier.backlog().len(), 1);

    // The receiver and its subscription are removed: the entry is kept,
    // no longer waiting in this process.
    notifier.reconfigure(&settings("")).await.unwrap();
    assert_eq!(entries(), 1);
    assert_eq!(notifier.backlog().len(), 0);

    // Back, at an address that answers: the entry goes there.
    let hooks = webhook::Hooks::start().await;
    notifier
        .reconfigure(&settings(&webhook::notify_everything(&hooks.url)))
        .await
        .unwrap();
    hooks.wait_for_distinct(1, WAIT).await;
    tokio::time::timeout(WAIT, notifier.backlog().drained())
        .await
        .expect("delivered in time");
    assert_eq!(hooks.posts()[0].body["alerts"][0]["kpi"], "checkouts");
    assert_eq!(entries(), 0);
    notifier.stop().await;
}

/// `kpiwatch run` as a child process, with its log read on a thread.
struct Running {
    child: std::process::Child,
    addr: String,
    lines: std::sync::mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Running {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kpiwatch"))
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .env(TOKEN_ENV, TOKEN)
            .env(READ_ENV, READ_TOKEN)
            .stderr(Stdio::piped())
            .spawn()
            .expect("kpiwatch starts");
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
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

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Reads the log until a line contains `text`; returns it.
    fn log_until(&mut self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {text:?} in the log:\n{}", self.log.join("\n")));
            self.log.push(line.clone());
            if line.contains(text) {
                return line;
            }
        }
    }

    async fn metric(&self, name: &str) -> f64 {
        let body = reqwest::Client::new()
            .get(format!("http://{}/metrics", self.addr))
            .bearer_auth(READ_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.lines()
            .filter(|l| l.starts_with(&format!("{name} ")))
            .find_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
            .unwrap_or(-1.0)
    }

    fn stop(mut self) -> Option<i32> {
        self.signal("TERM");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                Instant::now() < deadline,
                "kpiwatch did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_good_file_and_refuses_a_bad_one_while_the_service_runs_on() {
    let broker = broker("shop", 1);
    let file = File::new(broker.bootstrap_servers(), "reload-sighup");
    file.write(&body("{ type = \"cart\" }", CARTS_FLOOR));
    let mut running = Running::start(&file.path);
    // Until the handler is in place a SIGHUP would end the process.
    running.log_until("SIGHUP reloads the configuration");

    // A third KPI.
    file.write(&body(
        "{ type = \"cart\" }",
        &format!("{CARTS_FLOOR}[[kpi]]\nname = \"views\"\nwhere = {{ type = \"view\" }}\naggregate = \"count\"\n"),
    ));
    running.signal("HUP");
    let line = running.log_until("configuration reloaded");
    assert!(
        line.contains("origin=SIGHUP") && line.contains("added=[\"views\"]"),
        "{line}"
    );
    assert_eq!(running.metric("kpiwatch_config_reloads_total").await, 1.0);
    assert_eq!(
        running
            .metric("kpiwatch_config_last_reload_successful")
            .await,
        1.0
    );

    // A broken file: refused, logged where it is wrong, counted; the
    // service still answers.
    std::fs::write(&file.path, "[service]\nlisten = 7\n").unwrap();
    running.signal("HUP");
    let line = running.log_until("configuration reload refused");
    assert!(
        line.contains(&format!("{}:2:", file.path.display())),
        "{line}"
    );
    assert_eq!(
        running
            .metric("kpiwatch_config_reload_failures_total")
            .await,
        1.0
    );
    assert_eq!(
        running
            .metric("kpiwatch_config_last_reload_successful")
            .await,
        0.0
    );
    let healthz = reqwest::get(format!("http://{}/healthz", running.addr))
        .await
        .unwrap();
    assert_eq!(healthz.status().as_u16(), 200);
    assert_eq!(running.stop(), Some(0));
}
