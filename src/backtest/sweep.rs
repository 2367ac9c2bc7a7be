//! The backtest re-run at several false-alarm budgets: what each KPI
//! would have fired had its `false_alarms` been "4/day", ..., "1/year".
//! No HTML and no choice here: `kpiwatch tune` picks a budget per KPI
//! from the points, the HTML report's what-if view draws them.
//!
//! KPIs share no state in the pipeline (peers are series of one KPI), so
//! one replay with every budgeted KPI at budget `b` gives each KPI's
//! figures at `b`: a sweep costs one replay per budget, not per KPI and
//! budget. KPIs with a fixed `threshold` keep it (their rows are the
//! same at every point).

use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::{backtest, BacktestError, Labels, Report};
use crate::config::model::AlertLevel;
use crate::config::Config;

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
}

/// The budgets tried by default, most permissive first.
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

/// One re-run: the budget and the backtest's report at it.
#[derive(Debug, Clone)]
pub struct SweepPoint {
    /// The budget every budgeted KPI had.
    pub budget: Budget,
    /// The report, as `backtest --json` prints it.
    pub report: Report,
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The events file cannot be opened.
    #[error("cannot read {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A backtest failed.
    #[error(transparent)]
    Backtest(#[from] BacktestError),
}

/// `config` with every KPI that has a `false_alarms` budget set to
/// `budget` (KPIs with a fixed threshold unchanged).
pub fn at_budget(config: &Config, budget: Budget) -> Config {
    let mut c = config.clone();
    for k in &mut c.kpis {
        if let AlertLevel::Budget { .. } = k.alerting.level {
            k.alerting.level = AlertLevel::Budget {
                per_second: budget.per_second(),
            };
        }
    }
    c
}

/// The backtest of `events` (a JSONL file of `topic`, read once per
/// budget) against `labels`, once per budget of `budgets`, in that order.
pub fn sweep(
    config: &Config,
    topic: Option<&str>,
    events: &Path,
    labels: Option<&Labels>,
    budgets: &[Budget],
) -> Result<Vec<SweepPoint>, SweepError> {
    let mut points = Vec::with_capacity(budgets.len());
    for &budget in budgets {
        let file = std::fs::File::open(events).map_err(|source| SweepError::Open {
            path: events.to_path_buf(),
            source,
        })?;
        let report = backtest(
            at_budget(config, budget),
            topic,
            BufReader::with_capacity(1 << 16, file),
            None,
            labels,
        )?;
        points.push(SweepPoint { budget, report });
    }
    Ok(points)
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
}
