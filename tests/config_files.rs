//! Every file under `config/` is parsed and validated, so the examples an
//! analyst copies can never drift out of date.

use std::path::Path;

#[test]
fn every_file_in_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("config/ exists") {
        let path = entry.expect("readable entry").path();
        match path.extension().and_then(|e| e.to_str()) {
            // A file for `kpiwatch score --config` holds detector settings
            // only; the others are service configs.
            Some("toml") if path.ends_with("score.toml") => {
                kpiwatch::config::load_score_config(&path, None, 300)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            Some("toml") => {
                kpiwatch::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            }
            Some("yml" | "yaml") => {
                let text = std::fs::read_to_string(&path).expect("readable");
                yaml_rust2::YamlLoader::load_from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            _ => panic!("{}: no test parses this kind of file", path.display()),
        }
        checked += 1;
    }
    assert!(
        checked >= 4,
        "only {checked} config files found in {}",
        dir.display()
    );
}
