//! Tool guards: decide on one complete tool call (its name and its input
//! JSON) a model asks an agent to run, and on which tools a request may
//! offer.
//!
//! # Matching
//! A call matches a rule when the rule's `tools` globs match its name and,
//! when the rule has `regex`, one of the rule's patterns (or builtins) is
//! found in a **string value** of the input — keys, numbers and booleans are
//! not text. Each string value is matched on its own (a pattern never spans
//! two values), with the same normalisation as prompt guards (case, NFKC,
//! zero-width characters, white space). Without `field`, every string value
//! anywhere in the input counts (`{"command": "…"}`, `{"edits": [{"new":
//! "…"}]}`); with `field` (`file_path`, or a JSON pointer `/edits/0/path`)
//! only the string values at or under that place do, so a rule on paths is
//! not set off by a file's content that mentions the path. Rules apply in
//! order; the first that matches decides. Denied tools (`deny`) are blocked
//! before any rule.
//!
//! # Conditions
//! A rule, or a `deny` entry `{tools, when}`, with `when:` applies only to
//! the requests where its condition holds: [`ToolGuard::active`] decides
//! that once per request ([`ToolActive`]), and [`ActiveTools`] is the judge
//! of that request's response. Without the flags every rule and entry
//! applies (the stricter side).
//!
//! # Cost
//! Every rule's patterns are compiled into one [`GuardSet`] (one rule each),
//! so an input is scanned once per string value whatever the number of
//! rules, and only when a rule for the call's tool has patterns.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::sync::Arc;

use serde_json::Value;

use super::condition::{Condition, Vars};
use super::{GuardSet, GuardSpecError};
use crate::policy::config::{
    DenySpec, DenyWhenSpec, GuardSpec, RegexSpec, RejectResponseSpec, ToolActionSpec,
    ToolGuardSpec, ToolRuleSpec,
};
use crate::provider::tool_call::ToolJudge;
pub use crate::provider::tool_call::ToolVerdict;

/// Default `maxHeldBytes`: the largest tool input held while it streams.
pub const DEFAULT_MAX_HELD_BYTES: usize = 1 << 20;

/// The message of a blocked call when the policy gives none.
pub const DEFAULT_TOOL_MESSAGE: &str = "This tool call was blocked by the gateway's policy";

/// What a tool rule does to a call it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolAction {
    /// The call never reaches the agent.
    Reject,
    /// Recorded, and let through.
    Audit,
}

impl ToolAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolAction::Reject => "reject",
            ToolAction::Audit => "audit",
        }
    }
}

/// A tool-guard configuration error: where (relative to `toolGuard`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolGuardError {
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
struct ToolRule {
    name: String,
    tools: GlobSet,
    /// JSON pointer of the field the patterns read (`None`: the whole input).
    field: Option<String>,
    /// The rule's index in the scanner, when it has patterns.
    scan_rule: Option<usize>,
    action: ToolAction,
    message: String,
    /// `when:`: the rule applies only to requests where it holds.
    when: Option<Arc<Condition>>,
}

/// A compiled `toolGuard`.
#[derive(Debug)]
pub struct ToolGuard {
    deny: GlobSet,
    /// Per glob of `deny`: its entry's `when:`, if it has one.
    deny_when: Vec<Option<Arc<Condition>>>,
    deny_message: String,
    rules: Vec<ToolRule>,
    scanner: GuardSet,
    max_held_bytes: usize,
}

/// One glob over tool names; an error names `field`.
fn glob(field: &str, g: &str) -> Result<globset::Glob, ToolGuardError> {
    let fail = |message: String| ToolGuardError {
        field: field.to_owned(),
        message,
    };
    if g.is_empty() {
        return Err(fail("an empty glob names no tool".into()));
    }
    GlobBuilder::new(g)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map_err(|e| fail(format!("invalid glob: {e}")))
}

fn glob_set(field: &str, globs: &[String]) -> Result<GlobSet, ToolGuardError> {
    let mut set = GlobSetBuilder::new();
    for (i, g) in globs.iter().enumerate() {
        set.add(glob(&format!("{field}[{i}]"), g)?);
    }
    set.build().map_err(|e| ToolGuardError {
        field: field.to_owned(),
        message: format!("invalid globs: {e}"),
    })
}

/// `file_path` → `/file_path`; a pointer stays as it is.
fn pointer(field: &str) -> Result<String, String> {
    if field.is_empty() {
        return Err("an empty field names nothing; omit `field` to match the whole input".into());
    }
    if field.starts_with('/') {
        Ok(field.to_owned())
    } else {
        // A plain key: escape it as one pointer token.
        Ok(format!("/{}", field.replace('~', "~0").replace('/', "~1")))
    }
}

impl ToolGuard {
    /// Compiles `policies.ai.toolGuard`.
    pub fn compile(spec: ToolGuardSpec) -> Result<ToolGuard, ToolGuardError> {
        ToolGuard::compile_in(spec, None)
    }

    /// [`Self::compile`] for a policy in folder `dir`, which the rules'
    /// `regex.gitleaks` paths are relative to (none: they are refused).
    pub fn compile_in(
        spec: ToolGuardSpec,
        dir: Option<&std::path::Path>,
    ) -> Result<ToolGuard, ToolGuardError> {
        let ToolGuardSpec {
            deny,
            deny_message,
            rules,
            max_held_bytes,
        } = spec;
        // Every glob of every entry, each with its entry's condition.
        let mut deny_set = GlobSetBuilder::new();
        let mut deny_when: Vec<Option<Arc<Condition>>> = Vec::new();
        for (i, entry) in deny.into_iter().enumerate() {
            match entry {
                DenySpec::Glob(g) => {
                    deny_set.add(glob(&format!("deny[{i}]"), &g)?);
                    deny_when.push(None);
                }
                DenySpec::When(DenyWhenSpec { tools, when }) => {
                    if tools.is_empty() {
                        return Err(ToolGuardError {
                            field: format!("deny[{i}].tools"),
                            message: "a deny entry names the tools it denies".into(),
                        });
                    }
                    let cond = Condition::compile(&when).map_err(|message| ToolGuardError {
                        field: format!("deny[{i}].when"),
                        message,
                    })?;
                    for (j, g) in tools.iter().enumerate() {
                        deny_set.add(glob(&format!("deny[{i}].tools[{j}]"), g)?);
                        deny_when.push(Some(cond.clone()));
                    }
                }
            }
        }
        let deny = deny_set.build().map_err(|e| ToolGuardError {
            field: "deny".into(),
            message: format!("invalid globs: {e}"),
        })?;
        let max_held_bytes = match max_held_bytes {
            None => DEFAULT_MAX_HELD_BYTES,
            Some(0) => {
                return Err(ToolGuardError {
                    field: "maxHeldBytes".into(),
                    message: "0 would block every tool call".into(),
                })
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let mut compiled = Vec::with_capacity(rules.len());
        let mut specs: Vec<GuardSpec> = Vec::new();
        // For each scanner rule, the tool rule it belongs to.
        let mut owners: Vec<usize> = Vec::new();
        for (i, rule) in rules.into_iter().enumerate() {
            let place = format!("rules[{i}]");
            let fail = |field: &str, message: String| ToolGuardError {
                field: if field.is_empty() {
                    place.clone()
                } else {
                    format!("{place}.{field}")
                },
                message,
            };
            let ToolRuleSpec {
                name,
                tools,
                field,
                regex,
                action,
                response,
                when,
            } = rule;
            let when = when
                .map(|src| Condition::compile(&src).map_err(|m| fail("when", m)))
                .transpose()?;
            if tools.is_empty() {
                return Err(fail(
                    "tools",
                    "a tool rule names the tools it applies to (`tools: [\"*\"]` for all)".into(),
                ));
            }
            let tool_set = glob_set(&format!("{place}.tools"), &tools)?;
            let field = field
                .map(|f| pointer(&f))
                .transpose()
                .map_err(|m| fail("field", m))?;
            if field.is_some() && regex.is_none() {
                return Err(fail(
                    "field",
                    "`field` says which value `regex` reads; a rule without `regex` matches every call"
                        .into(),
                ));
            }
            let message = match response {
                None => None,
                Some(RejectResponseSpec {
                    status_code: Some(_),
                    ..
                }) => {
                    return Err(fail(
                        "response.statusCode",
                        "a blocked tool call is replaced in the answer, which keeps its status; only `message` applies"
                            .into(),
                    ))
                }
                Some(RejectResponseSpec { message, .. }) => message,
            };
            let scan_rule = match regex {
                None => None,
                Some(regex) => {
                    if regex.action.is_some() {
                        return Err(fail(
                            "regex.action",
                            "a tool rule's action is its own `action` (Reject or Audit)".into(),
                        ));
                    }
                    owners.push(i);
                    specs.push(guard_spec(name.clone(), regex));
                    Some(specs.len() - 1)
                }
            };
            let action = match action.unwrap_or(ToolActionSpec::Reject) {
                ToolActionSpec::Reject => ToolAction::Reject,
                ToolActionSpec::Audit => ToolAction::Audit,
            };
            compiled.push(ToolRule {
                name: name.unwrap_or_else(|| format!("toolGuard.{place}")),
                tools: tool_set,
                field,
                scan_rule,
                action,
                message: message.unwrap_or_else(|| DEFAULT_TOOL_MESSAGE.to_owned()),
                when,
            });
        }
        let scanner = GuardSet::compile_in(&specs, true, dir).map_err(
            |GuardSpecError {
                 index,
                 field,
                 message,
             }| ToolGuardError {
                field: if field.is_empty() {
                    format!("rules[{}]", owners[index])
                } else {
                    format!("rules[{}].{field}", owners[index])
                },
                message,
            },
        )?;
        Ok(ToolGuard {
            deny,
            deny_when,
            deny_message: deny_message.unwrap_or_else(|| DEFAULT_TOOL_MESSAGE.to_owned()),
            rules: compiled,
            scanner,
            max_held_bytes,
        })
    }

    /// Whether any tool is denied.
    pub fn has_deny(&self) -> bool {
        !self.deny.is_empty()
    }

    /// Whether `tool` is denied: never offered, never called (conditional
    /// entries count as holding).
    pub fn denies(&self, tool: &str) -> bool {
        self.denies_active(tool, None)
    }

    /// Whether `tool` is denied to a request whose conditions gave
    /// `active` (`None`: every entry applies).
    pub fn denies_active(&self, tool: &str, active: Option<&ToolActive>) -> bool {
        match active {
            None => self.deny.is_match(tool),
            Some(a) => self
                .deny
                .matches(tool)
                .into_iter()
                .any(|i| a.deny.get(i).copied().unwrap_or(true)),
        }
    }

    /// Whether a `deny` entry has a `when:` condition.
    pub fn deny_has_conditions(&self) -> bool {
        self.deny_when.iter().any(Option::is_some)
    }

    /// The largest tool input held while it streams.
    pub fn max_held_bytes(&self) -> usize {
        self.max_held_bytes
    }

    /// The decision on a call whose input is larger than
    /// [`Self::max_held_bytes`]: blocked (it cannot be held to be read).
    pub fn too_large(&self) -> ToolVerdict {
        ToolVerdict::Block {
            rule: "toolGuard.maxHeldBytes".into(),
            message: format!(
                "This tool call was blocked: its input is larger than the gateway inspects ({} bytes)",
                self.max_held_bytes
            ),
        }
    }

    /// Whether a rule or a `deny` entry has a `when:` condition.
    pub fn has_conditions(&self) -> bool {
        self.rules.iter().any(|r| r.when.is_some()) || self.deny_has_conditions()
    }

    /// Which rules and `deny` entries apply to a request, by their `when:`
    /// (`None`: all do).
    pub fn active(&self, vars: &Vars) -> Option<Arc<ToolActive>> {
        let holds = |w: Option<&Arc<Condition>>| w.is_none_or(|c| c.holds(vars));
        self.has_conditions().then(|| {
            Arc::new(ToolActive {
                rules: self.rules.iter().map(|r| holds(r.when.as_ref())).collect(),
                deny: self.deny_when.iter().map(|w| holds(w.as_ref())).collect(),
            })
        })
    }

    /// Decides on one complete call: `input` is its input as JSON text (an
    /// object; empty text counts as `{}`). An input that is not JSON is
    /// blocked: it cannot be read, so it cannot be allowed.
    pub fn decide(&self, tool: &str, input: &str) -> ToolVerdict {
        self.decide_active(tool, input, None)
    }

    /// [`Self::decide`] with only the rules that apply to this request
    /// (`active`: per rule; `None`: all). Denied tools stay denied.
    pub fn decide_active(
        &self,
        tool: &str,
        input: &str,
        active: Option<&ToolActive>,
    ) -> ToolVerdict {
        if self.denies_active(tool, active) {
            return ToolVerdict::Block {
                rule: "toolGuard.deny".into(),
                message: self.deny_message.clone(),
            };
        }
        let applicable: Vec<&ToolRule> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                active.is_none_or(|a| a.rules.get(*i).copied().unwrap_or(true))
                    && r.tools.is_match(tool)
            })
            .map(|(_, r)| r)
            .collect();
        if applicable.is_empty() {
            return ToolVerdict::Allow;
        }
        // The scanner's rules found in each string value (parsed only when
        // some applicable rule reads the input).
        let mut values: Vec<(String, Vec<usize>)> = Vec::new();
        if applicable.iter().any(|r| r.scan_rule.is_some()) {
            let parsed: Value = if input.trim().is_empty() {
                Value::Object(Default::default())
            } else {
                match serde_json::from_str(input) {
                    Ok(v) => v,
                    Err(e) => {
                        return ToolVerdict::Block {
                            rule: "toolGuard.input".into(),
                            message: format!(
                                "This tool call was blocked: the gateway could not read its input ({e})"
                            ),
                        }
                    }
                }
            };
            let mut path = String::new();
            string_values(&parsed, &mut path, &mut |p, text| {
                let mut found: Vec<usize> = self
                    .scanner
                    .scan_text(text)
                    .iter()
                    .map(|m| m.rule)
                    .collect();
                found.sort_unstable();
                found.dedup();
                if !found.is_empty() {
                    values.push((p.to_owned(), found));
                }
            });
        }
        for rule in applicable {
            let hit = match rule.scan_rule {
                None => true,
                Some(r) => values.iter().any(|(p, found)| {
                    found.binary_search(&r).is_ok()
                        && rule.field.as_deref().is_none_or(|f| under(p, f))
                }),
            };
            if hit {
                return match rule.action {
                    ToolAction::Reject => ToolVerdict::Block {
                        rule: rule.name.clone(),
                        message: rule.message.clone(),
                    },
                    ToolAction::Audit => ToolVerdict::Audit {
                        rule: rule.name.clone(),
                    },
                };
            }
        }
        ToolVerdict::Allow
    }
}

impl ToolJudge for ToolGuard {
    fn judge(&self, tool: &str, input: &str) -> ToolVerdict {
        self.decide(tool, input)
    }

    fn max_held_bytes(&self) -> usize {
        self.max_held_bytes
    }

    fn too_large(&self) -> ToolVerdict {
        ToolGuard::too_large(self)
    }

    fn denies(&self, tool: &str) -> bool {
        ToolGuard::denies(self, tool)
    }
}

/// Which rules and `deny` entries of a tool guard apply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolActive {
    /// Per rule.
    pub rules: Box<[bool]>,
    /// Per glob of `deny` (an entry's globs share its condition).
    pub deny: Box<[bool]>,
}

/// The tool guard of one request: only the rules and `deny` entries whose
/// `when:` held for it (decided once per request, see [`ToolGuard::active`]).
pub struct ActiveTools {
    pub guard: Arc<ToolGuard>,
    pub active: Arc<ToolActive>,
}

impl ToolJudge for ActiveTools {
    fn judge(&self, tool: &str, input: &str) -> ToolVerdict {
        self.guard.decide_active(tool, input, Some(&self.active))
    }

    fn max_held_bytes(&self) -> usize {
        self.guard.max_held_bytes
    }

    fn too_large(&self) -> ToolVerdict {
        self.guard.too_large()
    }

    fn denies(&self, tool: &str) -> bool {
        self.guard.denies_active(tool, Some(&self.active))
    }
}

/// Whether the value at pointer `path` is at or under pointer `field`.
fn under(path: &str, field: &str) -> bool {
    path == field
        || path
            .strip_prefix(field)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Calls `f` with the JSON pointer and text of every string value.
fn string_values(v: &Value, path: &mut String, f: &mut impl FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(path, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                string_values(item, path, f);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = path.len();
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                string_values(item, path, f);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// A scanner entry for one tool rule's patterns.
fn guard_spec(name: Option<String>, mut regex: RegexSpec) -> GuardSpec {
    regex.action = Some(crate::policy::config::ActionSpec::Reject);
    GuardSpec {
        name,
        restore: None,
        when: None,
        regex: Some(regex),
        response: None,
        scope: None,
        external: None,
        webhook: None,
        openai_moderation: None,
        bedrock_guardrails: None,
        google_model_armor: None,
    }
}

#[cfg(test)]
mod tests;
