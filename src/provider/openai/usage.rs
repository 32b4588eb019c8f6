//! OpenAI Chat Completions usage: a `usage` object (a JSON response, or
//! the final streamed chunk with `stream_options.include_usage`) read into
//! the one [`Usage`]; cached prompt tokens are split out of the input.

use serde_json::Value;

use crate::provider::Usage;

fn count(v: &Value, key: &str) -> Option<u64> {
    v.get(key)?.as_u64()
}

/// An OpenAI `usage` object's counts.
pub(crate) fn read(usage: &Value) -> Usage {
    let cached = usage
        .get("prompt_tokens_details")
        .and_then(|d| count(d, "cached_tokens"));
    from_counts(
        count(usage, "prompt_tokens"),
        cached,
        count(usage, "completion_tokens"),
    )
}

/// OpenAI's counts (a `usage` object's, or a gateway's copy of them): the
/// prompt's cached tokens are split out of the input.
pub(crate) fn from_counts(
    prompt: Option<u64>,
    cached: Option<u64>,
    completion: Option<u64>,
) -> Usage {
    Usage {
        input: prompt.map(|p| p.saturating_sub(cached.unwrap_or(0))),
        output: completion,
        cache_read: cached,
        cache_creation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_usage_with_and_without_cache_details() {
        let u = read(&json!({
            "prompt_tokens": 25, "completion_tokens": 12, "total_tokens": 37
        }));
        assert_eq!(u.input, Some(25));
        assert_eq!(u.output, Some(12));
        assert_eq!(u.cache_read, None);
        assert_eq!(u.total_input(), Some(25));

        let u = read(&json!({
            "prompt_tokens": 2006, "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1920}
        }));
        assert_eq!(u.input, Some(86));
        assert_eq!(u.cache_read, Some(1920));
        assert_eq!(u.total_input(), Some(2006));
    }

    #[test]
    fn missing_and_odd_values() {
        assert!(read(&json!(null)).is_empty());
    }
}
