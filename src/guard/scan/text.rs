//! Response text: one text scanned with every rule, and the scanner the
//! stream engine holds back and masks with.

use std::ops::Range;
use std::sync::Arc;

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

    fn scan(&self, text: &str) -> Vec<crate::provider::stream::ScanMatch> {
        self.stream_matches(text, None)
    }
}

/// The response guards of one request: only the rules whose `when:` held
/// for it (decided once per request, see [`GuardSet::active`]).
pub struct ActiveGuards {
    pub guards: Arc<GuardSet>,
    /// Per rule of `guards`: whether it runs for this request.
    pub active: Arc<[bool]>,
}

impl crate::provider::stream::TextScanner for ActiveGuards {
    fn window(&self) -> usize {
        self.guards.window
    }

    fn scan(&self, text: &str) -> Vec<crate::provider::stream::ScanMatch> {
        self.guards.stream_matches(text, Some(&self.active))
    }
}

impl GuardSet {
    /// Matches in text order, made non-overlapping, of the rules that run
    /// (`active`: per rule; `None`: all). Overlapping matches merge into
    /// one, and a merge holding a reject rejects; a mask's placeholder is
    /// tagged with the merged text it replaces. Shadow (`Audit`) rules'
    /// matches are reported where no acting rule matched, text unchanged.
    fn stream_matches(
        &self,
        text: &str,
        active: Option<&[bool]>,
    ) -> Vec<crate::provider::stream::ScanMatch> {
        use crate::provider::stream::{MatchAction, ScanMatch};
        // (range, the rule that acts: the first reject, else the first).
        let mut merged: Vec<(Range<usize>, TextMatch)> = Vec::new();
        let mut shadow: Vec<(Range<usize>, TextMatch)> = Vec::new();
        let runs = |rule: usize| active.is_none_or(|a| a.get(rule).copied().unwrap_or(true));
        for m in self.scan_text(text).into_iter().filter(|m| runs(m.rule)) {
            let list = if self.rules[m.rule].action == Action::Audit {
                &mut shadow
            } else {
                &mut merged
            };
            match list.last_mut() {
                Some((range, first)) if m.range.start < range.end => {
                    range.end = range.end.max(m.range.end);
                    if matches!(self.rules[m.rule].action, Action::Reject)
                        && !matches!(self.rules[first.rule].action, Action::Reject)
                    {
                        *first = m;
                    }
                }
                _ => list.push((m.range.clone(), m)),
            }
        }
        let mut out: Vec<ScanMatch> = merged
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
            .collect();
        if shadow.is_empty() {
            return out;
        }
        // A shadow match where an acting rule matched too is not reported:
        // what happens there is what the acting rule does.
        shadow.retain(|(range, _)| {
            !out.iter()
                .any(|m| m.range.start < range.end && range.start < m.range.end)
        });
        out.extend(shadow.into_iter().map(|(range, m)| ScanMatch {
            action: MatchAction::Audit {
                rule: self.rules[m.rule].name.clone(),
            },
            range,
        }));
        out.sort_by_key(|m| m.range.start);
        out
    }

    /// Which rules run for a request, by their `when:` (`None`: all do).
    pub fn active(&self, vars: &crate::guard::condition::Vars) -> Option<Arc<[bool]>> {
        self.has_conditions().then(|| {
            self.rules
                .iter()
                .map(|r| r.when.as_ref().is_none_or(|c| c.holds(vars)))
                .collect()
        })
    }
}
