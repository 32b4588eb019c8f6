//! The prefilter (gates): what every match of a pattern must contain, found in the raw
//! JSON literal bytes at SIMD speed, so that normalisation and regex
//! search run only on the few small regions around a hit.
//!
//! The guarantee the scanner builds on (see `GuardSet::scan`): a pattern
//! matches the normalised text of a unit only if
//! * one of its gate atoms occurs in the raw bytes of one of the unit's
//!   literals, or
//! * the unit holds a *suspect* character: an escape or non-ASCII character
//!   that normalisation turns into ASCII text or removes (`\u0041`,
//!   fullwidth letters, zero-width and other format characters, controls).
//!
//! Why: a gate atom is a sequence of ASCII classes holding no white space
//! and none of `"`, `\`, `/` (characters a literal may hold escaped). If a
//! match's atom occurrence in the normalised text came only from plain
//! ASCII bytes of the literal with nothing removed between them, the same
//! bytes are in the raw literal; otherwise a suspect character is among or
//! between them.
//!
//! The region verified around a hit runs from boundary to boundary: ASCII
//! punctuation (and the space) that no match of the pattern can contain.
//! Normalisation maps such a character to itself, so the region's
//! normalised text is exactly that stretch of the unit's normalised text,
//! and a match never crosses a boundary.
//!
//! The number detectors (cards, SSNs, SINs, phone numbers), and patterns
//! whose only gate is a run of nine digits or more, are gated differently:
//! by the shapes of digit clusters (see [`digits`]), not by atoms of
//! digits, which fire everywhere in logs and lockfiles.
//!
//! Of a pattern's possible gates, the compiler takes the one cheapest to
//! search for (`compile/atoms.rs`, `Atom::search_cost`): a literal stretch
//! of three bytes or more (with many of them, as the secret pack has, one
//! SIMD pass of a hashed trigram filter finds where any may start, and a
//! masked compare of each literal anchored there confirms it; see
//! `searcher::Literals`) before a
//! fingerprint of classes, and runs of hex, digits or base64 priced as the
//! runs they are in machine output. With the secret pack on a 2.1 MB
//! service log, fingerprint candidates went from 431,236 to 71.
//!
//! # Crate or hand-written
//!
//! Literal atoms went to aho-corasick's packed Teddy over a lower-cased
//! copy of the text (last in 0c82088); the hand-written class-fingerprint
//! passes replaced it (28792e8, 6d3a772) on these figures, callgrind
//! instructions per 1 MB decision of the bench policy plus N custom
//! literals: N=0 12.66 M (Teddy) -> 11.95 M; N=60 15.09 M -> 13.47 M;
//! N=200 27.82 M -> 19.37 M. Alternating criterion runs, N=0: min
//! 0.826 -> 0.710 ms. Not re-measured in the restructuring (bench
//! binaries of 0c82088, the start and the end are built; see the commit
//! log); memchr stays for single bytes and words.

pub mod digits;
pub mod fingerprints;
pub mod searcher;
pub mod suspects;

pub use searcher::Searcher;
pub use suspects::{produces, suspect_char, suspects};

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether raw byte `i` of a literal is part of an escape sequence rather
/// than the character it looks like (after an odd run of backslashes, or
/// a hex digit of a `\u` escape, which counts as escaped too).
fn escaped(raw: &[u8], i: usize) -> bool {
    let mut k = i;
    while k > 0 && raw[k - 1] == b'\\' {
        k -= 1;
    }
    if (i - k) % 2 == 1 {
        return true;
    }
    // Within `\uXXXX`: a backslash-u up to five bytes back.
    (1..=5).any(|d| {
        i > d
            && raw[i - d] == b'u'
            && raw[i - d - 1] == b'\\'
            && !escaped_backslash(raw, i - d - 1)
            && raw[i - d + 1..=i].iter().all(u8::is_ascii_hexdigit)
    })
}

/// Whether the backslash at `i` is itself escaped (odd run before it).
fn escaped_backslash(raw: &[u8], i: usize) -> bool {
    let mut k = i;
    while k > 0 && raw[k - 1] == b'\\' {
        k -= 1;
    }
    (i - k) % 2 == 1
}

#[cfg(test)]
mod tests;
