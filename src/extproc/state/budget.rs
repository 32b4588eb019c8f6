//! A stream's calls to the budget store: the check its decision asks for
//! (and the admission of a decided request: checked, then recorded),
//! the debit of its response's usage, and the debit of a response cut
//! short when the stream goes.

use std::sync::Arc;

use envoy_types::pb::envoy::service::ext_proc::v3::processing_response;

use super::StreamState;
use crate::budget::{Budgets, DebitItem};
use crate::decision::{self, BudgetPass, BudgetVerdict, Outcome, RequestCtx, ResponseRecord};
use crate::telemetry;

impl StreamState {
    /// Asks the store about the request's budgets (bounded by
    /// `storeTimeout`) and decides on its answer.
    pub(super) async fn check_budget(
        &mut self,
        ctx: &RequestCtx,
        check: &decision::BudgetCheck,
        outcome: &Outcome,
    ) -> BudgetVerdict {
        let budgets = self.policy.backends[ctx.backend]
            .budgets
            .clone()
            .expect("a budget check comes from a backend with budgets");
        let started = std::time::Instant::now();
        let answer = budgets
            .store
            .check(&check.items, budgets.store_timeout)
            .await;
        let verdict = decision::budget_verdict(&self.policy, ctx, check, answer, outcome);
        let backend = &self.policy.backends[ctx.backend].name;
        self.telemetry
            .on_budget_check(backend, &budgets, &verdict, started.elapsed());
        verdict
    }

    /// Admits the decided request: its budgets checked (when `check` names
    /// some), then its decision recorded. `Some`: the answer that refuses it
    /// instead (a spent budget, a store error under `Reject`, the audit log
    /// full under `FailClosed`).
    pub(super) async fn admit(
        &mut self,
        check: Option<(&RequestCtx, &decision::BudgetCheck)>,
        outcome: Outcome,
    ) -> Option<processing_response::Response> {
        if let Some((ctx, check)) = check {
            match self.check_budget(ctx, check, &outcome).await {
                BudgetVerdict::Pass(pass) => self.pass_budget(pass),
                BudgetVerdict::Refuse(reply) => return Some(self.refuse(*reply)),
            }
        }
        self.record(outcome);
        self.audit_refused.then(|| self.audit_refusal())
    }

    /// Keeps a passed budget check for the response; when Envoy adds the
    /// remaining budget headers, hands them over as metadata now.
    pub(super) fn pass_budget(&mut self, pass: BudgetPass) {
        if self.gateway_does.budget_headers && !pass.headers.is_empty() {
            self.queue_metadata(telemetry::budget_headers_metadata(&pass.headers));
        }
        self.budget = Some(pass);
    }

    /// Adds the response's usage to the request's budgets (bounded by
    /// `storeTimeout`; a failure is logged and counted, the response goes
    /// on).
    pub(super) async fn debit_budget(&mut self, record: &ResponseRecord) {
        let (Some(pass), Some(ctx)) = (self.budget.take(), self.ctx.as_ref()) else {
            return;
        };
        let Some(budgets) = self.policy.backends[ctx.backend].budgets.clone() else {
            return;
        };
        if pass.debit.is_empty() {
            return;
        }
        let items =
            decision::budget_debits(&budgets, &pass, &record.usage, record.model.as_deref());
        // Before the answer, though nothing in it depends on the debit:
        // the client's next request, on any replica, must find it counted.
        // (Sent after the answer, it raced that request; the budget tests
        // caught it reading the store before the debit landed.)
        debit(
            &budgets,
            &self.policy.backends[ctx.backend].name,
            &pass,
            &items,
        )
        .await;
    }
}

impl Drop for StreamState {
    /// A stream that ends before its response did (the client went away,
    /// the upstream reset): the usage the response reported so far (an SSE
    /// stream's `message_start`) is debited, on a task of its own.
    fn drop(&mut self) {
        if self.response_done {
            return;
        }
        let (Some(pass), Some(ctx)) = (self.budget.take(), self.ctx.as_ref()) else {
            return;
        };
        let Some(budgets) = self.policy.backends[ctx.backend].budgets.clone() else {
            return;
        };
        let Some((usage, model)) = self.response.usage_so_far() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let items = decision::budget_debits(&budgets, &pass, &usage, model.as_deref());
        let backend = self.policy.backends[ctx.backend].name.clone();
        tracing::debug!(
            backend,
            "response cut short: debiting the usage it reported"
        );
        rt.spawn(async move { debit(&budgets, &backend, &pass, &items).await });
    }
}

/// Adds `items` to the store (bounded by `storeTimeout`; a failure is
/// logged and counted) and records the debit.
async fn debit(budgets: &Arc<Budgets>, backend: &str, pass: &BudgetPass, items: &[DebitItem]) {
    let started = std::time::Instant::now();
    let result = budgets.store.debit(items, budgets.store_timeout).await;
    telemetry::on_budget_debit(
        backend,
        budgets,
        pass,
        items,
        result.as_ref().err(),
        started.elapsed(),
    );
}
