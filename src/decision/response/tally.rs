//! What the response guards and tool judge did to one response, counted
//! chunk by chunk and handed over once as a [`ResponseRecord`].

use crate::provider::stream::{EventInfo, Fired as StreamFired, Rejection};
use crate::provider::tool_call::ToolDecision;
use crate::provider::Usage;

use super::super::outcome::{Verdict, MAX_FIRED};

/// The record of a response decision (never response text), complete at
/// the end of the response or when it was ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRecord {
    pub decision: Verdict,
    pub rule: Option<String>,
    pub location: Option<String>,
    pub masked: usize,
    pub usage: Usage,
    pub model: Option<String>,
    /// Tool calls blocked in the response.
    pub tools_blocked: usize,
    /// Placeholders of the request put back (text and tool inputs).
    pub restored: usize,
    /// Matches of shadow (`Audit`) response guards: recorded, nothing
    /// changed.
    pub audited: usize,
    /// Their rules, one per match (at most [`MAX_FIRED`]).
    pub audited_rules: Vec<String>,
}

/// The counts of a response so far.
#[derive(Debug)]
pub(super) struct Tally {
    pub(super) decision: Verdict,
    rule: Option<String>,
    location: Option<String>,
    masked: usize,
    tools_blocked: usize,
    pub(super) restored: usize,
    audited: usize,
    audited_rules: Vec<String>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            decision: Verdict::Allow,
            rule: None,
            location: None,
            masked: 0,
            tools_blocked: 0,
            restored: 0,
            audited: 0,
            audited_rules: Vec::new(),
        }
    }
}

impl Tally {
    pub(super) fn tools(&mut self, tools: &[ToolDecision]) {
        self.tools_blocked += tools.iter().filter(|t| t.verdict.is_blocked()).count();
    }

    /// Accumulates what response guards did.
    pub(super) fn events(&mut self, events: &[EventInfo], rejected: Option<&Rejection>) {
        // Shadow rules: recorded, they decide nothing.
        for e in events {
            if let StreamFired::Audited { rule } = &e.fired {
                self.audited += 1;
                if self.audited_rules.len() < MAX_FIRED {
                    self.audited_rules.push(rule.clone());
                }
            }
        }
        let mut deciding = events
            .iter()
            .filter(|e| !matches!(e.fired, StreamFired::Audited { .. }));
        let first = deciding.clone().next();
        self.masked += deciding
            .by_ref()
            .filter(|e| matches!(e.fired, StreamFired::Masked { .. }))
            .count();
        if self.location.is_none() {
            self.location = first.map(|e| match e.event {
                Some(i) => format!("{} (event {i})", e.location),
                None => e.location.to_string(),
            });
        }
        if let Some(rej) = rejected {
            self.decision = Verdict::Reject;
            self.rule = Some(rej.rule.clone());
            self.location = Some(match rej.event {
                Some(i) => format!("{} (event {i})", rej.location),
                None => rej.location.to_string(),
            });
        } else if self.masked > 0 && self.decision == Verdict::Allow {
            self.decision = Verdict::Mask;
            if self.rule.is_none() {
                self.rule = first.map(|e| match &e.fired {
                    StreamFired::Masked { placeholder } => placeholder.clone(),
                    StreamFired::Rejected { rule } | StreamFired::Audited { rule } => rule.clone(),
                });
            }
        }
    }

    /// The record so far, handed over once: the next starts afresh.
    pub(super) fn take(&mut self, usage: Usage, model: Option<String>) -> ResponseRecord {
        let tally = std::mem::take(self);
        ResponseRecord {
            decision: tally.decision,
            rule: tally.rule,
            location: tally.location,
            masked: tally.masked,
            usage,
            model,
            tools_blocked: tally.tools_blocked,
            restored: tally.restored,
            audited: tally.audited,
            audited_rules: tally.audited_rules,
        }
    }
}
