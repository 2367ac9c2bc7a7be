//! `kpiwatch score`'s CSV reader and the default detectors behind it, on
//! arbitrary input: errors are fine, panics are not, and every score it
//! prints is in [0, 1], with and without `--explain`.

#![no_main]

use detectors::SetConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|csv: &[u8]| {
    for explain in [false, true] {
        let mut out = Vec::new();
        let configure = Box::new(|width: i64| Ok(SetConfig::new(width)));
        if kpiwatch::score::score_csv(csv, &mut out, configure, explain).is_err() {
            return;
        }
        let text = String::from_utf8(out).expect("score writes UTF-8");
        for line in text.lines().skip(1) {
            let score: f64 = line
                .split(',')
                .nth(2)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no score in {line:?}"));
            assert!((0.0..=1.0).contains(&score), "{line}");
        }
    }
});
