// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

//! A webhook receiver on 127.0.0.1 for the tests that count what reached
//! a receiver: it answers 200 to every POST and keeps each one's
//! `Idempotency-Key` and JSON body, in arrival order. A receiver that
//! drops repeats by that key (as `docs/webhooks.md` asks) sees each
//! notification once; [`Hooks::distinct`] is what it would keep.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

/// TOML to add to a config: `[notify]` with quick retries, a receiver
/// `oncall` posting kpiwatch's JSON to `url`, and a subscription that
/// sends it every alert alone, at once (resolutions a second after).
pub fn notify_everything(url: &str) -> String {
    format!(
        r#"
[notify]
retry_initial = "50ms"
retry_max = "200ms"

[[receiver]]
name = "oncall"
webhook = {{ url = "{url}", format = "kpiwatch", timeout = "2s" }}

[[subscription]]
name = "everything"
receivers = ["oncall"]
group_by = ["..."]
group_wait = "0s"
group_interval = "1s"
repeat_interval = "30d"
"#
    )
}

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Post {
    /// Its `Idempotency-Key` header (the notification id).
    pub key: String,
    /// Its body.
    pub body: serde_json::Value,
}

#[derive(Clone, Default)]
struct Seen {
    posts: Arc<Mutex<Vec<Post>>>,
    arrived: Arc<tokio::sync::Notify>,
}

/// A running receiver; stops when dropped.
pub struct Hooks {
    /// Where to POST.
    pub url: String,
    seen: Seen,
    server: tokio::task::JoinHandle<()>,
}

async fn receive(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    seen.posts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Post { key, body });
    seen.arrived.notify_waiters();
    StatusCode::OK
}

impl Hooks {
    /// Starts a receiver on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let seen = Seen::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the webhook receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("bound"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the receiver serves");
        });
        Self { url, seen, server }
    }

    /// Every POST so far, in arrival order.
    pub fn posts(&self) -> Vec<Post> {
        self.seen
            .posts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many POSTs each key got.
    pub fn distinct(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for p in self.posts() {
            *out.entry(p.key).or_default() += 1;
        }
        out
    }

    /// Waits until `n` distinct keys have arrived; fails the test after
    /// `wait`.
    pub async fn wait_for_distinct(&self, n: usize, wait: Duration) {
        assert!(
            self.distinct_within(n, wait).await,
            "only {} of {n} notifications arrived: {:?}",
            self.distinct().len(),
            self.summary()
        );
    }

    /// Waits until `n` distinct keys have arrived, or `wait` has passed;
    /// whether they did.
    pub async fn distinct_within(&self, n: usize, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let arrived = self.seen.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.distinct().len() >= n {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left, arrived).await;
        }
    }

    /// Each POST as "status kpi labels started_at", for failure messages.
    pub fn summary(&self) -> Vec<String> {
        self.posts()
            .iter()
            .map(|p| {
                let a = &p.body["alerts"][0];
                format!(
                    "{} {} {} {}",
                    p.body["status"], a["kpi"], a["labels"], a["started_at"]
                )
            })
            .collect()
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        self.server.abort();
    }
}
