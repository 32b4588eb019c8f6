//! Who is asking, through real Envoy: its `jwt_authn` filter (the shipped
//! `deploy/envoy/jwt-authn.yaml`, keys from a local JWKS made here)
//! verifies the caller's token and forwards the claims; promptgate names
//! the user in its decision and refuses a missing or forged token with a
//! provider-shaped 401. The real Claude Code CLI, given the token as
//! `ANTHROPIC_AUTH_TOKEN`, is identified.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use support::{client, Backend, Gateway, Policy};

const ISSUER: &str = "https://issuer.promptgate.test";
const ORG_KEY: &str = "sk-ant-api03-org-key-for-identity-tests";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key from fixed bytes (a test key, nothing else).
fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn jwks(key: &SigningKey) -> String {
    json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
        "x": b64(key.verifying_key().as_bytes()),
    }]})
    .to_string()
}

/// A token for `sub` in `groups`, signed with `key`.
fn token(key: &SigningKey, sub: &str, groups: &[&str]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = b64(br#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#);
    let payload = b64(json!({
        "iss": ISSUER, "aud": "promptgate", "sub": sub, "groups": groups,
        "iat": now, "exp": now + 3600,
    })
    .to_string()
    .as_bytes());
    let signing_input = format!("{header}.{payload}");
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&signature.to_bytes()))
}

fn gateway(dir: &std::path::Path) -> Gateway {
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, jwks(&key(7))).unwrap();
    let policy = Policy::new()
        .identity_yaml("{jwt: {user: sub, groups: groups}, required: true}")
        .backend(Backend::anthropic("anthropic").key("anthropic-secret", ORG_KEY));
    Gateway::launch(policy)
        .edit_envoy(move |cfg| support::envoy::insert_jwt_authn(cfg, &jwks_path, ISSUER))
        .start()
}

async fn ask(gw: &Gateway, auth: Option<&str>) -> (u16, Value) {
    let mut req = client()
        .post(gw.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-claude-code-session-id", "session-42")
        .body(
            json!({"model": "claude-sonnet-4-5", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
        );
    if let Some(a) = auth {
        req = req.header("authorization", format!("Bearer {a}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The last access log line of a `POST /v1/messages` answered with
/// `status` (the log is flushed every 50 ms).
fn access_log(gw: &Gateway, status: u16) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = gw
            .access_log_entries()
            .into_iter()
            .rev()
            .find(|v| v["response_code"] == status && v["method"] == "POST")
        {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access log line for {status}: {}",
            gw.access_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn verified_callers_are_named_and_others_get_a_provider_shaped_401() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path());

    let alice = token(&key(7), "alice", &["staff"]);
    let (status, body) = ask(&gw, Some(&alice)).await;
    assert_eq!(status, 200, "{body}");
    let line = access_log(&gw, 200);
    assert_eq!(line["promptgate"]["user"], "alice", "{line}");
    assert_eq!(line["promptgate"]["session"], "session-42", "{line}");
    // The client's token never goes upstream; the organisation's key does.
    let up = gw.upstream().only_request();
    assert_eq!(up.header("x-api-key"), Some(ORG_KEY));
    assert_eq!(up.header("authorization"), None);

    // Missing, forged (another key), or garbage: Envoy lets it through
    // without claims, promptgate answers 401 in Anthropic's shape.
    let forged = token(&key(8), "mallory", &["staff"]);
    for auth in [None, Some(forged.as_str()), Some("not-a-jwt")] {
        let (status, body) = ask(&gw, auth).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    }
    assert_eq!(
        gw.upstream().request_count(),
        1,
        "no refused request went upstream"
    );
}

/// The real CLI with `ANTHROPIC_AUTH_TOKEN=<jwt>` is identified.
#[test]
fn claude_code_with_a_token_is_identified() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path());
    let token = token(&key(7), "carol@example.com", &["contractors"]);
    let out = support::claude::Claude::prompt("Say hi", "")
        .auth_token(&token)
        .run(&gw);
    assert!(out.success, "claude failed: {out:?}");
    let line = access_log(&gw, 200);
    assert_eq!(line["promptgate"]["user"], "carol@example.com", "{line}");
    assert!(
        line["promptgate"]["session"].is_string(),
        "Claude Code names its session: {line}"
    );
}

/// Decisions land in the hash-chained audit file with the caller; the
/// chain verifies with `promptgate audit verify`, and fails at the line a
/// test edits.
#[tokio::test]
async fn the_audit_trail_names_the_caller_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&key(7))).unwrap();
    let audit = dir.path().join("audit/audit.jsonl");
    let policy = Policy::new()
        .identity_yaml("{jwt: {user: sub}, required: true}")
        .audit_yaml(&format!("{{path: {}, headEvery: 100ms}}", audit.display()))
        .backend(
            Backend::anthropic("anthropic")
                .key("anthropic-secret", ORG_KEY)
                .request_guard(
                    support::Guard::regex(["project falcon"])
                        .name("codename")
                        .mask(),
                )
                .request_guard(
                    support::Guard::regex(["drop table"])
                        .name("no-sql")
                        .reject(),
                ),
        );
    let gw = Gateway::launch(policy)
        .edit_envoy(move |cfg| support::envoy::insert_jwt_authn(cfg, &jwks_path, ISSUER))
        .start();
    let alice = token(&key(7), "alice", &["staff"]);
    for (text, want) in [
        ("hello", 200),
        ("tell me about project falcon", 200),
        ("please drop table users", 403),
    ] {
        let resp = client()
            .post(gw.url("/v1/messages"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {alice}"))
            .body(
                json!({"model": "claude-sonnet-4-5", "max_tokens": 16,
                       "messages": [{"role": "user", "content": text}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "{text}");
    }
    // Allows are not recorded by default: the mask and the reject are.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= 2 {
            break lines;
        }
        assert!(std::time::Instant::now() < deadline, "audit: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(lines.len(), 2, "{lines:?}");
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["entry"].clone())
        .collect();
    assert_eq!(entries[0]["decision"], "mask");
    assert_eq!(entries[0]["rule"], "codename");
    assert_eq!(entries[0]["user"], "alice");
    assert!(entries[0]["request_id"].is_string() && entries[0]["trace_id"].is_string());
    assert_eq!(entries[1]["decision"], "reject");
    assert_eq!(entries[1]["rule"], "no-sql");
    for l in &lines {
        assert!(
            !l.contains("falcon") && !l.contains("drop table"),
            "matched text in {l}"
        );
    }
    let verify = |args: &[&str]| {
        let out = std::process::Command::new(support::promptgate_bin())
            .args(["audit", "verify"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let path = audit.display().to_string();
    let (code, out) = verify(&[&path]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("ok: 2 lines"), "{out}");
    // The published head is logged; the chain reaches it.
    let head: Value = serde_json::from_str(&lines[1]).unwrap();
    let (code, out) = verify(&[&path, "--head", head["hash"].as_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    // An edited line fails there.
    let edited = format!(
        "{}\n{}\n",
        lines[0].replace("codename", "nothing"),
        lines[1]
    );
    std::fs::write(&audit, edited).unwrap();
    let (code, out) = verify(&[&path]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("audit.jsonl:1:"), "{out}");
}

/// With `audit.otlp: true` every chained line also reaches the OTLP
/// collector as a log record whose body is the line exactly as in the file
/// (so a collector-side copy verifies the same way), and the published head
/// follows it.
#[tokio::test]
async fn audit_lines_and_heads_reach_the_otlp_collector() {
    let receiver = support::otlp::OtlpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let policy = Policy::new()
        .audit_yaml(&format!(
            "{{path: {}, headEvery: 100ms, otlp: true}}",
            audit.display()
        ))
        .backend(
            Backend::anthropic("anthropic")
                .key("anthropic-secret", ORG_KEY)
                .request_guard(
                    support::Guard::regex(["project falcon"])
                        .name("codename")
                        .mask(),
                ),
        );
    let gw = Gateway::launch(policy)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())
        .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
        .start();
    for _ in 0..2 {
        let resp = client()
            .post(gw.url("/v1/messages"))
            .header("content-type", "application/json")
            .header("x-api-key", "client-key")
            .body(
                json!({"model": "claude-sonnet-4-5", "max_tokens": 16,
                       "messages": [{"role": "user", "content": "about project falcon"}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let attr = |r: &opentelemetry_proto::tonic::logs::v1::LogRecord, k: &str| {
        r.attributes
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.clone())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let file = std::fs::read_to_string(&audit).unwrap_or_default();
        let lines: Vec<&str> = file.lines().collect();
        let records = receiver.logs();
        let bodies: Vec<String> = records
            .iter()
            .filter(|r| r.event_name == "promptgate.audit")
            .filter_map(support::otlp::log_body)
            .collect();
        let heads = records
            .iter()
            .filter(|r| r.event_name == "promptgate.audit.head")
            .filter(|r| {
                matches!(
                    attr(r, "audit.seq").and_then(|v| v.value),
                    Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(2))
                )
            })
            .count();
        if lines.len() == 2 && bodies.len() == 2 && heads >= 1 {
            assert_eq!(bodies, lines, "the records carry the file's lines");
            for b in &bodies {
                assert!(!b.contains("falcon"), "matched text in {b}");
            }
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "file: {lines:?}; records: {records:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The collector's copy verifies as the file does.
    let copy = dir.path().join("collector.jsonl");
    let bodies: Vec<String> = receiver
        .logs()
        .iter()
        .filter(|r| r.event_name == "promptgate.audit")
        .filter_map(support::otlp::log_body)
        .collect();
    std::fs::write(&copy, bodies.join("\n") + "\n").unwrap();
    let out = std::process::Command::new(support::promptgate_bin())
        .args(["audit", "verify"])
        .arg(&copy)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The issue's example through real Envoy: a contractor's token gets the
/// stricter rule, a staff token does not.
#[tokio::test]
async fn contractors_get_the_stricter_rule_and_staff_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&key(7))).unwrap();
    let yaml = r#"
identity: {jwt: {user: sub, groups: groups}, required: true}
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
"#;
    let gw = Gateway::launch(yaml)
        .edit_envoy(move |cfg| support::envoy::insert_jwt_authn(cfg, &jwks_path, ISSUER))
        .start();
    let key_text = format!("deploy with AKIA{}", "Q3RT7WZX2PLM5VNB");
    for (who, groups, want) in [("dana", "staff", 200), ("carol", "contractors", 403)] {
        let t = token(&key(7), who, &[groups]);
        let resp = client()
            .post(gw.url("/v1/messages"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {t}"))
            .body(
                json!({"model": "claude-sonnet-4-5", "max_tokens": 16,
                       "messages": [{"role": "user", "content": key_text}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{who}: {body}");
        if want == 403 {
            assert_eq!(
                body["error"]["message"],
                "Contractors may not send credentials to the model"
            );
        }
    }
}

/// The data of every SSE event of a body.
fn sse_datas(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// The audit lines' entries once there are `n`.
fn audit_entries(path: &std::path::Path, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n {
            return text
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()["entry"].clone())
                .collect();
        }
        assert!(std::time::Instant::now() < deadline, "audit: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Response-side rules through real Envoy, per caller: a contractors-only
/// tool rule blocks a streamed `Bash` call for a contractor's token and
/// passes it for staff; a contractors-only response guard masks for the
/// contractor only; shadow (`Audit`) rules — a tool rule and a response
/// guard — let everything through unchanged and write what they would
/// have done to the audit trail.
#[tokio::test]
async fn response_rules_follow_the_caller_and_shadow_rules_only_record() {
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&key(7))).unwrap();
    let audit = dir.path().join("audit/audit.jsonl");
    let contractors = r#""contractors" in identity.groups"#;
    let policy = Policy::new()
        .identity_yaml("{jwt: {user: sub, groups: groups}, required: true}")
        .audit_yaml(&format!("{{path: {}, headEvery: 100ms}}", audit.display()))
        .backend(
            Backend::anthropic("anthropic")
                .key("anthropic-secret", ORG_KEY)
                .tool_guard(
                    support::ToolGuard::new()
                        .rule(
                            support::ToolRule::tools(["Bash"])
                                .name("contractors-no-bash")
                                .when(contractors)
                                .message("Contractors may not run shell commands"),
                        )
                        .rule(
                            support::ToolRule::tools(["Write"])
                                .name("would-block-write")
                                .audit(),
                        ),
                )
                .response_guard(
                    support::Guard::regex(["project falcon"])
                        .name("would-mask-codename")
                        .audit(),
                )
                .response_guard(
                    support::Guard::regex(["heron"])
                        .name("contractor-heron")
                        .when(contractors)
                        .mask(),
                ),
        );
    let gw = Gateway::launch(policy)
        .edit_envoy(move |cfg| support::envoy::insert_jwt_authn(cfg, &jwks_path, ISSUER))
        .start();
    let mut lines_so_far = 0;
    for (who, group) in [("carol", "contractors"), ("dana", "staff")] {
        gw.upstream()
            .script(support::Scripted::Sse(support::anthropic_tool_turn(
                "About project falcon and heron.",
                &[
                    ("Bash", json!({"command": "ls -la"})),
                    ("Write", json!({"file_path": "notes.txt", "content": "hi"})),
                ],
                6,
            )));
        let t = token(&key(7), who, &[group]);
        let resp = client()
            .post(gw.url("/v1/messages"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {t}"))
            .body(
                json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true,
                       "messages": [{"role": "user", "content": "list the files"}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{who}");
        let body = resp.text().await.unwrap();
        let events = sse_datas(&body);
        let text: String = events
            .iter()
            .filter(|e| e["index"] == 0)
            .filter_map(|e| e["delta"]["text"].as_str())
            .collect();
        let input = |index: u64| -> String {
            events
                .iter()
                .filter(|e| e["index"] == index)
                .filter_map(|e| e["delta"]["partial_json"].as_str())
                .collect()
        };
        // The shadow guard changes nothing; the shadow tool rule neither.
        assert!(text.contains("About project falcon"), "{who}: {text}");
        assert_eq!(
            serde_json::from_str::<Value>(&input(2)).unwrap(),
            json!({"file_path": "notes.txt", "content": "hi"}),
            "{who}: {body}"
        );
        let bash_text: String = events
            .iter()
            .filter(|e| e["index"] == 1)
            .filter_map(|e| e["delta"]["text"].as_str())
            .collect();
        if group == "contractors" {
            assert!(!text.contains("heron"), "{who}: {text}");
            assert_eq!(
                bash_text, "Contractors may not run shell commands",
                "{body}"
            );
            assert!(!body.contains("ls -la"), "{body}");
        } else {
            assert!(text.contains("and heron."), "{who}: {text}");
            assert_eq!(
                serde_json::from_str::<Value>(&input(1)).unwrap(),
                json!({"command": "ls -la"}),
                "{who}: {body}"
            );
        }
        // Audit: a tool line per decided call (the block for the
        // contractor, the shadow hit for both), and the response's line.
        let want = lines_so_far + if group == "contractors" { 3 } else { 2 };
        let entries = audit_entries(&audit, want);
        let mine: Vec<&Value> = entries[lines_so_far..].iter().collect();
        lines_so_far = want;
        assert!(mine.iter().all(|e| e["user"] == who), "{mine:?}");
        let tools: Vec<(&str, &str)> = mine
            .iter()
            .filter(|e| e["phase"] == "tool")
            .map(|e| (e["rule"].as_str().unwrap(), e["action"].as_str().unwrap()))
            .collect();
        if group == "contractors" {
            assert_eq!(
                tools,
                [
                    ("contractors-no-bash", "reject"),
                    ("would-block-write", "audit")
                ]
            );
        } else {
            assert_eq!(tools, [("would-block-write", "audit")]);
        }
        let response = mine.iter().find(|e| e["phase"] == "response").unwrap();
        assert_eq!(response["audited"], 1, "{response}");
        assert_eq!(
            response["fired"],
            json!([{"rule": "would-mask-codename", "action": "audit"}])
        );
        let decision = if group == "contractors" {
            "mask"
        } else {
            "allow"
        };
        assert_eq!(response["decision"], decision, "{response}");
        // Envoy's metadata: this caller's line carries the shadow hit.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let line = loop {
            if let Some(v) = gw
                .access_log_entries()
                .into_iter()
                .find(|v| v["promptgate"]["user"] == who && v["response_code"] == 200)
            {
                break v;
            }
            assert!(std::time::Instant::now() < deadline, "{}", gw.access_log());
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(line["promptgate"]["response_audited"], 1, "{line}");
    }
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(
        !text.contains("falcon") && !text.contains("ls -la"),
        "matched text in the audit: {text}"
    );
}
