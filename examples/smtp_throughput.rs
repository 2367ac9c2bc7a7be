//! How fast `EmailSender` delivers over its pooled SMTP transport, against
//! a real SMTP server (aiosmtpd on 127.0.0.1, the tests' helper).
//!
//! ```text
//! cargo run --release --example smtp_throughput -- [N=200] [POOL=4]
//! ```
//!
//! Two kinds of email, each sent N times one after another and then N at
//! once (the pool caps open connections at POOL):
//!
//! - `bare`: a notification without alerts — no chart, a few hundred
//!   bytes: the SMTP path itself (pool, protocol, aiosmtpd).
//! - `chart`: one alert with its 600×240 chart — what a real notification
//!   costs, including rendering the PNG.
//!
//! Then, for comparison, one bare lettre connection without the transport,
//! with and without `TCP_NODELAY`: lettre (0.11) leaves Nagle's algorithm on
//! and writes a message and its final `\r\n.\r\n` in two writes, so on
//! one connection each small email waits for the server's delayed ACK
//! (~40 ms on Linux). That, not opening connections, is what one-at-a-time
//! sending costs.
//!
//! Needs a Python with aiosmtpd (`scripts/ensure-test-deps`).

#[path = "../tests/common/smtp.rs"]
mod smtp;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use detectors::Direction;
use kpiwatch::alert::{RecentBucket, Severity, Status, Transition};
use kpiwatch::notify::email::{message, EmailSender};
use kpiwatch::notify::settings::{NotifySettings, Smtp, SmtpSecurity};
use kpiwatch::notify::{Notification, Reason};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;

const T0: i64 = 1_704_067_200;
const FROM: &str = "kpiwatch <kpiwatch@example.com>";

fn alert() -> Transition {
    let recent: Vec<RecentBucket> = (0..48)
        .map(|i| {
            let expected = 120.0 + 15.0 * (f64::from(i) / 8.0).sin();
            RecentBucket {
                t: T0 + i64::from(i) * 60,
                value: if i >= 44 { expected * 0.4 } else { expected },
                expected: expected as f32,
                lower: (expected * 0.8) as f32,
                upper: (expected * 1.2) as f32,
                anomalous: i >= 44,
            }
        })
        .collect();
    Transition {
        status: Status::Firing,
        alert_id: "a1".to_string(),
        kpi: "checkouts".to_string(),
        labels: BTreeMap::from([("country".to_string(), "FI".to_string())]),
        severity: Severity::Critical,
        escalated_from: None,
        direction: Direction::Drop,
        started_at: T0 + 44 * 60,
        bucket_start: T0 + 47 * 60,
        bucket_end: T0 + 48 * 60,
        observed: 48.0,
        expected: 120.0,
        lower: 96.0,
        upper: 144.0,
        score: 0.6,
        deviation_pct: Some(-60.0),
        evidence: Default::default(),
        description: None,
        runbook: None,
        dashboard: None,
        recent,
    }
}

fn notification(id: String, alerts: Vec<Transition>) -> Notification {
    Notification {
        id,
        receiver: "bench".to_string(),
        subscription: "bench".to_string(),
        group: BTreeMap::new(),
        status: Status::Firing,
        reason: Reason::New,
        alerts,
        omitted: 0,
        created_at_ms: T0 * 1000,
    }
}

fn report(what: &str, n: usize, elapsed: Duration) {
    let ms = elapsed.as_secs_f64() * 1000.0 / n as f64;
    println!(
        "{what:<28} {n:>5} msgs  {ms:>8.2} ms/msg  {:>8.1} msgs/s",
        n as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let pool: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);

    let server = smtp::SmtpServer::start();
    let state = tempfile::tempdir().expect("a temporary directory");
    let mut settings = NotifySettings::none(state.path());
    settings.from = FROM.to_string();
    settings.smtp = Some(Smtp {
        host: "127.0.0.1".to_string(),
        port: server.port(),
        security: SmtpSecurity::None,
        username_env: "KPIWATCH_BENCH_NO_USERNAME".to_string(),
        password_env: "KPIWATCH_BENCH_NO_PASSWORD".to_string(),
        timeout: Duration::from_secs(30),
        pool_size: pool,
        ca: None,
    });
    let sender = Arc::new(EmailSender::new(&settings).expect("an SMTP sender"));
    let to = Arc::new(vec!["pm@example.com".to_string()]);
    println!("aiosmtpd on 127.0.0.1:{}, pool of {pool}", server.port());

    // Building the email alone (chart rendering and MIME encoding).
    let with_chart = notification("build".to_string(), vec![alert()]);
    let start = Instant::now();
    for _ in 0..n.min(50) {
        message(&with_chart, FROM, &to, None).expect("an email");
    }
    report("build only (chart)", n.min(50), start.elapsed());

    let mut sent = 0;
    for (kind, alerts) in [("bare", Vec::new()), ("chart", vec![alert()])] {
        // One connection is opened by the first send; warm it up so the
        // numbers are the steady state.
        let warm = notification(format!("{kind}-warm"), alerts.clone());
        sender.send(&warm, &to, None).await.expect("warm-up sent");
        sent += 1;

        let start = Instant::now();
        for i in 0..n {
            let note = notification(format!("{kind}-seq-{i}"), alerts.clone());
            sender.send(&note, &to, None).await.expect("sent");
        }
        report(&format!("{kind}, sequential"), n, start.elapsed());
        sent += n;

        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let (sender, to) = (Arc::clone(&sender), Arc::clone(&to));
            let note = notification(format!("{kind}-par-{i}"), alerts.clone());
            tasks.spawn(async move { sender.send(&note, &to, None).await });
        }
        while let Some(result) = tasks.join_next().await {
            result.expect("the task ran").expect("sent");
        }
        report(&format!("{kind}, {n} concurrent"), n, start.elapsed());
        sent += n;
    }

    let bare = message(
        &notification("raw".to_string(), Vec::new()),
        FROM,
        &to,
        None,
    )
    .expect("an email");
    for nodelay in [false, true] {
        let elapsed = raw_connection(server.port(), nodelay, &bare, n).await;
        report(&format!("one connection, nodelay={nodelay}"), n, elapsed);
        sent += n;
    }

    let received = server.wait_for_messages(sent).len();
    assert_eq!(received, sent, "every email reached the server");
    println!("aiosmtpd received all {received} emails");
}

/// Sends `email` `n` times over one lettre connection on a socket with
/// `TCP_NODELAY` set to `nodelay`.
async fn raw_connection(port: u16, nodelay: bool, email: &lettre::Message, n: usize) -> Duration {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connected");
    stream.set_nodelay(nodelay).expect("TCP_NODELAY set");
    let mut conn =
        AsyncSmtpConnection::connect_with_transport(Box::new(stream), &ClientId::default())
            .await
            .expect("EHLO answered");
    let (envelope, bytes) = (email.envelope().clone(), email.formatted());
    let start = Instant::now();
    for _ in 0..n {
        conn.send(&envelope, &bytes).await.expect("sent");
    }
    let elapsed = start.elapsed();
    let _ = conn.quit().await;
    elapsed
}
