//! One gitleaks rule as a detector: what a candidate must pass beyond the
//! rule's regex (keywords, entropy, allowlists), as gitleaks judges a
//! finding when it scans text with no file path and no commit (its
//! `stdin` mode), which is what a request body is.

use std::ops::Range;

use regex::{Regex, RegexSet};

use crate::guard::compile::patterns::Validate;

/// What an allowlist's `regexes` are tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegexTarget {
    /// The secret (the secret group, or the whole match).
    Secret,
    /// The rule's whole match.
    Match,
    /// The line(s) of the text the match lies on.
    Line,
}

/// One allowlist (a rule's, or a global one).
#[derive(Debug)]
pub struct Allowlist {
    /// `condition = "AND"`: every check the allowlist has must hold.
    pub and: bool,
    pub target: RegexTarget,
    pub regexes: Option<RegexSet>,
    /// Lower case; a secret holding one (up to case) is allowed.
    pub stopwords: Vec<String>,
    /// `paths` / `commits` were given: a request has neither, so these
    /// checks never hold (gitleaks on stdin alike).
    pub has_paths_or_commits: bool,
}

impl Allowlist {
    /// Whether this allowlist lets the candidate through.
    fn allows(&self, secret: &str, whole: &str, line: &str) -> bool {
        let target = match self.target {
            RegexTarget::Secret => secret,
            RegexTarget::Match => whole,
            RegexTarget::Line => line,
        };
        let regex =
            || !target.is_empty() && self.regexes.as_ref().is_some_and(|s| s.is_match(target));
        let stopword = || {
            if self.stopwords.is_empty() || secret.is_empty() {
                return false;
            }
            let lower = go_lower(secret);
            self.stopwords.iter().any(|w| lower.contains(w.as_str()))
        };
        if self.and {
            !self.has_paths_or_commits
                && (self.regexes.is_none() || regex())
                && (self.stopwords.is_empty() || stopword())
        } else {
            regex() || stopword()
        }
    }
}

/// How the secret of a match is found.
#[derive(Debug)]
pub enum Secret {
    /// The pattern's own secret group (or the whole match when the regex
    /// has no group): what the engine hands over.
    AsGiven,
    /// `secretGroup` unset and the regex's groups may not all take part:
    /// gitleaks' first non-empty group of the match, else the whole match.
    FirstNonEmpty(Regex),
}

/// A gitleaks rule's checks of a candidate.
#[derive(Debug)]
pub struct Detector {
    /// The rule's `id`.
    pub id: String,
    /// The rule runs only on text that holds one (up to case).
    pub keywords: Keywords,
    /// The secret's Shannon entropy must exceed this (`entropy`, 0: none).
    pub entropy: f64,
    /// Global allowlists first, then the rule's own.
    pub allowlists: Vec<std::sync::Arc<Allowlist>>,
    pub secret: Secret,
}

/// Shannon entropy of `s` as gitleaks computes it: character frequencies
/// over the length in bytes.
pub fn shannon_entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
    for c in s.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let inv = 1.0 / s.len() as f64;
    counts
        .values()
        .map(|&n| {
            let f = n as f64 * inv;
            -f * f.log2()
        })
        .sum()
}

/// Go's `strings.ToLower`: simple case mapping, character by character
/// (`İ` becomes `i`, a final `Σ` becomes `σ`), where Rust's `to_lowercase`
/// maps `İ` to two characters and `Σ` by context.
pub fn go_lower(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let one = (c == '\u{130}').then_some('i');
            one.into_iter()
                .chain(c.to_lowercase().filter(move |_| one.is_none()))
        })
        .collect()
}

/// A rule's keywords, found as gitleaks finds them: in the text lower-cased
/// by Go's `strings.ToLower`.
#[derive(Debug)]
pub struct Keywords {
    /// Lower case, as given.
    pub words: Vec<String>,
    /// The ASCII keywords, up to ASCII case.
    ascii: Option<aho_corasick::AhoCorasick>,
    /// Some keyword is not ASCII: lower-case the text and look.
    other: bool,
}

impl Keywords {
    pub fn new(words: Vec<String>) -> Result<Keywords, String> {
        let ascii_words: Vec<&String> = words.iter().filter(|w| w.is_ascii()).collect();
        let ascii = if ascii_words.is_empty() {
            None
        } else {
            Some(
                aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(&ascii_words)
                    .map_err(|e| format!("keywords: {e}"))?,
            )
        };
        let other = words.iter().any(|w| !w.is_ascii());
        Ok(Keywords {
            words,
            ascii,
            other,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether `text` holds a keyword. A non-ASCII character lower-cases
    /// to a non-ASCII one, but for the Kelvin sign (to `k`) and `İ` (to
    /// `i`): text without them holds an ASCII keyword, lower-cased, exactly
    /// where it holds it up to ASCII case.
    pub fn found_in(&self, text: &str) -> bool {
        if self.words.is_empty() {
            return true;
        }
        let odd = !text.is_ascii()
            && ["\u{212a}", "\u{130}"]
                .iter()
                .any(|c| memchr::memmem::find(text.as_bytes(), c.as_bytes()).is_some());
        if self.other || odd {
            let lower = go_lower(text);
            return self.words.iter().any(|w| lower.contains(w.as_str()));
        }
        self.ascii.as_ref().is_some_and(|a| a.is_match(text))
    }
}

/// The line(s) of `text` holding `range`.
fn line_around(text: &str, range: Range<usize>) -> &str {
    let start = text[..range.start].rfind('\n').map_or(0, |i| i + 1);
    let end = text[range.end..]
        .find('\n')
        .map_or(text.len(), |i| range.end + i);
    &text[start..end]
}

impl Detector {
    fn judge(&self, whole: &str, secret: &str, line: &str) -> bool {
        let secret = match &self.secret {
            Secret::AsGiven => secret,
            Secret::FirstNonEmpty(re) => re
                .captures(whole)
                .and_then(|c| c.iter().skip(1).flatten().find(|m| !m.is_empty()))
                .map_or(whole, |m| m.as_str()),
        };
        if self.entropy != 0.0 && shannon_entropy(secret) <= self.entropy {
            return false;
        }
        let whole = whole.trim_matches('\n');
        !self
            .allowlists
            .iter()
            .any(|a| a.allows(secret, whole, line))
    }
}

impl Validate for Detector {
    fn accepts(&self, whole: &str, secret: &str) -> bool {
        self.judge(whole, secret, whole)
    }

    fn accepts_in(&self, text: &str, whole: Range<usize>, secret: Range<usize>) -> bool {
        let line = line_around(text, whole.clone());
        self.judge(&text[whole], &text[secret], line)
    }

    /// A rule with keywords is searched only in text that holds one.
    fn selective(&self) -> bool {
        !self.keywords.is_empty()
    }

    fn runs_on(&self, text: &str) -> bool {
        self.keywords.found_in(text)
    }
}
