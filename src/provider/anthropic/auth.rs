//! Anthropic credentials: API keys go in `x-api-key`, OAuth tokens
//! (`sk-ant-oat…`) in `authorization: Bearer`.

use crate::provider::Credential;

/// The credential for a cleaned key.
pub(crate) fn credential(key: &str) -> Credential {
    if key.starts_with("sk-ant-oat") {
        Credential::bearer(key)
    } else {
        Credential::in_header("x-api-key", key)
    }
}
