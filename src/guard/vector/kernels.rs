//! The kernels, written once over any [`Vector`]: compiled with AVX2 in
//! `x86_64/avx2.rs`, and on plain lanes for the tests.
//!
//! Every function is `#[inline(always)]` and takes no closures of its own,
//! so that all of it, down to the vector instructions, inlines into the
//! function that enables the instruction set.

use super::{FingerprintTables, Vector, FINGERPRINT};

/// Calls `found(at, bits)` for the positions where the fingerprints of
/// buckets `bits` start (see [`super::Isa::fingerprints`]): 32 positions
/// a step, the bucket bits of each looked up by nibble, then narrowed by
/// the exact tables where some remain.
///
/// # Safety
///
/// `V`'s instruction set is available and enabled in the caller.
#[inline(always)]
pub unsafe fn fingerprints<V: Vector>(
    t: &FingerprintTables,
    raw: &[u8],
    found: &mut impl FnMut(usize, u8),
) {
    // SAFETY (all blocks below): the caller guarantees `V`'s instructions.
    let (lo, hi) = unsafe { (tables::<V>(&t.lo), tables::<V>(&t.hi)) };
    let mut at = 0;
    while at + 32 + FINGERPRINT - 1 <= raw.len() {
        // SAFETY: 32 + FINGERPRINT - 1 bytes from `at` are inside `raw`.
        let m = unsafe { step(&lo, &hi, raw.as_ptr().add(at)) };
        unsafe { candidates(t, raw, at, m, 32, found) };
        at += 32;
    }
    // The last positions from a copy padded with zero bytes (no atom's
    // class holds one; past an atom's end every byte is taken).
    let mut tail = [0u8; 64 + FINGERPRINT - 1];
    let rest = raw.len() - at;
    tail[..rest].copy_from_slice(&raw[at..]);
    let mut k = 0;
    while k < rest {
        // SAFETY: rest < 32 + FINGERPRINT - 1, so 32 + FINGERPRINT - 1
        // bytes from `k` are inside `tail`.
        let m = unsafe { step(&lo, &hi, tail.as_ptr().add(k)) };
        unsafe { candidates(t, raw, at + k, m, rest - k, found) };
        k += 32;
    }
}

/// One nibble table per fingerprint position.
///
/// # Safety
///
/// `V`'s instruction set is available.
#[inline(always)]
unsafe fn tables<V: Vector>(t: &[[u8; 32]; FINGERPRINT]) -> [V; FINGERPRINT] {
    const { assert!(FINGERPRINT == 4) };
    // SAFETY: 32-byte loads of 32-byte tables.
    unsafe {
        [
            V::load(t[0].as_ptr()),
            V::load(t[1].as_ptr()),
            V::load(t[2].as_ptr()),
            V::load(t[3].as_ptr()),
        ]
    }
}

/// Bucket bits of the 32 positions from `p`: the buckets whose
/// fingerprint's nibbles the bytes from each position hold.
///
/// # Safety
///
/// `V`'s instruction set is available, and 32 + FINGERPRINT - 1 bytes
/// from `p` are readable.
#[inline(always)]
unsafe fn step<V: Vector>(lo: &[V; FINGERPRINT], hi: &[V; FINGERPRINT], p: *const u8) -> V {
    // SAFETY: the caller's guarantees.
    unsafe {
        let mut m = V::splat(0xff);
        for k in 0..FINGERPRINT {
            let v = V::load(p.add(k));
            let l = lo[k].lookup(v.low_nibbles());
            let h = hi[k].lookup(v.high_nibbles());
            m = m.and(l.and(h));
        }
        m
    }
}

/// Reports the first `limit` positions from `base` that `m` gives some
/// bucket, narrowed by the exact tables (the nibble tables may take a
/// byte the classes do not).
///
/// # Safety
///
/// `V`'s instruction set is available.
#[inline(always)]
unsafe fn candidates<V: Vector>(
    t: &FingerprintTables,
    raw: &[u8],
    base: usize,
    m: V,
    limit: usize,
    found: &mut impl FnMut(usize, u8),
) {
    // SAFETY: the caller's guarantee.
    let mut cand = unsafe { !m.eq(V::splat(0)).movemask() };
    if limit < 32 {
        cand &= (1u32 << limit) - 1;
    }
    if cand == 0 {
        return;
    }
    // SAFETY: the caller's guarantee.
    let bits = unsafe { m.to_bytes() };
    while cand != 0 {
        let lane = cand.trailing_zeros() as usize;
        cand &= cand - 1;
        let exact = bits[lane] & t.exact_bits(raw, base + lane);
        if exact != 0 {
            found(base + lane, exact);
        }
    }
}

/// Calls `found(i, high)` for the suspect bytes of the whole 64-byte
/// blocks of `b` that have a byte after them (see
/// [`super::Isa::suspect_blocks`]); returns where the blocks end.
///
/// # Safety
///
/// `V`'s instruction set is available and enabled in the caller.
#[inline(always)]
pub unsafe fn suspect_blocks<V: Vector>(b: &[u8], found: &mut impl FnMut(usize, bool)) -> usize {
    let mut at = 0;
    while at + 65 <= b.len() {
        // SAFETY: at + 65 <= len: bytes at..at + 65 are inside `b`, the 33
        // each call reads among them.
        let ((a0, h0), (a1, h1)) = unsafe {
            let p = b.as_ptr().add(at);
            (suspect_masks::<V>(p), suspect_masks::<V>(p.add(32)))
        };
        let high = u64::from(h0) | (u64::from(h1) << 32);
        let mut all = u64::from(a0) | (u64::from(a1) << 32) | high;
        while all != 0 {
            let i = all.trailing_zeros();
            all &= all - 1;
            found(at + i as usize, high & (1 << i) != 0);
        }
        at += 64;
    }
    at
}

/// For the 32 bytes from `p`: the backslashes before `u`, `b` or `f` and
/// the DELs, and the non-ASCII bytes, as bit masks.
///
/// # Safety
///
/// `V`'s instruction set is available, and 33 bytes from `p` are readable.
#[inline(always)]
unsafe fn suspect_masks<V: Vector>(p: *const u8) -> (u32, u32) {
    // SAFETY: the caller's guarantees.
    unsafe {
        let v = V::load(p);
        let w = V::load(p.add(1));
        let escape = v.eq(V::splat(b'\\')).and(
            w.eq(V::splat(b'u'))
                .or(w.eq(V::splat(b'b')))
                .or(w.eq(V::splat(b'f'))),
        );
        let ascii = escape.or(v.eq(V::splat(0x7f)));
        (ascii.movemask(), v.movemask())
    }
}

/// The first ASCII digit at or after `from` in the whole 32-byte steps of
/// `b` from there (see [`super::Isa::next_digit`]): `Ok(index)`, or
/// `Err(where the steps end)` when they hold none.
///
/// # Safety
///
/// `V`'s instruction set is available and enabled in the caller.
#[inline(always)]
pub unsafe fn next_digit<V: Vector>(b: &[u8], from: usize) -> Result<usize, usize> {
    // Digits are the bytes whose high nibble is 3 and low nibble 0-9.
    const HIGH: [u8; 32] = {
        let mut t = [0u8; 32];
        t[3] = 0xff;
        t[16 + 3] = 0xff;
        t
    };
    const LOW: [u8; 32] = {
        let mut t = [0u8; 32];
        let mut i = 0;
        while i < 10 {
            t[i] = 0xff;
            t[16 + i] = 0xff;
            i += 1;
        }
        t
    };
    // SAFETY (all blocks below): the caller guarantees `V`'s instructions.
    let (high, low) = unsafe { (V::load(HIGH.as_ptr()), V::load(LOW.as_ptr())) };
    let mut at = from;
    while at + 32 <= b.len() {
        // SAFETY: 32 bytes from `at` are inside `b`.
        let mask = unsafe {
            let v = V::load(b.as_ptr().add(at));
            high.lookup(v.high_nibbles())
                .and(low.lookup(v.low_nibbles()))
                .movemask()
        };
        if mask != 0 {
            return Ok(at + mask.trailing_zeros() as usize);
        }
        at += 32;
    }
    Err(at)
}

/// Bucket bits by low and high nibble of the bytes a digit cluster may
/// hold (see [`super::number_class`]): ASCII digits set the top bit (so a
/// `movemask` of the lookups is the digit mask), every other cluster byte
/// some lower bit.
pub const NUMBER_LOW: [u8; 32] = number_table(true);
pub const NUMBER_HIGH: [u8; 32] = number_table(false);

const fn number_table(low: bool) -> [u8; 32] {
    // (high nibble, low nibbles, bucket bit)
    const CLASSES: &[(u8, &[u8], u8)] = &[
        (0x0, &[0x9, 0xa, 0xd], 0x01),
        (0x2, &[0x0, 0x8, 0x9, 0xd, 0xe], 0x02),
        (0x3, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 0x80),
        (0x5, &[0xc], 0x04),
        (0x6, &[0xe], 0x08),
        (0x7, &[0x2, 0x4], 0x10),
    ];
    let mut t = [0u8; 32];
    let mut c = 0;
    while c < CLASSES.len() {
        let (high, lows, bit) = CLASSES[c];
        if low {
            let mut k = 0;
            while k < lows.len() {
                t[lows[k] as usize] |= bit;
                t[16 + lows[k] as usize] |= bit;
                k += 1;
            }
        } else {
            t[high as usize] |= bit;
            t[16 + high as usize] |= bit;
        }
        c += 1;
    }
    // Non-ASCII bytes: any low nibble, high nibbles 8-f.
    let mut n = 0;
    while n < 16 {
        if low || n >= 8 {
            t[n] |= 0x20;
            t[16 + n] |= 0x20;
        }
        n += 1;
    }
    t
}

/// Calls `found(at, digits, cluster)` for the whole 64-byte blocks of `b`
/// (see [`super::Isa::number_blocks`]); returns where the blocks end.
///
/// # Safety
///
/// `V`'s instruction set is available and enabled in the caller.
#[inline(always)]
pub unsafe fn number_blocks<V: Vector>(b: &[u8], found: &mut impl FnMut(usize, u64, u64)) -> usize {
    // SAFETY (all blocks below): the caller guarantees `V`'s instructions.
    let (low, high, zero) = unsafe {
        (
            V::load(NUMBER_LOW.as_ptr()),
            V::load(NUMBER_HIGH.as_ptr()),
            V::splat(0),
        )
    };
    let mut at = 0;
    while at + 64 <= b.len() {
        // SAFETY: at + 64 <= len: the 64 bytes from `at` are inside `b`.
        let ((d0, c0), (d1, c1)) = unsafe {
            let p = b.as_ptr().add(at);
            (
                number_masks(low, high, zero, p),
                number_masks(low, high, zero, p.add(32)),
            )
        };
        found(
            at,
            u64::from(d0) | (u64::from(d1) << 32),
            u64::from(c0) | (u64::from(c1) << 32),
        );
        at += 64;
    }
    at
}

/// For the 32 bytes from `p`: the digits and the cluster bytes, as bit
/// masks (see [`NUMBER_LOW`]).
///
/// # Safety
///
/// `V`'s instruction set is available, and 32 bytes from `p` are readable.
#[inline(always)]
unsafe fn number_masks<V: Vector>(low: V, high: V, zero: V, p: *const u8) -> (u32, u32) {
    // SAFETY: the caller's guarantees.
    unsafe {
        let v = V::load(p);
        let m = low
            .lookup(v.low_nibbles())
            .and(high.lookup(v.high_nibbles()));
        (m.movemask(), !m.eq(zero).movemask())
    }
}
