//! Warm start against the broker: how long `kpiwatch warm` takes to learn
//! three weeks of history from a file, and how long the service takes to
//! learn the same history by consuming it from Kafka (librdkafka's mock
//! cluster, in process), in one run, with the ratio.
//!
//! The history is the simulated shop (`kpiwatch simulate`'s model) for
//! [`DAYS`] days ending now, at `KPIWATCH_WARM_PEAK` page views a minute
//! at the busiest hour (default 60: ~1.4 M events), with the KPIs of
//! [`BODY`] (37 series). Both learn the same events with the same config:
//!
//! - warm: [`kpiwatch::warm::warm`] over a JSONL file on disk, as `kpiwatch
//!   warm --events` reads it, timed from opening the file to the snapshot
//!   and `history.json` on disk;
//! - broker: the events produced beforehand to a topic of 64 partitions
//!   (the mock keeps 5 MiB a partition; the watermarks are checked to hold
//!   every event), then [`service::run`] in a new group with a fresh state
//!   directory, timed from the start to the last event counted. It says
//!   how many events it could not count: partitions are fetched unevenly,
//!   and an event more than 4,096 buckets (14 days of 5-minute buckets)
//!   ahead of the slowest partition's closed buckets is refused as too far
//!   ahead, so learning three weeks from the topic can lose events that
//!   `warm` counts.
//!
//! usage: `cargo run --release --example warm_start`

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kpiwatch::clock::SystemClock;
use kpiwatch::config::{validate, Config, Source};
use kpiwatch::kafka::mock::MockBroker;
use kpiwatch::service;
use kpiwatch::simulate::{generate, ShopModel};
use kpiwatch::telemetry::Metrics;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

type Error = Box<dyn std::error::Error + Send + Sync>;

const TOPIC: &str = "shop.events";
const PARTITIONS: i32 = 64;
const DAYS: i64 = 21;
const WAIT: Duration = Duration::from_secs(600);

/// The KPIs both learn: the funnel by country and platform, revenue by
/// node, conversion (checkouts per cart).
const BODY: &str = r#"
[[topic]]
name = "shop.events"
idle_timeout = "30s"

[defaults]
bucket = "5m"
lateness = "1m"

[[kpi]]
name = "page_views"
where = { type = "page_view" }
aggregate = "count"
group_by = ["country", "platform"]

[[kpi]]
name = "carts"
where = { type = "cart" }
aggregate = "count"

[[kpi]]
name = "checkouts"
where = { type = "checkout" }
aggregate = "count"
group_by = ["country", "platform"]
direction = "drop"

[[kpi]]
name = "revenue"
where = { type = "payment" }
aggregate = "sum"
field = "amount"
group_by = ["node"]

[[kpi]]
name = "checkouts_all"
where = { type = "checkout" }
aggregate = "count"

[[kpi]]
name = "conversion"
aggregate = "ratio"
numerator = "checkouts_all"
denominator = "carts"
"#;

fn config(state: &Path, brokers: &str, group: &str) -> Result<Config, Error> {
    let text = format!(
        "[service]\nlisten = \"127.0.0.1:0\"\nstate_dir = {:?}\n[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{group}\"\n{BODY}",
        state.display()
    );
    Ok(validate(&Source::new(Path::new("warm_start.toml"), &text)).map_err(|e| e.to_string())?)
}

fn peak() -> f64 {
    std::env::var("KPIWATCH_WARM_PEAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v: &f64| v > 0.0)
        .unwrap_or(60.0)
}

/// Produces event `i` to partition `i % PARTITIONS` (each partition in
/// event-time order), stamped with its event time, in large batches.
fn produce(bootstrap: &str, events: &[(i64, Vec<u8>)]) -> Result<(), Error> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "100")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("log_level", "3")
        .create()?;
    for partition in 0..PARTITIONS {
        for (t, p) in events
            .iter()
            .skip(partition as usize)
            .step_by(PARTITIONS as usize)
        {
            let mut record = BaseRecord::<[u8], [u8]>::to(TOPIC)
                .partition(partition)
                .payload(p)
                .timestamp(t * 1000);
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
    producer.flush(Duration::from_secs(120))?;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .create()?;
    let mut held = 0;
    for p in 0..PARTITIONS {
        let (low, high) = c.fetch_watermarks(TOPIC, p, Duration::from_secs(10))?;
        if low != 0 {
            return Err(format!("partition {p} dropped messages (low watermark {low})").into());
        }
        held += high - low;
    }
    if held != events.len() as i64 {
        return Err(format!("the topic holds {held} of {} events", events.len()).into());
    }
    Ok(())
}

/// The service over the whole topic, new group, fresh state; seconds to
/// the last event counted, and what it said of them.
async fn consume(bootstrap: &str, n: u64) -> Result<(f64, service::Summary), Error> {
    let state = tempfile::tempdir()?;
    let config = config(state.path(), bootstrap, "learn-from-the-topic")?;
    let metrics = Metrics::new();
    let mut options = service::Options::new(Arc::new(SystemClock));
    options.metrics = Some(metrics.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumed = metrics.events_consumed.with_label_values(&[TOPIC]);
    let started = Instant::now();
    let task = tokio::spawn(service::run(config, options, async {
        let _ = stopped.await;
    }));
    let elapsed = loop {
        if consumed.get() >= n {
            break started.elapsed();
        }
        if started.elapsed() > WAIT || task.is_finished() {
            let _ = stop.send(());
            return Err(format!("the service counted only {} of {n}", consumed.get()).into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let _ = stop.send(());
    let summary = tokio::time::timeout(WAIT, task)
        .await
        .map_err(|_| "the service did not stop in time")???;
    if summary.events != n {
        return Err(format!("the service read {summary:?}, expected {n} events").into());
    }
    Ok((elapsed.as_secs_f64(), summary))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let now = chrono::Utc::now().timestamp();
    let start = (now - DAYS * 86_400).div_euclid(60) * 60;
    let model = ShopModel {
        start,
        end: now.div_euclid(60) * 60,
        peak_page_views: peak(),
        incidents: Vec::new(),
        seed: 3,
        local_offset: 0,
    };
    let mut events = Vec::new();
    generate(&model, |t, line| events.push((t, line.to_vec())));
    let n = events.len() as u64;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("history.jsonl");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for (_, line) in &events {
            out.write_all(line)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    let bytes = std::fs::metadata(&file)?.len();
    println!(
        "history: {DAYS} days of the simulated shop at {} page views/min at peak: {n} events, {:.0} MiB",
        peak(),
        bytes as f64 / (1 << 20) as f64
    );

    // Warm from the file.
    let state = dir.path().join("state");
    let began = Instant::now();
    let save = kpiwatch::warm::SaveState::new(
        &state,
        Arc::new(kpiwatch::durable::Disk),
        &file.display().to_string(),
    )?;
    let input = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(&file)?);
    let warmed = kpiwatch::warm::warm(
        config(&state, "127.0.0.1:9", "warm")?,
        None,
        input,
        Some(bytes),
        save,
    )?;
    let warm_s = began.elapsed().as_secs_f64();
    println!(
        "warm from the file:        {warm_s:>7.2} s  ({:.2} M events/s, {} series; {})",
        n as f64 / warm_s / 1e6,
        warmed.series,
        warmed.report
    );

    // The same history from the broker.
    let broker = MockBroker::start()?;
    broker.create_topic(TOPIC, PARTITIONS)?;
    let bootstrap = broker.bootstrap_servers().to_string();
    produce(&bootstrap, &events)?;
    let (broker_s, summary) = consume(&bootstrap, n).await?;
    println!(
        "consumed from the broker:  {broker_s:>7.2} s  ({:.2} M events/s; {} late, {} refused as too far ahead, {} alerts fired)",
        n as f64 / broker_s / 1e6,
        summary.late,
        summary.ahead,
        summary.fired
    );
    println!(
        "ratio: the broker took {:.1}x the warm start's time",
        broker_s / warm_s
    );
    Ok(())
}
