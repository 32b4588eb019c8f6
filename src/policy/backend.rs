//! One backend: its compiled form, and compiling it from its spec
//! (provider, model, routes, guards, auth).

use std::path::Path;

use super::config::{AiPolicySpec, AiSpec, MatchSpec, PoliciesSpec, SecretRefSpec, TokenUsageMode};
use super::routes::{compile_routes, RouteTable};
use super::{join, PlaceErr};
use crate::guard::external::ExternalGuard;
use crate::guard::tool::ToolGuard;
use crate::guard::{GuardSet, GuardSpecError};
use crate::provider::{Credential, Dialect};

/// Optional host / path-prefix selector.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
}

impl Matcher {
    pub(super) fn fits(&self, host: &str, path: &str) -> bool {
        let host_ok = self.host.as_deref().is_none_or(|h| {
            let host = host.rsplit_once(':').map_or(host, |(h, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            });
            h.eq_ignore_ascii_case(host)
        });
        let path_ok = self
            .path_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p));
        host_ok && path_ok
    }
}

/// One compiled backend.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub matcher: Option<Matcher>,
    pub provider: Dialect,
    /// `provider.<kind>.model`: forwarded bodies carry this model.
    pub model: Option<String>,
    pub routes: RouteTable,
    pub request_guards: GuardSet,
    /// External guard services consulted after the local guards.
    pub external_guards: Vec<ExternalGuard>,
    /// Guards on response text (JSON bodies and SSE streams).
    pub response_guards: std::sync::Arc<GuardSet>,
    pub auth: Option<Credential>,
    /// `policies.ai.tokenUsage`: responses read only for their token usage.
    pub token_usage: TokenUsageMode,
    /// `policies.ai.toolGuard`: which tools are offered and which calls
    /// reach the agent.
    pub tool_guard: Option<std::sync::Arc<ToolGuard>>,
    /// `policies.ai.budgets`: token, spend and request limits per bucket.
    pub budgets: Option<std::sync::Arc<crate::budget::Budgets>>,
}

impl Backend {
    /// Tags this backend's placeholders with `key`.
    pub(super) fn set_mask_key(&mut self, key: &std::sync::Arc<crate::guard::MaskKey>) {
        self.request_guards.set_mask_key(key.clone());
        if let Some(guards) = std::sync::Arc::get_mut(&mut self.response_guards) {
            guards.set_mask_key(key.clone());
        }
    }

    /// Whether a guard or tool rule of this backend has a `when:`
    /// condition (the request's path and headers are then kept for it).
    pub fn has_conditions(&self) -> bool {
        self.request_guards.has_conditions()
            || self.response_guards.has_conditions()
            || self.tool_guard.as_ref().is_some_and(|t| t.has_conditions())
    }

    /// Whether some expression of this backend (a guard's `when:`, a
    /// budget's `key:` or `when:`) may read the request's path and headers.
    pub fn reads_request_facts(&self) -> bool {
        self.has_conditions() || self.budgets.is_some()
    }

    /// Whether a mask of this backend's request guards (local or
    /// external) is restored in the response.
    pub fn restores(&self) -> bool {
        self.request_guards.restores() || self.external_guards.iter().any(|g| g.restore)
    }

    /// Whether a budget of tokens or spend debits every answer's usage.
    pub fn budgets_read_usage(&self) -> bool {
        self.budgets.as_ref().is_some_and(|b| b.reads_usage())
    }
}

/// Where the files a policy names are: mounted secrets, and the folder of
/// the policy file (`regex.gitleaks` paths are relative to it).
pub(super) struct Folders<'a> {
    pub secrets: Option<&'a Path>,
    pub policy: &'a Path,
}

pub(super) fn compile_backend(
    place: &str,
    name: String,
    matcher: Option<MatchSpec>,
    ai: AiSpec,
    policies: PoliciesSpec,
    folders: &Folders<'_>,
    warnings: &mut Vec<String>,
) -> Result<Backend, PlaceErr> {
    let provider_place = join(place, "ai.provider");
    let (provider, model_spec) = match (ai.provider.anthropic, ai.provider.openai) {
        (Some(m), None) => (Dialect::Anthropic, m),
        (None, Some(m)) => (Dialect::OpenAiChat, m),
        (None, None) => {
            return Err((
                provider_place,
                "name one provider: `anthropic` or `openai`".into(),
            ))
        }
        (Some(_), Some(_)) => {
            return Err((
                provider_place,
                "name exactly one provider, not both `anthropic` and `openai`".into(),
            ))
        }
    };
    if ai.provider.host.is_some() || ai.provider.port.is_some() || ai.provider.path.is_some() {
        warnings.push(format!(
            "{provider_place}: host/port/path are ignored: the upstream is the Envoy cluster of the route"
        ));
    }
    let model = model_spec.model.filter(|m| !m.is_empty());
    if let Some(m) = &model {
        if m.chars().any(|c| c.is_control()) {
            return Err((
                join(&provider_place, "model"),
                "the model name has control characters".into(),
            ));
        }
    }

    let AiPolicySpec {
        routes,
        prompt_guard,
        token_usage,
        tool_guard,
        budgets,
    } = policies.ai.unwrap_or_default();
    let routes = compile_routes(&join(place, "policies.ai.routes"), routes)?;

    let guard_place = join(place, "policies.ai.promptGuard");
    let guards = prompt_guard.unwrap_or_default();
    let guard_err = |GuardSpecError {
                         index,
                         field,
                         message,
                     }: GuardSpecError| {
        let mut p = join(&guard_place, &format!("request[{index}]"));
        if !field.is_empty() {
            p = join(&p, &field);
        }
        (p, message)
    };
    let external_guards = ExternalGuard::compile_all(&guards.request).map_err(guard_err)?;
    let request_guards =
        GuardSet::compile_in(&guards.request, false, Some(folders.policy)).map_err(guard_err)?;
    let response_guards = GuardSet::compile_in(&guards.response, true, Some(folders.policy))
        .map_err(
            |GuardSpecError {
                 index,
                 field,
                 message,
             }| {
                let mut p = join(&guard_place, &format!("response[{index}]"));
                if !field.is_empty() {
                    p = join(&p, &field);
                }
                (p, message)
            },
        )?;

    let tool_place = join(place, "policies.ai.toolGuard");
    let tool_guard = tool_guard
        .map(|spec| {
            ToolGuard::compile_in(spec, Some(folders.policy))
                .map(std::sync::Arc::new)
                .map_err(|e| (join(&tool_place, &e.field), e.message))
        })
        .transpose()?;

    let budget_place = join(place, "policies.ai.budgets");
    let budgets = budgets
        .map(|spec| {
            crate::budget::compile(spec)
                .map(std::sync::Arc::new)
                .map_err(|(field, message)| (join(&budget_place, &field), message))
        })
        .transpose()?;

    let auth = match policies.auth.and_then(|a| a.secret_ref) {
        None => None,
        Some(secret_ref) => Some(read_secret(
            &join(place, "policies.auth.secretRef"),
            &secret_ref,
            folders.secrets,
            provider,
        )?),
    };

    let matcher = matcher.map(|m| Matcher {
        host: m.host,
        path_prefix: m.path_prefix,
    });
    Ok(Backend {
        name,
        matcher,
        provider,
        model,
        routes,
        request_guards,
        external_guards,
        response_guards: std::sync::Arc::new(response_guards),
        auth,
        token_usage: token_usage.unwrap_or_default(),
        tool_guard,
        budgets,
    })
}

fn read_secret(
    place: &str,
    secret_ref: &SecretRefSpec,
    secrets_dir: Option<&Path>,
    provider: Dialect,
) -> Result<Credential, PlaceErr> {
    let (raw, source) = match (&secret_ref.name, &secret_ref.env) {
        (Some(name), None) => {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err((
                    join(place, "name"),
                    format!("`{name}` is not a valid secret name"),
                ));
            }
            let Some(dir) = secrets_dir else {
                return Err((
                    join(place, "name"),
                    format!("secret `{name}` needs a secrets folder: set `secretsDir:` or pass --secrets-dir"),
                ));
            };
            let file = dir.join(name).join("Authorization");
            let raw = std::fs::read_to_string(&file).map_err(|e| {
                (
                    join(place, "name"),
                    format!("secret `{name}`: cannot read {}: {e}", file.display()),
                )
            })?;
            (raw, format!("secret `{name}` ({})", file.display()))
        }
        (None, Some(var)) => {
            let raw = std::env::var(var).map_err(|_| {
                (
                    join(place, "env"),
                    format!("environment variable `{var}` is not set"),
                )
            })?;
            (raw, format!("environment variable `{var}`"))
        }
        _ => {
            return Err((
                place.to_owned(),
                "give exactly one of `name` (a mounted secret) or `env` (an environment variable)"
                    .into(),
            ))
        }
    };
    Credential::from_raw(provider, &raw).map_err(|m| (place.to_owned(), format!("{source}: {m}")))
}
