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
    /// Per normalised pattern: its gate holds only in units of plain text
    /// (it was read off the ASCII part of its classes, see
    /// [`atoms::ascii_restricted`]).
    pub plain_only: Vec<bool>,
    /// The patterns of [`Self::plain_only`] gates, scanned over whole units
    /// that are not plain text: their set and indices.
    pub plain_fallback: Option<(RegexSet, Vec<usize>)>,
}

impl FastPath {
    /// `numbers`: per pattern, its number shape when it is a number
    /// detector (gated by digit clusters, not atoms).
    pub fn build(sources: &[String], numbers: &[Option<NumberShape>]) -> Result<FastPath, String> {
        let mut fast = FastPath::default();
        let mut atoms = Vec::new();
        let mut ungated = (Vec::new(), Vec::new());
        let mut fallback = (Vec::new(), Vec::new());
        for (i, src) in sources.iter().enumerate() {
            let hir = regex_syntax::ParserBuilder::new().build().parse(src).ok();
            fast.needs.push(
                hir.as_ref()
                    .map_or_else(|| vec![Need::default()], needs::needs),
            );
            let mut analysis = hir.as_ref().map(atoms::analyze).filter(|a| a.local);
            let mut plain_only = false;
            if analysis.as_ref().is_some_and(|a| a.gate.is_none()) {
                // No gate over every character the classes hold (`\d`
                // holds Arabic-Indic digits, which normalisation keeps):
                // over their ASCII part there may be one, valid in units of
                // plain text, where normalised text is ASCII.
                let ascii = hir
                    .as_ref()
                    .map(|h| atoms::analyze(&atoms::ascii_restricted(h)));
                if let Some(a) = ascii.filter(|a| a.local && a.gate.is_some()) {
                    analysis = Some(a);
                    plain_only = true;
                }
            }
            fast.plain_only.push(plain_only);
            if plain_only {
                fallback.0.push(src.clone());
                fallback.1.push(i);
            }
            let shape = numbers
                .get(i)
                .copied()
                .flatten()
                .or_else(|| analysis.as_ref().and_then(digit_run));
            if let (Some(shape), Some(a)) = (shape, &analysis) {
                fast.gate_bytes.0 |= digits::gate_bytes().0;
                fast.digits.push(i as u32, shape);
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
        fast.ungated = whole_unit_set(ungated)?;
        fast.plain_fallback = whole_unit_set(fallback)?;
        Ok(fast)
    }
}

/// A gate whose every atom is digit groups joined by single separators,
/// [`digits::MIN_RUN`] digits at least, as the digit gate's shape (see
/// [`NumberShape::Run`], [`NumberShape::Groups`]). Atoms of one group
/// each: the shortest run; otherwise the one atom's groups (a gate of
/// several such atoms stays with the atoms).
fn digit_run(a: &atoms::Analysis) -> Option<NumberShape> {
    let gate = a.gate.as_ref()?;
    let shapes: Vec<NumberShape> = gate
        .iter()
        .map(|atom| NumberShape::of_classes(&atom.classes))
        .collect::<Option<_>>()?;
    if let [only] = shapes[..] {
        return Some(only);
    }
    // Several atoms: runs only, gated by the shortest.
    shapes
        .iter()
        .map(|s| match s {
            NumberShape::Run(n) => Some(*n),
            _ => None,
        })
        .collect::<Option<Vec<u32>>>()?
        .into_iter()
        .min()
        .map(NumberShape::Run)
}

/// The set of patterns scanned over whole units, and their indices.
fn whole_unit_set(
    (sources, index): (Vec<String>, Vec<usize>),
) -> Result<Option<(RegexSet, Vec<usize>)>, String> {
    if index.is_empty() {
        return Ok(None);
    }
    let set = RegexSetBuilder::new(&sources)
        .size_limit(REGEX_SIZE_LIMIT.saturating_mul(sources.len()))
        .dfa_size_limit(64 << 20)
        .build()
        .map_err(|e| format!("the patterns do not compile together: {e}"))?;
    Ok(Some((set, index)))
}
