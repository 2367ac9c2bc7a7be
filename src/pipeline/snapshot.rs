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
//! file, synced, and renamed over the previous one (through a
//! [`Storage`], which tests can make fail like a full disk).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::engine::SeriesState;
use crate::durable::Storage;

/// Version of the snapshot layout; a different version is not restored.
/// Bumped whenever the layout changes: 2 added the band to the recent
/// buckets; 3 changed the detector state (relative-residual tails, and
/// empirical tails stored as bin masses); 5 dropped the weight from the
/// KPI model's window entries (it is the events, or 1); 6 added an
/// average's typical-value state, and the evidence an alert claims became
/// the finding's source; 7 kept, per recent bucket, the part of its
/// variance that is the expectation's own; 8 added the model error
/// particular to an hour (own and against peers) and the totals of the
/// hour that teach it; 9 the moments of a sum's or an average's values;
/// 10 the bucket noise; 11 a group member's share by hour of day.
const VERSION: u32 = 11;
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

/// Writes `snapshot` into `dir` atomically, through `storage`.
pub fn save(storage: &dyn Storage, dir: &Path, snapshot: &Snapshot) -> Result<(), SnapshotError> {
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
    storage.write_atomic(&path, &bytes).map_err(io(&path))?;
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
    let format = |reason: String| SnapshotError::Format {
        path: path.clone(),
        reason,
    };
    // The version is the first field: read it alone first, so a snapshot
    // of another layout is named as such instead of failing somewhere in
    // the middle with a decoding error.
    let (version, _) =
        postcard::take_from_bytes::<u32>(&bytes).map_err(|e| format(e.to_string()))?;
    if version != VERSION {
        return Err(format(format!(
            "layout version {version} (this build reads {VERSION})"
        )));
    }
    let snapshot: Snapshot = postcard::from_bytes(&bytes).map_err(|e| format(e.to_string()))?;
    Ok(Some(snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("kpiwatch-snapshot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_saved_snapshot_loads_back() {
        let d = dir("roundtrip");
        save(&crate::durable::Disk, &d, &Snapshot::new(Vec::new())).unwrap();
        let loaded = load(&d).unwrap().expect("a snapshot");
        assert_eq!((loaded.version, loaded.kpis.len()), (VERSION, 0));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_older_layout_is_named_by_its_version_not_a_decoding_error() {
        // An older build's snapshot: its version, then a body this build's
        // types cannot decode.
        let d = dir("older");
        std::fs::create_dir_all(&d).unwrap();
        let mut bytes = postcard::to_stdvec(&(VERSION - 1)).unwrap();
        bytes.extend_from_slice(&[0xff; 7]);
        std::fs::write(d.join(FILE), bytes).unwrap();
        let err = load(&d).unwrap_err().to_string();
        assert!(
            err.contains(&format!("layout version {}", VERSION - 1))
                && err.contains("move it away"),
            "{err}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
