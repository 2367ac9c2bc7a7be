//! `kpiwatch replay`: the pipeline over a JSONL file (or stdin), in event
//! time only — no wall clock, so the same file always gives the same
//! alerts. Prints one JSON line per alert transition.
//!
//! The event loop is [`run`], which hands what happens to an [`Observer`]:
//! [`replay`] observes by writing JSON lines, `kpiwatch backtest`
//! ([`crate::backtest`]) by scoring the transitions, so both see exactly
//! the same pipeline run.

use std::io::{BufRead, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

use crate::alert::Transition;
use crate::config::Config;
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
}

/// What [`run`] tells its caller as the replay goes.
pub trait Observer {
    /// Whether [`Observer::closed`] wants the judged buckets (they are
    /// copied out of the pipeline only then).
    fn wants_buckets(&self) -> bool {
        false
    }

    /// One event's outcome, in input order.
    fn event(&mut self, _outcome: Outcome) {}

    /// One close: the buckets it judged (empty unless
    /// [`Observer::wants_buckets`]) and the transitions it caused, in
    /// bucket order.
    fn closed(
        &mut self,
        judged: Vec<ClosedBucket>,
        transitions: &[Transition],
    ) -> Result<(), ReplayError>;
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
) -> Result<Summary, ReplayError> {
    let mut lines = JsonLines { out, keep };
    let summary = run(config, topic, input, size, &mut lines)?;
    lines.out.flush()?;
    Ok(summary)
}

/// [`replay`]'s observer: one JSON line per transition.
struct JsonLines<'k, W> {
    out: W,
    keep: Option<&'k mut Vec<Transition>>,
}

impl<W: Write> Observer for JsonLines<'_, W> {
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
) -> Result<Summary, ReplayError> {
    let topic_index = topic_index(&config, topic)?;
    let mut pipeline = Pipeline::new(config, Metrics::new());
    if observer.wants_buckets() {
        pipeline.tap_buckets();
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
        let payload = trim_line(&line);
        if payload.is_empty() {
            continue;
        }
        let outcome = pipeline.record(topic_index, 0, line_no, payload, None);
        summary.event(outcome);
        observer.event(outcome);
        // Only an event at or past the next close can close a bucket.
        if matches!(outcome, Outcome::Accepted { due: true, .. }) {
            pipeline.advance(None, &mut transitions);
            close(&mut pipeline, &mut transitions, &mut summary, observer)?;
        }
    }
    pipeline.finish(&mut transitions);
    close(&mut pipeline, &mut transitions, &mut summary, observer)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(summary)
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
    observer.closed(pipeline.take_judged(), transitions)?;
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
/// delivers the notifications, waiting up to `wait` for the outbox to
/// drain. The outbox and its ledger are the service's (in
/// `service.state_dir`), so a replay never re-sends what the service (or an
/// earlier replay) already sent.
pub async fn notify(
    settings: &crate::notify::settings::NotifySettings,
    state_dir: &std::path::Path,
    transitions: &[Transition],
    wait: std::time::Duration,
) -> Result<NotifySummary, crate::notify::notifier::NotifyError> {
    use crate::clock::ManualClock;
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
    let mut notifier = Notifier::start(
        settings,
        state_dir,
        Arc::new(Mutex::new(silences)),
        clock.clone(),
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
