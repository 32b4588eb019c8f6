//! What a decision says and records: the verdict, the rules that fired, the
//! record telemetry and `eval` print, and an immediate reply. Typed, never
//! strings; the strings exist only where they are written out (`as_str`,
//! serde).

use serde::Serialize;

use crate::guard::Action;
use crate::provider::{Dialect, ErrorKind};

/// What was done with a request or a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Forwarded as it is (apart from auth and the model override).
    #[default]
    Allow,
    /// Forwarded with guard matches replaced by placeholders.
    Mask,
    /// Refused by a guard.
    Reject,
    /// Refused because it could not be read or promptgate failed.
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Mask => "mask",
            Verdict::Reject => "reject",
            Verdict::Error => "error",
        }
    }

    /// A refusal (the span's status is an error).
    pub fn is_refusal(self) -> bool {
        matches!(self, Verdict::Reject | Verdict::Error)
    }
}

/// A guard that fired, and where. Never the matched text.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Fired {
    pub rule: String,
    #[serde(serialize_with = "action_name")]
    pub action: Action,
    /// e.g. `messages[3].content[1]`, or `content[0] (event 4)` in a response.
    pub location: String,
}

/// At most this many [`Fired`] entries are kept per decision.
pub const MAX_FIRED: usize = 32;

/// The record of a request decision, for logs, telemetry and `eval`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<&'static str>,
    /// Rule that fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Where in the body it fired, e.g. `messages[3].content[1]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_requested: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_effective: Option<String>,
    /// Whether the forwarded body differs from the client's.
    pub body_changed: bool,
    /// Number of text segments guards read.
    pub segments_scanned: usize,
    /// Whether the client's credential was replaced by the backend's.
    pub auth_injected: bool,
    /// Provider of the backend (`anthropic`, `openai`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'static str>,
    /// Number of spans a Mask guard replaced.
    pub masked: usize,
    /// Tool definitions removed from the request (`toolGuard.deny`).
    #[serde(skip_serializing_if = "is_zero")]
    pub tools_removed: usize,
    /// Guards that fired (first [`MAX_FIRED`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fired: Vec<Fired>,
    /// Findings of guards in `Audit` (shadow) mode.
    #[serde(skip_serializing_if = "is_zero")]
    pub audited: usize,
    /// Who asked, as telemetry shows it (the user, or its keyed hash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// How many groups the caller is in.
    #[serde(skip_serializing_if = "is_zero")]
    pub groups: usize,
    /// The agent's session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// An immediate answer to the client instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// JSON body in the dialect's error shape.
    pub body: Vec<u8>,
    /// Envoy's `%RESPONSE_CODE_DETAILS%`.
    pub details: &'static str,
    /// Headers besides `content-type` (`retry-after`).
    pub headers: Vec<(&'static str, String)>,
    pub outcome: Outcome,
}

/// A reply in `dialect`'s error shape; the outcome becomes a reject (a
/// guard's refusal) or an error.
pub fn reply(
    dialect: Dialect,
    kind: ErrorKind,
    status: u16,
    message: &str,
    details: &'static str,
    mut outcome: Outcome,
) -> Reply {
    outcome.decision = if matches!(kind, ErrorKind::Guard | ErrorKind::RateLimited) {
        Verdict::Reject
    } else {
        Verdict::Error
    };
    outcome.status = Some(status);
    outcome.message = Some(message.to_owned());
    Reply {
        status,
        body: crate::provider::error_body(dialect, kind, status, message),
        details,
        headers: Vec::new(),
        outcome,
    }
}

fn action_name<S: serde::Serializer>(action: &Action, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(action.as_str())
}

/// A refusal promptgate makes itself, not a guard's decision on a body: a
/// protocol or configuration problem, an unreadable response. Shaped in the
/// request's dialect (Anthropic's before the request headers are known).
pub fn refusal(
    ctx: Option<&super::RequestCtx>,
    kind: ErrorKind,
    status: u16,
    message: &str,
    details: &'static str,
) -> Reply {
    let dialect = ctx.map_or(Dialect::Anthropic, |c| c.dialect);
    let outcome = Outcome {
        route: ctx.map(|c| c.route.as_str()),
        user: ctx.and_then(|c| c.caller.user.clone()),
        groups: ctx.map_or(0, |c| c.caller.groups),
        session: ctx.and_then(|c| c.caller.session.clone()),
        ..Outcome::default()
    };
    reply(dialect, kind, status, message, details, outcome)
}

/// promptgate failed or is misconfigured: `status` (500, 502) in the
/// dialect's error shape.
pub fn gateway_error(ctx: Option<&super::RequestCtx>, status: u16, message: &str) -> Reply {
    refusal(
        ctx,
        ErrorKind::Gateway,
        status,
        message,
        "promptgate_gateway_error",
    )
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
