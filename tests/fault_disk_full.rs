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

use kafka::{
    broker, committed, config, event, minute, short_session, state_dir, Bucket, RemoveOnDrop,
    Service, WAIT,
};
use kpiwatch::alert::Status;
use kpiwatch::clock::ManualClock;
use kpiwatch::durable::FullDisk;
use kpiwatch::kafka::mock::MockBroker;
use webhook::Hooks;

/// The shop's topic and KPI; the webhook receiver, if any, hears every
/// alert alone and at once. Partitions never go idle: the wall clock moves
/// only for snapshots and retries here.
fn shop_config(hook: Option<&str>) -> String {
    let mut text = r#"
[[topic]]
name = "shop"
time_format = "epoch_seconds"
idle_timeout = "1h"

[defaults]
bucket = "1m"
lateness = "0s"

[defaults.alerting]
fire_after = 1
resolve_after = 1

[[kpi]]
name = "checkouts"
where = { type = "checkout" }
aggregate = "count"
direction = "drop"

[kpi.detectors]
# A static floor, so these tests do not depend on what the baselines learn.
min = 1.0
"#
    .to_string();
    if let Some(url) = hook {
        text.push_str(&format!(
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
        ));
    }
    text
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

const SNAPSHOT_FAILURES: &str = "kpiwatch_state_write_failures_total";

/// Up to the first snapshot the full disk refuses: minutes 0-9 are
/// consumed and snapshotted (the last good snapshot covers minutes 0-8),
/// then the snapshot's file is filled and minutes 10-19 consumed, with
/// the alert of minute 14, and the next snapshot fails. Returns the
/// buckets judged.
async fn until_a_snapshot_fails(
    service: &mut Service,
    shop: &mut Shop<'_>,
    clock: &ManualClock,
    disk: &FullDisk,
    snapshot_file: &std::path::Path,
) -> Vec<Bucket> {
    shop.produce(0, 10);
    let mut judged = service.buckets_until(|b| b.2 == minute(8)).await;
    clock.advance(2);
    service.next_snapshot().await;

    disk.fill(snapshot_file);
    shop.produce(10, 20);
    judged.extend(service.buckets_until(|b| b.2 == minute(18)).await);
    expect_transition(service, Status::Firing, 14).await;
    expect_transition(service, Status::Resolved, 15).await;
    clock.advance(2);
    service
        .metric_at_least(SNAPSHOT_FAILURES, &[("what", "snapshot")], 1.0)
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
    let group = "full-snapshot-recovers";
    let _cleanup = RemoveOnDrop(state_dir(group));
    let broker = broker("shop", 1);
    let disk = Arc::new(FullDisk::new());
    let clock = Arc::new(ManualClock::at(minute(60)));
    let cfg = short_session(config(
        broker.bootstrap_servers(),
        group,
        &shop_config(None),
    ));
    let mut service = Service::start_on(cfg, clock.clone(), disk.clone()).await;
    let mut shop = Shop::new(&broker, busy);
    let snapshot_file = state_dir(group).join("snapshot.postcard");
    until_a_snapshot_fails(&mut service, &mut shop, &clock, &disk, &snapshot_file).await;

    disk.free();
    clock.advance(2);
    service.next_snapshot().await;
    assert_eq!(service.readyz_until(200).await, "ready\n");
    let failures = service
        .metric(SNAPSHOT_FAILURES, &[("what", "snapshot")])
        .await;
    service.stop().await;

    // Minutes 0-18 are closed, on disk, and committed; minute 19 is open.
    assert_eq!(
        committed(broker.bootstrap_servers(), group, "shop", 0).await,
        shop.offset_of(19)
    );
    assert!(failures >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_the_full_disk_refuses_commits_nothing_past_the_last_good_one_and_a_restart_resumes_from_it(
) {
    let group = "full-snapshot-restart";
    let _cleanup = RemoveOnDrop(state_dir(group));
    let broker = broker("shop", 1);
    let disk = Arc::new(FullDisk::new());
    let clock = Arc::new(ManualClock::at(minute(60)));
    let cfg = || {
        short_session(config(
            broker.bootstrap_servers(),
            group,
            &shop_config(None),
        ))
    };
    let mut service = Service::start_on(cfg(), clock.clone(), disk.clone()).await;
    let mut shop = Shop::new(&broker, busy);
    let snapshot_file = state_dir(group).join("snapshot.postcard");
    let mut judged =
        until_a_snapshot_fails(&mut service, &mut shop, &clock, &disk, &snapshot_file).await;

    // A stop cannot write its snapshot either, and commits only what the
    // last good one covers: up to minute 9, the first bucket open then.
    let (_, rest) = service.stop().await;
    judged.extend(rest);
    assert_eq!(
        committed(broker.bootstrap_servers(), group, "shop", 0).await,
        shop.offset_of(9)
    );

    // Room again. The restart resumes from the last good snapshot: minutes
    // 9-18 are judged again, with the same values, and the alert of minute
    // 14 comes again with the same id.
    disk.free();
    let mut service = Service::start_on(cfg(), clock.clone(), disk.clone()).await;
    shop.produce(20, 21);
    let again = service.buckets_until(|b| b.2 == minute(19)).await;
    expect_transition(&mut service, Status::Firing, 14).await;
    clock.advance(2);
    service.next_snapshot().await;
    assert_eq!(service.readyz_until(200).await, "ready\n");
    service.stop().await;
    assert_eq!(
        committed(broker.bootstrap_servers(), group, "shop", 0).await,
        shop.offset_of(20)
    );

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

/// The outbox directory of `group`'s state directory.
fn outbox(group: &str) -> std::path::PathBuf {
    state_dir(group).join("outbox")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_the_full_outbox_refuses_is_delivered_once_when_there_is_room() {
    let group = "full-outbox-recovers";
    let _cleanup = RemoveOnDrop(state_dir(group));
    let hooks = Hooks::start().await;
    let broker = broker("shop", 1);
    let disk = Arc::new(FullDisk::new());
    let clock = Arc::new(ManualClock::at(minute(60)));
    let cfg = short_session(config(
        broker.bootstrap_servers(),
        group,
        &shop_config(Some(&hooks.url)),
    ));
    let mut service = Service::start_on(cfg, clock.clone(), disk.clone()).await;
    let mut shop = Shop::new(&broker, steady);

    disk.fill(&outbox(group));
    shop.produce(0, 7);
    let firing = expect_transition(&mut service, Status::Firing, 5).await;
    service
        .metric_at_least(SNAPSHOT_FAILURES, &[("what", "outbox")], 1.0)
        .await;
    let why = service.readyz_until(503).await;
    assert!(
        why.contains("notification outbox") && why.contains("No space left on device"),
        "{why}"
    );
    assert!(hooks.posts().is_empty(), "nothing sent that is not on disk");

    // Room again: the notifier tries again within a second, and the
    // snapshot that waited for it follows.
    disk.free();
    clock.advance(1);
    hooks.wait_for_distinct(1, WAIT).await;
    service.next_snapshot().await;
    assert_eq!(service.readyz_until(200).await, "ready\n");
    // The resolution goes out a group interval (1 s) after the firing.
    shop.produce(7, 8);
    expect_transition(&mut service, Status::Resolved, 6).await;
    clock.advance(1);
    hooks.wait_for_distinct(2, WAIT).await;
    service.stop().await;

    let posts = hooks.posts();
    assert_eq!(posts.len(), 2, "each once: {posts:?}");
    let got: Vec<(&str, &str)> = posts
        .iter()
        .map(|p| {
            (
                p.body["status"].as_str().unwrap_or_default(),
                p.body["alerts"][0]["alert_id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("firing", firing.alert_id.as_str()),
            ("resolved", firing.alert_id.as_str())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_the_full_outbox_refuses_survives_a_stop_because_no_offset_passed_it() {
    let group = "full-outbox-restart";
    let _cleanup = RemoveOnDrop(state_dir(group));
    let hooks = Hooks::start().await;
    let broker = broker("shop", 1);
    let disk = Arc::new(FullDisk::new());
    let clock = Arc::new(ManualClock::at(minute(60)));
    let cfg = || {
        short_session(config(
            broker.bootstrap_servers(),
            group,
            &shop_config(Some(&hooks.url)),
        ))
    };
    let mut service = Service::start_on(cfg(), clock.clone(), disk.clone()).await;
    let mut shop = Shop::new(&broker, steady);
    // A good snapshot first: minutes 0-2 closed, minute 3 open.
    shop.produce(0, 4);
    service.buckets_until(|b| b.2 == minute(2)).await;
    clock.advance(2);
    service.next_snapshot().await;

    disk.fill(&outbox(group));
    shop.produce(4, 7);
    let firing = expect_transition(&mut service, Status::Firing, 5).await;
    service
        .metric_at_least(SNAPSHOT_FAILURES, &[("what", "outbox")], 1.0)
        .await;
    // A snapshot is due, and must wait for the notification: it would
    // cover the close that fired the alert.
    clock.advance(2);
    service.stop().await;
    assert_eq!(
        committed(broker.bootstrap_servers(), group, "shop", 0).await,
        shop.offset_of(3),
        "nothing committed past the last good snapshot"
    );
    assert!(hooks.posts().is_empty());

    // Room again; the restart reads minutes 3-6 again, fires the same
    // alert, and its notification is written and sent, once.
    disk.free();
    let mut service = Service::start_on(cfg(), clock.clone(), disk.clone()).await;
    let again = expect_transition(&mut service, Status::Firing, 5).await;
    assert_eq!(again.alert_id, firing.alert_id);
    hooks.wait_for_distinct(1, WAIT).await;
    service.stop().await;
    let posts = hooks.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(
        posts[0].body["alerts"][0]["alert_id"].as_str(),
        Some(firing.alert_id.as_str())
    );
}
