//! `kpiwatch tune`: per KPI, the `false_alarms` budget that would have
//! kept the true alerts and dropped the false ones, as a diff of the
//! config file.
//!
//! - [`choose`] — the rule, over the points of a
//!   [`sweep`](crate::backtest::sweep): per KPI, the budgets that detect
//!   the most labelled incidents of that KPI (every one, when some budget
//!   does); of those, the ones with the fewest false alerts (alerts
//!   matching no incident nor expected event); of those, the current
//!   budget if it is one (no change without a gain), else the rarest (the
//!   same result on the past asks the strongest evidence, so fewer false
//!   alerts on data not seen yet). KPIs with a fixed `threshold` are left
//!   alone.
//! - [`edit`] — the config text with only the chosen KPIs' `false_alarms`
//!   changed or added (`toml_edit`, so comments and layout stay).
//! - [`diff`] — a unified diff of the two texts.

use std::path::Path;

use toml_edit::{DocumentMut, Item, Table, Value};

use crate::backtest::sweep::{Budget, Swept};
use crate::config::model::AlertLevel;
use crate::config::Config;

/// One KPI's figures at one budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The budget.
    pub budget: Budget,
    /// Alerts fired.
    pub fired: usize,
    /// Labelled incidents of the KPI it detected.
    pub detected: usize,
    /// Labelled incidents naming the KPI.
    pub incidents: usize,
    /// False alerts (matching no incident nor expected event).
    pub false_alerts: usize,
    /// Of those, alerts feedback called false.
    pub known_false: usize,
    /// Alerts matching an expected event.
    pub expected: usize,
}

/// What `tune` says of one KPI.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiChoice {
    /// The KPI.
    pub kpi: String,
    /// Its budget now; `None` for a KPI with a fixed `threshold`.
    pub current: Option<Budget>,
    /// The budget the rule picks (`None`: left alone).
    pub chosen: Option<Budget>,
    /// Its figures at every budget tried, most permissive first.
    pub rows: Vec<Row>,
    /// The rule's reasoning in one sentence.
    pub why: String,
}

impl KpiChoice {
    /// The budget to write, when it differs from the current one.
    pub fn change(&self) -> Option<Budget> {
        match (self.chosen, self.current) {
            (Some(c), Some(now)) if !c.is(now.per_second()) => Some(c),
            _ => None,
        }
    }
}

/// Why `tune` could not propose anything.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// The config file is not TOML `toml_edit` can edit (it passed the
    /// config check, so this should not happen).
    #[error("{path}: {message}")]
    Toml {
        /// The file.
        path: String,
        /// What toml_edit said.
        message: String,
    },
    /// A KPI to change is not a `[[kpi]]` of the file.
    #[error("{path}: no [[kpi]] named {kpi:?} to edit")]
    NoKpi {
        /// The file.
        path: String,
        /// The KPI.
        kpi: String,
    },
    /// The config file is wrong.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The config file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The labels file is wrong.
    #[error(transparent)]
    Labels(#[from] crate::backtest::LabelsError),
    /// Which topic.
    #[error(transparent)]
    Topic(#[from] crate::replay::ReplayError),
    /// The events file cannot be opened.
    #[error("cannot read {path}: {source}")]
    Events {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A backtest of the sweep failed.
    #[error(transparent)]
    Backtest(#[from] crate::backtest::BacktestError),
}

/// What `kpiwatch tune` prints: the choices and the diff.
#[derive(Debug, Clone)]
pub struct Tuned {
    /// Per KPI of the topic.
    pub choices: Vec<KpiChoice>,
    /// The unified diff of the config file (empty: nothing to change).
    pub diff: String,
}

/// `kpiwatch tune`: the backtest of `events` against `labels` at every
/// budget of [`CANDIDATES`](crate::backtest::sweep::CANDIDATES) (and each
/// KPI's current one), the rule per KPI, and the config file edited.
pub fn run(
    config_path: &Path,
    events: &Path,
    labels: &Path,
    topic: Option<&str>,
) -> Result<Tuned, TuneError> {
    let config = crate::config::load(config_path)?;
    let text = std::fs::read_to_string(config_path).map_err(|source| TuneError::Read {
        path: config_path.display().to_string(),
        source,
    })?;
    let labels = crate::backtest::Labels::load(labels)?;
    let index = crate::replay::topic_index(&config, topic)?;
    labels.check(&config, index)?;
    let mut budgets: Vec<Budget> = crate::backtest::sweep::CANDIDATES.to_vec();
    for k in config.kpis.iter().filter(|k| k.topic == index) {
        if let AlertLevel::Budget { per_second } = k.alerting.level {
            if !budgets.iter().any(|b| b.is(per_second)) {
                budgets.push(Budget::from_per_second(per_second));
            }
        }
    }
    let open =
        || std::fs::File::open(events).map(|f| std::io::BufReader::with_capacity(1 << 16, f));
    // Opened once here so that a missing file is named as such.
    open().map_err(|source| TuneError::Events {
        path: events.display().to_string(),
        source,
    })?;
    let points = crate::backtest::sweep::sweep(&config, topic, Some(&labels), &budgets, open)?;
    let choices = choose(&config, index, &points);
    let changes: Vec<(String, Budget)> = choices
        .iter()
        .filter_map(|c| Some((c.kpi.clone(), c.change()?)))
        .collect();
    let edited = edit(&text, config_path, &changes)?;
    Ok(Tuned {
        diff: diff(config_path, &text, &edited),
        choices,
    })
}

/// Per KPI of topic number `topic`, its rows and the budget the rule
/// picks (see the module docs).
pub fn choose(config: &Config, topic: usize, points: &[Swept]) -> Vec<KpiChoice> {
    let mut points: Vec<&Swept> = points.iter().collect();
    points.sort_by(|a, b| b.budget.per_second().total_cmp(&a.budget.per_second()));
    config
        .kpis
        .iter()
        .filter(|k| k.topic == topic)
        .map(|k| {
            let current = match k.alerting.level {
                AlertLevel::Budget { per_second } => Some(
                    points
                        .iter()
                        .map(|p| p.budget)
                        .find(|b| b.is(per_second))
                        .unwrap_or_else(|| Budget::from_per_second(per_second)),
                ),
                AlertLevel::Score(_) => None,
            };
            let rows: Vec<Row> = points
                .iter()
                .filter_map(|p| {
                    let r = p.report.kpis.iter().find(|r| r.kpi == k.name)?;
                    Some(Row {
                        budget: p.budget,
                        fired: r.fired,
                        detected: r.detected,
                        incidents: r.incidents,
                        false_alerts: r.false_alerts,
                        known_false: r.known_false,
                        expected: r.expected,
                    })
                })
                .collect();
            let (chosen, why) = match current {
                None => (
                    None,
                    "has a fixed threshold, not a false_alarms budget: left alone".to_string(),
                ),
                Some(now) => pick(&rows, now),
            };
            KpiChoice {
                kpi: k.name.clone(),
                current,
                chosen,
                rows,
                why,
            }
        })
        .collect()
}

/// The rule over one KPI's rows.
fn pick(rows: &[Row], now: Budget) -> (Option<Budget>, String) {
    let Some(best) = rows.iter().map(|r| r.detected).max() else {
        return (None, "no figures".to_string());
    };
    let recall: Vec<&Row> = rows.iter().filter(|r| r.detected == best).collect();
    let fewest = recall.iter().map(|r| r.false_alerts).min().unwrap_or(0);
    let winners: Vec<&Row> = recall
        .into_iter()
        .filter(|r| r.false_alerts == fewest)
        .collect();
    let incidents = rows.first().map_or(0, |r| r.incidents);
    let kept = if incidents == 0 {
        "has no labelled incident to detect".to_string()
    } else if best == incidents {
        format!("detects all {incidents} labelled incidents")
    } else {
        format!("detects {best} of {incidents} labelled incidents, the most any budget does")
    };
    let tied: Vec<String> = winners.iter().map(|r| r.budget.text()).collect();
    if winners.iter().any(|r| r.budget.is(now.per_second())) {
        return (
            Some(now),
            format!(
                "unchanged at {}: it {kept} with the fewest false alerts ({fewest}){}",
                now.text(),
                if tied.len() > 1 {
                    format!(", tied with {}", tied.join(", "))
                } else {
                    String::new()
                }
            ),
        );
    }
    // Rows are most permissive first: the last winner is the rarest.
    let chosen = winners.last().map(|r| r.budget);
    let why = match chosen {
        Some(c) => format!(
            "{} (now {}): it {kept} with the fewest false alerts ({fewest}){}",
            c.text(),
            now.text(),
            if tied.len() > 1 {
                format!(
                    "; tied with {}, the rarest budget wins",
                    tied[..tied.len() - 1].join(", ")
                )
            } else {
                String::new()
            }
        ),
        None => "no figures".to_string(),
    };
    (chosen, why)
}

/// `text` (the config file at `path`, for messages) with `false_alarms`
/// set to the given budget in each named `[[kpi]]`: replaced where the
/// KPI sets it (in `[kpi.alerting]`, an inline `alerting = {...}` or a
/// dotted key), added as `alerting.false_alarms = "..."` where it
/// inherits it. Nothing else changes.
pub fn edit(text: &str, path: &Path, changes: &[(String, Budget)]) -> Result<String, TuneError> {
    let shown = path.display().to_string();
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| TuneError::Toml {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    for (kpi, budget) in changes {
        let no_kpi = || TuneError::NoKpi {
            path: shown.clone(),
            kpi: kpi.clone(),
        };
        let kpis = doc
            .get_mut("kpi")
            .and_then(Item::as_array_of_tables_mut)
            .ok_or_else(no_kpi)?;
        let table = kpis
            .iter_mut()
            .find(|t| t.get("name").and_then(Item::as_str) == Some(kpi.as_str()))
            .ok_or_else(no_kpi)?;
        set_false_alarms(table, &budget.text());
    }
    Ok(doc.to_string())
}

/// Sets `alerting.false_alarms` of one `[[kpi]]` table, keeping the
/// decoration (comments, spacing) of a value it replaces.
fn set_false_alarms(kpi: &mut Table, text: &str) {
    let replace = |v: &mut Value| {
        let decor = v.decor().clone();
        *v = Value::from(text);
        *v.decor_mut() = decor;
    };
    match kpi.get_mut("alerting") {
        Some(Item::Table(t)) => match t.get_mut("false_alarms").and_then(Item::as_value_mut) {
            Some(v) => replace(v),
            None => {
                t.insert("false_alarms", toml_edit::value(text));
            }
        },
        Some(Item::Value(Value::InlineTable(t))) => match t.get_mut("false_alarms") {
            Some(v) => replace(v),
            None => {
                t.insert("false_alarms", Value::from(text));
                // The line is rewritten anyway: space it as usual.
                t.fmt();
            }
        },
        _ => {
            let mut t = Table::new();
            t.set_dotted(true);
            t.insert("false_alarms", toml_edit::value(text));
            kpi.insert("alerting", Item::Table(t));
        }
    }
}

/// A unified diff from `old` to `new`, both named `path`; empty when they
/// are the same.
pub fn diff(path: &Path, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let shown = path.display().to_string();
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{shown}"), &format!("b/{shown}"))
        .to_string()
}

/// The choices as a table for people, one block per KPI.
pub fn render(choices: &[KpiChoice]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for c in choices {
        let _ = writeln!(out, "{}: {}", c.kpi, c.why);
        if c.current.is_none() {
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<12} {:>6} {:>9} {:>6} {:>11} {:>8}",
            "false_alarms", "fired", "detected", "false", "known false", "expected"
        );
        for r in &c.rows {
            let mark = if Some(r.budget) == c.chosen { "*" } else { " " };
            let _ = writeln!(
                out,
                "{mark} {:<12} {:>6} {:>9} {:>6} {:>11} {:>8}",
                r.budget.text(),
                r.fired,
                format!("{}/{}", r.detected, r.incidents),
                r.false_alerts,
                r.known_false,
                r.expected
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::sweep::CANDIDATES;

    fn row(i: usize, detected: usize, false_alerts: usize) -> Row {
        Row {
            budget: CANDIDATES[i],
            fired: detected + false_alerts,
            detected,
            incidents: 1,
            false_alerts,
            known_false: 0,
            expected: 0,
        }
    }

    #[test]
    fn the_rule_keeps_recall_then_fewest_false_then_current_then_rarest() {
        // 4/day .. 1/year: the incident is detected down to 1/week.
        let rows = vec![
            row(0, 1, 9),
            row(1, 1, 4),
            row(2, 1, 1),
            row(3, 1, 1),
            row(4, 0, 0),
        ];
        let (c, why) = pick(&rows, CANDIDATES[0]);
        assert_eq!(c, Some(CANDIDATES[3]), "{why}");
        assert!(why.contains("tied with 2/week"), "{why}");
        let (c, why) = pick(&rows, CANDIDATES[2]);
        assert_eq!(c, Some(CANDIDATES[2]), "current wins a tie: {why}");
    }

    const TOML: &str = r#"# the shop
[[kpi]]
name = "a"  # first
aggregate = "count"

[kpi.alerting]
false_alarms = "4/day"   # too loud?
fire_after = 1

[[kpi]]
name = "b"
aggregate = "count"
alerting = { fire_after = 2 }

[[kpi]]
name = "c"
aggregate = "count"
"#;

    #[test]
    fn edit_changes_only_false_alarms_and_keeps_comments() {
        let changes = vec![
            ("a".to_string(), CANDIDATES[3]),
            ("b".to_string(), CANDIDATES[7]),
            ("c".to_string(), CANDIDATES[5]),
        ];
        let out = edit(TOML, Path::new("k.toml"), &changes).unwrap();
        assert!(
            out.contains("false_alarms = \"1/week\"   # too loud?"),
            "{out}"
        );
        assert!(
            out.contains("alerting = { fire_after = 2, false_alarms = \"1/year\" }"),
            "{out}"
        );
        assert!(out.contains("alerting.false_alarms = \"1/month\""), "{out}");
        assert!(
            out.starts_with("# the shop\n[[kpi]]\nname = \"a\"  # first\n"),
            "{out}"
        );
        let d = diff(Path::new("k.toml"), TOML, &out);
        let changed: Vec<&str> = d
            .lines()
            .filter(|l| {
                (l.starts_with('+') || l.starts_with('-'))
                    && !l.starts_with("+++")
                    && !l.starts_with("---")
            })
            .collect();
        assert_eq!(changed.len(), 5, "{d}");
        let added = changed.iter().filter(|l| l.starts_with('+'));
        assert!(added.clone().all(|l| l.contains("false_alarms")), "{d}");
        assert_eq!(added.count(), 3, "{d}");
        let err = edit(
            TOML,
            Path::new("k.toml"),
            &[("z".to_string(), CANDIDATES[0])],
        )
        .unwrap_err();
        assert!(err.to_string().contains("no [[kpi]] named \"z\""));
    }
}
