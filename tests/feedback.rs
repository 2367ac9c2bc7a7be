//! Feedback on alerts, as the product manager who clicks a link and the
//! analyst who tunes meet it.
//!
//! - The API (`POST`/`GET /api/v1/alerts/{id}/feedback`) on the service's
//!   own router and server on 127.0.0.1, reached with reqwest: a verdict
//!   with a write token, an unknown alert id, a bad verdict, no token,
//!   feedback kept across a restart, and counted in `/metrics`.
//! - The email links: a real email through the aiosmtpd server the test
//!   scripts start, its "not useful" link followed with a real HTTP
//!   client: the GET shows a page and records nothing, the page's POST
//!   records; an altered link and an expired one get a page saying so.
//! - The analyst's loop with the built binary: `replay` fires alerts of a
//!   deliberately too-sensitive KPI over a simulated shop with an outage
//!   and small dips nobody minds, the
//!   alerts get verdicts, `feedback export` writes labels, `backtest`
//!   reads them, and `tune` proposes a budget that keeps the outage and
//!   drops the false alerts.

#[path = "common/smtp.rs"]
mod smtp;

#[path = "common/kafka.rs"]
mod kafka;

#[path = "common/browser.rs"]
mod browser;

// Shared helpers; this file uses `kpiwatch`, `kpiwatch_with_env`,
// `fixture` and `Scratch`.
#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kpiwatch::alert::{Evidence, Severity, Status, Transition};
use kpiwatch::clock::{Clock, ManualClock};
use kpiwatch::feedback::api::Feedback;
use kpiwatch::feedback::link::LinkSigner;
use kpiwatch::feedback::register::AlertRegister;
use kpiwatch::feedback::store::FeedbackStore;
use kpiwatch::feedback::Verdict;
use kpiwatch::http::access::{Access, Scope, TokenSource};
use kpiwatch::kafka::Health;
use kpiwatch::notify::email::EmailSender;
use kpiwatch::notify::settings::{NotifySettings, Smtp, SmtpSecurity};
use kpiwatch::notify::{Notification, Reason};
use kpiwatch::telemetry::Metrics;
use mail_parser::MessageParser;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// 2024-05-01T12:00:00Z.
const NOW: i64 = 1_714_564_800;
const OPS: &str = "ops-0123456789abcdef";
const KEY: &str = "feedback-key-0123456789abcdef-0123456789";
/// An alert the service fired: checkouts in FI dropping since NOW.
const FIRED: &str = "0123456789abcdef";
const TTL: i64 = 7 * 86_400;

fn transition(status: Status, id: &str) -> Transition {
    Transition {
        status,
        alert_id: id.to_string(),
        kpi: "checkouts".to_string(),
        labels: BTreeMap::from([("country".to_string(), "FI".to_string())]),
        severity: Severity::Critical,
        escalated_from: None,
        direction: detectors::Direction::Drop,
        started_at: NOW,
        bucket_start: NOW,
        bucket_end: NOW + 300,
        observed: 2.0,
        expected: 40.0,
        lower: 25.0,
        upper: 55.0,
        score: 0.9,
        deviation_pct: Some(-95.0),
        evidence: Evidence::bucket(NOW, NOW + 300, Some(1e-9)),
        description: None,
        runbook: None,
        dashboard: None,
        recent: Vec::new(),
    }
}

/// The feedback endpoints (and /metrics) of a service whose state is in
/// `state`, which has fired [`FIRED`]; writes need the token `OPS`.
struct Api {
    addr: SocketAddr,
    http: reqwest::Client,
    feedback: Feedback,
    metrics: Metrics,
    clock: Arc<ManualClock>,
    _stop: oneshot::Sender<()>,
}

impl Api {
    async fn start(state: &Path, links: Option<LinkSigner>) -> Self {
        Self::start_on(state, links, "127.0.0.1:0").await
    }

    async fn start_on(state: &Path, links: Option<LinkSigner>, at: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(at).await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The policy of a listener others can reach: writes need a token.
        let policy = SocketAddr::from(([0, 0, 0, 0], addr.port()));
        let sources = [TokenSource {
            name: "ops".to_string(),
            env: "TOKEN_OPS".to_string(),
            scope: Scope::Write,
        }];
        let access = Access::new(policy, false, &sources, |_| Some(OPS.to_string())).unwrap();
        let (mut register, _) = AlertRegister::load(state).unwrap();
        register
            .record(&[transition(Status::Firing, FIRED)])
            .unwrap();
        let feedback = Feedback {
            register: Arc::new(Mutex::new(register)),
            store: Arc::new(Mutex::new(FeedbackStore::load(state).unwrap())),
            links,
        };
        let clock = Arc::new(ManualClock::at(NOW + 600));
        let metrics = Metrics::new();
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let endpoints = kpiwatch::http::endpoints(
            metrics.clone(),
            Arc::new(Health::default()),
            dyn_clock.clone(),
        )
        .merge(kpiwatch::feedback::api::api(
            feedback.clone(),
            dyn_clock,
            &metrics,
        ));
        let app = kpiwatch::http::router(endpoints, Arc::new(access));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            kpiwatch::http::serve(listener, app, None, stopped)
                .await
                .expect("the server runs");
        });
        Self {
            addr,
            http: reqwest::Client::new(),
            feedback,
            metrics,
            clock,
            _stop: stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    async fn give(&self, id: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut r = self
            .http
            .post(self.url(&format!("/api/v1/alerts/{id}/feedback")))
            .json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        answer(r.send().await.unwrap()).await
    }

    async fn show(&self, id: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(self.url(&format!("/api/v1/alerts/{id}/feedback")));
        answer(r.send().await.unwrap()).await
    }

    fn verdicts(&self, id: &str) -> Vec<Verdict> {
        let store = self.feedback.store.lock().unwrap();
        store
            .get(id)
            .map(|f| f.verdicts.iter().map(|r| r.verdict).collect())
            .unwrap_or_default()
    }
}

async fn answer(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

// --- the API ------------------------------------------------------------------

#[tokio::test]
async fn a_verdict_with_a_write_token_is_recorded_by_the_token_and_the_latest_wins() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), None).await;
    let (status, body) = api
        .give(
            FIRED,
            Some(OPS),
            &json!({"verdict": "false", "comment": "a test order batch"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["recorded"]["by"], "ops",
        "by defaults to the token's name"
    );
    let (status, _) = api
        .give(
            FIRED,
            Some(OPS),
            &json!({"verdict": "true", "by": "maria@shop.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.show(FIRED).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["latest"]["verdict"], "true");
    assert_eq!(body["latest"]["by"], "maria@shop.example");
    assert_eq!(
        body["latest"]["via"], "ops",
        "the token is kept beside `by`"
    );
    assert_eq!(
        body["verdicts"].as_array().unwrap().len(),
        2,
        "all are kept"
    );
    assert_eq!(body["alert"]["kpi"], "checkouts");
}

#[tokio::test]
async fn feedback_on_an_alert_this_service_never_fired_is_not_found() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), None).await;
    for id in ["fedcba9876543210", "not-an-alert-id"] {
        let (status, body) = api.give(id, Some(OPS), &json!({"verdict": "true"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("no alert has id"),
            "{body}"
        );
    }
    assert_eq!(api.show("fedcba9876543210").await.0, StatusCode::NOT_FOUND);
    assert!(!state.path().join("feedback/verdicts").exists());
}

#[tokio::test]
async fn a_verdict_other_than_true_false_or_expected_is_refused_saying_what_to_write() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), None).await;
    let (status, body) = api
        .give(FIRED, Some(OPS), &json!({"verdict": "maybe"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("\"true\"") && message.contains("\"expected\""),
        "{message}"
    );
    let (status, _) = api
        .give(
            FIRED,
            Some(OPS),
            &json!({"verdict": "true", "created_by": "x"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused"
    );
    let long = "x".repeat(2000);
    let (status, body) = api
        .give(
            FIRED,
            Some(OPS),
            &json!({"verdict": "true", "comment": long}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("at most 1024"),
        "{body}"
    );
    assert!(api.verdicts(FIRED).is_empty());
}

#[tokio::test]
async fn feedback_without_a_token_or_with_a_wrong_one_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), None).await;
    let (status, _) = api.give(FIRED, None, &json!({"verdict": "false"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api
        .give(
            FIRED,
            Some("wrong-0123456789abcdef"),
            &json!({"verdict": "false"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(api.verdicts(FIRED).is_empty());
}

#[tokio::test]
async fn feedback_survives_a_restart() {
    let state = tempfile::tempdir().unwrap();
    {
        let api = Api::start(state.path(), None).await;
        let (status, _) = api
            .give(
                FIRED,
                Some(OPS),
                &json!({"verdict": "expected", "comment": "spring sale"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let again = Api::start(state.path(), None).await;
    let (status, body) = again.show(FIRED).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["latest"]["verdict"], "expected");
    assert_eq!(body["latest"]["comment"], "spring sale");
    let (register, skipped) = AlertRegister::load(state.path()).unwrap();
    assert_eq!(
        (register.len(), skipped),
        (1, 0),
        "the fired alert is remembered once"
    );
}

#[tokio::test]
async fn metrics_count_feedback_by_kpi_and_verdict() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), None).await;
    for v in ["false", "false", "true"] {
        api.give(FIRED, Some(OPS), &json!({"verdict": v})).await;
    }
    api.give(FIRED, Some(OPS), &json!({"verdict": "nonsense"}))
        .await;
    let text = api
        .http
        .get(api.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("kpiwatch_alert_feedback_total{kpi=\"checkouts\",verdict=\"false\"} 2"),
        "{text}"
    );
    assert!(text.contains("kpiwatch_alert_feedback_total{kpi=\"checkouts\",verdict=\"true\"} 1"));
    assert!(!text.contains("verdict=\"nonsense\""));
    assert!(api
        .metrics
        .render()
        .contains("kpiwatch_alert_feedback_total"));
}

// --- the service itself -------------------------------------------------------

/// Feedback through `kpiwatch run` (against librdkafka's mock cluster): the
/// alert it fired is known to its API, an id it never fired is not, the
/// verdict is counted in its /metrics and still there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_takes_feedback_on_the_alerts_it_fired_and_keeps_it_across_a_restart() {
    let broker = kafka::broker("shop", 2);
    let state = kafka::StateDir::new();
    let clock = Arc::new(ManualClock::at(kafka::minute(20)));
    let config = || kafka::config(&state, broker.bootstrap_servers(), "feedback", kafka::SHOP);
    let mut service = kafka::Service::start(config(), clock.clone()).await;
    let mut n = 0;
    for m in 0..20 {
        for s in [5, 25, 45] {
            broker
                .send(
                    "shop",
                    Some(n % 2),
                    b"",
                    &kafka::event(kafka::minute(m) + s, "checkout"),
                )
                .unwrap();
            n += 1;
        }
    }
    broker.flush().unwrap();
    service.processed(60.0).await;
    // The checkouts stop: the service fires.
    clock.advance(600);
    let fired = service.next_transition().await;
    assert_eq!(
        (fired.status, fired.kpi.as_str()),
        (Status::Firing, "checkouts")
    );

    let http = reqwest::Client::new();
    let url = |addr: SocketAddr, id: &str| format!("http://{addr}/api/v1/alerts/{id}/feedback");
    // A loopback listener without tokens takes writes from this host.
    let r = http
        .post(url(service.addr, &fired.alert_id))
        .json(&json!({"verdict": "true", "comment": "payment provider down"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .post(url(service.addr, "fedcba9876543210"))
        .json(&json!({"verdict": "true"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let counted = service
        .metric(
            "kpiwatch_alert_feedback_total",
            &[("kpi", "checkouts"), ("verdict", "true")],
        )
        .await;
    assert_eq!(counted, 1.0);
    service.stop().await;

    let again = kafka::Service::start(config(), clock.clone()).await;
    let (status, body) = answer(
        http.get(url(again.addr, &fired.alert_id))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["latest"]["verdict"], "true");
    assert_eq!(body["latest"]["by"], "localhost");
    assert_eq!(
        body["alert"]["started_at"],
        kpiwatch::timefmt::rfc3339(fired.started_at)
    );
    // Still known after the restart: more feedback is taken.
    let r = http
        .post(url(again.addr, &fired.alert_id))
        .json(&json!({"verdict": "expected"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    again.stop().await;
}

// --- email links ----------------------------------------------------------------

/// The email of a notification about [`FIRED`], sent through `server` with
/// feedback links to `api`; returns the text part's links.
async fn email_links(server: &smtp::SmtpServer, api: &Api) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = NotifySettings::none(dir.path());
    settings.from = "kpiwatch <kpiwatch@shop.example>".to_string();
    settings.smtp = Some(Smtp {
        host: "127.0.0.1".to_string(),
        port: server.port(),
        security: SmtpSecurity::None,
        username_env: "KPIWATCH_TEST_FEEDBACK_NO_USER".to_string(),
        password_env: "KPIWATCH_TEST_FEEDBACK_NO_PASSWORD".to_string(),
        timeout: Duration::from_secs(10),
        pool_size: 1,
        ca: None,
    });
    settings.external_url = Some(api.url(""));
    // The key as `run` reads it from notify.feedback_key_env; handed over
    // directly, since setting this process's environment races other
    // tests (`check` below reads a real variable).
    let links = LinkSigner::new(KEY.as_bytes(), &api.url(""), TTL);
    let sender = EmailSender::new(&settings).unwrap().with_links(Some(links));
    let n = Notification {
        id: "n-feedback".to_string(),
        receiver: "growth".to_string(),
        subscription: "shop".to_string(),
        group: BTreeMap::new(),
        status: Status::Firing,
        reason: Reason::New,
        alerts: vec![transition(Status::Firing, FIRED)],
        omitted: 0,
        created_at_ms: (NOW + 300) * 1000,
    };
    sender
        .send(
            &n,
            &["pm@shop.example".to_string()],
            settings.external_url.as_deref(),
        )
        .await
        .expect("the relay takes it");
    let mails = server.wait_for_messages(1);
    let mail = MessageParser::default()
        .parse(&mails[0])
        .expect("a message");
    let text = mail.body_text(0).expect("a text part").to_string();
    let html = mail.body_html(0).expect("an html part").to_string();
    let link = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(|u| u.trim().to_string()))
            .unwrap_or_else(|| panic!("no {label:?} line in\n{text}"))
    };
    let (useful, not_useful) = (link("Useful:"), link("Not useful:"));
    assert!(
        html.contains(&not_useful.replace('&', "&amp;")),
        "the html part has it too"
    );
    (useful, not_useful)
}

#[tokio::test]
async fn an_email_link_opens_a_page_that_records_nothing_until_its_button_is_pressed() {
    let state = tempfile::tempdir().unwrap();
    let signer = LinkSigner::new(KEY.as_bytes(), "http://unused", TTL);
    let api = Api::start(state.path(), Some(signer)).await;
    let server = smtp::SmtpServer::start();
    let (useful, not_useful) = email_links(&server, &api).await;
    assert!(
        useful.contains(".true.") && not_useful.contains(".false."),
        "{not_useful}"
    );
    assert!(
        not_useful.starts_with(&api.url("/feedback/")),
        "{not_useful}"
    );

    // Mail scanners and previews fetch links: a GET (twice) records nothing.
    for _ in 0..2 {
        let page = api.http.get(&not_useful).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let body = page.text().await.unwrap();
        assert!(
            body.contains("checkouts (country=FI), drop since 2024-05-01 12:00 UTC"),
            "{body}"
        );
        assert!(
            body.contains("<form method=\"post\">") && body.contains("not useful"),
            "{body}"
        );
    }
    assert!(
        api.verdicts(FIRED).is_empty(),
        "a GET must not record feedback"
    );

    // The button: a form POST to the same address.
    let done = api
        .http
        .post(&not_useful)
        .form(&[("comment", "a test order batch"), ("by", "pm")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("Thank you"));
    assert_eq!(api.verdicts(FIRED), [Verdict::False]);
    let store = api.feedback.store.lock().unwrap();
    let latest = store.get(FIRED).unwrap().latest().unwrap().clone();
    assert_eq!(
        (latest.by.as_str(), latest.via.as_str()),
        ("pm", "email link")
    );
    assert_eq!(latest.comment, "a test order batch");
}

/// The link as a product manager meets it: headless Chromium opens it
/// (and fetches whatever else a browser fetches), reads the page, and
/// presses its button.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_the_link_page_names_the_alert_and_its_button_records_the_verdict() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(
        state.path(),
        Some(LinkSigner::new(KEY.as_bytes(), "http://unused", TTL)),
    )
    .await;
    let link =
        LinkSigner::new(KEY.as_bytes(), &api.url(""), TTL).url(FIRED, Verdict::False, NOW + 300);
    let (page, shown) = tokio::task::spawn_blocking(move || browser::Page::open(&link))
        .await
        .unwrap();
    assert!(shown.contains("Was this alert right?"), "{shown}");
    assert!(
        shown.contains("checkouts (country=FI), drop since 2024-05-01 12:00 UTC"),
        "{shown}"
    );
    assert!(
        api.verdicts(FIRED).is_empty(),
        "opening the link recorded a verdict"
    );
    let (page, done) = tokio::task::spawn_blocking(move || {
        let mut page = page;
        let done = page.click("button");
        (page, done)
    })
    .await
    .unwrap();
    assert!(done.contains("Thank you"), "{done}");
    assert_eq!(api.verdicts(FIRED), [Verdict::False]);
    let via = api
        .feedback
        .store
        .lock()
        .unwrap()
        .get(FIRED)
        .unwrap()
        .latest()
        .unwrap()
        .via
        .clone();
    assert_eq!(via, "email link");
    tokio::task::spawn_blocking(move || drop(page))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_altered_or_expired_email_link_is_refused_with_a_page_saying_so() {
    let state = tempfile::tempdir().unwrap();
    let signer = LinkSigner::new(KEY.as_bytes(), "http://unused", TTL);
    let api = Api::start(state.path(), Some(signer)).await;
    let server = smtp::SmtpServer::start();
    let (_, not_useful) = email_links(&server, &api).await;

    // Someone turns "not useful" into "useful" by hand.
    let altered = not_useful.replacen(".false.", ".true.", 1);
    for request in [api.http.get(&altered), api.http.post(&altered)] {
        let page = request.send().await.unwrap();
        assert_eq!(page.status(), StatusCode::FORBIDDEN);
        assert!(page.text().await.unwrap().contains("not valid"));
    }
    // A cut-short link.
    let cut = &not_useful[..not_useful.len() - 10];
    let page = api.http.post(cut).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);

    // A week and a bit later, the link has expired.
    api.clock.set(NOW + 300 + TTL);
    let page = api.http.post(&not_useful).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let body = page.text().await.unwrap();
    assert!(body.contains("expired on 2024-05-08 12:05 UTC"), "{body}");
    assert!(api.verdicts(FIRED).is_empty());
}

#[tokio::test]
async fn links_are_off_without_a_key_and_the_page_says_so() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), None).await;
    let signer = LinkSigner::new(KEY.as_bytes(), "http://unused", TTL);
    let token = signer.token(FIRED, Verdict::True, NOW + TTL);
    let page = api
        .http
        .post(api.url(&format!("/feedback/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("Feedback links are off"));
    assert!(api.verdicts(FIRED).is_empty());
}

// --- the analyst's loop with the binary -----------------------------------------

#[test]
fn check_says_why_emails_carry_no_feedback_links() {
    let dir = common::Scratch::new();
    let base = std::fs::read_to_string(common::fixture("replay/checkout_outage.toml")).unwrap();
    let check = |name: &str, notify: &str, env: &[(&str, &str)]| {
        let path = dir.file(
            name,
            &format!("{base}\n[notify]\n{notify}\n[[receiver]]\nname = \"pm\"\nemail = [\"pm@shop.example\"]\n"),
        );
        let run =
            common::kpiwatch_with_env(&["check", "--config", path.to_str().unwrap()], None, env);
        run.ok().to_string()
    };
    let out = check("none.toml", "", &[]);
    assert!(
        out.contains("note: emails carry no feedback links: set notify.feedback_key_env"),
        "{out}"
    );
    let out = check(
        "no-url.toml",
        "feedback_key_env = \"KPIWATCH_TEST_NO_SUCH_KEY\"",
        &[],
    );
    assert!(out.contains("notify.external_url is not set"), "{out}");
    let both = "external_url = \"https://kpiwatch.shop.example\"\nfeedback_key_env = \"KPIWATCH_TEST_NO_SUCH_KEY\"";
    let out = check("no-key.toml", both, &[]);
    assert!(
        out.contains("KPIWATCH_TEST_NO_SUCH_KEY is not set here"),
        "{out}"
    );
    let out = check(
        "short.toml",
        both,
        &[("KPIWATCH_TEST_NO_SUCH_KEY", "short")],
    );
    assert!(out.contains("fewer than 32 characters"), "{out}");
    let out = check("ok.toml", both, &[("KPIWATCH_TEST_NO_SUCH_KEY", KEY)]);
    assert!(!out.contains("feedback links"), "{out}");
    // Without email receivers there is nothing to say.
    let path = dir.file("quiet.toml", &base);
    let run = common::kpiwatch(&["check", "--config", path.to_str().unwrap()], None);
    assert!(!run.ok().contains("feedback links"), "{}", run.stdout);
    // A wrong key variable name or link life is a config error at its line.
    let path = dir.file(
        "bad.toml",
        &format!("{base}\n[notify]\nfeedback_link_ttl = \"5s\"\nfeedback_key_env = \"A KEY\"\n"),
    );
    let run = common::kpiwatch(&["check", "--config", path.to_str().unwrap()], None);
    assert!(
        run.user_error()
            .contains("feedback_key_env = \"A KEY\" is not an environment variable name"),
        "{}",
        run.stderr
    );
}

/// A shop's checkouts with `checkouts` made too sensitive (a budget of
/// `budget` false alerts); state in `state`.
fn loop_config(state: &Path, budget: &str) -> String {
    format!(
        r#"# A simulated shop's checkouts, with the KPI made too sensitive.
[service]
state_dir = "{}"

[[topic]]
name = "shop"

[defaults]
bucket = "30m"
lateness = "5m"

[[kpi]]
name = "checkouts"
where = {{ type = "checkout" }}
aggregate = "count"
direction = "drop"
min_volume = 3

[kpi.alerting]
# Someone wanted to hear about everything.
false_alarms = "{budget}"
"#,
        state.display()
    )
}

/// The outage, 2024-01-19 10:00-13:00 UTC, plus the grace within which
/// an alert still detects it (resolve_after + 1 buckets).
const OUTAGE: (i64, i64) = (1_705_658_400, 1_705_669_200 + 4 * 1800);

/// Three weeks of a simulated shop's checkouts (`kpiwatch simulate`,
/// seed 3): an outage (no checkouts for three hours) and four one-hour
/// dips to 40 % that nobody minds.
fn loop_events(dir: &Path) -> std::path::PathBuf {
    let all = dir.join("all.jsonl");
    let mut args = vec![
        "simulate".to_string(),
        "--start=2024-01-01T00:00:00Z".into(),
        "--days=21".into(),
        "--rate=10".into(),
        "--seed=3".into(),
        "--incident=type=checkout,factor=0,start=2024-01-19T10:00:00Z,duration=3h".into(),
        format!("--output={}", all.display()),
    ];
    for at in ["01-09T11", "01-12T15", "01-15T12", "01-17T16"] {
        args.push(format!(
            "--incident=type=checkout,factor=0.4,start=2024-{at}:00:00Z,duration=1h"
        ));
    }
    common::kpiwatch(&args, None).ok();
    let checkouts: String = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"type\":\"checkout\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.join("checkouts.jsonl");
    std::fs::write(&path, checkouts).unwrap();
    path
}

fn backtest_json(config: &Path, events: &Path, labels: &Path) -> Value {
    let run = common::kpiwatch(
        &[
            "backtest",
            "--config",
            config.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
            "--incidents",
            labels.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    serde_json::from_str(run.ok()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn kpi_row<'v>(report: &'v Value, kpi: &str) -> &'v Value {
    report["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kpi"] == kpi)
        .unwrap()
}

#[test]
fn exported_feedback_feeds_the_backtest_and_tune_keeps_the_outage_and_drops_the_false_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("kpiwatch.toml");
    let original = loop_config(&state, "4/day");
    std::fs::write(&config, &original).unwrap();
    let events = loop_events(dir.path());

    // What the service would have fired: the replay's transitions, into
    // the state directory's alert register.
    let run = common::kpiwatch(
        &[
            "replay",
            "--config",
            config.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ],
        None,
    );
    let transitions: Vec<Transition> = run
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (mut register, _) = AlertRegister::load(&state).unwrap();
    register.record(&transitions).unwrap();

    // The product manager's verdicts: the outage's alerts were right,
    // every other checkouts alert was noise.
    let mut store = FeedbackStore::load(&state).unwrap();
    let (mut right, mut wrong) = (0, 0);
    for t in transitions
        .iter()
        .filter(|t| t.starts_alert() && t.kpi == "checkouts")
    {
        let alert = register.get(&t.alert_id).unwrap().clone();
        let during = (OUTAGE.0..=OUTAGE.1).contains(&alert.fired_at);
        let verdict = if during {
            Verdict::True
        } else {
            Verdict::False
        };
        if during {
            right += 1;
        } else {
            wrong += 1;
        }
        let new = kpiwatch::feedback::store::NewVerdict {
            verdict,
            comment: String::new(),
            by: "pm".into(),
            via: "email link".into(),
        };
        let entry = store.prepare(&alert, new, NOW).unwrap();
        store.write(&entry).unwrap();
        store.insert(entry);
    }
    assert!(right >= 1, "the outage alerted at 4/day");
    assert!(wrong >= 2, "4/day is too sensitive: {wrong} false alerts");

    // feedback export → labels the backtest reads.
    let run = common::kpiwatch(
        &["feedback", "export", "--config", config.to_str().unwrap()],
        None,
    );
    let labels: Value = serde_json::from_str(run.ok()).unwrap();
    assert_eq!(labels["incidents"].as_array().unwrap().len(), right);
    assert_eq!(labels["false_alerts"].as_array().unwrap().len(), wrong);
    let labels_path = dir.path().join("labels.json");
    std::fs::write(&labels_path, run.ok()).unwrap();
    let before = backtest_json(&config, &events, &labels_path);
    let row = kpi_row(&before, "checkouts");
    assert_eq!(row["known_false"], wrong, "{row}");
    assert_eq!(row["false"], wrong, "{row}");
    assert_eq!(row["detected"], row["incidents"], "{row}");

    // tune → a diff of false_alarms only.
    let run = common::kpiwatch(
        &[
            "tune",
            "--config",
            config.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
            "--labels",
            labels_path.to_str().unwrap(),
        ],
        None,
    );
    let diff = run.ok();
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(changed.len(), 2, "{diff}\n{}", run.stderr);
    assert_eq!(changed[0], "-false_alarms = \"4/day\"");
    let proposed = changed[1]
        .strip_prefix("+false_alarms = \"")
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{diff}"));
    assert!(run.stderr.contains("checkouts: "), "{}", run.stderr);

    // The proposal applied: the outage still detected, the noise gone.
    let tuned = dir.path().join("tuned.toml");
    let text = loop_config(&state, proposed);
    assert!(text.contains("# Someone wanted to hear about everything."));
    std::fs::write(&tuned, text).unwrap();
    let after = backtest_json(&tuned, &events, &labels_path);
    let row = kpi_row(&after, "checkouts");
    assert_eq!(row["detected"], row["incidents"], "{proposed}: {row}");
    assert!(
        row["false"].as_u64().unwrap() < wrong as u64,
        "{proposed}: {row}"
    );
    assert_eq!(row["known_false"], 0, "{proposed}: {row}");
}
