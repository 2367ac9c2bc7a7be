//! Percentage change against the same slot last week.
//!
//! "Checkouts are 30 % below last Tuesday at this hour" is how many teams
//! phrase an alert. Storing last week's every bucket would cost 2016 values
//! per series at 5-minute buckets, so the rule compares with last week's
//! *slot mean* (one-hour slots): 168 slots of (last mean, running sum,
//! running count). The score is binary, like a static threshold: 1 when the
//! change exceeds the configured fraction, 0 otherwise.

use serde::{Deserialize, Serialize};

use crate::{Detector, Direction, Observation, Verdict};

const WEEK: i64 = 7 * 86_400;
const MONDAY_SHIFT: i64 = 4 * 86_400;
/// Largest magnitude a value is remembered with: far beyond any KPI, and
/// `u16::MAX` times it is still within `f32`.
const MAX_VALUE: f64 = 1e30;

/// Week-over-week change rule; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekOverWeek {
    /// Largest tolerated change as a fraction (0.3 = 30 %).
    max_change: f64,
    slot_width: i64,
    /// Index of the week being accumulated.
    week: i64,
    /// Per slot: mean of the previous week's values (meaningful only where
    /// `has_last`; a separate flag rather than a NaN sentinel, because a
    /// snapshot must survive JSON, which has no NaN).
    last: Vec<f32>,
    /// Per slot: whether last week had values in it.
    has_last: Vec<bool>,
    /// Per slot: sum and count of this week's values.
    sum: Vec<f32>,
    count: Vec<u16>,
}

impl WeekOverWeek {
    /// A rule tolerating changes up to `max_change` (fraction), with slots
    /// of `max(bucket_width, 1 h)`.
    pub fn new(max_change: f64, bucket_width: i64) -> Self {
        let mut slot_width = bucket_width.clamp(3600, WEEK);
        while WEEK % slot_width != 0 {
            slot_width += 1;
        }
        let slots = (WEEK / slot_width) as usize;
        Self {
            max_change,
            slot_width,
            week: i64::MIN,
            last: vec![0.0; slots],
            has_last: vec![false; slots],
            sum: vec![0.0; slots],
            count: vec![0; slots],
        }
    }

    fn locate(&self, local_time: i64) -> (i64, usize) {
        let t = local_time - MONDAY_SHIFT;
        let week = t.div_euclid(WEEK);
        let slot = (t.rem_euclid(WEEK) / self.slot_width) as usize;
        (week, slot)
    }

    /// Heap bytes held by the per-slot arrays.
    pub fn heap_bytes(&self) -> usize {
        self.last.capacity() * 4
            + self.has_last.capacity()
            + self.sum.capacity() * 4
            + self.count.capacity() * 2
    }

    /// Last week's mean for the slot of `local_time`, if there is one.
    pub fn reference(&self, local_time: i64) -> Option<f64> {
        let (week, slot) = self.locate(local_time);
        let last = if week == self.week {
            self.has_last[slot].then_some(self.last[slot])
        } else if week == self.week.saturating_add(1) && self.count[slot] > 0 {
            // The week rolls on the next learn; this week is "last week" then.
            Some(self.sum[slot] / f32::from(self.count[slot]))
        } else {
            None
        };
        last.map(f64::from)
    }
}

impl Detector for WeekOverWeek {
    fn score(&self, obs: &Observation) -> Verdict {
        let Some(reference) = self.reference(obs.local_time()) else {
            return Verdict::warming_up(obs.value);
        };
        let width = self.max_change * reference.abs();
        let change = if reference == 0.0 {
            if obs.value == 0.0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (obs.value - reference) / reference.abs()
        };
        Verdict {
            expected: reference,
            lower: reference - width,
            upper: reference + width,
            score: if change.abs() > self.max_change {
                1.0
            } else {
                0.0
            },
            direction: Direction::of(obs.value, reference),
            warming_up: false,
        }
    }

    fn learn(&mut self, obs: &Observation) {
        let (week, slot) = self.locate(obs.local_time());
        if week != self.week {
            let consecutive = week == self.week.saturating_add(1);
            for i in 0..self.last.len() {
                self.has_last[i] = consecutive && self.count[i] > 0;
                self.last[i] = if self.has_last[i] {
                    self.sum[i] / f32::from(self.count[i])
                } else {
                    0.0
                };
            }
            self.sum.fill(0.0);
            self.count.fill(0);
            self.week = week;
        }
        // Sums are f32 to keep a week of slots small; clamping each value
        // to ±MAX_VALUE keeps even 65 535 of them finite (a value beyond
        // f32's range would otherwise make an infinite reference).
        self.sum[slot] += obs.value.clamp(-MAX_VALUE, MAX_VALUE) as f32;
        self.count[slot] = self.count[slot].saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONDAY: i64 = 1_704_067_200; // 2024-01-01 00:00 UTC

    #[test]
    fn forty_percent_below_last_week_breaks_a_thirty_percent_rule() {
        let mut w = WeekOverWeek::new(0.3, 300);
        for i in 0..(7 * 288) {
            w.observe(&Observation::utc(MONDAY + i * 300, 100.0));
        }
        let v = w.score(&Observation::utc(MONDAY + WEEK + 3600, 60.0));
        assert_eq!((v.score, v.direction), (1.0, Direction::Drop));
        assert_eq!(v.expected, 100.0);
        let ok = w.score(&Observation::utc(MONDAY + WEEK + 3600, 80.0));
        assert_eq!(ok.score, 0.0);
    }

    #[test]
    fn the_first_week_is_warming_up() {
        let mut w = WeekOverWeek::new(0.3, 300);
        let v = w.observe(&Observation::utc(MONDAY, 1.0));
        assert!(v.warming_up);
    }

    #[test]
    fn a_skipped_week_is_not_compared_with_stale_data() {
        let mut w = WeekOverWeek::new(0.3, 3600);
        w.observe(&Observation::utc(MONDAY, 100.0));
        w.observe(&Observation::utc(MONDAY + 2 * WEEK, 10.0));
        assert!(
            w.score(&Observation::utc(MONDAY + 2 * WEEK, 10.0))
                .warming_up
        );
    }
}
