//! JSON 64 bytes at a time, as bit masks (bit `i` for byte `i`): what the
//! skeleton's string pass ([`super::skeleton`]) and the bracket matcher
//! ([`super::skip`]) share — reading a block, comparing its bytes, which
//! bytes an escape covers and which lie inside strings.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// The 64 bytes of `b` from `base` as two 32-byte halves; a last block
/// shorter than 64 is copied into `tail` and padded with spaces. Returns
/// the halves and how many bytes are real.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn load(b: &[u8], base: usize, tail: &mut [u8; 64]) -> (__m256i, __m256i, usize) {
    let n = (b.len() - base).min(64);
    let p = if n == 64 {
        b[base..].as_ptr()
    } else {
        tail[..n].copy_from_slice(&b[base..]);
        tail[n..].fill(b' ');
        tail.as_ptr()
    };
    // SAFETY: 64 bytes are readable from `p` (the text or `tail`).
    unsafe {
        (
            _mm256_loadu_si256(p as *const __m256i),
            _mm256_loadu_si256(p.add(32) as *const __m256i),
            n,
        )
    }
}

/// The bytes of the block `(v0, v1)` equal to those of `x` (a byte
/// repeated, `_mm256_set1_epi8`).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn equal(v0: __m256i, v1: __m256i, x: __m256i) -> u64 {
    let m = |v: __m256i| _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, x)) as u32 as u64;
    m(v0) | m(v1) << 32
}

/// The bytes of a 64-byte block that end an escape (`\"`, `\n`, not the
/// second backslash of `\\`), and whether the first byte of the next block
/// does; `carry` says whether this block's first byte does. This is
/// [`is_escaped`](super::is_escaped)'s rule, a byte after an odd run of
/// backslashes is escaped, on bit masks. Adding a
/// run's first bit to the backslash mask carries through the run onto the
/// byte after it, and a run from an even position is odd exactly when that
/// byte is at an odd one (and the other way round).
#[cfg(target_arch = "x86_64")]
pub(super) fn escapes(backslashes: u64, carry: u64) -> (u64, u64) {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    // A backslash escaped by the last block's run is no run's start.
    let b = backslashes & !carry;
    let starts = b & !(b << 1);
    let (from_even, _) = b.overflowing_add(starts & EVEN);
    // A run from an odd position through the last byte is odd: it escapes
    // the next block's first byte.
    let (from_odd, out) = b.overflowing_add(starts & !EVEN);
    let after = (from_even & !b & !EVEN) | (from_odd & !b & EVEN);
    ((after | carry) & !backslashes, u64::from(out))
}

/// The bytes inside strings, from an opening quote up to (not including)
/// its closing one, given the quotes that count (`real`) and whether the
/// block starts inside a string: the prefix XOR of `real`, one carry-less
/// multiply by all ones (bit `i` of the product is the XOR of bits `0..=i`).
///
/// # Safety
/// The CPU must support PCLMULQDQ (the vector passes check it with AVX2,
/// [`supported`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq")]
#[inline]
pub(super) unsafe fn inside_strings(real: u64, in_string: bool) -> u64 {
    let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, real as i64), _mm_set1_epi8(-1), 0);
    let inside = _mm_cvtsi128_si64(product) as u64;
    if in_string {
        !inside
    } else {
        inside
    }
}

/// Whether this CPU runs the vector passes: AVX2 for the blocks, POPCNT
/// for depth counts, PCLMULQDQ for [`inside_strings`]. Without POPCNT in
/// the passes' target features, `count_ones` was a bit-trick sequence on
/// the bracket matcher's critical path (a third of its time on a captured
/// Claude Code request's tool list).
#[cfg(target_arch = "x86_64")]
pub(super) fn supported() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("popcnt")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The carry-less multiply is the prefix XOR, shift by shift.
        #[test]
        fn inside_strings_is_the_prefix_xor(real in proptest::num::u64::ANY, in_string in proptest::bool::ANY) {
            if !supported() {
                return Ok(());
            }
            let mut want = real;
            for s in [1, 2, 4, 8, 16, 32] {
                want ^= want << s;
            }
            if in_string {
                want = !want;
            }
            // SAFETY: PCLMULQDQ is supported.
            proptest::prop_assert_eq!(unsafe { inside_strings(real, in_string) }, want);
        }
    }

    proptest::proptest! {
        /// Escape ends from the bit masks equal a byte-by-byte walk, over
        /// two blocks (runs that cross between them included).
        #[test]
        fn escape_ends_match_a_walk(bits in proptest::collection::vec(proptest::bool::weighted(0.6), 128)) {
            let bytes: Vec<u8> = bits.iter().map(|&b| if b { b'\\' } else { b'x' }).collect();
            let mut want = vec![false; 129];
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'\\' {
                    if bytes.get(i + 1) != Some(&b'\\') {
                        want[i + 1] = true;
                    }
                    i += 2;
                } else {
                    i += 1;
                }
            }
            let mask = |block: &[u8]| {
                block.iter().enumerate().fold(0u64, |m, (k, &c)| m | (u64::from(c == b'\\') << k))
            };
            let (first, carry) = escapes(mask(&bytes[..64]), 0);
            let (second, last) = escapes(mask(&bytes[64..]), carry);
            let mut got = vec![false; 129];
            for k in 0..64 {
                got[k] = first & (1 << k) != 0;
                got[64 + k] = second & (1 << k) != 0;
            }
            got[128] = last != 0;
            // The same rule as the scalar helper, byte by byte.
            for k in (0..128).filter(|&k| bytes[k] != b'\\') {
                proptest::prop_assert_eq!(got[k], crate::provider::json::is_escaped(&bytes, k));
            }
            proptest::prop_assert_eq!(got, want, "{}", String::from_utf8_lossy(&bytes));
        }
    }
}
