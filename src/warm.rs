//! `kpiwatch warm` (and `replay --save-state`): learn baselines from
//! history and write the state `kpiwatch run` resumes from.
//!
//! The history (a warehouse export, an archive of the topic: JSON lines in
//! event time) goes through [`replay::run`], the same loop `replay` and
//! `backtest` use. When the file ends, [`SaveState`] writes the pipeline's
//! snapshot, as the service would (only closed buckets: a bucket still
//! open at the end of the history may be partial, and is neither judged
//! nor kept), and beside it [`History`] (`history.json`): for each topic,
//! where the snapshot's closed buckets end. The snapshot covers no Kafka
//! offset.
//!
//! `run` reads `history.json` after restoring the snapshot ([`resume`]) and
//! hands the ends to the consumer ([`crate::kafka::start`]): a partition
//! the group has no committed offset for starts at the first message at or
//! after its topic's end, so the events of the open buckets are read again
//! from the topic and none of the history is counted twice. Once the
//! service has committed offsets, they win.
//!
//! The ends are taken from the restored pipeline, not from the file: a KPI
//! whose definition changed since the warm start is not restored (it starts
//! afresh, as after any restart with a changed config, and a warning names
//! it), and a topic none of whose KPIs was restored starts as `start_from`
//! says. `warm` never writes over an existing snapshot: it may be a
//! running service's state, whose committed offsets belong to it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::durable::Storage;
use crate::kafka::start::{StartFrom, Starts};
use crate::pipeline::{snapshot, Pipeline};
use crate::replay::{self, Observer, ReplayError};

/// File name of the history's description inside the state directory.
pub const HISTORY_FILE: &str = "history.json";

/// What a warm start learnt from, written beside the snapshot. For people
/// (`cat state/history.json`) and for `run`, which starts partitions at
/// each topic's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The events file, as given.
    pub events_file: String,
    /// Events read from it (counted or not).
    pub events: u64,
    /// Per topic, where the snapshot's closed buckets end.
    pub topics: Vec<TopicEnd>,
}

/// One topic's history end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicEnd {
    /// Topic name.
    pub topic: String,
    /// Every event before this time (epoch seconds) is in the snapshot;
    /// none at or after it.
    pub end: i64,
    /// `end` in RFC 3339, for people.
    pub end_utc: String,
}

/// Errors of a warm start.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    /// The state directory already holds a snapshot.
    #[error("{0} already holds a snapshot (an earlier warm start, or a service's state, whose committed offsets belong to it); warm into a new, empty state directory, or move that one away")]
    Exists(PathBuf),
    /// The history ended before any bucket could close.
    #[error("nothing learnt: no bucket closed in the history (is it empty, or shorter than a bucket plus its lateness?)")]
    NothingLearnt,
    /// The snapshot could not be written.
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    /// `history.json` could not be written or read.
    #[error("{path}: {reason}")]
    History {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What a warm start did.
#[derive(Debug, Clone)]
pub struct Warmed {
    /// The replay's counts.
    pub report: replay::Report,
    /// What `history.json` says.
    pub history: History,
    /// Series whose state the snapshot holds.
    pub series: usize,
    /// Seconds the whole warm start took (reading, judging, writing).
    pub seconds: f64,
}

impl std::fmt::Display for Warmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.report)?;
        write!(f, "learnt {} series in {:.1} s", self.series, self.seconds)?;
        for t in &self.history.topics {
            write!(
                f,
                "\n  {}: history ends at {}; `kpiwatch run` starts each partition without a committed offset at its first message from then on",
                t.topic, t.end_utc
            )?;
        }
        Ok(())
    }
}

/// Writes the snapshot and [`History`] when the history has been read
/// (an [`Observer::fed`] hook for [`replay::run`]).
pub struct SaveState {
    dir: PathBuf,
    storage: std::sync::Arc<dyn Storage>,
    events_file: String,
    /// Set once written.
    saved: Option<(History, usize)>,
}

impl SaveState {
    /// Will save into `dir`; refuses a directory that holds a snapshot
    /// already (before any history is read).
    pub fn new(
        dir: &Path,
        storage: std::sync::Arc<dyn Storage>,
        events_file: &str,
    ) -> Result<Self, WarmError> {
        if dir.join(snapshot::FILE).exists() {
            return Err(WarmError::Exists(dir.to_path_buf()));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            storage,
            events_file: events_file.to_string(),
            saved: None,
        })
    }

    /// Writes the snapshot, then `history.json` (a crash between leaves a
    /// snapshot `run` treats as any other: partitions start as
    /// `start_from` says, and what it covers is dropped as late).
    pub fn save(&mut self, pipeline: &Pipeline, events: u64) -> Result<(), WarmError> {
        let snap = pipeline.snapshot();
        let series = snap.kpis.iter().map(|k| k.series.len()).sum();
        let topics: Vec<TopicEnd> = ends(pipeline)
            .into_iter()
            .map(|(topic, end)| TopicEnd {
                topic,
                end,
                end_utc: crate::timefmt::rfc3339(end),
            })
            .collect();
        if topics.is_empty() {
            return Err(WarmError::NothingLearnt);
        }
        snapshot::save(&*self.storage, &self.dir, &snap)?;
        let history = History {
            events_file: self.events_file.clone(),
            events,
            topics,
        };
        let path = self.dir.join(HISTORY_FILE);
        let text = serde_json::to_string_pretty(&history).map_err(|e| WarmError::History {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        self.storage
            .write_atomic(&path, format!("{text}\n").as_bytes())
            .map_err(|e| WarmError::History {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        self.saved = Some((history, series));
        Ok(())
    }
}

/// Each topic's history end in `pipeline`: the earliest point up to which
/// all its KPIs that closed a bucket have closed them.
fn ends(pipeline: &Pipeline) -> Vec<(String, i64)> {
    pipeline
        .config()
        .topics
        .iter()
        .enumerate()
        .filter_map(|(t, topic)| Some((topic.name.clone(), pipeline.closed_until(t)?)))
        .collect()
}

/// `kpiwatch warm`: learns from `input` (a JSONL history of `topic`) and
/// writes the snapshot and `history.json` into `save`'s directory.
pub fn warm(
    config: crate::config::Config,
    topic: Option<&str>,
    input: impl std::io::BufRead,
    size: Option<u64>,
    mut save: SaveState,
) -> Result<Warmed, WarmError> {
    let began = Instant::now();
    let mut observer = Saving {
        save: &mut save,
        error: None,
    };
    let report = replay::run(config, topic, input, size, &mut observer);
    if let Some(e) = observer.error.take() {
        return Err(e);
    }
    let report = report.map_err(|e| WarmError::History {
        path: PathBuf::from(&save.events_file),
        reason: e.to_string(),
    })?;
    let (history, series) = save.saved.take().ok_or(WarmError::NothingLearnt)?;
    Ok(Warmed {
        report,
        history,
        series,
        seconds: began.elapsed().as_secs_f64(),
    })
}

/// [`warm`]'s observer: saves when fed, ignores transitions.
struct Saving<'s> {
    save: &'s mut SaveState,
    /// A save that failed (the replay loop's error type cannot carry it).
    error: Option<WarmError>,
}

impl Observer for Saving<'_> {
    fn fed(&mut self, pipeline: &Pipeline, events: u64) -> Result<(), ReplayError> {
        self.save_now(pipeline, events)
    }

    fn closed(
        &mut self,
        _judged: Vec<crate::pipeline::window::ClosedBucket>,
        _transitions: &[crate::alert::Transition],
    ) -> Result<(), ReplayError> {
        Ok(())
    }
}

impl Saving<'_> {
    fn save_now(&mut self, pipeline: &Pipeline, events: u64) -> Result<(), ReplayError> {
        match self.save.save(pipeline, events) {
            Ok(()) => Ok(()),
            Err(e) => {
                let text = e.to_string();
                self.error = Some(e);
                Err(ReplayError::Save(text))
            }
        }
    }
}

/// For `replay --save-state`: the same save, as a hook [`replay::replay_saving`]
/// calls when the file has been read.
impl replay::FedHook for SaveState {
    /// Saves (see [`SaveState::save`]), as a replay error on failure.
    fn fed(&mut self, pipeline: &Pipeline, events: u64) -> Result<(), ReplayError> {
        self.save(pipeline, events)
            .map_err(|e| ReplayError::Save(e.to_string()))
    }
}

impl SaveState {
    /// What was saved: the history and the number of series.
    pub fn saved(&self) -> Option<&(History, usize)> {
        self.saved.as_ref()
    }
}

/// Reads `history.json` in `dir`, if there is one.
pub fn load_history(dir: &Path) -> Result<Option<History>, WarmError> {
    let path = dir.join(HISTORY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(WarmError::History {
                path,
                reason: e.to_string(),
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| WarmError::History {
            path,
            reason: e.to_string(),
        })
}

/// `run`, after restoring the snapshot in `dir`: if it came from a warm
/// start, tells `starts` where each topic's history ends, so partitions
/// without a committed offset start there. Logs what it decided; a
/// `history.json` that cannot be read is logged and ignored (partitions
/// then start as `start_from` says, and the pipeline drops what the
/// snapshot covers as late: slower, never counted twice).
pub fn resume(pipeline: &Pipeline, dir: &Path, starts: &Starts) {
    let history = match load_history(dir) {
        Ok(Some(h)) => h,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "warm history not read; partitions without a committed offset start as kafka.start_from says");
            return;
        }
    };
    let ends = ends(pipeline);
    for t in &history.topics {
        match ends.iter().find(|(name, _)| *name == t.topic) {
            Some((_, end)) => tracing::info!(
                topic = %t.topic, history_end = %crate::timefmt::rfc3339(*end),
                start_from = ?starts.from(),
                "warm snapshot from {}: partitions without a committed offset start at the history's end",
                history.events_file
            ),
            None => tracing::warn!(
                topic = %t.topic,
                "warm snapshot: no KPI of this topic was restored (its definition changed, or the topic is no longer configured); it starts as kafka.start_from says"
            ),
        }
    }
    match starts.from() {
        StartFrom::Committed => starts.set_history(ends),
        StartFrom::Earliest => tracing::warn!(
            "kafka.start_from = \"earliest\" with a warm snapshot: partitions without a committed offset are read from their earliest message, and the events the snapshot covers are dropped as late"
        ),
        StartFrom::Latest => tracing::warn!(
            "kafka.start_from = \"latest\" with a warm snapshot: partitions without a committed offset start at new messages; what the topic holds between the history's end and now is not read"
        ),
    }
}
