//! Compile: a policy's guard specs become a [`GuardSet`] of rules,
//! patterns (custom regexes and builtin detectors, see [`patterns`]) and,
//! for requests, the fast path of gates and needs (see [`fast_path`]).

pub mod atoms;
pub mod fast_path;
pub mod needs;
pub mod patterns;

use std::path::Path;

use super::builtins::Builtin;
use super::gitleaks;
use super::prefilter::digits::NumberShape;
use super::scope::{Scope, Selector};
use super::secrets::{self, SecretRule, PACK};
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
    name.map_or_else(
        || DEFAULT_MASK_PLACEHOLDER.to_owned(),
        super::placeholder::bare,
    )
}

/// A detector a name in `regex.builtins` stands for.
#[derive(Debug, Clone, Copy)]
pub enum Detector {
    Builtin(Builtin),
    /// A secret builtin enabled through the `Secrets` group: it leaves
    /// placeholders and documentation keys alone like the pack does
    /// (`AKIAIOSFODNN7EXAMPLE`); by its own name it is unchanged.
    PackBuiltin(Builtin),
    Secret(&'static SecretRule),
}

impl Detector {
    pub fn name(self) -> &'static str {
        match self {
            Detector::Builtin(b) | Detector::PackBuiltin(b) => b.name(),
            Detector::Secret(r) => r.name,
        }
    }

    /// Longest match the detector accepts, in bytes.
    pub fn max_match_len(self) -> usize {
        match self {
            Detector::Builtin(b) | Detector::PackBuiltin(b) => b.max_match_len(),
            Detector::Secret(r) => r.max_len,
        }
    }
}

/// The builtins that find credentials: with the pack, the `Secrets`
/// group. Every other builtin finds personal data and is in the `Pii`
/// group, so a PII builtin added to [`Builtin::ALL`] joins `Pii` by
/// itself: this list is the one place that splits them.
pub const SECRET_BUILTINS: &[Builtin] = &[
    Builtin::AwsAccessKey,
    Builtin::PrivateKey,
    Builtin::GitHubToken,
    Builtin::AnthropicApiKey,
    Builtin::OpenAiApiKey,
    Builtin::SlackToken,
    Builtin::GoogleApiKey,
    Builtin::Jwt,
];

/// Group names of `regex.builtins`.
pub const GROUPS: &[&str] = &["Secrets", "Pii"];

/// What a name of `regex.builtins` enables: a group (`Secrets`: the secret
/// builtins and the whole pack; `Pii`: every other builtin), one builtin,
/// or one rule of the secret pack. Exact names.
pub fn detectors(name: &str) -> Option<Vec<Detector>> {
    match name {
        "Secrets" => Some(
            SECRET_BUILTINS
                .iter()
                .map(|&b| Detector::PackBuiltin(b))
                .chain(PACK.iter().map(|&r| Detector::Secret(r)))
                .collect(),
        ),
        "Pii" => Some(
            Builtin::ALL
                .iter()
                .filter(|b| !SECRET_BUILTINS.contains(b))
                .map(|&b| Detector::Builtin(b))
                .collect(),
        ),
        _ => Builtin::from_name(name)
            .map(Detector::Builtin)
            .or_else(|| secrets::lookup(name).map(Detector::Secret))
            .map(|d| vec![d]),
    }
}

/// The error for an unknown name: the groups, the builtins, and how many
/// pack rules there are (named in the README).
fn unknown_builtin(name: &str) -> String {
    let builtins: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
    format!(
        "unknown builtin detector `{name}`; known: the groups {} ({} detectors) and {} ({}), the builtins {}, and {} secret-pack rules by name (e.g. StripeSecretKey, GitLabPersonalAccessToken, DatabaseUrlPassword)",
        GROUPS[0],
        SECRET_BUILTINS.len() + PACK.len(),
        GROUPS[1],
        Builtin::ALL.len() - SECRET_BUILTINS.len(),
        builtins.join(", "),
        PACK.len()
    )
}

impl GuardSet {
    /// Compiles `promptGuard.request` (`response = false`) or
    /// `promptGuard.response` entries of one backend.
    pub fn compile(specs: &[GuardSpec], response: bool) -> Result<GuardSet, GuardSpecError> {
        GuardSet::compile_in(specs, response, None)
    }

    /// [`Self::compile`] for a policy in folder `dir`, which files the
    /// guards name (`regex.gitleaks`) are relative to; with no folder such
    /// guards are refused.
    pub fn compile_in(
        specs: &[GuardSpec],
        response: bool,
        dir: Option<&Path>,
    ) -> Result<GuardSet, GuardSpecError> {
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
                ActionSpec::Audit => Action::Audit,
            };
            if spec.restore.is_some() && (response || action != Action::Mask) {
                return Err(fail(
                    "restore",
                    "`restore` is for request guards that mask".into(),
                ));
            }
            let restore = !response && action == Action::Mask && spec.restore != Some(false);
            let when = match &spec.when {
                Some(src) => {
                    Some(super::condition::Condition::compile(src).map_err(|m| fail("when", m))?)
                }
                None => None,
            };
            let mut scope = scope;
            if restore && spec.scope.is_none() {
                // Restored values come back in the assistant's history
                // (its text and its tool calls' inputs) on the next turn:
                // a restoring mask's default scope reads that history too,
                // so the provider never sees them on any turn. A scope
                // written out is read as written.
                for s in [Selector::AssistantMessages, Selector::ToolInput] {
                    if !scope.0.contains(&s) {
                        scope.0.push(s);
                    }
                }
            }
            if regex.matches.is_empty() && regex.builtins.is_empty() && regex.gitleaks.is_none() {
                return Err(fail(
                    "regex",
                    "a regex guard needs `matches`, `builtins` or `gitleaks`".into(),
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
            let mut enabled = std::collections::HashSet::new();
            for (j, name) in regex.builtins.iter().enumerate() {
                let field = format!("regex.builtins[{j}]");
                let detectors =
                    detectors(name).ok_or_else(|| fail(&field, unknown_builtin(name)))?;
                for d in detectors {
                    // A detector enabled twice (`[Secrets, StripeSecretKey]`)
                    // is compiled once.
                    if !enabled.insert(d.name()) {
                        continue;
                    }
                    window = window.max(d.max_match_len().saturating_mul(4) + 16);
                    match d {
                        Detector::Builtin(b) | Detector::PackBuiltin(b) => {
                            let check = match d {
                                Detector::PackBuiltin(_) => {
                                    Check::Detector(secrets::builtin_validator(b))
                                }
                                _ => Check::Builtin(b),
                            };
                            norm_src.push(b.pattern().to_owned());
                            norm_pat.push(Pattern::whole(
                                b.regex(),
                                rule,
                                b.placeholder().to_owned(),
                                check,
                            ));
                            if let Some(context) = b.context_pattern() {
                                norm_src.push(context.to_owned());
                                norm_pat.push(Pattern {
                                    regex: regex::Regex::new(context)
                                        .expect("builtin patterns compile"),
                                    rule,
                                    placeholder: b.placeholder().to_owned(),
                                    check: Check::Detector(std::sync::Arc::new(InContext(b))),
                                    secret_group: Some(1),
                                });
                            }
                        }
                        Detector::Secret(r) => {
                            norm_src.push(r.pattern.to_owned());
                            norm_pat.push(Pattern {
                                regex: r.regex(),
                                rule,
                                placeholder: r.placeholder(),
                                check: Check::Detector(r.validator()),
                                secret_group: r.group,
                            });
                        }
                    }
                }
            }
            if let Some(file) = &regex.gitleaks {
                let Some(dir) = dir else {
                    return Err(fail(
                        "regex.gitleaks",
                        "a gitleaks config is read relative to a policy file's folder; here there is none"
                            .into(),
                    ));
                };
                // Raw text, as gitleaks reads it: lines, `\n` and `$` mean
                // what the rules' authors meant (see `guard::gitleaks`).
                for r in gitleaks::load(&dir.join(file))
                    .map_err(|e| fail("regex.gitleaks", e.to_string()))?
                {
                    window = window.max(max_len_of(&r.source).unwrap_or(UNBOUNDED_WINDOW));
                    let placeholder = r.placeholder();
                    raw_src.push(r.source);
                    raw_pat.push(Pattern {
                        regex: r.regex,
                        rule,
                        placeholder,
                        check: Check::Detector(r.detector),
                        secret_group: r.secret_group,
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
                restore,
                when,
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
            key: super::MaskKey::process_random(),
        })
    }
}

#[cfg(test)]
mod tests;
