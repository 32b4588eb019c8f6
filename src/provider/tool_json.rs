//! Tool calls in whole (non-streamed) responses: each call is judged, and a
//! blocked one is replaced by the policy's message — Anthropic: the
//! `tool_use` block becomes a `text` block at the same place; OpenAI: the
//! call leaves `tool_calls` and the message joins the assistant's content.
//! When no call of a message remains, the turn ends (`stop_reason:
//! end_turn`, `finish_reason: stop`), so the agent shows the refusal and
//! runs nothing. Only the changed parts of the body are rewritten.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::json::span_of;
use super::stream::StreamError;
use super::tool_call::{ToolDecision, ToolJudge, ToolVerdict};
use super::Dialect;

/// What judging a body's tool calls gave.
#[derive(Debug, Default)]
pub struct JsonTools {
    /// The body to send instead, when a call was blocked.
    pub body: Option<String>,
    pub tools: Vec<ToolDecision>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    stop_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Completion<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<&'a RawValue>>,
}

fn bad(e: impl std::fmt::Display) -> StreamError {
    StreamError::BadBody(e.to_string())
}

/// Judges every tool call of a whole response body.
pub fn guard_json_tools(
    dialect: Dialect,
    body: &str,
    judge: &dyn ToolJudge,
) -> Result<JsonTools, StreamError> {
    if !body.trim_start().starts_with('{') {
        return Err(bad("the response body is not a JSON object"));
    }
    match dialect {
        Dialect::Anthropic => anthropic(body, judge),
        Dialect::OpenAiChat => openai(body, judge),
    }
}

fn anthropic(body: &str, judge: &dyn ToolJudge) -> Result<JsonTools, StreamError> {
    let msg: Message<'_> = serde_json::from_str(body).map_err(bad)?;
    let mut out = JsonTools::default();
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let (mut allowed, mut blocked) = (0, 0);
    for (i, raw) in msg.content.iter().flatten().enumerate() {
        let block: Block<'_> =
            serde_json::from_str(raw.get()).map_err(|e| bad(format!("content[{i}]: {e}")))?;
        if block.kind.as_deref() != Some("tool_use") {
            continue;
        }
        let name = block
            .name
            .ok_or_else(|| bad(format!("content[{i}]: a `tool_use` block without a `name`")))?;
        let input = block.input.map_or("{}", RawValue::get);
        let verdict = judge.judge(&name, input);
        if let ToolVerdict::Block { message, .. } = &verdict {
            blocked += 1;
            let text = serde_json::json!({"type": "text", "text": message}).to_string();
            edits.push((span_of(body, raw), text));
        } else {
            allowed += 1;
        }
        out.tools.push(ToolDecision {
            index: i as u64,
            tool: name.into_owned(),
            verdict,
        });
    }
    if blocked > 0 && allowed == 0 {
        if let Some(reason) = msg.stop_reason.filter(|r| r.get() == "\"tool_use\"") {
            edits.push((span_of(body, reason), "\"end_turn\"".into()));
        }
    }
    if !edits.is_empty() {
        out.body = Some(splice(body, edits));
    }
    Ok(out)
}

fn openai(body: &str, judge: &dyn ToolJudge) -> Result<JsonTools, StreamError> {
    let completion: Completion<'_> = serde_json::from_str(body).map_err(bad)?;
    let mut out = JsonTools::default();
    let mut edits = Vec::new();
    for (pos, raw) in completion.choices.iter().flatten().enumerate() {
        let mut choice: Value =
            serde_json::from_str(raw.get()).map_err(|e| bad(format!("choices[{pos}]: {e}")))?;
        let Some(calls) = choice
            .pointer("/message/tool_calls")
            .and_then(Value::as_array)
            .cloned()
        else {
            continue;
        };
        let mut kept = Vec::new();
        let mut messages = Vec::new();
        for (j, call) in calls.into_iter().enumerate() {
            let name = call
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    bad(format!(
                        "choices[{pos}].message.tool_calls[{j}]: no function name"
                    ))
                })?
                .to_owned();
            let arguments = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}");
            let verdict = judge.judge(&name, arguments);
            match &verdict {
                ToolVerdict::Block { message, .. } => messages.push(message.clone()),
                _ => kept.push(call),
            }
            out.tools.push(ToolDecision {
                index: j as u64,
                tool: name,
                verdict,
            });
        }
        if messages.is_empty() {
            continue;
        }
        let message = &mut choice["message"];
        let content = match message.get("content").and_then(Value::as_str) {
            Some(text) if !text.is_empty() => format!("{text}\n\n{}", messages.join("\n")),
            _ => messages.join("\n"),
        };
        message["content"] = Value::String(content);
        if kept.is_empty() {
            if let Some(m) = message.as_object_mut() {
                m.remove("tool_calls");
            }
            if choice.get("finish_reason").and_then(Value::as_str) == Some("tool_calls") {
                choice["finish_reason"] = Value::String("stop".into());
            }
        } else {
            message["tool_calls"] = Value::Array(kept);
        }
        edits.push((span_of(body, raw), choice.to_string()));
    }
    if !edits.is_empty() {
        out.body = Some(splice(body, edits));
    }
    Ok(out)
}

/// `src` with the ranges replaced (ranges do not overlap).
fn splice(src: &str, mut edits: Vec<(std::ops::Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(src.len());
    let mut at = 0;
    for (r, text) in edits {
        out.push_str(&src[at..r.start]);
        out.push_str(&text);
        at = r.end;
    }
    out.push_str(&src[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::tool::ToolGuard;

    fn judge() -> ToolGuard {
        ToolGuard::compile(
            serde_yaml::from_str(
                r#"
deny: ["mcp__*"]
denyMessage: "no MCP"
rules:
- tools: [Bash]
  regex: { matches: ["rm\\s+-rf\\s+/"] }
  response: { message: "no rm -rf /" }
"#,
            )
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn anthropic_blocked_blocks_become_text_and_the_turn_ends() {
        let body = r#"{"id":"m","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Cleaning up."},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"rm -rf /"}}],"stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4}}"#;
        let out = guard_json_tools(Dialect::Anthropic, body, &judge()).unwrap();
        assert!(out.tools[0].verdict.is_blocked());
        assert_eq!(out.tools[0].index, 1);
        let new = out.body.unwrap();
        assert_eq!(
            new,
            body.replace(
                r#"{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"rm -rf /"}}"#,
                r#"{"text":"no rm -rf /","type":"text"}"#
            )
            .replace(r#""stop_reason":"tool_use""#, r#""stop_reason":"end_turn""#)
        );
        // Allowed and blocked: the allowed call stays, the turn too.
        let body = r#"{"content":[{"type":"tool_use","id":"a","name":"Bash","input":{"command":"ls"}},{"type":"tool_use","id":"b","name":"mcp__x__y","input":{}}],"stop_reason":"tool_use"}"#;
        let out = guard_json_tools(Dialect::Anthropic, body, &judge()).unwrap();
        let new = out.body.unwrap();
        assert!(
            new.contains(r#"{"type":"tool_use","id":"a","name":"Bash","input":{"command":"ls"}}"#)
        );
        assert!(new.contains(r#""stop_reason":"tool_use""#));
        assert!(new.contains("no MCP"));
        // Nothing blocked: no new body.
        let body = r#"{"content":[{"type":"tool_use","id":"a","name":"Bash","input":{"command":"ls"}}],"stop_reason":"tool_use"}"#;
        let out = guard_json_tools(Dialect::Anthropic, body, &judge()).unwrap();
        assert!(out.body.is_none());
        assert_eq!(out.tools[0].verdict, ToolVerdict::Allow);
    }

    #[test]
    fn openai_blocked_calls_leave_and_the_message_becomes_content() {
        let body = r#"{"id":"c","object":"chat.completion","model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"Bash","arguments":"{\"command\":\"rm -rf /\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1}}"#;
        let out = guard_json_tools(Dialect::OpenAiChat, body, &judge()).unwrap();
        let v: Value = serde_json::from_str(&out.body.unwrap()).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "no rm -rf /");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["prompt_tokens"], 1);
        assert_eq!(v["model"], "gpt-x");
        // One kept, one blocked.
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Doing two things.","tool_calls":[{"id":"c1","type":"function","function":{"name":"Bash","arguments":"{\"command\":\"ls\"}"}},{"id":"c2","type":"function","function":{"name":"mcp__gh__issue","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#;
        let out = guard_json_tools(Dialect::OpenAiChat, body, &judge()).unwrap();
        let v: Value = serde_json::from_str(&out.body.unwrap()).unwrap();
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], "Doing two things.\n\nno MCP");
        assert_eq!(m["tool_calls"].as_array().unwrap().len(), 1);
        assert_eq!(m["tool_calls"][0]["id"], "c1");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn unreadable_bodies_are_errors() {
        assert!(guard_json_tools(Dialect::Anthropic, "{", &judge()).is_err());
        assert!(guard_json_tools(
            Dialect::Anthropic,
            r#"{"content":[{"type":"tool_use","input":{}}]}"#,
            &judge()
        )
        .is_err());
        assert!(guard_json_tools(Dialect::OpenAiChat, "[]", &judge()).is_err());
    }
}
