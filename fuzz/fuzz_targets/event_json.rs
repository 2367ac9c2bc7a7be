//! The event reader: `Extractor::extract`, the hand-written JSON scanner
//! (with `unsafe`), on arbitrary bytes. Besides not crashing (and, under
//! the address sanitizer, not reading out of bounds), it must agree with
//! serde_json: a document serde_json reads as an object is accepted, and
//! every wanted value is what serde_json finds there.

#![no_main]

use kpiwatch::config::model::FieldPath;
use kpiwatch::pipeline::extract::{Extractor, Field};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Paths like a shop's KPIs read: top-level and nested, none a prefix of
/// another (a prefix's own slot would see duplicate keys differently).
const PATHS: [&[&str]; 5] = [
    &["time"],
    &["type"],
    &["payment", "amount"],
    &["user", "id"],
    &["a", "b", "c"],
];

fn expected(v: &Value) -> Field<'_> {
    match v {
        Value::Null => Field::Null,
        Value::Bool(b) => Field::Bool(*b),
        Value::Number(n) => Field::Num(n.as_f64().expect("a finite number")),
        Value::String(s) => Field::Str(s.as_str().into()),
        Value::Array(_) => Field::Array,
        Value::Object(_) => Field::Object,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut extractor = Extractor::new();
    let slots: Vec<usize> = PATHS
        .iter()
        .map(|p| extractor.add(&FieldPath(p.iter().map(|s| s.to_string()).collect())))
        .collect();
    let mut out = Vec::new();
    let result = extractor.extract(data, &mut out);
    if result.is_ok() {
        for f in &out {
            if let Field::Str(s) = f {
                // Borrowed strings skip UTF-8 validation (unsafe): they must
                // still be UTF-8.
                assert!(std::str::from_utf8(s.as_bytes()).is_ok());
            }
        }
    }
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    assert_eq!(result, Ok(()), "serde_json reads an object here");
    for (path, slot) in PATHS.iter().zip(slots) {
        let mut at = doc.get(path[0]);
        for key in &path[1..] {
            at = at.and_then(|v| v.get(*key));
        }
        match at {
            Some(v) => assert_eq!(out[slot], expected(v), "at {path:?}"),
            // A duplicate key may have replaced an object that held the
            // path for serde_json's map, while the scanner keeps what it
            // found; for top-level keys both keep the last.
            None if path.len() == 1 => assert_eq!(out[slot], Field::Missing, "at {path:?}"),
            None => {}
        }
    }
});
