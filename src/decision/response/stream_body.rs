//! A guarded SSE response, chunk by chunk: what the stream guard passes,
//! rewrites or ends; a stream that cannot be read is ended with an error
//! event (fail closed: nothing after it goes on unscanned).

use super::super::outcome::Verdict;
use super::{ChunkAnswer, ChunkDecision, ResponseDecider, State};

impl ResponseDecider {
    /// One chunk of the stream in `State::Stream` (any other state: passed).
    pub(super) fn stream_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> ChunkAnswer {
        let State::Stream(guard) = &mut self.state else {
            return ChunkAnswer::of(ChunkDecision::Pass, None);
        };
        let result = guard.push(chunk, end_of_stream);
        let usage = guard.usage();
        let model = guard.model().map(str::to_owned);
        match result {
            Ok(out) => {
                self.tally.restored += out.restored;
                self.tally.events(&out.events, out.rejected.as_ref());
                self.tally.tools(&out.tools);
                let ended = out.rejected.is_some();
                if ended {
                    self.state = State::Ended;
                }
                let record = (end_of_stream || ended).then(|| self.tally.take(usage, model));
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
                tracing::warn!(error = %e, "response stream could not be guarded; ending it");
                let bytes = guard.abort("promptgate could not inspect the response stream");
                self.state = State::Ended;
                self.tally.decision = Verdict::Error;
                let record = self.tally.take(usage, model);
                ChunkAnswer::of(ChunkDecision::replace(bytes), Some(record))
            }
        }
    }
}
