//! Pinning a request's model: the one byte-range edit promptgate makes to
//! a request body ([`model_splice`]).

use std::ops::Range;

use super::ParsedRequest;

/// A byte-range replacement in a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    pub range: Range<usize>,
    pub bytes: Vec<u8>,
}

/// The splice that sets the body's `model` to `model`, or `None` when it
/// already is. Only the bytes of the `model` value change (kind to prompt
/// caching); a body with no `model` gets one as its first member.
pub fn model_splice(body: &str, parsed: &ParsedRequest<'_>, model: &str) -> Option<Splice> {
    if parsed.model.as_deref() == Some(model) {
        return None;
    }
    let literal = serde_json::to_string(model).expect("strings always serialise");
    match &parsed.model_raw {
        Some(span) => Some(Splice {
            range: span.clone(),
            bytes: literal.into_bytes(),
        }),
        None => {
            let open = body.find('{')?;
            let empty = body[open + 1..].trim_start().starts_with('}');
            let mut bytes = format!("\"model\":{literal}").into_bytes();
            if !empty {
                bytes.push(b',');
            }
            Some(Splice {
                range: open + 1..open + 1,
                bytes,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{parse_request, Dialect, KindSet};

    fn patch_model(body: &str, parsed: &ParsedRequest<'_>, model: &str) -> Option<Vec<u8>> {
        model_splice(body, parsed, model).map(|s| {
            let mut out = body.as_bytes()[..s.range.start].to_vec();
            out.extend_from_slice(&s.bytes);
            out.extend_from_slice(&body.as_bytes()[s.range.end..]);
            out
        })
    }

    #[test]
    fn model_patch_touches_only_the_model_bytes() {
        let body = r#"{"max_tokens": 5, "model" : "claude-x", "messages": []}"#;
        let parsed = parse_request(Dialect::Anthropic, body, KindSet::ALL).unwrap();
        let out = patch_model(body, &parsed, "claude-opus-4-6").unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"max_tokens": 5, "model" : "claude-opus-4-6", "messages": []}"#
        );
        let parsed = parse_request(
            Dialect::Anthropic,
            std::str::from_utf8(&out).unwrap(),
            KindSet::ALL,
        )
        .unwrap();
        assert!(patch_model(
            std::str::from_utf8(&out).unwrap(),
            &parsed,
            "claude-opus-4-6"
        )
        .is_none());

        let body = r#" { "messages": [] }"#;
        let parsed = parse_request(Dialect::Anthropic, body, KindSet::ALL).unwrap();
        let out = patch_model(body, &parsed, "m\"1").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "m\"1");
        let body = "{}";
        let out = patch_model(
            body,
            &parse_request(Dialect::Anthropic, body, KindSet::ALL).unwrap(),
            "m",
        )
        .unwrap();
        assert_eq!(out, br#"{"model":"m"}"#);
    }
}
