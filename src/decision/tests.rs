use super::*;
use crate::policy::RouteType;
use crate::policy::{LoadOptions, Policy};
use futures_util::FutureExt;
use serde_json::Value;

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
    assert_eq!(reply.outcome.decision, Verdict::Reject);
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
        ..
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
        ..
    } = body_of(&p, "/v1/messages", body)
    else {
        panic!()
    };
    let out = String::from_utf8(replacement.unwrap()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&crate::guard::tests::untag(&out)).unwrap();
    // Tagged by value: the same value, the same placeholder.
    let tagged: serde_json::Value = serde_json::from_str(&out).unwrap();
    let falcon = tagged["system"]
        .as_str()
        .unwrap()
        .strip_suffix(" rules")
        .unwrap();
    assert!(crate::guard::placeholder::is_tagged(falcon), "{falcon}");
    let text = tagged["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap();
    let id = &text["ask ".len()..text.find(" about").unwrap()];
    assert!(
        id.starts_with("<IDS:") && crate::guard::placeholder::is_tagged(id),
        "{text}"
    );
    // Another id, another tag.
    let other = tagged["messages"][0]["content"][1]["content"]
        .as_str()
        .unwrap();
    assert!(other.starts_with("<IDS:") && other != id, "{other}");
    assert_eq!(v["model"], "claude-opus-4-6");
    assert_eq!(v["system"], "<CODENAME> rules");
    assert_eq!(
        v["messages"][0]["content"][0]["text"],
        "ask <IDS> about <CODENAME>"
    );
    assert_eq!(v["messages"][0]["content"][1]["content"], "<IDS>");
    assert_eq!(v["stream"], true);
    assert_eq!(outcome.decision, Verdict::Mask);
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

/// `toolGuard.deny` removes the denied tools from what a request offers;
/// every other byte of the body stays.
#[test]
fn denied_tools_leave_the_request_and_nothing_else_changes() {
    let policy = Policy::from_yaml(
        r#"
backends:
- name: anthropic
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      promptGuard:
        request:
        - regex: {action: Mask, matches: ["secret-word"]}
          scope: [ToolDefinitions, UserMessages]
      toolGuard:
        deny: ["WebFetch", "mcp__*"]
- name: openai
  match: {pathPrefix: /openai}
  ai: {provider: {openai: {}}}
  policies: {ai: {toolGuard: {deny: ["mcp__*"]}}}
"#,
        "deny.yaml",
        &LoadOptions::default(),
    )
    .unwrap();
    let tool = |name: &str, desc: &str| {
        format!(
            r#"{{"name": "{name}", "description": "{desc}", "input_schema": {{"type":"object"}}}}"#
        )
    };
    let body = |tools: &[String]| {
        format!(
            r#"{{"model": "m", "messages": [{{"role":"user","content":"a secret-word"}}],
  "tools": [ {} ], "stream": true}}"#,
            tools.join(" ,\n  ")
        )
    };
    let run = |b: &str| {
        let (ctx, _) = request_headers(&policy, Some("anthropic"), &head("/v1/messages"));
        match request_body(&policy, &ctx.unwrap(), b.as_bytes())
            .now_or_never()
            .unwrap()
        {
            BodyDecision::Continue {
                replacement,
                outcome,
                ..
            } => (replacement.map(|r| String::from_utf8(r).unwrap()), outcome),
            d => panic!("{d:?}"),
        }
    };
    let (bash, fetch, mcp, read) = (
        tool("Bash", "run"),
        tool("WebFetch", "fetch a secret-word"),
        tool("mcp__gh__issue", "x"),
        tool("Read", "read"),
    );
    for (offered, kept) in [
        (vec![&bash, &fetch, &read], vec![&bash, &read]),
        (vec![&fetch, &bash], vec![&bash]),
        (vec![&bash, &mcp, &fetch], vec![&bash]),
        (vec![&mcp, &fetch], vec![]),
        (vec![&fetch, &bash, &mcp, &read], vec![&bash, &read]),
    ] {
        let offered: Vec<String> = offered.into_iter().cloned().collect();
        let b = body(&offered);
        let (new, outcome) = run(&b);
        let new = new.unwrap();
        let v: Value = serde_json::from_str(&new).unwrap_or_else(|e| panic!("{e}: {new}"));
        let names: Vec<&str> = v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        let want: Vec<String> = kept
            .iter()
            .map(|t| {
                serde_json::from_str::<Value>(t).unwrap()["name"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(names, want, "{new}");
        assert_eq!(outcome.tools_removed, offered.len() - kept.len());
        // The rest of the body is as it was (the user's text masked).
        let new = crate::guard::tests::untag(&new);
        assert!(
            new.starts_with(
                r#"{"model": "m", "messages": [{"role":"user","content":"a <masked>"}],"#
            ),
            "{new}"
        );
        assert!(new.ends_with(r#", "stream": true}"#), "{new}");
        for t in &kept {
            assert!(new.contains(t.as_str()), "{new}");
        }
    }
    // Nothing denied offered: the body is left alone.
    let b = body(&[bash.clone(), read.clone()]);
    let (new, outcome) = run(&b.replace("secret-word", "plain"));
    assert!(new.is_none());
    assert_eq!(outcome.tools_removed, 0);

    // OpenAI's shape.
    let b = r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"mcp__a__b","parameters":{}}},{"type":"function","function":{"name":"get_weather","parameters":{}}}]}"#;
    let (ctx, _) = request_headers(&policy, None, &head("/openai/v1/chat/completions"));
    let BodyDecision::Continue { replacement, .. } =
        request_body(&policy, &ctx.unwrap(), b.as_bytes())
            .now_or_never()
            .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        String::from_utf8(replacement.unwrap()).unwrap(),
        r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}]}"#
    );
}

const IDENTITY: &str = r#"
identity:
  jwt: {user: email}
  required: true
backends:
- name: anthropic
  ai: {provider: {anthropic: {}}}
- name: openai
  ai: {provider: {openai: {}}}
"#;

#[test]
fn a_verified_caller_is_in_every_decision_and_an_unknown_one_gets_401() {
    let p = Policy::from_yaml(IDENTITY, "id.yaml", &LoadOptions::default()).unwrap();
    let claims: serde_json::Map<String, Value> = serde_json::from_value(serde_json::json!({
        "email": "alice@example.com", "sub": "u-1", "groups": ["staff", "eng"]
    }))
    .unwrap();
    let known = RequestHead {
        claims: Some(&claims),
        session: Some("c0ffee"),
        ..head("/v1/messages")
    };
    let (ctx, d) = request_headers(&p, Some("anthropic"), &known);
    let HeadersDecision::Continue { outcome, .. } = d else {
        panic!("{d:?}")
    };
    assert_eq!(outcome.user.as_deref(), Some("alice@example.com"));
    assert_eq!(outcome.groups, 2);
    assert_eq!(outcome.session.as_deref(), Some("c0ffee"));
    let id = ctx.unwrap().identity.unwrap();
    assert_eq!(id.groups, ["staff", "eng"]);
    assert_eq!(id.claims["sub"], "u-1");

    // No claims (no token, or one Envoy could not verify): 401 in each
    // provider's shape, before anything else.
    for (backend, path, check) in [
        ("anthropic", "/v1/messages", "authentication_error"),
        ("openai", "/v1/chat/completions", "invalid_api_key"),
    ] {
        let (_, d) = request_headers(&p, Some(backend), &head(path));
        let HeadersDecision::Reply(r) = d else {
            panic!("{d:?}")
        };
        assert_eq!(r.status, 401);
        let body = String::from_utf8(r.body).unwrap();
        assert!(body.contains(check), "{body}");
        assert_eq!(r.outcome.user, None);
    }
    // Claims without the user claim are no identity either.
    let partial: serde_json::Map<String, Value> =
        serde_json::from_value(serde_json::json!({"sub": "u-1"})).unwrap();
    let (_, d) = request_headers(
        &p,
        Some("anthropic"),
        &RequestHead {
            claims: Some(&partial),
            ..head("/v1/messages")
        },
    );
    assert!(matches!(d, HeadersDecision::Reply(ref r) if r.status == 401));

    // Not required, hashed in telemetry.
    let hashed = IDENTITY.replace("required: true", "required: false\n  telemetry: Hashed");
    let p = Policy::from_yaml(&hashed, "id.yaml", &LoadOptions::default()).unwrap();
    let (_, d) = request_headers(&p, Some("anthropic"), &known);
    let HeadersDecision::Continue { outcome, .. } = d else {
        panic!()
    };
    let user = outcome.user.unwrap();
    assert!(user.starts_with("h:") && !user.contains("alice"), "{user}");
    let (_, d) = request_headers(&p, Some("anthropic"), &head("/v1/messages"));
    assert!(matches!(d, HeadersDecision::Continue { .. }));
    // A source is required.
    let e = Policy::from_yaml(
        "identity: {required: true}\nbackends: [{name: a, ai: {provider: {anthropic: {}}}}]",
        "id.yaml",
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(
        e.place.contains("identity") && e.message.contains("jwt"),
        "{e}"
    );
}

#[test]
fn when_conditions_pick_the_rules_per_caller() {
    let yaml = r#"
identity: {jwt: {}}
backends:
- name: anthropic
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      promptGuard:
        request:
        - when: '"contractors" in identity.groups'
          regex: { action: Reject, builtins: [AwsAccessKey, PrivateKey] }
          response: { message: "Contractors may not send credentials to the model" }
        - name: opus-codename
          when: 'request.model.startsWith("claude-opus") && request.headers["x-team"] == "red"'
          regex: { action: Mask, matches: ["falcon"] }
"#;
    let p = Policy::from_yaml(yaml, "when.yaml", &LoadOptions::default()).unwrap();
    let key = format!("AKIA{}", "Q3RT7WZX2PLM5VNB");
    let decide = |groups: &[&str], model: &str, headers: &[(String, String)]| {
        let claims: serde_json::Map<String, Value> =
            serde_json::from_value(serde_json::json!({"sub": "u", "groups": groups})).unwrap();
        let h = RequestHead {
            claims: Some(&claims),
            headers,
            ..head("/v1/messages")
        };
        let (ctx, _) = request_headers(&p, None, &h);
        let body = serde_json::json!({"model": model, "messages": [
            {"role": "user", "content": format!("key {key} for falcon")}]});
        request_body(&p, &ctx.unwrap(), body.to_string().as_bytes())
            .now_or_never()
            .unwrap()
    };
    let BodyDecision::Reply(r) = decide(&["contractors"], "claude-sonnet-4-5", &[]) else {
        panic!("a contractor's credential is rejected")
    };
    assert_eq!(r.status, 403);
    assert!(String::from_utf8(r.body)
        .unwrap()
        .contains("Contractors may not"));
    let BodyDecision::Continue { replacement, .. } = decide(&["staff"], "claude-sonnet-4-5", &[])
    else {
        panic!("staff pass")
    };
    assert!(replacement.is_none(), "no rule applies to staff on sonnet");
    let red = [("x-team".to_owned(), "red".to_owned())];
    let BodyDecision::Continue { replacement, .. } = decide(&["staff"], "claude-opus-4-6", &red)
    else {
        panic!()
    };
    let body = String::from_utf8(replacement.unwrap()).unwrap();
    assert!(
        body.contains("<OPUS_CODENAME:") && !body.contains("falcon"),
        "{body}"
    );
    // A bad condition fails at load, with its place, on any guard or rule.
    for (bad, place) in [
        (
            "promptGuard: {response: [{when: 'identity.groups &&', regex: {matches: [x]}}]}",
            "response[0].when",
        ),
        (
            "toolGuard: {rules: [{tools: [Bash], when: 'idenity.user == \"x\"'}]}",
            "toolGuard.rules[0].when",
        ),
        (
            "promptGuard: {request: [{when: '\"x\" in idenity.groups', regex: {matches: [x]}}]}",
            "when",
        ),
        (
            "promptGuard: {request: [{when: 'identity.groups.', regex: {matches: [x]}}]}",
            "when",
        ),
    ] {
        let y = format!("backends: [{{name: a, ai: {{provider: {{anthropic: {{}}}}}}, policies: {{ai: {{{bad}}}}}}}]");
        let e = Policy::from_yaml(&y, "bad.yaml", &LoadOptions::default()).unwrap_err();
        assert!(e.place.ends_with(place), "{e}");
    }
}

#[test]
fn a_shadow_guard_records_what_it_would_do_and_changes_nothing() {
    let yaml = r#"
backends:
- name: anthropic
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      promptGuard:
        request:
        - name: would-reject
          regex: { action: Audit, matches: ["drop table"] }
"#;
    let p = Policy::from_yaml(yaml, "audit.yaml", &LoadOptions::default()).unwrap();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"please drop table users"}]}"#;
    let BodyDecision::Continue {
        replacement,
        outcome,
        ..
    } = body_of(&p, "/v1/messages", body)
    else {
        panic!("a shadow guard never rejects")
    };
    assert!(replacement.is_none(), "nothing changes");
    assert_eq!(outcome.decision, Verdict::Allow);
    assert_eq!(outcome.audited, 1);
    assert_eq!(outcome.fired.len(), 1);
    assert_eq!(outcome.fired[0].rule, "would-reject");
    assert_eq!(outcome.fired[0].action, crate::guard::Action::Audit);
    assert_eq!(outcome.fired[0].location, "messages[0].content");
}

/// An Anthropic stream: one text block, then one `Bash` call.
fn text_then_bash(text: &str, command: &str) -> String {
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let input = serde_json::json!({ "command": command }).to_string();
    [
        ev("message_start", serde_json::json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}})),
        ev("content_block_start", serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        ev("content_block_delta", serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})),
        ev("content_block_stop", serde_json::json!({"type": "content_block_stop", "index": 0})),
        ev("content_block_start", serde_json::json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}})),
        ev("content_block_delta", serde_json::json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": input}})),
        ev("content_block_stop", serde_json::json!({"type": "content_block_stop", "index": 1})),
        ev("message_delta", serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}})),
        ev("message_stop", serde_json::json!({"type": "message_stop"})),
    ]
    .concat()
}

/// The response side of one request by a caller in `groups`: the stream
/// pushed whole, its answer.
fn respond(p: &Policy, groups: &[&str], model: &str, stream: &str) -> ChunkAnswer {
    let claims: serde_json::Map<String, Value> =
        serde_json::from_value(serde_json::json!({"sub": "u", "groups": groups})).unwrap();
    let h = RequestHead {
        claims: Some(&claims),
        ..head("/v1/messages")
    };
    let (ctx, _) = request_headers(p, None, &h);
    let ctx = ctx.unwrap();
    let mut decider = ResponseDecider::new(p, Some(&ctx));
    decider.conditions(&ctx, Some(model));
    let mode = decider.headers(Some(&ctx), 200, Some("text/event-stream"), None, false);
    assert_eq!(
        mode,
        ResponseHeadersDecision::Continue(BodyMode::Streamed),
        "guarded"
    );
    decider.body(Some(&ctx), stream.as_bytes(), true)
}

/// The events of a stream as JSON values (the engine re-emits a text
/// event it held back with its own key order).
fn events(stream: &str) -> Vec<Value> {
    stream
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn forwarded(answer: &ChunkAnswer, input: &str) -> String {
    match &answer.decision {
        ChunkDecision::Pass => input.to_owned(),
        ChunkDecision::Replace { body, .. } => String::from_utf8(body.clone()).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn response_guards_and_tool_rules_follow_when_per_caller() {
    let yaml = r#"
identity: {jwt: {}}
backends:
- name: anthropic
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      promptGuard:
        response:
        - name: contractor-codenames
          when: '"contractors" in identity.groups'
          regex: { action: Mask, matches: ["falcon"] }
        - name: opus-only
          when: 'request.model.startsWith("claude-opus")'
          regex: { action: Mask, matches: ["heron"] }
      toolGuard:
        rules:
        - name: contractors-no-bash
          tools: [Bash]
          when: '"contractors" in identity.groups'
          response: { message: "Contractors may not run shell commands" }
"#;
    let p = Policy::from_yaml(yaml, "when.yaml", &LoadOptions::default()).unwrap();
    assert!(p.has_conditions);
    let stream = text_then_bash("project falcon and heron", "ls -la");

    // A contractor on sonnet: the codename masked, the call blocked.
    let a = respond(&p, &["contractors"], "claude-sonnet-4-5", &stream);
    let out = forwarded(&a, &stream);
    assert!(!out.contains("falcon") && out.contains("heron"), "{out}");
    assert!(
        out.contains("Contractors may not run shell commands"),
        "{out}"
    );
    assert!(!out.contains("ls -la"), "{out}");
    assert_eq!(a.tools.len(), 1);
    assert_eq!(a.tools[0].verdict.rule(), Some("contractors-no-bash"));
    assert!(a.tools[0].verdict.is_blocked());
    let r = a.record.unwrap();
    assert_eq!(
        (r.decision, r.masked, r.tools_blocked),
        (Verdict::Mask, 1, 1)
    );

    // Staff on opus: only the model's rule runs; the call passes.
    let a = respond(&p, &["staff"], "claude-opus-4-6", &stream);
    let out = forwarded(&a, &stream);
    assert!(out.contains("falcon") && !out.contains("heron"), "{out}");
    assert!(out.contains("ls -la"), "{out}");
    assert!(a.tools.iter().all(|t| !t.verdict.is_blocked()), "{a:?}");
    let r = a.record.unwrap();
    assert_eq!((r.masked, r.tools_blocked), (1, 0));

    // Staff on sonnet: nothing applies, the stream is as it came.
    let a = respond(&p, &["staff"], "claude-sonnet-4-5", &stream);
    assert_eq!(events(&forwarded(&a, &stream)), events(&stream));
    assert_eq!(a.record.unwrap().decision, Verdict::Allow);

    // No model named (no body read): evaluated at the response headers.
    let claims: serde_json::Map<String, Value> =
        serde_json::from_value(serde_json::json!({"sub": "u", "groups": ["contractors"]})).unwrap();
    let (ctx, _) = request_headers(
        &p,
        None,
        &RequestHead {
            claims: Some(&claims),
            ..head("/v1/messages")
        },
    );
    let ctx = ctx.unwrap();
    let mut decider = ResponseDecider::new(&p, Some(&ctx));
    decider.headers(Some(&ctx), 200, Some("text/event-stream"), None, false);
    let a = decider.body(Some(&ctx), stream.as_bytes(), true);
    assert!(a.tools[0].verdict.is_blocked(), "{a:?}");
}

#[test]
fn shadow_response_guards_and_tool_rules_record_and_change_nothing() {
    let yaml = r#"
backends:
- name: anthropic
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      promptGuard:
        response:
        - name: would-reject-drop
          regex: { action: Audit, matches: ["drop table"] }
        - name: masks-secret
          regex: { action: Mask, matches: ["hunter2"] }
      toolGuard:
        rules:
        - name: would-block-rm
          tools: [Bash]
          action: Audit
          regex: { matches: ["rm -rf"] }
"#;
    let p = Policy::from_yaml(yaml, "audit.yaml", &LoadOptions::default()).unwrap();
    let stream = text_then_bash("then drop table users; drop table orders", "rm -rf /tmp/x");
    let a = respond(&p, &[], "m", &stream);
    assert_eq!(
        events(&forwarded(&a, &stream)),
        events(&stream),
        "nothing changes"
    );
    let r = a.record.clone().unwrap();
    assert_eq!(r.decision, Verdict::Allow);
    assert_eq!((r.masked, r.tools_blocked, r.audited), (0, 0, 2));
    assert_eq!(r.audited_rules, ["would-reject-drop", "would-reject-drop"]);
    assert_eq!(r.rule, None, "a shadow rule decides nothing");
    assert_eq!(a.tools.len(), 1);
    assert_eq!(
        a.tools[0].verdict,
        crate::provider::tool_call::ToolVerdict::Audit {
            rule: "would-block-rm".into()
        }
    );
    // Beside an acting rule, the acting rule acts.
    let stream = text_then_bash("drop table hunter2 now", "ls");
    let a = respond(&p, &[], "m", &stream);
    let out = forwarded(&a, &stream);
    assert!(
        !out.contains("hunter2") && out.contains("drop table"),
        "{out}"
    );
    let r = a.record.unwrap();
    assert_eq!((r.decision, r.masked, r.audited), (Verdict::Mask, 1, 1));
    assert_eq!(
        r.rule.as_deref().map(|x| x.starts_with("<MASKS_SECRET")),
        Some(true),
        "{r:?}"
    );

    // A whole JSON body: the same.
    let body = serde_json::json!({"id": "m1", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "text", "text": "drop table users"}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}})
    .to_string();
    let (ctx, _) = request_headers(&p, None, &head("/v1/messages"));
    let ctx = ctx.unwrap();
    let mut decider = ResponseDecider::new(&p, Some(&ctx));
    decider.headers(Some(&ctx), 200, Some("application/json"), None, false);
    let a = decider.body(Some(&ctx), body.as_bytes(), true);
    assert_eq!(a.decision, ChunkDecision::Pass);
    let r = a.record.unwrap();
    assert_eq!((r.decision, r.audited), (Verdict::Allow, 1));
}

#[test]
fn a_deny_entry_with_when_denies_its_callers_only() {
    let yaml = r#"
identity: {jwt: {}}
backends:
- name: anthropic
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      toolGuard:
        deny:
        - WebFetch
        - tools: [Bash, "mcp__*"]
          when: '"contractors" in identity.groups'
"#;
    let p = Policy::from_yaml(yaml, "deny.yaml", &LoadOptions::default()).unwrap();
    let request = |groups: &[&str]| {
        let claims: serde_json::Map<String, Value> =
            serde_json::from_value(serde_json::json!({"sub": "u", "groups": groups})).unwrap();
        let h = RequestHead {
            claims: Some(&claims),
            ..head("/v1/messages")
        };
        let (ctx, _) = request_headers(&p, None, &h);
        let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {"name": "WebFetch", "description": "d", "input_schema": {"type": "object"}},
            {"name": "Bash", "description": "d", "input_schema": {"type": "object"}},
            {"name": "Read", "description": "d", "input_schema": {"type": "object"}}
        ]});
        let BodyDecision::Continue {
            replacement,
            outcome,
            ..
        } = request_body(&p, &ctx.unwrap(), body.to_string().as_bytes())
            .now_or_never()
            .unwrap()
        else {
            panic!()
        };
        let sent: Value = serde_json::from_slice(&replacement.unwrap()).unwrap();
        let names: Vec<String> = sent["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        (names, outcome.tools_removed)
    };
    assert_eq!(request(&["contractors"]), (vec!["Read".to_owned()], 2));
    assert_eq!(
        request(&["staff"]),
        (vec!["Bash".to_owned(), "Read".to_owned()], 1)
    );
    // The response side: a Bash call is blocked for a contractor only.
    let stream = text_then_bash("ok", "ls");
    let a = respond(&p, &["contractors"], "m", &stream);
    assert_eq!(a.tools[0].verdict.rule(), Some("toolGuard.deny"), "{a:?}");
    assert!(a.tools[0].verdict.is_blocked());
    let a = respond(&p, &["staff"], "m", &stream);
    assert!(!a.tools[0].verdict.is_blocked(), "{a:?}");

    // Bad entries fail at load with their place.
    for (bad, want) in [
        (
            "deny: [{tools: [Bash], when: 'identity.groups &&'}]",
            "toolGuard.deny[0].when",
        ),
        (
            "deny: [x, {tools: [], when: 'true'}]",
            "toolGuard.deny[1].tools",
        ),
        (
            "deny: [{tools: ['a['], when: 'true'}]",
            "toolGuard.deny[0].tools[0]",
        ),
        ("deny: [{tools: [Bash]}]", "toolGuard.deny[0]"),
        ("deny: [{tool: Bash, when: 'true'}]", "toolGuard.deny[0]"),
        ("deny: [7]", "toolGuard.deny[0]"),
    ] {
        let y = format!("backends: [{{name: a, ai: {{provider: {{anthropic: {{}}}}}}, policies: {{ai: {{toolGuard: {{{bad}}}}}}}}}]");
        let e = Policy::from_yaml(&y, "bad.yaml", &LoadOptions::default()).unwrap_err();
        assert!(e.place.contains(want), "{bad}: {e}");
    }
}

/// A shadow match is recorded once however the stream is cut, and never
/// makes an acting guard release what it must mask.
#[test]
fn a_shadow_match_is_counted_once_and_never_weakens_a_mask() {
    let yaml = r#"
backends:
- name: anthropic
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      promptGuard:
        response:
        - name: shadow-z
          regex: { action: Audit, matches: ["zz+"] }
        - name: shadow-phrase
          regex: { action: Audit, matches: ["deploy the build with"] }
        - name: keys
          regex: { action: Mask, matches: ["AKIA[0-9A-Z]{16}"] }
"#;
    let p = Policy::from_yaml(yaml, "audit.yaml", &LoadOptions::default()).unwrap();
    let key = format!("AKIA{}", "Q3RT7WZX2PLM5VNB");
    let text = format!(
        "{} {} then deploy the build with{key} done",
        "a".repeat(1500),
        "z".repeat(5000)
    );
    let ev = |data: Value| {
        format!(
            "event: {}\ndata: {data}\n\n",
            data["type"].as_str().unwrap()
        )
    };
    let mut chunks = vec![
        ev(
            serde_json::json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": null, "usage": {"input_tokens": 1, "output_tokens": 1}}}),
        ) + &ev(
            serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    // Deltas of 7 bytes, each its own chunk.
    let bytes: Vec<char> = text.chars().collect();
    for piece in bytes.chunks(7) {
        let piece: String = piece.iter().collect();
        chunks.push(ev(serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})));
    }
    chunks.push(ev(
        serde_json::json!({"type": "content_block_stop", "index": 0}),
    ));
    chunks.push(ev(serde_json::json!({"type": "message_stop"})));
    let (ctx, _) = request_headers(&p, None, &head("/v1/messages"));
    let ctx = ctx.unwrap();
    let mut decider = ResponseDecider::new(&p, Some(&ctx));
    decider.headers(Some(&ctx), 200, Some("text/event-stream"), None, false);
    let mut out = String::new();
    let mut record = None;
    for (i, c) in chunks.iter().enumerate() {
        let a = decider.body(Some(&ctx), c.as_bytes(), i + 1 == chunks.len());
        out.push_str(&forwarded(&a, c));
        record = record.or(a.record);
    }
    let released: String = events(&out)
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert!(!released.contains(&key), "the key got out");
    let tail = &released[released.len().saturating_sub(80)..];
    assert!(
        released.contains("<KEYS:"),
        "{} {tail} {record:?}",
        released.len()
    );
    assert!(
        released.contains(&"z".repeat(5000)),
        "shadow text unchanged"
    );
    let r = record.unwrap();
    assert_eq!(r.masked, 1);
    assert_eq!(r.audited_rules, ["shadow-z", "shadow-phrase"], "{r:?}");
    assert_eq!(r.audited, 2);
}

const BUDGETS: &str = r#"
identity: {jwt: {}}
backends:
- name: openai
  ai: {provider: {openai: {}}}
  policies:
    ai:
      budgets:
        onStoreError: Reject
        prices:
          "gpt-4o*": { input: 2.5, output: 10, cacheRead: 1.25 }
        limits:
        - name: daily-tokens
          key: identity.user
          tokens: 1000
          window: 24h
        - name: team-tokens
          key: 'identity.claims.team + "/" + request.model'
          tokens: 5000
          window: 24h
        - name: monthly-usd
          key: identity.user
          usd: 2.5
          window: 30d
        - name: contractor-rpm
          key: identity.user
          requests: 3
          window: 1m
          when: '"contractors" in identity.groups'
"#;

fn budget_ctx(p: &Policy, claims: Value) -> RequestCtx {
    let claims: serde_json::Map<String, Value> = serde_json::from_value(claims).unwrap();
    let h = RequestHead {
        claims: Some(&claims),
        ..head("/v1/chat/completions")
    };
    request_headers(p, None, &h).0.unwrap()
}

#[test]
fn budgets_pick_limits_and_buckets_per_caller() {
    let p = Policy::from_yaml(BUDGETS, "b.yaml", &LoadOptions::default()).unwrap();
    let staff = budget_ctx(&p, serde_json::json!({"sub": "alice", "team": "red"}));
    assert_eq!(
        staff.response,
        ResponseRead::UsageOnly,
        "budgets read usage"
    );
    let check = budget_check(&p, &staff, Some("gpt-4o")).unwrap();
    let keys: Vec<&str> = check.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "daily-tokens:alice",
            "team-tokens:red/gpt-4o",
            "monthly-usd:alice"
        ]
    );
    assert!(check.items.iter().all(|i| !i.reserve));
    let contractor = budget_ctx(
        &p,
        serde_json::json!({"sub": "bob", "team": "blue", "groups": ["contractors"]}),
    );
    let check = budget_check(&p, &contractor, Some("gpt-4o")).unwrap();
    assert_eq!(check.items.len(), 4);
    assert_eq!(check.items[3].key, "contractor-rpm:bob");
    assert!(check.items[3].reserve);
    assert_eq!(check.items[3].cap, 3);
    // No user, no team claim: the shared unknown bucket.
    let nobody = budget_ctx(&p, serde_json::json!({}));
    let check = budget_check(&p, &nobody, None).unwrap();
    assert_eq!(check.items[0].key, format!("daily-tokens:{UNKNOWN_BUCKET}"));
    assert_eq!(check.items[1].key, format!("team-tokens:{UNKNOWN_BUCKET}"));
    // A long bucket is stored as its hash.
    let long = "x".repeat(500);
    let k = counter_key("daily-tokens", &long);
    assert!(
        k.starts_with("daily-tokens:sha256:") && k.len() < 100,
        "{k}"
    );
}

#[test]
fn a_spent_limit_is_a_429_in_the_providers_shape_with_retry_after() {
    use crate::budget::{Standing, StoreError};
    use std::time::Duration;
    let p = Policy::from_yaml(BUDGETS, "b.yaml", &LoadOptions::default()).unwrap();
    let ctx = budget_ctx(&p, serde_json::json!({"sub": "alice", "team": "red"}));
    let check = budget_check(&p, &ctx, Some("gpt-4o")).unwrap();
    let outcome = ctx.outcome(&p);
    let hour = Duration::from_secs(3600);
    let spent = Standing {
        items: vec![(1000, Duration::from_millis(90_500)), (10, hour), (0, hour)],
        exhausted: Some(0),
    };
    let BudgetVerdict::Refuse(r) = budget_verdict(&p, &ctx, &check, Ok(spent), &outcome) else {
        panic!("spent")
    };
    assert_eq!(r.status, 429);
    assert_eq!(r.headers, [("retry-after", "91".to_owned())]);
    assert_eq!(r.outcome.decision, Verdict::Reject);
    assert_eq!(r.outcome.rule.as_deref(), Some("daily-tokens"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`daily-tokens`") && message.contains("resets in 91s"),
        "{message}"
    );

    // Within: the tightest remaining of each unit, before this request.
    let within = Standing {
        items: vec![(400, hour), (4800, hour), (1_250_000_000, hour)],
        exhausted: None,
    };
    let BudgetVerdict::Pass(pass) = budget_verdict(&p, &ctx, &check, Ok(within), &outcome) else {
        panic!("within")
    };
    assert_eq!(
        pass.headers,
        [
            ("x-promptgate-budget-remaining-tokens", "200".to_owned()),
            ("x-promptgate-budget-remaining-usd", "1.250000".to_owned()),
        ]
    );
    // The debit: all tokens to the token limits, their price to the USD one.
    let usage = crate::provider::Usage {
        input: Some(1000),
        output: Some(200),
        cache_read: Some(4000),
        cache_creation: None,
    };
    let budgets = p.backends[0].budgets.as_deref().unwrap();
    let debits = budget_debits(budgets, &pass, &usage, Some("gpt-4o-2024-08-06"));
    let amounts: Vec<u64> = debits.iter().map(|d| d.amount).collect();
    // 1000 × 2.5 + 200 × 10 + 4000 × 1.25 = 9500 µUSD.
    assert_eq!(amounts, [5200, 5200, 9_500_000]);

    // The store failed: onStoreError Reject is a 503.
    let BudgetVerdict::Refuse(r) = budget_verdict(
        &p,
        &ctx,
        &check,
        Err(StoreError::Timeout(Duration::from_millis(50))),
        &outcome,
    ) else {
        panic!("reject on store error")
    };
    assert_eq!(r.status, 503);
    assert_eq!(r.outcome.decision, Verdict::Error);
}

#[test]
fn a_failed_store_lets_requests_through_under_allow() {
    use crate::budget::StoreError;
    let yaml = BUDGETS.replace("onStoreError: Reject", "onStoreError: Allow");
    let p = Policy::from_yaml(&yaml, "b.yaml", &LoadOptions::default()).unwrap();
    let ctx = budget_ctx(&p, serde_json::json!({"sub": "alice"}));
    let check = budget_check(&p, &ctx, None).unwrap();
    let BudgetVerdict::Pass(pass) = budget_verdict(
        &p,
        &ctx,
        &check,
        Err(StoreError::Failed("connection refused".into())),
        &ctx.outcome(&p),
    ) else {
        panic!("allowed")
    };
    assert!(pass.headers.is_empty(), "nothing is known to remain");
    assert!(pass.store_error.unwrap().contains("connection refused"));
    assert_eq!(pass.debit.len(), 3, "usage is still debited");
}

/// A gateway that reads a stream's usage itself takes that read over: the
/// response is skipped and a streamed request marked for its report, while
/// what promptgate must read itself (non-streamed answers under
/// `tokenUsage: All` unless the gateway reads JSON answers too, budgets)
/// stays read in band.
#[test]
fn a_stream_read_for_its_usage_alone_is_left_to_a_gateway_that_reads_it() {
    const STREAMS: GatewayDoes = GatewayDoes {
        streams: true,
        json: false,
        budget_headers: false,
    };
    const BOTH: GatewayDoes = GatewayDoes {
        streams: true,
        json: true,
        budget_headers: false,
    };
    let decide = |p: &Policy, gateway: GatewayDoes, stream: bool| {
        let h = RequestHead {
            gateway_does: gateway,
            ..head("/v1/messages")
        };
        let (ctx, d) = request_headers(p, None, &h);
        let ctx = ctx.unwrap();
        // Envoy's parser, too, needs the answer uncompressed.
        let HeadersDecision::Continue { changes, .. } = d else {
            panic!("{d:?}")
        };
        assert!(changes
            .set
            .contains(&("accept-encoding", b"identity".to_vec())));
        let body = format!(
            r#"{{"model":"m","max_tokens":1,"stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let d = request_body(p, &ctx, body.as_bytes())
            .now_or_never()
            .unwrap();
        let BodyDecision::Continue {
            read_response,
            usage_by_envoy,
            ..
        } = d
        else {
            panic!("{d:?}")
        };
        (ctx.response, read_response, usage_by_envoy)
    };
    let p = seed();
    use ResponseRead::{GatewayUsage, UsageOnly};
    let none = GatewayDoes::default();
    assert_eq!(decide(&p, none, true), (UsageOnly, true, false));
    assert_eq!(decide(&p, none, false), (UsageOnly, false, false));
    assert_eq!(decide(&p, STREAMS, true), (GatewayUsage, false, true));
    assert_eq!(decide(&p, STREAMS, false), (GatewayUsage, false, false));
    // `tokenUsage: Streams`: a JSON answer counts for nothing, whoever could read it.
    assert_eq!(decide(&p, BOTH, false), (GatewayUsage, false, false));
    assert!(!GatewayUsage.is_read());

    let all = SEED.replace("    ai:\n", "    ai:\n      tokenUsage: All\n");
    let p = Policy::from_yaml(&all, "all.yaml", &LoadOptions::default()).unwrap();
    assert_eq!(decide(&p, STREAMS, true), (UsageOnly, false, true));
    assert_eq!(decide(&p, STREAMS, false), (UsageOnly, true, false));
    // A gateway that reads JSON answers too takes every answer's usage over.
    assert_eq!(decide(&p, BOTH, true), (GatewayUsage, false, true));
    assert_eq!(decide(&p, BOTH, false), (GatewayUsage, false, true));
    let json_only = GatewayDoes {
        streams: false,
        json: true,
        budget_headers: false,
    };
    assert_eq!(decide(&p, json_only, false), (UsageOnly, false, true));
    assert_eq!(decide(&p, json_only, true), (UsageOnly, true, false));

    let p = Policy::from_yaml(BUDGETS, "b.yaml", &LoadOptions::default()).unwrap();
    let claims: serde_json::Map<String, Value> =
        serde_json::from_value(serde_json::json!({"sub": "alice", "team": "red"})).unwrap();
    let h = RequestHead {
        claims: Some(&claims),
        gateway_does: BOTH,
        ..head("/v1/chat/completions")
    };
    let ctx = request_headers(&p, None, &h).0.unwrap();
    assert_eq!(ctx.response, UsageOnly, "a budget's debit reads the answer");

    // Budgets that leave their debit to the access log: the answer is not
    // read where the gateway reads its usage and writes the budget headers.
    let access_log = SEED.replace(
        "    ai:\n",
        "    ai:\n      budgets:\n        debit: AccessLog\n        limits:\n        - {name: t, key: '\"all\"', tokens: 1000, window: 1h}\n",
    );
    let p = Policy::from_yaml(&access_log, "al.yaml", &LoadOptions::default()).unwrap();
    let all = GatewayDoes {
        budget_headers: true,
        ..BOTH
    };
    assert_eq!(decide(&p, all, true), (UsageOnly, false, true));
    assert_eq!(decide(&p, all, false), (UsageOnly, false, true));
    // Without the budget headers from the gateway, the response headers
    // are answered: read in band.
    assert_eq!(decide(&p, BOTH, true), (UsageOnly, true, false));
    // Where the gateway does not read this answer's usage: in band.
    let streams_only = GatewayDoes {
        budget_headers: true,
        ..STREAMS
    };
    assert_eq!(decide(&p, streams_only, true), (UsageOnly, false, true));
    assert_eq!(decide(&p, streams_only, false), (UsageOnly, true, false));
    // The default debit reads every answer.
    let in_band = access_log.replace("        debit: AccessLog\n", "");
    let p = Policy::from_yaml(&in_band, "ib.yaml", &LoadOptions::default()).unwrap();
    assert_eq!(decide(&p, all, true), (UsageOnly, true, false));
}

/// A report's debit: the counters the request named that are still limits
/// of tokens or spend, each with what the usage adds to it.
#[test]
fn a_reported_debit_adds_to_the_counters_the_request_named() {
    let p = Policy::from_yaml(BUDGETS, "b.yaml", &LoadOptions::default()).unwrap();
    let budgets = p.backends[0].budgets.clone().unwrap();
    let usage = crate::provider::Usage {
        input: Some(100),
        output: Some(20),
        ..Default::default()
    };
    let keys = [
        "daily-tokens:alice",
        "monthly-usd:alice",
        "gone-limit:alice",
        "no-colon",
    ];
    let (pass, items) = reported_debits(&budgets, &keys, &usage, Some("gpt-4o"));
    let got: Vec<(&str, u64)> = items.iter().map(|i| (i.key.as_str(), i.amount)).collect();
    // gpt-4o: 100 × $2.5 + 20 × $10 per million = $0.00045 = 450,000 nano-USD.
    assert_eq!(
        got,
        [("daily-tokens:alice", 120), ("monthly-usd:alice", 450_000)]
    );
    assert_eq!(pass.debit.len(), 2);
    assert_eq!(
        budget_debit_keys(&pass),
        ["daily-tokens:alice", "monthly-usd:alice"]
    );
}
