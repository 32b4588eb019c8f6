//! Policy: loading, validation and compilation.
//!
//! A policy file is read once, validated with YAML paths in every error,
//! and compiled into an immutable [`Policy`]: regexes into sets, secrets read,
//! route tables sorted. The hot path only reads a compiled policy.

pub mod config;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::guard::external::ExternalGuard;
use crate::guard::tool::ToolGuard;
use crate::guard::{GuardSet, GuardSpecError};
use crate::provider::{Credential, Dialect};
pub use config::TokenUsageMode;
use config::{
    AiPolicySpec, AiSpec, BackendSpec, K8sBackendDoc, MatchSpec, NativeConfig, PoliciesSpec,
    RouteTypeSpec, SecretRefSpec,
};

/// The embedded default policy (`policies/default.yaml`), served when no
/// `--config` is given.
pub const DEFAULT_POLICY_YAML: &str = include_str!("../../policies/default.yaml");

/// A load or validation error: names the file, the place and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub origin: String,
    pub place: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: at {}: {}", self.origin, self.place, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}

/// Options that come from the command line rather than the file.
#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    /// Overrides the file's `secretsDir`.
    pub secrets_dir: Option<PathBuf>,
}

/// Route types promptgate acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteType {
    /// Anthropic Messages: guarded.
    Messages,
    /// Anthropic `/v1/messages/count_tokens`: carries the whole prompt, so it
    /// is guarded like Messages (agentgateway does not guard it).
    AnthropicTokenCount,
    /// OpenAI Chat Completions: guarded.
    Completions,
    /// Model listing: headers only.
    Models,
    /// No guards; telemetry only.
    Detect,
    /// Headers only: auth injected, body not inspected.
    Passthrough,
}

impl RouteType {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteType::Messages => "Messages",
            RouteType::AnthropicTokenCount => "AnthropicTokenCount",
            RouteType::Completions => "Completions",
            RouteType::Models => "Models",
            RouteType::Detect => "Detect",
            RouteType::Passthrough => "Passthrough",
        }
    }

    /// Whether request bodies of this type are read (guards, model override).
    pub fn inspects_request_body(self) -> bool {
        matches!(
            self,
            RouteType::Messages | RouteType::AnthropicTokenCount | RouteType::Completions
        )
    }

    /// The dialect requests of this route type speak, on a backend of
    /// `provider`'s dialect: the route's own for the LLM routes, else the
    /// backend's (what its error bodies look like).
    pub fn dialect(self, provider: Dialect) -> Dialect {
        match self {
            RouteType::Messages | RouteType::AnthropicTokenCount => Dialect::Anthropic,
            RouteType::Completions => Dialect::OpenAiChat,
            _ => provider,
        }
    }
}

/// The table used when a backend has no `routes`, and for paths a user
/// table without `'*'` does not match.
const DEFAULT_ROUTES: &[(&str, RouteType)] = &[
    ("/v1/messages/count_tokens", RouteType::AnthropicTokenCount),
    ("/v1/chat/completions", RouteType::Completions),
    ("/v1/messages", RouteType::Messages),
    ("/v1/models", RouteType::Models),
];

/// Path-suffix route table, longest key first, with a fallback.
#[derive(Debug, Clone)]
pub struct RouteTable {
    entries: Vec<(String, RouteType)>,
    /// `'*'`; `None` means: the default table decides.
    fallback: Option<RouteType>,
}

impl RouteTable {
    fn default_table() -> Self {
        RouteTable {
            entries: Vec::new(),
            fallback: None,
        }
    }

    /// Route type for a normalised path (no query string).
    pub fn route_type(&self, path: &str) -> RouteType {
        for (suffix, ty) in &self.entries {
            if path.ends_with(suffix.as_str()) {
                return *ty;
            }
        }
        if let Some(ty) = self.fallback {
            return ty;
        }
        DEFAULT_ROUTES
            .iter()
            .find(|(suffix, _)| path.ends_with(suffix))
            .map(|(_, ty)| *ty)
            .unwrap_or(RouteType::Passthrough)
    }
}

/// Optional host / path-prefix selector.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
}

impl Matcher {
    fn fits(&self, host: &str, path: &str) -> bool {
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
}

/// A compiled, immutable policy.
#[derive(Debug)]
pub struct Policy {
    pub origin: String,
    pub listen: Option<String>,
    /// `admin.listen`: address of the admin HTTP port, if configured.
    pub admin_listen: Option<String>,
    pub backends: Vec<Backend>,
    /// Things worth telling the operator that are not errors.
    pub warnings: Vec<String>,
}

/// Why no backend was selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// Envoy named a backend the policy does not have.
    UnknownName(String),
    /// Nothing named, nothing matched, and more than one backend exists.
    NoMatch,
}

impl Policy {
    /// Picks the backend: the one Envoy names (`x-promptgate-backend`), else
    /// the first whose `match` fits, else the only one.
    pub fn select(
        &self,
        hint: Option<&str>,
        host: &str,
        path: &str,
    ) -> Result<&Backend, SelectError> {
        if let Some(name) = hint {
            return self
                .backends
                .iter()
                .find(|b| b.name == name)
                .ok_or_else(|| SelectError::UnknownName(name.to_owned()));
        }
        if let Some(b) = self
            .backends
            .iter()
            .find(|b| b.matcher.as_ref().is_some_and(|m| m.fits(host, path)))
        {
            return Ok(b);
        }
        match self.backends.as_slice() {
            [only] => Ok(only),
            _ => Err(SelectError::NoMatch),
        }
    }

    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// Loads the embedded default policy.
    pub fn embedded_default(opts: &LoadOptions) -> Result<Policy, PolicyError> {
        Policy::from_yaml(DEFAULT_POLICY_YAML, "<embedded default policy>", opts)
    }

    /// Loads and compiles a policy file.
    pub fn from_file(path: &Path, opts: &LoadOptions) -> Result<Policy, PolicyError> {
        let origin = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| PolicyError {
            origin: origin.clone(),
            place: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        Policy::from_yaml(&src, &origin, opts)
    }

    /// Loads and compiles a policy from YAML text (one or more documents).
    pub fn from_yaml(src: &str, origin: &str, opts: &LoadOptions) -> Result<Policy, PolicyError> {
        let err = |place: String, message: String| PolicyError {
            origin: origin.to_owned(),
            place,
            message,
        };

        // Pass 1: what form is each document?
        let mut forms = Vec::new();
        for (i, de) in serde_yaml::Deserializer::from_str(src).enumerate() {
            let value = serde_yaml::Value::deserialize(de)
                .map_err(|e| err(doc_place(i, ""), format!("not valid YAML: {e}")))?;
            forms.push(DocForm::of(&value).map_err(|m| err(doc_place(i, ""), m))?);
        }

        // Pass 2: deserialize each document into its form, keeping paths.
        let mut listen = None;
        let mut admin_listen = None;
        let mut secrets_dir = None;
        let mut specs: Vec<(String, String, Option<MatchSpec>, AiSpec, PoliciesSpec)> = Vec::new();
        let mut warnings = Vec::new();
        let mut saw_native = false;
        for (i, de) in serde_yaml::Deserializer::from_str(src).enumerate() {
            match &forms[i] {
                DocForm::Empty => {}
                DocForm::Other { kind } => warnings.push(format!(
                    "{}: skipped a `{kind}` document (only AgentgatewayBackend is read)",
                    doc_place(i, "")
                )),
                DocForm::Native => {
                    if saw_native {
                        return Err(err(
                            doc_place(i, ""),
                            "a second native document (with `backends:`); put all backends in one"
                                .into(),
                        ));
                    }
                    saw_native = true;
                    let native: NativeConfig =
                        serde_path_to_error::deserialize(de).map_err(|e| {
                            err(
                                doc_place(i, &e.path().to_string()),
                                e.into_inner().to_string(),
                            )
                        })?;
                    listen = native.listen;
                    admin_listen = native.admin.and_then(|a| a.listen);
                    secrets_dir = native.secrets_dir;
                    for (j, b) in native.backends.into_iter().enumerate() {
                        let BackendSpec {
                            name,
                            matcher,
                            ai,
                            policies,
                        } = b;
                        specs.push((
                            doc_place(i, &format!("backends[{j}]")),
                            name,
                            matcher,
                            ai,
                            policies,
                        ));
                    }
                }
                DocForm::K8s => {
                    let doc: K8sBackendDoc = serde_path_to_error::deserialize(de).map_err(|e| {
                        err(
                            doc_place(i, &e.path().to_string()),
                            e.into_inner().to_string(),
                        )
                    })?;
                    if !doc.api_version.starts_with("agentgateway.dev/") {
                        return Err(err(
                            doc_place(i, "apiVersion"),
                            format!(
                                "`{}` is not an agentgateway.dev API version",
                                doc.api_version
                            ),
                        ));
                    }
                    specs.push((
                        doc_place(i, "spec"),
                        doc.metadata.name,
                        None,
                        doc.spec.ai,
                        doc.spec.policies,
                    ));
                }
            }
        }
        if specs.is_empty() {
            return Err(err(String::new(), "the policy defines no backend".into()));
        }

        let secrets_dir = opts.secrets_dir.clone().or(secrets_dir);
        let mut backends: Vec<Backend> = Vec::with_capacity(specs.len());
        for (place, name, matcher, ai, policies) in specs {
            if name.is_empty() {
                return Err(err(place, "a backend needs a non-empty name".into()));
            }
            if backends.iter().any(|b| b.name == name) {
                return Err(err(place, format!("backend name `{name}` is used twice")));
            }
            let backend = compile_backend(
                &place,
                name,
                matcher,
                ai,
                policies,
                secrets_dir.as_deref(),
                &mut warnings,
            )
            .map_err(|(p, m)| err(p, m))?;
            backends.push(backend);
        }
        if let Some(l) = &listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                return Err(err(
                    "listen".into(),
                    format!("`{l}` is not an address like 127.0.0.1:50051"),
                ));
            }
        }
        if let Some(l) = &admin_listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                return Err(err(
                    "admin.listen".into(),
                    format!("`{l}` is not an address like 127.0.0.1:9090"),
                ));
            }
        }
        Ok(Policy {
            origin: origin.to_owned(),
            listen,
            admin_listen,
            backends,
            warnings,
        })
    }
}

fn doc_place(index: usize, path: &str) -> String {
    match (index, path) {
        (0, "") => String::new(),
        (0, p) => p.to_owned(),
        (i, "") => format!("document {}", i + 1),
        (i, p) => format!("document {}: {p}", i + 1),
    }
}

enum DocForm {
    Empty,
    Native,
    K8s,
    Other { kind: String },
}

impl DocForm {
    fn of(value: &serde_yaml::Value) -> Result<DocForm, String> {
        let map = match value {
            serde_yaml::Value::Null => return Ok(DocForm::Empty),
            serde_yaml::Value::Mapping(m) => m,
            _ => return Err("a policy document must be a mapping".into()),
        };
        let get = |k: &str| map.get(k).and_then(|v| v.as_str());
        match (get("kind"), get("apiVersion")) {
            (Some("AgentgatewayBackend"), _) => Ok(DocForm::K8s),
            (Some(kind), Some(api)) if api.starts_with("agentgateway.dev/") => Err(format!(
                "kind `{kind}` of {api} is not supported; promptgate reads AgentgatewayBackend"
            )),
            (Some(kind), _) => Ok(DocForm::Other {
                kind: kind.to_owned(),
            }),
            (None, _)
                if map.contains_key("backends")
                    || map.contains_key("listen")
                    || map.contains_key("admin")
                    || map.contains_key("secretsDir") =>
            {
                Ok(DocForm::Native)
            }
            (None, _) => Err(
                "neither a native policy (`backends:`) nor an `AgentgatewayBackend` document"
                    .into(),
            ),
        }
    }
}

type PlaceErr = (String, String);

fn join(place: &str, rest: &str) -> String {
    if place.is_empty() {
        rest.to_owned()
    } else if place.ends_with(':') {
        format!("{place} {rest}")
    } else {
        format!("{place}.{rest}")
    }
}

fn compile_backend(
    place: &str,
    name: String,
    matcher: Option<MatchSpec>,
    ai: AiSpec,
    policies: PoliciesSpec,
    secrets_dir: Option<&Path>,
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
    let request_guards = GuardSet::compile(&guards.request, false).map_err(guard_err)?;
    let response_guards = GuardSet::compile(&guards.response, true).map_err(
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
            ToolGuard::compile(spec)
                .map(std::sync::Arc::new)
                .map_err(|e| (join(&tool_place, &e.field), e.message))
        })
        .transpose()?;

    let auth = match policies.auth.and_then(|a| a.secret_ref) {
        None => None,
        Some(secret_ref) => Some(read_secret(
            &join(place, "policies.auth.secretRef"),
            &secret_ref,
            secrets_dir,
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
    })
}

fn compile_routes(
    place: &str,
    routes: Option<std::collections::BTreeMap<String, RouteTypeSpec>>,
) -> Result<RouteTable, PlaceErr> {
    let Some(routes) = routes else {
        return Ok(RouteTable::default_table());
    };
    let mut table = RouteTable {
        entries: Vec::new(),
        fallback: None,
    };
    for (key, spec) in routes {
        let ty = match spec {
            RouteTypeSpec::Messages => RouteType::Messages,
            RouteTypeSpec::AnthropicTokenCount => RouteType::AnthropicTokenCount,
            RouteTypeSpec::Completions => RouteType::Completions,
            RouteTypeSpec::Models => RouteType::Models,
            RouteTypeSpec::Detect => RouteType::Detect,
            RouteTypeSpec::Passthrough => RouteType::Passthrough,
            other => {
                return Err((
                    format!("{place}['{key}']"),
                    format!(
                        "route type `{other:?}` is not supported by promptgate yet; its prompts would go unguarded. \
                         Map the path to `Passthrough` to forward it without inspection on purpose"
                    ),
                ))
            }
        };
        if key == "*" {
            table.fallback = Some(ty);
        } else if key.is_empty() {
            return Err((
                place.to_owned(),
                "an empty route key; use '*' for the fallback".into(),
            ));
        } else {
            // Keys are matched against normalised paths; normalise them alike.
            let key = if key.starts_with('/') {
                crate::path::normalize(&key).into_owned()
            } else {
                key
            };
            table.entries.push((key, ty));
        }
    }
    table
        .entries
        .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    Ok(table)
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

#[cfg(test)]
mod tests;
