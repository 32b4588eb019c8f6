//! Budgets through real Envoy: what a Redis check and debit add to a
//! request, against the same gateway without budgets, in one run.
//!
//! `./scripts/bench-budgets.sh` (installs Envoy and redis-server, then
//! `cargo bench --bench budgets_load`). Subjects, each its own Envoy and
//! promptgate, rounds interleaved in a random order so drift hits all
//! alike:
//!
//! * `no budgets` — the default policy shape (a non-streamed answer is not
//!   read: `tokenUsage: Streams`);
//! * `no budgets, usage read` — `tokenUsage: All`: the response read for its
//!   usage, as budgets make it be (isolates the store's part);
//! * `budgets, in-process` — three limits (tokens, USD, requests) counted
//!   in the process;
//! * `budgets, Redis` — the same three limits in a local `redis-server`;
//! * `…, access log` — the same with `debit: AccessLog`: Envoy reads the
//!   answer's usage and its access log reports it; the answer is not read
//!   in band.
//!
//! Knobs: PROMPTGATE_BENCH_REQUESTS (sequential rounds, default 1000),
//! PROMPTGATE_BENCH_SECONDS (per subject in the concurrent phase, default
//! 5; run as 1 s slices, the subjects interleaved),
//! PROMPTGATE_BENCH_CONCURRENCY (default 16). Loopback only.

#[path = "../tests/support/mod.rs"]
mod support;

use support::bench::{cpu_time, env_or, percentile, us};

use std::time::{Duration, Instant};

use support::redis::RedisServer;
use support::Gateway;

const USERS: usize = 16;

fn policy(ai: &str) -> String {
    format!(
        "backends:\n- name: anthropic\n  ai:\n    provider:\n      anthropic: {{}}\n  policies:\n    ai:\n{ai}"
    )
}

fn budgets(store: &str) -> String {
    policy(&format!(
        "      budgets:\n{store}        storeTimeout: 50ms\n        limits:\n        - {{name: tokens, key: 'request.headers[\"x-user\"]', tokens: 1000000000000, window: 1h}}\n        - {{name: usd, key: 'request.headers[\"x-user\"]', usd: 1000000, window: 30d}}\n        - {{name: rpm, key: 'request.headers[\"x-user\"]', requests: 1000000000, window: 1m}}\n"
    ))
}

async fn one(client: &reqwest::Client, url: &str, user: usize, body: &bytes::Bytes) -> Duration {
    let t = Instant::now();
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-api-key", "sk-ant-client-key")
        .header("anthropic-version", "2023-06-01")
        .header("x-user", format!("user-{user}"))
        .body(body.clone())
        .send()
        .await
        .expect("request");
    let status = resp.status();
    let _ = resp.bytes().await.expect("body");
    assert_eq!(status.as_u16(), 200);
    t.elapsed()
}

struct Subject {
    label: &'static str,
    gw: Gateway,
    samples: Vec<Duration>,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("budgets_load: a load benchmark; run it with ./scripts/bench-budgets.sh");
        return;
    }
    let rounds: usize = env_or("PROMPTGATE_BENCH_REQUESTS", 1000);
    let seconds: u64 = env_or("PROMPTGATE_BENCH_SECONDS", 5);
    let concurrency: usize = env_or("PROMPTGATE_BENCH_CONCURRENCY", 16);
    let redis = RedisServer::start();
    let redis_store = format!(
        "        store:\n          redis: {{url: \"{}\", keyPrefix: \"bench:\"}}\n",
        redis.url()
    );
    let body = bytes::Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "stream": false,
            "messages": [{"role": "user", "content": "Summarise the design of a token budget."}]
        }))
        .unwrap(),
    );
    let start = |label: &'static str, yaml: String| Subject {
        label,
        gw: Gateway::launch(yaml.as_str()).quiet_envoy().start(),
        samples: Vec::with_capacity(rounds),
    };
    let mut subjects = vec![
        start("no budgets", policy("      tokenUsage: Streams\n")),
        start("no budgets, usage read", policy("      tokenUsage: All\n")),
        start("budgets, in-process", budgets("")),
        start("budgets, Redis", budgets(&redis_store)),
        start(
            "budgets, in-process, access log",
            budgets("        debit: AccessLog\n"),
        ),
        start(
            "budgets, Redis, access log",
            budgets(&format!(
                "{}        debit: AccessLog\n",
                redis_store.replace("bench:", "bench-al:")
            )),
        ),
    ];
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
            let url = s.gw.url("/v1/messages");
            for i in 0..100 {
                one(&client, &url, i % USERS, &body).await;
            }
            s.gw.upstream().clear();
        }
        // The budgets are really counted (the access log's debit lands
        // within its flush interval).
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(redis.get_u64("bench:tokens:user-0") > 0, "Redis counts");
        assert!(
            redis.get_u64("bench-al:tokens:user-0") > 0,
            "Redis counts what the access log reports"
        );

        let n = subjects.len();
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..rounds {
            for k in (1..n).rev() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                order.swap(k, (rng % (k as u64 + 1)) as usize);
            }
            for &s in &order {
                let url = subjects[s].gw.url("/v1/messages");
                let t = one(&client, &url, i % USERS, &body).await;
                subjects[s].samples.push(t);
            }
            if i % 200 == 0 {
                for s in &subjects {
                    s.gw.upstream().clear();
                }
            }
        }
        println!(
            "sequential, {} rounds (interleaved), {} B request, non-streamed answer:",
            rounds,
            body.len()
        );
        println!(
            "  subject                             p50 µs    p90 µs    p99 µs   p50 +µs   p99 +µs"
        );
        let mut base: Option<(f64, f64)> = None;
        for s in &mut subjects {
            let mut v = std::mem::take(&mut s.samples);
            v.sort();
            let (p50, p90, p99) = (
                percentile(&v, 0.5),
                percentile(&v, 0.9),
                percentile(&v, 0.99),
            );
            let (b50, b99) = *base.get_or_insert((us(p50), us(p99)));
            println!(
                "  {:<32} {:>8.0}  {:>8.0}  {:>8.0}  {:>8.0}  {:>8.0}",
                s.label,
                us(p50),
                us(p90),
                us(p99),
                us(p50) - b50,
                us(p99) - b99
            );
        }

        // One-second slices, the subjects in turn, the order rotating each
        // round: drift weighs on every subject alike.
        println!(
            "concurrent, {concurrency} clients, {seconds} s per subject (1 s slices, interleaved):"
        );
        let mut load: Vec<(Vec<Duration>, Duration)> = subjects
            .iter()
            .map(|_| (Vec::new(), Duration::ZERO))
            .collect();
        // CPU time of promptgate, Envoy and Redis during each subject's
        // slices (Redis serves the Redis subjects only; it idles otherwise).
        let cpu = |s: &Subject| {
            Some([
                cpu_time(s.gw.instances[0].pid()?)?,
                cpu_time(s.gw.envoy_pid()?)?,
                cpu_time(redis.pid()?)?,
            ])
        };
        let mut cpu_used: Vec<Option<[Duration; 3]>> = vec![Some([Duration::ZERO; 3]); n];
        for round in 0..seconds.max(1) as usize {
            for k in 0..n {
                let si = (round + k) % n;
                let url = subjects[si].gw.url("/v1/messages");
                let cpu_before = cpu(&subjects[si]);
                let started = Instant::now();
                let deadline = started + Duration::from_secs(1);
                let mut tasks = Vec::new();
                for c in 0..concurrency {
                    let (client, url, body) = (client.clone(), url.clone(), body.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut lat = Vec::new();
                        while Instant::now() < deadline {
                            lat.push(one(&client, &url, c % USERS, &body).await);
                        }
                        lat
                    }));
                }
                for t in tasks {
                    load[si].0.extend(t.await.unwrap());
                }
                load[si].1 += started.elapsed();
                cpu_used[si] = match (cpu_used[si], cpu_before, cpu(&subjects[si])) {
                    (Some(sum), Some(a), Some(b)) => {
                        Some(std::array::from_fn(|k| sum[k] + b[k].saturating_sub(a[k])))
                    }
                    _ => None,
                };
                subjects[si].gw.upstream().clear();
            }
        }
        let mut first: Option<f64> = None;
        for ((s, (mut all, elapsed)), used) in subjects.iter().zip(load).zip(cpu_used) {
            let rps = all.len() as f64 / elapsed.as_secs_f64();
            let b = *first.get_or_insert(rps);
            let per = |d: Duration| us(d) / all.len().max(1) as f64;
            let cpu = used.map_or(String::new(), |[p, e, r]| {
                format!(
                    "  CPU µs/req: promptgate {:>4.0}, Envoy {:>4.0}, Redis {:>3.0}",
                    per(p),
                    per(e),
                    per(r)
                )
            });
            all.sort();
            println!(
                "  {:<32} {:>7.0} req/s ({:.2}×)  p50 {:>7.0} µs  p99 {:>7.0} µs{cpu}",
                s.label,
                rps,
                rps / b,
                us(percentile(&all, 0.5)),
                us(percentile(&all, 0.99))
            );
        }
    });
    for s in &subjects {
        s.gw.assert_ext_proc_clean();
    }
}
