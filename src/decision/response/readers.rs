//! What reads one response: the response guards that apply to this
//! request, its tool judge, and the request's placeholders to restore —
//! composed into the scanner and stream guard the body decisions use.

use std::sync::Arc;

use crate::guard::tool::ActiveTools;
use crate::guard::ActiveGuards;
use crate::provider::restore::Restoring;
use crate::provider::stream::{StreamGuard, TextScanner};
use crate::provider::tool_call::ToolJudge;

use super::super::usage_read::NoScan;
use super::ResponseDecider;

impl ResponseDecider {
    /// The scanner of response text: the response guards, and the
    /// request's placeholders when it has some.
    pub(super) fn scanner(&self) -> Arc<dyn TextScanner + Send + Sync> {
        let guards = self.guards_scanner();
        match &self.restore {
            Some(restore) => Arc::new(Restoring {
                guards: Some(guards),
                restore: restore.clone(),
            }),
            None => guards,
        }
    }

    /// The response guards as a scanner (one that finds nothing without).
    fn guards_scanner(&self) -> Arc<dyn TextScanner + Send + Sync> {
        match (&self.guards, &self.rules.guards) {
            (Some(g), Some(active)) => Arc::new(ActiveGuards {
                guards: g.clone(),
                active: active.clone(),
            }),
            (Some(g), None) => g.clone(),
            (None, _) => Arc::new(NoScan),
        }
    }

    /// The tool judge of this request: the tool guard's rules that apply.
    pub(super) fn tool_judge(&self) -> Option<Arc<dyn ToolJudge>> {
        let tools = self.tools.as_ref()?;
        Some(match &self.rules.tools {
            Some(active) => Arc::new(ActiveTools {
                guard: tools.clone(),
                active: active.clone(),
            }),
            None => tools.clone(),
        })
    }

    /// An SSE stream's guard: response guards, tool judge, restore (which
    /// wraps the scanner itself).
    pub(super) fn stream_guard(&self) -> StreamGuard {
        let mut guard = StreamGuard::new(self.dialect, self.guards_scanner());
        if let Some(judge) = self.tool_judge() {
            guard = guard.with_tool_judge(judge);
        }
        if let Some(restore) = &self.restore {
            guard = guard.with_restore(restore.clone());
        }
        guard
    }
}
