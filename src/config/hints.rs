//! What to write instead, for the errors serde finds while reading a file
//! into the raw structs: a value of the wrong type ("invalid type: integer
//! `5`, expected a string") or a missing key.
//!
//! The advice comes from the raw structs' own doc comments, which every
//! field has (STYLE.md) and which say what the key is for and what it
//! looks like (`/// Bucket width: "1m", "5m", "1h" (default "5m").`). The
//! sources of those structs are compiled in and read only when an error is
//! reported, so a key added to a raw struct is covered by its doc comment,
//! with no second list to keep in step (a test checks every key).
//!
//! [`hint`] takes serde's message, the path of keys serde was reading (from
//! `serde_path_to_error`) and the text of the value as written, and returns
//! the message to show: `bucket = 5 must be a string in quotes. Bucket
//! width: "1m", "5m", "1h" (default "5m").`

use std::collections::HashMap;
use std::sync::OnceLock;

/// The files whose `pub struct`s are deserialised from TOML.
const SOURCES: [&str; 3] = [
    include_str!("raw.rs"),
    include_str!("mod.rs"),
    include_str!("../simulate/scenario.rs"),
];

/// One field of a raw struct, as written in its source.
#[derive(Debug)]
pub(crate) struct Field {
    /// The key in the file (the field name, or its `serde(rename)`).
    pub key: String,
    /// The doc comment, joined into one line.
    pub doc: String,
    /// The field's type as written, e.g. `Option<Spanned<AlertingToml>>`.
    pub ty: String,
}

/// Raw structs by name.
pub(crate) type Index = HashMap<String, Vec<Field>>;

/// Every `pub struct` of [`SOURCES`] with its fields, read once.
pub(crate) fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index = Index::new();
        for source in SOURCES {
            read_structs(source, &mut index);
        }
        index
    })
}

/// Reads the `pub struct Name { ... }` blocks of a source file: for each
/// `pub` field, its key, doc comment and type. Only the layout rustfmt
/// gives (one field per line, attributes and docs above it) is understood,
/// which is all these files use.
fn read_structs(source: &str, index: &mut Index) {
    let mut current: Option<(String, Vec<Field>)> = None;
    let mut doc: Vec<&str> = Vec::new();
    let mut rename: Option<String> = None;
    for line in source.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub struct ") {
            if rest.ends_with('{') {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                current = Some((name, Vec::new()));
            }
            doc.clear();
            rename = None;
        } else if line == "}" {
            if let Some((name, fields)) = current.take() {
                index.insert(name, fields);
            }
            doc.clear();
        } else if let Some(text) = line.strip_prefix("///") {
            doc.push(text.trim());
        } else if line.starts_with("#[serde(") {
            if let Some(at) = line.find("rename = \"") {
                let rest = &line[at + "rename = \"".len()..];
                rename = rest.split('"').next().map(str::to_string);
            }
        } else if let (Some((_, fields)), Some(rest)) = (&mut current, line.strip_prefix("pub ")) {
            if let Some((name, ty)) = rest.split_once(':') {
                fields.push(Field {
                    key: rename.take().unwrap_or_else(|| name.trim().to_string()),
                    doc: doc.join(" "),
                    ty: ty.trim().trim_end_matches(',').to_string(),
                });
            }
            doc.clear();
        } else if !line.starts_with("#[") {
            doc.clear();
            rename = None;
        }
    }
}

/// The raw struct a field's type holds, if any (`Option<Spanned<KpiToml>>`
/// holds `KpiToml`; `Option<Spanned<String>>` none).
pub(crate) fn struct_in<'a>(ty: &str, index: &'a Index) -> Option<(&'a str, &'a [Field])> {
    ty.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .find_map(|word| index.get_key_value(word))
        .map(|(k, v)| (k.as_str(), v.as_slice()))
}

/// The last segment of a Rust type's path: `kpiwatch::config::raw::ConfigToml`
/// is `ConfigToml`.
pub(crate) fn short_type_name(full: &str) -> &str {
    full.rsplit("::").next().unwrap_or(full)
}

/// What serde was reading: the keys from the top of the file (array
/// indexes and toml's own wrapper keys left out).
pub(crate) fn keys(path: &serde_path_to_error::Path) -> Vec<String> {
    path.iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Map { key } if !key.starts_with("$__") => {
                Some(key.clone())
            }
            _ => None,
        })
        .collect()
}

/// The field at `keys` from the struct `root`, and the key that names it
/// in the file. Keys below a field that is not a raw struct (the options
/// of `[kafka.options]`, a `where` table) resolve to that field.
fn field<'a>(root: &str, keys: &[String], index: &'a Index) -> Option<&'a Field> {
    let mut fields = index.get(root)?.as_slice();
    let mut found = None;
    for key in keys {
        let Some(f) = fields.iter().find(|f| &f.key == key) else {
            break;
        };
        found = Some(f);
        match struct_in(&f.ty, index) {
            Some((_, inner)) => fields = inner,
            None => break,
        }
    }
    found
}

/// The message for serde's `message` about the value at `keys` (from the
/// struct named `root`), written as `written` in the file (`None` when it
/// is not a short scalar, or is not shown). Messages it has nothing to add
/// to come back as they are.
pub(crate) fn hint(root: &str, keys: &[String], message: &str, written: Option<&str>) -> String {
    let index = index();
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let Some((got, want)) = rest.split_once(", expected ") else {
            return message.to_string();
        };
        let Some(key) = keys.last() else {
            return message.to_string();
        };
        let doc = field(root, keys, index)
            .map(|f| f.doc.as_str())
            .filter(|d| !d.is_empty());
        let shown = written.map_or_else(|| a(got), str::to_string);
        let (form, fix) = wanted(want, got, key, written);
        let mut out = format!("{key} = {shown} must be {form}");
        if let Some(fix) = fix {
            out.push_str(&format!(": {fix}"));
        }
        out.push('.');
        if let Some(doc) = doc {
            out.push(' ');
            out.push_str(doc);
        }
        return out;
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let missing = rest.trim_end_matches('`');
        // `[[topic]]` for an array of tables, `[service]` for a table.
        let table = match (keys.last(), field(root, keys, index)) {
            (None, _) => "the file".to_string(),
            (Some(k), Some(f)) if f.ty.contains("Vec<") => format!("[[{k}]]"),
            (Some(k), _) => format!("[{k}]"),
        };
        let mut path = keys.to_vec();
        path.push(missing.to_string());
        let doc = field(root, &path, index)
            .filter(|f| f.key == missing)
            .map(|f| f.doc.as_str())
            .filter(|d| !d.is_empty());
        return match doc {
            Some(doc) => format!("{table} needs `{missing}`: {doc}"),
            None => format!("{table} needs `{missing}`"),
        };
    }
    message.to_string()
}

/// What serde got, for a value not quoted back: "sequence" -> `[...]`,
/// "map" -> `{ ... }`.
fn a(got: &str) -> String {
    let kind = got.split(' ').next().unwrap_or(got);
    match kind {
        "integer" => "an integer",
        "floating" => "a number",
        "boolean" => "a boolean",
        "string" | "char" => "a string",
        "sequence" => "[...]",
        "map" => "{ ... }",
        _ => "this value",
    }
    .to_string()
}

/// What the key takes, in words, and the value rewritten to it when that
/// is plain from what was written (`"3"` where a number goes: `3`).
fn wanted(want: &str, got: &str, key: &str, written: Option<&str>) -> (String, Option<String>) {
    let unquoted = written
        .filter(|_| got.starts_with("string"))
        .and_then(|w| w.strip_prefix('"').and_then(|w| w.strip_suffix('"')));
    let whole = matches!(
        want,
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize"
    ) || want.starts_with("an integer");
    if whole {
        let fix = unquoted
            .filter(|w| w.parse::<i64>().is_ok())
            .map(|w| format!("{key} = {w}"));
        return ("a whole number, without quotes".into(), fix);
    }
    if matches!(want, "f32" | "f64") || want.starts_with("a number") {
        let fix = unquoted
            .filter(|w| w.parse::<f64>().is_ok_and(f64::is_finite))
            .map(|w| format!("{key} = {w}"));
        return ("a number, without quotes".into(), fix);
    }
    if want == "a boolean" {
        let fix = unquoted
            .filter(|w| matches!(*w, "true" | "false"))
            .map(|w| format!("{key} = {w}"));
        return ("true or false, without quotes".into(), fix);
    }
    if want.starts_with("a string") || want == "a borrowed string" {
        return ("a string in quotes".into(), None);
    }
    if want.starts_with("a sequence") || want.starts_with("a list") {
        let fix = written
            .filter(|_| !got.starts_with("map") && !got.starts_with("sequence"))
            .map(|w| format!("{key} = [{w}]"));
        return ("a list in [ ]".into(), fix);
    }
    if want.starts_with("struct ") || want.starts_with("a map") {
        return ("a table: [section] or { key = value }".into(), None);
    }
    (want.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_every_raw_struct_has_a_doc_comment() {
        let index = index();
        for root in ["ConfigToml", "ScenarioToml"] {
            let mut seen = Vec::new();
            let mut todo = vec![root];
            while let Some(name) = todo.pop() {
                if seen.contains(&name) {
                    continue;
                }
                seen.push(name);
                let fields = index
                    .get(name)
                    .unwrap_or_else(|| panic!("{name} is not found in the sources"));
                assert!(!fields.is_empty(), "{name} has no fields");
                for f in fields {
                    assert!(
                        !f.doc.is_empty(),
                        "{name}.{} needs a doc comment saying what to write",
                        f.key
                    );
                    if let Some((inner, _)) = struct_in(&f.ty, index) {
                        todo.push(inner);
                    }
                }
            }
            assert!(seen.len() > 3, "{root} reaches only {seen:?}");
        }
    }

    /// Every key reachable from `struct_name` at table `path` (headers to
    /// open it in `headers`), each as a file that gives it a value of the
    /// wrong type: (key, file, doc).
    fn wrong_typed(
        struct_name: &str,
        path: &[String],
        headers: &str,
        out: &mut Vec<(String, String, String)>,
    ) {
        for f in &index()[struct_name] {
            let inner = struct_in(&f.ty, index());
            let wrong = if inner.is_some() || f.ty.contains("BTreeMap") {
                "5"
            } else if f.ty.contains("toml::Value") {
                continue; // any value is accepted, and checked by validation
            } else {
                "{ }"
            };
            out.push((
                f.key.clone(),
                format!("{headers}{} = {wrong}\n", f.key),
                f.doc.clone(),
            ));
            if let Some((inner, _)) = inner {
                let mut sub = path.to_vec();
                sub.push(f.key.clone());
                let header = if f.ty.contains("Vec<") {
                    format!("[[{}]]\n", sub.join("."))
                } else {
                    format!("[{}]\n", sub.join("."))
                };
                wrong_typed(inner, &sub, &format!("{headers}{header}"), out);
            }
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_for_any_key_says_what_the_key_takes() {
        let mut cases = Vec::new();
        wrong_typed("ConfigToml", &[], "", &mut cases);
        assert!(cases.len() > 80, "only {} keys found", cases.len());
        for (key, text, doc) in cases {
            let src = super::super::Source::new(std::path::Path::new("k.toml"), &text);
            let err = src
                .parse::<super::super::raw::ConfigToml>()
                .map(|_| ())
                .expect_err(&text)
                .to_string();
            let line = text.lines().count();
            assert!(
                err.starts_with(&format!("k.toml:{line}:"))
                    && err.contains(&format!("{key} = "))
                    && err.contains(" must be ")
                    && err.contains(&doc),
                "{text}\n=> {err}"
            );
        }
    }

    #[test]
    fn renamed_fields_are_found_by_the_key_in_the_file() {
        let kpi = &index()["KpiToml"];
        assert!(kpi.iter().any(|f| f.key == "where"), "{kpi:?}");
        let config = &index()["ConfigToml"];
        let receiver = config.iter().find(|f| f.key == "receiver").unwrap();
        assert_eq!(
            struct_in(&receiver.ty, index()).map(|s| s.0),
            Some("ReceiverToml")
        );
    }

    #[test]
    fn a_string_for_a_number_is_rewritten_without_quotes() {
        let keys = ["kpi".to_string(), "min_volume".to_string()];
        let m = hint(
            "ConfigToml",
            &keys,
            "invalid type: string \"3\", expected f64",
            Some("\"3\""),
        );
        assert!(
            m.starts_with("min_volume = \"3\" must be a number, without quotes: min_volume = 3. Buckets with fewer events"),
            "{m}"
        );
    }

    #[test]
    fn an_unknown_message_is_left_as_it_is() {
        assert_eq!(
            hint("ConfigToml", &[], "expected `=`", None),
            "expected `=`"
        );
    }
}
