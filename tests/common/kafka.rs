// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

//! Helpers for the tests that run the service against librdkafka's mock
//! cluster over TCP on 127.0.0.1: a [`Service`] harness with an injected
//! clock, observers for alert transitions and judged buckets, and an HTTP
//! scrape. Every wait has a timeout, so a broken build fails instead of
//! hanging.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kpiwatch::alert::Transition;
use kpiwatch::clock::ManualClock;
use kpiwatch::config::{validate, Config, Source};
use kpiwatch::kafka::mock::MockBroker;
use kpiwatch::service::{self, Summary};
use tokio::sync::{mpsc, oneshot};

/// 2024-01-01 00:00:00 UTC, a Monday: event times start here.
pub const T0: i64 = 1_704_067_200;
/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// A judged bucket: (KPI, series key, bucket start, value).
pub type Bucket = kpiwatch::service::JudgedBucket;

/// A test's state directory (snapshots, outbox), removed when it is
/// dropped: when the test ends, passed or failed. A test that restarts the
/// service gives the same `StateDir` to each start, so the restart finds
/// its snapshot.
pub struct StateDir(tempfile::TempDir);

impl StateDir {
    /// A new empty directory in the system's temporary directory.
    pub fn new() -> Self {
        Self(
            tempfile::Builder::new()
                .prefix("kpiwatch-test-")
                .tempdir()
                .expect("a temporary directory"),
        )
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// A config for the mock broker at `brokers`, from a TOML body holding
/// `[[topic]]` and `[[kpi]]` sections (service and kafka sections added),
/// keeping its state in `state`.
pub fn config(state: &StateDir, brokers: &str, group: &str, body: &str) -> Config {
    let text = config_text(state, brokers, group, body);
    validate(&Source::new(Path::new("test.toml"), &text)).unwrap_or_else(|e| panic!("{e}"))
}

/// The text [`config`] validates, for a test that writes it to a file.
pub fn config_text(state: &StateDir, brokers: &str, group: &str, body: &str) -> String {
    format!(
        "[service]\nlisten = \"127.0.0.1:0\"\nstate_dir = {:?}\nsnapshot_interval = \"1s\"\n[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{group}\"\n{body}",
        state.path()
    )
}

/// `{"time": t, "type": kind}` as bytes.
pub fn event(t: i64, kind: &str) -> Vec<u8> {
    format!(r#"{{"time":{t},"type":"{kind}"}}"#).into_bytes()
}

/// A running service.
pub struct Service {
    /// The HTTP address it serves.
    pub addr: SocketAddr,
    /// Alert transitions, as they happen.
    pub transitions: mpsc::UnboundedReceiver<Transition>,
    /// Judged buckets, as they close.
    pub buckets: mpsc::UnboundedReceiver<Bucket>,
    /// One message per state snapshot written.
    pub snapshots: mpsc::UnboundedReceiver<()>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<Summary, service::ServiceError>>,
}

impl Service {
    /// Starts the service for `config` with `clock`.
    pub async fn start(config: Config, clock: Arc<ManualClock>) -> Self {
        Self::start_on(config, clock, Arc::new(kpiwatch::durable::Disk)).await
    }

    /// [`Service::start`], writing its durable files through `storage`
    /// (a [`kpiwatch::durable::FullDisk`] to fill).
    pub async fn start_on(
        config: Config,
        clock: Arc<ManualClock>,
        storage: Arc<dyn kpiwatch::durable::Storage>,
    ) -> Self {
        Self::start_with(config, clock, storage, None).await
    }

    /// [`Service::start`] from the file at `path` (validated), which a
    /// reload reads again.
    pub async fn start_from_file(path: &Path, clock: Arc<ManualClock>) -> Self {
        let config = kpiwatch::config::load(path).unwrap_or_else(|e| panic!("{e}"));
        let storage = Arc::new(kpiwatch::durable::Disk);
        Self::start_with(config, clock, storage, Some(path.to_path_buf())).await
    }

    async fn start_with(
        config: Config,
        clock: Arc<ManualClock>,
        storage: Arc<dyn kpiwatch::durable::Storage>,
        config_path: Option<std::path::PathBuf>,
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let (tx, transitions) = mpsc::unbounded_channel();
        let (btx, buckets) = mpsc::unbounded_channel();
        let (ltx, listening) = oneshot::channel();
        let (stx, snapshots) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut options = service::Options::new(clock);
        options.observer = Some(tx);
        options.buckets = Some(btx);
        options.listening = Some(ltx);
        options.snapshots = Some(stx);
        options.tick = Duration::from_millis(50);
        options.storage = storage;
        options.config_path = config_path;
        let task = tokio::spawn(service::run(config, options, async {
            let _ = stopped.await;
        }));
        let addr = tokio::time::timeout(WAIT, listening)
            .await
            .expect("the service starts listening")
            .expect("the service reports its address");
        Self {
            addr,
            transitions,
            buckets,
            snapshots,
            stop: Some(stop),
            task,
        }
    }

    /// The next alert transition.
    pub async fn next_transition(&mut self) -> Transition {
        match tokio::time::timeout(WAIT, self.transitions.recv())
            .await
            .expect("an alert transition in time")
        {
            Some(t) => t,
            None => self.died().await,
        }
    }

    /// Panics with what ended the service (its channels closed early).
    async fn died(&mut self) -> ! {
        let result = (&mut self.task).await;
        panic!("the service stopped: {result:?}")
    }

    /// Judged buckets until one satisfies `until` (included).
    pub async fn buckets_until(&mut self, until: impl Fn(&Bucket) -> bool) -> Vec<Bucket> {
        let mut seen = Vec::new();
        loop {
            let b = match tokio::time::timeout(WAIT, self.buckets.recv())
                .await
                .unwrap_or_else(|_| panic!("no matching bucket in time; saw {seen:?}"))
            {
                Some(b) => b,
                None => self.died().await,
            };
            let done = until(&b);
            seen.push(b);
            if done {
                return seen;
            }
        }
    }

    /// Stops the service and returns its summary, and every bucket judged
    /// but not yet read.
    pub async fn stop(mut self) -> (Summary, Vec<Bucket>) {
        let _ = self.stop.take().map(|s| s.send(()));
        let summary = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the service stops in time")
            .expect("the service task did not panic")
            .expect("the service ran without error");
        let mut rest = Vec::new();
        while let Ok(b) = self.buckets.try_recv() {
            rest.push(b);
        }
        (summary, rest)
    }

    /// Waits until the service has read `n` messages: each was recorded
    /// with the wall-clock time read before it was counted, so moving the
    /// clock afterwards cannot make one look fresh. (The processing-latency
    /// histogram counts batches, not messages.) There is no channel for
    /// this, so /metrics is polled, bounded by [`WAIT`].
    pub async fn processed(&self, n: f64) {
        self.metric_at_least("kpiwatch_events_consumed_total", &[], n)
            .await;
    }

    /// Polls `/metrics` until metric `name` (with `labels`) reaches `n`;
    /// returns its value. Fails the test after [`WAIT`].
    pub async fn metric_at_least(&self, name: &str, labels: &[(&str, &str)], n: f64) -> f64 {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let seen = self.metric(name, labels).await;
            if seen >= n {
                return seen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}{labels:?} stayed at {seen}, never {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the next state snapshot.
    pub async fn next_snapshot(&mut self) {
        tokio::time::timeout(WAIT, self.snapshots.recv())
            .await
            .expect("a snapshot in time")
            .expect("the service is running");
    }

    /// Kills the service without a final snapshot or commit, like a crash.
    pub async fn crash(self) -> Vec<Bucket> {
        self.task.abort();
        let _ = self.task.await;
        let mut rest = Vec::new();
        let mut buckets = self.buckets;
        while let Ok(b) = buckets.try_recv() {
            rest.push(b);
        }
        rest
    }

    /// GET `path` from the service: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .expect("HTTP request");
        (r.status().as_u16(), r.text().await.expect("HTTP body"))
    }

    /// GET `path` as an outside client would (a prober, Prometheus): over a
    /// plain TCP connection from the calling thread, not a task of the
    /// test's runtime, which the service shares and may keep busy.
    pub fn get_from_outside(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect_timeout(&self.addr, WAIT).expect("connect");
        conn.set_read_timeout(Some(WAIT)).expect("read timeout");
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("request written");
        let mut response = String::new();
        conn.read_to_string(&mut response).expect("response read");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {response:?}"));
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_string())
    }

    /// The scraped value of metric `name` whose labels include every
    /// `key="value"` in `labels`; 0 if there is no such line.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .find_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
            .unwrap_or(0.0)
    }
}

/// A shop topic (`shop`, event time in epoch seconds, idle after 5 s)
/// and its checkouts per minute, alerting on the first empty bucket: a
/// `[[topic]]` and `[[kpi]]` body for [`config`].
pub const SHOP: &str = r#"
[[topic]]
name = "shop"
time_format = "epoch_seconds"
idle_timeout = "5s"

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
"#;

/// `minute` minutes after [`T0`].
pub fn minute(minute: i64) -> i64 {
    T0 + 60 * minute
}

/// `config` with a short group session: a member that is gone (killed,
/// or cut off from the broker) stays in the group until its session
/// times out (45 s by default; on the mock broker even after a clean
/// shutdown, whose LeaveGroup does not seem to take effect), and
/// restart and outage tests should not wait that long.
pub fn short_session(mut config: Config) -> Config {
    config
        .kafka
        .options
        .insert("session.timeout.ms".into(), "6000".into());
    config
}

impl Service {
    /// Polls `/readyz` (as a prober would: there is no channel for it)
    /// until it answers `status`, and returns the body; fails the test
    /// after [`WAIT`].
    pub async fn readyz_until(&self, status: u16) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (got, body) = self.get("/readyz").await;
            if got == status {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "/readyz stayed {got} ({body}), never {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The offset `group` has committed for `partition` of `topic`, if any:
/// where a restart would start reading.
pub async fn committed(brokers: &str, group: &str, topic: &str, partition: i32) -> Option<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let (brokers, group, topic) = (brokers.to_string(), group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        // Asks the group coordinator; it does not join the group.
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("log_level", "3")
            .create()
            .expect("a consumer for reading committed offsets");
        let mut list = rdkafka::TopicPartitionList::new();
        list.add_partition(&topic, partition);
        let got = c
            .committed_offsets(list, WAIT)
            .expect("committed offsets in time");
        match got.find_partition(&topic, partition).map(|p| p.offset()) {
            Some(rdkafka::Offset::Offset(o)) => Some(o),
            _ => None,
        }
    })
    .await
    .expect("the committed-offsets reader did not panic")
}

/// A mock broker with `topic` of `partitions` partitions.
pub fn broker(topic: &str, partitions: i32) -> Arc<MockBroker> {
    let b = MockBroker::start().expect("mock cluster starts");
    b.create_topic(topic, partitions).expect("topic created");
    Arc::new(b)
}
