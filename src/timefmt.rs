//! Timestamps as they appear in KPI files: `YYYY-MM-DD HH:MM:SS` (NAB's
//! format, read as local wall-clock time), RFC 3339 with a zone, and (for
//! `score`, [`parse_any`]) seconds or milliseconds since the epoch.
//!
//! The naive format is parsed by hand: `kpiwatch score` reads millions of
//! rows and chrono's format-driven parser costs more than the detectors do.

use chrono::DateTime;

/// A parsed timestamp: the instant and the wall-clock offset it was
/// written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Seconds since the Unix epoch, UTC.
    pub epoch: i64,
    /// Offset of the written wall-clock time from UTC, in seconds (0 for
    /// naive timestamps, which are taken as local time).
    pub utc_offset: i32,
    /// True when the text carried no zone: the wall clock it was read from
    /// may have jumped back at a daylight-saving change.
    pub naive: bool,
}

/// Parses `YYYY-MM-DD HH:MM:SS` (or with `T`), optionally followed by
/// fractional seconds, or any RFC 3339 timestamp with a zone.
pub fn parse(text: &str) -> Option<Timestamp> {
    parse_bytes(text.as_bytes())
}

/// [`parse`] on bytes, for readers that have not made a `&str` of their
/// input: the naive format is read without UTF-8 validation, and only an
/// RFC 3339 fallback converts.
pub fn parse_bytes(b: &[u8]) -> Option<Timestamp> {
    if b.len() >= 19 && (b[10] == b' ' || b[10] == b'T') {
        let rest = &b[19..];
        let naive = rest.is_empty()
            || (rest[0] == b'.' && rest[1..].iter().all(u8::is_ascii_digit) && rest.len() > 1);
        if naive {
            return parse_naive(&b[..19]).map(|epoch| Timestamp {
                epoch,
                utc_offset: 0,
                naive: true,
            });
        }
    }
    if let Some(epoch) = parse_utc(b) {
        return Some(Timestamp {
            epoch,
            utc_offset: 0,
            naive: false,
        });
    }
    let dt = DateTime::parse_from_rfc3339(std::str::from_utf8(b).ok()?).ok()?;
    Some(Timestamp {
        epoch: dt.timestamp(),
        utc_offset: dt.offset().local_minus_utc(),
        naive: false,
    })
}

/// [`parse_bytes`], or a number of seconds or milliseconds since the epoch
/// (`1704067200`, `1704067200.5`, `1704067200000`): what `score` reads,
/// the formats a replay's topic may be configured with. A number from
/// 100,000,000,000 on is milliseconds (as seconds it would be after the
/// year 5000; as milliseconds it is after March 1973). Years outside
/// 1970-9999 are refused, as replay refuses them.
pub fn parse_any(b: &[u8]) -> Option<Timestamp> {
    if let Some(t) = parse_bytes(b) {
        return Some(t);
    }
    let (whole, fraction) = match b.iter().position(|&c| c == b'.') {
        Some(p) => (&b[..p], Some(&b[p + 1..])),
        None => (b, None),
    };
    // Digits only; a fraction is floored away, as replay floors it.
    let all_digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    if !all_digits(whole) || whole.len() > 18 || fraction.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    let n = digits(whole)?;
    let secs = if n >= MILLIS_FROM { n / 1000 } else { n };
    (secs < MAX_EPOCH).then_some(Timestamp {
        epoch: secs,
        utc_offset: 0,
        naive: false,
    })
}

/// From here on an epoch number is milliseconds.
const MILLIS_FROM: i64 = 100_000_000_000;
/// 10000-01-01T00:00:00Z: epoch times from here on are refused.
const MAX_EPOCH: i64 = 253_402_300_800;

/// The RFC 3339 shape most producers write, UTC with whole or fractional
/// seconds (`2024-01-01T00:00:00Z`, `2024-01-01T00:00:00.123Z`), read by
/// hand: chrono's parser cost a twentieth of a pipeline event. `None` for
/// anything else, leap seconds included, which then goes to chrono; the
/// result is chrono's (`timestamp()` floors the fraction).
fn parse_utc(b: &[u8]) -> Option<i64> {
    let (&b'Z', rest) = b.split_last()? else {
        return None;
    };
    if rest.len() < 19 || rest[10] != b'T' || rest[17..19] == *b"60" {
        return None;
    }
    match &rest[19..] {
        [] => {}
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            digits(fraction)?;
        }
        _ => return None,
    }
    parse_naive(&rest[..19])
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut n = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    Some(n)
}

fn parse_naive(b: &[u8]) -> Option<i64> {
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, s) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 in UTC, whole seconds, for epoch seconds: how times leave the
/// program (JSON, logs, messages). Out-of-range values print as the number.
pub fn rfc3339(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| t.to_string())
}

/// `2024-01-01 10:44 UTC`, as messages show a time to people; the number of
/// seconds if it is out of range.
pub fn human_utc(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// Serde for epoch seconds that travel as RFC 3339 text in JSON (alert
/// transitions, webhook bodies) and as integers in binary formats (the
/// postcard snapshot). Reading also takes a plain number of seconds.
pub mod rfc3339_secs {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `t` as RFC 3339 text (human-readable formats) or as is.
    pub fn serialize<S: Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&super::rfc3339(*t))
        } else {
            s.serialize_i64(*t)
        }
    }

    /// Reads RFC 3339 text or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text<'a> {
            Seconds(i64),
            Borrowed(&'a str),
            Owned(String),
        }
        if !d.is_human_readable() {
            return i64::deserialize(d);
        }
        let text = match Text::deserialize(d)? {
            Text::Seconds(t) => return Ok(t),
            Text::Borrowed(s) => s.to_string(),
            Text::Owned(s) => s,
        };
        super::parse(&text)
            .filter(|t| !t.naive)
            .map(|t| t.epoch)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_nab_timestamps_agree_with_chrono() {
        for text in [
            "2014-04-01 00:00:00",
            "2000-02-29 23:59:59",
            "1969-12-31 23:00:00",
            "2026-11-22 12:34:56",
        ] {
            let ours = parse(text).unwrap();
            let theirs = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
                .timestamp();
            assert_eq!(ours.epoch, theirs, "{text}");
            assert_eq!(ours.utc_offset, 0);
        }
    }

    #[test]
    fn rfc3339_keeps_the_written_offset() {
        let t = parse("2024-01-01T10:00:00+02:00").unwrap();
        assert_eq!(t.epoch, 1_704_096_000);
        assert_eq!(t.utc_offset, 7200);
        assert_eq!(parse("2024-01-01T08:00:00Z").unwrap().epoch, 1_704_096_000);
    }

    #[test]
    fn utc_timestamps_agree_with_chrono() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut fast = 0;
        for _ in 0..100_000 {
            // Mostly valid fields, with out-of-range days, hours, minutes
            // and seconds, leap years and fractions mixed in.
            let mut text = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                rng.gen_range(0..=9999),
                rng.gen_range(0..=13),
                rng.gen_range(0..=32),
                rng.gen_range(0..=24),
                rng.gen_range(0..=60),
                rng.gen_range(0..=61)
            );
            match rng.gen_range(0..6) {
                0 => text.push_str(".5Z"),
                1 => text.push_str(".123456789Z"),
                2 => text.push_str(".1234567891Z"),
                3 => text.push('z'),
                4 => text.push_str(".Z"),
                _ => text.push('Z'),
            }
            let chrono = DateTime::parse_from_rfc3339(&text)
                .ok()
                .map(|d| d.timestamp());
            assert_eq!(parse(&text).map(|t| t.epoch), chrono, "{text}");
            fast += usize::from(parse_utc(text.as_bytes()).is_some());
        }
        assert!(fast > 10_000, "the fast path was taken {fast} times");
    }

    #[test]
    fn epoch_seconds_and_milliseconds_read_as_the_same_instant() {
        let at = |text: &str| parse_any(text.as_bytes()).map(|t| (t.epoch, t.naive));
        let rfc = parse("2024-01-01T00:00:00Z").unwrap().epoch;
        assert_eq!(at("1704067200"), Some((rfc, false)));
        assert_eq!(at("1704067200.9"), Some((rfc, false)));
        assert_eq!(at("1704067200000"), Some((rfc, false)));
        assert_eq!(at("1704067200999.5"), Some((rfc, false)));
        assert_eq!(at("0"), Some((0, false)));
        assert_eq!(at("2024-01-01T00:00:00Z"), Some((rfc, false)));
        for bad in [
            "",
            ".",
            "1.",
            ".5",
            "-1",
            "+5",
            "1e9",
            "12a",
            "1.2.3",
            "99999999999999999999",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
        // Milliseconds of the year 10000 and on are refused.
        assert_eq!(at("253402300800000"), None);
        assert_eq!(at("253402300799999").map(|t| t.0), Some(253_402_300_799));
    }

    #[test]
    fn nonsense_is_refused() {
        for text in [
            "",
            "yesterday",
            "2014-13-01 00:00:00",
            "2014-02-30 00:00:00",
            "2014-04-01",
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
    }
}
