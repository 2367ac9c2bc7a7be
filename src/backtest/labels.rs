//! The labels file of `kpiwatch backtest --incidents`: the incidents an
//! analyst knows happened, and the quiet spans where nothing must alert.
//!
//! Read in two steps, like the configuration: the JSON into raw serde
//! structs (every field optional, unknown fields refused), then
//! validation into [`Labels`] with integer times and compiled globs.
//! [`Labels::check`] then holds the file against the configuration, so a
//! misspelt KPI or label is an error before a long replay, not a silently
//! missed incident after it. Every error names the file, the entry and the
//! field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::config::model::{Config, Interest};
use crate::notify::route::KpiGlobs;
use crate::timefmt::rfc3339;

/// What is wrong with a labels file.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    /// The file cannot be read.
    #[error("cannot read the labels file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not JSON, or not the labels file's shape.
    #[error("{path}: {message}; a labels file is {{\"incidents\": [...], \"quiet\": [...]}}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// serde_json's message, with line and column.
        message: String,
    },
    /// One incident or quiet span is wrong.
    #[error("{path}: {entry}: {problem}")]
    Entry {
        /// The file.
        path: PathBuf,
        /// `incident "ios-checkouts-stop"`, or `incident #2` without an id.
        entry: String,
        /// What is wrong and what to write instead; names the field.
        problem: String,
    },
}

/// The incidents and quiet spans of a labels file.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    /// Where they came from, for messages.
    pub path: PathBuf,
    /// Incidents, in file order (an alert matching several counts for the
    /// first as its `matched`).
    pub incidents: Vec<Incident>,
    /// Spans that must not alert.
    pub quiet: Vec<Quiet>,
    /// Added to the format: alerts someone said were false (`kpiwatch
    /// feedback export`); an alert matching one is a false alert known as
    /// such.
    pub false_alerts: Vec<KnownFalse>,
    /// Added to the format: changes that were real but known in advance
    /// (a release, a campaign); an alert matching one is neither a false
    /// alert nor a detection, and the event is never a miss. Matched like
    /// incidents.
    pub expected: Vec<Incident>,
}

/// An alert known to be false: the span, KPI and series it covered
/// (matched like an incident: KPI glob, labels, direction, an alert
/// firing from its start to its end plus grace), and the alert's id.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownFalse {
    /// The id of the alert the verdict was given on, if known.
    pub alert_id: Option<String>,
    /// Its KPI, series, direction and span.
    pub span: Incident,
}

/// Something that happened and should have alerted.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Unique in the file.
    pub id: String,
    /// Free text, e.g. `segment_outage`.
    pub kind: Option<String>,
    /// Epoch seconds.
    pub start: i64,
    /// Epoch seconds, exclusive.
    pub end: i64,
    /// The KPIs whose alerts count for it.
    pub kpis: KpiGlobs,
    /// The series it affected; an alert without one of these labels (an
    /// ungrouped total) does not contradict it.
    pub labels: BTreeMap<String, String>,
    /// Which way the affected KPIs moved.
    pub direction: Interest,
    /// How many buckets after its start an alert should have fired.
    pub target_delay_buckets: Option<u32>,
    /// Free text.
    pub note: Option<String>,
}

/// A span where a change happened that must not alert (growth, a DST
/// change, late events, a holiday).
#[derive(Debug, Clone, PartialEq)]
pub struct Quiet {
    /// Unique in the file (incidents included).
    pub id: String,
    /// Free text, e.g. `dst`.
    pub kind: Option<String>,
    /// Epoch seconds.
    pub start: i64,
    /// Epoch seconds, exclusive.
    pub end: i64,
    /// Free text.
    pub note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    incidents: Vec<Value>,
    #[serde(default)]
    quiet: Vec<Value>,
    #[serde(default)]
    false_alerts: Vec<Value>,
    #[serde(default)]
    expected: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncident {
    id: Option<String>,
    kind: Option<String>,
    start: Option<String>,
    end: Option<String>,
    kpis: Option<Vec<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    direction: Option<String>,
    target_delay_buckets: Option<u32>,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuiet {
    id: Option<String>,
    kind: Option<String>,
    start: Option<String>,
    end: Option<String>,
    note: Option<String>,
}

const TIME_HINT: &str = "write an RFC 3339 time with a zone, e.g. \"2025-03-17T14:00:00Z\"";

impl Labels {
    /// Reads and validates the labels file at `path`.
    pub fn load(path: &Path) -> Result<Self, LabelsError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates the text of a labels file; `path` is for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, LabelsError> {
        let raw: RawFile = serde_json::from_str(text).map_err(|e| LabelsError::Shape {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut labels = Labels {
            path: path.to_path_buf(),
            incidents: Vec::new(),
            quiet: Vec::new(),
            false_alerts: Vec::new(),
            expected: Vec::new(),
        };
        for (i, value) in raw.incidents.iter().enumerate() {
            let incident =
                incident(value).map_err(|problem| labels.error("incident", i, value, problem))?;
            labels.incidents.push(incident);
        }
        for (i, value) in raw.quiet.iter().enumerate() {
            let quiet =
                quiet(value).map_err(|problem| labels.error("quiet span", i, value, problem))?;
            labels.quiet.push(quiet);
        }
        for (i, value) in raw.false_alerts.iter().enumerate() {
            let known = known_false(value)
                .map_err(|problem| labels.error("false alert", i, value, problem))?;
            labels.false_alerts.push(known);
        }
        for (i, value) in raw.expected.iter().enumerate() {
            let expected = incident(value)
                .map_err(|problem| labels.error("expected event", i, value, problem))?;
            labels.expected.push(expected);
        }
        let mut seen = std::collections::BTreeSet::new();
        let ids = labels.incidents.iter().map(|i| ("incident", &i.id));
        let ids = ids.chain(labels.quiet.iter().map(|q| ("quiet span", &q.id)));
        let ids = ids.chain(
            labels
                .false_alerts
                .iter()
                .map(|f| ("false alert", &f.span.id)),
        );
        let ids = ids.chain(labels.expected.iter().map(|e| ("expected event", &e.id)));
        for (what, id) in ids {
            if !seen.insert(id) {
                return Err(LabelsError::Entry {
                    path: labels.path.clone(),
                    entry: format!("{what} {id:?}"),
                    problem: "`id` is used twice; give every incident and quiet span its own id"
                        .to_string(),
                });
            }
        }
        Ok(labels)
    }

    /// Holds the incidents against `config` as replayed for topic number
    /// `topic`: every `kpis` glob must match a KPI of the config, every
    /// incident must name a KPI of that topic (or no alert could ever
    /// match it), and every label must be a `group_by` field of a KPI it
    /// names (or it would match nothing but the ungrouped totals).
    pub fn check(&self, config: &Config, topic: usize) -> Result<(), LabelsError> {
        let all: Vec<&str> = config.kpis.iter().map(|k| k.name.as_str()).collect();
        // Expected events and known false alerts are matched like
        // incidents, so a misspelt KPI would silently match nothing too.
        let entries = self.incidents.iter().map(|i| ("incident", i));
        let entries = entries.chain(self.expected.iter().map(|e| ("expected event", e)));
        let entries = entries.chain(self.false_alerts.iter().map(|f| ("false alert", &f.span)));
        for (what, incident) in entries {
            let fail = |problem: String| LabelsError::Entry {
                path: self.path.clone(),
                entry: format!("{what} {:?}", incident.id),
                problem,
            };
            for pattern in incident.kpis.patterns() {
                let one = KpiGlobs::new(std::slice::from_ref(pattern))
                    .map_err(|(_, e)| fail(format!("`kpis`: {pattern:?} is not a glob ({e})")))?;
                if !all.iter().any(|k| one.matches(k)) {
                    return Err(fail(format!(
                        "`kpis`: {pattern:?} matches no [[kpi]] of the config; use one of: {}",
                        all.join(", ")
                    )));
                }
            }
            let named: Vec<_> = config
                .kpis
                .iter()
                .filter(|k| k.topic == topic && incident.kpis.matches(&k.name))
                .collect();
            if named.is_empty() {
                let here: Vec<&str> = config
                    .kpis
                    .iter()
                    .filter(|k| k.topic == topic)
                    .map(|k| k.name.as_str())
                    .collect();
                return Err(fail(format!(
                    "`kpis` names no KPI of topic {:?}, the one replayed ({}); keep one labels file per topic",
                    config.topics[topic].name,
                    here.join(", ")
                )));
            }
            for label in incident.labels.keys() {
                let grouped = named
                    .iter()
                    .any(|k| k.group_by.iter().any(|f| f.to_string() == *label));
                if !grouped {
                    let mut fields: Vec<String> = named
                        .iter()
                        .flat_map(|k| k.group_by.iter().map(ToString::to_string))
                        .collect();
                    fields.sort();
                    fields.dedup();
                    let names: Vec<&str> = named.iter().map(|k| k.name.as_str()).collect();
                    return Err(fail(format!(
                        "`labels`: {label:?} is not a group_by field of {}; {}",
                        names.join(", "),
                        if fields.is_empty() {
                            "they are not grouped, so leave `labels` out".to_string()
                        } else {
                            format!("use one of: {}", fields.join(", "))
                        }
                    )));
                }
            }
        }
        Ok(())
    }

    fn error(&self, what: &str, i: usize, value: &Value, problem: String) -> LabelsError {
        let entry = match value.get("id").and_then(Value::as_str) {
            Some(id) => format!("{what} {id:?}"),
            None => format!("{what} #{} (no id)", i + 1),
        };
        LabelsError::Entry {
            path: self.path.clone(),
            entry,
            problem,
        }
    }
}

/// Deserialises one entry, naming the field serde refused.
fn raw<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // An unknown field's message names it already.
        if path == "." || message.starts_with("unknown field") {
            message
        } else {
            format!("`{path}`: {message}")
        }
    })
}

fn incident(value: &Value) -> Result<Incident, String> {
    let r: RawIncident = raw(value)?;
    let id = id(r.id)?;
    let (start, end) = span(r.start, r.end)?;
    let patterns = r.kpis.ok_or(
        "`kpis` is missing; name the KPIs the incident affected, e.g. [\"checkouts\", \"checkouts_by_*\"]",
    )?;
    if patterns.is_empty() {
        return Err("`kpis` is empty; name at least one KPI (`*` globs allowed)".to_string());
    }
    let kpis = KpiGlobs::new(&patterns).map_err(|(i, e)| {
        format!(
            "`kpis`: {:?} is not a glob ({}); write e.g. \"checkouts_by_*\"",
            patterns[i],
            e.kind()
        )
    })?;
    let direction = match r.direction.as_deref() {
        None | Some("both") => Interest::Both,
        Some("drop") => Interest::Drop,
        Some("spike") => Interest::Spike,
        Some(other) => {
            return Err(format!(
                "`direction` = {other:?} is not known; use \"drop\", \"spike\" or \"both\""
            ))
        }
    };
    Ok(Incident {
        id,
        kind: r.kind,
        start,
        end,
        kpis,
        labels: r.labels,
        direction,
        target_delay_buckets: r.target_delay_buckets,
        note: r.note,
    })
}

/// A false alert: an incident's fields (`kpis`, `labels`, `direction`,
/// `start`, `end`, ...) and the `alert_id` the verdict was given on.
fn known_false(value: &Value) -> Result<KnownFalse, String> {
    let mut rest = value.clone();
    let alert_id = match rest.as_object_mut().and_then(|o| o.remove("alert_id")) {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => return Err("`alert_id` must be a string, e.g. \"3f2a9c0d1e4b5a67\"".to_string()),
    };
    Ok(KnownFalse {
        alert_id,
        span: incident(&rest)?,
    })
}

fn quiet(value: &Value) -> Result<Quiet, String> {
    let r: RawQuiet = raw(value)?;
    let id = id(r.id)?;
    let (start, end) = span(r.start, r.end)?;
    Ok(Quiet {
        id,
        kind: r.kind,
        start,
        end,
        note: r.note,
    })
}

fn id(id: Option<String>) -> Result<String, String> {
    match id {
        Some(id) if !id.trim().is_empty() => Ok(id),
        Some(_) => Err("`id` is empty; give it a short unique name".to_string()),
        None => Err("`id` is missing; give it a short unique name".to_string()),
    }
}

/// `start` and `end` as epoch seconds, end after start.
fn span(start: Option<String>, end: Option<String>) -> Result<(i64, i64), String> {
    let start = time("start", start)?;
    let end = time("end", end)?;
    if end <= start {
        return Err(format!(
            "`end` {} is not after `start` {}; the end is exclusive, so it must be later",
            rfc3339(end),
            rfc3339(start)
        ));
    }
    Ok((start, end))
}

fn time(field: &str, text: Option<String>) -> Result<i64, String> {
    let text = text.ok_or_else(|| format!("`{field}` is missing; {TIME_HINT}"))?;
    match crate::timefmt::parse(&text) {
        Some(t) if !t.naive => Ok(t.epoch),
        Some(_) => Err(format!(
            "`{field}` = {text:?} has no zone, so its instant is unknown; {TIME_HINT}"
        )),
        None => Err(format!(
            "`{field}` = {text:?} is not an RFC 3339 time; {TIME_HINT}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::testing::shop;

    fn parse(text: &str) -> Result<Labels, LabelsError> {
        Labels::parse(Path::new("incidents.json"), text)
    }

    /// The error text of `incidents`, one incident whose fields are
    /// `fields` (JSON object members) after a valid id.
    fn refused(fields: &str) -> String {
        let text = format!(r#"{{"incidents": [{{"id": "ios-stop", {fields}}}]}}"#);
        match parse(&text) {
            Ok(l) => panic!("accepted {text}: {l:?}"),
            Err(e) => e.to_string(),
        }
    }

    const SPAN: &str = r#""start": "2025-03-17T14:00:00Z", "end": "2025-03-17T14:40:00Z""#;

    #[test]
    fn a_labels_file_reads_into_incidents_and_quiet_spans_with_epoch_times() {
        let l = parse(
            r#"{
              "incidents": [{"id": "ios-stop", "kind": "segment_outage",
                "start": "2025-03-17T14:00:00Z", "end": "2025-03-17T16:40:00+02:00",
                "kpis": ["checkouts", "checkouts_by_*"], "labels": {"platform": "ios"},
                "direction": "drop", "target_delay_buckets": 2, "note": "pay button"}],
              "quiet": [{"id": "dst", "kind": "dst", "start": "2025-03-30T00:00:00Z",
                "end": "2025-03-31T00:00:00Z"}]
            }"#,
        )
        .expect("valid");
        let i = &l.incidents[0];
        assert_eq!((i.start, i.end), (1_742_220_000, 1_742_222_400));
        assert_eq!(i.kind.as_deref(), Some("segment_outage"));
        assert!(i.kpis.matches("checkouts") && i.kpis.matches("checkouts_by_platform"));
        assert!(!i.kpis.matches("carts"));
        assert_eq!(i.labels.get("platform").map(String::as_str), Some("ios"));
        assert_eq!(i.direction, Interest::Drop);
        assert_eq!(i.target_delay_buckets, Some(2));
        assert_eq!(l.quiet[0].id, "dst");
        assert_eq!(l.quiet[0].end - l.quiet[0].start, 86_400);
    }

    #[test]
    fn false_alerts_and_expected_events_read_like_incidents_with_their_own_ids() {
        let l = parse(&format!(
            r#"{{"false_alerts": [{{"id": "f", "alert_id": "3f2a9c0d1e4b5a67", {SPAN}, "kpis": ["checkouts"]}}],
                "expected": [{{"id": "sale", {SPAN}, "kpis": ["checkouts"], "direction": "spike"}}]}}"#
        ))
        .unwrap();
        assert_eq!(
            l.false_alerts[0].alert_id.as_deref(),
            Some("3f2a9c0d1e4b5a67")
        );
        assert_eq!(l.false_alerts[0].span.id, "f");
        assert_eq!(l.expected[0].direction, Interest::Spike);
        let e = parse(&format!(
            r#"{{"false_alerts": [{{"id": "f", "alert_id": 5, {SPAN}, "kpis": ["c"]}}]}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("false alert \"f\": `alert_id` must be a string"),
            "{e}"
        );
        let e = parse(&format!(
            r#"{{"incidents": [{{"id": "x", {SPAN}, "kpis": ["c"]}}], "expected": [{{"id": "x", {SPAN}, "kpis": ["c"]}}]}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("used twice"), "{e}");
    }

    #[test]
    fn labels_direction_and_target_are_optional() {
        let l = parse(&format!(
            r#"{{"incidents": [{{"id": "a", {SPAN}, "kpis": ["checkouts"]}}]}}"#
        ))
        .expect("valid");
        let i = &l.incidents[0];
        assert!(i.labels.is_empty());
        assert_eq!(i.direction, Interest::Both);
        assert_eq!((i.target_delay_buckets, i.kind.as_ref()), (None, None));
        assert!(l.quiet.is_empty());
    }

    #[test]
    fn a_missing_field_is_named_with_the_file_and_the_incident() {
        let e = refused(r#""end": "2025-03-17T14:40:00Z", "kpis": ["checkouts"]"#);
        assert!(
            e.starts_with("incidents.json: incident \"ios-stop\": `start` is missing"),
            "{e}"
        );
        let e = refused(SPAN);
        assert!(
            e.contains("incident \"ios-stop\": `kpis` is missing"),
            "{e}"
        );
    }

    #[test]
    fn a_time_that_is_not_rfc3339_with_a_zone_is_refused() {
        let e = refused(r#""start": "yesterday", "end": "2025-03-17T14:40:00Z", "kpis": ["c"]"#);
        assert!(
            e.contains("incident \"ios-stop\": `start` = \"yesterday\" is not an RFC 3339 time"),
            "{e}"
        );
        let e = refused(
            r#""start": "2025-03-17T14:00:00Z", "end": "2025-03-17 14:40:00", "kpis": ["c"]"#,
        );
        assert!(
            e.contains("`end` = \"2025-03-17 14:40:00\" has no zone"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_direction_is_refused_with_the_allowed_ones() {
        let e = refused(&format!(r#"{SPAN}, "kpis": ["c"], "direction": "down""#));
        assert!(
            e.contains("incident \"ios-stop\": `direction` = \"down\" is not known; use \"drop\", \"spike\" or \"both\""),
            "{e}"
        );
    }

    #[test]
    fn an_end_at_or_before_the_start_is_refused() {
        let e = refused(
            r#""start": "2025-03-17T14:00:00Z", "end": "2025-03-17T13:00:00Z", "kpis": ["c"]"#,
        );
        assert!(
            e.contains("incident \"ios-stop\": `end` 2025-03-17T13:00:00Z is not after `start` 2025-03-17T14:00:00Z"),
            "{e}"
        );
        let same = refused(
            r#""start": "2025-03-17T14:00:00Z", "end": "2025-03-17T14:00:00Z", "kpis": ["c"]"#,
        );
        assert!(same.contains("is not after"), "{same}");
    }

    #[test]
    fn a_field_of_the_wrong_type_or_an_unknown_field_is_named() {
        let e = refused(&format!(r#"{SPAN}, "kpis": "checkouts""#));
        assert!(
            e.contains("incident \"ios-stop\": `kpis`: invalid type"),
            "{e}"
        );
        let e = refused(&format!(r#"{SPAN}, "kpis": ["c"], "label": {{"a": "b"}}"#));
        assert!(
            e.contains("incident \"ios-stop\": unknown field `label`"),
            "{e}"
        );
        let e = refused(&format!(
            r#"{SPAN}, "kpis": ["c"], "target_delay_buckets": -1"#
        ));
        assert!(e.contains("`target_delay_buckets`: invalid value"), "{e}");
    }

    #[test]
    fn an_entry_without_an_id_is_named_by_its_position() {
        let text = format!(
            r#"{{"incidents": [{{"id": "a", {SPAN}, "kpis": ["c"]}}, {{{SPAN}, "kpis": ["c"]}}]}}"#
        );
        let e = parse(&text).expect_err("no id").to_string();
        assert!(e.contains("incident #2 (no id): `id` is missing"), "{e}");
        let e = parse(r#"{"quiet": [{"id": "dst", "start": "2025-03-30T00:00:00Z"}]}"#)
            .expect_err("no end")
            .to_string();
        assert!(e.contains("quiet span \"dst\": `end` is missing"), "{e}");
    }

    #[test]
    fn an_empty_kpi_list_or_a_bad_glob_is_refused() {
        assert!(refused(&format!(r#"{SPAN}, "kpis": []"#)).contains("`kpis` is empty"));
        let e = refused(&format!(r#"{SPAN}, "kpis": ["check[out"]"#));
        assert!(e.contains("`kpis`: \"check[out\" is not a glob"), "{e}");
    }

    #[test]
    fn an_id_used_twice_is_refused() {
        let text = format!(
            r#"{{"incidents": [{{"id": "a", {SPAN}, "kpis": ["c"]}}], "quiet": [{{"id": "a", {SPAN}}}]}}"#
        );
        let e = parse(&text).expect_err("duplicate").to_string();
        assert!(e.contains("quiet span \"a\": `id` is used twice"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_json_or_not_the_labels_shape_is_refused_with_its_position() {
        let e = parse("{\n  \"incidents\": [\n")
            .expect_err("cut")
            .to_string();
        assert!(
            e.starts_with("incidents.json: ") && e.contains("line 3"),
            "{e}"
        );
        let e = parse(r#"{"incident": []}"#).expect_err("typo").to_string();
        assert!(e.contains("unknown field `incident`"), "{e}");
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let e = Labels::load(Path::new("/nonexistent/labels.json")).expect_err("missing");
        assert!(e
            .to_string()
            .starts_with("cannot read the labels file /nonexistent/labels.json"));
    }

    fn checked(incident: &str) -> Result<(), String> {
        let text = format!(r#"{{"incidents": [{{"id": "x", {SPAN}, {incident}}}]}}"#);
        parse(&text)
            .expect("valid file")
            .check(&shop(), 0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn incidents_naming_kpis_and_labels_of_the_config_pass_the_check() {
        assert_eq!(
            checked(r#""kpis": ["checkouts*"], "labels": {"country": "FI"}"#),
            Ok(())
        );
    }

    #[test]
    fn a_kpi_glob_that_matches_no_kpi_of_the_config_is_refused_with_the_kpis() {
        let e = checked(r#""kpis": ["checkouts", "chekouts_*"]"#).expect_err("typo");
        assert!(
            e.contains("incident \"x\": `kpis`: \"chekouts_*\" matches no [[kpi]] of the config; use one of: checkouts, checkouts_by_country, refunds, logins"),
            "{e}"
        );
    }

    #[test]
    fn an_incident_on_another_topics_kpis_only_is_refused() {
        let e = checked(r#""kpis": ["logins"]"#).expect_err("other topic");
        assert!(e.contains("`kpis` names no KPI of topic \"shop\""), "{e}");
    }

    #[test]
    fn a_label_that_no_named_kpi_groups_by_is_refused_with_the_fields() {
        let e = checked(r#""kpis": ["checkouts*"], "labels": {"contry": "FI"}"#).expect_err("typo");
        assert!(
            e.contains("`labels`: \"contry\" is not a group_by field of checkouts, checkouts_by_country; use one of: country"),
            "{e}"
        );
        let e = checked(r#""kpis": ["checkouts"], "labels": {"country": "FI"}"#)
            .expect_err("ungrouped");
        assert!(e.contains("they are not grouped"), "{e}");
    }

    #[test]
    fn expected_events_and_false_alerts_are_checked_against_the_config_too() {
        for (key, what) in [
            ("expected", "expected event"),
            ("false_alerts", "false alert"),
        ] {
            let text = format!(r#"{{"{key}": [{{"id": "x", {SPAN}, "kpis": ["chekouts"]}}]}}"#);
            let e = parse(&text)
                .unwrap()
                .check(&shop(), 0)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("{what} \"x\": `kpis`: \"chekouts\" matches no")),
                "{e}"
            );
        }
    }
}
