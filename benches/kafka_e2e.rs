//! Broker end to end: how close the kpiwatch service comes to a bare Kafka
//! consumer on the same messages.
//!
//! Starts librdkafka's mock cluster ([`MockBroker`]) with one topic of
//! [`PARTITIONS`] partitions and produces N events of the simulated shop
//! (plus the "store" field benches/pipeline.toml groups by; see that file)
//! round-robin over the partitions, so each partition is in event-time
//! order. The mock keeps 5 MiB per partition and silently drops older
//! messages, so the partition count is chosen for N to fit, and the
//! watermarks are checked to hold exactly N before anything is timed.
//!
//! Then, alternating, each twice, every run in a new consumer group:
//!
//! - bare: an rdkafka `StreamConsumer` that parses each payload into a
//!   `serde_json::Value` and counts it;
//! - kpiwatch: [`service::run`] with benches/pipeline.toml (ten KPIs, about
//!   a thousand series) and a fresh state directory, stopped once
//!   `kpiwatch_events_consumed_total` reaches N and the judged-bucket
//!   counter has settled.
//!
//! Each is timed from subscription to the N-th message; for kpiwatch also
//! to the last bucket judged (a message that closes buckets is counted
//! before they are judged). The best run of each is reported, with the
//! ratio (target: kpiwatch >= 80 % of bare). RUST_LOG=kpiwatch=info shows
//! the service's log (assignments, alerts) on stderr.
//!
//! usage: `cargo bench --bench kafka_e2e`. Environment: N from
//! `KPIWATCH_BENCH_EVENTS` (default 1,000,000); the shop's busyness from
//! `KPIWATCH_BENCH_PEAK` (see [`peak_page_views`]); consumer properties for
//! both from `KPIWATCH_BENCH_KAFKA` (see [`consumer_options`]);
//! `KPIWATCH_BENCH_SMALL_BATCHES` to produce through the mock's own
//! producer (see [`produce`]).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kpiwatch::clock::SystemClock;
use kpiwatch::config::{validate, Source};
use kpiwatch::kafka::mock::MockBroker;
use kpiwatch::service;
use kpiwatch::simulate::{generate, ShopModel};
use kpiwatch::telemetry::Metrics;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;

const TOPIC: &str = "shop.events";
/// 1 M events of ~115 bytes over 64 partitions is ~1.8 MiB a partition,
/// well inside the mock's 5 MiB.
const PARTITIONS: i32 = 64;
/// 2024-01-01 00:00:00 UTC, a Monday.
const START: i64 = 1_704_067_200;
/// How long any single wait may take.
const WAIT: Duration = Duration::from_secs(120);

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Extra librdkafka consumer properties for both consumers, from
/// `KPIWATCH_BENCH_KAFKA="key=value,key=value"` (kpiwatch gets them as
/// `[kafka.options]`); set it empty for librdkafka's defaults.
///
/// The default, `fetch.queue.backoff.ms=20`, is there because once
/// `queued.min.messages` (100,000) are pre-fetched, librdkafka 2.x pauses
/// fetching for `fetch.queue.backoff.ms`, 1 s by default: with the
/// defaults both consumers drain the queue in a fraction of that second
/// and then wait, spend ~70 % of the run idle at ~0.15 M msgs/s, and the
/// comparison measures the pause instead of their work. (0 makes the
/// broker thread spin on a full queue and compete for the CPU.)
fn consumer_options() -> Vec<(String, String)> {
    std::env::var("KPIWATCH_BENCH_KAFKA")
        .unwrap_or_else(|_| "fetch.queue.backoff.ms=20".to_string())
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Page views a minute at the simulated shop's peak, from
/// `KPIWATCH_BENCH_PEAK` (default 200: about 0.25 M events a simulated
/// day). It sets how many events fall into one series' bucket, and so how
/// many buckets are judged per event: at 200, the 1 M events span four
/// days of event time and ~1.1 buckets close per event, a sparse stream
/// where the detectors do most of the work; at 2,000 the same events span
/// a tenth of that and about a tenth as many buckets close per event, as
/// in a busy shop, the kind whose rate matters.
fn peak_page_views() -> f64 {
    std::env::var("KPIWATCH_BENCH_PEAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v: &f64| v > 0.0)
        .unwrap_or(200.0)
}

/// `n` events of the simulated shop at [`peak_page_views`], each with a
/// "store" added: the user number modulo 20, as
/// benches/replay_throughput.sh does.
fn events(n: usize) -> Vec<Vec<u8>> {
    let peak = peak_page_views();
    let days = (n as f64 / (1_000.0 * peak)) as i64 + 2;
    let model = ShopModel {
        start: START,
        end: START + days * 86_400,
        peak_page_views: peak,
        incidents: Vec::new(),
        seed: 1,
        local_offset: 0,
    };
    let mut out = Vec::with_capacity(n);
    generate(&model, |_, line| {
        if out.len() < n {
            out.push(with_store(line));
        }
    });
    out
}

fn with_store(line: &[u8]) -> Vec<u8> {
    const USER: &[u8] = br#""user":"u"#;
    let user: u64 = line
        .windows(USER.len())
        .position(|w| w == USER)
        .map(|at| {
            line[at + USER.len()..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .fold(0, |n, c| n * 10 + u64::from(c - b'0'))
        })
        .unwrap_or(0);
    let mut out = line[..line.len() - 1].to_vec();
    out.extend_from_slice(format!(r#","store":"s{:02}"}}"#, user % 20).as_bytes());
    out
}

/// Produces event `i` to partition `i % PARTITIONS`, so each partition is
/// in event-time order. With `BATCHED` set (the default), a producer of
/// its own writes one partition after the other with the librdkafka
/// default 1 MB batches, as a busy production producer would; otherwise
/// the mock's own producer (5 ms linger) sends round-robin, which gives
/// batches of a few dozen messages and makes both consumers wait on
/// fetches rather than on the CPU.
fn produce(broker: &MockBroker, bootstrap: &str, payloads: &[Vec<u8>]) -> Result<(), Error> {
    if std::env::var("KPIWATCH_BENCH_SMALL_BATCHES").is_ok() {
        for (i, p) in payloads.iter().enumerate() {
            broker.send(TOPIC, Some(i as i32 % PARTITIONS), b"", p)?;
        }
        broker.flush()?;
        return Ok(());
    }
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "100")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("log_level", "3")
        .create()?;
    for partition in 0..PARTITIONS {
        for p in payloads
            .iter()
            .skip(partition as usize)
            .step_by(PARTITIONS as usize)
        {
            let mut record = BaseRecord::<[u8], [u8]>::to(TOPIC)
                .partition(partition)
                .payload(p);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        std::thread::sleep(Duration::from_millis(1));
                        record = r;
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}

/// Messages in the topic, from the partitions' watermarks.
fn messages_held(bootstrap: &str) -> Result<i64, Error> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .create()?;
    let mut total = 0;
    for p in 0..PARTITIONS {
        let (low, high) = c.fetch_watermarks(TOPIC, p, Duration::from_secs(10))?;
        total += high - low;
        if low != 0 {
            return Err(format!("partition {p} dropped messages: low watermark {low}").into());
        }
    }
    Ok(total)
}

/// A bare consumer: parse every payload into a `serde_json::Value`, count.
async fn bare(bootstrap: &str, group: &str, n: u64) -> Result<Duration, Error> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("log_level", "3");
    for (k, v) in consumer_options() {
        cc.set(k, v);
    }
    let c: StreamConsumer = cc.create()?;
    let started = Instant::now();
    c.subscribe(&[TOPIC])?;
    let (mut parsed, mut invalid) = (0u64, 0u64);
    while parsed + invalid < n {
        let m = tokio::time::timeout(WAIT, c.recv())
            .await
            .map_err(|_| format!("bare consumer: only {} of {n} messages", parsed + invalid))??;
        match serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default()) {
            Ok(v) => {
                std::hint::black_box(v);
                parsed += 1;
            }
            Err(_) => invalid += 1,
        }
    }
    let elapsed = started.elapsed();
    if invalid > 0 {
        return Err(format!("bare consumer: {invalid} payloads were not JSON").into());
    }
    // Dropping a StreamConsumer straight after use can hang in librdkafka:
    // leave the group and let its threads finish first.
    c.unsubscribe();
    let _ = tokio::time::timeout(Duration::from_secs(1), c.recv()).await;
    drop(c);
    Ok(elapsed)
}

/// What a kpiwatch run measured.
struct Run {
    /// From subscription to the N-th message entering the pipeline.
    elapsed: Duration,
    /// From subscription to the last bucket judged: the buckets the N
    /// messages let close are judged after the message that closes them
    /// was counted.
    settled: Duration,
    /// Buckets judged.
    judged: u64,
    series: i64,
}

/// The service with benches/pipeline.toml, stopped at N events consumed.
async fn kpiwatch(bootstrap: &str, group: &str, n: u64) -> Result<Run, Error> {
    let body = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pipeline.toml"),
    )?;
    // A fresh state directory: a snapshot left by an earlier run would be
    // restored, and every event would then be late.
    let state = tempfile::tempdir()?;
    let options: String = consumer_options()
        .iter()
        .map(|(k, v)| format!("\"{k}\" = \"{v}\"\n"))
        .collect();
    let text = format!(
        "[service]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n[kafka]\nbrokers = \"{bootstrap}\"\ngroup_id = \"{group}\"\n[kafka.options]\n{options}{body}",
        state.path().display()
    );
    let config = validate(&Source::new(Path::new("benches/pipeline.toml"), &text))
        .map_err(|e| e.to_string())?;
    let kpis: Vec<String> = config.kpis.iter().map(|k| k.name.clone()).collect();
    let metrics = Metrics::new();
    let mut options = service::Options::new(Arc::new(SystemClock));
    options.metrics = Some(metrics.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumed = metrics.events_consumed.with_label_values(&[TOPIC]);
    let started = Instant::now();
    let task = tokio::spawn(service::run(config, options, async {
        let _ = stopped.await;
    }));
    // The counter is bumped as each message enters the pipeline; polling it
    // every millisecond adds at most that to the time.
    let elapsed = loop {
        if consumed.get() >= n {
            break started.elapsed();
        }
        if started.elapsed() > WAIT || task.is_finished() {
            let _ = stop.send(());
            return Err(format!("kpiwatch: only {} of {n} messages", consumed.get()).into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    // Wait for the judging to settle: the time of the last change of the
    // judged-bucket counter, once it has been still for a second (longer
    // than the service's tick).
    let judged = || {
        kpis.iter()
            .map(|k| metrics.detector_evaluations.with_label_values(&[k]).get())
            .sum::<u64>()
    };
    let (mut last, mut settled) = (judged(), elapsed);
    while started.elapsed() < settled + Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let now = judged();
        if now != last {
            (last, settled) = (now, started.elapsed());
        }
    }
    let _ = stop.send(());
    let summary = tokio::time::timeout(WAIT, task)
        .await
        .map_err(|_| "kpiwatch did not stop in time")???;
    if summary.events != n || summary.rejected != 0 || summary.late != 0 {
        return Err(format!(
            "kpiwatch consumed {} events ({} rejected, {} late), expected {n} on time",
            summary.events, summary.rejected, summary.late
        )
        .into());
    }
    let series = kpis
        .iter()
        .map(|k| metrics.series_live.with_label_values(&[k]).get())
        .sum();
    Ok(Run {
        elapsed,
        settled,
        judged: last,
        series,
    })
}

fn per_second(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The service logs through tracing: RUST_LOG=kpiwatch=info shows
    // partition assignments and revocations.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let n: u64 = std::env::var("KPIWATCH_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let started = Instant::now();
    let payloads = events(n as usize);
    if payloads.len() as u64 != n {
        return Err(format!("the simulator gave {} events, wanted {n}", payloads.len()).into());
    }
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    println!(
        "{n} events generated ({} bytes each on average) in {:.1} s",
        bytes / payloads.len(),
        started.elapsed().as_secs_f64()
    );

    let broker = MockBroker::start()?;
    broker.create_topic(TOPIC, PARTITIONS)?;
    let bootstrap = broker.bootstrap_servers().to_string();
    let started = Instant::now();
    produce(&broker, &bootstrap, &payloads)?;
    let produced = started.elapsed();
    drop(payloads);
    let held = messages_held(&bootstrap)?;
    if held != n as i64 {
        return Err(format!("the mock broker holds {held} messages, not {n}").into());
    }
    println!(
        "produced to {PARTITIONS} partitions in {:.2} s ({:.2} M msgs/s); the broker holds all {held}",
        produced.as_secs_f64(),
        per_second(n, produced) / 1e6
    );

    let mut best_bare = Duration::MAX;
    let mut best_kpiwatch = Duration::MAX;
    let mut best_settled = Duration::MAX;
    let mut series = 0;
    let mut judged = 0;
    for round in 1..=2 {
        let b = bare(&bootstrap, &format!("bare-{round}"), n).await?;
        println!(
            "round {round} bare:     {:.2} s, {:.3} M msgs/s (load {})",
            b.as_secs_f64(),
            per_second(n, b) / 1e6,
            load()
        );
        best_bare = best_bare.min(b);
        let k = kpiwatch(&bootstrap, &format!("kpiwatch-{round}"), n).await?;
        println!(
            "round {round} kpiwatch: {:.2} s, {:.3} M msgs/s to the N-th message; {:.2} s, {:.3} M msgs/s to the last of {} buckets judged; {} series live (load {})",
            k.elapsed.as_secs_f64(),
            per_second(n, k.elapsed) / 1e6,
            k.settled.as_secs_f64(),
            per_second(n, k.settled) / 1e6,
            k.judged,
            k.series,
            load()
        );
        best_kpiwatch = best_kpiwatch.min(k.elapsed);
        best_settled = best_settled.min(k.settled);
        series = k.series;
        judged = k.judged;
    }
    let (b, k, s) = (
        per_second(n, best_bare),
        per_second(n, best_kpiwatch),
        per_second(n, best_settled),
    );
    println!(
        "best of 2, {n} messages, {PARTITIONS} partitions, peak {} page views a minute: bare {:.3} M msgs/s; kpiwatch ({series} series, {:.2} buckets judged per message) {:.3} M msgs/s to the N-th message = {:.0} % of bare, {:.3} M msgs/s to the last bucket judged = {:.0} % of bare (target >= 80 %)",
        peak_page_views(),
        b / 1e6,
        judged as f64 / n as f64,
        k / 1e6,
        100.0 * k / b,
        s / 1e6,
        100.0 * s / b
    );
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "machine: {} cores, {model}, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load()
    );
    Ok(())
}
