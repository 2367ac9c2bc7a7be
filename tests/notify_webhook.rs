//! Webhooks against a real HTTP server: an axum app bound to 127.0.0.1:0
//! inside the test records every request (method, path, headers, body) into a
//! channel and answers from a script (a status, or never). The tests check
//! what a receiver gets in each format, that the signature verifies, that the
//! idempotency key is the notification id, and how each answer is classified.
//! An https receiver behind an internal CA (`ca_file`) is reached over TLS.

#[path = "common/tls.rs"]
mod tls;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use detectors::Direction;
use kpiwatch::alert::{RecentBucket, Severity, Status, Transition};
use kpiwatch::notify::settings::{CaFile, Webhook, WebhookFormat};
use kpiwatch::notify::webhook::{self, verify, WebhookSender};
use kpiwatch::notify::{DeliveryError, Notification, Reason};
use serde_json::Value;
use tokio::sync::{mpsc, Notify};

const SECRET: &str = "whsec_integration_test";
const SECRET_ENV: &str = "KPIWATCH_TEST_WEBHOOK_SECRET";
const EMPTY_SECRET_ENV: &str = "KPIWATCH_TEST_WEBHOOK_SECRET_EMPTY";
const UNSET_SECRET_ENV: &str = "KPIWATCH_TEST_WEBHOOK_SECRET_NEVER_SET";
const NOW: i64 = 1_704_104_112;

/// Sets the secret variables once, before any test reads them (setting the
/// environment while other threads read it is a race).
fn secrets() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        std::env::set_var(SECRET_ENV, SECRET);
        std::env::set_var(EMPTY_SECRET_ENV, "");
    });
}

/// One request as the receiver saw it.
#[derive(Debug)]
struct Received {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// This status with this body.
    Status(u16, &'static str),
    /// Never: the handler waits on a signal that only comes when the test's
    /// receiver is dropped.
    Never,
}

#[derive(Clone)]
struct ServerState {
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: mpsc::UnboundedSender<Received>,
    release: Arc<Notify>,
}

/// A webhook receiver on 127.0.0.1. Answers the scripted replies in order,
/// then 200 to everything.
struct Receiver {
    base: String,
    requests: mpsc::UnboundedReceiver<Received>,
    release: Arc<Notify>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(script: &[Reply]) -> Self {
        let (seen, requests) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let state = ServerState {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            seen,
            release: release.clone(),
        };
        let app = Router::new().fallback(record).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base,
            requests,
            release,
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The next request; fails the test if none comes within 10 s.
    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("the receiver got no request within 10 s")
            .expect("the server stopped")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.release.notify_waiters();
        self.server.abort();
    }
}

async fn record(
    State(s): State<ServerState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let _ = s.seen.send(Received {
        method,
        path: uri.path().to_string(),
        headers,
        body,
    });
    let reply = s.script.lock().unwrap().pop_front();
    match reply.unwrap_or(Reply::Status(200, "ok")) {
        Reply::Status(code, body) => (StatusCode::from_u16(code).unwrap(), body),
        Reply::Never => {
            s.release.notified().await;
            (StatusCode::OK, "too late")
        }
    }
}

fn hook(url: String, format: WebhookFormat) -> Webhook {
    Webhook {
        url,
        format,
        secret_env: Some(SECRET_ENV.to_string()),
        timeout: Duration::from_secs(5),
        headers: BTreeMap::from([("X-Team".to_string(), "checkout".to_string())]),
        ca: None,
    }
}

fn notification() -> Notification {
    let firing = Transition {
        status: Status::Firing,
        alert_id: "3f2a9c0d1e4b5a69".into(),
        kpi: "checkouts".into(),
        labels: BTreeMap::from([("country".to_string(), "FI".to_string())]),
        severity: Severity::Critical,
        escalated_from: None,
        direction: Direction::Drop,
        started_at: 1704103500,
        bucket_start: 1704103800,
        bucket_end: 1704104100,
        observed: 37.0,
        expected: 100.0,
        lower: 80.0,
        upper: f64::INFINITY,
        score: 0.97,
        deviation_pct: Some(-63.0),
        evidence: Default::default(),
        description: None,
        runbook: Some("https://wiki.example/runbooks/checkouts".into()),
        dashboard: None,
        recent: vec![RecentBucket {
            t: 1_704_103_800,
            value: 37.0,
            expected: 100.0,
            lower: 80.0,
            upper: f32::INFINITY,
            anomalous: true,
        }],
    };
    let resolved = Transition {
        status: Status::Resolved,
        alert_id: "77aa00bb11cc22dd".into(),
        labels: BTreeMap::from([("country".to_string(), "SE".to_string())]),
        observed: 205.0,
        expected: 210.0,
        deviation_pct: Some(-2.4),
        evidence: Default::default(),
        bucket_end: 1704104400,
        ..firing.clone()
    };
    Notification {
        id: "n-5d41402abc4b2a76".into(),
        receiver: "shop-hook".into(),
        subscription: "checkout-team".into(),
        group: BTreeMap::from([("kpi".to_string(), "checkouts".to_string())]),
        status: Status::Firing,
        reason: Reason::New,
        alerts: vec![firing, resolved],
        omitted: 0,
        created_at_ms: 1_704_104_112_345,
    }
}

/// Sends `n` once in `format` and returns what the receiver got, after
/// checking what every format carries: POST, JSON, user agent, the
/// notification id twice, the extra header and a valid signature.
async fn deliver_in(format: WebhookFormat) -> (Received, Notification) {
    secrets();
    let mut rx = Receiver::start(&[]).await;
    let n = notification();
    let h = hook(rx.url("/hooks/in"), format);
    WebhookSender::new()
        .send(&h, &n, Some("https://kpiwatch.example"), NOW)
        .await
        .expect("200 is a delivery");
    let got = rx.next().await;
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.path, "/hooks/in");
    assert_eq!(got.header("content-type"), Some("application/json"));
    let ua = got.header("user-agent").unwrap_or_default();
    assert!(ua.starts_with("kpiwatch/"), "user agent {ua:?}");
    assert_eq!(got.header("idempotency-key"), Some(n.id.as_str()));
    assert_eq!(
        got.header("x-kpiwatch-notification-id"),
        Some(n.id.as_str())
    );
    assert_eq!(got.header("x-team"), Some("checkout"));
    let sig = got
        .header(webhook::SIGNATURE_HEADER)
        .expect("signed: the secret variable is set");
    assert!(sig.starts_with(&format!("t={NOW},v1=")), "{sig}");
    assert!(verify(SECRET.as_bytes(), sig, &got.body, NOW + 5, 300));
    assert!(!verify(b"wrong secret", sig, &got.body, NOW + 5, 300));
    (got, n)
}

#[tokio::test]
async fn kpiwatch_format_arrives_signed_with_the_notification_id_as_idempotency_key() {
    let (got, n) = deliver_in(WebhookFormat::Kpiwatch).await;
    let v = got.json();
    assert_eq!(v["version"], "1");
    assert_eq!(v["id"], n.id.as_str());
    assert_eq!(v["subscription"], "checkout-team");
    assert_eq!(v["status"], "firing");
    assert_eq!(v["reason"], "new");
    assert_eq!(
        v["alerts"][0]["summary"],
        "checkouts dropped 63% (country=FI)"
    );
    assert_eq!(v["alerts"][0]["observed"], 37.0);
    assert!(
        v["alerts"][0]["upper"].is_null(),
        "infinite band edge → null"
    );
    assert_eq!(v["alerts"][1]["status"], "resolved");
    // The body is exactly what `body` renders: receivers can rely on docs.
    assert_eq!(
        got.body.as_ref(),
        webhook::body(
            &n,
            WebhookFormat::Kpiwatch,
            Some("https://kpiwatch.example")
        )
    );
}

#[tokio::test]
async fn alertmanager_format_arrives_as_an_alertmanager_payload() {
    let (got, _) = deliver_in(WebhookFormat::Alertmanager).await;
    let v = got.json();
    assert_eq!(v["version"], "4");
    assert_eq!(v["status"], "firing");
    assert_eq!(v["receiver"], "shop-hook");
    assert_eq!(v["externalURL"], "https://kpiwatch.example");
    assert_eq!(v["groupLabels"]["alertname"], "checkouts");
    assert!(v["groupKey"].as_str().is_some_and(|k| !k.is_empty()));
    let firing = &v["alerts"][0];
    assert_eq!(firing["labels"]["alertname"], "checkouts");
    assert_eq!(firing["labels"]["country"], "FI");
    assert_eq!(firing["labels"]["severity"], "critical");
    assert_eq!(firing["fingerprint"], "3f2a9c0d1e4b5a69");
    assert_eq!(firing["startsAt"], "2024-01-01T10:05:00Z");
    assert_eq!(firing["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        firing["annotations"]["summary"],
        "checkouts dropped 63% (country=FI)"
    );
    assert_eq!(
        firing["annotations"]["runbook_url"],
        "https://wiki.example/runbooks/checkouts"
    );
    assert_eq!(v["alerts"][1]["endsAt"], "2024-01-01T10:20:00Z");
}

#[tokio::test]
async fn slack_format_arrives_as_blocks_with_the_numbers() {
    let (got, _) = deliver_in(WebhookFormat::Slack).await;
    let v = got.json();
    assert!(v["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("[FIRING]")));
    let blocks = v["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .expect("the first alert's section has fields")
        .iter()
        .filter_map(|f| f["text"].as_str())
        .collect();
    assert!(
        fields.contains(&"*Evidence*\n37 in 10:10–10:15 UTC, expected 100 (normal at least 80)"),
        "{fields:?}"
    );
    assert!(fields.contains(&"*Deviation*\n-63%"), "{fields:?}");
}

#[tokio::test]
async fn requests_are_unsigned_when_the_secret_variable_is_unset_or_empty() {
    secrets();
    let mut rx = Receiver::start(&[]).await;
    let sender = WebhookSender::new();
    for env in [Some(UNSET_SECRET_ENV), Some(EMPTY_SECRET_ENV), None] {
        let mut h = hook(rx.url("/unsigned"), WebhookFormat::Kpiwatch);
        h.secret_env = env.map(str::to_string);
        sender.send(&h, &notification(), None, NOW).await.unwrap();
        let got = rx.next().await;
        assert_eq!(got.header(webhook::SIGNATURE_HEADER), None, "{env:?}");
        assert_eq!(got.header("idempotency-key"), Some("n-5d41402abc4b2a76"));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Transient,
    Permanent,
}

#[tokio::test]
async fn answers_are_classified_ok_transient_or_permanent_by_status() {
    use Outcome::*;
    let table = [
        (200, Ok),
        (204, Ok),
        (408, Transient),
        (425, Transient),
        (429, Transient),
        (500, Transient),
        (503, Transient),
        (301, Permanent),
        (400, Permanent),
        (401, Permanent),
        (410, Permanent),
    ];
    let script: Vec<Reply> = table.iter().map(|&(c, _)| Reply::Status(c, "")).collect();
    let mut rx = Receiver::start(&script).await;
    let sender = WebhookSender::new();
    let mut h = hook(rx.url("/classify"), WebhookFormat::Kpiwatch);
    h.secret_env = None;
    for (code, expected) in table {
        let got = sender.send(&h, &notification(), None, NOW).await;
        rx.next().await;
        let (outcome, text) = match &got {
            Result::Ok(()) => (Ok, String::new()),
            Err(DeliveryError::Transient(e)) => (Transient, e.clone()),
            Err(DeliveryError::Permanent(e)) => (Permanent, e.clone()),
        };
        assert_eq!(outcome, expected, "status {code}: {got:?}");
        if outcome != Ok {
            assert!(text.contains(&code.to_string()), "names the status: {text}");
        }
    }
}

#[tokio::test]
async fn a_server_error_is_transient_and_says_what_the_receiver_answered() {
    let mut rx = Receiver::start(&[Reply::Status(500, "database unavailable\nretry later")]).await;
    let h = hook(rx.url("/services/T0/B0/SECRETPATH"), WebhookFormat::Slack);
    let err = WebhookSender::new()
        .send(&h, &notification(), None, NOW)
        .await
        .unwrap_err();
    rx.next().await;
    let DeliveryError::Transient(text) = &err else {
        panic!("500 must be retried: {err}");
    };
    assert!(text.contains("500"), "{text}");
    assert!(text.contains("database unavailable retry later"), "{text}");
    assert!(text.contains(&rx.base), "names the receiver: {text}");
    assert!(
        !text.contains("SECRETPATH"),
        "the URL path may be a credential: {text}"
    );
    assert!(!text.contains(SECRET), "{text}");
}

#[tokio::test]
async fn not_found_is_permanent() {
    let mut rx = Receiver::start(&[Reply::Status(404, "no such hook")]).await;
    let h = hook(rx.url("/gone"), WebhookFormat::Alertmanager);
    let err = WebhookSender::new()
        .send(&h, &notification(), None, NOW)
        .await
        .unwrap_err();
    rx.next().await;
    assert!(
        matches!(&err, DeliveryError::Permanent(t) if t.contains("404") && t.contains("no such hook")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_transient_after_the_hook_timeout() {
    let mut rx = Receiver::start(&[Reply::Never]).await;
    let mut h = hook(rx.url("/slow"), WebhookFormat::Kpiwatch);
    h.timeout = Duration::from_millis(200);
    let started = Instant::now();
    let err = WebhookSender::new()
        .send(&h, &notification(), None, NOW)
        .await
        .unwrap_err();
    let took = started.elapsed();
    rx.next().await;
    assert!(
        matches!(&err, DeliveryError::Transient(t) if t.contains("did not answer within 200ms")),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(200),
        "gave up early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "the timeout did not apply: {took:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    // A port that was just free: nothing listens on it any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let err = WebhookSender::new()
        .send(
            &hook(url, WebhookFormat::Kpiwatch),
            &notification(),
            None,
            NOW,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Transient(t) if t.contains("cannot connect")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_invalid_url_is_permanent() {
    let err = WebhookSender::new()
        .send(
            &hook("ftp://example.invalid/x".into(), WebhookFormat::Kpiwatch),
            &notification(),
            None,
            NOW,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Permanent(_)), "{err:?}");
}

/// The fault scenario of the issue, from the sender's side: 500, then no
/// answer, then 200 gives transient, transient, ok, and the receiver sees the
/// same body and idempotency key each time, so it can keep exactly one.
#[tokio::test]
async fn five_hundred_then_timeout_then_ok_is_retryable_twice_and_accepted_once() {
    secrets();
    let mut rx = Receiver::start(&[Reply::Status(500, "oops"), Reply::Never]).await;
    let mut h = hook(rx.url("/flaky"), WebhookFormat::Kpiwatch);
    h.timeout = Duration::from_millis(200);
    let sender = WebhookSender::new();
    let n = notification();

    let mut outcomes = Vec::new();
    let mut seen = Vec::new();
    for attempt in 0..3 {
        outcomes.push(sender.send(&h, &n, None, NOW + attempt).await);
        seen.push(rx.next().await);
    }
    assert!(matches!(outcomes[0], Err(DeliveryError::Transient(_))));
    assert!(matches!(outcomes[1], Err(DeliveryError::Transient(_))));
    assert_eq!(outcomes[2], Ok(()));
    for (attempt, got) in seen.iter().enumerate() {
        assert_eq!(got.header("idempotency-key"), Some(n.id.as_str()));
        assert_eq!(got.body, seen[0].body, "a retry sends the same body");
        // Each try is signed at its own send time.
        let sig = got.header(webhook::SIGNATURE_HEADER).unwrap();
        assert!(verify(
            SECRET.as_bytes(),
            sig,
            &got.body,
            NOW + attempt as i64,
            0
        ));
    }
}

/// An https receiver on 127.0.0.1 serving `certs`' server certificate
/// (TLS by tokio-rustls, HTTP/1.1 by hand): every request is answered 200
/// and its request line and body go to the channel. A handshake the client
/// breaks off (an untrusted certificate) sends nothing.
async fn https_receiver(
    certs: &tls::Certificates,
) -> (u16, mpsc::UnboundedReceiver<(String, String)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{crypto, ServerConfig};

    let chain = CertificateDer::pem_file_iter(&certs.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&certs.key).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
                let line = head.lines().next().unwrap_or_default().to_string();
                let _ = seen.send((line, body));
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, requests)
}

/// A kpiwatch-format hook to `https://localhost:{port}/hooks/tls`,
/// trusting the CA in `ca` if given.
fn https_hook(port: u16, ca: Option<&std::path::Path>) -> Webhook {
    Webhook {
        ca: ca.map(|path| CaFile {
            path: path.to_path_buf(),
            pem: std::fs::read(path).expect("the CA file is readable"),
        }),
        ..hook(
            format!("https://localhost:{port}/hooks/tls"),
            WebhookFormat::Kpiwatch,
        )
    }
}

#[tokio::test]
async fn an_https_hook_behind_the_configured_ca_is_delivered_over_tls() {
    secrets();
    let dir = tempfile::tempdir().unwrap();
    let certs = tls::certificates(dir.path());
    let (port, mut requests) = https_receiver(&certs).await;
    let n = notification();
    WebhookSender::new()
        .send(&https_hook(port, Some(&certs.ca)), &n, None, NOW)
        .await
        .expect("delivered over TLS");
    let (line, body) = tokio::time::timeout(Duration::from_secs(10), requests.recv())
        .await
        .expect("a request within 10 s")
        .expect("the server runs");
    assert_eq!(line, "POST /hooks/tls HTTP/1.1");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["id"], n.id.as_str());
}

#[tokio::test]
async fn an_https_hook_of_an_unknown_ca_is_transient_and_receives_nothing() {
    secrets();
    let dir = tempfile::tempdir().unwrap();
    let certs = tls::certificates(dir.path());
    let (port, mut requests) = https_receiver(&certs).await;
    // No ca_file: the receiver's certificate chains to no trusted root.
    let err = WebhookSender::new()
        .send(&https_hook(port, None), &notification(), None, NOW)
        .await
        .unwrap_err();
    // Transient: the outbox keeps the notification while an operator adds
    // ca_file or fixes the receiver's certificate.
    assert!(matches!(err, DeliveryError::Transient(_)), "{err:?}");
    assert!(requests.try_recv().is_err(), "nothing may arrive");
}

/// Every string in a JSON value, with where it is.
fn strings<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((at, s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings(item, format!("{at}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                strings(item, format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn hostile_label_values_cannot_link_mention_or_ping_in_any_slack_text_field() {
    let mut n = notification();
    let hostile = [
        ("link", "<https://evil.example|click here>"),
        ("ping", "<!channel> @channel"),
        ("user", "@here <@U0123> a&b"),
    ];
    for (k, v) in hostile {
        n.alerts[0].labels.insert(k.to_string(), v.to_string());
    }
    n.alerts = vec![n.alerts[0].clone()];
    let v: Value = serde_json::from_slice(&webhook::body(&n, WebhookFormat::Slack, None)).unwrap();

    let mut texts = Vec::new();
    strings(&v, String::new(), &mut texts);
    let with_labels: Vec<&(String, &str)> = texts
        .iter()
        .filter(|(_, t)| t.contains("evil.example"))
        .collect();
    let places: Vec<&str> = with_labels.iter().map(|(at, _)| at.as_str()).collect();
    assert!(
        places.contains(&".text")
            && places.contains(&".blocks[0].text.text")
            && places.contains(&".blocks[1].text.text"),
        "the labels reach the top-level text, the header and the section: {places:?}"
    );
    for (at, text) in &with_labels {
        for raw in [
            "<https://evil",
            "<!channel>",
            "<@U0123>",
            "@channel",
            "@here",
            "a&b",
        ] {
            assert!(
                !text.contains(raw),
                "{at} carries {raw:?} unescaped: {text:?}"
            );
        }
    }
    let top = v["text"].as_str().unwrap();
    assert!(
        top.contains("link=&lt;https://evil.example|click here&gt;"),
        "{top}"
    );
    assert!(top.contains("ping=&lt;!channel&gt;"), "{top}");
    assert!(top.contains("a&amp;b"), "{top}");
    // To a reader the value still says "@channel": the joiner is invisible.
    assert!(
        top.replace('\u{2060}', "").contains("@channel, user=@here"),
        "{top}"
    );
}

#[test]
fn a_long_slack_header_is_cut_to_slacks_limit_without_splitting_an_entity() {
    let mut n = notification();
    n.alerts[0]
        .labels
        .insert("shop".to_string(), "&".repeat(200));
    n.alerts = vec![n.alerts[0].clone()];
    let v: Value = serde_json::from_slice(&webhook::body(&n, WebhookFormat::Slack, None)).unwrap();
    let header = v["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(header.chars().count() <= 150, "{}", header.chars().count());
    assert!(header.ends_with("&amp;…"), "{header}");
}
