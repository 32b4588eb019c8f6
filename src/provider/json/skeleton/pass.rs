//! The skeleton's one AVX2 pass over a body: every string literal found
//! 64 bytes at a time (quotes, backslashes and control bytes as bit masks),
//! the escapes and control bytes of the long ones checked as serde would,
//! their contents cut; with [`Unread`], the values of members nobody reads
//! stepped over by [`skip`]'s bracket matcher (the depth of brackets
//! outside strings counted per block, so a top-level member is told from a
//! deeper one of the same name).

use super::{Unread, CUT};
use crate::provider::json::{block, literal, skip};

/// The skeleton text, its cuts and (with `unread`) the skeleton offsets of
/// the opening braces of the `objects_of` objects cut; `None` when
/// nothing is cut or the scan finds the body invalid (unterminated string,
/// bad escape, control byte in a string, an object that does not end).
///
/// # Safety
/// The CPU must support AVX2, POPCNT and PCLMULQDQ (`block::supported`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt,pclmulqdq")]
#[allow(clippy::type_complexity)]
pub(super) unsafe fn cut_avx2(
    body: &str,
    unread: Option<Unread<'_>>,
) -> Option<(String, Vec<(usize, usize)>, Vec<usize>)> {
    use std::arch::x86_64::*;
    let b = body.as_bytes();
    let mut text = String::new();
    let mut cuts = Vec::new();
    let mut opens_cut = Vec::new();
    let mut cut_total = 0;
    // With `unread`: the depth of brackets outside strings at the start of
    // the block.
    let mut depth = 0i64;
    let fold = _mm256_set1_epi8(0x20);
    let opener = _mm256_set1_epi8(b'{' as i8);
    let closer = _mm256_set1_epi8(b'}' as i8);
    // Body bytes up to here are in `text` (or cut).
    let mut copied = 0;
    let mut in_string = false;
    // Content start of the string open at the end of the last block.
    let mut start = 0;
    // The first byte of the next block follows an escaping backslash.
    let mut carry = 0u64;
    // The last `\u` escape seen: a string cut after one is checked whole.
    let mut last_u = None;
    let quote = _mm256_set1_epi8(b'"' as i8);
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let c1f = _mm256_set1_epi8(0x1f);
    let nibble = _mm256_set1_epi8(0x0f);
    let (mut lo, mut hi) = ([0u8; 32], [0u8; 32]);
    for c in [b'"', b'/', b'b', b'f', b'n', b'r', b't', b'u'] {
        lo[usize::from(c & 15)] |= 1 << (c >> 4);
        lo[usize::from(c & 15) + 16] |= 1 << (c >> 4);
    }
    for h in 0..8 {
        hi[h] = 1 << h;
        hi[h + 16] = 1 << h;
    }
    // SAFETY: 32-byte loads of 32-byte tables.
    let (escapable_lo, escapable_hi) = unsafe {
        (
            _mm256_loadu_si256(lo.as_ptr() as *const __m256i),
            _mm256_loadu_si256(hi.as_ptr() as *const __m256i),
        )
    };
    let u = _mm256_set1_epi8(b'u' as i8);
    let mut tail = [b' '; 64];
    let mut base = 0;
    // Where the scan goes on after an object it stepped over.
    let mut resume = None;
    while base < b.len() {
        // SAFETY: AVX2, as this function's.
        let (v0, v1, n) = unsafe { block::load(b, base, &mut tail) };
        let eq = |x: __m256i| unsafe { block::equal(v0, v1, x) };
        let quotes = eq(quote);
        let backslashes = eq(backslash);
        // Bytes up to 0x1f (their maximum with 0x1f is 0x1f): rare, so the
        // block is tested whole first.
        let (l0, l1) = (
            _mm256_cmpeq_epi8(_mm256_max_epu8(v0, c1f), c1f),
            _mm256_cmpeq_epi8(_mm256_max_epu8(v1, c1f), c1f),
        );
        let any = _mm256_or_si256(l0, l1);
        let controls = if _mm256_testz_si256(any, any) == 1 {
            0
        } else {
            _mm256_movemask_epi8(l0) as u32 as u64 | (_mm256_movemask_epi8(l1) as u32 as u64) << 32
        };
        let (escaped, next) = block::escapes(backslashes, carry);
        carry = next;
        if escaped != 0 {
            // Bytes that may end an escape (" / b f n r t u, and \ which
            // `escapes` leaves out): byte `v` is one when the table row of
            // its low nibble has the bit of its high nibble.
            let ends = |v: __m256i| {
                let lo = _mm256_shuffle_epi8(escapable_lo, _mm256_and_si256(v, nibble));
                let hi = _mm256_shuffle_epi8(
                    escapable_hi,
                    _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble),
                );
                let none = _mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), _mm256_setzero_si256());
                !(_mm256_movemask_epi8(none) as u32) as u64
            };
            let escapable = ends(v0) | ends(v1) << 32;
            // Each byte ending an escape must make a valid one (`\\` is).
            if escaped & !escapable != 0 {
                return None;
            }
            let hex = escaped & eq(u);
            if hex != 0 {
                last_u = Some(base + 63 - hex.leading_zeros() as usize);
            }
        }
        if carry != 0 && base + 64 >= b.len() {
            return None;
        }
        let valid = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        let mut real = quotes & !escaped & valid;
        // Inside a string: from an opening quote up to its closing one
        // (most blocks of a long string have no quote that counts).
        // SAFETY: PCLMULQDQ, as this function's.
        let inside = unsafe { block::inside_strings(real, in_string) };
        if controls & inside & !real & valid != 0 {
            return None;
        }
        // Brackets outside strings (`{`/`[` and `}`/`]` folded together by
        // their 0x20 bit), for the depth of a key.
        let (opens, closes) = if unread.is_some() {
            let (f0, f1) = (_mm256_or_si256(v0, fold), _mm256_or_si256(v1, fold));
            let outside = !inside & valid;
            // SAFETY: AVX2, as this function's.
            unsafe {
                (
                    block::equal(f0, f1, opener) & outside,
                    block::equal(f0, f1, closer) & outside,
                )
            }
        } else {
            (0, 0)
        };
        while real != 0 {
            let i = real.trailing_zeros() as usize;
            real &= real - 1;
            let pos = base + i;
            if !in_string {
                start = pos + 1;
                in_string = true;
                continue;
            }
            in_string = false;
            if let Some(unread) = unread.filter(|u| {
                pos - start == u.objects_of.len()
                    || u.top_level.is_some_and(|t| pos - start == t.len())
            }) {
                let key = &b[start..pos];
                // Brackets outside strings before the key: its depth.
                let below = (1u64 << i) - 1;
                let d = depth + i64::from((opens & below).count_ones())
                    - i64::from((closes & below).count_ones());
                // An `objects_of` object (its opening listed), or the
                // top-level member's value.
                let (open, listed) = if key == unread.objects_of.as_bytes() {
                    (
                        member_value(b, start - 1, pos).filter(|&o| b[o] == b'{'),
                        true,
                    )
                } else if d == 1 && unread.top_level.is_some_and(|t| key == t.as_bytes()) {
                    (member_value(b, start - 1, pos), false)
                } else {
                    (None, false)
                };
                if let Some(open) = open {
                    // SAFETY: AVX2, as this function's.
                    let close = unsafe { skip::matching_close_avx2(b, open) }?;
                    if close > open + 1 {
                        if text.capacity() == 0 {
                            text.reserve(b.len() / 16);
                        }
                        text.push_str(&body[copied..=open]);
                        if listed {
                            opens_cut.push(text.len() - 1);
                        }
                        cut_total += close - open - 1;
                        cuts.push((text.len(), cut_total));
                        copied = close;
                    }
                    // The scan goes on after the value (a closing bracket:
                    // not in a string, no backslash before, depth as at the
                    // key).
                    resume = Some(close + 1);
                    carry = 0;
                    depth = d;
                    break;
                }
            }
            if pos - start >= CUT {
                // Its `\u` escapes as serde would decode them (four hex
                // digits, surrogates in pairs): serde refuses a lone
                // surrogate in a string it decodes and lets it pass in one
                // it skips, and which it does depends on the field, so such
                // a body is parsed whole.
                if last_u.is_some_and(|u| u > start) && !literal::validate(&body[start..pos]) {
                    return None;
                }
                if text.capacity() == 0 {
                    text.reserve(b.len() / 16);
                }
                text.push_str(&body[copied..start]);
                cut_total += pos - start;
                cuts.push((text.len(), cut_total));
                copied = pos;
            }
        }
        match resume.take() {
            Some(at) => base = at,
            None => {
                depth += i64::from(opens.count_ones()) - i64::from(closes.count_ones());
                base += 64;
            }
        }
    }
    if in_string || cuts.is_empty() {
        return None;
    }
    text.push_str(&body[copied..]);
    Some((text, cuts, opens_cut))
}

/// The offset of the bracket that opens the value of the member whose key
/// is the string literal `b[quote..=end]` (its quotes): after `{` or `,`,
/// followed by `:` and `{` or `[` (white space between).
#[cfg(target_arch = "x86_64")]
fn member_value(b: &[u8], quote: usize, end: usize) -> Option<usize> {
    let before = b[..quote].iter().rposition(|c| !c.is_ascii_whitespace())?;
    if !matches!(b[before], b'{' | b',') {
        return None;
    }
    let mut at = end + 1;
    let next = |at: &mut usize| {
        while b.get(*at).is_some_and(u8::is_ascii_whitespace) {
            *at += 1;
        }
        b.get(*at).copied()
    };
    if next(&mut at)? != b':' {
        return None;
    }
    at += 1;
    matches!(next(&mut at)?, b'{' | b'[').then_some(at)
}
