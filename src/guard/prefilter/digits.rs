//! The digit gate: the gate of the number detectors (credit cards, SSNs,
//! Canadian SINs, phone numbers).
//!
//! Their atoms are runs of digits (`[0-9]{4}`), which on digit-dense text
//! (logs, CI output, lockfiles, `git log`) occur at nearly every position:
//! each such hit cost a region, its normalisation and four regex searches,
//! and the four detectors alone held service logs to ~27 MB/s. Instead, one
//! pass over the bytes reads *digit clusters*: runs of ASCII digits joined
//! by short separators, and only where a cluster's digit groups can start a
//! candidate the detector accepts (its group lengths: 4-4-4-4, 3-2-4, 13 to
//! 19 bare digits, ...) is there a hit, at the start of that group.
//!
//! Why no accepted candidate is missed: every candidate a number detector
//! accepts holds digit groups (maximal runs of ASCII digits) joined by at
//! most two separators from ` .-()` in normalised text (`(415) 555-2671`:
//! `) `), and those groups have one of the detector's shapes (see
//! [`NumberShape::starts`]). In plain text (see the
//! [prefilter](super) guarantee) the same groups are in the raw bytes, the
//! separators too, and the space may be any run of white space (raw
//! spaces, `\n`, `\t`, `\r` escapes, or non-ASCII white space, all read as
//! white space here: any byte at or above 0x80 is, which only joins more).
//! So the cluster that holds the candidate's groups offers the shape, and
//! the hit at the start of its first group lies inside the candidate,
//! hence inside the region the scanner verifies. Text a suspect character
//! changes is read again after normalisation (the caller runs the gate on
//! each suspect stretch, whose bytes the gate's bytes, [`gate_bytes`],
//! keep together); for this gate every `\u` escape is a suspect, whatever
//! it stands for, since its hex digits are digits in the raw bytes only
//! (`\u00e94111 1111 1111 1111` is `é4111 1111 1111 1111`).

//!
//! # Figures
//!
//! `cargo bench --bench content_kinds` (about 4.2 MB bodies, MB/s of the
//! whole decision, medians, loaded 2-core machine), 13 builtins, before
//! this gate → after: service logs 27 → 369, CI output 37 → 429,
//! lockfiles 113 → 730, `git log` 45 → 412, source 540 → 783. The four
//! number detectors alone on service logs (`numbers` row): 528 MB/s.
//! Callgrind, service logs, 1 MB: the scan was ~280 M instructions, the
//! whole decision is now 22.6 M (8.9 M without guards), of which this gate
//! ~3–9 M depending on the kind (hex-dense `git log` least since only
//! stretches of eight cluster bytes or more are followed, CI output most:
//! dates after `)\n` make nine-digit stretches that are read byte by byte).
//! See the README's performance section for every row.

use super::searcher::Hit;
use crate::guard::ascii::Ascii;
use crate::guard::builtins::Builtin;
use crate::guard::vector::{number_class, Isa};

/// The digit-group shapes one number detector accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberShape {
    CreditCard,
    Ssn,
    CaSin,
    PhoneNumber,
    /// A pattern whose every match holds this many ASCII digits in a row
    /// (at least [`MIN_RUN`]), and no gate without them: Asana's
    /// `[12]/[0-9]{13,16}:…` (its `/` may be escaped in a JSON literal, so
    /// it cannot be part of an atom). As a fingerprint of four digits it
    /// stopped at a tenth of a service log's bytes (224,259 candidates in
    /// 2.1 MB); as a cluster group it costs what the digit gate costs.
    Run(u32),
    /// A pattern whose every match holds digit groups of these lengths
    /// (zero-terminated, at least two, [`MIN_RUN`] digits in all), each
    /// joined to the next by one separator of [`SEPARATORS`]: an
    /// organisation's `\b\d{3}-\d{7}\b` is `[3, 7]`. The first and last
    /// groups may lie within longer ones (`(\d{3})-(\d{7})` matches inside
    /// `1234-12345678`), the others are exact. As fingerprints of four
    /// classes (`DDD-`), two such patterns stopped at 93,822 positions of
    /// 4 MB of CI output (every date) and held none.
    Groups([u8; WINDOW]),
}

/// The shortest [`NumberShape::Run`]: every shape holds nine digits at
/// least, which is what lets the gate skip shorter stretches.
pub const MIN_RUN: u32 = 9;

/// Separators (other than white space) a candidate may hold between two
/// digit groups, at most [`MAX_SEPARATORS`] of them in a row.
const SEPARATORS: &[u8] = b".-()";
const MAX_SEPARATORS: usize = 2;

/// Every byte a cluster may hold (digits, separators, the space): the
/// bytes a suspect stretch must not be cut at.
pub fn gate_bytes() -> Ascii {
    b"0123456789 .-()+"
        .iter()
        .fold(Ascii::default(), |a, &b| a.with(b))
}

impl NumberShape {
    /// The shape of a builtin, when it is a number detector.
    pub fn of(b: Builtin) -> Option<NumberShape> {
        match b {
            Builtin::CreditCard => Some(NumberShape::CreditCard),
            Builtin::Ssn => Some(NumberShape::Ssn),
            Builtin::CaSin => Some(NumberShape::CaSin),
            Builtin::PhoneNumber => Some(NumberShape::PhoneNumber),
            _ => None,
        }
    }

    /// Whether digit groups of these lengths (a cluster's, from one of its
    /// groups on; `plus`: a `+` right before the first) can start a
    /// candidate the detector accepts. Over-approximates the validators:
    /// a candidate's groups always pass.
    pub fn starts(self, lens: &[u32], plus: bool) -> bool {
        let at = |k: usize| lens.get(k).copied().unwrap_or(0);
        match self {
            // 13-19 bare digits; 4-4-4-(1..4), 4-6-4, 4-6-5 and 4-5-6
            // grouped.
            NumberShape::CreditCard => {
                (13..=19).contains(&at(0))
                    || (at(0) == 4
                        && ((at(1) == 4 && at(2) == 4 && (1..=4).contains(&at(3)))
                            || (at(1) == 6 && (at(2) == 4 || at(2) == 5))
                            || (at(1) == 5 && at(2) == 6)))
            }
            NumberShape::Ssn => at(0) == 3 && at(1) == 2 && at(2) == 4,
            NumberShape::CaSin => at(0) == 3 && at(1) == 3 && at(2) == 3,
            // After a `+`: 8 to 15 digits in all (E.164); otherwise a
            // North American number: 3-3-4 or 3-7 (after an optional 1,
            // whose own group is not needed).
            NumberShape::PhoneNumber => {
                (plus && lens.iter().take(8).sum::<u32>() >= 8)
                    || (at(0) == 3 && (at(1) == 7 || (at(1) == 3 && at(2) == 4)))
            }
            NumberShape::Run(n) => at(0) >= n,
            NumberShape::Groups(g) => {
                let n = g.iter().take_while(|&&len| len != 0).count();
                lens.len() >= n
                    && (0..n).all(|k| {
                        let want = u32::from(g[k]);
                        if k == 0 || k == n - 1 {
                            lens[k] >= want
                        } else {
                            lens[k] == want
                        }
                    })
            }
        }
    }

    /// The shape of a gate atom's classes when they are digit groups
    /// joined by single separators, with [`MIN_RUN`] digits at least:
    /// [`NumberShape::Run`] for one group, [`NumberShape::Groups`] for up
    /// to [`WINDOW`].
    pub fn of_classes(classes: &[Ascii]) -> Option<NumberShape> {
        const DIGITS: u128 = 0x3ff << b'0';
        let mut groups: Vec<u32> = vec![0];
        for c in classes {
            if c.0 != 0 && c.0 & !DIGITS == 0 {
                *groups.last_mut()? += 1;
            } else if c.len() == 1
                && c.bytes().all(|b| SEPARATORS.contains(&b))
                && groups.last() != Some(&0)
            {
                groups.push(0);
            } else {
                return None;
            }
        }
        let digits: u32 = groups.iter().sum();
        if digits < MIN_RUN || groups.contains(&0) || groups.len() > WINDOW {
            return None;
        }
        if let [n] = groups[..] {
            return Some(NumberShape::Run(n));
        }
        let mut g = [0u8; WINDOW];
        for (slot, &len) in g.iter_mut().zip(&groups) {
            *slot = u8::try_from(len).ok()?;
        }
        Some(NumberShape::Groups(g))
    }

    /// Fewest digits the first group of a candidate holds (but for a `+`
    /// number's first group).
    fn first_floor(self) -> u32 {
        match self {
            NumberShape::Run(n) => n,
            NumberShape::Groups(g) => u32::from(g[0]),
            _ => 3,
        }
    }

    /// Digits of the shortest cluster of one group that can hold the shape
    /// (13 bare card digits; a run's length).
    fn bare_floor(self) -> u32 {
        match self {
            NumberShape::Run(n) => n,
            // Two groups at least: never one alone.
            NumberShape::Groups(_) => u32::MAX,
            _ => 13,
        }
    }
}

/// The number detectors of a request's guards and their pattern indices.
#[derive(Debug, Default)]
pub struct DigitGate {
    /// (pattern index, its shape).
    pub patterns: Vec<(u32, NumberShape)>,
    /// Fewest digits a cluster of one group needs for any shape.
    bare_floor: u32,
    /// Fewest digits the first group of any shape holds.
    first_floor: u32,
}

/// Longest run of groups a shape looks at (4-4-4-4, 1-3-3-4).
const WINDOW: usize = 8;

impl DigitGate {
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Gates pattern `index` by `shape`.
    pub fn push(&mut self, index: u32, shape: NumberShape) {
        self.patterns.push((index, shape));
        self.bare_floor = self
            .patterns
            .iter()
            .map(|(_, s)| s.bare_floor())
            .min()
            .unwrap_or(13);
        self.first_floor = self
            .patterns
            .iter()
            .map(|(_, s)| s.first_floor())
            .min()
            .unwrap_or(3);
    }

    /// Appends the hits in `raw` (a literal's content, or normalised text)
    /// to `out`, in order of position: for each cluster group that starts
    /// a shape of some pattern, a hit at the group's first digit.
    ///
    /// Two levels: bit masks of 64 bytes at a time (digits, and bytes a
    /// cluster may hold, [`number_class`]) find the stretches of cluster
    /// bytes with enough digits for any shape; only those are read byte by
    /// byte into clusters. Digit-dense text has a stretch every few bytes
    /// and few with nine digits: the byte loop, with its branches, runs on
    /// little of it.
    pub fn find(&self, isa: Isa, raw: &[u8], out: &mut Vec<Hit>) {
        if self.patterns.is_empty() {
            return;
        }
        let mut scratch = Scratch::default();
        // The stretch open at the end of the last block: (start, digits).
        let mut open: Option<(usize, u32)> = None;
        // Only stretches that hold digits are followed: from each digit,
        // out to the bytes around it that are no cluster bytes.
        let mut block = |at: usize, digits: u64, class: u64, width: u32| {
            let run = |s: u32| {
                let len = (!(class >> s)).trailing_zeros().min(width - s);
                let mask = if len == 64 {
                    u64::MAX
                } else {
                    ((1u64 << len) - 1) << s
                };
                (len, mask)
            };
            // Interior stretches shorter than eight bytes hold fewer than
            // eight digits: only the long ones, and the one the block ends
            // in (it may run on), are followed. Hex text (hashes, UUIDs) is
            // full of short runs of digits between letters.
            let long = {
                let a = class & (class >> 1);
                let b = a & (a >> 2);
                b & (b >> 4)
            };
            let mut rest = long | (class & (1u64 << (width - 1)));
            if open.is_none() && digits.count_ones() < 8 {
                // No stretch that ends in this block holds eight digits;
                // one that runs on into the next block may.
                if class >> (width - 1) & 1 == 1 {
                    let below = !class & ((1u64 << (width - 1)) - 1);
                    let s = 64 - below.leading_zeros();
                    let (_, mask) = run(s);
                    open = Some((at + s as usize, (digits & mask).count_ones()));
                }
                return;
            }
            if let Some((start, n)) = open.take() {
                if class & 1 == 0 {
                    self.stretch(isa, raw, start, at, n, &mut scratch, out);
                } else {
                    let (len, mask) = run(0);
                    let n = n + (digits & mask).count_ones();
                    rest &= !mask;
                    if len == width {
                        open = Some((start, n));
                        return;
                    }
                    self.stretch(isa, raw, start, at + len as usize, n, &mut scratch, out);
                }
            }
            while rest != 0 {
                let p = rest.trailing_zeros();
                let below = !class & ((1u64 << p) - 1);
                let s = 64 - below.leading_zeros();
                let (len, mask) = run(s);
                let n = (digits & mask).count_ones();
                rest &= !mask;
                if s + len == width {
                    open = Some((at + s as usize, n));
                } else {
                    let end = at + (s + len) as usize;
                    self.stretch(isa, raw, at + s as usize, end, n, &mut scratch, out);
                }
            }
        };
        let blocks = isa.number_blocks(raw, |at, d, c| block(at, d, c, 64));
        for (k, chunk) in raw[blocks..].chunks(64).enumerate() {
            let (mut d, mut c) = (0u64, 0u64);
            for (i, &b) in chunk.iter().enumerate() {
                d |= u64::from(b.is_ascii_digit()) << i;
                c |= u64::from(number_class(b)) << i;
            }
            block(blocks + 64 * k, d, c, chunk.len() as u32);
        }
        if let Some((start, n)) = open {
            self.stretch(isa, raw, start, raw.len(), n, &mut scratch, out);
        }
    }

    /// [`Self::read_stretch`] when `n` may be enough (most stretches of
    /// digit-dense text hold a few digits: they cost a comparison).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn stretch(
        &self,
        isa: Isa,
        raw: &[u8],
        start: usize,
        end: usize,
        n: u32,
        scratch: &mut Scratch,
        out: &mut Vec<Hit>,
    ) {
        // Eight digits are enough only after a `+`, which is no cluster
        // byte: right before the stretch, which then starts with a digit.
        let plus = || start > 0 && raw[start - 1] == b'+' && raw[start].is_ascii_digit();
        if n >= 9 || (n == 8 && plus()) {
            self.read_stretch(isa, raw, start, end, scratch, out);
        }
    }

    /// The clusters of a stretch `start..end` of cluster bytes (a cluster
    /// never leaves its stretch: every byte it holds is a cluster byte; the
    /// stretch may begin later than its cluster bytes do, but not after
    /// its first digit).
    #[inline(never)]
    fn read_stretch(
        &self,
        isa: Isa,
        raw: &[u8],
        start: usize,
        end: usize,
        scratch: &mut Scratch,
        out: &mut Vec<Hit>,
    ) {
        let text = &raw[..end];
        let mut at = start;
        while let Some(first) = isa.next_digit(text, at) {
            let plus = first > 0 && raw[first - 1] == b'+';
            scratch.groups.clear();
            let (cluster_end, digits) = cluster(text, first, &mut scratch.groups);
            at = cluster_end;
            // Every shape holds eight digits at least (a `+` number), nine
            // without a `+`, thirteen when bare (a run its length).
            let groups = &scratch.groups;
            if digits < 8
                || (!plus && (digits < 9 || (groups.len() == 1 && digits < self.bare_floor)))
            {
                continue;
            }
            scratch.lens.clear();
            scratch.lens.extend(groups.iter().map(|g| g.1));
            for k in 0..groups.len() {
                // Every shape but a `+` number starts with a few digits
                // (three for the number detectors).
                if scratch.lens[k] < self.first_floor && !(plus && k == 0) {
                    continue;
                }
                let window = &scratch.lens[k..(k + WINDOW).min(groups.len())];
                for &(pattern, shape) in &self.patterns {
                    if shape.starts(window, plus && k == 0) {
                        out.push(Hit {
                            pos: groups[k].0,
                            group: pattern,
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
impl DigitGate {
    /// [`Self::find`] without the bit masks: every cluster of `raw` read
    /// byte by byte (the reference the tests hold `find` to).
    pub fn find_bytewise(&self, raw: &[u8], out: &mut Vec<Hit>) {
        self.read_stretch(Isa::Scalar, raw, 0, raw.len(), &mut Scratch::default(), out);
    }
}

/// Buffers reused across the clusters of one text.
#[derive(Default)]
struct Scratch {
    groups: Vec<(u32, u32)>,
    lens: Vec<u32>,
}

/// Reads the cluster whose first digit is at `first`: its groups (start,
/// length) into `groups`; returns where the cluster ends and how many
/// digits it holds.
fn cluster(raw: &[u8], first: usize, groups: &mut Vec<(u32, u32)>) -> (usize, u32) {
    let mut at = first;
    let mut digits = 0;
    loop {
        let start = at;
        while at < raw.len() && raw[at].is_ascii_digit() {
            at += 1;
        }
        digits += (at - start) as u32;
        groups.push((start as u32, (at - start) as u32));
        // The gap: white space of any kind, and at most two separators.
        let mut next = at;
        let mut separators = 0;
        loop {
            match raw.get(next) {
                Some(b' ' | b'\t' | b'\n' | b'\r' | 0x80..=0xff) => next += 1,
                Some(b'\\') if matches!(raw.get(next + 1), Some(b'n' | b't' | b'r')) => next += 2,
                Some(b) if SEPARATORS.contains(b) && separators < MAX_SEPARATORS => {
                    separators += 1;
                    next += 1;
                }
                _ => break,
            }
        }
        if next > at && raw.get(next).is_some_and(u8::is_ascii_digit) {
            at = next;
        } else {
            return (at, digits);
        }
    }
}
