//! Notification latency: from the close of the bucket that made an alert
//! fire to the webhook being received on loopback, with `group_wait = 0`.
//!
//! The service calls [`Notifier::alerts`] with the transitions
//! `Pipeline::advance` produced, right after the bucket closed; this bench
//! starts the clock there and stops it in the handler of a real HTTP
//! receiver (axum on 127.0.0.1). Everything in between is the production
//! path: routing and grouping, the dispatcher state and the outbox entry
//! written and fsynced, the delivery worker, reqwest's POST.
//!
//! Two loads:
//! - one at a time: an alert, wait for its webhook, the next (N alerts);
//! - bursts: B alerts of B different series closing in one bucket (one
//!   message each: `group_by = ["..."]`), timed per alert.
//!
//! usage: `cargo bench --bench notify_latency`. N from
//! `KPIWATCH_BENCH_ALERTS` (default 1000); bursts of 50, 20 times.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use detectors::Direction;
use kpiwatch::alert::{alert_id, RecentBucket, Severity, Status, Transition};
use kpiwatch::clock::SystemClock;
use kpiwatch::notify::notifier::Notifier;
use kpiwatch::notify::route::{GroupBy, Subscription};
use kpiwatch::notify::settings::{NotifySettings, Receiver, ReceiverKind, Webhook, WebhookFormat};
use kpiwatch::notify::silence::SilenceStore;
use kpiwatch::telemetry::Metrics;
use tokio::sync::mpsc;

fn transition(series: usize, start: i64) -> Transition {
    let labels = BTreeMap::from([("store".to_string(), format!("store-{series}"))]);
    Transition {
        status: Status::Firing,
        alert_id: alert_id("checkouts", &labels, start),
        kpi: "checkouts".into(),
        labels,
        severity: Severity::Critical,
        escalated_from: None,
        direction: Direction::Drop,
        started_at: start,
        bucket_start: start,
        bucket_end: start + 300,
        observed: 2.0,
        expected: 40.0,
        lower: 30.0,
        upper: 50.0,
        score: 0.99,
        deviation_pct: Some(-95.0),
        evidence: Default::default(),
        description: None,
        runbook: None,
        dashboard: None,
        recent: (0..24)
            .map(|i| RecentBucket {
                t: start - (23 - i) * 300,
                value: 40.0,
                expected: 40.0,
                lower: 30.0,
                upper: 50.0,
                anomalous: false,
            })
            .collect(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: n={} p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap()),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("KPIWATCH_BENCH_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // The receiver: alert id -> receipt instant.
    let (seen, mut received) = mpsc::unbounded_channel::<(String, Instant)>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let at = Instant::now();
            let seen = seen.clone();
            async move {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let id = v["alerts"][0]["alert_id"].as_str().unwrap().to_string();
                let _ = seen.send((id, at));
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut settings = NotifySettings::none(dir.path());
    settings.receivers = vec![Receiver {
        name: "oncall".into(),
        kind: ReceiverKind::Webhook(Webhook {
            url,
            format: WebhookFormat::Kpiwatch,
            secret_env: None,
            timeout: Duration::from_secs(5),
            headers: BTreeMap::new(),
            ca: None,
        }),
    }];
    let mut sub = Subscription::new("everything", &["oncall"]);
    sub.group_wait = Duration::ZERO;
    sub.group_by = GroupBy::Each;
    settings.subscriptions = vec![sub];
    let mut notifier = Notifier::start(
        &settings,
        dir.path(),
        Arc::new(Mutex::new(SilenceStore::in_memory())),
        Arc::new(SystemClock),
        Metrics::new(),
    )
    .unwrap();

    let mut start = 1_704_067_200;
    let mut one_at_a_time = Vec::with_capacity(n);
    for i in 0..n {
        start += 300;
        // A new series each time: a series already firing would be an
        // update to its group, sent only after group_interval.
        let t = transition(i, start);
        let closed = Instant::now();
        notifier.alerts(std::slice::from_ref(&t)).unwrap();
        let (id, at) = received.recv().await.unwrap();
        assert_eq!(id, t.alert_id);
        one_at_a_time.push(at - closed);
    }
    report("one alert at a time", one_at_a_time);

    let burst = 50;
    let mut bursts = Vec::new();
    for b in 0..20 {
        start += 300;
        let batch: Vec<Transition> = (0..burst)
            .map(|s| transition(n + b * burst + s, start))
            .collect();
        let closed = Instant::now();
        notifier.alerts(&batch).unwrap();
        let mut pending: HashMap<String, ()> =
            batch.iter().map(|t| (t.alert_id.clone(), ())).collect();
        while !pending.is_empty() {
            let (id, at) = received.recv().await.unwrap();
            if pending.remove(&id).is_some() {
                bursts.push(at - closed);
            }
        }
    }
    report(&format!("bursts of {burst} alerts in one bucket"), bursts);
    println!(
        "machine: {} cores; outbox on {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        dir.path().display()
    );
    notifier.stop().await;
}
