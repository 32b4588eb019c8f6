//! A typed policy builder for tests: the shapes of README's "Policy
//! reference" (`src/policy/config.rs`), serialised with serde.
//!
//! ```ignore
//! let p = Policy::new().backend(
//!     Backend::anthropic("anthropic")
//!         .key("anthropic-secret", "sk-test")
//!         .request_guard(Guard::regex(["secret"]).name("codename").mask())
//!         .response_guard(Guard::builtins(["CreditCard"]).reject().message("no")),
//! );
//! p.to_yaml();          // native form: `backends: [...]`
//! p.kubernetes().to_yaml(); // one AgentgatewayBackend document per backend
//! ```
//!
//! [`Policy::secrets`] lists the secret values the backends' keys name; the
//! launcher writes them next to the policy.

use std::collections::BTreeMap;

use serde::Serialize;

/// A policy file: backends, in the native or the Kubernetes form.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    backends: Vec<Backend>,
    kubernetes: bool,
    /// `maskKey: {env: VAR}`.
    mask_key_env: Option<String>,
    /// `identity: ...` (native form only).
    identity: Option<serde_yaml::Value>,
    /// `audit: ...` (native form only).
    audit: Option<serde_yaml::Value>,
}

#[derive(Clone, Debug, Serialize)]
struct MaskKeyRef {
    env: String,
}

impl Policy {
    pub fn new() -> Policy {
        Policy::default()
    }

    pub fn backend(mut self, backend: Backend) -> Policy {
        self.backends.push(backend);
        self
    }

    /// Written as `AgentgatewayBackend` documents (`apiVersion:
    /// agentgateway.dev/v1alpha1`), one per backend.
    pub fn kubernetes(mut self) -> Policy {
        self.kubernetes = true;
        self
    }

    /// `maskKey: {env: var}` (native form: top level; Kubernetes form: a
    /// `PromptgateSettings` document).
    pub fn mask_key_env(mut self, var: &str) -> Policy {
        self.mask_key_env = Some(var.to_owned());
        self
    }

    /// `identity:` as this YAML (native form).
    pub fn identity_yaml(mut self, yaml: &str) -> Policy {
        self.identity = Some(serde_yaml::from_str(yaml).unwrap());
        self
    }

    /// `audit:` as this YAML (native form).
    pub fn audit_yaml(mut self, yaml: &str) -> Policy {
        self.audit = Some(serde_yaml::from_str(yaml).unwrap());
        self
    }

    /// `(secret name, value)` of every backend key given with a value.
    pub fn secrets(&self) -> Vec<(String, String)> {
        self.backends
            .iter()
            .filter_map(|b| b.secret_value.clone())
            .collect()
    }

    /// Compiles this policy as `promptgate serve` would load it: the file
    /// and its secrets written to a folder (kept alive by the returned
    /// guard), then `Policy::from_file`. For in-process benchmarks.
    pub fn load(&self) -> (tempfile::TempDir, promptgate::policy::Policy) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.yaml"), self.to_yaml()).unwrap();
        for (name, value) in self.secrets() {
            let d = dir.path().join("secrets").join(&name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("Authorization"), value).unwrap();
        }
        let options = promptgate::policy::LoadOptions {
            secrets_dir: Some(dir.path().join("secrets")),
        };
        let policy =
            promptgate::policy::Policy::from_file(&dir.path().join("policy.yaml"), &options)
                .expect("the policy loads");
        (dir, policy)
    }

    /// The policy as YAML (serde_yaml).
    pub fn to_yaml(&self) -> String {
        let mask_key = self
            .mask_key_env
            .as_ref()
            .map(|env| MaskKeyRef { env: env.clone() });
        if !self.kubernetes {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Native<'a> {
                #[serde(skip_serializing_if = "Option::is_none")]
                mask_key: Option<MaskKeyRef>,
                #[serde(skip_serializing_if = "Option::is_none")]
                identity: Option<&'a serde_yaml::Value>,
                #[serde(skip_serializing_if = "Option::is_none")]
                audit: Option<&'a serde_yaml::Value>,
                backends: &'a [Backend],
            }
            return serde_yaml::to_string(&Native {
                mask_key,
                identity: self.identity.as_ref(),
                audit: self.audit.as_ref(),
                backends: &self.backends,
            })
            .unwrap();
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Doc<'a> {
            api_version: &'static str,
            kind: &'static str,
            metadata: Metadata<'a>,
            spec: Spec<'a>,
        }
        #[derive(Serialize)]
        struct Metadata<'a> {
            name: &'a str,
        }
        #[derive(Serialize)]
        struct Spec<'a> {
            ai: &'a Ai,
            #[serde(skip_serializing_if = "Policies::is_empty")]
            policies: &'a Policies,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Settings {
            api_version: &'static str,
            kind: &'static str,
            spec: SettingsSpec,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct SettingsSpec {
            mask_key: MaskKeyRef,
        }
        let settings = mask_key.map(|mask_key| {
            serde_yaml::to_string(&Settings {
                api_version: "promptgate.dev/v1alpha1",
                kind: "PromptgateSettings",
                spec: SettingsSpec { mask_key },
            })
            .unwrap()
        });
        let docs: Vec<String> = settings
            .into_iter()
            .chain(self.backends.iter().map(|b| {
                serde_yaml::to_string(&Doc {
                    api_version: "agentgateway.dev/v1alpha1",
                    kind: "AgentgatewayBackend",
                    metadata: Metadata { name: &b.name },
                    spec: Spec {
                        ai: &b.ai,
                        policies: &b.policies,
                    },
                })
                .unwrap()
            }))
            .collect();
        docs.join("---\n")
    }

    /// The YAML documents [`Policy::to_yaml`] writes, parsed.
    pub fn documents(&self) -> Vec<serde_yaml::Value> {
        use serde::Deserialize;
        serde_yaml::Deserializer::from_str(&self.to_yaml())
            .map(|d| serde_yaml::Value::deserialize(d).unwrap())
            .collect()
    }
}

/// One backend.
#[derive(Clone, Debug, Serialize)]
pub struct Backend {
    name: String,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    matcher: Option<Match>,
    ai: Ai,
    #[serde(skip_serializing_if = "Policies::is_empty")]
    policies: Policies,
    #[serde(skip)]
    secret_value: Option<(String, String)>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_prefix: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
struct Ai {
    provider: Provider,
}

#[derive(Clone, Debug, Default, Serialize)]
struct Provider {
    #[serde(skip_serializing_if = "Option::is_none")]
    anthropic: Option<Model>,
    #[serde(skip_serializing_if = "Option::is_none")]
    openai: Option<Model>,
}

#[derive(Clone, Debug, Default, Serialize)]
struct Model {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
struct Policies {
    #[serde(skip_serializing_if = "Option::is_none")]
    ai: Option<AiPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<Auth>,
}

impl Policies {
    fn is_empty(&self) -> bool {
        self.ai.is_none() && self.auth.is_none()
    }
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct AiPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    routes: Option<BTreeMap<String, Route>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_guard: Option<PromptGuard>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_usage: Option<TokenUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_guard: Option<ToolGuard>,
}

/// `policies.ai.toolGuard`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolGuard {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deny: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deny_message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rules: Vec<ToolRule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_held_bytes: Option<u64>,
}

impl ToolGuard {
    pub fn new() -> ToolGuard {
        ToolGuard::default()
    }

    /// Tool-name globs never offered and always blocked.
    pub fn deny<S: AsRef<str>>(mut self, globs: impl IntoIterator<Item = S>) -> ToolGuard {
        self.deny = globs.into_iter().map(|g| g.as_ref().to_owned()).collect();
        self
    }

    pub fn deny_message(mut self, message: &str) -> ToolGuard {
        self.deny_message = Some(message.to_owned());
        self
    }

    pub fn rule(mut self, rule: ToolRule) -> ToolGuard {
        self.rules.push(rule);
        self
    }

    pub fn max_held_bytes(mut self, n: u64) -> ToolGuard {
        self.max_held_bytes = Some(n);
        self
    }
}

/// One `toolGuard.rules[]` entry.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    tools: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    regex: Option<ToolRegex>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<ToolResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    when: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
struct ToolRegex {
    matches: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
struct ToolResponse {
    message: String,
}

impl ToolRule {
    /// A rule for these tools (globs); without patterns it matches every call.
    pub fn tools<S: AsRef<str>>(tools: impl IntoIterator<Item = S>) -> ToolRule {
        ToolRule {
            name: None,
            tools: tools.into_iter().map(|t| t.as_ref().to_owned()).collect(),
            field: None,
            regex: None,
            action: None,
            response: None,
            when: None,
        }
    }

    /// `when:`: a CEL condition on who is asking and what.
    pub fn when(mut self, condition: &str) -> ToolRule {
        self.when = Some(condition.to_owned());
        self
    }

    pub fn name(mut self, name: &str) -> ToolRule {
        self.name = Some(name.to_owned());
        self
    }

    /// Patterns over the input's string values.
    pub fn matches<S: AsRef<str>>(mut self, patterns: impl IntoIterator<Item = S>) -> ToolRule {
        self.regex = Some(ToolRegex {
            matches: patterns
                .into_iter()
                .map(|p| p.as_ref().to_owned())
                .collect(),
        });
        self
    }

    pub fn field(mut self, field: &str) -> ToolRule {
        self.field = Some(field.to_owned());
        self
    }

    pub fn audit(mut self) -> ToolRule {
        self.action = Some("Audit");
        self
    }

    pub fn message(mut self, message: &str) -> ToolRule {
        self.response = Some(ToolResponse {
            message: message.to_owned(),
        });
        self
    }
}

#[derive(Clone, Debug, Default, Serialize)]
struct PromptGuard {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    request: Vec<Guard>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    response: Vec<Guard>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Auth {
    secret_ref: SecretRef,
}

#[derive(Clone, Debug, Serialize)]
struct SecretRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<String>,
}

/// Route types (agentgateway's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Route {
    Messages,
    AnthropicTokenCount,
    Completions,
    Models,
    Detect,
    Passthrough,
}

/// `tokenUsage`: which responses are read for their token usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TokenUsage {
    Streams,
    All,
    Off,
}

impl Backend {
    fn new(name: &str, provider: Provider) -> Backend {
        Backend {
            name: name.to_owned(),
            matcher: None,
            ai: Ai { provider },
            policies: Policies::default(),
            secret_value: None,
        }
    }

    /// `ai: {provider: {anthropic: {}}}`
    pub fn anthropic(name: &str) -> Backend {
        Self::new(
            name,
            Provider {
                anthropic: Some(Model::default()),
                ..Provider::default()
            },
        )
    }

    /// `ai: {provider: {openai: {}}}`
    pub fn openai(name: &str) -> Backend {
        Self::new(
            name,
            Provider {
                openai: Some(Model::default()),
                ..Provider::default()
            },
        )
    }

    /// The provider's `model` override.
    pub fn model(mut self, model: &str) -> Backend {
        let p = &mut self.ai.provider;
        let m = p.anthropic.as_mut().or(p.openai.as_mut()).unwrap();
        m.model = Some(model.to_owned());
        self
    }

    /// `match: {host, pathPrefix}` (either may be empty: left out).
    pub fn matching(mut self, host: &str, path_prefix: &str) -> Backend {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        self.matcher = Some(Match {
            host: some(host),
            path_prefix: some(path_prefix),
        });
        self
    }

    /// The provider key from secret `secret_name` (`auth: {secretRef: {name}}`),
    /// whose file the launcher writes with `value`.
    pub fn key(mut self, secret_name: &str, value: &str) -> Backend {
        self = self.secret_ref(secret_name);
        self.secret_value = Some((secret_name.to_owned(), value.to_owned()));
        self
    }

    /// `auth: {secretRef: {name}}` alone (the secret is not written).
    pub fn secret_ref(mut self, secret_name: &str) -> Backend {
        self.policies.auth = Some(Auth {
            secret_ref: SecretRef {
                name: Some(secret_name.to_owned()),
                env: None,
            },
        });
        self
    }

    /// `auth: {secretRef: {env}}`.
    pub fn key_from_env(mut self, var: &str) -> Backend {
        self.policies.auth = Some(Auth {
            secret_ref: SecretRef {
                name: None,
                env: Some(var.to_owned()),
            },
        });
        self
    }

    fn ai_policy(&mut self) -> &mut AiPolicy {
        self.policies.ai.get_or_insert_with(AiPolicy::default)
    }

    /// One `routes` entry (path suffix, or `*`).
    pub fn route(mut self, path: &str, route: Route) -> Backend {
        self.ai_policy()
            .routes
            .get_or_insert_with(BTreeMap::new)
            .insert(path.to_owned(), route);
        self
    }

    /// `policies.ai.toolGuard`.
    pub fn tool_guard(mut self, guard: ToolGuard) -> Backend {
        self.ai_policy().tool_guard = Some(guard);
        self
    }

    pub fn token_usage(mut self, mode: TokenUsage) -> Backend {
        self.ai_policy().token_usage = Some(mode);
        self
    }

    pub fn request_guard(mut self, guard: Guard) -> Backend {
        let pg = self
            .ai_policy()
            .prompt_guard
            .get_or_insert_with(PromptGuard::default);
        pg.request.push(guard);
        self
    }

    pub fn response_guard(mut self, guard: Guard) -> Backend {
        let pg = self
            .ai_policy()
            .prompt_guard
            .get_or_insert_with(PromptGuard::default);
        pg.response.push(guard);
        self
    }
}

/// One `promptGuard` entry: a `regex` guard or an `external` one.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Guard {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    restore: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    when: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    regex: Option<Regex>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<RejectResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<Vec<Scope>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external: Option<External>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Regex {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<Action>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    matches: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    builtins: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    case_sensitive: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    normalize: Option<bool>,
}

#[derive(Clone, Copy, Debug, Serialize)]
enum Action {
    Reject,
    Mask,
    Audit,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct RejectResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<u16>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct External {
    address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_mode: Option<FailureMode>,
}

#[derive(Clone, Copy, Debug, Serialize)]
enum FailureMode {
    FailClosed,
    FailOpen,
}

/// Guard scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Scope {
    SystemPrompt,
    Messages,
    ToolOutput,
    ToolInput,
    UserMessages,
    AssistantMessages,
    Documents,
    ToolDefinitions,
    LatestUserTurn,
}

fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items.into_iter().map(|s| s.as_ref().to_owned()).collect()
}

impl Guard {
    /// A `regex` guard with these patterns (no action yet: agentgateway's default).
    pub fn regex<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Guard {
        Guard {
            regex: Some(Regex {
                matches: strings(patterns),
                ..Regex::default()
            }),
            ..Guard::default()
        }
    }

    /// A `regex` guard with these builtins (`CreditCard`, `Email`, ...).
    pub fn builtins<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Guard {
        Guard {
            regex: Some(Regex {
                builtins: strings(names),
                ..Regex::default()
            }),
            ..Guard::default()
        }
    }

    /// An `external` guard service at `address` (`http://host:port`).
    pub fn external(address: &str) -> Guard {
        Guard {
            external: Some(External {
                address: address.to_owned(),
                timeout: None,
                failure_mode: None,
            }),
            ..Guard::default()
        }
    }

    fn regex_mut(&mut self) -> &mut Regex {
        self.regex.as_mut().expect("a regex guard")
    }

    fn external_mut(&mut self) -> &mut External {
        self.external.as_mut().expect("an external guard")
    }

    pub fn name(mut self, name: &str) -> Guard {
        self.name = Some(name.to_owned());
        self
    }

    /// More builtins on a regex guard.
    pub fn and_builtins<S: AsRef<str>>(mut self, names: impl IntoIterator<Item = S>) -> Guard {
        self.regex_mut().builtins.extend(strings(names));
        self
    }

    /// `restore: false`: masked values are not put back in the answer.
    pub fn no_restore(mut self) -> Guard {
        self.restore = Some(false);
        self
    }

    /// `action: Mask`
    pub fn mask(mut self) -> Guard {
        self.regex_mut().action = Some(Action::Mask);
        self
    }

    /// `action: Reject`
    pub fn reject(mut self) -> Guard {
        self.regex_mut().action = Some(Action::Reject);
        self
    }

    /// `action: Audit` (shadow mode)
    pub fn audit(mut self) -> Guard {
        self.regex_mut().action = Some(Action::Audit);
        self
    }

    /// `when:`: a CEL condition on who is asking and what.
    pub fn when(mut self, condition: &str) -> Guard {
        self.when = Some(condition.to_owned());
        self
    }

    pub fn case_sensitive(mut self, yes: bool) -> Guard {
        self.regex_mut().case_sensitive = Some(yes);
        self
    }

    pub fn normalize(mut self, yes: bool) -> Guard {
        self.regex_mut().normalize = Some(yes);
        self
    }

    /// The reject answer's `response.message`.
    pub fn message(mut self, message: &str) -> Guard {
        self.response.get_or_insert_with(Default::default).message = Some(message.to_owned());
        self
    }

    /// The reject answer's `response.statusCode`.
    pub fn status(mut self, status: u16) -> Guard {
        self.response
            .get_or_insert_with(Default::default)
            .status_code = Some(status);
        self
    }

    pub fn scope(mut self, scopes: impl IntoIterator<Item = Scope>) -> Guard {
        self.scope = Some(scopes.into_iter().collect());
        self
    }

    /// An external guard's deadline, e.g. `500ms`.
    pub fn timeout(mut self, timeout: &str) -> Guard {
        self.external_mut().timeout = Some(timeout.to_owned());
        self
    }

    /// `failureMode: FailOpen`
    pub fn fail_open(mut self) -> Guard {
        self.external_mut().failure_mode = Some(FailureMode::FailOpen);
        self
    }

    /// `failureMode: FailClosed`
    pub fn fail_closed(mut self) -> Guard {
        self.external_mut().failure_mode = Some(FailureMode::FailClosed);
        self
    }
}

/// A policy file's text and the secrets it refers to.
pub struct PolicyText {
    pub(super) yaml: String,
    pub(super) secrets: Vec<(String, String)>,
}

impl From<&str> for PolicyText {
    fn from(yaml: &str) -> Self {
        PolicyText {
            yaml: yaml.to_owned(),
            secrets: Vec::new(),
        }
    }
}

impl From<String> for PolicyText {
    fn from(yaml: String) -> Self {
        PolicyText {
            yaml,
            secrets: Vec::new(),
        }
    }
}

impl From<&String> for PolicyText {
    fn from(yaml: &String) -> Self {
        yaml.as_str().into()
    }
}

impl From<&Policy> for PolicyText {
    fn from(p: &Policy) -> Self {
        PolicyText {
            yaml: p.to_yaml(),
            secrets: p.secrets(),
        }
    }
}

impl From<Policy> for PolicyText {
    fn from(p: Policy) -> Self {
        (&p).into()
    }
}
