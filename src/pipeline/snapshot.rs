//! Snapshots of the pipeline's learned state, so a restart keeps baselines
//! and firing alerts, and never judges a bucket twice with partial data.
//!
//! A snapshot holds, per KPI: where bucket closing stands, the series the
//! windows know, and every series' detector state, recent values and alert
//! lifecycle. It does not hold open buckets: the service stores a Kafka
//! offset only after a snapshot covering the close of that offset's
//! buckets is on disk, so after a restart the open buckets' events are read
//! again, and events of buckets the snapshot already closed are late.
//!
//! Each KPI's state is tagged with a fingerprint of its definition (bucket,
//! measure, grouping, detectors): a KPI whose definition changed starts
//! afresh instead of feeding old baselines to new detectors.
//!
//! The file is postcard (compact, exact floats), written to a temporary
//! file, synced, and renamed over the previous one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::engine::SeriesState;

/// Version of the snapshot layout; a different version is not restored.
/// Bumped whenever the layout changes: 2 added the band to the recent
/// buckets; 3 changed the detector state (relative-residual tails, and
/// empirical tails stored as bin masses).
const VERSION: u32 = 3;
/// File name inside `service.state_dir`.
pub const FILE: &str = "snapshot.postcard";

/// The state of one KPI.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KpiSnapshot {
    /// KPI name.
    pub name: String,
    /// Fingerprint of the KPI's definition.
    pub fingerprint: String,
    /// Every bucket before this had closed (event KPIs).
    pub closed_until: Option<i64>,
    /// Series the windows knew, with their last event's bucket.
    pub windows: Vec<(String, i64)>,
    /// Detector state, recent values and lifecycle per series.
    pub series: Vec<(String, SeriesState)>,
}

/// The whole snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Layout version.
    pub version: u32,
    /// Per KPI.
    pub kpis: Vec<KpiSnapshot>,
}

impl Snapshot {
    /// An empty snapshot of the current layout.
    pub fn new(kpis: Vec<KpiSnapshot>) -> Self {
        Self {
            version: VERSION,
            kpis,
        }
    }
}

/// Errors reading or writing a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file system refused.
    #[error("snapshot {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a snapshot this version can read.
    #[error(
        "snapshot {path} cannot be read ({reason}); move it away to start with fresh baselines"
    )]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Writes `snapshot` into `dir` atomically.
pub fn save(dir: &Path, snapshot: &Snapshot) -> Result<(), SnapshotError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(FILE);
    let bytes = postcard::to_stdvec(snapshot).map_err(|e| SnapshotError::Format {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    crate::durable::write_atomic(&path, &bytes).map_err(io(&path))?;
    Ok(())
}

/// Reads the snapshot in `dir`, if there is one.
pub fn load(dir: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SnapshotError::Io { path, source }),
    };
    let snapshot: Snapshot = postcard::from_bytes(&bytes).map_err(|e| SnapshotError::Format {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if snapshot.version != VERSION {
        return Err(SnapshotError::Format {
            path,
            reason: format!(
                "layout version {} (this build reads {VERSION})",
                snapshot.version
            ),
        });
    }
    Ok(Some(snapshot))
}
