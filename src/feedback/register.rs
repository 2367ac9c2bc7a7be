//! The alerts this service fired, so that feedback can name only real
//! ones and an export knows each alert's span.
//!
//! The service loop hands every batch of transitions to
//! [`AlertRegister::record`], which appends what changed (a new alert, a
//! resolution) to `<state_dir>/feedback/alerts.jsonl`, one
//! [`KnownAlert`] per line, the later line for an id winning. Alerts are
//! rare (a few a day), so a flush and an fsync per batch cost nothing the
//! loop notices; a write that fails is the caller's to log, and loses
//! only the chance to give feedback on that alert (the alert itself is
//! safe in the outbox). The alert log (`service.alert_log`) is optional
//! and meant for people, so it is not read back.
//!
//! Bounded: the newest [`MAX_KNOWN`] alerts are kept; the file is
//! rewritten whole (atomically) when it holds more than twice as many
//! lines as alerts kept, so it never grows without bound either.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{KnownAlert, FEEDBACK_DIR};
use crate::alert::{Status, Transition};

/// Most alerts remembered: at a few alerts a day, years of them; at
/// ~300 bytes each, about 30 MB of file at most.
pub const MAX_KNOWN: usize = 100_000;

/// File name of the register inside `<state_dir>/feedback`.
pub const REGISTER_FILE: &str = "alerts.jsonl";

/// The alerts fired, newest [`MAX_KNOWN`] of them.
#[derive(Debug, Default)]
pub struct AlertRegister {
    /// Where lines are appended; `None` in memory only (tests, replay).
    path: Option<PathBuf>,
    alerts: HashMap<String, KnownAlert>,
    /// Ids in the order they fired, to forget the oldest first.
    order: VecDeque<String>,
    /// Lines in the file, to know when to rewrite it.
    lines: usize,
}

impl AlertRegister {
    /// A register that is never saved.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The register of `state_dir` (empty when there is none yet). Lines
    /// that do not parse (a line torn by a crash) are skipped and counted
    /// in the returned number: a damaged register must not stop the
    /// service, it only forgets those alerts.
    pub fn load(state_dir: &Path) -> std::io::Result<(Self, usize)> {
        let path = state_dir.join(FEEDBACK_DIR).join(REGISTER_FILE);
        let mut register = Self {
            path: Some(path.clone()),
            ..Self::default()
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((register, 0)),
            Err(e) => return Err(e),
        };
        let mut skipped = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            register.lines += 1;
            match serde_json::from_str::<KnownAlert>(line) {
                Ok(a) if super::is_alert_id(&a.alert_id) => register.remember(a),
                _ => skipped += 1,
            }
        }
        Ok((register, skipped))
    }

    /// The alert `id`, if this service fired it.
    pub fn get(&self, id: &str) -> Option<&KnownAlert> {
        self.alerts.get(id)
    }

    /// Alerts remembered.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    fn remember(&mut self, a: KnownAlert) {
        if !self.alerts.contains_key(&a.alert_id) {
            self.order.push_back(a.alert_id.clone());
        }
        self.alerts.insert(a.alert_id.clone(), a);
        while self.order.len() > MAX_KNOWN {
            if let Some(old) = self.order.pop_front() {
                self.alerts.remove(&old);
            }
        }
    }

    /// Takes note of `transitions`: a firing one of an alert not known
    /// yet adds it (an escalation of a known one changes nothing), a
    /// resolved one sets its end. A transition seen again (a
    /// replay after a restart) changes nothing. What changed is appended
    /// to the file and synced before this returns.
    pub fn record(&mut self, transitions: &[Transition]) -> std::io::Result<()> {
        let mut changed: Vec<KnownAlert> = Vec::new();
        for t in transitions {
            let known = self.alerts.get(&t.alert_id);
            let updated = match (t.status, known) {
                (Status::Firing, None) => Some(KnownAlert {
                    alert_id: t.alert_id.clone(),
                    kpi: t.kpi.clone(),
                    labels: t.labels.clone(),
                    direction: t.direction,
                    started_at: t.started_at,
                    // An escalation of an alert fired before the register
                    // knew it: it fired no later than its first bucket.
                    fired_at: if t.is_escalation() {
                        t.started_at + (t.bucket_end - t.bucket_start).max(1)
                    } else {
                        t.bucket_end
                    },
                    resolved_at: None,
                }),
                // Again (a replay), or an escalation: the alert and its
                // span are as they were.
                (Status::Firing, Some(_)) => None,
                (Status::Resolved, Some(a)) if a.resolved_at.is_none() => {
                    let mut a = a.clone();
                    a.resolved_at = Some(t.bucket_end);
                    Some(a)
                }
                (Status::Resolved, Some(_)) => None,
                // Fired before the register knew it (an older version, a
                // lost line): its span from the resolution.
                (Status::Resolved, None) => Some(KnownAlert {
                    alert_id: t.alert_id.clone(),
                    kpi: t.kpi.clone(),
                    labels: t.labels.clone(),
                    direction: t.direction,
                    started_at: t.started_at,
                    fired_at: t.started_at + (t.bucket_end - t.bucket_start).max(1),
                    resolved_at: Some(t.bucket_end),
                }),
            };
            if let Some(a) = updated {
                if super::is_alert_id(&a.alert_id) {
                    self.remember(a.clone());
                    changed.push(a);
                }
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if self.lines + changed.len() > 2 * self.alerts.len() + 1000 {
            return self.rewrite(&path);
        }
        let mut body = Vec::new();
        for a in &changed {
            serde_json::to_writer(&mut body, a).map_err(std::io::Error::other)?;
            body.push(b'\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        file.write_all(&body)?;
        file.sync_data()?;
        self.lines += changed.len();
        Ok(())
    }

    /// Writes the file anew with one line per alert kept.
    fn rewrite(&mut self, path: &Path) -> std::io::Result<()> {
        let mut body = Vec::new();
        for id in &self.order {
            if let Some(a) = self.alerts.get(id) {
                serde_json::to_writer(&mut body, a).map_err(std::io::Error::other)?;
                body.push(b'\n');
            }
        }
        crate::durable::write_atomic(path, &body)?;
        self.lines = self.order.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::testing::transition;

    #[test]
    fn firing_then_resolved_is_one_alert_with_its_span_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, skipped) = AlertRegister::load(dir.path()).unwrap();
        assert_eq!((r.len(), skipped), (0, 0));
        let id = "00000000000000aa";
        let fire = transition(Status::Firing, id, "checkouts", &[("country", "FI")]);
        r.record(std::slice::from_ref(&fire)).unwrap();
        r.record(std::slice::from_ref(&fire)).unwrap();
        let mut resolve = transition(Status::Resolved, id, "checkouts", &[("country", "FI")]);
        resolve.bucket_end += 3600;
        r.record(&[resolve]).unwrap();
        let (again, skipped) = AlertRegister::load(dir.path()).unwrap();
        assert_eq!(skipped, 0);
        let a = again.get(id).unwrap();
        assert_eq!(a.fired_at, fire.bucket_end);
        assert_eq!(a.resolved_at, Some(fire.bucket_end + 3600));
        let lines = std::fs::read_to_string(dir.path().join("feedback/alerts.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 2, "a replayed firing adds no line");
    }

    #[test]
    fn an_escalation_adds_no_alert_and_leaves_its_span_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, _) = AlertRegister::load(dir.path()).unwrap();
        let id = "00000000000000ac";
        let fire = transition(Status::Firing, id, "checkouts", &[("country", "FI")]);
        r.record(std::slice::from_ref(&fire)).unwrap();
        let mut worse = fire.clone();
        worse.severity = crate::alert::Severity::Critical;
        worse.escalated_from = Some(crate::alert::Severity::Warning);
        worse.bucket_start += 3600;
        worse.bucket_end += 3600;
        r.record(&[worse]).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r.get(id).unwrap().fired_at, fire.bucket_end);
        let lines = std::fs::read_to_string(dir.path().join("feedback/alerts.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 1, "an escalation adds no line");
    }

    #[test]
    fn a_torn_line_is_skipped_and_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, _) = AlertRegister::load(dir.path()).unwrap();
        r.record(&[transition(Status::Firing, "00000000000000ab", "k", &[])])
            .unwrap();
        let path = dir.path().join("feedback/alerts.jsonl");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"alert_id\": \"00000");
        std::fs::write(&path, text).unwrap();
        let (r, skipped) = AlertRegister::load(dir.path()).unwrap();
        assert_eq!((r.len(), skipped), (1, 1));
    }

    #[test]
    fn ids_that_are_not_alert_ids_are_not_kept() {
        let mut r = AlertRegister::in_memory();
        r.record(&[transition(Status::Firing, "../etc/passwd", "k", &[])])
            .unwrap();
        assert!(r.is_empty());
    }
}
