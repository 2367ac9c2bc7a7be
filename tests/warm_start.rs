//! Starting warm: `kpiwatch warm` learns three weeks of a simulated shop
//! from a file, then the service runs on librdkafka's mock cluster, which
//! holds the hours after the history (with an outage of checkouts) and a
//! few minutes from before its end. The first incident must alert as it
//! does in a replay of the whole file (three weeks of "live running"), at
//! the same bucket, and every bucket the service judges must hold exactly
//! the replay's value: nothing counted twice, nothing missed.
//!
//! The mock cluster cannot look offsets up by time (librdkafka answers
//! "none" to every timestamp there), so these tests go through the guard
//! that skips what comes before the history end; the placement by offsets
//! for times is unit-tested in `kafka::start`.

#[path = "common/kafka.rs"]
mod kafka;

use std::sync::{Arc, OnceLock};

use kafka::{broker, committed, config, short_session, Service, StateDir};
use kpiwatch::alert::{Status, Transition};
use kpiwatch::clock::ManualClock;
use kpiwatch::pipeline::window::ClosedBucket;
use kpiwatch::replay::{Observer, ReplayError};
use kpiwatch::simulate::{generate, Incident, ShopModel};
use kpiwatch::warm::{SaveState, WarmError};

/// 2024-01-01 00:00:00 UTC, a Monday.
const START: i64 = 1_704_067_200;
const DAY: i64 = 86_400;
/// Where the history file ends: three weeks and a bit, mid-bucket
/// (Monday 2024-01-22 12:07:13 UTC).
const HISTORY_END: i64 = START + 21 * DAY + 12 * 3600 + 7 * 60 + 13;
/// The topic holds events up to here.
const END: i64 = HISTORY_END + 4 * 3600;
/// Checkouts stop for 40 minutes from here (the afternoon peak).
const OUTAGE: i64 = START + 21 * DAY + 14 * 3600;
/// The topic also holds this much from before the history's end.
const OVERLAP: i64 = 10 * 60;
const TOPIC: &str = "shop";

const BODY: &str = r#"
[[topic]]
name = "shop"
idle_timeout = "30s"

[defaults]
bucket = "5m"

[[kpi]]
name = "checkouts"
where = { type = "checkout" }
aggregate = "count"
direction = "drop"

[[kpi]]
name = "page_views"
where = { type = "page_view" }
aggregate = "count"
group_by = ["platform"]
"#;

/// The simulated shop's events, in time order: (event time, JSON line).
fn events() -> &'static [(i64, Vec<u8>)] {
    static EVENTS: OnceLock<Vec<(i64, Vec<u8>)>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let model = ShopModel {
            start: START,
            end: END,
            peak_page_views: 40.0,
            incidents: vec![Incident {
                event_type: Some("checkout".into()),
                factor: 0.0,
                start: OUTAGE,
                end: OUTAGE + 40 * 60,
                country: None,
                platform: None,
                node: None,
            }],
            seed: 7,
            local_offset: 0,
        };
        let mut out = Vec::new();
        generate(&model, |t, line| out.push((t, line.to_vec())));
        out
    })
}

/// JSON lines of the events before `until`.
fn jsonl(until: i64) -> Vec<u8> {
    let mut text = Vec::new();
    for (_, line) in events().iter().take_while(|(t, _)| *t < until) {
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    text
}

/// What a replay of everything saw.
#[derive(Default)]
struct Everything {
    transitions: Vec<Transition>,
    buckets: Vec<(String, String, i64, Option<f64>)>,
    kpis: Vec<String>,
}

impl Observer for Everything {
    fn wants_buckets(&self) -> bool {
        true
    }

    fn closed(
        &mut self,
        judged: Vec<ClosedBucket>,
        transitions: &[Transition],
    ) -> Result<(), ReplayError> {
        self.transitions.extend_from_slice(transitions);
        for b in judged {
            self.buckets.push((
                self.kpis[b.kpi].clone(),
                b.key.to_string(),
                b.start,
                b.value,
            ));
        }
        Ok(())
    }
}

/// Three weeks and four hours replayed in one go: what three weeks of
/// live running would have said.
fn replay_of_everything() -> &'static Everything {
    static RUN: OnceLock<Everything> = OnceLock::new();
    RUN.get_or_init(|| {
        let state = StateDir::new();
        let c = config(&state, "127.0.0.1:9", "replay", BODY);
        let mut seen = Everything {
            kpis: c.kpis.iter().map(|k| k.name.clone()).collect(),
            ..Everything::default()
        };
        kpiwatch::replay::run(c, None, &jsonl(END)[..], None, &mut seen).expect("replay");
        seen
    })
}

/// A state directory warmed from the history file once, and the history's
/// end; [`warmed`] copies it for each test.
fn warmed_once() -> &'static (StateDir, i64) {
    static WARM: OnceLock<(StateDir, i64)> = OnceLock::new();
    WARM.get_or_init(|| {
        let state = StateDir::new();
        let end = warm(&state);
        (state, end)
    })
}

/// A new state directory holding the warm start's files; the history end.
fn warmed() -> (StateDir, i64) {
    let (from, end) = warmed_once();
    let state = StateDir::new();
    for name in [
        kpiwatch::pipeline::snapshot::FILE,
        kpiwatch::warm::HISTORY_FILE,
    ] {
        std::fs::copy(from.path().join(name), state.path().join(name)).expect("copy");
    }
    (state, *end)
}

/// Warms `state` from the history file; the history's end.
fn warm(state: &StateDir) -> i64 {
    let c = config(state, "127.0.0.1:9", "warm", BODY);
    let save = SaveState::new(
        state.path(),
        Arc::new(kpiwatch::durable::Disk),
        "history.jsonl",
    )
    .expect("an empty state directory");
    let warmed =
        kpiwatch::warm::warm(c, None, &jsonl(HISTORY_END)[..], None, save).expect("warm start");
    assert_eq!(warmed.history.topics.len(), 1);
    let end = warmed.history.topics[0].end;
    // The last bucket that closed: the one before the history's last,
    // still open (and partial) when the file ended.
    assert_eq!(end, HISTORY_END.div_euclid(300) * 300, "{warmed}");
    assert!(
        warmed.series >= 4,
        "checkouts and three platforms: {warmed}"
    );
    end
}

/// Produces the topic's events from `from` on, round-robin over its two
/// partitions, stamped with their event time; how many.
fn produce(brokers: &kpiwatch::kafka::mock::MockBroker, from: i64) -> usize {
    let mut n = 0;
    for (t, line) in events().iter().filter(|(t, _)| *t >= from) {
        brokers
            .send_at(TOPIC, Some((n % 2) as i32), b"", line, t * 1000)
            .expect("produce");
        n += 1;
    }
    brokers.flush().expect("flush");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_warming_from_three_weeks_the_first_incident_alerts_as_after_three_weeks_live() {
    let (state, history_end) = warmed();
    let brokers = broker(TOPIC, 2);
    let produced = produce(&brokers, HISTORY_END - OVERLAP);
    let before = events()
        .iter()
        .filter(|(t, _)| (HISTORY_END - OVERLAP..history_end).contains(t))
        .count();
    assert!(
        before > 10,
        "the topic holds events from before the history's end"
    );

    let c = config(&state, brokers.bootstrap_servers(), "warm-run", BODY);
    let mut service = Service::start(c, Arc::new(ManualClock::at(END + 60))).await;
    // Transitions until the outage's alert.
    let mut seen = Vec::new();
    let fired = loop {
        let t = service.next_transition().await;
        seen.push(t.clone());
        if t.kpi == "checkouts" && t.status == Status::Firing && t.bucket_start >= OUTAGE {
            break t;
        }
    };
    let everything = replay_of_everything();
    let expected: Vec<&Transition> = everything
        .transitions
        .iter()
        .filter(|t| t.bucket_start >= history_end && t.bucket_end <= fired.bucket_end)
        .collect();
    // As JSON: a NaN figure would make equal transitions unequal.
    let json = |ts: Vec<&Transition>| -> Vec<String> {
        ts.iter()
            .map(|t| serde_json::to_string(t).expect("json"))
            .collect()
    };
    assert_eq!(
        json(seen.iter().collect()),
        json(expected),
        "the service after a warm start says what a replay of everything says, alert for alert"
    );
    assert!(
        fired.bucket_start < OUTAGE + 15 * 60,
        "checkouts stopping alerts within 15 minutes: {fired:#?}"
    );

    // Everything read once: skipped what the snapshot holds, counted the
    // rest, nothing late.
    service.processed((produced - before) as f64).await;
    let skipped = service
        .metric(
            "kpiwatch_events_skipped_total",
            &[("reason", "before_history")],
        )
        .await;
    assert_eq!(
        skipped as usize, before,
        "events before the history end skipped"
    );
    assert_eq!(service.metric("kpiwatch_events_late_total", &[]).await, 0.0);
    let (summary, rest) = service.stop().await;
    assert_eq!(summary.events as usize, produced - before, "{summary:?}");
    // Every judged bucket: none was read before the stop.
    let mut judged = 0;
    let mut buckets = rest;
    buckets.retain(|b| b.2 >= history_end);
    for b in &buckets {
        let want = everything
            .buckets
            .iter()
            .find(|r| r.0 == b.0 && r.1 == b.1 && r.2 == b.2)
            .unwrap_or_else(|| panic!("the replay judged no bucket {b:?}"));
        assert_eq!(b.3, want.3, "bucket {b:?} counted as in the replay");
        judged += 1;
    }
    assert!(
        judged > 100,
        "the service judged the hours after the history: {judged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_committed_offsets_not_the_history_end() {
    let (state, history_end) = warmed();
    let brokers = broker(TOPIC, 2);
    let produced = produce(&brokers, HISTORY_END - OVERLAP);
    let before = events()
        .iter()
        .filter(|(t, _)| (HISTORY_END - OVERLAP..history_end).contains(t))
        .count();
    let c = || {
        short_session(config(
            &state,
            brokers.bootstrap_servers(),
            "warm-restart",
            BODY,
        ))
    };
    let clock = Arc::new(ManualClock::at(END + 60));
    let service = Service::start(c(), clock.clone()).await;
    service.processed((produced - before) as f64).await;
    let (first, _) = service.stop().await;
    assert_eq!(first.events as usize, produced - before);

    // The stop committed what its snapshot covers; the restart reads only
    // what comes after, and skips nothing as "before the history".
    let mut left = 0;
    for p in 0..2 {
        let held = produced / 2 + usize::from(p < produced % 2);
        let at = committed(brokers.bootstrap_servers(), "warm-restart", TOPIC, p as i32)
            .await
            .expect("an offset committed at the stop");
        assert!(
            at as usize > held / 2,
            "partition {p} committed at {at} of {held}"
        );
        left += held - at as usize;
    }
    let service = Service::start(c(), clock).await;
    service.processed(left as f64).await;
    assert_eq!(
        service
            .metric(
                "kpiwatch_events_skipped_total",
                &[("reason", "before_history")]
            )
            .await,
        0.0
    );
    let (second, _) = service.stop().await;
    assert_eq!(
        second.events as usize, left,
        "the restart read from the committed offsets: {second:?}"
    );
    assert_eq!(second.late, 0, "nothing read twice: {second:?}");
}

#[test]
fn warm_never_writes_over_an_existing_snapshot() {
    let (state, _) = warmed();
    let before = std::fs::read(state.path().join(kpiwatch::pipeline::snapshot::FILE)).unwrap();
    let refused = SaveState::new(
        state.path(),
        Arc::new(kpiwatch::durable::Disk),
        "again.jsonl",
    );
    assert!(matches!(refused, Err(WarmError::Exists(_))), "refused");
    let text = refused.err().unwrap().to_string();
    assert!(
        text.contains("already holds a snapshot") && text.contains("move"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(state.path().join(kpiwatch::pipeline::snapshot::FILE)).unwrap(),
        before
    );
}

#[test]
fn history_json_names_each_topic_s_end_for_people_and_for_run() {
    let (state, end) = warmed();
    let history = kpiwatch::warm::load_history(state.path())
        .expect("readable")
        .expect("written by warm");
    assert_eq!(history.events_file, "history.jsonl");
    assert_eq!(history.topics.len(), 1);
    assert_eq!(history.topics[0].topic, TOPIC);
    assert_eq!(history.topics[0].end, end);
    assert_eq!(history.topics[0].end_utc, "2024-01-22T12:05:00Z");
    assert_eq!(
        history.events as usize,
        events()
            .iter()
            .take_while(|(t, _)| *t < HISTORY_END)
            .count()
    );
}

/// A plain member of `group` that holds partitions without reading or
/// committing anything, until dropped (then it leaves the group).
struct Member {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Member {
    /// Joins `group` and waits until it holds `partitions` partitions.
    fn join(brokers: &str, group: &str, partitions: usize) -> Self {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (held_tx, held) = std::sync::mpsc::channel();
        let (brokers, group) = (brokers.to_string(), group.to_string());
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let c: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "latest")
                .set("session.timeout.ms", "6000")
                .set("log_level", "3")
                .create()
                .expect("a plain consumer");
            c.subscribe(&[TOPIC]).expect("subscribed");
            let mut told = false;
            while !flag.load(Ordering::Relaxed) {
                // Polling keeps it in the group; what it reads is dropped.
                let _ = c.poll(std::time::Duration::from_millis(50));
                let n = c.assignment().map(|a| a.count()).unwrap_or(0);
                if !told && n == partitions {
                    told = true;
                    let _ = held_tx.send(());
                }
            }
            c.unsubscribe();
        });
        held.recv_timeout(kafka::WAIT)
            .expect("the plain member holds its partitions in time");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_a_rebalance_hands_over_later_also_starts_at_the_history_end() {
    let (state, history_end) = warmed();
    let brokers = broker(TOPIC, 2);
    let produced = produce(&brokers, HISTORY_END - OVERLAP);
    let after: Vec<usize> = (0..2)
        .map(|p| {
            events()
                .iter()
                .filter(|(t, _)| *t >= HISTORY_END - OVERLAP)
                .enumerate()
                .filter(|(n, (t, _))| n % 2 == p && *t >= history_end)
                .count()
        })
        .collect();
    let before = produced - after[0] - after[1];
    let group = "warm-rebalance";
    // Another member holds both partitions first; the service gets one of
    // them when it joins, and the other when that member leaves: a
    // partition it never had, which no one committed.
    let other = Member::join(brokers.bootstrap_servers(), group, 2);
    let c = short_session(config(&state, brokers.bootstrap_servers(), group, BODY));
    let clock = Arc::new(ManualClock::at(END + 60));
    let mut service = Service::start(c, clock.clone()).await;
    service.processed(after[0].min(after[1]) as f64).await;
    // A snapshot, and the commit behind it: when the other member leaves,
    // the eager rebalance hands the service its first partition again,
    // which must resume from that commit, not the history end.
    clock.advance(2);
    service.next_snapshot().await;
    // Auto-commit runs every second (real time): poll for it, bounded.
    let deadline = std::time::Instant::now() + kafka::WAIT;
    let mut mine = None;
    while mine.is_none() {
        assert!(std::time::Instant::now() < deadline, "no offset committed");
        for p in 0..2 {
            if committed(brokers.bootstrap_servers(), group, TOPIC, p)
                .await
                .is_some()
            {
                mine = Some(p);
            }
        }
    }
    drop(other);
    service.processed((after[0] + after[1]) as f64).await;
    let skipped = service
        .metric(
            "kpiwatch_events_skipped_total",
            &[("reason", "before_history")],
        )
        .await;
    assert_eq!(
        skipped as usize, before,
        "both partitions skipped what the snapshot holds, once"
    );
    let (summary, _) = service.stop().await;
    assert_eq!(
        summary.events as usize,
        after[0] + after[1],
        "each message after the history end read once: {summary:?}"
    );
    // The partition handed over late finds its buckets closed by the
    // first one's time (each instance judges only its own partitions;
    // README, Status): its events are late, dropped and counted, never
    // counted twice. The first partition's are all on time.
    let late_partition = 1 - mine.expect("a partition committed") as usize;
    assert!(
        summary.late > 0 && summary.late as usize <= after[late_partition],
        "{summary:?}"
    );
}
