//! Streamed responses: guards the text an LLM sends back, chunk by chunk.
//!
//! Pure: no I/O, no async. [`StreamGuard::push`] takes the body chunks
//! Envoy's ext_proc STREAMED response mode delivers (any boundaries: an SSE
//! event, a JSON string or a UTF-8 character may be split) and returns, for
//! each, the bytes to send to the client in its place. [`guard_json_body`]
//! does the same for a whole non-streamed response.
//!
//! # What is scanned
//! * Anthropic: `content_block_delta` events whose `delta.type` is
//!   `text_delta` (`delta.text`), and the (normally empty) `text` of a
//!   `content_block_start` of a `text` block. Never `input_json_delta`,
//!   `thinking_delta`, `signature_delta` or anything else.
//! * OpenAI Chat Completions: `choices[i].delta.content`. Not `refusal`,
//!   not `tool_calls`.
//!
//! The text of one content block (by `index`) or one choice (by `index`) is
//! one logical string: a match split across events and chunks is found.
//!
//! # Window
//! [`TextScanner::window`] is the longest match the scanner can produce, W
//! bytes. Of each open block, the last W bytes of text not yet released are
//! held back (plus at most 3 bytes so that the cut falls on a character
//! boundary); everything before is released at once. Each new piece of text
//! is scanned together with the held text. A match is acted on once the
//! text reaches more than W bytes past its start (then no longer match, and
//! no match starting earlier, can appear), or when its block ends
//! (`content_block_stop`, `finish_reason`, `message_delta`, `message_stop`,
//! `[DONE]`, an upstream error event, end of stream), which flushes the held
//! text, scanned. So for a scanner whose matches are at most W bytes long and
//! depend only on the text they cover and the byte after it, the text the
//! client sees is exactly the single-shot masking of the block's whole text.
//! Assertions that look before a match (`\b` at its start) only see the text
//! from the last release point on. With W = 0 nothing is held: a match split
//! across two deltas is not seen; a match longer than W may be missed where
//! it straddles a release point. The window is read once, when the guard is
//! made; the held text per block, hence memory and the delay of the last
//! bytes of text, grows with it.
//!
//! # Byte identity
//! * An event that carries no scannable text is forwarded as its exact input
//!   bytes (comments, `id:`/`retry:` lines, line endings included), in input
//!   order.
//! * A text event whose released text equals its own text is forwarded as
//!   its exact input bytes. Hence with `window() == 0` and no match, the
//!   concatenated output equals the concatenated input, byte for byte.
//! * Otherwise the text event is re-encoded: its `event:` line (if it had
//!   one), its data JSON with only the text string value replaced (and, for
//!   OpenAI, a non-null `logprobs` of that choice set to `null`: it would
//!   repeat the withheld tokens) on `data:` lines, `\n` line endings, and a
//!   blank line; comments, `id:` and `retry:` lines of that event are not
//!   carried over. A text event whose released part is empty is dropped (an
//!   OpenAI chunk only if it carries nothing but content). Held text is
//!   flushed as an extra delta event (Anthropic: a canonical
//!   `content_block_delta`; OpenAI: a chunk with the top-level fields of the
//!   last chunk seen) right before the event that ends its block; for
//!   OpenAI also right before a chunk carrying `tool_calls` (or another
//!   non-content delta) for the same choice, which starts a new logical
//!   string there. Events that end no block (`ping`, deltas of other
//!   blocks) pass at once, possibly ahead of an open block's held text:
//!   clients assemble text per block, so nothing reorders within a block.
//! * Output is emitted in whole events: a chunk that ends mid-event returns
//!   the bytes of the complete events only; the rest follows with the chunk
//!   that completes it. (An event whose closing blank line ends with a `\r`
//!   as the chunk's last byte waits for the next byte, which may be the
//!   `\n` of that `\r\n`.) So even when the concatenated output equals the
//!   input, the per-chunk boundaries differ.
//! * An event not terminated by a blank line at end of stream is processed
//!   as if it were; if forwarded as it is, it is emitted last, still
//!   unterminated.
//!
//! # Errors
//! Malformed input (invalid JSON in a data line, an event over the size
//! limit, invalid UTF-8, an event type contradicting its `event:` name)
//! gives a [`StreamError`]; the guard is then failed and keeps returning that
//! error. Recommended: end the stream with [`StreamGuard::abort`]'s error
//! event. Passing the rest through unguarded is unsafe: the held text and
//! the partial event bytes were never sent, so the client's stream would
//! have a gap (possibly mid-event) and the remaining text would go
//! unscanned.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;

use super::tool_call::{ToolDecision, ToolHolds, ToolJudge, ToolVerdict};
use super::{span_of, Dialect, Usage};

/// Default size limit of one SSE event, in bytes.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 << 20;
/// Most text blocks (or choices) a stream may hold text for at once.
pub const MAX_OPEN_BLOCKS: usize = 256;

/// Finds what must not reach the client in a piece of text.
pub trait TextScanner {
    /// Longest match it can produce, in bytes: the hold-back window.
    fn window(&self) -> usize;
    /// Scan `text`; return matches (byte ranges into `text`, non-overlapping,
    /// sorted) with what to do.
    fn scan(&self, text: &str) -> Vec<ScanMatch>;
}

/// One match of a [`TextScanner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanMatch {
    pub range: Range<usize>,
    pub action: MatchAction,
}

/// What to do with a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchAction {
    /// Replace the matched text with `placeholder`.
    Mask { placeholder: String },
    /// End the response with an error carrying `message`.
    Reject { rule: String, message: String },
}

/// Where a text sits in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TextLocation {
    /// Anthropic content block `index`.
    Content(u64),
    /// OpenAI choice `index`.
    Choice(u64),
}

impl fmt::Display for TextLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextLocation::Content(i) => write!(f, "content[{i}]"),
            TextLocation::Choice(i) => write!(f, "choices[{i}]"),
        }
    }
}

/// What a match did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    Masked { placeholder: String },
    Rejected { rule: String },
}

/// A match acted on, for telemetry. Never holds the matched text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInfo {
    /// Index (0-based) of the input SSE event whose arrival released the
    /// match; `None` for the end-of-stream flush and for JSON bodies.
    pub event: Option<u64>,
    pub location: TextLocation,
    /// Byte range of the match in the block's whole (unmasked) text.
    pub range: Range<usize>,
    pub fired: Fired,
}

/// A response ended by a rejecting match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub rule: String,
    pub message: String,
    pub location: TextLocation,
    /// Byte range of the match in the block's whole text.
    pub range: Range<usize>,
    /// See [`EventInfo::event`].
    pub event: Option<u64>,
}

/// What to send to the client in place of one input chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub bytes: Vec<u8>,
    /// Set on the chunk that was rejected; `bytes` then end with the
    /// provider's in-stream error event.
    pub rejected: Option<Rejection>,
    pub events: Vec<EventInfo>,
    /// Tool calls decided in this chunk.
    pub tools: Vec<ToolDecision>,
}

/// Malformed SSE framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an SSE event is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("an SSE `{field}` line is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
}

/// Why a response could not be guarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("SSE event {event}: {source}")]
    Sse { event: u64, source: SseError },
    #[error("SSE event {event}: {message}")]
    BadEvent { event: u64, message: String },
    #[error("response body: {0}")]
    BadBody(String),
    #[error("more than {limit} text blocks are open at once")]
    TooManyBlocks { limit: usize },
    #[error("the scanner returned an invalid match: {0}")]
    Scanner(String),
    #[error("data after the end of the stream")]
    AfterEnd,
}

// ---------------------------------------------------------------------------
// SSE parsing

/// One SSE event: every line up to and including the blank line that ends
/// it (or, at end of stream, the unterminated rest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The last `event:` field.
    pub event: Option<String>,
    /// The `data:` fields joined with `\n`; `None` without any.
    pub data: Option<String>,
    /// The last `id:` field (without NUL).
    pub id: Option<String>,
    /// The exact input bytes: comment and field lines, line endings, the
    /// blank line. The concatenated `raw` of all events is the input.
    pub raw: Vec<u8>,
    /// False for the unterminated rest at end of stream.
    pub terminated: bool,
}

/// Incremental SSE parser with a bound on event size.
#[derive(Debug)]
pub struct SseParser {
    limit: usize,
    raw: Vec<u8>,
    line_start: usize,
    /// The last byte was a `\r`: a `\n` next is part of its line ending.
    skip_lf: bool,
    /// The event ended with a blank line whose `\r` was the last byte: it is
    /// dispatched once the next byte shows whether a `\n` belongs to it.
    pending: bool,
    first_line: bool,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
    failed: Option<SseError>,
}

impl SseParser {
    /// A parser refusing events over `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SseParser {
            limit,
            raw: Vec::new(),
            line_start: 0,
            skip_lf: false,
            pending: false,
            first_line: true,
            event: None,
            data: None,
            id: None,
            failed: None,
        }
    }

    /// Bytes of the incomplete event held.
    pub fn buffered(&self) -> usize {
        self.raw.len()
    }

    /// Feeds bytes; appends each completed event to `out`. On error, the
    /// events completed before it are in `out`, and every later call fails.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.feed_inner(input, out);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn feed_inner(&mut self, mut input: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.skip_lf {
            if let Some((&first, rest)) = input.split_first() {
                self.skip_lf = false;
                if first == b'\n' {
                    self.push_raw(b"\n")?;
                    self.line_start = self.raw.len();
                    input = rest;
                }
                if self.pending {
                    self.pending = false;
                    out.push(self.take_event(true));
                }
            }
        }
        while !input.is_empty() {
            let Some(i) = input.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.push_raw(input)?;
                break;
            };
            let mut end = i + 1;
            if input[i] == b'\r' {
                match input.get(i + 1) {
                    Some(b'\n') => end += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let content_end = self.raw.len() + i;
            self.push_raw(&input[..end])?;
            self.line(content_end, out)?;
            input = &input[end..];
        }
        Ok(())
    }

    /// Ends the input: returns the unterminated rest as an event, if any.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.skip_lf = false;
        if self.pending {
            self.pending = false;
            return Ok(Some(self.take_event(true)));
        }
        if self.raw.is_empty() {
            return Ok(None);
        }
        if self.line_start < self.raw.len() {
            let end = self.raw.len();
            let mut none = Vec::new();
            self.line(end, &mut none)?;
        }
        Ok(Some(self.take_event(false)))
    }

    fn push_raw(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.raw.len() + bytes.len() > self.limit {
            return Err(SseError::TooLarge { limit: self.limit });
        }
        self.raw.extend_from_slice(bytes);
        Ok(())
    }

    fn take_event(&mut self, terminated: bool) -> SseEvent {
        self.line_start = 0;
        SseEvent {
            event: self.event.take(),
            data: self.data.take(),
            id: self.id.take(),
            raw: std::mem::take(&mut self.raw),
            terminated,
        }
    }

    /// Handles the line `raw[line_start..content_end]`, whose terminator is
    /// already in `raw`.
    fn line(&mut self, content_end: usize, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut line = &self.raw[self.line_start..content_end];
        if self.first_line {
            self.first_line = false;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            if self.skip_lf {
                self.pending = true;
            } else {
                out.push(self.take_event(true));
            }
            return Ok(());
        }
        let next_start = self.raw.len();
        if line[0] != b':' {
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(c) => {
                    let v = &line[c + 1..];
                    (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &b""[..]),
            };
            match name {
                b"event" => self.event = Some(utf8(value, "event")?.to_owned()),
                b"data" => {
                    let v = utf8(value, "data")?;
                    match &mut self.data {
                        Some(d) => {
                            d.push('\n');
                            d.push_str(v);
                        }
                        None => self.data = Some(v.to_owned()),
                    }
                }
                b"id" if !value.contains(&0) => self.id = Some(utf8(value, "id")?.to_owned()),
                _ => {}
            }
        }
        self.line_start = next_start;
        Ok(())
    }
}

fn utf8<'a>(bytes: &'a [u8], field: &'static str) -> Result<&'a str, SseError> {
    std::str::from_utf8(bytes).map_err(|_| SseError::InvalidUtf8 { field })
}

// ---------------------------------------------------------------------------
// Scanning a block's text

/// The result of scanning a block's held text plus new text.
enum Step {
    Release {
        /// Text to send, masks applied.
        text: String,
        /// Bytes of the scanned buffer consumed; the rest stays held.
        cut: usize,
        masks: Vec<(Range<usize>, String)>,
    },
    Reject {
        range: Range<usize>,
        rule: String,
        message: String,
    },
}

/// Scans `buf` and decides what can be released: all of it when `end`,
/// else everything but the last `window` bytes, extended past any match
/// that starts before the cut.
fn release(
    scanner: &dyn TextScanner,
    window: usize,
    buf: &str,
    end: bool,
) -> Result<Step, StreamError> {
    let matches = scanner.scan(buf);
    check_matches(&matches, buf)?;
    let mut cut = if end {
        buf.len()
    } else {
        floor_char_boundary(buf, buf.len().saturating_sub(window))
    };
    let mut text = String::with_capacity(cut);
    let mut pos = 0;
    let mut masks = Vec::new();
    for m in matches {
        if !end && m.range.start >= cut {
            break;
        }
        match m.action {
            MatchAction::Reject { rule, message } => {
                return Ok(Step::Reject {
                    range: m.range,
                    rule,
                    message,
                })
            }
            MatchAction::Mask { placeholder } => {
                text.push_str(&buf[pos..m.range.start]);
                text.push_str(&placeholder);
                pos = m.range.end;
                cut = cut.max(m.range.end);
                masks.push((m.range, placeholder));
            }
        }
    }
    text.push_str(&buf[pos..cut]);
    Ok(Step::Release { text, cut, masks })
}

fn check_matches(matches: &[ScanMatch], text: &str) -> Result<(), StreamError> {
    let mut prev = 0;
    for m in matches {
        let r = &m.range;
        if r.start < prev
            || r.start > r.end
            || r.end > text.len()
            || !text.is_char_boundary(r.start)
            || !text.is_char_boundary(r.end)
        {
            return Err(StreamError::Scanner(format!(
                "range {}..{} over {} bytes of text (after {prev})",
                r.start,
                r.end,
                text.len()
            )));
        }
        prev = r.end;
    }
    Ok(())
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One open text block: what is held back and where it starts.
#[derive(Debug, Default)]
struct TextBlock {
    held: String,
    /// Bytes of the block's original text before `held`.
    offset: usize,
}

// ---------------------------------------------------------------------------
// The stream guard

#[derive(Debug)]
enum State {
    Open,
    Rejected,
    Failed(StreamError),
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

/// How much the guard holds back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Largest held text of any open block, in bytes (at most window + 3).
    pub max_block_text: usize,
    /// Held text of all open blocks.
    pub text: usize,
    /// Open blocks.
    pub blocks: usize,
    /// Bytes of the incomplete SSE event.
    pub partial_event: usize,
}

/// Guards one streamed response.
pub struct StreamGuard {
    kind: Dialect,
    scanner: Arc<dyn TextScanner + Send + Sync>,
    window: usize,
    parser: SseParser,
    blocks: BTreeMap<u64, TextBlock>,
    usage: Usage,
    model: Option<String>,
    state: State,
    next_event: u64,
    /// OpenAI: data of the last chunk with choices, the template of
    /// flushed text chunks.
    last_chunk: Option<String>,
    /// Raw bytes of an unterminated final event, emitted last.
    deferred: Vec<u8>,
    /// Tool calls held while their input streams (with a tool judge).
    tools: Option<ToolHolds>,
}

impl fmt::Debug for StreamGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamGuard")
            .field("kind", &self.kind)
            .field("window", &self.window)
            .field("state", &self.state)
            .field("held", &self.held())
            .finish_non_exhaustive()
    }
}

impl StreamGuard {
    /// A guard with the default event size limit. The scanner's window is
    /// read once, here.
    pub fn new(kind: Dialect, scanner: Arc<dyn TextScanner + Send + Sync>) -> Self {
        Self::with_event_limit(kind, scanner, DEFAULT_MAX_EVENT_BYTES)
    }

    /// A guard refusing SSE events over `max_event_bytes`.
    pub fn with_event_limit(
        kind: Dialect,
        scanner: Arc<dyn TextScanner + Send + Sync>,
        max_event_bytes: usize,
    ) -> Self {
        StreamGuard {
            kind,
            window: scanner.window(),
            scanner,
            parser: SseParser::new(max_event_bytes),
            blocks: BTreeMap::new(),
            usage: Usage::default(),
            model: None,
            state: State::Open,
            next_event: 0,
            last_chunk: None,
            deferred: Vec::new(),
            tools: None,
        }
    }

    /// Holds every tool call until its input is complete and lets `judge`
    /// decide on it (Anthropic Messages streams).
    pub fn with_tool_judge(mut self, judge: Arc<dyn ToolJudge>) -> Self {
        self.tools = Some(ToolHolds::new(judge));
        self
    }

    /// Token counts seen so far.
    /// The stream's provider shape.
    pub fn kind(&self) -> Dialect {
        self.kind
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The model the response names, once seen.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Whether a match rejected the response (or it was aborted).
    pub fn is_rejected(&self) -> bool {
        matches!(self.state, State::Rejected)
    }

    /// What is held back now.
    pub fn held(&self) -> Held {
        Held {
            max_block_text: self
                .blocks
                .values()
                .map(|b| b.held.len())
                .max()
                .unwrap_or(0),
            text: self.blocks.values().map(|b| b.held.len()).sum(),
            blocks: self.blocks.len(),
            partial_event: self.parser.buffered(),
        }
    }

    /// Takes the next chunk of the upstream body; returns what to send in
    /// its place. After a rejection every call returns empty bytes; after an
    /// error every call returns that error; after `end_of_stream`, an error.
    pub fn push(&mut self, chunk: &[u8], end_of_stream: bool) -> Result<Output, StreamError> {
        match &self.state {
            State::Open => {}
            State::Rejected => return Ok(Output::default()),
            State::Failed(e) => return Err(e.clone()),
            State::Ended => return Err(StreamError::AfterEnd),
        }
        let mut out = Output::default();
        match self.push_inner(chunk, end_of_stream, &mut out) {
            Ok(()) => Ok(out),
            Err(e) => {
                self.state = State::Failed(e.clone());
                self.blocks.clear();
                if let Some(t) = &mut self.tools {
                    t.clear();
                }
                Err(e)
            }
        }
    }

    /// Ends the stream early (e.g. after a [`StreamError`]): returns the
    /// provider's in-stream error event carrying `message`, and from then on
    /// every push returns empty bytes. Empty if the stream already ended or
    /// was rejected.
    pub fn abort(&mut self, message: &str) -> Vec<u8> {
        if matches!(self.state, State::Rejected | State::Ended) {
            return Vec::new();
        }
        self.state = State::Rejected;
        self.blocks.clear();
        if let Some(t) = &mut self.tools {
            t.clear();
        }
        match self.kind {
            Dialect::Anthropic => anthropic_error_event("api_error", message),
            Dialect::OpenAiChat => openai_error_event("server_error", "gateway_error", message),
        }
    }

    fn push_inner(
        &mut self,
        chunk: &[u8],
        end_of_stream: bool,
        out: &mut Output,
    ) -> Result<(), StreamError> {
        let mut events = Vec::new();
        let fed = self.parser.feed(chunk, &mut events);
        for ev in events {
            if self.event(ev, out)? == Flow::Stop {
                return Ok(());
            }
        }
        fed.map_err(|source| StreamError::Sse {
            event: self.next_event,
            source,
        })?;
        if end_of_stream {
            let tail = self.parser.finish().map_err(|source| StreamError::Sse {
                event: self.next_event,
                source,
            })?;
            if let Some(ev) = tail {
                if self.event(ev, out)? == Flow::Stop {
                    return Ok(());
                }
            }
            if self.flush_all(None, out)? == Flow::Stop {
                return Ok(());
            }
            if self.tools.as_ref().is_some_and(ToolHolds::any) {
                return Err(StreamError::BadBody(
                    "the stream ended inside a tool call".into(),
                ));
            }
            out.bytes.append(&mut self.deferred);
            self.state = State::Ended;
        }
        Ok(())
    }

    fn event(&mut self, ev: SseEvent, out: &mut Output) -> Result<Flow, StreamError> {
        let index = self.next_event;
        self.next_event += 1;
        match self.kind {
            Dialect::Anthropic => self.anthropic_event(ev, index, out),
            Dialect::OpenAiChat => self.openai_event(ev, index, out),
        }
    }

    /// Forwards an event's input bytes.
    fn pass(&mut self, raw: Vec<u8>, terminated: bool, out: &mut Output) -> Flow {
        if terminated {
            out.bytes.extend_from_slice(&raw);
        } else {
            self.deferred.extend_from_slice(&raw);
        }
        Flow::Go
    }

    fn reject(&mut self, out: &mut Output, rejection: Rejection) -> Flow {
        out.bytes
            .extend_from_slice(&rejection_event(self.kind, &rejection.message));
        out.events.push(EventInfo {
            event: rejection.event,
            location: rejection.location,
            range: rejection.range.clone(),
            fired: Fired::Rejected {
                rule: rejection.rule.clone(),
            },
        });
        out.rejected = Some(rejection);
        self.state = State::Rejected;
        self.blocks.clear();
        self.deferred.clear();
        Flow::Stop
    }

    fn location(&self, index: u64) -> TextLocation {
        match self.kind {
            Dialect::Anthropic => TextLocation::Content(index),
            Dialect::OpenAiChat => TextLocation::Choice(index),
        }
    }

    /// Adds `text` to block `index`; returns the text to release now, or
    /// `None` when a match rejected the stream (already answered).
    fn feed_text(
        &mut self,
        index: u64,
        text: &str,
        end: bool,
        event: Option<u64>,
        out: &mut Output,
    ) -> Result<Option<String>, StreamError> {
        if !self.blocks.contains_key(&index) && self.blocks.len() >= MAX_OPEN_BLOCKS {
            return Err(StreamError::TooManyBlocks {
                limit: MAX_OPEN_BLOCKS,
            });
        }
        let location = self.location(index);
        let block = self.blocks.entry(index).or_default();
        let mut buf = std::mem::take(&mut block.held);
        buf.push_str(text);
        let offset = block.offset;
        match release(&*self.scanner, self.window, &buf, end)? {
            Step::Release {
                text: released,
                cut,
                masks,
            } => {
                block.offset += cut;
                block.held = buf.split_off(cut);
                if end {
                    self.blocks.remove(&index);
                }
                out.events
                    .extend(masks.into_iter().map(|(range, placeholder)| EventInfo {
                        event,
                        location,
                        range: offset + range.start..offset + range.end,
                        fired: Fired::Masked { placeholder },
                    }));
                Ok(Some(released))
            }
            Step::Reject {
                range,
                rule,
                message,
            } => {
                let rejection = Rejection {
                    rule,
                    message,
                    location,
                    range: offset + range.start..offset + range.end,
                    event,
                };
                self.reject(out, rejection);
                Ok(None)
            }
        }
    }

    /// Ends block `index`: its held text, scanned, as an extra delta event.
    fn flush_block(
        &mut self,
        index: u64,
        event: Option<u64>,
        out: &mut Output,
    ) -> Result<Flow, StreamError> {
        match self.blocks.get(&index) {
            None => return Ok(Flow::Go),
            Some(b) if b.held.is_empty() => {
                self.blocks.remove(&index);
                return Ok(Flow::Go);
            }
            Some(_) => {}
        }
        let Some(text) = self.feed_text(index, "", true, event, out)? else {
            return Ok(Flow::Stop);
        };
        if !text.is_empty() {
            let bytes = self.text_event(index, &text);
            out.bytes.extend_from_slice(&bytes);
        }
        Ok(Flow::Go)
    }

    fn flush_all(&mut self, event: Option<u64>, out: &mut Output) -> Result<Flow, StreamError> {
        while let Some(&index) = self.blocks.keys().next() {
            if self.flush_block(index, event, out)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Go)
    }

    /// A synthesized event carrying `text` for block `index`.
    fn text_event(&self, index: u64, text: &str) -> Vec<u8> {
        let text = json_string(text);
        let mut out = Vec::with_capacity(text.len() + 128);
        match self.kind {
            Dialect::Anthropic => {
                let data = format!(
                    r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{text}}}}}"#
                );
                write_event(&mut out, Some("content_block_delta"), &data);
            }
            Dialect::OpenAiChat => {
                let choices = format!(
                    r#"[{{"index":{index},"delta":{{"content":{text}}},"logprobs":null,"finish_reason":null}}]"#
                );
                let data = openai_chunk_from(self.last_chunk.as_deref(), &choices);
                write_event(&mut out, None, &data);
            }
        }
        out
    }

    // -- Anthropic ---------------------------------------------------------

    fn anthropic_event(
        &mut self,
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
            return Ok(self.pass(raw, terminated, out));
        };
        let bad = |message: String| StreamError::BadEvent {
            event: index,
            message,
        };
        let parsed: AEvent<'_> = object(&data).map_err(bad)?;
        let kind = match (parsed.kind.as_deref(), name.as_deref()) {
            (Some(t), Some(n)) if t != n && (is_anthropic_type(t) || is_anthropic_type(n)) => {
                return Err(bad(format!("event `{n}` carries data of type `{t}`")))
            }
            (Some(t), _) => t,
            (None, Some(n)) => n,
            (None, None) => "",
        };
        let need_index = || {
            parsed
                .index
                .ok_or_else(|| bad(format!("`{kind}` without an `index`")))
        };
        let ev_index = Some(index);
        match kind {
            "message_start" => {
                if let Some(t) = &mut self.tools {
                    t.new_message();
                }
                if let Some(message) = parsed.message {
                    let message: Value = serde_json::from_str(message.get()).unwrap_or_default();
                    if let Some(model) = message.get("model").and_then(Value::as_str) {
                        self.model = Some(model.to_owned());
                    }
                    if let Some(usage) = message.get("usage") {
                        self.usage.update(&Usage::from_anthropic(usage));
                    }
                }
                Ok(self.pass(raw, terminated, out))
            }
            "content_block_start" => {
                let block = need_index()?;
                if self.flush_block(block, ev_index, out)? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                let content: ABlock<'_> = match parsed.content_block {
                    Some(c) => object(c.get()).map_err(|e| bad(format!("content_block: {e}")))?,
                    None => return Ok(self.pass(raw, terminated, out)),
                };
                if content.kind.as_deref() == Some("tool_use") {
                    if let Some(tools) = &mut self.tools {
                        let name = match content.name {
                            Some(n) => {
                                decode(n).map_err(|e| bad(format!("content_block.name: {e}")))?
                            }
                            None => return Err(bad("a `tool_use` block without a `name`".into())),
                        };
                        let initial = content.input.map_or("", |i| i.get());
                        tools.start(block, name.into_owned(), initial, &raw);
                        return Ok(Flow::Go);
                    }
                }
                if content.kind.as_deref() != Some("text") {
                    return Ok(self.pass(raw, terminated, out));
                }
                let Some(text_raw) = content.text else {
                    return Ok(self.pass(raw, terminated, out));
                };
                let text = decode(text_raw).map_err(|e| bad(format!("content_block.text: {e}")))?;
                let Some(released) = self.feed_text(block, &text, false, ev_index, out)? else {
                    return Ok(Flow::Stop);
                };
                if released == text {
                    return Ok(self.pass(raw, terminated, out));
                }
                // The start event keeps its shape with an empty text; the
                // released text follows as a delta.
                let patched = splice(&data, vec![(span_of(&data, text_raw), "\"\"".into())]);
                write_event(&mut out.bytes, name.as_deref(), &patched);
                if !released.is_empty() {
                    let bytes = self.text_event(block, &released);
                    out.bytes.extend_from_slice(&bytes);
                }
                Ok(Flow::Go)
            }
            "content_block_delta" => {
                let block = need_index()?;
                let delta: ADelta<'_> = match parsed.delta {
                    Some(d) => object(d.get()).map_err(|e| bad(format!("delta: {e}")))?,
                    None => return Err(bad("`content_block_delta` without a `delta`".into())),
                };
                if let Some(tools) = self.tools.as_mut().filter(|t| t.is_held(block)) {
                    match (delta.kind.as_deref(), delta.partial_json) {
                        (Some("input_json_delta"), Some(fragment)) => {
                            let fragment = decode(fragment)
                                .map_err(|e| bad(format!("delta.partial_json: {e}")))?;
                            tools.append(block, &fragment, &raw);
                        }
                        _ => tools.append_raw(block, &raw),
                    }
                    return Ok(Flow::Go);
                }
                if delta.kind.as_deref() != Some("text_delta") {
                    return Ok(self.pass(raw, terminated, out));
                }
                let Some(text_raw) = delta.text else {
                    return Err(bad("`text_delta` without `text`".into()));
                };
                let text = decode(text_raw).map_err(|e| bad(format!("delta.text: {e}")))?;
                let Some(released) = self.feed_text(block, &text, false, ev_index, out)? else {
                    return Ok(Flow::Stop);
                };
                if released == text {
                    return Ok(self.pass(raw, terminated, out));
                }
                if !released.is_empty() {
                    let patched = splice(
                        &data,
                        vec![(span_of(&data, text_raw), json_string(&released))],
                    );
                    write_event(&mut out.bytes, name.as_deref(), &patched);
                }
                Ok(Flow::Go)
            }
            "content_block_stop" => {
                let block = need_index()?;
                if let Some(tools) = self.tools.as_mut().filter(|t| t.is_held(block)) {
                    if let Some((call, verdict)) = tools.finish(block, &raw) {
                        match &verdict {
                            ToolVerdict::Block { message, .. } => {
                                out.bytes
                                    .extend_from_slice(&blocked_tool_block(block, message));
                            }
                            _ => out.bytes.extend_from_slice(&call.raw),
                        }
                        out.tools.push(ToolDecision {
                            index: block,
                            tool: call.name,
                            verdict,
                        });
                    }
                    return Ok(Flow::Go);
                }
                if self.flush_block(block, ev_index, out)? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                Ok(self.pass(raw, terminated, out))
            }
            "message_delta" | "message_stop" | "error" => {
                if self.flush_all(ev_index, out)? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                if let Some(usage) = parsed.usage {
                    let usage: Value = serde_json::from_str(usage.get()).unwrap_or_default();
                    self.usage.update(&Usage::from_anthropic(&usage));
                }
                if let Some(tools) = &mut self.tools {
                    if kind == "error" {
                        // The upstream failed: a half call is never released.
                        tools.clear();
                    } else if tools.any() {
                        return Err(bad(format!("`{kind}` while a tool call is still open")));
                    } else if kind == "message_delta" && tools.blocked > 0 && tools.allowed == 0 {
                        // Every call of the message was blocked: the agent
                        // shows the refusal and stops instead of waiting
                        // for tools to run.
                        if let Some(patched) = end_turn(&data, parsed.delta) {
                            write_event(&mut out.bytes, name.as_deref(), &patched);
                            return Ok(Flow::Go);
                        }
                    }
                }
                Ok(self.pass(raw, terminated, out))
            }
            _ => Ok(self.pass(raw, terminated, out)),
        }
    }

    // -- OpenAI ------------------------------------------------------------

    fn openai_event(
        &mut self,
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
            return Ok(self.pass(raw, terminated, out));
        };
        let ev_index = Some(index);
        if data.trim() == "[DONE]" {
            if self.flush_all(ev_index, out)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
            if self.tools.as_ref().is_some_and(ToolHolds::any) {
                return Err(StreamError::BadEvent {
                    event: index,
                    message: "`[DONE]` while a tool call is still open".into(),
                });
            }
            return Ok(self.pass(raw, terminated, out));
        }
        let bad = |message: String| StreamError::BadEvent {
            event: index,
            message,
        };
        let chunk: OChunk<'_> = object(&data).map_err(bad)?;
        if let Some(model) = chunk.model.and_then(|m| decode(m).ok()) {
            if self.model.is_none() {
                self.model = Some(model.into_owned());
            }
        }
        let no_choices = chunk.choices.as_ref().is_none_or(Vec::is_empty);
        if chunk.error.is_some() || (chunk.usage.is_some() && no_choices) {
            // An upstream error, or the final usage chunk: every choice is
            // over. (Servers that report usage on every chunk send it with
            // choices; those chunks end nothing.)
            if self.flush_all(ev_index, out)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
            if let Some(tools) = &mut self.tools {
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
            self.usage.update(&Usage::from_openai(&usage));
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
            if let Some(tools) = &mut self.tools {
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
                        let text = |v: Option<&Cow<'_, str>>| v.map(|c| c.to_string());
                        let (name, arguments) = (
                            text(f.and_then(|f| f.name.as_ref())),
                            text(f.and_then(|f| f.arguments.as_ref())),
                        );
                        tools.add_fragment(
                            block,
                            call.index.unwrap_or(k as u64),
                            call.id.as_deref(),
                            name.as_deref(),
                            arguments.as_deref(),
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
                if self.flush_block(block, ev_index, out)? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
            }
            let flow = match content {
                Some(raw_text) => {
                    let text = decode(raw_text)
                        .map_err(|e| bad(format!("choices[{pos}].delta.content: {e}")))?;
                    match self.feed_text(block, &text, finished, ev_index, out)? {
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
                None if finished => self.flush_block(block, ev_index, out)?,
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
            if held.len() > 1 || texts.iter().any(|t| !held.contains(&t.block)) {
                for b in &held {
                    self.tools.as_mut().expect("held").hold_choice(*b).pure = false;
                }
            }
            for t in &texts {
                if !t.released.is_empty() {
                    let bytes = self.text_event(t.block, &t.released);
                    out.bytes.extend_from_slice(&bytes);
                }
            }
            let tools = self.tools.as_mut().expect("held");
            let hold = tools.hold_choice(held[0]);
            hold.raw.extend_from_slice(&raw);
            if !terminated {
                hold.pure = false;
            }
            Flow::Go
        } else if unchanged {
            self.pass(raw, terminated, out)
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
            self.last_chunk = Some(data);
        }
        for (block, reason) in finished_held {
            self.release_choice(block, &reason, out);
        }
        Ok(flow)
    }

    /// Decides on the calls of a finished OpenAI choice and sends them:
    /// as they came when every call is allowed and the chunks held nothing
    /// else, else rebuilt — the allowed calls whole, the policy's messages
    /// as content, and the finish (`stop` when no call remains).
    fn release_choice(&mut self, block: u64, finish_reason: &str, out: &mut Output) {
        let Some(tools) = &mut self.tools else {
            return;
        };
        let Some((held, verdicts)) = tools.finish_choice(block) else {
            return;
        };
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
        if held.pure && !any_blocked {
            out.bytes.extend_from_slice(&held.raw);
            out.tools.extend(decisions);
            return;
        }
        let template = self.last_chunk.as_deref();
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
            let choices = format!(
                r#"[{{"index":{block},"delta":{d},"logprobs":null,"finish_reason":null}}]"#
            );
            write_event(&mut out.bytes, None, &openai_chunk_from(template, &choices));
        }
        let reason = if kept == 0 && finish_reason == "\"tool_calls\"" {
            "\"stop\""
        } else {
            finish_reason
        };
        let choices = format!(
            r#"[{{"index":{block},"delta":{{}},"logprobs":null,"finish_reason":{reason}}}]"#
        );
        write_event(&mut out.bytes, None, &openai_chunk_from(template, &choices));
        out.tools.extend(decisions);
    }
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

fn is_anthropic_type(t: &str) -> bool {
    matches!(
        t,
        "message_start"
            | "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "message_delta"
            | "message_stop"
            | "error"
    )
}

// ---------------------------------------------------------------------------
// Error events

/// The provider's in-stream error event for a rejection carrying `message`.
/// Anthropic: an `error` event with a `permission_error`; OpenAI: an error
/// chunk with code `content_policy_violation`, then `[DONE]`.
pub fn rejection_event(kind: Dialect, message: &str) -> Vec<u8> {
    match kind {
        Dialect::Anthropic => anthropic_error_event("permission_error", message),
        Dialect::OpenAiChat => {
            openai_error_event("invalid_request_error", "content_policy_violation", message)
        }
    }
}

fn anthropic_error_event(ty: &str, message: &str) -> Vec<u8> {
    format!(
        "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"{ty}\",\"message\":{}}}}}\n\n",
        json_string(message)
    )
    .into_bytes()
}

fn openai_error_event(ty: &str, code: &str, message: &str) -> Vec<u8> {
    format!(
        "data: {{\"error\":{{\"message\":{},\"type\":\"{ty}\",\"code\":\"{code}\"}}}}\n\ndata: [DONE]\n\n",
        json_string(message)
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------
// JSON helpers

#[derive(Deserialize)]
struct AEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content_block: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ABlock<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    /// `tool_use`: the tool's name and its (usually empty) input.
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ADelta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    /// `input_json_delta`: a fragment of a tool call's input.
    #[serde(borrow, default)]
    partial_json: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stop_reason: Option<&'a RawValue>,
}

/// The events of a text block at `index` carrying `message`: what replaces
/// a blocked `tool_use` block (same index, valid SSE).
fn blocked_tool_block(index: u64, message: &str) -> Vec<u8> {
    let text = json_string(message);
    let mut out = Vec::with_capacity(text.len() + 320);
    write_event(
        &mut out,
        Some("content_block_start"),
        &format!(
            r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}"#
        ),
    );
    write_event(
        &mut out,
        Some("content_block_delta"),
        &format!(
            r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{text}}}}}"#
        ),
    );
    write_event(
        &mut out,
        Some("content_block_stop"),
        &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
    );
    out
}

/// `data` of a `message_delta` with `delta.stop_reason` `tool_use` made
/// `end_turn`; `None` when it says something else.
fn end_turn(data: &str, delta: Option<&RawValue>) -> Option<String> {
    let delta: ADelta<'_> = object(delta?.get()).ok()?;
    let reason = delta.stop_reason?;
    (reason.get() == "\"tool_use\"").then(|| {
        splice(
            data,
            vec![(span_of(data, reason), "\"end_turn\"".to_owned())],
        )
    })
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

/// One fragment of an OpenAI streamed tool call.
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

/// The members of a JSON object in order, values raw. A repeated key is an
/// error: clients keep the last, a guard must not read the first.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'de>(PhantomData<&'de ()>);
        impl<'de> Visitor<'de> for V<'de> {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members: Vec<(String, &'de RawValue)> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// Parses a JSON object (not an array posing as a struct).
fn object<'a, T: Deserialize<'a>>(s: &'a str) -> Result<T, String> {
    if !s.trim_start().starts_with('{') {
        return Err("expected a JSON object".into());
    }
    serde_json::from_str(s).map_err(|e| format!("invalid JSON: {e}"))
}

fn decode(raw: &RawValue) -> Result<Cow<'_, str>, String> {
    if !raw.get().starts_with('"') {
        return Err("expected a string".into());
    }
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(s) => Ok(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(raw.get())
            .map(Cow::Owned)
            .map_err(|e| format!("invalid string: {e}")),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialise")
}

/// `src` with each range replaced (ranges non-overlapping).
fn splice(src: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(src.len() + 16);
    let mut pos = 0;
    for (range, with) in edits {
        out.push_str(&src[pos..range.start]);
        out.push_str(&with);
        pos = range.end;
    }
    out.push_str(&src[pos..]);
    out
}

/// Writes an SSE event: an `event:` line, one `data:` line per line of
/// `data`, a blank line.
fn write_event(out: &mut Vec<u8>, name: Option<&str>, data: &str) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    let bytes = data.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i <= bytes.len() {
        let end_of_line = i == bytes.len() || bytes[i] == b'\n' || bytes[i] == b'\r';
        if end_of_line {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&bytes[start..i]);
            out.push(b'\n');
            if i + 1 < bytes.len() && bytes[i] == b'\r' && bytes[i + 1] == b'\n' {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    out.push(b'\n');
}

/// An OpenAI chunk with the top-level members of `template` (in order) and
/// `choices` in place of its choices; `usage` becomes null.
fn openai_chunk_from(template: Option<&str>, choices: &str) -> String {
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

// ---------------------------------------------------------------------------
// Non-streamed responses

/// What [`guard_json_body`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonOutcome {
    /// The body to send instead, when a mask changed it; `None`: send the
    /// body unchanged (or nothing, when rejected).
    pub body: Option<Vec<u8>>,
    pub rejected: Option<Rejection>,
    pub events: Vec<EventInfo>,
    pub usage: Usage,
    pub model: Option<String>,
}

#[derive(Deserialize)]
struct AMessage<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content: Option<Vec<ABlock<'a>>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OCompletion<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<OFullChoice<'a>>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OFullChoice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    logprobs: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OMessage<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// Guards a whole (non-streamed) response body: Anthropic `content[i].text`
/// of `text` blocks, OpenAI `choices[i].message.content`. Only the bytes of
/// masked string values change (and, for OpenAI, that choice's non-null
/// `logprobs` becomes `null`); everything else stays byte-identical.
pub fn guard_json_body(
    kind: Dialect,
    body: &[u8],
    scanner: &dyn TextScanner,
) -> Result<JsonOutcome, StreamError> {
    let body = std::str::from_utf8(body)
        .map_err(|_| StreamError::BadBody("the body is not valid UTF-8".into()))?;
    let mut outcome = JsonOutcome::default();
    // (location, value, extra span to null)
    let mut texts: Vec<(TextLocation, &RawValue, Option<&RawValue>)> = Vec::new();
    match kind {
        Dialect::Anthropic => {
            let msg: AMessage<'_> = object(body).map_err(StreamError::BadBody)?;
            outcome.model = msg.model.and_then(|m| decode(m).ok()).map(Cow::into_owned);
            if let Some(usage) = msg.usage {
                let usage: Value = serde_json::from_str(usage.get()).unwrap_or_default();
                outcome.usage.update(&Usage::from_anthropic(&usage));
            }
            for (i, block) in msg.content.iter().flatten().enumerate() {
                if let (Some("text"), Some(text)) = (block.kind.as_deref(), block.text) {
                    texts.push((TextLocation::Content(i as u64), text, None));
                }
            }
        }
        Dialect::OpenAiChat => {
            let c: OCompletion<'_> = object(body).map_err(StreamError::BadBody)?;
            outcome.model = c.model.and_then(|m| decode(m).ok()).map(Cow::into_owned);
            if let Some(usage) = c.usage {
                let usage: Value = serde_json::from_str(usage.get()).unwrap_or_default();
                outcome.usage.update(&Usage::from_openai(&usage));
            }
            for (pos, choice) in c.choices.iter().flatten().enumerate() {
                let index = choice.index.unwrap_or(pos as u64);
                let Some(message) = choice.message else {
                    continue;
                };
                let message: OMessage<'_> = object(message.get())
                    .map_err(|e| StreamError::BadBody(format!("choices[{pos}].message: {e}")))?;
                if let Some(content) = message.content {
                    texts.push((TextLocation::Choice(index), content, choice.logprobs));
                }
            }
        }
    }
    let mut edits = Vec::new();
    for (location, raw, extra) in texts {
        let text = decode(raw).map_err(|e| StreamError::BadBody(format!("{location}: {e}")))?;
        match release(scanner, 0, &text, true)? {
            Step::Release {
                text: masked,
                masks,
                ..
            } => {
                if masks.is_empty() {
                    continue;
                }
                outcome
                    .events
                    .extend(masks.into_iter().map(|(range, placeholder)| EventInfo {
                        event: None,
                        location,
                        range,
                        fired: Fired::Masked { placeholder },
                    }));
                edits.push((span_of(body, raw), json_string(&masked)));
                if let Some(extra) = extra {
                    edits.push((span_of(body, extra), "null".to_owned()));
                }
            }
            Step::Reject {
                range,
                rule,
                message,
            } => {
                outcome.events.push(EventInfo {
                    event: None,
                    location,
                    range: range.clone(),
                    fired: Fired::Rejected { rule: rule.clone() },
                });
                outcome.rejected = Some(Rejection {
                    rule,
                    message,
                    location,
                    range,
                    event: None,
                });
                return Ok(outcome);
            }
        }
    }
    if !edits.is_empty() {
        outcome.body = Some(splice(body, edits).into_bytes());
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tool_tests;
