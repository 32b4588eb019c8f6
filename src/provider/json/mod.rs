//! JSON helpers every dialect shares: string literals read in place
//! ([`literal`]), request skeletons ([`skeleton`]), the escape rule, and
//! the small tools the stream and response guards use to read a JSON
//! object and patch its string values without re-serialising it.

#[cfg(target_arch = "x86_64")]
mod block;
pub mod literal;
pub(crate) mod skeleton;
pub(crate) mod skip;

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Whether byte `i` of `b` is escaped: JSON's rule, a byte after an odd run
/// of backslashes is escaped (an even run is that many escaped
/// backslashes, and the byte after it is itself). This is how a string's
/// closing quote is told from a `\"`. The scalar sites call this;
/// `block::escapes` is the same rule on 64-byte bit masks.
#[inline]
pub(crate) fn is_escaped(b: &[u8], i: usize) -> bool {
    b[..i].iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 1
}

/// Byte range of a raw JSON value within the text it was borrowed from.
#[inline]
pub(crate) fn span_of(body: &str, raw: &RawValue) -> Range<usize> {
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    debug_assert!(start + raw.get().len() <= body.len());
    start..start + raw.get().len()
}

/// First significant byte of a raw JSON value.
#[inline]
pub(crate) fn first_byte(raw: &RawValue) -> u8 {
    raw.get().as_bytes().first().copied().unwrap_or(b'n')
}

/// The members of a JSON object in order, values raw. A repeated key is an
/// error: clients keep the last, a guard must not read the first.
pub(crate) struct Members<'a>(pub(crate) Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'de>(PhantomData<&'de ()>);
        impl<'de> Visitor<'de> for V<'de> {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members: Vec<(String, &'de RawValue)> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// Parses a JSON object (not an array posing as a struct).
#[inline]
pub(crate) fn object<'a, T: Deserialize<'a>>(s: &'a str) -> Result<T, String> {
    if !s.trim_start().starts_with('{') {
        return Err("expected a JSON object".into());
    }
    serde_json::from_str(s).map_err(|e| format!("invalid JSON: {e}"))
}

/// The text of a raw JSON string value (borrowed when it has no escapes).
#[inline]
pub(crate) fn decode(raw: &RawValue) -> Result<Cow<'_, str>, String> {
    if !raw.get().starts_with('"') {
        return Err("expected a string".into());
    }
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(s) => Ok(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(raw.get())
            .map(Cow::Owned)
            .map_err(|e| format!("invalid string: {e}")),
    }
}

/// `s` as a JSON string literal.
#[inline]
pub(crate) fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialise")
}

/// `src` with each range replaced (ranges non-overlapping).
pub(crate) fn splice(src: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(src.len() + 16);
    let mut pos = 0;
    for (range, with) in edits {
        out.push_str(&src[pos..range.start]);
        out.push_str(&with);
        pos = range.end;
    }
    out.push_str(&src[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_after_an_odd_run_of_backslashes_is_escaped() {
        let b = br#"a\"b\\"c\\\"d"#;
        let quotes: Vec<bool> = (0..b.len())
            .filter(|&i| b[i] == b'"')
            .map(|i| is_escaped(b, i))
            .collect();
        assert_eq!(quotes, [true, false, true]);
        assert!(!is_escaped(b, 0));
    }
}
