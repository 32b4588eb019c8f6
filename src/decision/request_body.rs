//! The request-body decision: decode, read the dialect's request, run the
//! local then the external guards, apply masks and the model override.

use crate::budget::Debit;
use crate::guard::external::{ExternalGuard, ExternalVerdict};
use crate::guard::{Action, Finding, Scan};
use crate::policy::{Backend, Policy, TokenUsageMode};
use std::sync::Arc;

use crate::provider::restore::Restore;
use crate::provider::{self, ErrorKind, Location, ParsedRequest};

use super::outcome::{reply, Fired, Outcome, Reply, Verdict, MAX_FIRED};
use super::request_headers::{RequestCtx, ResponseRead};

/// Largest request body promptgate inspects (Envoy's buffer limit in the
/// shipped config is the same).
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// Answer to the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyDecision {
    Continue {
        /// Replacement body (content-length must follow it).
        replacement: Option<Vec<u8>>,
        /// Whether the response is still read as the request headers said
        /// (`false`: a non-streamed answer under `tokenUsage: Streams`,
        /// which nothing needs to read).
        read_response: bool,
        /// The answer's token usage is left to the gateway, which reports
        /// it to the access-log service ([`RequestCtx::gateway_does`]
        /// and an answer read for nothing else).
        usage_by_envoy: bool,
        /// What this request's masks stand for, to put back where the
        /// model repeats their placeholders (`None`: nothing to restore).
        restore: Option<Arc<Restore>>,
        outcome: Outcome,
    },
    Reply(Reply),
}

/// One rewrite of the request body.
enum Edit<'f> {
    /// A segment's string literal, re-encoded with these masks applied.
    Mask(usize, Vec<&'f Finding>),
    /// Literal bytes (the model value).
    Bytes(Vec<u8>),
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
    /// Which `toolGuard.deny` entries apply to this request (`None`: all).
    tools_active: Option<Arc<crate::guard::tool::ToolActive>>,
}

/// The result of [`inspect_request_body`].
// One value per request body, moved once: boxing either side buys nothing.
#[allow(clippy::large_enum_variant)]
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
        let outcome = ctx.outcome(policy);
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
        BodyDecision::Reply(reply(ctx.dialect, kind, status, &message, details, outcome))
    })
}

/// Reads the (decoded) body and runs the local guards.
fn inspect_request_body<'p, 'b>(
    policy: &'p Policy,
    ctx: &'p RequestCtx,
    body: &'b [u8],
) -> Inspected<'p, 'b> {
    let backend = &policy.backends[ctx.backend];
    let outcome = ctx.outcome(policy);
    if !ctx.route.inspects_request_body() {
        return Inspected::Done(BodyDecision::Continue {
            restore: None,
            replacement: None,
            read_response: ctx.response.is_read(),
            usage_by_envoy: false,
            outcome,
        });
    }
    let bad =
        |status: u16, kind: ErrorKind, message: &str, details: &'static str, outcome: Outcome| {
            Inspected::Done(BodyDecision::Reply(reply(
                ctx.dialect,
                kind,
                status,
                message,
                details,
                outcome,
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
    let mut kinds = backend
        .external_guards
        .iter()
        .fold(guards.kinds(), |k, g| k.union(g.kinds()));
    if backend.tool_guard.as_ref().is_some_and(|t| t.has_deny()) {
        // Denied tools leave the request: list what it offers.
        kinds = kinds.with_offered_tools();
    }
    let parsed = match provider::parse_request(ctx.dialect, text, kinds) {
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
    // Rules (and deny entries) whose `when:` does not hold for this
    // request do not run; the variables are built once.
    let conditional_deny = backend
        .tool_guard
        .as_ref()
        .filter(|t| t.deny_has_conditions());
    let vars = (guards.has_conditions() || conditional_deny.is_some())
        .then(|| super::conditions::vars(ctx, &backend.name, parsed.model.as_deref()));
    let active = vars.as_ref().and_then(|v| guards.active(v));
    let tools_active = vars
        .as_ref()
        .zip(conditional_deny)
        .and_then(|(v, t)| t.active(v));
    let scan = match active {
        Some(active) => guards.scan_active(&parsed.segments, parsed.latest_user_message, &active),
        None => guards.scan(&parsed.segments, parsed.latest_user_message),
    };
    let mut inspection = Inspection {
        backend,
        ctx,
        text,
        parsed,
        scan,
        outcome,
        external_names: Vec::new(),
        tools_active,
    };
    inspection.outcome.model_requested = inspection.parsed.model.as_deref().map(str::to_owned);
    inspection.outcome.segments_scanned = inspection.parsed.segments.len();
    if let Some(hit) = inspection.scan.reject.take() {
        let rule = &guards.rules()[hit.rule];
        let fired = inspection.fired(&rule.name, rule.action, hit.segment);
        return Inspected::Done(BodyDecision::Reply(inspection.reject(
            fired,
            rule.status,
            &rule.message,
        )));
    }
    Inspected::Pending(inspection)
}

impl Inspection<'_, '_> {
    fn fired(&self, rule: &str, action: Action, segment: usize) -> Fired {
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
            self.ctx.dialect,
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
            .map(|f| self.fired(&self.rule_name(f), Action::Mask, f.segment))
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
                    action: Action::Reject,
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
                    self.ctx.dialect,
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
        // Tools the policy denies are never offered to the model; masks in
        // their definitions go with them.
        let removed: Vec<bool> = match &self.backend.tool_guard {
            Some(t) if t.has_deny() => self
                .parsed
                .offered_tools
                .iter()
                .map(|o| {
                    o.name
                        .as_deref()
                        .is_some_and(|n| t.denies_active(n, self.tools_active.as_deref()))
                })
                .collect(),
            _ => Vec::new(),
        };
        if removed.contains(&true) {
            let segments = &self.parsed.segments;
            masks.retain(|f| match segments[f.segment].location {
                Location::Tool { index } => !removed.get(index as usize).copied().unwrap_or(false),
                _ => true,
            });
        }
        masks.sort_by_key(|f| (f.segment, f.range.start, std::cmp::Reverse(f.range.end)));
        let mut outcome = std::mem::take(&mut self.outcome);
        outcome.masked = masks.len();
        if let Some(first) = masks.first() {
            outcome.decision = Verdict::Mask;
            outcome.rule = Some(self.rule_name(first));
            outcome.location = Some(self.parsed.segments[first.segment].location.to_string());
        }
        outcome.fired = masks
            .iter()
            .take(MAX_FIRED)
            .map(|f| self.fired(&self.rule_name(f), Action::Mask, f.segment))
            .collect();
        // Shadow (`Audit`) guards: what they would have done, recorded;
        // nothing changes.
        let audits = std::mem::take(&mut self.scan.audits);
        outcome.audited = audits.len();
        let room = MAX_FIRED.saturating_sub(outcome.fired.len());
        outcome.fired.extend(
            audits
                .iter()
                .take(room)
                .map(|f| self.fired(&self.rule_name(f), Action::Audit, f.segment)),
        );
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
        for range in provider::remove_tools(&self.parsed.offered_tools, &removed) {
            edits.push((range, Edit::Bytes(Vec::new())));
        }
        outcome.tools_removed = removed.iter().filter(|r| **r).count();
        let mut restore = Restore::new();
        let key = self.backend.request_guards.mask_key();
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
                        crate::guard::mask_literal(
                            segment.literal,
                            &group,
                            key,
                            &mut restore,
                            &mut out,
                        );
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
        // Restoring needs the response read; the request headers asked for
        // it whenever a guard of the backend restores.
        let restore =
            (!restore.is_empty() && self.ctx.response.is_read()).then(|| Arc::new(restore));
        let read = reads_response(self.backend, self.ctx, self.parsed.stream);
        let usage_by_envoy = read == Read::UsageByEnvoy && restore.is_none();
        BodyDecision::Continue {
            replacement,
            read_response: restore.is_some() || read == Read::Yes,
            usage_by_envoy,
            restore,
            outcome,
        }
    }
}

/// Whether promptgate reads the response, once the body is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Yes,
    No,
    /// Only its token usage would be read, and the gateway reports that.
    UsageByEnvoy,
}

/// Whether the response is still read once the body is known: under
/// `tokenUsage: Streams` a non-streamed answer is not (reading it would
/// hold the whole answer back for one more exchange), and a streamed one
/// read for its usage alone is not when the gateway reports that usage
/// (its SSE parser writes the counts into the access-log entry it sends
/// promptgate): no exchange then holds back the stream's first byte. Under
/// `tokenUsage: All` the same holds for a JSON answer when the gateway
/// reads those too (`json_to_metadata`).
/// Budgets of tokens or spend read every response themselves (their debit
/// follows the answer at once), unless they leave it to the access log
/// (`budgets.debit: AccessLog`) and the gateway reads this answer's usage.
fn reads_response(backend: &Backend, ctx: &RequestCtx, stream: Option<bool>) -> Read {
    match ctx.response {
        ResponseRead::Skip => Read::No,
        ResponseRead::Guarded => Read::Yes,
        ResponseRead::GatewayUsage => match stream {
            // A JSON answer under `tokenUsage: Streams`: nothing counts it.
            Some(false) if backend.token_usage != TokenUsageMode::All => Read::No,
            // A stream, or what may be one (Envoy reads it if it is SSE),
            // or a JSON answer the gateway reads too.
            _ => Read::UsageByEnvoy,
        },
        // Budgets' debit in band, or where the gateway does not read this
        // answer's usage or write the remaining-budget headers (the
        // response headers must then be answered); else the access-log
        // service debits it.
        ResponseRead::UsageOnly if backend.budgets_read_usage() => {
            let access_log = backend
                .budgets
                .as_ref()
                .is_some_and(|b| b.debit == Debit::AccessLog);
            let gateway = ctx.gateway_does;
            if access_log && gateway.reads_answer(stream) && gateway.budget_headers {
                Read::UsageByEnvoy
            } else {
                Read::Yes
            }
        }
        // Read for restores only, and this request masked nothing.
        ResponseRead::UsageOnly if backend.token_usage == TokenUsageMode::Off => Read::No,
        ResponseRead::UsageOnly => match stream {
            Some(false) if backend.token_usage == TokenUsageMode::Streams => Read::No,
            Some(_) if ctx.gateway_does.reads_answer(stream) => Read::UsageByEnvoy,
            _ => Read::Yes,
        },
    }
}
