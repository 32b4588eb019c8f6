//! Tracing on vs off, same run, two ways; every span sampled (100 %) and
//! exported over OTLP/gRPC to a real receiver on loopback:
//!
//! 1. **In process** (the precise figure): the ext_proc state machine
//!    handles one request (headers with `traceparent` in the call metadata,
//!    then the captured 76 KB Claude Code body) under promptgate's own
//!    subscriber with trace export, and under the same subscriber without;
//!    alternating request by request. Logs go to a sink in both.
//! 2. **Over gRPC**: `promptgate serve` processes (one exporting, two not —
//!    the second "off" is an A/A control that shows the noise between two
//!    identical processes on this machine) and a client that plays Envoy.
//!
//! `./scripts/bench-tracing.sh` (= `cargo bench --bench tracing_overhead`).
//! Knob: PROMPTGATE_BENCH_REQUESTS (rounds, default 2000). Loopback only,
//! bounded.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use promptgate::extproc::StreamState;
use promptgate::policy::Policy;
use promptgate::telemetry::{self, StreamTelemetry};
use support::messages::{claude_code_headers, request_body};
use support::otlp::OtlpReceiver;
use support::{Backend, Gateway, Guard};
use tonic::transport::Channel;

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

/// `promptgate serve` alone (no Envoy: the client plays Envoy), with `env`.
fn start(env: &[(&str, String)]) -> Gateway {
    let mut launch = Gateway::launch(policy()).without_envoy();
    for (k, v) in env {
        launch = launch.env(k, v);
    }
    launch.start()
}

fn traceparent(n: u64) -> String {
    format!(
        "00-{:032x}-{:016x}-01",
        0xbe7c_0000_u128 + u128::from(n),
        n + 1
    )
}

/// One request through the ext_proc state machine, in process.
async fn in_process(policy: &Arc<Policy>, n: u64, body: &[u8]) {
    let mut md = tonic::metadata::MetadataMap::new();
    md.insert("traceparent", traceparent(n).parse().unwrap());
    let mut s = StreamState::new(policy.clone(), Some("anthropic".into()));
    s.telemetry = StreamTelemetry::start(&md);
    s.handle(claude_code_headers(&format!("bench-{n}")))
        .await
        .expect("headers");
    s.handle(request_body(body)).await.expect("body");
    // the stream ends: request metrics, the span is closed and queued for export
}

/// One ext_proc stream over gRPC: request headers, then the body; both answered.
async fn one(client: &mut ExternalProcessorClient<Channel>, n: u64, body: &[u8]) -> Duration {
    let t = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut()
        .insert("x-promptgate-backend", "anthropic".parse().unwrap());
    req.metadata_mut()
        .insert("traceparent", traceparent(n).parse().unwrap());
    tx.send(claude_code_headers(&format!("bench-{n}")))
        .await
        .unwrap();
    let mut answers = client.process(req).await.expect("process").into_inner();
    answers.message().await.unwrap().expect("headers answer");
    tx.send(request_body(body)).await.unwrap();
    answers.message().await.unwrap().expect("body answer");
    drop(tx);
    while let Ok(Some(_)) = answers.message().await {}
    t.elapsed()
}

fn report(name: &str, t: &mut [Duration]) -> (f64, f64) {
    t.sort();
    let (p50, p90) = (us(pct(t, 0.5)), us(pct(t, 0.9)));
    println!(
        "  {name:<34} p50 {p50:>8.1} µs   p90 {p90:>8.1} µs   p99 {:>8.1} µs",
        us(pct(t, 0.99)),
    );
    (p50, p90)
}

/// Median of the round-by-round differences a − b (robust to drift).
fn paired_median(a: &[Duration], b: &[Duration]) -> f64 {
    let mut d: Vec<f64> = a.iter().zip(b).map(|(x, y)| us(*x) - us(*y)).collect();
    d.sort_by(f64::total_cmp);
    d[d.len() / 2]
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("tracing_overhead: run it with ./scripts/bench-tracing.sh");
        return;
    }
    let rounds: u64 = std::env::var("PROMPTGATE_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    // The in-process policy: the same file with its secret.
    let (_dir, policy) = policy().load();
    let policy = Arc::new(policy);
    let receiver = OtlpReceiver::start();
    let mut v: serde_json::Value = serde_json::from_str(include_str!(
        "../tests/fixtures/claude_code_first_turn.json"
    ))
    .unwrap();
    v["stream"] = false.into();
    let body = serde_json::to_vec(&v).unwrap();

    // 1. In process.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
    std::env::set_var("OTEL_TRACES_SAMPLER", "always_on");
    std::env::set_var("PROMPTGATE_LOG", "info");
    let pipeline = telemetry::otel::Pipeline::from_env().expect("trace pipeline");
    let d_on = tracing::Dispatch::new(telemetry::subscriber(std::io::sink, Some(&pipeline)));
    let d_off = tracing::Dispatch::new(telemetry::subscriber(std::io::sink, None));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = |d: &tracing::Dispatch, n: u64| {
        let t = Instant::now();
        tracing::dispatcher::with_default(d, || rt.block_on(in_process(&policy, n, &body)));
        t.elapsed()
    };
    for i in 0..200 {
        run(&d_on, 5_000_000 + i);
        run(&d_off, 6_000_000 + i);
    }
    let (mut p_on, mut p_off) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        if i % 2 == 0 {
            p_on.push(run(&d_on, 7_000_000 + i));
            p_off.push(run(&d_off, 7_000_000 + i));
        } else {
            p_off.push(run(&d_off, 7_000_000 + i));
            p_on.push(run(&d_on, 7_000_000 + i));
        }
    }
    let in_process_paired = paired_median(&p_on, &p_off);
    println!("tracing_overhead: {rounds} rounds; one request = ext_proc request headers + 76 KB Claude Code body");
    println!("1. in process (state machine + promptgate's subscriber, logs to a sink):");
    let (off50, off90) = report("tracing off", &mut p_off);
    let (on50, on90) = report("tracing on (100% sampled, exported)", &mut p_on);
    println!(
        "  added per request: median {:+.1} µs (p90 {:+.1} µs); median of paired differences {in_process_paired:+.1} µs",
        on50 - off50,
        on90 - off90,
    );
    drop(pipeline);

    // 2. Over gRPC, three processes.
    let on = start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_TRACES_SAMPLER", "always_on".into()),
    ]);
    let off = start(&[]);
    let off2 = start(&[]);
    let (mut t_on, mut t_off, mut t_off2) = rt.block_on(async {
        let connect = |port: u16| async move {
            let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
                .unwrap()
                .tcp_nodelay(true)
                .connect()
                .await
                .expect("connect");
            ExternalProcessorClient::new(ch).max_encoding_message_size(64 << 20)
        };
        let mut clients = [
            connect(on.promptgate_port()).await,
            connect(off.promptgate_port()).await,
            connect(off2.promptgate_port()).await,
        ];
        for i in 0..200 {
            for c in clients.iter_mut() {
                one(c, 1_000_000 + i, &body).await;
            }
        }
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for i in 0..rounds {
            // rotate which server goes first
            for k in 0..3 {
                let j = (k + i as usize) % 3;
                times[j].push(one(&mut clients[j], i, &body).await);
            }
        }
        let [a, b, c] = times;
        (a, b, c)
    });
    let exported = receiver
        .wait_for(Duration::from_secs(30), "exported request spans", |s| {
            s.iter()
                .filter(|s| s.name() == "promptgate.ext_proc")
                .count() as u64
                >= 2 * rounds
        })
        .iter()
        .filter(|s| s.name() == "promptgate.ext_proc")
        .count();
    let grpc_paired = paired_median(&t_on, &t_off);
    let aa_paired = paired_median(&t_off2, &t_off);
    println!("2. over loopback gRPC, `promptgate serve` processes (no Envoy):");
    let (off50, _) = report("tracing off", &mut t_off);
    let (off2_50, _) = report("tracing off, second process (A/A)", &mut t_off2);
    let (on50, _) = report("tracing on (100% sampled, exported)", &mut t_on);
    println!(
        "  added per request: median {:+.1} µs, paired {grpc_paired:+.1} µs; A/A noise: median {:+.1} µs, paired {aa_paired:+.1} µs",
        on50 - off50,
        off2_50 - off50,
    );
    println!("  {exported} request spans received by the OTLP receiver");
}
