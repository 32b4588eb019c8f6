//! Lifecycle and hot reload through real Envoy (deploy/envoy/envoy.yaml with
//! its gRPC health checks): SIGTERM drains, a deadline bounds the drain,
//! policy and secrets reload on file changes and SIGHUP, a bad policy keeps
//! the old one, a stream keeps the policy it started with.
//!
//! Needs Envoy 1.40: run via `./scripts/test.sh` (or set ENVOY_BIN).

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use support::{Backend, Gateway, Guard, Policy, Route};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const SECRET: &str = "sk-ant-lifecycle-0001";

fn policy(pattern: &str) -> Policy {
    Policy::new()
        .backend(
            Backend::anthropic("anthropic")
                .route("/v1/messages", Route::Messages)
                .route("*", Route::Passthrough)
                .request_guard(
                    Guard::regex([pattern])
                        .name("guard")
                        .reject()
                        .message("Rejected by policy"),
                )
                .key("anthropic-secret", SECRET),
        )
        .kubernetes()
}

/// promptgate with `policy("credit card")` and these serve arguments,
/// behind Envoy (its gRPC health checks on).
fn start_pool(args: &[&str]) -> Gateway {
    Gateway::launch(policy("credit card"))
        .args(args)
        .quiet_envoy()
        .start()
}

fn body(prompt: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": prompt}]
    }))
    .unwrap()
}

async fn post(pool: &Gateway, prompt: &str) -> (u16, Value) {
    let resp = support::client()
        .post(pool.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "sk-client")
        .body(body(prompt))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v = resp.json().await.unwrap_or(Value::Null);
    (status, v)
}

/// A slow request's body sender, the rest of its body, and its pending answer.
type SlowRequest = (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    Bytes,
    tokio::task::JoinHandle<(u16, Value)>,
);

/// A request whose body is sent in two parts: the second only when the
/// returned sender is used. Envoy buffers the body, so promptgate's stream
/// stays open between the request headers and the body.
fn slow_request(pool: &Gateway, prompt: &str) -> SlowRequest {
    let full = body(prompt);
    let (first, rest) = full.split_at(full.len() / 2);
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tx.try_send(Ok(Bytes::copy_from_slice(first))).unwrap();
    let req = support::client()
        .post(pool.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .body(reqwest::Body::wrap_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
    let handle = tokio::spawn(async move {
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, json!({"client_error": e.to_string()})),
        }
    });
    (tx, Bytes::copy_from_slice(rest), handle)
}

/// Waits until promptgate has answered `n` request-headers messages in total
/// (Envoy's counter), i.e. the slow requests' streams are open and waiting
/// for their bodies.
async fn wait_streams_open(pool: &Gateway, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: u64 = pool
            .envoy_stats(".ext_proc.stream_msgs_received")
            .values()
            .sum();
        if got >= n {
            return;
        }
        assert!(Instant::now() < deadline, "streams did not open: {got}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn health(port: u16) -> Option<ServingStatus> {
    health_of(port, "").await
}

async fn health_of(port: u16, service: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .ok()?;
    let resp = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(resp.into_inner().status).ok()
}

async fn wait_log(pool: &Gateway, i: usize, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.log(i).matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "instance {i} never logged {needle:?} {count} time(s)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_not_serving_and_finishes_in_flight_streams() {
    let mut pool = start_pool(&["--drain-grace", "1s", "--drain-timeout", "10s"]);
    let port = pool.instances[0].port;
    assert_eq!(health(port).await, Some(ServingStatus::Serving));

    let (tx, rest, handle) = slow_request(&pool, "Say hello");
    wait_streams_open(&pool, 1).await;

    let t0 = Instant::now();
    pool.signal(0, "TERM");
    // health flips at once; the listener stays open for the grace
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if health(port).await == Some(ServingStatus::NotServing) {
            break;
        }
        assert!(Instant::now() < deadline, "health never turned NOT_SERVING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(t0.elapsed() < Duration::from_secs(1));
    // the liveness name stays SERVING: a probe must not kill the drain
    assert_eq!(
        health_of(port, "liveness").await,
        Some(ServingStatus::Serving)
    );
    // Envoy notices and stops choosing the instance.
    pool.wait_unhealthy(0, Duration::from_secs(5));
    // after the grace: listener closed, GOAWAY sent; the stream is still open
    wait_log(&pool, 0, "listener closed", 1).await;
    assert!(pool.is_running(0), "exited with a stream in flight");
    tokio::time::sleep(Duration::from_millis(300)).await;

    tx.send(Ok(rest)).await.unwrap();
    drop(tx);
    let (status, v) = handle.await.unwrap();
    assert_eq!(
        status,
        200,
        "in-flight request must complete: {v}\n{}",
        pool.logs()
    );
    let up = pool.upstream().only_request();
    assert_eq!(up.header("x-api-key"), Some(SECRET));

    let st = pool.wait_exit(0, Duration::from_secs(5));
    assert!(st.success(), "exit status {st}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let log = pool.log(0);
    assert!(log.contains("draining: health is NOT_SERVING"), "{log}");
    assert!(log.contains("drained; exiting"), "{log}");

    // No instance left: fail closed.
    let (status, v) = post(&pool, "Say hello").await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(pool.upstream().request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_deadline_ends_a_stream_that_never_finishes() {
    let mut pool = start_pool(&["--drain-grace", "200ms", "--drain-timeout", "1500ms"]);
    let (tx, _rest, handle) = slow_request(&pool, "Say hello");
    wait_streams_open(&pool, 1).await;
    let t0 = Instant::now();
    pool.signal(0, "TERM");
    let st = pool.wait_exit(0, Duration::from_secs(5));
    let took = t0.elapsed();
    assert!(st.success(), "exit status {st}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(pool.log(0).contains("drain deadline reached"));
    // The cut stream fails closed: the body never goes upstream.
    drop(tx);
    let (status, _) = handle.await.unwrap();
    assert_ne!(status, 200);
    assert_eq!(pool.upstream().request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_file_changes_reload_and_bad_policies_keep_the_old_one() {
    let mut pool = start_pool(&[]);
    assert_eq!(post(&pool, "I like pineapple").await.0, 200);
    assert_eq!(post(&pool, "a credit card").await.0, 403);

    // Kubernetes-style ConfigMap update (..data symlink swap).
    pool.write_policy(&policy("pineapple").to_yaml());
    wait_log(&pool, 0, "policy reloaded", 1).await;
    let (status, v) = post(&pool, "I like pineapple").await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["message"], "Rejected by policy");
    assert_eq!(post(&pool, "a credit card").await.0, 200);

    // A broken policy: logged with its place, the previous one keeps serving.
    pool.write_policy(&policy("pineapple").to_yaml().replace("matches:", "matchs:"));
    wait_log(&pool, 0, "policy reload failed", 1).await;
    let log = pool.log(0);
    let line = log
        .lines()
        .find(|l| l.contains("policy reload failed"))
        .unwrap();
    assert!(
        line.contains("matchs") && line.contains("policy.yaml"),
        "{line}"
    );
    assert_eq!(post(&pool, "I like pineapple").await.0, 403);
    // (While the file is broken, nothing else can be applied either.)
    pool.write_policy(&policy("pineapple").to_yaml());
    wait_log(&pool, 0, "policy reloaded", 2).await;

    // Key rotation: the secret file changes, the new key goes upstream.
    let secret_file = pool.dir().join("secrets/anthropic-secret/Authorization");
    std::fs::write(&secret_file, "sk-ant-rotated-0002").unwrap();
    wait_log(&pool, 0, "policy reloaded", 3).await;
    pool.upstream().clear();
    assert_eq!(post(&pool, "Say hello").await.0, 200);
    assert_eq!(
        pool.upstream().only_request().header("x-api-key"),
        Some("sk-ant-rotated-0002")
    );
    assert!(pool.is_running(0));
    pool.kill9(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_a_stream_keeps_the_policy_it_started_with() {
    let mut pool = start_pool(&["--no-watch"]);
    // A stream opens under the old policy (pineapple allowed) ...
    let (tx, rest, handle) = slow_request(&pool, "I like pineapple");
    wait_streams_open(&pool, 1).await;

    // ... the policy changes; without watching, nothing happens until SIGHUP.
    pool.write_policy(&policy("pineapple").to_yaml());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!pool.log(0).contains("policy reloaded"));
    pool.signal(0, "HUP");
    wait_log(&pool, 0, "policy reloaded", 1).await;
    assert!(pool.log(0).contains("SIGHUP"));

    // New streams get the new policy ...
    assert_eq!(post(&pool, "I like pineapple").await.0, 403);
    // ... the open one finishes under the policy it started with.
    tx.send(Ok(rest)).await.unwrap();
    drop(tx);
    let (status, v) = handle.await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(pool.upstream().request_count(), 1);
    pool.kill9(0);
}

/// Envoy keeps its access-log stream (a streamed answer's usage report)
/// open for ever: it must not hold a drain open until the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_stream_does_not_hold_the_drain_open() {
    let mut pool = start_pool(&["--drain-grace", "200ms", "--drain-timeout", "20s"]);
    let resp = support::client()
        .post(pool.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "sk-ant-client")
        .body(
            serde_json::to_vec(&json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 64,
                "stream": true,
                "messages": [{"role": "user", "content": "Say hello"}]
            }))
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.bytes().await.unwrap();
    // Envoy reported the answer's usage: its access-log stream is open.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pool
        .promptgate_metrics()
        .contains("promptgate_usage_reports_total{result=\"counted\"} 1")
    {
        assert!(
            Instant::now() < deadline,
            "no usage report:\n{}",
            pool.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t0 = Instant::now();
    pool.signal(0, "TERM");
    let st = pool.wait_exit(0, Duration::from_secs(15));
    let took = t0.elapsed();
    assert!(st.success(), "exit status {st}");
    assert!(took < Duration::from_secs(5), "the drain took {took:?}");
    let log = pool.log(0);
    assert!(log.contains("drained; exiting"), "{log}");
    assert!(!log.contains("drain deadline reached"), "{log}");
}
