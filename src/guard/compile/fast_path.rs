//! The fast path of request scans: each normalised pattern's gate (see
//! [`prefilter`](crate::guard::prefilter)) and needs, compiled once per
//! policy load.

use regex::{RegexSet, RegexSetBuilder};

use super::atoms;
use super::needs::{self, Need};
use super::patterns::REGEX_SIZE_LIMIT;
use crate::guard::ascii::Ascii;
use crate::guard::normalize;
use crate::guard::prefilter::digits::{self, DigitGate, NumberShape};
use crate::guard::prefilter::{self, Searcher};
use crate::guard::scan::region::Boundaries;

/// What lets a request scan skip normalising and searching most text:
/// gates for the normalised patterns that have one (see [`prefilter`]).
#[derive(Debug, Default)]
pub struct FastPath {
    /// Per normalised pattern: its alphabet when it is gated.
    pub gated: Vec<Option<Boundaries>>,
    /// Per normalised pattern: what a match through each of its branches
    /// holds (bytes, ASCII digits, punctuation, words); a region of plain
    /// text that offers no branch its need holds no match.
    pub needs: Vec<Vec<Need>>,
    /// Finds every gated pattern's atoms (group = pattern index).
    pub searcher: Option<Searcher>,
    /// The number detectors' gate: digit clusters of their shapes
    /// (see [`digits`]) instead of atoms.
    pub digits: DigitGate,
    /// Every byte some gate's atoms can hold: a suspect character matters
    /// only if it produces one, and the stretch around it out to other
    /// bytes holds every atom it takes part in.
    pub gate_bytes: Ascii,
    /// The boundaries of the gate bytes (around a suspect).
    pub gate_boundaries: Boundaries,
    /// Patterns with no gate, scanned over whole units: their set and
    /// their indices among the normalised patterns.
    pub ungated: Option<(RegexSet, Vec<usize>)>,
}

impl FastPath {
    /// `numbers`: per pattern, its number shape when it is a number
    /// detector (gated by digit clusters, not atoms).
    pub fn build(sources: &[String], numbers: &[Option<NumberShape>]) -> Result<FastPath, String> {
        let mut fast = FastPath::default();
        let mut atoms = Vec::new();
        let mut ungated = (Vec::new(), Vec::new());
        for (i, src) in sources.iter().enumerate() {
            let hir = regex_syntax::ParserBuilder::new().build().parse(src).ok();
            fast.needs.push(
                hir.as_ref()
                    .map_or_else(|| vec![Need::default()], needs::needs),
            );
            let analysis = hir.map(|hir| atoms::analyze(&hir)).filter(|a| a.local);
            if let (Some(shape), Some(a)) = (numbers.get(i).copied().flatten(), &analysis) {
                fast.gate_bytes.0 |= digits::gate_bytes().0;
                fast.digits.patterns.push((i as u32, shape));
                fast.gated.push(Some(Boundaries::new(a.alphabet)));
                continue;
            }
            match analysis.and_then(|a| a.gate.map(|g| (a.alphabet, g))) {
                Some((alphabet, g)) => {
                    for a in &g {
                        fast.gate_bytes.0 |= a.bytes().0;
                    }
                    atoms.extend(g.into_iter().map(|a| (a, i as u32)));
                    fast.gated.push(Some(Boundaries::new(alphabet)));
                }
                None => {
                    fast.gated.push(None);
                    ungated.0.push(src.clone());
                    ungated.1.push(i);
                }
            }
        }
        fast.gate_boundaries = Boundaries::new(fast.gate_bytes);
        if !atoms.is_empty() || !fast.digits.is_empty() {
            fast.searcher = Some(Searcher::new(&atoms));
            // Build the suspect-character table now, not on a request.
            prefilter::suspect_char('\u{100}');
            normalize::kept_as_is('\u{100}');
            normalize::is_format('\u{100}');
        }
        if !ungated.1.is_empty() {
            let set = RegexSetBuilder::new(&ungated.0)
                .size_limit(REGEX_SIZE_LIMIT.saturating_mul(ungated.0.len()))
                .dfa_size_limit(64 << 20)
                .build()
                .map_err(|e| format!("the patterns do not compile together: {e}"))?;
            fast.ungated = Some((set, ungated.1));
        }
        Ok(fast)
    }
}
