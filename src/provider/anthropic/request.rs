//! Anthropic Messages requests: which text guards can read.
//!
//! Extracted, each tagged with its [`PartKind`]: the system prompt (string
//! or text blocks; `role: "system"` entries Claude Code puts inside
//! `messages`), user text, assistant text, `tool_result` contents,
//! `tool_use` input strings, text documents and search results, and tool
//! descriptions. Never extracted, so never rewritten: thinking and
//! redacted_thinking blocks (signed), images and base64 documents, metadata.
//! The body is parsed once, borrowing: parts no guard reads (the ~60 KB of
//! tool definitions in a Claude Code request) are only validated.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::provider::json::skeleton::{Skeleton, Unread};
use crate::provider::json::{first_byte, is_escaped};
use crate::provider::request::offered_tools;
use crate::provider::request::{read_model, read_stream, string_leaves};
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
    system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<Vec<Message<'a>>>,
    #[serde(default)]
    tools: Option<Vec<T>>,
}

/// A message, read in one pass with its content: a list of blocks is
/// read as it is met (a tool result's megabytes are skipped once, not
/// twice), a string is located in the body.
struct Message<'a> {
    role: Cow<'a, str>,
    content: Option<Content<'a>>,
}

enum Content<'a> {
    Blocks(Vec<Block<'a>>),
    /// A string with no escapes, lent from the body: its literal's content.
    Lent(&'a str),
    /// A string with escapes: serde only hands over its decoded text, so
    /// it is found in the body after its key, which ends at this address.
    AfterKey(usize),
}

impl<'de: 'a, 'a> Deserialize<'de> for Message<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{DeserializeSeed, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct ContentSeed(Option<usize>);
        impl<'de> DeserializeSeed<'de> for ContentSeed {
            type Value = Option<Content<'de>>;
            fn deserialize<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
        }
        impl<'de> Visitor<'de> for ContentSeed {
            type Value = Option<Content<'de>>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of content blocks")
            }
            fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Some(Content::Lent(v)))
            }
            fn visit_str<E: Error>(self, _: &str) -> Result<Self::Value, E> {
                match self.0 {
                    Some(after_key) => Ok(Some(Content::AfterKey(after_key))),
                    None => Err(E::custom("a message with an escaped `content` key")),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut blocks = Vec::new();
                while let Some(b) = seq.next_element::<Block<'de>>()? {
                    blocks.push(b);
                }
                Ok(Some(Content::Blocks(blocks)))
            }
        }
        /// A string, borrowed from the body when it has no escapes.
        struct Text;
        impl<'de> DeserializeSeed<'de> for Text {
            type Value = Cow<'de, str>;
            fn deserialize<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Self::Value, D::Error> {
                d.deserialize_str(self)
            }
        }
        impl<'de> Visitor<'de> for Text {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
        }
        struct MessageVisitor;
        impl<'de> Visitor<'de> for MessageVisitor {
            type Value = Message<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a message object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let (mut role, mut content) = (None, None);
                while let Some(key) = map.next_key_seed(Text)? {
                    match key.as_ref() {
                        "role" => {
                            if role.is_some() {
                                return Err(M::Error::duplicate_field("role"));
                            }
                            role = Some(map.next_value_seed(Text)?);
                        }
                        "content" => {
                            if content.is_some() {
                                return Err(M::Error::duplicate_field("content"));
                            }
                            let after_key = match &key {
                                Cow::Borrowed(k) => Some(k.as_ptr() as usize + k.len()),
                                Cow::Owned(_) => None,
                            };
                            content = Some(map.next_value_seed(ContentSeed(after_key))?);
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Message {
                    role: role.ok_or_else(|| M::Error::missing_field("role"))?,
                    content: content.flatten(),
                })
            }
        }
        d.deserialize_map(MessageVisitor)
    }
}

/// The string literal (quotes included) of a value that follows the key
/// whose text ends at byte `key_end` of `body`: `"content" : "..."`.
fn literal_after_key(body: &str, key_end: usize) -> Option<std::ops::Range<usize>> {
    let b = body.as_bytes();
    let mut at = key_end;
    if b.get(at) != Some(&b'"') {
        return None;
    }
    at += 1;
    while b.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    if b.get(at) != Some(&b':') {
        return None;
    }
    at += 1;
    while b.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let start = at;
    at += 1;
    loop {
        at += memchr::memchr(b'"', b.get(at..)?)?;
        if !is_escaped(b, at) {
            return Some(start..at + 1);
        }
        at += 1;
    }
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    description: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
}

#[derive(Deserialize)]
struct Source<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// Where a parse stands: what serde reads (`'s`), the body the texts are
/// lent from (`'a`), what is wanted and what was found.
struct Ctx<'a, 's, 'p> {
    skeleton: &'s Skeleton<'a>,
    kinds: KindSet,
    out: &'p mut ParsedRequest<'a>,
}

impl<'a> Ctx<'a, '_, '_> {
    fn push(
        &mut self,
        location: Location,
        role: Role,
        kind: PartKind,
        raw: &RawValue,
    ) -> Result<(), BodyError> {
        if !self.kinds.contains(kind) {
            return Ok(());
        }
        let segment = TextSegment::new(self.skeleton, raw, location, role, kind)?;
        self.out.push(self.kinds, segment);
        Ok(())
    }

    /// A string literal at `raw` (quotes included) of the body.
    fn push_at(
        &mut self,
        location: Location,
        role: Role,
        kind: PartKind,
        raw: std::ops::Range<usize>,
    ) -> Result<(), BodyError> {
        let segment = TextSegment::at(self.skeleton.body(), raw, location, role, kind)?;
        self.out.push(self.kinds, segment);
        Ok(())
    }
}

/// Parses a request body through its skeleton (serde walks the body
/// without the contents of its long strings); texts are lent from the body.
///
/// The tools' `input_schema` objects (most of a Claude Code request's 64 KB
/// of tool definitions) are read by no guard: the skeleton leaves their
/// contents out too, in the same pass ([`Skeleton::without`]), and is kept
/// only if every object so cut lies inside a tool definition — one found
/// anywhere else (a `tool_use` input with such a key) sends the parse back
/// to the skeleton of the long strings alone. When nothing reads the tool
/// definitions at all (no guard's scope has `ToolDefinitions`, no tool is
/// denied), the whole top-level `tools` list is left out the same way.
pub(crate) fn parse_body(body: &str, kinds: KindSet) -> Result<ParsedRequest<'_>, BodyError> {
    let tools_read_by_none = !kinds.contains(PartKind::ToolDefinition) && !kinds.offered_tools();
    let unread = Unread {
        objects_of: "input_schema",
        top_level: tools_read_by_none.then_some("tools"),
    };
    let (skeleton, opens) = Skeleton::without(body, unread);
    if opens.is_empty() {
        return parse_skeleton(&skeleton, kinds);
    }
    if let Ok(raw) = serde_json::from_str::<Body<'_, &RawValue>>(skeleton.text()) {
        if inside_tools(&skeleton, raw.tools.as_deref().unwrap_or_default(), &opens) {
            let mut out = ParsedRequest::default();
            let parsed = tools_read(&skeleton, raw, kinds, &mut out)?;
            return read(&skeleton, parsed, kinds, out);
        }
    }
    parse_skeleton(&Skeleton::of(body), kinds)
}

/// [`parse_body`] with nothing cut beyond `skeleton`'s long strings:
/// where a cut parse goes back to, and what the tests hold it to.
pub(crate) fn parse_skeleton<'a>(
    skeleton: &Skeleton<'a>,
    kinds: KindSet,
) -> Result<ParsedRequest<'a>, BodyError> {
    let mut out = ParsedRequest::default();
    let parsed: Body<'_, Tool<'_>> = if kinds.offered_tools() {
        let raw: Body<'_, &RawValue> = skeleton.parse()?;
        tools_read(skeleton, raw, kinds, &mut out)?
    } else {
        skeleton.parse()?
    };
    read(skeleton, parsed, kinds, out)
}

/// Whether each of `opens` (skeleton offsets, ascending) lies inside one of
/// `tools` (raw values lent from the skeleton, in order).
fn inside_tools(skeleton: &Skeleton<'_>, tools: &[&RawValue], opens: &[usize]) -> bool {
    let mut tools = tools.iter().map(|t| {
        let start = skeleton.offset_of(t.get());
        start..start + t.get().len()
    });
    let mut current = tools.next();
    opens.iter().all(|&at| loop {
        match &current {
            Some(r) if r.end <= at => current = tools.next(),
            Some(r) => break r.start < at,
            None => break false,
        }
    })
}

/// The body with its tool definitions read from their raw values (and,
/// when asked for, listed with their places in `out.offered_tools`).
fn tools_read<'s>(
    skeleton: &Skeleton<'s>,
    raw: Body<'s, &'s RawValue>,
    kinds: KindSet,
    out: &mut ParsedRequest<'_>,
) -> Result<Body<'s, Tool<'s>>, BodyError> {
    let raws = raw.tools.as_deref().unwrap_or_default();
    let tools = if kinds.offered_tools() {
        offered_tools(skeleton, raws, &mut out.offered_tools, |t: &Tool<'_>| {
            t.name.as_deref()
        })?
    } else {
        raws.iter()
            .enumerate()
            .map(|(i, t)| {
                serde_json::from_str(t.get()).map_err(|e| BodyError(format!("tools[{i}]: {e}")))
            })
            .collect::<Result<Vec<Tool<'s>>, _>>()?
    };
    Ok(Body {
        model: raw.model,
        stream: raw.stream,
        system: raw.system,
        messages: raw.messages,
        tools: raw.tools.is_some().then_some(tools),
    })
}

/// What the parsed body holds, read into `out`.
fn read<'a>(
    skeleton: &Skeleton<'a>,
    parsed: Body<'_, Tool<'_>>,
    kinds: KindSet,
    mut out: ParsedRequest<'a>,
) -> Result<ParsedRequest<'a>, BodyError> {
    read_model(skeleton, parsed.model, &mut out)?;
    out.stream = read_stream(parsed.stream);
    let mut cx = Ctx {
        skeleton,
        kinds,
        out: &mut out,
    };
    if let Some(system) = parsed.system {
        match first_byte(system) {
            b'"' => cx.push(
                Location::System { block: None },
                Role::System,
                PartKind::System,
                system,
            )?,
            b'[' => {
                let blocks: Vec<Block<'_>> = serde_json::from_str(system.get())
                    .map_err(|e| BodyError(format!("system: expected a list of blocks: {e}")))?;
                for (i, block) in blocks.iter().enumerate() {
                    if let (Some("text"), Some(text)) = (block.kind.as_deref(), block.text) {
                        cx.push(
                            Location::System {
                                block: Some(i as u32),
                            },
                            Role::System,
                            PartKind::System,
                            text,
                        )?;
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
        let index = index as u32;
        let role = match message.role.as_ref() {
            "user" => Role::User,
            "system" => Role::System,
            "assistant" => Role::Assistant,
            other => {
                return Err(BodyError(format!(
                    "messages[{index}].role: unknown role `{other}`"
                )))
            }
        };
        if role == Role::User {
            cx.out.latest_user_message = Some(index);
        }
        let Some(content) = &message.content else {
            continue;
        };
        let loc = Location::Message {
            index,
            block: None,
            sub: None,
        };
        match content {
            Content::Blocks(blocks) => push_blocks(&mut cx, blocks, role, index)?,
            Content::Lent(s) => {
                if cx.kinds.contains(text_kind(role)) {
                    let raw = TextSegment::lent_span(skeleton, s);
                    cx.push_at(loc, role, text_kind(role), raw)?;
                }
            }
            Content::AfterKey(key_end) => {
                if cx.kinds.contains(text_kind(role)) {
                    let text = skeleton.text();
                    let raw = key_end
                        .checked_sub(text.as_ptr() as usize)
                        .and_then(|k| literal_after_key(text, k))
                        .map(|r| skeleton.range(r))
                        .ok_or_else(|| {
                            BodyError(format!("messages[{index}].content: expected a string"))
                        })?;
                    cx.push_at(loc, role, text_kind(role), raw)?;
                }
            }
        }
    }
    if cx.kinds.contains(PartKind::ToolDefinition) {
        for (index, tool) in parsed.tools.iter().flatten().enumerate() {
            if let Some(d) = tool.description.filter(|d| first_byte(d) == b'"') {
                cx.push(
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

fn text_kind(role: Role) -> PartKind {
    match role {
        Role::System => PartKind::System,
        Role::Assistant => PartKind::AssistantText,
        Role::User | Role::Tool => PartKind::UserText,
    }
}

fn push_blocks<'s>(
    cx: &mut Ctx<'_, 's, '_>,
    blocks: &[Block<'s>],
    role: Role,
    index: u32,
) -> Result<(), BodyError> {
    for (b, block) in blocks.iter().enumerate() {
        let b = b as u32;
        match block.kind.as_deref() {
            Some("text") => {
                if let Some(text) = block.text {
                    let loc = Location::Message {
                        index,
                        block: Some(b),
                        sub: None,
                    };
                    cx.push(loc, role, text_kind(role), text)?;
                }
            }
            Some("tool_result") => {
                if let Some(result) = block.content {
                    push_nested(cx, result, index, b, Role::Tool, PartKind::ToolResult)?;
                }
            }
            Some("tool_use") | Some("server_tool_use") => {
                if let (true, Some(input)) = (cx.kinds.contains(PartKind::ToolInput), block.input) {
                    let mut leaves = Vec::new();
                    string_leaves(input, &mut leaves, 0)?;
                    for leaf in leaves {
                        let loc = Location::ToolUseInput { index, block: b };
                        cx.push(loc, Role::Assistant, PartKind::ToolInput, leaf)?;
                    }
                }
            }
            Some("document") => {
                let Some(source) = &block.source else {
                    continue;
                };
                match (source.kind.as_deref(), source.data, source.content) {
                    (Some("text"), Some(data), _) => {
                        let loc = Location::DocumentSource { index, block: b };
                        cx.push(loc, role, PartKind::Document, data)?;
                    }
                    (Some("content"), _, Some(inner)) => {
                        push_nested(cx, inner, index, b, role, PartKind::Document)?;
                    }
                    // base64 and URL sources are not text.
                    _ => {}
                }
            }
            Some("search_result") => {
                if let Some(inner) = block.content {
                    push_nested(cx, inner, index, b, role, PartKind::Document)?;
                }
            }
            // thinking, redacted_thinking (signed), image, and others.
            _ => {}
        }
    }
    Ok(())
}

/// Content nested in a block (tool_result content, document content):
/// a string or a list of text blocks.
fn push_nested<'s>(
    cx: &mut Ctx<'_, 's, '_>,
    nested: &'s RawValue,
    index: u32,
    block: u32,
    role: Role,
    kind: PartKind,
) -> Result<(), BodyError> {
    let place = || format!("messages[{index}].content[{block}].content");
    match first_byte(nested) {
        b'"' => cx.push(
            Location::Message {
                index,
                block: Some(block),
                sub: None,
            },
            role,
            kind,
            nested,
        )?,
        b'[' => {
            let inner: Vec<Block<'s>> = serde_json::from_str(nested.get())
                .map_err(|e| BodyError(format!("{}: expected a list of blocks: {e}", place())))?;
            for (s, sub) in inner.iter().enumerate() {
                if let (Some("text"), Some(text)) = (sub.kind.as_deref(), sub.text) {
                    let loc = Location::Message {
                        index,
                        block: Some(block),
                        sub: Some(s as u32),
                    };
                    cx.push(loc, role, kind, text)?;
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
mod tests;
