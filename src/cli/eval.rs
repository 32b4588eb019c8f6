//! `promptgate eval`: the decision core on a recorded request and/or
//! response, printed as JSON; the same entries the server calls.

use std::path::PathBuf;
use std::process::ExitCode;

use super::load;
use crate::decision::{
    self, BodyDecision, BodyMode, ChunkDecision, HeadersDecision, RequestCtx, RequestHead,
    ResponseDecider, ResponseHeadersDecision,
};
use crate::policy::Policy;

/// What `eval` is asked.
pub(super) struct EvalArgs {
    pub config: PathBuf,
    pub secrets_dir: Option<PathBuf>,
    pub path: String,
    pub backend: Option<String>,
    pub method: String,
    pub body: Option<PathBuf>,
    pub response: Option<PathBuf>,
}

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

pub(super) fn eval(args: EvalArgs) -> ExitCode {
    let policy = match load(Some(&args.config), args.secrets_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("promptgate eval: {e}");
            return ExitCode::from(2);
        }
    };
    let files = (
        args.body.as_ref().map(read).transpose(),
        args.response.as_ref().map(read).transpose(),
    );
    let (body, response) = match files {
        (Ok(b), Ok(r)) => (b, r),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("promptgate eval: {e}");
            return ExitCode::from(2);
        }
    };
    let mut report = match &body {
        Some(body) => eval_request(
            &policy,
            &args.path,
            args.backend.as_deref(),
            &args.method,
            body,
        ),
        None => serde_json::json!({}),
    };
    if let Some(response) = response {
        let head = RequestHead {
            claims: None,
            session: None,
            headers: &[],
            method: &args.method,
            path: &args.path,
            authority: "",
            content_encoding: None,
            has_anthropic_version: true,
            end_of_stream: false,
        };
        let (ctx, _) = decision::request_headers(&policy, args.backend.as_deref(), &head);
        report["response_decision"] = match ctx {
            Some(ctx) => eval_response(&policy, &ctx, &response),
            None => serde_json::json!({"read": false, "why": "no backend for this request"}),
        };
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("json values serialise")
    );
    ExitCode::SUCCESS
}

/// What the response side decides on a recorded response: a JSON body or
/// an SSE stream (told apart by its first byte), read whole.
fn eval_response(policy: &Policy, ctx: &RequestCtx, response: &[u8]) -> serde_json::Value {
    let sse = response.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{');
    let content_type = if sse {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut decider = ResponseDecider::new(policy, Some(ctx));
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
        "tools": tools,
        "forwarded": {"changed": changed, "length": forwarded.len()},
    })
}

fn eval_request(
    policy: &Policy,
    path: &str,
    backend: Option<&str>,
    method: &str,
    body: &[u8],
) -> serde_json::Value {
    let head = RequestHead {
        claims: None,
        session: None,
        headers: &[],
        method,
        path,
        authority: "",
        content_encoding: None,
        has_anthropic_version: true,
        end_of_stream: body.is_empty(),
    };
    let (ctx, headers) = decision::request_headers(policy, backend, &head);
    match headers {
        HeadersDecision::Reply(reply) => reply_json(reply),
        HeadersDecision::Continue {
            changes,
            inspect_body,
            outcome,
        } => {
            let header_report = serde_json::json!({
                "set": changes.set.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                "remove": changes.remove,
            });
            match (inspect_body, ctx) {
                (true, Some(ctx)) => match eval_body(policy, &ctx, body) {
                    BodyDecision::Reply(reply) => reply_json(reply),
                    BodyDecision::Continue {
                        replacement,
                        outcome,
                        ..
                    } => {
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
                },
                _ => serde_json::json!({
                    "outcome": outcome,
                    "headers": header_report,
                    "forwarded_body": {"changed": false, "length": body.len(), "inspected": false},
                }),
            }
        }
    }
}

/// The same entry the server calls (decoding, local and external guards).
fn eval_body(policy: &Policy, ctx: &decision::RequestCtx, body: &[u8]) -> BodyDecision {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(decision::request_body(policy, ctx, body)),
        Err(e) => {
            eprintln!("promptgate eval: cannot start a runtime for external guards: {e}");
            std::process::exit(2);
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
