//! Token usage as providers report it, in one dialect-neutral shape:
//! decoded once per response, by the dialect's reader.

use serde::Serialize;
use serde_json::Value;

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

fn count(v: &Value, key: &str) -> Option<u64> {
    v.get(key)?.as_u64()
}

impl Usage {
    /// An Anthropic `usage` object (a Messages response, `message_start`'s
    /// `message.usage`, or `message_delta`'s `usage`).
    pub fn from_anthropic(usage: &Value) -> Usage {
        Usage {
            input: count(usage, "input_tokens"),
            output: count(usage, "output_tokens"),
            cache_read: count(usage, "cache_read_input_tokens"),
            cache_creation: count(usage, "cache_creation_input_tokens"),
        }
    }

    /// An OpenAI Chat Completions `usage` object (a JSON response, or the
    /// final streamed chunk with `stream_options.include_usage`).
    pub fn from_openai(usage: &Value) -> Usage {
        let prompt = count(usage, "prompt_tokens");
        let cached = usage
            .get("prompt_tokens_details")
            .and_then(|d| count(d, "cached_tokens"));
        Usage {
            input: prompt.map(|p| p.saturating_sub(cached.unwrap_or(0))),
            output: count(usage, "completion_tokens"),
            cache_read: cached,
            cache_creation: None,
        }
    }

    /// Later counts win: each count `later` carries replaces this one's
    /// (Anthropic: `message_delta.usage` overwrites the fields of
    /// `message_start` it carries).
    pub fn update(&mut self, later: &Usage) {
        self.input = later.input.or(self.input);
        self.output = later.output.or(self.output);
        self.cache_read = later.cache_read.or(self.cache_read);
        self.cache_creation = later.cache_creation.or(self.cache_creation);
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
    use serde_json::json;

    #[test]
    fn anthropic_json_response() {
        let u = Usage::from_anthropic(&json!({
            "input_tokens": 25, "cache_creation_input_tokens": 7,
            "cache_read_input_tokens": 100, "output_tokens": 12
        }));
        assert_eq!(
            u,
            Usage {
                input: Some(25),
                output: Some(12),
                cache_read: Some(100),
                cache_creation: Some(7)
            }
        );
        assert_eq!(u.total_input(), Some(132));
    }

    #[test]
    fn anthropic_stream_message_delta_overwrites_what_it_carries() {
        // message_start.message.usage, then message_delta.usage
        let mut u = Usage::from_anthropic(&json!({
            "input_tokens": 25, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 3000, "output_tokens": 1
        }));
        u.update(&Usage::from_anthropic(&json!({"output_tokens": 12})));
        assert_eq!(u.input, Some(25));
        assert_eq!(u.cache_read, Some(3000));
        assert_eq!(u.output, Some(12));
        assert_eq!(u.total_input(), Some(3025));
        // a delta with cumulative input counts replaces them
        u.update(&Usage::from_anthropic(&json!({
            "input_tokens": 30, "cache_read_input_tokens": 3000, "output_tokens": 40
        })));
        assert_eq!((u.input, u.output), (Some(30), Some(40)));
    }

    #[test]
    fn openai_usage_with_and_without_cache_details() {
        let u = Usage::from_openai(&json!({
            "prompt_tokens": 25, "completion_tokens": 12, "total_tokens": 37
        }));
        assert_eq!(u.input, Some(25));
        assert_eq!(u.output, Some(12));
        assert_eq!(u.cache_read, None);
        assert_eq!(u.total_input(), Some(25));

        let u = Usage::from_openai(&json!({
            "prompt_tokens": 2006, "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1920}
        }));
        assert_eq!(u.input, Some(86));
        assert_eq!(u.cache_read, Some(1920));
        assert_eq!(u.total_input(), Some(2006));
    }

    #[test]
    fn missing_and_odd_values() {
        assert!(Usage::from_anthropic(&json!({})).is_empty());
        assert!(Usage::from_openai(&json!(null)).is_empty());
        assert!(Usage::from_anthropic(&json!({"input_tokens": "12"})).is_empty());
        assert_eq!(Usage::default().total_input(), None);
    }
}
