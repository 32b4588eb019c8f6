//! Where one request's time goes inside promptgate, stage by stage, in
//! process (no network): the ext_proc messages Envoy sends for the captured
//! 76 KB Claude Code request (request headers, then the buffered body) and
//! promptgate's two answers.
//!
//! Stages, each timed alone and interleaved round by round (medians):
//! 1. protobuf decode of the two `ProcessingRequest`s from their wire bytes:
//!    promptgate's codec (the body shared with the receive buffer), and
//!    prost's (the body copied out), for comparison;
//! 2. the decision core alone (`decision::request_headers` + `request_body`);
//! 3. the ext_proc state machine (`StreamState::handle` for both messages,
//!    then the stream's end: metrics, span close) with no log subscriber;
//! 4. the same under promptgate's own subscriber, log lines to a sink
//!    (formatting, spans) — the span/log cost is 4 − 3;
//! 5. the same, log lines to a file (the write itself is 5 − 4);
//! 6. protobuf encode of the two answers.
//!
//! `cargo bench --bench hot_path`. Knobs: PROMPTGATE_BENCH_REQUESTS (rounds,
//! default 3000), PROMPTGATE_BENCH_COLD=1 (32 MB written before each round,
//! so stages 1 and 2 start with cold caches, as a request does on a busy
//! machine).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use futures_util::FutureExt;
use promptgate::decision::{self, RequestHead};
use promptgate::extproc::{codec, StreamState};
use promptgate::policy::Policy;
use promptgate::telemetry::{self, StreamTelemetry};
use prost::Message;
use support::bench::{env_or, percentile, us};
use support::messages::{claude_code_headers, request_body};
use support::{Backend, Guard};

fn policy() -> support::Policy {
    support::Policy::new().backend(
        Backend::anthropic("anthropic")
            .request_guard(
                Guard::regex(["credit card"])
                    .reject()
                    .message("Rejected due to inappropriate content"),
            )
            .key("anthropic-secret", "sk-ant-bench"),
    )
}

fn request_id(n: u64) -> String {
    format!("6f1c1a2e-0000-4000-8000-{n:012x}")
}

/// One request through the state machine; its two answers.
async fn through_state_machine(
    policy: &Arc<Policy>,
    headers: ProcessingRequest,
    body: ProcessingRequest,
) -> [ProcessingResponse; 2] {
    let mut s = StreamState::new(policy.clone(), Some("anthropic".into()));
    s.telemetry = StreamTelemetry::start(&tonic::metadata::MetadataMap::new());
    let a = s.handle(headers).await.expect("headers");
    let b = s.handle(body).await.expect("body");
    assert!(s.finished(), "the stream ends with the body's answer");
    [a, b]
}

struct Samples(Vec<Duration>);

impl Samples {
    fn median(&mut self) -> f64 {
        self.0.sort();
        us(percentile(&self.0, 0.5))
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("hot_path: run it with cargo bench --bench hot_path");
        return;
    }
    let rounds: u64 = env_or("PROMPTGATE_BENCH_REQUESTS", 3000);
    let (dir, policy) = policy().load();
    let policy = Arc::new(policy);
    let mut v: serde_json::Value = serde_json::from_str(include_str!(
        "../tests/fixtures/claude_code_first_turn.json"
    ))
    .unwrap();
    v["stream"] = false.into();
    let body = serde_json::to_vec(&v).unwrap();

    std::env::set_var("PROMPTGATE_LOG", "info");
    let to_sink = tracing::Dispatch::new(telemetry::subscriber(std::io::sink, None));
    let log_path = dir.path().join("promptgate.log");
    let file = std::fs::File::create(&log_path).unwrap();
    let to_file = tracing::Dispatch::new(telemetry::subscriber(std::sync::Mutex::new(file), None));
    let none = tracing::Dispatch::none();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let wire = |n: u64| {
        (
            bytes::Bytes::from(claude_code_headers(&request_id(n)).encode_to_vec()),
            bytes::Bytes::from(request_body(&body).encode_to_vec()),
        )
    };
    let decode = |(h, b): &(bytes::Bytes, bytes::Bytes)| {
        (
            codec::decode(&mut h.clone()).unwrap(),
            codec::decode(&mut b.clone()).unwrap(),
        )
    };
    let prost_decode = |(h, b): &(bytes::Bytes, bytes::Bytes)| {
        (
            ProcessingRequest::decode(h.clone()).unwrap(),
            ProcessingRequest::decode(b.clone()).unwrap(),
        )
    };
    let machine = |d: &tracing::Dispatch, n: u64| {
        let (h, b) = (claude_code_headers(&request_id(n)), request_body(&body));
        let t = Instant::now();
        let answers = tracing::dispatcher::with_default(d, || {
            rt.block_on(through_state_machine(&policy, h, b))
        });
        (t.elapsed(), answers)
    };
    let core = |n: u64| {
        let t = Instant::now();
        let head = RequestHead {
            method: "POST",
            path: "/v1/messages?beta=true",
            authority: "127.0.0.1:8080",
            has_anthropic_version: true,
            ..RequestHead::default()
        };
        std::hint::black_box(n);
        let (ctx, _) = decision::request_headers(&policy, Some("anthropic"), &head);
        let ctx = ctx.expect("backend");
        let d = decision::request_body(&policy, &ctx, &body)
            .now_or_never()
            .expect("no external guard: decided at once");
        let elapsed = t.elapsed();
        std::hint::black_box(d);
        elapsed
    };

    let stages = [
        "1. decode, promptgate's codec (body shared)",
        "1b. decode, prost (body copied)",
        "2. decision core (headers + body)",
        "3. state machine, no subscriber",
        "4. state machine, logs to a sink",
        "5. state machine, logs to a file",
        "6. protobuf encode (both answers)",
    ];
    let mut t: Vec<Samples> = stages.iter().map(|_| Samples(Vec::new())).collect();
    let mut evict = vec![0u8; 32 << 20];
    let cold = env_or("PROMPTGATE_BENCH_COLD", 0u8) == 1;
    for i in 0..(rounds + 300) {
        let keep = i >= 300;
        if cold {
            for (k, b) in evict.iter_mut().enumerate().step_by(64) {
                *b = b.wrapping_add(k as u8);
            }
            std::hint::black_box(&evict);
        }
        let w = wire(i);
        let s = Instant::now();
        let decoded = decode(&w);
        let d1 = s.elapsed();
        std::hint::black_box(decoded);
        let s = Instant::now();
        let decoded = prost_decode(&w);
        let d1b = s.elapsed();
        std::hint::black_box(decoded);
        let d2 = core(i);
        let (d3, _) = machine(&none, i);
        let (d4, _) = machine(&to_sink, i);
        let (d5, answers) = machine(&to_file, i);
        let s = Instant::now();
        let n = answers[0].encode_to_vec().len() + answers[1].encode_to_vec().len();
        let d6 = s.elapsed();
        std::hint::black_box(n);
        if keep {
            for (k, d) in [d1, d1b, d2, d3, d4, d5, d6].into_iter().enumerate() {
                t[k].0.push(d);
            }
        }
    }
    let m: Vec<f64> = t.iter_mut().map(Samples::median).collect();
    println!(
        "hot_path: {rounds} rounds, one request = request headers + {} B Claude Code body (medians, µs)",
        body.len()
    );
    for (name, v) in stages.iter().zip(&m) {
        println!("  {name:<44} {v:>7.1}");
    }
    // m: [1, 1b, 2, 3, 4, 5, 6]
    println!("  derived:");
    println!(
        "    the body copy prost would make (1b − 1)      {:>7.1}",
        m[1] - m[0]
    );
    println!(
        "    state machine beyond the core (3 − 2)        {:>7.1}",
        m[3] - m[2]
    );
    println!(
        "    spans and log lines (4 − 3)                  {:>7.1}",
        m[4] - m[3]
    );
    println!(
        "    writing the log lines (5 − 4)                {:>7.1}",
        m[5] - m[4]
    );
    let lines = std::fs::read_to_string(&log_path).unwrap_or_default();
    println!(
        "  log: {} lines, {} B per request",
        lines.lines().count(),
        lines.len() as u64 / (rounds + 300)
    );
}
