//! The bare baseline the throughput scripts divide by: read a file line by
//! line and parse each line, nothing else. Timed in the same run as
//! `kpiwatch replay` (`benches/replay_throughput.sh`) or `kpiwatch score`
//! (`benches/score_throughput.sh`) over the same file, it turns their
//! events/s into a ratio that another machine, or the same one under other
//! load, can compare: absolute rates on a shared 2-core machine move by
//! half with the load, the ratio much less.
//!
//! usage: `bare_parse [--csv] FILE`
//!
//! - JSON lines (default): each line into a struct of the fields
//!   `benches/pipeline.toml` reads (time, type, user, country, platform,
//!   store, node, amount), strings borrowed from the line where they have
//!   no escapes, with serde_json: what any consumer of these events must
//!   do at least. The time stays text; kpiwatch parses it, this does not.
//! - `--csv`: a NAB-format CSV (`timestamp,value`, one header line), each
//!   row split at its comma and the value parsed as f64; the timestamp
//!   stays text.
//!
//! Lines are read as bytes into one reused buffer, as kpiwatch reads them.
//! A line that does not parse stops the run (exit 1, naming the line), so
//! a baseline that skipped work cannot pass as a fast one. Prints the lines
//! parsed and a checksum of what was read.

use std::borrow::Cow;
use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::process::ExitCode;

use serde::Deserialize;

/// The fields of an event that `benches/pipeline.toml` reads; the others
/// are skipped by serde_json without being kept.
#[derive(Deserialize)]
#[allow(dead_code)] // Read to be parsed; only `amount` feeds the checksum.
struct Event<'a> {
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    country: Option<Cow<'a, str>>,
    #[serde(borrow)]
    platform: Option<Cow<'a, str>>,
    #[serde(borrow)]
    store: Option<Cow<'a, str>>,
    #[serde(borrow)]
    node: Option<Cow<'a, str>>,
    amount: Option<f64>,
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

/// Parses one JSON line; the checksum adds the amount and the length of
/// the type, so the parsed values are used.
fn json_line(text: &[u8]) -> Result<f64, String> {
    let event: Event = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let event = black_box(event);
    Ok(event.amount.unwrap_or(0.0) + event.kind.len() as f64)
}

/// Parses one CSV row: the text before the first comma is the timestamp,
/// the rest the value.
fn csv_line(text: &[u8]) -> Result<f64, String> {
    let comma = text
        .iter()
        .position(|&b| b == b',')
        .ok_or("no comma in the row")?;
    let (ts, value) = (&text[..comma], &text[comma + 1..]);
    let ts = std::str::from_utf8(ts).map_err(|e| e.to_string())?;
    let value = std::str::from_utf8(value).map_err(|e| e.to_string())?;
    let value: f64 = value.trim().parse().map_err(|e| format!("value: {e}"))?;
    Ok(value + black_box(ts).len() as f64)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (csv, path) = match args.as_slice() {
        [path] => (false, path),
        [flag, path] if flag == "--csv" => (true, path),
        _ => {
            eprintln!("usage: bare_parse [--csv] FILE");
            return ExitCode::from(2);
        }
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("bare_parse: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The buffer size kpiwatch's CLI reads its input with.
    let mut input = BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    let mut line_no = 0u64;
    let mut lines = 0u64;
    let mut checksum = 0.0;
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("bare_parse: {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
        line_no += 1;
        let text = trim_eol(&line);
        if text.is_empty() || (csv && line_no == 1) {
            continue;
        }
        let parsed = if csv { csv_line(text) } else { json_line(text) };
        match parsed {
            Ok(x) => checksum += x,
            Err(e) => {
                eprintln!("bare_parse: {path}:{line_no}: {e}");
                return ExitCode::FAILURE;
            }
        }
        lines += 1;
    }
    let format = if csv { "csv" } else { "json" };
    println!("bare parse ({format}): {lines} lines, checksum {checksum:.6e}");
    ExitCode::SUCCESS
}
