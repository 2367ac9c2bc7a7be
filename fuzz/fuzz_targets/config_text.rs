//! The config loader: `validate` and `validate_parts` on arbitrary text.
//! Every error must be located inside the text (line:column of a real
//! line) and be one line.

#![no_main]

use std::path::Path;

use kpiwatch::config::{validate, validate_parts, ConfigError, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Validation reads the files a config names (CA, certificate and key
    // files); a device or the process's own files could block or be
    // endless, which is not what is fuzzed here.
    if ["/dev", "/proc", "/sys"].iter().any(|d| text.contains(d)) {
        return;
    }
    let lines = text.lines().count().max(1);
    for result in [
        validate(&Source::new(Path::new("f.toml"), text)).map(|_| ()),
        validate_parts(&Source::new(Path::new("f.toml"), text)).map(|_| ()),
    ] {
        match result {
            Ok(()) => {}
            Err(ConfigError::Invalid {
                line,
                column,
                message,
                ..
            }) => {
                assert!(line >= 1 && line <= lines + 1, "line {line} of {lines}");
                assert!(column >= 1);
                assert!(!message.contains('\n'), "{message:?}");
            }
            Err(e) => panic!("not a located error: {e}"),
        }
    }
});
