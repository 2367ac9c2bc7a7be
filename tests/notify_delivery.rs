//! Delivery that loses nothing and sends nothing twice, end to end through
//! the notifier (dispatcher, durable outbox, per-receiver workers) to real
//! receivers: an HTTP server in the test, the aiosmtpd SMTP server
//! (tests/common/smtp.rs), and the `kpiwatch` binary killed with SIGKILL
//! while notifications wait in its outbox.

#[path = "common/smtp.rs"]
mod smtp;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use detectors::Direction;
use kpiwatch::alert::{RecentBucket, Severity, Status, Transition};
use kpiwatch::clock::{ManualClock, SystemClock};
use kpiwatch::notify::notifier::Notifier;
use kpiwatch::notify::route::Subscription;
use kpiwatch::notify::settings::{
    NotifySettings, Receiver, ReceiverKind, Retry, Smtp, SmtpSecurity, Webhook, WebhookFormat,
};
use kpiwatch::notify::silence::SilenceStore;
use kpiwatch::telemetry::Metrics;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(30);

/// What the scripted receiver answers, in order; the last answer repeats.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16),
    /// Never answers (the sender's timeout must fire).
    Hang,
}

#[derive(Clone)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    seen: mpsc::UnboundedSender<(String, serde_json::Value)>,
}

async fn answer(State(s): State<Script>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let _ = s.seen.send((
        key,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    ));
    let next = {
        let mut a = s.answers.lock().unwrap();
        if a.len() > 1 {
            a.pop_front().unwrap()
        } else {
            *a.front().unwrap()
        }
    };
    match next {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
        Answer::Hang => std::future::pending().await,
    }
}

/// Serves the script on `listener`; returns the channel of (idempotency
/// key, body) per request.
fn serve(
    listener: tokio::net::TcpListener,
    answers: &[Answer],
) -> mpsc::UnboundedReceiver<(String, serde_json::Value)> {
    let (seen, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(answer))
        .with_state(Script {
            answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
            seen,
        });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    rx
}

fn transition(kpi: &str, status: Status) -> Transition {
    let labels = BTreeMap::from([("country".to_string(), "FI".to_string())]);
    Transition {
        status,
        alert_id: kpiwatch::alert::alert_id(kpi, &labels, 1_704_096_000),
        kpi: kpi.to_string(),
        labels,
        severity: Severity::Critical,
        escalated_from: None,
        direction: Direction::Drop,
        started_at: 1704096000,
        bucket_start: 1704096000,
        bucket_end: 1704096300,
        observed: 3.0,
        expected: 40.0,
        lower: 28.0,
        upper: 52.0,
        score: 0.97,
        deviation_pct: Some(-92.5),
        evidence: Default::default(),
        description: Some("Completed checkouts".into()),
        runbook: None,
        dashboard: None,
        recent: (0..12)
            .map(|i| RecentBucket {
                t: 1_704_092_700 + i * 300,
                value: if i == 11 { 3.0 } else { 40.0 },
                expected: 40.0,
                lower: 28.0,
                upper: 52.0,
                anomalous: i == 11,
            })
            .collect(),
    }
}

fn settings(dir: &Path, receiver: Receiver) -> NotifySettings {
    let mut s = NotifySettings::none(dir);
    s.retry = Retry {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        give_up_after: Duration::from_secs(3600),
    };
    let mut everything = Subscription::new("everything", &[receiver.name.as_str()]);
    everything.group_wait = Duration::ZERO;
    s.subscriptions = vec![everything];
    s.receivers = vec![receiver];
    s
}

/// A webhook receiver at `url` that takes kpiwatch's JSON.
fn hook(url: String, timeout: Duration) -> ReceiverKind {
    ReceiverKind::Webhook(Webhook {
        url,
        format: WebhookFormat::Kpiwatch,
        secret_env: None,
        timeout,
        headers: BTreeMap::new(),
        ca: None,
    })
}

/// The test's SMTP server on `port`, plain, without credentials.
fn local_smtp(port: u16) -> Smtp {
    Smtp {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        username_env: "KPIWATCH_TEST_SMTP_USER_UNSET".into(),
        password_env: "KPIWATCH_TEST_SMTP_PASSWORD_UNSET".into(),
        timeout: Duration::from_secs(5),
        pool_size: 2,
        ca: None,
    }
}

/// [`settings`] with the email receiver "shop-team" (pm@shop.example)
/// behind the test's SMTP server on `port`.
fn email_settings(dir: &Path, port: u16) -> NotifySettings {
    let mut s = settings(
        dir,
        Receiver {
            name: "shop-team".into(),
            kind: ReceiverKind::Email {
                to: vec!["pm@shop.example".into()],
            },
        },
    );
    s.smtp = Some(local_smtp(port));
    s
}

fn start(settings: &NotifySettings, dir: &Path, metrics: &Metrics) -> Notifier {
    Notifier::start(
        settings,
        dir,
        Arc::new(Mutex::new(SilenceStore::in_memory())),
        Arc::new(SystemClock),
        metrics.clone(),
    )
    .expect("notifier starts")
}

fn pending_files(outbox: &Path) -> usize {
    walk(outbox)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .count()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_500_then_timing_out_then_200_gets_the_notification_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let mut seen = serve(
        listener,
        &[Answer::Status(500), Answer::Hang, Answer::Status(200)],
    );
    let settings = settings(
        dir.path(),
        Receiver {
            name: "oncall".into(),
            kind: hook(url, Duration::from_millis(300)),
        },
    );
    let metrics = Metrics::new();
    let mut notifier = start(&settings, dir.path(), &metrics);
    let firing = transition("checkouts", Status::Firing);
    notifier.alerts(std::slice::from_ref(&firing)).unwrap();

    let backlog = notifier.backlog();
    tokio::time::timeout(WAIT, backlog.drained())
        .await
        .expect("delivered within the wait");
    let mut keys = Vec::new();
    while let Ok((key, body)) = seen.try_recv() {
        assert_eq!(body["alerts"][0]["alert_id"], firing.alert_id.as_str());
        keys.push(key);
    }
    assert_eq!(keys.len(), 3, "500, timeout, then 200: {keys:?}");
    assert!(keys.iter().all(|k| k == &keys[0] && !k.is_empty()));
    let count = |c: &prometheus::IntCounterVec, l: &[&str]| c.with_label_values(l).get();
    assert_eq!(count(&metrics.notifications_sent, &["oncall"]), 1);
    assert_eq!(
        count(&metrics.notifications_failed, &["oncall", "transient"]),
        2
    );
    assert_eq!(count(&metrics.notifications_retried, &["oncall"]), 2);
    assert_eq!(pending_files(&settings.outbox_dir), 0);

    // The same transition again (a replay after a restart) sends nothing.
    notifier.alerts(&[firing]).unwrap();
    assert_eq!(backlog.len(), 0);
    notifier.stop().await;
    assert!(seen.try_recv().is_err(), "nothing sent after the 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_wait_while_the_smtp_server_is_down_and_each_arrives_once_when_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = smtp::SmtpServer::start();
    server.stop();
    let settings = email_settings(dir.path(), server.port());
    let metrics = Metrics::new();
    let mut notifier = start(&settings, dir.path(), &metrics);
    notifier
        .alerts(&[
            transition("checkouts", Status::Firing),
            transition("payments", Status::Firing),
        ])
        .unwrap();
    let failed = || {
        metrics
            .notifications_failed
            .with_label_values(&["shop-team", "transient"])
            .get()
    };
    let started = Instant::now();
    while failed() < 2 {
        assert!(started.elapsed() < WAIT, "no failed attempt while down");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let backlog = notifier.backlog();
    assert_eq!(backlog.len(), 2, "both wait in the outbox");
    assert_eq!(pending_files(&settings.outbox_dir), 2);

    server.restart();
    tokio::time::timeout(WAIT, backlog.drained())
        .await
        .expect("delivered once the server is up");
    notifier.stop().await;
    let mails = server.wait_for_messages(2);
    assert_eq!(mails.len(), 2, "each email exactly once");
    let ids: std::collections::BTreeSet<String> = mails
        .iter()
        .map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 2, "two different notifications: {ids:?}");
    assert_eq!(pending_files(&settings.outbox_dir), 0);
}

/// Alert transitions in the golden checkout-outage fixture: each is one
/// notification with the configs below.
fn fixture_alerts() -> usize {
    std::fs::read_to_string("tests/fixtures/replay/checkout_outage.alerts.jsonl")
        .unwrap()
        .lines()
        .count()
}

/// `kpiwatch replay --notify` of the golden fixture with `config`.
fn replay_notifying(config: &Path) -> std::process::Command {
    let mut replay = std::process::Command::new(env!("CARGO_BIN_EXE_kpiwatch"));
    replay
        .args(["replay", "--notify", "--notify-wait", "30s", "--config"])
        .arg(config)
        .args(["--events", "tests/fixtures/replay/checkout_outage.jsonl"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    replay
}

/// The golden checkout-outage fixture's config, with a webhook receiver
/// at `url` that gets every alert alone.
fn replay_config(state_dir: &Path, url: &str) -> String {
    let base = std::fs::read_to_string("tests/fixtures/replay/checkout_outage.toml").unwrap();
    format!(
        r#"[service]
state_dir = {state:?}

{base}

[notify]
retry_initial = "50ms"
retry_max = "200ms"

[[receiver]]
name = "oncall"
webhook = {{ url = {url:?}, format = "kpiwatch", timeout = "1s" }}

[[subscription]]
name = "everything"
receivers = ["oncall"]
group_by = ["..."]
group_wait = "0s"
group_interval = "1m"
repeat_interval = "7d"
"#,
        state = state_dir.display().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_in_the_outbox_survive_sigkill_and_a_replay_sends_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // A port with nothing listening yet: the receiver is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let config = dir.path().join("kpiwatch.toml");
    std::fs::write(&config, replay_config(&state, &url)).unwrap();
    let expected = fixture_alerts();
    let replay = move || replay_notifying(&config).spawn().unwrap();

    // First run: every notification reaches the outbox, none can be sent.
    let mut first = replay();
    let outbox = state.join("outbox");
    let started = Instant::now();
    while pending_files(&outbox) < expected {
        assert!(started.elapsed() < WAIT, "outbox never filled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert_eq!(pending_files(&outbox), expected);

    // The receiver comes up; the same replay runs again.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let mut seen = serve(listener, &[Answer::Status(200)]);
    let status = tokio::task::spawn_blocking(move || replay().wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let mut keys = Vec::new();
    while let Ok((key, _)) = seen.try_recv() {
        keys.push(key);
    }
    let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
    assert_eq!(keys.len(), expected, "every notification once: {keys:?}");
    assert_eq!(distinct.len(), expected);
    assert_eq!(pending_files(&outbox), 0);
}

/// A replay routes in event time, where its three hours of alerts pass in
/// a microsecond: with `give_up_after` at one hour, not one of them may be
/// given up as stale before the receiver (which refuses the first try)
/// has had them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_over_more_than_give_up_after_of_event_time_delivers_every_notification() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let mut seen = serve(listener, &[Answer::Status(503), Answer::Status(200)]);
    let config = dir.path().join("kpiwatch.toml");
    let text = replay_config(&state, &url).replace(
        "retry_max = \"200ms\"\n",
        "retry_max = \"200ms\"\ngive_up_after = \"1h\"\n",
    );
    assert!(text.contains("give_up_after = \"1h\""));
    std::fs::write(&config, text).unwrap();
    let expected = fixture_alerts();

    let status = tokio::task::spawn_blocking(move || replay_notifying(&config).status().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let mut delivered = std::collections::BTreeSet::new();
    let mut requests = 0;
    while let Ok((key, _)) = seen.try_recv() {
        requests += 1;
        delivered.insert(key);
    }
    assert_eq!(
        delivered.len(),
        expected,
        "every notification: {delivered:?}"
    );
    assert_eq!(requests, expected + 1, "one refused try, sent again");
    assert_eq!(pending_files(&state.join("outbox")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_does_not_hold_up_another_one() {
    let dir = tempfile::tempdir().unwrap();
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fast = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_on = |l: &tokio::net::TcpListener| {
        hook(
            format!("http://{}/hook", l.local_addr().unwrap()),
            Duration::from_secs(60),
        )
    };
    let mut settings = settings(
        dir.path(),
        Receiver {
            name: "slow".into(),
            kind: hook_on(&slow),
        },
    );
    settings.receivers.push(Receiver {
        name: "fast".into(),
        kind: hook_on(&fast),
    });
    settings.subscriptions[0].receivers.push("fast".into());
    let mut slow_seen = serve(slow, &[Answer::Hang]);
    let mut fast_seen = serve(fast, &[Answer::Status(200)]);
    let metrics = Metrics::new();
    let mut notifier = start(&settings, dir.path(), &metrics);
    notifier
        .alerts(&[
            transition("checkouts", Status::Firing),
            transition("payments", Status::Firing),
        ])
        .unwrap();
    // Both of the fast receiver's notifications arrive while the slow one
    // still holds its first request open.
    for _ in 0..2 {
        tokio::time::timeout(WAIT, fast_seen.recv())
            .await
            .expect("the fast receiver is not held up")
            .unwrap();
    }
    tokio::time::timeout(WAIT, slow_seen.recv())
        .await
        .expect("the slow receiver got its first request")
        .unwrap();
    assert!(
        slow_seen.try_recv().is_err(),
        "the slow one is still on its first"
    );
    assert_eq!(
        metrics
            .notifications_sent
            .with_label_values(&["slow"])
            .get(),
        0
    );
    // The fast worker counts its second delivery just after the receiver
    // answered it.
    let started = Instant::now();
    while metrics
        .notifications_sent
        .with_label_values(&["fast"])
        .get()
        < 2
    {
        assert!(
            started.elapsed() < WAIT,
            "the fast receiver's deliveries counted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(notifier.backlog().len(), 2, "the slow receiver's two wait");
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_undeliverable_past_give_up_after_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: every attempt is refused (transient).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = settings(
        dir.path(),
        Receiver {
            name: "gone".into(),
            kind: hook(
                format!("http://127.0.0.1:{port}/hook"),
                Duration::from_secs(1),
            ),
        },
    );
    settings.retry.give_up_after = Duration::from_millis(300);
    let metrics = Metrics::new();
    let mut notifier = start(&settings, dir.path(), &metrics);
    notifier
        .alerts(&[transition("checkouts", Status::Firing)])
        .unwrap();
    let backlog = notifier.backlog();
    tokio::time::timeout(WAIT, backlog.drained())
        .await
        .expect("given up within the wait");
    let get = |c: &prometheus::IntCounterVec, l: &[&str]| c.with_label_values(l).get();
    assert_eq!(get(&metrics.notifications_dropped, &["gone", "expired"]), 1);
    assert_eq!(get(&metrics.notifications_sent, &["gone"]), 0);
    assert!(get(&metrics.notifications_failed, &["gone", "transient"]) >= 1);
    assert_eq!(pending_files(&settings.outbox_dir), 0);
    notifier.stop().await;
}

/// The subjects of the emails `server` received, in no particular order.
fn subjects(mails: &[Vec<u8>]) -> Vec<String> {
    mails
        .iter()
        .map(|m| {
            mail_parser::MessageParser::default()
                .parse(m)
                .and_then(|m| m.subject().map(str::to_string))
                .expect("an email with a subject")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_pages_a_critical_only_hook_updates_the_team_email_and_both_hear_the_resolution(
) {
    // The team subscribes by email at warning and above; the on-call hook
    // only at critical. An alert fires as a warning, escalates to
    // critical an hour later, and resolves an hour after that.
    let dir = tempfile::tempdir().unwrap();
    let server = smtp::SmtpServer::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let mut pages = serve(listener, &[Answer::Status(200)]);
    let mut settings = email_settings(dir.path(), server.port());
    settings.receivers.push(Receiver {
        name: "oncall".into(),
        kind: hook(url, Duration::from_secs(5)),
    });
    let mut pager = Subscription::new("pager", &["oncall"]);
    pager.group_wait = Duration::ZERO;
    pager.min_severity = Severity::Critical;
    settings.subscriptions.push(pager);
    let clock = Arc::new(ManualClock::at(1_704_096_300));
    let metrics = Metrics::new();
    let mut notifier = Notifier::start(
        &settings,
        dir.path(),
        Arc::new(Mutex::new(SilenceStore::in_memory())),
        clock.clone(),
        metrics.clone(),
    )
    .expect("notifier starts");
    let backlog = notifier.backlog();
    let delivered = || async {
        tokio::time::timeout(WAIT, backlog.drained())
            .await
            .expect("delivered within the wait");
    };

    let mut warning = transition("checkouts", Status::Firing);
    warning.severity = Severity::Warning;
    notifier.alerts(std::slice::from_ref(&warning)).unwrap();
    delivered().await;
    let mails = server.wait_for_messages(1);
    assert_eq!(
        subjects(&mails),
        ["[FIRING] checkouts dropped 93% (country=FI)"]
    );
    assert!(pages.try_recv().is_err(), "a warning does not page");

    clock.advance(3600);
    let escalated = Transition {
        severity: Severity::Critical,
        escalated_from: Some(Severity::Warning),
        observed: 0.0,
        deviation_pct: Some(-100.0),
        bucket_start: warning.bucket_start + 3600,
        bucket_end: warning.bucket_end + 3600,
        ..warning.clone()
    };
    notifier.alerts(std::slice::from_ref(&escalated)).unwrap();
    delivered().await;
    let (_, page) = pages.try_recv().expect("the escalation pages");
    assert_eq!(
        (&page["reason"], &page["status"]),
        (&serde_json::json!("new"), &serde_json::json!("firing"))
    );
    let alert = &page["alerts"][0];
    assert_eq!(alert["alert_id"], warning.alert_id.as_str());
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["escalated_from"], "warning");
    assert_eq!(
        alert["summary"],
        "checkouts dropped to 0 (country=FI) (escalated from warning)"
    );
    let mut mails = subjects(&server.wait_for_messages(2));
    mails.sort();
    assert_eq!(
        mails,
        [
            "[CRITICAL] checkouts dropped to 0 (country=FI) (escalated from warning)",
            "[FIRING] checkouts dropped 93% (country=FI)",
        ],
        "the team's update names the escalation; no second alert"
    );
    assert!(pages.try_recv().is_err(), "paged once");

    clock.advance(3600);
    let resolved = Transition {
        status: Status::Resolved,
        escalated_from: None,
        observed: 40.0,
        deviation_pct: Some(0.0),
        bucket_start: escalated.bucket_start + 3600,
        bucket_end: escalated.bucket_end + 3600,
        ..escalated.clone()
    };
    notifier.alerts(&[resolved]).unwrap();
    delivered().await;
    let (_, back) = pages.try_recv().expect("the pager hears the resolution");
    assert_eq!(
        (&back["reason"], &back["alerts"][0]["status"]),
        (
            &serde_json::json!("resolved"),
            &serde_json::json!("resolved")
        )
    );
    let mails = subjects(&server.wait_for_messages(3));
    assert!(
        mails.contains(&"[RESOLVED] checkouts back to normal (country=FI)".to_string()),
        "{mails:?}"
    );
    notifier.stop().await;
    assert!(pages.try_recv().is_err(), "nothing more");
    assert_eq!(server.messages().len(), 3, "three emails in all");
}
