//! Sets of ASCII bytes: the classes gate atoms, needs and boundaries are
//! made of, and how common each is in prompt and code text.

/// A set of ASCII bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Ascii(pub u128);

impl Ascii {
    pub const ALL: Ascii = Ascii(u128::MAX);

    pub fn contains(self, b: u8) -> bool {
        b < 128 && self.0 & (1u128 << b) != 0
    }
    pub fn with(self, b: u8) -> Ascii {
        Ascii(self.0 | (1u128 << (b & 0x7f)))
    }
    pub fn union(self, o: Ascii) -> Ascii {
        Ascii(self.0 | o.0)
    }
    pub fn len(self) -> u32 {
        self.0.count_ones()
    }
    pub fn bytes(self) -> impl Iterator<Item = u8> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            let b = (bits != 0).then(|| bits.trailing_zeros() as u8)?;
            bits &= bits - 1;
            Some(b)
        })
    }
    /// The single byte of the set ignoring ASCII case (`{c, C}` → `c`).
    pub fn single_folded(self) -> Option<u8> {
        let mut folded = Ascii::default();
        for b in self.bytes() {
            folded = folded.with(b.to_ascii_lowercase());
        }
        (folded.len() == 1).then(|| folded.bytes().next().expect("one byte"))
    }
}

/// Rough chance that a byte of prompt, code or tool-output text is in the
/// class (white space and lower-case letters are common, digits and
/// capitals less so, most punctuation rare).
pub fn probability(c: Ascii) -> f64 {
    // Policy compilation asks this of every class of every window of every
    // atom: a sum over the byte weights' bit masks, not over the bytes.
    const fn mask(bytes: &[u8]) -> u128 {
        let mut m = 0u128;
        let mut i = 0;
        while i < bytes.len() {
            m |= 1u128 << bytes[i];
            i += 1;
        }
        m
    }
    const fn range(lo: u8, hi: u8) -> u128 {
        (u128::MAX >> (127 - (hi - lo) as u32)) << lo
    }
    const COMMON: u128 = mask(b"etaoinsr");
    const WEIGHTS: [(u128, f64); 6] = [
        (mask(b" "), 0.3),
        (COMMON, 0.05),
        (range(b'a', b'z') & !COMMON, 0.015),
        (range(b'0', b'9'), 0.02),
        (range(b'A', b'Z'), 0.006),
        (mask(b".,_()-=:;"), 0.01),
    ];
    let mut rest = c.0;
    let mut p = 0.0;
    for (m, w) in WEIGHTS {
        p += f64::from((c.0 & m).count_ones()) * w;
        rest &= !m;
    }
    (p + f64::from(rest.count_ones()) * 0.001).min(1.0)
}

/// [`probability`] byte by byte (the reference its masks are held to).
#[cfg(test)]
pub fn probability_bytewise(c: Ascii) -> f64 {
    c.bytes()
        .map(|b| match b {
            b' ' => 0.3,
            b'e' | b't' | b'a' | b'o' | b'i' | b'n' | b's' | b'r' => 0.05,
            b'a'..=b'z' => 0.015,
            // Digits are rare in prose and code but make up a third of
            // logs, CI output and lockfiles: a fingerprint of four digits
            // fires everywhere there, one with a letter or a punctuation
            // byte beside them far less.
            b'0'..=b'9' => 0.02,
            b'A'..=b'Z' => 0.006,
            b'.' | b',' | b'_' | b'(' | b')' | b'-' | b'=' | b':' | b';' => 0.01,
            _ => 0.001,
        })
        .sum::<f64>()
        .min(1.0)
}

/// Classes at least this common are "broad" (hex, digits, base64): in
/// machine output they come in runs (ids, hashes, timestamps), so one
/// position of such a class says much about the next.
const BROAD: f64 = 0.1;

/// Chance that a run of a broad class goes on for one more byte, once it
/// has started. Independent positions (`0.36^12` for twelve hex digits)
/// would rank a run of hex or digits rarer than any keyword, and such runs
/// are a fifth of a service log: a gate of twelve hex digits left
/// candidates at 402,547 of 2.1 M log bytes (`[a-f0-9]{36}NRAL` was gated
/// by its hex run, not by `NRAL`).
const RUN_GOES_ON: f64 = 0.75;

/// Rough chance that a sequence of classes occurs at a given byte: the
/// product of the classes' chances, except that a broad class right after
/// a broad class costs at most [`RUN_GOES_ON`].
pub fn sequence_probability(classes: &[Ascii]) -> f64 {
    let mut p = 1.0;
    let mut prev_broad = false;
    for &c in classes {
        let q = probability(c);
        let broad = q >= BROAD;
        p *= if broad && prev_broad {
            q.max(RUN_GOES_ON)
        } else {
            q
        };
        prev_broad = broad;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_masks_weigh_bytes_as_listed() {
        let classes = [
            Ascii::ALL,
            Ascii::default().with(b' '),
            b"abcxyz019AZ.,_()-=:;~{}\\"
                .iter()
                .fold(Ascii::default(), |a, &b| a.with(b)),
            (b'a'..=b'z').fold(Ascii::default(), |a, b| a.with(b)),
            (b'0'..=b'9').fold(Ascii::default(), |a, b| a.with(b)),
            Ascii::default(),
        ];
        for c in classes {
            assert!(
                (probability(c) - probability_bytewise(c)).abs() < 1e-12,
                "{c:?}"
            );
        }
        // Runs of a broad class go on; rare bytes stay rare.
        let hex = b"0123456789abcdef"
            .iter()
            .fold(Ascii::default(), |a, &b| a.with(b));
        let p = sequence_probability(&[hex; 12]);
        assert!(p > 1e-3, "{p}");
        let nral: Vec<Ascii> = b"NRAL".iter().map(|&b| Ascii::default().with(b)).collect();
        assert!(sequence_probability(&nral) < 1e-6);
    }
}
