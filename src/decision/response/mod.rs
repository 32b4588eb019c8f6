//! The response decisions: at the response headers, how the response is
//! read; then, chunk by chunk, what reaches the client (a guarded SSE
//! stream, a guarded JSON body, or a body read only for its token usage).
//! The adapter translates the answers into ext_proc messages and records
//! the [`ResponseRecord`] when one is finished.
//!
//! * `readers` — the guards, tool judge and restore composed for a request;
//! * `stream_body` — a guarded SSE stream, chunk by chunk;
//! * `json_body` — a JSON body, decided whole;
//! * `tally` — what was done, counted into the [`ResponseRecord`].

mod json_body;
mod readers;
mod stream_body;
mod tally;

use std::sync::Arc;

use crate::guard::tool::ToolGuard;
use crate::guard::GuardSet;
use crate::policy::Policy;
use crate::provider::restore::Restore;
use crate::provider::stream::StreamGuard;
use crate::provider::tool_call::ToolDecision;
use crate::provider::{Dialect, Usage};

use super::conditions::ResponseRules;
use super::outcome::{gateway_error, Reply};
use super::request_headers::{RequestCtx, ResponseRead};
use super::usage_read::UsageRead;
pub use tally::ResponseRecord;
use tally::Tally;

/// How Envoy should send the response body, decided at its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// As the request headers already set (streamed for a usage read, or
    /// not at all).
    Unchanged,
    /// Chunk by chunk: an SSE stream guarded as it flows.
    Streamed,
    /// Whole: a JSON body guarded at once.
    Buffered,
}

/// The answer to the response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseHeadersDecision {
    Continue(BodyMode),
    /// The response cannot be guarded (it is compressed): refused. The
    /// reply's outcome is the request's record.
    Refuse(Box<Reply>),
}

/// What to send the client in place of one response body chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkDecision {
    /// The chunk as it came.
    Pass,
    /// These bytes instead (`content_length`: set the header to their
    /// length, for a whole body).
    Replace { body: Vec<u8>, content_length: bool },
    /// A response guard rejected the whole (JSON) body: this reply instead.
    Reject(Reply),
    /// The body could not be guarded: this reply instead; its outcome is
    /// the request's record.
    Refuse(Reply),
}

/// The answer to one response body chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkAnswer {
    pub decision: ChunkDecision,
    /// Set once, on the chunk that finished the response's decision.
    pub record: Option<ResponseRecord>,
    /// Tool calls decided in this chunk.
    pub tools: Vec<ToolDecision>,
}

/// Where the reading of the response body stands.
enum State {
    /// Nothing to read.
    Skip,
    /// Read for its token usage only: every chunk passes unchanged.
    Usage(UsageRead),
    /// Headers skipped, placeholders to restore: the first byte tells a
    /// JSON body from an SSE stream.
    Sniff,
    /// An SSE stream guarded as it flows.
    Stream(Box<StreamGuard>),
    /// A JSON body, guarded when it is whole: held chunk by chunk when it
    /// streams (`buffered: false`), in one piece when Envoy buffered it.
    Json { held: Vec<u8>, buffered: bool },
    /// The stream guard failed or rejected: further chunks are dropped.
    Ended,
}

/// The response side of one request: decides on its headers and chunks.
pub struct ResponseDecider {
    dialect: Dialect,
    guards: Option<Arc<GuardSet>>,
    tools: Option<Arc<ToolGuard>>,
    read: ResponseRead,
    state: State,
    /// What was done so far, handed over in the record.
    tally: Tally,
    /// What the request's masks stand for (see [`Self::restore`]).
    restore: Option<Arc<Restore>>,
    /// Which response guards and tool rules run for this request.
    rules: ResponseRules,
    /// The backend, while its rules' `when:` conditions are still to be
    /// evaluated (see [`Self::conditions`]).
    pending_conditions: Option<String>,
}

impl ChunkAnswer {
    fn of(decision: ChunkDecision, record: Option<ResponseRecord>) -> ChunkAnswer {
        ChunkAnswer {
            decision,
            record,
            tools: Vec::new(),
        }
    }
}

impl ChunkDecision {
    /// These bytes in place of the chunk (no content-length change).
    fn replace(body: Vec<u8>) -> ChunkDecision {
        ChunkDecision::Replace {
            body,
            content_length: false,
        }
    }
}

impl ResponseDecider {
    /// For a request decided at its headers (`None`: no backend, nothing
    /// read). A usage read starts at once: its headers are skipped.
    pub fn new(policy: &Policy, ctx: Option<&RequestCtx>) -> ResponseDecider {
        let read = ctx.map_or(ResponseRead::Skip, |c| c.response);
        let pending_conditions = ctx
            .map(|c| &policy.backends[c.backend])
            .filter(|b| ResponseRules::conditional(b))
            .map(|b| b.name.clone());
        ResponseDecider {
            rules: ResponseRules::default(),
            pending_conditions,
            dialect: ctx.map_or(Dialect::Anthropic, |c| c.dialect),
            guards: ctx.map(|c| policy.backends[c.backend].response_guards.clone()),
            tools: ctx.and_then(|c| policy.backends[c.backend].tool_guard.clone()),
            read,
            state: match read {
                ResponseRead::UsageOnly => State::Usage(UsageRead::Sniff),
                _ => State::Skip,
            },
            tally: Tally::default(),
            restore: None,
        }
    }

    /// Evaluates the `when:` conditions of the response guards and tool
    /// rules, once per request: with the model the request body named
    /// (called after the body's decision), else at the response headers
    /// without one.
    pub fn conditions(&mut self, ctx: &RequestCtx, model: Option<&str>) {
        if let Some(backend) = self.pending_conditions.take() {
            self.rules = ResponseRules::of(
                ctx,
                &backend,
                self.guards.as_deref(),
                self.tools.as_deref(),
                model,
            );
        }
    }

    /// The request's masks: their placeholders are put back where the
    /// model repeats them. A response read without its headers (usage)
    /// becomes one that can change.
    pub fn restore(&mut self, restore: Arc<Restore>) {
        if restore.is_empty() || !self.read.is_read() {
            return;
        }
        if matches!(self.state, State::Usage(UsageRead::Sniff)) {
            self.state = State::Sniff;
        }
        self.restore = Some(restore);
    }

    /// The request body showed nothing needs the response read.
    pub fn skip(&mut self) {
        if self.read != ResponseRead::Guarded {
            self.state = State::Skip;
        }
    }

    /// Whether the response is still to be read (or guarded).
    pub fn reads_response(&self) -> bool {
        self.read == ResponseRead::Guarded || matches!(self.state, State::Usage(_) | State::Sniff)
    }

    /// The usage a response reported so far (an SSE stream's
    /// `message_start`, or OpenAI's `usage` chunk), for a stream cut short
    /// before its end: `None` when nothing was read.
    pub fn usage_so_far(&self) -> Option<(Usage, Option<String>)> {
        let guard = match &self.state {
            State::Stream(g) => g,
            State::Usage(read) => read.stream()?,
            _ => return None,
        };
        let usage = guard.usage();
        let model = guard.model().map(str::to_owned);
        (!usage.is_empty()).then_some((usage, model))
    }

    /// Whether nothing of the response body is read.
    pub fn is_skipped(&self) -> bool {
        matches!(self.state, State::Skip)
    }

    /// Decides at the response headers how the response is read: a 2xx
    /// SSE stream or JSON body of a request whose response is read.
    pub fn headers(
        &mut self,
        ctx: Option<&RequestCtx>,
        status: u16,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        end_of_stream: bool,
    ) -> ResponseHeadersDecision {
        if let Some(ctx) = ctx {
            // A request whose body named no model (none was read).
            self.conditions(ctx, None);
        }
        if self.read == ResponseRead::UsageOnly {
            // Sent only when budgets add headers: the usage read goes on as
            // the request headers set it up (the body already streams).
            if end_of_stream || !(200..300).contains(&status) {
                self.state = State::Skip;
            }
            return ResponseHeadersDecision::Continue(BodyMode::Unchanged);
        }
        self.state = State::Skip;
        if !self.read.is_read() || end_of_stream || !(200..300).contains(&status) {
            return ResponseHeadersDecision::Continue(BodyMode::Unchanged);
        }
        let ct = content_type
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let (state, mode) = match ct.as_str() {
            "text/event-stream" => (
                State::Stream(Box::new(self.stream_guard())),
                BodyMode::Streamed,
            ),
            "application/json" => (
                State::Json {
                    held: Vec::new(),
                    buffered: true,
                },
                BodyMode::Buffered,
            ),
            _ => return ResponseHeadersDecision::Continue(BodyMode::Unchanged),
        };
        match content_encoding.map(str::trim) {
            None | Some("") => {}
            Some(e) if e.eq_ignore_ascii_case("identity") => {}
            // Unread, the response only loses its token counts.
            Some(_) if self.read != ResponseRead::Guarded => {
                return ResponseHeadersDecision::Continue(BodyMode::Unchanged)
            }
            Some(_) => {
                return ResponseHeadersDecision::Refuse(Box::new(gateway_error(
                    ctx,
                    502,
                    "the provider sent a compressed response that response guards cannot read",
                )))
            }
        }
        self.state = state;
        ResponseHeadersDecision::Continue(mode)
    }

    /// Decides on one response body chunk.
    pub fn body(
        &mut self,
        ctx: Option<&RequestCtx>,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> ChunkAnswer {
        if matches!(self.state, State::Sniff) {
            match chunk.iter().find(|b| !b.is_ascii_whitespace()) {
                None => {}
                Some(b'{') => {
                    self.state = State::Json {
                        held: Vec::new(),
                        buffered: false,
                    }
                }
                Some(b) if b.is_ascii_alphabetic() || *b == b':' => {
                    self.state = State::Stream(Box::new(self.stream_guard()));
                }
                // Neither: nothing to read or restore.
                Some(_) => self.state = State::Skip,
            }
        }
        match &mut self.state {
            State::Skip | State::Sniff => ChunkAnswer::of(ChunkDecision::Pass, None),
            State::Usage(read) => {
                let found = read.push(self.dialect, chunk, end_of_stream);
                // Read whole (a JSON answer can be before Envoy's empty
                // last chunk) or unreadable: nothing more to read.
                if matches!(read, UsageRead::Off) {
                    self.state = State::Skip;
                }
                let record = found.map(|(usage, model)| self.tally.take(usage, model));
                ChunkAnswer::of(ChunkDecision::Pass, record)
            }
            State::Ended => ChunkAnswer::of(ChunkDecision::replace(Vec::new()), None),
            State::Stream(_) => self.stream_chunk(chunk, end_of_stream),
            State::Json { .. } => self.json_chunk(ctx, chunk, end_of_stream),
        }
    }
}
