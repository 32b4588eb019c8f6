//! What happens between the decision and the end: tool calls decided in
//! the response, response guards that audited, budget checks and debits,
//! placeholders restored. A log line, a span event or attribute, metrics.

use super::super::metrics::{metrics, BackendLabels, GuardLabels, ToolLabels};
use super::StreamTelemetry;
use crate::provider::tool_call::ToolDecision;
use opentelemetry::KeyValue;
use tracing_opentelemetry::OpenTelemetrySpanExt;

impl StreamTelemetry {
    /// The decided request's backend (empty before the decision).
    fn backend(&self) -> String {
        self.decided
            .as_ref()
            .map(|d| d.backend.clone())
            .unwrap_or_default()
    }

    /// A tool call decided in the response: a log line, a span event and
    /// the tool-call counter. Names, rule and place only, never the input.
    pub fn on_tool(&mut self, tool: &ToolDecision) {
        self.open(None);
        let action = tool.verdict.action();
        let rule = tool.verdict.rule();
        tracing::info!(
            tool = %tool.tool,
            tool_rule = rule,
            tool_action = action,
            block = tool.index,
            "tool decision"
        );
        if self.recording {
            let mut attrs = vec![
                KeyValue::new("promptgate.tool.name", tool.tool.clone()),
                KeyValue::new("promptgate.tool.action", action),
                KeyValue::new("promptgate.tool.index", tool.index as i64),
            ];
            if let Some(rule) = rule {
                attrs.push(KeyValue::new("promptgate.tool.rule", rule.to_owned()));
            }
            self.span.add_event("promptgate.tool_decision", attrs);
        }
        let m = metrics();
        let backend = self.backend();
        m.tool_calls
            .get_or_create(&ToolLabels {
                backend,
                tool: m.tool_label(&tool.tool),
                action,
            })
            .inc();
    }

    /// Shadow (`Audit`) response guards' matches: what they would have
    /// done, counted by rule like the request's.
    pub fn on_response_audits(&mut self, rules: &[String]) {
        if rules.is_empty() {
            return;
        }
        let m = metrics();
        let backend = self.backend();
        for rule in rules {
            m.guard_matches
                .get_or_create(&GuardLabels {
                    backend: backend.clone(),
                    rule: rule.clone(),
                    action: "audit",
                })
                .inc();
        }
    }

    /// A budget check of `backend`: metrics (requests counted, refusals,
    /// store errors, the store's time), the span's remaining budget, a log
    /// line for a failed store.
    pub fn on_budget_check(
        &mut self,
        backend: &str,
        budgets: &crate::budget::Budgets,
        verdict: &crate::decision::BudgetVerdict,
        elapsed: std::time::Duration,
    ) {
        use crate::decision::BudgetVerdict;
        let m = metrics();
        store_time(budgets, "check", elapsed);
        let labels = |li: usize| {
            let limit = &budgets.limits[li];
            crate::telemetry::metrics::BudgetLabels {
                backend: backend.to_owned(),
                limit: limit.name.clone(),
                unit: budget_unit(limit.kind),
            }
        };
        match verdict {
            BudgetVerdict::Pass(pass) => {
                for li in &pass.reserved {
                    m.budget_consumed.get_or_create(&labels(*li)).inc();
                }
                if let Some(t) = pass.remaining_tokens {
                    self.span
                        .set_attribute("promptgate.budget.remaining_tokens", t as i64);
                }
                if let Some(n) = pass.remaining_nanos {
                    self.span
                        .set_attribute("promptgate.budget.remaining_usd", n as f64 / 1e9);
                }
                if let Some(why) = &pass.store_error {
                    tracing::warn!(backend, error = %why, "budget store failed: request allowed unchecked (onStoreError: Allow)");
                    self.span
                        .set_attribute("promptgate.budget.store_error", true);
                    store_error(backend, "check", "allow");
                }
            }
            BudgetVerdict::Refuse(reply) if reply.status == 429 => {
                let name = reply.outcome.rule.as_deref().unwrap_or_default();
                if let Some(li) = budgets.limits.iter().position(|l| l.name == name) {
                    m.budget_rejected.get_or_create(&labels(li)).inc();
                }
                self.span
                    .set_attribute("promptgate.budget.exhausted", name.to_owned());
            }
            BudgetVerdict::Refuse(reply) => {
                tracing::warn!(
                    backend,
                    message = reply.outcome.message.as_deref(),
                    "budget store failed: request refused (onStoreError: Reject)"
                );
                self.span
                    .set_attribute("promptgate.budget.store_error", true);
                store_error(backend, "check", "reject");
            }
        }
    }

    /// Placeholders of the request's masks restored in its response.
    pub fn on_restored(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        self.span
            .set_attribute("promptgate.placeholders_restored", count as i64);
        let backend = self.backend();
        metrics()
            .placeholders_restored
            .get_or_create(&BackendLabels { backend })
            .inc_by(count as u64);
    }
}

fn budget_unit(kind: crate::budget::LimitKind) -> &'static str {
    match kind {
        crate::budget::LimitKind::Tokens(_) => "tokens",
        crate::budget::LimitKind::NanoUsd(_) => "nano_usd",
        crate::budget::LimitKind::Requests(_) => "requests",
    }
}

/// The store's time for one call.
fn store_time(budgets: &crate::budget::Budgets, op: &'static str, elapsed: std::time::Duration) {
    metrics()
        .budget_store_duration
        .get_or_create(&crate::telemetry::metrics::StoreOpLabels {
            store: budgets.store.kind(),
            op,
        })
        .observe(elapsed.as_secs_f64());
}

/// A store call that failed, and what was decided for the request.
fn store_error(backend: &str, op: &'static str, decision: &'static str) {
    metrics()
        .budget_store_errors
        .get_or_create(&crate::telemetry::metrics::BudgetStoreLabels {
            backend: backend.to_owned(),
            op,
            decision,
        })
        .inc();
}

/// A response's usage added to its budgets (or not: the store failed).
pub fn on_budget_debit(
    backend: &str,
    budgets: &crate::budget::Budgets,
    pass: &crate::decision::BudgetPass,
    items: &[crate::budget::DebitItem],
    error: Option<&crate::budget::StoreError>,
    elapsed: std::time::Duration,
) {
    store_time(budgets, "debit", elapsed);
    if let Some(e) = error {
        tracing::warn!(backend, error = %e, "budget store failed: this response's usage was not counted");
        store_error(backend, "debit", "allow");
        return;
    }
    for ((_, kind, _, li), item) in pass.debit.iter().zip(items) {
        metrics()
            .budget_consumed
            .get_or_create(&crate::telemetry::metrics::BudgetLabels {
                backend: backend.to_owned(),
                limit: budgets.limits[*li].name.clone(),
                unit: budget_unit(*kind),
            })
            .inc_by(item.amount);
    }
}
