//! The `kpiwatch` command line. Parsing and exit codes live here; the work
//! is in the library.

use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use detectors::SetConfig;

/// Business-KPI anomaly detection: seasonal baselines, drop/spike/absence
/// alerts.
#[derive(Parser)]
#[command(name = "kpiwatch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The service: consume Kafka, detect, alert; serves /metrics, /healthz
    /// and /readyz. Stops cleanly on SIGTERM or Ctrl-C.
    Run {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// The whole service on an embedded default: an in-process Kafka broker,
    /// a simulated shop with an incident; prints alerts and a summary.
    Demo {
        /// Print the summary as one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Days of simulated history.
        #[arg(long, default_value_t = 14.0)]
        days: f64,
        /// Page views per minute at the busiest hour.
        #[arg(long, default_value_t = 150.0)]
        rate: f64,
        /// A new folder `run-<UTC time>` inside this one receives the demo's
        /// emails (`mail/*.eml`) and webhook log; nothing already there is
        /// touched.
        #[arg(long, default_value = "kpiwatch-demo")]
        out: PathBuf,
    },
    /// Score one already-aggregated series (`timestamp,value` CSV) with the
    /// default detectors; prints `timestamp,value,anomaly_score`, causal.
    Score {
        /// Input CSV, or `-` for standard input.
        #[arg(long)]
        input: PathBuf,
        /// Optional configuration file; its `[defaults.detectors]` table
        /// (or the KPI's, with --kpi) chooses detectors and thresholds.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Use this KPI's detector settings from --config.
        #[arg(long, requires = "config")]
        kpi: Option<String>,
        /// Also print the verdict behind each score: expected, lower,
        /// upper, direction, warming_up.
        #[arg(long)]
        explain: bool,
    },
    /// Run the pipeline over a JSONL file of events in event time; prints
    /// one JSON line per alert transition.
    Replay {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// JSONL events, or `-` for standard input.
        #[arg(long)]
        events: PathBuf,
        /// The topic the events belong to (needed when the config has
        /// several).
        #[arg(long)]
        topic: Option<String>,
        /// Also send the notifications the alerts would have caused, to the
        /// configured receivers (grouped in event time; the service's
        /// outbox ledger keeps anything already sent from going twice).
        #[arg(long)]
        notify: bool,
        /// With --notify: how long to wait for deliveries before exiting
        /// (undelivered ones stay in the outbox).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        notify_wait: std::time::Duration,
        /// Also write the learned state into this new state directory, as
        /// `kpiwatch warm` does, for `kpiwatch run` to resume from.
        #[arg(long)]
        save_state: Option<PathBuf>,
    },
    /// Learn baselines from history (JSON lines in event time: a warehouse
    /// export, an archive of the topic) and write the snapshot `run`
    /// resumes from; `run` then starts each partition without a committed
    /// offset at the first message after the history's end.
    Warm {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// JSONL events, or `-` for standard input.
        #[arg(long)]
        events: PathBuf,
        /// A new (or empty) state directory; default: the config's
        /// `service.state_dir`. An existing snapshot is never replaced.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The topic the events belong to (needed when the config has
        /// several).
        #[arg(long)]
        topic: Option<String>,
    },
    /// Run the pipeline over past events as `replay` does and measure its
    /// alerts: per KPI and overall, alerts fired, and against labelled
    /// incidents recall, detection delay, false alerts per KPI-week, alerts
    /// left firing and message consistency.
    Backtest {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// JSONL events, or `-` for standard input.
        #[arg(long)]
        events: PathBuf,
        /// The labels file: incidents that should alert and quiet spans
        /// that should not (JSON; see README, "Backtest"). Without it every
        /// alert is unlabelled.
        #[arg(long)]
        incidents: Option<PathBuf>,
        /// Print the report as one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The topic the events belong to (needed when the config has
        /// several).
        #[arg(long)]
        topic: Option<String>,
        /// Also write the report as one self-contained HTML page here:
        /// charts of every series, the alerts in words, and what-if at
        /// 1/week, 1/month and 1/quarter (the events are replayed once
        /// more for each, so `--events` must be a file).
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Write a simulated shop's events (JSON lines) with daily and weekly
    /// seasonality and optional incidents; with --scenario, a shop and its
    /// labelled incidents from a scenario file.
    Simulate {
        /// A scenario file (TOML): the shop, its incidents and quiet spans
        /// (see benches/scenarios/README.md). Replaces --start, --days,
        /// --rate and --incident.
        #[arg(long, conflicts_with_all = ["start", "days", "rate", "incidents"])]
        scenario: Option<PathBuf>,
        /// With --scenario: multiply all traffic (and the user pool) by
        /// this, e.g. 0.1, 1 or 10; incidents take their fields for it.
        #[arg(long, requires = "scenario", default_value_t = 1.0, value_parser = parse_scale)]
        scale: f64,
        /// With --scenario: write the incidents' labels (the backtest's
        /// --incidents file) here.
        #[arg(long, requires = "scenario")]
        labels: Option<PathBuf>,
        /// First event time (RFC 3339); default: `--days` before now.
        #[arg(long)]
        start: Option<String>,
        /// Days of events.
        #[arg(long, default_value_t = 21.0)]
        days: f64,
        /// Page views per minute at the busiest hour of a weekday.
        #[arg(long, default_value_t = 60.0)]
        rate: f64,
        /// Random seed; the same seed gives the same events.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// An incident, e.g.
        /// `type=checkout,factor=0,start=2024-01-22T14:00:00Z,duration=30m`
        /// (optional country=, platform=, node=; node=X without type=
        /// scales that node's payment amounts). Repeatable.
        #[arg(long = "incident")]
        incidents: Vec<String>,
        /// Output file; standard output if absent (and no --brokers).
        #[arg(long, conflicts_with = "brokers")]
        output: Option<PathBuf>,
        /// Produce to Kafka at these bootstrap servers instead of writing.
        #[arg(long, requires = "topic")]
        brokers: Option<String>,
        /// The Kafka topic to produce to.
        #[arg(long)]
        topic: Option<String>,
        /// After the history, go on producing in real time until stopped.
        #[arg(long)]
        live: bool,
    },
    /// Validate a configuration file; prints file:line:column on error.
    Check {
        /// The TOML file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Show which subscriptions and receivers an alert would reach, with
    /// their grouping, timing and time windows.
    Routes {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The alert's KPI.
        #[arg(long)]
        kpi: String,
        /// A label of the alert's series, `name=value`. Repeatable.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// The alert's severity.
        #[arg(long, default_value = "critical", value_parser = ["warning", "critical"])]
        severity: String,
        /// The alert's direction.
        #[arg(long, default_value = "drop", value_parser = ["drop", "spike"])]
        direction: String,
    },
    /// Feedback given on alerts (API, email links), kept by `run` in its
    /// state directory.
    Feedback {
        #[command(subcommand)]
        command: FeedbackCommand,
    },
    /// Propose a false_alarms budget per KPI from labelled events: the
    /// backtest at budgets 4/day ... 1/year, keeping every detected
    /// incident with the fewest false alerts; prints a diff of the config.
    Tune {
        /// The configuration file (not changed: the diff is printed).
        #[arg(long)]
        config: PathBuf,
        /// JSONL events to backtest on.
        #[arg(long)]
        events: PathBuf,
        /// The labels file (`kpiwatch feedback export`, or written by hand).
        #[arg(long)]
        labels: PathBuf,
        /// The topic the events belong to (needed when the config has
        /// several).
        #[arg(long)]
        topic: Option<String>,
    },
}

/// `kpiwatch feedback ...`.
#[derive(Subcommand)]
enum FeedbackCommand {
    /// Print the feedback as a labels file for `backtest --incidents` and
    /// `tune --labels`: `true` → incidents, `false` → false_alerts,
    /// `expected` → expected.
    Export {
        /// The configuration file (its service.state_dir holds the
        /// feedback).
        #[arg(long)]
        config: PathBuf,
        /// The topic whose KPIs to export (needed when the config has
        /// several).
        #[arg(long)]
        topic: Option<String>,
    },
}

/// `simulate --scale`: a positive number.
fn parse_scale(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0 && s.is_finite())
        .ok_or_else(|| format!("{text:?} is not a positive number, e.g. 0.1, 1 or 10"))
}

/// `name=value` of `routes --label`.
fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not name=value, e.g. country=FI")),
    }
}

/// Sends what `generate` emits to Kafka (`kafka`: brokers and topic), a
/// file, or standard output; with `live`, each event when the wall clock
/// reaches its time.
fn deliver(
    generate: impl FnOnce(&mut dyn FnMut(i64, &[u8])),
    output: Option<&std::path::Path>,
    kafka: Option<(String, String)>,
    live: bool,
) -> anyhow::Result<()> {
    let pace = |t: i64| {
        if live {
            let wait = t - chrono::Utc::now().timestamp();
            if wait > 0 {
                std::thread::sleep(std::time::Duration::from_secs(wait as u64));
            }
        }
    };
    if let Some((brokers, topic)) = kafka {
        let producer = kpiwatch::kafka::producer(&brokers, &Default::default())?;
        let mut result = Ok(());
        generate(&mut |t, line| {
            if result.is_ok() {
                pace(t);
                let record = rdkafka::producer::BaseRecord::<[u8], [u8]>::to(&topic).payload(line);
                result = kpiwatch::kafka::send_waiting(&producer, record);
            }
        });
        result?;
        rdkafka::producer::Producer::flush(&producer, std::time::Duration::from_secs(30))?;
        return Ok(());
    }
    let sink: Box<dyn std::io::Write> = match output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, sink);
    let mut result = Ok(());
    generate(&mut |t, line| {
        if result.is_ok() {
            pace(t);
            result = out.write_all(line).and_then(|()| out.write_all(b"\n"));
            if live && result.is_ok() {
                result = out.flush();
            }
        }
    });
    result.and_then(|()| out.flush())?;
    Ok(())
}

/// `simulate --scenario`: the scenario's shop at `scale`, its events to
/// `output` (or Kafka), its labels to `labels`, and a summary on stderr:
/// events/s and what each incident should change.
fn simulate_scenario(
    path: &std::path::Path,
    scale: f64,
    seed: u64,
    labels: Option<&std::path::Path>,
    output: Option<&std::path::Path>,
    kafka: Option<(String, String)>,
    live: bool,
) -> anyhow::Result<()> {
    use kpiwatch::simulate::{labels::Labels, scenario::Scenario, stream};
    let scenario = Scenario::load(path)?;
    let shop = scenario.at(scale, seed)?;
    let sized = scenario.sizing_scale(scale);
    let expected = stream::expected(&shop);
    if let Some(labels) = labels {
        let text = serde_json::to_string_pretty(&Labels::of(&shop, &expected))?;
        std::fs::write(labels, text + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", labels.display()))?;
    }
    let began = std::time::Instant::now();
    let mut written = None;
    deliver(
        |emit| written = Some(stream::generate(&shop, emit)),
        output,
        kafka,
        live,
    )?;
    let written = written.unwrap_or_default();
    let seconds = began.elapsed().as_secs_f64();
    eprintln!(
        "{}: scale {scale}, seed {seed}: {} events ({} duplicates, {} delivered late, by at most {} s) in {seconds:.1} s, {:.2} M events/s",
        path.display(),
        written.events,
        written.duplicates,
        written.delayed,
        written.max_delay,
        written.events as f64 / seconds.max(1e-9) / 1e6
    );
    if sized != scale {
        eprintln!("  incidents as the file sizes them for scale {sized} (the nearest scale it names below {scale})");
    }
    for (c, x) in shop.incidents.iter().zip(&expected) {
        eprintln!(
            "  {:<24} {:<22} {} +{:>3} min: {:>8.0} {:<14} ({:>6.1}/5 min) change {:>+8.0}, {:>+9.0} euros",
            c.id,
            c.kind,
            kpiwatch::timefmt::rfc3339(c.start),
            (c.end - c.start) / 60,
            x.events,
            x.event_type,
            x.per_5min,
            x.delta_events,
            x.delta_euros
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kpiwatch: {}", with_causes(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each once. Many errors here already name
/// their cause in their own text (`cannot read the config file: Is a
/// directory`) and also return it as `source()`, so anyhow's `{:#}` printed
/// it twice; a cause whose text is already shown is left out.
fn with_causes(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// `backtest --html`: the configured run with its charts and the what-if
/// sweep, side by side on two threads, then the page; prints its size.
fn html_report(
    config: &kpiwatch::config::Config,
    events: &std::path::Path,
    topic: Option<&str>,
    labels: Option<&kpiwatch::backtest::Labels>,
    page: &std::path::Path,
) -> anyhow::Result<kpiwatch::backtest::Report> {
    use kpiwatch::backtest::{self, sweep};
    let began = std::time::Instant::now();
    let open = || std::fs::File::open(events).map(|f| BufReader::with_capacity(1 << 16, f));
    let (run, sweeps) = std::thread::scope(|scope| {
        let sweeps = scope.spawn(|| sweep::sweep(config, topic, labels, &sweep::STANDARD, open));
        let run = open()
            .map_err(kpiwatch::replay::ReplayError::Io)
            .map_err(backtest::BacktestError::from)
            .and_then(|input| {
                let size = std::fs::metadata(events).ok().map(|m| m.len());
                backtest::run(config.clone(), topic, input, size, labels, true)
            });
        let sweeps = sweeps
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (run, sweeps)
    });
    let read_error = |e: backtest::BacktestError| match e {
        backtest::BacktestError::Replay(kpiwatch::replay::ReplayError::Io(e)) => {
            anyhow::anyhow!("cannot read {}: {e}", events.display())
        }
        e => e.into(),
    };
    let (run, sweeps) = (run.map_err(read_error)?, sweeps.map_err(read_error)?);
    let replayed = began.elapsed();
    let (text, stats) = backtest::html::render(config, &run, &sweeps, labels);
    std::fs::write(page, &text)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", page.display()))?;
    eprintln!(
        "wrote {}: {:.1} MB, {} series, {} buckets at full resolution{}; replays {:.1} s, page {:.1} s",
        page.display(),
        text.len() as f64 / 1e6,
        stats.series,
        stats.full_points,
        if stats.full_cut { " (cut at the limit)" } else { "" },
        replayed.as_secs_f64(),
        (began.elapsed() - replayed).as_secs_f64(),
    );
    Ok(run.report)
}

/// The events file of `replay` and `backtest` (`-`: standard input) and
/// its size, if known, for the progress bar.
fn open_events(path: &std::path::Path) -> anyhow::Result<(Box<dyn Read>, Option<u64>)> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(std::io::stdin().lock()), None));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    let size = file.metadata().ok().map(|m| m.len());
    Ok((Box::new(file), size))
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Score {
            input,
            config,
            kpi,
            explain,
        } => {
            let reader: Box<dyn Read> = if input.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(
                    std::fs::File::open(&input)
                        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", input.display()))?,
                )
            };
            let configure = Box::new(move |width: i64| match &config {
                Some(path) => Ok(kpiwatch::config::load_score_config(
                    path,
                    kpi.as_deref(),
                    width,
                )?),
                None => Ok(SetConfig::new(width)),
            });
            let stdout = std::io::stdout().lock();
            let summary = kpiwatch::score::score_csv(
                BufReader::with_capacity(1 << 16, reader),
                stdout,
                configure,
                explain,
            )
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", input.display()))?;
            tracing::info!(
                rows = summary.rows,
                bucket_width = summary.bucket_width,
                "scored"
            );
            Ok(())
        }
        Command::Run { config: path } => {
            let config = kpiwatch::config::load(&path)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let clock = std::sync::Arc::new(kpiwatch::clock::SystemClock);
                let mut options = kpiwatch::service::Options::new(clock);
                // SIGHUP and POST /api/v1/reload read this file again.
                options.config_path = Some(path);
                options.reload_on_hangup = true;
                kpiwatch::service::run(config, options, shutdown_signal()).await
            })?;
            Ok(())
        }
        Command::Demo {
            json,
            days,
            rate,
            out,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            let options = kpiwatch::demo::DemoOptions {
                days,
                rate,
                print: !json,
                out,
            };
            if !json {
                println!(
                    "kpiwatch demo: {days} days of a simulated shop, learnt as `kpiwatch warm` learns history up to the last {} minutes, which go through an in-process Kafka broker to the service; incidents in the last 80 minutes\n",
                    kpiwatch::demo::LIVE / 60
                );
            }
            let s = runtime.block_on(kpiwatch::demo::run(options))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!(
                    "\nsummary: {} events of history learnt, then {} produced, {} consumed ({} rejected); {} KPIs, {} series; {} alerts fired, {} resolved; {:.1} s",
                    s.events_learnt, s.events_produced, s.events_consumed, s.events_rejected, s.kpis, s.series, s.fired, s.resolved, s.seconds
                );
                println!("shop time zone: {}", s.time_zone);
                for i in &s.incidents {
                    match (&i.caught_by, i.delay_minutes) {
                        (Some(alert), Some(delay)) => println!(
                            "caught:  {} from {}: {alert}, {delay:.0} minutes after it began",
                            i.what,
                            kpiwatch::timefmt::human_utc(i.start)
                        ),
                        _ => println!(
                            "MISSED:  {} from {}: no alert",
                            i.what,
                            kpiwatch::timefmt::human_utc(i.start)
                        ),
                    }
                }
                match s.other_alerts.len() {
                    0 => println!("other alerts: none (no alert without an incident)"),
                    n => {
                        println!("other alerts: {n} matched no incident:");
                        for a in &s.other_alerts {
                            println!("  {a}");
                        }
                    }
                }
                println!(
                    "notifications: {} emails in {}/ (open them in any mail client), {} webhooks received, logged in {}",
                    s.emails, s.mail_dir, s.webhooks, s.webhook_log
                );
            }
            Ok(())
        }
        Command::Warm {
            config,
            events,
            state_dir,
            topic,
        } => {
            let config = kpiwatch::config::load(&config)?;
            let dir = state_dir.unwrap_or_else(|| config.service.state_dir.clone());
            let save = kpiwatch::warm::SaveState::new(
                &dir,
                std::sync::Arc::new(kpiwatch::durable::Disk),
                &events.display().to_string(),
            )?;
            let (reader, size) = open_events(&events)?;
            let warmed = kpiwatch::warm::warm(
                config,
                topic.as_deref(),
                BufReader::with_capacity(1 << 16, reader),
                size,
                save,
            )?;
            eprintln!("{warmed}\nstate written to {}", dir.display());
            Ok(())
        }
        Command::Replay {
            config,
            events,
            topic,
            notify,
            notify_wait,
            save_state,
        } => {
            let mut save = save_state
                .as_deref()
                .map(|dir| {
                    kpiwatch::warm::SaveState::new(
                        dir,
                        std::sync::Arc::new(kpiwatch::durable::Disk),
                        &events.display().to_string(),
                    )
                })
                .transpose()?;
            let config = kpiwatch::config::load(&config)?;
            let notify_settings = notify.then(|| config.notify.clone());
            let state_dir = config.service.state_dir.clone();
            let mut kept = Vec::new();
            let (reader, size) = open_events(&events)?;
            let summary = kpiwatch::replay::replay_saving(
                config,
                topic.as_deref(),
                BufReader::with_capacity(1 << 16, reader),
                size,
                std::io::BufWriter::new(std::io::stdout().lock()),
                notify.then_some(&mut kept),
                save.as_mut()
                    .map(|s| s as &mut dyn kpiwatch::replay::FedHook),
            )?;
            eprintln!("{summary}");
            if let (Some((history, series)), Some(dir)) =
                (save.as_ref().and_then(|s| s.saved()), &save_state)
            {
                for t in &history.topics {
                    eprintln!("  {}: history ends at {}", t.topic, t.end_utc);
                }
                eprintln!("state of {series} series written to {}", dir.display());
            }
            if let Some(settings) = notify_settings {
                let runtime = tokio::runtime::Runtime::new()?;
                let sent = runtime.block_on(kpiwatch::replay::notify(
                    &settings,
                    &state_dir,
                    &kept,
                    notify_wait,
                ))?;
                if sent.pending > 0 {
                    eprintln!(
                        "{} notifications not delivered yet; they wait in {}",
                        sent.pending,
                        settings.outbox_dir.display()
                    );
                }
            }
            Ok(())
        }
        Command::Backtest {
            config,
            events,
            incidents,
            json,
            topic,
            html,
        } => {
            let config = kpiwatch::config::load(&config)?;
            let labels = incidents
                .as_deref()
                .map(kpiwatch::backtest::Labels::load)
                .transpose()?;
            if html.is_some() && events.as_os_str() == "-" {
                anyhow::bail!(
                    "--html replays the events once more per what-if setting, so it needs a file: write --events FILE, not -"
                );
            }
            let report = if let Some(page) = &html {
                html_report(&config, &events, topic.as_deref(), labels.as_ref(), page)?
            } else {
                let (reader, size) = open_events(&events)?;
                kpiwatch::backtest::backtest(
                    config,
                    topic.as_deref(),
                    BufReader::with_capacity(1 << 16, reader),
                    size,
                    labels.as_ref(),
                )
                .map_err(|e| match e {
                    kpiwatch::backtest::BacktestError::Replay(
                        kpiwatch::replay::ReplayError::Io(e),
                    ) => {
                        anyhow::anyhow!("cannot read {}: {e}", events.display())
                    }
                    e => e.into(),
                })?
            };
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", kpiwatch::backtest::text::render(&report))?;
            }
            out.flush()?;
            Ok(())
        }
        Command::Simulate {
            scenario: Some(scenario),
            scale,
            labels,
            seed,
            output,
            brokers,
            topic,
            live,
            ..
        } => simulate_scenario(
            &scenario,
            scale,
            seed,
            labels.as_deref(),
            output.as_deref(),
            brokers.zip(topic),
            live,
        ),
        Command::Simulate {
            start,
            days,
            rate,
            seed,
            incidents,
            output,
            brokers,
            topic,
            live,
            ..
        } => {
            let span = (days * 86_400.0) as i64;
            let start = match start {
                Some(s) => {
                    kpiwatch::timefmt::parse(&s)
                        .ok_or_else(|| anyhow::anyhow!("--start {s:?} is not an RFC 3339 time"))?
                        .epoch
                }
                None => chrono::Utc::now().timestamp() - span,
            };
            let incidents = incidents
                .iter()
                .map(|s| {
                    kpiwatch::simulate::Incident::parse(s)
                        .map_err(|e| anyhow::anyhow!("--incident {s:?}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let model = kpiwatch::simulate::ShopModel {
                start,
                end: if live { i64::MAX / 2 } else { start + span },
                peak_page_views: rate,
                incidents,
                seed,
                local_offset: 0,
            };
            deliver(
                |emit| kpiwatch::simulate::generate(&model, emit),
                output.as_deref(),
                brokers.zip(topic),
                live,
            )
        }
        Command::Routes {
            config,
            kpi,
            labels,
            severity,
            direction,
        } => {
            let c = kpiwatch::config::load(&config)?;
            if !c.kpis.iter().any(|k| k.name == kpi) {
                let names: Vec<&str> = c.kpis.iter().map(|k| k.name.as_str()).collect();
                anyhow::bail!(
                    "--kpi {kpi:?} is not a [[kpi]] in {}; use one of: {}",
                    config.display(),
                    names.join(", ")
                );
            }
            // clap lets through only the names of its `value_parser`.
            let severity = kpiwatch::alert::Severity::parse(&severity).ok_or_else(|| {
                anyhow::anyhow!(
                    "--severity {severity:?} is not known; use \"warning\" or \"critical\""
                )
            })?;
            let direction = match direction.as_str() {
                "spike" => detectors::Direction::Spike,
                _ => detectors::Direction::Drop,
            };
            let labels = labels.into_iter().collect();
            print!(
                "{}",
                kpiwatch::notify::route::explain(&c.notify, &kpi, &labels, severity, direction)
            );
            Ok(())
        }
        Command::Feedback {
            command: FeedbackCommand::Export { config, topic },
        } => {
            let config = kpiwatch::config::load(&config)?;
            let index = kpiwatch::replay::topic_index(&config, topic.as_deref())?;
            let topic_of = |kpi: &str| {
                let k = config.kpis.iter().find(|k| k.name == kpi)?;
                Some(config.topics[k.topic].name.as_str())
            };
            let exported = kpiwatch::feedback::export::export(
                &config.service.state_dir,
                &config.topics[index].name,
                topic_of,
            )?;
            for why in &exported.left_out {
                eprintln!("kpiwatch: left out {why}");
            }
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &exported.labels)?;
            writeln!(out)?;
            out.flush()?;
            Ok(())
        }
        Command::Tune {
            config,
            events,
            labels,
            topic,
        } => {
            let tuned = kpiwatch::tune::run(&config, &events, &labels, topic.as_deref())?;
            eprint!("{}", kpiwatch::tune::render(&tuned.choices));
            let mut out = std::io::stdout().lock();
            if tuned.diff.is_empty() {
                eprintln!("kpiwatch: no change proposed");
            }
            write!(out, "{}", tuned.diff)?;
            out.flush()?;
            Ok(())
        }
        Command::Check { config } => {
            let c = match kpiwatch::config::check(&config)? {
                kpiwatch::config::Checked::Service(c) => c,
                kpiwatch::config::Checked::Detectors => {
                    println!(
                        "{}: ok (detector settings for `kpiwatch score --config`; no [[topic]] or [[kpi]], which `run` needs)",
                        config.display()
                    );
                    return Ok(());
                }
            };
            let series_cap: usize = c.kpis.iter().map(|k| k.max_series).sum();
            println!(
                "{}: ok ({} topics, {} KPIs, at most {} series)",
                config.display(),
                c.topics.len(),
                c.kpis.len(),
                series_cap
            );
            // How the HTTP API will take requests: notes, not errors (the
            // environment `run` gets may hold tokens this one does not).
            let api = &c.service.api;
            let lookup = |name: &str| std::env::var(name).ok();
            for note in kpiwatch::http::access::notes(
                c.service.listen,
                api.tls.is_some(),
                &api.tokens,
                lookup,
            ) {
                println!("note: {note}");
            }
            // Feedback links are in emails: only said when some go out.
            let emails = c.notify.receivers.iter().any(|r| {
                matches!(
                    r.kind,
                    kpiwatch::notify::settings::ReceiverKind::Email { .. }
                )
            });
            let why = kpiwatch::feedback::link::why_no_links(
                c.notify.external_url.as_deref(),
                c.notify.feedback_links.as_ref(),
                lookup,
            );
            if let Some(why) = why.filter(|_| emails) {
                println!("note: {why}");
            }
            Ok(())
        }
    }
}
