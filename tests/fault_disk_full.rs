//! A full disk under the state directory while the service consumes: the
//! state snapshot or a notification's outbox entry cannot be written. The
//! service keeps consuming, judging and alerting on its last good state,
//! says so (log, `kpiwatch_state_write_failures_total{what}`, `/readyz`),
//! commits no offset past what is on disk, and catches up once there is
//! room again, whether it kept running or was stopped meanwhile.
//!
//! The disk is a [`FullDisk`] handed to the service as its storage: writes
//! under a filled path fail with `ENOSPC` as on a real full file system,
//! for any user and without a mount. The broker is librdkafka's mock
//! cluster, the wall clock a [`ManualClock`] the tests move; offsets are
//! read back from the broker as a restart would find them.

#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/webhook.rs"]
mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka::{
    broker, committed, config, event, minute, short_session, Bucket, Service, StateDir, SHOP, WAIT,
};
use kpiwatch::alert::Status;
use kpiwatch::clock::ManualClock;
use kpiwatch::durable::FullDisk;
use kpiwatch::kafka::mock::MockBroker;
use webhook::{notify_everything, Hooks};

/// What each test sets up: a one-partition broker, a disk to fill, a
/// wall clock past the events, and (for the outbox tests) a webhook
/// receiver that hears every alert alone and at once. The state
/// directory is removed when it is dropped.
struct Rig {
    group: &'static str,
    broker: Arc<MockBroker>,
    disk: Arc<FullDisk>,
    clock: Arc<ManualClock>,
    hooks: Option<Hooks>,
    state: StateDir,
}

impl Rig {
    async fn new(group: &'static str, notify: bool) -> Self {
        Self {
            group,
            broker: broker("shop", 1),
            disk: Arc::new(FullDisk::new()),
            clock: Arc::new(ManualClock::at(minute(60))),
            hooks: if notify {
                Some(Hooks::start().await)
            } else {
                None
            },
            state: StateDir::new(),
        }
    }

    /// Starts the service on the rig's disk. Partitions never go idle:
    /// the wall clock moves only for snapshots and retries here.
    async fn start(&self) -> Service {
        let mut body = SHOP.to_string();
        if let Some(hooks) = &self.hooks {
            body.push_str(&notify_everything(&hooks.url));
        }
        let mut cfg = short_session(config(
            &self.state,
            self.broker.bootstrap_servers(),
            self.group,
            &body,
        ));
        cfg.topics[0].idle_timeout = Duration::from_secs(3600);
        Service::start_on(cfg, self.clock.clone(), self.disk.clone()).await
    }

    /// The offset a restart would read from.
    async fn committed(&self) -> Option<i64> {
        committed(self.broker.bootstrap_servers(), self.group, "shop", 0).await
    }

    fn hooks(&self) -> &Hooks {
        self.hooks.as_ref().expect("a rig with a webhook receiver")
    }

    /// The state snapshot's file.
    fn snapshot_file(&self) -> std::path::PathBuf {
        self.state.path().join("snapshot.postcard")
    }

    /// The outbox directory.
    fn outbox(&self) -> std::path::PathBuf {
        self.state.path().join("outbox")
    }
}

/// A one-partition shop, so that an event's offset is its place in the
/// stream: minute `m` has `checkouts(m)` checkouts.
struct Shop<'b> {
    broker: &'b MockBroker,
    checkouts: fn(i64) -> i64,
    /// Offset of each minute's first event.
    first: BTreeMap<i64, i64>,
    next: i64,
}

impl<'b> Shop<'b> {
    fn new(broker: &'b MockBroker, checkouts: fn(i64) -> i64) -> Self {
        Self {
            broker,
            checkouts,
            first: BTreeMap::new(),
            next: 0,
        }
    }

    /// Produces minutes `from..to` and waits until the broker has them.
    fn produce(&mut self, from: i64, to: i64) {
        for m in from..to {
            self.first.insert(m, self.next);
            for k in 0..(self.checkouts)(m) {
                self.broker
                    .send("shop", Some(0), b"", &event(minute(m) + 5 + k, "checkout"))
                    .unwrap();
                self.next += 1;
            }
        }
        self.broker.flush().unwrap();
    }

    /// The offset a restart must read from for minute `m` to count whole.
    fn offset_of(&self, m: i64) -> Option<i64> {
        Some(self.first[&m])
    }
}

/// One to three checkouts a minute; none in minute 14.
fn busy(m: i64) -> i64 {
    if m == 14 {
        0
    } else {
        m % 3 + 1
    }
}

/// One checkout a minute; none in minute 5.
fn steady(m: i64) -> i64 {
    i64::from(m != 5)
}

/// Judged checkout buckets: minute -> values, in the order judged.
fn per_minute(judged: &[Bucket]) -> BTreeMap<i64, Vec<f64>> {
    let mut out: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for b in judged.iter().filter(|b| b.0 == "checkouts") {
        out.entry((b.2 - kafka::T0) / 60)
            .or_default()
            .push(b.3.expect("a count"));
    }
    out
}

/// Asserts the next transition's status and bucket minute; returns it.
async fn expect_transition(
    service: &mut Service,
    status: Status,
    at: i64,
) -> kpiwatch::alert::Transition {
    let t = service.next_transition().await;
    assert_eq!(
        (t.status, t.bucket_start),
        (status, minute(at)),
        "transition {t:?}"
    );
    t
}

const FAILURES: &str = "kpiwatch_state_write_failures_total";

/// Up to the first snapshot the full disk refuses: minutes 0-9 are
/// consumed and snapshotted (the last good snapshot covers minutes 0-8),
/// then the snapshot's file is filled and minutes 10-19 consumed, with
/// the alert of minute 14, and the next snapshot fails. Returns the
/// buckets judged.
async fn until_a_snapshot_fails(
    rig: &Rig,
    service: &mut Service,
    shop: &mut Shop<'_>,
) -> Vec<Bucket> {
    shop.produce(0, 10);
    let mut judged = service.buckets_until(|b| b.2 == minute(8)).await;
    rig.clock.advance(2);
    service.next_snapshot().await;

    rig.disk.fill(&rig.snapshot_file());
    shop.produce(10, 20);
    judged.extend(service.buckets_until(|b| b.2 == minute(18)).await);
    expect_transition(service, Status::Firing, 14).await;
    expect_transition(service, Status::Resolved, 15).await;
    rig.clock.advance(2);
    service
        .metric_at_least(FAILURES, &[("what", "snapshot")], 1.0)
        .await;
    let why = service.readyz_until(503).await;
    assert!(
        why.contains("state snapshot") && why.contains("No space left on device"),
        "/readyz says what cannot be written and why: {why}"
    );
    assert_eq!(
        service.get("/healthz").await.0,
        200,
        "alive: a restart would not make room"
    );
    judged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_the_full_disk_refuses_is_written_at_the_next_interval_once_there_is_room() {
    let rig = Rig::new("full-snapshot-recovers", false).await;
    let mut service = rig.start().await;
    let mut shop = Shop::new(&rig.broker, busy);
    until_a_snapshot_fails(&rig, &mut service, &mut shop).await;

    rig.disk.free();
    rig.clock.advance(2);
    service.next_snapshot().await;
    assert_eq!(service.readyz_until(200).await, "ready\n");
    service.stop().await;
    // Minutes 0-18 are closed, on disk, and committed; minute 19 is open.
    assert_eq!(rig.committed().await, shop.offset_of(19));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_the_full_disk_refuses_commits_nothing_past_the_last_good_one_and_a_restart_resumes_from_it(
) {
    let rig = Rig::new("full-snapshot-restart", false).await;
    let mut service = rig.start().await;
    let mut shop = Shop::new(&rig.broker, busy);
    let mut judged = until_a_snapshot_fails(&rig, &mut service, &mut shop).await;

    // A stop cannot write its snapshot either, and commits only what the
    // last good one covers: up to minute 9, the first bucket open then.
    let (_, rest) = service.stop().await;
    judged.extend(rest);
    assert_eq!(rig.committed().await, shop.offset_of(9));

    // Room again. The restart resumes from the last good snapshot: minutes
    // 9-18 are judged again, with the same values, and the alert of minute
    // 14 comes again with the same id.
    rig.disk.free();
    let mut service = rig.start().await;
    shop.produce(20, 21);
    let again = service.buckets_until(|b| b.2 == minute(19)).await;
    expect_transition(&mut service, Status::Firing, 14).await;
    rig.clock.advance(2);
    service.next_snapshot().await;
    assert_eq!(service.readyz_until(200).await, "ready\n");
    service.stop().await;
    assert_eq!(rig.committed().await, shop.offset_of(20));

    let before = per_minute(&judged);
    let after = per_minute(&again);
    assert_eq!(
        after.keys().copied().collect::<Vec<_>>(),
        (9..=19).collect::<Vec<_>>(),
        "judged again: exactly what the last good snapshot did not cover"
    );
    for m in 0..=19 {
        let runs: Vec<f64> = [&before, &after]
            .iter()
            .flat_map(|j| j.get(&m).cloned().unwrap_or_default())
            .collect();
        assert!(
            !runs.is_empty() && runs.iter().all(|&v| v == busy(m) as f64),
            "minute {m} always judged with its {} checkouts: {runs:?}",
            busy(m)
        );
    }
}

/// Up to the first notification the full outbox refuses: minutes 4-6
/// are consumed with the outbox filled, and minute 5's empty bucket fires
/// an alert whose notification cannot be written. Returns the transition.
async fn until_an_outbox_entry_fails(
    rig: &Rig,
    service: &mut Service,
    shop: &mut Shop<'_>,
) -> kpiwatch::alert::Transition {
    rig.disk.fill(&rig.outbox());
    shop.produce(4, 7);
    let firing = expect_transition(service, Status::Firing, 5).await;
    service
        .metric_at_least(FAILURES, &[("what", "outbox")], 1.0)
        .await;
    let why = service.readyz_until(503).await;
    assert!(
        why.contains("notification outbox") && why.contains("No space left on device"),
        "{why}"
    );
    assert!(
        rig.hooks().posts().is_empty(),
        "nothing sent that is not on disk"
    );
    firing
}

/// (status, alert id) of each POST received.
fn delivered(hooks: &Hooks) -> Vec<(String, String)> {
    hooks
        .posts()
        .iter()
        .map(|p| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&p.body["status"]),
                text(&p.body["alerts"][0]["alert_id"]),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_the_full_outbox_refuses_is_delivered_once_when_there_is_room() {
    let rig = Rig::new("full-outbox-recovers", true).await;
    let mut service = rig.start().await;
    let mut shop = Shop::new(&rig.broker, steady);
    shop.produce(0, 4);
    let firing = until_an_outbox_entry_fails(&rig, &mut service, &mut shop).await;

    // Room again: the notifier tries again within a second, and the
    // snapshot that waited for it follows.
    rig.disk.free();
    rig.clock.advance(1);
    rig.hooks().wait_for_distinct(1, WAIT).await;
    service.next_snapshot().await;
    assert_eq!(service.readyz_until(200).await, "ready\n");
    // The resolution goes out a group interval (1 s) after the firing.
    shop.produce(7, 8);
    expect_transition(&mut service, Status::Resolved, 6).await;
    rig.clock.advance(1);
    rig.hooks().wait_for_distinct(2, WAIT).await;
    service.stop().await;

    let id = firing.alert_id;
    assert_eq!(
        delivered(rig.hooks()),
        [
            ("firing".to_string(), id.clone()),
            ("resolved".to_string(), id)
        ],
        "each once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_the_full_outbox_refuses_survives_a_stop_because_no_offset_passed_it() {
    let rig = Rig::new("full-outbox-restart", true).await;
    let mut service = rig.start().await;
    let mut shop = Shop::new(&rig.broker, steady);
    // A good snapshot first: minutes 0-2 closed, minute 3 open.
    shop.produce(0, 4);
    service.buckets_until(|b| b.2 == minute(2)).await;
    rig.clock.advance(2);
    service.next_snapshot().await;
    let firing = until_an_outbox_entry_fails(&rig, &mut service, &mut shop).await;

    // A snapshot is due, and must wait for the notification: it would
    // cover the close that fired the alert.
    rig.clock.advance(2);
    service.stop().await;
    assert_eq!(
        rig.committed().await,
        shop.offset_of(3),
        "nothing committed past the last good snapshot"
    );

    // Room again; the restart reads minutes 3-6 again, fires the same
    // alert, and its notification is written and sent, once.
    rig.disk.free();
    let mut service = rig.start().await;
    let again = expect_transition(&mut service, Status::Firing, 5).await;
    assert_eq!(again.alert_id, firing.alert_id);
    rig.hooks().wait_for_distinct(1, WAIT).await;
    service.stop().await;
    assert_eq!(
        delivered(rig.hooks()),
        [("firing".to_string(), firing.alert_id)]
    );
}
