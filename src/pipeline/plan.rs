//! Routing: which KPIs an event counts towards, in which series, with what.
//!
//! A [`TopicPlan`] is compiled once per topic from the config: every path
//! its KPIs read gets an [`Extractor`] slot, and each event KPI becomes a
//! [`Route`] of slot-indexed conditions, group-by slots and a value slot.
//! Per event, [`TopicPlan::read`] extracts the fields once and every route
//! reads from the same slots.

use std::fmt::Write as _;

use crate::config::model::{Aggregate, Config, Measure, Scalar, Test, TimeFormat};
use crate::telemetry::{BadValue, RejectReason};
use crate::timefmt;

use super::extract::{ExtractError, Extractor, Field};
use super::window::{Contribution, KEY_SEPARATOR};

/// One event KPI's view of an event.
#[derive(Debug, Clone)]
pub struct Route {
    /// Index of the KPI in the config.
    pub kpi: usize,
    conditions: Vec<(usize, Test)>,
    group_slots: Vec<usize>,
    value_slot: Option<usize>,
    distinct: bool,
}

/// What a route makes of an event.
#[derive(Debug, PartialEq)]
pub enum Routed<'e> {
    /// The filter does not match.
    NoMatch,
    /// Counts towards the series, with this contribution.
    Match(Contribution<'e>),
    /// Counts towards the series of a distinct KPI whose field is a number
    /// (the reader writes it as text).
    NumberItem(f64),
    /// Matches, but the aggregated field cannot be aggregated: skipped,
    /// and counted by why.
    BadValue(BadValue),
}

/// The compiled plan of one topic.
#[derive(Debug, Clone)]
pub struct TopicPlan {
    /// Index of the topic in the config.
    pub topic: usize,
    extractor: Extractor,
    time_slot: usize,
    time_format: TimeFormat,
    /// Event KPIs reading this topic.
    pub routes: Vec<Route>,
}

fn scalar_eq(f: &Field<'_>, s: &Scalar) -> bool {
    match (f, s) {
        (Field::Str(a), Scalar::Str(b)) => a == b,
        (Field::Num(a), Scalar::Num(b)) => a == b,
        (Field::Bool(a), Scalar::Bool(b)) => a == b,
        _ => false,
    }
}

fn passes(f: &Field<'_>, t: &Test) -> bool {
    match t {
        Test::Equals(s) => scalar_eq(f, s),
        Test::NotEquals(s) => !scalar_eq(f, s),
        Test::In(list) => list.iter().any(|s| scalar_eq(f, s)),
        Test::Exists(want) => f.exists() == *want,
    }
}

impl TopicPlan {
    /// Compiles the plan of topic number `topic`.
    pub fn new(config: &Config, topic: usize) -> Self {
        let mut extractor = Extractor::new();
        let time_slot = extractor.add(&config.topics[topic].time_field);
        let mut routes = Vec::new();
        for (kpi, def) in config.kpis.iter().enumerate() {
            let Measure::Events { filter, aggregate } = &def.measure else {
                continue;
            };
            if def.topic != topic {
                continue;
            }
            routes.push(Route {
                kpi,
                conditions: filter
                    .iter()
                    .map(|c| (extractor.add(&c.field), c.test.clone()))
                    .collect(),
                group_slots: def.group_by.iter().map(|g| extractor.add(g)).collect(),
                value_slot: aggregate.field().map(|f| extractor.add(f)),
                distinct: matches!(aggregate, Aggregate::Distinct(_)),
            });
        }
        Self {
            topic,
            extractor,
            time_slot,
            time_format: config.topics[topic].time_format,
            routes,
        }
    }

    /// Extracts `payload`'s fields into `fields` and returns its event time
    /// (epoch seconds).
    pub fn read<'e>(
        &self,
        payload: &'e [u8],
        fields: &mut Vec<Field<'e>>,
    ) -> Result<i64, RejectReason> {
        self.extractor
            .extract(payload, fields)
            .map_err(|e| match e {
                ExtractError::InvalidJson => RejectReason::InvalidJson,
                ExtractError::NotAnObject => RejectReason::NotAnObject,
            })?;
        event_time(&fields[self.time_slot], self.time_format)
    }

    /// What `route` makes of an event whose fields were read into `fields`;
    /// writes the series key into `key`.
    pub fn route<'e>(
        &self,
        route: &Route,
        fields: &'e [Field<'e>],
        key: &mut String,
    ) -> Routed<'e> {
        if !route
            .conditions
            .iter()
            .all(|(slot, t)| passes(&fields[*slot], t))
        {
            return Routed::NoMatch;
        }
        key.clear();
        for (i, slot) in route.group_slots.iter().enumerate() {
            if i > 0 {
                key.push(KEY_SEPARATOR);
            }
            match &fields[*slot] {
                Field::Str(s) => key.push_str(s),
                Field::Num(n) => {
                    let _ = write!(key, "{n}");
                }
                Field::Bool(b) => key.push_str(if *b { "true" } else { "false" }),
                Field::Missing | Field::Null | Field::Object | Field::Array => {}
            }
        }
        let Some(slot) = route.value_slot else {
            return Routed::Match(Contribution::Event);
        };
        // sum/avg/min/max take numbers; distinct takes any scalar.
        match (&fields[slot], route.distinct) {
            (Field::Num(n), false) if n.is_finite() => Routed::Match(Contribution::Value(*n)),
            (Field::Num(_), false) => Routed::BadValue(BadValue::NotFinite),
            (Field::Num(n), true) => Routed::NumberItem(*n),
            (Field::Str(s), true) => Routed::Match(Contribution::Item(s)),
            (Field::Bool(b), true) => {
                Routed::Match(Contribution::Item(if *b { "true" } else { "false" }))
            }
            (Field::Str(_), false) => Routed::BadValue(BadValue::String),
            (Field::Bool(_), false) => Routed::BadValue(BadValue::Boolean),
            (Field::Missing, _) => Routed::BadValue(BadValue::Missing),
            (Field::Null, _) => Routed::BadValue(BadValue::Null),
            (Field::Array, _) => Routed::BadValue(BadValue::Array),
            (Field::Object, _) => Routed::BadValue(BadValue::Object),
        }
    }
}

/// Reads an event time in `format`.
fn event_time(f: &Field<'_>, format: TimeFormat) -> Result<i64, RejectReason> {
    let number = |f: &Field<'_>| match f {
        Field::Num(n) => Some(*n),
        Field::Str(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    if matches!(f, Field::Missing | Field::Null) {
        return Err(RejectReason::MissingTime);
    }
    let secs = match format {
        TimeFormat::Rfc3339 => match f {
            Field::Str(s) => timefmt::parse(s).map(|t| t.epoch as f64),
            _ => None,
        },
        TimeFormat::EpochSeconds => number(f),
        TimeFormat::EpochMillis => number(f).map(|ms| ms / 1000.0),
    };
    match secs {
        // Years 1970..=9999: anything else is a broken clock or wrong unit.
        Some(s) if (0.0..253_402_300_800.0).contains(&s) => Ok(s.floor() as i64),
        _ => Err(RejectReason::BadTime),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{validate, Source};
    use std::path::Path;

    fn plan(toml: &str) -> TopicPlan {
        let config = validate(&Source::new(Path::new("t.toml"), toml)).unwrap();
        TopicPlan::new(&config, 0)
    }

    const SHOP: &str = r#"
[[topic]]
name = "shop"
time_field = "ts"

[[kpi]]
name = "checkouts"
where = { type = "checkout", platform = { not = "bot" } }
aggregate = "count"
group_by = ["geo.country"]

[[kpi]]
name = "revenue"
where = { type = { in = ["payment", "refund"] } }
aggregate = "sum"
field = "amount"
"#;

    #[test]
    fn an_event_matches_its_kpis_with_the_right_series_and_value() {
        let p = plan(SHOP);
        let json = br#"{"ts":"2024-01-01T00:00:10Z","type":"checkout","geo":{"country":"FI"},"platform":"web"}"#;
        let mut fields = Vec::new();
        assert_eq!(p.read(json, &mut fields), Ok(1_704_067_210));
        let mut key = String::new();
        assert_eq!(
            p.route(&p.routes[0], &fields, &mut key),
            Routed::Match(Contribution::Event)
        );
        assert_eq!(key, "FI");
        assert_eq!(p.route(&p.routes[1], &fields, &mut key), Routed::NoMatch);
    }

    #[test]
    fn not_equals_excludes_and_absent_fields_pass_it() {
        let p = plan(SHOP);
        let mut fields = Vec::new();
        let mut key = String::new();
        p.read(
            br#"{"ts":"2024-01-01T00:00:00Z","type":"checkout","platform":"bot"}"#,
            &mut fields,
        )
        .unwrap();
        assert_eq!(p.route(&p.routes[0], &fields, &mut key), Routed::NoMatch);
        p.read(
            br#"{"ts":"2024-01-01T00:00:00Z","type":"checkout"}"#,
            &mut fields,
        )
        .unwrap();
        assert_eq!(
            p.route(&p.routes[0], &fields, &mut key),
            Routed::Match(Contribution::Event)
        );
        assert_eq!(key, "", "a missing group-by field is an empty label");
    }

    #[test]
    fn a_sum_over_a_missing_or_textual_field_is_a_bad_value() {
        let p = plan(SHOP);
        let mut fields = Vec::new();
        let mut key = String::new();
        p.read(
            br#"{"ts":"2024-01-01T00:00:00Z","type":"payment","amount":"12"}"#,
            &mut fields,
        )
        .unwrap();
        assert_eq!(
            p.route(&p.routes[1], &fields, &mut key),
            Routed::BadValue(BadValue::String)
        );
        p.read(
            br#"{"ts":"2024-01-01T00:00:00Z","type":"refund","amount":-3.5}"#,
            &mut fields,
        )
        .unwrap();
        assert_eq!(
            p.route(&p.routes[1], &fields, &mut key),
            Routed::Match(Contribution::Value(-3.5))
        );
    }

    #[test]
    fn event_time_problems_have_reasons() {
        let p = plan(SHOP);
        let mut fields = Vec::new();
        assert_eq!(
            p.read(br#"{"type":"x"}"#, &mut fields),
            Err(RejectReason::MissingTime)
        );
        assert_eq!(
            p.read(br#"{"ts":"yesterday"}"#, &mut fields),
            Err(RejectReason::BadTime)
        );
        assert_eq!(
            p.read(br#"{"ts":12}"#, &mut fields),
            Err(RejectReason::BadTime)
        );
        assert_eq!(p.read(b"[]", &mut fields), Err(RejectReason::NotAnObject));
        assert_eq!(
            p.read(b"{\"ts\":", &mut fields),
            Err(RejectReason::InvalidJson)
        );
    }

    #[test]
    fn epoch_formats_are_read() {
        const COUNT: &str = "[[kpi]]\nname = \"events\"\naggregate = \"count\"\n";
        let mut fields = Vec::new();
        let secs = plan(&format!(
            "[[topic]]\nname = \"t\"\ntime_format = \"epoch_seconds\"\n{COUNT}"
        ));
        assert_eq!(
            secs.read(br#"{"time":1704067200.9}"#, &mut fields),
            Ok(1_704_067_200)
        );
        let ms = plan(&format!(
            "[[topic]]\nname = \"t\"\ntime_format = \"epoch_millis\"\n{COUNT}"
        ));
        assert_eq!(
            ms.read(br#"{"time":1704067200500}"#, &mut fields),
            Ok(1_704_067_200)
        );
    }
}
