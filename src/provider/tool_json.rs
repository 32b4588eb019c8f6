//! Tool calls in whole (non-streamed) responses: each call is judged, and a
//! blocked one is replaced by the policy's message — Anthropic: the
//! `tool_use` block becomes a `text` block at the same place; OpenAI: the
//! call leaves `tool_calls` and the message joins the assistant's content.
//! When no call of a message remains, the turn ends (`stop_reason:
//! end_turn`, `finish_reason: stop`), so the agent shows the refusal and
//! runs nothing. Only the changed parts of the body are rewritten.

use super::restore::Restore;
use super::stream::StreamError;
use super::tool_call::{ToolDecision, ToolJudge};
use super::Dialect;

/// What judging a body's tool calls gave.
#[derive(Debug, Default)]
pub struct JsonTools {
    /// The body to send instead, when a call was blocked or its input
    /// restored.
    pub body: Option<String>,
    pub tools: Vec<ToolDecision>,
    /// Placeholders of the request restored in tool inputs.
    pub restored: usize,
}

pub(crate) fn bad(e: impl std::fmt::Display) -> StreamError {
    StreamError::BadBody(e.to_string())
}

/// Judges every tool call of a whole response body; with a `restore`,
/// the request's placeholders in each call's input are put back first (the
/// judge sees what the agent would run).
pub fn guard_json_tools(
    dialect: Dialect,
    body: &str,
    judge: &dyn ToolJudge,
    restore: Option<&Restore>,
) -> Result<JsonTools, StreamError> {
    if !body.trim_start().starts_with('{') {
        return Err(bad("the response body is not a JSON object"));
    }
    dialect
        .provider()
        .json_tools(body, judge, restore.filter(|r| !r.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::tool::ToolGuard;
    use crate::provider::tool_call::ToolVerdict;
    use serde_json::Value;

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
        let out = guard_json_tools(Dialect::Anthropic, body, &judge(), None).unwrap();
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
        let out = guard_json_tools(Dialect::Anthropic, body, &judge(), None).unwrap();
        let new = out.body.unwrap();
        assert!(
            new.contains(r#"{"type":"tool_use","id":"a","name":"Bash","input":{"command":"ls"}}"#)
        );
        assert!(new.contains(r#""stop_reason":"tool_use""#));
        assert!(new.contains("no MCP"));
        // Nothing blocked: no new body.
        let body = r#"{"content":[{"type":"tool_use","id":"a","name":"Bash","input":{"command":"ls"}}],"stop_reason":"tool_use"}"#;
        let out = guard_json_tools(Dialect::Anthropic, body, &judge(), None).unwrap();
        assert!(out.body.is_none());
        assert_eq!(out.tools[0].verdict, ToolVerdict::Allow);
    }

    #[test]
    fn openai_blocked_calls_leave_and_the_message_becomes_content() {
        let body = r#"{"id":"c","object":"chat.completion","model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"Bash","arguments":"{\"command\":\"rm -rf /\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1}}"#;
        let out = guard_json_tools(Dialect::OpenAiChat, body, &judge(), None).unwrap();
        let v: Value = serde_json::from_str(&out.body.unwrap()).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "no rm -rf /");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["prompt_tokens"], 1);
        assert_eq!(v["model"], "gpt-x");
        // One kept, one blocked.
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Doing two things.","tool_calls":[{"id":"c1","type":"function","function":{"name":"Bash","arguments":"{\"command\":\"ls\"}"}},{"id":"c2","type":"function","function":{"name":"mcp__gh__issue","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#;
        let out = guard_json_tools(Dialect::OpenAiChat, body, &judge(), None).unwrap();
        let v: Value = serde_json::from_str(&out.body.unwrap()).unwrap();
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], "Doing two things.\n\nno MCP");
        assert_eq!(m["tool_calls"].as_array().unwrap().len(), 1);
        assert_eq!(m["tool_calls"][0]["id"], "c1");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn unreadable_bodies_are_errors() {
        assert!(guard_json_tools(Dialect::Anthropic, "{", &judge(), None).is_err());
        assert!(guard_json_tools(
            Dialect::Anthropic,
            r#"{"content":[{"type":"tool_use","input":{}}]}"#,
            &judge(),
            None
        )
        .is_err());
        assert!(guard_json_tools(Dialect::OpenAiChat, "[]", &judge(), None).is_err());
    }
}
