//! The Kafka broker going away and coming back while the service consumes
//! (librdkafka's mock cluster taken down and up again): the service keeps
//! running, says it is not ready while it cannot reach the broker, does
//! not let the wall clock close buckets it cannot fill, and afterwards
//! has counted every event exactly once and alerted as it should.
//!
//! An outage is real time on the broker's side (connections refused,
//! group sessions expiring), so each test holds the broker down for a
//! fixed real duration; everything else waits on channels or polls with
//! a deadline. Wall-clock time as the service sees it is a
//! [`ManualClock`] the tests move.

#[path = "common/kafka.rs"]
mod kafka;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka::{broker, config, event, minute, short_session, Bucket, Service, StateDir, SHOP};
use kpiwatch::alert::Status;
use kpiwatch::clock::ManualClock;
use kpiwatch::kafka::mock::MockBroker;

/// Checkouts in minute `m`: 1 to 3, except minutes 22-24, when checkout
/// is broken (page views only).
fn checkouts(m: i64) -> i64 {
    if (22..25).contains(&m) {
        0
    } else {
        m % 3 + 1
    }
}

/// Queues minutes `from..to` of the shop, alternating two partitions; a
/// page view in every minute, so a minute without checkouts still moves
/// event time.
fn produce(broker: &MockBroker, from: i64, to: i64) {
    for m in from..to {
        for k in 0..checkouts(m) {
            let p = ((m + k) % 2) as i32;
            broker
                .send("shop", Some(p), b"", &event(minute(m) + 5 + k, "checkout"))
                .unwrap();
        }
        for p in 0..2 {
            broker
                .send("shop", Some(p), b"", &event(minute(m) + 30, "page_view"))
                .unwrap();
        }
    }
}

/// Judged checkout buckets by minute.
fn per_minute(judged: &[Bucket]) -> BTreeMap<i64, Vec<Option<f64>>> {
    let mut out: BTreeMap<i64, Vec<Option<f64>>> = BTreeMap::new();
    for b in judged.iter().filter(|b| b.0 == "checkouts") {
        out.entry((b.2 - kafka::T0) / 60).or_default().push(b.3);
    }
    out
}

/// What the service read twice: (late, skipped as redelivered) events.
struct ReadAgain {
    late: f64,
    redelivered: f64,
}

/// Runs the shop through an outage of `outage` real time, during which
/// ten minutes pass on the wall clock and ten minutes of events wait in
/// the producer, and checks what the service made of it: /readyz fails
/// during the outage and recovers; every minute is judged once with all
/// its checkouts; the only alert is the broken checkout after the outage.
async fn survives_an_outage(group: &str, outage: Duration) -> ReadAgain {
    let state = StateDir::new();
    let broker = broker("shop", 2);
    // The wall clock is a little past the events, as in a shop that is
    // live; during the outage it moves ten minutes on.
    let clock = Arc::new(ManualClock::at(minute(10) + 20));
    let mut cfg = short_session(config(&state, broker.bootstrap_servers(), group, SHOP));
    // Statistics every half second, so the service sees the broker back
    // (and /readyz says so) soon after it returns.
    cfg.kafka
        .options
        .insert("statistics.interval.ms".into(), "500".into());
    let mut service = Service::start(cfg, clock.clone()).await;

    produce(&broker, 0, 10);
    broker.flush().unwrap();
    let mut judged = service.buckets_until(|b| b.2 == minute(8)).await;
    assert_eq!(service.readyz_until(200).await, "ready\n");

    broker.down().unwrap();
    let why = service.readyz_until(503).await;
    assert!(why.contains("Kafka"), "/readyz names the broker: {why}");
    // Ten minutes of wall-clock time without a message from any partition,
    // twice the idle timeout and more: idle, if the broker were there.
    clock.advance(600);
    // The shop goes on; its events wait in the producer.
    produce(&broker, 10, 20);
    // The outage itself: real time on the broker's side.
    tokio::time::sleep(outage).await;
    broker.up().unwrap();
    broker.flush().unwrap();
    produce(&broker, 20, 31);
    broker.flush().unwrap();

    judged.extend(service.buckets_until(|b| b.2 == minute(29)).await);
    assert_eq!(service.readyz_until(200).await, "ready\n");
    let read_again = ReadAgain {
        late: service
            .metric("kpiwatch_events_late_total", &[("topic", "shop")])
            .await,
        redelivered: service
            .metric(
                "kpiwatch_events_skipped_total",
                &[("topic", "shop"), ("reason", "redelivered")],
            )
            .await,
    };
    let mut transitions = Vec::new();
    while let Ok(t) = service.transitions.try_recv() {
        transitions.push(t);
    }
    let (_, rest) = service.stop().await;
    judged.extend(rest);

    let judged = per_minute(&judged);
    for m in 0..30 {
        assert_eq!(
            judged.get(&m),
            Some(&vec![Some(checkouts(m) as f64)]),
            "minute {m} judged once with every checkout; all: {judged:?}"
        );
    }
    let got: Vec<_> = transitions
        .iter()
        .map(|t| (t.status, (t.bucket_start - kafka::T0) / 60))
        .collect();
    assert_eq!(
        got,
        [(Status::Firing, 22), (Status::Resolved, 25)],
        "only the broken checkout alerts, not the outage"
    );
    read_again
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_for_two_seconds_loses_and_double_counts_nothing() {
    let again = survives_an_outage("outage-short", Duration::from_secs(2)).await;
    // Within the session the consumer keeps its partitions and its
    // position: nothing is read twice, and nothing the producer held back
    // was late.
    assert_eq!((again.late, again.redelivered), (0.0, 0.0));
}

/// Longer than the group session (6 s): the consumer loses its
/// partitions (and the offsets it stored but could not commit), joins
/// again when the broker returns, and reads its partitions again from
/// the committed offsets: what it had counted is skipped (a partition
/// with events in open buckets) or late (closed buckets), never counted
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_past_the_group_session_loses_and_double_counts_nothing() {
    let again = survives_an_outage("outage-long", Duration::from_secs(9)).await;
    assert!(
        again.late + again.redelivered > 0.0,
        "the partitions were read again from the committed offsets"
    );
}
