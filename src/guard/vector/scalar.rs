//! Without a vector unit: the fingerprint positions byte by byte with the
//! exact tables (suspects then are the byte-by-byte code's alone), and,
//! for the tests, `Vector` on 32 plain lanes.

#[cfg(test)]
use super::Vector;
use super::{FingerprintTables, Trigrams};

/// [`super::Isa::fingerprints`] byte by byte, from position `from` on.
#[inline]
pub fn fingerprints(
    t: &FingerprintTables,
    raw: &[u8],
    from: usize,
    found: &mut impl FnMut(usize, u8),
) {
    for at in from..raw.len() {
        let bits = t.exact_bits(raw, at);
        if bits != 0 {
            found(at, bits);
        }
    }
}

/// [`super::Isa::trigrams`] byte by byte, from position `from` on.
#[inline]
pub fn trigrams(t: &Trigrams, raw: &[u8], from: usize, found: &mut impl FnMut(usize)) {
    for at in from..raw.len() {
        match raw[at..] {
            [a, b, c, ..] if !t.contains(a, b, c) => {}
            _ => found(at),
        }
    }
}

/// [`super::Isa::suspect_blocks`] without a vector unit: no blocks, the
/// byte-by-byte code reads every byte.
#[inline]
pub fn suspect_blocks(_raw: &[u8], _found: &mut impl FnMut(usize, bool)) -> usize {
    0
}

/// 32 lanes in an array: the kernels on every platform.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub struct Lanes([u8; 32]);

#[cfg(test)]
impl Lanes {
    #[inline(always)]
    fn map(self, f: impl Fn(u8) -> u8) -> Lanes {
        Lanes(self.0.map(f))
    }

    #[inline(always)]
    fn zip(self, o: Lanes, f: impl Fn(u8, u8) -> u8) -> Lanes {
        Lanes(std::array::from_fn(|i| f(self.0[i], o.0[i])))
    }
}

/// Plain code: no instruction set to guarantee.
#[cfg(test)]
impl Vector for Lanes {
    #[inline(always)]
    unsafe fn splat(b: u8) -> Lanes {
        Lanes([b; 32])
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> Lanes {
        // SAFETY: the caller guarantees 32 readable bytes from `p`.
        Lanes(unsafe { p.cast::<[u8; 32]>().read_unaligned() })
    }

    #[inline(always)]
    unsafe fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    #[inline(always)]
    unsafe fn and(self, o: Lanes) -> Lanes {
        self.zip(o, |a, b| a & b)
    }

    #[inline(always)]
    unsafe fn or(self, o: Lanes) -> Lanes {
        self.zip(o, |a, b| a | b)
    }

    #[inline(always)]
    unsafe fn eq(self, o: Lanes) -> Lanes {
        self.zip(o, |a, b| if a == b { 0xff } else { 0 })
    }

    #[inline(always)]
    unsafe fn low_nibbles(self) -> Lanes {
        self.map(|b| b & 0x0f)
    }

    #[inline(always)]
    unsafe fn high_nibbles(self) -> Lanes {
        self.map(|b| b >> 4)
    }

    #[inline(always)]
    unsafe fn lookup(self, index: Lanes) -> Lanes {
        // `pshufb`: a set top bit gives zero, else the low four bits pick
        // an entry of the lane's own 16-byte half.
        Lanes(std::array::from_fn(|i| {
            let x = index.0[i];
            if x & 0x80 != 0 {
                0
            } else {
                self.0[(i & 16) | usize::from(x & 0x0f)]
            }
        }))
    }

    #[inline(always)]
    unsafe fn movemask(self) -> u32 {
        (0..32).fold(0, |m, i| m | (u32::from(self.0[i] >> 7) << i))
    }
}
