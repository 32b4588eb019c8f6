//! Provider models: which text of a request is scanned, how a body is
//! patched, what an error looks like and how credentials are sent.

pub mod anthropic;
pub mod encoding;
pub mod openai;

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde_json::value::RawValue;

/// The provider a backend talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Anthropic,
    OpenAi,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
        }
    }
}

/// The organisation's provider key, as the header it is sent in.
#[derive(Clone)]
pub struct Credential {
    header: &'static str,
    value: Vec<u8>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}: <redacted>)", self.header)
    }
}

impl Credential {
    /// Builds the credential from a secret's raw text: surrounding white
    /// space and a leading `Bearer ` are dropped. Anthropic keys go in
    /// `x-api-key`, except OAuth tokens (`sk-ant-oat…`) which go in
    /// `authorization: Bearer`; OpenAI keys go in `authorization: Bearer`.
    pub fn from_raw(provider: ProviderKind, raw: &str) -> Result<Credential, String> {
        let key = raw.trim();
        let key = key
            .strip_prefix("Bearer ")
            .or_else(|| key.strip_prefix("bearer "))
            .unwrap_or(key)
            .trim();
        if key.is_empty() {
            return Err("the key is empty".into());
        }
        if key.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err("the key holds spaces or control characters".into());
        }
        Ok(match provider {
            ProviderKind::Anthropic if !key.starts_with("sk-ant-oat") => Credential {
                header: "x-api-key",
                value: key.as_bytes().to_vec(),
            },
            _ => Credential {
                header: "authorization",
                value: format!("Bearer {key}").into_bytes(),
            },
        })
    }

    pub fn header(&self) -> &'static str {
        self.header
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

/// Who wrote a piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// What kind of part a text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// The system prompt.
    System,
    /// Message text (string content or a text block).
    Text,
    /// A tool's output sent back to the model.
    ToolResult,
}

/// Where a text sits in the request body, e.g. `messages[3].content[1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Top-level `system` (Anthropic), optionally a block of it.
    System { block: Option<u32> },
    /// `messages[index].content`, optionally a block, optionally a block
    /// nested in it (tool_result content).
    Message {
        index: u32,
        block: Option<u32>,
        sub: Option<u32>,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Location::System { block: None } => write!(f, "system"),
            Location::System { block: Some(b) } => write!(f, "system[{b}]"),
            Location::Message { index, block, sub } => {
                write!(f, "messages[{index}].content")?;
                if let Some(b) = block {
                    write!(f, "[{b}]")?;
                }
                if let Some(s) = sub {
                    write!(f, ".content[{s}]")?;
                }
                Ok(())
            }
        }
    }
}

/// One piece of text extracted from a request body.
#[derive(Debug, Clone)]
pub struct TextSegment<'a> {
    pub location: Location,
    pub role: Role,
    pub kind: PartKind,
    /// The decoded text.
    pub text: Cow<'a, str>,
    /// Byte range of the JSON string literal (quotes included) in the body.
    pub raw: Range<usize>,
}

impl crate::guard::Segment for TextSegment<'_> {
    fn text(&self) -> &str {
        &self.text
    }
}

/// What a request body yielded.
#[derive(Debug, Default)]
pub struct ParsedRequest<'a> {
    /// Byte range of the `model` value in the body, if present.
    pub model_raw: Option<Range<usize>>,
    /// The decoded model name, if it is a string.
    pub model: Option<Cow<'a, str>>,
    /// The texts guards read, in body order.
    pub segments: Vec<TextSegment<'a>>,
}

/// A request body that cannot be read as the route's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(pub String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Byte range of a raw JSON value within the body it was borrowed from.
pub(crate) fn span_of(body: &str, raw: &RawValue) -> Range<usize> {
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    debug_assert!(start + raw.get().len() <= body.len());
    start..start + raw.get().len()
}

/// Decodes a raw JSON string literal, borrowing when it has no escapes.
pub(crate) fn decode_str<'a>(
    raw: &'a RawValue,
    place: impl FnOnce() -> String,
) -> Result<Cow<'a, str>, BodyError> {
    serde_json::from_str::<Cow<'a, str>>(raw.get())
        .map_err(|_| BodyError(format!("{}: expected a string", place())))
}

/// First significant byte of a raw JSON value.
pub(crate) fn first_byte(raw: &RawValue) -> u8 {
    raw.get().as_bytes().first().copied().unwrap_or(b'n')
}

/// Parses a request body of the given schema.
pub fn parse_request(openai_schema: bool, body: &str) -> Result<ParsedRequest<'_>, BodyError> {
    if !body.trim_start().starts_with('{') {
        return Err(BodyError("the body must be a JSON object".into()));
    }
    if openai_schema {
        openai::parse_request(body)
    } else {
        anthropic::parse_request(body)
    }
}

/// Returns the body with its `model` set to `model`, or `None` when it
/// already is. Only the bytes of the `model` value change (kind to prompt
/// caching); a body with no `model` gets one as its first member.
pub fn patch_model(body: &str, parsed: &ParsedRequest<'_>, model: &str) -> Option<Vec<u8>> {
    if parsed.model.as_deref() == Some(model) {
        return None;
    }
    let literal = serde_json::to_string(model).expect("strings always serialise");
    let mut out = Vec::with_capacity(body.len() + literal.len() + 10);
    match &parsed.model_raw {
        Some(span) => {
            out.extend_from_slice(&body.as_bytes()[..span.start]);
            out.extend_from_slice(literal.as_bytes());
            out.extend_from_slice(&body.as_bytes()[span.end..]);
        }
        None => {
            let open = body.find('{')?;
            let rest = &body[open + 1..];
            let empty = rest.trim_start().starts_with('}');
            out.extend_from_slice(&body.as_bytes()[..=open]);
            out.extend_from_slice(b"\"model\":");
            out.extend_from_slice(literal.as_bytes());
            if !empty {
                out.push(b',');
            }
            out.extend_from_slice(rest.as_bytes());
        }
    }
    Some(out)
}

/// The error shape a client expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    Anthropic,
    OpenAi,
}

/// Why promptgate answers with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A guard rejected the request.
    Guard,
    /// The body could not be read.
    BadRequest,
    /// The body is too large to inspect.
    TooLarge,
    /// The body is encoded in a way promptgate does not read.
    UnsupportedEncoding,
    /// The gateway itself is misconfigured or failed.
    Gateway,
}

/// Renders a provider-shaped JSON error body.
pub fn error_body(style: ErrorStyle, kind: ErrorKind, status: u16, message: &str) -> Vec<u8> {
    use serde_json::json;
    let value = match style {
        ErrorStyle::Anthropic => {
            let ty = match status {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                s if s >= 500 => "api_error",
                _ => "invalid_request_error",
            };
            json!({"type": "error", "error": {"type": ty, "message": message}})
        }
        ErrorStyle::OpenAi => {
            let (ty, code) = match kind {
                ErrorKind::Guard => ("invalid_request_error", "content_policy_violation"),
                ErrorKind::BadRequest => ("invalid_request_error", "invalid_request_body"),
                ErrorKind::TooLarge => ("invalid_request_error", "request_too_large"),
                ErrorKind::UnsupportedEncoding => {
                    ("invalid_request_error", "unsupported_content_encoding")
                }
                ErrorKind::Gateway => ("server_error", "gateway_error"),
            };
            json!({"error": {"message": message, "type": ty, "param": null, "code": code}})
        }
    };
    serde_json::to_vec(&value).expect("json values always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_pick_the_provider_header() {
        let c = Credential::from_raw(ProviderKind::Anthropic, "sk-ant-api03-abc\n").unwrap();
        assert_eq!(
            (c.header(), c.value()),
            ("x-api-key", &b"sk-ant-api03-abc"[..])
        );
        let c = Credential::from_raw(ProviderKind::Anthropic, "Bearer sk-ant-oat01-xyz").unwrap();
        assert_eq!(
            (c.header(), c.value()),
            ("authorization", &b"Bearer sk-ant-oat01-xyz"[..])
        );
        let c = Credential::from_raw(ProviderKind::OpenAi, " sk-proj-1 ").unwrap();
        assert_eq!(
            (c.header(), c.value()),
            ("authorization", &b"Bearer sk-proj-1"[..])
        );
        assert!(Credential::from_raw(ProviderKind::OpenAi, "  \n").is_err());
        assert!(Credential::from_raw(ProviderKind::OpenAi, "a\r\nx-evil: 1").is_err());
        assert!(!format!("{c:?}").contains("sk-proj"));
    }

    #[test]
    fn model_patch_touches_only_the_model_bytes() {
        let body = r#"{"max_tokens": 5, "model" : "claude-x", "messages": []}"#;
        let parsed = parse_request(false, body).unwrap();
        let out = patch_model(body, &parsed, "claude-opus-4-6").unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"max_tokens": 5, "model" : "claude-opus-4-6", "messages": []}"#
        );
        let parsed = parse_request(false, std::str::from_utf8(&out).unwrap()).unwrap();
        assert!(patch_model(
            std::str::from_utf8(&out).unwrap(),
            &parsed,
            "claude-opus-4-6"
        )
        .is_none());

        let body = r#" { "messages": [] }"#;
        let parsed = parse_request(false, body).unwrap();
        let out = patch_model(body, &parsed, "m\"1").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "m\"1");
        let body = "{}";
        let out = patch_model(body, &parse_request(false, body).unwrap(), "m").unwrap();
        assert_eq!(out, br#"{"model":"m"}"#);
    }

    #[test]
    fn error_bodies_have_the_provider_shape() {
        let a: serde_json::Value = serde_json::from_slice(&error_body(
            ErrorStyle::Anthropic,
            ErrorKind::Guard,
            403,
            "no \"x\"",
        ))
        .unwrap();
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "permission_error");
        assert_eq!(a["error"]["message"], "no \"x\"");
        let o: serde_json::Value =
            serde_json::from_slice(&error_body(ErrorStyle::OpenAi, ErrorKind::Guard, 403, "no"))
                .unwrap();
        assert_eq!(o["error"]["message"], "no");
        assert_eq!(o["error"]["code"], "content_policy_violation");
        assert!(o["error"]["type"].is_string());
    }

    #[test]
    fn locations_read_like_json_paths() {
        assert_eq!(Location::System { block: Some(2) }.to_string(), "system[2]");
        assert_eq!(
            Location::Message {
                index: 3,
                block: Some(1),
                sub: None
            }
            .to_string(),
            "messages[3].content[1]"
        );
        assert_eq!(
            Location::Message {
                index: 4,
                block: Some(0),
                sub: Some(2)
            }
            .to_string(),
            "messages[4].content[0].content[2]"
        );
        assert_eq!(
            Location::Message {
                index: 0,
                block: None,
                sub: None
            }
            .to_string(),
            "messages[0].content"
        );
    }
}
