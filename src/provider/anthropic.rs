//! Anthropic Messages requests: which text guards read.
//!
//! Read: the system prompt (string or text blocks), and of user-side
//! messages (`user`, and the `system` role Claude Code puts inside
//! `messages`) the string content, text blocks and `tool_result` contents.
//! Not read: tool definitions, assistant turns, thinking, images, metadata.
//! The body is parsed once, borrowing: untouched parts (the ~60 KB of tool
//! definitions in a Claude Code request) are only validated, not built.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    decode_str, first_byte, span_of, BodyError, Location, ParsedRequest, PartKind, Role,
    TextSegment,
};

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<Vec<Message<'a>>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

pub(crate) fn parse_request(body: &str) -> Result<ParsedRequest<'_>, BodyError> {
    let parsed: Body<'_> =
        serde_json::from_str(body).map_err(|e| BodyError(format!("invalid JSON: {e}")))?;
    let mut out = ParsedRequest::default();
    if let Some(raw) = parsed.model {
        out.model_raw = Some(span_of(body, raw));
        if first_byte(raw) == b'"' {
            out.model = Some(decode_str(raw, || "model".into())?);
        }
    }
    if let Some(system) = parsed.system {
        match first_byte(system) {
            b'"' => out.segments.push(TextSegment {
                location: Location::System { block: None },
                role: Role::System,
                kind: PartKind::System,
                text: decode_str(system, || "system".into())?,
                raw: span_of(body, system),
            }),
            b'[' => {
                let blocks: Vec<Block<'_>> = serde_json::from_str(system.get())
                    .map_err(|e| BodyError(format!("system: expected a list of blocks: {e}")))?;
                for (i, block) in blocks.iter().enumerate() {
                    if let (Some("text"), Some(text)) = (block.kind.as_deref(), block.text) {
                        out.segments.push(TextSegment {
                            location: Location::System {
                                block: Some(i as u32),
                            },
                            role: Role::System,
                            kind: PartKind::System,
                            text: decode_str(text, || format!("system[{i}].text"))?,
                            raw: span_of(body, text),
                        });
                    }
                }
            }
            b'n' => {}
            _ => {
                return Err(BodyError(
                    "system: expected a string or a list of blocks".into(),
                ))
            }
        }
    }
    for (index, message) in parsed.messages.iter().flatten().enumerate() {
        let role = match message.role.as_ref() {
            "user" => Role::User,
            "system" => Role::System,
            "assistant" => continue,
            other => {
                return Err(BodyError(format!(
                    "messages[{index}].role: unknown role `{other}`"
                )))
            }
        };
        let Some(content) = message.content else {
            continue;
        };
        push_content(body, &mut out.segments, content, role, index as u32)?;
    }
    Ok(out)
}

fn push_content<'a>(
    body: &'a str,
    segments: &mut Vec<TextSegment<'a>>,
    content: &'a RawValue,
    role: Role,
    index: u32,
) -> Result<(), BodyError> {
    match first_byte(content) {
        b'"' => segments.push(TextSegment {
            location: Location::Message {
                index,
                block: None,
                sub: None,
            },
            role,
            kind: PartKind::Text,
            text: decode_str(content, || format!("messages[{index}].content"))?,
            raw: span_of(body, content),
        }),
        b'[' => {
            let blocks: Vec<Block<'a>> = serde_json::from_str(content.get()).map_err(|e| {
                BodyError(format!(
                    "messages[{index}].content: expected a list of blocks: {e}"
                ))
            })?;
            for (b, block) in blocks.iter().enumerate() {
                let b = b as u32;
                match (block.kind.as_deref(), block.text, block.content) {
                    (Some("text"), Some(text), _) => segments.push(TextSegment {
                        location: Location::Message {
                            index,
                            block: Some(b),
                            sub: None,
                        },
                        role,
                        kind: PartKind::Text,
                        text: decode_str(text, || format!("messages[{index}].content[{b}].text"))?,
                        raw: span_of(body, text),
                    }),
                    (Some("tool_result"), _, Some(result)) => {
                        push_tool_result(body, segments, result, index, b)?
                    }
                    _ => {}
                }
            }
        }
        b'n' => {}
        _ => {
            return Err(BodyError(format!(
                "messages[{index}].content: expected a string or a list of blocks"
            )))
        }
    }
    Ok(())
}

fn push_tool_result<'a>(
    body: &'a str,
    segments: &mut Vec<TextSegment<'a>>,
    result: &'a RawValue,
    index: u32,
    block: u32,
) -> Result<(), BodyError> {
    let place = || format!("messages[{index}].content[{block}].content");
    match first_byte(result) {
        b'"' => segments.push(TextSegment {
            location: Location::Message {
                index,
                block: Some(block),
                sub: None,
            },
            role: Role::Tool,
            kind: PartKind::ToolResult,
            text: decode_str(result, place)?,
            raw: span_of(body, result),
        }),
        b'[' => {
            let inner: Vec<Block<'a>> = serde_json::from_str(result.get())
                .map_err(|e| BodyError(format!("{}: expected a list of blocks: {e}", place())))?;
            for (s, sub) in inner.iter().enumerate() {
                if let (Some("text"), Some(text)) = (sub.kind.as_deref(), sub.text) {
                    segments.push(TextSegment {
                        location: Location::Message {
                            index,
                            block: Some(block),
                            sub: Some(s as u32),
                        },
                        role: Role::Tool,
                        kind: PartKind::ToolResult,
                        text: decode_str(text, || format!("{}[{s}].text", place()))?,
                        raw: span_of(body, text),
                    });
                }
            }
        }
        b'n' => {}
        _ => {
            return Err(BodyError(format!(
                "{}: expected a string or a list of blocks",
                place()
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{parse_request, PartKind, Role};

    #[test]
    fn reads_system_user_text_and_tool_results_only() {
        let body = r#"{
          "model": "claude-x",
          "system": [{"type":"text","text":"sys one"},{"type":"text","text":"sys \"two\""}],
          "tools": [{"name":"Bash","description":"credit card secret"}],
          "messages": [
            {"role":"user","content":[{"type":"text","text":"hello"},{"type":"image","source":{"type":"base64","data":"AAAA"}}]},
            {"role":"system","content":"inner system"},
            {"role":"assistant","content":[{"type":"text","text":"assistant words"},{"type":"tool_use","id":"t","name":"Bash","input":{"command":"cat x"}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"file data"},
                                      {"type":"tool_result","tool_use_id":"u","content":[{"type":"text","text":"nested"}]}]}
          ]
        }"#;
        let parsed = parse_request(false, body).unwrap();
        assert_eq!(parsed.model.as_deref(), Some("claude-x"));
        let got: Vec<(String, &str, Role, PartKind)> = parsed
            .segments
            .iter()
            .map(|s| (s.location.to_string(), s.text.as_ref(), s.role, s.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "system[0]".into(),
                    "sys one",
                    Role::System,
                    PartKind::System
                ),
                (
                    "system[1]".into(),
                    "sys \"two\"",
                    Role::System,
                    PartKind::System
                ),
                (
                    "messages[0].content[0]".into(),
                    "hello",
                    Role::User,
                    PartKind::Text
                ),
                (
                    "messages[1].content".into(),
                    "inner system",
                    Role::System,
                    PartKind::Text
                ),
                (
                    "messages[3].content[0]".into(),
                    "file data",
                    Role::Tool,
                    PartKind::ToolResult
                ),
                (
                    "messages[3].content[1].content[0]".into(),
                    "nested",
                    Role::Tool,
                    PartKind::ToolResult
                ),
            ]
        );
        // Raw spans point at the JSON string literals.
        for s in &parsed.segments {
            let literal = &body[s.raw.clone()];
            assert_eq!(serde_json::from_str::<String>(literal).unwrap(), s.text);
        }
    }

    #[test]
    fn string_system_and_escapes_decode() {
        let body =
            r#"{"system":"be nice","messages":[{"role":"user","content":"credit\u0020card"}]}"#;
        let parsed = parse_request(false, body).unwrap();
        assert_eq!(parsed.segments[0].text, "be nice");
        assert_eq!(parsed.segments[1].text, "credit card");
    }

    #[test]
    fn malformed_and_confusing_bodies_are_refused() {
        for body in [
            "",
            "not json",
            "[1,2]",
            r#"{"messages": [{"role":"user","content":"a"}], "messages": []}"#,
            r#"{"messages": [{"role":"user","content":{"text":"hidden"}}]}"#,
            r#"{"messages": [{"role":"hacker","content":"x"}]}"#,
            r#"{"messages": [{"role":"user","content":[{"type":"text","text":5}]}]}"#,
            r#"{"system": 5}"#,
            r#"{"messages": [{"role":"user","content":"a"}]"#,
        ] {
            assert!(parse_request(false, body).is_err(), "{body}");
        }
    }

    #[test]
    fn claude_code_first_turn_fixture_parses_and_skips_tools() {
        let body = include_str!("../../tests/fixtures/claude_code_first_turn.json");
        let parsed = parse_request(false, body).unwrap();
        assert!(parsed.segments.iter().any(|s| s.text.contains("Say hi")));
        assert!(parsed
            .segments
            .iter()
            .any(|s| s.role == Role::System && s.location.to_string() == "messages[1].content"));
        // No segment comes from the tool definitions.
        let tools_start = body.find("\"tools\"").unwrap();
        let tools_end = tools_start
            + body[tools_start..]
                .find("\"metadata\"")
                .unwrap_or(body.len() - tools_start);
        let tools_span = tools_start.min(tools_end)..tools_start.max(tools_end);
        for s in &parsed.segments {
            assert!(
                !(tools_span.contains(&s.raw.start)),
                "segment from tools: {}",
                s.location
            );
        }
    }

    #[test]
    fn claude_code_tool_turn_reads_the_tool_result() {
        let body = include_str!("../../tests/fixtures/claude_code_tool_result_turn.json");
        let parsed = parse_request(false, body).unwrap();
        let tool: Vec<_> = parsed
            .segments
            .iter()
            .filter(|s| s.kind == PartKind::ToolResult)
            .collect();
        assert_eq!(tool.len(), 1);
        assert_eq!(tool[0].text, "meeting at noon");
    }
}
