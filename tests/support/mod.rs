//! Test support for the end-to-end tests and the Envoy benchmarks.
//!
//! Use from an integration test with `mod support;`, from a benchmark with
//! `#[path = "../tests/support/mod.rs"] mod support;`.
//!
//! * [`launcher`] — [`Gateway`]: one or more `promptgate serve` processes
//!   behind a real Envoy, with a [`FakeUpstream`]; ports, readiness,
//!   signals, reloads, logs, teardown (children killed on drop).
//! * [`upstream`] — [`FakeUpstream`], the recording fake Anthropic/OpenAI API.
//! * [`envoy`] — the Envoy config of `deploy/envoy/envoy.yaml` rendered for a
//!   test (loopback ports), and the Envoy process.
//! * [`policy`] — the typed policy builder ([`Policy`], [`Backend`], [`Guard`]).
//! * [`claude`] — the Claude Code CLI driver.
//! * [`otlp`] — a real OTLP/gRPC trace receiver.
//! * [`bench`] — percentiles and knobs of the load benchmarks.
//! * [`messages`] — ext_proc messages built in memory (in-process benchmarks).
//! * [`pki`] — test certificates (a CA, server and client certificates) and
//!   a gRPC client over mutual TLS.
//! * [`redis`] — a real `redis-server` on a loopback port (budgets).
//!
//! Networking is loopback only; every wait is bounded.
#![allow(dead_code, unused_imports)]

pub mod bench;
pub mod claude;
pub mod envoy;
pub mod launcher;
pub mod messages;
pub mod otlp;
pub mod pki;
pub mod policy;
pub mod redis;
pub mod upstream;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

pub use launcher::{Gateway, Launch};
pub use policy::{Backend, Guard, Policy, Route, Scope, TokenUsage, ToolGuard, ToolRule};
pub use upstream::{
    anthropic_error, anthropic_text_stream, anthropic_tool_turn, anthropic_tool_use_chunks,
    FakeUpstream, RecordedRequest, Scripted, DEFAULT_REPLY, FAKE_ANTHROPIC_MODEL,
    FAKE_OPENAI_MODEL,
};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn promptgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_promptgate"))
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A reqwest client for talking to the gateway (no proxies, no TLS).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// gzip-compresses `data` (request bodies with `content-encoding: gzip`).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// `text` with tagged mask placeholders shown bare (`<SSN:3f9a1c>` →
/// `<SSN>`), for asserting what was masked; tests of the tags themselves
/// look at them whole.
pub fn untag(text: &str) -> String {
    let re = regex::Regex::new(r"<([A-Za-z0-9_.-]+):[0-9a-f]{6}>").unwrap();
    re.replace_all(text, "<$1>").into_owned()
}

/// [`untag`] of a JSON string value (`""` for anything else).
pub fn untag_json(v: &serde_json::Value) -> String {
    untag(v.as_str().unwrap_or_default())
}
