//! Compile: a policy's guard specs become a [`GuardSet`] of rules,
//! patterns (custom regexes and builtin detectors, see [`patterns`]) and,
//! for requests, the fast path of gates and needs (see [`fast_path`]).

pub mod atoms;
pub mod fast_path;
pub mod needs;
pub mod patterns;

use super::builtins::Builtin;
use super::prefilter::digits::NumberShape;
use super::scope::{Scope, Selector};
use super::{
    Action, GuardRule, GuardSet, GuardSpecError, DEFAULT_MASK_PLACEHOLDER, DEFAULT_REJECT_MESSAGE,
    DEFAULT_REJECT_STATUS,
};
use crate::policy::config::{ActionSpec, GuardSpec};
use crate::provider::KindSet;
use fast_path::FastPath;
use patterns::{ascii_word_boundaries, Check, InContext, Pattern, PatternSet, REGEX_SIZE_LIMIT};

/// Hold-back window for a pattern with no upper bound on its length.
pub(super) const UNBOUNDED_WINDOW: usize = 1024;

fn max_len_of(pattern: &str) -> Option<usize> {
    regex_syntax::parse(pattern)
        .ok()?
        .properties()
        .maximum_len()
}

/// `<RULE_NAME>` for a named guard's custom patterns.
fn placeholder_for(name: Option<&str>) -> String {
    match name {
        None => DEFAULT_MASK_PLACEHOLDER.to_owned(),
        Some(n) => {
            let upper: String = n
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("<{upper}>")
        }
    }
}

impl GuardSet {
    /// Compiles `promptGuard.request` (`response = false`) or
    /// `promptGuard.response` entries of one backend.
    pub fn compile(specs: &[GuardSpec], response: bool) -> Result<GuardSet, GuardSpecError> {
        let mut rules = Vec::with_capacity(specs.len());
        let (mut norm_src, mut norm_pat) = (Vec::new(), Vec::new());
        let (mut raw_src, mut raw_pat) = (Vec::new(), Vec::new());
        let mut window = 0usize;
        let direction = if response { "response" } else { "request" };
        for (index, spec) in specs.iter().enumerate() {
            let fail = |field: &str, message: String| GuardSpecError {
                index,
                field: field.to_owned(),
                message,
            };
            if spec.external.is_some() {
                if response {
                    return Err(fail(
                        "external",
                        "external guards run on requests only, for now".into(),
                    ));
                }
                // Compiled by `external::ExternalGuard::compile_all`.
                continue;
            }
            for (field, present) in [
                ("webhook", spec.webhook.is_some()),
                ("openAIModeration", spec.openai_moderation.is_some()),
                ("bedrockGuardrails", spec.bedrock_guardrails.is_some()),
                ("googleModelArmor", spec.google_model_armor.is_some()),
            ] {
                if present {
                    return Err(fail(
                        field,
                        format!("`{field}` is not supported by promptgate yet; a guard that cannot run must not load"),
                    ));
                }
            }
            let Some(regex) = &spec.regex else {
                return Err(fail(
                    "",
                    "a guard needs a `regex` or an `external` entry".into(),
                ));
            };
            let scope = match (&spec.scope, response) {
                (Some(_), true) => return Err(fail(
                    "scope",
                    "response guards read the whole response text; `scope` is for request guards"
                        .into(),
                )),
                (Some(list), false) if list.is_empty() => {
                    return Err(fail(
                        "scope",
                        "an empty scope would read nothing; omit `scope` for the default".into(),
                    ))
                }
                (Some(list), false) => {
                    Scope(list.iter().map(|s| Selector::from_spec(*s)).collect())
                }
                (None, _) => Scope::default_request(),
            };
            // agentgateway's default action is Mask.
            let action = match regex.action.unwrap_or(ActionSpec::Mask) {
                ActionSpec::Reject => Action::Reject,
                ActionSpec::Mask => Action::Mask,
            };
            if regex.matches.is_empty() && regex.builtins.is_empty() {
                return Err(fail(
                    "regex",
                    "a regex guard needs `matches` or `builtins`".into(),
                ));
            }
            let rule = rules.len();
            let case_sensitive = regex.case_sensitive.unwrap_or(false);
            let normalize = regex.normalize.unwrap_or(true);
            let custom_placeholder = placeholder_for(spec.name.as_deref());
            for (j, pattern) in regex.matches.iter().enumerate() {
                let field = format!("regex.matches[{j}]");
                let ascii = ascii_word_boundaries(pattern);
                let source = if case_sensitive {
                    ascii
                } else {
                    format!("(?i:{ascii})")
                };
                let compiled = regex::RegexBuilder::new(&source)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| fail(&field, format!("invalid regex: {e}")))?;
                if compiled.is_match("") {
                    return Err(fail(
                        &field,
                        format!("pattern `{pattern}` matches the empty string, so it would match every request"),
                    ));
                }
                // Normalisation shrinks text (collapsed white space, NFKC):
                // allow for it when sizing the hold-back window.
                window = window.max(
                    max_len_of(&source).map_or(UNBOUNDED_WINDOW, |n| n.saturating_mul(4) + 16),
                );
                let p = Pattern::whole(compiled, rule, custom_placeholder.clone(), Check::None);
                if normalize {
                    norm_src.push(source);
                    norm_pat.push(p);
                } else {
                    raw_src.push(source);
                    raw_pat.push(p);
                }
            }
            for (j, name) in regex.builtins.iter().enumerate() {
                let field = format!("regex.builtins[{j}]");
                let d = Builtin::from_name(name).ok_or_else(|| {
                    let known: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
                    fail(
                        &field,
                        format!(
                            "unknown builtin detector `{name}`; known: {}",
                            known.join(", ")
                        ),
                    )
                })?;
                if norm_pat
                    .iter()
                    .any(|p: &Pattern| p.rule == rule && p.same_detector(d))
                {
                    continue;
                }
                window = window.max(d.max_match_len().saturating_mul(4) + 16);
                norm_src.push(d.pattern().to_owned());
                norm_pat.push(Pattern::whole(
                    d.regex(),
                    rule,
                    d.placeholder().to_owned(),
                    Check::Builtin(d),
                ));
                if let Some(context) = d.context_pattern() {
                    norm_src.push(context.to_owned());
                    norm_pat.push(Pattern {
                        regex: regex::Regex::new(context).expect("builtin patterns compile"),
                        rule,
                        placeholder: d.placeholder().to_owned(),
                        check: Check::Detector(std::sync::Arc::new(InContext(d))),
                        secret_group: Some(1),
                    });
                }
            }
            let response_spec = spec.response.as_ref();
            let status = response_spec
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
                    .unwrap_or_else(|| format!("{direction}[{index}]")),
                action,
                status,
                message: response_spec
                    .and_then(|r| r.message.clone())
                    .unwrap_or_else(|| DEFAULT_REJECT_MESSAGE.to_owned()),
                scope,
            });
        }
        let whole = |message: String| GuardSpecError {
            index: 0,
            field: String::new(),
            message,
        };
        let kinds = rules
            .iter()
            .fold(KindSet::EMPTY, |k, r| k.union(r.scope.kinds()));
        let fast = if response {
            FastPath::default()
        } else {
            let numbers: Vec<_> = norm_pat
                .iter()
                .map(|p| match p.check {
                    Check::Builtin(b) if p.secret_group.is_none() => NumberShape::of(b),
                    _ => None,
                })
                .collect();
            FastPath::build(&norm_src, &numbers).map_err(whole)?
        };
        Ok(GuardSet {
            fast,
            rules,
            normalized: PatternSet::build(&norm_src, norm_pat).map_err(whole)?,
            raw: PatternSet::build(&raw_src, raw_pat).map_err(whole)?,
            kinds,
            window,
        })
    }
}

#[cfg(test)]
mod tests;
