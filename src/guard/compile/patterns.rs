//! Compiled patterns: one `Regex` per pattern to locate matches, and one
//! `RegexSet` per view of the text (normalised, raw) to tell which match.

use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;

use regex::{Regex, RegexSet, RegexSetBuilder};

use crate::guard::builtins::Builtin;

/// Compiled regex size limit per pattern (bytes of compiled program).
pub const REGEX_SIZE_LIMIT: usize = 10 << 20;

/// Validation of a candidate beyond its pattern, for detectors that are
/// not [`Builtin`]s (the secret pack, gitleaks rules): `whole` is the
/// regex match, `secret` the part of it that is masked (the secret group,
/// or the whole match).
pub trait Validate: Send + Sync + Debug {
    fn accepts(&self, whole: &str, secret: &str) -> bool;
}

/// What a pattern's candidates must pass.
#[derive(Debug, Clone)]
pub enum Check {
    /// Every match is a finding (custom patterns).
    None,
    /// A builtin detector's validator (checksums, structure).
    Builtin(Builtin),
    /// Any other detector's validator.
    Detector(Arc<dyn Validate>),
}

/// The validator of a builtin's context pattern (see
/// [`Builtin::context_pattern`]): its secret group is the candidate.
#[derive(Debug)]
pub struct InContext(pub Builtin);

impl Validate for InContext {
    fn accepts(&self, _whole: &str, secret: &str) -> bool {
        self.0.validate_in_context(secret)
    }
}

#[derive(Debug)]
pub struct Pattern {
    pub regex: Regex,
    pub rule: usize,
    pub placeholder: String,
    pub check: Check,
    /// The capture group that is the secret (masked, validated); `None`:
    /// the whole match. Patterns without one are searched with `find`,
    /// which is cheaper than captures.
    pub secret_group: Option<usize>,
}

impl Pattern {
    /// A pattern with no secret group.
    pub fn whole(regex: Regex, rule: usize, placeholder: String, check: Check) -> Pattern {
        Pattern {
            regex,
            rule,
            placeholder,
            check,
            secret_group: None,
        }
    }

    fn accepts(&self, whole: &str, secret: &str) -> bool {
        match &self.check {
            Check::None => true,
            Check::Builtin(b) => b.validate(secret),
            Check::Detector(v) => v.accepts(whole, secret),
        }
    }

    /// Whether this pattern runs the same detector as `other` would.
    pub fn same_detector(&self, builtin: Builtin) -> bool {
        matches!(self.check, Check::Builtin(b) if b == builtin)
    }

    /// Byte ranges in `text` of the secrets of accepted candidates, in
    /// order.
    pub fn findings<'a>(&'a self, text: &'a str) -> Box<dyn Iterator<Item = Range<usize>> + 'a> {
        match self.secret_group {
            None => Box::new(
                self.regex
                    .find_iter(text)
                    .filter(|m| self.accepts(m.as_str(), m.as_str()))
                    .map(|m| m.range()),
            ),
            Some(g) => Box::new(self.regex.captures_iter(text).filter_map(move |c| {
                let whole = c.get(0)?;
                let secret = c.get(g)?;
                (!secret.is_empty() && self.accepts(whole.as_str(), secret.as_str()))
                    .then(|| secret.range())
            })),
        }
    }
}

/// Patterns that run on one view of the text (normalised or raw).
#[derive(Debug)]
pub struct PatternSet {
    pub set: RegexSet,
    pub patterns: Vec<Pattern>,
}

impl PatternSet {
    pub fn build(sources: &[String], patterns: Vec<Pattern>) -> Result<PatternSet, String> {
        let set = RegexSetBuilder::new(sources)
            .size_limit(REGEX_SIZE_LIMIT.saturating_mul(sources.len().max(1)))
            // A roomy lazy-DFA cache: with many patterns a small one is
            // cleared over and over, and scanning crawls.
            .dfa_size_limit(64 << 20)
            .build()
            .map_err(|e| format!("the patterns do not compile together: {e}"))?;
        Ok(PatternSet { set, patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Indices of the patterns that match `text`. Most text matches nothing:
    /// a plain `is_match` (leftmost, with prefilters) answers that far
    /// faster than the overlapping search that names every pattern.
    pub fn matching(&self, text: &str) -> Vec<usize> {
        if !self.set.is_match(text) {
            return Vec::new();
        }
        self.set.matches(text).into_iter().collect()
    }
}

/// Rewrites every word-boundary assertion of a pattern (`\b`, `\B`,
/// `\b{start}`, `\<`, ...) to its ASCII form, e.g. `\b` → `(?-u:\b)`.
///
/// A Unicode word boundary forces the regex engine off its DFAs onto the
/// much slower PikeVM whenever the text is not pure ASCII (prompts rarely
/// are): one `\b` among fifty patterns made a scan a hundred times slower.
/// At ASCII boundaries a non-ASCII letter counts as a non-word character,
/// so an ASCII word like `credit` matches at least wherever it did.
pub fn ascii_word_boundaries(pattern: &str) -> String {
    use regex_syntax::ast::{
        self, AssertionKind, Ast, Flag, Flags, FlagsItem, FlagsItemKind, Group, GroupKind,
    };
    fn walk(a: &mut Ast) {
        let word = |k: &AssertionKind| {
            !matches!(
                k,
                AssertionKind::StartLine
                    | AssertionKind::EndLine
                    | AssertionKind::StartText
                    | AssertionKind::EndText
            )
        };
        let replacement = match a {
            Ast::Assertion(x) if word(&x.kind) => {
                let span = x.span;
                let flags = Flags {
                    span,
                    items: vec![
                        FlagsItem {
                            span,
                            kind: FlagsItemKind::Negation,
                        },
                        FlagsItem {
                            span,
                            kind: FlagsItemKind::Flag(Flag::Unicode),
                        },
                    ],
                };
                Some(Ast::group(Group {
                    span,
                    kind: GroupKind::NonCapturing(flags),
                    ast: Box::new(Ast::assertion((**x).clone())),
                }))
            }
            Ast::Repetition(r) => {
                walk(&mut r.ast);
                None
            }
            Ast::Group(g) => {
                walk(&mut g.ast);
                None
            }
            Ast::Alternation(alt) => {
                alt.asts.iter_mut().for_each(walk);
                None
            }
            Ast::Concat(c) => {
                c.asts.iter_mut().for_each(walk);
                None
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *a = r;
        }
    }
    match ast::parse::Parser::new().parse(pattern) {
        Ok(mut a) => {
            walk(&mut a);
            a.to_string()
        }
        // Let the regex compiler report the error with its own message.
        Err(_) => pattern.to_owned(),
    }
}
