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
