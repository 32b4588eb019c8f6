use super::*;
use crate::policy::{LoadOptions, Policy};
use futures_util::FutureExt;

const SEED: &str = r#"
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: anthropic
spec:
  ai:
    provider:
      anthropic:
        model: "claude-opus-4-6"
  policies:
    ai:
      routes:
        '/v1/messages': Messages
        '*': Passthrough
      promptGuard:
        request:
        - response:
            message: "Rejected due to inappropriate content"
          regex:
            action: Reject
            matches:
            - "credit card"
    auth:
      secretRef:
        env: PROMPTGATE_TEST_DECISION_KEY
"#;

fn seed() -> Policy {
    std::env::set_var("PROMPTGATE_TEST_DECISION_KEY", "sk-ant-api03-org-key");
    Policy::from_yaml(SEED, "seed.yaml", &LoadOptions::default()).unwrap()
}

fn head(path: &str) -> RequestHead<'_> {
    RequestHead {
        method: "POST",
        path,
        authority: "127.0.0.1:8080",
        ..RequestHead::default()
    }
}

fn body_of(policy: &Policy, path: &str, body: &str) -> BodyDecision {
    let (ctx, d) = request_headers(policy, None, &head(path));
    assert!(
        matches!(
            d,
            HeadersDecision::Continue {
                inspect_body: true,
                ..
            }
        ),
        "{d:?}"
    );
    request_body(policy, &ctx.unwrap(), body.as_bytes())
        .now_or_never()
        .expect("no external guard")
}

#[test]
fn headers_inject_the_key_and_strip_the_clients() {
    let p = seed();
    let (ctx, d) = request_headers(&p, Some("anthropic"), &head("/v1/messages?beta=true"));
    let ctx = ctx.unwrap();
    assert_eq!(ctx.route, RouteType::Messages);
    let HeadersDecision::Continue {
        changes,
        inspect_body,
        outcome,
    } = d
    else {
        panic!("{d:?}")
    };
    assert!(inspect_body);
    assert_eq!(changes.remove, vec!["authorization"]);
    assert_eq!(
        changes.set[0],
        ("x-api-key", b"sk-ant-api03-org-key".to_vec())
    );
    assert_eq!(
        changes.set[1],
        ("anthropic-version", b"2023-06-01".to_vec())
    );
    assert!(outcome.auth_injected);

    // Passthrough: auth still injected, body not read.
    let (_, d) = request_headers(
        &p,
        None,
        &RequestHead {
            method: "GET",
            path: "/v1/models",
            end_of_stream: true,
            ..head("")
        },
    );
    let HeadersDecision::Continue {
        changes,
        inspect_body,
        ..
    } = d
    else {
        panic!()
    };
    assert!(!inspect_body);
    assert_eq!(changes.set[0].0, "x-api-key");
}

#[test]
fn route_spellings_cannot_dodge_the_guard() {
    let p = seed();
    for path in [
        "/v1/messages/",
        "//v1/messages",
        "/anthropic/v1/messages",
        "/v1/./messages?x=1",
        "/v1/%6Dessages",
    ] {
        let (ctx, _) = request_headers(&p, None, &head(path));
        assert_eq!(ctx.unwrap().route, RouteType::Messages, "{path}");
    }
}

#[test]
fn the_seed_rejects_a_credit_card_prompt_in_anthropic_shape() {
    let p = seed();
    let d = body_of(
        &p,
        "/v1/messages",
        r#"{"model":"m","messages":[{"role":"user","content":"What is a credit card"}]}"#,
    );
    let BodyDecision::Reply(reply) = d else {
        panic!("{d:?}")
    };
    assert_eq!(reply.status, 403);
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["error"]["type"], "permission_error");
    assert_eq!(
        v["error"]["message"],
        "Rejected due to inappropriate content"
    );
    assert_eq!(reply.outcome.decision, "reject");
    assert_eq!(reply.outcome.rule.as_deref(), Some("request[0]"));
    assert_eq!(
        reply.outcome.location.as_deref(),
        Some("messages[0].content")
    );
}

#[test]
fn allowed_bodies_get_the_model_override_and_nothing_else() {
    let p = seed();
    let body =
        r#"{"model":"claude-haiku","messages":[{"role":"user","content":"Say hi"}],"stream":true}"#;
    let BodyDecision::Continue {
        replacement,
        outcome,
    } = body_of(&p, "/v1/messages", body)
    else {
        panic!()
    };
    let out = String::from_utf8(replacement.unwrap()).unwrap();
    assert_eq!(out, body.replace("claude-haiku", "claude-opus-4-6"));
    assert_eq!(outcome.model_requested.as_deref(), Some("claude-haiku"));
    assert_eq!(outcome.model_effective.as_deref(), Some("claude-opus-4-6"));
    assert!(outcome.body_changed);
}

#[test]
fn bad_bodies_are_refused_not_forwarded() {
    let p = seed();
    for (body, status) in [("{not json", 400), ("", 400), ("   ", 400), ("[]", 400)] {
        let BodyDecision::Reply(r) = body_of(&p, "/v1/messages", body) else {
            panic!("{body}")
        };
        assert_eq!(r.status, status, "{body}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["type"], "error");
    }
    let (_, d) = request_headers(
        &p,
        None,
        &RequestHead {
            content_encoding: Some("compress"),
            ..head("/v1/messages")
        },
    );
    let HeadersDecision::Reply(r) = d else {
        panic!()
    };
    assert_eq!(r.status, 415);
    let (_, d) = request_headers(
        &p,
        None,
        &RequestHead {
            end_of_stream: true,
            ..head("/v1/messages")
        },
    );
    let HeadersDecision::Reply(r) = d else {
        panic!()
    };
    assert_eq!(r.status, 400);
}

#[test]
fn unknown_backend_fails_closed() {
    let p = seed();
    let (ctx, d) = request_headers(&p, Some("nope"), &head("/v1/messages"));
    assert!(ctx.is_none());
    let HeadersDecision::Reply(r) = d else {
        panic!()
    };
    assert_eq!(r.status, 500);
    assert!(String::from_utf8_lossy(&r.body).contains("nope"));
}

#[test]
fn claude_code_traffic_trips_nothing_but_the_guard() {
    let p = seed();
    let body = include_str!("../../tests/fixtures/claude_code_first_turn.json");
    let BodyDecision::Continue { outcome, .. } = body_of(&p, "/v1/messages?beta=true", body) else {
        panic!()
    };
    assert!(outcome.segments_scanned >= 4);
    let body = include_str!("../../tests/fixtures/claude_code_tool_result_turn.json");
    assert!(matches!(
        body_of(&p, "/v1/messages?beta=true", body),
        BodyDecision::Continue { .. }
    ));
    let bad = body.replace("meeting at noon", "my credit card is in the drawer");
    let BodyDecision::Reply(r) = body_of(&p, "/v1/messages?beta=true", &bad) else {
        panic!()
    };
    assert_eq!(
        r.outcome.location.as_deref(),
        Some("messages[3].content[0]")
    );
}

#[test]
fn openai_completions_answer_in_openai_shape() {
    std::env::set_var("PROMPTGATE_TEST_OPENAI_KEY", "sk-proj-org");
    let p = Policy::from_yaml(
        r#"
backends:
- name: openai
  ai: {provider: {openai: {}}}
  policies:
    ai:
      promptGuard:
        request:
        - regex: {action: Reject, matches: ["credit card"]}
    auth: {secretRef: {env: PROMPTGATE_TEST_OPENAI_KEY}}
"#,
        "t.yaml",
        &LoadOptions::default(),
    )
    .unwrap();
    let (ctx, d) = request_headers(&p, Some("openai"), &head("/openai/v1/chat/completions"));
    let HeadersDecision::Continue { changes, .. } = d else {
        panic!()
    };
    assert_eq!(
        changes.set,
        vec![
            ("authorization", b"Bearer sk-proj-org".to_vec()),
            // The response is read for token usage: uncompressed, please.
            ("accept-encoding", b"identity".to_vec()),
        ]
    );
    assert_eq!(changes.remove, vec!["x-api-key"]);
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"credit card please"}]}"#;
    let BodyDecision::Reply(r) = request_body(&p, &ctx.unwrap(), body.as_bytes())
        .now_or_never()
        .expect("no external guard")
    else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["message"], crate::guard::DEFAULT_REJECT_MESSAGE);
    assert_eq!(v["error"]["code"], "content_policy_violation");
}

#[test]
fn masks_and_the_model_override_compose_in_one_body() {
    std::env::set_var("PROMPTGATE_TEST_MASK_KEY", "sk-ant-api03-k");
    let p = Policy::from_yaml(
        r#"
backends:
- name: anthropic
  ai: {provider: {anthropic: {model: claude-opus-4-6}}}
  policies:
    ai:
      promptGuard:
        request:
        - name: codename
          regex: {action: Mask, matches: ["project falcon"]}
        - name: ids
          regex: {action: Mask, matches: ["emp-\\d{5}"]}
"#,
        "t.yaml",
        &LoadOptions::default(),
    )
    .unwrap();
    let body = r#"{"model":"claude-x","system":"Project  Falcon rules","messages":[{"role":"user","content":[{"type":"text","text":"ask emp-12345 about project\u00a0falcon"},{"type":"tool_result","tool_use_id":"t","content":"emp-99999"}]}],"stream":true}"#;
    let BodyDecision::Continue {
        replacement,
        outcome,
    } = body_of(&p, "/v1/messages", body)
    else {
        panic!()
    };
    let out = String::from_utf8(replacement.unwrap()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["model"], "claude-opus-4-6");
    assert_eq!(v["system"], "<CODENAME> rules");
    assert_eq!(
        v["messages"][0]["content"][0]["text"],
        "ask <IDS> about <CODENAME>"
    );
    assert_eq!(v["messages"][0]["content"][1]["content"], "<IDS>");
    assert_eq!(v["stream"], true);
    assert_eq!(outcome.decision, "mask");
    assert_eq!(outcome.masked, 4);
    assert_eq!(outcome.fired.len(), 4);
    assert_eq!(outcome.fired[0].location, "system");
    assert!(outcome.body_changed);
    // Everything outside the rewritten values is byte-identical.
    assert!(out.ends_with(r#""}]}],"stream":true}"#));
    // Deterministic: the same history masks the same way.
    let BodyDecision::Continue {
        replacement: again, ..
    } = body_of(&p, "/v1/messages", body)
    else {
        panic!()
    };
    assert_eq!(again.unwrap(), out.as_bytes());
    // Idempotent: a masked body has nothing left to mask.
    let BodyDecision::Continue { outcome, .. } = body_of(&p, "/v1/messages", &out) else {
        panic!()
    };
    assert_eq!(outcome.masked, 0);
}
