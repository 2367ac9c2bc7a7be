//! Message consistency: does what an alert says add up? A person reads
//! "checkouts dropped 63%, expected 249-366, about a 1-in-a-million
//! bucket" and acts on it; each [`ViolationKind`] is one way those figures
//! can contradict each other or the KPI.
//!
//! [`check`] looks at one transition. A firing transition claims an
//! anomaly in a direction, so it is held to the claims (outside the band,
//! on the side it names, past the rule's limit); every transition, firing
//! or resolved, is held to the figures (a band that a KPI that cannot be
//! negative cannot fall below zero, a score that is its evidence's tail
//! probability, a deviation that is observed against expected). A
//! resolution's figures are those of the bucket that recovered, so it
//! claims no direction: a drop that recovers to a little above normal is
//! not a contradiction.

use detectors::Direction;
use serde::Serialize;

use crate::alert::{EvidenceKind, RuleKind, Status, Transition};
use crate::notify::phrase::{percent_signed, value};
use crate::timefmt::{rfc3339, rfc3339_secs};

/// Tolerance of the score and deviation checks: both are recomputed from
/// the same inputs, so only rounding may differ.
const TOLERANCE: f64 = 1e-6;

/// One way an alert's figures can contradict each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// A firing alert (not a rule's) whose observed value is inside its
    /// own normal band.
    ObservedInsideBand,
    /// A band edge below zero for a KPI that cannot be negative.
    BandBelowZero,
    /// A drop observed above expected, or a spike below.
    DirectionMismatch,
    /// Rule evidence whose value is not beyond the rule's limit.
    RuleNotBroken,
    /// A score that is not its evidence's tail probability on the score
    /// scale.
    ScoreMismatch,
    /// A deviation that is not (observed - expected) / |expected|.
    DeviationMismatch,
}

impl ViolationKind {
    /// The kind as JSON names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ObservedInsideBand => "observed_inside_band",
            Self::BandBelowZero => "band_below_zero",
            Self::DirectionMismatch => "direction_mismatch",
            Self::RuleNotBroken => "rule_not_broken",
            Self::ScoreMismatch => "score_mismatch",
            Self::DeviationMismatch => "deviation_mismatch",
        }
    }
}

/// A transition whose figures contradict each other.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// The alert.
    pub alert_id: String,
    /// Its KPI.
    pub kpi: String,
    /// What is contradictory.
    pub kind: ViolationKind,
    /// The figures, for a person: `observed 326 inside 249 to 366`.
    pub detail: String,
    /// Which transition: firing or resolved.
    pub status: Status,
    /// The end of that transition's bucket.
    #[serde(with = "rfc3339_secs")]
    pub at: i64,
}

/// The violations of transition `t`, appended to `out`. `may_be_negative`
/// says whether its KPI can take values below zero (a sum of refunds can;
/// a count, a distinct count or a ratio cannot).
pub fn check(t: &Transition, may_be_negative: bool, out: &mut Vec<Violation>) {
    let mut flag = |kind: ViolationKind, detail: String| {
        out.push(Violation {
            alert_id: t.alert_id.clone(),
            kpi: t.kpi.clone(),
            kind,
            detail,
            status: t.status,
            at: t.bucket_end,
        })
    };
    let firing = t.status == Status::Firing;
    let rule = t.evidence.kind == EvidenceKind::Rule;
    if firing && !rule && t.lower <= t.observed && t.observed <= t.upper {
        flag(
            ViolationKind::ObservedInsideBand,
            format!(
                "observed {} inside {}",
                value(t.observed),
                band(t.lower, t.upper)
            ),
        );
    }
    if !may_be_negative {
        if let Some(detail) = band_below_zero(t) {
            flag(ViolationKind::BandBelowZero, detail);
        }
    }
    if firing {
        let (wrong, side) = match t.direction {
            Direction::Drop => (t.observed > t.expected, "above"),
            Direction::Spike => (t.observed < t.expected, "below"),
            Direction::None => (false, ""),
        };
        if wrong {
            flag(
                ViolationKind::DirectionMismatch,
                format!(
                    "{} with observed {} {side} expected {}",
                    t.direction.name(),
                    value(t.observed),
                    value(t.expected)
                ),
            );
        }
    }
    if firing && rule {
        if let Some(detail) = rule_not_broken(t) {
            flag(ViolationKind::RuleNotBroken, detail);
        }
    }
    if let Some(p) = t.evidence.p {
        let implied = detectors::combine::score_of_tail(p);
        // Written so that a NaN score disagrees.
        let agrees = (t.score - implied).abs() <= TOLERANCE;
        if !agrees {
            flag(
                ViolationKind::ScoreMismatch,
                format!(
                    "score {:.6} but the evidence's p = {p:.3e} gives {implied:.6}",
                    t.score
                ),
            );
        }
    }
    let implied = (t.expected != 0.0 && t.expected.is_finite() && t.observed.is_finite())
        .then(|| (t.observed - t.expected) / t.expected.abs() * 100.0);
    let agree = match (t.deviation_pct, implied) {
        (None, None) => true,
        (Some(d), Some(i)) => (d - i).abs() <= TOLERANCE * d.abs().max(i.abs()),
        _ => false,
    };
    if !agree {
        let shown = |d: Option<f64>| d.map_or_else(|| "none".to_string(), percent_signed);
        flag(
            ViolationKind::DeviationMismatch,
            format!(
                "deviation {} but observed {} against expected {} gives {}",
                shown(t.deviation_pct),
                value(t.observed),
                value(t.expected),
                shown(implied)
            ),
        );
    }
}

/// `4 to 16`, with open edges as `-∞` / `∞`.
pub fn band(lower: f64, upper: f64) -> String {
    format!("{} to {}", value(lower), value(upper))
}

/// The lowest band edge below zero, in the transition or its recent
/// buckets, described.
fn band_below_zero(t: &Transition) -> Option<String> {
    if t.lower < 0.0 {
        return Some(format!(
            "lower edge {} of the alert's band is below 0",
            value(t.lower)
        ));
    }
    let lowest = t
        .recent
        .iter()
        .filter(|r| r.lower < 0.0)
        .min_by(|a, b| a.lower.total_cmp(&b.lower))?;
    let below = t.recent.iter().filter(|r| r.lower < 0.0).count();
    Some(format!(
        "lower edge {} of the band of recent bucket {} is below 0 ({below} of {} recent buckets)",
        value(f64::from(lowest.lower)),
        rfc3339(lowest.t),
        t.recent.len()
    ))
}

fn rule_not_broken(t: &Transition) -> Option<String> {
    let Some(rule) = t.evidence.rule else {
        return Some("rule evidence that names no rule".to_string());
    };
    let below = match (t.direction, rule.kind) {
        (Direction::Drop, _) | (Direction::None, RuleKind::Min) => true,
        (Direction::Spike, _) | (Direction::None, RuleKind::Max) => false,
        // A week-over-week limit without a direction has no side to be
        // beyond.
        (Direction::None, RuleKind::WeekOverWeek) => return None,
    };
    let broken = if below {
        t.observed < rule.limit
    } else {
        t.observed > rule.limit
    };
    (!broken).then(|| {
        format!(
            "{} rule: observed {} is not {} the limit {}",
            rule.kind.name(),
            value(t.observed),
            if below { "below" } else { "above" },
            value(rule.limit)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Evidence, RecentBucket, Rule};
    use crate::backtest::testing::{firing, resolved, HOUR, T0};

    fn kinds(t: &Transition, may_be_negative: bool) -> Vec<ViolationKind> {
        let mut out = Vec::new();
        check(t, may_be_negative, &mut out);
        out.iter().map(|v| v.kind).collect()
    }

    fn consistent() -> Transition {
        firing("checkouts", &[], T0 + HOUR)
    }

    #[test]
    fn a_consistent_firing_and_resolution_have_no_violation() {
        let t = consistent();
        assert_eq!(kinds(&t, false), vec![]);
        assert_eq!(kinds(&resolved(&t, T0 + 4 * HOUR), false), vec![]);
    }

    #[test]
    fn a_firing_alert_observed_inside_its_band_is_a_violation() {
        let mut t = consistent();
        t.observed = 5.0;
        t.deviation_pct = Some(-50.0);
        let mut out = Vec::new();
        check(&t, false, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].kind, ViolationKind::ObservedInsideBand);
        assert_eq!(out[0].detail, "observed 5 inside 4 to 16");
        assert_eq!((out[0].status, out[0].at), (Status::Firing, T0 + HOUR));
    }

    #[test]
    fn a_resolution_inside_its_band_and_rule_evidence_inside_the_band_are_no_violation() {
        let t = consistent();
        assert_eq!(kinds(&resolved(&t, T0 + 4 * HOUR), false), vec![]);
        let mut rule = consistent();
        rule.observed = 5.0;
        rule.deviation_pct = Some(-50.0);
        rule.evidence = Evidence {
            kind: EvidenceKind::Rule,
            p: None,
            rule: Some(Rule {
                kind: RuleKind::Min,
                limit: 6.0,
            }),
            ..rule.evidence
        };
        assert_eq!(kinds(&rule, false), vec![]);
    }

    #[test]
    fn a_band_below_zero_is_a_violation_for_a_kpi_that_cannot_be_negative() {
        let mut t = resolved(&consistent(), T0 + 4 * HOUR);
        t.lower = -2.0;
        assert_eq!(kinds(&t, false), vec![ViolationKind::BandBelowZero]);
        assert_eq!(kinds(&t, true), vec![], "a sum that went below 0 may");
    }

    #[test]
    fn a_recent_bucket_with_a_band_below_zero_is_a_violation_too() {
        let mut t = resolved(&consistent(), T0 + 4 * HOUR);
        let bucket = |t: i64, lower: f32| RecentBucket {
            t,
            value: 3.0,
            expected: 3.0,
            lower,
            upper: 9.0,
            anomalous: false,
        };
        t.recent = vec![
            bucket(T0, 1.0),
            bucket(T0 + HOUR, -0.5),
            bucket(T0 + 2 * HOUR, -1.5),
        ];
        let mut out = Vec::new();
        check(&t, false, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].kind, ViolationKind::BandBelowZero);
        assert!(
            out[0].detail.contains("-1.5") && out[0].detail.contains("2024-01-20T12:00:00Z"),
            "names the lowest edge and its bucket: {}",
            out[0].detail
        );
    }

    #[test]
    fn a_drop_observed_above_expected_or_a_spike_below_is_a_violation() {
        let mut drop = consistent();
        drop.observed = 20.0;
        drop.deviation_pct = Some(100.0);
        assert_eq!(kinds(&drop, false), vec![ViolationKind::DirectionMismatch]);
        let mut spike = consistent();
        spike.direction = Direction::Spike;
        assert_eq!(kinds(&spike, false), vec![ViolationKind::DirectionMismatch]);
    }

    #[test]
    fn a_resolution_above_expected_of_a_drop_claims_no_direction() {
        let mut back = resolved(&consistent(), T0 + 4 * HOUR);
        back.observed = 12.0;
        back.deviation_pct = Some(20.0);
        assert_eq!(kinds(&back, false), vec![]);
    }

    #[test]
    fn rule_evidence_whose_value_is_not_beyond_the_limit_is_a_violation() {
        let mut t = consistent();
        t.observed = 8.0;
        t.deviation_pct = Some(-20.0);
        t.lower = 9.0;
        t.evidence = Evidence {
            kind: EvidenceKind::Rule,
            p: None,
            rule: Some(Rule {
                kind: RuleKind::Min,
                limit: 5.0,
            }),
            ..t.evidence
        };
        let mut out = Vec::new();
        check(&t, false, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].kind, ViolationKind::RuleNotBroken);
        assert_eq!(
            out[0].detail,
            "min rule: observed 8 is not below the limit 5"
        );
        t.evidence.rule = Some(Rule {
            kind: RuleKind::Min,
            limit: 9.0,
        });
        assert_eq!(kinds(&t, false), vec![], "8 is below 9");
        t.evidence.rule = None;
        assert_eq!(kinds(&t, false), vec![ViolationKind::RuleNotBroken]);
    }

    #[test]
    fn a_spike_rule_must_be_exceeded() {
        let mut t = consistent();
        t.direction = Direction::Spike;
        t.observed = 30.0;
        t.deviation_pct = Some(200.0);
        t.evidence = Evidence {
            kind: EvidenceKind::Rule,
            p: None,
            rule: Some(Rule {
                kind: RuleKind::Max,
                limit: 30.0,
            }),
            ..t.evidence
        };
        assert_eq!(
            kinds(&t, false),
            vec![ViolationKind::RuleNotBroken],
            "at the limit is not beyond it"
        );
    }

    #[test]
    fn a_score_that_is_not_the_evidences_tail_probability_is_a_violation() {
        let mut t = consistent();
        t.score += 0.01;
        assert_eq!(kinds(&t, false), vec![ViolationKind::ScoreMismatch]);
        t.evidence.p = None;
        assert_eq!(kinds(&t, false), vec![], "nothing to check without p");
    }

    #[test]
    fn a_deviation_that_is_not_observed_against_expected_is_a_violation() {
        let mut t = consistent();
        t.deviation_pct = Some(-90.0);
        assert_eq!(kinds(&t, false), vec![ViolationKind::DeviationMismatch]);
        t.deviation_pct = None;
        assert_eq!(
            kinds(&t, false),
            vec![ViolationKind::DeviationMismatch],
            "missing"
        );
        t.expected = 0.0;
        t.lower = 0.0;
        t.upper = 0.0;
        t.observed = -1.0;
        t.direction = Direction::Drop;
        assert_eq!(
            kinds(&t, true),
            vec![],
            "no deviation against an expectation of 0"
        );
        t.deviation_pct = Some(-100.0);
        assert_eq!(kinds(&t, true), vec![ViolationKind::DeviationMismatch]);
    }

    #[test]
    fn a_deviation_is_taken_against_the_magnitude_of_a_negative_expectation() {
        let mut t = consistent();
        t.expected = -10.0;
        t.lower = -16.0;
        t.upper = -4.0;
        t.observed = -20.0;
        t.deviation_pct = Some(-100.0);
        assert_eq!(kinds(&t, true), vec![]);
        t.deviation_pct = Some(100.0);
        assert_eq!(kinds(&t, true), vec![ViolationKind::DeviationMismatch]);
    }
}
