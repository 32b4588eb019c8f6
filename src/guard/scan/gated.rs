//! The gated scan of a request unit: normalised text is searched only in
//! the regions around prefilter hits and suspect characters, and a region
//! of plain text that offers no branch of a pattern its needs is skipped.

use std::ops::Range;

use super::region::{region_around, Region};
use super::{whole_unit, Joined, Which};
use crate::guard::prefilter::{self, Searcher};
use crate::guard::{GuardSet, Scan};
use crate::provider::TextSegment;

/// Raw literal text whose normalised form holds no byte, digit or word its
/// raw bytes lack: ASCII (NFKC may expand other characters), no DEL and no
/// `\b` escape (dropped as controls, they join their neighbours), no `\u`
/// escape (it may stand for anything). Its other escapes hold their own
/// character (`\"`) or white space (`\n`).
fn plain_text(b: &[u8]) -> bool {
    // Regions are short: a loop beats setting up searches.
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            0x7f..=0xff => return false,
            b'\\' if matches!(b.get(i + 1), Some(b'u' | b'b')) => return false,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    true
}

/// Whether `text` holds `word` (lower-case) up to ASCII case.
fn contains_word(text: &[u8], word: &[u8]) -> bool {
    let Some((&first, rest)) = word.split_first() else {
        return true;
    };
    let last = text.len().saturating_sub(rest.len());
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), &text[..last])
        .any(|i| text[i + 1..i + word.len()].eq_ignore_ascii_case(rest))
}

/// A gate hit (segment, raw offset, pattern) as one integer that sorts in
/// that order.
fn pack_hit(seg: usize, pos: u32, pattern: u32) -> u128 {
    (seg as u128) << 64 | u128::from(pos) << 32 | u128::from(pattern)
}

fn unpack_hit(h: u128) -> (usize, usize, usize) {
    (
        (h >> 64) as usize,
        (h >> 32) as u32 as usize,
        h as u32 as usize,
    )
}

impl GuardSet {
    /// The gated scan of a unit: the same findings as [`Self::scan_unit`],
    /// but normalised text is searched only in regions around gate hits and
    /// suspect characters (see [`prefilter`]); patterns without a gate still
    /// read the whole unit.
    pub(super) fn scan_unit_gated(
        &self,
        segments: &[TextSegment<'_>],
        unit: Range<usize>,
        applies: &[bool],
        scan: &mut Scan,
    ) {
        let mut found = Vec::new();
        if let Some((set, index)) = &self.fast.ungated {
            if index
                .iter()
                .any(|&p| applies[self.normalized.patterns[p].rule])
            {
                let whole = whole_unit(segments, &unit);
                self.match_stretches(
                    segments,
                    &whole,
                    Which::Ungated(set, index),
                    applies,
                    &mut found,
                );
            }
        }
        if let Some(searcher) = &self.fast.searcher {
            let mut plain_segments = Vec::new();
            let hits = self.gate_hits(searcher, segments, &unit, &mut plain_segments);
            // Gates of the ASCII part of a pattern's classes hold only in
            // plain text: elsewhere those patterns read the whole unit.
            let unit_plain = plain_segments.iter().all(|p| *p);
            if let (false, Some((set, index))) = (unit_plain, &self.fast.plain_fallback) {
                if index
                    .iter()
                    .any(|&p| applies[self.normalized.patterns[p].rule])
                {
                    let whole = whole_unit(segments, &unit);
                    self.match_stretches(
                        segments,
                        &whole,
                        Which::Ungated(set, index),
                        applies,
                        &mut found,
                    );
                }
            }
            // Last region searched per pattern.
            let mut done: Vec<Option<Region>> = vec![None; self.normalized.patterns.len()];
            let mut stretches = Vec::new();
            for (seg, pos, p) in hits.iter().map(|&h| unpack_hit(h)) {
                let Some(boundaries) = &self.fast.gated[p] else {
                    continue;
                };
                if !applies[self.normalized.patterns[p].rule]
                    || (!unit_plain && self.fast.plain_only[p])
                {
                    continue;
                }
                if done[p].is_some_and(|r| r.contains(seg, pos)) {
                    continue;
                }
                let region = region_around(segments, &unit, seg, pos, boundaries);
                done[p] = Some(region);
                region.stretches_into(segments, &mut stretches);
                // Plain text (see [`plain_text`]) only shrinks when
                // normalised and gains no digits, no punctuation and no
                // words: a region of it that offers no branch of the
                // pattern its bytes, digits, punctuation and words holds no
                // match.
                let bytes =
                    |(s, r): &(usize, Range<usize>)| &segments[*s].literal.as_bytes()[r.clone()];
                let plain = || {
                    stretches
                        .iter()
                        .all(|x| plain_segments[x.0 - unit.start] || plain_text(bytes(x)))
                };
                let len =
                    stretches.iter().map(|(_, r)| r.len()).sum::<usize>() + stretches.len() - 1;
                let count_digits = || {
                    stretches
                        .iter()
                        .map(|x| bytes(x).iter().filter(|b| b.is_ascii_digit()).count())
                        .sum::<usize>()
                };
                // Punctuation looked for, and found (phone numbers ask for
                // the same few bytes through many branches).
                let (mut sought, mut found_punct) = (0u128, 0u128);
                let mut has = |b: u8| {
                    let bit = 1u128 << b;
                    if sought & bit == 0 {
                        sought |= bit;
                        if stretches
                            .iter()
                            .any(|x| memchr::memchr(b, bytes(x)).is_some())
                        {
                            found_punct |= bit;
                        }
                    }
                    found_punct & bit != 0
                };
                let has_word = |w: &[u8]| stretches.iter().any(|x| contains_word(bytes(x), w));
                let mut digits = None;
                let mut holds = || {
                    self.fast.needs[p].iter().any(|n| {
                        len >= n.len
                            && (n.digits == 0
                                || *digits.get_or_insert_with(count_digits) >= n.digits)
                            && n.punct.bytes().all(&mut has)
                            && n.words.iter().all(|w| has_word(w))
                    })
                };
                if !holds() && plain() {
                    continue;
                }
                self.match_stretches(segments, &stretches, Which::One(p), applies, &mut found);
            }
        }
        self.record_matches(scan, &mut found);
        self.scan_unit_raw(segments, unit, applies, scan);
    }

    /// Every gate hit in a unit as (segment, raw offset, pattern), in order
    /// (packed by [`pack_hit`]: integers sort faster than tuples).
    ///
    /// The raw bytes are searched as they are, for atoms and for the number
    /// detectors' digit clusters (see [`prefilter::digits`]). A suspect character (an
    /// escape, a character NFKC changes) may make an atom the raw bytes do
    /// not show, so the stretch around it, out to bytes no atom holds, is
    /// normalised and searched as well; its hits map back onto the raw
    /// characters behind them. Only patterns whose atom the normalised
    /// text really holds get a region (fullwidth prose is not searched
    /// with every pattern whose atom shares a letter with it).
    fn gate_hits(
        &self,
        searcher: &Searcher,
        segments: &[TextSegment<'_>],
        unit: &Range<usize>,
        plain: &mut Vec<bool>,
    ) -> Vec<u128> {
        let mut out = Vec::new();
        let mut hits = Vec::new();
        let mut suspects = Vec::new();
        let mut around: Option<Region> = None;
        let mut stretches = Vec::new();
        for seg in unit.clone() {
            let literal = segments[seg].literal;
            hits.clear();
            suspects.clear();
            searcher.find(literal.as_bytes(), &mut hits);
            self.fast
                .digits
                .find(searcher.isa, literal.as_bytes(), &mut hits);
            out.extend(hits.iter().map(|h| pack_hit(seg, h.pos, h.group)));
            let ascii = prefilter::suspects(searcher.isa, literal, &mut suspects);
            // No suspect: no DEL, no `\b` or `\u` escape (see [`plain_text`]).
            plain.push(ascii && suspects.is_empty());
            for &q in &suspects {
                let q = q as usize;
                if around.is_some_and(|r| r.contains(seg, q)) {
                    continue;
                }
                let (c, _) = crate::provider::literal::char_at(literal, q);
                // A `\u` escape's hex digits are digits in the raw bytes
                // and not in normalised text (`\u00e94111 1111 ...`), so
                // for the digit gate every such escape counts, whatever it
                // stands for.
                let digit_escape = !self.fast.digits.is_empty() && literal.as_bytes()[q] == b'\\';
                if prefilter::produces(c).0 & self.fast.gate_bytes.0 == 0 && !digit_escape {
                    continue;
                }
                let region = region_around(segments, unit, seg, q, &self.fast.gate_boundaries);
                around = Some(region);
                region.stretches_into(segments, &mut stretches);
                let text = Joined::new(segments, &stretches);
                hits.clear();
                searcher.find(text.text().as_bytes(), &mut hits);
                self.fast
                    .digits
                    .find(searcher.isa, text.text().as_bytes(), &mut hits);
                for h in &hits {
                    let (s, pos) = text.origin(segments, h.pos as usize);
                    out.push(pack_hit(s, pos as u32, h.group));
                }
            }
        }
        if !self.fast.digits.is_empty() {
            self.seam_digit_hits(searcher, segments, unit, &mut out);
        }
        // A few sorted runs per literal (one per pass, one per suspect
        // stretch): a merging sort finds them.
        out.sort();
        out
    }

    /// Digit-gate hits of clusters that cross the joins between a unit's
    /// segments. The unit's text joins its literals with a space, which a
    /// cluster may hold (`(415) 555-2671` in one text block and
    /// `4111 1111 1111` in the next make a sixteen-digit card there), so
    /// each join is read with the cluster bytes on both sides of it: the
    /// tail of one literal, every following literal made of cluster bytes
    /// only, and the head of the next. (Gate atoms hold no white space and
    /// never cross a join.)
    fn seam_digit_hits(
        &self,
        searcher: &Searcher,
        segments: &[TextSegment<'_>],
        unit: &Range<usize>,
        out: &mut Vec<u128>,
    ) {
        let mut seam = String::new();
        // (segment, raw offset in it, offset in `seam`) of each piece.
        let mut pieces: Vec<(usize, usize, usize)> = Vec::new();
        let mut hits = Vec::new();
        let mut k = unit.start;
        while k + 1 < unit.end {
            let lit = segments[k].literal;
            let tail = cluster_suffix(lit.as_bytes());
            if tail == lit.len() {
                k += 1;
                continue;
            }
            seam.clear();
            pieces.clear();
            pieces.push((k, tail, 0));
            seam.push_str(&lit[tail..]);
            let mut j = k + 1;
            while j < unit.end {
                let next = segments[j].literal;
                let head = cluster_prefix(next.as_bytes());
                seam.push(' ');
                pieces.push((j, 0, seam.len()));
                seam.push_str(&next[..head]);
                if head < next.len() || j + 1 == unit.end {
                    break;
                }
                j += 1;
            }
            hits.clear();
            self.fast
                .digits
                .find(searcher.isa, seam.as_bytes(), &mut hits);
            for h in &hits {
                let at = h.pos as usize;
                let p = pieces.partition_point(|&(_, _, o)| o <= at) - 1;
                let (s, base, o) = pieces[p];
                out.push(pack_hit(s, (base + at - o) as u32, h.group));
            }
            k = j;
        }
    }
}

/// A byte a digit cluster may hold, raw (see [`prefilter::digits`]):
/// digits, separators, `+`, white space and non-ASCII bytes.
fn cluster_byte(b: u8) -> bool {
    b.is_ascii_digit() || b" .-()+\t\r\n".contains(&b) || b >= 0x80
}

/// Where the run of cluster bytes (and `\n`, `\t`, `\r` escapes) that
/// ends `raw` starts.
fn cluster_suffix(raw: &[u8]) -> usize {
    let mut i = raw.len();
    while i > 0 {
        if cluster_byte(raw[i - 1]) {
            i -= 1;
        } else if i >= 2 && raw[i - 2] == b'\\' && matches!(raw[i - 1], b'n' | b't' | b'r') {
            i -= 2;
        } else {
            break;
        }
    }
    // Never start within a multi-byte character.
    while i < raw.len() && (raw[i] & 0xc0) == 0x80 {
        i += 1;
    }
    i
}

/// Where the run of cluster bytes (and escapes) that starts `raw` ends.
fn cluster_prefix(raw: &[u8]) -> usize {
    let mut i = 0;
    while i < raw.len() {
        if cluster_byte(raw[i]) {
            i += 1;
        } else if raw[i] == b'\\' && matches!(raw.get(i + 1), Some(b'n' | b't' | b'r')) {
            i += 2;
        } else {
            break;
        }
    }
    // Never end within a multi-byte character.
    while i > 0 && i < raw.len() && (raw[i] & 0xc0) == 0x80 {
        i -= 1;
    }
    i
}
