//! Tool calls in a whole OpenAI completion: a blocked call leaves
//! `tool_calls` and its message joins the assistant's content; with no
//! call left, `finish_reason` becomes `stop`.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::provider::json::{span_of, splice};
use crate::provider::restore::Restore;
use crate::provider::stream::StreamError;
use crate::provider::tool_call::{ToolDecision, ToolJudge, ToolVerdict};
use crate::provider::tool_json::{bad, JsonTools};

#[derive(Deserialize)]
struct Completion<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<&'a RawValue>>,
}

pub(crate) fn judge(
    body: &str,
    judge: &dyn ToolJudge,
    restore: Option<&Restore>,
) -> Result<JsonTools, StreamError> {
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
        let mut restored_any = false;
        for (j, mut call) in calls.into_iter().enumerate() {
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
            let restored = restore.and_then(|r| r.restore_json(arguments));
            let verdict = judge.judge(&name, restored.as_ref().map_or(arguments, |(r, _)| r));
            match &verdict {
                ToolVerdict::Block { message, .. } => messages.push(message.clone()),
                _ => {
                    if let Some((arguments, n)) = restored {
                        out.restored += n;
                        restored_any = true;
                        call["function"]["arguments"] = Value::String(arguments);
                    }
                    kept.push(call);
                }
            }
            out.tools.push(ToolDecision {
                index: j as u64,
                tool: name,
                verdict,
            });
        }
        if messages.is_empty() {
            if restored_any {
                choice["message"]["tool_calls"] = Value::Array(kept);
                edits.push((span_of(body, raw), choice.to_string()));
            }
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
