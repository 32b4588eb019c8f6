//! Suspect characters: escapes and non-ASCII characters that
//! normalisation turns into ASCII text or removes, so that the raw bytes
//! around them may hide an atom (see the [prefilter](super) guarantee).

use unicode_normalization::UnicodeNormalization;

use super::escaped_backslash;
use crate::guard::ascii::Ascii;
use crate::guard::normalize;
use crate::guard::vector::Isa;

/// The ASCII bytes (not white space) normalising `c` produces, or every
/// byte when normalisation removes it (it joins its neighbours).
pub fn produces(c: char) -> Ascii {
    if c.is_ascii() {
        return if c.is_ascii_control() {
            Ascii::ALL
        } else {
            Ascii::default().with(c as u8)
        };
    }
    if c.is_control() || normalize::is_format(c) {
        return Ascii::ALL;
    }
    std::iter::once(c)
        .nfkc()
        .filter(|n| n.is_ascii() && !n.is_ascii_whitespace())
        .fold(Ascii::default(), |a, n| a.with(n as u8))
}

/// True when normalising the character can produce ASCII text or remove it
/// (see the module docs). Cached for the Basic Multilingual Plane.
pub fn suspect_char(c: char) -> bool {
    static TABLE: normalize::CharTable = normalize::CharTable::new(|c| produces(c).0 != 0);
    TABLE.get(c)
}

/// Appends the raw offsets of suspect characters in a literal's content:
/// `\b`, `\f` and `\u` escapes, DEL, and non-ASCII characters that
/// normalisation maps to ASCII or removes.
///
/// Returns whether the literal is ASCII.
pub fn suspects(isa: Isa, raw: &str, out: &mut Vec<u32>) -> bool {
    let b = raw.as_bytes();
    if b.len() <= 64 {
        return suspects_scalar(raw, 0, out);
    }
    // Non-ASCII bytes before `skip` belong to a character already read.
    let mut skip = 0;
    let mut any_high = false;
    let blocks = isa.suspect_blocks(b, |i, high| {
        if !high {
            if !escaped_backslash(b, i) || b[i] == 0x7f {
                out.push(i as u32);
            }
        } else {
            any_high = true;
            if i >= skip {
                skip = suspect_non_ascii(raw, i, out);
            }
        }
    });
    // The character the last block ended inside of, if any, was read.
    suspects_scalar(raw, blocks.max(skip), out) && !any_high
}

/// Whether byte `i` of a literal begins a suspect: a `\u`, `\b` or `\f`
/// escape (its backslash not itself escaped) or DEL. Non-ASCII characters
/// are looked at by the caller.
fn suspect_ascii(b: &[u8], i: usize) -> bool {
    match b[i] {
        0x7f => true,
        b'\\' => matches!(b.get(i + 1), Some(b'u' | b'b' | b'f')) && !escaped_backslash(b, i),
        _ => false,
    }
}

/// Pushes the suspect starting at non-ASCII byte `at` if it is one, and
/// returns where the character ends.
fn suspect_non_ascii(raw: &str, at: usize, out: &mut Vec<u32>) -> usize {
    let Some(c) = raw.get(at..).and_then(|r| r.chars().next()) else {
        return at + 1;
    };
    if suspect_char(c) {
        out.push(at as u32);
    }
    at + c.len_utf8()
}

/// [`suspects`] from byte `from` (a character boundary) on, byte by byte;
/// whether those bytes are ASCII.
pub(super) fn suspects_scalar(raw: &str, from: usize, out: &mut Vec<u32>) -> bool {
    let b = raw.as_bytes();
    let mut at = from;
    let mut ascii = true;
    while at < b.len() {
        if b[at] >= 0x80 {
            ascii = false;
            at = suspect_non_ascii(raw, at, out);
            continue;
        }
        if suspect_ascii(b, at) {
            out.push(at as u32);
        }
        at += 1;
    }
    ascii
}
