//! Scan: a request's segments, unit by unit, searched with the compiled
//! patterns; on requests the gated path (see [`gated`]) searches only the
//! regions around prefilter hits, and [`text`] scans a response's text.

mod gated;
pub mod joined;
pub mod region;
mod text;

use std::ops::Range;

use regex::RegexSet;

use super::{Action, Finding, GuardSet, Scan};
use crate::provider::{Location, PartKind, TextSegment};
use joined::Joined;

pub use text::{ActiveGuards, TextMatch};

/// Every literal of a unit, whole.
fn whole_unit(segments: &[TextSegment<'_>], unit: &Range<usize>) -> Vec<(usize, Range<usize>)> {
    unit.clone()
        .map(|i| (i, 0..segments[i].literal.len()))
        .collect()
}

/// Which normalised patterns a stretch is searched with.
enum Which<'a> {
    One(usize),
    All,
    Ungated(&'a RegexSet, &'a [usize]),
}

/// How many segments from the start of `segments` form one matching unit:
/// text of one message of one kind (System, UserText, AssistantText), or
/// the text blocks of one tool result / document block.
fn unit_len(segments: &[TextSegment<'_>]) -> usize {
    let first = &segments[0];
    let key = |s: &TextSegment<'_>| -> Option<(PartKind, Option<u32>, Option<u32>)> {
        match (s.kind, s.location) {
            (
                PartKind::System | PartKind::UserText | PartKind::AssistantText,
                Location::System { .. },
            ) => Some((s.kind, None, None)),
            (
                PartKind::System | PartKind::UserText | PartKind::AssistantText,
                Location::Message { index, .. },
            ) => Some((s.kind, Some(index), None)),
            (PartKind::ToolResult | PartKind::Document, Location::Message { index, block, .. }) => {
                Some((s.kind, Some(index), block))
            }
            _ => None,
        }
    };
    let Some(k) = key(first) else { return 1 };
    1 + segments[1..]
        .iter()
        .take_while(|s| key(s) == Some(k))
        .count()
}

impl GuardSet {
    /// Scans a request's segments. Consecutive text of one message (its
    /// text blocks, or one tool result's blocks) is joined with a space and
    /// matched as one, so a phrase split across blocks still matches.
    pub fn scan(&self, segments: &[TextSegment<'_>], latest_user: Option<u32>) -> Scan {
        self.scan_with(segments, latest_user, true)
    }

    /// [`Self::scan`] with only the rules `active` marks (by rule index):
    /// those whose `when:` holds for this request.
    pub fn scan_active(
        &self,
        segments: &[TextSegment<'_>],
        latest_user: Option<u32>,
        active: &[bool],
    ) -> Scan {
        self.scan_rules(segments, latest_user, true, Some(active))
    }

    /// [`Self::scan`] with the gated fast path on or off (the reference).
    pub(super) fn scan_with(
        &self,
        segments: &[TextSegment<'_>],
        latest_user: Option<u32>,
        gated: bool,
    ) -> Scan {
        self.scan_rules(segments, latest_user, gated, None)
    }

    fn scan_rules(
        &self,
        segments: &[TextSegment<'_>],
        latest_user: Option<u32>,
        gated: bool,
        active: Option<&[bool]>,
    ) -> Scan {
        let mut scan = Scan::default();
        if self.rules.is_empty() {
            return scan;
        }
        let mut start = 0;
        while start < segments.len() {
            let end = start + unit_len(&segments[start..]);
            let first = &segments[start];
            let applies: Vec<bool> = self
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    active.is_none_or(|a| a.get(i).copied().unwrap_or(true))
                        && r.scope.selects(first.kind, &first.location, latest_user)
                })
                .collect();
            if applies.iter().any(|a| *a) {
                if !gated || self.fast.gated.is_empty() {
                    self.scan_unit(segments, start..end, &applies, &mut scan);
                } else {
                    self.scan_unit_gated(segments, start..end, &applies, &mut scan);
                }
            }
            start = end;
        }
        scan.masks
            .sort_by_key(|f| (f.segment, f.range.start, std::cmp::Reverse(f.range.end)));
        scan
    }

    fn record(
        &self,
        scan: &mut Scan,
        rule: usize,
        segment: usize,
        range: Range<usize>,
        placeholder: &str,
    ) {
        let finding = Finding {
            rule,
            segment,
            range,
            placeholder: placeholder.to_owned(),
            restore: self.rules[rule].restore,
        };
        match self.rules[rule].action {
            Action::Reject => {
                let earlier = scan.reject.as_ref().is_some_and(|r| {
                    (r.segment, r.range.start) <= (finding.segment, finding.range.start)
                });
                if !earlier {
                    scan.reject = Some(finding);
                }
            }
            Action::Mask => scan.masks.push(finding),
            Action::Audit => scan.audits.push(finding),
        }
    }

    /// Records matches of normalised patterns, `(pattern, segment, range)`,
    /// once each, in body order.
    fn record_matches(&self, scan: &mut Scan, found: &mut Vec<(usize, usize, Range<usize>)>) {
        found.sort_by_key(|(p, seg, r)| (*seg, r.start, r.end, *p));
        found.dedup();
        for (p, seg, range) in found.drain(..) {
            let pat = &self.normalized.patterns[p];
            self.record(scan, pat.rule, seg, range, &pat.placeholder);
        }
    }

    /// Normalises the stretches of literals (joined by single spaces, as a
    /// unit's text is) and collects the matches of `which` patterns.
    fn match_stretches(
        &self,
        segments: &[TextSegment<'_>],
        stretches: &[(usize, Range<usize>)],
        which: Which<'_>,
        applies: &[bool],
        found: &mut Vec<(usize, usize, Range<usize>)>,
    ) {
        let text = Joined::new(segments, stretches);
        let (joined, pieces, offsets) = (text.text(), &text.pieces, &text.offsets);
        let mut run = |p: usize| {
            let pat = &self.normalized.patterns[p];
            if !applies[pat.rule] {
                return;
            }
            for m in pat.findings(joined) {
                // Map the match onto every piece it overlaps.
                for (k, (seg, base, norm)) in pieces.iter().enumerate() {
                    let lo = offsets[k];
                    let hi = lo + norm.text.len();
                    let (s, e) = (m.start.max(lo), m.end.min(hi));
                    if s >= e {
                        continue;
                    }
                    let lit = &segments[*seg].literal[*base..];
                    let r = norm.original_range(lit, s - lo..e - lo);
                    found.push((p, *seg, base + r.start..base + r.end));
                }
            }
        };
        match which {
            Which::One(p) => run(p),
            Which::All => self.normalized.matching(joined).into_iter().for_each(run),
            Which::Ungated(set, index) => {
                if set.is_match(joined) {
                    set.matches(joined).into_iter().for_each(|k| run(index[k]));
                }
            }
        }
    }

    /// The reference scan of a unit: normalise all of it, search all of it.
    fn scan_unit(
        &self,
        segments: &[TextSegment<'_>],
        unit: Range<usize>,
        applies: &[bool],
        scan: &mut Scan,
    ) {
        if !self.normalized.is_empty() {
            let mut found = Vec::new();
            let whole = whole_unit(segments, &unit);
            self.match_stretches(segments, &whole, Which::All, applies, &mut found);
            self.record_matches(scan, &mut found);
        }
        self.scan_unit_raw(segments, unit, applies, scan);
    }

    /// Patterns that opted out of normalisation, on each decoded segment.
    fn scan_unit_raw(
        &self,
        segments: &[TextSegment<'_>],
        unit: Range<usize>,
        applies: &[bool],
        scan: &mut Scan,
    ) {
        if self.raw.is_empty() {
            return;
        }
        let mut found: Vec<(Range<usize>, usize)> = Vec::new();
        for seg in unit {
            let literal = segments[seg].literal;
            let text = crate::provider::literal::decode(literal);
            found.clear();
            for p in self.raw.matching(&text) {
                let pat = &self.raw.patterns[p];
                if applies[pat.rule] {
                    found.extend(pat.findings(&text).map(|m| (m, p)));
                }
            }
            // In text order, so one walk of the literal maps them all.
            found.sort_by_key(|(m, p)| (m.start, m.end, *p));
            let mut cursor = crate::provider::literal::Cursor::default();
            for (m, p) in found.drain(..) {
                let pat = &self.raw.patterns[p];
                // Matches are on character boundaries of the decoded text,
                // so they map onto whole escapes.
                if let Some(range) =
                    crate::provider::literal::raw_range_from(literal, m, &mut cursor)
                {
                    self.record(scan, pat.rule, seg, range, &pat.placeholder);
                }
            }
        }
    }
}
