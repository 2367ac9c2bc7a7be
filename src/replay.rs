//! `kpiwatch replay`: the pipeline over a JSONL file (or stdin), in event
//! time only — no wall clock, so the same file always gives the same
//! alerts. Prints one JSON line per alert transition.

use std::io::{BufRead, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::pipeline::alert::Transition;
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

/// Replays `input` through a pipeline for `config`, writing transitions to
/// `out`. `size` (bytes, if known) drives a progress bar when stderr is a
/// terminal.
pub fn replay(
    config: Config,
    topic: Option<&str>,
    mut input: impl BufRead,
    size: Option<u64>,
    mut out: impl Write,
) -> Result<Summary, ReplayError> {
    let topic_index = match topic {
        Some(name) => config
            .topics
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| ReplayError::UnknownTopic(name.to_string()))?,
        None if config.topics.len() == 1 => 0,
        None => return Err(ReplayError::WhichTopic(config.topics.len())),
    };
    let mut pipeline = Pipeline::new(config, Metrics::new());
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
        // Only an event at or past the next close can close a bucket.
        if matches!(outcome, Outcome::Accepted { due: true, .. }) {
            pipeline.advance(None, &mut transitions);
            write_transitions(&mut out, &mut transitions, &mut summary)?;
        }
    }
    pipeline.finish(&mut transitions);
    write_transitions(&mut out, &mut transitions, &mut summary)?;
    out.flush()?;
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

fn write_transitions(
    out: &mut impl Write,
    transitions: &mut Vec<Transition>,
    summary: &mut Summary,
) -> Result<(), ReplayError> {
    for t in transitions.drain(..) {
        summary.transition(&t);
        serde_json::to_writer(&mut *out, &t)?;
        out.write_all(b"\n")?;
    }
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
