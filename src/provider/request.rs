//! What a request says, dialect-neutrally: who wrote each text ([`Role`]),
//! what kind of part it is ([`PartKind`], [`KindSet`]), where it sits
//! ([`Location`]), the texts themselves ([`TextSegment`], literals lent
//! from the body), and the parse entry ([`parse_request`]). Which text of a
//! body is read is the dialect's (`anthropic::request`, `openai::request`).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde_json::value::RawValue;

use super::json::{first_byte, literal, skeleton};
use super::Dialect;

/// Who wrote a piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// What kind of part a text came from. Guard scopes select by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartKind {
    /// The system prompt: top-level `system`, and `system`/`developer`
    /// role messages.
    System,
    /// Text a user wrote (string content or text blocks of user messages).
    UserText,
    /// Assistant history.
    AssistantText,
    /// A tool's output sent back to the model (`tool_result`, OpenAI `tool` role).
    ToolResult,
    /// String values of a tool call's input (`tool_use.input`, OpenAI
    /// `tool_calls[].function.arguments`).
    ToolInput,
    /// Document and search-result text.
    Document,
    /// Tool definitions' descriptions.
    ToolDefinition,
}

impl PartKind {
    pub const ALL: [PartKind; 7] = [
        PartKind::System,
        PartKind::UserText,
        PartKind::AssistantText,
        PartKind::ToolResult,
        PartKind::ToolInput,
        PartKind::Document,
        PartKind::ToolDefinition,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of part kinds: what a request's guards need extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct KindSet(u8);

impl KindSet {
    pub const EMPTY: KindSet = KindSet(0);
    pub const ALL: KindSet = KindSet(0x7f);

    pub fn of(kinds: &[PartKind]) -> KindSet {
        KindSet(kinds.iter().fold(0, |m, k| m | k.bit()))
    }
    pub fn contains(self, k: PartKind) -> bool {
        self.0 & k.bit() != 0
    }
    pub fn union(self, other: KindSet) -> KindSet {
        KindSet(self.0 | other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 & 0x7f == 0
    }
    /// Also list the tools the request offers ([`ParsedRequest::offered_tools`]).
    pub fn with_offered_tools(self) -> KindSet {
        KindSet(self.0 | 0x80)
    }
    /// Whether the offered tools are listed.
    pub fn offered_tools(self) -> bool {
        self.0 & 0x80 != 0
    }
}

/// Where a text sits in the request body, e.g. `messages[3].content[1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Top-level `system` (Anthropic), optionally a block of it.
    System { block: Option<u32> },
    /// `messages[index].content`, optionally a block, optionally a block
    /// nested in it (tool_result content).
    Message {
        index: u32,
        block: Option<u32>,
        sub: Option<u32>,
    },
    /// `messages[index].content[block].input` (Anthropic tool_use).
    ToolUseInput { index: u32, block: u32 },
    /// `messages[index].tool_calls[call].function.arguments` (OpenAI).
    ToolCallArguments { index: u32, call: u32 },
    /// `messages[index].content[block].source.data` (Anthropic text document).
    DocumentSource { index: u32, block: u32 },
    /// `tools[index].description` (OpenAI: `tools[index].function.description`).
    Tool { index: u32 },
}

impl Location {
    /// Index of the message the text belongs to, if any.
    pub fn message(&self) -> Option<u32> {
        match *self {
            Location::System { .. } | Location::Tool { .. } => None,
            Location::Message { index, .. }
            | Location::ToolUseInput { index, .. }
            | Location::ToolCallArguments { index, .. }
            | Location::DocumentSource { index, .. } => Some(index),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Location::System { block: None } => write!(f, "system"),
            Location::System { block: Some(b) } => write!(f, "system[{b}]"),
            Location::Message { index, block, sub } => {
                write!(f, "messages[{index}].content")?;
                if let Some(b) = block {
                    write!(f, "[{b}]")?;
                }
                if let Some(s) = sub {
                    write!(f, ".content[{s}]")?;
                }
                Ok(())
            }
            Location::ToolUseInput { index, block } => {
                write!(f, "messages[{index}].content[{block}].input")
            }
            Location::ToolCallArguments { index, call } => {
                write!(f, "messages[{index}].tool_calls[{call}].function.arguments")
            }
            Location::DocumentSource { index, block } => {
                write!(f, "messages[{index}].content[{block}].source.data")
            }
            Location::Tool { index } => write!(f, "tools[{index}].description"),
        }
    }
}

/// One piece of text extracted from a request body.
#[derive(Debug, Clone)]
pub struct TextSegment<'a> {
    pub location: Location,
    pub role: Role,
    pub kind: PartKind,
    /// The literal's content as it is in the body: the bytes between its
    /// quotes, escapes intact. Guards read it in place.
    pub literal: &'a str,
    /// Byte range of the JSON string literal (quotes included) in the body.
    pub raw: Range<usize>,
}

impl<'a> TextSegment<'a> {
    /// A segment for the string literal `raw` of a skeleton's body,
    /// checked to decode.
    pub(crate) fn new(
        skeleton: &skeleton::Skeleton<'a>,
        raw: &RawValue,
        location: Location,
        role: Role,
        kind: PartKind,
    ) -> Result<TextSegment<'a>, BodyError> {
        let span = skeleton.span(raw);
        // A literal cut from the skeleton had its escapes checked by the
        // scan that cut it.
        let cut = span.len() > raw.get().len();
        TextSegment::checked(skeleton.body(), span, location, role, kind, !cut)
    }

    /// A segment for the string literal at `raw` (quotes included) of
    /// `body`, checked to decode.
    pub(crate) fn at(
        body: &'a str,
        raw: Range<usize>,
        location: Location,
        role: Role,
        kind: PartKind,
    ) -> Result<TextSegment<'a>, BodyError> {
        TextSegment::checked(body, raw, location, role, kind, true)
    }

    fn checked(
        body: &'a str,
        raw: Range<usize>,
        location: Location,
        role: Role,
        kind: PartKind,
        validate: bool,
    ) -> Result<TextSegment<'a>, BodyError> {
        let quoted = body
            .get(raw.clone())
            .filter(|q| q.len() >= 2 && q.starts_with('"') && q.ends_with('"'))
            .ok_or_else(|| BodyError(format!("{location}: expected a string")))?;
        let literal = &quoted[1..quoted.len() - 1];
        if validate && !literal::validate(literal) {
            return Err(BodyError(format!(
                "{location}: the string holds an invalid \\u escape"
            )));
        }
        Ok(TextSegment {
            location,
            role,
            kind,
            literal,
            raw,
        })
    }

    /// The body range of the literal (quotes included) of a string serde
    /// lent unescaped from a skeleton.
    pub(crate) fn lent_span(skeleton: &skeleton::Skeleton<'_>, lent: &str) -> Range<usize> {
        let start = skeleton.offset_of(lent);
        skeleton.range(start - 1..start + lent.len() + 1)
    }

    /// The decoded text (borrowed when the literal has no escapes).
    pub fn text(&self) -> Cow<'a, str> {
        literal::decode(self.literal)
    }

    /// Byte offset of the literal's content in the body.
    pub fn content_start(&self) -> usize {
        self.raw.start + 1
    }
}

/// What a request body yielded.
#[derive(Debug, Default)]
pub struct ParsedRequest<'a> {
    /// Byte range of the `model` value in the body, if present.
    pub model_raw: Option<Range<usize>>,
    /// The decoded model name, if it is a string.
    pub model: Option<Cow<'a, str>>,
    /// Whether it asks for a streamed (SSE) answer: its top-level `stream`
    /// member (absent or `null`: no); `None` when `stream` is not a boolean.
    pub stream: Option<bool>,
    /// The texts guards read, in body order.
    pub segments: Vec<TextSegment<'a>>,
    /// Index of the last message written on the user's side (user role),
    /// for the `LatestUserTurn` scope.
    pub latest_user_message: Option<u32>,
    /// The `tools` the request offers the model, in order (listed when
    /// asked: [`KindSet::with_offered_tools`]).
    pub offered_tools: Vec<OfferedTool>,
}

/// A tool definition of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedTool {
    /// Its name (Anthropic `name`, OpenAI `function.name`).
    pub name: Option<String>,
    /// Byte range of its definition (the array element) in the body.
    pub raw: Range<usize>,
}

/// Reads a body's tool definitions (its raw `tools` elements) as `T` and
/// lists each as offered, named by `name_of`: the dialects' shared step
/// when denied tools are to be removed.
pub(crate) fn offered_tools<'a, T: serde::Deserialize<'a>>(
    skeleton: &skeleton::Skeleton<'a>,
    raws: &[&'a RawValue],
    out: &mut Vec<OfferedTool>,
    name_of: impl Fn(&T) -> Option<&str>,
) -> Result<Vec<T>, BodyError> {
    let mut tools = Vec::with_capacity(raws.len());
    for (i, raw) in raws.iter().enumerate() {
        let tool: T =
            serde_json::from_str(raw.get()).map_err(|e| BodyError(format!("tools[{i}]: {e}")))?;
        out.push(OfferedTool {
            name: name_of(&tool).map(str::to_owned),
            raw: skeleton.span(raw),
        });
        tools.push(tool);
    }
    Ok(tools)
}

/// The edits that remove the tool definitions at `removed` (indices into
/// `tools`, the whole list of a body's `tools` array): each run of removed
/// elements goes with the comma that separates it from a kept one, so the
/// array stays valid JSON and every other byte stays.
pub fn remove_tools(tools: &[OfferedTool], removed: &[bool]) -> Vec<Range<usize>> {
    let mut edits = Vec::new();
    let mut i = 0;
    while i < tools.len() {
        if !removed[i] {
            i += 1;
            continue;
        }
        let mut j = i;
        while j + 1 < tools.len() && removed[j + 1] {
            j += 1;
        }
        let range = if j + 1 < tools.len() {
            tools[i].raw.start..tools[j + 1].raw.start
        } else if i > 0 {
            tools[i - 1].raw.end..tools[j].raw.end
        } else {
            tools[i].raw.start..tools[j].raw.end
        };
        edits.push(range);
        i = j + 1;
    }
    edits
}

impl<'a> ParsedRequest<'a> {
    pub(crate) fn push(&mut self, kinds: KindSet, segment: TextSegment<'a>) {
        if kinds.contains(segment.kind) {
            self.segments.push(segment);
        }
    }
}

/// A request body that cannot be read as the route's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(pub String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Records the `model` value's place in the body and, when it is a
/// string, its name (read from the body: a skeleton may have cut it).
pub(crate) fn read_model<'a>(
    skeleton: &skeleton::Skeleton<'a>,
    raw: Option<&RawValue>,
    out: &mut ParsedRequest<'a>,
) -> Result<(), BodyError> {
    let Some(raw) = raw else {
        return Ok(());
    };
    let span = skeleton.span(raw);
    out.model_raw = Some(span.clone());
    if first_byte(raw) == b'"' {
        let name = skeleton
            .body()
            .get(span)
            .and_then(|lit| serde_json::from_str::<Cow<'a, str>>(lit).ok())
            .ok_or_else(|| BodyError("model: expected a string".into()))?;
        out.model = Some(name);
    }
    Ok(())
}

/// A body's top-level `stream` member read as [`ParsedRequest::stream`].
pub(crate) fn read_stream(raw: Option<&RawValue>) -> Option<bool> {
    match raw.map(|r| r.get().trim()) {
        None | Some("null") | Some("false") => Some(false),
        Some("true") => Some(true),
        Some(_) => None,
    }
}

/// Parses a request body of the given schema, extracting the text of the
/// kinds asked for (see [`Dialect::parse_request`]).
pub fn parse_request(
    dialect: Dialect,
    body: &str,
    kinds: KindSet,
) -> Result<ParsedRequest<'_>, BodyError> {
    dialect.parse_request(body, kinds)
}

/// String leaves of a JSON value (tool inputs), each with its raw literal.
pub(crate) fn string_leaves<'a>(
    raw: &'a RawValue,
    out: &mut Vec<&'a RawValue>,
    depth: usize,
) -> Result<(), BodyError> {
    if depth > 64 {
        return Err(BodyError("a tool input nests deeper than 64 levels".into()));
    }
    match first_byte(raw) {
        b'"' => out.push(raw),
        b'{' => {
            let map: Vec<(Cow<'a, str>, &'a RawValue)> =
                serde_json::from_str::<MapEntries<'a>>(raw.get())
                    .map_err(|e| BodyError(format!("invalid tool input: {e}")))?
                    .0;
            for (_, v) in map {
                string_leaves(v, out, depth + 1)?;
            }
        }
        b'[' => {
            let items: Vec<&'a RawValue> = serde_json::from_str(raw.get())
                .map_err(|e| BodyError(format!("invalid tool input: {e}")))?;
            for v in items {
                string_leaves(v, out, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// An object's entries in order, values left raw.
struct MapEntries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for MapEntries<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = MapEntries<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Self::Value, M::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(MapEntries(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skeleton::Skeleton;

    /// Parsing a skeleton and parsing the whole body find the same texts at
    /// the same places (or the same error).
    fn same_as_whole(dialect: Dialect, body: &str) {
        let cut = Skeleton::of(body);
        let whole = Skeleton::whole(body);
        // Every kind, and one (what is not extracted must not change
        // whether the body is accepted).
        for kinds in [KindSet::ALL, KindSet::of(&[PartKind::ToolResult])] {
            let parse = |s: &Skeleton<'_>| format!("{:?}", dialect.parse_skeleton(s, kinds));
            assert_eq!(parse(&cut), parse(&whole), "{body}");
            // The entry (for Anthropic, tool schemas cut in the same pass,
            // and the whole tool list when nothing reads definitions): what
            // the whole parse reads. A body refused only for what lies in
            // a tool list nothing reads is let pass (its JSON there is not
            // validated; the provider refuses it): with that list emptied
            // (found by a walk of its own), the whole parse accepts it.
            let entry = format!("{:?}", dialect.parse_request(body, kinds));
            let reference = parse(&whole);
            if entry != reference && entry.starts_with("Ok") && reference.starts_with("Err") {
                assert!(dialect == Dialect::Anthropic && !kinds.contains(PartKind::ToolDefinition));
                let emptied = empty_top_level_tools(body).expect("a top-level tool list");
                assert!(
                    dialect
                        .parse_skeleton(&Skeleton::whole(&emptied), kinds)
                        .is_ok(),
                    "{body}"
                );
            } else {
                assert_eq!(entry, reference, "{body}");
            }
        }
    }

    /// `body` with the value of its top-level `tools` member emptied, by a
    /// byte walk (depth and strings) independent of the skeleton's pass.
    fn empty_top_level_tools(body: &str) -> Option<String> {
        let b = body.as_bytes();
        let (mut depth, mut i) = (0usize, 0usize);
        while i < b.len() {
            match b[i] {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.checked_sub(1)?,
                b'"' => {
                    let start = i + 1;
                    let mut j = start;
                    while *b.get(j)? != b'"' {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    let before = b[..i].iter().rposition(|c| !c.is_ascii_whitespace());
                    if depth == 1
                        && &b[start..j] == b"tools"
                        && before.is_some_and(|k| matches!(b[k], b'{' | b','))
                    {
                        let mut k = j + 1;
                        let skip_ws = |k: &mut usize| {
                            while b.get(*k).is_some_and(u8::is_ascii_whitespace) {
                                *k += 1;
                            }
                        };
                        skip_ws(&mut k);
                        if b.get(k) == Some(&b':') {
                            k += 1;
                            skip_ws(&mut k);
                            if matches!(b.get(k), Some(b'[' | b'{')) {
                                let close = super::super::json::skip::matching_close_scalar(b, k)?;
                                return Some(format!("{}{}", &body[..=k], &body[close..]));
                            }
                        }
                    }
                    i = j;
                }
                _ => {}
            }
            i += 1;
        }
        None
    }

    #[test]
    fn a_skeleton_parses_as_the_whole_body() {
        let long = r#"let x = \"a\\\\b\";\n\tprintln!(\"{x} é \u00e9\");\n"#.repeat(40);
        let first_turn = include_str!("../../tests/fixtures/claude_code_first_turn.json");
        let anthropic = [
            first_turn.to_owned(),
            format!(
                r#"{{"model":"claude-x","system":"{long}","messages":[
                {{"role":"user","content":"{long}"}},
                {{"role":"assistant","content":[{{"type":"text","text":"{long}"}},
                    {{"type":"tool_use","id":"t","name":"Bash","input":{{"command":"{long}","n":[1,"{long}"]}}}}]}},
                {{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t","content":"{long}"}},
                    {{"type":"tool_result","tool_use_id":"u","content":[{{"type":"text","text":"{long}"}}]}},
                    {{"type":"document","source":{{"type":"text","media_type":"text/plain","data":"{long}"}}}},
                    {{"type":"thinking","thinking":"{long}","signature":"{long}"}}]}}],
                "tools":[{{"name":"Bash","description":"{long}","input_schema":{{}}}}],"stream":true}}"#
            ),
            // A model name too long to keep: read from the body.
            format!(r#"{{"model":"{long}","messages":[{{"role":"user","content":"hi"}}]}}"#),
            // Invalid: the same error either way.
            format!(r#"{{"messages":[{{"role":"user","content":"{long}"}}],}}"#),
            format!(r#"{{"messages":[{{"role":"user","content":"{long}\q"}}]}}"#),
        ];
        for (i, body) in anthropic.iter().enumerate() {
            // The first three are valid, the rest not.
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(body).is_ok(),
                i < 3,
                "{body}"
            );
            same_as_whole(Dialect::Anthropic, body);
        }
        let openai = format!(
            r#"{{"model":"gpt-x","messages":[{{"role":"system","content":"{long}"}},
            {{"role":"user","content":[{{"type":"text","text":"{long}"}}]}},
            {{"role":"assistant","content":null,"tool_calls":[{{"id":"c","type":"function",
                "function":{{"name":"f","arguments":"{long}"}}}}]}},
            {{"role":"tool","tool_call_id":"c","content":"{long}"}}]}}"#
        );
        assert!(serde_json::from_str::<serde_json::Value>(&openai).is_ok());
        same_as_whole(Dialect::OpenAiChat, &openai);
        // The long strings were cut.
        assert!(Skeleton::of(&anthropic[1]).text().len() < anthropic[1].len() / 4);
        // Bodies with quotes, backslashes, escapes, brackets and control
        // bytes spliced in anywhere, valid or not: the same either way.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        };
        let pieces = [
            "\"",
            "\\",
            "\\\"",
            "\\u00e9",
            "\\ud800",
            "\\q",
            "\\n",
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\u{1}",
            "é",
            " ",
            "\\\\",
            "\\ud83d\\ude00",
            "\\udc00",
            "\\ud83d",
        ];
        for _ in 0..600 {
            let mut body = anthropic[1].clone();
            for _ in 0..rnd() % 4 + 1 {
                let mut at = rnd() % body.len();
                while !body.is_char_boundary(at) {
                    at -= 1;
                }
                body.insert_str(at, pieces[rnd() % pieces.len()]);
            }
            same_as_whole(Dialect::Anthropic, &body);
            same_as_whole(Dialect::OpenAiChat, &body);
        }
    }

    #[test]
    fn the_stream_flag_is_the_top_level_member_only() {
        let pad = "x".repeat(2 << 20);
        let first = format!(r#"{{"stream":false,"pad":"{pad}","messages":[]}}"#);
        let last = format!(r#"{{"pad":"{pad}","messages":[],"stream":true}}"#);
        for dialect in [Dialect::Anthropic, Dialect::OpenAiChat] {
            for (b, want) in [
                (r#"{"a":1,"stream":true}"#, Some(true)),
                (r#"{"stream":false}"#, Some(false)),
                ("{\"a\":1,\n  \"stream\" :\ttrue\n}\n", Some(true)),
                (r#"{"a":{"stream":true}}"#, Some(false)),
                (r#"{"a":"x\",\"stream\":true}"}"#, Some(false)),
                (r#"{"a":["\"stream\":true"]}"#, Some(false)),
                (r#"{"stream":true,"a":1}"#, Some(true)),
                (r#"{"a":1}"#, Some(false)),
                (r#"{"stream":null}"#, Some(false)),
                (r#"{"stream":"true"}"#, None),
                (r#"{"stream":1}"#, None),
                (r#"{"\u0073tream":true}"#, Some(true)),
                (&first, Some(false)),
                (&last, Some(true)),
            ] {
                let parsed = dialect.parse_request(b, KindSet::ALL).expect(b);
                assert_eq!(parsed.stream, want, "{dialect:?} {b:.80}");
            }
        }
    }

    #[test]
    fn locations_read_like_json_paths() {
        assert_eq!(Location::System { block: Some(2) }.to_string(), "system[2]");
        assert_eq!(
            Location::Message {
                index: 3,
                block: Some(1),
                sub: None
            }
            .to_string(),
            "messages[3].content[1]"
        );
        assert_eq!(
            Location::Message {
                index: 4,
                block: Some(0),
                sub: Some(2)
            }
            .to_string(),
            "messages[4].content[0].content[2]"
        );
        assert_eq!(
            Location::Message {
                index: 0,
                block: None,
                sub: None
            }
            .to_string(),
            "messages[0].content"
        );
    }
}
