//! OpenAI Chat Completions requests: which text guards can read.
//!
//! Extracted, tagged with their [`PartKind`]: `system`/`developer` content
//! (System), `user` content (UserText), `assistant` content
//! (AssistantText), `tool`/`function` content (ToolResult),
//! `tool_calls[].function.arguments` (ToolInput) and tool descriptions
//! (ToolDefinition). Images and audio are never read.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::provider::json::first_byte;
use crate::provider::json::skeleton::Skeleton;
use crate::provider::request::{offered_tools, read_model, read_stream};
use crate::provider::{BodyError, KindSet, Location, ParsedRequest, PartKind, Role, TextSegment};

/// The body; `T` is how tool definitions are read (parsed, or raw to be
/// located and listed).
#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a, T: Deserialize<'de>"))]
struct Body<'a, T> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<Vec<Message<'a>>>,
    #[serde(default)]
    tools: Option<Vec<T>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow, default)]
    function: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
    #[serde(borrow, default)]
    description: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow, default)]
    function: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

/// Parses a request body through its skeleton (serde walks the body
/// without the contents of its long strings); texts are lent from the body.
pub(crate) fn parse_skeleton<'a>(
    skeleton: &Skeleton<'a>,
    kinds: KindSet,
) -> Result<ParsedRequest<'a>, BodyError> {
    let mut out = ParsedRequest::default();
    let parsed: Body<'_, Tool<'_>> = if kinds.offered_tools() {
        let raw: Body<'_, &RawValue> = skeleton.parse()?;
        let tools = offered_tools(
            skeleton,
            raw.tools.as_deref().unwrap_or_default(),
            &mut out.offered_tools,
            |t: &Tool<'_>| t.function.as_ref().and_then(|f| f.name.as_deref()),
        )?;
        Body {
            model: raw.model,
            stream: raw.stream,
            messages: raw.messages,
            tools: raw.tools.is_some().then_some(tools),
        }
    } else {
        skeleton.parse()?
    };
    read_model(skeleton, parsed.model, &mut out)?;
    out.stream = read_stream(parsed.stream);
    fn push<'a>(
        skeleton: &Skeleton<'a>,
        kinds: KindSet,
        out: &mut ParsedRequest<'a>,
        location: Location,
        role: Role,
        kind: PartKind,
        raw: &RawValue,
    ) -> Result<(), BodyError> {
        if kinds.contains(kind) {
            let segment = TextSegment::new(skeleton, raw, location, role, kind)?;
            out.push(kinds, segment);
        }
        Ok(())
    }
    for (index, message) in parsed.messages.iter().flatten().enumerate() {
        let index = index as u32;
        let (role, kind) = match message.role.as_ref() {
            "system" | "developer" => (Role::System, PartKind::System),
            "user" => (Role::User, PartKind::UserText),
            "tool" | "function" => (Role::Tool, PartKind::ToolResult),
            "assistant" => (Role::Assistant, PartKind::AssistantText),
            other => {
                return Err(BodyError(format!(
                    "messages[{index}].role: unknown role `{other}`"
                )))
            }
        };
        if matches!(role, Role::User | Role::Tool) {
            out.latest_user_message = Some(index);
        }
        for (call, tc) in message.tool_calls.iter().flatten().enumerate() {
            if let Some(args) = tc
                .function
                .as_ref()
                .and_then(|f| f.arguments)
                .filter(|a| first_byte(a) == b'"')
            {
                let loc = Location::ToolCallArguments {
                    index,
                    call: call as u32,
                };
                push(
                    skeleton,
                    kinds,
                    &mut out,
                    loc,
                    Role::Assistant,
                    PartKind::ToolInput,
                    args,
                )?;
            }
        }
        let Some(content) = message.content else {
            continue;
        };
        match first_byte(content) {
            b'"' => push(
                skeleton,
                kinds,
                &mut out,
                Location::Message {
                    index,
                    block: None,
                    sub: None,
                },
                role,
                kind,
                content,
            )?,
            b'[' => {
                let parts: Vec<Part<'_>> = serde_json::from_str(content.get()).map_err(|e| {
                    BodyError(format!(
                        "messages[{index}].content: expected a list of parts: {e}"
                    ))
                })?;
                for (p, part) in parts.iter().enumerate() {
                    if let (Some("text"), Some(text)) = (part.kind.as_deref(), part.text) {
                        let loc = Location::Message {
                            index,
                            block: Some(p as u32),
                            sub: None,
                        };
                        push(skeleton, kinds, &mut out, loc, role, kind, text)?;
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
    if kinds.contains(PartKind::ToolDefinition) {
        for (index, tool) in parsed.tools.iter().flatten().enumerate() {
            if let Some(d) = tool
                .function
                .as_ref()
                .and_then(|f| f.description)
                .filter(|d| first_byte(d) == b'"')
            {
                push(
                    skeleton,
                    kinds,
                    &mut out,
                    Location::Tool {
                        index: index as u32,
                    },
                    Role::System,
                    PartKind::ToolDefinition,
                    d,
                )?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
