//! JSON string literals read in place.
//!
//! Guards read a request's text straight from the body's string literals
//! (escapes intact) and masks are spliced into those literals, so a large
//! body is never decoded into a second copy nor re-encoded. These helpers
//! walk a literal's *content* (the bytes between its quotes) a character
//! at a time, each with the raw bytes it spans.

use std::borrow::Cow;
use std::ops::Range;

use super::is_escaped;

/// Decodes a literal's content. The literal must come from a body that
/// parsed as JSON (see [`validate`]); anything undecodable becomes U+FFFD.
pub fn decode(content: &str) -> Cow<'_, str> {
    if !content.as_bytes().contains(&b'\\') {
        return Cow::Borrowed(content);
    }
    let mut out = String::with_capacity(content.len());
    let mut at = 0;
    while at < content.len() {
        let (c, next) = char_at(content, at);
        out.push(c);
        at = next;
    }
    Cow::Owned(out)
}

/// Checks what a JSON parser skipping over a string does not: every `\u`
/// escape decodes (no lone surrogates). Only literals holding `\u` pay.
pub fn validate(content: &str) -> bool {
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> =
        std::sync::OnceLock::new();
    let finder = FINDER.get_or_init(|| memchr::memmem::Finder::new(b"\\u"));
    let b = content.as_bytes();
    let mut low_expected_at = None;
    for i in finder.find_iter(b) {
        // A backslash after an odd run of backslashes is itself escaped.
        if is_escaped(b, i) {
            continue;
        }
        let Some(unit) = hex4(b, i + 2) else {
            return false;
        };
        match (unit, low_expected_at) {
            (0xDC00..=0xDFFF, Some(at)) if at == i => low_expected_at = None,
            (_, Some(_)) => return false,
            (0xD800..=0xDBFF, None) => low_expected_at = Some(i + 6),
            (0xDC00..=0xDFFF, None) => return false,
            _ => {}
        }
    }
    low_expected_at.is_none()
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = b.get(at..at + 4)?;
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + (d as char).to_digit(16)?;
    }
    Some(v)
}

/// The character whose raw form starts at byte `at` of a literal's content,
/// and where the next one starts. `at` must be a character (or escape)
/// boundary.
#[inline]
pub fn char_at(content: &str, at: usize) -> (char, usize) {
    let b = content.as_bytes();
    if b[at] != b'\\' {
        if b[at] < 0x80 {
            return (b[at] as char, at + 1);
        }
        let c = content[at..].chars().next().unwrap_or('\u{fffd}');
        return (c, at + c.len_utf8());
    }
    let c = match b.get(at + 1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => {
            let Some(unit) = hex4(b, at + 2) else {
                return ('\u{fffd}', (at + 2).min(b.len()));
            };
            if (0xD800..0xDC00).contains(&unit) && b.get(at + 6) == Some(&b'\\') {
                if let Some(low @ 0xDC00..=0xDFFF) = hex4(b, at + 8) {
                    let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    return (char::from_u32(c).unwrap_or('\u{fffd}'), at + 12);
                }
            }
            return (char::from_u32(unit).unwrap_or('\u{fffd}'), at + 6);
        }
        _ => '\u{fffd}',
    };
    (c, (at + 2).min(b.len()))
}

/// Raw length of the character starting at `at`.
#[inline]
pub fn char_len(content: &str, at: usize) -> usize {
    char_at(content, at).1 - at
}

/// Maps a byte range of the decoded text onto the literal's content: the
/// smallest raw range covering the same characters. `None` when the range
/// does not fall on character boundaries of the decoded text.
pub fn raw_range(content: &str, decoded: Range<usize>) -> Option<Range<usize>> {
    if !content.as_bytes().contains(&b'\\') {
        return (decoded.end <= content.len()
            && content.is_char_boundary(decoded.start)
            && content.is_char_boundary(decoded.end))
        .then_some(decoded);
    }
    let (mut raw, mut dec) = (0, 0);
    let mut start = None;
    loop {
        if start.is_none() && dec == decoded.start {
            start = Some(raw);
        }
        if dec == decoded.end {
            return start.map(|s| s..raw);
        }
        if raw >= content.len() || dec > decoded.end {
            return None;
        }
        let (c, next) = char_at(content, raw);
        dec += c.len_utf8();
        raw = next;
    }
}

/// Where a walk of a literal's content stands: a raw offset and the
/// decoded offset of the same character (see [`raw_range_from`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    raw: usize,
    dec: usize,
    /// Whether the content holds an escape, once looked at.
    escapes: Option<bool>,
}

/// [`raw_range`] resuming the walk from `cursor`, which it leaves at the
/// range's end: ranges asked in increasing order (the matches of one
/// pattern) walk the literal once, not once each.
pub fn raw_range_from(
    content: &str,
    decoded: Range<usize>,
    cursor: &mut Cursor,
) -> Option<Range<usize>> {
    let escapes = *cursor
        .escapes
        .get_or_insert_with(|| memchr::memchr(b'\\', content.as_bytes()).is_some());
    if !escapes {
        return (decoded.end <= content.len()
            && content.is_char_boundary(decoded.start)
            && content.is_char_boundary(decoded.end))
        .then_some(decoded);
    }
    if cursor.dec > decoded.start {
        *cursor = Cursor {
            escapes: Some(true),
            ..Cursor::default()
        };
    }
    let b = content.as_bytes();
    let (mut raw, mut dec) = (cursor.raw, cursor.dec);
    let mut start = None;
    loop {
        if start.is_none() && dec == decoded.start {
            if !content.is_char_boundary(raw) {
                return None;
            }
            start = Some(raw);
        }
        if dec == decoded.end {
            if !content.is_char_boundary(raw) {
                return None;
            }
            let range = start.map(|s| s..raw);
            if range.is_some() {
                (cursor.raw, cursor.dec) = (raw, dec);
            }
            return range;
        }
        if raw >= b.len() || dec > decoded.end {
            return None;
        }
        // Bytes up to the next escape decode one to one: skip them at once.
        let target = if start.is_none() {
            decoded.start
        } else {
            decoded.end
        };
        let plain = memchr::memchr(b'\\', &b[raw..]).unwrap_or(b.len() - raw);
        let step = plain.min(target.saturating_sub(dec));
        if step > 0 {
            raw += step;
            dec += step;
            continue;
        }
        let (c, next) = char_at(content, raw);
        dec += c.len_utf8();
        raw = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn content(json: &str) -> &str {
        &json[1..json.len() - 1]
    }

    #[test]
    fn escapes_decode_like_serde() {
        for lit in [
            r#""plain""#,
            r#""a\nb\t\"q\"\\ \/ \b\f\r""#,
            r#""\u00e9\u0041 \ud83d\ude00 é""#,
        ] {
            let want: String = serde_json::from_str(lit).unwrap();
            assert_eq!(decode(content(lit)), want);
            assert!(validate(content(lit)));
        }
        assert!(!validate(r"a\ud800b"));
        assert!(!validate(r"a\udc00"));
        assert!(!validate(r"\ud83d\u0041"));
    }

    #[test]
    fn decoded_ranges_map_onto_escapes() {
        let lit = r#"a\n\u00e9b\"c"#;
        assert_eq!(decode(lit), "a\néb\"c");
        // "é" (decoded bytes 2..4) is the six raw bytes of `\u00e9`.
        assert_eq!(raw_range(lit, 2..4), Some(3..9));
        assert_eq!(raw_range(lit, 0..5), Some(0..10));
        assert_eq!(raw_range(lit, 3..4), None);
        assert_eq!(raw_range(lit, 5..7), Some(10..13));
        assert_eq!(raw_range("plain", 1..3), Some(1..3));
        // Resumed walks answer the same, in order or not.
        let mut cursor = Cursor::default();
        for (range, want) in [
            (0..1, Some(0..1)),
            (2..4, Some(3..9)),
            (3..4, None),
            (5..7, Some(10..13)),
            (0..5, Some(0..10)),
        ] {
            assert_eq!(raw_range_from(lit, range, &mut cursor), want);
        }
    }

    proptest! {
        #[test]
        fn any_string_round_trips(s in "\\PC*", ctrl in proptest::collection::vec(0u8..0x20, 0..4)) {
            let mut s = s;
            for c in ctrl { s.push(c as char); }
            let lit = serde_json::to_string(&s).unwrap();
            let c = content(&lit);
            prop_assert!(validate(c));
            prop_assert_eq!(decode(c), s.as_str());
            // Escaping every character as \uXXXX decodes the same.
            let mut all = String::new();
            for ch in s.chars() {
                let mut buf = [0u16; 2];
                for unit in ch.encode_utf16(&mut buf) {
                    all.push_str(&format!("\\u{unit:04x}"));
                }
            }
            prop_assert!(validate(&all));
            prop_assert_eq!(decode(&all), s.as_str());
            prop_assert_eq!(raw_range(&all, 0..s.len()), Some(0..all.len()));
            // Character by character, resumed: the same as from the start.
            let mut cursor = Cursor::default();
            for (i, ch) in s.char_indices() {
                let r = i..i + ch.len_utf8();
                prop_assert_eq!(raw_range_from(c, r.clone(), &mut cursor), raw_range(c, r));
            }
        }
    }
}
