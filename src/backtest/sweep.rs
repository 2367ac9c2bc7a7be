//! What-if: the same backtest at several alert levels. [`sweep`] replays
//! the events once per [`Budget`], with every KPI of the topic set to
//! that `false_alarms` budget, and returns each run's report and
//! transitions. Free of presentation: the HTML report's what-if selector
//! and `kpiwatch tune` both read its result.
//!
//! One replay per budget for all KPIs at once: a KPI's alerts depend only
//! on its own level (ratios read their parts' buckets, not their alerts),
//! so the KPIs of one run do not disturb each other.

use std::io::BufRead;

use crate::alert::Transition;
use crate::config::model::AlertLevel;
use crate::config::Config;

use super::{BacktestError, Labels, Report};

const DAY: f64 = 86_400.0;

/// One alert level to replay at: a `false_alarms` budget for every KPI.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// As a config would write it: `1/week`.
    pub text: String,
    /// False alerts per second, per KPI.
    pub per_second: f64,
}

impl Budget {
    /// `n` false alerts per `days` days (a month is 30 days and a quarter
    /// 91, as `false_alarms` reads them).
    pub fn per_days(text: &str, n: f64, days: f64) -> Self {
        Self {
            text: text.to_string(),
            per_second: n / (days * DAY),
        }
    }

    /// The what-if settings of the HTML report: one false alert a week,
    /// a month, a quarter.
    pub fn standard() -> Vec<Self> {
        vec![
            Self::per_days("1/week", 1.0, 7.0),
            Self::per_days("1/month", 1.0, 30.0),
            Self::per_days("1/quarter", 1.0, 91.0),
        ]
    }

    /// `config` with every KPI of topic number `topic` at this budget
    /// (a KPI with a fixed `threshold` too).
    pub fn apply(&self, config: &Config, topic: usize) -> Config {
        let mut config = config.clone();
        for k in config.kpis.iter_mut().filter(|k| k.topic == topic) {
            k.alerting.level = AlertLevel::Budget {
                per_second: self.per_second,
            };
        }
        config
    }
}

/// How a KPI's configured level reads: `1/month` (as false alerts per
/// 30 days, or per week or day when that is a whole number), or
/// `threshold 0.9`.
pub fn level_text(level: AlertLevel) -> String {
    match level {
        AlertLevel::Score(s) => format!("threshold {s}"),
        AlertLevel::Budget { per_second } => {
            let per = |days: f64| per_second * days * DAY;
            let whole = |x: f64| (x - x.round()).abs() < 1e-6 && x.round() >= 1.0;
            for (days, name) in [
                (1.0, "day"),
                (7.0, "week"),
                (30.0, "month"),
                (91.0, "quarter"),
            ] {
                if whole(per(days)) {
                    return format!("{}/{name}", per(days).round());
                }
            }
            let month = per(30.0);
            format!("{}/month", crate::notify::phrase::value(month))
        }
    }
}

/// One budget's backtest.
#[derive(Debug, Clone)]
pub struct Swept {
    /// The budget.
    pub budget: Budget,
    /// Its report.
    pub report: Report,
    /// Its transitions, in the order they happened.
    pub transitions: Vec<Transition>,
}

/// Replays the events `open` gives (once per budget; each call must
/// return them from the start) at each of `budgets`, scoring against
/// `labels`. The replays run on up to as many threads as the machine has
/// cores, so a sweep of three budgets on two cores takes about two
/// replays' time; results come back in the order of `budgets`.
pub fn sweep<R, F>(
    config: &Config,
    topic: Option<&str>,
    labels: Option<&Labels>,
    budgets: &[Budget],
    open: F,
) -> Result<Vec<Swept>, BacktestError>
where
    R: BufRead,
    F: Fn() -> std::io::Result<R> + Sync,
{
    let index = crate::replay::topic_index(config, topic)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, budgets.len().max(1));
    let one = |budget: &Budget| -> Result<Swept, BacktestError> {
        let input = open().map_err(crate::replay::ReplayError::Io)?;
        let run = super::run(
            budget.apply(config, index),
            topic,
            input,
            None,
            labels,
            false,
        )?;
        Ok(Swept {
            budget: budget.clone(),
            report: run.report,
            transitions: run.transitions,
        })
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<Swept, BacktestError>>>> = budgets
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    let work = || loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(budget) = budgets.get(i) else {
            return;
        };
        let r = one(budget);
        *results[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            // A thread that cannot start leaves its share to the others.
            let _ = std::thread::Builder::new().spawn_scoped(scope, work);
        }
        work();
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .expect("every budget is replayed once the threads have joined")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_budget_reads_as_a_config_would_write_it() {
        let b = |n, days| AlertLevel::Budget {
            per_second: n / (days * DAY),
        };
        assert_eq!(level_text(b(1.0, 30.0)), "1/month");
        assert_eq!(level_text(b(2.0, 7.0)), "2/week");
        assert_eq!(level_text(b(1.0, 91.0)), "1/quarter");
        assert_eq!(level_text(b(3.0, 1.0)), "3/day");
        assert_eq!(level_text(AlertLevel::Score(0.9)), "threshold 0.9");
    }

    #[test]
    fn the_standard_budgets_are_a_week_a_month_and_a_quarter() {
        let texts: Vec<String> = Budget::standard().into_iter().map(|b| b.text).collect();
        assert_eq!(texts, ["1/week", "1/month", "1/quarter"]);
        let week = &Budget::standard()[0];
        assert!((week.per_second * 7.0 * DAY - 1.0).abs() < 1e-12);
    }
}
