//! `kpiwatch backtest`: the instrument that measures alert quality on past
//! events. It replays them exactly as `kpiwatch replay` does and scores the
//! alerts against an analyst's labelled incidents: recall, detection
//! delay, false alerts per KPI-week, alerts left firing, and whether each
//! message's figures add up.
//!
//! # Layout
//!
//! - [`labels`] — the `--incidents` file: [`Labels`] of incidents and
//!   quiet spans, validated and held against the configuration.
//! - [`matching`] — transitions folded into alerts, and the rule by which
//!   an alert detects an incident; delays.
//! - [`checks`] — message consistency violations of one transition.
//! - [`report`] — [`Report`], the figures, whose serde form is the
//!   `--json` schema.
//! - [`text`] — the report for people.
//! - [`points`] — every judged bucket with its band, per series (kept
//!   only for `--html`).
//! - [`sweep`] — what-if: the backtest again at other `false_alarms`
//!   budgets (`kpiwatch tune`, the HTML report's what-if view).
//! - [`html`] — the report as one self-contained page of charts.
//!
//! # Data flow
//!
//! [`backtest`] checks the labels against the config, runs
//! [`crate::replay::run`] (the replay's own event loop) with a collector
//! that keeps the transitions and what the data held (its time span, the
//! series and the lowest value of each KPI), then [`report::build`]s the
//! report; `main.rs` prints it as text or JSON. For `--html`, [`run`]
//! also keeps the transitions and the judged buckets ([`points`]), the
//! [`sweep`] replays at three more budgets, and [`html::render`] draws
//! the page from all of them.

pub mod checks;
pub mod html;
pub mod labels;
pub mod matching;
pub mod points;
pub mod report;
pub mod sweep;
#[cfg(test)]
pub(crate) mod testing;
pub mod text;

use std::collections::HashSet;
use std::io::BufRead;

pub use labels::{Labels, LabelsError};
pub use points::Points;
pub use report::{Report, Seen};

use crate::alert::Transition;
use crate::config::Config;
use crate::pipeline::engine::JudgedPoint;
use crate::pipeline::window::{ClosedBucket, SeriesKey};
use crate::pipeline::Outcome;
use crate::replay::{Observer, ReplayError};

/// Why a backtest did not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// The replay failed (topic, reading).
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The labels do not fit the configuration.
    #[error(transparent)]
    Labels(#[from] LabelsError),
}

/// Replays `input` (JSONL events of `topic`, or the config's only topic)
/// through a pipeline for `config` and scores its alerts against `labels`
/// (or counts them, unlabelled, without). `size` (bytes, if known) drives
/// the replay's progress bar.
pub fn backtest(
    config: Config,
    topic: Option<&str>,
    input: impl BufRead,
    size: Option<u64>,
    labels: Option<&Labels>,
) -> Result<Report, BacktestError> {
    Ok(run(config, topic, input, size, labels, false)?.report)
}

/// A backtest with what it was computed from.
#[derive(Debug)]
pub struct Run {
    /// The figures.
    pub report: Report,
    /// Every transition, in the order they happened.
    pub transitions: Vec<Transition>,
    /// Every judged bucket with its band, if asked for.
    pub points: Option<Points>,
}

/// [`backtest`], keeping the transitions and, if `keep_points`, every
/// judged bucket with its expectation and band (for charts).
pub fn run(
    config: Config,
    topic: Option<&str>,
    input: impl BufRead,
    size: Option<u64>,
    labels: Option<&Labels>,
    keep_points: bool,
) -> Result<Run, BacktestError> {
    let index = crate::replay::topic_index(&config, topic)?;
    if let Some(labels) = labels {
        labels.check(&config, index)?;
    }
    let mut collector = Collector::new(config.kpis.len());
    if keep_points {
        collector.points = Some(Points::new(config.kpis.iter().map(|k| k.bucket).collect()));
    }
    // The pipeline takes the config; the report needs it after.
    let summary = crate::replay::run(config.clone(), topic, input, size, &mut collector)?.summary;
    let seen = Seen {
        summary,
        first_event: collector.first_event,
        last_event: collector.last_event,
        series: collector.series.iter().map(HashSet::len).collect(),
        lowest: collector.lowest,
    };
    let mut report = report::build(&config, index, &collector.transitions, &seen, labels);
    if let (Some(from), Some(to)) = (seen.first_event, seen.last_event) {
        report.calendar_spans = report::calendar_spans(&config, index, from, to);
    }
    report.muted = report::muted_rows(&collector.muted);
    Ok(Run {
        report,
        transitions: collector.transitions,
        points: collector.points,
    })
}

/// What the backtest keeps of a replay.
struct Collector {
    transitions: Vec<Transition>,
    first_event: Option<i64>,
    last_event: Option<i64>,
    /// Per KPI, the series judged. foldhash: as in the pipeline's maps,
    /// keys come from producers and `max_series` bounds them.
    series: Vec<HashSet<SeriesKey, foldhash::fast::RandomState>>,
    /// Per KPI, the lowest value judged.
    lowest: Vec<f64>,
    /// Every judged bucket, when charts are wanted.
    points: Option<Points>,
    /// Alerts calendars muted.
    muted: Vec<crate::pipeline::engine::Muted>,
}

impl Collector {
    fn new(kpis: usize) -> Self {
        Self {
            transitions: Vec::new(),
            first_event: None,
            last_event: None,
            series: (0..kpis).map(|_| HashSet::default()).collect(),
            lowest: vec![f64::INFINITY; kpis],
            points: None,
            muted: Vec::new(),
        }
    }
}

impl Observer for Collector {
    fn wants_buckets(&self) -> bool {
        true
    }

    fn wants_points(&self) -> bool {
        self.points.is_some()
    }

    fn points(&mut self, points: Vec<JudgedPoint>) {
        if let Some(all) = &mut self.points {
            for p in points {
                all.add(p);
            }
        }
    }

    fn event(&mut self, outcome: Outcome) {
        if let Outcome::Accepted { time, .. } = outcome {
            self.first_event = Some(self.first_event.map_or(time, |t| t.min(time)));
            self.last_event = Some(self.last_event.map_or(time, |t| t.max(time)));
        }
    }

    fn closed(
        &mut self,
        judged: Vec<ClosedBucket>,
        transitions: &[Transition],
    ) -> Result<(), ReplayError> {
        for b in judged {
            if let Some(v) = b.value {
                self.lowest[b.kpi] = self.lowest[b.kpi].min(v);
            }
            self.series[b.kpi].insert(b.key);
        }
        self.transitions.extend_from_slice(transitions);
        Ok(())
    }

    fn muted(&mut self, muted: Vec<crate::pipeline::engine::Muted>) {
        self.muted.extend(muted);
    }
}
