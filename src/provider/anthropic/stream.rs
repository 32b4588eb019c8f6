//! Anthropic Messages streams: the SSE event model (`message_start`,
//! `content_block_start`/`_delta`/`_stop`, `message_delta`,
//! `message_stop`, `error`) and how its events are read and rewritten for
//! the stream engine. Text blocks are keyed by `index`; only `text_delta`
//! deltas and a `text` block's start text are scanned.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::usage::read as read_usage;
use crate::provider::json::{decode, json_string, object, span_of, splice};
use crate::provider::sse::{write_event, SseEvent};
use crate::provider::stream::{Flow, Output, StreamError, StreamGuard};
use crate::provider::tool_call::{Finished, ToolDecision, ToolVerdict};

/// Reads one event of an Anthropic stream: scans the text it carries,
/// flushes the blocks it ends, notes the model and usage, and writes what
/// to send in its place to `out`.
pub(crate) fn read_event(
    guard: &mut StreamGuard,
    ev: SseEvent,
    index: u64,
    out: &mut Output,
) -> Result<Flow, StreamError> {
    let SseEvent {
        event: name,
        data,
        raw,
        terminated,
        ..
    } = ev;
    let Some(data) = data else {
        return Ok(guard.pass(raw, terminated, out));
    };
    let bad = |message: String| StreamError::BadEvent {
        event: index,
        message,
    };
    let parsed: AEvent<'_> = object(&data).map_err(bad)?;
    let kind = match (parsed.kind.as_deref(), name.as_deref()) {
        (Some(t), Some(n)) if t != n && (is_anthropic_type(t) || is_anthropic_type(n)) => {
            return Err(bad(format!("event `{n}` carries data of type `{t}`")))
        }
        (Some(t), _) => t,
        (None, Some(n)) => n,
        (None, None) => "",
    };
    let need_index = || {
        parsed
            .index
            .ok_or_else(|| bad(format!("`{kind}` without an `index`")))
    };
    let ev_index = Some(index);
    match kind {
        "message_start" => {
            if let Some(t) = &mut guard.tools {
                t.new_message();
            }
            if let Some(message) = parsed.message {
                let message: Value = serde_json::from_str(message.get()).unwrap_or_default();
                if let Some(model) = message.get("model").and_then(Value::as_str) {
                    guard.model = Some(model.to_owned());
                }
                if let Some(usage) = message.get("usage") {
                    guard.usage.update(&read_usage(usage));
                }
            }
            Ok(guard.pass(raw, terminated, out))
        }
        "content_block_start" => {
            let block = need_index()?;
            if guard.flush_block(block, ev_index, out)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
            let content: ABlock<'_> = match parsed.content_block {
                Some(c) => object(c.get()).map_err(|e| bad(format!("content_block: {e}")))?,
                None => return Ok(guard.pass(raw, terminated, out)),
            };
            if content.kind.as_deref() == Some("tool_use") {
                if let Some(tools) = &mut guard.tools {
                    let name = match content.name {
                        Some(n) => {
                            decode(n).map_err(|e| bad(format!("content_block.name: {e}")))?
                        }
                        None => return Err(bad("a `tool_use` block without a `name`".into())),
                    };
                    let initial = content.input.map_or("", |i| i.get());
                    tools.start(block, name.into_owned(), initial, &raw);
                    return Ok(Flow::Go);
                }
            }
            if content.kind.as_deref() != Some("text") {
                return Ok(guard.pass(raw, terminated, out));
            }
            let Some(text_raw) = content.text else {
                return Ok(guard.pass(raw, terminated, out));
            };
            let text = decode(text_raw).map_err(|e| bad(format!("content_block.text: {e}")))?;
            let Some(released) = guard.feed_text(block, &text, false, ev_index, out)? else {
                return Ok(Flow::Stop);
            };
            if released == text {
                return Ok(guard.pass(raw, terminated, out));
            }
            // The start event keeps its shape with an empty text; the
            // released text follows as a delta.
            let patched = splice(&data, vec![(span_of(&data, text_raw), "\"\"".into())]);
            write_event(&mut out.bytes, name.as_deref(), &patched);
            if !released.is_empty() {
                let bytes = guard.text_event(block, &released);
                out.bytes.extend_from_slice(&bytes);
            }
            Ok(Flow::Go)
        }
        "content_block_delta" => {
            let block = need_index()?;
            let delta: ADelta<'_> = match parsed.delta {
                Some(d) => object(d.get()).map_err(|e| bad(format!("delta: {e}")))?,
                None => return Err(bad("`content_block_delta` without a `delta`".into())),
            };
            if let Some(tools) = guard.tools.as_mut().filter(|t| t.is_held(block)) {
                match (delta.kind.as_deref(), delta.partial_json) {
                    (Some("input_json_delta"), Some(fragment)) => {
                        let fragment = decode(fragment)
                            .map_err(|e| bad(format!("delta.partial_json: {e}")))?;
                        tools.append(block, &fragment, &raw);
                    }
                    _ => tools.append_raw(block, &raw),
                }
                return Ok(Flow::Go);
            }
            if delta.kind.as_deref() != Some("text_delta") {
                return Ok(guard.pass(raw, terminated, out));
            }
            let Some(text_raw) = delta.text else {
                return Err(bad("`text_delta` without `text`".into()));
            };
            let text = decode(text_raw).map_err(|e| bad(format!("delta.text: {e}")))?;
            let Some(released) = guard.feed_text(block, &text, false, ev_index, out)? else {
                return Ok(Flow::Stop);
            };
            if released == text {
                return Ok(guard.pass(raw, terminated, out));
            }
            if !released.is_empty() {
                let patched = splice(
                    &data,
                    vec![(span_of(&data, text_raw), json_string(&released))],
                );
                write_event(&mut out.bytes, name.as_deref(), &patched);
            }
            Ok(Flow::Go)
        }
        "content_block_stop" => {
            let block = need_index()?;
            if let Some(tools) = guard.tools.as_mut().filter(|t| t.is_held(block)) {
                if let Some(Finished {
                    call,
                    verdict,
                    restored,
                }) = tools.finish(block, &raw)
                {
                    match (&verdict, restored) {
                        (ToolVerdict::Block { message, .. }, _) => {
                            out.bytes
                                .extend_from_slice(&blocked_tool_block(block, message));
                        }
                        // The start as it came, the whole restored input
                        // as one fragment, the stop.
                        (_, Some((input, n))) => {
                            out.bytes.extend_from_slice(&call.raw[..call.start_len]);
                            out.bytes.extend_from_slice(&input_event(block, &input));
                            out.bytes.extend_from_slice(&raw);
                            out.restored += n;
                        }
                        _ => out.bytes.extend_from_slice(&call.raw),
                    }
                    if tools.records(&verdict) {
                        out.tools.push(ToolDecision {
                            index: block,
                            tool: call.name,
                            verdict,
                        });
                    }
                }
                return Ok(Flow::Go);
            }
            if guard.flush_block(block, ev_index, out)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
            Ok(guard.pass(raw, terminated, out))
        }
        "message_delta" | "message_stop" | "error" => {
            if guard.flush_all(ev_index, out)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
            if let Some(usage) = parsed.usage {
                let usage: Value = serde_json::from_str(usage.get()).unwrap_or_default();
                guard.usage.update(&read_usage(&usage));
            }
            if let Some(tools) = &mut guard.tools {
                if kind == "error" {
                    // The upstream failed: a half call is never released.
                    tools.clear();
                } else if tools.any() {
                    return Err(bad(format!("`{kind}` while a tool call is still open")));
                } else if kind == "message_delta" && tools.blocked > 0 && tools.allowed == 0 {
                    // Every call of the message was blocked: the agent
                    // shows the refusal and stops instead of waiting for
                    // tools to run.
                    if let Some(patched) = end_turn(&data, parsed.delta) {
                        write_event(&mut out.bytes, name.as_deref(), &patched);
                        return Ok(Flow::Go);
                    }
                }
            }
            Ok(guard.pass(raw, terminated, out))
        }
        _ => Ok(guard.pass(raw, terminated, out)),
    }
}

/// A canonical `content_block_delta` event carrying `text` for block
/// `index`.
pub(crate) fn text_event(index: u64, text: &str) -> Vec<u8> {
    let text = json_string(text);
    let mut out = Vec::with_capacity(text.len() + 128);
    let data = format!(
        r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{text}}}}}"#
    );
    write_event(&mut out, Some("content_block_delta"), &data);
    out
}

/// A canonical `content_block_delta` event carrying all of a tool call's
/// `input` (JSON text) as one `input_json_delta` fragment.
fn input_event(index: u64, input: &str) -> Vec<u8> {
    let input = json_string(input);
    let mut out = Vec::with_capacity(input.len() + 128);
    let data = format!(
        r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"input_json_delta","partial_json":{input}}}}}"#
    );
    write_event(&mut out, Some("content_block_delta"), &data);
    out
}

fn is_anthropic_type(t: &str) -> bool {
    matches!(
        t,
        "message_start"
            | "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "message_delta"
            | "message_stop"
            | "error"
    )
}

#[derive(Deserialize)]
struct AEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content_block: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct ABlock<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) text: Option<&'a RawValue>,
    /// `tool_use`: the tool's name and its (usually empty) input.
    #[serde(borrow, default)]
    pub(super) name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ADelta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    /// `input_json_delta`: a fragment of a tool call's input.
    #[serde(borrow, default)]
    partial_json: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stop_reason: Option<&'a RawValue>,
}

/// The events of a text block at `index` carrying `message`: what replaces
/// a blocked `tool_use` block (same index, valid SSE).
fn blocked_tool_block(index: u64, message: &str) -> Vec<u8> {
    let text = json_string(message);
    let mut out = Vec::with_capacity(text.len() + 320);
    write_event(
        &mut out,
        Some("content_block_start"),
        &format!(
            r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}"#
        ),
    );
    write_event(
        &mut out,
        Some("content_block_delta"),
        &format!(
            r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{text}}}}}"#
        ),
    );
    write_event(
        &mut out,
        Some("content_block_stop"),
        &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
    );
    out
}

/// `data` of a `message_delta` with `delta.stop_reason` `tool_use` made
/// `end_turn`; `None` when it says something else.
fn end_turn(data: &str, delta: Option<&RawValue>) -> Option<String> {
    let delta: ADelta<'_> = object(delta?.get()).ok()?;
    let reason = delta.stop_reason?;
    (reason.get() == "\"tool_use\"").then(|| {
        splice(
            data,
            vec![(span_of(data, reason), "\"end_turn\"".to_owned())],
        )
    })
}
