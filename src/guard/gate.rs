//! Gates: what every match of a pattern must contain, found in the raw
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

use regex_syntax::hir::{Class, Hir, HirKind, Look};
use unicode_normalization::UnicodeNormalization;

/// A set of ASCII bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Ascii(pub u128);

impl Ascii {
    pub const ALL: Ascii = Ascii(u128::MAX);

    pub fn contains(self, b: u8) -> bool {
        b < 128 && self.0 & (1u128 << b) != 0
    }
    fn with(self, b: u8) -> Ascii {
        Ascii(self.0 | (1u128 << (b & 0x7f)))
    }
    fn union(self, o: Ascii) -> Ascii {
        Ascii(self.0 | o.0)
    }
    fn len(self) -> u32 {
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
    fn single_folded(self) -> Option<u8> {
        let mut folded = Ascii::default();
        for b in self.bytes() {
            folded = folded.with(b.to_ascii_lowercase());
        }
        (folded.len() == 1).then(|| folded.bytes().next().expect("one byte"))
    }
}

/// Bytes an atom may not hold: white space, controls, `"`, `\`, `/`.
fn forbidden(b: u8) -> bool {
    b <= b' ' || b == 0x7f || b == b'"' || b == b'\\' || b == b'/'
}

/// Rough chance that a byte of prompt or code text is in the class (white
/// space and lower-case letters are common, digits and capitals less so,
/// most punctuation rare).
fn probability(c: Ascii) -> f64 {
    c.bytes()
        .map(|b| match b {
            b' ' => 0.3,
            b'e' | b't' | b'a' | b'o' | b'i' | b'n' | b's' | b'r' => 0.05,
            b'a'..=b'z' => 0.015,
            b'0'..=b'9' => 0.01,
            b'A'..=b'Z' => 0.006,
            b'.' | b',' | b'_' | b'(' | b')' | b'-' | b'=' | b':' | b';' => 0.01,
            _ => 0.001,
        })
        .sum::<f64>()
        .min(1.0)
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

    /// The rarest window of at most `max` classes (a part of a required
    /// sequence is required too).
    fn window(&self, max: usize) -> Atom {
        if self.classes.len() <= max {
            return self.clone();
        }
        let mut best = (f64::MAX, 0);
        for start in 0..=self.classes.len() - max {
            let p: f64 = self.classes[start..start + max]
                .iter()
                .map(|c| probability(*c))
                .product();
            if p < best.0 {
                best = (p, start);
            }
        }
        Atom {
            classes: self.classes[best.1..best.1 + max].to_vec(),
            word_start: self.word_start && best.1 == 0,
        }
    }
}

/// A gate: a pattern can match only where one of its atoms occurs.
pub type Gate = Vec<Atom>;

fn gate_probability(g: &Gate) -> f64 {
    g.iter().map(Atom::probability).sum()
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
fn ascii_part(c: &Class) -> Ascii {
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

/// The class as a set of ASCII bytes, when nothing outside ASCII can match
/// it in normalised text: its non-ASCII members (few) all normalise to
/// something else (the Kelvin sign and long s that case folding adds).
fn ascii_class(c: &Class) -> Option<Ascii> {
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
fn merged_branches(hir: &Hir) -> Option<Vec<Ascii>> {
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
    let mut best: Option<Atom> = None;
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
            if best
                .as_ref()
                .is_none_or(|b| atom.probability() < b.probability())
            {
                best = Some(atom);
            }
        }
        start = end + 1;
    }
    best
}

/// Whether every occurrence of `outer` holds an occurrence of `inner`
/// that `inner`'s own word-start test keeps: at some offset, each class of
/// `outer` is within `inner`'s class there.
fn holds_atom(outer: &Atom, inner: &Atom) -> bool {
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
            options
                .into_iter()
                .min_by(|a, b| gate_probability(a).total_cmp(&gate_probability(b)))
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
                flush(&mut run, &mut run_word, &mut options);
                if let Some(g) = required(x) {
                    options.push(g);
                }
            }
            flush(&mut run, &mut run_word, &mut options);
            options
                .into_iter()
                .min_by(|a, b| gate_probability(a).total_cmp(&gate_probability(b)))
        }
        _ => None,
    }
}

/// The ASCII bytes (not white space) normalising `c` produces, or every
/// byte when normalisation removes it (it joins its neighbours).
pub fn produces(c: char) -> Ascii {
    if c.is_ascii() {
        return if c.is_ascii_control() {
            Ascii::ALL
        } else {
            Ascii::default().with(c as u8)
        };
    }
    if c.is_control() || super::normalize::is_format(c) {
        return Ascii::ALL;
    }
    std::iter::once(c)
        .nfkc()
        .filter(|n| n.is_ascii() && !n.is_ascii_whitespace())
        .fold(Ascii::default(), |a, n| a.with(n as u8))
}

/// What every match through one branch of a pattern holds: at least `len`
/// bytes, `digits` ASCII digits, each ASCII punctuation byte of `punct`,
/// and each of `words`. A phone number pattern's branches: ten digits, or
/// a `+` and two; a region of plain text with five digits and no `+` holds
/// none. `do not (share|forward)`: `do`, `not` and `share`, or `do`, `not`
/// and `forward`; a region around `forward` without `not` holds none.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    pub len: usize,
    pub digits: usize,
    pub punct: Ascii,
    /// Lower-case runs of [`word_byte`]s every match holds (up to ASCII
    /// case), longest first, at most [`MAX_WORDS`].
    pub words: Vec<Box<[u8]>>,
}

/// Words kept per branch: the longest (the rarest, roughly).
const MAX_WORDS: usize = 4;

/// Shortest word worth looking for.
const MIN_WORD: usize = 2;

/// A byte that is itself in plain literal text and in its normalised text
/// alike: printable ASCII but for white space and the bytes JSON may
/// escape (`"`, `\`, `/`), so a word of them that normalised plain text
/// holds, its raw bytes hold too, in one piece.
fn word_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'/')
}

impl Need {
    /// What every one of `needs` holds.
    fn common(needs: &[Need]) -> Need {
        needs
            .iter()
            .cloned()
            .reduce(|a, b| Need {
                len: a.len.min(b.len),
                digits: a.digits.min(b.digits),
                punct: Ascii(a.punct.0 & b.punct.0),
                words: a
                    .words
                    .into_iter()
                    .filter(|w| b.words.contains(w))
                    .collect(),
            })
            .unwrap_or_default()
    }

    fn then(self, next: &Need) -> Need {
        let mut words = self.words;
        words.extend(next.words.iter().cloned());
        Need {
            len: self.len.saturating_add(next.len),
            digits: self.digits.saturating_add(next.digits),
            punct: self.punct.union(next.punct),
            words: tidy(words),
        }
    }

    fn with_word(mut self, word: &[u8]) -> Need {
        if word.len() >= MIN_WORD {
            self.words.push(word.into());
            self.words = tidy(self.words);
        }
        self
    }
}

/// Words longest first, no duplicates, no word inside another kept one,
/// at most [`MAX_WORDS`].
fn tidy(mut words: Vec<Box<[u8]>>) -> Vec<Box<[u8]>> {
    words.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    let mut kept: Vec<Box<[u8]>> = Vec::new();
    for w in words {
        if !kept.iter().any(|k| k.windows(w.len()).any(|x| x == &w[..])) {
            kept.push(w);
        }
    }
    kept.truncate(MAX_WORDS);
    kept
}

/// The bytes `hir` matches, lower-cased, when it matches one run of
/// bytes up to ASCII case in plain text (a literal, a letter in either
/// case; members outside ASCII never occur in plain text).
fn fixed_bytes(hir: &Hir) -> Option<Vec<u8>> {
    match hir.kind() {
        HirKind::Literal(l) => {
            l.0.iter()
                .all(u8::is_ascii)
                .then(|| l.0.to_ascii_lowercase())
        }
        HirKind::Class(c) => ascii_part(c).single_folded().map(|b| vec![b]),
        HirKind::Capture(c) => fixed_bytes(&c.sub),
        _ => None,
    }
}

/// More branches than this are merged into what they have in common.
const MAX_BRANCHES: usize = 16;

/// The needs of the branches of `hir` (see [`Need`]): one per way through
/// its alternations, merged when there would be more than a few.
pub fn needs(hir: &Hir) -> Vec<Need> {
    const DIGITS: u128 = 0x3ff << b'0';
    let capped = |mut list: Vec<Need>| {
        list.sort();
        list.dedup();
        if list.len() > MAX_BRANCHES {
            vec![Need::common(&list)]
        } else {
            list
        }
    };
    let punct = |b: u8| b.is_ascii_punctuation().then(|| Ascii::default().with(b));
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => vec![Need::default()],
        HirKind::Literal(l) => {
            let need = Need {
                len: l.0.len(),
                digits: l.0.iter().filter(|b| b.is_ascii_digit()).count(),
                punct: l
                    .0
                    .iter()
                    .filter_map(|&b| punct(b))
                    .fold(Ascii::default(), Ascii::union),
                words: Vec::new(),
            };
            let lower = l.0.to_ascii_lowercase();
            vec![lower
                .split(|&b| !word_byte(b))
                .fold(need, |n, w| n.with_word(w))]
        }
        HirKind::Class(c) => {
            let len = hir.properties().minimum_len().unwrap_or(0);
            vec![match ascii_class(c) {
                Some(a) => Need {
                    len,
                    digits: usize::from(a.0 != 0 && a.0 & !DIGITS == 0),
                    punct: match a.len() {
                        1 => a.bytes().next().and_then(punct).unwrap_or_default(),
                        _ => Ascii::default(),
                    },
                    words: Vec::new(),
                },
                None => Need {
                    len,
                    ..Need::default()
                },
            }]
        }
        HirKind::Capture(c) => needs(&c.sub),
        HirKind::Repetition(r) if r.min == 0 => vec![Need::default()],
        HirKind::Repetition(r) => {
            let one = Need::common(&needs(&r.sub));
            let n = r.min as usize;
            vec![Need {
                len: one.len.saturating_mul(n),
                digits: one.digits.saturating_mul(n),
                punct: one.punct,
                words: one.words,
            }]
        }
        HirKind::Concat(xs) => {
            // Each part's needs in turn, and the words that runs of fixed
            // parts spell (`s`, `e`, `c`, ... in either case: `secret`).
            let mut acc = vec![Need::default()];
            let mut word: Vec<u8> = Vec::new();
            let flush = |acc: &mut Vec<Need>, word: &mut Vec<u8>| {
                if word.len() >= MIN_WORD {
                    *acc = acc.drain(..).map(|n| n.with_word(word)).collect();
                }
                word.clear();
            };
            for x in xs {
                match fixed_bytes(x) {
                    Some(bytes) => {
                        for b in bytes {
                            if word_byte(b) {
                                word.push(b);
                            } else {
                                flush(&mut acc, &mut word);
                            }
                        }
                    }
                    None => flush(&mut acc, &mut word),
                }
                let next = needs(x);
                acc = capped(
                    acc.iter()
                        .flat_map(|a| next.iter().map(|n| a.clone().then(n)))
                        .collect(),
                );
            }
            flush(&mut acc, &mut word);
            capped(acc)
        }
        HirKind::Alternation(xs) => capped(xs.iter().flat_map(needs).collect()),
    }
}

/// True when normalising the character can produce ASCII text or remove it
/// (see the module docs). Cached for the Basic Multilingual Plane.
pub fn suspect_char(c: char) -> bool {
    static TABLE: super::normalize::CharTable =
        super::normalize::CharTable::new(|c| produces(c).0 != 0);
    TABLE.get(c)
}

/// A hit: the raw offset where an atom starts, and the caller's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    pub pos: u32,
    pub group: u32,
}

/// A class sequence searched for (indices into the searcher's classes),
/// and who asked for it.
#[derive(Debug)]
struct ClassAtom {
    classes: Vec<usize>,
    /// Where the [`FINGERPRINT`] classes its pass tests start (see [`Pass`]).
    fp: usize,
    /// (word start, group) of every gate atom this one stands for.
    wanted: Vec<(bool, u32)>,
}

/// Digits all share one class: a subset of them widens to all ten
/// (a gate may over-approximate; atoms that differ only in which digits
/// they take then share a bucket, or one holds the other).
fn coarsen(c: Ascii) -> Ascii {
    const DIGITS: u128 = 0x3ff << b'0';
    if c.0 & !DIGITS == 0 {
        Ascii(DIGITS)
    } else {
        c
    }
}

/// Membership of one ASCII class, byte by byte.
#[derive(Debug, Clone)]
struct ClassTable {
    table: [bool; 256],
}

impl ClassTable {
    fn new(c: Ascii) -> ClassTable {
        let mut table = [false; 256];
        for b in c.bytes() {
            table[b as usize] = true;
        }
        ClassTable { table }
    }
}

/// Class-sequence atoms found many at a time, the way Teddy finds
/// literals: four consecutive classes of each atom (its fingerprint, the
/// rarest four) set a bucket bit in nibble tables per position, and one
/// pass of shuffles over the text, 32 positions a step, leaves the
/// positions where some bucket's classes may line up. Those are checked
/// against exact byte tables, then class by class. A class stands for the
/// bytes its low and high nibbles allow (`[wy]` and `[cC]` are exact, a
/// scattered class a little wider), and a bucket holding two fingerprints
/// takes their union, so the checks keep results exact. Shorter atoms take
/// any byte past their end.
#[derive(Debug)]
struct Pass {
    /// Per fingerprint position: bucket bits by low nibble and by high
    /// nibble (16 entries, repeated for the second 128-bit lane).
    lo: [[u8; 32]; FINGERPRINT],
    hi: [[u8; 32]; FINGERPRINT],
    /// Per fingerprint position: bucket bits by byte (the scalar path).
    exact: [[u8; 256]; FINGERPRINT],
    /// The atoms of each bucket bit.
    buckets: Vec<Vec<usize>>,
}

/// Buckets per [`Pass`] (bits of a byte).
const BUCKETS: usize = 8;

/// Fingerprints a bucket holds on average when there are more than a
/// pass's buckets (it sets how many passes there are).
const SHARED: usize = 3;

/// Groups of fingerprints the pairwise bucket merging starts from at most.
const GREEDY_GROUPS: usize = 64;

/// Length of a fingerprint.
const FINGERPRINT: usize = 4;

impl Pass {
    /// A pass over the atoms of `buckets` (their fingerprints' classes).
    fn new(buckets: Vec<Vec<usize>>, fingerprints: &[[Ascii; FINGERPRINT]]) -> Pass {
        let mut pass = Pass {
            lo: [[0; 32]; FINGERPRINT],
            hi: [[0; 32]; FINGERPRINT],
            exact: [[0; 256]; FINGERPRINT],
            buckets,
        };
        for (bit, atoms) in pass.buckets.iter().enumerate() {
            for (k, class) in atoms
                .iter()
                .flat_map(|&a| fingerprints[a].iter().enumerate())
            {
                let all = class.0 == Ascii::ALL.0;
                for b in 0..=255u8 {
                    if all || (b < 128 && class.contains(b)) {
                        pass.exact[k][usize::from(b)] |= 1 << bit;
                        pass.lo[k][usize::from(b & 15)] |= 1 << bit;
                        pass.lo[k][usize::from(b & 15) + 16] |= 1 << bit;
                        pass.hi[k][usize::from(b >> 4)] |= 1 << bit;
                        pass.hi[k][usize::from(b >> 4) + 16] |= 1 << bit;
                    }
                }
            }
        }
        pass
    }
}

/// Finds the atoms of a set of gates in raw literal bytes.
#[derive(Debug)]
pub struct Searcher {
    classes: Vec<ClassTable>,
    atoms: Vec<ClassAtom>,
    /// The atoms' fingerprint passes.
    passes: Vec<Pass>,
    avx2: bool,
}

/// Longest literal searched for: a window of an atom's literal, shared
/// with other atoms where it can be (forty patterns `project codenameNN`
/// share `codename`).
const LITERAL_WINDOW: usize = 8;

/// Longest class sequence checked: more positions cost little once the
/// fingerprint matched, and prune hits (a JWT needs ten token bytes, not
/// four).
const MASK_WINDOW: usize = 12;

impl Searcher {
    /// Every atom becomes a class sequence of at most [`MASK_WINDOW`]
    /// classes (a literal stretch, a window of at most [`LITERAL_WINDOW`]
    /// bytes that other atoms share where they can), searched by
    /// fingerprint passes (see [`Pass`]).
    pub fn new(atoms: &[(Atom, u32)]) -> Searcher {
        let mut class_list: Vec<Ascii> = Vec::new();
        let mut class_atoms: Vec<ClassAtom> = Vec::new();
        // Literal stretches first, to pick windows they share.
        let stretches: Vec<Option<(Vec<u8>, bool, usize)>> = atoms
            .iter()
            .map(|(atom, _)| {
                let mut best: Option<(usize, usize)> = None;
                let mut start = 0;
                for end in 0..=atom.classes.len() {
                    if end < atom.classes.len() && atom.classes[end].single_folded().is_some() {
                        continue;
                    }
                    if end - start >= 3 && best.is_none_or(|(s, e)| end - start > e - s) {
                        best = Some((start, end));
                    }
                    start = end + 1;
                }
                best.map(|(s, e)| {
                    let sub = Atom {
                        classes: atom.classes[s..e].to_vec(),
                        word_start: atom.word_start && s == 0,
                    };
                    (sub.literal().expect("single bytes"), sub.word_start, s)
                })
            })
            .collect();
        let mut shared: std::collections::HashMap<&[u8], usize> = Default::default();
        for (lit, _, _) in stretches.iter().flatten() {
            let w = lit.len().min(LITERAL_WINDOW);
            let mut seen: Vec<&[u8]> = lit.windows(w).collect();
            seen.sort_unstable();
            seen.dedup();
            for win in seen {
                *shared.entry(win).or_default() += 1;
            }
        }
        // Class-sequence atoms are searched with digit classes widened to
        // all digits; such an atom that holds another of its pattern's
        // (widened) adds no hit outside that one's regions (see [`prune`]).
        let coarse = |a: &Atom| Atom {
            classes: a.classes.iter().map(|&c| coarsen(c)).collect(),
            word_start: a.word_start,
        };
        let coarse: Vec<Atom> = atoms.iter().map(|(a, _)| coarse(a)).collect();
        let covered: Vec<bool> = (0..atoms.len())
            .map(|i| {
                let (a, g) = (&coarse[i], atoms[i].1);
                (0..atoms.len()).any(|j| {
                    let b = &coarse[j];
                    j != i && atoms[j].1 == g && holds_atom(a, b) && (!holds_atom(b, a) || j < i)
                })
            })
            .collect();
        for (i, ((atom, group), stretch)) in atoms.iter().zip(&stretches).enumerate() {
            if covered[i] {
                continue;
            }
            let mut atom = atom.window(MASK_WINDOW);
            if let Some((lit, ws, s)) = stretch {
                // The window most atoms share, then the rarest.
                let w = lit.len().min(LITERAL_WINDOW);
                let (at, _) = lit
                    .windows(w)
                    .enumerate()
                    .map(|(i, win)| {
                        let p: f64 = win
                            .iter()
                            .map(|&b| probability(Ascii::default().with(b)))
                            .product();
                        (i, (shared[win], p))
                    })
                    .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.total_cmp(&a.1 .1)))
                    .expect("a window");
                atom = Atom {
                    classes: atoms[i].0.classes[s + at..s + at + w].to_vec(),
                    word_start: *ws && at == 0,
                };
            }
            let classes: Vec<usize> = atom
                .classes
                .iter()
                .map(|c| {
                    let c = coarsen(*c);
                    match class_list.iter().position(|x| *x == c) {
                        Some(i) => i,
                        None => {
                            class_list.push(c);
                            class_list.len() - 1
                        }
                    }
                })
                .collect();
            match class_atoms
                .iter_mut()
                .find(|m: &&mut ClassAtom| m.classes == classes)
            {
                Some(m) => m.wanted.push((atom.word_start, *group)),
                None => {
                    // The rarest FINGERPRINT classes in a row (all of a
                    // shorter atom) are its fingerprint.
                    let p = |c: usize| probability(class_list[c]);
                    let fp = (0..=classes.len().saturating_sub(FINGERPRINT))
                        .min_by(|&a, &b| {
                            let pa: f64 = classes[a..]
                                .iter()
                                .take(FINGERPRINT)
                                .map(|&c| p(c))
                                .product();
                            let pb: f64 = classes[b..]
                                .iter()
                                .take(FINGERPRINT)
                                .map(|&c| p(c))
                                .product();
                            pa.total_cmp(&pb)
                        })
                        .unwrap_or(0);
                    class_atoms.push(ClassAtom {
                        classes,
                        fp,
                        wanted: vec![(atom.word_start, *group)],
                    })
                }
            }
        }
        // Atoms with the same fingerprint share a bucket; eight buckets a
        // pass.
        let fingerprints: Vec<[Ascii; FINGERPRINT]> = class_atoms
            .iter()
            .map(|m| {
                std::array::from_fn(|k| {
                    m.classes
                        .get(m.fp + k)
                        .map_or(Ascii::ALL, |&c| class_list[c])
                })
            })
            .collect();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, fp) in fingerprints.iter().enumerate() {
            match groups.iter_mut().find(|b| fingerprints[b[0]] == *fp) {
                Some(b) => b.push(i),
                None => groups.push(vec![i]),
            }
        }
        // Three fingerprints a bucket on average when there are more than a
        // pass holds: the pairs whose tables widen least merge first (a bucket
        // takes the union of its fingerprints' classes at each position,
        // so `emp-` with `earn` would take `eart` too).
        let n_passes = if groups.len() <= BUCKETS {
            1
        } else {
            groups.len().div_ceil(BUCKETS * SHARED)
        };
        let n_buckets = (BUCKETS * n_passes).min(groups.len());
        // Beyond a few dozen, alike ones (sorted) are grouped first, so the
        // pairwise merging below stays quick when a policy loads.
        if groups.len() > GREEDY_GROUPS {
            groups.sort_by_key(|g| fingerprints[g[0]].map(|c| c.0));
            let n = groups.len();
            groups = (0..GREEDY_GROUPS)
                .map(|k| groups[k * n / GREEDY_GROUPS..(k + 1) * n / GREEDY_GROUPS].concat())
                .collect();
        }
        let hull = |g: &[usize]| -> [Ascii; FINGERPRINT] {
            std::array::from_fn(|k| {
                g.iter()
                    .fold(Ascii::default(), |a, &m| a.union(fingerprints[m][k]))
            })
        };
        let mut hulls: Vec<[Ascii; FINGERPRINT]> = groups.iter().map(|g| hull(g)).collect();
        let odds =
            |h: &[Ascii; FINGERPRINT]| -> f64 { h.iter().map(|&c| probability(c)).product() };
        while groups.len() > n_buckets {
            let mut best: Option<(f64, usize, usize)> = None;
            for i in 0..groups.len() {
                for j in i + 1..groups.len() {
                    let merged: [Ascii; FINGERPRINT] =
                        std::array::from_fn(|k| hulls[i][k].union(hulls[j][k]));
                    let cost = odds(&merged) - odds(&hulls[i]) - odds(&hulls[j]);
                    if best.is_none_or(|(c, _, _)| cost < c) {
                        best = Some((cost, i, j));
                    }
                }
            }
            let (_, i, j) = best.expect("two groups at least");
            let g = groups.swap_remove(j);
            let h = hulls.swap_remove(j);
            groups[i].extend(g);
            hulls[i] = std::array::from_fn(|k| hulls[i][k].union(h[k]));
        }
        let buckets = groups;
        let passes = buckets
            .chunks(BUCKETS)
            .map(|group| Pass::new(group.to_vec(), &fingerprints))
            .collect();
        Searcher {
            classes: class_list.into_iter().map(ClassTable::new).collect(),
            atoms: class_atoms,
            passes,
            avx2: avx2(),
        }
    }

    /// Appends the hits in `raw` (a literal's content) to `out`, unordered.
    pub fn find(&self, raw: &[u8], out: &mut Vec<Hit>) {
        for pass in &self.passes {
            #[cfg(target_arch = "x86_64")]
            if self.avx2 {
                // SAFETY: AVX2 was detected at construction.
                unsafe { self.pass_avx2(pass, raw, out) };
                continue;
            }
            self.pass_scalar(pass, raw, out);
        }
    }

    fn push(raw: &[u8], pos: usize, word_start: bool, group: u32, out: &mut Vec<Hit>) {
        if word_start && pos > 0 && is_word(raw[pos - 1]) && !escaped(raw, pos - 1) {
            return;
        }
        out.push(Hit {
            pos: pos as u32,
            group,
        });
    }

    /// The buckets whose fingerprint the bytes from `at` hold, by the
    /// exact tables (bytes past the end count as zero).
    #[inline]
    fn exact_bits(pass: &Pass, raw: &[u8], at: usize) -> u8 {
        let byte = |i: usize| raw.get(i).map_or(0, |&b| usize::from(b));
        pass.exact
            .iter()
            .enumerate()
            .fold(u8::MAX, |bits, (k, exact)| bits & exact[byte(at + k)])
    }

    /// Checks the atoms of buckets `bits` whose fingerprint starts at raw
    /// offset `at`, and pushes the hits of those that hold there.
    #[inline]
    fn check(&self, pass: &Pass, raw: &[u8], at: usize, mut bits: u8, out: &mut Vec<Hit>) {
        while bits != 0 {
            let bucket = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            for &m in &pass.buckets[bucket] {
                let atom = &self.atoms[m];
                let Some(start) = at.checked_sub(atom.fp) else {
                    continue;
                };
                let Some(bytes) = raw.get(start..start + atom.classes.len()) else {
                    continue;
                };
                if atom
                    .classes
                    .iter()
                    .zip(bytes)
                    .all(|(&c, &b)| self.classes[c].table[usize::from(b)])
                {
                    for &(ws, group) in &atom.wanted {
                        Self::push(raw, start, ws, group, out);
                    }
                }
            }
        }
    }

    /// A pass byte by byte, with exact tables.
    fn pass_scalar(&self, pass: &Pass, raw: &[u8], out: &mut Vec<Hit>) {
        for at in 0..raw.len() {
            let bits = Self::exact_bits(pass, raw, at);
            if bits != 0 {
                self.check(pass, raw, at, bits, out);
            }
        }
    }

    /// A pass 32 positions a step (see [`Pass`]).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn pass_avx2(&self, pass: &Pass, raw: &[u8], out: &mut Vec<Hit>) {
        use std::arch::x86_64::*;
        let load = |t: &[u8; 32]| {
            // SAFETY: a 32-byte load of a 32-byte table.
            unsafe { _mm256_loadu_si256(t.as_ptr() as *const __m256i) }
        };
        let lo: [__m256i; FINGERPRINT] = std::array::from_fn(|k| load(&pass.lo[k]));
        let hi: [__m256i; FINGERPRINT] = std::array::from_fn(|k| load(&pass.hi[k]));
        let nibble = _mm256_set1_epi8(0x0f);
        let zero = _mm256_setzero_si256();
        // Bucket bits of the 32 positions from `p` (32 + FINGERPRINT - 1
        // bytes readable).
        let step = |p: *const u8| -> __m256i {
            let mut m = _mm256_set1_epi8(-1);
            for k in 0..FINGERPRINT {
                // SAFETY: the caller has 32 + FINGERPRINT - 1 bytes from `p`.
                let v = unsafe { _mm256_loadu_si256(p.add(k) as *const __m256i) };
                let l = _mm256_shuffle_epi8(lo[k], _mm256_and_si256(v, nibble));
                let h =
                    _mm256_shuffle_epi8(hi[k], _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble));
                m = _mm256_and_si256(m, _mm256_and_si256(l, h));
            }
            m
        };
        let found = |base: usize, m: __m256i, limit: usize, out: &mut Vec<Hit>| {
            let mut cand = !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(m, zero)) as u32);
            if limit < 32 {
                cand &= (1u32 << limit) - 1;
            }
            if cand == 0 {
                return;
            }
            let mut bits = [0u8; 32];
            // SAFETY: a 32-byte store into a 32-byte array.
            unsafe { _mm256_storeu_si256(bits.as_mut_ptr() as *mut __m256i, m) };
            while cand != 0 {
                let lane = cand.trailing_zeros() as usize;
                cand &= cand - 1;
                // The nibble tables may take a byte the classes do not.
                let exact = bits[lane] & Self::exact_bits(pass, raw, base + lane);
                self.check(pass, raw, base + lane, exact, out);
            }
        };
        let mut at = 0;
        while at + 32 + FINGERPRINT - 1 <= raw.len() {
            found(at, step(raw[at..].as_ptr()), 32, out);
            at += 32;
        }
        // The last positions from a copy padded with zero bytes (no atom's
        // class holds one; past an atom's end every byte is taken).
        let mut tail = [0u8; 64 + FINGERPRINT - 1];
        let rest = raw.len() - at;
        tail[..rest].copy_from_slice(&raw[at..]);
        let mut k = 0;
        while k < rest {
            found(at + k, step(tail[k..].as_ptr()), rest - k, out);
            k += 32;
        }
    }
}

fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

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

/// Appends the raw offsets of suspect characters in a literal's content:
/// `\b`, `\f` and `\u` escapes, DEL, and non-ASCII characters that
/// normalisation maps to ASCII or removes.
///
/// Returns whether the literal is ASCII.
pub fn suspects(raw: &str, out: &mut Vec<u32>) -> bool {
    let b = raw.as_bytes();
    #[cfg(target_arch = "x86_64")]
    if b.len() > 64 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected just now.
        let (done, ascii) = unsafe { suspects_avx2(raw, out) };
        return suspects_scalar(raw, done, out) && ascii;
    }
    suspects_scalar(raw, 0, out)
}

/// Whether byte `i` of a literal begins a suspect: a `\u`, `\b` or `\f`
/// escape (its backslash not itself escaped) or DEL. Non-ASCII characters
/// are looked at by the caller.
fn suspect_ascii(b: &[u8], i: usize) -> bool {
    match b[i] {
        0x7f => true,
        b'\\' => matches!(b.get(i + 1), Some(b'u' | b'b' | b'f')) && !escaped_backslash(b, i),
        _ => false,
    }
}

/// Pushes the suspect starting at non-ASCII byte `at` if it is one, and
/// returns where the character ends.
fn suspect_non_ascii(raw: &str, at: usize, out: &mut Vec<u32>) -> usize {
    let Some(c) = raw.get(at..).and_then(|r| r.chars().next()) else {
        return at + 1;
    };
    if suspect_char(c) {
        out.push(at as u32);
    }
    at + c.len_utf8()
}

/// [`suspects`] from byte `from` (a character boundary) on, byte by byte;
/// whether those bytes are ASCII.
fn suspects_scalar(raw: &str, from: usize, out: &mut Vec<u32>) -> bool {
    let b = raw.as_bytes();
    let mut at = from;
    let mut ascii = true;
    while at < b.len() {
        if b[at] >= 0x80 {
            ascii = false;
            at = suspect_non_ascii(raw, at, out);
            continue;
        }
        if suspect_ascii(b, at) {
            out.push(at as u32);
        }
        at += 1;
    }
    ascii
}

/// [`suspects`] over whole 64-byte blocks that have a byte after them; returns
/// the character boundary it stopped at, and whether the blocks are ASCII.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn suspects_avx2(raw: &str, out: &mut Vec<u32>) -> (usize, bool) {
    use std::arch::x86_64::*;
    let b = raw.as_bytes();
    let (bs, del) = (_mm256_set1_epi8(b'\\' as i8), _mm256_set1_epi8(0x7f));
    let (u, bb, f) = (
        _mm256_set1_epi8(b'u' as i8),
        _mm256_set1_epi8(b'b' as i8),
        _mm256_set1_epi8(b'f' as i8),
    );
    let mask = |p: *const u8| -> (u32, u32) {
        // SAFETY: the caller reads 33 bytes from `p` inside `b`.
        unsafe {
            let v = _mm256_loadu_si256(p as *const __m256i);
            let w = _mm256_loadu_si256(p.add(1) as *const __m256i);
            let escape = _mm256_and_si256(
                _mm256_cmpeq_epi8(v, bs),
                _mm256_or_si256(
                    _mm256_or_si256(_mm256_cmpeq_epi8(w, u), _mm256_cmpeq_epi8(w, bb)),
                    _mm256_cmpeq_epi8(w, f),
                ),
            );
            let ascii = _mm256_or_si256(escape, _mm256_cmpeq_epi8(v, del));
            (
                _mm256_movemask_epi8(ascii) as u32,
                _mm256_movemask_epi8(v) as u32,
            )
        }
    };
    let mut at = 0;
    // Non-ASCII bytes before `skip` belong to a character already read.
    let mut skip = 0;
    let mut any_high = false;
    while at + 65 <= b.len() {
        let p = b[at..].as_ptr();
        let (a0, h0) = mask(p);
        // SAFETY: at + 65 <= len: bytes at..at + 65 are inside `b`.
        let (a1, h1) = mask(unsafe { p.add(32) });
        let mut ascii = u64::from(a0) | (u64::from(a1) << 32);
        let mut high = u64::from(h0) | (u64::from(h1) << 32);
        while ascii | high != 0 {
            let i = at + (ascii | high).trailing_zeros() as usize;
            if ascii & (1 << (i - at)) != 0 {
                if !escaped_backslash(b, i) || b[i] == 0x7f {
                    out.push(i as u32);
                }
            } else {
                any_high = true;
                if i >= skip {
                    skip = suspect_non_ascii(raw, i, out);
                }
            }
            ascii &= !(1 << (i - at));
            high &= !(1 << (i - at));
        }
        at += 64;
    }
    // The character the last block ended inside of, if any, was read.
    (at.max(skip), !any_high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate_of(pattern: &str) -> Analysis {
        analyze(&regex_syntax::parse(pattern).unwrap())
    }

    fn literals(a: &Analysis) -> Vec<String> {
        a.gate
            .iter()
            .flatten()
            .map(|atom| match atom.literal() {
                Some(l) => String::from_utf8(l).unwrap(),
                None => format!("<{} classes>", atom.classes.len()),
            })
            .collect()
    }

    #[test]
    fn gates_of_typical_patterns() {
        // The rarest piece of a required literal (white space splits).
        assert_eq!(
            literals(&gate_of("(?i:project[- ]codename07)")),
            ["codename07"]
        );
        let conf = literals(&gate_of(r"(?i:(?-u:\b)confidential(?-u:\b))"));
        assert!(
            conf.len() == 1 && "confidential".contains(&conf[0]),
            "{conf:?}"
        );
        let a = gate_of(r"(?i:do not (share|forward|distribute))");
        let lits = literals(&a);
        assert_eq!(lits.len(), 3, "{lits:?}");
        for (l, w) in lits.iter().zip(["share", "forward", "distribute"]) {
            assert!(w.contains(l.as_str()), "{lits:?}");
        }
        assert!(a.local);
        assert!(a.alphabet.contains(b' ') && !a.alphabet.contains(b','));
        // An unanchored dot pattern still gets a gate but cuts no regions.
        let a = gate_of(r"(?i:secret.*sauce)");
        assert!(a.alphabet.contains(b',') && a.alphabet.contains(b';'));
        assert!(a.gate.is_some());
        assert!(!gate_of("(?m:^secret)").local);
        assert!(
            !gate_of(r"\bsecret\b").local,
            "a Unicode word boundary is not local"
        );
        // A single common letter is no gate.
        assert!(gate_of("(?i:a+)").gate.is_none());
        // Unicode \d can match digits that are not ASCII: no gate from it.
        assert!(gate_of(r"\d{6}").gate.is_none());
        assert!(gate_of(r"[0-9]{6}").gate.is_some());
    }

    #[test]
    fn digits_every_match_holds() {
        let d = |p: &str| Need::common(&needs(&regex_syntax::parse(p).unwrap())).digits;
        assert_eq!(d(r"[0-9]{3}-[0-9]{2}-[0-9]{4}"), 9);
        assert_eq!(d(r"emp-[0-9]{6}|x"), 0);
        assert_eq!(d(r"a1(?:[0-9]|b)"), 1);
        // Unicode \d can match digits that are not ASCII.
        assert_eq!(d(r"\d{4}"), 0);
        assert_eq!(d(super::super::builtins::Builtin::CreditCard.pattern()), 13);
    }

    #[test]
    fn branches_need_their_own_digits_and_punctuation() {
        let n = |p: &str| needs(&regex_syntax::parse(p).unwrap());
        let plus = Ascii::default().with(b'+');
        // A phone number: ten digits, or a `+` and fewer.
        let phone = n(super::super::builtins::Builtin::PhoneNumber.pattern());
        assert!(phone
            .iter()
            .all(|b| b.digits >= 10 || b.punct.contains(b'+')));
        assert!(phone.iter().any(|b| b.digits < 10));
        assert_eq!(
            n(r"\+[0-9]{2}|[0-9]{10}"),
            vec![
                Need {
                    len: 3,
                    digits: 2,
                    punct: plus,
                    ..Need::default()
                },
                Need {
                    len: 10,
                    digits: 10,
                    punct: Ascii::default(),
                    ..Need::default()
                }
            ]
        );
        // Optional parts need nothing; a repeated part needs what each
        // of its branches needs.
        assert_eq!(
            n(r"(?:@x)?y"),
            vec![Need {
                len: 1,
                digits: 0,
                punct: Ascii::default(),
                ..Need::default()
            }]
        );
        assert_eq!(
            n(r"(?:a@|b@@)+"),
            vec![Need {
                len: 2,
                digits: 0,
                punct: Ascii::default().with(b'@'),
                ..Need::default()
            }]
        );
        // Too many ways through merge into what they share.
        let many = n(r"(?:[a-z]|[0-9]|@|\.|-)(?:[a-z]|[0-9]|@|\.|-)");
        assert!(many.len() <= MAX_BRANCHES);
    }

    #[test]
    fn branches_need_their_words() {
        let words = |p: &str| -> Vec<Vec<String>> {
            needs(&regex_syntax::parse(p).unwrap())
                .iter()
                .map(|n| {
                    n.words
                        .iter()
                        .map(|w| String::from_utf8(w.to_vec()).unwrap())
                        .collect()
                })
                .collect()
        };
        // Letters in either case spell a word; white space and `/` end one.
        assert_eq!(
            words(r"(?i)\bsecret sauce\b"),
            vec![vec!["secret", "sauce"]]
        );
        assert_eq!(
            words(r"(?i)do not (share|forward)"),
            vec![vec!["share", "not", "do"], vec!["forward", "not", "do"]]
        );
        assert_eq!(
            words(r"internal\.example\.com/[a-z]+"),
            vec![vec!["internal.example.com"]]
        );
        // A class of more than one letter, a repetition that may be
        // absent, an escapable byte: no word through them.
        assert_eq!(words(r"ab[cd]ef"), vec![vec!["ab", "ef"]]);
        assert_eq!(words(r"(?:abc)?def"), vec![vec!["def"]]);
        assert_eq!(words(r#"ab"cd\\ef"#), vec![vec!["ab", "cd", "ef"]]);
        // Words every branch of a repetition holds; the longest few.
        assert_eq!(words(r"(?:xyz1|xyz2)+"), vec![Vec::<String>::new()]);
        assert_eq!(words(r"(?:[0-9]word){2}"), vec![vec!["word"]]);
        assert_eq!(
            words(r"aaaaaa bbbbb cccc ddd ee ff"),
            vec![vec!["aaaaaa", "bbbbb", "cccc", "ddd"]]
        );
    }

    #[test]
    fn atoms_that_hold_another_atom_leave_the_gate() {
        let classes = |p: &str| -> Vec<usize> {
            gate_of(p)
                .gate
                .unwrap()
                .iter()
                .map(|a| a.classes.len())
                .collect()
        };
        // Every branch holds four digits in a row.
        assert_eq!(
            classes(r"\b(?:[0-9]{4} [0-9]{4}|[0-9]{4}-[0-9]{4}-[0-9]{4}|[0-9]{13})\b"),
            vec![4]
        );
        // `xy@` holds `y@`, but `@z` holds neither.
        assert_eq!(classes(r"xy@|y@|@z"), vec![2, 2]);
        let atom = |s: &str, word_start: bool| Atom {
            classes: s.bytes().map(|b| Ascii::default().with(b)).collect(),
            word_start,
        };
        assert!(holds_atom(&atom("xab", false), &atom("ab", false)));
        // A word-start atom is held only at the start of a word-start one:
        // inside, the byte before it is a word byte.
        assert!(!holds_atom(&atom("xab", true), &atom("ab", true)));
        assert!(holds_atom(&atom("abx", true), &atom("ab", true)));
        assert!(!holds_atom(&atom("abx", false), &atom("ab", true)));
        // A class is held where the inner class takes all its bytes.
        let digits = Ascii(0x3ff << b'0');
        let two_to_six = Ascii(0x1f << b'2');
        let wide = Atom {
            classes: vec![digits; 4],
            word_start: false,
        };
        let narrow = Atom {
            classes: vec![two_to_six, digits, digits, digits],
            word_start: false,
        };
        assert!(holds_atom(&narrow, &wide));
        assert!(!holds_atom(&wide, &narrow));
        // The searcher widens digit classes, and drops what that makes
        // redundant: a card number is searched as four digits.
        let card = gate_of(super::super::builtins::Builtin::CreditCard.pattern());
        let atoms: Vec<(Atom, u32)> = card.gate.unwrap().into_iter().map(|a| (a, 0)).collect();
        assert!(atoms.len() > 1);
        let searcher = Searcher::new(&atoms);
        assert_eq!(searcher.atoms.len(), 1);
        assert_eq!(searcher.atoms[0].classes.len(), 4);
    }

    #[test]
    fn branches_of_one_length_carry_a_stretch_on() {
        // Ten four-letter prefixes and sixteen key bytes: one atom that
        // starts `A[BCGIKNRS][CDIOPV]A`, rarer than the prefixes apart and
        // than the key bytes alone.
        let aws = gate_of(super::super::builtins::Builtin::AwsAccessKey.pattern())
            .gate
            .unwrap();
        assert_eq!(aws.len(), 1);
        let a = Ascii::default().with(b'A');
        assert_eq!(aws[0].classes[0], a);
        assert_eq!(aws[0].classes[3], a);
        assert_eq!(aws[0].classes[1].len(), 8);
        assert_eq!(aws[0].classes.len(), 20);
        assert!(aws[0].word_start);
        // Literals apart stay when they are rarer than merged.
        assert_eq!(
            literals(&gate_of(r"q[1-4] (earnings|forecast)")),
            vec!["earnings", "forecast"]
        );
        // Branches of other lengths do not merge.
        assert_eq!(
            merged_branches(&regex_syntax::parse("ab|cde").unwrap()),
            None
        );
        assert_eq!(
            merged_branches(&regex_syntax::parse("ab|cd").unwrap()),
            Some(vec![
                Ascii::default().with(b'a').with(b'c'),
                Ascii::default().with(b'b').with(b'd')
            ])
        );
    }

    #[test]
    fn every_builtin_has_a_local_gate() {
        for b in super::super::builtins::Builtin::ALL {
            let a = gate_of(b.pattern());
            assert!(a.local, "{b:?}");
            assert!(a.gate.is_some(), "{b:?} has no gate");
        }
    }

    fn hits(atoms: &[(&str, u32)], raw: &str) -> Vec<(u32, u32)> {
        let atoms: Vec<(Atom, u32)> = atoms
            .iter()
            .map(|(p, g)| (gate_of(p).gate.unwrap()[0].clone(), *g))
            .collect();
        let s = Searcher::new(&atoms);
        let mut out = Vec::new();
        s.find(raw.as_bytes(), &mut out);
        out.sort();
        out.dedup();
        out.into_iter().map(|h| (h.pos, h.group)).collect()
    }

    #[test]
    fn searcher_finds_literals_and_class_runs_across_chunks() {
        let mut raw = "x".repeat(4094);
        raw.push_str("CodeName07 and 1234567 and @ and \\u0041KIA");
        let found = hits(&[("(?i:codename07)", 1), ("[0-9]{6}", 2), ("@", 3)], &raw);
        // The codename's gate is its rarest window ("dename07"); a run of
        // seven digits holds two six-digit runs.
        assert_eq!(found, [(4096, 1), (4109, 2), (4110, 2), (4121, 3)]);
        // Raw bytes over-approximate: an escape's hex digits are digits.
        assert_eq!(hits(&[("[0-9]{4}", 4)], r"\u0041"), [(2, 4)]);
        // Across a 64-byte block boundary.
        let raw = format!("{}987654", "y".repeat(61));
        assert_eq!(hits(&[("[0-9]{6}", 7)], &raw), [(61, 7)]);
        // A word-start atom after a word character is no hit, after an
        // escape it is.
        assert_eq!(hits(&[(r"(?-u:\b)eyJ[a-z]", 1)], "xeyJa"), []);
        assert_eq!(hits(&[(r"(?-u:\b)eyJ[a-z]", 1)], r"\neyJa"), [(2, 1)]);
    }

    #[test]
    fn suspects_are_found() {
        let mut out = Vec::new();
        suspects(r#"a\u0041 \\u b\n\f \u2192 é ｃ → z"#, &mut out);
        // `\u0041`, `\f`, `\u2192` (every \u escape) and the fullwidth c;
        // not the escaped backslash before `u`, é or the arrow.
        out.sort();
        assert_eq!(out, [1, 15, 18, 28]);
        let mut out = Vec::new();
        suspects(&format!("{}ｃ", "a".repeat(100)), &mut out);
        assert_eq!(out, [100]);
    }

    #[test]
    fn suspect_characters() {
        for c in [
            '\u{ff41}',
            '\u{200b}',
            '\u{fb01}',
            '\u{2026}',
            '½',
            '\u{1d41c}',
            '\u{85}',
        ] {
            assert!(suspect_char(c), "{c:?}");
        }
        // Inert: normalised to themselves, to white space, or to other
        // non-ASCII characters.
        for c in [
            '\u{2192}',
            'é',
            '\u{1f600}',
            '\u{4e2d}',
            '\u{2014}',
            '\u{a0}',
            'µ',
        ] {
            assert!(!suspect_char(c), "{c:?}");
        }
    }

    #[test]
    fn simd_passes_equal_the_scalar_ones() {
        let class = |bytes: &[u8]| bytes.iter().fold(Ascii::default(), |a, &b| a.with(b));
        let range = |lo: u8, hi: u8| (lo..=hi).fold(Ascii::default(), |a, b| a.with(b));
        // Exact and nibble-widened classes, short atoms and long ones.
        let digits = range(b'0', b'9');
        let token = Ascii(digits.0 | range(b'A', b'Z').0 | range(b'a', b'z').0 | class(b"-_").0);
        let atoms: Vec<(Atom, u32)> = [
            vec![class(b"@")],
            vec![class(b"wy"), class(b"e")],
            vec![class(b"()-"), digits, digits],
            vec![digits; 4],
            vec![class(b"aeiou.+~"), token, token, token, token],
            vec![Ascii(range(b'2', b'7').0 | range(b'A', b'Z').0); 6],
            vec![class(&[0x7f]), class(b"!")],
            vec![
                class(b"A"),
                class(b"BCGIKNRS"),
                class(b"CDIOPV"),
                class(b"A"),
            ],
            vec![class(b"q")],
        ]
        .into_iter()
        .chain(
            [
                "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
                "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
                "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
            ]
            .iter()
            .map(|w| {
                w.bytes()
                    .map(|b| class(&[b, b.to_ascii_uppercase()]))
                    .collect::<Vec<_>>()
            }),
        )
        .enumerate()
        .map(|(g, classes)| {
            (
                Atom {
                    classes,
                    word_start: false,
                },
                g as u32,
            )
        })
        .collect();
        let simd = Searcher::new(&atoms);
        assert!(simd.passes.len() > 1, "more buckets than one pass holds");
        assert!(
            simd.passes
                .iter()
                .any(|p| p.buckets.iter().any(|b| b.len() > 1)),
            "buckets shared"
        );
        let mut scalar = Searcher::new(&atoms);
        scalar.avx2 = false;
        // Every byte value, in several orders, so each sits in each lane,
        // then text that holds the atoms; every length of its tail.
        let mut bytes: Vec<u8> = Vec::new();
        for k in [1usize, 7, 31, 33, 101] {
            bytes.extend((0..256).map(|i| ((i * k) % 256) as u8));
        }
        bytes.extend_from_slice(
            b"a@b ewe (12-34) 1234567 AKIAB eabcd QRST23 \x7f! q Alpha BRAVO charli charlie delta-echo \
foxtrot golfhotel India juliet kilo lima mike november oscar-papa quebec romeo sierra \
tango uniform victor whiskey xray yankee ZULU",
        );
        // Both find exactly where each atom's classes line up.
        let reference = |b: &[u8]| -> Vec<Hit> {
            let mut want = Vec::new();
            for (atom, g) in &atoms {
                let n = atom.classes.len();
                for pos in 0..(b.len() + 1).saturating_sub(n) {
                    if atom
                        .classes
                        .iter()
                        .enumerate()
                        .all(|(k, c)| c.contains(b[pos + k]))
                    {
                        want.push(Hit {
                            pos: pos as u32,
                            group: *g,
                        });
                    }
                }
            }
            want.sort();
            want
        };
        for end in (bytes.len() - 70..=bytes.len()).chain([0, 1, 2, 3, 33, 34, 35]) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            simd.find(&bytes[..end], &mut a);
            scalar.find(&bytes[..end], &mut b);
            a.sort();
            b.sort();
            assert_eq!(a, b, "{end}");
            assert_eq!(a, reference(&bytes[..end]), "{end}");
        }
        // Every atom is in the text.
        let mut all = Vec::new();
        simd.find(&bytes, &mut all);
        let groups: std::collections::BTreeSet<u32> = all.iter().map(|h| h.group).collect();
        assert_eq!(groups.len(), atoms.len(), "{groups:?}");
    }

    proptest::proptest! {
        #[test]
        fn simd_suspects_equal_the_scalar_ones(
            s in "([a-z\\\\ubf\u{7f}\"]|\\PC|[\u{ff41}\u{200b}\u{2026}é→]){0,300}",
        ) {
            let mut scalar = Vec::new();
            let ascii = suspects_scalar(&s, 0, &mut scalar);
            let mut all = Vec::new();
            proptest::prop_assert_eq!(suspects(&s, &mut all), ascii);
            proptest::prop_assert_eq!(all, scalar);
            proptest::prop_assert_eq!(ascii, s.is_ascii());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Class-sequence atoms are found exactly where their classes line
        /// up, whatever the layout of steps and tail, by the SIMD and the
        /// scalar pass alike.
        #[test]
        fn class_atoms_are_found_exactly(
            tokens in proptest::collection::vec(
                proptest::sample::select(&[
                    "123", "4567", "-", ".", "+", "@", "ab", "XYZ", " ", "0", "99999", "(", ")",
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                ][..]),
                0..2500,
            ),
        ) {
            let raw = tokens.concat();
            let patterns = [
                "[0-9]{3}-[0-9]{2}-[0-9]{4}",
                "[0-9]{4}\\.[0-9]{2}",
                "\\([0-9]{3}\\)",
                "@",
                "\\+[0-9]",
                "[A-Z]{3}[0-9]",
            ];
            let atoms: Vec<(Atom, u32)> = patterns
                .iter()
                .enumerate()
                .map(|(g, p)| (gate_of(p).gate.unwrap()[0].clone(), g as u32))
                .collect();
            let mut s = Searcher::new(&atoms);
            let mut found = Vec::new();
            s.find(raw.as_bytes(), &mut found);
            found.sort();
            found.dedup();
            // The scalar pass finds the same.
            s.avx2 = false;
            let mut scalar = Vec::new();
            s.find(raw.as_bytes(), &mut scalar);
            scalar.sort();
            scalar.dedup();
            proptest::prop_assert_eq!(&scalar, &found);
            let b = raw.as_bytes();
            let mut want = Vec::new();
            for (atom, g) in &atoms {
                let n = atom.classes.len();
                for pos in 0..(b.len() + 1).saturating_sub(n) {
                    if atom.classes.iter().enumerate().all(|(k, c)| c.contains(b[pos + k])) {
                        want.push(Hit { pos: pos as u32, group: *g });
                    }
                }
            }
            want.sort();
            proptest::prop_assert_eq!(found, want);
        }
    }
}
