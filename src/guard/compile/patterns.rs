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

    /// [`Self::accepts`] with the text searched (`whole` and `secret` are
    /// ranges of it), for detectors that read around a match (a gitleaks
    /// allowlist on the match's line).
    fn accepts_in(&self, text: &str, whole: Range<usize>, secret: Range<usize>) -> bool {
        self.accepts(&text[whole], &text[secret])
    }

    /// Whether the detector looks at `text` at all (gitleaks keywords: a
    /// rule runs only on text that holds one); asked once per text.
    fn runs_on(&self, _text: &str) -> bool {
        true
    }

    /// Whether [`Self::runs_on`] says no to most text, cheaply: the pattern
    /// is then searched alone, after it, rather than in its view's regex set
    /// (which would search every text for it).
    fn selective(&self) -> bool {
        false
    }
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

    fn accepts(&self, text: &str, whole: Range<usize>, secret: Range<usize>) -> bool {
        match &self.check {
            Check::None => true,
            Check::Builtin(b) => b.validate(&text[secret]),
            Check::Detector(v) => v.accepts_in(text, whole, secret),
        }
    }

    /// Byte ranges in `text` of the secrets of accepted candidates, in
    /// order.
    pub fn findings<'a>(&'a self, text: &'a str) -> Box<dyn Iterator<Item = Range<usize>> + 'a> {
        if let Check::Detector(v) = &self.check {
            if !v.runs_on(text) {
                return Box::new(std::iter::empty());
            }
        }
        match self.secret_group {
            None => Box::new(
                self.regex
                    .find_iter(text)
                    .filter(|m| self.accepts(text, m.range(), m.range()))
                    .map(|m| m.range()),
            ),
            Some(g) => Box::new(self.regex.captures_iter(text).filter_map(move |c| {
                let whole = c.get(0)?;
                let secret = c.get(g)?;
                (!secret.is_empty() && self.accepts(text, whole.range(), secret.range()))
                    .then(|| secret.range())
            })),
        }
    }
}

/// Patterns that run on one view of the text (normalised or raw).
#[derive(Debug)]
pub struct PatternSet {
    /// The patterns that are not [`selective`](Validate::selective).
    pub set: RegexSet,
    pub patterns: Vec<Pattern>,
    /// The pattern behind each of `set`'s regexes.
    in_set: Vec<usize>,
    /// Selective patterns: searched alone, where their detector runs.
    alone: Vec<usize>,
}

impl PatternSet {
    pub fn empty() -> PatternSet {
        PatternSet {
            set: RegexSet::empty(),
            patterns: Vec::new(),
            in_set: Vec::new(),
            alone: Vec::new(),
        }
    }

    pub fn build(sources: &[String], patterns: Vec<Pattern>) -> Result<PatternSet, String> {
        let (alone, in_set): (Vec<usize>, Vec<usize>) = (0..patterns.len())
            .partition(|&i| matches!(&patterns[i].check, Check::Detector(v) if v.selective()));
        let set_sources: Vec<&String> = in_set.iter().filter_map(|&i| sources.get(i)).collect();
        let set = RegexSetBuilder::new(set_sources)
            .size_limit(REGEX_SIZE_LIMIT.saturating_mul(in_set.len().max(1)))
            // A roomy lazy-DFA cache: with many patterns a small one is
            // cleared over and over, and scanning crawls.
            .dfa_size_limit(64 << 20)
            .build()
            .map_err(|e| format!("the patterns do not compile together: {e}"))?;
        Ok(PatternSet {
            set,
            patterns,
            in_set,
            alone,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Indices of the patterns that match `text`, in order. Most text
    /// matches nothing: a plain `is_match` (leftmost, with prefilters)
    /// answers that far faster than the overlapping search that names
    /// every pattern. A selective pattern is searched only where its
    /// detector runs.
    pub fn matching(&self, text: &str) -> Vec<usize> {
        let mut out: Vec<usize> = if !self.in_set.is_empty() && self.set.is_match(text) {
            self.set
                .matches(text)
                .into_iter()
                .map(|k| self.in_set[k])
                .collect()
        } else {
            Vec::new()
        };
        if self.alone.is_empty() {
            return out;
        }
        for &p in &self.alone {
            let pat = &self.patterns[p];
            if matches!(&pat.check, Check::Detector(v) if v.runs_on(text))
                && pat.regex.is_match(text)
            {
                out.push(p);
            }
        }
        out.sort_unstable();
        out
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
