//! The decision core: request head and body in, decisions out.
//!
//! Pure and synchronous: no gRPC, no I/O. The ext_proc adapter, the `eval`
//! command and the benchmarks all call these functions.

use serde::Serialize;

use crate::guard::external::{ExternalGuard, ExternalVerdict};
use crate::guard::{Finding, Scan};
use crate::policy::{Backend, Policy, RouteType, SelectError, TokenUsageMode};
use crate::provider::stream::StreamKind;
use crate::provider::ParsedRequest;
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

/// A guard that fired, and where. Never the matched text.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Fired {
    pub rule: String,
    /// `reject` or `mask`.
    pub action: &'static str,
    /// e.g. `messages[3].content[1]`.
    pub location: String,
}

/// At most this many [`Fired`] entries are kept per decision.
pub const MAX_FIRED: usize = 32;

/// The record of a decision, for logs, telemetry and `eval`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Outcome {
    /// `allow`, `mask`, `reject` or `error`.
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
    pub masked: usize,
    /// Guards that fired (first [`MAX_FIRED`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fired: Vec<Fired>,
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
    /// The response is read (Messages and Completions): by response guards
    /// when the backend has any, else for token usage unless the backend's
    /// `tokenUsage` is `Off`. Envoy must send response phases, and the
    /// provider is asked for identity encoding.
    pub inspect_response: bool,
    /// Response guards read the response: an unreadable (compressed)
    /// response is refused rather than passed through unread.
    pub response_guarded: bool,
    /// The request body's `content-encoding` (not identity): the body is
    /// decoded before it is read, and a rewritten body is sent decoded
    /// (the adapter then drops the header).
    pub content_encoding: Option<String>,
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

pub(crate) fn reply(
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

    let mut changes = auth_changes(backend, head);
    let inspect_response = matches!(route, RouteType::Messages | RouteType::Completions)
        && (backend.token_usage != TokenUsageMode::Off || !backend.response_guards.is_empty());
    let response_guarded = inspect_response && !backend.response_guards.is_empty();
    if inspect_response {
        // Token usage and response guards read text, not compressed bytes:
        // ask the provider for an uncompressed response.
        changes.set.push(("accept-encoding", b"identity".to_vec()));
    }
    outcome.auth_injected = backend.auth.is_some();
    let mut ctx = RequestCtx {
        backend: backend_index,
        route,
        style,
        auth_injected: backend.auth.is_some(),
        inspect_response,
        response_guarded,
        content_encoding: None,
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
        if backend.provider == ProviderKind::Anthropic && !head.has_anthropic_version {
            changes
                .set
                .push(("anthropic-version", b"2023-06-01".to_vec()));
        }
    }
    changes
}

/// One rewrite of the request body.
enum Edit<'f> {
    /// A segment's string literal, re-encoded with these masks applied.
    Mask(usize, Vec<&'f Finding>),
    /// Literal bytes (the model value).
    Bytes(Vec<u8>),
}

/// How the response of a request is guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponsePlan {
    /// Nothing to read.
    Skip,
    /// An SSE stream: guarded chunk by chunk as it flows.
    Stream(StreamKind),
    /// A JSON body: guarded whole.
    Json(StreamKind),
    /// A response the guards cannot read (compressed): refuse it.
    Refuse(&'static str),
}

/// Decides at response headers how the response is guarded.
pub fn response_plan(
    ctx: &RequestCtx,
    status: u16,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> ResponsePlan {
    if !ctx.inspect_response || !(200..300).contains(&status) {
        return ResponsePlan::Skip;
    }
    let kind = StreamKind::from(ctx.style);
    let ct = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let plan = match ct.as_str() {
        "text/event-stream" => ResponsePlan::Stream(kind),
        "application/json" => ResponsePlan::Json(kind),
        _ => return ResponsePlan::Skip,
    };
    match content_encoding.map(str::trim) {
        None | Some("") => plan,
        Some(e) if e.eq_ignore_ascii_case("identity") => plan,
        // Unread, the response only loses its token counts.
        Some(_) if !ctx.response_guarded => ResponsePlan::Skip,
        Some(_) => ResponsePlan::Refuse(
            "the provider sent a compressed response that response guards cannot read",
        ),
    }
}

/// A request body read and scanned by the local guards, waiting for the
/// external guards (if any) before its decision is finished.
struct Inspection<'p, 'b> {
    backend: &'p Backend,
    ctx: &'p RequestCtx,
    text: &'b str,
    parsed: ParsedRequest<'b>,
    scan: Scan,
    outcome: Outcome,
    /// Names of external guards whose findings joined `scan.masks`; their
    /// rule index is `local rule count + position here`.
    external_names: Vec<String>,
}

/// The result of [`inspect_request_body`].
enum Inspected<'p, 'b> {
    /// Decided already (nothing to inspect, bad input, a local reject).
    Done(BodyDecision),
    /// Local guards passed; external guards may still speak.
    Pending(Inspection<'p, 'b>),
}

/// Decides on the whole request body: the only entry for it. Decodes a
/// compressed body, reads it, runs the local guards, then each external
/// guard in policy order, and applies masks and the model override.
///
/// The future awaits nothing when the backend has no external guards, so a
/// synchronous caller (a benchmark) may poll it once
/// (`futures_util::FutureExt::now_or_never`) for such a backend.
pub async fn request_body(policy: &Policy, ctx: &RequestCtx, body: &[u8]) -> BodyDecision {
    let body = match decode_body(policy, ctx, body) {
        Ok(b) => b,
        Err(d) => return d,
    };
    let mut inspection = match inspect_request_body(policy, ctx, &body) {
        Inspected::Done(d) => return d,
        Inspected::Pending(i) => i,
    };
    let backend = &policy.backends[ctx.backend];
    for guard in &backend.external_guards {
        let verdict = guard
            .check(
                &backend.name,
                ctx.route.as_str(),
                inspection.parsed.model.as_deref(),
                &inspection.parsed.segments,
                inspection.parsed.latest_user_message,
            )
            .await;
        if let Some(reply) = inspection.apply_external(guard, verdict) {
            return BodyDecision::Reply(reply);
        }
    }
    inspection.finish()
}

/// Decodes a compressed request body (bounded: a decompression bomb is a
/// 413, never an allocation past the limit).
#[allow(clippy::result_large_err)] // the error is the final decision, built once
fn decode_body<'b>(
    policy: &Policy,
    ctx: &RequestCtx,
    body: &'b [u8],
) -> Result<std::borrow::Cow<'b, [u8]>, BodyDecision> {
    let Some(enc) = &ctx.content_encoding else {
        return Ok(std::borrow::Cow::Borrowed(body));
    };
    provider::encoding::decode(enc, body, MAX_BODY_BYTES).map_err(|e| {
        let backend = &policy.backends[ctx.backend];
        let outcome = Outcome {
            backend: Some(backend.name.clone()),
            route: Some(ctx.route.as_str()),
            ..Outcome::default()
        };
        let (status, kind, details) = match e {
            provider::encoding::DecodeError::TooLarge { .. } => {
                (413, ErrorKind::TooLarge, "promptgate_body_too_large")
            }
            provider::encoding::DecodeError::Unsupported(_) => (
                415,
                ErrorKind::UnsupportedEncoding,
                "promptgate_unsupported_encoding",
            ),
            provider::encoding::DecodeError::Corrupt { .. } => {
                (400, ErrorKind::BadRequest, "promptgate_bad_body")
            }
        };
        let message = format!("promptgate could not decode the request body: {e}");
        BodyDecision::Reply(reply(ctx.style, kind, status, &message, details, outcome))
    })
}

/// Reads the (decoded) body and runs the local guards.
fn inspect_request_body<'p, 'b>(
    policy: &'p Policy,
    ctx: &'p RequestCtx,
    body: &'b [u8],
) -> Inspected<'p, 'b> {
    let backend = &policy.backends[ctx.backend];
    let outcome = Outcome {
        decision: "allow",
        backend: Some(backend.name.clone()),
        route: Some(ctx.route.as_str()),
        auth_injected: ctx.auth_injected,
        provider: Some(backend.provider.as_str()),
        ..Outcome::default()
    };
    if !ctx.route.inspects_request_body() {
        return Inspected::Done(BodyDecision::Continue {
            replacement: None,
            outcome,
        });
    }
    let bad =
        |status: u16, kind: ErrorKind, message: &str, details: &'static str, outcome: Outcome| {
            Inspected::Done(BodyDecision::Reply(reply(
                ctx.style, kind, status, message, details, outcome,
            )))
        };
    if body.len() > MAX_BODY_BYTES {
        let message =
            format!("the request body is larger than promptgate inspects ({MAX_BODY_BYTES} bytes)");
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
    let Ok(text) = simdutf8::basic::from_utf8(body) else {
        return bad(
            400,
            ErrorKind::BadRequest,
            "the request body is not valid UTF-8 JSON",
            "promptgate_bad_body",
            outcome,
        );
    };
    let guards = &backend.request_guards;
    let kinds = backend
        .external_guards
        .iter()
        .fold(guards.kinds(), |k, g| k.union(g.kinds()));
    let parsed = match provider::parse_request(ctx.route.is_openai_schema(), text, kinds) {
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
    let scan = guards.scan(&parsed.segments, parsed.latest_user_message);
    let mut inspection = Inspection {
        backend,
        ctx,
        text,
        parsed,
        scan,
        outcome,
        external_names: Vec::new(),
    };
    inspection.outcome.model_requested = inspection.parsed.model.as_deref().map(str::to_owned);
    inspection.outcome.segments_scanned = inspection.parsed.segments.len();
    if let Some(hit) = inspection.scan.reject.take() {
        let rule = &guards.rules()[hit.rule];
        let fired = inspection.fired(&rule.name, rule.action.as_str(), hit.segment);
        return Inspected::Done(BodyDecision::Reply(inspection.reject(
            fired,
            rule.status,
            &rule.message,
        )));
    }
    Inspected::Pending(inspection)
}

impl Inspection<'_, '_> {
    fn fired(&self, rule: &str, action: &'static str, segment: usize) -> Fired {
        Fired {
            rule: rule.to_owned(),
            action,
            location: self.parsed.segments[segment].location.to_string(),
        }
    }

    fn reject(&self, fired: Fired, status: u16, message: &str) -> Reply {
        let mut outcome = self.outcome.clone();
        outcome.rule = Some(fired.rule.clone());
        outcome.location = (!fired.location.is_empty()).then(|| fired.location.clone());
        outcome.fired = self.mask_fired();
        outcome.fired.insert(0, fired);
        outcome.fired.truncate(MAX_FIRED);
        reply(
            self.ctx.style,
            ErrorKind::Guard,
            status,
            message,
            "promptgate_guard_reject",
            outcome,
        )
    }

    fn rule_name(&self, f: &Finding) -> String {
        let local = self.backend.request_guards.rules();
        match local.get(f.rule) {
            Some(r) => r.name.clone(),
            None => self
                .external_names
                .get(f.rule - local.len())
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn mask_fired(&self) -> Vec<Fired> {
        self.scan
            .masks
            .iter()
            .take(MAX_FIRED)
            .map(|f| self.fired(&self.rule_name(f), "mask", f.segment))
            .collect()
    }

    /// Folds in an external guard's verdict; a reject (or a failure of a
    /// fail-closed guard) ends the decision.
    pub fn apply_external(
        &mut self,
        guard: &ExternalGuard,
        verdict: ExternalVerdict,
    ) -> Option<Reply> {
        match verdict {
            ExternalVerdict::Allow => None,
            ExternalVerdict::Mask(findings) => {
                let rule = self.backend.request_guards.rules().len() + self.external_names.len();
                self.external_names.push(guard.name.clone());
                for mut f in findings {
                    f.rule = rule;
                    self.scan.masks.push(f);
                }
                None
            }
            ExternalVerdict::Reject {
                status,
                message,
                rule,
            } => {
                let fired = Fired {
                    rule,
                    action: "reject",
                    location: String::new(),
                };
                Some(self.reject(fired, status, &message))
            }
            ExternalVerdict::FailedOpen(why) => {
                tracing::warn!(guard = %guard.name, error = %why, "external guard failed open: request forwarded without its check");
                None
            }
            ExternalVerdict::FailedClosed(why) => {
                tracing::warn!(guard = %guard.name, error = %why, "external guard failed closed: request refused");
                let mut outcome = self.outcome.clone();
                outcome.rule = Some(guard.name.clone());
                Some(reply(
                    self.ctx.style,
                    ErrorKind::Gateway,
                    503,
                    &format!(
                        "guard `{}` is unavailable; the request was not sent",
                        guard.name
                    ),
                    "promptgate_external_guard_failed",
                    outcome,
                ))
            }
        }
    }

    /// Applies masks and the model override: the final decision.
    pub fn finish(mut self) -> BodyDecision {
        let mut masks = std::mem::take(&mut self.scan.masks);
        masks.sort_by_key(|f| (f.segment, f.range.start, std::cmp::Reverse(f.range.end)));
        let mut outcome = std::mem::take(&mut self.outcome);
        outcome.masked = masks.len();
        if let Some(first) = masks.first() {
            outcome.decision = "mask";
            outcome.rule = Some(self.rule_name(first));
            outcome.location = Some(self.parsed.segments[first.segment].location.to_string());
        }
        outcome.fired = masks
            .iter()
            .take(MAX_FIRED)
            .map(|f| self.fired(&self.rule_name(f), "mask", f.segment))
            .collect();
        outcome.model_effective = self
            .backend
            .model
            .clone()
            .or_else(|| outcome.model_requested.clone());

        // The edits, in body order: one masked string literal per affected
        // segment, and the model value.
        let mut edits: Vec<(std::ops::Range<usize>, Edit<'_>)> = Vec::new();
        let mut i = 0;
        while i < masks.len() {
            let seg = masks[i].segment;
            let group: Vec<&Finding> = masks[i..].iter().take_while(|f| f.segment == seg).collect();
            i += group.len();
            edits.push((
                self.parsed.segments[seg].raw.clone(),
                Edit::Mask(seg, group),
            ));
        }
        if let Some(model) = self.backend.model.as_deref() {
            if let Some(splice) = provider::model_splice(self.text, &self.parsed, model) {
                edits.push((splice.range, Edit::Bytes(splice.bytes)));
            }
        }
        let replacement = (!edits.is_empty()).then(|| {
            edits.sort_by_key(|(r, _)| (r.start, r.end));
            // Masked text is JSON-encoded straight into the new body, one
            // segment at a time: no second copy of every rewritten string.
            let body = self.text.as_bytes();
            let mut out = Vec::with_capacity(body.len() + 64 * edits.len());
            let mut at = 0;
            for (range, edit) in edits {
                out.extend_from_slice(&body[at..range.start]);
                match edit {
                    Edit::Mask(seg, group) => {
                        // Placeholders spliced into the literal as it is:
                        // every escape outside the masked spans stays.
                        let segment = &self.parsed.segments[seg];
                        out.push(b'"');
                        crate::guard::mask_literal(segment.literal, &group, &mut out);
                        out.push(b'"');
                    }
                    Edit::Bytes(b) => out.extend_from_slice(&b),
                }
                at = range.end;
            }
            out.extend_from_slice(&body[at..]);
            out
        });
        outcome.body_changed = replacement.is_some();
        BodyDecision::Continue {
            replacement,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests;
