//! `kpiwatch feedback export`: the verdicts of a state directory as a
//! labels file (`kpiwatch backtest --incidents`, `kpiwatch tune
//! --labels`).
//!
//! Each alert counts by its latest verdict:
//!
//! - `true` → an incident spanning the alert (`kind` "feedback"), on its
//!   KPI and series, in its direction: the alert, or whatever a new
//!   setting fires in its place, should fire again.
//! - `false` → a known false alert (`false_alerts`): its KPI, series and
//!   span. The backtest counts an alert matching it as false (it is
//!   anyway, matching no incident) and shows it was confirmed so.
//! - `expected` → an expected event (`expected`): an alert matching it is
//!   neither a false alert nor a detection, and the event is never a miss.
//!
//! Ids are `feedback-<alert_id>`; the note says who said so and why.

use serde_json::{json, Value};

use super::store::FeedbackStore;
use super::{KnownAlert, Verdict};
use crate::timefmt::rfc3339;

fn direction(a: &KnownAlert) -> &'static str {
    match a.direction {
        detectors::Direction::Drop => "drop",
        detectors::Direction::Spike => "spike",
        detectors::Direction::None => "both",
    }
}

/// The labels file of `store`'s verdicts (see the module docs), in alert
/// id order.
pub fn labels(store: &FeedbackStore) -> Value {
    let mut incidents = Vec::new();
    let mut false_alerts = Vec::new();
    let mut expected = Vec::new();
    for f in store.all() {
        let Some(latest) = f.latest() else { continue };
        let a = &f.alert;
        let note = if latest.comment.is_empty() {
            format!("feedback by {}", latest.by)
        } else {
            format!("feedback by {}: {}", latest.by, latest.comment)
        };
        let id = format!("feedback-{}", a.alert_id);
        // The span the alert covered: from its first anomalous bucket to
        // its resolution (or its firing, if it never resolved).
        let (start, end) = (rfc3339(a.started_at), rfc3339(a.end()));
        match latest.verdict {
            Verdict::True => incidents.push(json!({
                "id": id, "kind": "feedback", "start": start, "end": end,
                "kpis": [a.kpi], "labels": a.labels, "direction": direction(a), "note": note,
            })),
            Verdict::False => false_alerts.push(json!({
                "id": id, "alert_id": a.alert_id, "start": start, "end": end,
                "kpis": [a.kpi], "labels": a.labels, "direction": direction(a), "note": note,
            })),
            Verdict::Expected => expected.push(json!({
                "id": id, "start": start, "end": end,
                "kpis": [a.kpi], "labels": a.labels, "direction": direction(a), "note": note,
            })),
        }
    }
    json!({ "incidents": incidents, "false_alerts": false_alerts, "expected": expected })
}

/// What an export wrote and left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// The labels file.
    pub labels: Value,
    /// Alerts with feedback left out, and why (another topic's KPI, a KPI
    /// the config no longer has).
    pub left_out: Vec<String>,
}

/// The labels file of the feedback in `state_dir`, for the KPIs of
/// `topic`: a labels file is for one topic, as the backtest replays one.
/// `topic_of` gives the topic of a KPI of the config by name (`None` for a
/// KPI it no longer has).
pub fn export<'c>(
    state_dir: &std::path::Path,
    topic: &str,
    topic_of: impl Fn(&str) -> Option<&'c str>,
) -> Result<Exported, super::store::FeedbackError> {
    let store = FeedbackStore::load(state_dir)?;
    let mut kept = FeedbackStore::in_memory();
    let mut left_out = Vec::new();
    for f in store.all() {
        let kpi = &f.alert.kpi;
        match topic_of(kpi) {
            Some(t) if t == topic => kept.insert(f.clone()),
            Some(t) => left_out.push(format!(
                "alert {} of KPI {kpi:?}: topic {t:?}, not {topic:?} (export it with --topic {t})",
                f.alert.alert_id,
            )),
            None => left_out.push(format!(
                "alert {} of KPI {kpi:?}: the config has no such KPI any more",
                f.alert.alert_id
            )),
        }
    }
    Ok(Exported {
        labels: labels(&kept),
        left_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::store::NewVerdict;

    #[test]
    fn each_verdict_becomes_its_own_kind_of_label_and_reads_back_as_labels() {
        let mut store = FeedbackStore::in_memory();
        for (i, v) in Verdict::ALL.into_iter().enumerate() {
            let mut a = crate::feedback::store::tests::alert(&format!("00000000000000a{i}"));
            a.resolved_at = Some(a.fired_at + 3600);
            let new = NewVerdict {
                verdict: v,
                comment: "why".into(),
                by: "ann".into(),
                via: "ops".into(),
            };
            let e = store.prepare(&a, new, 1).unwrap();
            store.insert(e);
        }
        let v = labels(&store);
        let text = serde_json::to_string(&v).unwrap();
        let parsed =
            crate::backtest::Labels::parse(std::path::Path::new("labels.json"), &text).unwrap();
        assert_eq!(parsed.incidents.len(), 1);
        assert_eq!(parsed.false_alerts.len(), 1);
        assert_eq!(parsed.expected.len(), 1);
        assert_eq!(parsed.incidents[0].id, "feedback-00000000000000a0");
        assert_eq!(
            parsed.false_alerts[0].alert_id.as_deref(),
            Some("00000000000000a1")
        );
        assert_eq!(
            parsed.incidents[0].end - parsed.incidents[0].start,
            300 + 3600
        );
    }
}
