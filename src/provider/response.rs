//! Non-streamed JSON responses: the text a whole response body carries is
//! scanned and masked in place (only the bytes of masked string values
//! change) or the response is rejected. Which values are text is read by
//! the dialect (`anthropic::response`, `openai::response`), reached
//! through [`Dialect`]; the scan is the stream engine's window with the
//! whole text released at once.

use serde_json::value::RawValue;

use super::json::{decode, json_string, span_of, splice};
use super::stream::{
    release, EventInfo, Fired, Rejection, Step, StreamError, TextLocation, TextScanner,
};
use super::{Dialect, Usage};

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
    /// Placeholders of the request restored (text and tool inputs).
    pub restored: usize,
}

/// A text value of a response body, as the dialect found it.
pub(crate) struct ResponseText<'a> {
    pub(crate) location: TextLocation,
    /// The JSON string value.
    pub(crate) value: &'a RawValue,
    /// A value to set to `null` when the text is masked (OpenAI: the
    /// choice's `logprobs`, which would repeat the withheld tokens).
    pub(crate) extra: Option<&'a RawValue>,
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
    let texts = kind.provider().read_response(body, &mut outcome)?;
    let mut edits = Vec::new();
    for ResponseText {
        location,
        value: raw,
        extra,
    } in texts
    {
        let text = decode(raw).map_err(|e| StreamError::BadBody(format!("{location}: {e}")))?;
        match release(scanner, 0, &text, true)? {
            Step::Release {
                text: masked,
                masks,
                audits,
                restored,
                ..
            } => {
                outcome
                    .events
                    .extend(audits.into_iter().map(|(range, rule)| EventInfo {
                        event: None,
                        location,
                        range,
                        fired: Fired::Audited { rule },
                    }));
                if masks.is_empty() && restored == 0 {
                    continue;
                }
                outcome.restored += restored;
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
