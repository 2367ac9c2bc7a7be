//! Static thresholds: the value must stay within `[min, max]`.
//!
//! The rule analysts ask for by name ("alert if revenue per minute is below
//! 100"). It needs no history, so it is never warming up, and its score is
//! binary: 1 when the rule is broken, 0 otherwise.

use serde::{Deserialize, Serialize};

use crate::{Detector, Direction, Observation, Verdict};

/// A fixed band; either side may be open.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StaticThreshold {
    /// Values below this break the rule.
    pub min: Option<f64>,
    /// Values above this break the rule.
    pub max: Option<f64>,
}

impl Detector for StaticThreshold {
    fn score(&self, obs: &Observation) -> Verdict {
        let lower = self.min.unwrap_or(f64::NEG_INFINITY);
        let upper = self.max.unwrap_or(f64::INFINITY);
        let expected = obs.value.clamp(lower, upper.max(lower));
        let broken = obs.value < lower || obs.value > upper;
        Verdict {
            expected,
            lower,
            upper,
            score: if broken { 1.0 } else { 0.0 },
            direction: Direction::of(obs.value, expected),
            warming_up: false,
        }
    }

    fn learn(&mut self, _obs: &Observation) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_min_is_a_drop_with_full_score() {
        let t = StaticThreshold {
            min: Some(100.0),
            max: None,
        };
        let v = t.score(&Observation::utc(0, 40.0));
        assert_eq!((v.score, v.direction), (1.0, Direction::Drop));
        assert_eq!(v.expected, 100.0);
    }

    #[test]
    fn inside_the_band_scores_zero() {
        let t = StaticThreshold {
            min: Some(0.0),
            max: Some(10.0),
        };
        let v = t.score(&Observation::utc(0, 10.0));
        assert_eq!((v.score, v.direction), (0.0, Direction::None));
    }
}
