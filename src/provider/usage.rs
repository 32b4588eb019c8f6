//! Token usage as providers report it, in one dialect-neutral shape:
//! decoded once per response, by the dialect's reader (`anthropic::usage`,
//! `openai::usage`).

use serde::Serialize;

/// Token counts of one request. The four counts are **disjoint**:
///
/// * `input` — input tokens neither read from nor written to the prompt
///   cache (Anthropic's `input_tokens`; OpenAI's `prompt_tokens` minus its
///   `cached_tokens`);
/// * `cache_read` — input tokens read from the cache;
/// * `cache_creation` — input tokens written to the cache;
/// * `output` — output tokens.
///
/// [`Usage::total_input`] is the OpenTelemetry GenAI
/// `gen_ai.usage.input_tokens` (all input, cached included). `None` means
/// the provider did not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cache_read: Option<u64>,
    pub cache_creation: Option<u64>,
}

impl Usage {
    /// Later counts win: each count `later` carries replaces this one's
    /// (Anthropic: `message_delta.usage` overwrites the fields of
    /// `message_start` it carries).
    pub fn update(&mut self, later: &Usage) {
        self.input = later.input.or(self.input);
        self.output = later.output.or(self.output);
        self.cache_read = later.cache_read.or(self.cache_read);
        self.cache_creation = later.cache_creation.or(self.cache_creation);
    }

    /// The counts a gateway's SSE parser read out of a streamed answer,
    /// under the provider's own names: Anthropic's `input_tokens`,
    /// `cache_read_input_tokens`, `cache_creation_input_tokens`,
    /// `output_tokens`, or OpenAI's `prompt_tokens` (cached ones included),
    /// `cached_tokens` and `completion_tokens` — read as promptgate reads
    /// them in band.
    pub fn from_gateway_counts(get: impl Fn(&str) -> Option<u64>) -> Usage {
        let (prompt, completion) = (get("prompt_tokens"), get("completion_tokens"));
        if prompt.is_some() || completion.is_some() {
            super::openai::usage::from_counts(prompt, get("cached_tokens"), completion)
        } else {
            super::anthropic::usage::from_counts(get)
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }

    /// All input tokens, cached ones included (`gen_ai.usage.input_tokens`);
    /// `None` when no input count is known.
    pub fn total_input(&self) -> Option<u64> {
        match (self.input, self.cache_read, self.cache_creation) {
            (None, None, None) => None,
            (a, b, c) => Some(a.unwrap_or(0) + b.unwrap_or(0) + c.unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_known_is_no_total() {
        assert_eq!(Usage::default().total_input(), None);
        assert!(Usage::default().is_empty());
    }
}
