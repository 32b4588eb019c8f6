//! Budgets end to end: clients → real Envoy → two `promptgate serve`
//! replicas → the fake provider (which reports usage), the counters in a
//! real `redis-server` on a loopback port.
//!
//! Needs Envoy 1.40 and redis-server: run via `./scripts/test.sh`.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use support::redis::RedisServer;
use support::{client, Gateway, Scripted};

/// The fake provider's answer to a non-streamed request: 25 input and 12
/// output tokens.
const TOKENS_PER_ANSWER: u64 = 37;

/// A policy with one `anthropic` backend and these budgets (YAML under
/// `budgets:`, indented by the caller's lines as written here).
fn policy(budgets: &str) -> String {
    let mut out = String::from(
        "backends:\n- name: anthropic\n  ai:\n    provider:\n      anthropic: {}\n  policies:\n    ai:\n      routes:\n        '/v1/messages': Messages\n        '*': Passthrough\n      budgets:\n",
    );
    for line in budgets.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str("        ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn redis_store(redis: &RedisServer, prefix: &str) -> String {
    format!(
        "store:\n  redis: {{ url: \"{}\", keyPrefix: \"{prefix}\" }}\n",
        redis.url()
    )
}

fn body(stream: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "stream": stream,
        "messages": [{"role": "user", "content": "hello"}]
    }))
    .unwrap()
}

type Answer = (u16, reqwest::header::HeaderMap, Vec<u8>);

async fn ask(gw: &Gateway, user: &str, stream: bool) -> Answer {
    ask_url(&gw.url("/v1/messages"), user, stream, &[]).await
}

async fn ask_url(url: &str, user: &str, stream: bool, extra: &[(&str, &str)]) -> Answer {
    let mut req = client().post(url);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "sk-client-budget-test")
        .header("x-user", user)
        .body(body(stream))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.expect("body").to_vec();
    (status, headers, bytes)
}

fn header<'h>(h: &'h reqwest::header::HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The sum of a metric's samples whose labels contain every `labels` part.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|p| l.contains(p)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn metrics(gw: &Gateway, i: usize) -> String {
    support::envoy::admin_get(gw.instances[i].admin_port, "/metrics").expect("metrics")
}

/// Asks as `user` and expects 200 with the remaining-token header of
/// request `n` under a `cap`-token budget (as it stood before this
/// request's own usage).
async fn ask_within(gw: &Gateway, user: &str, stream: bool, n: u64, cap: u64) {
    let (status, headers, body) = ask(gw, user, stream).await;
    assert_eq!(
        status,
        200,
        "request {n}: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        header(&headers, "x-promptgate-budget-remaining-tokens"),
        Some((cap - n * TOKENS_PER_ANSWER).to_string().as_str()),
        "request {n}: the remaining budget before its own usage"
    );
}

/// The tokens the replicas' metrics say they debited from `limit`.
fn consumed_tokens(gw: &Gateway, replicas: usize, limit: &str) -> u64 {
    let label = format!("limit=\"{limit}\"");
    (0..replicas)
        .map(|i| {
            sample(
                &metrics(gw, i),
                "promptgate_budget_consumed_total",
                &[&label, r#"unit="tokens""#],
            )
        })
        .sum::<f64>() as u64
}

fn assert_refused_by(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8], limit: &str) {
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(body));
    let v: Value = serde_json::from_slice(body).expect("a JSON error body");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("`{limit}`")), "{message}");
    assert!(message.contains("resets in"), "{message}");
    let retry: u64 = header(headers, "retry-after")
        .expect("retry-after")
        .parse()
        .unwrap();
    assert!(retry >= 1, "retry-after {retry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_token_budget_held_in_redis() {
    let redis = RedisServer::start();
    let budgets = format!(
        "{}onStoreError: Reject\nstoreTimeout: 200ms\nlimits:\n- name: user-tokens\n  key: 'request.headers[\"x-user\"]'\n  tokens: 1000\n  window: 10m\n",
        redis_store(&redis, "e2e1:")
    );
    let mut gw = Gateway::launch(policy(&budgets))
        .instances(2)
        .quiet_envoy()
        .start();

    // 27 answers use 999 tokens: the 28th request still finds budget left
    // (it is checked before its own usage), the 29th does not.
    let allowed = 1000_u64.div_ceil(TOKENS_PER_ANSWER);
    for n in 0..allowed {
        ask_within(&gw, "alice", false, n, 1000).await;
    }
    assert_eq!(
        redis.get_u64("e2e1:user-tokens:alice"),
        allowed * TOKENS_PER_ANSWER
    );
    let ttl = redis.pttl("e2e1:user-tokens:alice");
    assert!(
        ttl > 0 && ttl <= 600_000,
        "the counter expires with its window: {ttl}"
    );

    // Refused, whichever replica the request reaches (Envoy round-robins).
    for _ in 0..6 {
        let (status, headers, body) = ask(&gw, "alice", false).await;
        assert_refused_by(status, &headers, &body, "user-tokens");
    }
    for i in 0..2 {
        let rejected = sample(
            &metrics(&gw, i),
            "promptgate_budget_rejected_total",
            &[r#"limit="user-tokens""#],
        );
        assert!(rejected >= 1.0, "replica {i} refused none: {rejected}");
    }
    assert_eq!(
        consumed_tokens(&gw, 2, "user-tokens"),
        allowed * TOKENS_PER_ANSWER
    );
    assert_eq!(
        gw.upstream().request_count() as u64,
        allowed,
        "no refused request went upstream"
    );

    // Another bucket is untouched.
    let (status, _, _) = ask(&gw, "bob", false).await;
    assert_eq!(status, 200);

    // `budgets show` reads the bucket from Redis.
    let out = std::process::Command::new(support::promptgate_bin())
        .args(["budgets", "show", "--config"])
        .arg(gw.config_path())
        .args(["--key", "alice"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.contains("user-tokens"))
        .unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols[..5],
        [
            "anthropic",
            "user-tokens",
            &(allowed * TOKENS_PER_ANSWER).to_string(),
            "1000",
            "10m"
        ],
        "{text}"
    );

    // Restarted replicas see the same counts.
    for i in 0..2 {
        gw.start_instance(i);
    }
    gw.wait_healthy(2, Duration::from_secs(20));
    for _ in 0..2 {
        let (status, headers, body) = ask(&gw, "alice", false).await;
        assert_refused_by(status, &headers, &body, "user-tokens");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_resets_and_the_counter_expires() {
    let redis = RedisServer::start();
    let budgets = format!(
        "{}limits:\n- name: short-tokens\n  key: 'request.headers[\"x-user\"]'\n  tokens: 100\n  window: 2s\n",
        redis_store(&redis, "e2e2:")
    );
    let gw = Gateway::launch(policy(&budgets)).quiet_envoy().start();
    for _ in 0..3 {
        assert_eq!(ask(&gw, "carol", false).await.0, 200);
    }
    let (status, headers, body) = ask(&gw, "carol", false).await;
    assert_refused_by(status, &headers, &body, "short-tokens");
    let retry: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!(retry <= 2, "retry-after {retry} within the 2s window");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        redis.get_u64("e2e2:short-tokens:carol"),
        0,
        "the key expired"
    );
    let (status, headers, _) = ask(&gw, "carol", false).await;
    assert_eq!(status, 200, "a new window");
    assert_eq!(
        header(&headers, "x-promptgate-budget-remaining-tokens"),
        Some("100")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cap_lets_exactly_its_number_through_under_concurrency() {
    let redis = RedisServer::start();
    let budgets = format!(
        "{}storeTimeout: 2s\nlimits:\n- name: user-rpm\n  key: 'request.headers[\"x-user\"]'\n  requests: 50\n  window: 10m\n",
        redis_store(&redis, "e2e3:")
    );
    let gw = Gateway::launch(policy(&budgets))
        .instances(2)
        .quiet_envoy()
        .start();
    let url = gw.url("/v1/messages");
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            ask_url(&url, "dave", false, &[]).await
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let (status, headers, body) = t.await.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                assert_refused_by(status, &headers, &body, "user-rpm");
                refused += 1
            }
            s => panic!("status {s}: {}", String::from_utf8_lossy(&body)),
        }
    }
    assert_eq!((ok, refused), (50, 150));
    assert_eq!(redis.get_u64("e2e3:user-rpm:dave"), 50);
    assert_eq!(gw.upstream().request_count(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_or_silent_redis_gives_the_configured_answer_within_the_timeout() {
    let mut redis = RedisServer::start();
    let store = redis_store(&redis, "e2e4:");
    let limits = "limits:\n- name: user-tokens\n  key: 'request.headers[\"x-user\"]'\n  tokens: 100000\n  window: 10m\n";
    let reject = format!("{store}onStoreError: Reject\nstoreTimeout: 150ms\n{limits}");
    let mut gw = Gateway::launch(policy(&reject)).quiet_envoy().start();
    assert_eq!(ask(&gw, "erin", false).await.0, 200, "Redis up");

    // A Redis that accepts but never answers: the decision waits no
    // longer than storeTimeout.
    redis.pause(true);
    let started = Instant::now();
    let (status, _, body) = ask(&gw, "erin", false).await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["type"], "api_error");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("budget"),
        "{v}"
    );
    assert!(
        took < Duration::from_millis(150 + 600),
        "a silent Redis held the request {took:?} (storeTimeout 150ms)"
    );
    let errors = sample(
        &gw.promptgate_metrics(),
        "promptgate_budget_store_errors_total",
        &[r#"op="check""#, r#"decision="reject""#],
    );
    assert!(errors >= 1.0, "store errors counted: {errors}");
    assert!(
        gw.promptgate_log().contains("budget store failed"),
        "a log line says so"
    );
    redis.pause(false);

    // Stopped: with onStoreError Allow, requests pass (counted, logged).
    redis.stop();
    let allow = format!("{store}onStoreError: Allow\nstoreTimeout: 150ms\n{limits}");
    gw.write_policy(&policy(&allow));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let started = Instant::now();
        let (status, _, body) = ask(&gw, "erin", false).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(150 + 600),
            "a stopped Redis held the request {took:?}"
        );
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        assert!(Instant::now() < deadline, "the Allow policy never loaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let allowed = sample(
        &gw.promptgate_metrics(),
        "promptgate_budget_store_errors_total",
        &[r#"op="check""#, r#"decision="allow""#],
    );
    assert!(allowed >= 1.0, "allowed store errors counted: {allowed}");

    // Back: counting again (a fresh Redis: no persistence).
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, headers, _) = ask(&gw, "erin", false).await;
        assert_eq!(status, 200);
        if header(&headers, "x-promptgate-budget-remaining-tokens").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected to Redis");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(redis.get_u64("e2e4:user-tokens:erin") > 0);
}

/// An Anthropic stream whose usage has cache reads and writes.
fn cached_stream() -> Vec<Bytes> {
    let event = |name: &str, data: Value| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_budget", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 1200, "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 50000, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi."}}),
        ),
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 800}}),
        ),
        event("message_stop", json!({"type": "message_stop"})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_with_cache_reads_costs_what_the_hand_computation_says() {
    let redis = RedisServer::start();
    let budgets = format!(
        "{}prices:\n  \"claude-sonnet-*\": {{ input: 3.0, output: 15.0, cacheRead: 0.30, cacheWrite: 3.75 }}\nlimits:\n- name: user-usd\n  key: 'request.headers[\"x-user\"]'\n  usd: 1\n  window: 30d\n",
        redis_store(&redis, "e2e5:")
    );
    let gw = Gateway::launch(policy(&budgets)).quiet_envoy().start();
    gw.upstream().script(Scripted::Sse(cached_stream()));
    let (status, headers, body) = ask(&gw, "frank", true).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "x-promptgate-budget-remaining-usd"),
        Some("1.000000")
    );
    assert!(String::from_utf8_lossy(&body).contains("message_stop"));
    // 1200 × 3 + 800 × 15 + 50000 × 0.30 + 2000 × 3.75 = 38100 µUSD.
    assert_eq!(redis.get_u64("e2e5:user-usd:frank"), 38_100_000, "nano-USD");
    let (_, headers, _) = ask(&gw, "frank", false).await;
    assert_eq!(
        header(&headers, "x-promptgate-budget-remaining-usd"),
        Some("0.961900")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_one_replica_counts_in_process() {
    let budgets = "limits:\n- name: local-tokens\n  key: 'request.headers[\"x-user\"]'\n  tokens: 50\n  window: 10m\n- name: contractor-rpm\n  key: 'request.headers[\"x-user\"]'\n  requests: 1\n  window: 10m\n  when: '\"x-team\" in request.headers && request.headers[\"x-team\"] == \"contractors\"'\n";
    let gw = Gateway::launch(policy(budgets)).quiet_envoy().start();
    let (status, headers, _) = ask(&gw, "gina", true).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "x-promptgate-budget-remaining-tokens"),
        Some("50")
    );
    assert_eq!(
        header(&headers, "x-promptgate-budget-remaining-requests"),
        None,
        "the `when:` does not hold"
    );
    let (status, headers, _) = ask(&gw, "gina", false).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "x-promptgate-budget-remaining-tokens"),
        Some("13")
    );
    let (status, headers, body) = ask(&gw, "gina", false).await;
    assert_refused_by(status, &headers, &body, "local-tokens");

    // A contractor: one request per window.
    let url = gw.url("/v1/messages");
    let team = [("x-team", "contractors")];
    let (status, headers, _) = ask_url(&url, "hank", false, &team).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "x-promptgate-budget-remaining-requests"),
        Some("0")
    );
    let (status, headers, body) = ask_url(&url, "hank", false, &team).await;
    assert_refused_by(status, &headers, &body, "contractor-rpm");
    // The refused request reserved nothing, and is no contractor request
    // without the header.
    assert_eq!(ask_url(&url, "hank", false, &[]).await.0, 200);

    // A model request without a body is checked at its headers.
    let get = || {
        client()
            .get(gw.url("/v1/messages"))
            .header("x-user", "ivan")
            .header("x-team", "contractors")
            .send()
    };
    let first = get().await.unwrap();
    assert_ne!(first.status().as_u16(), 429);
    let second = get().await.unwrap();
    assert_eq!(second.status().as_u16(), 429);
    let body = second.bytes().await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("contractor-rpm"));
}

/// A long stream: usage in `message_start`, then many deltas 20 ms apart.
fn long_stream() -> Vec<Bytes> {
    let mut chunks = cached_stream();
    let delta = chunks.remove(2);
    let tail = chunks.split_off(2);
    for _ in 0..100 {
        chunks.push(delta.clone());
    }
    chunks.extend(tail);
    chunks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_short_debits_what_it_reported() {
    let redis = RedisServer::start();
    let budgets = format!(
        "{}limits:
- name: user-tokens
  key: 'request.headers[\"x-user\"]'
  tokens: 1000000
  window: 10m
",
        redis_store(&redis, "e2e6:")
    );
    let gw = Gateway::launch(policy(&budgets)).quiet_envoy().start();
    gw.upstream().script(Scripted::Sse(long_stream()));
    let mut r = client()
        .post(gw.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-user", "judy")
        .body(body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Read until the message_start has passed, then hang up.
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("content_block_delta") {
        seen.extend_from_slice(&r.chunk().await.unwrap().expect("more of the stream"));
    }
    drop(r);
    // message_start reported 1200 + 50000 + 2000 input tokens and 1 output.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let used = redis.get_u64("e2e6:user-tokens:judy");
        if used == 53_201 {
            break;
        }
        assert_eq!(used, 0, "only what the stream reported is debited");
        assert!(
            Instant::now() < deadline,
            "the cut stream was never debited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shipped Envoy config adds the remaining budget headers itself from
/// promptgate's metadata (`response_headers_to_add`), so promptgate never
/// asks for the response headers for them; an Envoy without that config
/// (no `x-promptgate-budget-headers` gRPC metadata: Envoy Gateway) gets
/// them from promptgate on the response headers, with the same values.
#[tokio::test]
async fn remaining_budget_headers_come_from_envoy_or_from_promptgate() {
    let budgets = "limits:\n- name: tokens\n  key: 'request.headers[\"x-user\"]'\n  tokens: 1000\n  window: 10m\n- name: rpm\n  key: 'request.headers[\"x-user\"]'\n  requests: 5\n  window: 10m\n";
    let expect = |headers: &reqwest::header::HeaderMap, tokens: &str, requests: &str| {
        assert_eq!(
            header(headers, "x-promptgate-budget-remaining-tokens"),
            Some(tokens)
        );
        assert_eq!(
            header(headers, "x-promptgate-budget-remaining-requests"),
            Some(requests)
        );
        assert_eq!(
            headers
                .get_all("x-promptgate-budget-remaining-tokens")
                .iter()
                .count(),
            1,
            "one header, not one from each"
        );
    };

    let gw = Gateway::launch(policy(budgets)).quiet_envoy().start();
    for stream in [false, true] {
        let (status, headers, _) = ask(&gw, "olga", stream).await;
        assert_eq!(status, 200);
        // As they stood before this request's own usage (the first
        // answer's 37 tokens are spent by the second request).
        let left = if stream {
            (1000 - TOKENS_PER_ANSWER).to_string()
        } else {
            "1000".into()
        };
        expect(&headers, &left, if stream { "3" } else { "4" });
    }
    assert_eq!(
        gw.phase_count("response_headers"),
        0,
        "no response-headers exchange"
    );
    // A passthrough request carries no budget headers.
    let resp = client().get(gw.url("/v1/models")).send().await.unwrap();
    assert!(resp
        .headers()
        .get("x-promptgate-budget-remaining-tokens")
        .is_none());
    gw.assert_ext_proc_clean();

    // Without the config's word, promptgate adds them on the response headers.
    let gw = Gateway::launch(policy(budgets))
        .quiet_envoy()
        .edit_envoy(|cfg: &mut serde_yaml::Value| {
            let hcm = &mut cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
                [0]["typed_config"];
            let vh = &mut hcm["route_config"]["virtual_hosts"][0];
            vh.as_mapping_mut()
                .unwrap()
                .remove("response_headers_to_add");
            let grpc = &mut hcm["http_filters"][0]["typed_config"]["grpc_service"];
            grpc.as_mapping_mut().unwrap().remove("initial_metadata");
        })
        .start();
    for stream in [false, true] {
        let (status, headers, _) = ask(&gw, "olga", stream).await;
        assert_eq!(status, 200);
        let left = if stream {
            (1000 - TOKENS_PER_ANSWER).to_string()
        } else {
            "1000".into()
        };
        expect(&headers, &left, if stream { "3" } else { "4" });
    }
    assert!(gw.phase_count("response_headers") >= 2);
    gw.assert_ext_proc_clean();
}

/// `debit: AccessLog`: the answer is not read in band (no response phase
/// reaches promptgate); Envoy reads its usage and its access log reports it
/// to the access-log service of whichever replica, which debits the
/// counters the request named. Two replicas share the Redis budget as with
/// the in-band debit; each debit lands within the log's flush interval
/// after the answer, and the request after exhaustion is refused on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_left_to_the_access_log_are_debited_after_the_answer() {
    let redis = RedisServer::start();
    let budgets = format!(
        "{}debit: AccessLog\nstoreTimeout: 200ms\nlimits:\n- name: user-tokens\n  key: 'request.headers[\"x-user\"]'\n  tokens: 200\n  window: 10m\n- name: user-usd\n  key: 'request.headers[\"x-user\"]'\n  usd: 100\n  window: 10m\n",
        redis_store(&redis, "e2eal:")
    );
    let gw = Gateway::launch(policy(&budgets))
        .instances(2)
        .quiet_envoy()
        .start();
    let counted = |want: u64| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = redis.get_u64("e2eal:user-tokens:alice");
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the debit did not land: {got} tokens counted, {want} expected"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // 6 answers use 222 tokens: the 6th still finds 15 left, the 7th none.
    let allowed = 200_u64.div_ceil(TOKENS_PER_ANSWER);
    for n in 0..allowed {
        // The remaining budget counts every earlier answer: each debit
        // landed before the next request.
        ask_within(&gw, "alice", n % 2 == 1, n, 200).await;
        counted((n + 1) * TOKENS_PER_ANSWER);
    }
    // Spend too: the USD counter holds the priced usage (nano-USD).
    assert!(redis.get_u64("e2eal:user-usd:alice") > 0);
    for _ in 0..4 {
        let (status, headers, body) = ask(&gw, "alice", false).await;
        assert_refused_by(status, &headers, &body, "user-tokens");
    }
    for i in 0..2 {
        let m = metrics(&gw, i);
        assert_eq!(
            sample(
                &m,
                "promptgate_phase_duration_seconds_count",
                &[r#"phase="response_body""#]
            ),
            0.0,
            "replica {i} read an answer in band"
        );
        assert_eq!(
            sample(
                &m,
                "promptgate_phase_duration_seconds_count",
                &[r#"phase="response_headers""#]
            ),
            0.0,
            "replica {i} was asked for response headers"
        );
    }
    assert_eq!(
        consumed_tokens(&gw, 2, "user-tokens"),
        allowed * TOKENS_PER_ANSWER
    );
    assert_eq!(gw.upstream().request_count() as u64, allowed);
}
