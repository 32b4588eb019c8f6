//! `promptgate eval`: the decision core on a recorded request (its path,
//! headers and verified claims) and/or response, printed as JSON; the same
//! entries the server calls. `--baseline` compares two policies over a
//! recorded set ([`super::eval_baseline`]).

use std::path::PathBuf;
use std::process::ExitCode;

use super::load;
use crate::decision::{
    self, BodyDecision, BodyMode, ChunkDecision, HeadersDecision, RequestCtx, RequestHead,
    ResponseDecider, ResponseHeadersDecision,
};
use crate::extproc::claims::recorded_claims;
use crate::policy::Policy;

/// What `eval` is asked.
pub(super) struct EvalArgs {
    pub config: PathBuf,
    pub secrets_dir: Option<PathBuf>,
    pub path: Option<String>,
    pub backend: Option<String>,
    pub method: String,
    /// `--header K:V`, as given.
    pub headers: Vec<String>,
    /// `--claims FILE`: the verified claims (a JSON object).
    pub claims: Option<PathBuf>,
    /// `--baseline OLD`: compare with this policy over a recorded set.
    pub baseline: Option<PathBuf>,
    pub body: Option<PathBuf>,
    pub response: Option<PathBuf>,
}

/// The path a recorded request has when nothing names one.
pub(super) const DEFAULT_PATH: &str = "/v1/messages";

fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
}

/// A request as `eval` replays it: what the adapter would read of it.
#[derive(Debug, Clone, Default)]
pub(super) struct Recorded {
    pub method: String,
    pub path: String,
    /// What Envoy would send as `x-promptgate-backend`.
    pub backend: Option<String>,
    /// (lower-case name, value), pseudo-headers apart.
    pub headers: Vec<(String, String)>,
    /// The claims Envoy would have verified (a JSON object).
    pub claims: Option<serde_json::Value>,
    /// Empty: the request has no body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// Runs `f` with the request's head as the adapter builds it under
    /// `policy`: its claims read through the policy's `identity` the way
    /// Envoy's metadata is (none without `identity`, as in the server).
    pub fn with_head<R>(&self, policy: &Policy, f: impl FnOnce(&RequestHead<'_>) -> R) -> R {
        let claims = policy
            .identity
            .as_ref()
            .zip(self.claims.as_ref())
            .and_then(|(settings, c)| recorded_claims(settings, c));
        let get = |name: &str| -> Option<&str> {
            match name {
                ":method" => Some(self.method.as_str()),
                ":path" => Some(self.path.as_str()),
                _ => self
                    .headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str()),
            }
        };
        let head =
            RequestHead::from_headers(get, claims.as_ref(), &self.headers, self.body.is_empty());
        f(&head)
    }
}

/// `K:V` as a header (name lower-cased, value trimmed).
pub(super) fn parse_header(kv: &str) -> Result<(String, String), String> {
    let (k, v) = kv
        .split_once(':')
        .ok_or_else(|| format!("`{kv}` is not a header: write NAME:VALUE"))?;
    let k = k.trim();
    if k.is_empty() || k.starts_with(':') || k.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("`{kv}`: `{k}` is not a header name"));
    }
    Ok((k.to_ascii_lowercase(), v.trim().to_owned()))
}

/// The claims in `file`: a JSON object.
pub(super) fn read_claims(file: &PathBuf) -> Result<serde_json::Value, String> {
    let bytes = read(file)?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
    if !v.is_object() {
        return Err(format!(
            "{}: the claims are a JSON object (a JWT payload)",
            file.display()
        ));
    }
    Ok(v)
}

pub(super) fn eval(args: EvalArgs) -> ExitCode {
    if let Some(baseline) = &args.baseline {
        return super::eval_baseline::run(&args, baseline);
    }
    let policy = match load(Some(&args.config), args.secrets_dir.clone()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("promptgate eval: {e}");
            return ExitCode::from(2);
        }
    };
    let inputs = (|| -> Result<_, String> {
        let headers = args
            .headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        let claims = args.claims.as_ref().map(read_claims).transpose()?;
        let body = args.body.as_ref().map(read).transpose()?;
        let response = args.response.as_ref().map(read).transpose()?;
        let path = args
            .path
            .clone()
            .ok_or("eval needs --path (the request path, e.g. /v1/messages)")?;
        Ok((headers, claims, body, response, path))
    })();
    let (headers, claims, body, response, path) = match inputs {
        Ok(x) => x,
        Err(e) => {
            eprintln!("promptgate eval: {e}");
            return ExitCode::from(2);
        }
    };
    let mut request = Recorded {
        method: args.method.clone(),
        path,
        backend: args.backend.clone(),
        headers,
        claims,
        body: Vec::new(),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("promptgate eval: {e}");
            return ExitCode::from(2);
        }
    };
    let mut model = None;
    let mut report = match body {
        Some(body) => {
            request.body = body;
            let report = eval_request(&policy, &request, &rt);
            model = report["outcome"]["model_requested"]
                .as_str()
                .map(str::to_owned);
            report
        }
        None => serde_json::json!({}),
    };
    if let Some(response) = response {
        // The response of this request: its headers, and the model its
        // body named (for response-side `when:`).
        let mut head_only = request.clone();
        head_only.body = b"{}".to_vec();
        let (ctx, _) = head_only.with_head(&policy, |head| {
            decision::request_headers(&policy, request.backend.as_deref(), head)
        });
        report["response_decision"] = match ctx {
            Some(ctx) => eval_response(&policy, &ctx, model.as_deref(), &response),
            None => serde_json::json!({"read": false, "why": "no backend for this request"}),
        };
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("json values serialise")
    );
    ExitCode::SUCCESS
}

/// A runtime for the decision's future (external guards are awaited).
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime for external guards: {e}"))
}

/// What the server decides on a request: its headers, then its body when
/// it reads it. The same entries the adapter calls.
pub(super) enum Decided {
    /// Answered at the headers, or the body's decision was a reply.
    Reply(decision::Reply),
    /// Forwarded: the header changes, and the body's decision when read.
    Forwarded {
        changes: decision::HeaderChanges,
        outcome: decision::Outcome,
        replacement: Option<Vec<u8>>,
        inspected: bool,
    },
}

pub(super) fn decide(policy: &Policy, request: &Recorded, rt: &tokio::runtime::Runtime) -> Decided {
    let (ctx, headers) = request.with_head(policy, |head| {
        decision::request_headers(policy, request.backend.as_deref(), head)
    });
    match headers {
        HeadersDecision::Reply(reply) => Decided::Reply(reply),
        HeadersDecision::Continue {
            changes,
            inspect_body,
            outcome,
        } => match (inspect_body, ctx) {
            (true, Some(ctx)) => {
                match rt.block_on(decision::request_body(policy, &ctx, &request.body)) {
                    BodyDecision::Reply(reply) => Decided::Reply(reply),
                    BodyDecision::Continue {
                        replacement,
                        outcome,
                        ..
                    } => Decided::Forwarded {
                        changes,
                        outcome,
                        replacement,
                        inspected: true,
                    },
                }
            }
            _ => Decided::Forwarded {
                changes,
                outcome,
                replacement: None,
                inspected: false,
            },
        },
    }
}

/// What the response side decides on a recorded response: a JSON body or
/// an SSE stream (told apart by its first byte), read whole.
fn eval_response(
    policy: &Policy,
    ctx: &RequestCtx,
    model: Option<&str>,
    response: &[u8],
) -> serde_json::Value {
    let sse = response.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{');
    let content_type = if sse {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut decider = ResponseDecider::new(policy, Some(ctx));
    decider.conditions(ctx, model);
    match decider.headers(Some(ctx), 200, Some(content_type), None, false) {
        ResponseHeadersDecision::Refuse(reply) => return reply_json(*reply),
        ResponseHeadersDecision::Continue(BodyMode::Unchanged) => {
            return serde_json::json!({
                "read": false,
                "why": "this backend has no response guards and no toolGuard",
            })
        }
        ResponseHeadersDecision::Continue(_) => {}
    }
    let answer = decider.body(Some(ctx), response, true);
    let tools: Vec<serde_json::Value> = answer
        .tools
        .iter()
        .map(|t| {
            serde_json::json!({
                "index": t.index,
                "tool": t.tool,
                "action": t.verdict.action(),
                "rule": t.verdict.rule(),
            })
        })
        .collect();
    let (changed, forwarded) = match &answer.decision {
        ChunkDecision::Pass => (false, response.to_vec()),
        ChunkDecision::Replace { body, .. } => (body != response, body.clone()),
        ChunkDecision::Reject(reply) | ChunkDecision::Refuse(reply) => {
            let mut v = reply_json(reply.clone());
            v["tools"] = tools.into();
            return v;
        }
    };
    serde_json::json!({
        "read": true,
        "decision": answer.record.as_ref().map(|r| r.decision.as_str()),
        "rule": answer.record.as_ref().and_then(|r| r.rule.clone()),
        "masked": answer.record.as_ref().map_or(0, |r| r.masked),
        "audited": answer.record.as_ref().map_or(0, |r| r.audited),
        "audited_rules": answer.record.as_ref().map(|r| r.audited_rules.clone()).unwrap_or_default(),
        "tools": tools,
        "forwarded": {"changed": changed, "length": forwarded.len()},
    })
}

fn eval_request(
    policy: &Policy,
    request: &Recorded,
    rt: &tokio::runtime::Runtime,
) -> serde_json::Value {
    match decide(policy, request, rt) {
        Decided::Reply(reply) => reply_json(reply),
        Decided::Forwarded {
            changes,
            outcome,
            replacement,
            inspected,
        } => {
            let header_report = serde_json::json!({
                "set": changes.set.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                "remove": changes.remove,
            });
            let body = &request.body;
            if !inspected {
                return serde_json::json!({
                    "outcome": outcome,
                    "headers": header_report,
                    "forwarded_body": {"changed": false, "length": body.len(), "inspected": false},
                });
            }
            let forwarded = replacement.as_deref().unwrap_or(body);
            serde_json::json!({
                "outcome": outcome,
                "headers": header_report,
                "forwarded_body": {
                    "changed": replacement.is_some(),
                    "length": forwarded.len(),
                    "preview": preview(forwarded),
                },
            })
        }
    }
}

fn reply_json(reply: decision::Reply) -> serde_json::Value {
    let body: serde_json::Value =
        serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "outcome": reply.outcome,
        "response": {"status": reply.status, "details": reply.details, "body": body},
    })
}

/// The first bytes of the forwarded body, so an author sees what changed
/// without dumping megabytes.
fn preview(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(160)]);
    s.into_owned()
}
