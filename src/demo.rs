//! `kpiwatch demo`: the whole service on an embedded default.
//!
//! 1. Starts librdkafka's mock cluster on 127.0.0.1 and creates the shop's
//!    topic (8 partitions).
//! 2. Runs the real service ([`crate::service::run`]) against it over TCP,
//!    with the embedded `config/shop.toml`.
//! 3. Simulates two weeks of a shop's events ending now (150 page views a
//!    minute at the busiest hour), the last 80 minutes with incidents: iOS
//!    checkouts stop for 40 minutes, then all checkouts stop for 20. All
//!    but the last 90 minutes are history, learnt before the service starts
//!    as `kpiwatch warm` learns it ([`LIVE`]); the service resumes from that
//!    snapshot at the history's end, and the rest is produced to the
//!    broker. Production is paced by consumption, because the mock cluster
//!    keeps only 5 MiB per partition and silently drops older messages.
//! 4. Prints each alert transition as it happens. Notifications go where a
//!    real deployment's would: emails to `.eml` files in `RUN/mail` (lettre's
//!    file transport; open them in any mail client) and webhooks, over HTTP,
//!    to a receiver the demo runs on 127.0.0.1 that logs each request body
//!    to `RUN/webhook.jsonl`. `RUN` is a new folder `OUT/run-<UTC time>`
//!    ([`new_run_dir`]): the demo never empties or overwrites a folder it did
//!    not create, so `--out ~` cannot cost anyone their `~/mail`.
//! 5. When everything produced is consumed, the idle timeout has let the
//!    last buckets close and the outbox has drained, shuts the service down
//!    and prints a summary (`--json`: one JSON object): for each incident,
//!    the alert that caught it and how long after it began, and any alert
//!    that matched no incident, scored as `kpiwatch backtest` scores
//!    ([`crate::backtest::matching`]).
//!
//! The shop keeps the hours of a place where it is evening when the demo
//! ends (a whole-hour UTC offset, [`shop_time_zone`]), and the config says
//! so (`timezone`), as an analyst's would: the incidents then meet evening
//! traffic whenever the demo runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::alert::{Status, Transition};
use crate::backtest::labels;
use crate::backtest::matching::{self, Delay};
use crate::clock::{Clock, SystemClock};
use crate::config::model::Interest;
use crate::config::{validate, Config, Source};
use crate::kafka::mock::MockBroker;
use crate::notify::phrase;
use crate::simulate::{generate, Incident, ShopModel};
use crate::telemetry::Metrics;

/// The configuration the demo runs: the commented example analysts copy.
pub const SHOP_CONFIG: &str = include_str!("../config/shop.toml");

/// Partitions of the demo topic.
const PARTITIONS: i32 = 8;
/// Produced but not yet consumed events the producer allows.
const MAX_IN_FLIGHT: u64 = 100_000;

/// What the demo saw.
#[derive(Debug, serde::Serialize)]
pub struct DemoSummary {
    /// Events of the history, learnt before the service started.
    pub events_learnt: u64,
    /// Events produced to the broker.
    pub events_produced: u64,
    /// Events the service consumed.
    pub events_consumed: u64,
    /// Malformed events the service refused.
    pub events_rejected: u64,
    /// KPIs configured.
    pub kpis: usize,
    /// Series the detectors judged.
    pub series: i64,
    /// Alerts fired.
    pub fired: u64,
    /// Alerts resolved.
    pub resolved: u64,
    /// The shop's time zone (a whole-hour offset from UTC).
    pub time_zone: String,
    /// The injected incidents and what caught them.
    pub incidents: Vec<DemoIncident>,
    /// Alerts that matched no incident, as [`alert_line`] writes them.
    pub other_alerts: Vec<String>,
    /// Emails written to `mail_dir`.
    pub emails: usize,
    /// Where the emails are.
    pub mail_dir: String,
    /// Webhook requests the demo's receiver got.
    pub webhooks: usize,
    /// The receiver's log, one request body per line.
    pub webhook_log: String,
    /// Wall-clock seconds the demo took.
    pub seconds: f64,
}

/// An injected incident and the first alert that caught it.
#[derive(Debug, serde::Serialize)]
pub struct DemoIncident {
    /// What happened.
    pub what: String,
    /// When it began, RFC 3339.
    #[serde(with = "crate::timefmt::rfc3339_secs")]
    pub start: i64,
    /// How long it lasted, in minutes.
    pub minutes: i64,
    /// The first alert that matched it, as [`alert_line`] writes it.
    pub caught_by: Option<String>,
    /// Minutes from its start to the end of the bucket that fired that
    /// alert.
    pub delay_minutes: Option<f64>,
}

/// Demo settings.
pub struct DemoOptions {
    /// Days of history.
    pub days: f64,
    /// Page views per minute at the busiest hour.
    pub rate: f64,
    /// Print transitions as they happen.
    pub print: bool,
    /// The folder in which a new run folder receives the emails and the
    /// webhook log; nothing already in it is touched.
    pub out: std::path::PathBuf,
}

/// The demo's notification settings, replacing the example receivers of
/// `config/shop.toml` (they point at example.com): every KPI to one email
/// receiver (the file transport, as with no SMTP server configured) and
/// one webhook receiver (the demo's own, on loopback); one message per KPI,
/// sent at once (the demo's hours pass in seconds).
fn demo_notify(config: &mut Config, mail_dir: &std::path::Path, webhook_url: &str) {
    use crate::notify::route::Subscription;
    use crate::notify::settings::{Receiver, ReceiverKind, Webhook, WebhookFormat};
    let n = &mut config.notify;
    n.smtp = None;
    n.mail_dir = mail_dir.to_path_buf();
    n.outbox_dir = config.service.state_dir.join("outbox");
    n.from = "kpiwatch demo <kpiwatch@shop.example>".to_string();
    n.receivers = vec![
        Receiver {
            name: "product-team".to_string(),
            kind: ReceiverKind::Email {
                to: vec!["product-team@shop.example".to_string()],
            },
        },
        Receiver {
            name: "oncall-webhook".to_string(),
            kind: ReceiverKind::Webhook(Webhook {
                url: webhook_url.to_string(),
                format: WebhookFormat::Kpiwatch,
                secret_env: None,
                timeout: Duration::from_secs(5),
                headers: Default::default(),
                ca: None,
            }),
        },
    ];
    let mut everything = Subscription::new("shop-kpis", &["product-team", "oncall-webhook"]);
    everything.group_wait = Duration::ZERO;
    everything.group_interval = Duration::from_secs(1);
    n.subscriptions = vec![everything];
    n.time_windows = Vec::new();
}

/// A webhook receiver on 127.0.0.1:0 that appends each request body as one
/// line to `log` and passes it on to `seen`.
async fn webhook_receiver(
    log: std::path::PathBuf,
    seen: mpsc::UnboundedSender<serde_json::Value>,
) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    use axum::routing::post;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let file = Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?,
    ));
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let (file, seen) = (file.clone(), seen.clone());
            async move {
                use std::io::Write;
                if let Ok(mut f) = file.lock() {
                    let _ = f.write_all(&body);
                    let _ = f.write_all(b"\n");
                }
                if let Ok(v) = serde_json::from_slice(&body) {
                    let _ = seen.send(v);
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, server))
}

fn config(brokers: &str, state_dir: &std::path::Path) -> Config {
    let mut config = validate(&Source::new(
        std::path::Path::new("config/shop.toml"),
        SHOP_CONFIG,
    ))
    .expect("the embedded config/shop.toml is valid (tests/config_files.rs checks it)");
    config.kafka.brokers = brokers.to_string();
    config.kafka.dead_letter_topic = None;
    config.service.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // Each demo starts from scratch, in a folder it created.
    config.service.state_dir = state_dir.to_path_buf();
    for t in &mut config.topics {
        // The demo's "live" end is short: let quiet partitions stop
        // holding time back after two seconds instead of thirty.
        t.idle_timeout = Duration::from_secs(2);
    }
    config
}

/// What the demo's incidents are, for people: in the order of
/// [`incidents`].
const INCIDENT_NAMES: [&str; 2] = [
    "iOS checkouts stop for 40 minutes (a bad app release)",
    "all checkouts stop for 20 minutes (the payment provider is down)",
];

/// The demo's incidents as the backtest labels them: which KPIs and
/// series should alert, and which way.
fn labelled(incidents: &[Incident]) -> Vec<labels::Incident> {
    let kpis = ["checkouts*", "conversion", "revenue*"].map(String::from);
    incidents
        .iter()
        .zip(INCIDENT_NAMES)
        .enumerate()
        .map(|(n, (i, name))| labels::Incident {
            id: format!("incident-{}", n + 1),
            kind: None,
            start: i.start,
            end: i.end,
            kpis: crate::notify::route::KpiGlobs::new(&kpis).expect("valid globs"),
            labels: i
                .platform
                .iter()
                .map(|p| ("platform".to_string(), p.clone()))
                .collect(),
            direction: Interest::Drop,
            target_delay_buckets: None,
            note: Some(name.to_string()),
        })
        .collect()
}

/// The incidents of the demo's last hour, relative to `end`: iOS checkouts
/// stop for 40 minutes (a bad app release), then all checkouts stop for 20
/// minutes (the payment provider is down).
pub fn incidents(end: i64) -> Vec<Incident> {
    let at = |minutes_before_end: i64| end - minutes_before_end * 60;
    let spec = |s: String| Incident::parse(&s).expect("valid demo incident");
    let time = crate::timefmt::rfc3339;
    vec![
        spec(format!(
            "type=checkout,factor=0,platform=ios,start={},duration=40m",
            time(at(80))
        )),
        spec(format!(
            "type=checkout,factor=0,start={},duration=20m",
            time(at(35))
        )),
    ]
}

/// The shop's time zone for a demo ending at `end`: the whole-hour UTC
/// offset at which `end` is nearest 21:00, as seconds east of UTC and as
/// the IANA zone that names it (`Etc/GMT-3` is UTC+3).
pub fn shop_time_zone(end: i64) -> (i64, chrono_tz::Tz) {
    let wanted = (21 * 3600 - end.rem_euclid(86_400)) as f64 / 3600.0;
    // Offsets run from UTC-11 to UTC+13: one for every hour of the day.
    let hours = (wanted.round() as i64 + 11).rem_euclid(24) - 11;
    let name = match hours {
        0 => "Etc/UTC".to_string(),
        h => format!("Etc/GMT{:+}", -h),
    };
    let tz = name.parse().expect("Etc/GMT-13 to Etc/GMT+11 exist");
    (hours * 3600, tz)
}

/// One line for an alert in the summary:
/// `checkouts_by_platform{platform=ios} drop, fired 2024-05-01 20:45 UTC`.
pub fn alert_line(a: &matching::Alert<'_>) -> String {
    let t = a.first;
    let labels = if t.labels.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", phrase::labels(&t.labels, 40))
    };
    format!(
        "{}{labels} {}, fired {}",
        t.kpi,
        t.direction.name(),
        crate::timefmt::human_utc(a.fired_at)
    )
}

/// Creates a new folder `out/run-<UTC time at now>` (`-2`, `-3`, … if a
/// run in the same second took that name) and returns it. `out` itself may
/// exist and hold anything: the new folder is made with `create_dir`, which
/// fails rather than reuse an existing one, so the demo writes (and later
/// deletes) only inside a folder it made.
pub fn new_run_dir(out: &std::path::Path, now: i64) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(out)?;
    let stamp = chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ");
    for n in 1..1000 {
        let name = match n {
            1 => format!("run-{stamp}"),
            n => format!("run-{stamp}-{n}"),
        };
        let dir = out.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!(
            "{} already holds 999 demo runs for {stamp}; choose another --out",
            out.display()
        ),
    ))
}

/// The demo's live part: its last 90 minutes, in which the incidents
/// happen (the first begins 10 minutes into it). What comes before is
/// history, learnt as `kpiwatch warm` learns it, as a deployment on a
/// topic with weeks of retention would start. Judged live instead, two
/// weeks of history at `false_alarms = "1/month"` per KPI are allowed
/// about three false alerts, which would say nothing about the incidents
/// (`examples/demo_hours`: 11 of 24 end times fired one).
pub const LIVE: i64 = 90 * 60;

/// Learns `model`'s events before `live_from` into a snapshot in the
/// config's state directory, as `kpiwatch warm` does, through a file in
/// `run_dir` that it removes after. Returns the events learnt and the
/// history's end, from which the service starts (None if the history was
/// too short to close a bucket: then everything is produced).
fn learn_history(
    config: &Config,
    model: &ShopModel,
    live_from: i64,
    run_dir: &std::path::Path,
) -> anyhow::Result<(u64, Option<i64>)> {
    use std::io::Write;
    let path = run_dir.join("history.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create_new(&path)?);
    let mut written = Ok(());
    generate(model, |t, line| {
        if t < live_from && written.is_ok() {
            written = file.write_all(line).and_then(|()| file.write_all(b"\n"));
        }
    });
    written?;
    file.into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    let save = crate::warm::SaveState::new(
        &config.service.state_dir,
        Arc::new(crate::durable::Disk),
        &path.display().to_string(),
    )?;
    let input = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(&path)?);
    let warmed = crate::warm::warm(config.clone(), None, input, None, save);
    // This run wrote it, and nothing reads it again.
    std::fs::remove_file(&path)?;
    match warmed {
        Ok(w) => Ok((w.history.events, w.history.topics.first().map(|t| t.end))),
        Err(crate::warm::WarmError::NothingLearnt) => Ok((0, None)),
        Err(e) => Err(e.into()),
    }
}

/// Runs the demo.
pub async fn run(options: DemoOptions) -> anyhow::Result<DemoSummary> {
    let started = Instant::now();
    let broker = Arc::new(MockBroker::start()?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let run_dir = new_run_dir(&options.out, clock.now())?;
    let mail_dir = run_dir.join("mail");
    let webhook_log = run_dir.join("webhook.jsonl");
    std::fs::create_dir(&mail_dir)?;
    let (hooks_tx, mut hooks) = mpsc::unbounded_channel();
    let (webhook_url, receiver) = webhook_receiver(webhook_log.clone(), hooks_tx).await?;
    let mut config = config(broker.bootstrap_servers(), &run_dir.join("state"));
    demo_notify(&mut config, &mail_dir, &webhook_url);
    let topic = config.topics[0].name.clone();
    broker.create_topic(&topic, PARTITIONS)?;
    let kpis = config.kpis.len();
    let state_dir = config.service.state_dir.clone();
    let idle = config.topics[0].idle_timeout;

    let metrics = Metrics::new();
    // A whole number of 5-minute buckets.
    let end = clock.now().div_euclid(300) * 300;
    let (local_offset, time_zone) = shop_time_zone(end);
    for k in &mut config.kpis {
        k.timezone = time_zone;
    }
    let kpi_defs = config.kpis.clone();
    let injected = incidents(end);
    let expected = labelled(&injected);
    let model = ShopModel {
        start: end - (options.days * 86_400.0) as i64,
        end,
        peak_page_views: options.rate,
        incidents: injected,
        seed: 7,
        local_offset,
    };
    let (events_learnt, history_end) = learn_history(&config, &model, end - LIVE, &run_dir)?;
    let produce_from = history_end.unwrap_or(model.start);

    let (observer, mut transitions) = mpsc::unbounded_channel::<Transition>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut service_options = crate::service::Options::new(clock.clone());
    service_options.observer = Some(observer);
    service_options.metrics = Some(metrics.clone());
    service_options.tick = Duration::from_millis(200);
    let (backlog_tx, backlog_rx) = tokio::sync::oneshot::channel();
    service_options.backlog = Some(backlog_tx);
    let service = tokio::spawn(crate::service::run(config, service_options, async {
        let _ = stopped.await;
    }));

    // Produce on a thread, paced by what the service has consumed.
    let produced = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let (broker, produced, done, metrics, topic) = (
            broker.clone(),
            produced.clone(),
            done.clone(),
            metrics.clone(),
            topic.clone(),
        );
        std::thread::spawn(move || -> anyhow::Result<()> {
            let consumed = || metrics.events_consumed.with_label_values(&[&topic]).get();
            let mut n: u64 = 0;
            let mut result = Ok(());
            generate(&model, |t, line| {
                // What the snapshot covers is not produced: the service
                // starts at the history's end.
                if result.is_err() || t < produce_from {
                    return;
                }
                while n.saturating_sub(consumed()) > MAX_IN_FLIGHT {
                    std::thread::sleep(Duration::from_millis(2));
                }
                // Round-robin keeps partitions equally full; the mock
                // cluster drops the oldest messages past 5 MiB a partition.
                let partition = (n % PARTITIONS as u64) as i32;
                result = broker.send_at(&topic, Some(partition), b"", line, t * 1000);
                n += 1;
                produced.store(n, Ordering::Relaxed);
            });
            result?;
            broker.flush()?;
            done.store(true, Ordering::Relaxed);
            Ok(())
        })
    };

    let backlog = backlog_rx.await.ok();
    let mut webhooks = 0;
    let mut seen: Vec<Transition> = Vec::new();
    let consumed = || metrics.events_consumed.with_label_values(&[&topic]).get();
    let mut caught_up_at: Option<Instant> = None;
    loop {
        tokio::select! {
            t = transitions.recv() => match t {
                Some(t) => {
                    if options.print {
                        println!("{}", describe(&t));
                    }
                    seen.push(t);
                }
                None => break,
            },
            Some(hook) = hooks.recv() => {
                webhooks += 1;
                if options.print {
                    println!("{}", describe_webhook(&hook));
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                let all_in = done.load(Ordering::Relaxed) && consumed() >= produced.load(Ordering::Relaxed);
                match (all_in, caught_up_at) {
                    (true, None) => caught_up_at = Some(Instant::now()),
                    // Idle timeout plus a tick and a margin: the last buckets
                    // have closed by the wall clock.
                    (true, Some(at)) if at.elapsed() > idle + Duration::from_secs(1) => break,
                    _ => {}
                }
                if producer.is_finished() && !done.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
    }
    // The last alerts' notifications are in the outbox; let them arrive.
    if let Some(b) = &backlog {
        let _ = tokio::time::timeout(Duration::from_secs(10), b.drained()).await;
    }
    let _ = stop.send(());
    let summary = service.await??;
    receiver.abort();
    while let Ok(hook) = hooks.try_recv() {
        webhooks += 1;
        if options.print {
            println!("{}", describe_webhook(&hook));
        }
    }
    let emails = std::fs::read_dir(&mail_dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0);
    // The service's state (snapshot, outbox) is of no use after the demo;
    // this run created the folder, inside its own run folder.
    let _ = std::fs::remove_dir_all(&state_dir);
    while let Ok(t) = transitions.try_recv() {
        if options.print {
            println!("{}", describe(&t));
        }
        seen.push(t);
    }
    let (incidents, other_alerts) = score(&seen, &kpi_defs, &expected);
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
    let series = prometheus::core::Collector::collect(&metrics.series_live)
        .iter()
        .flat_map(|f| {
            f.get_metric()
                .iter()
                .map(|m| m.get_gauge().get_value() as i64)
        })
        .sum();
    Ok(DemoSummary {
        events_learnt,
        events_produced: produced.load(Ordering::Relaxed),
        events_consumed: summary.events,
        events_rejected: summary.rejected,
        kpis,
        series,
        fired: summary.fired,
        resolved: summary.resolved,
        time_zone: time_zone.name().to_string(),
        incidents,
        other_alerts,
        emails,
        mail_dir: mail_dir.display().to_string(),
        webhooks,
        webhook_log: webhook_log.display().to_string(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Each incident with the first alert that caught it, and the alerts that
/// caught none, matched as `kpiwatch backtest` matches.
fn score(
    transitions: &[Transition],
    kpis: &[crate::config::model::Kpi],
    incidents: &[labels::Incident],
) -> (Vec<DemoIncident>, Vec<String>) {
    let alerts = matching::alerts(transitions, kpis, |name| {
        kpis.iter().position(|k| k.name == name)
    });
    let outcomes = incidents
        .iter()
        .map(|i| {
            let first = alerts.iter().find(|a| matching::matches(i, a));
            DemoIncident {
                what: i.note.clone().unwrap_or_default(),
                start: i.start,
                minutes: (i.end - i.start) / 60,
                caught_by: first.map(alert_line),
                delay_minutes: first.map(|a| Delay::of(i, a).minutes()),
            }
        })
        .collect();
    let others = alerts
        .iter()
        .filter(|a| !incidents.iter().any(|i| matching::matches(i, a)))
        .map(alert_line)
        .collect();
    (outcomes, others)
}

/// One readable line for a webhook the demo's receiver got.
fn describe_webhook(body: &serde_json::Value) -> String {
    let alerts = body["alerts"].as_array().map_or(0, Vec::len);
    format!(
        "  -> webhook received: {} {} ({} alert{}, notification {})",
        body["status"].as_str().unwrap_or("?"),
        body["alerts"][0]["summary"].as_str().unwrap_or(""),
        alerts,
        if alerts == 1 { "" } else { "s" },
        body["id"].as_str().unwrap_or("?"),
    )
}

/// One readable line for a transition, in the words of the emails and
/// webhooks ([`phrase`]).
pub fn describe(t: &Transition) -> String {
    let at = crate::timefmt::human_utc(t.bucket_end);
    match t.status {
        Status::Firing => {
            let rarity = phrase::rarity(t)
                .map(|r| format!("; {r}"))
                .unwrap_or_default();
            let tag = if t.is_escalation() {
                "[ESCALATED]"
            } else {
                "[FIRING]   "
            };
            format!(
                "{tag} {at}  {}: {}{rarity} ({})",
                phrase::summary(t),
                phrase::evidence(t),
                t.severity.name()
            )
        }
        Status::Resolved => format!(
            "[RESOLVED] {at}  {}: {} (firing since {})",
            phrase::summary(t),
            phrase::evidence(t),
            crate::timefmt::human_utc(t.started_at)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folder_is_new_and_leaves_what_was_in_out_alone() {
        let out = tempfile::tempdir().unwrap();
        std::fs::create_dir(out.path().join("mail")).unwrap();
        std::fs::write(out.path().join("mail/keep.eml"), "mine").unwrap();
        let now = 1_714_564_800; // 2024-05-01T12:00:00Z
        let first = new_run_dir(out.path(), now).unwrap();
        let second = new_run_dir(out.path(), now).unwrap();
        assert_eq!(first, out.path().join("run-20240501T120000Z"));
        assert_eq!(second, out.path().join("run-20240501T120000Z-2"));
        assert_eq!(
            std::fs::read_to_string(out.path().join("mail/keep.eml")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn the_shop_is_in_its_evening_whenever_the_demo_ends() {
        use chrono::{Offset, TimeZone, Timelike};
        let midnight = 1_714_521_600; // 2024-05-01T00:00:00Z
        for minutes in (0..24 * 60).step_by(5) {
            let end = midnight + minutes * 60;
            let (offset, tz) = shop_time_zone(end);
            let local = tz.timestamp_opt(end, 0).unwrap();
            assert_eq!(
                i64::from(local.offset().fix().local_minus_utc()),
                offset,
                "{tz:?}"
            );
            let minute_of_day = local.hour() * 60 + local.minute();
            assert!(
                (20 * 60 + 30..=21 * 60 + 30).contains(&minute_of_day),
                "{end}: {local}"
            );
        }
    }

    #[test]
    fn an_incident_is_caught_by_a_drop_of_its_kpis_and_other_alerts_are_listed() {
        let end = 1_714_564_800;
        let injected = incidents(end);
        let expected = labelled(&injected);
        let kpis = config("127.0.0.1:9092", std::path::Path::new("/tmp")).kpis;
        let firing = |kpi: &str, labels: &[(&str, &str)], at: i64, direction| {
            let mut t = crate::backtest::testing::firing(kpi, labels, at);
            t.direction = direction;
            t
        };
        use detectors::Direction;
        let ios = &injected[0];
        let seen = vec![
            firing(
                "checkouts_by_platform",
                &[("platform", "ios")],
                ios.start + 600,
                Direction::Drop,
            ),
            // The right KPI the wrong way round catches nothing.
            firing("checkouts", &[], ios.start + 300, Direction::Spike),
            firing("active_users", &[], end - 86_400, Direction::Drop),
        ];
        let (outcomes, others) = score(&seen, &kpis, &expected);
        assert!(outcomes[0]
            .caught_by
            .as_deref()
            .unwrap()
            .contains("platform=ios"));
        assert!(outcomes[0].delay_minutes.unwrap() > 0.0);
        assert_eq!(outcomes[1].caught_by, None);
        assert_eq!(others.len(), 2, "{others:?}");
    }
}
