//! Pulling the fields the KPIs need out of a JSON event.
//!
//! An [`Extractor`] is compiled once from every dotted path the topic's KPIs
//! use (event time, filters, group_by, aggregated fields) into a trie.
//! Parsing an event is one pass of a small hand-written JSON scanner over
//! the bytes: it descends only into objects on those paths, skips
//! everything else, and writes each wanted value into its slot as a
//! [`Field`] that borrows strings from the message where JSON escapes
//! allow. No `serde_json::Value` is built and nothing is allocated for an
//! event without escapes, which is what keeps a core above a million events
//! per second.
//!
//! The scanner accepts and refuses exactly what the serde_json visitor it
//! replaced did (a serde visitor spent most of its time in per-string
//! overheads: UTF-8 validation calls, escape searches, key comparisons);
//! `tests::the_scanner_agrees_with_serde_json` checks that on random
//! mutations of events against that visitor, kept in the tests. In
//! serde_json's terms: wanted strings and every key of an object on a path
//! are fully validated (control characters, escapes, paired surrogates,
//! UTF-8); skipped values are checked for syntax only (serde_json's
//! `IgnoredAny`: escapes must be well-formed, bytes are not UTF-8
//! validated, nesting is unbounded but not recursive); a wanted number
//! that overflows `f64` is an error; trailing whitespace is allowed; a
//! document that is not an object is reported as such without looking past
//! its first value.

use std::borrow::Cow;

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
    /// An object (present, but not a scalar).
    Object,
    /// An array (present, but not a scalar).
    Array,
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
        let mut s = Scanner {
            b: json,
            i: 0,
            stack: Vec::new(),
        };
        let object = match s.ws() {
            Some(b'{') => {
                s.i += 1;
                s.object(&self.root, out).map(|()| true)
            }
            Some(_) => s.value(&Node::default(), out).map(|()| false),
            None => Err(Malformed),
        };
        match object {
            Ok(true) if s.ws().is_none() => Ok(()),
            Ok(true) | Err(Malformed) => Err(ExtractError::InvalidJson),
            Ok(false) => Err(ExtractError::NotAnObject),
        }
    }
}

/// The input is not JSON (the scanner does not say where or why: the
/// caller only counts the event as invalid).
struct Malformed;

type Scan<T> = Result<T, Malformed>;

/// One event's bytes and the position in them.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// Open arrays (`b'['`) and objects (`b'{'`) of the value being
    /// skipped: skipping is a loop, so hostile nesting cannot overflow the
    /// stack. Stays unallocated for events without nested skipped values.
    stack: Vec<u8>,
}

/// What a string byte means to the scanner: [`QUOTE`] or [`BACKSLASH`]
/// end the plain run, a [`CONTROL`] character is invalid inside a string,
/// [`HIGH`] bytes (non-ASCII) need UTF-8 validation in a wanted string.
static STRING_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = match c as u8 {
            b'"' => QUOTE,
            b'\\' => BACKSLASH,
            0..0x20 => CONTROL,
            0x80.. => HIGH,
            _ => 0,
        };
        c += 1;
    }
    t
};
const QUOTE: u8 = 1;
const BACKSLASH: u8 = 2;
const CONTROL: u8 = 4;
const HIGH: u8 = 8;

impl<'a> Scanner<'a> {
    /// Skips whitespace and peeks at the next byte.
    #[inline]
    fn ws(&mut self) -> Option<u8> {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    /// The members of an object whose `{` was just read, descending along
    /// `node`.
    fn object(&mut self, node: &Node, out: &mut [Field<'a>]) -> Scan<()> {
        match self.ws() {
            Some(b'}') => {
                self.i += 1;
                return Ok(());
            }
            Some(b'"') => {}
            _ => return Err(Malformed),
        }
        loop {
            self.i += 1;
            let key = self.string()?;
            if self.ws() != Some(b':') {
                return Err(Malformed);
            }
            self.i += 1;
            let key = key.as_bytes();
            // Length and first byte reject most keys without a comparison
            // call (paths have no empty parts).
            let child = node.children.iter().find(|(k, _)| {
                let k = k.as_bytes();
                k.len() == key.len() && k[0] == key[0] && k == key
            });
            match child {
                Some((_, child)) => self.value(child, out)?,
                None => self.skip_value()?,
            }
            match self.ws() {
                Some(b',') => {
                    self.i += 1;
                    if self.ws() != Some(b'"') {
                        return Err(Malformed);
                    }
                }
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Malformed),
            }
        }
    }

    /// A value at a trie node: recorded in the node's slot and, if it is an
    /// object, descended into.
    fn value(&mut self, node: &Node, out: &mut [Field<'a>]) -> Scan<()> {
        let field = match self.ws() {
            Some(b'{') => {
                self.i += 1;
                if let Some(s) = node.slot {
                    out[s] = Field::Object;
                }
                return self.object(node, out);
            }
            Some(b'[') => {
                self.skip_value()?;
                Field::Array
            }
            Some(b'"') => {
                self.i += 1;
                Field::Str(self.string()?)
            }
            Some(b't') => {
                self.ident(b"true")?;
                Field::Bool(true)
            }
            Some(b'f') => {
                self.ident(b"false")?;
                Field::Bool(false)
            }
            Some(b'n') => {
                self.ident(b"null")?;
                Field::Null
            }
            Some(b'-' | b'0'..=b'9') => Field::Num(self.number()?),
            _ => return Err(Malformed),
        };
        if let Some(s) = node.slot {
            out[s] = field;
        }
        Ok(())
    }

    fn ident(&mut self, word: &[u8]) -> Scan<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// Steps over a number's digits, checking JSON's grammar
    /// (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`); returns whether
    /// it had a fraction or exponent.
    fn skip_number(&mut self) -> Scan<bool> {
        let digits = |s: &mut Self| {
            let from = s.i;
            while s.b.get(s.i).is_some_and(u8::is_ascii_digit) {
                s.i += 1;
            }
            s.i - from
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => {
                self.i += 1;
                if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return Err(Malformed);
                }
            }
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(Malformed),
        }
        let mut real = false;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(Malformed);
            }
            real = true;
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(Malformed);
            }
            real = true;
        }
        Ok(real)
    }

    /// A number's value, rounded to the nearest `f64` as serde_json does
    /// (with `float_roundtrip`); one too large for `f64` is an error.
    fn number(&mut self) -> Scan<f64> {
        let from = self.i;
        let real = self.skip_number()?;
        let text = &self.b[from..self.i];
        // Integers of up to 15 digits are exact in f64: no float parser.
        if !real && text.len() <= 16 {
            let (negative, digits) = match text.split_first() {
                Some((b'-', rest)) => (true, rest),
                _ => (false, text),
            };
            if digits.len() <= 15 {
                let n = digits
                    .iter()
                    .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64;
                return Ok(if negative { -n } else { n });
            }
        }
        // The grammar above admits only ASCII, which Rust's (correctly
        // rounded) float parser reads the same way.
        let value: f64 = std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(Malformed)?;
        if value.is_finite() {
            Ok(value)
        } else {
            Err(Malformed)
        }
    }

    /// A string whose opening quote was just read, fully validated;
    /// borrowed from the input unless it had escapes.
    #[inline]
    fn string(&mut self) -> Scan<Cow<'a, str>> {
        let b: &'a [u8] = self.b;
        let from = self.i;
        let rest = &b[from..];
        let len = rest
            .iter()
            .position(|&c| STRING_BYTE[c as usize] != 0)
            .ok_or(Malformed)?;
        self.i = from + len;
        if rest[len] == b'"' {
            self.i += 1;
            // SAFETY: the run stopped at its first byte that is not plain
            // ASCII, so every byte before it is ASCII, which is UTF-8. This
            // skips `from_utf8`'s per-call cost on short keys and labels.
            return Ok(Cow::Borrowed(unsafe {
                std::str::from_utf8_unchecked(&rest[..len])
            }));
        }
        self.string_slow(from)
    }

    /// The rest of [`Scanner::string`] after a byte that is not plain
    /// ASCII: non-ASCII text (validated as UTF-8), an escape, or an error.
    #[cold]
    fn string_slow(&mut self, from: usize) -> Scan<Cow<'a, str>> {
        let b: &'a [u8] = self.b;
        loop {
            let c = *b.get(self.i).ok_or(Malformed)?;
            match STRING_BYTE[c as usize] {
                0 | HIGH => self.i += 1,
                QUOTE => {
                    self.i += 1;
                    return std::str::from_utf8(&b[from..self.i - 1])
                        .map(Cow::Borrowed)
                        .map_err(|_| Malformed);
                }
                BACKSLASH => return self.escaped_string(from).map(Cow::Owned),
                _ => return Err(Malformed),
            }
        }
    }

    /// The rest of a string from `from` (just after its opening quote) that
    /// has an escape at the current position.
    #[cold]
    fn escaped_string(&mut self, from: usize) -> Scan<String> {
        let mut text = self.b[from..self.i].to_vec();
        loop {
            let c = *self.b.get(self.i).ok_or(Malformed)?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(text).map_err(|_| Malformed),
                b'\\' => {
                    let e = *self.b.get(self.i).ok_or(Malformed)?;
                    self.i += 1;
                    let plain = match e {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let ch = self.unicode_escape()?;
                            text.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                            continue;
                        }
                        _ => return Err(Malformed),
                    };
                    text.push(plain);
                }
                0..=0x1f => return Err(Malformed),
                _ => text.push(c),
            }
        }
    }

    /// Four hex digits after `\u`.
    fn hex4(&mut self) -> Scan<u32> {
        let digits = self.b.get(self.i..self.i + 4).ok_or(Malformed)?;
        let mut n = 0;
        for &d in digits {
            n = n * 16 + char::from(d).to_digit(16).ok_or(Malformed)?;
        }
        self.i += 4;
        Ok(n)
    }

    /// The character of a `\u` escape just read; a surrogate must be a
    /// leading one followed by a `\u` escape of a trailing one.
    fn unicode_escape(&mut self) -> Scan<char> {
        let n = self.hex4()?;
        let n = match n {
            0xD800..=0xDBFF => {
                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                    return Err(Malformed);
                }
                self.i += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(Malformed);
                }
                0x1_0000 + ((n - 0xD800) << 10) + (low - 0xDC00)
            }
            _ => n,
        };
        char::from_u32(n).ok_or(Malformed)
    }

    /// Steps over a string whose opening quote was just read, checking only
    /// its syntax (serde_json's `IgnoredAny`: no UTF-8 or surrogate checks).
    fn skip_string(&mut self) -> Scan<()> {
        loop {
            let len = self.b[self.i..]
                .iter()
                .position(|&c| STRING_BYTE[c as usize] & !HIGH != 0)
                .ok_or(Malformed)?;
            self.i += len;
            let c = self.b[self.i];
            self.i += 1;
            match STRING_BYTE[c as usize] {
                QUOTE => return Ok(()),
                BACKSLASH => {
                    let e = *self.b.get(self.i).ok_or(Malformed)?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            self.hex4()?;
                        }
                        _ => return Err(Malformed),
                    }
                }
                _ => return Err(Malformed),
            }
        }
    }

    /// Reads `"key":` of a skipped object's member, the key's opening quote
    /// being next (after whitespace).
    fn skip_key(&mut self) -> Scan<()> {
        if self.ws() != Some(b'"') {
            return Err(Malformed);
        }
        self.i += 1;
        self.skip_string()?;
        if self.ws() != Some(b':') {
            return Err(Malformed);
        }
        self.i += 1;
        Ok(())
    }

    /// Steps over one value of any shape, checking its syntax.
    fn skip_value(&mut self) -> Scan<()> {
        self.stack.clear();
        loop {
            // A value is next.
            match self.ws() {
                Some(b'"') => {
                    self.i += 1;
                    self.skip_string()?;
                }
                Some(b't') => self.ident(b"true")?,
                Some(b'f') => self.ident(b"false")?,
                Some(b'n') => self.ident(b"null")?,
                Some(b'-' | b'0'..=b'9') => {
                    self.skip_number()?;
                }
                Some(open @ (b'[' | b'{')) => {
                    self.i += 1;
                    let close = if open == b'[' { b']' } else { b'}' };
                    if self.ws() == Some(close) {
                        self.i += 1;
                    } else {
                        self.stack.push(open);
                        if open == b'{' {
                            self.skip_key()?;
                        }
                        continue;
                    }
                }
                _ => return Err(Malformed),
            }
            // After a value: a comma, or the end of enclosing containers.
            loop {
                let Some(&open) = self.stack.last() else {
                    return Ok(());
                };
                match self.ws() {
                    Some(b',') => {
                        self.i += 1;
                        if open == b'{' {
                            self.skip_key()?;
                        }
                        break;
                    }
                    Some(b']') if open == b'[' => {}
                    Some(b'}') if open == b'{' => {}
                    _ => return Err(Malformed),
                }
                self.i += 1;
                self.stack.pop();
            }
        }
    }
}

/// The serde_json visitor the scanner replaced, kept as the specification
/// the scanner is tested against.
#[cfg(test)]
mod serde_visitor {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde::Deserializer;

    use super::{ExtractError, Extractor, Field, Node};

    /// [`Extractor::extract`] as serde_json reads it.
    pub fn extract<'a>(
        e: &Extractor,
        json: &'a [u8],
        out: &mut Vec<Field<'a>>,
    ) -> Result<(), ExtractError> {
        out.clear();
        out.resize(e.slots, Field::Missing);
        let mut de = serde_json::Deserializer::from_slice(json);
        let seed = ObjectSeed { node: &e.root, out };
        match seed.deserialize(&mut de) {
            Ok(true) => {}
            Ok(false) => return Err(ExtractError::NotAnObject),
            Err(_) => return Err(ExtractError::InvalidJson),
        }
        de.end().map_err(|_| ExtractError::InvalidJson)
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
                self.out[s] = Field::Object;
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
            self.put(Field::Array);
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

    /// Outcome and fields as text: `Debug` tells -0.0 from 0.0, which
    /// `PartialEq` does not.
    fn outcome(r: Result<(), ExtractError>, out: &[Field<'_>]) -> String {
        format!("{r:?} {out:?}")
    }

    #[test]
    fn the_scanner_agrees_with_serde_json() {
        use rand::{Rng, SeedableRng};
        let e = extractor(&[
            "time",
            "type",
            "amount",
            "user",
            "payment.amount",
            "user.country",
            "geo.city.name",
            "é",
        ]);
        let seeds: &[&[u8]] = &[
            br#"{"time":"2024-01-01T00:00:00Z","type":"page_view","user":"u177463","country":"FI","platform":"web","store":"s03"}"#,
            br#"{"time":1704067205,"type":"payment","amount":12.5,"payment":{"amount":-0,"currency":"EUR"},"user":{"country":"FI","tags":[1,2,{"x":null}]}}"#,
            r#" { "type" : "a\"b\\\/\b\f\n\r\t\u00e4\ud83d\ude00" , "amount" : -12.5e-3 , "geo" : { "city" : { "name" : "Köln" } } } "#.as_bytes(),
            r#"{"amount":1e400,"x":1e400,"y":[[],{},[{}],{"a":[]}],"é":true,"t\u0079pe":false}"#.as_bytes(),
            br#"{"amount":123456789012345678901234567890,"type":"\ud800","x":"\udc00\ud800x"}"#,
            br#"{"amount":0.1e1,"user":null,"payment":[1],"geo":"x","skip":"\u12"}"#,
            br#"[1,"a",{"b":2}] "#,
            br#""top\u00e4" x"#,
            br#"-0.0"#,
            b"{\"type\":\"caf\xc3\xa9\",\"skip\":\"\xff\",\"\xc3\xa9\":1}",
            br#"{"amount":9007199254740993,"x":-9223372036854775809,"y":18446744073709551616}"#,
        ];
        let alphabet: &[u8] =
            b"{}[]\":,\\ u0123456789eE.-+tfnrl\x00\x1f\x7f\x80\xbf\xc3\xa4\xed\xff\t\n";
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut kinds = std::collections::BTreeMap::new();
        for round in 0..60_000 {
            let mut json = seeds[round % seeds.len()].to_vec();
            for _ in 0..rng.gen_range(0..4) {
                let at = rng.gen_range(0..=json.len());
                match rng.gen_range(0..5) {
                    0 if at < json.len() => {
                        json.remove(at);
                    }
                    1 if at < json.len() => json[at] = alphabet[rng.gen_range(0..alphabet.len())],
                    2 => json.truncate(at),
                    3 => {
                        let from = rng.gen_range(0..=at);
                        let piece = json[from..at].to_vec();
                        json.splice(at..at, piece);
                    }
                    _ => json.insert(at, alphabet[rng.gen_range(0..alphabet.len())]),
                }
            }
            let (mut new, mut old) = (Vec::new(), Vec::new());
            let ours = outcome(e.extract(&json, &mut new), &new);
            let theirs = outcome(serde_visitor::extract(&e, &json, &mut old), &old);
            assert_eq!(ours, theirs, "input {:?}", String::from_utf8_lossy(&json));
            let kind = ours.split(' ').next().unwrap_or("").to_string();
            *kinds.entry(kind).or_insert(0) += 1;
        }
        // The mutations reach every outcome often.
        assert!(
            kinds.len() == 3 && kinds.values().all(|&n| n > 1000),
            "{kinds:?}"
        );
    }

    #[test]
    fn deep_nesting_in_a_skipped_value_is_fine() {
        let e = extractor(&["a"]);
        let mut json = b"{\"skip\":".to_vec();
        json.extend(std::iter::repeat_n(b'[', 100_000));
        json.extend(std::iter::repeat_n(b']', 100_000));
        json.extend_from_slice(b",\"a\":1}");
        let mut out = Vec::new();
        assert_eq!(e.extract(&json, &mut out), Ok(()));
        assert_eq!(out[0], Field::Num(1.0));
    }

    #[test]
    fn a_path_through_a_scalar_is_missing() {
        let e = extractor(&["user.id"]);
        let mut out = Vec::new();
        e.extract(br#"{"user":"bob"}"#, &mut out).unwrap();
        assert_eq!(out[0], Field::Missing);
    }
}
