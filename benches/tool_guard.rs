//! Tool guards: the decision on one held tool call, and a held block
//! through the stream engine.
//!
//! `cargo bench --bench tool_guard`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use promptgate::guard::tool::ToolGuard;
use promptgate::guard::GuardSet;
use promptgate::provider::stream::StreamGuard;
use promptgate::provider::Dialect;

/// 50 rules in the shape organisations write them: shell patterns for
/// Bash, path rules for the file tools, MCP allow-lists, a few builtins.
fn fifty_rules() -> ToolGuard {
    let mut rules = String::from("deny: [\"WebFetch\"]\nrules:\n");
    for i in 0..40 {
        rules.push_str(&format!(
            "- name: shell-{i}\n  tools: [Bash]\n  regex: {{matches: [\"forbidden-command-{i}\\\\s+--flag\", \"(curl|wget)[^|]*\\\\|\\\\s*sh{i}\"]}}\n"
        ));
    }
    for i in 0..6 {
        rules.push_str(&format!(
            "- name: path-{i}\n  tools: [Write, Edit]\n  field: file_path\n  regex: {{matches: [\"/secret-dir-{i}/\"]}}\n"
        ));
    }
    rules.push_str("- name: keys\n  tools: [Bash, Write]\n  regex: {builtins: [AwsAccessKey, PrivateKey, GitHubToken]}\n");
    for i in 0..3 {
        rules.push_str(&format!(
            "- name: mcp-{i}\n  tools: [\"mcp__server{i}__*\"]\n"
        ));
    }
    ToolGuard::compile(serde_yaml::from_str(&rules).unwrap()).unwrap()
}

/// A 10 KB Bash input: a long script, nothing forbidden in it.
fn ten_kb_input() -> String {
    let line = "for f in $(ls src/*.rs); do grep -n 'fn main' \"$f\" | head -3; done && cargo build --release 2>&1 | tail -20\n";
    let script = line.repeat(10 * 1024 / line.len() + 1);
    serde_json::json!({"command": &script[..10 * 1024], "description": "build and inspect"})
        .to_string()
}

/// Input fragment size: Claude Code's streams carry 10–60 bytes an `input_json_delta`.
const FRAGMENT: usize = 64;

/// The SSE of a message with one tool_use block whose input arrives in
/// 64-byte fragments.
fn held_block_stream(input: &str) -> Vec<u8> {
    let mut s = String::new();
    let mut ev = |v: serde_json::Value| {
        s.push_str(&format!(
            "event: {}\ndata: {v}\n\n",
            v["type"].as_str().unwrap()
        ))
    };
    ev(
        serde_json::json!({"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"claude-x","content":[],"usage":{"input_tokens":1}}}),
    );
    ev(
        serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"Bash","input":{}}}),
    );
    let bytes = input.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let mut end = (at + FRAGMENT).min(bytes.len());
        while !input.is_char_boundary(end) {
            end -= 1;
        }
        ev(
            serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":&input[at..end]}}),
        );
        at = end;
    }
    ev(serde_json::json!({"type":"content_block_stop","index":0}));
    ev(
        serde_json::json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}),
    );
    ev(serde_json::json!({"type":"message_stop"}));
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let guard = Arc::new(fifty_rules());
    let input = ten_kb_input();
    let mut group = c.benchmark_group("tool_guard");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("decide_10kb_input_50_rules", |b| {
        b.iter(|| {
            let v = guard.decide("Bash", &input);
            assert!(!v.is_blocked());
            v
        })
    });
    let stream = held_block_stream(&input);
    let empty = Arc::new(GuardSet::empty());
    group.bench_function("held_block_10kb_through_the_stream_engine", |b| {
        b.iter(|| {
            let mut g =
                StreamGuard::new(Dialect::Anthropic, empty.clone()).with_tool_judge(guard.clone());
            let out = g.push(&stream, true).unwrap();
            assert_eq!(out.tools.len(), 1);
            out
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
