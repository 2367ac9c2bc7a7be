//! The service against a real Kafka-protocol broker (librdkafka's mock
//! cluster on 127.0.0.1): events in, buckets and alerts out, offsets
//! committed, bad input counted, metrics scraped over HTTP. Wall-clock time
//! is a [`ManualClock`] the tests move; every wait has a timeout.

#[path = "common/kafka.rs"]
mod kafka;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka::{broker, config, event, minute, short_session, Service, StateDir, SHOP, T0};
use kpiwatch::alert::Status;
use kpiwatch::clock::ManualClock;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use tokio::sync::oneshot;

fn checkout_buckets(buckets: &[kafka::Bucket]) -> Vec<(i64, Option<f64>)> {
    buckets
        .iter()
        .filter(|b| b.0 == "checkouts")
        .map(|b| ((b.2 - T0) / 60, b.3))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_checkouts_at_all_for_ten_minutes_fires_when_the_topic_goes_quiet() {
    let broker = broker("shop", 2);
    let state = StateDir::new();
    let clock = Arc::new(ManualClock::at(minute(20)));
    let mut service = Service::start(
        config(&state, broker.bootstrap_servers(), "absence", SHOP),
        clock.clone(),
    )
    .await;
    let mut n = 0;
    for m in 0..20 {
        for s in [5, 25, 45] {
            broker
                .send("shop", Some(n % 2), b"", &event(minute(m) + s, "checkout"))
                .unwrap();
            n += 1;
        }
    }
    broker.flush().unwrap();
    // Every message must be read before the wall clock moves, or the last
    // one read would look fresh and hold the topic's time back.
    service.processed(60.0).await;
    // Nothing more arrives; ten minutes of wall-clock time pass.
    clock.advance(600);
    let t = service.next_transition().await;
    assert_eq!((t.status, t.kpi.as_str()), (Status::Firing, "checkouts"));
    assert_eq!(t.bucket_start, minute(20));
    assert_eq!(t.observed, 0.0);
    assert_eq!(t.direction, detectors::Direction::Drop);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_partition_does_not_hold_the_others_back() {
    let broker = broker("shop", 2);
    let state = StateDir::new();
    let clock = Arc::new(ManualClock::at(T0));
    let mut service = Service::start(
        config(&state, broker.bootstrap_servers(), "idle", SHOP),
        clock.clone(),
    )
    .await;
    for m in 0..3 {
        for p in 0..2 {
            broker
                .send("shop", Some(p), b"", &event(minute(m) + 10, "checkout"))
                .unwrap();
        }
    }
    broker.flush().unwrap();
    // Minute 1 closes only once both partitions delivered minute 2: every
    // message above has been read before the wall clock moves.
    service.buckets_until(|b| b.2 == minute(1)).await;
    // Partition 0 falls silent for longer than the idle timeout; only
    // partition 1 goes on.
    clock.advance(10);
    for m in 3..16 {
        broker
            .send("shop", Some(1), b"", &event(minute(m) + 10, "checkout"))
            .unwrap();
    }
    broker.flush().unwrap();
    let seen = service.buckets_until(|b| b.2 == minute(13)).await;
    assert!(
        checkout_buckets(&seen).contains(&(13, Some(1.0))),
        "{seen:?}"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_committed_offsets_without_losing_or_double_counting_a_bucket() {
    let broker = broker("shop", 2);
    let state = StateDir::new();
    let clock = Arc::new(ManualClock::at(T0));
    let produce = |from: i64, to: i64, n: &mut i32| {
        for m in from..to {
            // Minute m has m % 3 + 1 checkouts, alternating partitions, so
            // partitions resume at different minutes after the restart.
            for k in 0..(m % 3 + 1) {
                broker
                    .send(
                        "shop",
                        Some(*n % 2),
                        b"",
                        &event(minute(m) + 5 + k, "checkout"),
                    )
                    .unwrap();
                *n += 1;
            }
        }
        broker.flush().unwrap();
    };
    let mut n = 0;
    produce(0, 11, &mut n);

    let mut first = Service::start(
        short_session(config(&state, broker.bootstrap_servers(), "restart", SHOP)),
        clock.clone(),
    )
    .await;
    let mut judged = first.buckets_until(|b| b.2 == minute(4)).await;
    let (_, rest) = first.stop().await;
    judged.extend(rest);

    let mut second = Service::start(
        short_session(config(&state, broker.bootstrap_servers(), "restart", SHOP)),
        clock.clone(),
    )
    .await;
    produce(11, 13, &mut n);
    judged.extend(second.buckets_until(|b| b.2 == minute(10)).await);
    let (_, rest) = second.stop().await;
    judged.extend(rest);

    let mut per_minute: BTreeMap<i64, Vec<Option<f64>>> = BTreeMap::new();
    for (m, v) in checkout_buckets(&judged) {
        per_minute.entry(m).or_default().push(v);
    }
    for m in 0..=10 {
        assert_eq!(
            per_minute.get(&m),
            Some(&vec![Some((m % 3 + 1) as f64)]),
            "minute {m} must be judged exactly once with its full count; all: {per_minute:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_late_events_are_counted_dead_lettered_and_scraped_not_fatal() {
    let broker = broker("shop", 1);
    let state = StateDir::new();
    broker.create_topic("shop.dlq", 1).unwrap();
    // The wall clock is past the events: events more than max_ahead ahead
    // of it would be refused.
    let clock = Arc::new(ManualClock::at(minute(20)));
    let mut cfg = config(&state, broker.bootstrap_servers(), "bad-input", SHOP);
    cfg.kafka.dead_letter_topic = Some("shop.dlq".into());
    let mut service = Service::start(cfg, clock).await;
    assert_eq!(service.get("/healthz").await.0, 200);

    for m in 0..14 {
        broker
            .send("shop", None, b"", &event(minute(m), "checkout"))
            .unwrap();
    }
    // Over the 1 MiB event limit. (librdkafka's mock broker stalls the
    // partition on a 10 MB message; the 10 MB refusal is tested on the
    // pipeline in tests/replay_pipeline.rs.)
    let huge = format!(
        r#"{{"time":{},"type":"checkout","pad":"{}"}}"#,
        minute(14),
        "x".repeat(2 << 20)
    );
    let malformed: Vec<Vec<u8>> = vec![
        b"{not json".to_vec(),
        b"[1,2,3]".to_vec(),
        br#"{"type":"checkout"}"#.to_vec(),
        br#"{"time":"yesterday","type":"checkout"}"#.to_vec(),
        b"{\"time\":1704067200,\"type\":\"\xff\xfe\"}".to_vec(),
        huge.into_bytes(),
    ];
    for m in &malformed {
        broker.send("shop", None, b"", m).unwrap();
    }
    // Minute 2 closed long ago: late.
    broker
        .send("shop", None, b"", &event(minute(2) + 30, "checkout"))
        .unwrap();
    for m in 15..17 {
        broker
            .send("shop", None, b"", &event(minute(m), "checkout"))
            .unwrap();
    }
    broker.flush().unwrap();
    // One partition: once minute 15 is judged, everything before it was read.
    service.buckets_until(|b| b.2 == minute(15)).await;

    let topic = [("topic", "shop")];
    assert_eq!(
        service
            .metric("kpiwatch_events_consumed_total", &topic)
            .await,
        23.0
    );
    assert_eq!(
        service.metric("kpiwatch_events_late_total", &topic).await,
        1.0
    );
    for (reason, n) in [
        ("invalid_json", 2.0),
        ("not_an_object", 1.0),
        ("missing_time", 1.0),
        ("bad_time", 1.0),
        ("too_large", 1.0),
    ] {
        let got = service
            .metric(
                "kpiwatch_events_rejected_total",
                &[("topic", "shop"), ("reason", reason)],
            )
            .await;
        assert_eq!(got, n, "rejected for {reason}");
    }
    assert!(
        service
            .metric("kpiwatch_buckets_closed_total", &[("kpi", "checkouts")])
            .await
            >= 15.0
    );
    assert_eq!(service.get("/readyz").await.0, 200);
    service.stop().await;

    let dlq: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&["shop.dlq"]).unwrap();
    let mut reasons = Vec::new();
    let deadline = std::time::Instant::now() + kafka::WAIT;
    while reasons.len() < 6 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = dlq.poll(Duration::from_millis(200)) {
            let headers = m.headers().expect("dead letters carry headers");
            let reason = headers
                .iter()
                .find(|h| h.key == "kpiwatch-reason")
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned());
            reasons.push(reason.unwrap_or_default());
        }
    }
    dlq.unsubscribe();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "bad_time",
            "invalid_json",
            "invalid_json",
            "missing_time",
            "not_an_object",
            "too_large"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_the_restart_keeps_baselines_and_never_rejudges_a_closed_bucket() {
    let broker = broker("shop", 1);
    let state = StateDir::new();
    // The wall clock is past the events: events more than max_ahead ahead
    // of it would be refused.
    let clock = Arc::new(ManualClock::at(minute(25)));
    for m in 0..20 {
        broker
            .send("shop", None, b"", &event(minute(m) + 5, "checkout"))
            .unwrap();
    }
    broker.flush().unwrap();

    let crash_config = || short_session(config(&state, broker.bootstrap_servers(), "crash", SHOP));
    let mut first = Service::start(crash_config(), clock.clone()).await;
    first.buckets_until(|b| b.2 == minute(18)).await;
    // A second of wall-clock time: the next tick snapshots and stores offsets.
    clock.advance(2);
    first.next_snapshot().await;
    first.crash().await;

    // The shop goes on: page views, but no checkouts from minute 20.
    for m in 20..25 {
        broker
            .send("shop", None, b"", &event(minute(m) + 5, "page_view"))
            .unwrap();
    }
    broker.flush().unwrap();
    let mut second = Service::start(crash_config(), clock.clone()).await;
    let judged = second.buckets_until(|b| b.2 == minute(23)).await;
    assert_eq!(
        checkout_buckets(&judged),
        vec![
            (19, Some(1.0)),
            (20, Some(0.0)),
            (21, Some(0.0)),
            (22, Some(0.0)),
            (23, Some(0.0))
        ],
        "buckets closed before the crash must not be judged again"
    );
    // The baselines came back: no warm-up, the first empty bucket alerts.
    let t = second.next_transition().await;
    assert_eq!((t.status, t.bucket_start), (Status::Firing, minute(20)));
    second.stop().await;
}

/// A partition taken away by a rebalance and handed straight back is read
/// again from its committed offset: events this instance already counted
/// into a bucket that is still open must not be counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_handed_back_by_a_rebalance_does_not_count_its_open_bucket_twice() {
    let broker = broker("shop", 2);
    let state = StateDir::new();
    let clock = Arc::new(ManualClock::at(T0));
    let group = "rebalance";
    let mut service = Service::start(
        short_session(config(&state, broker.bootstrap_servers(), group, SHOP)),
        clock.clone(),
    )
    .await;
    for m in 0..5 {
        for p in 0..2 {
            broker
                .send(
                    "shop",
                    Some(p),
                    b"",
                    &event(minute(m) + 10 + i64::from(p), "checkout"),
                )
                .unwrap();
        }
    }
    broker.flush().unwrap();
    // Minutes 0-3 close; minute 4 stays open with one checkout from each
    // partition. The clock does not move, so no snapshot is taken and no
    // offset is committed: a partition handed back is read from the start.
    let mut judged = service.buckets_until(|b| b.2 == minute(3)).await;

    // A second member joins: the service loses both partitions and gets
    // one of them back.
    let bootstrap = broker.bootstrap_servers().to_string();
    let (joined_tx, joined) = oneshot::channel();
    let (leave_tx, leave) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .set("log_level", "3")
            .create()
            .unwrap();
        c.subscribe(&["shop"]).unwrap();
        let deadline = std::time::Instant::now() + kafka::WAIT;
        let mut joined_tx = Some(joined_tx);
        while std::time::Instant::now() < deadline && leave.try_recv().is_err() {
            let _ = c.poll(Duration::from_millis(50));
            if c.assignment().is_ok_and(|a| a.count() > 0) {
                if let Some(tx) = joined_tx.take() {
                    let _ = tx.send(());
                }
            }
        }
        c.unsubscribe();
    });
    tokio::time::timeout(kafka::WAIT, joined)
        .await
        .expect("the second member gets a partition in time")
        .expect("the second member reports");

    // Minute 6 on both partitions: whichever the service kept moves its
    // time past minute 5, and minutes 4 and 5 close.
    for p in 0..2 {
        broker
            .send("shop", Some(p), b"", &event(minute(6) + 10, "checkout"))
            .unwrap();
    }
    broker.flush().unwrap();
    judged.extend(service.buckets_until(|b| b.2 == minute(5)).await);
    let skipped = service
        .metric(
            "kpiwatch_events_skipped_total",
            &[("topic", "shop"), ("reason", "redelivered")],
        )
        .await;
    let _ = leave_tx.send(());
    other.join().unwrap();
    service.stop().await;

    let minute_4: Vec<_> = checkout_buckets(&judged)
        .into_iter()
        .filter(|b| b.0 == 4)
        .collect();
    assert_eq!(
        minute_4,
        vec![(4, Some(2.0))],
        "minute 4 holds one checkout from each partition, counted once"
    );
    assert!(skipped >= 1.0, "the partition handed back was read again");
}

/// A hundred series whose silence is judged for a week: a jump of the wall
/// clock by a week closes a million buckets at once, tens of seconds of
/// judging in a debug build.
const USERS: &str = r#"
[[topic]]
name = "shop"
time_format = "epoch_seconds"
idle_timeout = "5s"

[defaults]
bucket = "1m"
lateness = "0s"
evict_after = "7d"

[[kpi]]
name = "views"
where = { type = "page_view" }
aggregate = "count"
group_by = ["user"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_stuck_in_a_burst_fails_readyz_and_a_stop_ends_it_within_seconds_without_a_snapshot()
{
    let broker = broker("shop", 1);
    let state = StateDir::new();
    let start = minute(60);
    let clock = Arc::new(ManualClock::at(start));
    let mut cfg = config(&state, broker.bootstrap_servers(), "stall", USERS);
    cfg.service.stall_after = Duration::from_secs(10);
    let mut service = Service::start(cfg, clock.clone()).await;
    let view = |t: i64, user: i64| format!(r#"{{"time":{t},"type":"page_view","user":"u{user}"}}"#);
    let mut n = 0.0;
    for m in 0..5 {
        for user in 0..100 {
            broker
                .send("shop", None, b"", view(start + 60 * m + 1, user).as_bytes())
                .unwrap();
            n += 1.0;
        }
    }
    broker.flush().unwrap();
    service.processed(n).await;
    assert_eq!(service.get("/readyz").await.0, 200);

    // A week passes on the wall clock: the quiet topic's time follows it,
    // and every series' empty week closes in one burst. Then more than
    // stall_after passes while events go on arriving: the stuck loop leaves
    // them queued.
    clock.advance(7 * 86_400);
    clock.advance(11);
    let deadline = std::time::Instant::now() + kafka::WAIT;
    let mut user = 0;
    let body = loop {
        broker
            .send("shop", None, b"", view(start + 7 * 86_400, user).as_bytes())
            .unwrap();
        broker.flush().unwrap();
        user += 1;
        let (status, body) = service.get_from_outside("/readyz");
        if status == 503 {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz stayed {status}: {body}"
        );
    };
    assert!(body.contains("no batch processed for"), "{body}");

    // Snapshots so far were taken before the burst.
    while service.snapshots.try_recv().is_ok() {}
    let (_, mut snapshots) = tokio::sync::mpsc::unbounded_channel();
    std::mem::swap(&mut snapshots, &mut service.snapshots);
    let stopping = std::time::Instant::now();
    let (_, judged) = service.stop().await;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert!(
        judged.len() < 100 * 10_080,
        "the burst was not interrupted: {} buckets judged",
        judged.len()
    );
    assert!(
        snapshots.try_recv().is_err(),
        "no snapshot may cover buckets closed but not judged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_days_ahead_of_the_wall_clock_is_refused_and_the_events_after_it_are_not_late() {
    let broker = broker("shop", 1);
    let state = StateDir::new();
    let clock = Arc::new(ManualClock::at(minute(20)));
    let mut service = Service::start(
        config(&state, broker.bootstrap_servers(), "ahead", SHOP),
        clock.clone(),
    )
    .await;
    for m in 0..10 {
        broker
            .send("shop", None, b"", &event(minute(m) + 5, "checkout"))
            .unwrap();
    }
    broker
        .send(
            "shop",
            None,
            b"",
            &event(minute(10) + 3 * 86_400, "checkout"),
        )
        .unwrap();
    for m in 10..16 {
        broker
            .send("shop", None, b"", &event(minute(m) + 5, "checkout"))
            .unwrap();
    }
    broker.flush().unwrap();
    let judged = service.buckets_until(|b| b.2 == minute(14)).await;
    let topic_reason = [("topic", "shop"), ("reason", "ahead_of_clock")];
    assert_eq!(
        service
            .metric("kpiwatch_events_rejected_total", &topic_reason)
            .await,
        1.0
    );
    assert_eq!(
        service
            .metric("kpiwatch_events_late_total", &[("topic", "shop")])
            .await,
        0.0
    );
    assert!(
        checkout_buckets(&judged)
            .iter()
            .all(|(_, v)| *v == Some(1.0)),
        "every minute has its one checkout: {judged:?}"
    );
    service.stop().await;
}

/// What a test's service writes (snapshots, outbox) goes into its
/// `StateDir`, which is removed when the test ends: a run of the suite
/// leaves no `kpiwatch-test-*` folders in the temporary directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_state_directory_is_written_and_then_removed_with_the_test() {
    let broker = broker("shop", 1);
    let state = StateDir::new();
    let path = state.path().to_path_buf();
    let clock = Arc::new(ManualClock::at(minute(20)));
    let service = Service::start(
        config(&state, broker.bootstrap_servers(), "cleanup", SHOP),
        clock,
    )
    .await;
    service.stop().await;
    let written = std::fs::read_dir(&path).map_or(0, |d| d.count());
    assert!(written > 0, "the service wrote nothing into {path:?}");
    drop(state);
    assert!(!path.exists(), "{path:?} is left behind");
}
