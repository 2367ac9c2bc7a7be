//! `kpiwatch replay`: the pipeline over a JSONL file (or stdin), in event
//! time only — no wall clock, so the same file always gives the same
//! alerts. Prints one JSON line per alert transition; the [`Report`] says
//! what was not counted and why (refused, late, too far ahead, values
//! skipped). A UTF-8 byte-order mark at the start of the file is skipped.
//!
//! The event loop is [`run`], which hands what happens to an [`Observer`]:
//! [`replay`] observes by writing JSON lines, `kpiwatch backtest`
//! ([`crate::backtest`]) by scoring the transitions, so both see exactly
//! the same pipeline run.

use std::fmt;
use std::io::{BufRead, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

use crate::alert::Transition;
use crate::config::Config;
use crate::pipeline::engine::JudgedPoint;
use crate::pipeline::window::ClosedBucket;
use crate::pipeline::{Outcome, Pipeline, Summary};
use crate::telemetry::Metrics;

/// Errors that stop a replay (malformed events do not: they are counted).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No topic chosen and the config has several.
    #[error("the config has {0} topics; choose the one the file holds with --topic")]
    WhichTopic(usize),
    /// The chosen topic is not in the config.
    #[error("--topic {0:?} is not a [[topic]] of the config")]
    UnknownTopic(String),
    /// Reading or writing failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A transition could not be serialised.
    #[error("cannot write an alert: {0}")]
    Json(#[from] serde_json::Error),
    /// The learned state could not be saved (`--save-state`, `warm`).
    #[error("cannot save the learned state: {0}")]
    Save(String),
}

/// What [`run`] tells its caller as the replay goes.
pub trait Observer {
    /// Whether [`Observer::closed`] wants the judged buckets (they are
    /// copied out of the pipeline only then).
    fn wants_buckets(&self) -> bool {
        false
    }

    /// Whether [`Observer::points`] wants each judged bucket's
    /// expectation and band (computed only then).
    fn wants_points(&self) -> bool {
        false
    }

    /// The points one close judged, before [`Observer::closed`] is told
    /// of it (only if [`Observer::wants_points`]).
    fn points(&mut self, _points: Vec<JudgedPoint>) {}

    /// One event's outcome, in input order; an event the pipeline holds
    /// (far ahead of the stream's time, [`Outcome::Held`]) is reported
    /// when decided instead, just before the event that decided it.
    fn event(&mut self, _outcome: Outcome) {}

    /// The input has been read, and every bucket its events' progress
    /// allows has closed; the buckets still open (possibly partial) are
    /// not closed yet. `events` is the number read. `warm` and `replay
    /// --save-state` snapshot the pipeline here.
    fn fed(&mut self, _pipeline: &Pipeline, _events: u64) -> Result<(), ReplayError> {
        Ok(())
    }

    /// One close: the buckets it judged (empty unless
    /// [`Observer::wants_buckets`]) and the transitions it caused, in
    /// bucket order.
    fn closed(
        &mut self,
        judged: Vec<ClosedBucket>,
        transitions: &[Transition],
    ) -> Result<(), ReplayError>;

    /// Alerts a calendar of expected events muted in one close (only when
    /// [`Observer::wants_buckets`]).
    fn muted(&mut self, _muted: Vec<crate::pipeline::engine::Muted>) {}
}

/// What `replay --save-state` does when the input has been read (at
/// [`Observer::fed`]): `crate::warm::SaveState` saves the learned state.
/// A trait here, so that `replay` does not import `warm`, which runs on
/// [`run`].
pub trait FedHook {
    /// The input has been read (see [`Observer::fed`]).
    fn fed(&mut self, pipeline: &Pipeline, events: u64) -> Result<(), ReplayError>;
}

/// A simulated shop's events through `pipeline` in event time, as one
/// partition of its first topic, the way `replay` feeds a file, and the
/// last buckets closed at the end: the transitions. For tests and examples
/// that judge a shop without writing its events to a file.
pub fn shop(pipeline: &mut Pipeline, model: &crate::simulate::ShopModel) -> Vec<Transition> {
    let mut out = Vec::new();
    let mut offset = 0;
    crate::simulate::generate(model, |_, line| {
        offset += 1;
        if let Outcome::Accepted { due: true, .. } = pipeline.record(0, 0, offset, line, None) {
            pipeline.advance(None, &mut out);
        }
    });
    pipeline.finish(&mut out);
    out
}

/// Which of `config`'s topics a replay reads: the one named, or the only
/// one.
pub fn topic_index(config: &Config, topic: Option<&str>) -> Result<usize, ReplayError> {
    match topic {
        Some(name) => config
            .topics
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| ReplayError::UnknownTopic(name.to_string())),
        None if config.topics.len() == 1 => Ok(0),
        None => Err(ReplayError::WhichTopic(config.topics.len())),
    }
}

/// What a replay saw: the counts, and what was not counted, by reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Events, outcomes, alerts.
    pub summary: Summary,
    /// Refused events by reason label (malformed and too far ahead), most
    /// first.
    pub refused: Vec<(String, u64)>,
    /// Values skipped by KPI and reason label, KPI by KPI, most first.
    pub skipped: Vec<(String, String, u64)>,
}

impl Report {
    fn new(summary: Summary, metrics: &Metrics) -> Self {
        let label = |labels: &[(String, String)], name: &str| {
            labels
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let mut refused: Vec<(String, u64)> = Metrics::counts(&metrics.events_rejected)
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(labels, n)| (label(&labels, "reason"), n))
            .collect();
        refused.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut skipped: Vec<(String, String, u64)> = Metrics::counts(&metrics.values_skipped)
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(labels, n)| (label(&labels, "kpi"), label(&labels, "reason"), n))
            .collect();
        skipped.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(b.2.cmp(&a.2))
                .then_with(|| a.1.cmp(&b.1))
        });
        Self {
            summary,
            refused,
            skipped,
        }
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The summary printed after a replay: one line of counts, then a line per
/// kind of loss that happened, naming reasons and KPIs.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        write!(
            f,
            "replayed {} events ({} rejected, {} late, {} too far ahead): {} alerts fired, ",
            thousands(s.events),
            thousands(s.rejected),
            thousands(s.late),
            thousands(s.ahead),
            thousands(s.fired),
        )?;
        if s.escalated > 0 {
            write!(f, "{} escalated, ", thousands(s.escalated))?;
        }
        write!(f, "{} resolved", thousands(s.resolved))?;
        if !self.refused.is_empty() {
            let reasons: Vec<String> = self
                .refused
                .iter()
                .map(|(reason, n)| format!("{reason} {}", thousands(*n)))
                .collect();
            write!(f, "\n  refused by reason: {}", reasons.join(", "))?;
        }
        if !self.skipped.is_empty() {
            let mut kpis: Vec<String> = Vec::new();
            for group in self.skipped.chunk_by(|a, b| a.0 == b.0) {
                let total: u64 = group.iter().map(|g| g.2).sum();
                let reasons: Vec<String> = group
                    .iter()
                    .map(|(_, reason, n)| format!("{reason} {}", thousands(*n)))
                    .collect();
                kpis.push(format!(
                    "{} {} ({})",
                    group[0].0,
                    thousands(total),
                    reasons.join(", ")
                ));
            }
            write!(
                f,
                "\n  values skipped (not aggregated): {}",
                kpis.join("; ")
            )?;
        }
        Ok(())
    }
}

/// Replays `input` through a pipeline for `config`, writing transitions to
/// `out` (and, when `keep` is given, appending them to it for
/// [`notify`]). `size` (bytes, if known) drives a progress bar when stderr
/// is a terminal.
pub fn replay(
    config: Config,
    topic: Option<&str>,
    input: impl BufRead,
    size: Option<u64>,
    out: impl Write,
    keep: Option<&mut Vec<Transition>>,
) -> Result<Report, ReplayError> {
    replay_saving(config, topic, input, size, out, keep, None)
}

/// [`replay`], also saving the learned state when the input has been read
/// (`replay --save-state`; see [`crate::warm`]).
pub fn replay_saving(
    config: Config,
    topic: Option<&str>,
    input: impl BufRead,
    size: Option<u64>,
    out: impl Write,
    keep: Option<&mut Vec<Transition>>,
    save: Option<&mut dyn FedHook>,
) -> Result<Report, ReplayError> {
    let mut lines = JsonLines { out, keep, save };
    let report = run(config, topic, input, size, &mut lines)?;
    lines.out.flush()?;
    Ok(report)
}

/// [`replay`]'s observer: one JSON line per transition.
struct JsonLines<'k, 's, W> {
    out: W,
    keep: Option<&'k mut Vec<Transition>>,
    save: Option<&'s mut dyn FedHook>,
}

impl<W: Write> Observer for JsonLines<'_, '_, W> {
    fn fed(&mut self, pipeline: &Pipeline, events: u64) -> Result<(), ReplayError> {
        match self.save.as_deref_mut() {
            Some(save) => save.fed(pipeline, events),
            None => Ok(()),
        }
    }

    fn closed(
        &mut self,
        _judged: Vec<ClosedBucket>,
        transitions: &[Transition],
    ) -> Result<(), ReplayError> {
        if let Some(k) = self.keep.as_deref_mut() {
            k.extend_from_slice(transitions);
        }
        for t in transitions {
            serde_json::to_writer(&mut self.out, t)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// The replay's event loop: `input` through a pipeline for `config`, in
/// event time, telling `observer` each event's outcome and each close's
/// transitions.
pub fn run(
    config: Config,
    topic: Option<&str>,
    mut input: impl BufRead,
    size: Option<u64>,
    observer: &mut impl Observer,
) -> Result<Report, ReplayError> {
    let topic_index = topic_index(&config, topic)?;
    let mut pipeline = Pipeline::new(config, Metrics::new());
    if observer.wants_buckets() {
        pipeline.tap_buckets();
    }
    if observer.wants_points() {
        pipeline.tap_points();
    }
    let bar = progress_bar(size);
    let mut line = Vec::new();
    let mut transitions = Vec::new();
    let mut summary = Summary::default();
    let mut line_no = 0i64;
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if let Some(bar) = &bar {
            bar.inc(n as u64);
        }
        let mut payload = trim_line(&line);
        if line_no == 1 {
            // Editors on some systems start a UTF-8 file with a byte-order
            // mark; it is not part of the first event.
            payload = payload.strip_prefix(BOM).unwrap_or(payload);
        }
        if payload.is_empty() {
            continue;
        }
        let outcome = pipeline.record(topic_index, 0, line_no, payload, None);
        summary.event(outcome);
        // Held events this one decided come first (smaller line numbers).
        let due = settle(&mut pipeline, &mut summary, observer);
        if outcome != Outcome::Held {
            observer.event(outcome);
        }
        // Only an event at or past the next close can close a bucket.
        if due || matches!(outcome, Outcome::Accepted { due: true, .. }) {
            pipeline.advance(None, &mut transitions);
            close(&mut pipeline, &mut transitions, &mut summary, observer)?;
        }
    }
    observer.fed(&pipeline, summary.events)?;
    pipeline.finish(&mut transitions);
    settle(&mut pipeline, &mut summary, observer);
    close(&mut pipeline, &mut transitions, &mut summary, observer)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(Report::new(summary, pipeline.metrics()))
}

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// Counts and reports the held events the pipeline decided; true if one
/// of them is due to advance.
fn settle(pipeline: &mut Pipeline, summary: &mut Summary, observer: &mut impl Observer) -> bool {
    let mut due = false;
    for s in pipeline.settled() {
        summary.settle(s.outcome);
        observer.event(s.outcome);
        due |= matches!(s.outcome, Outcome::Accepted { due: true, .. });
    }
    due
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

fn close(
    pipeline: &mut Pipeline,
    transitions: &mut Vec<Transition>,
    summary: &mut Summary,
    observer: &mut impl Observer,
) -> Result<(), ReplayError> {
    for t in transitions.iter() {
        summary.transition(t);
    }
    if observer.wants_points() {
        observer.points(pipeline.take_points());
    }
    observer.closed(pipeline.take_judged(), transitions)?;
    observer.muted(pipeline.take_muted());
    transitions.clear();
    Ok(())
}

fn progress_bar(size: Option<u64>) -> Option<ProgressBar> {
    let size = size?;
    if !std::io::stderr().is_terminal() || size < 16 << 20 {
        return None;
    }
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// What `replay --notify` delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NotifySummary {
    /// Notifications still in the outbox when the replay gave up waiting
    /// (a receiver down): they are sent by the next `run` or `replay
    /// --notify` with the same state directory.
    pub pending: i64,
}

/// `replay --notify`: routes `transitions` through the configured
/// subscriptions in event time — each transition arrives at its bucket's
/// end, so group waits and intervals behave as they would have live — and
/// delivers the notifications in real time, waiting up to `wait` for the
/// outbox to drain. The outbox and its ledger are the service's (in
/// `service.state_dir`), so a replay never re-sends what the service (or an
/// earlier replay) already sent.
pub async fn notify(
    settings: &crate::notify::settings::NotifySettings,
    state_dir: &std::path::Path,
    transitions: &[Transition],
    wait: std::time::Duration,
) -> Result<NotifySummary, crate::notify::notifier::NotifyError> {
    use crate::clock::{ManualClock, SystemClock};
    use crate::notify::notifier::{Notifier, SILENCES_DIR};
    use crate::notify::silence::SilenceStore;
    use std::sync::{Arc, Mutex};

    let end_ms = |t: &Transition| t.bucket_end.saturating_mul(1000);
    let first = transitions.first().map(end_ms).unwrap_or(0);
    let clock = Arc::new(ManualClock::at(first / 1000));
    let silences = SilenceStore::load(&state_dir.join(SILENCES_DIR)).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "silences not read; replaying without them");
        SilenceStore::in_memory()
    });
    // Routed in event time, delivered in real time: the event clock
    // jumps a night in a microsecond, which must not age the outbox.
    let mut notifier = Notifier::start_in_event_time(
        settings,
        state_dir,
        Arc::new(Mutex::new(silences)),
        clock.clone(),
        Arc::new(SystemClock),
        Metrics::new(),
    )?;
    let catch_up = |notifier: &mut Notifier, until_ms: i64| {
        while let Some(due) = notifier.next_due_ms().filter(|d| *d <= until_ms) {
            clock.set(due.div_euclid(1000));
            notifier.tick()?;
            if notifier.next_due_ms() == Some(due) {
                break;
            }
        }
        Ok::<(), crate::notify::notifier::NotifyError>(())
    };
    for t in transitions {
        let at = end_ms(t);
        catch_up(&mut notifier, at)?;
        clock.set(at.div_euclid(1000));
        notifier.alerts(std::slice::from_ref(t))?;
    }
    // Let the last group waits and intervals pass, but not the repeats of
    // alerts still firing at the end of the file.
    let last = transitions.last().map(end_ms).unwrap_or(0);
    let horizon = settings
        .subscriptions
        .iter()
        .map(|s| s.group_wait.max(s.group_interval).as_millis() as i64)
        .max()
        .unwrap_or(0);
    catch_up(&mut notifier, last + horizon)?;
    let backlog = notifier.backlog();
    let _ = tokio::time::timeout(wait, backlog.drained()).await;
    let pending = backlog.len();
    notifier.stop().await;
    Ok(NotifySummary { pending })
}
