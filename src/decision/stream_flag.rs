//! Whether a request asks for a streamed answer, read leniently (a body
//! with two `stream` members is still the dialect parser's to judge).

/// Whether a request body asks for a streamed (SSE) response: its top-level
/// `stream` member (absent or `null`: no). `None` when that cannot be told
/// here (not a JSON object, `stream` not a boolean).
pub(super) fn asks_for_stream(body: &[u8]) -> Option<bool> {
    if let Some(stream) = trailing_stream_member(body) {
        return Some(stream);
    }
    #[derive(serde::Deserialize)]
    struct Flag {
        #[serde(default)]
        stream: Option<bool>,
    }
    serde_json::from_slice::<Flag>(body)
        .ok()
        .map(|f| f.stream.unwrap_or(false))
}

/// The body's last member when it is `"stream": true|false` (Claude Code
/// puts it last), read from the end without parsing the body. Sound only
/// for a valid JSON object, which the decision core has just parsed: the
/// final `}` then closes the top-level object; a `"` preceded by `,` or `{`
/// outside a string can only open one, and `stream` cannot stand outside a
/// string, so that member is the top-level `stream`.
fn trailing_stream_member(body: &[u8]) -> Option<bool> {
    fn trim_end(b: &[u8]) -> &[u8] {
        let end = b
            .iter()
            .rposition(|c| !c.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        &b[..end]
    }
    let rest = trim_end(trim_end(body).strip_suffix(b"}")?);
    let (stream, rest) = match rest.strip_suffix(b"true") {
        Some(r) => (true, r),
        None => (false, rest.strip_suffix(b"false")?),
    };
    let rest = trim_end(trim_end(rest).strip_suffix(b":")?);
    let rest = trim_end(rest.strip_suffix(b"\"stream\"")?);
    matches!(rest.last(), Some(b',' | b'{')).then_some(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_flag_is_read_from_the_top_level_only() {
        for (b, want) in [
            (r#"{"a":1,"stream":true}"#, Some(true)),
            (r#"{"stream":false}"#, Some(false)),
            ("{\"a\":1,\n  \"stream\" :\ttrue\n}\n", Some(true)),
            (r#"{"a":{"stream":true}}"#, Some(false)),
            (r#"{"a":"x\",\"stream\":true}"}"#, Some(false)),
            (r#"{"a":["\"stream\":true"]}"#, Some(false)),
            (r#"{"stream":true,"a":1}"#, Some(true)),
            (r#"{"a":1}"#, Some(false)),
            (r#"{"stream":null}"#, Some(false)),
            (r#"{"stream":"true"}"#, None),
            (r#"{"\u0073tream":true}"#, Some(true)),
            ("not json", None),
            ("", None),
            ("[1]", None),
        ] {
            assert_eq!(asks_for_stream(b.as_bytes()), want, "{b}");
        }
        // A large body is read from its end when `stream` is last, else
        // parsed whole (the decision runs on the blocking pool for it).
        let pad = "x".repeat(2 << 20);
        let first = format!(r#"{{"stream":false,"pad":"{pad}"}}"#);
        assert_eq!(asks_for_stream(first.as_bytes()), Some(false));
        let last = format!(r#"{{"pad":"{pad}","stream":false}}"#);
        assert_eq!(asks_for_stream(last.as_bytes()), Some(false));
        // The tail check never reads a nested or quoted `stream` as the member.
        assert_eq!(trailing_stream_member(br#"{"a\"stream":true}"#), None);
        assert_eq!(asks_for_stream(br#"{"a\"stream":true}"#), Some(false));
        assert_eq!(trailing_stream_member(br#"{"xstream":true}"#), None);
        assert_eq!(trailing_stream_member(br#"{"a":{"stream":true}}"#), None);
        assert_eq!(
            trailing_stream_member(br#"{"a":1,"stream":false}"#),
            Some(false)
        );
        assert_eq!(trailing_stream_member(b"}"), None);
        assert_eq!(trailing_stream_member(b""), None);
    }
}
