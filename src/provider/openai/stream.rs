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
    }
    if let Some(usage) = chunk.usage {
        let usage: Value = serde_json::from_str(usage.get()).unwrap_or_default();
        guard.usage.update(&read_usage(&usage));
    }
    let choices = chunk.choices.unwrap_or_default();
    let mut texts: Vec<ChoiceText<'_>> = Vec::new();
    let mut content_only = chunk.error.is_none() && chunk.usage.is_none();
    for (pos, choice) in choices.iter().enumerate() {
        let block = choice.index.unwrap_or(pos as u64);
        let finished = choice.finish_reason.is_some();
        let mut content = None;
        let mut other = false;
        if let Some(delta) = choice.delta {
            let members: Members<'_> =
                object(delta.get()).map_err(|e| bad(format!("choices[{pos}].delta: {e}")))?;
            for (key, value) in &members.0 {
                match key.as_str() {
                    "content" if value.get() != "null" => content = Some(*value),
                    "content" => {}
                    "role" if value.get() != "null" => content_only = false,
                    _ if value.get() != "null" => other = true,
                    _ => {}
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
    let flow = if unchanged {
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
    drop(texts);
    drop(choices);
    if had_choices {
        guard.template = Some(data);
    }
    Ok(flow)
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
