//! Load through real Envoy: a guarded Messages route against the same
//! request on a route with ext_proc disabled, side by side in one run.
//!
//! `./scripts/bench-envoy.sh` (installs Envoy, then `cargo bench --bench envoy_load`).
//! Knobs: PROMPTGATE_BENCH_REQUESTS (sequential rounds, default 1000),
//! PROMPTGATE_BENCH_SECONDS (per route in the concurrent phase, default 5;
//! run as 1 s slices, subjects and routes interleaved),
//! PROMPTGATE_BENCH_CONCURRENCY (default 16), PROMPTGATE_BENCH_POLICY (a
//! policy file instead of the built-in one), PROMPTGATE_BENCH_COMPARE (paths
//! of other promptgate binaries, `:`-separated, e.g. a build of main: measured
//! in the same run, rounds interleaved with this build's, so that a noisy
//! machine hits all alike), PROMPTGATE_BENCH_MTLS=1 (this build once more,
//! its port over mutual TLS with Envoy's client certificate from
//! deploy/envoy/promptgate-mtls.yaml: the cost of TLS on the ext_proc hop,
//! interleaved like a compared build). Loopback only, bounded in time.

#[path = "../tests/support/mod.rs"]
mod support;

use support::bench::{cpu_time, env_or, percentile, us};

use std::time::{Duration, Instant};

use serde_yaml::Value as Yaml;
use support::{Backend, Gateway, Guard, Policy};

const SECRET: &str = "sk-ant-api03-bench-org-key";

/// The built-in policy: a "credit card" guard and key injection.
fn policy() -> Policy {
    Policy::new()
        .backend(
            Backend::anthropic("anthropic")
                .request_guard(
                    Guard::regex(["credit card"])
                        .reject()
                        .message("Rejected due to inappropriate content"),
                )
                .key("anthropic-secret", SECRET),
        )
        .kubernetes()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// ext_proc disabled for the route: Envoy alone.
    Baseline,
    /// ext_proc on: key injection, body parsed and scanned.
    Guarded,
    /// `Baseline` with `"stream": true`: time to the first byte of an SSE
    /// answer through Envoy alone.
    StreamedBaseline,
    /// `Guarded` with `"stream": true`: time to the first byte of an SSE
    /// answer (the response read for its token usage).
    Streamed,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Baseline | Route::StreamedBaseline => "/baseline/v1/messages?beta=true",
            Route::Guarded | Route::Streamed => "/v1/messages?beta=true",
        }
    }

    fn streamed(self) -> bool {
        matches!(self, Route::Streamed | Route::StreamedBaseline)
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

/// One subject's route under concurrent load, summed over its slices.
struct Load {
    latencies: Vec<Duration>,
    elapsed: Duration,
    processor_cpu: Duration,
    envoy_cpu: Duration,
    cpu_known: bool,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            latencies: Vec::new(),
            elapsed: Duration::ZERO,
            processor_cpu: Duration::ZERO,
            envoy_cpu: Duration::ZERO,
            cpu_known: true,
        }
    }
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

/// One request; the time to its whole answer, or for a streamed route to
/// the answer's first body byte (the rest is read too).
async fn one(client: &reqwest::Client, base: &str, route: Route, body: &bytes::Bytes) -> Duration {
    let t = Instant::now();
    let mut resp = client
        .post(format!("{base}{}", route.path()))
        .header("content-type", "application/json")
        .header("x-api-key", "sk-ant-client-key")
        .header("anthropic-version", "2023-06-01")
        .body(body.clone())
        .send()
        .await
        .expect("request");
    let status = resp.status();
    assert_eq!(status.as_u16(), 200, "{route:?}");
    let first = resp.chunk().await.expect("body");
    let elapsed = t.elapsed();
    assert!(
        first.is_some_and(|c| !c.is_empty()),
        "{route:?}: an empty answer"
    );
    while resp.chunk().await.expect("body").is_some() {}
    if route.streamed() {
        elapsed
    } else {
        t.elapsed()
    }
}

/// The fake provider's SSE answer to the next Messages request, in one
/// chunk (so a streamed round costs no inter-chunk delays).
fn script_one_chunk_stream(gw: &Gateway) {
    let up = gw.upstream();
    up.script(support::Scripted::Sse(vec![bytes::Bytes::from(
        up.anthropic_sse_bytes(),
    )]));
}

/// A gateway under test and its sequential samples.
struct Subject {
    label: String,
    gw: Gateway,
    guarded: Vec<Duration>,
    baseline: Vec<Duration>,
    /// Time to first byte of a streamed answer: through the processor, and
    /// through Envoy alone.
    ttfb: Vec<Duration>,
    ttfb_baseline: Vec<Duration>,
}

impl Subject {
    fn new(label: String, gw: Gateway, rounds: usize) -> Subject {
        Subject {
            label,
            gw,
            guarded: Vec::with_capacity(rounds),
            baseline: Vec::with_capacity(rounds),
            ttfb: Vec::with_capacity(rounds),
            ttfb_baseline: Vec::with_capacity(rounds),
        }
    }

    fn samples(&mut self, route: Route) -> &mut Vec<Duration> {
        match route {
            Route::Guarded => &mut self.guarded,
            Route::Baseline => &mut self.baseline,
            Route::Streamed => &mut self.ttfb,
            Route::StreamedBaseline => &mut self.ttfb_baseline,
        }
    }

    /// CPU time of the processor behind this subject's Envoy, and of Envoy.
    fn cpu(&self) -> Option<(Duration, Duration)> {
        Some((
            cpu_time(self.gw.instances[0].pid()?)?,
            cpu_time(self.gw.envoy_pid()?)?,
        ))
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("envoy_load: a load benchmark; run it with ./scripts/bench-envoy.sh");
        return;
    }
    let rounds: usize = env_or("PROMPTGATE_BENCH_REQUESTS", 1000);
    let seconds: u64 = env_or("PROMPTGATE_BENCH_SECONDS", 5);
    let concurrency: usize = env_or("PROMPTGATE_BENCH_CONCURRENCY", 16);
    // Other builds to compare with, in the same run (each with its own Envoy
    // and promptgate, same config; rounds interleave the builds), e.g. a
    // build of main; a copy of this build's binary is the A/A control.
    let compare: Vec<std::path::PathBuf> = std::env::var_os("PROMPTGATE_BENCH_COMPARE")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    let policy = match std::env::var_os("PROMPTGATE_BENCH_POLICY").filter(|p| !p.is_empty()) {
        Some(p) => std::fs::read_to_string(&p).expect("PROMPTGATE_BENCH_POLICY"),
        None => policy().to_yaml(),
    };

    // The captured 76 KB Claude Code first turn, non-streaming so the fake
    // answers at once and the timing is the gateway's.
    let mut v: serde_json::Value = serde_json::from_str(include_str!(
        "../tests/fixtures/claude_code_first_turn.json"
    ))
    .unwrap();
    v["stream"] = false.into();
    let body = bytes::Bytes::from(serde_json::to_vec(&v).unwrap());
    v["stream"] = true.into();
    let streamed_body = bytes::Bytes::from(serde_json::to_vec(&v).unwrap());

    let start = |bin: Option<std::path::PathBuf>| {
        let mut launch = Gateway::launch(&policy)
            .secret("anthropic-secret", SECRET)
            .edit_envoy(add_baseline_route);
        if let Some(bin) = bin {
            launch = launch.promptgate_bin(bin);
        }
        launch.start()
    };
    // mTLS on the ext_proc hop: test certificates (rcgen), kept for the run.
    let certs = tempfile::tempdir().unwrap();
    let start_mtls = || {
        let ca = support::pki::TestCa::new("bench CA");
        let launch = Gateway::launch(&policy)
            .secret("anthropic-secret", SECRET)
            .edit_envoy(add_baseline_route);
        support::pki::with_envoy_mtls(launch, &ca, &ca, certs.path()).start()
    };
    let mut subjects = vec![Subject::new("this build".to_owned(), start(None), rounds)];
    for bin in compare {
        let label = format!("compared: {}", bin.display());
        subjects.push(Subject::new(label, start(Some(bin)), rounds));
    }
    if env_or("PROMPTGATE_BENCH_MTLS", 0u8) == 1 {
        let label = "this build, ext_proc over mutual TLS".to_owned();
        subjects.push(Subject::new(label, start_mtls(), rounds));
    }
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
        for s in &subjects {
            let base = s.gw.base_url();
            // Both routes must really differ in what they do.
            one(&client, &base, Route::Guarded, &body).await;
            one(&client, &base, Route::Baseline, &body).await;
            let reqs = s.gw.upstream().requests();
            assert_eq!(
                reqs[0].header("x-api-key"),
                Some(SECRET),
                "guarded route injects the key"
            );
            assert_eq!(
                reqs[1].header("x-api-key"),
                Some("sk-ant-client-key"),
                "baseline route bypasses promptgate"
            );
            s.gw.upstream().clear();

            // Warm up.
            for _ in 0..100 {
                one(&client, &base, Route::Guarded, &body).await;
                one(&client, &base, Route::Baseline, &body).await;
            }
            s.gw.upstream().clear();
        }
        // Interleave routes (and builds) so drift hits all alike, in a new
        // random order each round: a request runs while the one before it
        // is still being cleaned up (logs, stream teardown), so a fixed
        // order would tax some measurements more than others.
        let n = subjects.len();
        let routes = [
            Route::Guarded,
            Route::Baseline,
            Route::Streamed,
            Route::StreamedBaseline,
        ];
        let mut order: Vec<(usize, Route)> = (0..n).flat_map(|s| routes.map(|r| (s, r))).collect();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..rounds {
            for k in (1..order.len()).rev() {
                // xorshift64: a fixed, reproducible sequence
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                order.swap(k, (rng % (k as u64 + 1)) as usize);
            }
            for &(s, route) in &order {
                let s = &mut subjects[s];
                let body = if route.streamed() {
                    script_one_chunk_stream(&s.gw);
                    &streamed_body
                } else {
                    &body
                };
                let t = one(&client, &s.gw.base_url(), route, body).await;
                s.samples(route).push(t);
            }
            if i % 200 == 0 {
                for s in &subjects {
                    s.gw.upstream().clear();
                }
            }
        }
        println!(
            "sequential, {} B Claude Code request, {} rounds (interleaved):",
            body.len(),
            rounds
        );
        for s in &mut subjects {
            let (g, b) = (
                stats(std::mem::take(&mut s.guarded)),
                stats(std::mem::take(&mut s.baseline)),
            );
            if n > 1 {
                println!("  [{}]", s.label);
            }
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
            // Time inside promptgate's handler per message (its own
            // metrics; not for other processors).
            let phase_mean = |phase: &str| {
                let (sum, n) = s.gw.phase_durations(phase)?;
                (n > 0).then(|| sum / n as f64 * 1e6)
            };
            let phases = ["request_headers", "request_body", "response_body"]
                .iter()
                .filter_map(|p| Some(format!("{p} {:.0} µs", phase_mean(p)?)))
                .collect::<Vec<_>>();
            if !phases.is_empty() {
                println!(
                    "  in promptgate's handler, mean per message: {}",
                    phases.join(", ")
                );
            }
            let (t, tb) = (
                stats(std::mem::take(&mut s.ttfb)),
                stats(std::mem::take(&mut s.ttfb_baseline)),
            );
            for (name, s) in [
                ("SSE first byte, Envoy", &tb),
                ("SSE first byte, guarded", &t),
            ] {
                println!(
                    "  {name:<26} {:>8.0}  {:>8.0}  {:>8.0}   (n={})",
                    us(s.p50),
                    us(s.p90),
                    us(s.p99),
                    s.n
                );
            }
            println!(
                "  first byte added:          {:>8.0}  {:>8.0}  {:>8.0}",
                us(t.p50) - us(tb.p50),
                us(t.p90) - us(tb.p90),
                us(t.p99) - us(tb.p99)
            );
        }

        // One-second slices, every subject's routes in turn, the order
        // rotating each round: a machine that drifts (other tenants, CPU
        // frequency) weighs on every subject alike.
        println!(
            "concurrent, {concurrency} clients, {seconds} s per route (1 s slices, interleaved):"
        );
        let routes = [Route::Baseline, Route::Guarded];
        let mut load: Vec<[Load; 2]> = subjects.iter().map(|_| Default::default()).collect();
        for round in 0..seconds.max(1) as usize {
            for k in 0..n {
                let si = (round + k) % n;
                let s = &subjects[si];
                for (ri, &route) in routes.iter().enumerate() {
                    let cpu_before = s.cpu();
                    let started = Instant::now();
                    let deadline = started + Duration::from_secs(1);
                    let mut tasks = Vec::new();
                    for _ in 0..concurrency {
                        let (client, base, body) = (client.clone(), s.gw.base_url(), body.clone());
                        tasks.push(tokio::spawn(async move {
                            let mut lat = Vec::new();
                            while Instant::now() < deadline {
                                lat.push(one(&client, &base, route, &body).await);
                            }
                            lat
                        }));
                    }
                    let l = &mut load[si][ri];
                    for t in tasks {
                        l.latencies.extend(t.await.unwrap());
                    }
                    l.elapsed += started.elapsed();
                    s.gw.upstream().clear();
                    match (s.cpu(), cpu_before) {
                        (Some((p, e)), Some((p0, e0))) => {
                            l.processor_cpu += p.saturating_sub(p0);
                            l.envoy_cpu += e.saturating_sub(e0);
                        }
                        _ => l.cpu_known = false,
                    }
                }
            }
        }
        for (s, load) in subjects.iter().zip(load) {
            if n > 1 {
                println!("  [{}]", s.label);
            }
            for (route, l) in routes.into_iter().zip(load) {
                let count = l.latencies.len();
                let rps = count as f64 / l.elapsed.as_secs_f64();
                let per = |d: Duration| us(d) / count.max(1) as f64;
                // CPU per request of the processor (only the guarded route
                // reaches it; health checks are noise here) and of Envoy.
                let cpu = if l.cpu_known {
                    let p = if route == Route::Guarded {
                        format!("  processor CPU {:>4.0} µs/req", per(l.processor_cpu))
                    } else {
                        String::new()
                    };
                    format!("  Envoy CPU {:>4.0} µs/req{p}", per(l.envoy_cpu))
                } else {
                    String::new()
                };
                let st = stats(l.latencies);
                println!(
                    "  {:<26} {:>7.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs{cpu}",
                    format!("{route:?}"),
                    rps,
                    us(st.p50),
                    us(st.p99)
                );
            }
        }
    });
    for s in &subjects {
        s.gw.assert_ext_proc_clean();
    }
}
