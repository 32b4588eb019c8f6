//! promptgate's memory through real Envoy, two measurements:
//!
//! 1. **Peak per in-flight request.** A fresh promptgate, warmed with small
//!    requests; its peak RSS is reset (`/proc/<pid>/clear_refs`), then
//!    PROMPTGATE_MEMORY_INFLIGHT (default 8) requests with a
//!    PROMPTGATE_MEMORY_BODY_MB (default 4) MB tool result each are sent at
//!    once. (peak RSS − RSS before) / in-flight requests / body size is the
//!    peak memory a request holds, in bodies; the goal is ≤ 2.
//! 2. **RSS under mixed load** for PROMPTGATE_SOAK_SECONDS (default 600):
//!    8 clients send a mix — Claude Code's 76 KB first turn streamed and
//!    not, a request with secrets (masked, restored in the answer), a
//!    rejected one, a tool call denied on the way back, an OpenAI chat
//!    completion, a passthrough listing, malformed JSON, and now and then a
//!    1 MB body. RSS is sampled every 10 s; RSS at the end must be within
//!    10 % of RSS after the first minute (no growth with time).
//!
//! `./scripts/bench-memory.sh`. PROMPTGATE_MEMORY_BIN runs another
//! promptgate binary (a build of main, a wrapper that sets allocator
//! variables). Loopback only, bounded in time; exits non-zero when a goal
//! is missed.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::bench::env_or;
use support::{Backend, Gateway, Guard, Policy, ToolGuard};

const SECRET: &str = "sk-ant-api03-bench-org-key";
/// A key shape the secret pack masks (GitHub, valid CRC32 tail not needed
/// for the fine-grained PAT form).
const LEAKED: &str = "ghp_R8xVq2mLw9TzK4nYb7HcJ3dPf6sAe1uGi0oQ";

fn policy() -> Policy {
    Policy::new()
        .backend(
            Backend::anthropic("anthropic")
                .request_guard(Guard::regex(["credit card"]).reject().message("Rejected"))
                .request_guard(Guard::builtins(["Secrets"]).mask())
                .response_guard(Guard::builtins(["CreditCard"]).mask())
                .tool_guard(ToolGuard::new().deny(["Bash"]))
                .key("anthropic-secret", SECRET),
        )
        .backend(Backend::openai("openai").matching("", "/openai/"))
}

/// `(VmRSS, VmHWM)` of `pid`, in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn claude_first_turn(stream: bool) -> Value {
    let mut v: Value = serde_json::from_str(include_str!(
        "../tests/fixtures/claude_code_first_turn.json"
    ))
    .unwrap();
    v["stream"] = stream.into();
    v
}

/// A Claude Code turn whose last message is a tool result of `bytes` bytes
/// of source-like text.
fn with_tool_result(bytes: usize) -> Value {
    let mut v = claude_first_turn(false);
    let line = "    let total = items.iter().map(|i| i.price * i.quantity).sum::<u64>();\n";
    let text = line.repeat(bytes / line.len() + 1);
    let msgs = v["messages"].as_array_mut().unwrap();
    msgs.push(json!({"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_mem", "name": "Read", "input": {"file_path": "/src/lib.rs"}}]}));
    msgs.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_mem", "content": text}]}));
    v
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    FirstTurn,
    Streamed,
    Secret,
    Rejected,
    ToolDenied,
    OpenAi,
    Models,
    Malformed,
    Large,
}

const MIX: [Kind; 16] = [
    Kind::FirstTurn,
    Kind::Streamed,
    Kind::FirstTurn,
    Kind::Streamed,
    Kind::Secret,
    Kind::Streamed,
    Kind::Rejected,
    Kind::ToolDenied,
    Kind::OpenAi,
    Kind::FirstTurn,
    Kind::Models,
    Kind::Secret,
    Kind::Malformed,
    Kind::Streamed,
    Kind::OpenAi,
    Kind::Large,
];

async fn send(client: &reqwest::Client, gw: &Gateway, kind: Kind, large: &bytes::Bytes) -> u16 {
    let messages = |body: Vec<u8>| {
        client
            .post(gw.url("/v1/messages"))
            .header("content-type", "application/json")
            .header("x-api-key", "sk-ant-client")
            .header("anthropic-version", "2023-06-01")
            .body(body)
    };
    let req = match kind {
        Kind::FirstTurn => messages(serde_json::to_vec(&claude_first_turn(false)).unwrap()),
        Kind::Streamed => messages(serde_json::to_vec(&claude_first_turn(true)).unwrap()),
        Kind::Secret => {
            let mut v = claude_first_turn(true);
            v["messages"][0]["content"] =
                json!(format!("my token is {LEAKED}, please repeat it back"));
            messages(serde_json::to_vec(&v).unwrap())
        }
        Kind::Rejected => {
            let mut v = claude_first_turn(false);
            v["messages"][0]["content"] = json!("here is my credit card");
            messages(serde_json::to_vec(&v).unwrap())
        }
        Kind::ToolDenied => {
            // The fake answers the next Messages request with this call;
            // under 8 clients that may be another client's request, which
            // the tool guard (every answer is read) blocks just the same.
            gw.upstream().script(support::Scripted::ToolUse {
                name: "Bash".into(),
                input: json!({"command": "rm -rf /tmp/x"}),
            });
            messages(serde_json::to_vec(&claude_first_turn(true)).unwrap())
        }
        Kind::OpenAi => client
            .post(gw.url("/openai/v1/chat/completions"))
            .header("content-type", "application/json")
            .header("authorization", "Bearer sk-client")
            .body(
                serde_json::to_vec(&json!({"model": "gpt-4o", "stream": true,
                    "messages": [{"role": "user", "content": "Say hello"}]}))
                .unwrap(),
            ),
        Kind::Models => client
            .get(gw.url("/v1/models"))
            .header("x-api-key", "sk-ant-client"),
        Kind::Malformed => messages(b"{\"model\": \"claude\", \"messages\": [".to_vec()),
        Kind::Large => messages(large.to_vec()),
    };
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let _ = resp.bytes().await;
    status
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("memory: run it with ./scripts/bench-memory.sh");
        return;
    }
    let inflight: usize = env_or("PROMPTGATE_MEMORY_INFLIGHT", 8);
    let body_mb: usize = env_or("PROMPTGATE_MEMORY_BODY_MB", 4);
    let soak: u64 = env_or("PROMPTGATE_SOAK_SECONDS", 600);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let mut failed = false;
    let launch = || {
        let launch = Gateway::launch(policy()).quiet_envoy();
        match std::env::var_os("PROMPTGATE_MEMORY_BIN") {
            Some(bin) => launch.promptgate_bin(bin.into()),
            None => launch,
        }
    };

    // 1. Peak per in-flight request.
    {
        let gw = launch().start();
        let pid = gw.instances[0].pid().expect("promptgate runs");
        let big = bytes::Bytes::from(serde_json::to_vec(&with_tool_result(body_mb << 20)).unwrap());
        let small = bytes::Bytes::new();
        rt.block_on(async {
            for _ in 0..50 {
                assert_eq!(send(&client, &gw, Kind::FirstTurn, &small).await, 200);
            }
        });
        let (before, _) = rss(pid);
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak RSS");
        let statuses = rt.block_on(async {
            let tasks: Vec<_> = (0..inflight)
                .map(|_| {
                    let (client, body, url) = (client.clone(), big.clone(), gw.url("/v1/messages"));
                    tokio::spawn(async move {
                        let r = client
                            .post(url)
                            .header("content-type", "application/json")
                            .header("x-api-key", "sk-ant-client")
                            .header("anthropic-version", "2023-06-01")
                            .body(body)
                            .send()
                            .await
                            .expect("request");
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
        let (after, peak) = rss(pid);
        let per = peak.saturating_sub(before) as f64 / inflight as f64;
        let ratio = per / big.len() as f64;
        println!(
            "peak memory per in-flight request: {inflight} requests of {:.1} MiB at once; RSS {:.1} MiB before, peak {:.1} MiB, {:.1} MiB after",
            mib(big.len() as u64),
            mib(before),
            mib(peak),
            mib(after),
        );
        println!(
            "  {:.1} MiB per request = {ratio:.2} × its body (goal ≤ 2)",
            per / (1024.0 * 1024.0)
        );
        failed |= ratio > 2.0;
    }

    // 2. RSS under mixed load.
    if soak > 0 {
        let gw = launch().start();
        let pid = gw.instances[0].pid().expect("promptgate runs");
        let large = bytes::Bytes::from(serde_json::to_vec(&with_tool_result(1 << 20)).unwrap());
        let started = Instant::now();
        let deadline = started + Duration::from_secs(soak);
        let samples = rt.block_on(async {
            let clients: Vec<_> = (0..8)
                .map(|c| {
                    let (client, large) = (client.clone(), large.clone());
                    let gw = &gw;
                    async move {
                        let mut n = 0u64;
                        let mut i = c * 2;
                        while Instant::now() < deadline {
                            let kind = MIX[i % MIX.len()];
                            let status = send(&client, gw, kind, &large).await;
                            assert!(
                                matches!(status, 200 | 400 | 403),
                                "{kind:?}: unexpected {status}"
                            );
                            n += 1;
                            i += 1;
                        }
                        n
                    }
                })
                .collect();
            let sampler = async {
                let mut samples = Vec::new();
                while Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    samples.push((started.elapsed(), rss(pid).0));
                }
                samples
            };
            let (counts, samples) = tokio::join!(futures_util::future::join_all(clients), sampler);
            let total: u64 = counts.iter().sum();
            println!(
                "mixed load: 8 clients, {soak} s, {total} requests ({:.0}/s)",
                total as f64 / soak as f64
            );
            samples
        });
        gw.upstream().clear();
        for (t, r) in &samples {
            println!("  t={:>4.0} s  RSS {:>6.1} MiB", t.as_secs_f64(), mib(*r));
        }
        let first_minute = samples
            .iter()
            .find(|(t, _)| *t >= Duration::from_secs(60))
            .or(samples.first())
            .map(|s| s.1);
        if let (Some(first), Some(&(_, last))) = (first_minute, samples.last()) {
            let growth = last as f64 / first as f64;
            println!(
                "  RSS after the first minute {:.1} MiB, at the end {:.1} MiB: {growth:.3}× (goal ≤ 1.10)",
                mib(first),
                mib(last)
            );
            failed |= growth > 1.10;
        }
        gw.assert_ext_proc_clean();
    }
    if failed {
        eprintln!("memory: a goal was missed");
        std::process::exit(1);
    }
}
