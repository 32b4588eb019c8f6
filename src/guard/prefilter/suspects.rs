//! Suspect characters: escapes and non-ASCII characters that
//! normalisation turns into ASCII text or removes, so that the raw bytes
//! around them may hide an atom (see the [prefilter](super) guarantee).

use unicode_normalization::UnicodeNormalization;

use super::escaped_backslash;
use crate::guard::ascii::Ascii;
use crate::guard::normalize;

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
pub fn suspects(raw: &str, out: &mut Vec<u32>) -> bool {
    let b = raw.as_bytes();
    #[cfg(target_arch = "x86_64")]
    if b.len() > 64 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected just now.
        let (done, ascii) = unsafe { suspects_avx2(raw, out) };
        return suspects_scalar(raw, done, out) && ascii;
    }
    suspects_scalar(raw, 0, out)
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

/// [`suspects`] over whole 64-byte blocks that have a byte after them; returns
/// the character boundary it stopped at, and whether the blocks are ASCII.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn suspects_avx2(raw: &str, out: &mut Vec<u32>) -> (usize, bool) {
    use std::arch::x86_64::*;
    let b = raw.as_bytes();
    let (bs, del) = (_mm256_set1_epi8(b'\\' as i8), _mm256_set1_epi8(0x7f));
    let (u, bb, f) = (
        _mm256_set1_epi8(b'u' as i8),
        _mm256_set1_epi8(b'b' as i8),
        _mm256_set1_epi8(b'f' as i8),
    );
    let mask = |p: *const u8| -> (u32, u32) {
        // SAFETY: the caller reads 33 bytes from `p` inside `b`.
        unsafe {
            let v = _mm256_loadu_si256(p as *const __m256i);
            let w = _mm256_loadu_si256(p.add(1) as *const __m256i);
            let escape = _mm256_and_si256(
                _mm256_cmpeq_epi8(v, bs),
                _mm256_or_si256(
                    _mm256_or_si256(_mm256_cmpeq_epi8(w, u), _mm256_cmpeq_epi8(w, bb)),
                    _mm256_cmpeq_epi8(w, f),
                ),
            );
            let ascii = _mm256_or_si256(escape, _mm256_cmpeq_epi8(v, del));
            (
                _mm256_movemask_epi8(ascii) as u32,
                _mm256_movemask_epi8(v) as u32,
            )
        }
    };
    let mut at = 0;
    // Non-ASCII bytes before `skip` belong to a character already read.
    let mut skip = 0;
    let mut any_high = false;
    while at + 65 <= b.len() {
        let p = b[at..].as_ptr();
        let (a0, h0) = mask(p);
        // SAFETY: at + 65 <= len: bytes at..at + 65 are inside `b`.
        let (a1, h1) = mask(unsafe { p.add(32) });
        let mut ascii = u64::from(a0) | (u64::from(a1) << 32);
        let mut high = u64::from(h0) | (u64::from(h1) << 32);
        while ascii | high != 0 {
            let i = at + (ascii | high).trailing_zeros() as usize;
            if ascii & (1 << (i - at)) != 0 {
                if !escaped_backslash(b, i) || b[i] == 0x7f {
                    out.push(i as u32);
                }
            } else {
                any_high = true;
                if i >= skip {
                    skip = suspect_non_ascii(raw, i, out);
                }
            }
            ascii &= !(1 << (i - at));
            high &= !(1 << (i - at));
        }
        at += 64;
    }
    // The character the last block ended inside of, if any, was read.
    (at.max(skip), !any_high)
}
