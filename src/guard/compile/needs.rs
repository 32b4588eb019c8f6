//! Needs: what every match through one branch of a pattern holds (bytes,
//! digits, punctuation, words), so a region of plain text that offers no
//! branch its need is skipped without a regex search.

use regex_syntax::hir::{Hir, HirKind};

use super::atoms::{ascii_class, ascii_part};
use crate::guard::ascii::Ascii;

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
    pub(super) fn common(needs: &[Need]) -> Need {
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
pub(super) const MAX_BRANCHES: usize = 16;

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
