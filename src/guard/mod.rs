//! Guards: compiled once per policy load, run on the text a provider model
//! extracts from a request.
//!
//! All patterns of all guards of one direction live in one `RegexSet`, so a
//! segment of text is scanned once no matter how many guards exist; the
//! individual regexes are kept to locate a match once the set reports one.

pub mod builtins;

use regex::{Regex, RegexSet, RegexSetBuilder};

use crate::policy::config::{ActionSpec, GuardSpec};

/// agentgateway's default rejection message.
pub const DEFAULT_REJECT_MESSAGE: &str = "The request was rejected due to inappropriate content";
/// agentgateway's default rejection status.
pub const DEFAULT_REJECT_STATUS: u16 = 403;

/// Compiled regex size limit per pattern (bytes of compiled program).
const REGEX_SIZE_LIMIT: usize = 10 << 20;

/// What a guard does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Reject,
}

/// One compiled guard rule.
#[derive(Debug)]
pub struct GuardRule {
    /// Rule name: the guard's `name`, else `request[N]`.
    pub name: String,
    pub action: Action,
    pub status: u16,
    pub message: String,
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
    /// One set over every pattern of every rule.
    set: RegexSet,
    /// The same patterns one by one, to locate a match.
    regexes: Vec<Regex>,
    /// `pattern_rule[i]` is the rule that pattern `i` belongs to.
    pattern_rule: Vec<usize>,
}

/// A segment of text to scan, with where it came from.
pub trait Segment {
    fn text(&self) -> &str;
}

/// A guard that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Index of the rule in [`GuardSet::rules`].
    pub rule: usize,
    /// Index of the segment that matched.
    pub segment: usize,
    /// Byte range of the match within the segment's text.
    pub span: std::ops::Range<usize>,
}

impl GuardSet {
    /// A set with no guards.
    pub fn empty() -> Self {
        GuardSet {
            rules: Vec::new(),
            set: RegexSet::empty(),
            regexes: Vec::new(),
            pattern_rule: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[GuardRule] {
        &self.rules
    }

    /// Compiles the `promptGuard.request` entries of one backend.
    pub fn compile(specs: &[GuardSpec]) -> Result<GuardSet, GuardSpecError> {
        let mut rules = Vec::with_capacity(specs.len());
        let mut patterns: Vec<&str> = Vec::new();
        let mut regexes = Vec::new();
        let mut pattern_rule = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            let fail = |field: &str, message: String| GuardSpecError {
                index,
                field: field.to_owned(),
                message,
            };
            for (field, present) in [
                ("webhook", spec.webhook.is_some()),
                ("openAIModeration", spec.openai_moderation.is_some()),
                ("bedrockGuardrails", spec.bedrock_guardrails.is_some()),
                ("googleModelArmor", spec.google_model_armor.is_some()),
                ("scope", spec.scope.is_some()),
            ] {
                if present {
                    return Err(fail(
                        field,
                        format!("`{field}` is not supported by promptgate yet; a guard that cannot run must not load"),
                    ));
                }
            }
            let Some(regex) = &spec.regex else {
                return Err(fail("", "a guard needs a `regex` entry".into()));
            };
            match regex.action {
                Some(ActionSpec::Reject) => {}
                Some(ActionSpec::Mask) | None => {
                    return Err(fail(
                        "regex.action",
                        "action `Mask` (agentgateway's default when `action` is absent) is not supported yet; \
                         set `action: Reject`"
                            .into(),
                    ))
                }
            }
            if !regex.builtins.is_empty() {
                return Err(fail(
                    "regex.builtins",
                    "builtin detectors are not supported yet; use `matches` patterns".into(),
                ));
            }
            if regex.matches.is_empty() {
                return Err(fail(
                    "regex.matches",
                    "a regex guard needs at least one pattern".into(),
                ));
            }
            let rule = rules.len();
            for (j, pattern) in regex.matches.iter().enumerate() {
                let compiled = regex::RegexBuilder::new(pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        fail(
                            &format!("regex.matches[{j}]"),
                            format!("invalid regex: {e}"),
                        )
                    })?;
                if compiled.is_match("") {
                    return Err(fail(
                        &format!("regex.matches[{j}]"),
                        format!("pattern `{pattern}` matches the empty string, so it would match every request"),
                    ));
                }
                patterns.push(pattern);
                regexes.push(compiled);
                pattern_rule.push(rule);
            }
            let response = spec.response.as_ref();
            let status = response
                .and_then(|r| r.status_code)
                .unwrap_or(DEFAULT_REJECT_STATUS);
            if !(400..=599).contains(&status) {
                return Err(fail(
                    "response.statusCode",
                    format!("{status} is not an error status (400-599)"),
                ));
            }
            rules.push(GuardRule {
                name: spec
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("request[{index}]")),
                action: Action::Reject,
                status,
                message: response
                    .and_then(|r| r.message.clone())
                    .unwrap_or_else(|| DEFAULT_REJECT_MESSAGE.to_owned()),
            });
        }
        let set = RegexSetBuilder::new(&patterns)
            .size_limit(REGEX_SIZE_LIMIT * patterns.len().max(1))
            .build()
            .map_err(|e| GuardSpecError {
                index: 0,
                field: String::new(),
                message: format!("the patterns do not compile together: {e}"),
            })?;
        Ok(GuardSet {
            rules,
            set,
            regexes,
            pattern_rule,
        })
    }

    /// Scans segments in order and returns the first rejecting hit: the
    /// earliest segment that matches, and within it the first rule in
    /// policy order.
    pub fn first_reject<S: Segment>(&self, segments: &[S]) -> Option<Hit> {
        if self.rules.is_empty() {
            return None;
        }
        for (segment, s) in segments.iter().enumerate() {
            let text = s.text();
            let matches = self.set.matches(text);
            if !matches.matched_any() {
                continue;
            }
            // Patterns are in rule order, so the first matching pattern
            // belongs to the first matching rule.
            if let Some(pattern) = matches.iter().next() {
                let span = self.regexes[pattern]
                    .find(text)
                    .map(|m| m.range())
                    .unwrap_or(0..0);
                return Some(Hit {
                    rule: self.pattern_rule[pattern],
                    segment,
                    span,
                });
            }
        }
        None
    }
}

impl Segment for &str {
    fn text(&self) -> &str {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Result<GuardSet, GuardSpecError> {
        let specs: Vec<GuardSpec> = serde_yaml::from_str(yaml).unwrap();
        GuardSet::compile(&specs)
    }

    #[test]
    fn first_rule_in_policy_order_wins() {
        let set = compile(
            r#"
- name: cards
  regex: {action: Reject, matches: ["credit card"]}
  response: {message: "no cards", statusCode: 451}
- regex: {action: Reject, matches: ["card", "secret"]}
"#,
        )
        .unwrap();
        let hit = set
            .first_reject(&["nothing here", "my credit card is"])
            .unwrap();
        assert_eq!(hit.segment, 1);
        assert_eq!(hit.rule, 0);
        assert_eq!(hit.span, 3..14);
        let rule = &set.rules()[hit.rule];
        assert_eq!(
            (rule.name.as_str(), rule.status, rule.message.as_str()),
            ("cards", 451, "no cards")
        );

        let hit = set.first_reject(&["a top secret"]).unwrap();
        assert_eq!(set.rules()[hit.rule].name, "request[1]");
        assert_eq!(set.rules()[hit.rule].message, DEFAULT_REJECT_MESSAGE);
        assert_eq!(set.rules()[hit.rule].status, 403);
        assert!(set.first_reject(&["harmless", "text"]).is_none());
    }

    #[test]
    fn bad_guards_are_refused_with_their_place() {
        let e =
            compile(r#"[{regex: {action: Reject, matches: ["ok", "(unclosed"]}}]"#).unwrap_err();
        assert_eq!((e.index, e.field.as_str()), (0, "regex.matches[1]"));
        assert!(e.message.contains("invalid regex"), "{}", e.message);

        let e = compile(r#"[{regex: {matches: ["x"]}}]"#).unwrap_err();
        assert_eq!(e.field, "regex.action");

        let e = compile(r#"[{regex: {action: Reject, matches: ["a*"]}}]"#).unwrap_err();
        assert!(e.message.contains("empty string"));

        let e =
            compile(r#"[{regex: {action: Reject, matches: ["x"]}, response: {statusCode: 200}}]"#)
                .unwrap_err();
        assert_eq!(e.field, "response.statusCode");

        let e = compile(r#"[{webhook: {host: x}}]"#).unwrap_err();
        assert_eq!(e.field, "webhook");
    }

    #[test]
    fn no_guards_never_reject() {
        assert!(GuardSet::empty().first_reject(&["credit card"]).is_none());
        assert!(compile("[]")
            .unwrap()
            .first_reject(&["credit card"])
            .is_none());
    }
}
