//! Placeholders: what a masked value becomes, `<KIND:tag>`.
//!
//! The kind names what was found (`AWS_SECRET_KEY`, a named guard's name);
//! the tag is the first 24 bits of HMAC-SHA256 over the kind and the value,
//! keyed by the deployment's [`MaskKey`], in hex. So the same value gives
//! the same placeholder on every turn and every replica (the provider's
//! prompt cache keeps hitting on a history that holds it), different values
//! different placeholders (the model can tell two keys apart, and a
//! placeholder it repeats can be [restored](crate::provider::restore) to
//! exactly the value it stands for), and nobody without the key can compute
//! the tag of a guessed low-entropy value (an SSN, a phone number) to learn
//! which value was masked.
//!
//! Tags are short on purpose (placeholders sit in prompts); two values of
//! one kind in one request share a tag with probability about n²/2²⁵, and
//! such a placeholder is then never restored (see `Restore::insert`).

use std::sync::{Arc, OnceLock};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Fewest bytes a configured key may have.
pub const MIN_KEY_BYTES: usize = 16;

/// The key of placeholder tags: deployment-wide (`maskKey`), or random per
/// process when none is configured.
#[derive(Clone)]
pub struct MaskKey {
    mac: Hmac<Sha256>,
    /// Where the key came from, for logs (never the key).
    pub source: KeySource,
}

/// Where a [`MaskKey`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `maskKey` of the settings.
    Configured,
    /// Random, made once per process (tags change on restart and differ
    /// between replicas).
    ProcessRandom,
}

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskKey")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl PartialEq for MaskKey {
    /// Keys are compared by what they do: the tag of a fixed probe.
    fn eq(&self, other: &Self) -> bool {
        self.tag("", "promptgate key probe") == other.tag("", "promptgate key probe")
    }
}

impl MaskKey {
    /// A configured key: any bytes, at least [`MIN_KEY_BYTES`] of them
    /// (surrounding white space of a mounted file is not part of it).
    pub fn new(bytes: &[u8]) -> Result<MaskKey, String> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_KEY_BYTES {
            return Err(format!(
                "a mask key needs at least {MIN_KEY_BYTES} bytes (this one has {}); make one with `openssl rand -hex 32`",
                trimmed.len()
            ));
        }
        Ok(MaskKey {
            mac: Hmac::new_from_slice(trimmed).expect("HMAC takes keys of any length"),
            source: KeySource::Configured,
        })
    }

    /// The key of this process when none is configured: 32 random bytes,
    /// made once, so policy reloads keep their placeholders.
    pub fn process_random() -> Arc<MaskKey> {
        static KEY: OnceLock<Arc<MaskKey>> = OnceLock::new();
        KEY.get_or_init(|| {
            let mut bytes = [0u8; 32];
            // Without an OS random source there is no safe key to make.
            getrandom::fill(&mut bytes).expect("the OS random source is available");
            Arc::new(MaskKey {
                mac: Hmac::new_from_slice(&bytes).expect("HMAC takes keys of any length"),
                source: KeySource::ProcessRandom,
            })
        })
        .clone()
    }

    /// The tag of `value` masked as `kind`: 6 lower-case hex digits.
    pub fn tag(&self, kind: &str, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(6);
        for b in &digest[..3] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    /// The placeholder of `value` for a detector whose bare placeholder is
    /// `base` (`<CREDIT_CARD>`, a named guard's `<NAME>`, `<masked>`):
    /// `<CREDIT_CARD:3f9a1c>`. A base that is not in angle brackets is the
    /// kind as it is.
    pub fn placeholder(&self, base: &str, value: &str) -> String {
        let kind = kind_of(base);
        format!("<{kind}:{}>", self.tag(kind, value))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The bare placeholder of a rule named `name`: upper snake case in angle
/// brackets (`card-numbers` → `<CARD_NUMBERS>`).
pub fn bare(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("<{upper}>")
}

/// The kind named by a bare placeholder: `<CREDIT_CARD>` → `CREDIT_CARD`.
pub fn kind_of(base: &str) -> &str {
    base.strip_prefix('<')
        .and_then(|b| b.strip_suffix('>'))
        .unwrap_or(base)
}

/// Whether `text` has the shape of a tagged placeholder: `<`, a kind of
/// letters, digits, `_`, `-` or `.`, `:`, six hex digits, `>`.
pub fn is_tagged(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
        return false;
    };
    let Some((kind, tag)) = inner.rsplit_once(':') else {
        return false;
    };
    !kind.is_empty()
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && tag.len() == 6
        && tag.bytes().all(|b| HEX.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_tag_other_value_or_key_other_tag() {
        let a = MaskKey::new(b"0123456789abcdef0123").unwrap();
        let b = MaskKey::new(b"  0123456789abcdef0123\n").unwrap();
        let c = MaskKey::new(b"another key of sixteen+ bytes").unwrap();
        let p = a.placeholder("<AWS_SECRET_KEY>", "wJalrXUtnFEMI/K7MDENG");
        assert!(is_tagged(&p), "{p}");
        assert!(p.starts_with("<AWS_SECRET_KEY:"));
        // Trimmed: the mounted file's newline is not part of the key.
        assert_eq!(
            p,
            b.placeholder("<AWS_SECRET_KEY>", "wJalrXUtnFEMI/K7MDENG")
        );
        assert_eq!(a, b);
        assert_ne!(
            p,
            a.placeholder("<AWS_SECRET_KEY>", "wJalrXUtnFEMI/K7MDENH")
        );
        assert_ne!(
            p,
            c.placeholder("<AWS_SECRET_KEY>", "wJalrXUtnFEMI/K7MDENG")
        );
        assert_ne!(a, c);
        // The kind is part of what is tagged.
        assert_ne!(a.tag("SSN", "123-45-6789"), a.tag("CA_SIN", "123-45-6789"));
    }

    #[test]
    fn tags_spread_over_many_values() {
        let key = MaskKey::new(b"0123456789abcdef").unwrap();
        let tags: std::collections::HashSet<String> = (0..2000)
            .map(|i| key.tag("SSN", &format!("123-45-{i:04}")))
            .collect();
        // 2,000 values in 2^24 tags: a collision or two at most.
        assert!(tags.len() >= 1998, "{}", tags.len());
    }

    #[test]
    fn short_keys_are_refused_and_the_process_key_is_one() {
        assert!(MaskKey::new(b"short").unwrap_err().contains("at least 16"));
        assert!(MaskKey::new(b"   \n").is_err());
        let k1 = MaskKey::process_random();
        let k2 = MaskKey::process_random();
        assert!(Arc::ptr_eq(&k1, &k2));
        assert_eq!(k1.source, KeySource::ProcessRandom);
        assert!(!format!("{k1:?}").contains("mac"));
    }

    #[test]
    fn tagged_shape() {
        assert!(is_tagged("<CREDIT_CARD:00ff9a>"));
        assert!(is_tagged("<masked:00ff9a>"));
        assert!(!is_tagged("<CREDIT_CARD>"));
        assert!(!is_tagged("<CREDIT_CARD:00ff9>"));
        assert!(!is_tagged("<CREDIT CARD:00ff9a>"));
        assert!(!is_tagged("<:00ff9a>"));
        assert_eq!(kind_of("<SSN>"), "SSN");
        assert_eq!(kind_of("SSN"), "SSN");
    }
}
