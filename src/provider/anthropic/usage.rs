//! Anthropic usage: a `usage` object (a Messages response,
//! `message_start`'s `message.usage`, or `message_delta`'s `usage`) read
//! into the one [`Usage`].

use serde_json::Value;

use crate::provider::Usage;

fn count(v: &Value, key: &str) -> Option<u64> {
    v.get(key)?.as_u64()
}

/// An Anthropic `usage` object's counts.
pub(crate) fn read(usage: &Value) -> Usage {
    from_counts(|key| count(usage, key))
}

/// The counts `get` finds under Anthropic's names (a `usage` object's, or
/// a gateway's copy of them).
pub(crate) fn from_counts(get: impl Fn(&str) -> Option<u64>) -> Usage {
    Usage {
        input: get("input_tokens"),
        output: get("output_tokens"),
        cache_read: get("cache_read_input_tokens"),
        cache_creation: get("cache_creation_input_tokens"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn anthropic_json_response() {
        let u = read(&json!({
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
        let mut u = read(&json!({
            "input_tokens": 25, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 3000, "output_tokens": 1
        }));
        u.update(&read(&json!({"output_tokens": 12})));
        assert_eq!(u.input, Some(25));
        assert_eq!(u.cache_read, Some(3000));
        assert_eq!(u.output, Some(12));
        assert_eq!(u.total_input(), Some(3025));
        // a delta with cumulative input counts replaces them
        u.update(&read(&json!({
            "input_tokens": 30, "cache_read_input_tokens": 3000, "output_tokens": 40
        })));
        assert_eq!((u.input, u.output), (Some(30), Some(40)));
    }

    #[test]
    fn missing_and_odd_values() {
        assert!(read(&json!({})).is_empty());
        assert!(read(&json!({"input_tokens": "12"})).is_empty());
    }
}
