//! Guards: compiled once per policy load, run on the text a provider model
//! extracts from a request or a response.
//!
//! Like ripgrep's split of matcher and searcher, a [`GuardSet`] is the
//! compiled matcher (every pattern of every guard of one direction in one
//! `RegexSet`, plus one `Regex` each to locate matches) and [`GuardSet::scan`]
//! is the searcher over a request's segments. Custom patterns match on
//! [normalised](normalize) text, case-insensitively, unless a guard opts out;
//! matches map back to exact byte ranges of the original text, so masks
//! land on the right bytes.
//!
//! The stages, each its own module:
//! * `compile`: guard specs → rules, patterns (custom regexes and
//!   [`builtins`] and the [`secrets`] pack), and for requests each pattern's gate atoms and needs;
//! * `prefilter`: the gate atoms found in raw literal bytes (fingerprint
//!   passes over ASCII classes, Teddy-style), and suspect characters;
//! * `scan`: regions around hits, the [normalisation](normalize) join,
//!   regex search, findings;
//! * `mask`: findings written into JSON literals ([`mask_literal`]).
//!
//! SIMD kernels live behind one small module, `vector`.

mod ascii;
pub mod builtins;
mod compile;
pub mod condition;
pub mod external;
pub mod gitleaks;
mod mask;
pub mod normalize;
pub mod placeholder;
mod prefilter;
mod scan;
mod scope;
pub mod secrets;
pub mod tool;
mod vector;

use std::ops::Range;
use std::sync::Arc;

use crate::provider::KindSet;
use compile::fast_path::FastPath;
use compile::patterns::PatternSet;

pub use mask::mask_literal;
pub use placeholder::MaskKey;
pub use scan::{ActiveGuards, TextMatch};
pub use scope::Scope;

/// agentgateway's default rejection message.
pub const DEFAULT_REJECT_MESSAGE: &str = "The request was rejected due to inappropriate content";
/// agentgateway's default rejection status.
pub const DEFAULT_REJECT_STATUS: u16 = 403;
/// agentgateway's placeholder for a custom pattern of an unnamed guard.
pub const DEFAULT_MASK_PLACEHOLDER: &str = "<masked>";

/// What a guard does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Reject,
    Mask,
    /// Shadow mode: found and recorded, nothing changed.
    Audit,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Reject => "reject",
            Action::Mask => "mask",
            Action::Audit => "audit",
        }
    }
}

/// One compiled guard rule.
#[derive(Debug)]
pub struct GuardRule {
    /// Rule name: the guard's `name`, else `request[N]` / `response[N]`.
    pub name: String,
    pub action: Action,
    pub status: u16,
    pub message: String,
    /// A mask whose values are restored in the response.
    pub restore: bool,
    /// `when:`: the rule runs only for requests where it holds.
    pub when: Option<Arc<condition::Condition>>,
    scope: Scope,
}

/// Error compiling one guard: which entry, which field, what.
#[derive(Debug)]
pub struct GuardSpecError {
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// All guards of one direction, compiled.
#[derive(Debug)]
pub struct GuardSet {
    rules: Vec<GuardRule>,
    /// Patterns matched on normalised text (joined per message).
    normalized: PatternSet,
    /// Patterns matched on the raw text of each segment (`normalize: false`).
    raw: PatternSet,
    /// Union of the rules' scopes: what a request must yield.
    kinds: KindSet,
    /// Longest possible match in bytes of original text (stream hold-back).
    window: usize,
    /// The gated fast path for requests (see [`GuardSet::scan`]).
    fast: FastPath,
    /// The key of placeholder tags (see [`placeholder`]).
    key: Arc<MaskKey>,
}

/// A guard that fired on a request segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Index of the rule in [`GuardSet::rules`].
    pub rule: usize,
    /// Index of the segment.
    pub segment: usize,
    /// Byte range of the match in the segment's literal content (raw JSON,
    /// escapes intact; the range covers whole escape sequences).
    pub range: Range<usize>,
    /// The bare placeholder of what found it (`<CREDIT_CARD>`); the mask
    /// writes it tagged with the value (see [`placeholder`]).
    pub placeholder: String,
    /// The value is restored where the model repeats its placeholder.
    pub restore: bool,
}

/// What scanning a request found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The first rejecting finding, in body order.
    pub reject: Option<Finding>,
    /// Every masking finding (possibly overlapping), in body order.
    pub masks: Vec<Finding>,
    /// Findings of guards in `Audit` mode: recorded, never acted on.
    pub audits: Vec<Finding>,
}

impl GuardSet {
    /// A set with no guards.
    pub fn empty() -> Self {
        GuardSet {
            rules: Vec::new(),
            normalized: PatternSet::empty(),
            raw: PatternSet::empty(),
            kinds: KindSet::EMPTY,
            window: 0,
            fast: FastPath::default(),
            key: MaskKey::process_random(),
        }
    }

    /// Tags placeholders with `key` (the deployment's `maskKey`) instead of
    /// the process's random key.
    pub fn set_mask_key(&mut self, key: Arc<MaskKey>) {
        self.key = key;
    }

    /// The key of placeholder tags.
    pub fn mask_key(&self) -> &MaskKey {
        &self.key
    }

    /// Whether a rule has a `when:` condition.
    pub fn has_conditions(&self) -> bool {
        self.rules.iter().any(|r| r.when.is_some())
    }

    /// Whether a mask of these guards may be restored in the response.
    pub fn restores(&self) -> bool {
        self.rules.iter().any(|r| r.restore)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[GuardRule] {
        &self.rules
    }

    /// Parts a request must yield for these guards.
    pub fn kinds(&self) -> KindSet {
        self.kinds
    }

    /// Longest match any pattern can produce, in bytes of original text: the
    /// hold-back window a stream needs so no match is released unseen.
    pub fn window(&self) -> usize {
        self.window
    }
}

#[cfg(test)]
pub(crate) mod tests;
