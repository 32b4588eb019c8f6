//! Response text: one text scanned with every rule, and the scanner the
//! stream engine holds back and masks with.

use std::ops::Range;

use crate::guard::normalize;
use crate::guard::{Action, GuardSet};

/// A match in a single text (responses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMatch {
    pub rule: usize,
    pub range: Range<usize>,
    pub placeholder: String,
}

impl GuardSet {
    /// Scans one text (a response's text) with every rule; matches are in
    /// text order, possibly overlapping.
    pub fn scan_text(&self, text: &str) -> Vec<TextMatch> {
        let mut out = Vec::new();
        if self.rules.is_empty() {
            return out;
        }
        if !self.normalized.is_empty() {
            let norm = normalize::normalize(text);
            for p in self.normalized.matching(&norm.text) {
                let pat = &self.normalized.patterns[p];
                for r in pat.findings(&norm.text) {
                    let range = norm.original_range(text, r);
                    out.push(TextMatch {
                        rule: pat.rule,
                        range,
                        placeholder: pat.placeholder.clone(),
                    });
                }
            }
        }
        for p in self.raw.matching(text) {
            let pat = &self.raw.patterns[p];
            for range in pat.findings(text) {
                out.push(TextMatch {
                    rule: pat.rule,
                    range,
                    placeholder: pat.placeholder.clone(),
                });
            }
        }
        out.sort_by_key(|m| (m.range.start, m.range.end));
        out
    }
}

/// Response guards plug into the stream engine as its scanner.
impl crate::provider::stream::TextScanner for GuardSet {
    fn window(&self) -> usize {
        self.window
    }

    /// Matches in text order, made non-overlapping: overlapping matches
    /// merge into one, and a merge holding a reject rejects. A mask's
    /// placeholder is tagged with the merged text it replaces.
    fn scan(&self, text: &str) -> Vec<crate::provider::stream::ScanMatch> {
        use crate::provider::stream::{MatchAction, ScanMatch};
        // (range, the rule that acts: the first reject, else the first).
        let mut merged: Vec<(std::ops::Range<usize>, TextMatch)> = Vec::new();
        // Shadow rules change nothing (response guards refuse them at load).
        for m in self
            .scan_text(text)
            .into_iter()
            .filter(|m| self.rules[m.rule].action != Action::Audit)
        {
            match merged.last_mut() {
                Some((range, first)) if m.range.start < range.end => {
                    range.end = range.end.max(m.range.end);
                    if matches!(self.rules[m.rule].action, Action::Reject)
                        && !matches!(self.rules[first.rule].action, Action::Reject)
                    {
                        *first = m;
                    }
                }
                _ => merged.push((m.range.clone(), m)),
            }
        }
        merged
            .into_iter()
            .map(|(range, m)| {
                let rule = &self.rules[m.rule];
                let action = match rule.action {
                    Action::Reject => MatchAction::Reject {
                        rule: rule.name.clone(),
                        message: rule.message.clone(),
                    },
                    Action::Mask | Action::Audit => MatchAction::Mask {
                        placeholder: self.key.placeholder(&m.placeholder, &text[range.clone()]),
                    },
                };
                ScanMatch { action, range }
            })
            .collect()
    }
}
