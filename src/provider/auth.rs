//! The organisation's provider key and the header it is sent in. The
//! secret's text is cleaned here; which header a key goes in is the
//! dialect's (`anthropic::auth`, `openai::auth`).

use std::fmt;

use super::Dialect;

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
    pub fn from_raw(provider: Dialect, raw: &str) -> Result<Credential, String> {
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
        Ok(provider.provider().credential(key))
    }

    /// `key` as it is in `header`.
    pub(crate) fn in_header(header: &'static str, key: &str) -> Credential {
        Credential {
            header,
            value: key.as_bytes().to_vec(),
        }
    }

    /// `key` as `authorization: Bearer <key>`.
    pub(crate) fn bearer(key: &str) -> Credential {
        Credential {
            header: "authorization",
            value: format!("Bearer {key}").into_bytes(),
        }
    }

    pub fn header(&self) -> &'static str {
        self.header
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_pick_the_provider_header() {
        let c = Credential::from_raw(Dialect::Anthropic, "sk-ant-api03-abc\n").unwrap();
        assert_eq!(
            (c.header(), c.value()),
            ("x-api-key", &b"sk-ant-api03-abc"[..])
        );
        let c = Credential::from_raw(Dialect::Anthropic, "Bearer sk-ant-oat01-xyz").unwrap();
        assert_eq!(
            (c.header(), c.value()),
            ("authorization", &b"Bearer sk-ant-oat01-xyz"[..])
        );
        let c = Credential::from_raw(Dialect::OpenAiChat, " sk-proj-1 ").unwrap();
        assert_eq!(
            (c.header(), c.value()),
            ("authorization", &b"Bearer sk-proj-1"[..])
        );
        assert!(Credential::from_raw(Dialect::OpenAiChat, "  \n").is_err());
        assert!(Credential::from_raw(Dialect::OpenAiChat, "a\r\nx-evil: 1").is_err());
        assert!(!format!("{c:?}").contains("sk-proj"));
    }
}
