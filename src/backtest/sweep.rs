//! What-if: the same backtest at several `false_alarms` budgets — what
//! each KPI would have fired had its budget been "4/day", ..., "1/year".
//! No presentation and no choice here: `kpiwatch tune` picks a budget
//! per KPI from the runs, the HTML report's what-if selector draws them.
//!
//! KPIs share no state in the pipeline (peers are series of one KPI;
//! ratios read their parts' buckets, not their alerts), so one replay
//! with every KPI of the topic at budget `b` gives each KPI's figures at
//! `b`: a sweep costs one replay per budget, not per KPI and budget. A
//! KPI with a fixed `threshold` is set to the budget too, so the what-if
//! shows what a budget would do in its place; `tune` leaves such KPIs
//! alone.

use std::io::BufRead;

use crate::alert::Transition;
use crate::config::model::AlertLevel;
use crate::config::Config;

use super::{BacktestError, Labels, Report};

/// Seconds in a day.
const DAY: f64 = 86_400.0;

/// A `false_alarms` budget: `alerts` per `period`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// False alerts allowed per period.
    pub alerts: f64,
    /// The period as the config writes it: day, week, month, quarter,
    /// year.
    pub period: &'static str,
}

impl Budget {
    const fn new(alerts: f64, period: &'static str) -> Self {
        Self { alerts, period }
    }

    /// Days in the period, as the config counts them (a month is 30 days,
    /// a quarter 91).
    pub fn days(&self) -> f64 {
        match self.period {
            "day" => 1.0,
            "week" => 7.0,
            "month" => 30.0,
            "quarter" => 91.0,
            _ => 365.0,
        }
    }

    /// False alerts per second, as `AlertLevel::Budget` holds it.
    pub fn per_second(&self) -> f64 {
        self.alerts / (self.days() * DAY)
    }

    /// As the config writes it: "4/day", "0.5/month".
    pub fn text(&self) -> String {
        format!("{}/{}", self.alerts, self.period)
    }

    /// The budget of `per_second`, in the largest period where it is at
    /// least one alert (or a year), for a rate the candidates lack.
    pub fn from_per_second(per_second: f64) -> Self {
        for period in ["day", "week", "month", "quarter"] {
            let b = Budget::new(1.0, period);
            let alerts = per_second * b.days() * DAY;
            if alerts >= 1.0 {
                return Budget::new((alerts * 1000.0).round() / 1000.0, period);
            }
        }
        let alerts = per_second * 365.0 * DAY;
        Budget::new((alerts * 1e6).round() / 1e6, "year")
    }

    /// Whether `per_second` is this budget's rate (to rounding).
    pub fn is(&self, per_second: f64) -> bool {
        (self.per_second() - per_second).abs() <= 1e-9 * per_second.abs().max(1e-12)
    }

    /// `config` with every KPI of topic number `topic` at this budget (a
    /// KPI with a fixed `threshold` too).
    pub fn apply(&self, config: &Config, topic: usize) -> Config {
        let mut config = config.clone();
        for k in config.kpis.iter_mut().filter(|k| k.topic == topic) {
            k.alerting.level = AlertLevel::Budget {
                per_second: self.per_second(),
            };
        }
        config
    }
}

/// The budgets `tune` tries by default, most permissive first.
pub const CANDIDATES: [Budget; 8] = [
    Budget::new(4.0, "day"),
    Budget::new(1.0, "day"),
    Budget::new(2.0, "week"),
    Budget::new(1.0, "week"),
    Budget::new(2.0, "month"),
    Budget::new(1.0, "month"),
    Budget::new(1.0, "quarter"),
    Budget::new(1.0, "year"),
];

/// The what-if settings of the HTML report: one false alert a week, a
/// month, a quarter.
pub const STANDARD: [Budget; 3] = [
    Budget::new(1.0, "week"),
    Budget::new(1.0, "month"),
    Budget::new(1.0, "quarter"),
];

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
    /// The budget every KPI of the topic had.
    pub budget: Budget,
    /// Its report, as `backtest --json` prints it.
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
            budget: *budget,
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
    fn budgets_read_as_the_config_writes_them() {
        assert_eq!(CANDIDATES[0].text(), "4/day");
        assert_eq!(CANDIDATES[7].text(), "1/year");
        assert!(CANDIDATES[5].is(1.0 / (30.0 * DAY)));
        let odd = Budget::from_per_second(3.0 / (30.0 * DAY));
        assert_eq!(odd.text(), "3/month");
        assert!(odd.is(3.0 / (30.0 * DAY)));
        let rates: Vec<f64> = CANDIDATES.iter().map(Budget::per_second).collect();
        assert!(
            rates.windows(2).all(|w| w[0] > w[1]),
            "most permissive first"
        );
    }

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
        let texts: Vec<String> = STANDARD.iter().map(Budget::text).collect();
        assert_eq!(texts, ["1/week", "1/month", "1/quarter"]);
        assert!((STANDARD[0].per_second() * 7.0 * DAY - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_budget_sets_every_kpi_of_its_topic_and_no_other() {
        let config = crate::backtest::testing::shop();
        let swept = CANDIDATES[3].apply(&config, 0);
        for (before, after) in config.kpis.iter().zip(&swept.kpis) {
            let at_budget = matches!(after.alerting.level,
                AlertLevel::Budget { per_second } if CANDIDATES[3].is(per_second));
            assert_eq!(at_budget, before.topic == 0, "{}", before.name);
        }
    }
}
