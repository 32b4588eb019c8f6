//! OpenAI Chat Completions responses (non-streamed): the text values are
//! `choices[i].message.content` (a masked choice's non-null `logprobs`
//! becomes `null`); the model and usage are read on the way.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::usage::read as read_usage;
use crate::provider::json::{decode, object};
use crate::provider::response::{JsonOutcome, ResponseText};
use crate::provider::stream::{StreamError, TextLocation};

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

/// The text values of a Chat Completions response body, in order; the
/// model and usage go to `outcome`.
pub(crate) fn read<'b>(
    body: &'b str,
    outcome: &mut JsonOutcome,
) -> Result<Vec<ResponseText<'b>>, StreamError> {
    let mut texts = Vec::new();
    let c: OCompletion<'_> = object(body).map_err(StreamError::BadBody)?;
    outcome.model = c.model.and_then(|m| decode(m).ok()).map(Cow::into_owned);
    if let Some(usage) = c.usage {
        let usage: Value = serde_json::from_str(usage.get()).unwrap_or_default();
        outcome.usage.update(&read_usage(&usage));
    }
    for (pos, choice) in c.choices.iter().flatten().enumerate() {
        let index = choice.index.unwrap_or(pos as u64);
        let Some(message) = choice.message else {
            continue;
        };
        let message: OMessage<'_> = object(message.get())
            .map_err(|e| StreamError::BadBody(format!("choices[{pos}].message: {e}")))?;
        if let Some(content) = message.content {
            texts.push(ResponseText {
                location: TextLocation::Choice(index),
                value: content,
                extra: choice.logprobs,
            });
        }
    }
    Ok(texts)
}
