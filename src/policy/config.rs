//! The policy file as written by users: serde model of the native form and
//! of agentgateway's `AgentgatewayBackend` documents.
//!
//! Every struct denies unknown fields: a typo must never silently switch a
//! guard off.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The native form: one document with `backends:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NativeConfig {
    /// Address the ext_proc gRPC server listens on.
    pub listen: Option<String>,
    /// Folder holding mounted secrets (`<secretsDir>/<name>/Authorization`).
    pub secrets_dir: Option<PathBuf>,
    /// The admin HTTP port (`/metrics`, `/healthz`, `/readyz`).
    pub admin: Option<AdminSpec>,
    /// The key of mask placeholders' tags (deployment-wide).
    pub mask_key: Option<MaskKeySpec>,
    /// Who is asking: where Envoy put the verified caller.
    pub identity: Option<IdentitySpec>,
    /// The tamper-evident decision log.
    pub audit: Option<AuditSpec>,
    /// The ext_proc port over mutual TLS.
    pub tls: Option<TlsSpec>,
    #[serde(default)]
    pub backends: Vec<BackendSpec>,
}

/// `tls`: the ext_proc and health port over TLS; only clients with a
/// certificate signed by `clientCaFile` get an answer. Paths are relative
/// to the policy file's folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsSpec {
    /// The server's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
    /// The CA (PEM) client certificates must chain to.
    pub client_ca_file: PathBuf,
}

/// `audit`: the hash-chained decision log (deployment-wide).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditSpec {
    /// The file (rotated as `<path>.1`, `.2`, …).
    pub path: PathBuf,
    /// Record plain allows too (default false).
    pub allows: Option<bool>,
    /// Rotate at this many bytes (default 100 MiB).
    pub max_bytes: Option<u64>,
    /// Rotated files kept (default 10).
    pub max_files: Option<u32>,
    /// Entries waiting for the writer, at most (default 10000).
    pub queue: Option<usize>,
    /// A full queue: `Drop` (default) or `FailClosed`.
    pub on_overflow: Option<OverflowSpec>,
    /// How often the chain head is published (default 60s).
    pub head_every: Option<String>,
    /// Also send every line and head as an OTLP log record to the
    /// collector traces go to (default false).
    pub otlp: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OverflowSpec {
    Drop,
    FailClosed,
}

/// `identity`: the caller as Envoy verified it (deployment-wide).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdentitySpec {
    /// Claims of a JWT verified by Envoy's `jwt_authn` filter.
    pub jwt: Option<JwtIdentitySpec>,
    /// A request without a verified identity is refused (401).
    pub required: Option<bool>,
    /// How the user appears in logs, spans and metadata.
    pub telemetry: Option<UserTelemetrySpec>,
}

/// Where `jwt_authn` (`payload_in_metadata`) put the verified payload,
/// and which claims are the user and the groups.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtIdentitySpec {
    /// Default `envoy.filters.http.jwt_authn`.
    pub namespace: Option<String>,
    /// Default `payload`.
    pub key: Option<String>,
    /// Default `sub`.
    pub user: Option<String>,
    /// Default `groups`; a list of strings or one string.
    pub groups: Option<String>,
}

/// The user in telemetry: as it is, or a keyed hash (`maskKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum UserTelemetrySpec {
    Plain,
    Hashed,
}

/// `maskKey`: `{secretRef: {name: X}}` reads `<secretsDir>/X/key`;
/// `{env: VAR}` reads an environment variable.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaskKeySpec {
    pub secret_ref: Option<NameRefSpec>,
    pub env: Option<String>,
}

/// `{name: X}`: a mounted secret.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NameRefSpec {
    pub name: String,
}

/// promptgate's own settings in the Kubernetes-document form
/// (`apiVersion: promptgate.dev/v1alpha1`, `kind: PromptgateSettings`):
/// what the native form keeps at its top level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SettingsDoc {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: Option<serde_yaml::Value>,
    #[serde(default)]
    pub spec: SettingsSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SettingsSpec {
    pub mask_key: Option<MaskKeySpec>,
    pub identity: Option<IdentitySpec>,
    pub audit: Option<AuditSpec>,
    pub tls: Option<TlsSpec>,
}

/// `admin: {listen: 127.0.0.1:9090}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdminSpec {
    pub listen: Option<String>,
}

/// One backend of the native form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendSpec {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: Option<MatchSpec>,
    pub ai: AiSpec,
    #[serde(default)]
    pub policies: PoliciesSpec,
}

/// A Kubernetes `AgentgatewayBackend` document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sBackendDoc {
    pub api_version: String,
    pub kind: String,
    pub metadata: K8sMetadata,
    pub spec: K8sBackendSpec,
}

/// Kubernetes object metadata: only the name matters; the rest of what
/// Kubernetes writes there (labels, uid, ...) is accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct K8sMetadata {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sBackendSpec {
    pub ai: AiSpec,
    #[serde(default)]
    pub policies: PoliciesSpec,
}

/// Optional selection of a backend by request host and path prefix, used
/// when Envoy names no backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchSpec {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AiSpec {
    pub provider: ProviderSpec,
}

/// `ai.provider`: exactly one provider kind. `host`, `port` and `path`
/// (agentgateway's upstream overrides) are accepted for compatibility; in
/// promptgate the upstream is Envoy's cluster, so they do not change routing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderSpec {
    pub anthropic: Option<ModelSpec>,
    pub openai: Option<ModelSpec>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelSpec {
    pub model: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoliciesSpec {
    pub ai: Option<AiPolicySpec>,
    pub auth: Option<AuthSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AiPolicySpec {
    pub routes: Option<BTreeMap<String, RouteTypeSpec>>,
    pub prompt_guard: Option<PromptGuardSpec>,
    /// promptgate addition: which responses are read for their token usage.
    pub token_usage: Option<TokenUsageMode>,
    /// promptgate addition: guards on the tool calls a model asks an agent
    /// to run.
    pub tool_guard: Option<ToolGuardSpec>,
    /// promptgate addition: token, spend and request budgets per bucket
    /// (a person, a group, ...), held in Redis across replicas.
    pub budgets: Option<BudgetsSpec>,
}

/// `policies.ai.budgets`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BudgetsSpec {
    /// Where the counts live (absent: in this process only).
    pub store: Option<BudgetStoreSpec>,
    /// The store failed or was slow: `Allow` (default) or `Reject` (503).
    pub on_store_error: Option<StoreErrorSpec>,
    /// The longest a decision waits for the store (default 50ms).
    pub store_timeout: Option<String>,
    /// Who debits a response's usage: `InBand` (default: promptgate reads
    /// the answer and debits before its last byte goes on) or `AccessLog`
    /// (the gateway reads the usage and reports it to promptgate's
    /// access-log service, which debits it after the answer).
    pub debit: Option<DebitSpec>,
    /// USD per million tokens by model glob; merged over the default table.
    #[serde(default)]
    pub prices: BTreeMap<String, PriceSpec>,
    #[serde(default)]
    pub limits: Vec<LimitSpec>,
}

/// `budgets.store`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BudgetStoreSpec {
    pub redis: Option<RedisStoreSpec>,
}

/// `budgets.store.redis`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedisStoreSpec {
    /// `redis://host:port[/db]` (`rediss://` is not built in).
    pub url: String,
    /// Prefix of every key (default `promptgate:`).
    pub key_prefix: Option<String>,
}

/// `budgets.debit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DebitSpec {
    /// promptgate reads the answer and debits before its end goes on.
    InBand,
    /// The gateway reads the usage; its access log reports it (shipped
    /// Envoy config), and promptgate debits it then.
    AccessLog,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum StoreErrorSpec {
    /// Forward the request unchecked (logged and counted).
    Allow,
    /// Refuse it: 503 in the provider's shape.
    Reject,
}

/// USD per million tokens of each kind.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PriceSpec {
    pub input: f64,
    pub output: f64,
    /// Default: the input price.
    pub cache_read: Option<f64>,
    /// Default: the input price.
    pub cache_write: Option<f64>,
}

/// One limit of `budgets.limits`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitSpec {
    pub name: String,
    /// A CEL expression giving the bucket (a string).
    pub key: String,
    /// Tokens per window (input, cache reads and writes, output).
    pub tokens: Option<u64>,
    /// USD per window.
    pub usd: Option<f64>,
    /// Requests per window.
    pub requests: Option<u64>,
    /// `30s`, `1m`, `24h`, `30d`.
    pub window: String,
    /// A CEL condition: the limit applies only where it holds.
    pub when: Option<String>,
}

/// `policies.ai.toolGuard`: which tools a model may be offered and which
/// calls of them reach the agent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolGuardSpec {
    /// Globs over tool names: removed from the tools a request offers, and
    /// every call of them in a response blocked. An entry may be
    /// `{tools: [globs], when: condition}`: denied only to the requests
    /// where the condition holds.
    #[serde(default)]
    pub deny: Vec<DenySpec>,
    /// The message a blocked call of a denied tool is replaced by.
    pub deny_message: Option<String>,
    /// Applied in order to each call; the first that matches decides.
    #[serde(default)]
    pub rules: Vec<ToolRuleSpec>,
    /// The largest tool input held while it streams (default 1 MiB); a
    /// larger one is blocked.
    pub max_held_bytes: Option<u64>,
}

/// One `toolGuard.deny` entry: a glob, or globs under a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenySpec {
    Glob(String),
    When(DenyWhenSpec),
}

/// `{tools: [globs], when: condition}` in `toolGuard.deny`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DenyWhenSpec {
    pub tools: Vec<String>,
    pub when: String,
}

impl<'de> Deserialize<'de> for DenySpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DenySpec, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DenySpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a tool glob, or {tools: [globs], when: condition}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DenySpec, E> {
                Ok(DenySpec::Glob(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<DenySpec, A::Error> {
                DenyWhenSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(DenySpec::When)
            }
        }
        d.deserialize_any(V)
    }
}

impl From<&str> for DenySpec {
    fn from(glob: &str) -> DenySpec {
        DenySpec::Glob(glob.to_owned())
    }
}

/// One tool rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolRuleSpec {
    /// Named in telemetry (default `toolGuard.rules[i]`).
    pub name: Option<String>,
    /// Globs over tool names (`Bash`, `mcp__github__*`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Match only this field of the input: a top-level key or a JSON pointer.
    pub field: Option<String>,
    /// Patterns over the input's string values; absent: every call of the
    /// tools matches.
    pub regex: Option<RegexSpec>,
    /// Reject (default) or Audit.
    pub action: Option<ToolActionSpec>,
    pub response: Option<RejectResponseSpec>,
    /// A CEL condition: the rule applies only to requests where it holds.
    pub when: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ToolActionSpec {
    /// The call never reaches the agent: replaced by the policy message.
    Reject,
    /// Recorded, and let through.
    Audit,
}

/// Which Messages / Chat Completions responses promptgate reads only for
/// their token usage. Responses that response guards read report their
/// usage whatever this says: they are read anyway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TokenUsageMode {
    /// Streamed responses (requests with `"stream": true`): read as they
    /// flow. A non-streamed response is not read: reading it would hold
    /// the whole answer back for one more ext_proc exchange.
    #[default]
    Streams,
    /// Every response, non-streamed JSON included.
    All,
    /// None: the response side is left to Envoy alone.
    Off,
}

/// Route types, with agentgateway's names. Some are recognised only to be
/// refused with a clear message (see `policy::compile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RouteTypeSpec {
    Messages,
    AnthropicTokenCount,
    Completions,
    Models,
    Detect,
    Passthrough,
    Responses,
    Embeddings,
    Realtime,
    GenerateContent,
    GeminiCountTokens,
    Rerank,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromptGuardSpec {
    #[serde(default)]
    pub request: Vec<GuardSpec>,
    #[serde(default)]
    pub response: Vec<GuardSpec>,
}

/// One guard entry. The guard kinds promptgate does not implement yet are
/// accepted by the parser only so that loading can refuse them by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GuardSpec {
    /// Optional rule name for telemetry and decisions (a promptgate addition).
    pub name: Option<String>,
    /// Whether the values this guard masks are put back where the model
    /// repeats their placeholders in its answer (default true; request
    /// guards only, a promptgate addition).
    pub restore: Option<bool>,
    /// A CEL condition: the guard runs only for requests where it holds
    /// (a promptgate addition).
    pub when: Option<String>,
    pub regex: Option<RegexSpec>,
    pub response: Option<RejectResponseSpec>,
    /// Which parts of a request the guard reads (request guards only).
    pub scope: Option<Vec<ScopeSpec>>,
    /// An external guard service speaking `promptgate.guard.v1.Guard`.
    pub external: Option<ExternalSpec>,
    pub webhook: Option<serde_yaml::Value>,
    #[serde(rename = "openAIModeration")]
    pub openai_moderation: Option<serde_yaml::Value>,
    pub bedrock_guardrails: Option<serde_yaml::Value>,
    pub google_model_armor: Option<serde_yaml::Value>,
}

/// Guard scopes: agentgateway's four, and promptgate's additions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ScopeSpec {
    /// The system prompt (top-level `system`, system/developer role messages).
    SystemPrompt,
    /// Text of every message of every role, documents included (agentgateway).
    Messages,
    /// tool_result contents.
    ToolOutput,
    /// String values of tool_use inputs / tool call arguments.
    ToolInput,
    /// Text users wrote (user role only).
    UserMessages,
    /// Assistant history.
    AssistantMessages,
    /// Document and search-result text.
    Documents,
    /// Tool definitions' descriptions.
    ToolDefinitions,
    /// User text, tool results and documents of the latest user turn only.
    LatestUserTurn,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegexSpec {
    /// agentgateway's default action is Mask.
    pub action: Option<ActionSpec>,
    #[serde(default)]
    pub matches: Vec<String>,
    #[serde(default)]
    pub builtins: Vec<String>,
    /// Match `matches` case-sensitively (default false; agentgateway is
    /// case-sensitive).
    pub case_sensitive: Option<bool>,
    /// Match `matches` on normalised text (default true; agentgateway
    /// matches raw text).
    pub normalize: Option<bool>,
    /// A gitleaks config (TOML), relative to the policy file's folder: its
    /// rules become detectors named by rule id (promptgate addition).
    pub gitleaks: Option<PathBuf>,
}

/// An external guard over gRPC.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalSpec {
    /// `http://host:port` of the guard service (h2c).
    pub address: String,
    /// Deadline of one check, e.g. `500ms`, `2s` (default 1s).
    pub timeout: Option<String>,
    /// What a failed, slow or unreachable guard means (default FailClosed).
    pub failure_mode: Option<FailureModeSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum FailureModeSpec {
    /// Refuse the request (503) when the guard cannot answer.
    FailClosed,
    /// Forward the request unchecked by this guard (logged and counted).
    FailOpen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ActionSpec {
    Reject,
    Mask,
    /// Shadow mode: evaluated and recorded ("would …"), traffic passes
    /// unchanged (a promptgate addition).
    Audit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RejectResponseSpec {
    pub message: Option<String>,
    pub status_code: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthSpec {
    pub secret_ref: Option<SecretRefSpec>,
}

/// `{name: X}` reads `<secretsDir>/X/Authorization`; `{env: VAR}` reads an
/// environment variable.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretRefSpec {
    pub name: Option<String>,
    pub env: Option<String>,
}
