//! A response read only for its token usage. Nothing here can hold back,
//! change or end the response: what cannot be read (a compressed body, an
//! error page, a malformed stream, a body over [`MAX_BODY_BYTES`]) is passed
//! on and simply not counted.

use std::sync::Arc;

use crate::provider::stream::{guard_json_body, ScanMatch, StreamGuard, TextScanner};
use crate::provider::{Dialect, Usage};

use super::request_body::MAX_BODY_BYTES;

/// The reader's state.
pub(super) enum UsageRead {
    /// No byte yet. The response headers were skipped, so the first byte
    /// tells a JSON body (`{`) from an SSE stream (a field name or `:`).
    Sniff,
    /// A JSON body, read whole at its end.
    Json(Vec<u8>),
    /// An SSE stream, parsed as it flows (nothing is scanned).
    Sse(Box<StreamGuard>),
    /// Read to the end, or unreadable.
    Off,
}

impl UsageRead {
    /// Takes the next chunk. At the end of a readable response that
    /// reported usage (or a model), returns them.
    pub(super) fn push(
        &mut self,
        dialect: Dialect,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Option<(Usage, Option<String>)> {
        if matches!(self, UsageRead::Sniff) {
            match chunk.iter().find(|b| !b.is_ascii_whitespace()) {
                None => {}
                Some(b'{') => *self = UsageRead::Json(Vec::new()),
                Some(b) if b.is_ascii_alphabetic() || *b == b':' => {
                    *self = UsageRead::Sse(Box::new(StreamGuard::new(dialect, Arc::new(NoScan))));
                }
                Some(_) => *self = UsageRead::Off,
            }
        }
        let found = match self {
            UsageRead::Sniff | UsageRead::Off => None,
            UsageRead::Json(body) if body.len() + chunk.len() > MAX_BODY_BYTES => {
                tracing::debug!("response too large to read for token usage");
                *self = UsageRead::Off;
                return None;
            }
            UsageRead::Json(body) => {
                body.extend_from_slice(chunk);
                // The whole answer may be here before its last chunk
                // (Envoy sends the end as an empty chunk of its own): read
                // once it ends like one, so the stream can end without
                // that last exchange.
                if end_of_stream || ends_an_object(body) {
                    match guard_json_body(dialect, body, &NoScan) {
                        Ok(o) => {
                            *self = UsageRead::Off;
                            Some((o.usage, o.model))
                        }
                        Err(_) => None,
                    }
                } else {
                    None
                }
            }
            UsageRead::Sse(guard) => match guard.push(chunk, end_of_stream) {
                Ok(_) if end_of_stream => Some((guard.usage(), guard.model().map(str::to_owned))),
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(error = %e, "response stream not read for token usage");
                    *self = UsageRead::Off;
                    return None;
                }
            },
        };
        if end_of_stream {
            *self = UsageRead::Off;
        }
        // An error body reports neither.
        found.filter(|(usage, model)| *usage != Usage::default() || model.is_some())
    }
}

/// Whether `body` ends with `}` (trailing whitespace aside): the only way
/// a complete JSON answer ends, so the only time to try reading it before
/// its last chunk.
fn ends_an_object(body: &[u8]) -> bool {
    body.iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b'}')
}

impl UsageRead {
    /// The SSE stream being read, if it is one.
    pub(super) fn stream(&self) -> Option<&StreamGuard> {
        match self {
            UsageRead::Sse(g) => Some(g),
            _ => None,
        }
    }
}

/// The scanner of a response read only for its token usage: finds nothing.
pub(super) struct NoScan;

impl TextScanner for NoScan {
    fn window(&self) -> usize {
        0
    }

    fn scan(&self, _text: &str) -> Vec<ScanMatch> {
        Vec::new()
    }
}
