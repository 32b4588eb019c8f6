//! The searcher: gate atoms become class sequences, found by the
//! fingerprint passes (see [`fingerprints`](super::fingerprints)) and
//! checked class by class where a pass leaves a candidate.

use super::fingerprints::{self, Pass};
use super::{escaped, is_word};
use crate::guard::ascii::{probability, sequence_probability, Ascii};
use crate::guard::compile::atoms::{holds_atom, Atom};
use crate::guard::vector::{Isa, Trigrams, FINGERPRINT};

/// A hit: the raw offset where an atom starts, and the caller's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    pub pos: u32,
    pub group: u32,
}

/// A class sequence searched for (indices into the searcher's classes),
/// and who asked for it.
#[derive(Debug)]
pub(crate) struct ClassAtom {
    pub(crate) classes: Vec<usize>,
    /// Where the [`FINGERPRINT`] classes its pass tests start (see [`Pass`]).
    fp: usize,
    /// Every gate atom this one stands for.
    wanted: Vec<Wanted>,
}

/// A gate atom a class atom stands for: its group, and what a hit must
/// show beyond the class atom for this gate atom to hold there.
#[derive(Debug)]
struct Wanted {
    group: u32,
    /// The pattern asserts a word boundary where [`Self::context`] starts
    /// (where the class atom starts, without a context).
    word_start: bool,
    /// The gate atom's classes around the window searched for, when it has
    /// more (see [`Context`]).
    context: Option<Context>,
}

/// Up to [`MASK_WINDOW`] classes of a gate atom around the literal window
/// the searcher looks for: a hit is the atom's only where the raw bytes
/// around the window are in these classes too. `pat[0-9a-zA-Z_-]{14}\.`
/// is searched for by `pat`, and `path` or `pattern` in source code is no
/// hit. Like the class checks of the fingerprint passes, this holds in raw
/// bytes because an atom holds none of the bytes a literal may hold
/// escaped (see [`super`]).
#[derive(Debug)]
struct Context {
    /// Classes before the window.
    before: usize,
    classes: Vec<Ascii>,
}

impl Context {
    /// The context of the window `at..at + len` of `classes` (a gate
    /// atom's), when the atom has more classes than the window: the
    /// classes after it first (a prefix is followed by its token), then
    /// those before, up to [`MASK_WINDOW`] in all.
    fn of(classes: &[Ascii], at: usize, len: usize) -> Option<Context> {
        if classes.len() <= len {
            return None;
        }
        let span = MASK_WINDOW.max(len);
        let end = (at + span).min(classes.len());
        let start = end.saturating_sub(span).min(at);
        Some(Context {
            before: at - start,
            classes: classes[start..end].to_vec(),
        })
    }

    /// Whether the raw bytes around a window found at `pos` are in the
    /// context's classes; the start of the context, if so.
    fn holds(&self, raw: &[u8], pos: usize) -> Option<usize> {
        let start = pos.checked_sub(self.before)?;
        let bytes = raw.get(start..start + self.classes.len())?;
        self.classes
            .iter()
            .zip(bytes)
            .all(|(c, &b)| c.contains(b))
            .then_some(start)
    }
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

/// Finds the atoms of a set of gates in raw literal bytes.
#[derive(Debug)]
pub struct Searcher {
    classes: Vec<ClassTable>,
    pub(crate) atoms: Vec<ClassAtom>,
    /// The atoms' fingerprint passes.
    pub(super) passes: Vec<Pass>,
    /// With many literal atoms (a secret pack's prefixes and keywords):
    /// those atoms found by one trigram filter (see [`Literals`]).
    literals: Option<Literals>,
    /// The instruction set of the passes, chosen at construction.
    pub isa: Isa,
}

/// Longest literal searched for: a window of an atom's literal, shared
/// with other atoms where it can be (forty patterns `project codenameNN`
/// share `codename`).
pub(crate) const LITERAL_WINDOW: usize = 8;

/// Literal atoms from which on they go to [`Literals`] rather than to
/// fingerprint passes. Below it (the builtins and a few dozen custom
/// literals) the passes stay as they were measured; with the secret pack
/// (~250 literal atoms) one automaton (as `Literals` then was) took the 1
/// MB bench decision from 54.0 M to 52.7 M instructions and ~10 to ~8.7
/// ms (see `guard::secrets`).
const MANY_LITERALS: usize = 48;

/// Longest class sequence checked: more positions cost little once the
/// fingerprint matched, and prune hits (a JWT needs ten token bytes, not
/// four).
const MASK_WINDOW: usize = 12;

/// Many literal atoms (three to [`LITERAL_WINDOW`] bytes; a letter up to
/// ASCII case where its class takes both cases): the positions where some literal's anchor (its rarest three
/// bytes, see [`anchor`]) may start are found by the trigram filter (see
/// [`Trigrams`]), and at each the literals anchored by that hash are
/// compared whole, as one 8-byte word each.
///
/// # Why words, not an automaton
///
/// Each candidate was confirmed by an anchored walk of an aho-corasick DFA
/// (the crate built it; a transition and a test for a special state per
/// byte, each transition a load that waits for the one before). With the
/// secret pack and 50 organisation patterns that walk was 15-17 % of the
/// samples of a 4 MB source or `git log` decision (`perf`). A literal of at
/// most eight bytes is one masked compare of an unaligned load (ASCII
/// letters folded by or-ing in their case bit), and the literals of one
/// anchor hash are one or two. 4 MB, `[Secrets, Pii]` + 50 organisation
/// patterns, ms, medians of three alternating runs: source 9.2 -> 7.9,
/// logs 13.1 -> 12.2, CI 20.3 -> 18.5, lockfiles 12.1 -> 10.1, `git log`
/// 18.6 -> 17.2.
///
/// # Why a trigram filter, not Teddy
///
/// The secret pack compiles to ~270 literal atoms of 3 to 8 bytes (with
/// `[Secrets, Pii]`; the `@` of `Email` and other atoms under three bytes
/// stay in the fingerprint passes, where they cost what they did).
/// aho-corasick's packed Teddy takes at most 128 literals (it is made for
/// 64), matches ASCII case only through a lower-cased copy of the text
/// (measured slower than the passes, see [`super`]), and reports
/// leftmost-first, not every overlapping occurrence: it would take three
/// searchers and a copy. Teddy-style passes of our own (this module's
/// fingerprint kernel, each literal's first four bytes, ~11 literals a
/// bucket, three passes) put the union of a bucket's nibbles in its
/// tables: 5.5 % of a service log's positions were candidates, and the 1
/// MB `[Secrets, Pii]` decision went from 45.3 M to 48.0 M instructions.
/// A hashed set of the literals' first three bytes has no unions (see
/// [`Trigrams`]): 1.9-4.2 % candidates.
///
/// Measured when the filter replaced the plain two-walk automaton
/// (callgrind, instructions per 1 MB decision, `[Secrets, Pii]` / with 50
/// organisation patterns): source 41.2 / 48.3 M -> 28.3 / 30.8 M; service
/// log 45.3 / 49.4 M -> 32.1 / 31.9 M; CI 64.4 / 76.5 M -> 50.1 / 57.8 M;
/// lockfile 43.9 / 62.5 M -> 33.5 / 38.7 M; `git log` 79.6 / 116.8 M ->
/// 48.8 / 70.1 M.
#[derive(Debug)]
struct Literals {
    /// Each literal's anchor: the three bytes of it least likely in text
    /// (see [`anchor`]).
    trigrams: Box<Trigrams>,
    /// The literals, grouped by the hash of their anchor.
    words: Vec<LiteralWord>,
    /// Open addressing: per slot, an anchor hash and its literals' range
    /// in `words` (`end == 0`: an empty slot). Four slots per hash in use
    /// (~4 KB for the secret pack's ~260), where a table indexed by every
    /// one of the 32,768 hashes would take 64 KB of cache.
    slots: Box<[Slot]>,
}

/// One literal as a word (see [`Literals`]).
#[derive(Debug, Clone, Copy)]
struct LiteralWord {
    /// The literal's bytes, ASCII lower case, little-endian, zero past its
    /// end.
    word: u64,
    /// The case bit (`0x20`) of every byte that is an ASCII letter.
    fold: u64,
    /// `0xff` for every byte of the literal.
    mask: u64,
    len: u8,
    /// Where its anchor starts in it.
    anchor: u8,
    /// The class atom it stands for.
    atom: u32,
}

impl LiteralWord {
    /// Whether the literal starts at `start` of `raw`.
    #[inline(always)]
    fn at(&self, raw: &[u8], start: usize) -> bool {
        let word = match raw.get(start..start + 8) {
            Some(b) => u64::from_le_bytes(b.try_into().expect("eight bytes")),
            None => {
                let rest = &raw[start.min(raw.len())..];
                if rest.len() < usize::from(self.len) {
                    return false;
                }
                let mut b = [0u8; 8];
                b[..rest.len()].copy_from_slice(rest);
                u64::from_le_bytes(b)
            }
        };
        (word | self.fold) & self.mask == self.word
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    hash: u16,
    start: u16,
    end: u16,
}

/// Where in `literal` (three bytes or more, at most [`LITERAL_WINDOW`])
/// the three bytes least likely in text start: the trigram filter stops
/// where an anchor's hash occurs, and `iontoken` is stopped for by `tok`,
/// not by `ion`, the commonest trigram of English and code. Candidates in
/// the 4 MB bodies of `benches/content_kinds.rs` with `[Secrets, Pii]` and
/// 50 organisation patterns, first trigrams -> anchors (exact trigrams,
/// counted outside the filter): source 130,116 -> 68,272, service logs
/// 64,959 -> 25,687, CI 108,966 -> 63,825, lockfiles 132,827 -> 44,360,
/// `git log` 163,563 -> 81,511.
pub(crate) fn anchor(literal: &[u8]) -> usize {
    let p = |w: &[u8]| -> f64 {
        w.iter()
            .map(|&b| probability(Ascii::default().with(b)))
            .product()
    };
    (0..=literal.len() - 3)
        .min_by(|&a, &b| p(&literal[a..a + 3]).total_cmp(&p(&literal[b..b + 3])))
        .unwrap_or(0)
}

impl Literals {
    /// `literal_atoms`: (class atom, its classes), each class one byte up
    /// to ASCII case, three to [`LITERAL_WINDOW`] of them.
    fn new(literal_atoms: &[(usize, Vec<Ascii>)]) -> Option<Literals> {
        let mut trigrams = Box::new(Trigrams::default());
        let mut words: Vec<(usize, LiteralWord)> = Vec::with_capacity(literal_atoms.len());
        for (atom, classes) in literal_atoms {
            debug_assert!((3..=LITERAL_WINDOW).contains(&classes.len()));
            let literal: Vec<u8> = classes
                .iter()
                .map(|c| c.single_folded())
                .collect::<Option<_>>()?;
            let at = anchor(&literal);
            trigrams.insert(&literal[at..at + 3]);
            // A letter is compared up to case only where its class holds
            // both (`[Bb]`); Discord's `Bot` is found in that case alone,
            // not in every `dependabot` of a `git log` (11,704 hits and
            // regions in 4 MB).
            let (mut word, mut fold, mut mask) = (0u64, 0u64, 0u64);
            for (k, (&b, c)) in literal.iter().zip(classes).enumerate() {
                // `b` is lower case (`single_folded`); one byte of the class.
                let both = c.len() == 2;
                let byte = if both { b } else { c.bytes().next()? };
                word |= u64::from(byte) << (8 * k);
                if both {
                    fold |= 0x20 << (8 * k);
                }
                mask |= 0xff << (8 * k);
            }
            let hash = Trigrams::hash(literal[at], literal[at + 1], literal[at + 2]);
            words.push((
                hash,
                LiteralWord {
                    word,
                    fold,
                    mask,
                    len: literal.len() as u8,
                    anchor: at as u8,
                    atom: u32::try_from(*atom).ok()?,
                },
            ));
        }
        words.sort_by_key(|(h, _)| *h);
        let distinct = words.chunk_by(|a, b| a.0 == b.0).count();
        let mut slots =
            vec![Slot::default(); (4 * distinct).next_power_of_two()].into_boxed_slice();
        let mut start = 0;
        for group in words.chunk_by(|a, b| a.0 == b.0) {
            let hash = group[0].0;
            let mut i = Self::slot_of(hash, slots.len());
            while slots[i].end != 0 {
                i = (i + 1) & (slots.len() - 1);
            }
            slots[i] = Slot {
                hash: hash as u16,
                start: u16::try_from(start).ok()?,
                end: u16::try_from(start + group.len()).ok()?,
            };
            start += group.len();
        }
        Some(Literals {
            trigrams,
            words: words.into_iter().map(|(_, w)| w).collect(),
            slots,
        })
    }

    #[inline(always)]
    fn slot_of(hash: usize, len: usize) -> usize {
        (hash.wrapping_mul(0x9e37_79b1) >> 7) & (len - 1)
    }

    /// Calls `found(start, atom)` for every occurrence in `raw`, in no
    /// particular order.
    #[inline]
    fn find(&self, isa: Isa, raw: &[u8], mut found: impl FnMut(usize, usize)) {
        isa.trigrams(&self.trigrams, raw, |at| self.confirm(raw, at, &mut found));
    }

    /// Reports the literals whose anchor starts at `at`.
    #[inline]
    fn confirm(&self, raw: &[u8], at: usize, found: &mut impl FnMut(usize, usize)) {
        let [a, b, c, ..] = raw[at..] else {
            return;
        };
        let hash = Trigrams::hash(a, b, c);
        let mut i = Self::slot_of(hash, self.slots.len());
        let slot = loop {
            let slot = self.slots[i];
            if slot.end == 0 {
                return;
            }
            if usize::from(slot.hash) == hash {
                break slot;
            }
            i = (i + 1) & (self.slots.len() - 1);
        };
        for w in &self.words[usize::from(slot.start)..usize::from(slot.end)] {
            if let Some(start) = at.checked_sub(usize::from(w.anchor)) {
                if w.at(raw, start) {
                    found(start, w.atom as usize);
                }
            }
        }
    }
}

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
            let mut context = None;
            let mut word_start = atom.word_start;
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
                context = Context::of(&atoms[i].0.classes, s + at, w);
                word_start = match &context {
                    Some(c) => atoms[i].0.word_start && s + at == c.before,
                    None => atom.word_start,
                };
            }
            let wanted = Wanted {
                group: *group,
                word_start,
                context,
            };
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
                Some(m) => m.wanted.push(wanted),
                None => {
                    // The rarest FINGERPRINT classes in a row (all of a
                    // shorter atom) are its fingerprint.
                    let p = |at: usize| {
                        let window: Vec<Ascii> = classes[at..]
                            .iter()
                            .take(FINGERPRINT)
                            .map(|&c| class_list[c])
                            .collect();
                        sequence_probability(&window)
                    };
                    let fp = (0..=classes.len().saturating_sub(FINGERPRINT))
                        .min_by(|&a, &b| p(a).total_cmp(&p(b)))
                        .unwrap_or(0);
                    class_atoms.push(ClassAtom {
                        classes,
                        fp,
                        wanted: vec![wanted],
                    })
                }
            }
        }
        // Many literal atoms: one trigram filter for them, passes for the
        // rest.
        let literal_atoms: Vec<(usize, Vec<Ascii>)> = class_atoms
            .iter()
            .enumerate()
            .map(|(i, m)| {
                (
                    i,
                    m.classes.iter().map(|&c| class_list[c]).collect::<Vec<_>>(),
                )
            })
            .filter(|(_, classes)| classes.iter().all(|c| c.single_folded().is_some()))
            // A shorter one (`@`) would make a third or more of the
            // trigram filter's hashes candidates: it stays in the passes.
            // (Windows are never longer than a word.)
            .filter(|(_, classes)| (3..=LITERAL_WINDOW).contains(&classes.len()))
            .collect();
        let literals = (literal_atoms.len() >= MANY_LITERALS)
            .then(|| Literals::new(&literal_atoms))
            .flatten();
        let in_passes: Vec<usize> = (0..class_atoms.len())
            .filter(|&i| {
                literals
                    .as_ref()
                    .is_none_or(|l| !l.words.iter().any(|w| w.atom as usize == i))
            })
            .collect();
        // Atoms with the same fingerprint share a bucket; eight buckets a
        // pass.
        let fingerprints: Vec<[Ascii; FINGERPRINT]> = in_passes
            .iter()
            .map(|&i| &class_atoms[i])
            .map(|m| {
                std::array::from_fn(|k| {
                    m.classes
                        .get(m.fp + k)
                        .map_or(Ascii::ALL, |&c| class_list[c])
                })
            })
            .collect();
        let mut passes = fingerprints::passes(&fingerprints);
        for pass in &mut passes {
            for bucket in &mut pass.buckets {
                for m in bucket.iter_mut() {
                    *m = in_passes[*m];
                }
            }
        }
        Searcher {
            classes: class_list.into_iter().map(ClassTable::new).collect(),
            atoms: class_atoms,
            passes,
            literals,
            isa: Isa::detect(),
        }
    }

    /// Whether many literal atoms went to [`Literals`] (tests).
    #[cfg(test)]
    pub(crate) fn has_literal_automaton(&self) -> bool {
        self.literals.is_some()
    }

    /// Appends the hits in `raw` (a literal's content) to `out`, unordered.
    pub fn find(&self, raw: &[u8], out: &mut Vec<Hit>) {
        if let Some(literals) = &self.literals {
            literals.find(self.isa, raw, |start, atom| {
                Self::push_wanted(raw, start, &self.atoms[atom].wanted, out)
            });
        }
        for pass in &self.passes {
            self.isa.fingerprints(&pass.tables, raw, |at, bits| {
                self.check(pass, raw, at, bits, out)
            });
        }
    }

    /// Pushes a hit at `pos` (where a class atom starts) for each gate atom
    /// it stands for that holds there.
    #[inline]
    fn push_wanted(raw: &[u8], pos: usize, wanted: &[Wanted], out: &mut Vec<Hit>) {
        for w in wanted {
            let start = match &w.context {
                Some(c) => match c.holds(raw, pos) {
                    Some(start) => start,
                    None => continue,
                },
                None => pos,
            };
            if w.word_start && start > 0 && is_word(raw[start - 1]) && !escaped(raw, start - 1) {
                continue;
            }
            out.push(Hit {
                pos: pos as u32,
                group: w.group,
            });
        }
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
                    Self::push_wanted(raw, start, &atom.wanted, out);
                }
            }
        }
    }
}
