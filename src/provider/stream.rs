//! The stream engine: guards the text an LLM sends back, chunk by chunk.
//!
//! Dialect-neutral. The engine frames SSE events ([`super::sse`]), keeps
//! each open block's held text, releases it through the hold-back window
//! (`stream/window.rs`), flushes, passes events through and rejects; what an event
//! means (which text it carries, which block it ends, its usage) is read by
//! the dialect's event reader (`anthropic::stream`, `openai::stream`),
//! reached through [`Dialect`].
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

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use super::restore::{Restore, Restoring};
use super::tool_call::{ToolDecision, ToolHolds, ToolJudge};
use super::{Dialect, Usage};

mod window;

pub use super::response::{guard_json_body, JsonOutcome};
pub use super::sse::{SseError, SseEvent, SseParser};
#[cfg(test)]
use window::floor_char_boundary;
pub(crate) use window::{release, Step};

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
    /// Put back the value a placeholder of the request stands for (see
    /// [`super::restore`]); never recorded (it is the client's own text).
    Restore { value: String },
    /// A shadow (`Audit`) rule matched: recorded, the text passes as it is.
    Audit { rule: String },
}

/// Where a text sits in the response (each dialect names its own).
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
    Masked {
        placeholder: String,
    },
    Rejected {
        rule: String,
    },
    /// A shadow rule's match: nothing changed.
    Audited {
        rule: String,
    },
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
    /// Placeholders restored in this chunk (text and tool inputs).
    pub restored: usize,
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

/// One open text block: what is held back and where it starts.
#[derive(Debug, Default)]
struct TextBlock {
    held: String,
    /// Bytes of the block's original text before `held`.
    offset: usize,
    /// End (in the block's original text) of the last shadow match
    /// recorded: one seen again from held text is not recorded twice.
    audited_to: usize,
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

/// Whether the engine goes on with the next event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
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
    /// Token counts seen so far (the dialect's reader updates them).
    pub(crate) usage: Usage,
    /// The model the response names (set by the dialect's reader).
    pub(crate) model: Option<String>,
    state: State,
    next_event: u64,
    /// Data the dialect's reader keeps as the template of the text events
    /// the engine synthesizes (OpenAI: the last chunk with choices).
    pub(crate) template: Option<String>,
    /// Raw bytes of an unterminated final event, emitted last.
    deferred: Vec<u8>,
    /// Tool calls held while their input streams (with a tool judge; the
    /// dialect's reader holds and releases them).
    pub(crate) tools: Option<ToolHolds>,
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
            template: None,
            deferred: Vec::new(),
            tools: None,
        }
    }

    /// Holds every tool call until its input is complete and lets `judge`
    /// decide on it.
    pub fn with_tool_judge(mut self, judge: Arc<dyn ToolJudge>) -> Self {
        let restore = self.tools.take().and_then(|t| t.restore);
        let mut holds = ToolHolds::new(judge);
        holds.restore = restore;
        self.tools = Some(holds);
        self
    }

    /// Restores the request's placeholders (see [`super::restore`]) in the
    /// text it sends back (held back by the longest placeholder) and in
    /// tool call inputs (each call held until complete). Nothing changes
    /// for an empty restore.
    pub fn with_restore(mut self, restore: Arc<Restore>) -> Self {
        if restore.is_empty() {
            return self;
        }
        self.scanner = Arc::new(Restoring {
            guards: Some(self.scanner.clone()),
            restore: restore.clone(),
        });
        self.window = self.scanner.window();
        match &mut self.tools {
            Some(holds) => holds.restore = Some(restore),
            None => self.tools = Some(ToolHolds::restoring(restore)),
        }
        self
    }

    /// The stream's provider shape.
    pub fn kind(&self) -> Dialect {
        self.kind
    }

    /// Token counts seen so far.
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
        self.kind.provider().abort_event(message)
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
        self.kind.provider().read_event(self, ev, index, out)
    }

    /// Forwards an event's input bytes.
    pub(crate) fn pass(&mut self, raw: Vec<u8>, terminated: bool, out: &mut Output) -> Flow {
        if terminated {
            out.bytes.extend_from_slice(&raw);
        } else {
            self.deferred.extend_from_slice(&raw);
        }
        Flow::Go
    }

    fn reject(&mut self, out: &mut Output, rejection: Rejection) -> Flow {
        out.bytes
            .extend_from_slice(&self.kind.provider().rejection_event(&rejection.message));
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
        self.kind.provider().text_location(index)
    }

    /// Adds `text` to block `index`; returns the text to release now, or
    /// `None` when a match rejected the stream (already answered).
    pub(crate) fn feed_text(
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
                audits,
                restored,
            } => {
                out.restored += restored;
                block.offset += cut;
                block.held = buf.split_off(cut);
                let mut audited_to = block.audited_to;
                let audits: Vec<(std::ops::Range<usize>, String)> = audits
                    .into_iter()
                    .filter_map(|(range, rule)| {
                        let range = offset + range.start..offset + range.end;
                        // A match that starts in text already recorded is
                        // the same match seen again (or grown).
                        let fresh = range.start >= audited_to;
                        audited_to = audited_to.max(range.end);
                        fresh.then_some((range, rule))
                    })
                    .collect();
                block.audited_to = audited_to;
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
                out.events
                    .extend(audits.into_iter().map(|(range, rule)| EventInfo {
                        event,
                        location,
                        range,
                        fired: Fired::Audited { rule },
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
    pub(crate) fn flush_block(
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

    pub(crate) fn flush_all(
        &mut self,
        event: Option<u64>,
        out: &mut Output,
    ) -> Result<Flow, StreamError> {
        while let Some(&index) = self.blocks.keys().next() {
            if self.flush_block(index, event, out)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Go)
    }

    /// A synthesized event carrying `text` for block `index`.
    pub(crate) fn text_event(&self, index: u64, text: &str) -> Vec<u8> {
        self.kind
            .provider()
            .text_event(index, text, self.template.as_deref())
    }
}

/// The provider's in-stream error event for a rejection carrying `message`.
/// Anthropic: an `error` event with a `permission_error`; OpenAI: an error
/// chunk with code `content_policy_violation`, then `[DONE]`.
pub fn rejection_event(kind: Dialect, message: &str) -> Vec<u8> {
    kind.provider().rejection_event(message)
}

#[cfg(test)]
mod restore_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tool_tests;
