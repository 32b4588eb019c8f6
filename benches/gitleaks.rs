//! What a guard loading a gitleaks config costs per decision, next to the
//! builtin secret detectors, on a 1 MB Claude Code-shaped session (file
//! contents in tool results, a few secrets planted).
//!
//! `cargo bench --bench gitleaks` (a median of timed decisions per policy,
//! no criterion: quick on a shared machine). `GITLEAKS_BENCH_TOML=path`
//! measures another config instead of the test fixture.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use promptgate::decision::{self, BodyDecision, HeadersDecision, RequestHead};
use promptgate::policy::{LoadOptions, Policy};
use serde_json::{json, Value};

const FIRST_TURN: &str = include_str!("../tests/fixtures/claude_code_first_turn.json");

const FILES: &[&str] = &[
    include_str!("../README.md"),
    include_str!("../src/policy/mod.rs"),
    include_str!("../src/provider/stream.rs"),
    include_str!("../src/decision/mod.rs"),
    include_str!("../src/extproc/mod.rs"),
    include_str!("../deploy/envoy/envoy.yaml"),
];

fn session(size: usize) -> String {
    let mut v: Value = serde_json::from_str(FIRST_TURN).unwrap();
    let messages = v["messages"].as_array_mut().unwrap();
    let mut i = 0;
    while serde_json::to_string(&messages).unwrap().len() + 70_000 < size {
        let mut content = FILES[i % FILES.len()].to_owned();
        if i % 3 == 0 {
            content.push_str(
                "\napi_key = \"Zx8q2Lm4Np7Rt1Vw6Ys3\"\naws_access_key_id = AKIAZ7XQ4R2MBW5KLP3N\n",
            );
        }
        messages.push(json!({"role": "assistant", "content": [
            {"type": "text", "text": "Let me read that file."},
            {"type": "tool_use", "id": format!("toolu_{i}"), "name": "Read", "input": {"file_path": format!("/repo/file{i}.rs")}}
        ]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": format!("toolu_{i}"), "content": content}
        ]}));
        i += 1;
    }
    serde_json::to_string(&v).unwrap()
}

fn policy(regex: &str, dir: &Path) -> Policy {
    let yaml = format!(
        "backends:\n- name: anthropic\n  ai: {{provider: {{anthropic: {{}}}}}}\n  policies:\n    ai:\n      promptGuard:\n        request:\n        - name: secrets\n          regex: {regex}\n"
    );
    Policy::from_yaml_in(&yaml, "bench", dir, &LoadOptions::default()).expect("bench policy loads")
}

fn measure(name: &str, policy: &Policy, body: &str) {
    let head = RequestHead {
        method: "POST",
        path: "/v1/messages",
        authority: "gw",
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
    let ctx = ctx.unwrap();
    let run = || {
        decision::request_body(policy, &ctx, body.as_bytes())
            .now_or_never()
            .expect("no external guard")
    };
    let masked = match run() {
        BodyDecision::Continue { outcome, .. } => outcome.masked,
        BodyDecision::Reply(r) => panic!("unexpected reply {}", r.status),
    };
    let mut times: Vec<Duration> = (0..15)
        .map(|_| {
            let t = Instant::now();
            drop(run());
            t.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "{name:<40} {:>8.2} ms  {:>7.1} MB/s  ({masked} spans masked)",
        median.as_secs_f64() * 1e3,
        body.len() as f64 / median.as_secs_f64() / 1e6
    );
}

fn main() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitleaks");
    let (dir, file) = match std::env::var("GITLEAKS_BENCH_TOML") {
        Ok(p) => {
            let p = PathBuf::from(p)
                .canonicalize()
                .expect("GITLEAKS_BENCH_TOML exists");
            (
                p.parent().unwrap().to_owned(),
                p.file_name().unwrap().to_string_lossy().into_owned(),
            )
        }
        Err(_) => (fixture, "gitleaks.toml".to_owned()),
    };
    let body = session(1 << 20);
    println!("body: {} bytes", body.len());
    let builtins = "{action: Mask, builtins: [AwsAccessKey, PrivateKey, GitHubToken, AnthropicApiKey, OpenAiApiKey, SlackToken, GoogleApiKey, Jwt]}";
    measure(
        "builtin secret detectors (8)",
        &policy(builtins, &dir),
        &body,
    );
    measure(
        &format!("gitleaks: {file}"),
        &policy(&format!("{{action: Mask, gitleaks: {file}}}"), &dir),
        &body,
    );
    measure(
        "both in one guard",
        &policy(
            &format!("{{action: Mask, gitleaks: {file}, builtins: [AwsAccessKey, PrivateKey, GitHubToken, AnthropicApiKey, OpenAiApiKey, SlackToken, GoogleApiKey, Jwt]}}"),
            &dir,
        ),
        &body,
    );
}
