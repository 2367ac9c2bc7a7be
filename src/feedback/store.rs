//! Every verdict given on an alert, kept on disk.
//!
//! One file per alert, `<state_dir>/feedback/verdicts/<alert_id>.json`,
//! written whole with [`crate::durable::write_atomic`] (as the silences
//! are): a verdict costs one small file whatever the store holds, and a
//! crash leaves each alert's feedback old or new. The file carries the
//! alert's span ([`KnownAlert`]) beside its verdicts, so an export needs
//! nothing else. The latest verdict wins; earlier ones stay for the
//! record.
//!
//! Limits, so no caller can grow the store without bound:
//! [`MAX_COMMENT_BYTES`] of comment, [`MAX_BY_BYTES`] of author,
//! [`MAX_VERDICTS_PER_ALERT`] verdicts per alert and
//! [`MAX_ALERTS_WITH_FEEDBACK`] alerts: at most about 250 MB in the worst
//! case, a few KB in practice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{is_alert_id, KnownAlert, Verdict, FEEDBACK_DIR};
use crate::timefmt::rfc3339_secs;

/// Longest comment, in bytes: a sentence or two and a ticket link.
pub const MAX_COMMENT_BYTES: usize = 1024;

/// Longest `by`, in bytes.
pub const MAX_BY_BYTES: usize = 256;

/// Most verdicts kept for one alert: people change their minds, but not
/// twenty times.
pub const MAX_VERDICTS_PER_ALERT: usize = 20;

/// Most alerts with feedback.
pub const MAX_ALERTS_WITH_FEEDBACK: usize = 10_000;

/// The directory of verdict files inside the state directory.
pub fn verdicts_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(FEEDBACK_DIR).join("verdicts")
}

/// One verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// What they said.
    pub verdict: Verdict,
    /// Why, in their words (may be empty).
    pub comment: String,
    /// Who said it: the request's `by`, else the API token's name.
    pub by: String,
    /// How it came: the API token's name (`localhost` without tokens), or
    /// `email link`. Kept apart from `by`, which the caller chooses.
    pub via: String,
    /// When, epoch seconds.
    #[serde(with = "rfc3339_secs")]
    pub at: i64,
}

/// An alert and the verdicts given on it, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertFeedback {
    /// The alert.
    pub alert: KnownAlert,
    /// Every verdict, oldest first; never empty.
    pub verdicts: Vec<Record>,
}

impl AlertFeedback {
    /// The verdict that counts: the latest.
    pub fn latest(&self) -> Option<&Record> {
        self.verdicts.last()
    }
}

/// Why feedback was refused or not saved, written for whoever sent it.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// Refused input.
    #[error("{0}")]
    Invalid(String),
    /// No alert this service fired has this id.
    #[error("no alert has id {0:?}; use the alert_id of an alert this service fired (in its emails, webhooks and alert log)")]
    UnknownAlert(String),
    /// A file or the directory could not be read or written.
    #[error("feedback {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A feedback file is not what kpiwatch writes.
    #[error("feedback file {path} is damaged: {message}; move it away to start without that alert's feedback")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What serde said.
        message: String,
    },
}

/// A verdict to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVerdict {
    /// What.
    pub verdict: Verdict,
    /// Why.
    pub comment: String,
    /// Who (empty: the token's name).
    pub by: String,
    /// Through which token or link.
    pub via: String,
}

/// One verdict file.
#[derive(Serialize, Deserialize)]
struct VerdictFile {
    version: u32,
    #[serde(flatten)]
    feedback: AlertFeedback,
}

const FILE_VERSION: u32 = 1;

/// The verdicts in memory, and where they are written.
#[derive(Debug, Default)]
pub struct FeedbackStore {
    /// `<state_dir>/feedback/verdicts`; `None` in memory only.
    dir: Option<PathBuf>,
    by_alert: BTreeMap<String, AlertFeedback>,
}

impl FeedbackStore {
    /// A store that is never saved.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The feedback of `state_dir` (none yet is an empty store). Reads
    /// only: files that are not `<alert_id>.json` are left alone.
    pub fn load(state_dir: &Path) -> Result<Self, FeedbackError> {
        let dir = verdicts_dir(state_dir);
        let mut store = Self {
            dir: Some(dir.clone()),
            by_alert: BTreeMap::new(),
        };
        let entries = match std::fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(source) => return Err(FeedbackError::Io { path: dir, source }),
            Ok(entries) => entries,
        };
        for entry in entries {
            let path = entry
                .map_err(|source| FeedbackError::Io {
                    path: dir.clone(),
                    source,
                })?
                .path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|id| is_alert_id(id))
            else {
                continue;
            };
            let corrupt = |message: String| FeedbackError::Corrupt {
                path: path.clone(),
                message,
            };
            let bytes = std::fs::read(&path).map_err(|source| FeedbackError::Io {
                path: path.clone(),
                source,
            })?;
            let file: VerdictFile =
                serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
            if file.version != FILE_VERSION {
                return Err(corrupt(format!(
                    "layout version {} is not {FILE_VERSION}",
                    file.version
                )));
            }
            if file.feedback.alert.alert_id != id || file.feedback.verdicts.is_empty() {
                return Err(corrupt(format!("it does not hold alert {id:?}'s verdicts")));
            }
            store.by_alert.insert(id.to_string(), file.feedback);
        }
        Ok(store)
    }

    /// The feedback on alert `id`.
    pub fn get(&self, id: &str) -> Option<&AlertFeedback> {
        self.by_alert.get(id)
    }

    /// Every alert with feedback, by id.
    pub fn all(&self) -> impl Iterator<Item = &AlertFeedback> {
        self.by_alert.values()
    }

    /// Where verdicts are written, if anywhere.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// `alert`'s feedback with `new` added at `now`, without changing the
    /// store. Refuses sizes past the limits, a full store, and a
    /// verdict past [`MAX_VERDICTS_PER_ALERT`].
    pub fn prepare(
        &self,
        alert: &KnownAlert,
        new: NewVerdict,
        now: i64,
    ) -> Result<AlertFeedback, FeedbackError> {
        if new.comment.len() > MAX_COMMENT_BYTES {
            return Err(FeedbackError::Invalid(format!(
                "the comment is {} bytes; at most {MAX_COMMENT_BYTES} are allowed (link to a ticket for more)",
                new.comment.len()
            )));
        }
        let by = new.by.trim();
        let by = if by.is_empty() { new.via.as_str() } else { by };
        if by.len() > MAX_BY_BYTES || by.chars().any(char::is_control) {
            return Err(FeedbackError::Invalid(format!(
                "`by` must be at most {MAX_BY_BYTES} bytes on one line, e.g. \"maria@shop.example\""
            )));
        }
        let mut entry = match self.by_alert.get(&alert.alert_id) {
            Some(e) => e.clone(),
            None => {
                if self.by_alert.len() >= MAX_ALERTS_WITH_FEEDBACK {
                    return Err(FeedbackError::Invalid(format!(
                        "feedback is kept for at most {MAX_ALERTS_WITH_FEEDBACK} alerts, and that many have some; export it (kpiwatch feedback export) and move the oldest files of {} away",
                        self.dir.as_deref().map_or("the feedback directory".into(), |d| d.display().to_string())
                    )));
                }
                AlertFeedback {
                    alert: alert.clone(),
                    verdicts: Vec::new(),
                }
            }
        };
        if entry.verdicts.len() >= MAX_VERDICTS_PER_ALERT {
            return Err(FeedbackError::Invalid(format!(
                "alert {} already has {MAX_VERDICTS_PER_ALERT} verdicts; the latest one counts",
                alert.alert_id
            )));
        }
        // The span may have grown since the first verdict (it resolved).
        entry.alert = alert.clone();
        entry.verdicts.push(Record {
            verdict: new.verdict,
            comment: new.comment,
            by: by.to_string(),
            via: new.via,
            at: now,
        });
        Ok(entry)
    }

    /// Writes `entry` to its file, atomically and durably (nothing in
    /// memory only).
    pub fn write(&self, entry: &AlertFeedback) -> Result<(), FeedbackError> {
        write_entry(self.dir.as_deref(), entry)
    }

    /// Puts `entry` in memory (after [`write`](Self::write)).
    pub fn insert(&mut self, entry: AlertFeedback) {
        self.by_alert.insert(entry.alert.alert_id.clone(), entry);
    }
}

/// Writes `entry` to its file in `dir` (the store's
/// [`dir`](FeedbackStore::dir); nothing for `None`), atomically and
/// durably, without the store: the API holds no lock across the fsync.
pub fn write_entry(dir: Option<&Path>, entry: &AlertFeedback) -> Result<(), FeedbackError> {
    let Some(dir) = dir else {
        return Ok(());
    };
    let io = |source| FeedbackError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let body = serde_json::to_vec_pretty(&VerdictFile {
        version: FILE_VERSION,
        feedback: entry.clone(),
    })
    .expect("feedback serialises");
    let path = dir.join(format!("{}.json", entry.alert.alert_id));
    crate::durable::write_atomic(&path, &body).map_err(io)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn alert(id: &str) -> KnownAlert {
        KnownAlert {
            alert_id: id.to_string(),
            kpi: "checkouts".into(),
            labels: [("country".to_string(), "FI".to_string())].into(),
            direction: detectors::Direction::Drop,
            started_at: 1_714_564_800,
            fired_at: 1_714_565_100,
            resolved_at: None,
        }
    }

    fn verdict(v: Verdict, by: &str) -> NewVerdict {
        NewVerdict {
            verdict: v,
            comment: "payment provider".into(),
            by: by.into(),
            via: "ops".into(),
        }
    }

    #[test]
    fn the_latest_verdict_wins_and_all_are_kept_across_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FeedbackStore::load(dir.path()).unwrap();
        let a = alert("00000000000000aa");
        for (v, at) in [(Verdict::False, 10), (Verdict::True, 20)] {
            let e = store.prepare(&a, verdict(v, ""), at).unwrap();
            store.write(&e).unwrap();
            store.insert(e);
        }
        let again = FeedbackStore::load(dir.path()).unwrap();
        let f = again.get("00000000000000aa").unwrap();
        assert_eq!(f.verdicts.len(), 2);
        assert_eq!(f.latest().unwrap().verdict, Verdict::True);
        assert_eq!(f.latest().unwrap().by, "ops", "by defaults to the token");
    }

    #[test]
    fn limits_refuse_long_comments_and_too_many_verdicts() {
        let mut store = FeedbackStore::in_memory();
        let a = alert("00000000000000aa");
        let mut long = verdict(Verdict::True, "ann");
        long.comment = "x".repeat(MAX_COMMENT_BYTES + 1);
        assert!(matches!(
            store.prepare(&a, long, 1),
            Err(FeedbackError::Invalid(_))
        ));
        for i in 0..MAX_VERDICTS_PER_ALERT {
            let e = store
                .prepare(&a, verdict(Verdict::True, "ann"), i as i64)
                .unwrap();
            store.insert(e);
        }
        let err = store
            .prepare(&a, verdict(Verdict::False, "ann"), 99)
            .unwrap_err();
        assert!(err.to_string().contains("latest one counts"), "{err}");
    }
}
