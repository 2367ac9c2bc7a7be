//! Every file under `config/` is parsed and validated, so the examples an
//! analyst copies can never drift out of date.

use std::path::Path;

#[test]
fn every_file_in_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("config/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            kpiwatch::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
        }
    }
    assert!(checked >= 1, "no config files found in {}", dir.display());
}
