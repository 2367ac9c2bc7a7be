//! Validation of `[[calendar]]` sections and of the `calendars` a KPI (or
//! `[defaults]`) names, into [`crate::calendar`] types. Every refusal
//! points at the value and says what to write.

use std::collections::HashMap;
use std::sync::Arc;

use chrono_tz::Tz;
use toml::Spanned;

use super::raw::{CalendarToml, ConfigToml, KpiToml};
use super::{ConfigError, Source};
use crate::calendar::{self, Calendar, CalendarUse, Effect};

/// Largest `widen`: evidence a trillion times rarer is already beyond what
/// any bucket can show; more would be a typo.
const WIDEN_MAX: f64 = 1e12;

/// Calendars by name, shared by the KPIs that name them.
pub type Calendars = HashMap<String, Arc<Calendar>>;

/// Every `[[calendar]]` of the file.
pub fn calendars(src: &Source<'_>, raw: &ConfigToml) -> Result<Calendars, ConfigError> {
    let mut out = Calendars::new();
    for c in &raw.calendars {
        let cal = one(src, c)?;
        if out.contains_key(&cal.name) {
            let span = c.get_ref().name.as_ref().map_or(c.span(), Spanned::span);
            return Err(src.error(
                span,
                format!(
                    "calendar {:?} is defined twice; keep one [[calendar]] per name (it may list many dates)",
                    cal.name
                ),
            ));
        }
        out.insert(cal.name.clone(), Arc::new(cal));
    }
    Ok(out)
}

/// A date or time written as a string or as a TOML date.
fn text_of(src: &Source<'_>, v: &Spanned<toml::Value>, key: &str) -> Result<String, ConfigError> {
    match v.get_ref() {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        other => Err(src.error(
            v.span(),
            format!(
                "{key} = {other} is not a date; write \"2026-12-25\" (or a time \"2026-11-27T00:00\" in spans)"
            ),
        )),
    }
}

fn one(src: &Source<'_>, c: &Spanned<CalendarToml>) -> Result<Calendar, ConfigError> {
    let t = c.get_ref();
    let Some(name_s) = &t.name else {
        return Err(src.error(
            c.span(),
            "a [[calendar]] has no `name`; give it a unique name that KPIs use in `calendars`",
        ));
    };
    let name = name_s.get_ref().trim();
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'));
    if !ok {
        return Err(src.error(
            name_s.span(),
            format!("calendar name {name:?} must be letters, digits, '_', '-' or '.'"),
        ));
    }
    let tz = match &t.timezone {
        None => Tz::UTC,
        Some(z) => z.get_ref().parse::<Tz>().map_err(|_| {
            src.error(
                z.span(),
                format!(
                    "timezone = {:?} is not an IANA time zone; write e.g. \"Europe/Berlin\" or \"UTC\"",
                    z.get_ref()
                ),
            )
        })?,
    };
    let mut cal = Calendar::new(name, tz);
    for d in t.dates.iter().flatten() {
        let text = text_of(src, d, "dates")?;
        let date =
            calendar::parse_date(&text).map_err(|e| src.error(d.span(), format!("dates: {e}")))?;
        cal.add_day(date);
    }
    for s in t.spans.iter().flatten() {
        let span = s.get_ref();
        let instant = |v: &Option<Spanned<toml::Value>>, key: &str| -> Result<i64, ConfigError> {
            let Some(v) = v else {
                return Err(src.error(
                    s.span(),
                    format!("a span has no `{key}`; write {{ start = \"2026-11-27T00:00\", end = \"2026-11-28T06:00\" }} (local times)"),
                ));
            };
            let text = text_of(src, v, key)?;
            calendar::parse_local(&text)
                .and_then(|l| calendar::local_instant(tz, l))
                .map_err(|e| src.error(v.span(), format!("spans: {key}: {e}")))
        };
        let (start, end) = (instant(&span.start, "start")?, instant(&span.end, "end")?);
        if end <= start {
            let at = span.end.as_ref().map_or(s.span(), Spanned::span);
            return Err(src.error(
                at,
                "spans: `end` is not after `start`; the end is the first local time outside the span, e.g. start = \"2026-11-27T00:00\", end = \"2026-11-28T06:00\"",
            ));
        }
        cal.add_span(start, end);
    }
    for e in t.every.iter().flatten() {
        let w = calendar::parse_every(e.get_ref(), tz)
            .map_err(|m| src.error(e.span(), format!("every: {m}")))?;
        cal.recurring.push(w);
    }
    if cal.fixed.is_empty() && cal.recurring.is_empty() {
        return Err(src.error(
            name_s.span(),
            format!("calendar {name:?} lists no days; add dates = [\"2026-12-25\"], spans = [{{ start = \"...\", end = \"...\" }}] or every = [\"12-25\"]"),
        ));
    }
    Ok(cal)
}

/// The calendars a KPI names (its own `calendars`, else `[defaults]`'s),
/// with their effects.
pub fn uses(
    src: &Source<'_>,
    k: &KpiToml,
    d: &KpiToml,
    known: &Calendars,
) -> Result<Vec<CalendarUse>, ConfigError> {
    let Some(list) = k.calendars.as_ref().or(d.calendars.as_ref()) else {
        return Ok(Vec::new());
    };
    let help = "write calendars = [\"de-holidays\"] (alerts muted during it) or calendars = [{ name = \"black-friday\", widen = 100 }] (evidence 100 times rarer needed)";
    let mut out: Vec<CalendarUse> = Vec::new();
    for v in list.get_ref() {
        let (name, name_span, effect) = match v.get_ref() {
            toml::Value::String(s) => (s.clone(), v.span(), Effect::Mute),
            toml::Value::Table(t) => {
                if let Some(key) = t
                    .keys()
                    .find(|key| !matches!(key.as_str(), "name" | "widen"))
                {
                    return Err(
                        src.error(v.span(), format!("calendars: unknown key `{key}`; {help}"))
                    );
                }
                let Some(toml::Value::String(name)) = t.get("name") else {
                    return Err(src.error(
                        v.span(),
                        format!("calendars: an entry has no `name`; {help}"),
                    ));
                };
                let effect = match t.get("widen") {
                    None => Effect::Mute,
                    Some(w) => {
                        let n = match w {
                            toml::Value::Integer(i) => *i as f64,
                            toml::Value::Float(f) => *f,
                            _ => f64::NAN,
                        };
                        if !(n > 1.0 && n <= WIDEN_MAX) {
                            return Err(src.error(
                                v.span(),
                                format!("calendars: widen = {w} is out of range; use a number above 1 and at most 1e12: how many times rarer the evidence must be during the calendar (100 = as if false_alarms were 100 times fewer)"),
                            ));
                        }
                        Effect::Widen(n)
                    }
                };
                (name.clone(), v.span(), effect)
            }
            _ => return Err(src.error(v.span(), format!("calendars: {help}"))),
        };
        let Some(calendar) = known.get(&name) else {
            let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
            names.sort_unstable();
            let add = if names.is_empty() {
                format!("add a [[calendar]] with name = {name:?} and its dates")
            } else {
                format!(
                    "add a [[calendar]] with that name, or use one of: {}",
                    names.join(", ")
                )
            };
            return Err(src.error(
                name_span,
                format!("calendar {name:?} is not defined; {add}"),
            ));
        };
        if out.iter().any(|u| u.calendar.name == name) {
            return Err(src.error(
                name_span,
                format!("calendar {name:?} is named twice; name it once"),
            ));
        }
        out.push(CalendarUse {
            calendar: Arc::clone(calendar),
            effect,
        });
    }
    Ok(out)
}
