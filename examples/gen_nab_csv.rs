//! Writes the shared synthetic series (`examples/common/mod.rs`) as a
//! NAB-format CSV, `timestamp,value` with `YYYY-MM-DD HH:MM:SS` timestamps
//! at 5-minute steps: the input of `benches/score_throughput.sh`.
//!
//! usage: `cargo run --release --example gen_nab_csv -- ROWS PATH`
//!
//! Timestamps are formatted by hand (days to civil date once per day), so
//! five million rows take about a second.

use std::io::{BufWriter, Write};

mod common;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(rows), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: gen_nab_csv ROWS PATH");
        std::process::exit(2);
    };
    let Ok(rows) = rows.parse::<u64>() else {
        eprintln!("gen_nab_csv: ROWS must be a whole number, got {rows:?}");
        std::process::exit(2);
    };
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    out.write_all(b"timestamp,value\n")?;
    let mut date = String::new();
    let mut date_of = i64::MIN;
    for i in 0..rows {
        let t = common::time(i);
        let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
        if days != date_of {
            let (y, m, d) = civil_from_days(days);
            date = format!("{y:04}-{m:02}-{d:02}");
            date_of = days;
        }
        let (h, mi, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
        writeln!(out, "{date} {h:02}:{mi:02}:{s:02},{:.2}", common::value(i))?;
    }
    out.flush()
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
