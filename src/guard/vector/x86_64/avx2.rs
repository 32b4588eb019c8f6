//! AVX2: [`Vector`] for `__m256i`, and the kernels compiled with AVX2
//! enabled, callable through [`Avx2`], a token that exists only where the
//! CPU has AVX2.

use std::arch::x86_64::*;

use crate::guard::vector::{kernels, FingerprintTables, Vector};

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
