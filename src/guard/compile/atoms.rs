//! Atoms: sequences of ASCII classes every match of a pattern contains,
//! read off the pattern's HIR (the gate the prefilter looks for).

use regex_syntax::hir::{Class, Hir, HirKind, Look};
use unicode_normalization::UnicodeNormalization;

use crate::guard::ascii::{probability, sequence_probability, Ascii};
use crate::guard::prefilter::searcher::LITERAL_WINDOW;
use crate::guard::vector::FINGERPRINT;

/// Bytes an atom may not hold: white space, controls, `"`, `\`, `/`.
fn forbidden(b: u8) -> bool {
    b <= b' ' || b == 0x7f || b == b'"' || b == b'\\' || b == b'/'
}

/// A sequence of ASCII classes every match of a pattern contains.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Atom {
    pub classes: Vec<Ascii>,
    /// The pattern asserts an ASCII word boundary right before the atom and
    /// its first class holds only word bytes: a hit whose raw byte before
    /// is a real (unescaped) ASCII word character cannot match.
    pub word_start: bool,
}

impl Atom {
    fn probability(&self) -> f64 {
        let p: f64 = self.classes.iter().map(|c| probability(*c)).product();
        // Few words start where a word-start atom's bytes occur.
        if self.word_start {
            p * 0.1
        } else {
            p
        }
    }

    /// What searching for the atom costs, as the chance per byte that the
    /// searcher stops to look (see [`Searcher`](crate::guard::prefilter::Searcher)):
    /// an atom with a literal stretch of three bytes or more is searched
    /// for by a window of that stretch (one automaton pass for any number
    /// of them), any other by a fingerprint of [`FINGERPRINT`] classes,
    /// whose candidates are checked one by one. Gates are ranked by this,
    /// not by how rare the whole atom is: `[a-f0-9]{36}NRAL` is found by
    /// `NRAL`, not by a fingerprint of four hex digits that stops at a
    /// tenth of a log's bytes.
    fn search_cost(&self) -> f64 {
        let discount = if self.word_start { 0.1 } else { 1.0 };
        let literal = |c: &Ascii| c.single_folded().is_some();
        let mut best_literal: Option<f64> = None;
        let mut start = 0;
        for end in 0..=self.classes.len() {
            if end < self.classes.len() && literal(&self.classes[end]) {
                continue;
            }
            if end - start >= 3 {
                let w = (end - start).min(LITERAL_WINDOW);
                let p = self.classes[start..end]
                    .windows(w)
                    .map(sequence_probability)
                    .fold(f64::MAX, f64::min);
                best_literal = Some(best_literal.map_or(p, |b: f64| b.min(p)));
            }
            start = end + 1;
        }
        if let Some(p) = best_literal {
            return p * discount;
        }
        let w = self.classes.len().min(FINGERPRINT);
        self.classes
            .windows(w.max(1))
            .map(sequence_probability)
            .fold(f64::MAX, f64::min)
            .min(1.0)
            * discount
    }

    /// Every byte the atom can hold.
    pub fn bytes(&self) -> Ascii {
        self.classes
            .iter()
            .fold(Ascii::default(), |a, c| a.union(*c))
    }

    /// The atom as a lower-case literal when every class is one byte up to
    /// ASCII case.
    pub fn literal(&self) -> Option<Vec<u8>> {
        self.classes.iter().map(|c| c.single_folded()).collect()
    }

    /// The window of at most `max` classes cheapest to search for, the
    /// rarest of those (a part of a required sequence is required too).
    pub fn window(&self, max: usize) -> Atom {
        if self.classes.len() <= max {
            return self.clone();
        }
        let at = |start: usize| Atom {
            classes: self.classes[start..start + max].to_vec(),
            word_start: self.word_start && start == 0,
        };
        (0..=self.classes.len() - max)
            .map(at)
            .map(|a| ((a.search_cost(), a.probability()), a))
            .min_by(|(ka, _), (kb, _)| ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1)))
            .expect("a window")
            .1
    }
}

/// A gate: a pattern can match only where one of its atoms occurs.
pub type Gate = Vec<Atom>;

fn gate_probability(g: &Gate) -> f64 {
    g.iter().map(Atom::probability).sum()
}

/// What searching for a gate costs (see [`Atom::search_cost`]), the rarer
/// whole gate first where costs tie.
fn gate_cost(g: &Gate) -> (f64, f64) {
    (g.iter().map(Atom::search_cost).sum(), gate_probability(g))
}

/// Selective gates (see [`MAX_GATE_PROBABILITY`]) before the others, then
/// the cheapest to search for.
fn by_cost(a: &Gate, b: &Gate) -> std::cmp::Ordering {
    let unselective = |g: &Gate| gate_probability(g) > MAX_GATE_PROBABILITY;
    let (ka, kb) = (gate_cost(a), gate_cost(b));
    unselective(a)
        .cmp(&unselective(b))
        .then(ka.0.total_cmp(&kb.0))
        .then(ka.1.total_cmp(&kb.1))
}

/// What the scanner needs to know about one pattern.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// ASCII bytes a match may hold (in normalised text).
    pub alphabet: Ascii,
    /// Regions may be cut at boundaries: the pattern asserts nothing but
    /// ASCII word boundaries (no line or text anchors, no Unicode `\b`).
    pub local: bool,
    /// The gate, when a selective one exists.
    pub gate: Option<Gate>,
}

/// Longest atom kept (the rest is the regex's job). The searcher narrows
/// literals further (see [`LITERAL_WINDOW`]).
const MAX_ATOM: usize = 32;
/// A gate expected to fire more often than this per byte is no gate.
const MAX_GATE_PROBABILITY: f64 = 2e-3;

pub fn analyze(hir: &Hir) -> Analysis {
    let mut alphabet = Ascii::default();
    let mut local = true;
    walk_props(hir, &mut alphabet, &mut local);
    let gate = required(hir)
        .map(|g| {
            g.into_iter()
                .map(|a| a.window(MAX_ATOM))
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty() && gate_probability(g) <= MAX_GATE_PROBABILITY);
    Analysis {
        alphabet,
        local,
        gate,
    }
}

fn walk_props(hir: &Hir, alphabet: &mut Ascii, local: &mut bool) {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(l) => {
            for &b in l.0.iter() {
                if b < 128 {
                    *alphabet = alphabet.with(b);
                }
            }
        }
        HirKind::Class(c) => *alphabet = alphabet.union(ascii_part(c)),
        HirKind::Look(look) => {
            if !matches!(
                look,
                Look::WordAscii
                    | Look::WordAsciiNegate
                    | Look::WordStartAscii
                    | Look::WordEndAscii
                    | Look::WordStartHalfAscii
                    | Look::WordEndHalfAscii
            ) {
                *local = false;
            }
        }
        HirKind::Repetition(r) => walk_props(&r.sub, alphabet, local),
        HirKind::Capture(c) => walk_props(&c.sub, alphabet, local),
        HirKind::Concat(xs) | HirKind::Alternation(xs) => {
            for x in xs {
                walk_props(x, alphabet, local);
            }
        }
    }
}

/// The ASCII members of a class.
pub fn ascii_part(c: &Class) -> Ascii {
    let mut set = Ascii::default();
    match c {
        Class::Unicode(u) => {
            for r in u.ranges() {
                let (s, e) = (r.start() as u32, (r.end() as u32).min(127));
                for b in s..=e {
                    set = set.with(b as u8);
                }
            }
        }
        Class::Bytes(bc) => {
            for r in bc.ranges() {
                for b in r.start()..=r.end().min(127) {
                    set = set.with(b);
                }
            }
        }
    }
    set
}

/// `hir` with every class cut down to its ASCII members: what it matches
/// in text that is all ASCII. A gate of it is a gate of `hir` there.
pub fn ascii_restricted(hir: &Hir) -> Hir {
    use regex_syntax::hir::{ClassUnicode, ClassUnicodeRange, Repetition};
    match hir.kind() {
        HirKind::Class(c) => {
            let set = ascii_part(c);
            let ranges = set
                .bytes()
                .map(|b| ClassUnicodeRange::new(char::from(b), char::from(b)));
            Hir::class(Class::Unicode(ClassUnicode::new(ranges)))
        }
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(ascii_restricted(&r.sub)),
        }),
        HirKind::Capture(c) => ascii_restricted(&c.sub),
        HirKind::Concat(xs) => Hir::concat(xs.iter().map(ascii_restricted).collect()),
        HirKind::Alternation(xs) => Hir::alternation(xs.iter().map(ascii_restricted).collect()),
        _ => hir.clone(),
    }
}

/// The class as a set of ASCII bytes, when nothing outside ASCII can match
/// it in normalised text: its non-ASCII members (few) all normalise to
/// something else (the Kelvin sign and long s that case folding adds).
pub fn ascii_class(c: &Class) -> Option<Ascii> {
    match c {
        Class::Unicode(u) => {
            for r in u.ranges() {
                if (r.end() as u32) < 128 {
                    continue;
                }
                let start = r.start().max('\u{80}');
                if r.end() as u32 - start as u32 > 16 {
                    return None;
                }
                for c in start..=r.end() {
                    let mut n = std::iter::once(c).nfkc();
                    if n.next() == Some(c) && n.next().is_none() {
                        return None;
                    }
                }
            }
        }
        Class::Bytes(bc) => {
            if bc.ranges().iter().any(|r| r.end() >= 128) {
                return None;
            }
        }
    }
    let set = ascii_part(c);
    (set.0 != 0).then_some(set)
}

/// A fixed-length stretch of classes, when `hir` always matches exactly
/// that (literals, classes, fixed repetitions of them, word boundaries).
/// `word_start`: it begins with an ASCII word-boundary assertion.
fn fixed(hir: &Hir) -> Option<(Vec<Ascii>, bool)> {
    match hir.kind() {
        HirKind::Empty => Some((Vec::new(), false)),
        HirKind::Literal(l) => {
            if l.0.iter().any(|&b| b >= 128) {
                return None;
            }
            Some((
                l.0.iter().map(|&b| Ascii::default().with(b)).collect(),
                false,
            ))
        }
        HirKind::Class(c) => Some((vec![ascii_class(c)?], false)),
        HirKind::Look(Look::WordAscii | Look::WordStartAscii | Look::WordStartHalfAscii) => {
            Some((Vec::new(), true))
        }
        HirKind::Look(_) => Some((Vec::new(), false)),
        HirKind::Capture(c) => fixed(&c.sub),
        HirKind::Repetition(r) if Some(r.min) == r.max && r.min <= 32 => {
            let (one, _) = fixed(&r.sub)?;
            Some((one.repeat(r.min as usize), false))
        }
        HirKind::Concat(xs) => {
            let mut out = Vec::new();
            let mut word_start = false;
            for (i, x) in xs.iter().enumerate() {
                let (c, w) = fixed(x)?;
                if i == 0 || out.is_empty() {
                    word_start |= w;
                }
                out.extend(c);
            }
            Some((out, word_start))
        }
        HirKind::Alternation(xs) => {
            // Single-character branches merge into one class; longer ones
            // stay apart (merged position by position, `earn|fore` would
            // stand for `fare` and `eorn` too).
            let mut merged = Ascii::default();
            for x in xs {
                let (c, _) = fixed(x)?;
                if c.len() != 1 {
                    return None;
                }
                merged = merged.union(c[0]);
            }
            Some((vec![merged], false))
        }
        _ => None,
    }
}

/// An alternation of fixed branches of one length as one stretch of
/// classes, merged position by position (it stands for more than the
/// branches: `earn|fore` for `farn` too, which a gate may).
pub(super) fn merged_branches(hir: &Hir) -> Option<Vec<Ascii>> {
    let HirKind::Alternation(xs) = hir.kind() else {
        return None;
    };
    let mut merged: Option<Vec<Ascii>> = None;
    for x in xs {
        let (c, _) = fixed(x)?;
        match &mut merged {
            None => merged = Some(c),
            Some(m) if m.len() == c.len() => {
                for (a, b) in m.iter_mut().zip(c) {
                    *a = a.union(b);
                }
            }
            Some(_) => return None,
        }
    }
    merged.filter(|m| !m.is_empty())
}

/// Splits a stretch of classes into atoms at forbidden bytes (a class
/// holding one is dropped) and keeps the rarest piece.
fn best_piece(classes: &[Ascii], word_start: bool) -> Option<Atom> {
    let mut best: Option<((bool, f64, f64), Atom)> = None;
    let mut start = 0;
    for end in 0..=classes.len() {
        let cut = end == classes.len() || classes[end].bytes().any(forbidden);
        if !cut {
            continue;
        }
        if end > start {
            let first_word = classes[start]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            let atom = Atom {
                classes: classes[start..end].to_vec(),
                word_start: word_start && start == 0 && first_word,
            };
            let key = (
                atom.probability() > MAX_GATE_PROBABILITY,
                atom.search_cost(),
                atom.probability(),
            );
            if best.as_ref().is_none_or(|(k, _)| {
                key.0
                    .cmp(&k.0)
                    .then(key.1.total_cmp(&k.1))
                    .then(key.2.total_cmp(&k.2))
                    .is_lt()
            }) {
                best = Some((key, atom));
            }
        }
        start = end + 1;
    }
    best.map(|(_, a)| a)
}

/// Whether every occurrence of `outer` holds an occurrence of `inner`
/// that `inner`'s own word-start test keeps: at some offset, each class of
/// `outer` is within `inner`'s class there.
pub fn holds_atom(outer: &Atom, inner: &Atom) -> bool {
    let n = inner.classes.len();
    if n > outer.classes.len() {
        return false;
    }
    (0..=outer.classes.len() - n).any(|k| {
        (!inner.word_start || (k == 0 && outer.word_start))
            && outer.classes[k..k + n]
                .iter()
                .zip(&inner.classes)
                .all(|(o, i)| o.0 & !i.0 == 0)
    })
}

/// The gate without atoms that hold another of its atoms: a match that
/// holds such an atom holds the other, and a hit of either leads to the
/// region around the match. A card number's dashed, spaced and bare
/// branches all hold four digits in a row, so four digits is its gate.
fn prune(gate: Gate) -> Gate {
    let mut kept: Gate = Vec::with_capacity(gate.len());
    // Shorter atoms first (the caller sorts), so an atom is tested against
    // every atom it could hold.
    for (i, a) in gate.iter().enumerate() {
        let redundant = gate
            .iter()
            .enumerate()
            .any(|(j, b)| j != i && holds_atom(a, b) && (!holds_atom(b, a) || j < i));
        if !redundant {
            kept.push(a.clone());
        }
    }
    kept
}

/// The gate of an alternation of fixed branches that follows a word
/// boundary: each branch's best piece, asked for at a word start.
fn branches_at_word_start(hir: &Hir) -> Option<Gate> {
    let HirKind::Alternation(xs) = hir.kind() else {
        return None;
    };
    let mut gate = Vec::new();
    for x in xs {
        let (classes, _) = fixed(x)?;
        gate.push(best_piece(&classes, true)?);
    }
    gate.sort_by_key(|a| a.classes.len());
    gate.dedup();
    Some(prune(gate))
}

/// Whether every atom of the gate is digits only.
fn digits_only(g: &Gate) -> bool {
    const DIGITS: u128 = 0x3ff << b'0';
    g.iter()
        .all(|a| a.classes.iter().all(|c| c.0 & !DIGITS == 0))
}

/// The rarest of a concatenation's gates; but a gate of digits alone only
/// when no other is selective. Runs of digits are rare in prose and code
/// and everywhere in logs, lockfiles and CI output (ids, epoch seconds,
/// timestamps): `phone: 4155552671` is found by `phone`, not by ten
/// digits.
fn rarest(options: Vec<Gate>) -> Option<Gate> {
    let other = options
        .iter()
        .any(|g| !digits_only(g) && gate_probability(g) <= MAX_GATE_PROBABILITY);
    options.into_iter().min_by(|a, b| {
        let key = |g: &Gate| other && digits_only(g);
        key(a).cmp(&key(b)).then_with(|| by_cost(a, b))
    })
}

/// A gate of `hir`: atoms one of which every match contains.
fn required(hir: &Hir) -> Option<Gate> {
    if let Some((classes, w)) = fixed(hir) {
        return best_piece(&classes, w).map(|a| vec![a]);
    }
    match hir.kind() {
        HirKind::Capture(c) => required(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => {
            // The sub-expression's gate, or its fixed part repeated.
            let mut options: Vec<Gate> = required(&r.sub).into_iter().collect();
            if let Some((one, w)) = fixed(&r.sub) {
                let n = (r.min as usize).min(MAX_ATOM.div_ceil(one.len().max(1)));
                if let Some(a) = best_piece(&one.repeat(n), w) {
                    options.push(vec![a]);
                }
            }
            options.into_iter().min_by(by_cost)
        }
        HirKind::Alternation(xs) => {
            let mut gate = Vec::new();
            for x in xs {
                gate.extend(required(x)?);
            }
            gate.sort_by_key(|a| a.classes.len());
            gate.dedup();
            Some(prune(gate))
        }
        HirKind::Concat(xs) => {
            let mut options: Vec<Gate> = Vec::new();
            // Maximal fixed stretches, with a repetition's minimum run
            // closing a stretch (`[2-6][0-9]{12,18}` → [2-6] then twelve
            // digits).
            let mut run: Vec<Ascii> = Vec::new();
            let mut run_word = false;
            let flush = |run: &mut Vec<Ascii>, word: &mut bool, options: &mut Vec<Gate>| {
                if let Some(a) = best_piece(run, *word) {
                    options.push(vec![a]);
                }
                run.clear();
                *word = false;
            };
            for x in xs {
                if let Some((c, w)) = fixed(x) {
                    if run.is_empty() {
                        run_word |= w;
                    }
                    run.extend(c);
                    continue;
                }
                if let Some(c) = merged_branches(x) {
                    // Its branches apart are an option; merged, they carry
                    // the stretch on (`(?:AKIA|ASIA|..)[A-Z2-7]{16}`: a
                    // rare `A??A` then sixteen key bytes, one atom).
                    if let Some(g) = required(x) {
                        options.push(g);
                    }
                    run.extend(c);
                    continue;
                }
                if let HirKind::Repetition(r) = x.kind() {
                    if let (true, Some((one, _))) = (r.min >= 1, fixed(&r.sub)) {
                        // The first `min` iterations follow what came
                        // before; the last one precedes what comes next.
                        let n = (r.min as usize).min(MAX_ATOM);
                        run.extend(one.repeat(n));
                        flush(&mut run, &mut run_word, &mut options);
                        run.extend(one);
                        if let Some(g) = required(x) {
                            options.push(g);
                        }
                        continue;
                    }
                }
                // A word boundary right before an alternation of fixed
                // branches (`\b(?:phone|tel|...)`) is before each branch.
                let word_before = run.is_empty() && run_word;
                flush(&mut run, &mut run_word, &mut options);
                if let Some(g) = word_before.then(|| branches_at_word_start(x)).flatten() {
                    options.push(g);
                } else if let Some(g) = required(x) {
                    options.push(g);
                }
            }
            flush(&mut run, &mut run_word, &mut options);
            rarest(options)
        }
        _ => None,
    }
}
