//! Prometheus metrics (prometheus-client), served on the admin port's `/metrics`.
//!
//! One process-wide [`Metrics`] ([`metrics()`]); label values come from the
//! policy (backend, rule names), from fixed sets (route type, decision, phase)
//! or from provider answers (model names, capped — see [`ModelLabels`]).
//! Never prompt text.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Distinct model label values kept before further ones become `other`:
/// model names are chosen by clients, so they must not grow the series set
/// without bound.
pub const MAX_MODEL_LABELS: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub backend: String,
    pub route: &'static str,
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GuardLabels {
    pub backend: String,
    pub rule: String,
    pub action: &'static str,
}

/// agentgateway's `guardrail_checks{phase, action}`.
/// A tool call decided in a response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    pub backend: String,
    /// The tool's name (bounded like model names: the model chooses it).
    pub tool: String,
    /// `allow`, `audit` or `reject`.
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GuardrailLabels {
    pub phase: &'static str,
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub backend: String,
    pub model: String,
    /// `input` (all input tokens, cached ones included) or `output`.
    pub direction: &'static str,
}

/// Labels of counts per backend only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheTokenLabels {
    pub backend: String,
    pub model: String,
    /// `read` or `creation`.
    pub kind: &'static str,
}

/// OpenTelemetry GenAI `gen_ai.client.token.usage` as Prometheus names it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GenAiTokenLabels {
    pub gen_ai_token_type: &'static str,
    pub gen_ai_provider_name: &'static str,
    pub gen_ai_response_model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLoadLabels {
    /// `success` or `failure`.
    pub outcome: &'static str,
}

/// A failed TLS handshake on the ext_proc port.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsHandshakeLabels {
    /// `refused` (no or an untrusted client certificate, not TLS, ...),
    /// `closed` (the client closed the connection first: TCP probes) or
    /// `timeout`.
    pub reason: &'static str,
}

/// A budget's limit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub backend: String,
    pub limit: String,
    /// `tokens`, `nano_usd` or `requests`.
    pub unit: &'static str,
}

/// A failed or slow budget store.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetStoreLabels {
    pub backend: String,
    /// `check` or `debit`.
    pub op: &'static str,
    /// `allow` or `reject` (what `onStoreError` did; a debit is `allow`).
    pub decision: &'static str,
}

/// The budget store's round trips.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreOpLabels {
    /// `memory` or `redis`.
    pub store: &'static str,
    pub op: &'static str,
}

/// What became of an access-log entry the gateway sent.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UsageReportLabels {
    /// `counted`, `not_marked` (promptgate read the answer itself) or
    /// `no_counts` (the gateway found none in the answer).
    pub result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// All of promptgate's metric families and their registry.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub guard_matches: Family<GuardLabels, Counter>,
    pub guardrail_checks: Family<GuardrailLabels, Counter>,
    pub phase_duration: HistogramFamily<PhaseLabels>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cache_tokens: Family<CacheTokenLabels, Counter>,
    pub gen_ai_token_usage: HistogramFamily<GenAiTokenLabels>,
    pub config_loads: Family<ConfigLoadLabels, Counter>,
    pub tool_calls: Family<ToolLabels, Counter>,
    pub placeholders_restored: Family<BackendLabels, Counter>,
    pub audit_lines: Counter,
    pub audit_dropped: Counter,
    pub tls_handshake_failures: Family<TlsHandshakeLabels, Counter>,
    pub tls_reloads: Family<ConfigLoadLabels, Counter>,
    pub budget_consumed: Family<BudgetLabels, Counter>,
    pub budget_rejected: Family<BudgetLabels, Counter>,
    pub budget_store_errors: Family<BudgetStoreLabels, Counter>,
    pub budget_store_duration: HistogramFamily<StoreOpLabels>,
    pub usage_reports: Family<UsageReportLabels, Counter>,
    models: ModelLabels,
    tools: ModelLabels,
}

fn phase_histogram() -> Histogram {
    Histogram::new([
        0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
        0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

fn token_histogram() -> Histogram {
    // 1 … ~4M tokens
    Histogram::new(exponential_buckets(1.0, 4.0, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "promptgate_requests",
            "Requests decided (one per ext_proc stream), by backend, route type and final decision",
            requests.clone(),
        );
        let guard_matches = Family::<GuardLabels, Counter>::default();
        registry.register(
            "promptgate_guard_matches",
            "Guard rules that fired, by backend, rule name and action",
            guard_matches.clone(),
        );
        let guardrail_checks = Family::<GuardrailLabels, Counter>::default();
        registry.register(
            "guardrail_checks",
            "Guard evaluations by phase (request/response) and result (allow/reject/mask)",
            guardrail_checks.clone(),
        );
        let phase_duration: HistogramFamily<PhaseLabels> =
            Family::new_with_constructor(phase_histogram);
        registry.register(
            "promptgate_phase_duration_seconds",
            "Time promptgate spent answering one ext_proc message, by phase",
            phase_duration.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "promptgate_tokens",
            "Tokens reported by the provider, by backend, model and direction (input includes cached input)",
            tokens.clone(),
        );
        let usage_reports = Family::<UsageReportLabels, Counter>::default();
        registry.register(
            "promptgate_usage_reports",
            "Access-log entries the gateway sent with a streamed answer's token usage, by result (counted, not_marked, no_counts)",
            usage_reports.clone(),
        );
        let cache_tokens = Family::<CacheTokenLabels, Counter>::default();
        registry.register(
            "promptgate_cache_tokens",
            "Input tokens read from (read) or written to (creation) the provider's prompt cache; part of the input tokens",
            cache_tokens.clone(),
        );
        let gen_ai_token_usage: HistogramFamily<GenAiTokenLabels> =
            Family::new_with_constructor(token_histogram);
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens per request (OpenTelemetry GenAI gen_ai.client.token.usage)",
            gen_ai_token_usage.clone(),
        );
        let config_loads = Family::<ConfigLoadLabels, Counter>::default();
        registry.register(
            "promptgate_config_loads",
            "Policy loads (startup and reloads) by outcome",
            config_loads.clone(),
        );
        let tool_calls = Family::<ToolLabels, Counter>::default();
        registry.register(
            "promptgate_tool_calls",
            "Tool calls in responses decided by toolGuard, by backend, tool and action (allow, audit, reject)",
            tool_calls.clone(),
        );
        let placeholders_restored = Family::<BackendLabels, Counter>::default();
        registry.register(
            "promptgate_placeholders_restored",
            "Mask placeholders a response repeated that were put back to the request's values (text and tool inputs), by backend",
            placeholders_restored.clone(),
        );
        let audit_lines = Counter::default();
        registry.register(
            "promptgate_audit_lines",
            "Lines written to the audit chain (the chain head's number, when the process started a new file)",
            audit_lines.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "promptgate_audit_dropped",
            "Audit entries not written: the queue was full or the file could not be written",
            audit_dropped.clone(),
        );
        let tls_handshake_failures = Family::<TlsHandshakeLabels, Counter>::default();
        registry.register(
            "promptgate_tls_handshake_failures",
            "TLS handshakes on the ext_proc port that failed (refused: no or an untrusted client certificate, not TLS; closed: the client hung up first, as TCP probes do; timeout), by reason",
            tls_handshake_failures.clone(),
        );
        let tls_reloads = Family::<ConfigLoadLabels, Counter>::default();
        registry.register(
            "promptgate_tls_reloads",
            "Reloads of the ext_proc port's TLS certificates by outcome (a failure keeps the previous ones)",
            tls_reloads.clone(),
        );
        let budget_consumed = Family::<BudgetLabels, Counter>::default();
        registry.register(
            "promptgate_budget_consumed",
            "Amounts added to budget counters, by backend, limit and unit (tokens, nano_usd, requests)",
            budget_consumed.clone(),
        );
        let budget_rejected = Family::<BudgetLabels, Counter>::default();
        registry.register(
            "promptgate_budget_rejected",
            "Requests refused (429) because a budget limit was spent, by backend and limit",
            budget_rejected.clone(),
        );
        let budget_store_errors = Family::<BudgetStoreLabels, Counter>::default();
        registry.register(
            "promptgate_budget_store_errors",
            "Budget store failures and timeouts, by backend, operation and what onStoreError did",
            budget_store_errors.clone(),
        );
        let budget_store_duration: HistogramFamily<StoreOpLabels> =
            Family::new_with_constructor(phase_histogram);
        registry.register(
            "promptgate_budget_store_duration_seconds",
            "Time of one budget store operation (check, debit), by store",
            budget_store_duration.clone(),
        );
        Metrics {
            registry,
            budget_consumed,
            budget_rejected,
            budget_store_errors,
            budget_store_duration,
            tls_handshake_failures,
            tls_reloads,
            placeholders_restored,
            audit_lines,
            audit_dropped,
            requests,
            guard_matches,
            guardrail_checks,
            phase_duration,
            tokens,
            cache_tokens,
            gen_ai_token_usage,
            config_loads,
            tool_calls,
            models: ModelLabels::default(),
            tools: ModelLabels::default(),
            usage_reports,
        }
    }

    /// The text exposition (`text/plain; version=0.0.4` compatible OpenMetrics text).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn observe_phase(&self, phase: &'static str, elapsed: Duration) {
        self.phase_duration
            .get_or_create(&PhaseLabels { phase })
            .observe(elapsed.as_secs_f64());
    }

    /// A policy load (startup or reload) succeeded or failed.
    pub fn config_load(&self, ok: bool) {
        let outcome = if ok { "success" } else { "failure" };
        self.config_loads
            .get_or_create(&ConfigLoadLabels { outcome })
            .inc();
    }

    /// An access-log entry of the gateway was counted or skipped.
    pub fn count_usage_report(&self, result: &'static str) {
        self.usage_reports
            .get_or_create(&UsageReportLabels { result })
            .inc();
    }

    /// A TLS handshake on the ext_proc port failed (`refused`, `closed` or `timeout`).
    pub fn tls_handshake_failed(&self, reason: &'static str) {
        self.tls_handshake_failures
            .get_or_create(&TlsHandshakeLabels { reason })
            .inc();
    }

    /// A reload of the TLS certificates succeeded or failed.
    pub fn tls_reload(&self, ok: bool) {
        let outcome = if ok { "success" } else { "failure" };
        self.tls_reloads
            .get_or_create(&ConfigLoadLabels { outcome })
            .inc();
    }

    /// A tool name usable as a label value (bounded like model names).
    pub fn tool_label(&self, tool: &str) -> String {
        self.tools.label(Some(tool))
    }

    /// A model name usable as a label value: bounded in length and in the
    /// number of distinct values.
    pub fn model_label(&self, model: Option<&str>) -> String {
        self.models.label(model)
    }
}

/// Bounds the model label: at most [`MAX_MODEL_LABELS`] distinct names of
/// at most 100 characters; others are reported as `other`.
#[derive(Default)]
pub struct ModelLabels {
    seen: Mutex<HashSet<String>>,
}

impl ModelLabels {
    pub fn label(&self, model: Option<&str>) -> String {
        let Some(model) = model.filter(|m| !m.is_empty()) else {
            return "unknown".to_owned();
        };
        if model.len() > 100 || !model.chars().all(|c| c.is_ascii_graphic()) {
            return "other".to_owned();
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(model) {
            return model.to_owned();
        }
        if seen.len() >= MAX_MODEL_LABELS {
            return "other".to_owned();
        }
        seen.insert(model.to_owned());
        model.to_owned()
    }
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_labels() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                backend: "anthropic".into(),
                route: "Messages",
                decision: "reject",
            })
            .inc();
        m.observe_phase("request_body", Duration::from_micros(40));
        m.config_load(true);
        let text = m.encode();
        assert!(
            text.contains(
                r#"promptgate_requests_total{backend="anthropic",route="Messages",decision="reject"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"promptgate_phase_duration_seconds_count{phase="request_body"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"promptgate_config_loads_total{outcome="success"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn model_labels_are_bounded() {
        let l = ModelLabels::default();
        assert_eq!(l.label(None), "unknown");
        assert_eq!(l.label(Some("claude-opus-4-6")), "claude-opus-4-6");
        assert_eq!(l.label(Some(&"x".repeat(101))), "other");
        assert_eq!(l.label(Some("has space")), "other");
        for i in 0..MAX_MODEL_LABELS {
            l.label(Some(&format!("m{i}")));
        }
        assert_eq!(l.label(Some("one-too-many")), "other");
        assert_eq!(l.label(Some("claude-opus-4-6")), "claude-opus-4-6");
    }
}
