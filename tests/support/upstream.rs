//! The fake LLM provider: a loopback HTTP/1.1 server that imitates the
//! Anthropic and OpenAI APIs (SSE and JSON) and records every request that
//! reached it.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

pub const DEFAULT_REPLY: &str = "Hello from the fake upstream";
pub const FAKE_ANTHROPIC_MODEL: &str = "claude-fake-upstream";
pub const FAKE_OPENAI_MODEL: &str = "gpt-fake-upstream";

/// Pause between two SSE chunks sent by the fake.
const CHUNK_DELAY: Duration = Duration::from_millis(20);

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
    /// This exact JSON body (200, `application/json`).
    Json(Value),
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
            Some(Scripted::Json(v)) => return json_response(StatusCode::OK, v),
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
        match state.script.lock().unwrap().pop_front() {
            Some(Scripted::Sse(chunks)) => return sse_response(chunks, "x-request-id"),
            Some(Scripted::Json(v)) => return json_response(StatusCode::OK, v),
            Some(Scripted::Text(t)) if wants_stream() => {
                return sse_response(openai_sse_chunks(&t), "x-request-id")
            }
            Some(Scripted::Text(t)) => return json_response(StatusCode::OK, openai_completion(&t)),
            Some(Scripted::ToolUse { .. }) | None => {}
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

/// A streamed Anthropic turn: a text block, then `tool_use` blocks whose
/// inputs arrive as `input_json_delta` fragments of `fragment` bytes (one
/// SSE event per chunk, so a scripted reply sends them 20 ms apart);
/// `stop_reason: tool_use`.
pub fn anthropic_tool_turn(text: &str, calls: &[(&str, Value)], fragment: usize) -> Vec<Bytes> {
    let mut events = vec![
        sse_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": "msg_fake_tools", "type": "message", "role": "assistant",
                "model": FAKE_ANTHROPIC_MODEL, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}
            }}),
        ),
        sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        ),
        sse_event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ),
    ];
    for (i, (name, input)) in calls.iter().enumerate() {
        let index = i + 1;
        let input = serde_json::to_string(input).unwrap();
        events.push(sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": format!("toolu_fake_{index:02}"), "name": name, "input": {}}}),
        ));
        let mut at = 0;
        while at < input.len() {
            let mut end = (at + fragment.max(1)).min(input.len());
            while !input.is_char_boundary(end) {
                end += 1;
            }
            events.push(sse_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": &input[at..end]}}),
            ));
            at = end;
        }
        events.push(sse_event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push(sse_event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 40}}),
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
