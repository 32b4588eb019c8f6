//! Text normalisation for bypass-resistant matching, with an exact map back
//! to the original text so masks land on the right bytes.
//!
//! A guard that matches `credit card` must also match `Credit  Card`,
//! `credit\u00a0card`, `cre\u200bdit card` and `ｃｒｅｄｉｔ ｃａｒｄ`. Before matching,
//! text is:
//! 1. NFKC-normalised character by character (fullwidth, ligatures, math
//!    alphanumerics, superscripts become their plain forms);
//! 2. stripped of format characters (Unicode category Cf: zero-width space,
//!    joiners, soft hyphen, BOM, bidi controls, tag characters);
//! 3. whitespace runs (any Unicode white space) collapsed to one ASCII space.
//!
//! Case is folded by the regex (case-insensitive patterns), not here, so
//! case-sensitive detectors (key prefixes) see the original case.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Normalised text and the map from its bytes back to the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized<'a> {
    pub text: Cow<'a, str>,
    /// Runs of the map, by normalised offset; empty when `text` is borrowed
    /// unchanged (identity map). A run per copied stretch, not an entry per
    /// byte: the map costs a few bytes per line, not four per byte.
    runs: Vec<Run>,
    /// The original is a JSON string literal's content (escapes intact).
    escaped: bool,
}

/// Normalised bytes from `norm` on come from original bytes from `orig`
/// on: one to one (`linear`, copied text) or all from the one character at
/// `orig` (a replaced or expanded character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    norm: u32,
    orig: u32,
    linear: bool,
}

impl Normalized<'_> {
    /// Original byte offset of the character behind normalised byte `i`.
    pub fn origin(&self, i: usize) -> usize {
        if self.runs.is_empty() {
            return i;
        }
        let k = self
            .runs
            .partition_point(|r| r.norm as usize <= i)
            .saturating_sub(1);
        let r = self.runs[k];
        if r.linear {
            r.orig as usize + (i - r.norm as usize)
        } else {
            r.orig as usize
        }
    }

    /// Maps a normalised byte range back to the smallest range of the
    /// original text covering every character that produced it (whole
    /// escape sequences, for a literal).
    pub fn original_range(
        &self,
        original: &str,
        range: std::ops::Range<usize>,
    ) -> std::ops::Range<usize> {
        if range.is_empty() {
            let o = if range.start < self.text.len() {
                self.origin(range.start)
            } else {
                original.len()
            };
            return o..o;
        }
        let start = self.origin(range.start);
        let last = self.origin(range.end - 1);
        let len = if self.escaped {
            crate::provider::literal::char_len(original, last)
        } else {
            original[last..].chars().next().map_or(0, char::len_utf8)
        };
        start..last + len
    }
}

/// True for format characters (category Cf), removed by normalisation.
/// A bitmap for the Basic Multilingual Plane spares the category lookup
/// (a binary search) per character of fullwidth or decorated text.
pub(crate) fn is_format(c: char) -> bool {
    fn compute(c: char) -> bool {
        c.general_category() == GeneralCategory::Format
    }
    static TABLE: CharTable = CharTable::new(compute);
    !c.is_ascii() && TABLE.get(c)
}

/// True when normalisation keeps the (non-ASCII) character as it is: NFKC
/// maps it to itself and it is no format, control or space character.
/// A table for the Basic Multilingual Plane, built once, spares the
/// Unicode lookups per character (box drawing, arrows, CJK, accents).
pub(crate) fn kept_as_is(c: char) -> bool {
    fn compute(c: char) -> bool {
        if c.is_control() || c.is_whitespace() || is_format(c) {
            return false;
        }
        let mut n = std::iter::once(c).nfkc();
        n.next() == Some(c) && n.next().is_none()
    }
    static TABLE: CharTable = CharTable::new(compute);
    TABLE.get(c)
}

/// A property of characters, looked up in a bitmap for the Basic
/// Multilingual Plane (built on first use) and computed beyond it.
pub(crate) struct CharTable {
    bits: std::sync::OnceLock<Vec<u64>>,
    compute: fn(char) -> bool,
}

impl CharTable {
    pub(crate) const fn new(compute: fn(char) -> bool) -> CharTable {
        CharTable {
            bits: std::sync::OnceLock::new(),
            compute,
        }
    }

    pub(crate) fn get(&self, c: char) -> bool {
        let cp = c as u32;
        if cp >= 0x10000 {
            return (self.compute)(c);
        }
        let bits = self.bits.get_or_init(|| {
            let mut bits = vec![0u64; 0x10000 / 64];
            for cp in 0u32..0x10000 {
                if char::from_u32(cp).is_some_and(self.compute) {
                    bits[cp as usize / 64] |= 1 << (cp % 64);
                }
            }
            bits
        });
        bits[cp as usize / 64] & (1 << (cp % 64)) != 0
    }
}

/// True when normalising cannot change the text: ASCII with single spaces
/// as its only white space, no control characters (and, in a literal, no
/// escapes).
fn already_normal(s: &str, escaped: bool) -> bool {
    let b = s.as_bytes();
    let mut prev_space = false;
    for &c in b {
        if !(0x20..0x7f).contains(&c) || (escaped && c == b'\\') {
            return false;
        }
        let space = c == b' ';
        if space && prev_space {
            return false;
        }
        prev_space = space;
    }
    true
}

/// Normalises `s` (see the module docs).
pub fn normalize(s: &str) -> Normalized<'_> {
    normalize_impl::<false>(s)
}

/// Normalises the text a JSON string literal's content decodes to, mapping
/// back to the literal's raw bytes: the same text as
/// `normalize(&literal::decode(content))`, without decoding first.
pub fn normalize_literal(content: &str) -> Normalized<'_> {
    normalize_impl::<true>(content)
}

fn normalize_impl<const ESCAPED: bool>(s: &str) -> Normalized<'_> {
    if already_normal(s, ESCAPED) {
        return Normalized {
            text: Cow::Borrowed(s),
            runs: Vec::new(),
            escaped: ESCAPED,
        };
    }
    let mut text = String::with_capacity(s.len());
    let mut origin: Vec<Run> = Vec::new();
    let mut prev_space = false;
    // One character produced by the character at `at`.
    let push = |text: &mut String, origin: &mut Vec<Run>, c: char, at: usize| {
        let same_char = origin
            .last()
            .is_some_and(|r| !r.linear && r.orig as usize == at);
        if !same_char {
            origin.push(Run {
                norm: text.len() as u32,
                orig: at as u32,
                linear: false,
            });
        }
        text.push(c);
    };
    let bytes = s.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        // Fast path: a run of printable ASCII with single spaces is copied
        // whole, its origins consecutive.
        let mut end = at;
        let mut space = prev_space;
        while end < bytes.len() {
            let b = bytes[end];
            if (0x21..0x7f).contains(&b) && !(ESCAPED && b == b'\\') {
                space = false;
            } else if b == b' ' && !space {
                space = true;
            } else {
                break;
            }
            end += 1;
        }
        if end > at {
            let continues = origin.last().is_some_and(|r| {
                r.linear && r.orig as usize + (text.len() - r.norm as usize) == at
            });
            if !continues {
                origin.push(Run {
                    norm: text.len() as u32,
                    orig: at as u32,
                    linear: true,
                });
            }
            text.push_str(&s[at..end]);
            prev_space = space;
            at = end;
            continue;
        }
        // A run of ASCII white space (indentation, line breaks) becomes at
        // most one space.
        if matches!(bytes[at], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            if !prev_space {
                push(&mut text, &mut origin, ' ', at);
                prev_space = true;
            }
            while at < bytes.len()
                && matches!(bytes[at], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
            {
                at += 1;
            }
            continue;
        }
        let (c, next) = if ESCAPED {
            crate::provider::literal::char_at(s, at)
        } else {
            let c = s[at..].chars().next().expect("at is a char boundary");
            (c, at + c.len_utf8())
        };
        if c.is_ascii() {
            if c.is_ascii_whitespace() || c == '\u{0b}' {
                if !prev_space {
                    push(&mut text, &mut origin, ' ', at);
                    prev_space = true;
                }
            } else if c.is_ascii_control() {
                // Other C0 controls and DEL carry no text: drop them.
            } else {
                push(&mut text, &mut origin, c, at);
                prev_space = false;
            }
            at = next;
            continue;
        }
        if kept_as_is(c) {
            push(&mut text, &mut origin, c, at);
            prev_space = false;
            at = next;
            continue;
        }
        if is_format(c) {
            at = next;
            continue;
        }
        for n in std::iter::once(c).nfkc() {
            if n.is_whitespace() {
                if !prev_space {
                    push(&mut text, &mut origin, ' ', at);
                    prev_space = true;
                }
            } else if n.is_control() || is_format(n) {
                continue;
            } else {
                push(&mut text, &mut origin, n, at);
                prev_space = false;
            }
        }
        at = next;
    }
    Normalized {
        text: Cow::Owned(text),
        runs: origin,
        escaped: ESCAPED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ascii_is_borrowed() {
        let n = normalize("What is a credit card?");
        assert!(matches!(n.text, Cow::Borrowed(_)));
        assert_eq!(n.original_range("What is a credit card?", 10..21), 10..21);
    }

    #[test]
    fn bypass_spellings_normalise_to_the_plain_phrase() {
        for s in [
            "credit  card",
            "credit\ncard",
            "credit\u{00a0}card",
            "cre\u{200b}dit card",
            "credit\u{2003}card",
            "\u{ff43}\u{ff52}\u{ff45}\u{ff44}\u{ff49}\u{ff54} \u{ff43}\u{ff41}\u{ff52}\u{ff44}",
            "cred\u{00ad}it card",
            "credit\u{feff} card",
            "\u{1d41c}redit card",
        ] {
            assert_eq!(normalize(s).text, "credit card", "{s:?}");
        }
    }

    #[test]
    fn ranges_map_back_to_the_original_bytes() {
        let s = "my ｃａｒｄ:\u{200b} 4111  1111";
        let n = normalize(s);
        assert_eq!(n.text, "my card: 4111 1111");
        let i = n.text.find("card").unwrap();
        let r = n.original_range(s, i..i + 4);
        assert_eq!(&s[r], "ｃａｒｄ");
        let i = n.text.find("4111 1111").unwrap();
        let r = n.original_range(s, i..i + 9);
        assert_eq!(&s[r], "4111  1111");
        // A ligature expands to two characters that both map to it.
        let s = "ﬁle";
        let n = normalize(s);
        assert_eq!(n.text, "file");
        assert_eq!(&s[n.original_range(s, 0..1)], "ﬁ");
        assert_eq!(&s[n.original_range(s, 1..4)], "ﬁle");
    }

    #[test]
    fn literals_normalise_like_their_decoded_text() {
        let lit = r#"my \uff43ard:\u200b\n 4111\t 1111 \"q\" a\/b"#;
        let decoded = crate::provider::literal::decode(lit);
        let n = normalize_literal(lit);
        assert_eq!(n.text, normalize(&decoded).text);
        assert_eq!(n.text, "my card: 4111 1111 \"q\" a/b");
        let i = n.text.find("card").unwrap();
        assert_eq!(&lit[n.original_range(lit, i..i + 4)], r"\uff43ard");
        let i = n.text.find("4111 1111").unwrap();
        assert_eq!(&lit[n.original_range(lit, i..i + 9)], r"4111\t 1111");
        let i = n.text.find("a/b").unwrap();
        assert_eq!(&lit[n.original_range(lit, i..i + 3)], r"a\/b");
    }

    proptest::proptest! {
        #[test]
        fn literal_normalisation_matches_decoded(
            s in "(\\PC|[ \t\n\u{200b}\u{ff41}\u{a0}]){0,40}",
            escape_all in proptest::bool::ANY,
        ) {
            let lit = if escape_all {
                let mut all = String::new();
                for ch in s.chars() {
                    let mut buf = [0u16; 2];
                    for unit in ch.encode_utf16(&mut buf) {
                        all.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                all
            } else {
                let q = serde_json::to_string(&s).unwrap();
                q[1..q.len() - 1].to_owned()
            };
            let plain = normalize(&s);
            let n = normalize_literal(&lit);
            proptest::prop_assert_eq!(&n.text, &plain.text);
            // Every normalised character maps onto whole raw characters
            // that decode to the original characters behind it.
            for (i, _) in n.text.char_indices() {
                let r = n.original_range(&lit, i..i + 1);
                let p = plain.original_range(&s, i..i + 1);
                proptest::prop_assert_eq!(
                    crate::provider::literal::decode(&lit[r]),
                    &s[p]
                );
            }
        }
    }

    #[test]
    fn every_normalised_byte_maps_inside_the_original() {
        let s = "a\u{0301}\u{3000}b\t\u{202e}c\u{1f600}ﬀ\u{0}";
        let n = normalize(s);
        for i in 0..n.text.len() {
            assert!(n.origin(i) < s.len());
            assert!(s.is_char_boundary(n.origin(i)));
        }
    }
}
