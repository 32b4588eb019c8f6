//! Load through real Envoy: a guarded Messages route against the same
//! request on a route with ext_proc disabled, side by side in one run.
//!
//! `./scripts/bench-envoy.sh` (installs Envoy, then `cargo bench --bench envoy_load`).
//! Knobs: PROMPTGATE_BENCH_REQUESTS (sequential rounds, default 1000),
//! PROMPTGATE_BENCH_SECONDS (per route in the concurrent phase, default 5),
//! PROMPTGATE_BENCH_CONCURRENCY (default 16). Loopback only, bounded in time.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{FakeUpstream, Gateway};
use serde_yaml::Value as Yaml;

const POLICY: &str = r#"
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: anthropic
spec:
  ai:
    provider:
      anthropic: {}
  policies:
    ai:
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
        name: anthropic-secret
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// ext_proc disabled for the route: Envoy alone.
    Baseline,
    /// ext_proc on: key injection, body parsed and scanned.
    Guarded,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Baseline => "/baseline/v1/messages?beta=true",
            Route::Guarded => "/v1/messages?beta=true",
        }
    }
}

/// Adds `/baseline/` → anthropic with ext_proc disabled, ahead of the catch-all.
fn add_baseline_route(cfg: &mut Yaml) {
    let listeners = cfg["static_resources"]["listeners"]
        .as_sequence_mut()
        .expect("listeners");
    let hcm = &mut listeners[0]["filter_chains"][0]["filters"][0]["typed_config"];
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_sequence_mut()
        .expect("routes");
    let baseline: Yaml = serde_yaml::from_str(
        r#"
match: { prefix: /baseline/ }
request_body_buffer_limit: 33554432
route: { cluster: anthropic, prefix_rewrite: /, host_rewrite_literal: api.anthropic.com, timeout: 0s }
typed_per_filter_config:
  envoy.filters.http.ext_proc:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
    disabled: true
"#,
    )
    .unwrap();
    routes.insert(0, baseline);
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

struct Stats {
    n: usize,
    p50: Duration,
    p90: Duration,
    p99: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    Stats {
        n: v.len(),
        p50: percentile(&v, 0.5),
        p90: percentile(&v, 0.9),
        p99: percentile(&v, 0.99),
    }
}

async fn one(client: &reqwest::Client, base: &str, route: Route, body: &bytes::Bytes) -> Duration {
    let t = Instant::now();
    let resp = client
        .post(format!("{base}{}", route.path()))
        .header("content-type", "application/json")
        .header("x-api-key", "sk-ant-client-key")
        .header("anthropic-version", "2023-06-01")
        .body(body.clone())
        .send()
        .await
        .expect("request");
    let status = resp.status();
    let _ = resp.bytes().await.expect("body");
    assert_eq!(status.as_u16(), 200, "{route:?}");
    t.elapsed()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("envoy_load: a load benchmark; run it with ./scripts/bench-envoy.sh");
        return;
    }
    let rounds: usize = std::env::var("PROMPTGATE_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let seconds: u64 = std::env::var("PROMPTGATE_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let concurrency: usize = std::env::var("PROMPTGATE_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);

    // The captured 76 KB Claude Code first turn, non-streaming so the fake
    // answers at once and the timing is the gateway's.
    let mut v: serde_json::Value = serde_json::from_str(include_str!(
        "../tests/fixtures/claude_code_first_turn.json"
    ))
    .unwrap();
    v["stream"] = false.into();
    let body = bytes::Bytes::from(serde_json::to_vec(&v).unwrap());

    let gw = Gateway::start_with(
        POLICY,
        &[("anthropic-secret", "sk-ant-api03-bench-org-key")],
        FakeUpstream::start(),
        add_baseline_route,
    );
    let base = gw.base_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        // Both routes must really differ in what they do.
        one(&client, &base, Route::Guarded, &body).await;
        one(&client, &base, Route::Baseline, &body).await;
        let reqs = gw.upstream().requests();
        assert_eq!(
            reqs[0].header("x-api-key"),
            Some("sk-ant-api03-bench-org-key"),
            "guarded route injects the key"
        );
        assert_eq!(
            reqs[1].header("x-api-key"),
            Some("sk-ant-client-key"),
            "baseline route bypasses promptgate"
        );
        gw.upstream().clear();

        // Warm up, then interleave the routes so drift hits both alike.
        for _ in 0..100 {
            one(&client, &base, Route::Guarded, &body).await;
            one(&client, &base, Route::Baseline, &body).await;
        }
        gw.upstream().clear();
        let (mut g, mut b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
        for i in 0..rounds {
            if i % 2 == 0 {
                g.push(one(&client, &base, Route::Guarded, &body).await);
                b.push(one(&client, &base, Route::Baseline, &body).await);
            } else {
                b.push(one(&client, &base, Route::Baseline, &body).await);
                g.push(one(&client, &base, Route::Guarded, &body).await);
            }
            if i % 200 == 0 {
                gw.upstream().clear();
            }
        }
        let (g, b) = (stats(g), stats(b));
        println!(
            "sequential, {} B Claude Code request, {} rounds (interleaved):",
            body.len(),
            rounds
        );
        println!("  route                       p50 µs    p90 µs    p99 µs");
        for (name, s) in [("baseline (ext_proc off)", &b), ("guarded Messages", &g)] {
            println!(
                "  {name:<26} {:>8.0}  {:>8.0}  {:>8.0}   (n={})",
                us(s.p50),
                us(s.p90),
                us(s.p99),
                s.n
            );
        }
        println!(
            "  added by promptgate:       {:>8.0}  {:>8.0}  {:>8.0}",
            us(g.p50) - us(b.p50),
            us(g.p90) - us(b.p90),
            us(g.p99) - us(b.p99)
        );

        println!("concurrent, {concurrency} clients, {seconds} s per route:");
        for route in [Route::Baseline, Route::Guarded] {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (client, base, body) = (client.clone(), base.clone(), body.clone());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        lat.push(one(&client, &base, route, &body).await);
                    }
                    lat
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            gw.upstream().clear();
            let n = all.len();
            let s = stats(all);
            println!(
                "  {:<26} {:>7.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs",
                format!("{route:?}"),
                n as f64 / seconds as f64,
                us(s.p50),
                us(s.p99)
            );
        }
    });
    gw.assert_ext_proc_clean();
}
