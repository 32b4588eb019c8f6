//! Criterion benchmarks of the decision core on real Claude Code traffic.
//!
//! `cargo bench --bench decision`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::FutureExt;
use promptgate::decision::{self, BodyDecision, HeadersDecision, RequestHead};
use promptgate::policy::{LoadOptions, Policy};

const FIRST_TURN: &str = include_str!("../tests/fixtures/claude_code_first_turn.json");
const TOOL_TURN: &str = include_str!("../tests/fixtures/claude_code_tool_result_turn.json");

fn policy(model_override: bool) -> Policy {
    let model = if model_override {
        r#"{model: "claude-opus-4-6"}"#
    } else {
        "{}"
    };
    let yaml = format!(
        r#"
backends:
- name: anthropic
  ai: {{provider: {{anthropic: {model}}}}}
  policies:
    ai:
      promptGuard:
        request:
        - response: {{message: "Rejected due to inappropriate content"}}
          regex:
            action: Reject
            matches: ["credit card", "(?i)confidential", "\\bproject[- ]falcon\\b", "sk-[A-Za-z0-9]{{20,}}"]
"#
    );
    Policy::from_yaml(&yaml, "bench", &LoadOptions::default()).expect("bench policy loads")
}

fn ctx(policy: &Policy) -> decision::RequestCtx {
    let head = RequestHead {
        method: "POST",
        path: "/v1/messages?beta=true",
        authority: "127.0.0.1:8080",
        ..RequestHead::default()
    };
    let (ctx, d) = decision::request_headers(policy, Some("anthropic"), &head);
    assert!(matches!(
        d,
        HeadersDecision::Continue {
            inspect_body: true,
            ..
        }
    ));
    ctx.expect("backend selected")
}

/// A long session: the first turn's tools and system, with `turns` copies
/// of the tool_use / tool_result exchange in the history.
fn long_session(turns: usize) -> String {
    let v: serde_json::Value = serde_json::from_str(TOOL_TURN).unwrap();
    let mut v2 = v.clone();
    let msgs = v["messages"].as_array().unwrap();
    let mut out = vec![msgs[0].clone(), msgs[1].clone()];
    for _ in 0..turns {
        out.push(msgs[2].clone());
        out.push(msgs[3].clone());
    }
    v2["messages"] = serde_json::Value::Array(out);
    serde_json::to_string(&v2).unwrap()
}

fn bench(c: &mut Criterion) {
    // The embedded default: nine builtin detectors masking secrets and cards.
    let default = Policy::embedded_default(&LoadOptions::default()).unwrap();
    let d_ctx = ctx(&default);
    c.bench_function("default_policy_builtins/claude_code_first_turn_76KB", |b| {
        b.iter(|| {
            decision::request_body(&default, &d_ctx, FIRST_TURN.as_bytes())
                .now_or_never()
                .expect("no external guard")
        })
    });
    let all: Vec<&str> = promptgate::guard::builtins::Builtin::ALL
        .iter()
        .map(|b| b.name())
        .collect();
    let every = Policy::from_yaml(
        &format!(
            "backends:\n- name: anthropic\n  ai: {{provider: {{anthropic: {{}}}}}}\n  policies:\n    ai:\n      promptGuard:\n        request:\n        - regex: {{action: Mask, builtins: [{}]}}\n",
            all.join(", ")
        ),
        "bench",
        &LoadOptions::default(),
    )
    .unwrap();
    let e_ctx = ctx(&every);
    c.bench_function("every_builtin/claude_code_first_turn_76KB", |b| {
        b.iter(|| {
            decision::request_body(&every, &e_ctx, FIRST_TURN.as_bytes())
                .now_or_never()
                .expect("no external guard")
        })
    });
    let long = long_session(900);
    c.bench_function("default_policy_builtins/long_session_1MB", |b| {
        b.iter(|| {
            decision::request_body(&default, &d_ctx, long.as_bytes())
                .now_or_never()
                .expect("no external guard")
        })
    });

    let guarded = policy(false);
    let with_model = policy(true);
    let g_ctx = ctx(&guarded);
    let m_ctx = ctx(&with_model);

    let mut group = c.benchmark_group("request_body");
    for (name, body) in [
        ("claude_code_first_turn_76KB", FIRST_TURN.to_owned()),
        ("long_session_1MB", long_session(900)),
    ] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("guards", name), &body, |b, body| {
            b.iter(|| {
                let d = decision::request_body(&guarded, &g_ctx, body.as_bytes())
                    .now_or_never()
                    .expect("no external guard");
                assert!(matches!(d, BodyDecision::Continue { .. }));
                d
            })
        });
        group.bench_with_input(
            BenchmarkId::new("guards_and_model_override", name),
            &body,
            |b, body| {
                b.iter(|| {
                    decision::request_body(&with_model, &m_ctx, body.as_bytes())
                        .now_or_never()
                        .expect("no external guard")
                })
            },
        );
    }
    group.finish();

    c.bench_function("request_headers", |b| {
        let head = RequestHead {
            method: "POST",
            path: "/v1/messages?beta=true",
            authority: "127.0.0.1:8080",
            ..RequestHead::default()
        };
        b.iter(|| decision::request_headers(&guarded, Some("anthropic"), &head))
    });
    c.bench_function("parse_only_first_turn", |b| {
        b.iter(|| {
            promptgate::provider::parse_request(
                false,
                FIRST_TURN,
                promptgate::provider::KindSet::ALL,
            )
            .unwrap()
            .segments
            .len()
        })
    });
}

/// One ext_proc exchange over real gRPC on loopback (tonic client and
/// server in this process): request headers, then the 76 KB body. This is
/// promptgate's share of a guarded request, without Envoy.
fn bench_grpc(c: &mut Criterion) {
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
    use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
    use envoy_types::pb::envoy::service::ext_proc::v3::{
        processing_request, HttpBody, HttpHeaders, ProcessingRequest,
    };
    use std::sync::Arc;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let policy = Arc::new(arc_swap::ArcSwap::from_pointee(policy(false)));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(promptgate::server::serve_on(
        listener,
        policy,
        std::future::pending(),
    ));
    let mut client = rt.block_on(async {
        loop {
            let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .tcp_nodelay(true)
                .initial_stream_window_size(Some(8 << 20))
                .initial_connection_window_size(Some(16 << 20));
            if let Ok(ch) = endpoint.connect().await {
                break ExternalProcessorClient::new(ch)
                    .max_encoding_message_size(64 << 20)
                    .max_decoding_message_size(64 << 20);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    let headers = ProcessingRequest {
        request: Some(processing_request::Request::RequestHeaders(HttpHeaders {
            headers: Some(HeaderMap {
                headers: [
                    (":method", "POST"),
                    (":path", "/v1/messages?beta=true"),
                    (":authority", "gw"),
                    ("x-api-key", "sk-client"),
                ]
                .iter()
                .map(|(k, v)| HeaderValue {
                    key: (*k).into(),
                    raw_value: v.as_bytes().to_vec(),
                    ..Default::default()
                })
                .collect(),
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    let body = ProcessingRequest {
        request: Some(processing_request::Request::RequestBody(HttpBody {
            body: FIRST_TURN.as_bytes().to_vec(),
            end_of_stream: true,
            ..Default::default()
        })),
        ..Default::default()
    };
    let channel = client.clone();
    c.bench_function("grpc_unary_health_check", |b| {
        let mut health = tonic_health::pb::health_client::HealthClient::new(
            rt.block_on(
                tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .unwrap()
                    .connect(),
            )
            .unwrap(),
        );
        b.iter(|| {
            rt.block_on(health.check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            }))
            .unwrap()
        })
    });
    drop(channel);
    c.bench_function("grpc_exchange_headers_only", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (tx, rx) = tokio::sync::mpsc::channel(2);
                tx.send(headers.clone()).await.unwrap();
                let mut stream = client
                    .process(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
                    .unwrap()
                    .into_inner();
                let r = stream.message().await.unwrap().unwrap();
                drop(tx);
                // Half-close and drain, as Envoy ends a stream.
                while stream.message().await.unwrap().is_some() {}
                r
            })
        })
    });
    c.bench_function("grpc_exchange_headers_and_76KB_body", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (tx, rx) = tokio::sync::mpsc::channel(2);
                tx.send(headers.clone()).await.unwrap();
                let mut stream = client
                    .process(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
                    .unwrap()
                    .into_inner();
                stream.message().await.unwrap().unwrap();
                tx.send(body.clone()).await.unwrap();
                let r = stream.message().await.unwrap().unwrap();
                drop(tx);
                // Half-close and drain, as Envoy ends a stream.
                while stream.message().await.unwrap().is_some() {}
                r
            })
        })
    });
}

criterion_group!(benches, bench, bench_grpc);
criterion_main!(benches);
