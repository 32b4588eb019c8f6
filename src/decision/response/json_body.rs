//! A JSON response body, decided when it is whole: response guards on its
//! text, the tool judge on its tool calls, the request's placeholders put
//! back. Buffered by Envoy when guarded; held here chunk by chunk when it
//! streams only to be restored (up to [`MAX_BODY_BYTES`], past which it
//! goes on as it came: nothing is lost).

use crate::provider::stream::{guard_json_body, JsonOutcome, StreamError};
use crate::provider::tool_call::{PassJudge, ToolDecision, ToolJudge};
use crate::provider::tool_json::guard_json_tools;
use crate::provider::ErrorKind;

use super::super::outcome::{gateway_error, refusal, Verdict};
use super::super::request_body::MAX_BODY_BYTES;
use super::super::request_headers::{RequestCtx, ResponseRead};
use super::{ChunkAnswer, ChunkDecision, ResponseDecider, State};

impl ResponseDecider {
    /// One chunk of the body in `State::Json` (any other state: passed).
    pub(super) fn json_chunk(
        &mut self,
        ctx: Option<&RequestCtx>,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> ChunkAnswer {
        let State::Json { held, buffered } = &mut self.state else {
            return ChunkAnswer::of(ChunkDecision::Pass, None);
        };
        let buffered = *buffered;
        if !buffered {
            // Streamed without its headers (a restoring read): held until
            // whole; past the limit everything held goes on unrestored.
            if held.len() + chunk.len() > MAX_BODY_BYTES {
                tracing::warn!(
                    "response too large to restore placeholders in; passed on as it came"
                );
                let mut body = std::mem::take(held);
                body.extend_from_slice(chunk);
                self.state = State::Skip;
                return ChunkAnswer::of(ChunkDecision::replace(body), None);
            }
            held.extend_from_slice(chunk);
            if !end_of_stream {
                return ChunkAnswer::of(ChunkDecision::replace(Vec::new()), None);
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
                self.tally.tools(&tools);
                self.tally
                    .events(&outcome.events, outcome.rejected.as_ref());
                self.tally.restored += outcome.restored;
                self.state = State::Ended;
                let record = Some(self.tally.take(outcome.usage, outcome.model));
                if let Some(rej) = outcome.rejected {
                    let reply = refusal(
                        ctx,
                        ErrorKind::Guard,
                        403,
                        &rej.message,
                        "promptgate_response_guard_reject",
                    );
                    return ChunkAnswer::of(ChunkDecision::Reject(reply), record);
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
                    None => ChunkDecision::replace(whole),
                };
                ChunkAnswer {
                    decision,
                    record,
                    tools,
                }
            }
            Err(e) if self.read != ResponseRead::Guarded => {
                // Only restoring: what cannot be read goes on as it came
                // (an error page, a malformed body).
                tracing::debug!(error = %e, "response body not read for placeholders");
                self.state = State::Ended;
                ChunkAnswer::of(ChunkDecision::replace(whole), None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "response body could not be guarded; refusing it");
                self.tally.decision = Verdict::Error;
                let reply =
                    gateway_error(ctx, 502, "promptgate could not inspect the response body");
                ChunkAnswer::of(ChunkDecision::Refuse(reply), None)
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
}
