//! Calendars of expected events: public holidays, Black Friday, a planned
//! migration. A KPI names the calendars it follows (`calendars = [...]`);
//! during one, its alerts are muted or judged against a wider band, and its
//! buckets are not learnt, so next year's normal is not bent by them.
//!
//! - [`Calendar`] — a named set of spans in a time zone: whole local days
//!   (`dates`), spans with times (`spans`), and recurring days or windows
//!   (`every`: a yearly date such as "12-25", or a weekly window such as
//!   "sun 02:00-04:00"). The recurring ones are
//!   [`crate::notify::timewindow::TimeWindow`]s, the same recurrence the
//!   notification windows use, read on the calendar's wall clock.
//! - [`Effect`] / [`CalendarUse`] — what a calendar does to one KPI: mute
//!   its alerts, or widen its band (evidence `N` times rarer needed).
//! - [`during`] — the effect on one bucket of a KPI, from every calendar it
//!   names (mute wins over widen; the widest widen wins).
//! - `parse_*` — the config syntax, used by `config::calendar`.
//!
//! Times are epoch seconds inside; text exists only at the config edge.

use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

use crate::notify::timewindow::{self, TimeWindow};

/// A named calendar of expected events.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    /// Unique name KPIs refer to.
    pub name: String,
    /// The zone whose wall clock dates and times are read on.
    pub timezone: Tz,
    /// Fixed spans `[start, end)` in epoch seconds, sorted by start and
    /// merged where they overlap or touch.
    pub fixed: Vec<(i64, i64)>,
    /// Recurring days and windows (yearly dates, weekly windows), in
    /// `timezone`.
    pub recurring: Vec<TimeWindow>,
}

impl Calendar {
    /// An empty calendar in `timezone`.
    pub fn new(name: &str, timezone: Tz) -> Self {
        Self {
            name: name.to_string(),
            timezone,
            fixed: Vec::new(),
            recurring: Vec::new(),
        }
    }

    /// Adds the fixed span `[start, end)`, keeping `fixed` sorted and merged.
    pub fn add_span(&mut self, start: i64, end: i64) {
        if end <= start {
            return;
        }
        self.fixed.push((start, end));
        self.fixed.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(self.fixed.len());
        for &(s, e) in &self.fixed {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.fixed = merged;
    }

    /// Adds the whole local day `date` (local midnight to local midnight,
    /// 23 or 25 hours on the days the clocks change).
    pub fn add_day(&mut self, date: NaiveDate) {
        let start = start_of_day(self.timezone, date);
        let end = date
            .checked_add_days(Days::new(1))
            .map_or(start + 86_400, |next| start_of_day(self.timezone, next));
        self.add_span(start, end);
    }

    /// Whether the instant `t` (epoch seconds) is inside the calendar.
    pub fn contains(&self, t: i64) -> bool {
        let i = self.fixed.partition_point(|&(_, e)| e <= t);
        self.fixed.get(i).is_some_and(|&(s, _)| s <= t)
            || self.recurring.iter().any(|w| w.contains(t))
    }

    /// Whether any instant of `[start, end)` is inside the calendar.
    /// Recurring windows are minute-granular, so each minute of the span is
    /// looked at (a day bucket: 1,440 lookups, once per KPI and bucket).
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        let i = self.fixed.partition_point(|&(_, e)| e <= start);
        if self.fixed.get(i).is_some_and(|&(s, _)| s < end) {
            return true;
        }
        if self.recurring.is_empty() {
            return false;
        }
        let mut m = start;
        while m < end {
            if self.recurring.iter().any(|w| w.contains(m)) {
                return true;
            }
            // The next whole minute.
            m = (m.div_euclid(60) + 1) * 60;
        }
        false
    }

    /// The calendar's spans that meet `[from, to)`, clipped to it, in time
    /// order and merged: what a report shows.
    pub fn spans(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = self
            .fixed
            .iter()
            .filter(|&&(s, e)| s < to && e > from)
            .map(|&(s, e)| (s.max(from), e.min(to)))
            .collect();
        if !self.recurring.is_empty() {
            let mut open: Option<i64> = None;
            let mut m = from;
            while m < to {
                let next = ((m.div_euclid(60) + 1) * 60).min(to);
                let inside = self.recurring.iter().any(|w| w.contains(m));
                match (inside, open) {
                    (true, None) => open = Some(m),
                    (false, Some(s)) => {
                        out.push((s, m));
                        open = None;
                    }
                    _ => {}
                }
                m = next;
            }
            if let Some(s) = open {
                out.push((s, to));
            }
            out.sort_unstable();
            let mut merged: Vec<(i64, i64)> = Vec::with_capacity(out.len());
            for (s, e) in out {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            out = merged;
        }
        out
    }
}

/// What a calendar does to a KPI while it lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// No alert fires (nor "events stopped"); an alert already firing stays
    /// firing and resolves as usual when the series is back to normal.
    Mute,
    /// Alerts need evidence this many times rarer than the KPI's alert
    /// level: as if `false_alarms` were divided by it.
    Widen(f64),
}

/// One calendar as a KPI names it.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarUse {
    /// The calendar, shared by every KPI that names it.
    pub calendar: Arc<Calendar>,
    /// What it does to this KPI.
    pub effect: Effect,
}

/// The effect on the bucket `[start, end)` of the calendars a KPI names,
/// with the calendar it comes from; None outside all of them. Mute wins
/// over widen, and the widest widen over narrower ones.
pub fn during(uses: &[CalendarUse], start: i64, end: i64) -> Option<(Effect, &str)> {
    let mut best: Option<(Effect, &str)> = None;
    for u in uses {
        if !u.calendar.overlaps(start, end) {
            continue;
        }
        let stronger = match (best.map(|b| b.0), u.effect) {
            (None, _) => true,
            (Some(Effect::Mute), _) => false,
            (Some(Effect::Widen(_)), Effect::Mute) => true,
            (Some(Effect::Widen(a)), Effect::Widen(b)) => b > a,
        };
        if stronger {
            best = Some((u.effect, u.calendar.name.as_str()));
        }
    }
    best
}

/// The instant a local day starts: its midnight, or the first minute that
/// exists when the clocks skip midnight (a few zones change at 00:00).
pub fn start_of_day(tz: Tz, date: NaiveDate) -> i64 {
    let mut local = date.and_time(NaiveTime::MIN);
    for _ in 0..=24 * 4 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.timestamp();
        }
        local += chrono::Duration::minutes(15);
    }
    date.and_time(NaiveTime::MIN).and_utc().timestamp()
}

/// A local date, "2026-12-25".
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a date; write \"YYYY-MM-DD\", e.g. \"2026-12-25\""))
}

/// A local date and time, "2026-11-27T00:00" (seconds optional, a space
/// instead of the T allowed), or a date alone for its midnight.
pub fn parse_local(text: &str) -> Result<NaiveDateTime, String> {
    let t = text.trim();
    for format in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(d);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_time(NaiveTime::MIN));
    }
    Err(format!(
        "{text:?} is not a local date and time; write \"YYYY-MM-DDTHH:MM\", e.g. \"2026-11-27T00:00\" (in the calendar's timezone, no offset)"
    ))
}

/// The instant of local time `local` in `tz`; refuses a time the clocks
/// skip. A time that happens twice (autumn) is its first occurrence.
pub fn local_instant(tz: Tz, local: NaiveDateTime) -> Result<i64, String> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.timestamp())
        .ok_or_else(|| {
            format!(
                "{} does not exist in {} (the clocks skip it); write the hour after the change",
                local.format("%Y-%m-%dT%H:%M"),
                tz.name()
            )
        })
}

/// One `every` entry: a yearly date "12-25" (month-day), optionally with
/// times "12-24 14:00-24:00"; or weekdays with optional times: "sun",
/// "sat-sun", "sun 02:00-04:00", "mon-fri 22:00-02:00".
pub fn parse_every(text: &str, tz: Tz) -> Result<TimeWindow, String> {
    let help = "write a yearly date \"MM-DD\" (e.g. \"12-25\"), weekdays (\"sun\", \"sat-sun\"), either optionally with times (\"12-24 14:00-24:00\", \"sun 02:00-04:00\")";
    let t = text.trim();
    let (day, times) = match t.split_once(char::is_whitespace) {
        Some((d, rest)) => (d, Some(rest.trim())),
        None => (t, None),
    };
    let mut w = TimeWindow {
        timezone: tz,
        ..TimeWindow::always(text)
    };
    if let Some(times) = times {
        w.times = times
            .split(',')
            .map(timewindow::parse_time_range)
            .collect::<Result<_, _>>()?;
    }
    let yearly = day
        .split_once('-')
        .and_then(|(m, d)| Some((m.parse::<u32>().ok()?, d.parse::<u32>().ok()?)));
    match yearly {
        Some((month, dom)) => {
            // 2024 is a leap year: "02-29" is a date (it recurs every
            // four years).
            if NaiveDate::from_ymd_opt(2024, month, dom).is_none() {
                return Err(format!(
                    "{text:?}: {month:02}-{dom:02} is not a date; {help}"
                ));
            }
            w.months = 1 << (month - 1);
            w.days_of_month = vec![(dom as i8, dom as i8)];
        }
        None => {
            w.weekdays = timewindow::parse_weekdays(day)
                .map_err(|_| format!("{text:?} is not a recurring day; {help}"))?;
        }
    }
    Ok(w)
}

/// Describes a span in the calendar's zone for people: "2026-12-25 00:00 –
/// 2026-12-26 00:00 Europe/Berlin".
pub fn describe(tz: Tz, start: i64, end: i64) -> String {
    let at = |t: i64| {
        tz.timestamp_opt(t, 0)
            .earliest()
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| t.to_string())
    };
    format!("{} – {} {}", at(start), at(end), tz.name())
}

/// The local date of instant `t` in `tz` (for tests and reports).
pub fn local_date(tz: Tz, t: i64) -> Option<NaiveDate> {
    tz.timestamp_opt(t, 0)
        .earliest()
        .map(|d| NaiveDate::from_ymd_opt(d.year(), d.month(), d.day()).expect("a date chrono made"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Tz {
        "Europe/Berlin".parse().expect("a zone")
    }

    fn at(tz: Tz, text: &str) -> i64 {
        local_instant(tz, parse_local(text).unwrap()).unwrap()
    }

    #[test]
    fn a_date_is_the_whole_local_day_and_the_clock_change_day_is_23_hours() {
        let mut c = Calendar::new("de", berlin());
        c.add_day(parse_date("2026-12-25").unwrap());
        c.add_day(parse_date("2026-03-29").unwrap());
        assert!(!c.contains(at(berlin(), "2026-12-24T23:59")));
        assert!(c.contains(at(berlin(), "2026-12-25T00:00")));
        assert!(c.contains(at(berlin(), "2026-12-25T23:59")));
        assert!(!c.contains(at(berlin(), "2026-12-26T00:00")));
        let spring = c.fixed[0];
        assert_eq!(spring.1 - spring.0, 23 * 3600);
    }

    #[test]
    fn touching_days_merge_into_one_span() {
        let mut c = Calendar::new("de", berlin());
        c.add_day(parse_date("2026-12-26").unwrap());
        c.add_day(parse_date("2026-12-25").unwrap());
        assert_eq!(c.fixed.len(), 1);
        assert_eq!(c.fixed[0].1 - c.fixed[0].0, 2 * 86_400);
    }

    #[test]
    fn yearly_dates_recur_and_weekly_windows_keep_their_hours() {
        let mut c = Calendar::new("x", berlin());
        c.recurring.push(parse_every("12-25", berlin()).unwrap());
        c.recurring
            .push(parse_every("sun 02:00-04:00", berlin()).unwrap());
        assert!(c.contains(at(berlin(), "2031-12-25T12:00")));
        assert!(!c.contains(at(berlin(), "2031-12-26T12:00")));
        // Sunday 2026-12-06.
        assert!(c.contains(at(berlin(), "2026-12-06T03:00")));
        assert!(!c.contains(at(berlin(), "2026-12-06T04:00")));
        assert!(c.overlaps(
            at(berlin(), "2026-12-06T03:55"),
            at(berlin(), "2026-12-06T04:05")
        ));
        assert!(!c.overlaps(
            at(berlin(), "2026-12-06T04:00"),
            at(berlin(), "2026-12-06T04:05")
        ));
        let spans = c.spans(
            at(berlin(), "2026-12-01T00:00"),
            at(berlin(), "2027-01-01T00:00"),
        );
        // Four Sundays (6, 13, 20, 27) and Christmas Day.
        assert_eq!(spans.len(), 5, "{spans:?}");
        assert!(spans.contains(&(
            at(berlin(), "2026-12-25T00:00"),
            at(berlin(), "2026-12-26T00:00")
        )));
    }

    #[test]
    fn parsers_refuse_with_the_fix() {
        assert!(parse_date("25.12.2026").unwrap_err().contains("YYYY-MM-DD"));
        assert!(parse_local("2026-11-27 noon")
            .unwrap_err()
            .contains("YYYY-MM-DDTHH:MM"));
        assert!(parse_every("02-30", berlin())
            .unwrap_err()
            .contains("not a date"));
        assert!(parse_every("someday", berlin())
            .unwrap_err()
            .contains("MM-DD"));
        assert!(parse_every("02-29", berlin()).is_ok());
        let gap = local_instant(berlin(), parse_local("2026-03-29T02:30").unwrap());
        assert!(gap.unwrap_err().contains("skip"));
    }

    #[test]
    fn mute_wins_over_widen_and_the_widest_widen_wins() {
        let day = |name: &str| {
            let mut c = Calendar::new(name, Tz::UTC);
            c.add_span(0, 86_400);
            Arc::new(c)
        };
        let uses = vec![
            CalendarUse {
                calendar: day("a"),
                effect: Effect::Widen(10.0),
            },
            CalendarUse {
                calendar: day("b"),
                effect: Effect::Widen(100.0),
            },
        ];
        assert_eq!(during(&uses, 0, 300), Some((Effect::Widen(100.0), "b")));
        let mut with_mute = uses.clone();
        with_mute.push(CalendarUse {
            calendar: day("c"),
            effect: Effect::Mute,
        });
        assert_eq!(during(&with_mute, 0, 300), Some((Effect::Mute, "c")));
        assert_eq!(during(&with_mute, 86_400, 86_700), None);
    }
}
