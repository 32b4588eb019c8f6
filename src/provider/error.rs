//! Errors promptgate answers with itself: why ([`ErrorKind`]), and the
//! provider-shaped JSON body the client's SDK expects ([`error_body`]).

use super::Dialect;

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
    /// The caller is not known (no verified identity).
    Unauthenticated,
    /// A budget of the caller is spent (429; Anthropic `rate_limit_error`,
    /// OpenAI `rate_limit_exceeded`).
    RateLimited,
}

/// Renders a provider-shaped JSON error body (see [`Dialect::error_body`]).
pub fn error_body(style: Dialect, kind: ErrorKind, status: u16, message: &str) -> Vec<u8> {
    style.error_body(kind, status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_have_the_provider_shape() {
        let a: serde_json::Value = serde_json::from_slice(&error_body(
            Dialect::Anthropic,
            ErrorKind::Guard,
            403,
            "no \"x\"",
        ))
        .unwrap();
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "permission_error");
        assert_eq!(a["error"]["message"], "no \"x\"");
        let o: serde_json::Value = serde_json::from_slice(&error_body(
            Dialect::OpenAiChat,
            ErrorKind::Guard,
            403,
            "no",
        ))
        .unwrap();
        assert_eq!(o["error"]["message"], "no");
        assert_eq!(o["error"]["code"], "content_policy_violation");
        assert!(o["error"]["type"].is_string());
    }
}
