//! The response decisions: at the response headers, how the response is
//! read; then, chunk by chunk, what reaches the client (a guarded SSE
//! stream, a guarded JSON body, or a body read only for its token usage).
//! The adapter translates the answers into ext_proc messages and records
//! the [`ResponseRecord`] when one is finished.

use std::sync::Arc;

use crate::guard::tool::{ActiveTools, ToolGuard};
use crate::guard::{ActiveGuards, GuardSet};
use crate::policy::Policy;
use crate::provider::restore::{Restore, Restoring};
use crate::provider::stream::TextScanner;
use crate::provider::stream::{
    guard_json_body, EventInfo, Fired as StreamFired, JsonOutcome, Rejection, StreamError,
    StreamGuard,
};
use crate::provider::tool_call::{PassJudge, ToolDecision, ToolJudge};
use crate::provider::tool_json::guard_json_tools;
use crate::provider::{Dialect, ErrorKind, Usage};

use super::conditions::ResponseRules;
use super::outcome::{gateway_error, refusal, Reply, Verdict, MAX_FIRED};
use super::request_body::MAX_BODY_BYTES;
use super::request_headers::{RequestCtx, ResponseRead};
use super::usage_read::{NoScan, UsageRead};

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

/// The record of a response decision (never response text), complete at
/// the end of the response or when it was ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRecord {
    pub decision: Verdict,
    pub rule: Option<String>,
    pub location: Option<String>,
    pub masked: usize,
    pub usage: Usage,
    pub model: Option<String>,
    /// Tool calls blocked in the response.
    pub tools_blocked: usize,
    /// Placeholders of the request put back (text and tool inputs).
    pub restored: usize,
    /// Matches of shadow (`Audit`) response guards: recorded, nothing
    /// changed.
    pub audited: usize,
    /// Their rules, one per match (at most [`MAX_FIRED`]).
    pub audited_rules: Vec<String>,
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
    decision: Verdict,
    rule: Option<String>,
    location: Option<String>,
    masked: usize,
    tools_blocked: usize,
    /// What the request's masks stand for (see [`Self::restore`]).
    restore: Option<Arc<Restore>>,
    restored: usize,
    /// Which response guards and tool rules run for this request.
    rules: ResponseRules,
    /// The backend, while its rules' `when:` conditions are still to be
    /// evaluated (see [`Self::conditions`]).
    pending_conditions: Option<String>,
    audited: usize,
    audited_rules: Vec<String>,
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
            audited: 0,
            audited_rules: Vec::new(),
            dialect: ctx.map_or(Dialect::Anthropic, |c| c.dialect),
            guards: ctx.map(|c| policy.backends[c.backend].response_guards.clone()),
            tools: ctx.and_then(|c| policy.backends[c.backend].tool_guard.clone()),
            read,
            state: match read {
                ResponseRead::UsageOnly => State::Usage(UsageRead::Sniff),
                _ => State::Skip,
            },
            decision: Verdict::Allow,
            rule: None,
            location: None,
            masked: 0,
            tools_blocked: 0,
            restore: None,
            restored: 0,
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

    /// The scanner of response text: the response guards, and the
    /// request's placeholders when it has some.
    fn scanner(&self) -> Arc<dyn TextScanner + Send + Sync> {
        let guards = self.guards_scanner();
        match &self.restore {
            Some(restore) => Arc::new(Restoring {
                guards: Some(guards),
                restore: restore.clone(),
            }),
            None => guards,
        }
    }

    /// The response guards as a scanner (one that finds nothing without).
    fn guards_scanner(&self) -> Arc<dyn TextScanner + Send + Sync> {
        match (&self.guards, &self.rules.guards) {
            (Some(g), Some(active)) => Arc::new(ActiveGuards {
                guards: g.clone(),
                active: active.clone(),
            }),
            (Some(g), None) => g.clone(),
            (None, _) => Arc::new(NoScan),
        }
    }

    /// The tool judge of this request: the tool guard's rules that apply.
    fn tool_judge(&self) -> Option<Arc<dyn ToolJudge>> {
        let tools = self.tools.as_ref()?;
        Some(match &self.rules.tools {
            Some(active) => Arc::new(ActiveTools {
                guard: tools.clone(),
                active: active.clone(),
            }),
            None => tools.clone(),
        })
    }

    /// An SSE stream's guard: response guards, tool judge, restore (which
    /// wraps the scanner itself).
    fn stream_guard(&self) -> StreamGuard {
        let mut guard = StreamGuard::new(self.dialect, self.guards_scanner());
        if let Some(judge) = self.tool_judge() {
            guard = guard.with_tool_judge(judge);
        }
        if let Some(restore) = &self.restore {
            guard = guard.with_restore(restore.clone());
        }
        guard
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
        let answer = |decision, record| ChunkAnswer {
            decision,
            record,
            tools: Vec::new(),
        };
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
            State::Skip | State::Sniff => answer(ChunkDecision::Pass, None),
            State::Usage(read) => {
                let found = read.push(self.dialect, chunk, end_of_stream);
                // Read whole (a JSON answer can be before Envoy's empty
                // last chunk) or unreadable: nothing more to read.
                if matches!(read, UsageRead::Off) {
                    self.state = State::Skip;
                }
                let record = found.map(|(usage, model)| self.record(usage, model));
                answer(ChunkDecision::Pass, record)
            }
            State::Ended => answer(
                ChunkDecision::Replace {
                    body: Vec::new(),
                    content_length: false,
                },
                None,
            ),
            State::Stream(guard) => {
                let result = guard.push(chunk, end_of_stream);
                let usage = guard.usage();
                let model = guard.model().map(str::to_owned);
                match result {
                    Ok(out) => {
                        self.restored += out.restored;
                        self.note(&out.events, out.rejected.as_ref());
                        self.note_tools(&out.tools);
                        let ended = out.rejected.is_some();
                        if ended {
                            self.state = State::Ended;
                        }
                        let record = (end_of_stream || ended).then(|| self.record(usage, model));
                        let decision = if out.bytes == chunk {
                            ChunkDecision::Pass
                        } else {
                            ChunkDecision::Replace {
                                body: out.bytes,
                                content_length: false,
                            }
                        };
                        ChunkAnswer {
                            decision,
                            record,
                            tools: out.tools,
                        }
                    }
                    Err(e) => {
                        // Fail closed: end the stream with an error event;
                        // the rest is never forwarded unscanned.
                        tracing::warn!(error = %e, "response stream could not be guarded; ending it");
                        let bytes = guard.abort("promptgate could not inspect the response stream");
                        self.state = State::Ended;
                        self.decision = Verdict::Error;
                        let record = self.record(usage, model);
                        answer(
                            ChunkDecision::Replace {
                                body: bytes,
                                content_length: false,
                            },
                            Some(record),
                        )
                    }
                }
            }
            State::Json { held, buffered } => {
                let buffered = *buffered;
                if !buffered {
                    // Streamed without its headers (a restoring read): held
                    // until whole; past the limit everything held goes on
                    // unrestored, nothing is lost.
                    if held.len() + chunk.len() > MAX_BODY_BYTES {
                        tracing::warn!(
                            "response too large to restore placeholders in; passed on as it came"
                        );
                        let mut body = std::mem::take(held);
                        body.extend_from_slice(chunk);
                        self.state = State::Skip;
                        return answer(
                            ChunkDecision::Replace {
                                body,
                                content_length: false,
                            },
                            None,
                        );
                    }
                    held.extend_from_slice(chunk);
                    if !end_of_stream {
                        return answer(
                            ChunkDecision::Replace {
                                body: Vec::new(),
                                content_length: false,
                            },
                            None,
                        );
                    }
                }
                let whole = if buffered {
                    chunk.to_vec()
                } else {
                    std::mem::take(held)
                };
                let scanner = self.scanner();
                let guarded = guard_json_body(self.dialect, &whole, scanner.as_ref())
                    .and_then(|outcome| self.json_tools(&whole, outcome));
                match guarded {
                    Ok((outcome, tools)) => {
                        self.note_tools(&tools);
                        self.note(&outcome.events, outcome.rejected.as_ref());
                        self.restored += outcome.restored;
                        self.state = State::Ended;
                        let record = Some(self.record(outcome.usage, outcome.model));
                        if let Some(rej) = outcome.rejected {
                            let reply = refusal(
                                ctx,
                                ErrorKind::Guard,
                                403,
                                &rej.message,
                                "promptgate_response_guard_reject",
                            );
                            return answer(ChunkDecision::Reject(reply), record);
                        }
                        let decision = match outcome.body {
                            Some(body) => ChunkDecision::Replace {
                                body,
                                content_length: buffered,
                            },
                            None if buffered => {
                                self.state = State::Skip;
                                ChunkDecision::Pass
                            }
                            // The held chunks go out now, unchanged.
                            None => ChunkDecision::Replace {
                                body: whole,
                                content_length: false,
                            },
                        };
                        ChunkAnswer {
                            decision,
                            record,
                            tools,
                        }
                    }
                    Err(e) if self.read != ResponseRead::Guarded => {
                        // Only restoring: what cannot be read goes on as
                        // it came (an error page, a malformed body).
                        tracing::debug!(error = %e, "response body not read for placeholders");
                        self.state = State::Ended;
                        answer(
                            ChunkDecision::Replace {
                                body: whole,
                                content_length: false,
                            },
                            None,
                        )
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "response body could not be guarded; refusing it");
                        self.decision = Verdict::Error;
                        let reply = gateway_error(
                            ctx,
                            502,
                            "promptgate could not inspect the response body",
                        );
                        answer(ChunkDecision::Refuse(reply), None)
                    }
                }
            }
        }
    }

    /// Judges the tool calls of a whole body (after text masking), with
    /// the request's placeholders restored in their inputs.
    fn json_tools(
        &self,
        original: &[u8],
        mut outcome: JsonOutcome,
    ) -> Result<(JsonOutcome, Vec<ToolDecision>), StreamError> {
        let own = self.tool_judge();
        let judge: &dyn ToolJudge = match (&own, &self.restore) {
            (Some(judge), _) => judge.as_ref(),
            (None, Some(_)) => &PassJudge,
            (None, None) => return Ok((outcome, Vec::new())),
        };
        if outcome.rejected.is_some() {
            return Ok((outcome, Vec::new()));
        }
        let body = outcome.body.as_deref().unwrap_or(original);
        let text = std::str::from_utf8(body)
            .map_err(|_| StreamError::BadBody("the body is not valid UTF-8".into()))?;
        let judged = guard_json_tools(self.dialect, text, judge, self.restore.as_deref())?;
        if let Some(body) = judged.body {
            outcome.body = Some(body.into_bytes());
        }
        outcome.restored += judged.restored;
        let mut tools = judged.tools;
        if self.tools.is_none() {
            // The pass judge's allows are not decisions.
            tools.retain(|t| t.verdict.is_blocked());
        }
        Ok((outcome, tools))
    }

    fn note_tools(&mut self, tools: &[ToolDecision]) {
        self.tools_blocked += tools.iter().filter(|t| t.verdict.is_blocked()).count();
    }

    /// Accumulates what response guards did.
    fn note(&mut self, events: &[EventInfo], rejected: Option<&Rejection>) {
        // Shadow rules: recorded, they decide nothing.
        for e in events {
            if let StreamFired::Audited { rule } = &e.fired {
                self.audited += 1;
                if self.audited_rules.len() < MAX_FIRED {
                    self.audited_rules.push(rule.clone());
                }
            }
        }
        let events: Vec<&EventInfo> = events
            .iter()
            .filter(|e| !matches!(e.fired, StreamFired::Audited { .. }))
            .collect();
        let masked = events
            .iter()
            .filter(|e| matches!(e.fired, StreamFired::Masked { .. }))
            .count();
        self.masked += masked;
        if self.location.is_none() {
            self.location = events.first().map(|e| match e.event {
                Some(i) => format!("{} (event {i})", e.location),
                None => e.location.to_string(),
            });
        }
        if let Some(rej) = rejected {
            self.decision = Verdict::Reject;
            self.rule = Some(rej.rule.clone());
            self.location = Some(match rej.event {
                Some(i) => format!("{} (event {i})", rej.location),
                None => rej.location.to_string(),
            });
        } else if self.masked > 0 && self.decision == Verdict::Allow {
            self.decision = Verdict::Mask;
            if self.rule.is_none() {
                self.rule = events.first().map(|e| match &e.fired {
                    StreamFired::Masked { placeholder } => placeholder.clone(),
                    StreamFired::Rejected { rule } | StreamFired::Audited { rule } => rule.clone(),
                });
            }
        }
    }

    /// The record so far, handed over once: the next starts afresh.
    fn record(&mut self, usage: Usage, model: Option<String>) -> ResponseRecord {
        let record = ResponseRecord {
            decision: self.decision,
            rule: self.rule.take(),
            location: self.location.take(),
            masked: self.masked,
            usage,
            model,
            tools_blocked: self.tools_blocked,
            restored: self.restored,
            audited: self.audited,
            audited_rules: std::mem::take(&mut self.audited_rules),
        };
        self.audited = 0;
        self.tools_blocked = 0;
        self.restored = 0;
        self.decision = Verdict::Allow;
        self.masked = 0;
        record
    }
}
