//! The request-headers decision: backend and route, auth injection, what
//! of the body and the response is read.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::policy::{Backend, Policy, RouteType, SelectError, TokenUsageMode};
use crate::provider::{self, Dialect, ErrorKind};

use super::identity::{Caller, Identity};
use super::outcome::{reply, Outcome, Reply, Verdict};

/// What the decision core needs of the request headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// `:path`, query string included.
    pub path: &'a str,
    pub authority: &'a str,
    pub content_encoding: Option<&'a str>,
    /// Whether the client sent `anthropic-version`.
    pub has_anthropic_version: bool,
    /// The headers were the whole request (no body follows).
    pub end_of_stream: bool,
    /// The claims Envoy verified (`identity`: the payload under the
    /// configured metadata namespace and key), if it forwarded any.
    pub claims: Option<&'a Map<String, Value>>,
    /// The agent's session (`x-claude-code-session-id`).
    pub session: Option<&'a str>,
    /// Which answers' token usage the gateway reads itself and reports to
    /// promptgate's access-log service (Envoy's config says so in the gRPC
    /// metadata; not a request header).
    pub gateway_does: GatewayDoes,
    /// Every header (name, value), for `when:` conditions (`request.headers`);
    /// empty when no condition of the policy could read it.
    pub headers: &'a [(String, String)],
}

impl<'a> RequestHead<'a> {
    /// The head of a request whose headers `get` looks up by lower-case
    /// name (pseudo-headers `:method`, `:path`, `:authority` included): the
    /// one reading of them, for the adapter and for `eval`.
    pub fn from_headers(
        get: impl Fn(&str) -> Option<&'a str>,
        claims: Option<&'a Map<String, Value>>,
        headers: &'a [(String, String)],
        end_of_stream: bool,
    ) -> RequestHead<'a> {
        RequestHead {
            headers,
            claims,
            session: get("x-claude-code-session-id"),
            method: get(":method").unwrap_or(""),
            path: get(":path").unwrap_or("/"),
            authority: get(":authority").or_else(|| get("host")).unwrap_or(""),
            content_encoding: get("content-encoding"),
            has_anthropic_version: get("anthropic-version").is_some(),
            end_of_stream,
            gateway_does: GatewayDoes::default(),
        }
    }
}

/// What the gateway (Envoy's shipped config) does itself, so that
/// promptgate need not: which answers' token usage it reads and reports to
/// promptgate's access-log service, and whether it writes the
/// remaining-budget headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayDoes {
    /// Streamed answers (`sse_to_metadata`; `x-promptgate-usage: envoy`).
    pub streams: bool,
    /// Whole JSON answers (`json_to_metadata`; `x-promptgate-json-usage: envoy`).
    pub json: bool,
    /// The remaining-budget response headers, from the metadata promptgate
    /// hands it (`x-promptgate-budget-headers: envoy`).
    pub budget_headers: bool,
}

impl GatewayDoes {
    /// Whether the gateway reads the usage of the answer to a request whose
    /// `stream` member says this (absent: it may be either).
    pub fn reads_answer(self, stream: Option<bool>) -> bool {
        match stream {
            Some(true) => self.streams,
            Some(false) => self.json,
            None => self.streams && self.json,
        }
    }

    /// Whether the gateway reads the usage of every answer a `tokenUsage`
    /// of `mode` asks for.
    pub fn covers(self, mode: TokenUsageMode) -> bool {
        match mode {
            TokenUsageMode::Off => true,
            TokenUsageMode::Streams => self.streams,
            TokenUsageMode::All => self.streams && self.json,
        }
    }
}

/// Header changes to apply to the request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderChanges {
    /// Set (overwrite or add).
    pub set: Vec<(&'static str, Vec<u8>)>,
    pub remove: Vec<&'static str>,
}

impl HeaderChanges {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// Per-request context fixed at request headers.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// Index of the backend in the policy.
    pub backend: usize,
    pub route: RouteType,
    pub dialect: Dialect,
    pub auth_injected: bool,
    /// What of the response is read.
    pub response: ResponseRead,
    /// The request body's `content-encoding` (not identity): the body is
    /// decoded before it is read, and a rewritten body is sent decoded
    /// (the adapter then drops the header).
    pub content_encoding: Option<String>,
    /// Who is asking (with `identity` configured).
    pub identity: Option<Arc<Identity>>,
    /// Who asked, as the request's records show it.
    pub caller: Caller,
    /// The normalised path (for `when:` conditions).
    pub path: String,
    /// The headers `when:` conditions read (empty when none can).
    pub headers: Vec<(String, String)>,
    /// Which answers' token usage the gateway reads itself
    /// ([`RequestHead::gateway_does`]).
    pub gateway_does: GatewayDoes,
}

impl RequestCtx {
    /// The fields every outcome of this request carries: backend, route,
    /// provider, auth, and who asked.
    pub fn outcome(&self, policy: &Policy) -> Outcome {
        let backend = &policy.backends[self.backend];
        Outcome {
            decision: Verdict::Allow,
            backend: Some(backend.name.clone()),
            route: Some(self.route.as_str()),
            auth_injected: self.auth_injected,
            provider: Some(backend.provider.as_str()),
            user: self.caller.user.clone(),
            groups: self.caller.groups,
            session: self.caller.session.clone(),
            ..Outcome::default()
        }
    }
}

/// What of a request's response is read, fixed at request headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseRead {
    /// Nothing: Envoy skips the response phases.
    Skip,
    /// Token usage, and placeholders to restore (no response guard;
    /// Messages and Completions unless `tokenUsage: Off` and no mask
    /// restores). Envoy skips the response headers and streams the body,
    /// which passes unchanged unless the request's masks are restored in
    /// it; what cannot be read is simply not counted (nor restored).
    UsageOnly,
    /// Response guards read it (and its usage): Envoy sends the headers
    /// first; an unreadable (compressed) response is refused rather than
    /// passed through unread.
    Guarded,
    /// Only the answer's usage is wanted (no placeholders to restore, no
    /// budget to debit), and the gateway reads it for every answer
    /// `tokenUsage` counts (streams; with `All`, JSON answers too):
    /// promptgate reads nothing, Envoy skips the response phases as for
    /// `Skip`, and the request is marked for the gateway's report. No
    /// exchange holds back the answer or a stream's first byte.
    GatewayUsage,
}

impl ResponseRead {
    /// Whether anything of the response is read (the provider is then
    /// asked for an uncompressed response).
    pub fn is_read(self) -> bool {
        matches!(self, ResponseRead::UsageOnly | ResponseRead::Guarded)
    }
}

/// Answer to the request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersDecision {
    Continue {
        changes: HeaderChanges,
        /// Ask Envoy for the whole request body.
        inspect_body: bool,
        outcome: Outcome,
    },
    Reply(Reply),
}

/// Decides on the request headers: picks the backend and route type,
/// injects auth, and says whether the body must be inspected.
pub fn request_headers(
    policy: &Policy,
    hint: Option<&str>,
    head: &RequestHead<'_>,
) -> (Option<RequestCtx>, HeadersDecision) {
    let path = crate::path::normalize(head.path);
    let backend_index = match policy.select(hint, head.authority, &path) {
        Ok(b) => policy
            .backends
            .iter()
            .position(|x| std::ptr::eq(x, b))
            .expect("selected from the list"),
        Err(e) => {
            // Fail closed: no policy, no traffic.
            let message = match e {
                SelectError::UnknownName(n) => {
                    format!("promptgate has no backend named `{n}` (x-promptgate-backend)")
                }
                SelectError::NoMatch => "promptgate found no backend for this request".to_owned(),
            };
            let style = if path.ends_with("/chat/completions") {
                Dialect::OpenAiChat
            } else {
                Dialect::Anthropic
            };
            let outcome = Outcome::default();
            return (
                None,
                HeadersDecision::Reply(reply(
                    style,
                    ErrorKind::Gateway,
                    500,
                    &message,
                    "promptgate_no_backend",
                    outcome,
                )),
            );
        }
    };
    let backend = &policy.backends[backend_index];
    let route = backend.routes.route_type(&path);
    let style = route.dialect(backend.provider);
    let mut outcome = Outcome {
        decision: Verdict::Allow,
        backend: Some(backend.name.clone()),
        route: Some(route.as_str()),
        provider: Some(backend.provider.as_str()),
        session: head.session.map(str::to_owned),
        ..Outcome::default()
    };
    let identity = policy
        .identity
        .as_ref()
        .map(|s| (s, Identity::from_claims(s, head.claims.cloned())));
    if let Some((settings, id)) = &identity {
        outcome.user = id.user_for_telemetry(settings, &policy.mask_key);
        outcome.groups = id.groups.len();
        if settings.required && !id.is_known() {
            return (
                None,
                HeadersDecision::Reply(reply(
                    style,
                    ErrorKind::Unauthenticated,
                    401,
                    "promptgate needs to know who is asking: send a token the gateway verifies (Authorization: Bearer <token>)",
                    "promptgate_identity_required",
                    outcome,
                )),
            );
        }
    }

    let mut changes = auth_changes(backend, head);
    let llm_route = matches!(route, RouteType::Messages | RouteType::Completions);
    let response = if !llm_route {
        ResponseRead::Skip
    } else if !backend.response_guards.is_empty() || backend.tool_guard.is_some() {
        ResponseRead::Guarded
    } else if backend.restores() || backend.budgets_read_usage() {
        ResponseRead::UsageOnly
    } else if backend.token_usage != TokenUsageMode::Off
        && head.gateway_does.covers(backend.token_usage)
    {
        ResponseRead::GatewayUsage
    } else if backend.token_usage != TokenUsageMode::Off {
        ResponseRead::UsageOnly
    } else {
        ResponseRead::Skip
    };
    // Whoever reads the answer's text (Envoy's SSE parser included) needs
    // it uncompressed.
    if response != ResponseRead::Skip {
        // Token usage and response guards read text, not compressed bytes:
        // ask the provider for an uncompressed response.
        changes.set.push(("accept-encoding", b"identity".to_vec()));
    }
    outcome.auth_injected = backend.auth.is_some();
    let mut ctx = RequestCtx {
        backend: backend_index,
        route,
        dialect: style,
        auth_injected: backend.auth.is_some(),
        response,
        content_encoding: None,
        identity: identity.map(|(_, id)| Arc::new(id)),
        caller: Caller {
            user: outcome.user.clone(),
            groups: outcome.groups,
            session: outcome.session.clone(),
        },
        path: if backend.reads_request_facts() {
            path.clone().into_owned()
        } else {
            String::new()
        },
        headers: if backend.reads_request_facts() {
            head.headers.to_vec()
        } else {
            Vec::new()
        },
        gateway_does: head.gateway_does,
    };

    let mut inspect_body = route.inspects_request_body();
    if inspect_body {
        if let Some(enc) = head.content_encoding {
            match provider::encoding::parse_content_encoding(enc) {
                Ok(codings) if codings.is_empty() => {}
                Ok(_) => ctx.content_encoding = Some(enc.to_owned()),
                Err(e) => {
                    let message = format!("promptgate cannot inspect this request body: {e}");
                    return (
                        Some(ctx),
                        HeadersDecision::Reply(reply(
                            style,
                            ErrorKind::UnsupportedEncoding,
                            415,
                            &message,
                            "promptgate_unsupported_encoding",
                            outcome,
                        )),
                    );
                }
            }
        }
        if head.end_of_stream {
            if matches!(head.method, "POST" | "PUT" | "PATCH") {
                return (
                    Some(ctx),
                    HeadersDecision::Reply(reply(
                        style,
                        ErrorKind::BadRequest,
                        400,
                        "the request body is empty",
                        "promptgate_empty_body",
                        outcome,
                    )),
                );
            }
            inspect_body = false;
        }
    }
    (
        Some(ctx),
        HeadersDecision::Continue {
            changes,
            inspect_body,
            outcome,
        },
    )
}

fn auth_changes(backend: &Backend, head: &RequestHead<'_>) -> HeaderChanges {
    let mut changes = HeaderChanges::default();
    if let Some(cred) = &backend.auth {
        // The client's own credential never goes upstream.
        for h in ["x-api-key", "authorization"] {
            if h != cred.header() {
                changes.remove.push(h);
            }
        }
        changes.set.push((cred.header(), cred.value().to_vec()));
        if backend.provider == Dialect::Anthropic && !head.has_anthropic_version {
            changes
                .set
                .push(("anthropic-version", b"2023-06-01".to_vec()));
        }
    }
    changes
}
