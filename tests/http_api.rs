//! The HTTP API as a client meets it: the service's own router and server
//! (`kpiwatch::http::router` and `serve`, with the silences endpoints and
//! the health and metrics ones) on 127.0.0.1, reached with reqwest over
//! plain HTTP and over TLS. Tokens come from a lookup standing in for the
//! environment (the service passes `std::env::var`); `tests/run_binary.rs`
//! checks the real environment end to end.
//!
//! One test per refusal: no token, a wrong token, a read token writing,
//! the write API off, another Host on a loopback listener, a body over the
//! limit, a body that is not JSON, each size limit, a regex too large, an
//! end too far ahead, a `created_by` in the body; and what is let through:
//! the right token (recorded as the author), rotated tokens, loopback
//! without tokens, silences kept across a restart, https.

#[path = "common/tls.rs"]
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kpiwatch::clock::{Clock, ManualClock};
use kpiwatch::config::Source;
use kpiwatch::http::access::{Access, Scope, TokenSource};
use kpiwatch::http::tls::TlsIdentity;
use kpiwatch::kafka::Health;
use kpiwatch::notify::silence::{
    SilenceStore, MAX_COMMENT_BYTES, MAX_IN_VALUES, MAX_MATCHERS, MAX_VALUE_BYTES,
};
use kpiwatch::telemetry::Metrics;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// 2024-05-01T12:00:00Z.
const NOW: i64 = 1_714_564_800;
const OPS: &str = "ops-0123456789abcdef";
const OPS_NEXT: &str = "ops-next-0123456789abcdef";
const PROMETHEUS: &str = "prometheus-0123456789abcdef";

/// A token as configured: its name, scope, and the value its variable holds.
struct Token(&'static str, Scope, &'static str);

/// How a test's API is set up.
#[derive(Default)]
struct Setup<'a> {
    tokens: Vec<Token>,
    /// The policy of a listener other hosts can reach (0.0.0.0), while the
    /// test server itself listens on 127.0.0.1 only: nothing outside this
    /// machine can reach it.
    exposed: bool,
    tls: Option<&'a TlsIdentity>,
}

/// A running API and what it serves from.
struct Api {
    addr: SocketAddr,
    http: reqwest::Client,
    scheme: &'static str,
    store: Arc<Mutex<SilenceStore>>,
    _stop: oneshot::Sender<()>,
}

impl Api {
    async fn start(state: &Path, setup: Setup<'_>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let policy_addr = if setup.exposed {
            SocketAddr::from(([0, 0, 0, 0], addr.port()))
        } else {
            addr
        };
        let sources: Vec<TokenSource> = setup
            .tokens
            .iter()
            .map(|Token(name, scope, _)| TokenSource {
                name: name.to_string(),
                env: format!("TOKEN_{}", name.to_uppercase()),
                scope: *scope,
            })
            .collect();
        let env: HashMap<String, String> = setup
            .tokens
            .iter()
            .map(|Token(name, _, value)| {
                (format!("TOKEN_{}", name.to_uppercase()), value.to_string())
            })
            .collect();
        let access = Access::new(policy_addr, setup.tls.is_some(), &sources, |k| {
            env.get(k).cloned()
        })
        .expect("usable tokens");
        let store = Arc::new(Mutex::new(
            SilenceStore::load(&state.join("silences")).expect("silences load"),
        ));
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(NOW));
        let health = Arc::new(Health::default());
        let endpoints = kpiwatch::http::endpoints(Metrics::new(), health, clock.clone())
            .merge(kpiwatch::notify::silence::api(store.clone(), clock));
        let app = kpiwatch::http::router(endpoints, Arc::new(access));
        let (stop, stopped) = oneshot::channel::<()>();
        let tls = setup.tls.cloned();
        tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            kpiwatch::http::serve(listener, app, tls.as_ref(), stopped)
                .await
                .expect("the server runs");
        });
        Self {
            addr,
            http: reqwest::Client::new(),
            scheme: if setup.tls.is_some() { "https" } else { "http" },
            store,
            _stop: stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.addr.port())
    }

    /// POSTs `body` to the silences with `token` (if any).
    async fn create(&self, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut request = self.http.post(self.url("/api/v1/silences")).json(body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        answer(request.send().await.expect("an answer")).await
    }

    async fn list(&self, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(self.url("/api/v1/silences"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        answer(request.send().await.expect("an answer")).await
    }

    fn silences(&self) -> usize {
        self.store.lock().unwrap().list(NOW).len()
    }
}

async fn answer(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn error_of(body: &Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("an error message in {body}"))
}

/// A silence of checkouts in FI for the next two hours.
fn silence() -> Value {
    json!({
        "matchers": [{"name": "kpi", "equals": "checkouts"}, {"name": "country", "equals": "FI"}],
        "ends_at": "2024-05-01T14:00:00Z",
        "comment": "planned payment-provider switch"
    })
}

fn ops() -> Setup<'static> {
    Setup {
        tokens: vec![Token("ops", Scope::Write, OPS)],
        exposed: true,
        ..Setup::default()
    }
}

#[tokio::test]
async fn a_write_without_a_token_is_401_and_changes_nothing() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), ops()).await;
    let r = api
        .http
        .post(api.url("/api/v1/silences"))
        .json(&silence())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"kpiwatch\"",
        "RFC 6750 challenge"
    );
    let (_, body) = answer(r).await;
    assert!(
        error_of(&body).contains("Authorization: Bearer <token>"),
        "{body}"
    );
    assert_eq!(api.silences(), 0);
    let delete = api
        .http
        .delete(api.url("/api/v1/silences/0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        delete.status(),
        StatusCode::UNAUTHORIZED,
        "DELETE is a write"
    );
}

#[tokio::test]
async fn a_wrong_token_is_401_and_never_echoed() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), ops()).await;
    let (status, body) = api.create(Some("guess-0123456789abcdef"), &silence()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        error_of(&body).contains("not one of this kpiwatch's API tokens"),
        "{body}"
    );
    assert!(!body.to_string().contains("guess"), "{body}");
    assert_eq!(api.silences(), 0);
}

#[tokio::test]
async fn the_right_token_creates_a_silence_whose_author_is_the_tokens_name() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), ops()).await;
    let (status, created) = api.create(Some(OPS), &silence()).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (status, listed) = api.list(None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "reads are open without a read token"
    );
    let s = &listed["silences"][0];
    assert_eq!(s["id"], created["id"]);
    assert_eq!(s["created_by"], "ops");
    assert_eq!(s["state"], "active");
    assert_eq!(s["matchers"][1]["equals"], "FI");
}

#[tokio::test]
async fn a_created_by_in_the_body_is_refused_because_the_token_names_the_author() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), ops()).await;
    let mut body = silence();
    body["created_by"] = json!("maria");
    let (status, answer) = api.create(Some(OPS), &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = error_of(&answer);
    assert!(
        message.contains("created_by is not taken from the request") && message.contains("\"ops\""),
        "{message}"
    );
    assert_eq!(api.silences(), 0);
}

#[tokio::test]
async fn during_a_rotation_both_tokens_work_and_afterwards_only_the_new_one() {
    let state = tempfile::tempdir().unwrap();
    let rotating = Api::start(
        state.path(),
        Setup {
            tokens: vec![
                Token("ops", Scope::Write, OPS),
                Token("ops-next", Scope::Write, OPS_NEXT),
            ],
            exposed: true,
            ..Setup::default()
        },
    )
    .await;
    assert_eq!(
        rotating.create(Some(OPS), &silence()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        rotating.create(Some(OPS_NEXT), &silence()).await.0,
        StatusCode::OK
    );
    let (_, listed) = rotating.list(None).await;
    let mut authors: Vec<&str> = listed["silences"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["created_by"].as_str())
        .collect();
    authors.sort_unstable();
    assert_eq!(authors, ["ops", "ops-next"]);
    drop(rotating);

    let rotated = Api::start(
        state.path(),
        Setup {
            tokens: vec![Token("ops-next", Scope::Write, OPS_NEXT)],
            exposed: true,
            ..Setup::default()
        },
    )
    .await;
    assert_eq!(
        rotated.create(Some(OPS), &silence()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        rotated.create(Some(OPS_NEXT), &silence()).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_a_token_a_listener_other_hosts_reach_refuses_writes_saying_how_to_enable_them() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(
        state.path(),
        Setup {
            exposed: true,
            ..Setup::default()
        },
    )
    .await;
    let (status, body) = api.create(None, &silence()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let message = error_of(&body);
    assert!(
        message.starts_with("the write API is off")
            && message.contains("[[service.api_token]]")
            && message.contains("0.0.0.0"),
        "{message}"
    );
    assert_eq!(api.silences(), 0);
    let metrics = api.http.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK, "reads stay open");
}

#[tokio::test]
async fn on_a_loopback_listener_without_tokens_writes_are_taken_and_recorded_as_localhost() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), Setup::default()).await;
    let (status, _) = api.create(None, &silence()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = api.list(None).await;
    assert_eq!(listed["silences"][0]["created_by"], "localhost");
}

#[tokio::test]
async fn a_read_token_reads_but_cannot_write_and_once_set_reads_need_a_token() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(
        state.path(),
        Setup {
            tokens: vec![
                Token("ops", Scope::Write, OPS),
                Token("prometheus", Scope::Read, PROMETHEUS),
            ],
            exposed: true,
            ..Setup::default()
        },
    )
    .await;
    let (status, body) = api.create(Some(PROMETHEUS), &silence()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_of(&body).contains("may only read"), "{body}");
    assert_eq!(api.list(None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(api.list(Some(PROMETHEUS)).await.0, StatusCode::OK);
    assert_eq!(
        api.list(Some(OPS)).await.0,
        StatusCode::OK,
        "a write token reads"
    );
    let metrics = |token: Option<&str>| {
        let mut r = api.http.get(api.url("/metrics"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(
        metrics(None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        metrics(Some(PROMETHEUS)).await.unwrap().status(),
        StatusCode::OK
    );
    for open in ["/healthz", "/readyz"] {
        let r = api.http.get(api.url(open)).send().await.unwrap();
        assert_ne!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{open} is open to probes"
        );
    }
}

#[tokio::test]
async fn a_loopback_listener_refuses_other_host_names_against_dns_rebinding() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), Setup::default()).await;
    let port = api.addr.port();
    let post = |host: String| {
        api.http
            .post(format!("http://127.0.0.1:{port}/api/v1/silences"))
            .header("host", host)
            .json(&silence())
            .send()
    };
    let rebound = post(format!("evil.example:{port}")).await.unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    let (_, body) = answer(rebound).await;
    assert!(error_of(&body).contains("DNS rebinding"), "{body}");
    let health = api
        .http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .header("host", format!("evil.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::FORBIDDEN, "every endpoint");
    assert_eq!(api.silences(), 0);
    for local in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            post(local.clone()).await.unwrap().status(),
            StatusCode::OK,
            "{local}"
        );
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_one_that_is_not_json_is_415() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), ops()).await;
    let mut big = silence();
    big["comment"] = json!("x".repeat(kpiwatch::http::BODY_LIMIT));
    let (status, body) = api.create(Some(OPS), &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        error_of(&body).contains("larger than 16384 bytes"),
        "{body}"
    );

    // A form post from a web page needs no preflight; JSON does, and no
    // page is allowed one.
    let form = api
        .http
        .post(api.url("/api/v1/silences"))
        .bearer_auth(OPS)
        .header("content-type", "text/plain")
        .body(silence().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let unauthenticated = api
        .http
        .post(api.url("/api/v1/silences"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(
        unauthenticated.status(),
        StatusCode::UNAUTHORIZED,
        "the token is checked before any body is read"
    );
    assert_eq!(api.silences(), 0);
}

#[tokio::test]
async fn each_size_limit_is_refused_with_400_and_the_limit() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), ops()).await;
    let long = "x".repeat(MAX_VALUE_BYTES + 1);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = silence();
        change(&mut body);
        body
    };
    let cases = [
        (
            with(&|b| {
                b["matchers"] = json!(vec![json!({"name": "k", "equals": "v"}); MAX_MATCHERS + 1])
            }),
            format!("at most {MAX_MATCHERS} matchers"),
        ),
        (
            with(&|b| b["matchers"][1]["equals"] = json!(long)),
            format!(
                "matcher 2 (country): the value is {} bytes",
                MAX_VALUE_BYTES + 1
            ),
        ),
        (
            with(&|b| b["matchers"][1] = json!({"name": long, "equals": "FI"})),
            "the label name is".to_string(),
        ),
        (
            with(&|b| b["matchers"][1] = json!({"name": "country", "regex": long})),
            "the value is".to_string(),
        ),
        (
            with(&|b| {
                b["matchers"][1] = json!({"name": "country", "in": vec!["FI"; MAX_IN_VALUES + 1]})
            }),
            format!("at most {MAX_IN_VALUES} are allowed"),
        ),
        (
            with(&|b| b["comment"] = json!("c".repeat(MAX_COMMENT_BYTES + 1))),
            format!("the comment is {} bytes", MAX_COMMENT_BYTES + 1),
        ),
        (
            with(&|b| {
                b["matchers"] = json!((0..MAX_MATCHERS)
                    .map(|i| json!({"name": format!("l{i}"), "equals": "v".repeat(900)}))
                    .collect::<Vec<_>>())
            }),
            "at most 8192 are allowed".to_string(),
        ),
        (
            with(&|b| b["matchers"][1] = json!({"name": "country", "equals": "FI", "not": "SE"})),
            "give exactly one of".to_string(),
        ),
    ];
    for (body, says) in cases {
        let (status, answer) = api.create(Some(OPS), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{says}");
        assert!(error_of(&answer).contains(&says), "{says:?} in {answer}");
    }
    assert_eq!(api.silences(), 0);
}

#[tokio::test]
async fn a_regex_that_compiles_too_large_is_refused_and_a_bad_one_named() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), ops()).await;
    // 20 bytes of pattern, megabytes compiled (Unicode \w, repeated).
    let mut huge = silence();
    huge["matchers"][1] = json!({"name": "country", "regex": "(?:\\w{100}){100}"});
    let started = std::time::Instant::now();
    let (status, body) = api.create(Some(OPS), &huge).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&body).contains("compiles to more than 256 KiB"),
        "{body}"
    );
    eprintln!("a too-large regex was refused in {took:?}");
    let mut broken = silence();
    broken["matchers"][1] = json!({"name": "country", "regex": "(FI"});
    let (status, body) = api.create(Some(OPS), &broken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&body).contains("matcher 2 (country): bad regex"),
        "{body}"
    );
    assert_eq!(api.silences(), 0);
}

#[tokio::test]
async fn an_end_more_than_the_maximum_ahead_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let api = Api::start(state.path(), ops()).await;
    let mut far = silence();
    far["ends_at"] = json!("2024-06-01T12:00:01Z"); // 31 days and a second
    let (status, body) = api.create(Some(OPS), &far).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&body).contains("more than 30days ahead")
            && error_of(&body).contains("2024-05-31T12:00:00Z"),
        "{body}"
    );
    far["ends_at"] = json!("2024-05-31T12:00:00Z");
    assert_eq!(
        api.create(Some(OPS), &far).await.0,
        StatusCode::OK,
        "exactly 30 days"
    );
}

#[tokio::test]
async fn silences_and_their_expiry_are_kept_across_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let (kept, ended) = {
        let api = Api::start(state.path(), ops()).await;
        let (_, a) = api.create(Some(OPS), &silence()).await;
        let (_, b) = api.create(Some(OPS), &silence()).await;
        let b = b["id"].as_str().unwrap().to_string();
        let expire = |id: &str, token: Option<&str>| {
            let mut r = api.http.delete(api.url(&format!("/api/v1/silences/{id}")));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        assert_eq!(
            expire(&b, Some(OPS)).await.unwrap().status(),
            StatusCode::OK
        );
        assert_eq!(
            expire(&b, Some(OPS)).await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            expire("0123456789abcdef", Some(OPS))
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
        (a["id"].as_str().unwrap().to_string(), b)
    };
    let files = std::fs::read_dir(state.path().join("silences"))
        .unwrap()
        .count();
    assert_eq!(files, 2, "one file per silence");

    let again = Api::start(state.path(), ops()).await;
    let (_, listed) = again.list(None).await;
    let states: HashMap<&str, &str> = listed["silences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        HashMap::from([(kept.as_str(), "active"), (ended.as_str(), "expired")])
    );
}

#[tokio::test]
async fn https_serves_a_client_that_trusts_the_certificate_and_only_https() {
    let state = tempfile::tempdir().unwrap();
    let certs = tls::certificates(state.path());
    let config = format!(
        "[service]\ncert_file = {:?}\nkey_file = {:?}\n[[topic]]\nname = \"t\"\n[[kpi]]\nname = \"k\"\naggregate = \"count\"\n",
        certs.cert, certs.key
    );
    let identity = kpiwatch::config::validate(&Source::new(Path::new("api.toml"), &config))
        .map(|c| c.service.api.tls.expect("TLS configured"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut setup = ops();
    setup.tls = Some(&identity);
    let mut api = Api::start(state.path(), setup).await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs.ca).unwrap()).unwrap();
    api.http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();

    assert_eq!(api.create(Some(OPS), &silence()).await.0, StatusCode::OK);
    let health = api.http.get(api.url("/healthz")).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok\n");

    let untrusting = reqwest::Client::new().get(api.url("/healthz")).send().await;
    assert!(
        untrusting.is_err(),
        "a client without the CA refuses the certificate"
    );
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", api.addr.port()))
        .send()
        .await;
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "plain HTTP is not served on the TLS port"
    );
}
