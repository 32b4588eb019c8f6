//! Anthropic Messages responses (non-streamed): the text values of a
//! message are the `text` of its `text` content blocks; the model and
//! usage are read on the way.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::stream::ABlock;
use super::usage::read as read_usage;
use crate::provider::json::{decode, object};
use crate::provider::response::{JsonOutcome, ResponseText};
use crate::provider::stream::{StreamError, TextLocation};

#[derive(Deserialize)]
struct AMessage<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content: Option<Vec<ABlock<'a>>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

/// The text values of a Messages response body, in order; the model and
/// usage go to `outcome`.
pub(crate) fn read<'b>(
    body: &'b str,
    outcome: &mut JsonOutcome,
) -> Result<Vec<ResponseText<'b>>, StreamError> {
    let mut texts = Vec::new();
    let msg: AMessage<'_> = object(body).map_err(StreamError::BadBody)?;
    outcome.model = msg.model.and_then(|m| decode(m).ok()).map(Cow::into_owned);
    if let Some(usage) = msg.usage {
        let usage: Value = serde_json::from_str(usage.get()).unwrap_or_default();
        outcome.usage.update(&read_usage(&usage));
    }
    for (i, block) in msg.content.iter().flatten().enumerate() {
        if let (Some("text"), Some(text)) = (block.kind.as_deref(), block.text) {
            texts.push(ResponseText {
                location: TextLocation::Content(i as u64),
                value: text,
                extra: None,
            });
        }
    }
    Ok(texts)
}
