//! Every judged bucket of a backtest, per series, for the HTML report's
//! charts: [`Points`] collects the replay's [`JudgedPoint`]s into one
//! [`SeriesPoints`] per series, a dense array from its first judged
//! bucket, with NaN where a bucket was not judged (an empty average).
//!
//! f32 throughout: a chart's precision, and 16 bytes a bucket, so a
//! thousand series over four weeks of 5-minute buckets hold ~130 MB.

use std::collections::HashMap;

use crate::pipeline::engine::JudgedPoint;
use crate::pipeline::window::SeriesKey;

/// One judged bucket: value, expected, lower and upper band edge.
pub type Point = [f32; 4];

/// A bucket that was not judged.
pub const GAP: Point = [f32::NAN; 4];

/// One series' judged buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints {
    /// Index of its KPI in the config.
    pub kpi: usize,
    /// The series key (label values joined by the window's separator).
    pub key: SeriesKey,
    /// Start of its first judged bucket, epoch seconds.
    pub first: i64,
    /// Its KPI's bucket width, seconds.
    pub step: i64,
    /// Bucket `i` starts at `first + i * step`.
    pub values: Vec<Point>,
}

/// The judged buckets of every series, in order of first appearance.
#[derive(Debug, Default)]
pub struct Points {
    /// The series.
    pub series: Vec<SeriesPoints>,
    /// Bucket width per KPI (indexed like `Config::kpis`).
    steps: Vec<i64>,
    /// (KPI, key) → index into `series`. foldhash, as in the pipeline's
    /// maps: keys come from producers, `max_series` bounds them.
    index: HashMap<(usize, SeriesKey), usize, foldhash::fast::RandomState>,
}

impl Points {
    /// Empty, for KPIs of these bucket widths (in config order).
    pub fn new(steps: Vec<i64>) -> Self {
        Self {
            steps,
            ..Self::default()
        }
    }

    /// Adds one judged bucket. A bucket before its series' first one, or
    /// of a KPI it does not know, is ignored: the pipeline judges each
    /// series in time order, so neither happens.
    pub fn add(&mut self, p: JudgedPoint) {
        let Some(&step) = self.steps.get(p.kpi) else {
            return;
        };
        let step = step.max(1);
        let i = match self.index.get(&(p.kpi, p.key.clone())) {
            Some(&i) => i,
            None => {
                self.index.insert((p.kpi, p.key.clone()), self.series.len());
                self.series.push(SeriesPoints {
                    kpi: p.kpi,
                    key: p.key,
                    first: p.start,
                    step,
                    values: Vec::new(),
                });
                self.series.len() - 1
            }
        };
        let s = &mut self.series[i];
        if p.start < s.first {
            return;
        }
        let Ok(at) = usize::try_from((p.start - s.first) / step) else {
            return;
        };
        if at >= s.values.len() {
            s.values.resize(at + 1, GAP);
        }
        s.values[at] = [p.value as f32, p.expected, p.lower, p.upper];
    }

    /// The index of a series in [`Points::series`].
    pub fn find(&self, kpi: usize, key: &str) -> Option<usize> {
        self.index.get(&(kpi, SeriesKey::from(key))).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(kpi: usize, key: &str, start: i64, value: f64) -> JudgedPoint {
        JudgedPoint {
            kpi,
            key: SeriesKey::from(key),
            start,
            value,
            expected: 10.0,
            lower: 5.0,
            upper: 15.0,
        }
    }

    #[test]
    fn buckets_land_at_their_offset_with_gaps_where_none_was_judged() {
        let mut p = Points::new(vec![300, 60]);
        p.add(point(0, "FI", 600, 1.0));
        p.add(point(0, "FI", 1500, 4.0));
        p.add(point(1, "FI", 60, 2.0));
        assert_eq!(p.series.len(), 2);
        let fi = &p.series[p.find(0, "FI").expect("series")];
        assert_eq!((fi.first, fi.step, fi.values.len()), (600, 300, 4));
        assert_eq!(fi.values[0], [1.0, 10.0, 5.0, 15.0]);
        assert!(fi.values[1][0].is_nan() && fi.values[2][0].is_nan());
        assert_eq!(fi.values[3][0], 4.0);
        assert_eq!(p.find(1, "FI"), Some(1));
    }

    #[test]
    fn a_bucket_before_the_first_or_of_an_unknown_kpi_is_ignored() {
        let mut p = Points::new(vec![300]);
        p.add(point(0, "", 600, 1.0));
        p.add(point(0, "", 300, 9.0));
        p.add(point(3, "", 600, 9.0));
        assert_eq!(p.series.len(), 1);
        assert_eq!(p.series[0].values.len(), 1);
    }
}
