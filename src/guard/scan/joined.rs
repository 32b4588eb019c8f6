//! The normalisation join: stretches of literals normalised and joined by
//! single spaces as a unit's text is, and the way back from a byte of the
//! joined text to the raw byte behind it.

use std::ops::Range;

use crate::guard::normalize::{self, Normalized};
use crate::provider::TextSegment;

/// Stretches of literals normalised and joined by single spaces, as a
/// unit's text is.
pub struct Joined<'a> {
    /// (segment, raw offset of the stretch, its normalised text).
    pub pieces: Vec<(usize, usize, Normalized<'a>)>,
    /// Where each piece starts in the joined text.
    pub offsets: Vec<usize>,
    /// The joined text when there is more than one piece.
    joined: String,
}

impl<'a> Joined<'a> {
    pub fn new(segments: &[TextSegment<'a>], stretches: &[(usize, Range<usize>)]) -> Joined<'a> {
        let pieces: Vec<(usize, usize, Normalized<'a>)> = stretches
            .iter()
            .map(|(seg, r)| {
                let lit = segments[*seg].literal;
                (*seg, r.start, normalize::normalize_literal(&lit[r.clone()]))
            })
            .collect();
        let mut joined = String::new();
        let mut offsets = Vec::with_capacity(pieces.len());
        if pieces.len() == 1 {
            offsets.push(0);
        } else {
            joined.reserve(pieces.iter().map(|p| p.2.text.len() + 1).sum());
            for (k, (_, _, n)) in pieces.iter().enumerate() {
                if k > 0 {
                    joined.push(' ');
                }
                offsets.push(joined.len());
                joined.push_str(&n.text);
            }
        }
        Joined {
            pieces,
            offsets,
            joined,
        }
    }

    pub fn text(&self) -> &str {
        match &self.pieces[..] {
            [(_, _, only)] => &only.text,
            _ => &self.joined,
        }
    }

    /// (segment, raw offset) of the character behind joined byte `at` (a
    /// joining space: the start of the next piece).
    pub fn origin(&self, segments: &[TextSegment<'_>], at: usize) -> (usize, usize) {
        let k = self.offsets.partition_point(|&o| o <= at).saturating_sub(1);
        let (s, base, norm) = &self.pieces[k];
        if at - self.offsets[k] < norm.text.len() {
            return (*s, base + norm.origin(at - self.offsets[k]));
        }
        let (s, base, norm) = &self.pieces[(k + 1).min(self.pieces.len() - 1)];
        (*s, base + norm.origin(0).min(segments[*s].literal.len()))
    }
}
