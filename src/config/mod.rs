//! Configuration files, parsed in two steps: raw serde structs that mirror
//! the TOML ([`raw`]: unknown keys refused, every field documented), then
//! validation into runtime types ([`model`], [`notify`] for receivers,
//! time windows and subscriptions, [`api`] for the HTTP API's tokens and
//! TLS, and [`detectors::SetConfig`] for `[detectors]` tables). Every error names the file, the line and
//! column, and what to change.
//!
//! One file format serves every command: `run`, `replay` and `check` read
//! the whole file; `score --config` uses the `[detectors]` table of
//! `[defaults]` (or of one KPI with `--kpi`).

pub mod api;
pub mod calendar;
pub mod diff;
mod hints;
mod kafka;
pub mod model;
pub mod notify;
pub mod raw;

pub use model::{load, validate, validate_parts, Config, Kpi};

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use detectors::threshold::StaticThreshold;
use detectors::{Seasonality, SetConfig};
use serde::Deserialize;
use toml::Spanned;

/// A configuration error, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but is wrong at a known place.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what to change.
        message: String,
    },
}

/// `[detectors]`: which detectors run on a series and their thresholds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorsToml {
    /// Seasonal pattern: "auto" (default: weekly, daily or none, whichever
    /// explains the series best), "weekly", "daily" or "none".
    pub seasonality: Option<Spanned<String>>,
    /// Run the CUSUM level-shift detector (default true).
    pub level_shift: Option<bool>,
    /// Run the anomaly likelihood over recent surprise (default true).
    pub likelihood: Option<bool>,
    /// Share of normal values inside the reported band, 0.5 to 0.999999
    /// (default 0.999).
    pub band_coverage: Option<Spanned<f64>>,
    /// Static rule: values below this always score 1.
    pub min: Option<Spanned<f64>>,
    /// Static rule: values above this always score 1.
    pub max: Option<Spanned<f64>>,
    /// Week-over-week rule: largest tolerated change against the same hour
    /// last week, as a percentage, e.g. 30 (off by default).
    pub week_over_week_pct: Option<Spanned<f64>>,
}

/// A TOML source with its path, for turning byte spans into line:column.
///
/// The start of every line is found once, on the first error, and each
/// error is then located by a binary search: a file with many values (or a
/// validation that builds many errors, such as a scenario's per-scale
/// entries) costs one pass over the text, not one per error.
pub struct Source<'a> {
    path: &'a Path,
    text: &'a str,
    /// Byte offsets where lines start (0 first), built on first use.
    /// `OnceLock` rather than `OnceCell`: a `&Source` may cross threads.
    line_starts: OnceLock<Vec<usize>>,
    /// Bytes examined to locate errors, for tests that check the cost.
    scanned: AtomicUsize,
}

impl<'a> Source<'a> {
    /// Wraps `text`, read from `path`.
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Self {
            path,
            text,
            line_starts: OnceLock::new(),
            scanned: AtomicUsize::new(0),
        }
    }

    /// The file the text came from.
    pub fn path(&self) -> &Path {
        self.path
    }

    /// The text.
    pub fn text(&self) -> &str {
        self.text
    }

    /// An error at byte `span`.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.line_column(span.start);
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut start = offset.min(self.text.len());
        while !self.text.is_char_boundary(start) {
            start -= 1;
        }
        let starts = self.line_starts.get_or_init(|| {
            self.scanned.fetch_add(self.text.len(), Ordering::Relaxed);
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        // The last line start at or before `start`.
        let line = starts.partition_point(|&s| s <= start);
        let line_start = starts[line - 1];
        let before = &self.text[line_start..start];
        self.scanned.fetch_add(before.len(), Ordering::Relaxed);
        (line, before.chars().count() + 1)
    }

    /// Bytes of the text examined so far to locate errors: the whole text
    /// once, then each error's own line up to its column.
    pub fn bytes_scanned(&self) -> usize {
        self.scanned.load(Ordering::Relaxed)
    }

    /// Deserialises the whole file, locating serde's errors and saying
    /// what to write instead of a value of the wrong type ([`hints`]).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(self.text).map_err(|e| {
            // Read again, only now that there is an error, to learn which
            // key it was at (tracking the path costs on every value).
            let keys = toml::Deserializer::parse(self.text)
                .ok()
                .and_then(|de| serde_path_to_error::deserialize::<_, T>(de).err())
                .map(|e| hints::keys(e.path()))
                .unwrap_or_default();
            let span = e.span().unwrap_or(0..0);
            // toml's messages can span lines ("invalid string\nexpected `\"`");
            // an error is one line that names the place.
            let message: Vec<&str> = e
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let root = hints::short_type_name(std::any::type_name::<T>());
            let message = hints::hint(root, &keys, &message.join(": "), self.scalar_at(&span));
            self.error(span, message)
        })
    }

    /// The text at `span` if it is a short scalar on one line (a number, a
    /// boolean, a quoted string), to quote back in an error; `None` for a
    /// table or list, whose contents (a header holding a token) are not
    /// repeated.
    fn scalar_at(&self, span: &Range<usize>) -> Option<&str> {
        let text = self.text.get(span.clone())?.trim();
        let short = !text.is_empty() && text.len() <= 60 && !text.contains('\n');
        (short && !text.starts_with(['[', '{'])).then_some(text)
    }
}

/// What `kpiwatch check` found a file to be.
#[derive(Debug)]
pub enum Checked {
    /// A service configuration, valid for `run`.
    Service(Box<Config>),
    /// Detector settings only (`[defaults.detectors]`, no topic or KPI),
    /// valid for `kpiwatch score --config`.
    Detectors,
}

/// Validates a file for `kpiwatch check`: as a service configuration, or,
/// when it has no `[[topic]]` and no `[[kpi]]` but a `[defaults.detectors]`
/// table, as the detector settings `kpiwatch score --config` reads (what
/// `config/score.toml` is). A file with none of them is refused: there is
/// nothing to watch and nothing to score with.
pub fn check(path: &Path) -> Result<Checked, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let src = Source::new(path, &text);
    let raw: raw::ConfigToml = src.parse()?;
    if raw.topics.is_empty() && raw.kpis.is_empty() && raw.defaults.detectors.is_some() {
        model::validate_parts(&src)?;
        return Ok(Checked::Detectors);
    }
    model::validate(&src).map(|c| Checked::Service(Box::new(c)))
}

/// Reads a configuration file for `kpiwatch score`: validates all of it,
/// then builds the detector set of `kpi` (or of `[defaults]`) for
/// `bucket_width`-second buckets, the width inferred from the scored file.
pub fn load_score_config(
    path: &Path,
    kpi: Option<&str>,
    bucket_width: i64,
) -> Result<SetConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let src = Source::new(path, &text);
    model::validate_parts(&src)?;
    let raw: raw::ConfigToml = src.parse()?;
    let table = match kpi {
        None => raw.defaults.detectors.as_ref(),
        Some(name) => {
            let k = raw
                .kpis
                .iter()
                .find(|k| k.name.as_ref().is_some_and(|n| n.get_ref() == name))
                .ok_or_else(|| {
                    src.error(0..0, format!("no [[kpi]] named {name:?} in this file"))
                })?;
            k.detectors.as_ref().or(raw.defaults.detectors.as_ref())
        }
    };
    match table {
        Some(t) => detector_config(&src, t.get_ref(), bucket_width),
        None => Ok(SetConfig::new(bucket_width)),
    }
}

/// Validates a `[detectors]` table into a [`SetConfig`].
pub fn detector_config(
    src: &Source<'_>,
    raw: &DetectorsToml,
    bucket_width: i64,
) -> Result<SetConfig, ConfigError> {
    let mut config = SetConfig::new(bucket_width);
    if let Some(s) = &raw.seasonality {
        config.seasonality = match s.get_ref().as_str() {
            "auto" => Seasonality::Auto,
            "weekly" => Seasonality::Weekly,
            "daily" => Seasonality::Daily,
            "none" => Seasonality::None,
            other => {
                return Err(src.error(
                    s.span(),
                    format!(
                        "seasonality = {other:?} is not known; use \"auto\", \"weekly\", \"daily\" or \"none\""
                    ),
                ))
            }
        };
    }
    config.level_shift = raw.level_shift.unwrap_or(config.level_shift);
    config.likelihood = raw.likelihood.unwrap_or(config.likelihood);
    if let Some(c) = &raw.band_coverage {
        let v = *c.get_ref();
        if !(0.5..=0.999_999).contains(&v) {
            return Err(src.error(
                c.span(),
                format!("band_coverage = {v} is out of range; use a share between 0.5 and 0.999999, e.g. 0.999"),
            ));
        }
        config.band_coverage = v;
    }
    let min = raw.min.as_ref().map(|m| *m.get_ref());
    let max = raw.max.as_ref().map(|m| *m.get_ref());
    if let (Some(lo), Some(hi), Some(m)) = (min, max, &raw.max) {
        if hi < lo {
            return Err(src.error(
                m.span(),
                format!("max = {hi} is below min = {lo}; swap them or widen the band"),
            ));
        }
    }
    if min.is_some() || max.is_some() {
        config.threshold = Some(StaticThreshold { min, max });
    }
    if let Some(w) = &raw.week_over_week_pct {
        let v = *w.get_ref();
        if !(v > 0.0 && v.is_finite()) {
            return Err(src.error(
                w.span(),
                format!("week_over_week_pct = {v} must be a positive percentage, e.g. 30"),
            ));
        }
        config.week_over_week = Some(v / 100.0);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_detectors(text: &str) -> Result<SetConfig, String> {
        let path = Path::new("k.toml");
        let src = Source::new(path, text);
        src.parse::<raw::ConfigToml>()
            .and_then(|raw| {
                let t = raw
                    .defaults
                    .detectors
                    .map(|t| t.into_inner())
                    .unwrap_or_default();
                detector_config(&src, &t, 300)
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn locating_an_error_on_each_of_many_lines_reads_the_text_once() {
        let text: String = (0..100_000).map(|i| format!("key_{i} = {i}\n")).collect();
        let src = Source::new(Path::new("k.toml"), &text);
        let mut offset = 0;
        for (i, line) in text.lines().enumerate() {
            let at = offset + line.find('=').unwrap();
            match src.error(at..at + 1, "x") {
                ConfigError::Invalid { line, column, .. } => {
                    assert_eq!((line, column), (i + 1, at - offset + 1))
                }
                other => panic!("{other}"),
            }
            offset += line.len() + 1;
        }
        // The line starts once, then each error's line up to its column: a
        // search from the top of the file per error read 100,000 times more.
        let columns: usize = text.lines().map(|l| l.find('=').unwrap()).sum();
        assert_eq!(src.bytes_scanned(), text.len() + columns);
    }

    #[test]
    fn a_column_counts_characters_not_bytes() {
        let text = "name = \"caf\u{e9}\" x\n";
        let src = Source::new(Path::new("k.toml"), text);
        assert_eq!(src.line_column(text.find('x').unwrap()), (1, 15));
        assert_eq!(src.line_column(text.len() + 10), (2, 1));
    }

    fn parse_error(text: &str) -> String {
        Source::new(Path::new("k.toml"), text)
            .parse::<raw::ConfigToml>()
            .map(|_| ())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_value_of_the_wrong_type_says_what_to_write_instead() {
        assert_eq!(
            parse_error("[[kpi]]\nname = \"k\"\nbucket = 5\n"),
            "k.toml:3:10: bucket = 5 must be a string in quotes. Bucket width: \"1m\", \"5m\", \"1h\" (default \"5m\")."
        );
        assert_eq!(
            parse_error("[defaults.alerting]\nfire_after = \"2\"\n"),
            "k.toml:2:14: fire_after = \"2\" must be a whole number, without quotes: fire_after = 2. Consecutive anomalous buckets before an alert fires (default 1)."
        );
        assert!(
            parse_error("[[kpi]]\ngroup_by = \"country\"\n")
                .starts_with("k.toml:2:12: group_by = \"country\" must be a list in [ ]: group_by = [\"country\"]. Fields whose values"),
        );
        assert!(parse_error("[[subscription]]\nsend_resolved = \"false\"\n")
            .starts_with("k.toml:2:17: send_resolved = \"false\" must be true or false, without quotes: send_resolved = false."));
    }

    #[test]
    fn a_list_or_table_of_the_wrong_type_is_not_quoted_back() {
        // A header's value may hold a token: the error names the key only.
        let err = parse_error(
            "[[receiver]]\nname = \"r\"\nwebhook = { url = \"http://h\", headers = { Authorization = [\"Bearer s3cret\"] } }\n",
        );
        assert!(
            err.contains("Authorization = [...] must be a string"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn a_missing_key_is_named_with_what_it_is_for() {
        assert_eq!(
            parse_error("[[topic]]\ntime_field = \"t\"\n"),
            "k.toml:1:1: [[topic]] needs `name`: Kafka topic name."
        );
    }

    #[test]
    fn empty_file_gives_the_default_set() {
        assert_eq!(validate_detectors("").unwrap(), SetConfig::new(300));
    }

    #[test]
    fn unknown_key_is_located() {
        let err = validate_detectors("[defaults.detectors]\nseasonalty = \"daily\"\n").unwrap_err();
        assert!(
            err.starts_with("k.toml:2:1: unknown field `seasonalty`"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_coverage_names_the_range() {
        let err = validate_detectors("[defaults.detectors]\nband_coverage = 1.5\n").unwrap_err();
        assert!(err.starts_with("k.toml:2:17:"), "{err}");
        assert!(err.contains("between 0.5 and 0.999999"), "{err}");
    }

    #[test]
    fn unknown_seasonality_lists_the_choices() {
        let err =
            validate_detectors("[defaults.detectors]\nseasonality = \"hourly\"\n").unwrap_err();
        assert!(
            err.contains("k.toml:2:15") && err.contains("\"weekly\""),
            "{err}"
        );
    }

    #[test]
    fn rules_are_carried_into_the_set() {
        let c = validate_detectors("[defaults.detectors]\nmin = 10.0\nweek_over_week_pct = 30\n")
            .unwrap();
        assert_eq!(c.threshold.unwrap().min, Some(10.0));
        assert_eq!(c.week_over_week, Some(0.3));
    }
}
