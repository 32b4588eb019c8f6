//! Regions: the stretch of a unit's literals around a gate hit or a
//! suspect character, out to the nearest boundary on each side.

use std::ops::Range;

use crate::guard::ascii::Ascii;
use crate::provider::TextSegment;

/// ASCII punctuation (or the space) no match of a pattern with this
/// alphabet can hold, and that is always a character of its own in a JSON
/// literal (never part of an escape, never a word character).
fn is_boundary(alphabet: Ascii, b: u8) -> bool {
    !alphabet.contains(b)
        && (b == b' ' || (b.is_ascii_punctuation() && !matches!(b, b'_' | b'\\' | b'"' | b'/')))
}

/// [`is_boundary`] of every byte for one alphabet, looked up per byte of a
/// region rather than computed.
#[derive(Debug, Clone)]
pub struct Boundaries {
    table: [bool; 256],
}

impl Boundaries {
    pub fn new(alphabet: Ascii) -> Boundaries {
        let mut table = [false; 256];
        for b in 0..=255u8 {
            table[usize::from(b)] = is_boundary(alphabet, b);
        }
        Boundaries { table }
    }

    pub fn at(&self, b: u8) -> bool {
        self.table[usize::from(b)]
    }

    /// The alphabet holds the space that joins a unit's segments.
    fn crosses(&self) -> bool {
        !self.at(b' ')
    }
}

impl Default for Boundaries {
    fn default() -> Boundaries {
        Boundaries::new(Ascii::default())
    }
}

/// A stretch of a unit's literals: from (segment, raw offset) to
/// (segment, raw offset), segments joined by a space as in the unit's
/// normalised text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    start: (usize, usize),
    end: (usize, usize),
}

impl Region {
    pub fn contains(&self, seg: usize, pos: usize) -> bool {
        (self.start.0, self.start.1) <= (seg, pos) && (seg, pos) < (self.end.0, self.end.1)
    }

    /// The region's stretch of each literal it spans, into `out`.
    pub fn stretches_into(
        &self,
        segments: &[TextSegment<'_>],
        out: &mut Vec<(usize, Range<usize>)>,
    ) {
        out.clear();
        out.extend((self.start.0..=self.end.0).map(|seg| {
            let lo = if seg == self.start.0 { self.start.1 } else { 0 };
            let hi = if seg == self.end.0 {
                self.end.1
            } else {
                segments[seg].literal.len()
            };
            (seg, lo..hi)
        }));
    }
}

/// The region around raw offset `pos` of segment `seg`: out to the nearest
/// boundary on each side, across the joins between the unit's segments
/// when the alphabet holds the space that joins them.
pub fn region_around(
    segments: &[TextSegment<'_>],
    unit: &Range<usize>,
    seg: usize,
    pos: usize,
    boundaries: &Boundaries,
) -> Region {
    let crosses = boundaries.crosses();
    let (mut s, mut at) = (seg, pos);
    let start = loop {
        let lit = segments[s].literal.as_bytes();
        match lit[..at].iter().rposition(|&b| boundaries.at(b)) {
            Some(k) => break (s, k + 1),
            None if crosses && s > unit.start => {
                s -= 1;
                at = segments[s].literal.len();
            }
            None => break (s, 0),
        }
    };
    let (mut s, mut at) = (seg, pos);
    let end = loop {
        let lit = segments[s].literal.as_bytes();
        match lit[at..].iter().position(|&b| boundaries.at(b)) {
            Some(k) => break (s, at + k),
            None if crosses && s + 1 < unit.end => {
                s += 1;
                at = 0;
            }
            None => break (s, lit.len()),
        }
    };
    Region { start, end }
}
