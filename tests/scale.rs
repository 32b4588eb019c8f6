//! Horizontal scale under load: three promptgate processes behind one real
//! Envoy (deploy/envoy/envoy.yaml: gRPC health checks, outlier detection),
//! a steady mixed load (allowed, rejected, streamed, passthrough), and
//!
//! 1. a rolling restart — SIGTERM, wait for exit 0, start, wait until Envoy
//!    sees it healthy, next — where zero failed requests is the bar;
//! 2. a `kill -9` of one instance: failed requests and the time until
//!    Envoy sees the cluster whole again (the instance is restarted once
//!    Envoy has taken it out, as a kubelet would);
//! 3. a policy reload under load (Kubernetes-style ConfigMap swap): the
//!    decisions switch, with zero failed requests.
//!
//! The short form runs in `./scripts/test.sh` (about 30 s). The long form is
//! `./scripts/scale.sh` (release build, more load, longer steady phases).
//! Knobs: PROMPTGATE_SCALE_CONCURRENCY (8), PROMPTGATE_SCALE_PERIOD_MS
//! (per-worker interval between requests, 40), PROMPTGATE_SCALE_STEADY_SECONDS
//! (steady load between phases, 2), PROMPTGATE_SCALE_ROUNDS (rolling restarts,
//! 1), PROMPTGATE_SCALE_DRAIN_GRACE (2s). The report is printed and written
//! to target/scale-report.txt. Loopback only; every loop is bounded.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use support::{Backend, Gateway, Guard, Policy, Route};

const SECRET: &str = "sk-ant-scale-0001";
const REJECT_MSG: &str = "Rejected due to inappropriate content";
/// Hard bound of the whole run, whatever the knobs say.
const MAX_RUN: Duration = Duration::from_secs(900);

fn policy(extra_pattern: Option<&str>) -> Policy {
    let patterns = ["credit card"].into_iter().chain(extra_pattern);
    Policy::new()
        .backend(
            Backend::anthropic("anthropic")
                .route("/v1/messages", Route::Messages)
                .route("*", Route::Passthrough)
                .request_guard(Guard::regex(patterns).reject().message(REJECT_MSG))
                .request_guard(Guard::builtins(["CreditCard"]).mask())
                .key("anthropic-secret", SECRET),
        )
        .kubernetes()
}

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Allowed,
    Rejected,
    Streamed,
    Passthrough,
    /// "pineapple": allowed before the reload, rejected after.
    Switch,
    /// A card number: allowed, masked on its way (checked on the upstream).
    Masked,
}

const MIX: &[Kind] = &[
    Kind::Allowed,
    Kind::Streamed,
    Kind::Rejected,
    Kind::Passthrough,
    Kind::Allowed,
    Kind::Switch,
    Kind::Masked,
];

#[derive(Clone, Debug)]
struct Sample {
    start: Instant,
    latency: Duration,
    kind: Kind,
    ok: bool,
    /// For Switch: true when rejected (new policy).
    rejected: bool,
    detail: String,
}

async fn one_request(client: &reqwest::Client, base: &str, kind: Kind) -> (bool, bool, String) {
    let messages = |prompt: &str, stream: bool| {
        json!({
            "model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": prompt}]
        })
    };
    let post = |v: serde_json::Value| {
        client
            .post(format!("{base}/v1/messages?beta=true"))
            .header("content-type", "application/json")
            .header("anthropic-version", "2023-06-01")
            .header("x-api-key", "sk-client")
            .body(serde_json::to_vec(&v).unwrap())
    };
    let req = match kind {
        Kind::Allowed => post(messages("Say hello", false)),
        Kind::Rejected => post(messages("What is a credit card", false)),
        Kind::Streamed => post(messages("Tell a story", true)),
        Kind::Switch => post(messages("I like pineapple", false)),
        Kind::Masked => post(messages("my card is 4242 4242 4242 4242", false)),
        Kind::Passthrough => client
            .get(format!("{base}/v1/models"))
            .header("x-api-key", "sk-client"),
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return (false, false, format!("send: {e}")),
    };
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => body.extend_from_slice(&c),
            Err(e) => return (false, false, format!("{status} body broke: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&body);
    let detail = format!("{status} {}", &text[..text.len().min(200)]);
    let allowed = status == 200 && text.contains(support::DEFAULT_REPLY);
    let rejected = status == 403 && text.contains(REJECT_MSG);
    let ok = match kind {
        Kind::Allowed => allowed,
        Kind::Rejected => rejected,
        Kind::Streamed => status == 200 && text.contains("event: message_stop"),
        Kind::Passthrough => status == 200 && text.contains("claude-opus-4-6"),
        Kind::Switch => allowed || rejected,
        Kind::Masked => allowed,
    };
    (ok, rejected, detail)
}

struct Load {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

fn start_load(base: String, concurrency: usize, period: Duration) -> Load {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let handles = (0..concurrency)
        .map(|w| {
            let (samples, stop, client, base) =
                (samples.clone(), stop.clone(), client.clone(), base.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = w;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let kind = MIX[n % MIX.len()];
                    n += 1;
                    let start = Instant::now();
                    let (ok, rejected, detail) = one_request(&client, &base, kind).await;
                    samples.lock().unwrap().push(Sample {
                        start,
                        latency: start.elapsed(),
                        kind,
                        ok,
                        rejected,
                        detail,
                    });
                }
            })
        })
        .collect();
    Load {
        samples,
        stop,
        handles,
    }
}

struct Window<'a> {
    name: &'a str,
    from: Instant,
    to: Instant,
}

fn in_window<'a>(samples: &'a [Sample], w: &Window) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.start >= w.from && s.start < w.to)
        .collect()
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let idx = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[idx]
}

fn summary(samples: &[&Sample]) -> String {
    let failed = samples.iter().filter(|s| !s.ok).count();
    let lat: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    format!(
        "sent {:>6}  failed {:>4}  p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        samples.len(),
        failed,
        percentile(lat.clone(), 0.50).as_secs_f64() * 1e3,
        percentile(lat.clone(), 0.99).as_secs_f64() * 1e3,
        percentile(lat, 1.0).as_secs_f64() * 1e3,
    )
}

fn failures_of(samples: &[&Sample], max: usize) -> String {
    samples
        .iter()
        .filter(|s| !s.ok)
        .take(max)
        .map(|s| format!("  {:?}: {}", s.kind, s.detail))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_survive_rolling_restart_kill_and_reload_under_load() {
    let run_start = Instant::now();
    let concurrency: usize = knob("PROMPTGATE_SCALE_CONCURRENCY", 8);
    let period = Duration::from_millis(knob("PROMPTGATE_SCALE_PERIOD_MS", 40));
    let steady = Duration::from_secs_f64(knob("PROMPTGATE_SCALE_STEADY_SECONDS", 2.0));
    let rounds: usize = knob("PROMPTGATE_SCALE_ROUNDS", 1);
    let grace: String = knob("PROMPTGATE_SCALE_DRAIN_GRACE", "2s".to_string());

    let mut pool = Gateway::launch(policy(None))
        .instances(3)
        .args(&["--drain-grace", &grace, "--drain-timeout", "20s"])
        .quiet_envoy()
        .start();
    pool.wait_healthy(3, Duration::from_secs(10));
    let load = start_load(pool.url(""), concurrency, period);
    let bounded = |what: &str| {
        assert!(
            run_start.elapsed() < MAX_RUN,
            "scale run exceeded {MAX_RUN:?} during {what}"
        )
    };

    // Warm-up.
    tokio::time::sleep(steady).await;
    let warm = Window {
        name: "steady (before)",
        from: run_start,
        to: Instant::now(),
    };

    // 1. Rolling restart.
    let roll_from = Instant::now();
    let mut restart_times = Vec::new();
    for _ in 0..rounds {
        for i in 0..3 {
            let t = Instant::now();
            pool.signal(i, "TERM");
            let st = pool.wait_exit(i, Duration::from_secs(30));
            assert!(st.success(), "instance {i} exited with {st}");
            pool.start_instance(i);
            pool.wait_healthy(3, Duration::from_secs(30));
            restart_times.push(t.elapsed());
            bounded("the rolling restart");
        }
    }
    let roll = Window {
        name: "rolling restart",
        from: roll_from,
        to: Instant::now(),
    };
    tokio::time::sleep(steady).await;

    // 2. kill -9 one instance; restart it once Envoy has taken it out.
    let kill_at = Instant::now();
    pool.kill9(1);
    let detected = pool.wait_unhealthy(1, Duration::from_secs(30));
    pool.start_instance(1);
    pool.wait_healthy(3, Duration::from_secs(30));
    let whole = kill_at.elapsed();
    tokio::time::sleep(steady).await;
    let kill = Window {
        name: "kill -9",
        from: kill_at,
        to: Instant::now(),
    };
    bounded("kill -9");

    // 3. Reload under load: "pineapple" goes from allowed to rejected.
    let reload_at = Instant::now();
    pool.write_policy(&policy(Some("pineapple")).to_yaml());
    let deadline = Instant::now() + Duration::from_secs(10);
    while (0..3).any(|i| !pool.log(i).contains("policy reloaded")) {
        assert!(Instant::now() < deadline, "not every instance reloaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_reloaded = reload_at.elapsed();
    tokio::time::sleep(steady.max(Duration::from_secs(2))).await;
    let reload = Window {
        name: "reload",
        from: reload_at,
        to: Instant::now(),
    };

    load.stop.store(true, Ordering::Relaxed);
    for h in load.handles {
        let _ = tokio::time::timeout(Duration::from_secs(35), h).await;
    }
    let samples = load.samples.lock().unwrap().clone();

    // Decisions around the reload.
    let switch_before: Vec<&Sample> = samples
        .iter()
        // Failures inside the kill -9 window are counted (and bounded) there.
        .filter(|s| {
            s.kind == Kind::Switch
                && s.start < reload_at
                && !(s.start >= kill.from && s.start < kill.to)
        })
        .collect();
    let switch_after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.kind == Kind::Switch && s.start >= reload_at + all_reloaded)
        .collect();
    let last_old = samples
        .iter()
        .filter(|s| s.kind == Kind::Switch && s.ok && !s.rejected && s.start >= reload_at)
        .map(|s| s.start - reload_at)
        .max();

    let all: Vec<&Sample> = samples.iter().collect();
    // Requests in flight at the kill count too: by end time.
    let kill_samples: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.start + s.latency >= kill.from && s.start < kill.to)
        .collect();
    let kill_failed: Vec<&&Sample> = kill_samples.iter().filter(|s| !s.ok).collect();
    let last_kill_failure = kill_failed
        .iter()
        .map(|s| s.start.saturating_duration_since(kill_at))
        .max();
    let mut report = String::new();
    report += &format!(
        "promptgate scale run: 3 instances behind Envoy, {concurrency} workers x 1 request / {} ms, mix {MIX:?}\n",
        period.as_millis()
    );
    report += &format!("  whole run        {}\n", summary(&all));
    for w in [&warm, &roll, &kill, &reload] {
        let these = if w.name == kill.name {
            kill_samples.clone()
        } else {
            in_window(&samples, w)
        };
        report += &format!("  {:<16} {}\n", w.name, summary(&these));
    }
    report += &format!(
        "  rolling restart: {rounds} round(s), {} restarts, each (SIGTERM -> exit 0 -> restarted -> healthy in Envoy) {:?}\n",
        restart_times.len(),
        restart_times.iter().map(|d| format!("{:.1}s", d.as_secs_f64())).collect::<Vec<_>>()
    );
    report += &format!(
        "  kill -9: {} failed request(s); last failure {:?} after the kill; Envoy took it out after {:.2}s; cluster whole again after {:.2}s\n",
        kill_failed.len(),
        last_kill_failure.map(|d| format!("{:.2}s", d.as_secs_f64())),
        detected.as_secs_f64(),
        whole.as_secs_f64()
    );
    report += &format!(
        "  reload: all 3 instances reloaded {:.0} ms after the ConfigMap swap; 'pineapple' before: {} allowed / {} rejected; after: {} allowed / {} rejected; last old decision {:?} after the swap\n",
        all_reloaded.as_secs_f64() * 1e3,
        switch_before.iter().filter(|s| s.ok && !s.rejected).count(),
        switch_before.iter().filter(|s| s.rejected).count(),
        switch_after.iter().filter(|s| s.ok && !s.rejected).count(),
        switch_after.iter().filter(|s| s.rejected).count(),
        last_old.map(|d| format!("{:.0} ms", d.as_secs_f64() * 1e3)),
    );
    if !kill_failed.is_empty() {
        report += &format!(
            "  kill -9 failures (first 5):\n{}\n",
            failures_of(&kill_samples, 5)
        );
    }
    println!("\n{report}");
    let out = support::repo_root().join("target/scale-report.txt");
    let _ = std::fs::write(&out, &report);

    let roll_samples = in_window(&samples, &roll);
    assert!(!roll_samples.is_empty());
    assert_eq!(
        roll_samples.iter().filter(|s| !s.ok).count(),
        0,
        "failed requests during the rolling restart:\n{}\n{report}",
        failures_of(&roll_samples, 10)
    );
    let reload_samples = in_window(&samples, &reload);
    assert_eq!(
        reload_samples.iter().filter(|s| !s.ok).count(),
        0,
        "failed requests during the reload:\n{}\n{report}",
        failures_of(&reload_samples, 10)
    );
    let warm_samples = in_window(&samples, &warm);
    assert_eq!(
        warm_samples.iter().filter(|s| !s.ok).count(),
        0,
        "failures under steady load:\n{}",
        failures_of(&warm_samples, 10)
    );
    assert!(
        !switch_before.is_empty() && switch_before.iter().all(|s| s.ok && !s.rejected),
        "before the reload 'pineapple' is allowed\n{report}"
    );
    assert!(
        !switch_after.is_empty() && switch_after.iter().all(|s| s.rejected),
        "after every instance reloaded 'pineapple' is rejected\n{report}"
    );
    // Masked requests reached the provider, never with the card number.
    let masked_upstream = pool
        .upstream()
        .requests()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("<CREDIT_CARD:"))
        .count();
    assert!(
        masked_upstream > 0,
        "no masked request reached the upstream\n{report}"
    );
    assert!(
        pool.upstream()
            .requests()
            .iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains("4242 4242")),
        "a card number reached the upstream"
    );
    assert!(whole < Duration::from_secs(30), "{report}");
}
