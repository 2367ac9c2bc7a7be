//! Pulling the fields the KPIs need out of a JSON event.
//!
//! An [`Extractor`] is compiled once from every dotted path the topic's KPIs
//! use (event time, filters, group_by, aggregated fields) into a trie. Parsing
//! an event walks the JSON with serde, descends only into objects on those
//! paths, skips everything else with `IgnoredAny`, and writes each wanted
//! value into its slot as a [`Field`] that borrows strings from the message
//! where JSON escapes allow. No `serde_json::Value` is built: most of an
//! event's bytes are never allocated, which is what keeps a core above a
//! million events per second.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;

use crate::config::model::FieldPath;

/// The value found at one path of one event.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Field<'a> {
    /// The path is not in the event.
    #[default]
    Missing,
    /// JSON null.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An object or array (present, but not a scalar).
    Compound,
}

impl Field<'_> {
    /// True unless the path was absent.
    pub fn exists(&self) -> bool {
        !matches!(self, Field::Missing)
    }
}

#[derive(Debug, Default, Clone)]
struct Node {
    /// Slot written when this node's path ends here.
    slot: Option<usize>,
    /// Object keys below this node, searched linearly (a handful at most).
    children: Vec<(String, Node)>,
}

/// Why an event could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractError {
    /// Not valid JSON (including invalid UTF-8 inside strings).
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
}

/// A compiled set of paths; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Extractor {
    root: Node,
    slots: usize,
}

impl Extractor {
    /// An extractor with no paths yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `path` (if new) and returns its slot.
    pub fn add(&mut self, path: &FieldPath) -> usize {
        let mut node = &mut self.root;
        for part in &path.0 {
            let pos = match node.children.iter().position(|(k, _)| k == part) {
                Some(p) => p,
                None => {
                    node.children.push((part.clone(), Node::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[pos].1;
        }
        *node.slot.get_or_insert_with(|| {
            self.slots += 1;
            self.slots - 1
        })
    }

    /// Number of slots an event fills.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Parses `json` and fills `out` (resized to [`Extractor::slots`]).
    pub fn extract<'a>(
        &self,
        json: &'a [u8],
        out: &mut Vec<Field<'a>>,
    ) -> Result<(), ExtractError> {
        out.clear();
        out.resize(self.slots, Field::Missing);
        let mut de = serde_json::Deserializer::from_slice(json);
        let seed = ObjectSeed {
            node: &self.root,
            out,
        };
        match seed.deserialize(&mut de) {
            Ok(true) => {}
            Ok(false) => return Err(ExtractError::NotAnObject),
            Err(_) => return Err(ExtractError::InvalidJson),
        }
        de.end().map_err(|_| ExtractError::InvalidJson)
    }
}

/// An object key, borrowed from the message unless it had escapes (serde's
/// own `Cow<str>` always allocates).
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Deserialises an object, descending along `node`; yields false when the
/// value was not an object.
struct ObjectSeed<'n, 'o, 'a> {
    node: &'n Node,
    out: &'o mut Vec<Field<'a>>,
}

impl<'de, 'n, 'o> DeserializeSeed<'de> for ObjectSeed<'n, 'o, 'de> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'n, 'o> Visitor<'de> for ObjectSeed<'n, 'o, 'de> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.node.children.iter().find(|(k, _)| *k == key) {
                Some((_, child)) => map.next_value_seed(ValueSeed {
                    node: child,
                    out: &mut *self.out,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Deserialises the value at a trie node: records it in the node's slot and,
/// if it is an object with wanted keys below, descends.
struct ValueSeed<'n, 'o, 'a> {
    node: &'n Node,
    out: &'o mut Vec<Field<'a>>,
}

impl<'n, 'o, 'a> ValueSeed<'n, 'o, 'a> {
    fn put(self, f: Field<'a>) {
        if let Some(s) = self.node.slot {
            self.out[s] = f;
        }
    }
}

impl<'de, 'n, 'o> DeserializeSeed<'de> for ValueSeed<'n, 'o, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'n, 'o> Visitor<'de> for ValueSeed<'n, 'o, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if let Some(s) = self.node.slot {
            self.out[s] = Field::Compound;
        }
        ObjectSeed {
            node: self.node,
            out: self.out,
        }
        .visit_map(map)
        .map(|_| ())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.put(Field::Compound);
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.put(Field::Bool(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.put(Field::Num(v as f64));
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.put(Field::Num(v as f64));
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.put(Field::Num(v));
        Ok(())
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.put(Field::Str(Cow::Borrowed(v)));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.put(Field::Str(Cow::Owned(v.to_string())));
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.put(Field::Null);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> FieldPath {
        FieldPath(p.split('.').map(str::to_string).collect())
    }

    fn extractor(paths: &[&str]) -> Extractor {
        let mut e = Extractor::new();
        for p in paths {
            e.add(&path(p));
        }
        e
    }

    #[test]
    fn nested_paths_are_found_and_the_rest_skipped() {
        let e = extractor(&["type", "payment.amount", "user.country"]);
        let json = br#"{"type":"payment","noise":[1,{"a":2}],"payment":{"amount":12.5,"currency":"EUR"},"user":{"country":"FI"}}"#;
        let mut out = Vec::new();
        e.extract(json, &mut out).unwrap();
        assert_eq!(out[0], Field::Str("payment".into()));
        assert_eq!(out[1], Field::Num(12.5));
        assert_eq!(out[2], Field::Str("FI".into()));
    }

    #[test]
    fn absent_and_null_fields_differ() {
        let e = extractor(&["a", "b"]);
        let mut out = Vec::new();
        e.extract(br#"{"a":null}"#, &mut out).unwrap();
        assert_eq!(out, vec![Field::Null, Field::Missing]);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let e = extractor(&["s"]);
        let mut out = Vec::new();
        e.extract(br#"{"s":"a\"b\u00e4"}"#, &mut out).unwrap();
        assert_eq!(out[0], Field::Str("a\"bä".into()));
    }

    #[test]
    fn malformed_input_is_classified() {
        let e = extractor(&["a"]);
        let mut out = Vec::new();
        assert_eq!(
            e.extract(b"{\"a\":", &mut out),
            Err(ExtractError::InvalidJson)
        );
        assert_eq!(
            e.extract(b"[1,2]", &mut out),
            Err(ExtractError::NotAnObject)
        );
        assert_eq!(
            e.extract(b"{\"a\":1} trailing", &mut out),
            Err(ExtractError::InvalidJson)
        );
        assert_eq!(
            e.extract(b"{\"a\":\"\xff\"}", &mut out),
            Err(ExtractError::InvalidJson)
        );
    }

    #[test]
    fn a_path_through_a_scalar_is_missing() {
        let e = extractor(&["user.id"]);
        let mut out = Vec::new();
        e.extract(br#"{"user":"bob"}"#, &mut out).unwrap();
        assert_eq!(out[0], Field::Missing);
    }
}
