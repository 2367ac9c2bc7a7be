//! `kpiwatch run` killed with SIGKILL again and again while it consumes a
//! live stream, and restarted each time on the same state directory: in
//! the end every alert transition was notified once, no event was counted
//! twice or lost, and the final state is that of a run that was never
//! interrupted.
//!
//! The test process holds the broker (librdkafka's mock cluster, its
//! address handed to the children through their config files), produces
//! a shop's events at a steady pace with incidents in them, and runs two
//! webhook receivers that keep every POST with its `Idempotency-Key`. Two
//! `kpiwatch run` children consume the same topic in their own consumer
//! groups and state directories: one is killed at seeded random moments
//! ([`KILLS`] times) and restarted at once, the other (the reference)
//! runs through. Then the stream is finished, a last instance of the
//! killed one catches up, and both are stopped with SIGTERM and compared.
//!
//! Every bucket's total is checked, not only the incidents': the shop is
//! constant outside its incidents, and each KPI has static `min`/`max`
//! rules half an event either side of that constant, so one event lost
//! or counted twice in any bucket of any series is an alert the plan does
//! not have. Each transition also carries the recent buckets' values,
//! compared with what was produced.
//!
//! Set `KPIWATCH_SIGKILL_SEED` to replay a run's kill moments (the seed is
//! printed); the interleaving with the children's own timing is the
//! operating system's.

#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/webhook.rs"]
mod webhook;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use kafka::{broker, committed, T0};
use kpiwatch::alert::{Status, Transition};
use kpiwatch::kafka::mock::MockBroker;
use rand::{Rng, SeedableRng};
use webhook::Hooks;

/// SIGKILLs of the interrupted run.
const KILLS: usize = 24;
/// Minutes of event time in the stream. The last one stays open.
const MINUTES: i64 = 240;
/// Real time between two produced minutes: the stream outlasts the kill
/// loop, so every instance starts with a backlog and then consumes live.
const PACE: Duration = Duration::from_millis(300);
const PARTITIONS: i32 = 4;
/// Checkouts per platform and page views per minute, outside incidents.
const CHECKOUTS: i64 = 20;
const VIEWS: i64 = 60;
/// Killed instances are gone from the group after this; their successors
/// wait for it before they get partitions.
const SESSION_MS: u64 = 2000;
/// The longest single wait (a join, the catching up at the end).
const WAIT: Duration = Duration::from_secs(120);

/// What goes wrong in the shop, and when.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Incident {
    /// No checkouts at all.
    CheckoutDown,
    /// No iOS checkouts.
    IosDown,
    /// Page views at two and a half times the usual.
    ViewSpike,
}

/// The incident in minute `m`, if any: one every 20 minutes from minute
/// 20, lasting 3 minutes (the spike 2), in turn.
fn incident(m: i64) -> Option<Incident> {
    if !(20..MINUTES - 10).contains(&m) {
        return None;
    }
    let (n, into) = (m / 20 - 1, m % 20);
    match n % 3 {
        0 if into < 3 => Some(Incident::CheckoutDown),
        1 if into < 3 => Some(Incident::IosDown),
        2 if into < 2 => Some(Incident::ViewSpike),
        _ => None,
    }
}

/// Events of minute `m` per series: (checkouts iOS, checkouts Android,
/// page views).
fn counts(m: i64) -> (i64, i64, i64) {
    match incident(m) {
        Some(Incident::CheckoutDown) => (0, 0, VIEWS),
        Some(Incident::IosDown) => (0, CHECKOUTS, VIEWS),
        Some(Incident::ViewSpike) => (CHECKOUTS, CHECKOUTS, VIEWS * 5 / 2),
        None => (CHECKOUTS, CHECKOUTS, VIEWS),
    }
}

/// What a KPI series should have counted in minute `m`.
fn expected_count(kpi: &str, labels: &BTreeMap<String, String>, m: i64) -> f64 {
    let (ios, android, views) = counts(m);
    let n = match (kpi, labels.get("platform").map(String::as_str)) {
        ("checkouts", None) => ios + android,
        ("checkouts_by_platform", Some("ios")) => ios,
        ("checkouts_by_platform", Some("android")) => android,
        ("views", None) => views,
        other => panic!("no such series {other:?}"),
    };
    n as f64
}

/// The alerts the plan causes: (KPI, platform label, first minute).
fn planned_alerts() -> BTreeSet<(String, Option<String>, i64)> {
    let mut out = BTreeSet::new();
    for m in 0..MINUTES {
        let (Some(i), false) = (incident(m), incident(m - 1).is_some()) else {
            continue;
        };
        let mut add = |kpi: &str, platform: Option<&str>| {
            out.insert((kpi.to_string(), platform.map(str::to_string), m));
        };
        match i {
            Incident::CheckoutDown => {
                add("checkouts", None);
                add("checkouts_by_platform", Some("ios"));
                add("checkouts_by_platform", Some("android"));
            }
            Incident::IosDown => {
                add("checkouts", None);
                add("checkouts_by_platform", Some("ios"));
            }
            Incident::ViewSpike => add("views", None),
        }
    }
    out
}

/// The stream: minute by minute, (partition, payload), round-robin over
/// the partitions in time order, so no event is late.
fn stream() -> Vec<Vec<(i32, Vec<u8>)>> {
    let mut next = 0;
    let mut partition = || {
        next += 1;
        (next - 1) % PARTITIONS
    };
    (0..MINUTES)
        .map(|m| {
            let (ios, android, views) = counts(m);
            let mut events = Vec::new();
            let kinds = [
                (ios, r#""type":"checkout","platform":"ios""#),
                (android, r#""type":"checkout","platform":"android""#),
                (views, r#""type":"page_view""#),
            ];
            for (n, body) in kinds {
                for k in 0..n {
                    let t = T0 + 60 * m + 60 * k / n.max(1);
                    events.push((t, format!(r#"{{"time":{t},{body}}}"#)));
                }
            }
            events.sort_by_key(|(t, _)| *t);
            events
                .into_iter()
                .map(|(_, e)| (partition(), e.into_bytes()))
                .collect()
        })
        .collect()
}

/// Per partition, the offset of its first event in the last minute: once
/// every bucket before it is closed and on disk, the committed offsets
/// are exactly these.
fn final_offsets(stream: &[Vec<(i32, Vec<u8>)>]) -> Vec<i64> {
    let mut seen = vec![0i64; PARTITIONS as usize];
    for minute in &stream[..stream.len() - 1] {
        for (p, _) in minute {
            seen[*p as usize] += 1;
        }
    }
    seen
}

/// A `kpiwatch run` config for the broker, state in `dir`, notifications
/// to `hook`.
fn write_config(dir: &Path, brokers: &str, group: &str, hook: &str) -> PathBuf {
    let config = dir.join("kpiwatch.toml");
    let rules = |n: i64| format!("min = {}\nmax = {}", n as f64 - 0.5, n as f64 + 0.5);
    std::fs::write(
        &config,
        format!(
            r#"
[service]
listen = "127.0.0.1:0"
state_dir = "{state}"
snapshot_interval = "1s"
alert_log = "{alerts}"

[kafka]
brokers = "{brokers}"
group_id = "{group}"

[kafka.options]
"session.timeout.ms" = "{SESSION_MS}"
"heartbeat.interval.ms" = "200"

[[topic]]
name = "shop"
time_format = "epoch_seconds"
# Never idle: the wall clock must not move event time in this test.
idle_timeout = "1d"

[defaults]
bucket = "1m"
lateness = "0s"
direction = "both"

[defaults.alerting]
fire_after = 1
resolve_after = 1

[[kpi]]
name = "checkouts"
where = {{ type = "checkout" }}
aggregate = "count"
[kpi.detectors]
{total}

[[kpi]]
name = "checkouts_by_platform"
where = {{ type = "checkout" }}
aggregate = "count"
group_by = ["platform"]
[kpi.detectors]
{platform}

[[kpi]]
name = "views"
where = {{ type = "page_view" }}
aggregate = "count"
[kpi.detectors]
{views}

{notify}"#,
            state = dir.join("state").display(),
            alerts = dir.join("alerts.jsonl").display(),
            total = rules(2 * CHECKOUTS),
            platform = rules(CHECKOUTS),
            views = rules(VIEWS),
            notify = webhook::notify_everything(hook),
        ),
    )
    .expect("config written");
    config
}

/// A `kpiwatch run` child, its log read on a thread.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts `kpiwatch run --config config`, its log also appended to
    /// `log`.
    fn start(config: &Path, log: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kpiwatch"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kpiwatch starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the log file opens");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                let _ = tx.send(line);
            }
        });
        Self { child, lines }
    }

    /// Waits for a log line containing `what`; false after `wait` or if
    /// the child's log ended.
    fn wait_for(&self, what: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// SIGKILL, and reaped.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("killed child reaped");
    }

    /// SIGTERM; the exit code once it has stopped.
    fn stop(mut self) -> Option<i32> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("child waited on") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "kpiwatch did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that fails midway leaves no child behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The alert log's transitions, and how many lines were cut short (a kill
/// in the middle of a write).
fn alert_log(path: &Path) -> (Vec<Transition>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut torn = 0;
    let transitions = text
        .lines()
        .filter_map(|l| {
            let t = serde_json::from_str::<Transition>(l).ok();
            torn += usize::from(t.is_none());
            t
        })
        .collect();
    (transitions, torn)
}

/// A transition as the comparison sees it: alert, status, bucket, and
/// the observed and expected values.
type Key = (String, String, i64, String);

fn key(t: &Transition) -> Key {
    (
        t.alert_id.clone(),
        format!("{:?}", t.status),
        t.bucket_start,
        format!("{} {}", t.observed, t.expected),
    )
}

/// Checks every transition's recent buckets against the produced counts.
fn check_recent(transitions: &[Transition], run: &str) -> usize {
    let mut checked = 0;
    for t in transitions {
        for b in &t.recent {
            let m = (b.t - T0) / 60;
            assert_eq!(
                b.value,
                expected_count(&t.kpi, &t.labels, m),
                "{run}: {} {:?} minute {m} counted {} (transition {} at minute {})",
                t.kpi,
                t.labels,
                b.value,
                t.alert_id,
                (t.bucket_start - T0) / 60
            );
            checked += 1;
        }
    }
    checked
}

/// The snapshot in `state`, with its series in key order, as bytes: two
/// runs that learned the same have equal ones.
fn snapshot_bytes(state: &Path) -> Vec<u8> {
    let mut s = kpiwatch::pipeline::snapshot::load(state)
        .expect("the snapshot reads")
        .expect("a snapshot was written");
    for k in &mut s.kpis {
        k.windows.sort_by(|a, b| a.0.cmp(&b.0));
        k.series.sort_by(|a, b| a.0.cmp(&b.0));
    }
    postcard::to_stdvec(&s).expect("the snapshot serialises")
}

/// Polls until `group` has committed `offsets` on every partition.
async fn committed_all(brokers: &str, group: &str, offsets: &[i64]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut got = Vec::new();
        for p in 0..PARTITIONS {
            got.push(committed(brokers, group, "shop", p).await.unwrap_or(-1));
        }
        if got == offsets {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{group} committed {got:?}, not {offsets:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_four_sigkills_during_live_consumption_lose_nothing_and_notify_each_transition_once()
{
    let seed: u64 = std::env::var("KPIWATCH_SIGKILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261206);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();
    let broker: Arc<MockBroker> = broker("shop", PARTITIONS);
    let brokers = broker.bootstrap_servers().to_string();
    let dir = tempfile::tempdir().expect("a scratch directory");
    let (killed_dir, reference_dir) = (dir.path().join("killed"), dir.path().join("reference"));
    std::fs::create_dir_all(&killed_dir).unwrap();
    std::fs::create_dir_all(&reference_dir).unwrap();
    let (hooks, reference_hooks) = (Hooks::start().await, Hooks::start().await);
    let killed_config = write_config(&killed_dir, &brokers, "sigkill", &hooks.url);
    let reference_config = write_config(
        &reference_dir,
        &brokers,
        "sigkill-reference",
        &reference_hooks.url,
    );

    // The shop, live: a minute of events every PACE, all at once when told
    // to hurry.
    let stream = stream();
    let events: usize = stream.iter().map(Vec::len).sum();
    let targets = final_offsets(&stream);
    let hurry = Arc::new(AtomicBool::new(false));
    let producer = {
        let (broker, hurry) = (broker.clone(), hurry.clone());
        std::thread::spawn(move || {
            for minute in stream {
                for (p, payload) in minute {
                    broker.send("shop", Some(p), b"", &payload).unwrap();
                }
                if !hurry.load(Ordering::Relaxed) {
                    std::thread::sleep(PACE);
                }
            }
            broker.flush().unwrap();
        })
    };

    let reference = Running::start(&reference_config, &reference_dir.join("kpiwatch.log"));
    let mut kills = 0;
    let mut killed_before_assignment = 0;
    let mut joining = Duration::ZERO;
    for _ in 0..KILLS {
        let running = Running::start(&killed_config, &killed_dir.join("kpiwatch.log"));
        let spawned = Instant::now();
        // One kill in four while it starts (restoring its snapshot,
        // resuming its outbox, joining the group), the others at a random
        // moment of its first 2 s with partitions: catching up on the
        // backlog, then consuming live.
        if rng.gen_bool(0.25) {
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..400)));
            killed_before_assignment += 1;
        } else {
            assert!(
                running.wait_for("partitions assigned", WAIT),
                "an instance got no partitions"
            );
            joining += spawned.elapsed();
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..2000)));
        }
        running.kill();
        kills += 1;
    }
    let loop_took = started.elapsed();
    hurry.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || producer.join())
        .await
        .unwrap()
        .expect("the producer finished");

    // A last instance catches up. Both runs are done once every bucket but
    // the last minute's is closed, on disk and committed, and every
    // notification has reached its receiver.
    let last = Running::start(&killed_config, &killed_dir.join("kpiwatch.log"));
    committed_all(&brokers, "sigkill", &targets).await;
    committed_all(&brokers, "sigkill-reference", &targets).await;
    let planned = planned_alerts();
    // A firing and a resolved notification per alert.
    let all = 2 * planned.len();
    let arrived =
        hooks.distinct_within(all, WAIT).await && reference_hooks.distinct_within(all, WAIT).await;
    let (code, reference_code) = (last.stop(), reference.stop());
    if !arrived {
        // Keep the logs, state and alert logs to look at.
        let kept = dir.keep();
        let summary = |h: &Hooks| -> BTreeSet<String> { h.summary().into_iter().collect() };
        let (got, want) = (summary(&hooks), summary(&reference_hooks));
        panic!(
            "notifications missing (seed {seed}; files kept in {}):\nthe killed run lacks {:#?}\nthe reference lacks {:#?}",
            kept.display(),
            want.difference(&got).collect::<Vec<_>>(),
            got.difference(&want).collect::<Vec<_>>(),
        );
    }
    assert_eq!((code, reference_code), (Some(0), Some(0)));

    // The reference: each transition once, as planned.
    let (reference_log, reference_torn) = alert_log(&reference_dir.join("alerts.jsonl"));
    assert_eq!(reference_torn, 0);
    let reference_keys: Vec<Key> = reference_log.iter().map(key).collect();
    let reference_set: BTreeSet<Key> = reference_keys.iter().cloned().collect();
    assert_eq!(
        reference_set.len(),
        reference_keys.len(),
        "uninterrupted, no transition twice"
    );
    let fired: BTreeSet<(String, Option<String>, i64)> = reference_log
        .iter()
        .filter(|t| t.status == Status::Firing)
        .map(|t| {
            (
                t.kpi.clone(),
                t.labels.get("platform").cloned(),
                (t.started_at - T0) / 60,
            )
        })
        .collect();
    assert_eq!(
        fired, planned,
        "the incidents, and nothing else, alerted: every other bucket had exactly its events"
    );
    assert_eq!(
        reference_log.len(),
        2 * planned.len(),
        "each alert fired and resolved"
    );

    // The killed run: the same transitions (some written again by the
    // instance that replayed them), the same notifications, each once.
    let (killed_log, torn) = alert_log(&killed_dir.join("alerts.jsonl"));
    let killed_set: BTreeSet<Key> = killed_log.iter().map(key).collect();
    assert_eq!(
        killed_set, reference_set,
        "the same transitions as the uninterrupted run"
    );
    let recent_checked =
        check_recent(&killed_log, "killed") + check_recent(&reference_log, "reference");
    let delivered = hooks.distinct();
    let reference_delivered = reference_hooks.distinct();
    assert_eq!(
        delivered.keys().collect::<Vec<_>>(),
        reference_delivered.keys().collect::<Vec<_>>(),
        "the same notification ids"
    );
    assert_eq!(delivered.len(), 2 * planned.len());
    assert!(
        reference_delivered.values().all(|&n| n == 1),
        "{reference_delivered:?}"
    );
    // A kill between a receiver's 2xx and the outbox file's deletion sends
    // that notification again, with the same Idempotency-Key, which the
    // receiver drops: at most one per kill.
    let posts = hooks.posts().len();
    let repeated = posts - delivered.len();
    assert!(
        repeated <= kills,
        "{repeated} notifications sent twice: {delivered:?}"
    );
    assert_eq!(
        snapshot_bytes(&killed_dir.join("state")),
        snapshot_bytes(&reference_dir.join("state")),
        "the same learned state as the uninterrupted run"
    );

    eprintln!(
        "SIGKILL loop (seed {seed}): {kills} kills ({killed_before_assignment} while starting), {kills} restarts, \
         {events} events over {MINUTES} minutes and {PARTITIONS} partitions, {transitions} alert transitions \
         ({alerts} alerts; {replayed} written again by an instance that replayed them, not notified again; \
         {torn} log lines cut short), {notifications} notifications delivered ({posts} POSTs, {repeated} \
         duplicates dropped by Idempotency-Key), {recent_checked} recent bucket values checked; \
         {join:.1?} from start to partitions on average; kill loop {loop_took:.1?}, whole test {total:.1?}",
        join = joining / (kills - killed_before_assignment).max(1) as u32,
        transitions = reference_set.len(),
        alerts = planned.len(),
        replayed = killed_log.len() - killed_set.len(),
        notifications = delivered.len(),
        total = started.elapsed(),
    );
}
