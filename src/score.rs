//! `kpiwatch score`: one already-aggregated series through the detectors.
//!
//! Reads `timestamp,value` CSV (NAB's format; extra columns are ignored),
//! infers the bucket width from the first rows, runs a
//! [`detectors::DetectorSet`] causally — each row is scored before it is
//! learned — and writes `timestamp,value,anomaly_score`. Input text is
//! echoed byte for byte so the output lines up with the input for scorers
//! that compare timestamps as strings.
//!
//! The reader is a plain line loop over a large buffer with hand-rolled
//! timestamp parsing and `ryu` for the output: end to end it has to keep up
//! with millions of rows per second.

use std::io::{BufRead, Write};

use detectors::{Detector, DetectorSet, Observation, SetConfig};

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
    #[error("line {line}: cannot read timestamp {text:?}; use `YYYY-MM-DD HH:MM:SS` or RFC 3339 (`2024-01-31T09:00:00+02:00`)")]
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
    #[error("line {line}: timestamp {text:?} is before the previous one; sort the file by time")]
    Unsorted {
        /// 1-based line.
        line: usize,
        /// The field.
        text: String,
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

/// One parsed row, borrowing nothing so it can be buffered.
struct Row {
    time: i64,
    utc_offset: i32,
    value: f64,
    /// Byte range of `timestamp` and `value` in `text`, to echo them.
    text: String,
    ts: (usize, usize),
    val: (usize, usize),
}

/// Scores every row of `input`, writing the result CSV to `output`.
pub fn score_csv(
    mut input: impl BufRead,
    output: impl Write,
    configure: Box<Configure<'_>>,
) -> Result<Summary, anyhow::Error> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Err(ScoreError::Empty.into());
    }
    let columns = header(&line)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, output);
    out.write_all(b"timestamp,value,anomaly_score\n")?;

    // Buffer the first rows to infer the bucket width.
    let mut head = Vec::with_capacity(INFER_ROWS);
    let mut line_no = 1;
    let mut last_time = i64::MIN;
    let mut warned = false;
    while head.len() < INFER_ROWS {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        line_no += 1;
        let text = trim_eol(&line);
        if text.is_empty() {
            continue;
        }
        let (ts, val) = fields(text, &columns, line_no)?;
        let (time, utc_offset, value) =
            parse_row(text, ts, val, line_no, &mut last_time, &mut warned)?;
        head.push(Row {
            time,
            utc_offset,
            value,
            text: text.to_string(),
            ts,
            val,
        });
    }
    let bucket_width = infer_width(&head);
    let mut set = DetectorSet::new(configure(bucket_width)?);
    let mut rows = 0;
    let mut buf = ryu::Buffer::new();
    for row in &head {
        let obs = Observation {
            time: row.time,
            utc_offset: row.utc_offset,
            value: row.value,
        };
        let v = set.observe(&obs);
        write_row(&mut out, &row.text, row.ts, row.val, v.score, &mut buf)?;
        rows += 1;
    }
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        line_no += 1;
        let text = trim_eol(&line);
        if text.is_empty() {
            continue;
        }
        let (ts, val) = fields(text, &columns, line_no)?;
        let (time, utc_offset, value) =
            parse_row(text, ts, val, line_no, &mut last_time, &mut warned)?;
        let v = set.observe(&Observation {
            time,
            utc_offset,
            value,
        });
        write_row(&mut out, text, ts, val, v.score, &mut buf)?;
        rows += 1;
    }
    out.flush()?;
    Ok(Summary { rows, bucket_width })
}

fn trim_eol(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

fn header(line: &str) -> Result<Columns, ScoreError> {
    let names: Vec<String> = trim_eol(line)
        .split(',')
        .map(|f| f.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let find = |column: &'static str| {
        names
            .iter()
            .position(|n| n == column)
            .ok_or_else(|| ScoreError::MissingColumn {
                column,
                header: trim_eol(line).to_string(),
            })
    };
    Ok(Columns {
        timestamp: find("timestamp")?,
        value: find("value")?,
    })
}

/// Byte ranges of the timestamp and value fields of `text`.
#[inline]
fn fields(
    text: &str,
    columns: &Columns,
    line: usize,
) -> Result<((usize, usize), (usize, usize)), ScoreError> {
    let mut ts = None;
    let mut val = None;
    let mut start = 0;
    let mut count = 0;
    for (i, field) in text.split(',').enumerate() {
        let range = (start, start + field.len());
        if i == columns.timestamp {
            ts = Some(range);
        }
        if i == columns.value {
            val = Some(range);
        }
        start += field.len() + 1;
        count += 1;
        if ts.is_some() && val.is_some() {
            break;
        }
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

#[inline]
fn parse_row(
    text: &str,
    ts: (usize, usize),
    val: (usize, usize),
    line: usize,
    last_time: &mut i64,
    warned: &mut bool,
) -> Result<(i64, i32, f64), ScoreError> {
    let ts_text = text[ts.0..ts.1].trim().trim_matches('"');
    let stamp = timefmt::parse(ts_text).ok_or_else(|| ScoreError::BadTimestamp {
        line,
        text: ts_text.to_string(),
    })?;
    let mut time = stamp.epoch;
    if time <= *last_time {
        // Wall-clock exports repeat up to an hour when daylight-saving time
        // ends (NAB's own files do). Such a row is the next bucket in real
        // time; anything else out of order is a broken file.
        if !stamp.naive || *last_time - time > DST_REPEAT {
            return Err(ScoreError::Unsorted {
                line,
                text: ts_text.to_string(),
            });
        }
        if !*warned {
            tracing::warn!(
                line,
                timestamp = ts_text,
                "timestamp repeats or steps back within an hour (daylight-saving change?); such rows are scored as the next bucket"
            );
            *warned = true;
        }
        time = *last_time + 1;
    }
    *last_time = time;
    let val_text = text[val.0..val.1].trim();
    let value: f64 = val_text
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| ScoreError::BadValue {
            line,
            text: val_text.to_string(),
        })?;
    Ok((time, stamp.utc_offset, value))
}

#[inline]
fn write_row(
    out: &mut impl Write,
    text: &str,
    ts: (usize, usize),
    val: (usize, usize),
    score: f64,
    buf: &mut ryu::Buffer,
) -> std::io::Result<()> {
    out.write_all(text[ts.0..ts.1].as_bytes())?;
    out.write_all(b",")?;
    out.write_all(text[val.0..val.1].as_bytes())?;
    out.write_all(b",")?;
    out.write_all(buf.format(score).as_bytes())?;
    out.write_all(b"\n")
}

/// The bucket width: the median gap between the first rows (robust to a
/// few missing buckets), at least one second.
fn infer_width(rows: &[Row]) -> i64 {
    let mut gaps: Vec<i64> = rows.windows(2).map(|w| w[1].time - w[0].time).collect();
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
        let mut out = Vec::new();
        score_csv(
            input.as_bytes(),
            &mut out,
            Box::new(|w| Ok(SetConfig::new(w))),
        )
        .map(|s| (s, String::from_utf8(out).unwrap()))
        .map_err(|e| e.to_string())
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
        let input = "timestamp,value\n2014-11-02 01:55:00,1\n2014-11-02 01:00:00,2\n2014-11-02 01:00:00,3\n";
        let (summary, out) = run(input).unwrap();
        assert_eq!(summary.rows, 3);
        assert!(out.contains("\n2014-11-02 01:00:00,3,"), "{out}");
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
