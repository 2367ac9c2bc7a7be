//! `kpiwatch score`: one already-aggregated series through the detectors.
//!
//! Reads `timestamp,value` CSV (NAB's format; extra columns are ignored; a
//! UTF-8 byte-order mark before the header is skipped; timestamps as
//! [`timefmt::parse_any`] reads them, the formats `replay` reads),
//! infers the bucket width from the first rows, runs a
//! [`detectors::DetectorSet`] causally — each row is scored before it is
//! learned — and writes `timestamp,value,anomaly_score`. Input text is
//! echoed byte for byte so the output lines up with the input for scorers
//! that compare timestamps as strings.
//!
//! The reader is a plain line loop over a large buffer that works on bytes
//! — fields split, trimmed and parsed without building a `&str` per line,
//! hand-rolled timestamp parsing, a fast path for plain decimals — and
//! `ryu` for the output: end to end it has to keep up with millions of rows
//! per second (`benches/score_throughput.sh` measures it).

use std::io::{BufRead, Write};

use detectors::{Detector, DetectorSet, Observation, SetConfig, Verdict};

use crate::timefmt;

/// Largest step back of a naive timestamp read as a daylight-saving repeat.
const DST_REPEAT: i64 = 3600;

/// Rows read before the bucket width is inferred. No more than the
/// detector set's warm-up, whose scores are 0 whatever the width: so no
/// score depends on a later row, and the output is causal.
const INFER_ROWS: usize = detectors::set::WARM_UP as usize;

/// What can go wrong with an input file; every variant names the line.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// Reading the input or writing the output failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The file has no header line.
    #[error("line 1: the file is empty; expected a header `timestamp,value`")]
    Empty,
    /// A required column is missing from the header.
    #[error("line 1: no `{column}` column in the header {header:?}; expected `timestamp,value`")]
    MissingColumn {
        /// The missing column.
        column: &'static str,
        /// The header as read.
        header: String,
    },
    /// A data line has fewer fields than the header promised.
    #[error("line {line}: expected a `{column}` field, the line has only {fields} field(s)")]
    ShortLine {
        /// 1-based line.
        line: usize,
        /// The missing column.
        column: &'static str,
        /// Fields found.
        fields: usize,
    },
    /// A timestamp could not be parsed.
    #[error("line {line}: cannot read timestamp {text:?}; use `YYYY-MM-DD HH:MM:SS`, RFC 3339 (`2024-01-31T09:00:00+02:00`) or seconds or milliseconds since 1970 (`1706684400`, `1706684400000`)")]
    BadTimestamp {
        /// 1-based line.
        line: usize,
        /// The field.
        text: String,
    },
    /// A value is not a finite number.
    #[error("line {line}: cannot read value {text:?} as a finite number")]
    BadValue {
        /// 1-based line.
        line: usize,
        /// The field.
        text: String,
    },
    /// Timestamps went backwards (beyond a daylight-saving repeat).
    #[error("line {line}: timestamp {text:?} is before the one on line {previous}; sort the file by time")]
    Unsorted {
        /// 1-based line.
        line: usize,
        /// The field.
        text: String,
        /// The line of the row before it.
        previous: usize,
    },
    /// A timestamp repeats the row before it (beyond a daylight-saving
    /// repeat of naive time).
    #[error("line {line}: timestamp {text:?} repeats the one on line {previous}; score takes one value per time: add up (or average) the rows that share a timestamp first")]
    Duplicate {
        /// 1-based line.
        line: usize,
        /// The field.
        text: String,
        /// The line of the row it repeats.
        previous: usize,
    },
}

/// What a run saw, for the caller's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Data rows scored.
    pub rows: usize,
    /// Inferred bucket width in seconds.
    pub bucket_width: i64,
}

/// How the detector set is chosen once the bucket width is known.
pub type Configure<'a> = dyn FnOnce(i64) -> Result<SetConfig, anyhow::Error> + 'a;

struct Columns {
    timestamp: usize,
    value: usize,
}

/// Byte range of a field in its line.
type Range = (usize, usize);

/// One parsed row. It borrows nothing, so the first rows can be buffered
/// (with a copy of their text) while the bucket width is inferred.
struct Row {
    obs: Observation,
    /// Byte ranges of `timestamp` and `value` in the line, to echo them.
    ts: Range,
    val: Range,
}

/// Scores every row of `input`, writing the result CSV to `output`.
///
/// With `explain`, each row also carries the verdict behind its score:
/// `expected,lower,upper,direction,warming_up`, for an analyst to see the
/// band a point was judged against.
pub fn score_csv(
    mut input: impl BufRead,
    output: impl Write,
    configure: Box<Configure<'_>>,
    explain: bool,
) -> Result<Summary, anyhow::Error> {
    let mut header_line = String::new();
    if input.read_line(&mut header_line)? == 0 {
        return Err(ScoreError::Empty.into());
    }
    let mut reader = Reader {
        columns: header(header_line.strip_prefix('\u{feff}').unwrap_or(&header_line))?,
        input,
        line: Vec::new(),
        line_no: 1,
        order: Order::default(),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, output);
    out.write_all(if explain {
        &b"timestamp,value,anomaly_score,expected,lower,upper,direction,warming_up\n"[..]
    } else {
        &b"timestamp,value,anomaly_score\n"[..]
    })?;

    // Buffer the first rows to infer the bucket width.
    let mut head = Vec::with_capacity(INFER_ROWS);
    while head.len() < INFER_ROWS {
        let Some(row) = reader.next_row()? else {
            break;
        };
        head.push((row, reader.text().to_vec()));
    }
    let bucket_width = infer_width(&head);
    let mut set = DetectorSet::new(configure(bucket_width)?);
    let mut rows = 0;
    let mut buf = ryu::Buffer::new();
    for (row, text) in &head {
        let v = set.observe(&row.obs);
        write_row(&mut out, text, row, &v, explain, &mut buf)?;
        rows += 1;
    }
    while let Some(row) = reader.next_row()? {
        let v = set.observe(&row.obs);
        write_row(&mut out, reader.text(), &row, &v, explain, &mut buf)?;
        rows += 1;
    }
    out.flush()?;
    Ok(Summary { rows, bucket_width })
}

/// The data lines of the input, one parsed row at a time.
///
/// Lines are read as bytes into one reused buffer and fields are found,
/// trimmed and parsed on bytes: going through `read_line` and `&str`
/// validated and scanned each line several times, and on bytes the I/O
/// path runs about a fifth fewer instructions. A line that is not valid
/// UTF-8 is still refused with the error `read_line` gave.
struct Reader<R> {
    input: R,
    columns: Columns,
    /// The current line, end-of-line bytes included.
    line: Vec<u8>,
    /// 1-based number of the current line.
    line_no: usize,
    /// Where the rows stand in time, for the ordering check.
    order: Order,
}

/// The previous row's time, for the ordering check.
#[derive(Debug)]
struct Order {
    /// Its time as scored (a daylight-saving repeat moves it on).
    time: i64,
    /// Its time as written.
    raw: i64,
    /// Its line.
    line: usize,
    /// In a daylight-saving repeat of naive time: the latest time written
    /// before the clock stepped back. The repeat ends past it; until then
    /// rows must not step back or repeat again.
    repeat_until: Option<i64>,
    /// Whether the daylight-saving repeat has been logged (once per file).
    warned: bool,
    /// The smallest step between two rows so far (`i64::MAX` before two
    /// distinct times), and the repeats of the current time in a row.
    min_step: i64,
    repeats: i64,
}

impl Default for Order {
    fn default() -> Self {
        Self {
            time: i64::MIN,
            raw: i64::MIN,
            line: 0,
            repeat_until: None,
            warned: false,
            min_step: i64::MAX,
            repeats: 0,
        }
    }
}

impl<R: BufRead> Reader<R> {
    /// The current line without its end-of-line bytes.
    fn text(&self) -> &[u8] {
        trim_eol(&self.line)
    }

    /// The next non-empty line, parsed; `None` at the end of the input.
    /// I/O errors pass through unwrapped, as `read_line`'s did.
    fn next_row(&mut self) -> Result<Option<Row>, anyhow::Error> {
        loop {
            self.line.clear();
            if self.input.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(None);
            }
            if !self.line.is_ascii() && std::str::from_utf8(&self.line).is_err() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "stream did not contain valid UTF-8",
                )
                .into());
            }
            self.line_no += 1;
            let text = trim_eol(&self.line);
            if text.is_empty() {
                continue;
            }
            let (ts, val) = fields(text, &self.columns, self.line_no)?;
            let obs = parse_row(text, ts, val, self.line_no, &mut self.order)?;
            return Ok(Some(Row { obs, ts, val }));
        }
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

fn header(line: &str) -> Result<Columns, ScoreError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let names: Vec<String> = line
        .split(',')
        .map(|f| f.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let find = |column: &'static str| {
        names
            .iter()
            .position(|n| n == column)
            .ok_or_else(|| ScoreError::MissingColumn {
                column,
                header: line.to_string(),
            })
    };
    Ok(Columns {
        timestamp: find("timestamp")?,
        value: find("value")?,
    })
}

/// Byte ranges of the timestamp and value fields of `text`.
#[inline]
fn fields(text: &[u8], columns: &Columns, line: usize) -> Result<(Range, Range), ScoreError> {
    let mut ts = None;
    let mut val = None;
    let mut start = 0;
    let mut count = 0;
    // A comma byte is always a whole character in UTF-8, so splitting the
    // bytes gives the fields `str::split(',')` would.
    loop {
        let end = text[start..]
            .iter()
            .position(|&b| b == b',')
            .map_or(text.len(), |i| start + i);
        if count == columns.timestamp {
            ts = Some((start, end));
        }
        if count == columns.value {
            val = Some((start, end));
        }
        count += 1;
        if (ts.is_some() && val.is_some()) || end == text.len() {
            break;
        }
        start = end + 1;
    }
    let missing = |column| ScoreError::ShortLine {
        line,
        column,
        fields: count,
    };
    Ok((
        ts.ok_or_else(|| missing("timestamp"))?,
        val.ok_or_else(|| missing("value"))?,
    ))
}

/// True when trimming `field` (whitespace, and `quotes` if asked) would
/// leave it unchanged: its ends are printable ASCII that is not trimmed.
/// The common case, checked on two bytes instead of decoding characters.
#[inline]
fn needs_no_trim(field: &[u8], quotes: bool) -> bool {
    let plain = |b: u8| b.is_ascii_graphic() && !(quotes && b == b'"');
    matches!((field.first(), field.last()), (Some(&a), Some(&z)) if plain(a) && plain(z))
}

/// `field` trimmed of whitespace and, if `quotes`, of double quotes, as
/// `str::trim` and `trim_matches('"')` would.
fn trimmed(field: &[u8], quotes: bool) -> &[u8] {
    if needs_no_trim(field, quotes) {
        return field;
    }
    // The line was checked to be UTF-8 and fields end at commas, so this
    // conversion cannot fail; an empty field is the harmless fallback.
    let text = std::str::from_utf8(field).unwrap_or("").trim();
    if quotes {
        text.trim_matches('"').as_bytes()
    } else {
        text.as_bytes()
    }
}

#[inline]
fn parse_row(
    text: &[u8],
    ts: Range,
    val: Range,
    line: usize,
    order: &mut Order,
) -> Result<Observation, ScoreError> {
    let ts_text = trimmed(&text[ts.0..ts.1], true);
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let stamp = timefmt::parse_any(ts_text).ok_or_else(|| ScoreError::BadTimestamp {
        line,
        text: lossy(ts_text),
    })?;
    let raw = stamp.epoch;
    if raw > order.raw && order.raw != i64::MIN {
        order.min_step = order.min_step.min(raw - order.raw);
        order.repeats = 0;
    }
    // Where the clocks went forward, wall-clock exports stamp the missing
    // hour's rows with the first time after it (NAB's own files repeat
    // 03:00 twelve times at 5-minute steps): an hour's worth of rows at
    // the file's step repeating one naive time are the next buckets.
    let gap_fill = raw == order.raw
        && stamp.naive
        && order.repeat_until.is_none()
        && order.min_step != i64::MAX
        && (order.repeats + 1).saturating_mul(order.min_step) <= DST_REPEAT;
    if gap_fill {
        order.repeats += 1;
    } else if raw <= order.raw {
        // Wall-clock exports repeat up to an hour when daylight-saving time
        // ends (NAB's own files do): one step back (or, hourly, one repeat)
        // of naive time. Such rows are the next buckets in real time;
        // anything else out of order is a broken file, and a repeat is
        // named as such.
        let previous = order.line;
        let repeating = order.repeat_until.is_some();
        if raw == order.raw && (!stamp.naive || repeating) {
            return Err(ScoreError::Duplicate {
                line,
                text: lossy(ts_text),
                previous,
            });
        }
        if !stamp.naive || repeating || order.raw - raw > DST_REPEAT {
            return Err(ScoreError::Unsorted {
                line,
                text: lossy(ts_text),
                previous,
            });
        }
        order.repeat_until = Some(order.raw);
    }
    if raw <= order.raw && !order.warned {
        tracing::warn!(
            line,
            timestamp = lossy(ts_text).as_str(),
            "timestamp repeats or steps back within an hour (daylight-saving change?); such rows are scored as the next bucket"
        );
        order.warned = true;
    }
    if order.repeat_until.is_some_and(|until| raw > until) {
        order.repeat_until = None;
    }
    let time = if raw <= order.time {
        order.time + 1
    } else {
        raw
    };
    *order = Order {
        time,
        raw,
        line,
        ..*order
    };
    let val_text = trimmed(&text[val.0..val.1], false);
    let value = parse_f64(val_text)
        .filter(|v| v.is_finite())
        .ok_or_else(|| ScoreError::BadValue {
            line,
            text: lossy(val_text),
        })?;
    Ok(Observation {
        time,
        utc_offset: stamp.utc_offset,
        value,
    })
}

/// Exact powers of ten representable in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses a number as `str::parse::<f64>` does, bit for bit.
///
/// Plain decimals (`-?digits[.digits]`, at most 15 digits in all, as KPI
/// files write them) take Clinger's fast path: the digits and the power of
/// ten are both exact `f64`s, so one correctly rounded division gives the
/// correctly rounded value. Anything else (exponents, `inf`, long
/// mantissas) goes to the standard parser.
#[inline]
fn parse_f64(b: &[u8]) -> Option<f64> {
    let (negative, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let mut mantissa = 0u64;
    let mut count = 0;
    let mut point = None;
    for (i, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                // Wraps only past 19 digits, which take the slow path.
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                count += 1;
            }
            b'.' if point.is_none() => point = Some(i),
            _ => return std::str::from_utf8(b).ok()?.parse().ok(),
        }
    }
    let frac = point.map_or(0, |p| digits.len() - p - 1);
    let plain = count > 0 && count <= 15 && point.is_none_or(|p| p > 0 && frac > 0);
    if !plain {
        return std::str::from_utf8(b).ok()?.parse().ok();
    }
    // count <= 15 keeps the mantissa below 2^53, frac <= 15 within POW10.
    let magnitude = mantissa as f64 / POW10[frac];
    Some(if negative { -magnitude } else { magnitude })
}

#[inline]
fn write_row(
    out: &mut impl Write,
    text: &[u8],
    row: &Row,
    verdict: &Verdict,
    explain: bool,
    buf: &mut ryu::Buffer,
) -> std::io::Result<()> {
    let (ts, val) = (row.ts, row.val);
    if ts.1 + 1 == val.0 {
        // `timestamp,value` side by side, as in NAB files: one copy.
        out.write_all(&text[ts.0..val.1])?;
    } else {
        out.write_all(&text[ts.0..ts.1])?;
        out.write_all(b",")?;
        out.write_all(&text[val.0..val.1])?;
    }
    out.write_all(b",")?;
    out.write_all(buf.format(verdict.score).as_bytes())?;
    if explain {
        for x in [verdict.expected, verdict.lower, verdict.upper] {
            out.write_all(b",")?;
            out.write_all(buf.format(x).as_bytes())?;
        }
        out.write_all(b",")?;
        out.write_all(verdict.direction.name().as_bytes())?;
        out.write_all(if verdict.warming_up {
            b",true"
        } else {
            b",false"
        })?;
    }
    out.write_all(b"\n")
}

/// The bucket width: the median gap between the first rows (robust to a
/// few missing buckets), at least one second.
fn infer_width(rows: &[(Row, Vec<u8>)]) -> i64 {
    let mut gaps: Vec<i64> = rows
        .windows(2)
        .map(|w| w[1].0.obs.time - w[0].0.obs.time)
        .collect();
    if gaps.is_empty() {
        return 60;
    }
    let mid = gaps.len() / 2;
    *gaps.select_nth_unstable(mid).1.max(&mut 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> Result<(Summary, String), String> {
        run_with(input, false)
    }

    fn run_with(input: &str, explain: bool) -> Result<(Summary, String), String> {
        let mut out = Vec::new();
        score_csv(
            input.as_bytes(),
            &mut out,
            Box::new(|w| Ok(SetConfig::new(w))),
            explain,
        )
        .map(|s| (s, String::from_utf8(out).unwrap()))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn explain_adds_the_verdict_behind_each_score() {
        let input = series(300);
        let (_, plain) = run(&input).unwrap();
        let (_, explained) = run_with(&input, true).unwrap();
        let mut lines = explained.lines();
        assert_eq!(
            lines.next(),
            Some("timestamp,value,anomaly_score,expected,lower,upper,direction,warming_up")
        );
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 300);
        // The first three columns are exactly the plain output's.
        for (row, plain) in rows.iter().zip(plain.lines().skip(1)) {
            assert_eq!(row[..3].join(","), plain);
            assert_eq!(row.len(), 8);
        }
        assert_eq!(rows[0][7], "true", "the first row is warming up");
        let last = &rows[299];
        let (lower, expected, upper): (f64, f64, f64) = (
            last[4].parse().unwrap(),
            last[3].parse().unwrap(),
            last[5].parse().unwrap(),
        );
        assert!(lower <= expected && expected <= upper, "{last:?}");
        assert!(["drop", "spike", "none"].contains(&last[6]) && last[7] == "false");
    }

    fn series(n: usize) -> String {
        let mut s = String::from("timestamp,value\n");
        for i in 0..n {
            let t = chrono::DateTime::from_timestamp(1_396_310_400 + 300 * i as i64, 0)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%S");
            s.push_str(&format!("{t},{}\n", 10 + i % 7));
        }
        s
    }

    #[test]
    fn echoes_every_row_with_a_score_in_unit_range() {
        let (summary, out) = run(&series(2000)).unwrap();
        assert_eq!(summary.rows, 2000);
        assert_eq!(summary.bucket_width, 300);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "timestamp,value,anomaly_score");
        assert_eq!(lines.len(), 2001);
        assert!(lines[1].starts_with("2014-04-01 00:00:00,10,"));
        for l in &lines[1..] {
            let s: f64 = l.rsplit(',').next().unwrap().parse().unwrap();
            assert!((0.0..=1.0).contains(&s), "{l}");
        }
    }

    #[test]
    fn values_parse_to_the_same_bits_as_the_standard_parser() {
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "12.5",
            "007.50",
            "0.30000000000000004",
            "0.1",
            "0.2",
            "123456789012345",
            "1234567890123456",
            "9007199254740993",
            "999999999999999.9",
            "0.000000000000001",
            "1e3",
            "1E-7",
            "1.",
            ".5",
            "-.5",
            "+3",
            "inf",
            "-inf",
            "NaN",
            "1.2.3",
            "-",
            "",
            ".",
            "1,5",
            "12a",
            "--1",
            "١٢",
        ]
        .map(String::from)
        .to_vec();
        // Every decimal with a few digits on either side of the point.
        for i in (0..2_000_000u64).step_by(997) {
            for point in 0..=7 {
                let digits = format!("{i:07}");
                cases.push(format!("{}.{}", &digits[..point], &digits[point..]));
                cases.push(format!("-{}.{}", &digits[..point], &digits[point..]));
            }
        }
        for text in &cases {
            let ours = parse_f64(text.as_bytes()).map(f64::to_bits);
            let std = text.parse::<f64>().ok().map(f64::to_bits);
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn fields_are_trimmed_as_str_trim_would() {
        for (field, quotes) in [
            ("a", true),
            (" a ", true),
            ("\"a\"", true),
            ("\"a\"", false),
            (" \"a\" ", true),
            ("\u{a0}a\u{2009}", false),
            ("\t", false),
            ("", true),
            ("\"", true),
        ] {
            let expected = if quotes {
                field.trim().trim_matches('"')
            } else {
                field.trim()
            };
            assert_eq!(
                trimmed(field.as_bytes(), quotes),
                expected.as_bytes(),
                "{field:?}"
            );
        }
    }

    #[test]
    fn a_line_that_is_not_utf8_is_refused_as_read_line_would() {
        let mut input = b"timestamp,value\n2014-04-01 00:00:00,1,\xff\n".to_vec();
        let err = score_csv(
            &input[..],
            Vec::new(),
            Box::new(|w| Ok(SetConfig::new(w))),
            false,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "stream did not contain valid UTF-8");
        input.truncate(input.len() - 3);
        input.extend_from_slice(b"\n");
        assert!(score_csv(
            &input[..],
            Vec::new(),
            Box::new(|w| Ok(SetConfig::new(w))),
            false
        )
        .is_ok());
    }

    #[test]
    fn missing_value_column_is_named() {
        let err = run("timestamp,count\n2014-04-01 00:00:00,1\n").unwrap_err();
        assert!(err.contains("no `value` column"), "{err}");
    }

    #[test]
    fn unparsable_number_names_its_line() {
        let mut s = series(5);
        s.push_str("2014-04-01 00:25:00,twelve\n");
        let err = run(&s).unwrap_err();
        assert!(
            err.starts_with("line 7: cannot read value \"twelve\""),
            "{err}"
        );
    }

    #[test]
    fn unsorted_timestamps_name_their_line() {
        let err =
            run("timestamp,value\n2014-04-01 03:05:00,1\n2014-04-01 01:00:00,2\n").unwrap_err();
        assert!(err.starts_with("line 3: timestamp"), "{err}");
    }

    #[test]
    fn zoned_timestamps_may_not_step_back_at_all() {
        let err =
            run("timestamp,value\n2014-04-01T00:05:00Z,1\n2014-04-01T00:00:00Z,2\n").unwrap_err();
        assert!(err.starts_with("line 3: timestamp"), "{err}");
    }

    #[test]
    fn a_daylight_saving_repeat_of_naive_time_is_scored_not_refused() {
        let input = "timestamp,value\n2014-11-02 01:50:00,0\n2014-11-02 01:55:00,1\n2014-11-02 01:00:00,2\n2014-11-02 01:05:00,3\n2014-11-02 01:55:00,4\n2014-11-02 02:00:00,5\n";
        let (summary, out) = run(input).unwrap();
        assert_eq!(summary.rows, 6);
        assert!(out.contains("\n2014-11-02 01:05:00,3,"), "{out}");
        // Hourly rows repeat the hour itself.
        let hourly = "timestamp,value\n2014-11-02 00:00:00,1\n2014-11-02 01:00:00,2\n2014-11-02 01:00:00,3\n2014-11-02 02:00:00,4\n";
        assert_eq!(run(hourly).unwrap().0.rows, 4);
    }

    #[test]
    fn an_hour_of_rows_stamped_after_a_spring_gap_is_scored_and_a_longer_run_refused() {
        // As NAB's ec2_disk_write_bytes_1ef3de.csv: 02:00-02:59 did not
        // exist, and its twelve 5-minute rows all say 03:00.
        let mut input =
            String::from("timestamp,value\n2014-03-09 01:50:00,1\n2014-03-09 01:55:00,1\n");
        for _ in 0..12 {
            input.push_str("2014-03-09 03:00:00,1\n");
        }
        input.push_str("2014-03-09 03:05:00,1\n");
        assert_eq!(run(&input).unwrap().0.rows, 15);
        // Beyond an hour at 5-minute steps, and one hourly repeat, a
        // repeat is refused.
        let mut longer =
            String::from("timestamp,value\n2014-03-09 01:50:00,1\n2014-03-09 01:55:00,1\n");
        for _ in 0..16 {
            longer.push_str("2014-03-09 03:00:00,1\n");
        }
        let err = run(&longer).unwrap_err();
        assert!(err.contains("repeats the one on line"), "{err}");
    }

    #[test]
    fn a_file_of_one_repeated_timestamp_names_the_repeat_and_its_line_not_the_sort_order() {
        let mut input = String::from("timestamp,value\n");
        for _ in 0..5000 {
            input.push_str("2014-04-01 00:00:00,1\n");
        }
        let err = run(&input).unwrap_err();
        assert_eq!(
            err,
            "line 4: timestamp \"2014-04-01 00:00:00\" repeats the one on line 3; score takes one value per time: add up (or average) the rows that share a timestamp first"
        );
        let zoned = "timestamp,value\n2014-04-01T00:00:00Z,1\n2014-04-01T00:00:00Z,2\n";
        assert!(run(zoned)
            .unwrap_err()
            .starts_with("line 3: timestamp \"2014-04-01T00:00:00Z\" repeats the one on line 2"),);
    }

    #[test]
    fn epoch_seconds_and_milliseconds_score_as_their_rfc3339_twin() {
        let rfc = series(300);
        let mut secs = String::from("timestamp,value\n");
        let mut millis = String::from("timestamp,value\n");
        for (i, line) in rfc.lines().skip(1).enumerate() {
            let value = line.split(',').nth(1).unwrap();
            let t = 1_396_310_400 + 300 * i as i64;
            secs.push_str(&format!("{t},{value}\n"));
            millis.push_str(&format!("{}000,{value}\n", t));
        }
        let scores = |csv: &str| -> Vec<String> {
            run(csv)
                .unwrap()
                .1
                .lines()
                .skip(1)
                .map(|l| l.rsplit(',').next().unwrap().to_string())
                .collect()
        };
        let expected = scores(&rfc);
        assert_eq!(scores(&secs), expected);
        assert_eq!(scores(&millis), expected);
    }

    #[test]
    fn a_byte_order_mark_before_the_header_is_skipped() {
        let input = format!("\u{feff}{}", series(20));
        let (summary, out) = run(&input).unwrap();
        assert_eq!(summary.rows, 20);
        assert!(out.starts_with("timestamp,value,anomaly_score\n"), "{out}");
    }

    #[test]
    fn extra_columns_and_crlf_are_accepted() {
        let (_, out) =
            run("value,timestamp,note\r\n1.5,2014-04-01 00:00:00,x\r\n2,2014-04-01 00:05:00,y\r\n")
                .unwrap();
        assert!(out.contains("\n2014-04-01 00:05:00,2,"), "{out}");
    }

    #[test]
    fn scores_do_not_depend_on_later_rows() {
        let full = run(&series(3000)).unwrap().1;
        for n in [1, 5, 12, 13, 20, 1500] {
            let cut = run(&series(n)).unwrap().1;
            let full: Vec<&str> = full.lines().take(n + 1).collect();
            let cut: Vec<&str> = cut.lines().collect();
            assert_eq!(full, cut, "first {n} rows");
        }
    }
}
