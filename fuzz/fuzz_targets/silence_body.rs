//! The body of `POST /api/v1/silences`: parsed and checked as the handler
//! does (`parse_new_silence`), then prepared by a store as a create would
//! (limits, times, ids). Refusals are fine; a silence that is accepted
//! must keep the store's limits.

#![no_main]

use kpiwatch::http::access::Caller;
use kpiwatch::notify::silence::{parse_new_silence, SilenceStore};
use libfuzzer_sys::fuzz_target;

/// 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600;

fuzz_target!(|data: &[u8]| {
    let caller = Caller("ops".to_string());
    let Ok(new) = parse_new_silence(data, &caller) else {
        return;
    };
    let store = SilenceStore::in_memory();
    if let Ok(silence) = store.prepare(new, NOW) {
        assert!(silence.ends_at > NOW && silence.ends_at > silence.starts_at);
        assert!(!silence.matchers.is_empty() && silence.matchers.len() <= 16);
        assert_eq!(silence.created_by, "ops");
        serde_json::to_vec(&silence).expect("an accepted silence serialises");
    }
});
