//! Alerts as the backtest counts them, and which incident each one
//! detected.
//!
//! [`alerts`] folds the transitions into one [`Alert`] per alert id (fired
//! at its first firing transition's bucket end, resolved at its resolved
//! one's, at the worst severity any of them had: escalations only raise
//! it). [`matches`] is the matching rule of the README's "Backtest"
//! section: KPI glob, labels that do not contradict, direction, and a
//! firing time from the incident's start to its end plus a grace of
//! `resolve_after + 1` buckets. [`Delay`] and [`fires_after_end`] are the
//! figures measured on a match.

use std::collections::BTreeMap;

use detectors::Direction;

use crate::alert::{Severity, Status, Transition};
use crate::config::model::{Interest, Kpi};

use super::labels::Incident;

/// One alert: its first firing transition and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert<'t> {
    /// The first firing transition: id, KPI, labels, direction, and the
    /// evidence and figures the first message showed.
    pub first: &'t Transition,
    /// Index of its KPI in the config.
    pub kpi: usize,
    /// The worst severity any of its transitions had.
    pub severity: Severity,
    /// When it fired: the end of the bucket whose close fired it.
    pub fired_at: i64,
    /// When it resolved (the resolving bucket's end); `None` if it was
    /// still firing when the data ended.
    pub resolved_at: Option<i64>,
    /// Its KPI's bucket width in seconds.
    pub bucket: i64,
    /// How long after an incident's end it may still fire and match, and
    /// still be firing without counting as "firing after end": its KPI's
    /// `resolve_after + 1` buckets, the time the lifecycle needs to notice
    /// the end.
    pub grace: i64,
}

/// The grace of an alert of `kpi` (see [`Alert::grace`]).
pub fn grace(kpi: &Kpi) -> i64 {
    (i64::from(kpi.alerting.resolve_after) + 1) * kpi.bucket
}

/// One [`Alert`] per alert id in `transitions` (in the order they
/// fired). `kpi` finds a KPI's index in `kpis`; transitions of a KPI it
/// does not know, and resolutions of alerts that never fired, are left
/// out.
pub fn alerts<'t>(
    transitions: &'t [Transition],
    kpis: &[Kpi],
    kpi: impl Fn(&str) -> Option<usize>,
) -> Vec<Alert<'t>> {
    let mut out: Vec<Alert<'t>> = Vec::new();
    let mut by_id: BTreeMap<&str, usize> = BTreeMap::new();
    for t in transitions {
        match by_id.get(t.alert_id.as_str()) {
            Some(&i) => {
                let a = &mut out[i];
                a.severity = a.severity.max(t.severity);
                if t.status == Status::Resolved {
                    a.resolved_at.get_or_insert(t.bucket_end);
                }
            }
            // An escalation raises the severity above; it is neither a
            // second alert nor a firing time.
            None if t.starts_alert() => {
                let Some(k) = kpi(&t.kpi) else { continue };
                by_id.insert(&t.alert_id, out.len());
                out.push(Alert {
                    first: t,
                    kpi: k,
                    severity: t.severity,
                    fired_at: t.bucket_end,
                    resolved_at: None,
                    bucket: kpis[k].bucket,
                    grace: grace(&kpis[k]),
                });
            }
            None => {}
        }
    }
    out
}

/// Whether `alert` detected `incident`: its KPI is one the incident names,
/// its labels do not contradict the incident's, its direction agrees, and
/// it fired at or after the incident's start and no later than its end
/// plus the alert's grace.
pub fn matches(incident: &Incident, alert: &Alert<'_>) -> bool {
    incident.kpis.matches(&alert.first.kpi)
        && !contradicts(&incident.labels, &alert.first.labels)
        && agrees(incident.direction, alert.first.direction)
        && alert.fired_at >= incident.start
        && alert.fired_at <= incident.end + alert.grace
}

/// Whether an alert's labels contradict an incident's: some label both
/// have, with different values. A label the alert lacks (the ungrouped
/// total has none) contradicts nothing: the total moved too.
pub fn contradicts(incident: &BTreeMap<String, String>, alert: &BTreeMap<String, String>) -> bool {
    incident
        .iter()
        .any(|(k, v)| alert.get(k).is_some_and(|a| a != v))
}

/// Whether an alert's direction agrees with the incident's.
fn agrees(incident: Interest, alert: Direction) -> bool {
    match incident {
        Interest::Both => true,
        Interest::Drop => alert == Direction::Drop,
        Interest::Spike => alert == Direction::Spike,
    }
}

/// How long after an incident's start an alert fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// Seconds from the incident's start to the firing bucket's end.
    pub seconds: i64,
    /// The same in buckets of the alert's KPI, rounded up: the number of
    /// bucket closes a person waited.
    pub buckets: u64,
}

impl Delay {
    /// The delay of `alert` on `incident` (which it matches, so it fired
    /// at or after the start).
    pub fn of(incident: &Incident, alert: &Alert<'_>) -> Self {
        let seconds = (alert.fired_at - incident.start).max(0);
        let buckets = (seconds + alert.bucket - 1).div_euclid(alert.bucket.max(1));
        Self {
            seconds,
            buckets: u64::try_from(buckets).unwrap_or(0),
        }
    }

    /// Minutes, as the report prints them.
    pub fn minutes(self) -> f64 {
        self.seconds as f64 / 60.0
    }
}

/// Whether `alert`, matched to `incident`, went on firing after the
/// incident ended: it resolved later than the end plus its grace, or it
/// never resolved although the data (which ended at `data_end`) goes on
/// past that.
pub fn fires_after_end(incident: &Incident, alert: &Alert<'_>, data_end: Option<i64>) -> bool {
    let limit = incident.end + alert.grace;
    match alert.resolved_at {
        Some(resolved) => resolved > limit,
        None => data_end.is_some_and(|end| end > limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::testing::{escalated, firing, incident, resolved, shop, HOUR, T0};

    /// `t` as an alert of an hourly KPI with `resolve_after` 3 (grace 4h).
    pub fn alert(t: &Transition) -> Alert<'_> {
        Alert {
            first: t,
            kpi: 0,
            severity: t.severity,
            fired_at: t.bucket_end,
            resolved_at: None,
            bucket: HOUR,
            grace: 4 * HOUR,
        }
    }

    #[test]
    fn an_alert_matches_an_incident_on_its_kpi_in_its_direction_after_its_start() {
        let i = incident(&["checkouts"], &[], T0, 4);
        let t = firing("checkouts", &[], T0 + 2 * HOUR);
        assert!(matches(&i, &alert(&t)));
        let other = firing("carts", &[], T0 + 2 * HOUR);
        assert!(!matches(&i, &alert(&other)), "another KPI");
    }

    #[test]
    fn kpi_globs_select_the_kpis_an_incident_names() {
        let i = incident(&["checkouts_by_*"], &[], T0, 4);
        let by_country = firing("checkouts_by_country", &[("country", "FI")], T0 + HOUR);
        let total = firing("checkouts", &[], T0 + HOUR);
        assert!(matches(&i, &alert(&by_country)));
        assert!(!matches(&i, &alert(&total)), "the glob needs the `_by_`");
    }

    #[test]
    fn an_alert_whose_label_differs_from_the_incidents_contradicts_it() {
        let i = incident(&["checkouts*"], &[("country", "FI")], T0, 4);
        let se = firing("checkouts_by_country", &[("country", "SE")], T0 + HOUR);
        let fi = firing("checkouts_by_country", &[("country", "FI")], T0 + HOUR);
        assert!(!matches(&i, &alert(&se)));
        assert!(matches(&i, &alert(&fi)));
    }

    #[test]
    fn an_alert_without_the_incidents_label_does_not_contradict_it() {
        let i = incident(&["checkouts*"], &[("country", "FI")], T0, 4);
        let total = firing("checkouts", &[], T0 + HOUR);
        let by_platform = firing("checkouts_by_platform", &[("platform", "ios")], T0 + HOUR);
        assert!(matches(&i, &alert(&total)), "the ungrouped total");
        assert!(matches(&i, &alert(&by_platform)), "another dimension");
    }

    #[test]
    fn a_spike_does_not_match_a_drop_incident_but_both_matches_either() {
        let mut i = incident(&["checkouts"], &[], T0, 4);
        let mut spike = firing("checkouts", &[], T0 + HOUR);
        spike.direction = Direction::Spike;
        assert!(!matches(&i, &alert(&spike)));
        i.direction = Interest::Both;
        assert!(matches(&i, &alert(&spike)));
        i.direction = Interest::Spike;
        assert!(matches(&i, &alert(&spike)));
        assert!(!matches(&i, &alert(&firing("checkouts", &[], T0 + HOUR))));
    }

    #[test]
    fn an_alert_fired_before_the_incident_start_does_not_match() {
        let i = incident(&["checkouts"], &[], T0, 4);
        let early = firing("checkouts", &[], T0 - 1);
        let at_start = firing("checkouts", &[], T0);
        assert!(!matches(&i, &alert(&early)));
        assert!(matches(&i, &alert(&at_start)), "the start itself counts");
    }

    #[test]
    fn an_alert_may_fire_until_the_end_plus_resolve_after_plus_one_buckets() {
        let i = incident(&["checkouts"], &[], T0, 4);
        let end = T0 + 4 * HOUR;
        let last = firing("checkouts", &[], end + 4 * HOUR);
        let too_late = firing("checkouts", &[], end + 4 * HOUR + 1);
        assert!(matches(&i, &alert(&last)));
        assert!(!matches(&i, &alert(&too_late)));
    }

    #[test]
    fn the_grace_is_resolve_after_plus_one_buckets_of_the_kpi() {
        let config = shop();
        assert_eq!(grace(&config.kpis[0]), 4 * HOUR, "resolve_after 3");
        assert_eq!(grace(&config.kpis[2]), 3 * HOUR, "resolve_after 2");
    }

    #[test]
    fn the_delay_is_from_the_start_to_the_firing_buckets_end_in_minutes_and_buckets() {
        let i = incident(&["checkouts"], &[], T0, 4);
        let t = firing("checkouts", &[], T0 + 2 * HOUR);
        let d = Delay::of(&i, &alert(&t));
        assert_eq!(d.seconds, 7200);
        assert_eq!(d.minutes(), 120.0);
        assert_eq!(d.buckets, 2);
    }

    #[test]
    fn a_delay_of_part_of_a_bucket_rounds_up_to_a_whole_bucket() {
        let i = incident(&["checkouts"], &[], T0 + 10 * 60, 4);
        let t = firing("checkouts", &[], T0 + HOUR);
        let d = Delay::of(&i, &alert(&t));
        assert_eq!((d.minutes(), d.buckets), (50.0, 1));
        let at_start = Delay::of(&incident(&["checkouts"], &[], T0 + HOUR, 4), &alert(&t));
        assert_eq!((at_start.seconds, at_start.buckets), (0, 0));
    }

    #[test]
    fn transitions_fold_into_one_alert_per_id_with_its_worst_severity_and_resolution() {
        let fired = firing("checkouts", &[], T0 + HOUR);
        let mut back = resolved(&fired, T0 + 5 * HOUR);
        back.severity = Severity::Critical;
        let other = firing("checkouts", &[("country", "FI")], T0 + 2 * HOUR);
        let transitions = vec![fired.clone(), other.clone(), back];
        let kpis = shop().kpis;
        let got = alerts(&transitions, &kpis, |k| (k == "checkouts").then_some(0));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].first, &fired);
        assert_eq!(got[0].severity, Severity::Critical);
        assert_eq!(got[0].resolved_at, Some(T0 + 5 * HOUR));
        assert_eq!((got[0].bucket, got[0].grace), (HOUR, 4 * HOUR));
        assert_eq!(got[1].first, &other);
        assert_eq!(got[1].resolved_at, None);
    }

    #[test]
    fn an_escalation_raises_its_alerts_severity_and_is_neither_a_second_alert_nor_a_firing_time() {
        let fired = firing("checkouts", &[], T0 + HOUR);
        let worse = escalated(&fired, T0 + 2 * HOUR);
        let back = resolved(&fired, T0 + 5 * HOUR);
        let transitions = vec![fired.clone(), worse, back];
        let kpis = shop().kpis;
        let got = alerts(&transitions, &kpis, |k| (k == "checkouts").then_some(0));
        assert_eq!(got.len(), 1, "one alert: {got:?}");
        assert_eq!(got[0].first, &fired);
        assert_eq!(
            got[0].fired_at,
            T0 + HOUR,
            "fired when it fired, not when it escalated"
        );
        assert_eq!(got[0].severity, Severity::Critical);
        assert_eq!(got[0].resolved_at, Some(T0 + 5 * HOUR));
    }

    #[test]
    fn an_escalation_whose_firing_was_not_seen_is_not_an_alert() {
        let fired = firing("checkouts", &[], T0 + HOUR);
        let transitions = vec![escalated(&fired, T0 + 2 * HOUR)];
        let kpis = shop().kpis;
        assert!(alerts(&transitions, &kpis, |k| (k == "checkouts").then_some(0)).is_empty());
    }

    #[test]
    fn an_alert_resolved_after_the_end_plus_grace_fires_after_the_incident_end() {
        let i = incident(&["checkouts"], &[], T0, 4);
        let t = firing("checkouts", &[], T0 + HOUR);
        let limit = i.end + 4 * HOUR;
        let mut a = alert(&t);
        a.resolved_at = Some(limit);
        assert!(!fires_after_end(&i, &a, Some(limit + 10 * HOUR)));
        a.resolved_at = Some(limit + HOUR);
        assert!(fires_after_end(&i, &a, Some(limit + 10 * HOUR)));
    }

    #[test]
    fn an_unresolved_alert_fires_after_the_end_only_if_the_data_goes_on_past_the_grace() {
        let i = incident(&["checkouts"], &[], T0, 4);
        let t = firing("checkouts", &[], T0 + HOUR);
        let a = alert(&t);
        let limit = i.end + 4 * HOUR;
        assert!(
            !fires_after_end(&i, &a, Some(limit)),
            "data ends in the grace"
        );
        assert!(fires_after_end(&i, &a, Some(limit + 1)));
        assert!(!fires_after_end(&i, &a, None), "no data at all");
    }
}
