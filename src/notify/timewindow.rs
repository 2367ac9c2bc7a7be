//! Recurring time windows in a time zone, like Alertmanager's
//! `time_intervals`: "weekdays 08:00-20:00 Europe/Helsinki", "Sundays
//! 02:00-04:00". Subscriptions send only inside their `active_during`
//! windows and never inside their `mute_during` ones.
//!
//! - [`TimeWindow`] — days (weekdays, days of the month, months) and times
//!   of day, read on the wall clock of its zone; [`TimeWindow::contains`]
//!   answers for an instant. DST days follow the wall clock: 08:00-20:00
//!   is 12 hours of local time whatever the offset.
//! - [`TimeRange`] — one `HH:MM-HH:MM` span; a span that ends before it
//!   starts ("22:00-02:00") crosses midnight and belongs to the day it
//!   starts on.
//! - `parse_*` — the config syntax, used by `config::notify`.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use chrono_tz::Tz;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Minutes of the day `[start, end)`; `end` may be 1440 ("24:00"), and an
/// `end` before `start` crosses midnight into the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// First minute inside, 0-1439.
    pub start: u16,
    /// First minute outside, 1-1440.
    pub end: u16,
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// A named recurring time window.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeWindow {
    /// Unique name.
    pub name: String,
    /// Bit `i` set for weekday `i` (0 = Monday); 0x7f is every day.
    pub weekdays: u8,
    /// Inclusive day-of-month ranges; negative days count from the end
    /// (-1 is the last day). Empty: every day.
    pub days_of_month: Vec<(i8, i8)>,
    /// Bit `i` set for month `i` (0 = January); 0xfff is every month.
    pub months: u16,
    /// Times of day; empty is the whole day.
    pub times: Vec<TimeRange>,
    /// The zone whose wall clock the window is read on.
    pub timezone: Tz,
}

impl TimeWindow {
    /// Every day, all day, UTC: a starting point to narrow.
    pub fn always(name: &str) -> Self {
        Self {
            name: name.to_string(),
            weekdays: 0x7f,
            days_of_month: Vec::new(),
            months: 0xfff,
            times: Vec::new(),
            timezone: Tz::UTC,
        }
    }

    /// Whether the instant `epoch_secs` is inside the window.
    pub fn contains(&self, epoch_secs: i64) -> bool {
        let Some(utc) = DateTime::from_timestamp(epoch_secs, 0) else {
            return false;
        };
        let local = utc.with_timezone(&self.timezone).naive_local();
        let date = local.date();
        let minute = (local.hour() * 60 + local.minute()) as u16;
        if self.times.is_empty() {
            return self.day_matches(date);
        }
        self.times.iter().any(|r| {
            if r.start < r.end {
                (r.start..r.end).contains(&minute) && self.day_matches(date)
            } else {
                // Crosses midnight: the evening of a listed day, or the
                // early hours after one.
                (minute >= r.start && self.day_matches(date))
                    || (minute < r.end && date.pred_opt().is_some_and(|d| self.day_matches(d)))
            }
        })
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let weekday = date.weekday().num_days_from_monday();
        if self.weekdays & (1 << weekday) == 0 || self.months & (1 << date.month0()) == 0 {
            return false;
        }
        if self.days_of_month.is_empty() {
            return true;
        }
        let last = days_in_month(date);
        let day = date.day() as i32;
        let resolve = |d: i8| {
            if d < 0 {
                last + 1 + i32::from(d)
            } else {
                i32::from(d)
            }
        };
        self.days_of_month
            .iter()
            .any(|&(a, b)| (resolve(a)..=resolve(b)).contains(&day))
    }
}

fn days_in_month(date: NaiveDate) -> i32 {
    let (y, m) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day() as i32)
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (", self.name)?;
        let mut parts = Vec::new();
        if self.weekdays != 0x7f {
            let days: Vec<&str> = (0..7)
                .filter(|i| self.weekdays & (1 << i) != 0)
                .map(|i| DAYS[i])
                .collect();
            parts.push(days.join(","));
        }
        if !self.days_of_month.is_empty() {
            let days: Vec<String> = self
                .days_of_month
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        format!("{a}")
                    } else {
                        format!("{a}:{b}")
                    }
                })
                .collect();
            parts.push(format!("days {}", days.join(",")));
        }
        if self.months != 0xfff {
            let months: Vec<&str> = (0..12)
                .filter(|i| self.months & (1 << i) != 0)
                .map(|i| MONTHS[i])
                .collect();
            parts.push(months.join(","));
        }
        if self.times.is_empty() {
            parts.push("all day".to_string());
        } else {
            let times: Vec<String> = self.times.iter().map(ToString::to_string).collect();
            parts.push(times.join(","));
        }
        parts.push(self.timezone.name().to_string());
        write!(f, "{})", parts.join(" "))
    }
}

fn range_of<T: Copy>(
    text: &str,
    one: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<(T, T), String> {
    let t = text.trim().to_ascii_lowercase();
    let (a, b) = match t.split_once('-') {
        Some((a, b)) if !a.is_empty() => (a.to_string(), b.to_string()),
        _ => (t.clone(), t.clone()),
    };
    match (one(&a), one(&b)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(format!("{text:?} is not a {what}")),
    }
}

/// One `weekdays` entry: "mon", "monday", "mon-fri", "sat-sun" (a range
/// may wrap: "fri-mon"). Returns the weekday bits.
pub fn parse_weekdays(text: &str) -> Result<u8, String> {
    let day = |s: &str| DAYS.iter().position(|d| s.len() >= 3 && s.starts_with(d));
    let (a, b) = range_of(
        text,
        day,
        "weekday or range; write e.g. \"mon-fri\", \"sat\"",
    )?;
    let mut bits = 0u8;
    let mut i = a;
    loop {
        bits |= 1 << i;
        if i == b {
            return Ok(bits);
        }
        i = (i + 1) % 7;
    }
}

/// One `months` entry: "jan", "january", "1", "jan-mar", "11-2" (wraps).
/// Returns the month bits.
pub fn parse_months(text: &str) -> Result<u16, String> {
    let month = |s: &str| match s.parse::<usize>() {
        Ok(n) if (1..=12).contains(&n) => Some(n - 1),
        Ok(_) => None,
        Err(_) => MONTHS.iter().position(|m| s.len() >= 3 && s.starts_with(m)),
    };
    let (a, b) = range_of(
        text,
        month,
        "month or range; write e.g. \"jan-mar\", \"12\"",
    )?;
    let mut bits = 0u16;
    let mut i = a;
    loop {
        bits |= 1 << i;
        if i == b {
            return Ok(bits);
        }
        i = (i + 1) % 12;
    }
}

/// One `days_of_month` entry: "1", "1:7", "-1" (the last day), "-7:-1".
/// A colon separates range ends because days may be negative.
pub fn parse_days_of_month(text: &str) -> Result<(i8, i8), String> {
    let help = "write a day 1 to 31, -1 for the last day, or a range such as \"1:7\" or \"-7:-1\"";
    let day = |s: &str| match s.trim().parse::<i8>() {
        Ok(d) if (1..=31).contains(&d) || (-31..=-1).contains(&d) => Some(d),
        _ => None,
    };
    let (a, b) = match text.split_once(':') {
        Some((a, b)) => (day(a), day(b)),
        None => (day(text), day(text)),
    };
    match (a, b) {
        (Some(a), Some(b)) if (a > 0) == (b > 0) && a <= b => Ok((a, b)),
        (Some(_), Some(_)) => Err(format!(
            "{text:?} runs backwards or mixes counting from the start and the end; {help}"
        )),
        _ => Err(format!("{text:?} is not a day of the month; {help}")),
    }
}

/// One `times` entry: "08:00-20:00"; "24:00" may end a range, and
/// "22:00-02:00" crosses midnight.
pub fn parse_time_range(text: &str) -> Result<TimeRange, String> {
    let help = "write \"HH:MM-HH:MM\", e.g. \"08:00-20:00\" or \"22:00-02:00\"";
    let minute = |s: &str| -> Option<u16> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    };
    let Some((a, b)) = text.split_once('-') else {
        return Err(format!("{text:?} is not a time range; {help}"));
    };
    match (minute(a), minute(b)) {
        (Some(start), Some(end)) if start == end || start == 1440 => Err(format!(
            "{text:?} is empty; {help} (for the whole day, leave `times` out)"
        )),
        (Some(start), Some(end)) => Ok(TimeRange {
            start,
            end: if end == 0 { 1440 } else { end },
        }),
        _ => Err(format!("{text:?} is not a time range; {help}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .expect("a local time that exists")
            .timestamp()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        at(Tz::UTC, y, mo, d, h, mi)
    }

    fn business_hours() -> TimeWindow {
        TimeWindow {
            weekdays: parse_weekdays("mon-fri").unwrap(),
            times: vec![parse_time_range("08:00-20:00").unwrap()],
            timezone: "Europe/Helsinki".parse().unwrap(),
            ..TimeWindow::always("business-hours")
        }
    }

    #[test]
    fn business_hours_are_read_on_the_zones_wall_clock() {
        let w = business_hours();
        // Wednesday 2024-01-10: Helsinki is UTC+2.
        assert!(!w.contains(utc(2024, 1, 10, 5, 59)), "07:59 local");
        assert!(w.contains(utc(2024, 1, 10, 6, 0)), "08:00 local");
        assert!(w.contains(utc(2024, 1, 10, 17, 59)), "19:59 local");
        assert!(
            !w.contains(utc(2024, 1, 10, 18, 0)),
            "20:00 local is outside"
        );
        // Saturday.
        assert!(!w.contains(utc(2024, 1, 13, 10, 0)));
    }

    #[test]
    fn dst_days_keep_local_hours() {
        let w = business_hours();
        // Monday 2024-04-01, after the spring change: UTC+3.
        assert!(w.contains(utc(2024, 4, 1, 5, 0)), "08:00 EEST");
        assert!(!w.contains(utc(2024, 4, 1, 17, 0)), "20:00 EEST");
        // Sunday 2024-03-31 is the change itself (03:00 -> 04:00): a window
        // over the missing hour holds only the local times that exist.
        let night = TimeWindow {
            times: vec![parse_time_range("02:30-04:30").unwrap()],
            timezone: "Europe/Helsinki".parse().unwrap(),
            ..TimeWindow::always("night")
        };
        assert!(night.contains(utc(2024, 3, 31, 0, 30)), "02:30 EET");
        assert!(night.contains(utc(2024, 3, 31, 1, 0)), "04:00 EEST");
        assert!(!night.contains(utc(2024, 3, 31, 1, 30)), "04:30 EEST");
        // Autumn 2024-10-27: 03:00-04:00 EEST repeats as EET; both count.
        assert!(night.contains(utc(2024, 10, 27, 0, 30)), "03:30 EEST");
        assert!(night.contains(utc(2024, 10, 27, 1, 30)), "03:30 EET");
        assert!(!night.contains(utc(2024, 10, 27, 2, 30)), "04:30 EET");
    }

    #[test]
    fn a_range_ending_before_it_starts_crosses_midnight_from_its_day() {
        let w = TimeWindow {
            weekdays: parse_weekdays("fri").unwrap(),
            times: vec![parse_time_range("22:00-02:00").unwrap()],
            ..TimeWindow::always("friday-night")
        };
        // Friday 2024-01-12.
        assert!(!w.contains(utc(2024, 1, 12, 21, 59)));
        assert!(w.contains(utc(2024, 1, 12, 22, 0)));
        assert!(
            w.contains(utc(2024, 1, 13, 1, 59)),
            "Saturday 01:59 belongs to Friday"
        );
        assert!(!w.contains(utc(2024, 1, 13, 2, 0)));
        assert!(
            !w.contains(utc(2024, 1, 12, 1, 0)),
            "Friday 01:00 belongs to Thursday"
        );
    }

    #[test]
    fn sunday_maintenance_and_month_days() {
        let w = TimeWindow {
            weekdays: parse_weekdays("sunday").unwrap(),
            times: vec![parse_time_range("02:00-04:00").unwrap()],
            ..TimeWindow::always("maintenance")
        };
        assert!(w.contains(utc(2024, 1, 14, 3, 0)));
        assert!(!w.contains(utc(2024, 1, 15, 3, 0)), "Monday");
        let month_end = TimeWindow {
            days_of_month: vec![parse_days_of_month("-1").unwrap()],
            months: parse_months("jan-feb").unwrap(),
            ..TimeWindow::always("month-end")
        };
        assert!(
            month_end.contains(utc(2024, 2, 29, 12, 0)),
            "leap-year February"
        );
        assert!(!month_end.contains(utc(2024, 2, 28, 12, 0)));
        assert!(
            !month_end.contains(utc(2024, 3, 31, 12, 0)),
            "March is not listed"
        );
    }

    #[test]
    fn parsers_refuse_with_the_fix() {
        assert_eq!(parse_weekdays("sat-mon").unwrap(), 0b110_0001);
        assert!(parse_weekdays("someday").unwrap_err().contains("mon-fri"));
        assert_eq!(
            parse_time_range("20:00-24:00").unwrap(),
            TimeRange {
                start: 1200,
                end: 1440
            }
        );
        assert!(parse_time_range("25:00-26:00").is_err());
        assert!(parse_time_range("08:00-08:00")
            .unwrap_err()
            .contains("empty"));
        assert!(parse_days_of_month("7:1")
            .unwrap_err()
            .contains("backwards"));
        assert_eq!(parse_months("11-2").unwrap(), 0b1100_0000_0011);
    }

    #[test]
    fn display_reads_like_the_config() {
        assert_eq!(
            business_hours().to_string(),
            "business-hours (mon,tue,wed,thu,fri 08:00-20:00 Europe/Helsinki)"
        );
    }
}
