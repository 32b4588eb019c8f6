//! OpenAI Chat Completions requests: which text guards read.
//!
//! Read: the content of `system`, `developer`, `user` and `tool` messages
//! (string, or `text` parts). Not read: assistant turns, tool definitions,
//! images and audio.

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
struct Part<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
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
    for (index, message) in parsed.messages.iter().flatten().enumerate() {
        let (role, kind) = match message.role.as_ref() {
            "system" | "developer" => (Role::System, PartKind::System),
            "user" => (Role::User, PartKind::Text),
            "tool" | "function" => (Role::Tool, PartKind::ToolResult),
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
        let index = index as u32;
        match first_byte(content) {
            b'"' => out.segments.push(TextSegment {
                location: Location::Message {
                    index,
                    block: None,
                    sub: None,
                },
                role,
                kind,
                text: decode_str(content, || format!("messages[{index}].content"))?,
                raw: span_of(body, content),
            }),
            b'[' => {
                let parts: Vec<Part<'_>> = serde_json::from_str(content.get()).map_err(|e| {
                    BodyError(format!(
                        "messages[{index}].content: expected a list of parts: {e}"
                    ))
                })?;
                for (p, part) in parts.iter().enumerate() {
                    if let (Some("text"), Some(text)) = (part.kind.as_deref(), part.text) {
                        out.segments.push(TextSegment {
                            location: Location::Message {
                                index,
                                block: Some(p as u32),
                                sub: None,
                            },
                            role,
                            kind,
                            text: decode_str(text, || {
                                format!("messages[{index}].content[{p}].text")
                            })?,
                            raw: span_of(body, text),
                        });
                    }
                }
            }
            b'n' => {}
            _ => {
                return Err(BodyError(format!(
                    "messages[{index}].content: expected a string or a list of parts"
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{parse_request, PartKind, Role};

    #[test]
    fn reads_user_side_roles() {
        let body = r#"{"model":"gpt-4o","tools":[{"type":"function","function":{"description":"credit card"}}],
          "messages":[
            {"role":"developer","content":"dev rules"},
            {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}]},
            {"role":"assistant","content":"old answer","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c","content":"tool out"}
          ]}"#;
        let parsed = parse_request(true, body).unwrap();
        assert_eq!(parsed.model.as_deref(), Some("gpt-4o"));
        let got: Vec<(String, &str, Role, PartKind)> = parsed
            .segments
            .iter()
            .map(|s| (s.location.to_string(), s.text.as_ref(), s.role, s.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "messages[0].content".into(),
                    "dev rules",
                    Role::System,
                    PartKind::System
                ),
                (
                    "messages[1].content[0]".into(),
                    "hi",
                    Role::User,
                    PartKind::Text
                ),
                (
                    "messages[3].content".into(),
                    "tool out",
                    Role::Tool,
                    PartKind::ToolResult
                ),
            ]
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(parse_request(true, r#"{"messages":[{"role":"user","content":7}]}"#).is_err());
        assert!(parse_request(true, r#"{"messages":"x"}"#).is_err());
    }
}
