//! Email notifications against a real SMTP server (aiosmtpd on 127.0.0.1,
//! see `tests/common/smtp.rs`): what arrives is parsed and checked —
//! headers, the text part, the HTML part, the inline charts — and failures
//! are classified the way the delivery worker needs (server down →
//! transient, then delivered once it is back; 5xx → permanent). STARTTLS
//! and SMTPS are checked against a relay whose certificate an internal CA
//! issued (`ca_file`). Without a relay, emails are `.eml` files.

#[path = "common/smtp.rs"]
mod smtp;
#[path = "common/tls.rs"]
mod tls;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use detectors::Direction;
use kpiwatch::alert::{RecentBucket, Severity, Status, Transition};
use kpiwatch::notify::email::{eml_path, EmailSender};
use kpiwatch::notify::settings::{CaFile, NotifySettings, Smtp, SmtpSecurity};
use kpiwatch::notify::{DeliveryError, Notification, Reason};
use mail_parser::{MessageParser, MimeHeaders};
use smtp::SmtpServer;

/// 2024-01-01 00:00:00 UTC.
const T0: i64 = 1_704_067_200;
const FROM: &str = "kpiwatch <kpiwatch@example.com>";

fn to() -> Vec<String> {
    vec![
        "pm@example.com".to_string(),
        "Growth Team <growth@example.com>".to_string(),
    ]
}

/// 48 one-minute buckets of `kpi` around `expected`; from bucket 44 on the
/// value is `factor` × expected and anomalous.
fn transition(kpi: &str, labels: &[(&str, &str)], factor: f64, severity: Severity) -> Transition {
    let recent: Vec<RecentBucket> = (0..48)
        .map(|i| {
            let t = T0 + 36_000 + i * 60;
            let expected = 120.0 + 15.0 * (((i - 47) as f64) / 8.0).sin();
            let anomalous = i >= 44;
            RecentBucket {
                t,
                value: if anomalous {
                    expected * factor
                } else {
                    expected + 4.0 * ((i * 7 % 5) as f64 - 2.0)
                },
                expected: expected as f32,
                lower: (expected * 0.8) as f32,
                upper: (expected * 1.2) as f32,
                anomalous,
            }
        })
        .collect();
    let last = *recent.last().expect("buckets");
    Transition {
        status: Status::Firing,
        alert_id: format!("{kpi}-{}", labels.len()),
        kpi: kpi.to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        severity,
        escalated_from: None,
        direction: if factor < 1.0 {
            Direction::Drop
        } else {
            Direction::Spike
        },
        started_at: recent[44].t,
        bucket_start: last.t,
        bucket_end: last.t + 60,
        observed: last.value,
        expected: f64::from(last.expected),
        lower: f64::from(last.lower),
        upper: f64::from(last.upper),
        score: 0.62,
        deviation_pct: Some((factor - 1.0) * 100.0),
        evidence: kpiwatch::alert::Evidence::bucket(last.t, last.t + 60, Some(3.3e-8)),
        description: Some("Completed checkouts per minute".to_string()),
        runbook: Some("https://wiki.example.com/runbooks/checkouts".to_string()),
        dashboard: Some(
            "https://grafana.example.com/d/shop?var-country=FI&from=now-1h".to_string(),
        ),
        recent,
    }
}

/// Two firing alerts: checkouts in FI down 63%, and refunds in a shop
/// whose name (it came from an event) is full of HTML.
fn notification(id: &str) -> Notification {
    Notification {
        id: id.to_string(),
        receiver: "growth-team".to_string(),
        subscription: "shop-kpis".to_string(),
        group: BTreeMap::from([("team".to_string(), "growth".to_string())]),
        status: Status::Firing,
        reason: Reason::New,
        alerts: vec![
            transition("checkouts", &[("country", "FI")], 0.37, Severity::Critical),
            transition(
                "refunds",
                &[("shop", "<script>alert('x')</script> & \"Sons\"")],
                1.4,
                Severity::Warning,
            ),
        ],
        omitted: 0,
        created_at_ms: (T0 + 10 * 3600 + 48 * 60) * 1000,
    }
}

fn smtp_settings(server: &SmtpServer, state: &std::path::Path) -> NotifySettings {
    let mut settings = NotifySettings::none(state);
    settings.from = FROM.to_string();
    settings.smtp = Some(Smtp {
        host: "127.0.0.1".to_string(),
        port: server.port(),
        security: SmtpSecurity::None,
        // Names no environment sets: the test server takes no credentials.
        username_env: "KPIWATCH_TEST_EMAIL_NO_SUCH_USERNAME".to_string(),
        password_env: "KPIWATCH_TEST_EMAIL_NO_SUCH_PASSWORD".to_string(),
        timeout: Duration::from_secs(10),
        pool_size: 4,
        ca: None,
    });
    settings
}

fn assert_png(bytes: &[u8]) -> (u32, u32) {
    let mut reader = png::Decoder::new(bytes)
        .read_info()
        .expect("the chart has a PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("the chart decodes");
    (info.width, info.height)
}

#[tokio::test]
async fn email_arrives_at_a_real_smtp_server_with_text_html_and_inline_charts() {
    let server = SmtpServer::start();
    let state = tempfile::tempdir().expect("state dir");
    let sender = EmailSender::new(&smtp_settings(&server, state.path())).expect("sender");

    let n = notification("n-7c1e55d0a9b3");
    sender
        .send(&n, &to(), Some("https://kpiwatch.example.com"))
        .await
        .expect("the server accepts the email");

    let raw = server.wait_for_messages(1).remove(0);
    let mail = MessageParser::default()
        .parse(&raw)
        .expect("a parseable message");

    // Headers.
    assert_eq!(
        mail.subject(),
        Some("[FIRING:2] checkouts dropped 63% (country=FI) and 1 more")
    );
    assert_eq!(mail.message_id(), Some("n-7c1e55d0a9b3@kpiwatch"));
    assert_eq!(
        mail.from()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("kpiwatch@example.com")
    );
    let recipients: Vec<&str> = mail
        .to()
        .expect("a To header")
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(recipients, ["pm@example.com", "growth@example.com"]);
    let header = |name: &str| {
        mail.header_raw(name)
            .unwrap_or_else(|| panic!("header {name}"))
            .trim()
            .to_string()
    };
    assert_eq!(header("X-Kpiwatch-Notification-Id"), "n-7c1e55d0a9b3");
    assert_eq!(header("X-Kpiwatch-Status"), "firing");
    // aiosmtpd records the SMTP envelope: both recipients got it.
    let rcpt = header("X-RcptTo");
    assert!(
        rcpt.contains("pm@example.com") && rcpt.contains("growth@example.com"),
        "{rcpt}"
    );
    assert_eq!(
        mail.date().map(|d| d.to_rfc3339()),
        Some("2024-01-01T10:48:00Z".to_string())
    );

    // The text part: what changed, by how much, since when.
    let text = mail.body_text(0).expect("a text part");
    for expected in [
        "FIRING checkouts dropped 63%",
        "Evidence:  44.4 in 10:47–10:48 UTC, expected 120 (normal 96 – 144)",
        "Deviation: -63%",
        "Unusual:   about 1 in 30 million",
        "Since:     2024-01-01 10:44 UTC (4 min)",
        "Severity:  critical, drop",
        "FIRING refunds rose 40%",
        "Runbook:   https://wiki.example.com/runbooks/checkouts",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }

    // The HTML part: labels escaped, charts referenced by cid.
    let html = mail.body_html(0).expect("an HTML part");
    assert!(
        html.contains(
            "shop=&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;Sons&quot;"
        ),
        "escaped label in\n{html}"
    );
    assert!(!html.contains("<script>"), "no raw label in the HTML");
    assert!(
        html.contains("href=\"https://grafana.example.com/d/shop?var-country=FI&amp;from=now-1h\"")
    );
    let cids: Vec<&str> = html
        .split("src=\"cid:")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').expect("closing quote")])
        .collect();
    assert_eq!(cids.len(), 2, "one chart per alert");

    // The inline images: one per cid, valid PNGs.
    let images: Vec<_> = mail
        .parts
        .iter()
        .filter(|p| p.is_content_type("image", "png"))
        .collect();
    assert_eq!(images.len(), 2);
    for cid in cids {
        let image = images
            .iter()
            .find(|p| p.content_id() == Some(cid))
            .unwrap_or_else(|| panic!("an image part with Content-ID <{cid}>"));
        assert_eq!(assert_png(image.contents()), (600, 240));
    }
}

/// Settings for the relay at `localhost` (the name in its certificate),
/// with `security`, trusting the CA in `ca` if given.
fn tls_settings(
    server: &SmtpServer,
    state: &Path,
    security: SmtpSecurity,
    ca: Option<&Path>,
) -> NotifySettings {
    let mut settings = smtp_settings(server, state);
    if let Some(smtp) = settings.smtp.as_mut() {
        smtp.host = "localhost".to_string();
        smtp.security = security;
        smtp.ca = ca.map(|path| CaFile {
            path: path.to_path_buf(),
            pem: std::fs::read(path).expect("the CA file is readable"),
        });
    }
    settings
}

#[tokio::test]
async fn starttls_to_a_relay_of_the_configured_ca_delivers() {
    let dir = tempfile::tempdir().expect("certificate dir");
    let certs = tls::certificates(dir.path());
    // The server refuses MAIL before STARTTLS, so a delivery is proof of TLS.
    let server = SmtpServer::start_with_starttls(&certs.cert, &certs.key);
    let settings = tls_settings(&server, dir.path(), SmtpSecurity::StartTls, Some(&certs.ca));
    let sender = EmailSender::new(&settings).expect("sender");
    sender
        .send(&notification("n-starttls"), &to(), None)
        .await
        .expect("delivered over STARTTLS");
    let mails = server.wait_for_messages(1);
    let message = MessageParser::default().parse(&mails[0]).expect("parsed");
    assert_eq!(message.message_id(), Some("n-starttls@kpiwatch"));
}

#[tokio::test]
async fn smtps_to_a_relay_of_the_configured_ca_delivers() {
    let dir = tempfile::tempdir().expect("certificate dir");
    let certs = tls::certificates(dir.path());
    let server = SmtpServer::start_with_smtps(&certs.cert, &certs.key);
    let settings = tls_settings(&server, dir.path(), SmtpSecurity::Tls, Some(&certs.ca));
    let sender = EmailSender::new(&settings).expect("sender");
    sender
        .send(&notification("n-smtps"), &to(), None)
        .await
        .expect("delivered over SMTPS");
    let mails = server.wait_for_messages(1);
    let message = MessageParser::default().parse(&mails[0]).expect("parsed");
    assert_eq!(message.message_id(), Some("n-smtps@kpiwatch"));
}

#[tokio::test]
async fn a_relay_certificate_of_an_unknown_ca_is_retried_and_nothing_is_sent_in_clear() {
    let dir = tempfile::tempdir().expect("certificate dir");
    let certs = tls::certificates(dir.path());
    let server = SmtpServer::start_with_starttls(&certs.cert, &certs.key);
    // No ca_file: the relay's certificate chains to no trusted root.
    let settings = tls_settings(&server, dir.path(), SmtpSecurity::StartTls, None);
    let sender = EmailSender::new(&settings).expect("sender");
    let refused = sender.send(&notification("n-untrusted"), &to(), None).await;
    // Transient: the outbox keeps the email while an operator fixes the
    // trust (adds ca_file) or the relay's certificate.
    match &refused {
        Err(DeliveryError::Transient(reason)) => assert!(
            reason.contains("certificate") || reason.contains("UnknownIssuer"),
            "{reason}"
        ),
        other => panic!("an untrusted relay must be a transient failure, got {other:?}"),
    }
    assert!(server.messages().is_empty(), "nothing may be delivered");
}

#[tokio::test]
async fn smtp_server_down_is_transient_and_sending_succeeds_once_it_is_back() {
    let mut server = SmtpServer::start();
    let state = tempfile::tempdir().expect("state dir");
    let sender = EmailSender::new(&smtp_settings(&server, state.path())).expect("sender");

    // A pooled connection exists...
    sender
        .send(&notification("n-before"), &to(), None)
        .await
        .expect("delivered while the server is up");
    assert_eq!(server.wait_for_messages(1).len(), 1);

    // ...and dies with the server.
    server.stop();
    let down = sender.send(&notification("n-during"), &to(), None).await;
    assert!(
        matches!(down, Err(DeliveryError::Transient(_))),
        "server down must be retried, got {down:?}"
    );

    server.restart();
    sender
        .send(&notification("n-during"), &to(), None)
        .await
        .expect("delivered once the server is back");
    let mails = server.wait_for_messages(2);
    assert_eq!(mails.len(), 2, "nothing was delivered while down");
    let ids: Vec<String> = mails
        .iter()
        .map(|raw| {
            MessageParser::default()
                .parse(raw)
                .and_then(|m| m.message_id().map(str::to_owned))
                .expect("a Message-ID")
        })
        .collect();
    assert!(ids.contains(&"n-during@kpiwatch".to_string()), "{ids:?}");
}

#[tokio::test]
async fn concurrent_sends_reuse_at_most_pool_size_connections() {
    let server = SmtpServer::start();
    let state = tempfile::tempdir().expect("state dir");
    let mut settings = smtp_settings(&server, state.path());
    if let Some(smtp) = settings.smtp.as_mut() {
        smtp.pool_size = 2;
    }
    let sender = std::sync::Arc::new(EmailSender::new(&settings).expect("sender"));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let sender = std::sync::Arc::clone(&sender);
        tasks.spawn(async move {
            let mut n = notification(&format!("n-pool-{i}"));
            n.alerts.truncate(1);
            sender.send(&n, &to(), None).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("task").expect("delivered");
    }
    // aiosmtpd stamps each message with the client's address and port
    // (X-Peer): one port per TCP connection.
    let mails = server.wait_for_messages(12);
    let peers: std::collections::BTreeSet<String> = mails
        .iter()
        .map(|raw| {
            MessageParser::default()
                .parse(raw)
                .and_then(|m| m.header_raw("X-Peer").map(|p| p.trim().to_string()))
                .expect("an X-Peer header")
        })
        .collect();
    assert!(
        (1..=2).contains(&peers.len()),
        "12 emails over at most 2 connections, got {peers:?}"
    );
}

#[tokio::test]
async fn smtp_5xx_rejection_is_permanent() {
    // 552: the email (with its charts) is larger than the server accepts.
    let server = SmtpServer::start_with_max_size(2_000);
    let state = tempfile::tempdir().expect("state dir");
    let sender = EmailSender::new(&smtp_settings(&server, state.path())).expect("sender");
    let result = sender.send(&notification("n-too-big"), &to(), None).await;
    assert!(
        matches!(result, Err(DeliveryError::Permanent(_))),
        "a 5xx reply is final, got {result:?}"
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn bad_recipient_address_is_permanent() {
    let server = SmtpServer::start();
    let state = tempfile::tempdir().expect("state dir");
    let sender = EmailSender::new(&smtp_settings(&server, state.path())).expect("sender");
    let result = sender
        .send(
            &notification("n-bad-to"),
            &["not an address".to_string()],
            None,
        )
        .await;
    assert!(
        matches!(result, Err(DeliveryError::Permanent(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn without_smtp_emails_are_written_as_eml_files_named_by_notification() {
    let state = tempfile::tempdir().expect("state dir");
    let mut settings = NotifySettings::none(state.path());
    settings.from = FROM.to_string();
    assert!(!settings.mail_dir.exists());
    let sender = EmailSender::new(&settings).expect("sender creates the mail directory");
    assert!(settings.mail_dir.is_dir());

    let n = notification("n-file-1");
    sender.send(&n, &to(), None).await.expect("written");
    // A retry of the same notification replaces its file, never adds one.
    sender.send(&n, &to(), None).await.expect("written again");

    let files: Vec<_> = std::fs::read_dir(&settings.mail_dir)
        .expect("mail dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files, [eml_path(&settings.mail_dir, "n-file-1")]);
    let raw = std::fs::read(&files[0]).expect("the .eml reads");
    let mail = MessageParser::default().parse(&raw).expect("parseable");
    assert_eq!(mail.message_id(), Some("n-file-1@kpiwatch"));
    assert_eq!(
        mail.subject(),
        Some("[FIRING:2] checkouts dropped 63% (country=FI) and 1 more")
    );
    assert_eq!(
        mail.parts
            .iter()
            .filter(|p| p.is_content_type("image", "png"))
            .count(),
        2
    );
}

#[test]
fn hostile_text_in_labels_descriptions_and_links_stays_text_in_the_html_part() {
    let mut n = notification("n-hostile");
    n.subscription = "shop-kpis <b>".to_string();
    n.group = BTreeMap::from([("team".to_string(), "<i>growth</i>".to_string())]);
    let a = &mut n.alerts[0];
    a.labels = BTreeMap::from([
        ("<img src=x onerror=alert(1)>".to_string(), "FI".to_string()),
        (
            "shop".to_string(),
            "\"><script>alert(1)</script>".to_string(),
        ),
    ]);
    a.description = Some("Checkouts <a href=\"https://evil.example\">click</a> & more".to_string());
    a.runbook = Some("javascript:alert(document.cookie)".to_string());
    a.dashboard = Some("https://grafana.example.com/\" onmouseover=\"alert(1)".to_string());
    let message = kpiwatch::notify::email::message(&n, FROM, &to(), None).expect("a message");
    let raw = message.formatted();
    let mail = MessageParser::default()
        .parse(&raw)
        .expect("a parseable message");
    let html = mail.body_html(0).expect("an HTML part");

    for raw in [
        "<script",
        "<img src=x",
        "<a href=\"https://evil",
        "<b>",
        "<i>",
        "href=\"javascript:",
        "\" onmouseover=\"",
    ] {
        assert!(!html.contains(raw), "{raw:?} reached the HTML:\n{html}");
    }
    for escaped in [
        "&lt;img src=x onerror=alert(1)&gt;=FI",
        "shop=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;",
        "Checkouts &lt;a href=&quot;https://evil.example&quot;&gt;click&lt;/a&gt; &amp; more",
        "javascript:alert(document.cookie)",
        "href=\"https://grafana.example.com/&quot; onmouseover=&quot;alert(1)\"",
        "subscription shop-kpis &lt;b&gt;",
    ] {
        assert!(html.contains(escaped), "{escaped:?} missing from\n{html}");
    }
}
