//! The prefilter's SIMD, behind one small module in the style of memchr's
//! and aho-corasick's `Vector` traits.
//!
//! * [`Vector`]: the few operations on a 32-byte register the kernels use;
//! * [`Trigrams`]: a set of three-byte strings up to ASCII case, and the
//!   positions of a text where one of them starts (many literals' first
//!   bytes: the literal gate's filter, `prefilter/searcher.rs`); AVX2
//!   hashes 32 positions a step and tests them with gathers;
//! * [`kernels`]: the kernels, written once over any [`Vector`]: which
//!   positions may start a fingerprint (nibble tables, Teddy-style), and
//!   where escapes, DEL and non-ASCII bytes are; where the next ASCII
//!   digit is (the digit gate's skip);
//! * `x86_64/avx2.rs`: [`Vector`] for `__m256i` and the kernels compiled
//!   with AVX2 enabled, behind a token that proves AVX2 was detected;
//! * `x86_64/avx512.rs`: with AVX-512 VBMI, the trigram filter (pair
//!   sets looked up by `vpermi2b`, no gathers) and the fingerprint passes
//!   (the exact tables looked up by `vpermi2b`, no nibbles), the rest
//!   through AVX2;
//! * [`scalar`]: the byte-at-a-time fallback with exact tables, on every
//!   platform, and (for the tests) 32 plain lanes that run the same
//!   kernels as AVX2 does, on every platform.
//!
//! [`Isa::detect`] picks the instruction set once, when a policy is
//! compiled; a scan only matches on the value it holds.

#[cfg(any(test, target_arch = "x86_64"))]
pub mod kernels;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

/// Length of a fingerprint: the classes one pass tests in a row.
pub const FINGERPRINT: usize = 4;

/// The tables of one fingerprint pass: per position of the fingerprint,
/// the bucket bits of each byte (exact), and of each low and high nibble
/// (16 entries, repeated for the second 128-bit lane). A byte is a
/// candidate for a bucket at a position when both its nibbles are; the
/// nibble tables may take bytes the exact ones do not.
#[derive(Debug, Clone)]
pub struct FingerprintTables {
    pub lo: [[u8; 32]; FINGERPRINT],
    pub hi: [[u8; 32]; FINGERPRINT],
    pub exact: [[u8; 256]; FINGERPRINT],
}

impl FingerprintTables {
    /// The buckets whose fingerprint the bytes from `at` hold, by the
    /// exact tables (bytes past the end count as zero).
    #[inline]
    pub fn exact_bits(&self, raw: &[u8], at: usize) -> u8 {
        let byte = |i: usize| raw.get(i).map_or(0, |&b| usize::from(b));
        self.exact
            .iter()
            .enumerate()
            .fold(u8::MAX, |bits, (k, exact)| bits & exact[byte(at + k)])
    }
}

/// A set of three-byte strings up to ASCII case, as a bitmap over a
/// 15-bit hash: the low five bits of each byte. ASCII case is the sixth
/// bit, so both cases of a letter hash alike; other bytes share a hash
/// with others (digits with `p`-`y`), which only adds candidates.
///
/// Why a hash of three bytes (the secret pack's ~270 literals had ~210
/// first trigrams; each is now found by its rarest, see `anchor` in
/// `prefilter/searcher.rs`): the positions of 1 MB bodies where a first
/// trigram starts were
/// 1.9 % (service log), 2.4 % (source), 2.2 % (CI), 2.8 % (lockfile),
/// 4.2 % (`git log`); with two bytes 20-24 %.
///
/// Beside the bitmap, the set's pairs: of each string's first and second
/// bytes, second and third, first and third, as 1,024-bit sets over two
/// five-bit hashes (see [`Trigrams::pairs`]). A vector unit that looks up
/// a 128-byte table per lane (AVX-512 VBMI) tests them without gathers,
/// and only the positions all three pass are tested in the bitmap.
#[derive(Clone)]
pub struct Trigrams {
    bits: [u32; 1024],
    pairs: [[u8; 128]; 3],
}

impl Default for Trigrams {
    fn default() -> Trigrams {
        Trigrams {
            bits: [0; 1024],
            pairs: [[0; 128]; 3],
        }
    }
}

impl std::fmt::Debug for Trigrams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
        write!(f, "Trigrams({n} hashes)")
    }
}

impl Trigrams {
    /// The hash of three bytes.
    #[inline(always)]
    pub fn hash(a: u8, b: u8, c: u8) -> usize {
        usize::from(a & 31) | usize::from(b & 31) << 5 | usize::from(c & 31) << 10
    }

    /// Adds the first three bytes of `literal`; a shorter one takes any
    /// byte past its end.
    pub fn insert(&mut self, literal: &[u8]) {
        let any: Vec<u8> = (0..32).collect();
        let at = |k: usize| literal.get(k).map_or(&any[..], std::slice::from_ref);
        for &a in at(0) {
            for &b in at(1) {
                for &c in at(2) {
                    let h = Trigrams::hash(a, b, c);
                    self.bits[h >> 5] |= 1 << (h & 31);
                    for (k, (x, y)) in [(a, b), (b, c), (a, c)].into_iter().enumerate() {
                        let (byte, bit) = Trigrams::pair(x, y);
                        self.pairs[k][byte] |= 1 << bit;
                    }
                }
            }
        }
    }

    /// Whether the hash of `a`, `b`, `c` is in the set.
    #[inline(always)]
    pub fn contains(&self, a: u8, b: u8, c: u8) -> bool {
        let h = Trigrams::hash(a, b, c);
        self.bits[h >> 5] & (1 << (h & 31)) != 0
    }

    /// The bitmap, 32 hashes a word (for the kernels' gathers).
    pub fn words(&self) -> &[u32; 1024] {
        &self.bits
    }

    /// Where the pair `x`, `y` is in a pair set: the byte (the hash's top
    /// seven bits, `x / 8 + 4 * y` of the low five bits of each) and the
    /// bit in it (`x % 8`).
    #[inline(always)]
    pub fn pair(x: u8, y: u8) -> (usize, u32) {
        let (x, y) = (x & 31, y & 31);
        (usize::from(x >> 3 | y << 2), u32::from(x & 7))
    }

    /// The pair sets (see [`Trigrams::pair`]): of the first and second
    /// bytes, the second and third, the first and third.
    pub fn pairs(&self) -> &[[u8; 128]; 3] {
        &self.pairs
    }
}

/// Whether a digit cluster may hold byte `b` (see `prefilter/digits.rs`):
/// ASCII digits, white space (`\t`, `\n`, `\r`, the space), the
/// separators `.-()`, a backslash and the `n`, `t`, `r` of an escape, and
/// every non-ASCII byte. The kernels' nibble tables hold the same class.
#[inline]
pub fn number_class(b: u8) -> bool {
    matches!(
        b,
        b'0'..=b'9'
            | b'\t'
            | b'\n'
            | b'\r'
            | b' '
            | b'('
            | b')'
            | b'-'
            | b'.'
            | b'\\'
            | b'n'
            | b't'
            | b'r'
            | 0x80..=0xff
    )
}

/// The instruction set the kernels run with, chosen once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Byte by byte, with exact tables ([`scalar`]).
    Scalar,
    /// The vector kernels on 32 plain lanes ([`scalar::Lanes`]): slower
    /// than [`Isa::Scalar`], so never detected; the tests run it to hold
    /// the kernels to the byte-by-byte code on every platform.
    #[cfg(test)]
    Lanes,
    /// The vector kernels with AVX2 (detected at run time).
    #[cfg(target_arch = "x86_64")]
    Avx2(x86_64::Avx2),
    /// The trigram filter and the fingerprint passes with AVX-512 VBMI,
    /// the other kernels with AVX2 (detected at run time).
    #[cfg(target_arch = "x86_64")]
    Avx512(x86_64::Avx512Vbmi),
}

impl Isa {
    /// The fastest instruction set of this CPU.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if let Some(avx512) = x86_64::Avx512Vbmi::detect() {
            return Isa::Avx512(avx512);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(avx2) = x86_64::Avx2::detect() {
            return Isa::Avx2(avx2);
        }
        Isa::Scalar
    }

    /// Calls `found(at, bits)` for positions `at` of `raw` where the
    /// fingerprints of the buckets `bits` (non-zero) may start, by the
    /// exact tables: every such position, in order.
    #[inline]
    pub fn fingerprints(self, t: &FingerprintTables, raw: &[u8], mut found: impl FnMut(usize, u8)) {
        match self {
            Isa::Scalar => scalar::fingerprints(t, raw, 0, &mut found),
            #[cfg(test)]
            // SAFETY: plain lanes need no instruction set.
            Isa::Lanes => unsafe { kernels::fingerprints::<scalar::Lanes>(t, raw, &mut found) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(avx2) => avx2.fingerprints(t, raw, &mut found),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(avx512) => {
                let from = avx512.fingerprints(t, raw, &mut found);
                scalar::fingerprints(t, raw, from, &mut found)
            }
        }
    }

    /// Calls `found(at)` for every position `at` of `raw` where a string
    /// of `t` may start, in order: where the three bytes from there hash
    /// into the set, and the last two positions (a string there would run
    /// past the end, or is shorter than three bytes).
    #[inline]
    pub fn trigrams(self, t: &Trigrams, raw: &[u8], mut found: impl FnMut(usize)) {
        let from = match self {
            Isa::Scalar => 0,
            // Plain lanes have no gathers: the byte-by-byte code.
            #[cfg(test)]
            Isa::Lanes => 0,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(avx2) => avx2.trigrams(t, raw, &mut found),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(avx512) => avx512.trigrams(t, raw, &mut found),
        };
        scalar::trigrams(t, raw, from, &mut found);
    }

    /// Calls `found(i, high)` for every byte `i` of the whole 64-byte blocks
    /// of `raw` that have a byte after them (none when the kernels do not
    /// run), in order: a backslash before `u`, `b` or `f`, a DEL
    /// (`high = false`), or a byte of a non-ASCII character (`high =
    /// true`). Returns where the blocks end.
    #[inline]
    pub fn suspect_blocks(self, raw: &[u8], mut found: impl FnMut(usize, bool)) -> usize {
        match self {
            Isa::Scalar => scalar::suspect_blocks(raw, &mut found),
            #[cfg(test)]
            // SAFETY: plain lanes need no instruction set.
            Isa::Lanes => unsafe { kernels::suspect_blocks::<scalar::Lanes>(raw, &mut found) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(avx2) => avx2.suspect_blocks(raw, &mut found),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(avx512) => avx512.avx2().suspect_blocks(raw, &mut found),
        }
    }

    /// Calls `found(at, digits, cluster)` for every whole 64-byte block of
    /// `raw` (none when the kernels do not run), in order: bit `i` of
    /// `digits` is set when byte `at + i` is an ASCII digit, of `cluster`
    /// when it is a byte a digit cluster may hold ([`number_class`]).
    /// Returns where the blocks end.
    #[inline]
    pub fn number_blocks(self, raw: &[u8], mut found: impl FnMut(usize, u64, u64)) -> usize {
        match self {
            Isa::Scalar => 0,
            #[cfg(test)]
            // SAFETY: plain lanes need no instruction set.
            Isa::Lanes => unsafe { kernels::number_blocks::<scalar::Lanes>(raw, &mut found) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(avx2) => avx2.number_blocks(raw, &mut found),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(avx512) => avx512.avx2().number_blocks(raw, &mut found),
        }
    }

    /// The first ASCII digit of `raw` at or after `from`, if any.
    #[inline]
    pub fn next_digit(self, raw: &[u8], from: usize) -> Option<usize> {
        let rest = match self {
            Isa::Scalar => from,
            #[cfg(test)]
            // SAFETY: plain lanes need no instruction set.
            Isa::Lanes => match unsafe { kernels::next_digit::<scalar::Lanes>(raw, from) } {
                Ok(at) => return Some(at),
                Err(rest) => rest,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(avx2) => match avx2.next_digit(raw, from) {
                Ok(at) => return Some(at),
                Err(rest) => rest,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(avx512) => match avx512.avx2().next_digit(raw, from) {
                Ok(at) => return Some(at),
                Err(rest) => rest,
            },
        };
        raw.get(rest..)?
            .iter()
            .position(u8::is_ascii_digit)
            .map(|k| rest + k)
    }

    /// Every instruction set this CPU runs, the slowest first (tests).
    #[cfg(test)]
    pub fn all() -> Vec<Isa> {
        #[cfg(target_arch = "x86_64")]
        let (avx2, avx512) = (
            x86_64::Avx2::detect().map(Isa::Avx2),
            x86_64::Avx512Vbmi::detect().map(Isa::Avx512),
        );
        #[cfg(not(target_arch = "x86_64"))]
        let (avx2, avx512) = (None, None);
        [Some(Isa::Scalar), Some(Isa::Lanes), avx2, avx512]
            .into_iter()
            .flatten()
            .collect()
    }
}

#[cfg(any(test, target_arch = "x86_64"))]
/// The operations on a 32-byte vector the kernels are written with.
///
/// Every method is `#[inline(always)]` and never `#[target_feature]`, so
/// that it inlines into a kernel compiled with the instruction set
/// enabled (see `x86_64/avx2.rs`).
///
/// # Safety
///
/// The methods are unsafe because an implementation may use instructions
/// the CPU lacks: callers must ensure the implementation's instruction set
/// is available (for `__m256i`, AVX2) and enabled in the calling function.
pub trait Vector: Copy {
    /// Every lane `b`.
    ///
    /// # Safety
    ///
    /// The implementation's instruction set is available.
    unsafe fn splat(b: u8) -> Self;

    /// The 32 bytes from `p`, unaligned.
    ///
    /// # Safety
    ///
    /// The implementation's instruction set is available, and 32 bytes
    /// from `p` are readable.
    unsafe fn load(p: *const u8) -> Self;

    /// The lanes as bytes.
    ///
    /// # Safety
    ///
    /// The implementation's instruction set is available.
    unsafe fn to_bytes(self) -> [u8; 32];

    /// Lane-wise and.
    ///
    /// # Safety
    ///
    /// The implementation's instruction set is available.
    unsafe fn and(self, o: Self) -> Self;

    /// Lane-wise or.
    ///
    /// # Safety
    ///
    /// The implementation's instruction set is available.
    unsafe fn or(self, o: Self) -> Self;

    /// `0xff` where the lanes are equal, else `0`.
    ///
    /// # Safety
    ///
    /// The implementation's instruction set is available.
    unsafe fn eq(self, o: Self) -> Self;

    /// Each lane's low nibble.
    ///
    /// # Safety
    ///
    /// The implementation's instruction set is available.
    unsafe fn low_nibbles(self) -> Self;

    /// Each lane's high nibble (shifted down).
    ///
    /// # Safety
    ///
    /// The implementation's instruction set is available.
    unsafe fn high_nibbles(self) -> Self;

    /// `self` as two 16-entry tables (one per 128-bit half) looked up by
    /// `index`, lanes below 16 (`pshufb`).
    ///
    /// # Safety
    ///
    /// The implementation's instruction set is available.
    unsafe fn lookup(self, index: Self) -> Self;

    /// The top bit of each lane, lane `i` in bit `i`.
    ///
    /// # Safety
    ///
    /// The implementation's instruction set is available.
    unsafe fn movemask(self) -> u32;
}
