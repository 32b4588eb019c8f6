//! AVX-512 with VBMI: the trigram filter without gathers, through
//! [`Avx512Vbmi`], a token that exists only where the CPU has AVX-512 F,
//! BW and VBMI (and AVX2, whose kernels it runs for everything else).
//!
//! # Why
//!
//! The AVX2 filter hashes 32 positions a step and looks each hash up in
//! the 32,768-bit bitmap with four gathers of eight words. A gather is one
//! instruction but many micro-operations: with the secret pack and 50
//! organisation patterns, the filter was 22 % of the samples of a 4 MB
//! source-code decision (`perf`). VBMI's `vpermi2b` looks up a 128-byte
//! table in every byte lane: 1,024 bits, enough for a set of pairs of
//! five-bit hashes. Three such sets (first and second byte, second and
//! third, first and third: see [`Trigrams::pairs`]) let through 3.1-4.8 %
//! of the positions of the bench bodies, against 0.8-2.4 % for the whole
//! trigram (counted over 1 MB of each kind, the secret pack's 308
//! anchors); only those are tested in the bitmap, one load each.

use std::arch::x86_64::*;

use super::Avx2;
use crate::guard::vector::{FingerprintTables, Trigrams, FINGERPRINT};

/// Proof that this CPU has AVX-512 F, BW and VBMI, and AVX2: only
/// [`Avx512Vbmi::detect`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Avx512Vbmi(Avx2);

impl Avx512Vbmi {
    /// The token, when the CPU has the instruction sets.
    pub fn detect() -> Option<Avx512Vbmi> {
        let avx2 = Avx2::detect()?;
        (std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vbmi"))
        .then_some(Avx512Vbmi(avx2))
    }

    /// The AVX2 token this one implies (the kernels it has no version of).
    #[inline]
    pub fn avx2(self) -> Avx2 {
        self.0
    }

    /// [`super::super::Isa::fingerprints`] with AVX-512 VBMI, 64
    /// positions a step, looked up in the exact tables (no nibbles);
    /// returns where the steps end.
    #[inline]
    pub fn fingerprints(
        self,
        t: &FingerprintTables,
        raw: &[u8],
        found: &mut impl FnMut(usize, u8),
    ) -> usize {
        // SAFETY: the token proves AVX-512 F, BW and VBMI.
        unsafe { fingerprints(t, raw, found) }
    }

    /// [`super::super::Isa::trigrams`] with AVX-512 VBMI, 64 positions a
    /// step; returns where the steps end.
    #[inline]
    pub fn trigrams(self, t: &Trigrams, raw: &[u8], found: &mut impl FnMut(usize)) -> usize {
        // SAFETY: the token proves AVX-512 F, BW and VBMI.
        unsafe { trigrams(t, raw, found) }
    }
}

/// One pair set (a 128-byte table in two registers) tested at 64
/// positions: `x` and `y` hold the low five bits of the pair's bytes.
///
/// # Safety
///
/// AVX-512 F, BW and VBMI are enabled in the caller.
#[inline(always)]
unsafe fn pair_mask(table: (__m512i, __m512i), x: __m512i, y: __m512i) -> u64 {
    // SAFETY: the caller's guarantees (plain functions, so that everything
    // inlines into the function with the features enabled).
    unsafe {
        // The byte: `x >> 3 | y << 2` (see `Trigrams::pair`). The 16-bit
        // shifts move no bit of a five-bit lane into its neighbour that
        // the mask does not clear.
        let index = _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi16::<3>(x), _mm512_set1_epi8(3)),
            _mm512_slli_epi16::<2>(y),
        );
        let byte = _mm512_permutex2var_epi8(table.0, index, table.1);
        // The bit: `1 << (x & 7)`, by a lookup per 128-bit lane.
        let bits = _mm512_set1_epi64(0x8040_2010_0804_0201_u64 as i64);
        let bit = _mm512_shuffle_epi8(bits, _mm512_and_si512(x, _mm512_set1_epi8(7)));
        _mm512_test_epi8_mask(byte, bit)
    }
}

/// # Safety
///
/// The CPU has AVX-512 F, BW and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn trigrams(t: &Trigrams, raw: &[u8], found: &mut impl FnMut(usize)) -> usize {
    let table = |k: usize| {
        let p = t.pairs()[k].as_ptr();
        // SAFETY: AVX-512 F is enabled here; each table is 128 bytes.
        unsafe {
            (
                _mm512_loadu_si512(p.cast()),
                _mm512_loadu_si512(p.add(64).cast()),
            )
        }
    };
    let (ab, bc, ac) = (table(0), table(1), table(2));
    let m31 = _mm512_set1_epi8(31);
    let mut at = 0;
    while at + 66 <= raw.len() {
        // SAFETY: AVX-512 F, BW and VBMI are enabled here; 66 bytes from
        // `at` are in `raw`.
        let mut m = unsafe {
            let p = raw.as_ptr().add(at);
            let a = _mm512_and_si512(_mm512_loadu_si512(p.cast()), m31);
            let b = _mm512_and_si512(_mm512_loadu_si512(p.add(1).cast()), m31);
            let c = _mm512_and_si512(_mm512_loadu_si512(p.add(2).cast()), m31);
            pair_mask(ab, a, b) & pair_mask(bc, b, c) & pair_mask(ac, a, c)
        };
        // The bitmap's answers first, without a branch on each (half the
        // pairs' survivors are no trigram of the set: a branch on them
        // mispredicts), then the positions.
        let mut exact = 0u64;
        while m != 0 {
            let k = m.trailing_zeros() as usize;
            m &= m - 1;
            let i = at + k;
            exact |= u64::from(t.contains(raw[i], raw[i + 1], raw[i + 2])) << k;
        }
        while exact != 0 {
            found(at + exact.trailing_zeros() as usize);
            exact &= exact - 1;
        }
        at += 64;
    }
    at
}

/// # Safety
///
/// The CPU has AVX-512 F, BW and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn fingerprints(
    t: &FingerprintTables,
    raw: &[u8],
    found: &mut impl FnMut(usize, u8),
) -> usize {
    // Per fingerprint position: the exact table's ASCII half in two
    // registers, and the bits of every byte above it (a class is ASCII, or
    // takes every byte: all of them alike).
    let tables: [(__m512i, __m512i, __m512i); FINGERPRINT] = std::array::from_fn(|k| {
        let p = t.exact[k].as_ptr();
        // SAFETY: AVX-512 F is enabled here; the table is 256 bytes.
        unsafe {
            (
                _mm512_loadu_si512(p.cast()),
                _mm512_loadu_si512(p.add(64).cast()),
                _mm512_set1_epi8(t.exact[k][128] as i8),
            )
        }
    });
    let mut at = 0;
    while at + 64 + FINGERPRINT - 1 <= raw.len() {
        // SAFETY: AVX-512 F, BW and VBMI are enabled here; 64 +
        // FINGERPRINT - 1 bytes from `at` are in `raw`.
        let (m, cand) = unsafe {
            let p = raw.as_ptr().add(at);
            let mut m = _mm512_set1_epi8(-1);
            for (k, &(lo, hi, high)) in tables.iter().enumerate() {
                let v = _mm512_loadu_si512(p.add(k).cast());
                let ascii = _mm512_permutex2var_epi8(lo, v, hi);
                let bits = _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), ascii, high);
                m = _mm512_and_si512(m, bits);
            }
            (m, _mm512_test_epi8_mask(m, m))
        };
        if cand != 0 {
            let mut bits = [0u8; 64];
            // SAFETY: a 64-byte store into a 64-byte array.
            unsafe { _mm512_storeu_si512(bits.as_mut_ptr().cast(), m) };
            let mut cand = cand;
            while cand != 0 {
                let lane = cand.trailing_zeros() as usize;
                cand &= cand - 1;
                found(at + lane, bits[lane]);
            }
        }
        at += 64;
    }
    at
}
