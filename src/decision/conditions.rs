//! What a request offers its `when:` conditions, built once per request:
//! the request side evaluates its guards' conditions with it, and the
//! response side (response guards, tool rules) evaluates its own once the
//! request body named the model.

use std::sync::Arc;

use crate::guard::condition::{Facts, Vars};
use crate::guard::tool::{ToolActive, ToolGuard};
use crate::guard::GuardSet;
use crate::policy::Backend;

use super::request_headers::RequestCtx;

/// The condition variables of a request to `backend` asking for `model`.
pub(super) fn vars(ctx: &RequestCtx, backend: &str, model: Option<&str>) -> Vars {
    let id = ctx.identity.as_deref();
    Vars::new(&Facts {
        user: id.and_then(|i| i.user.as_deref()),
        groups: id.map_or(&[], |i| i.groups.as_slice()),
        claims: id.map(|i| &i.claims),
        path: &ctx.path,
        model,
        headers: &ctx.headers,
        backend,
    })
}

/// Which response-side rules run for one request (`None`: all of them).
#[derive(Debug, Clone, Default)]
pub(super) struct ResponseRules {
    /// Per response guard.
    pub guards: Option<Arc<[bool]>>,
    /// Per tool rule and `deny` entry.
    pub tools: Option<Arc<ToolActive>>,
}

impl ResponseRules {
    /// Whether any response guard or tool rule of `backend` has a `when:`.
    pub fn conditional(backend: &Backend) -> bool {
        backend.response_guards.has_conditions()
            || backend
                .tool_guard
                .as_ref()
                .is_some_and(|t| t.has_conditions())
    }

    /// Evaluates the response guards' and tool rules' conditions.
    pub fn of(
        ctx: &RequestCtx,
        backend: &str,
        guards: Option<&GuardSet>,
        tools: Option<&ToolGuard>,
        model: Option<&str>,
    ) -> ResponseRules {
        let guards = guards.filter(|g| g.has_conditions());
        let tools = tools.filter(|t| t.has_conditions());
        if guards.is_none() && tools.is_none() {
            return ResponseRules::default();
        }
        let vars = vars(ctx, backend, model);
        ResponseRules {
            guards: guards.and_then(|g| g.active(&vars)),
            tools: tools.and_then(|t| t.active(&vars)),
        }
    }
}
