//! The searcher: gate atoms become class sequences, found by the
//! fingerprint passes (see [`fingerprints`](super::fingerprints)) and
//! checked class by class where a pass leaves a candidate.

use super::fingerprints::{self, Pass};
use super::{escaped, is_word};
use crate::guard::ascii::{probability, Ascii};
use crate::guard::compile::atoms::{holds_atom, Atom};
use crate::guard::vector::{Isa, FINGERPRINT};

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

/// Finds the atoms of a set of gates in raw literal bytes.
#[derive(Debug)]
pub struct Searcher {
    classes: Vec<ClassTable>,
    pub(crate) atoms: Vec<ClassAtom>,
    /// The atoms' fingerprint passes.
    pub(super) passes: Vec<Pass>,
    /// With many literal atoms (a secret pack's prefixes and keywords):
    /// those atoms in one Aho-Corasick automaton, up to ASCII case, and
    /// per automaton pattern the atom it stands for. Fingerprint passes
    /// cost a pass over the text per 24 fingerprints; the automaton one
    /// pass for any number of literals.
    literals: Option<(aho_corasick::AhoCorasick, Vec<usize>)>,
    /// The instruction set of the passes, chosen at construction.
    pub isa: Isa,
}

/// Longest literal searched for: a window of an atom's literal, shared
/// with other atoms where it can be (forty patterns `project codenameNN`
/// share `codename`).
const LITERAL_WINDOW: usize = 8;

/// Literal atoms from which on they go to one automaton rather than to
/// fingerprint passes. Below it (the builtins and a few dozen custom
/// literals) the passes stay as they were measured; with the secret pack
/// (~250 literal atoms) the automaton took the 1 MB bench decision from
/// 54.0 M to 52.7 M instructions and ~10 to ~8.7 ms (see
/// `guard::secrets`).
const MANY_LITERALS: usize = 48;

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
        // Many literal atoms: one automaton for them, passes for the rest.
        let literal_of = |m: &ClassAtom| -> Option<Vec<u8>> {
            m.classes
                .iter()
                .map(|&c| class_list[c].single_folded())
                .collect()
        };
        let literal_atoms: Vec<(usize, Vec<u8>)> = class_atoms
            .iter()
            .enumerate()
            .filter_map(|(i, m)| literal_of(m).map(|l| (i, l)))
            .collect();
        let literals = (literal_atoms.len() >= MANY_LITERALS)
            .then(|| {
                aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    // Its DFA: the default (an NFA) took half again as
                    // many instructions per decision.
                    .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                    .build(literal_atoms.iter().map(|(_, l)| l))
                    .ok()
                    .map(|ac| {
                        (
                            ac,
                            literal_atoms.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                        )
                    })
            })
            .flatten();
        let in_passes: Vec<usize> = (0..class_atoms.len())
            .filter(|i| literals.as_ref().is_none_or(|(_, lit)| !lit.contains(i)))
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

    /// Appends the hits in `raw` (a literal's content) to `out`, unordered.
    pub fn find(&self, raw: &[u8], out: &mut Vec<Hit>) {
        if let Some((ac, atoms)) = &self.literals {
            for m in ac.find_overlapping_iter(raw) {
                for &(ws, group) in &self.atoms[atoms[m.pattern().as_usize()]].wanted {
                    Self::push(raw, m.start(), ws, group, out);
                }
            }
        }
        for pass in &self.passes {
            self.isa.fingerprints(&pass.tables, raw, |at, bits| {
                self.check(pass, raw, at, bits, out)
            });
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
}
