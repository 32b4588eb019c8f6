//! OpenAI Chat Completions streams: the chunk model (`choices[i].delta`,
//! `finish_reason`, `usage`, `error`, `[DONE]`) and how its chunks are read
//! and rewritten for the stream engine. Texts are keyed by choice `index`;
//! only `delta.content` is scanned (not `refusal`, not `tool_calls`).

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::usage::read as read_usage;
use crate::provider::json::{decode, json_string, object, span_of, splice, Members};
use crate::provider::sse::{write_event, SseEvent};
use crate::provider::stream::{Flow, Output, StreamError, StreamGuard};
use crate::provider::tool_call::{ToolDecision, ToolHolds, ToolVerdict};

/// Reads one chunk of an OpenAI stream: scans the `content` of each
/// choice's delta, flushes the choices it ends (or starts a new string
/// in), notes the model and usage, and writes what to send in its place
/// to `out`.
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
    let ev_index = Some(index);
    if data.trim() == "[DONE]" {
        if guard.flush_all(ev_index, out)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
        if guard.tools.as_ref().is_some_and(ToolHolds::any) {
            return Err(StreamError::BadEvent {
                event: index,
                message: "`[DONE]` while a tool call is still open".into(),
            });
        }
        return Ok(guard.pass(raw, terminated, out));
    }
    let bad = |message: String| StreamError::BadEvent {
        event: index,
        message,
    };
    let chunk: OChunk<'_> = object(&data).map_err(bad)?;
    if let Some(model) = chunk.model.and_then(|m| decode(m).ok()) {
        if guard.model.is_none() {
            guard.model = Some(model.into_owned());
        }
    }
    let no_choices = chunk.choices.as_ref().is_none_or(Vec::is_empty);
    if chunk.error.is_some() || (chunk.usage.is_some() && no_choices) {
        // An upstream error, or the final usage chunk: every choice is
        // over. (Servers that report usage on every chunk send it with
        // choices; those chunks end nothing.)
        if guard.flush_all(ev_index, out)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
        if let Some(tools) = &mut guard.tools {
            if chunk.error.is_some() {
                // The upstream failed: a half call is never released.
                tools.clear();
            } else if tools.any() {
                return Err(bad(
                    "the usage chunk came while a tool call is still open".into()
                ));
            }
        }
    }
    if let Some(usage) = chunk.usage {
        let usage: Value = serde_json::from_str(usage.get()).unwrap_or_default();
        guard.usage.update(&read_usage(&usage));
    }
    let choices = chunk.choices.unwrap_or_default();
    let mut texts: Vec<ChoiceText<'_>> = Vec::new();
    let mut content_only = chunk.error.is_none() && chunk.usage.is_none();
    // Choices whose tool calls this chunk holds, and those it finishes.
    let mut held: Vec<u64> = Vec::new();
    let mut finished_held: Vec<(u64, &RawValue)> = Vec::new();
    for (pos, choice) in choices.iter().enumerate() {
        let block = choice.index.unwrap_or(pos as u64);
        let finished = choice.finish_reason.is_some();
        let mut content = None;
        let mut other = false;
        let mut tool_calls = None;
        let mut members_other_than_calls = false;
        if let Some(delta) = choice.delta {
            let members: Members<'_> =
                object(delta.get()).map_err(|e| bad(format!("choices[{pos}].delta: {e}")))?;
            for (key, value) in &members.0 {
                match key.as_str() {
                    "content" if value.get() != "null" => content = Some(*value),
                    "content" => {}
                    "role" if value.get() != "null" => content_only = false,
                    "tool_calls" if value.get() != "null" => {
                        tool_calls = Some(*value);
                        other = true;
                    }
                    _ if value.get() != "null" => {
                        other = true;
                        members_other_than_calls = true;
                    }
                    _ => {}
                }
            }
        }
        if let Some(tools) = &mut guard.tools {
            if tool_calls.is_some() || tools.is_choice_held(block) {
                let calls: Vec<OToolCall<'_>> = match tool_calls {
                    Some(raw_calls) => serde_json::from_str(raw_calls.get()).map_err(|e| {
                        bad(format!(
                            "choices[{pos}].delta.tool_calls: invalid JSON: {e}"
                        ))
                    })?,
                    None => Vec::new(),
                };
                let hold = tools.hold_choice(block);
                if content.is_some() || members_other_than_calls {
                    hold.pure = false;
                }
                for (k, call) in calls.iter().enumerate() {
                    let f = call.function.as_ref();
                    let name = f.and_then(|f| f.name.as_deref());
                    let arguments = f.and_then(|f| f.arguments.as_deref());
                    tools.add_fragment(
                        block,
                        call.index.unwrap_or(k as u64),
                        call.id.as_deref(),
                        name,
                        arguments,
                    );
                }
                held.push(block);
                if let Some(reason) = choice.finish_reason {
                    finished_held.push((block, reason));
                }
            }
        }
        if other || finished || choice.logprobs.is_some() {
            content_only = false;
        }
        if other {
            // Tool calls and the like: the held text goes first.
            if guard.flush_block(block, ev_index, out)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        let flow = match content {
            Some(raw_text) => {
                let text = decode(raw_text)
                    .map_err(|e| bad(format!("choices[{pos}].delta.content: {e}")))?;
                match guard.feed_text(block, &text, finished, ev_index, out)? {
                    Some(released) => {
                        texts.push(ChoiceText {
                            block,
                            span: span_of(&data, raw_text),
                            text,
                            released,
                            logprobs: choice.logprobs.map(|l| span_of(&data, l)),
                        });
                        Flow::Go
                    }
                    None => Flow::Stop,
                }
            }
            None if finished => guard.flush_block(block, ev_index, out)?,
            None => Flow::Go,
        };
        if flow == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    let unchanged = texts.iter().all(|t| t.released == t.text);
    let had_choices = !choices.is_empty();
    let flow = if !held.is_empty() {
        // The chunk is held with the first choice it holds; its text
        // (already scanned) goes out now as text events of its own.
        let tools = guard.tools.as_mut().expect("held");
        if held.len() > 1 || texts.iter().any(|t| !held.contains(&t.block)) {
            for b in &held {
                tools.hold_choice(*b).pure = false;
            }
        }
        let hold = tools.hold_choice(held[0]);
        hold.raw.extend_from_slice(&raw);
        if !terminated {
            hold.pure = false;
        }
        for t in &texts {
            if !t.released.is_empty() {
                let bytes = guard.text_event(t.block, &t.released);
                out.bytes.extend_from_slice(&bytes);
            }
        }
        Flow::Go
    } else if unchanged {
        guard.pass(raw, terminated, out)
    } else if content_only && texts.iter().all(|t| t.released.is_empty()) {
        Flow::Go
    } else {
        let mut edits = Vec::new();
        for t in &texts {
            if t.released != t.text {
                edits.push((t.span.clone(), json_string(&t.released)));
                if let Some(l) = &t.logprobs {
                    edits.push((l.clone(), "null".to_owned()));
                }
            }
        }
        let patched = splice(&data, edits);
        write_event(&mut out.bytes, name.as_deref(), &patched);
        Flow::Go
    };
    let finished_held: Vec<(u64, String)> = finished_held
        .into_iter()
        .map(|(b, r)| (b, r.get().to_owned()))
        .collect();
    drop(texts);
    drop(choices);
    if had_choices {
        guard.template = Some(data);
    }
    for (block, reason) in finished_held {
        release_choice(guard, block, &reason, out);
    }
    Ok(flow)
}

/// Decides on the calls of a finished OpenAI choice and sends them:
/// as they came when every call is allowed and the chunks held nothing
/// else, else rebuilt — the allowed calls whole, the policy's messages
/// as content, and the finish (`stop` when no call remains).
pub(crate) fn release_choice(
    guard: &mut StreamGuard,
    block: u64,
    finish_reason: &str,
    out: &mut Output,
) {
    let Some(tools) = &mut guard.tools else {
        return;
    };
    let Some((held, verdicts, restored)) = tools.finish_choice(block) else {
        return;
    };
    out.restored += restored;
    let mut decisions = Vec::with_capacity(verdicts.len());
    for (index, verdict) in verdicts {
        let tool = held
            .calls
            .get(&index)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        decisions.push(ToolDecision {
            index,
            tool,
            verdict,
        });
    }
    let any_blocked = decisions.iter().any(|d| d.verdict.is_blocked());
    let recorded: Vec<ToolDecision> = decisions
        .iter()
        .filter(|d| tools.records(&d.verdict))
        .cloned()
        .collect();
    if held.pure && !any_blocked {
        out.bytes.extend_from_slice(&held.raw);
        out.tools.extend(recorded);
        return;
    }
    let template = guard.template.as_deref();
    let mut first = true;
    let mut delta = |fields: String| {
        let role = if std::mem::take(&mut first) {
            r#""role":"assistant","#
        } else {
            ""
        };
        format!("{{{role}{fields}}}")
    };
    let mut kept = 0u64;
    let mut messages = Vec::new();
    let mut chunks = Vec::new();
    for d in &decisions {
        match &d.verdict {
            ToolVerdict::Block { message, .. } => messages.push(message.clone()),
            _ => {
                let call = &held.calls[&d.index];
                let fields = format!(
                    r#""tool_calls":[{{"index":{kept},"id":{},"type":"function","function":{{"name":{},"arguments":{}}}}}]"#,
                    json_string(&call.id),
                    json_string(&call.name),
                    json_string(&call.arguments)
                );
                chunks.push(delta(fields));
                kept += 1;
            }
        }
    }
    if !messages.is_empty() {
        chunks.push(delta(format!(
            r#""content":{}"#,
            json_string(&messages.join("\n"))
        )));
    }
    for d in chunks {
        let choices =
            format!(r#"[{{"index":{block},"delta":{d},"logprobs":null,"finish_reason":null}}]"#);
        write_event(&mut out.bytes, None, &chunk_from(template, &choices));
    }
    let reason = if kept == 0 && finish_reason == "\"tool_calls\"" {
        "\"stop\""
    } else {
        finish_reason
    };
    let choices =
        format!(r#"[{{"index":{block},"delta":{{}},"logprobs":null,"finish_reason":{reason}}}]"#);
    write_event(&mut out.bytes, None, &chunk_from(template, &choices));
    out.tools.extend(recorded);
}

/// A chunk carrying `text` for choice `index`, with the top-level fields of
/// `template` (the last chunk with choices seen).
pub(crate) fn text_event(index: u64, text: &str, template: Option<&str>) -> Vec<u8> {
    let text = json_string(text);
    let mut out = Vec::with_capacity(text.len() + 128);
    let choices = format!(
        r#"[{{"index":{index},"delta":{{"content":{text}}},"logprobs":null,"finish_reason":null}}]"#
    );
    let data = chunk_from(template, &choices);
    write_event(&mut out, None, &data);
    out
}

/// The text of one choice in an OpenAI chunk.
struct ChoiceText<'a> {
    /// The choice's index.
    block: u64,
    /// Byte range of the `content` string in the chunk's data.
    span: Range<usize>,
    text: Cow<'a, str>,
    released: String,
    /// Byte range of the choice's non-null `logprobs`.
    logprobs: Option<Range<usize>>,
}

#[derive(Deserialize)]
struct OChunk<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<OChoice<'a>>>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OChoice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
    #[serde(borrow, default)]
    logprobs: Option<&'a RawValue>,
}

/// An OpenAI chunk with the top-level members of `template` (in order) and
/// `choices` in place of its choices; `usage` becomes null.
fn chunk_from(template: Option<&str>, choices: &str) -> String {
    let members = template.and_then(|t| serde_json::from_str::<Members<'_>>(t).ok());
    let Some(members) = members else {
        return format!(r#"{{"object":"chat.completion.chunk","choices":{choices}}}"#);
    };
    let mut out = String::from("{");
    let mut placed = false;
    for (key, value) in &members.0 {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&json_string(key));
        out.push(':');
        match key.as_str() {
            "choices" => {
                out.push_str(choices);
                placed = true;
            }
            "usage" => out.push_str("null"),
            _ => out.push_str(value.get()),
        }
    }
    if !placed {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str("\"choices\":");
        out.push_str(choices);
    }
    out.push('}');
    out
}

/// One fragment of a streamed tool call.
#[derive(Deserialize)]
struct OToolCall<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<OFunction<'a>>,
}

#[derive(Deserialize)]
struct OFunction<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}
