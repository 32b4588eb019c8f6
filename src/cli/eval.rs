//! `promptgate eval`: the decision core on a recorded request, printed as
//! JSON; the same entries the server calls.

use std::path::PathBuf;
use std::process::ExitCode;

use super::load;
use crate::decision::{self, BodyDecision, HeadersDecision, RequestHead};
use crate::policy::Policy;

pub(super) fn eval(
    config: PathBuf,
    secrets_dir: Option<PathBuf>,
    path: &str,
    backend: Option<&str>,
    method: &str,
    body_path: PathBuf,
) -> ExitCode {
    let policy = match load(Some(&config), secrets_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("promptgate eval: {e}");
            return ExitCode::from(2);
        }
    };
    let body = if body_path.as_os_str() == "-" {
        let mut buf = Vec::new();
        if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf) {
            eprintln!("promptgate eval: cannot read standard input: {e}");
            return ExitCode::from(2);
        }
        buf
    } else {
        match std::fs::read(&body_path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("promptgate eval: cannot read {}: {e}", body_path.display());
                return ExitCode::from(2);
            }
        }
    };
    let head = RequestHead {
        method,
        path,
        authority: "",
        content_encoding: None,
        has_anthropic_version: true,
        end_of_stream: body.is_empty(),
    };
    let (ctx, headers) = decision::request_headers(&policy, backend, &head);
    let report = match headers {
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
                (true, Some(ctx)) => match eval_body(&policy, &ctx, &body) {
                    BodyDecision::Reply(reply) => reply_json(reply),
                    BodyDecision::Continue {
                        replacement,
                        outcome,
                        ..
                    } => {
                        let forwarded = replacement.as_deref().unwrap_or(&body);
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
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("json values serialise")
    );
    ExitCode::SUCCESS
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
