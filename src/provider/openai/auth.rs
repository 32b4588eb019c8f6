//! OpenAI credentials: every key goes in `authorization: Bearer`.

use crate::provider::Credential;

/// The credential for a cleaned key.
pub(crate) fn credential(key: &str) -> Credential {
    Credential::bearer(key)
}
