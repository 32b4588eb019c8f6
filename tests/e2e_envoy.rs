//! End-to-end tests: client -> real Envoy (deploy/envoy/envoy.yaml, ports and
//! upstreams rewritten) -> ext_proc -> real `promptgate serve` -> fake provider.
//!
//! Needs Envoy 1.40: run via `./scripts/test.sh` (installs it into .venv), or set
//! ENVOY_BIN. On failure the promptgate/Envoy logs and ext_proc stats are printed.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::claude::{Claude, Finished};
use support::{client, gzip, Backend, Gateway, Guard, Policy, Route, TokenUsage};

const ANTHROPIC_SECRET: &str = "sk-ant-e2e-secret-0001";
const OPENAI_SECRET: &str = "sk-openai-e2e-secret-0002";
const CLIENT_KEY: &str = "sk-client-should-not-leak";
const REJECT_MSG: &str = "Rejected due to inappropriate content";

/// The seed policy: Anthropic backend with routes, a "credit card" guard and
/// key injection from the secret `anthropic-secret`.
fn seed_backend() -> Backend {
    Backend::anthropic("anthropic")
        .route("/v1/messages", Route::Messages)
        .route("*", Route::Passthrough)
        .request_guard(Guard::regex(["credit card"]).reject().message(REJECT_MSG))
        .key("anthropic-secret", ANTHROPIC_SECRET)
}

fn seed_policy() -> Policy {
    Policy::new().backend(seed_backend())
}

/// The seed policy with a model override.
fn override_policy() -> Policy {
    Policy::new().backend(seed_backend().model("claude-opus-4-6"))
}

/// Anthropic with a key only; OpenAI with routes, the guard and its key.
fn openai_policy(token_usage: Option<TokenUsage>) -> Policy {
    let mut openai = Backend::openai("openai")
        .route("/v1/chat/completions", Route::Completions)
        .route("*", Route::Passthrough)
        .request_guard(Guard::regex(["credit card"]).reject().message(REJECT_MSG))
        .key("openai-secret", OPENAI_SECRET);
    if let Some(mode) = token_usage {
        openai = openai.token_usage(mode);
    }
    Policy::new()
        .backend(Backend::anthropic("anthropic").key("anthropic-secret", ANTHROPIC_SECRET))
        .backend(openai)
}

fn seed_gateway() -> Gateway {
    Gateway::start(seed_policy())
}

/// A Claude-Code-like Messages request body.
fn messages_body(prompt: &str, stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
            {"type": "text", "text": "Be concise.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>Today's date is 2026-11-25.</system-reminder>"},
                {"type": "text", "text": prompt}
            ]}
        ],
        "tools": [
            {"name": "Bash", "description": "Executes a given bash command.",
             "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}
        ],
        "metadata": {"user_id": "{\"device_id\":\"e2e\",\"session_id\":\"e2e\"}"}
    })
}

/// Posts [`messages_body`] as Claude Code does and waits for the response.
async fn send_messages(gw: &Gateway, prompt: &str, stream: bool) -> reqwest::Response {
    post_messages(
        gw,
        serde_json::to_vec(&messages_body(prompt, stream)).unwrap(),
    )
    .send()
    .await
    .unwrap()
}

fn post_messages(gw: &Gateway, body: Vec<u8>) -> reqwest::RequestBuilder {
    client()
        .post(gw.url("/v1/messages?beta=true"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", CLIENT_KEY)
        .body(body)
}

async fn json_of(resp: reqwest::Response) -> (u16, String, Value) {
    let status = resp.status().as_u16();
    let ct = content_type(&resp);
    let bytes = resp.bytes().await.expect("read body");
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "status {status}: body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, ct, v)
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn assert_anthropic_error(v: &Value, kind: &str) {
    assert_eq!(v["type"], "error", "not an Anthropic error: {v}");
    assert_eq!(v["error"]["type"], kind, "error type: {v}");
    assert!(
        v["error"]["message"].is_string(),
        "error.message missing: {v}"
    );
}

fn assert_key_injected(req: &support::RecordedRequest) {
    assert_eq!(
        req.header_all("x-api-key"),
        vec![ANTHROPIC_SECRET],
        "upstream x-api-key; headers: {:?}",
        req.headers
    );
    assert!(
        req.header("authorization").is_none(),
        "authorization must not reach the Anthropic upstream: {:?}",
        req.headers
    );
    let all = format!("{:?}", req.headers);
    assert!(
        !all.contains(CLIENT_KEY),
        "client key leaked upstream: {all}"
    );
}

/// Wait until the access log contains an entry matching `pred` (it is flushed every 50ms).
async fn wait_access_log(gw: &Gateway, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        if let Some(e) = gw.access_log_entries().into_iter().find(|e| pred(e)) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no matching access log entry; access log:\n{}",
        gw.access_log()
    );
}

#[tokio::test]
async fn guarded_prompt_is_rejected_with_anthropic_error() {
    let gw = seed_gateway();
    let body = messages_body("What is a credit card", true);
    let resp = post_messages(&gw, serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    let (status, ct, v) = json_of(resp).await;
    assert_eq!(status, 403, "body: {v}");
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    assert_eq!(
        v,
        json!({"type": "error", "error": {"type": "permission_error", "message": REJECT_MSG}})
    );
    assert_eq!(
        gw.upstream().request_count(),
        0,
        "rejected request reached upstream"
    );

    assert_eq!(
        gw.ext_proc_stats().get("immediate_responses_sent"),
        Some(&1)
    );
    let entry = wait_access_log(&gw, |e| e["response_code"] == 403).await;
    assert_eq!(entry["path"], "/v1/messages?beta=true", "{entry}");
    assert_eq!(entry["method"], "POST", "{entry}");
    // promptgate's decision reaches Envoy's access log as dynamic metadata.
    let md = &entry["promptgate"];
    assert_eq!(md["decision"], "reject", "{entry}");
    assert_eq!(md["rule"], "request[0]", "{entry}");
    assert_eq!(md["location"], "messages[0].content[1]", "{entry}");
    assert_eq!(md["status"], 403.0, "{entry}");
    assert_eq!(md["backend"], "anthropic", "{entry}");
    assert!(
        !entry.to_string().contains("credit card"),
        "prompt text in the log: {entry}"
    );
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn allowed_streaming_prompt_gets_provider_key_and_exact_sse() {
    let gw = seed_gateway();
    let body = messages_body("Say hello", true);
    let sent = serde_json::to_vec(&body).unwrap();
    let resp = post_messages(&gw, sent.clone()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ct = content_type(&resp);
    assert!(ct.starts_with("text/event-stream"), "content-type {ct:?}");

    // read it as a stream, as an SSE client would
    let mut got = Vec::new();
    let mut chunks = 0;
    let mut stream = resp.bytes_stream();
    while let Some(c) = stream.next().await {
        got.extend_from_slice(&c.expect("stream chunk"));
        chunks += 1;
    }
    let want = gw.upstream().anthropic_sse_bytes();
    // the fake sends 10 chunks 20 ms apart: more than one read means no buffering
    assert!(
        chunks >= 2,
        "SSE response arrived in {chunks} read(s): buffered?"
    );
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "SSE bytes differ"
    );
    assert_eq!(got, want);

    let req = gw.upstream().only_request();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/messages?beta=true");
    assert_eq!(req.header("host"), Some("api.anthropic.com"));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_key_injected(&req);
    assert_eq!(
        req.json(),
        body,
        "body changed on the way without a model override"
    );
    let entry = wait_access_log(&gw, |e| e["response_code"] == 200).await;
    assert_eq!(entry["promptgate"]["decision"], "allow", "{entry}");
    assert_eq!(entry["promptgate"]["route"], "Messages", "{entry}");
    assert_eq!(entry["promptgate"]["auth_injected"], true, "{entry}");
    // Token usage from the stream (message_start, message_delta), read by
    // Envoy's SSE parser as it passed and left to it by promptgate, which
    // never held the stream back.
    fake_anthropic_usage_counted_from_envoy(&gw, &entry).await;
}

/// An access-log entry of a request promptgate left to the gateway: marked
/// `usage_reporter: envoy`, with the counts and model Envoy read.
fn assert_reported_by_envoy(entry: &serde_json::Value, counts: [(&str, f64); 2], model: &str) {
    assert_eq!(entry["promptgate"]["usage_reporter"], "envoy", "{entry}");
    for (key, n) in counts {
        assert_eq!(entry["usage"][key].as_f64(), Some(n), "{key}: {entry}");
    }
    assert_eq!(entry["usage"]["model"], model, "{entry}");
}

/// A non-streamed "Say hello" to the Messages route: answered 200 with the
/// fake provider's bytes unchanged; its access-log entry.
async fn non_streamed_hello(gw: &Gateway) -> serde_json::Value {
    let resp = send_messages(gw, "Say hello", false).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.bytes().await.unwrap(),
        serde_json::to_vec(&gw.upstream().anthropic_message_json()).unwrap()
    );
    wait_access_log(gw, |e| e["response_code"] == 200).await
}

/// The fake Anthropic answer's usage (25 in, 12 out) reached promptgate
/// only through Envoy: the entry is marked and carries Envoy's counts, no
/// response phase ran, and the access-log report was counted once.
async fn fake_anthropic_usage_counted_from_envoy(gw: &Gateway, entry: &serde_json::Value) {
    assert_reported_by_envoy(
        entry,
        [("input_tokens", 25.0), ("output_tokens", 12.0)],
        support::FAKE_ANTHROPIC_MODEL,
    );
    assert_eq!(gw.phase_count("response_body"), 0);
    wait_tokens(gw, "input", 25).await;
    wait_tokens(gw, "output", 12).await;
    wait_metric(gw, "promptgate_usage_reports_total{result=\"counted\"} 1").await;
    gw.assert_ext_proc_clean();
}

/// An edit of the shipped Envoy config that drops one of the ext_proc
/// filter's gRPC metadata entries (which the shipped config must have).
fn without_initial_metadata(key: &'static str) -> impl FnMut(&mut serde_yaml::Value) {
    move |cfg: &mut serde_yaml::Value| {
        let hcm = &mut cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"];
        let md = hcm["http_filters"][0]["typed_config"]["grpc_service"]["initial_metadata"]
            .as_sequence_mut()
            .unwrap();
        let before = md.len();
        md.retain(|m| m["key"].as_str() != Some(key));
        assert_eq!(md.len(), before - 1, "the shipped config says {key}");
    }
}

/// Waits for promptgate's count of the fake Anthropic model's tokens.
async fn wait_tokens(gw: &Gateway, direction: &str, n: u64) {
    let line = format!(
        "promptgate_tokens_total{{backend=\"anthropic\",model=\"{}\",direction=\"{direction}\"}} {n}",
        support::FAKE_ANTHROPIC_MODEL
    );
    wait_metric(gw, &line).await;
}

/// Waits (up to 5 s) for a line of promptgate's metrics.
async fn wait_metric(gw: &Gateway, line: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = gw.promptgate_metrics();
        if metrics.lines().any(|l| l == line) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no metric line {line:?} in:\n{metrics}\npromptgate log:\n{}",
            gw.promptgate_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn passthrough_models_listing_gets_provider_key() {
    let gw = seed_gateway();
    let resp = client()
        .get(gw.url("/v1/models"))
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", CLIENT_KEY)
        .header("authorization", format!("Bearer {CLIENT_KEY}"))
        .send()
        .await
        .unwrap();
    let (status, _, v) = json_of(resp).await;
    assert_eq!(status, 200, "body: {v}");
    assert!(v["data"].as_array().is_some_and(|d| !d.is_empty()), "{v}");

    let req = gw.upstream().only_request();
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/v1/models");
    assert_key_injected(&req);
    // headers only: no body phase, response side skipped
    let stats = gw.ext_proc_stats();
    assert_eq!(stats.get("stream_msgs_sent"), Some(&1), "{stats:?}");
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn model_override_rewrites_upstream_body() {
    let gw = Gateway::start(override_policy());
    let body = messages_body("Say hello", false);
    let resp = post_messages(&gw, serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    let (status, _, v) = json_of(resp).await;
    assert_eq!(status, 200, "body: {v}");
    assert_eq!(v["content"][0]["text"], gw.upstream().reply_text());

    let req = gw.upstream().only_request();
    assert_key_injected(&req);
    let got = req.json(); // valid JSON
    assert_eq!(got["model"], "claude-opus-4-6");
    let mut expected = body.clone();
    expected["model"] = json!("claude-opus-4-6");
    assert_eq!(got, expected, "only the model may change");
    match req.header("content-length") {
        Some(cl) => assert_eq!(cl, req.body.len().to_string(), "content-length vs body"),
        None => assert_eq!(req.header("transfer-encoding"), Some("chunked")),
    }
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn malformed_json_is_400_and_not_forwarded() {
    let gw = seed_gateway();
    let resp = post_messages(
        &gw,
        br#"{"model": "claude-sonnet-4-5", "messages": [{"role": "#.to_vec(),
    )
    .send()
    .await
    .unwrap();
    let (status, ct, v) = json_of(resp).await;
    assert_eq!(status, 400, "body: {v}");
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    assert_anthropic_error(&v, "invalid_request_error");
    assert_eq!(gw.upstream().request_count(), 0);
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn compressed_bodies_are_decoded_and_guarded() {
    let gw = seed_gateway();
    // A compressed prompt is read like any other: the guard sees through gzip.
    let bad = gzip(&serde_json::to_vec(&messages_body("What is a credit card", false)).unwrap());
    let resp = post_messages(&gw, bad)
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    let (status, _, v) = json_of(resp).await;
    assert_eq!(status, 403, "body: {v}");
    assert_eq!(gw.upstream().request_count(), 0);

    // An allowed compressed body the policy does not change goes out as sent.
    let good = gzip(&serde_json::to_vec(&messages_body("Say hello", false)).unwrap());
    let resp = post_messages(&gw, good.clone())
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    // (The fake provider does not read gzip and answers 400: what matters is
    // what reached it.)
    let _ = resp.bytes().await.unwrap();
    let req = gw.upstream().only_request();
    assert_eq!(req.header("content-encoding"), Some("gzip"));
    assert_eq!(req.body, good);
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn masked_compressed_bodies_go_out_decoded() {
    let gw = Gateway::start(mask_policy());
    let body = gzip(&serde_json::to_vec(&messages_body("about project falcon", false)).unwrap());
    let resp = post_messages(&gw, body)
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let req = gw.upstream().only_request();
    assert_eq!(
        req.header("content-encoding"),
        None,
        "the rewritten body is sent decoded"
    );
    assert_eq!(
        support::untag_json(&req.json()["messages"][0]["content"][1]["text"]),
        "about <CODENAME>"
    );
    assert_eq!(
        req.header("content-length")
            .map(|l| l.parse::<usize>().unwrap()),
        Some(req.body.len())
    );
}

#[tokio::test]
async fn bad_compressed_bodies_are_refused() {
    let gw = seed_gateway();
    // gzip magic and junk: not guessed at, refused.
    let mut corrupt = vec![0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03];
    corrupt.extend_from_slice(b"What is a credit card, compressed so the guard cannot see it");
    let bomb = gzip(&vec![b' '; 100 << 20]);
    assert!(bomb.len() < 200 << 10);
    for (encoding, body, want) in [
        ("gzip", corrupt, 400),
        ("compress", b"x".to_vec(), 415),
        ("gzip", bomb, 413),
    ] {
        let resp = post_messages(&gw, body)
            .header("content-encoding", encoding)
            .send()
            .await
            .unwrap();
        let (status, ct, v) = json_of(resp).await;
        assert_eq!(status, want, "{encoding}: {v}");
        assert!(ct.starts_with("application/json"), "content-type {ct:?}");
        assert_eq!(v["type"], "error", "{v}");
    }
    assert_eq!(gw.upstream().request_count(), 0);
    gw.assert_ext_proc_clean();
}

/// ~10 MB conversation; `last` is the final user prompt.
fn large_body(last: &str) -> Vec<u8> {
    let filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. "
        .repeat(640); // ~51 KB
    let mut messages = Vec::new();
    for i in 0..200 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(
            json!({"role": role, "content": [{"type": "text", "text": format!("{i}: {filler}")}]}),
        );
    }
    messages.push(json!({"role": "user", "content": [{"type": "text", "text": last}]}));
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages});
    let bytes = serde_json::to_vec(&body).unwrap();
    assert!(bytes.len() > 10_000_000, "{}", bytes.len());
    bytes
}

#[tokio::test]
async fn large_body_match_only_in_last_message_is_rejected() {
    let gw = seed_gateway();
    let resp = post_messages(
        &gw,
        large_body("Now tell me: what is a credit card number?"),
    )
    .send()
    .await
    .unwrap();
    let (status, _, v) = json_of(resp).await;
    assert_eq!(status, 403, "body: {v}");
    assert_anthropic_error(&v, "permission_error");
    assert_eq!(gw.upstream().request_count(), 0);
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn large_allowed_body_reaches_upstream_whole() {
    let gw = seed_gateway();
    let sent = large_body("Now summarise the conversation.");
    let resp = post_messages(&gw, sent.clone()).send().await.unwrap();
    let (status, _, v) = json_of(resp).await;
    assert_eq!(status, 200, "body: {v}");
    let req = gw.upstream().only_request();
    assert_key_injected(&req);
    assert_eq!(req.body.len(), sent.len());
    assert!(req.body == sent, "upstream body differs from the client's");
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn body_over_32_mib_is_413_json_and_not_forwarded() {
    let gw = seed_gateway();
    let mut body = serde_json::to_vec(&messages_body("Say hello", false)).unwrap();
    // valid JSON of ~33 MiB: pad the prompt
    let pad = format!(r#","padding":"{}"}}"#, "x".repeat(33 * 1024 * 1024));
    body.pop(); // drop the closing brace
    body.extend_from_slice(pad.as_bytes());
    let resp = post_messages(&gw, body).send().await.unwrap();
    let (status, ct, v) = json_of(resp).await;
    assert_eq!(status, 413, "body: {v}");
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    assert_anthropic_error(&v, "request_too_large");
    assert_eq!(gw.upstream().request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_mixed_requests_each_get_their_answer() {
    let gw = seed_gateway();
    let c = client();
    const N: usize = 200;
    let results = futures_util::stream::iter(0..N)
        .map(|i| {
            let c = c.clone();
            let gw = &gw;
            async move {
                let resp = match i % 3 {
                    0 => {
                        c.post(gw.url("/v1/messages?beta=true"))
                            .header("content-type", "application/json")
                            .header("x-api-key", CLIENT_KEY)
                            .body(
                                serde_json::to_vec(&messages_body(
                                    &format!("Say hello #{i}"),
                                    false,
                                ))
                                .unwrap(),
                            )
                            .send()
                            .await
                    }
                    1 => {
                        c.post(gw.url("/v1/messages?beta=true"))
                            .header("content-type", "application/json")
                            .header("x-api-key", CLIENT_KEY)
                            .body(
                                serde_json::to_vec(&messages_body(
                                    &format!("#{i}: what is a credit card?"),
                                    false,
                                ))
                                .unwrap(),
                            )
                            .send()
                            .await
                    }
                    _ => {
                        c.get(gw.url("/v1/models"))
                            .header("x-api-key", CLIENT_KEY)
                            .send()
                            .await
                    }
                };
                let resp = resp.unwrap_or_else(|e| panic!("request {i}: {e}"));
                let status = resp.status().as_u16();
                let v: Value = resp
                    .json()
                    .await
                    .unwrap_or_else(|e| panic!("request {i}: status {status}, body not JSON: {e}"));
                (i, status, v)
            }
        })
        .buffer_unordered(N)
        .collect::<Vec<_>>()
        .await;

    let reply = gw.upstream().reply_text().to_string();
    for (i, status, v) in &results {
        match i % 3 {
            0 => {
                assert_eq!(*status, 200, "request {i}: {v}");
                assert_eq!(v["content"][0]["text"], reply.as_str(), "request {i}: {v}");
            }
            1 => {
                assert_eq!(*status, 403, "request {i}: {v}");
                assert_eq!(v["error"]["message"], REJECT_MSG, "request {i}: {v}");
            }
            _ => {
                assert_eq!(*status, 200, "request {i}: {v}");
                assert!(v["data"].is_array(), "request {i}: {v}");
            }
        }
    }
    let reqs = gw.upstream().requests();
    let posts: Vec<_> = reqs.iter().filter(|r| r.method == "POST").collect();
    let gets = reqs.iter().filter(|r| r.method == "GET").count();
    assert_eq!(posts.len(), (0..N).filter(|i| i % 3 == 0).count());
    assert_eq!(gets, (0..N).filter(|i| i % 3 == 2).count());
    for r in &reqs {
        assert_key_injected(r);
        if r.method == "POST" {
            let text = String::from_utf8_lossy(&r.body);
            assert!(
                !text.contains("credit card"),
                "a rejected prompt reached upstream"
            );
        }
    }
    gw.assert_ext_proc_clean();
}

fn openai_gateway() -> Gateway {
    Gateway::start(openai_policy(None))
}

fn chat_body(prompt: &str, stream: bool) -> Value {
    json!({
        "model": "gpt-4o",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": prompt}
        ]
    })
}

fn post_chat(gw: &Gateway, body: &Value) -> reqwest::RequestBuilder {
    client()
        .post(gw.url("/openai/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {CLIENT_KEY}"))
        .body(serde_json::to_vec(body).unwrap())
}

fn assert_bearer_injected(req: &support::RecordedRequest) {
    assert_eq!(
        req.header_all("authorization"),
        vec![format!("Bearer {OPENAI_SECRET}").as_str()],
        "upstream authorization; headers: {:?}",
        req.headers
    );
    assert!(req.header("x-api-key").is_none(), "{:?}", req.headers);
    let all = format!("{:?}", req.headers);
    assert!(
        !all.contains(CLIENT_KEY),
        "client key leaked upstream: {all}"
    );
}

#[tokio::test]
async fn openai_completions_rejects_in_openai_shape() {
    let gw = openai_gateway();
    let resp = post_chat(&gw, &chat_body("What is a credit card", false))
        .send()
        .await
        .unwrap();
    let (status, ct, v) = json_of(resp).await;
    assert_eq!(status, 403, "body: {v}");
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    assert_eq!(v["error"]["message"], REJECT_MSG, "{v}");
    assert!(v["error"]["type"].is_string(), "error.type: {v}");
    assert!(v["error"].get("code").is_some(), "error.code missing: {v}");
    assert!(
        v.get("type").is_none(),
        "Anthropic shape on an OpenAI route: {v}"
    );
    assert_eq!(gw.upstream().request_count(), 0);
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn openai_completions_allowed_gets_bearer_key() {
    let gw = openai_gateway();
    let body = chat_body("Say hello", false);
    let resp = post_chat(&gw, &body).send().await.unwrap();
    let (status, _, v) = json_of(resp).await;
    assert_eq!(status, 200, "body: {v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        gw.upstream().reply_text()
    );
    let req = gw.upstream().only_request();
    assert_eq!(
        req.path, "/v1/chat/completions",
        "prefix /openai must be stripped"
    );
    assert_eq!(req.header("host"), Some("api.openai.com"));
    assert_bearer_injected(&req);
    assert_eq!(req.json(), body);

    // streaming: bytes pass unchanged
    gw.upstream().clear();
    let resp = post_chat(&gw, &chat_body("Say hello again", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let got = resp.bytes().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&gw.upstream().openai_sse_bytes())
    );
    assert_bearer_injected(&gw.upstream().only_request());
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn other_spellings_of_the_messages_path_are_guarded_too() {
    let gw = seed_gateway();
    let body = serde_json::to_vec(&messages_body("What is a credit card", false)).unwrap();
    for path in [
        "//v1//messages",
        "/v1/./messages",
        "/v1/x/../messages",
        "/v1%2Fmessages",
        "/v1/%6Dessages",
        "/v1/messages/",
    ] {
        let resp = client()
            .post(gw.url(path))
            .header("content-type", "application/json")
            .header("x-api-key", CLIENT_KEY)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        // either rejected by the guard, or refused outright: never forwarded
        assert!(
            status == 403 || status == 400 || status == 404,
            "{path}: {status} {text}"
        );
        let reqs = gw.upstream().requests();
        assert!(
            reqs.iter()
                .all(|r| !String::from_utf8_lossy(&r.body).contains("credit card")),
            "{path}: guarded prompt reached upstream as {:?}",
            reqs.iter().map(|r| &r.path).collect::<Vec<_>>()
        );
    }
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn http2_clients_work_too() {
    let gw = seed_gateway();
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let send = |prompt: &str| {
        h2.post(gw.url("/v1/messages?beta=true"))
            .header("content-type", "application/json")
            .header("x-api-key", CLIENT_KEY)
            .body(serde_json::to_vec(&messages_body(prompt, true)).unwrap())
            .send()
    };
    let resp = send("Say hello").await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status().as_u16(), 200);
    let got = resp.bytes().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&gw.upstream().anthropic_sse_bytes())
    );
    assert_key_injected(&gw.upstream().only_request());

    let (status, _, v) = json_of(send("What is a credit card").await.unwrap()).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["message"], REJECT_MSG);
    assert_eq!(gw.upstream().request_count(), 1);
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn policy_service_down_fails_closed_with_json_503() {
    let mut gw = seed_gateway();
    gw.stop_promptgate();
    for req in [
        post_messages(
            &gw,
            serde_json::to_vec(&messages_body("Say hello", true)).unwrap(),
        ),
        client()
            .get(gw.url("/v1/models"))
            .header("x-api-key", CLIENT_KEY),
        post_chat(&gw, &chat_body("Say hello", false)),
    ] {
        let resp = req.send().await.unwrap();
        let (status, ct, v) = json_of(resp).await;
        assert_eq!(status, 503, "body: {v}");
        assert!(ct.starts_with("application/json"), "content-type {ct:?}");
        assert_anthropic_error(&v, "api_error");
        assert_eq!(v["error"]["message"], "policy service unavailable", "{v}");
        assert!(
            v["error"]["details"]
                .as_str()
                .is_some_and(|d| d.starts_with("ext_proc")),
            "{v}"
        );
    }
    assert_eq!(
        gw.upstream().request_count(),
        0,
        "fail closed: nothing may reach upstream"
    );
}

/// Claude Code itself (installed by ./scripts/test.sh) through the gateway.
fn run_claude(gw: &Gateway, prompt: &str) -> Finished {
    Claude::prompt(prompt, CLIENT_KEY).run(gw)
}

#[test]
fn claude_code_cli_through_gateway() {
    let gw = seed_gateway();

    let out = run_claude(&gw, "Say hello");
    assert!(out.success, "claude failed: {out:?}");
    assert!(out.stdout.contains(gw.upstream().reply_text()), "{out:?}");
    // Claude Code 2.1.x first sends a warm-up `HEAD /` (user-agent Bun), then the turn.
    let reqs = gw.upstream().requests();
    let posts: Vec<_> = reqs.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1, "{reqs:?}");
    assert_eq!(posts[0].path, "/v1/messages?beta=true");
    for r in &reqs {
        assert_key_injected(r);
    }

    gw.upstream().clear();
    let out = run_claude(&gw, "What is a credit card");
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("403") && text.contains(REJECT_MSG), "{out:?}");
    let reqs = gw.upstream().requests();
    assert!(
        reqs.iter().all(|r| r.method != "POST"),
        "rejected turn reached upstream: {reqs:?}"
    );
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn policy_service_hanging_times_out_into_json_503() {
    let mut gw = seed_gateway();
    gw.stop_promptgate();
    // something accepts connections on promptgate's port but never answers
    let hang = std::net::TcpListener::bind(gw.promptgate_addr()).expect("rebind promptgate port");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in hang.incoming() {
            held.push(c);
        }
    });
    let started = std::time::Instant::now();
    let resp = send_messages(&gw, "Say hello", true).await;
    let (status, ct, v) = json_of(resp).await;
    assert_eq!(
        status, 503,
        "message_timeout 504 must be mapped to 503: {v}"
    );
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    assert_anthropic_error(&v, "api_error");
    assert_eq!(v["error"]["message"], "policy service unavailable");
    assert_eq!(
        v["error"]["details"], "ext_proc_error_per-message_timeout_exceeded",
        "{v}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(gw.upstream().request_count(), 0);
}

fn mask_policy() -> Policy {
    Policy::new().backend(
        Backend::anthropic("anthropic")
            .request_guard(Guard::regex(["project falcon"]).name("codename").mask())
            .request_guard(Guard::regex([r"emp-\d{5}"]).name("employee-id").mask())
            .key("anthropic-secret", ANTHROPIC_SECRET),
    )
}

#[tokio::test]
async fn masked_text_never_reaches_the_upstream() {
    let gw = Gateway::start(mask_policy());
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": true,
        "system": "Internal: Project\u{00a0}Falcon launches soon.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Summarise PROJECT  FALCON for emp-12345"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "cat hr.txt"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "emp-54321: project falcon lead"}]}
        ]
    });
    let resp = post_messages(&gw, serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.bytes().await.unwrap();

    let req = gw.upstream().only_request();
    let raw = String::from_utf8(req.body.clone()).unwrap();
    for leaked in ["Falcon", "FALCON", "falcon", "12345", "54321"] {
        assert!(
            !raw.contains(leaked),
            "`{leaked}` reached the upstream: {raw}"
        );
    }
    let v = req.json();
    assert_eq!(
        support::untag_json(&v["system"]),
        "Internal: <CODENAME> launches soon."
    );
    assert_eq!(
        support::untag_json(&v["messages"][0]["content"][0]["text"]),
        "Summarise <CODENAME> for <EMPLOYEE_ID>"
    );
    assert_eq!(
        support::untag_json(&v["messages"][2]["content"][0]["content"]),
        "<EMPLOYEE_ID>: <CODENAME> lead"
    );
    assert_eq!(
        v["messages"][1], body["messages"][1],
        "untouched parts stay as sent"
    );
    // content-length follows the rewritten body.
    assert_eq!(
        req.header("content-length")
            .map(|l| l.parse::<usize>().unwrap()),
        Some(req.body.len())
    );
    assert_key_injected(&req);

    let entry = wait_access_log(&gw, |e| e["response_code"] == 200).await;
    assert_eq!(entry["promptgate"]["decision"], "mask", "{entry}");
    assert_eq!(entry["promptgate"]["body_changed"], true, "{entry}");
    gw.assert_ext_proc_clean();
}

fn response_policy() -> Policy {
    response_policy_with(None)
}

fn response_policy_with(token_usage: Option<TokenUsage>) -> Policy {
    let mut b = Backend::anthropic("anthropic")
        .response_guard(
            Guard::regex([r"\d{4}-\d{4}-\d{4}-\d{4}"])
                .name("card")
                .mask(),
        )
        .response_guard(
            Guard::regex(["launch code"])
                .name("launch-codes")
                .reject()
                .message("The answer held launch codes"),
        )
        .key("anthropic-secret", ANTHROPIC_SECRET);
    if let Some(mode) = token_usage {
        b = b.token_usage(mode);
    }
    Policy::new().backend(b)
}

/// Client-visible text of an Anthropic SSE body (text deltas joined), and
/// the event names in order.
fn sse_text(body: &str) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut names = Vec::new();
    for event in body.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let mut name = String::new();
        let mut data = String::new();
        for line in event.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        let v: Value = serde_json::from_str(&data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {event:?}"));
        if v["delta"]["type"] == "text_delta" {
            text.push_str(v["delta"]["text"].as_str().unwrap());
        }
        names.push(name);
    }
    (text, names)
}

#[tokio::test]
async fn a_card_number_split_across_three_events_reaches_the_client_masked() {
    let gw = Gateway::start(response_policy());
    gw.upstream()
        .script(support::Scripted::Sse(support::anthropic_text_stream(&[
            "Your card is 4111-",
            "1111-11",
            "11-1111, keep it safe.",
        ])));
    let resp = send_messages(&gw, "What is my card?", true).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(content_type(&resp).starts_with("text/event-stream"));
    let body = String::from_utf8(resp.bytes().await.unwrap().to_vec()).unwrap();
    let (text, names) = sse_text(&body);
    assert_eq!(support::untag(&text), "Your card is <CARD>, keep it safe.");
    assert!(
        !body.contains("1111"),
        "card digits reached the client: {body}"
    );
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    // The provider was asked for an uncompressed response.
    assert_eq!(
        gw.upstream().only_request().header("accept-encoding"),
        Some("identity")
    );
    let entry = wait_access_log(&gw, |e| e["response_code"] == 200).await;
    assert_eq!(entry["promptgate"]["response_decision"], "mask", "{entry}");
    assert_eq!(entry["promptgate"]["input_tokens"], 25.0, "{entry}");
    assert_eq!(entry["promptgate"]["output_tokens"], 12.0, "{entry}");
    gw.assert_ext_proc_clean();
}

#[tokio::test]
async fn a_rejecting_response_guard_ends_the_stream_with_an_error_event() {
    let gw = Gateway::start(response_policy());
    gw.upstream()
        .script(support::Scripted::Sse(support::anthropic_text_stream(&[
            "Sure. The first part is harmless. ",
            "The launch ",
            "code is 0000 and more follows.",
        ])));
    let resp = send_messages(&gw, "Tell me", true).await;
    assert_eq!(resp.status().as_u16(), 200, "the stream had started");
    let body = String::from_utf8(resp.bytes().await.unwrap().to_vec()).unwrap();
    let last = body.trim_end().rsplit("\n\n").next().unwrap();
    assert!(
        last.starts_with("event: error\n"),
        "last event: {last:?}\nbody: {body}"
    );
    let data: Value = serde_json::from_str(last.split_once("data: ").unwrap().1).unwrap();
    assert_eq!(
        data,
        json!({"type": "error", "error": {"type": "permission_error", "message": "The answer held launch codes"}})
    );
    let (text, names) = sse_text(&body);
    assert!(!text.contains("launch") && !body.contains("0000"), "{body}");
    assert!(
        !names.contains(&"message_stop".to_owned()),
        "nothing after the error: {names:?}"
    );
    let entry = wait_access_log(&gw, |e| e["response_code"] == 200).await;
    assert_eq!(
        entry["promptgate"]["response_decision"], "reject",
        "{entry}"
    );
    assert_eq!(
        entry["promptgate"]["response_rule"], "launch-codes",
        "{entry}"
    );
}

#[tokio::test]
async fn json_responses_are_masked_or_refused_whole() {
    let gw = Gateway::start(response_policy());
    gw.upstream().script(support::Scripted::Text(
        "Card 4111-1111-1111-1111 on file.".into(),
    ));
    let resp = send_messages(&gw, "card?", false).await;
    assert_eq!(resp.status().as_u16(), 200);
    let len: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(len, bytes.len(), "content-length follows the masked body");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        support::untag_json(&v["content"][0]["text"]),
        "Card <CARD> on file."
    );

    gw.upstream()
        .script(support::Scripted::Text("The launch code is 1234.".into()));
    let resp = send_messages(&gw, "codes?", false).await;
    let (status, ct, v) = json_of(resp).await;
    assert_eq!(status, 403);
    assert!(ct.starts_with("application/json"));
    assert_eq!(v["error"]["message"], "The answer held launch codes");
}

/// Claude Code's Bash tool reads a file full of secrets; the next turn's
/// tool_result reaches the provider masked.
#[test]
fn claude_code_tool_output_is_masked_before_it_leaves() {
    let gw = Gateway::start(
        Policy::new().backend(
            Backend::anthropic("anthropic")
                .request_guard(Guard::builtins(["CreditCard", "Email", "AwsAccessKey"]).mask())
                .key("anthropic-secret", ANTHROPIC_SECRET),
        ),
    );
    gw.upstream().script(support::Scripted::ToolUse {
        name: "Bash".into(),
        input: json!({"command": "cat notes.txt", "description": "Show notes"}),
    });
    gw.upstream().script(support::Scripted::Text(
        "Those notes hold sensitive data.".into(),
    ));

    let work = tempfile::tempdir().unwrap();
    let secrets =
        "card 4242 4242 4242 4242\nmail alice.smith@example.org\naws AKIAZ5EXAMPLEKEY7QW2\n";
    std::fs::write(work.path().join("notes.txt"), secrets).unwrap();
    let out = Claude::prompt("Show me notes.txt", CLIENT_KEY)
        .allowed_tools("Bash(cat:*)")
        .in_dir(work.path())
        .run(&gw);
    assert!(out.success, "claude failed: {out:?}");
    assert!(
        out.stdout.contains("Those notes hold sensitive data."),
        "{out:?}"
    );

    let posts: Vec<_> = gw
        .upstream()
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "a tool turn and the answer turn");
    let second = String::from_utf8(posts[1].body.clone()).unwrap();
    for leaked in [
        "4242 4242",
        "alice.smith@example.org",
        "AKIAZ5EXAMPLEKEY7QW2",
    ] {
        assert!(!second.contains(leaked), "`{leaked}` reached the provider");
    }
    let v = posts[1].json();
    let result = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["type"] == "tool_result")
        .expect("the tool_result turn");
    let content = serde_json::to_string(&result["content"]).unwrap();
    for placeholder in ["<CREDIT_CARD:", "<EMAIL_ADDRESS:", "<AWS_ACCESS_KEY:"] {
        assert!(
            content.contains(placeholder),
            "{placeholder} missing in {content}"
        );
    }
    for r in &posts {
        assert_key_injected(r);
    }
}

/// With every builtin enabled (as Reject), a plain Claude Code session goes
/// through: its system prompt, reminders and tool descriptions hold no false
/// positive.
#[test]
fn claude_code_trips_no_builtin() {
    let all: Vec<&str> = promptgate::guard::builtins::Builtin::ALL
        .iter()
        .map(|b| b.name())
        .collect();
    let gw = Gateway::start(
        Policy::new()
            .backend(Backend::anthropic("anthropic").request_guard(Guard::builtins(all).reject())),
    );
    let out = run_claude(&gw, "Say hello");
    assert!(out.success, "claude failed: {out:?}");
    assert!(out.stdout.contains(gw.upstream().reply_text()), "{out:?}");
    let posts = gw
        .upstream()
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1);
}

/// Default (`tokenUsage: Streams`): a non-streamed answer is not held back
/// for its token counts — promptgate's stream ends with the request body
/// and Envoy passes the response untouched (content-length kept); a
/// streamed answer is read for them with no response headers exchange.
#[tokio::test]
async fn only_streamed_responses_are_read_for_token_usage_by_default() {
    let gw = seed_gateway();
    let resp = send_messages(&gw, "Say hello", false).await;
    assert_eq!(resp.status().as_u16(), 200);
    let len = resp.headers().get("content-length").cloned();
    let got = resp.bytes().await.unwrap();
    let want = serde_json::to_vec(&gw.upstream().anthropic_message_json()).unwrap();
    assert_eq!(got, want, "response changed on the way");
    assert_eq!(
        len.as_ref().and_then(|v| v.to_str().ok()),
        Some(want.len().to_string().as_str()),
        "content-length kept"
    );
    let entry = wait_access_log(&gw, |e| e["response_code"] == 200).await;
    assert_eq!(entry["promptgate"]["decision"], "allow", "{entry}");
    assert!(entry["promptgate"]["input_tokens"].is_null(), "{entry}");
    let stats = gw.ext_proc_stats();
    assert_eq!(stats.get("stream_msgs_sent"), Some(&2), "{stats:?}");
    assert_eq!(stats.get("server_half_closed"), Some(&1), "{stats:?}");

    // A streamed answer: its usage is left to Envoy (the shipped config
    // says it reads it): not held back by promptgate at all.
    let resp = send_messages(&gw, "Say hello again", true).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.bytes().await.unwrap(),
        gw.upstream().anthropic_sse_bytes()
    );
    // (Envoy reads the JSON answer's usage too, but nothing marked it for
    // a report: the first entry carries `usage` without `usage_reporter`.)
    let entry = wait_access_log(&gw, |e| e["promptgate"]["usage_reporter"] == "envoy").await;
    assert_eq!(
        entry["usage"]["input_tokens"].as_f64(),
        Some(25.0),
        "{entry}"
    );
    assert!(entry["promptgate"]["input_tokens"].is_null(), "{entry}");
    assert_eq!(gw.phase_count("response_headers"), 0);
    assert_eq!(gw.phase_count("response_body"), 0);
    // Envoy skipped the response phases, as for a non-streamed answer.
    let stats = gw.ext_proc_stats();
    assert_eq!(stats.get("stream_msgs_sent"), Some(&4), "{stats:?}");
    assert_eq!(stats.get("server_half_closed"), Some(&2), "{stats:?}");
    gw.assert_ext_proc_clean();
}

/// A gateway config that does not read usage itself (no
/// `x-promptgate-usage: envoy`, as with Envoy Gateway or Istio): promptgate
/// reads a streamed answer for its usage, with no response headers
/// exchange, passing every byte on unchanged.
#[tokio::test]
async fn streamed_usage_is_read_in_band_when_the_gateway_does_not_report_it() {
    let gw = Gateway::launch(seed_policy())
        .edit_envoy(without_initial_metadata("x-promptgate-usage"))
        .start();
    let resp = send_messages(&gw, "Say hello", true).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.bytes().await.unwrap(),
        gw.upstream().anthropic_sse_bytes()
    );
    let entry = wait_access_log(&gw, |e| !e["promptgate"]["input_tokens"].is_null()).await;
    assert_eq!(entry["promptgate"]["input_tokens"], 25.0, "{entry}");
    assert_eq!(entry["promptgate"]["output_tokens"], 12.0, "{entry}");
    assert_eq!(
        entry["promptgate"]["response_model"],
        support::FAKE_ANTHROPIC_MODEL,
        "{entry}"
    );
    assert_eq!(entry["promptgate"]["response_decision"], "allow", "{entry}");
    assert!(entry["promptgate"]["usage_reporter"].is_null(), "{entry}");
    assert_eq!(gw.phase_count("response_headers"), 0);
    assert!(gw.phase_count("response_body") >= 1);
    wait_tokens(&gw, "input", 25).await;
    // Not counted a second time from Envoy's access log: nothing was sent.
    assert!(!gw
        .promptgate_metrics()
        .contains("promptgate_usage_reports_total{"));
    gw.assert_ext_proc_clean();
}

/// `tokenUsage: All`: non-streamed answers count too, Anthropic and OpenAI
/// alike. The shipped config reads a JSON answer's usage itself
/// (`json_to_metadata`, `x-promptgate-json-usage: envoy`): promptgate skips
/// the response phases and counts the tokens from Envoy's access log.
#[tokio::test]
async fn token_usage_all_counts_non_streamed_answers_read_by_envoy() {
    let gw = Gateway::start(openai_policy(Some(TokenUsage::All)));
    let resp = post_chat(&gw, &chat_body("Say hello", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let got = resp.bytes().await.unwrap();
    assert_eq!(
        got,
        serde_json::to_vec(&gw.upstream().openai_completion_json()).unwrap()
    );
    let entry = wait_access_log(&gw, |e| e["response_code"] == 200).await;
    assert_eq!(entry["promptgate"]["decision"], "allow", "{entry}");
    assert_reported_by_envoy(
        &entry,
        [("prompt_tokens", 25.0), ("completion_tokens", 12.0)],
        support::FAKE_OPENAI_MODEL,
    );
    assert!(entry["promptgate"]["input_tokens"].is_null(), "{entry}");
    assert_eq!(gw.phase_count("response_headers"), 0);
    assert_eq!(gw.phase_count("response_body"), 0);
    let tokens = |direction: &str, n: u64| {
        format!(
            "promptgate_tokens_total{{backend=\"openai\",model=\"{}\",direction=\"{direction}\"}} {n}",
            support::FAKE_OPENAI_MODEL
        )
    };
    wait_metric(&gw, &tokens("input", 25)).await;
    wait_metric(&gw, &tokens("output", 12)).await;
    gw.assert_ext_proc_clean();

    let gw = Gateway::start(Policy::new().backend(seed_backend().token_usage(TokenUsage::All)));
    let entry = non_streamed_hello(&gw).await;
    fake_anthropic_usage_counted_from_envoy(&gw, &entry).await;
}

/// `tokenUsage: All` with a gateway that reads only streams (no
/// `x-promptgate-json-usage: envoy`): promptgate reads a non-streamed
/// answer in band (unchanged bytes; Envoy sends them chunked).
#[tokio::test]
async fn token_usage_all_reads_non_streamed_answers_in_band_when_the_gateway_does_not() {
    let gw = Gateway::launch(Policy::new().backend(seed_backend().token_usage(TokenUsage::All)))
        .edit_envoy(without_initial_metadata("x-promptgate-json-usage"))
        .start();
    let entry = non_streamed_hello(&gw).await;
    assert_eq!(entry["promptgate"]["input_tokens"], 25.0, "{entry}");
    assert_eq!(entry["promptgate"]["output_tokens"], 12.0, "{entry}");
    assert_eq!(
        entry["promptgate"]["response_model"],
        support::FAKE_ANTHROPIC_MODEL,
        "{entry}"
    );
    assert!(entry["promptgate"]["usage_reporter"].is_null(), "{entry}");
    assert_eq!(gw.phase_count("response_headers"), 0);
    assert!(gw.phase_count("response_body") >= 1);
    wait_tokens(&gw, "input", 25).await;
    gw.assert_ext_proc_clean();
}

/// `tokenUsage: Off`: not even a stream is read; response guards still are.
#[tokio::test]
async fn token_usage_off_leaves_responses_to_envoy_but_not_response_guards() {
    let gw = Gateway::start(Policy::new().backend(seed_backend().token_usage(TokenUsage::Off)));
    let resp = send_messages(&gw, "Say hello", true).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.bytes().await.unwrap(),
        gw.upstream().anthropic_sse_bytes()
    );
    let entry = wait_access_log(&gw, |e| e["response_code"] == 200).await;
    assert_eq!(entry["promptgate"]["decision"], "allow", "{entry}");
    assert!(entry["promptgate"]["input_tokens"].is_null(), "{entry}");
    assert_eq!(gw.ext_proc_stats().get("stream_msgs_sent"), Some(&2));
    assert_key_injected(&gw.upstream().only_request());
    gw.assert_ext_proc_clean();

    let gw = Gateway::start(response_policy_with(Some(TokenUsage::Off)));
    gw.upstream().script(support::Scripted::Text(
        "Card 4111-1111-1111-1111 on file.".into(),
    ));
    let resp = send_messages(&gw, "card?", false).await;
    let (status, _, v) = json_of(resp).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        support::untag_json(&v["content"][0]["text"]),
        "Card <CARD> on file."
    );
    // Read for the guard anyway, so its usage is reported.
    let entry = wait_access_log(&gw, |e| e["response_code"] == 200).await;
    assert_eq!(entry["promptgate"]["input_tokens"], 25.0, "{entry}");
    assert_eq!(entry["promptgate"]["response_decision"], "mask", "{entry}");
    gw.assert_ext_proc_clean();
}
