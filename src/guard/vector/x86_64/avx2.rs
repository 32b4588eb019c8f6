//! AVX2: [`Vector`] for `__m256i`, and the kernels compiled with AVX2
//! enabled, callable through [`Avx2`], a token that exists only where the
//! CPU has AVX2.

use std::arch::x86_64::*;

use crate::guard::vector::{kernels, FingerprintTables, Trigrams, Vector};

/// Proof that this CPU has AVX2: only [`Avx2::detect`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Avx2(());

impl Avx2 {
    /// The token, when the CPU has AVX2.
    pub fn detect() -> Option<Avx2> {
        std::arch::is_x86_feature_detected!("avx2").then_some(Avx2(()))
    }

    /// [`kernels::fingerprints`] with AVX2.
    #[inline]
    pub fn fingerprints(
        self,
        t: &FingerprintTables,
        raw: &[u8],
        found: &mut impl FnMut(usize, u8),
    ) {
        // SAFETY: the token proves AVX2.
        unsafe { fingerprints(t, raw, found) }
    }

    /// [`super::super::Isa::trigrams`] with AVX2, 32 positions a step;
    /// returns where the steps end.
    #[inline]
    pub fn trigrams(self, t: &Trigrams, raw: &[u8], found: &mut impl FnMut(usize)) -> usize {
        // SAFETY: the token proves AVX2.
        unsafe { trigrams(t, raw, found) }
    }

    /// [`kernels::suspect_blocks`] with AVX2.
    #[inline]
    pub fn suspect_blocks(self, raw: &[u8], found: &mut impl FnMut(usize, bool)) -> usize {
        // SAFETY: the token proves AVX2.
        unsafe { suspect_blocks(raw, found) }
    }

    /// [`kernels::number_blocks`] with AVX2.
    #[inline]
    pub fn number_blocks(self, raw: &[u8], found: &mut impl FnMut(usize, u64, u64)) -> usize {
        // SAFETY: the token proves AVX2.
        unsafe { number_blocks(raw, found) }
    }

    /// [`kernels::next_digit`] with AVX2.
    #[inline]
    pub fn next_digit(self, raw: &[u8], from: usize) -> Result<usize, usize> {
        // SAFETY: the token proves AVX2.
        unsafe { next_digit(raw, from) }
    }
}

/// The positions of 32 bytes from `p` whose trigram hashes into `t`: the
/// hashes of 16 positions at a time in 16-bit lanes, widened to 32 bits
/// and each looked up by a gather of its bitmap word.
///
/// Gathers rather than shuffles: a shuffle looks up a 16-entry table, so
/// a Teddy-style filter takes nibbles and the union of many literals'
/// nibbles a bucket (see `Literals` in `prefilter/searcher.rs`).
///
/// # Safety
///
/// AVX2 is enabled in the caller, and 34 bytes from `p` are readable.
#[inline(always)]
unsafe fn trigram_mask(words: *const i32, p: *const u8) -> u32 {
    // SAFETY: the caller's guarantees.
    unsafe { trigram_half(words, p) | trigram_half(words, p.add(16)) << 16 }
}

/// [`trigram_mask`] of 16 positions.
///
/// # Safety
///
/// AVX2 is enabled in the caller, and 18 bytes from `p` are readable.
#[inline(always)]
unsafe fn trigram_half(words: *const i32, p: *const u8) -> u32 {
    // SAFETY: the caller's guarantees (plain functions, no closures, so
    // that everything inlines into the AVX2 function).
    unsafe {
        let m31 = _mm256_set1_epi16(31);
        let a = _mm256_cvtepu8_epi16(_mm_loadu_si128(p.cast()));
        let b = _mm256_cvtepu8_epi16(_mm_loadu_si128(p.add(1).cast()));
        let c = _mm256_cvtepu8_epi16(_mm_loadu_si128(p.add(2).cast()));
        let h = _mm256_or_si256(
            _mm256_and_si256(a, m31),
            _mm256_or_si256(
                _mm256_slli_epi16::<5>(_mm256_and_si256(b, m31)),
                _mm256_slli_epi16::<10>(_mm256_and_si256(c, m31)),
            ),
        );
        trigram_test(words, _mm256_cvtepu16_epi32(_mm256_castsi256_si128(h)))
            | trigram_test(
                words,
                _mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(h)),
            ) << 8
    }
}

/// Which of eight hashes (32-bit lanes) are in the bitmap `words`.
///
/// # Safety
///
/// AVX2 is enabled in the caller; every hash is below 2^15, so the
/// gather reads words of the 1024-word bitmap.
#[inline(always)]
unsafe fn trigram_test(words: *const i32, h: __m256i) -> u32 {
    // SAFETY: the caller's guarantees.
    unsafe {
        let w = _mm256_i32gather_epi32::<4>(words, _mm256_srli_epi32::<5>(h));
        let bit = _mm256_srlv_epi32(w, _mm256_and_si256(h, _mm256_set1_epi32(31)));
        _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32::<31>(bit))) as u32
    }
}

/// # Safety
///
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
unsafe fn trigrams(t: &Trigrams, raw: &[u8], found: &mut impl FnMut(usize)) -> usize {
    let words = t.words().as_ptr().cast::<i32>();
    let mut at = 0;
    while at + 34 <= raw.len() {
        // SAFETY: AVX2 is enabled here; 34 bytes from `at` are in `raw`.
        let mut m = unsafe { trigram_mask(words, raw.as_ptr().add(at)) };
        while m != 0 {
            found(at + m.trailing_zeros() as usize);
            m &= m - 1;
        }
        at += 32;
    }
    at
}

/// # Safety
///
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
unsafe fn number_blocks(raw: &[u8], found: &mut impl FnMut(usize, u64, u64)) -> usize {
    // SAFETY: AVX2 is enabled here, and the caller guarantees the CPU has it.
    unsafe { kernels::number_blocks::<__m256i>(raw, found) }
}

/// # Safety
///
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
unsafe fn next_digit(raw: &[u8], from: usize) -> Result<usize, usize> {
    // SAFETY: AVX2 is enabled here, and the caller guarantees the CPU has it.
    unsafe { kernels::next_digit::<__m256i>(raw, from) }
}

/// # Safety
///
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
unsafe fn fingerprints(t: &FingerprintTables, raw: &[u8], found: &mut impl FnMut(usize, u8)) {
    // SAFETY: AVX2 is enabled here, and the caller guarantees the CPU has it.
    unsafe { kernels::fingerprints::<__m256i>(t, raw, found) }
}

/// # Safety
///
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
unsafe fn suspect_blocks(raw: &[u8], found: &mut impl FnMut(usize, bool)) -> usize {
    // SAFETY: AVX2 is enabled here, and the caller guarantees the CPU has it.
    unsafe { kernels::suspect_blocks::<__m256i>(raw, found) }
}

/// Callers guarantee AVX2 (see [`Vector`]'s safety section).
impl Vector for __m256i {
    #[inline(always)]
    unsafe fn splat(b: u8) -> __m256i {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_set1_epi8(b as i8) }
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        // SAFETY: the caller guarantees AVX2 and 32 readable bytes.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }

    #[inline(always)]
    unsafe fn to_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // SAFETY: the caller guarantees AVX2; a 32-byte store into a
        // 32-byte array.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), self) };
        out
    }

    #[inline(always)]
    unsafe fn and(self, o: __m256i) -> __m256i {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_and_si256(self, o) }
    }

    #[inline(always)]
    unsafe fn or(self, o: __m256i) -> __m256i {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_or_si256(self, o) }
    }

    #[inline(always)]
    unsafe fn eq(self, o: __m256i) -> __m256i {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_cmpeq_epi8(self, o) }
    }

    #[inline(always)]
    unsafe fn low_nibbles(self) -> __m256i {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_and_si256(self, _mm256_set1_epi8(0x0f)) }
    }

    #[inline(always)]
    unsafe fn high_nibbles(self) -> __m256i {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_and_si256(_mm256_srli_epi16(self, 4), _mm256_set1_epi8(0x0f)) }
    }

    #[inline(always)]
    unsafe fn lookup(self, index: __m256i) -> __m256i {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_shuffle_epi8(self, index) }
    }

    #[inline(always)]
    unsafe fn movemask(self) -> u32 {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_movemask_epi8(self) as u32 }
    }
}
