//! `kpiwatch backtest`: the instrument that measures alert quality on past
//! events. It replays them exactly as `kpiwatch replay` does and scores the
//! alerts against an analyst's labelled incidents: recall, detection
//! delay, false alerts per KPI-week, alerts left firing, and whether each
//! message's figures add up.
//!
//! # Layout
//!
//! - [`labels`] — the `--incidents` file: [`Labels`] of incidents and
//!   quiet spans, validated and held against the configuration.
//! - [`matching`] — transitions folded into alerts, and the rule by which
//!   an alert detects an incident; delays.
//! - [`checks`] — message consistency violations of one transition.

pub mod checks;
pub mod labels;
pub mod matching;

pub use labels::{Labels, LabelsError};
