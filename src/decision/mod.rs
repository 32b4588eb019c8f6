//! The decision core: request head and body in, decisions out.
//!
//! Pure and synchronous: no gRPC, no I/O. The ext_proc adapter, the `eval`
//! command and the benchmarks all call these functions.

use serde::Serialize;

use crate::policy::{Backend, Policy, RouteType, SelectError};
use crate::provider::{self, ErrorKind, ErrorStyle, ProviderKind};

/// Largest request body promptgate inspects (Envoy's buffer limit in the
/// shipped config is the same).
pub const MAX_BODY_BYTES: usize = 32 << 20;

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

/// The record of a decision, for logs, telemetry and `eval`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Outcome {
    /// `allow`, `reject` or `error`.
    pub decision: &'static str,
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
    #[serde(skip_serializing_if = "is_zero")]
    pub masked: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// An immediate answer to the client instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// JSON body in the provider's error shape.
    pub body: Vec<u8>,
    /// Envoy's `%RESPONSE_CODE_DETAILS%`.
    pub details: &'static str,
    pub outcome: Outcome,
}

/// Per-request context fixed at request headers.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// Index of the backend in the policy.
    pub backend: usize,
    pub route: RouteType,
    pub style: ErrorStyle,
    pub auth_injected: bool,
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

/// Answer to the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyDecision {
    Continue {
        /// Replacement body (content-length must follow it).
        replacement: Option<Vec<u8>>,
        outcome: Outcome,
    },
    Reply(Reply),
}

fn style_for(route: RouteType, provider: ProviderKind) -> ErrorStyle {
    match route {
        RouteType::Messages | RouteType::AnthropicTokenCount => ErrorStyle::Anthropic,
        RouteType::Completions => ErrorStyle::OpenAi,
        _ => match provider {
            ProviderKind::Anthropic => ErrorStyle::Anthropic,
            ProviderKind::OpenAi => ErrorStyle::OpenAi,
        },
    }
}

fn reply(
    style: ErrorStyle,
    kind: ErrorKind,
    status: u16,
    message: &str,
    details: &'static str,
    mut outcome: Outcome,
) -> Reply {
    outcome.decision = if kind == ErrorKind::Guard {
        "reject"
    } else {
        "error"
    };
    outcome.status = Some(status);
    outcome.message = Some(message.to_owned());
    Reply {
        status,
        body: provider::error_body(style, kind, status, message),
        details,
        outcome,
    }
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
                ErrorStyle::OpenAi
            } else {
                ErrorStyle::Anthropic
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
    let style = style_for(route, backend.provider);
    let mut outcome = Outcome {
        decision: "allow",
        backend: Some(backend.name.clone()),
        route: Some(route.as_str()),
        provider: Some(backend.provider.as_str()),
        ..Outcome::default()
    };

    let changes = auth_changes(backend, head);
    outcome.auth_injected = backend.auth.is_some();
    let ctx = RequestCtx {
        backend: backend_index,
        route,
        style,
        auth_injected: backend.auth.is_some(),
    };

    let mut inspect_body = route.inspects_request_body();
    if inspect_body {
        if let Some(enc) = head.content_encoding {
            if !enc.trim().eq_ignore_ascii_case("identity") && !enc.trim().is_empty() {
                let message = format!("promptgate cannot inspect a request body with content-encoding `{enc}`; send it uncompressed");
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
        if backend.provider == ProviderKind::Anthropic && !head.has_anthropic_version {
            changes
                .set
                .push(("anthropic-version", b"2023-06-01".to_vec()));
        }
    }
    changes
}

/// Decides on the whole request body.
pub fn request_body(policy: &Policy, ctx: &RequestCtx, body: &[u8]) -> BodyDecision {
    let backend = &policy.backends[ctx.backend];
    let mut outcome = Outcome {
        decision: "allow",
        backend: Some(backend.name.clone()),
        route: Some(ctx.route.as_str()),
        auth_injected: ctx.auth_injected,
        provider: Some(backend.provider.as_str()),
        ..Outcome::default()
    };
    if !ctx.route.inspects_request_body() {
        return BodyDecision::Continue {
            replacement: None,
            outcome,
        };
    }
    let bad =
        |status: u16, kind: ErrorKind, message: &str, details: &'static str, outcome: Outcome| {
            BodyDecision::Reply(reply(ctx.style, kind, status, message, details, outcome))
        };
    if body.len() > MAX_BODY_BYTES {
        let message = format!(
            "the request body is larger than promptgate inspects ({} bytes)",
            MAX_BODY_BYTES
        );
        return bad(
            413,
            ErrorKind::TooLarge,
            &message,
            "promptgate_body_too_large",
            outcome,
        );
    }
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return bad(
            400,
            ErrorKind::BadRequest,
            "the request body is empty",
            "promptgate_empty_body",
            outcome,
        );
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return bad(
            400,
            ErrorKind::BadRequest,
            "the request body is not valid UTF-8 JSON",
            "promptgate_bad_body",
            outcome,
        );
    };
    let parsed = match provider::parse_request(ctx.route.is_openai_schema(), text) {
        Ok(p) => p,
        Err(e) => {
            let message = format!("promptgate could not read the request body: {e}");
            return bad(
                400,
                ErrorKind::BadRequest,
                &message,
                "promptgate_bad_body",
                outcome,
            );
        }
    };
    outcome.model_requested = parsed.model.as_deref().map(str::to_owned);
    outcome.segments_scanned = parsed.segments.len();

    if let Some(hit) = backend.request_guards.first_reject(&parsed.segments) {
        let rule = &backend.request_guards.rules()[hit.rule];
        outcome.rule = Some(rule.name.clone());
        outcome.location = Some(parsed.segments[hit.segment].location.to_string());
        return BodyDecision::Reply(reply(
            ctx.style,
            ErrorKind::Guard,
            rule.status,
            &rule.message,
            "promptgate_guard_reject",
            outcome,
        ));
    }

    let replacement = backend
        .model
        .as_deref()
        .and_then(|m| provider::patch_model(text, &parsed, m));
    outcome.model_effective = backend
        .model
        .clone()
        .or_else(|| outcome.model_requested.clone());
    outcome.body_changed = replacement.is_some();
    BodyDecision::Continue {
        replacement,
        outcome,
    }
}

#[cfg(test)]
mod tests;
