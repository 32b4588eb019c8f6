//! The builtin secret pack: named detectors ("rule families") for cloud,
//! SaaS, developer-platform and AI credentials, key material, generic
//! assignments and credential files, written from the public facts of each
//! format (prefixes, lengths, alphabets, checksums).
//!
//! Enabled in a guard as `builtins: [Secrets]` (the whole pack plus the
//! eight secret [`Builtin`](super::builtins::Builtin)s) or rule by rule by
//! name (`StripeSecretKey`, `DatabaseUrlPassword`, …); see
//! [`lookup`] and the compiler's expansion of group names.
//!
//! # The contract of a rule
//!
//! Patterns follow the builtins' contract (Rust `regex` syntax, run
//! case-sensitively on normalised text: white-space runs are one ASCII
//! space, so a `.netrc` or a Kubernetes Secret arrives on one line), with
//! two differences:
//!
//! * a pattern may have **one capture group**, the secret: the finding
//!   (and the mask) is that group, the rest is context (`DB_PASSWORD=` is
//!   kept, its value masked);
//! * every pattern must be **gated**: it holds a literal prefix
//!   (`sk_live_`, `glpat-`) or a keyword right before the value
//!   (`password=`), so the prefilter finds it (a test checks that no rule
//!   of the pack lands among the ungated patterns), and no `^`/`$` anchors.
//!
//! Every candidate then passes [`SecretRule::accepts`]: not longer than
//! [`SecretRule::max_len`], not a placeholder ([`validate::is_placeholder`]:
//! `EXAMPLE`, `xxxx`, `<your-key>`, `${VAR}`, `{{ … }}`, `****`, …), and the
//! rule's own [`Check`] (randomness, entropy floor, checksum, decoded
//! content).
//!
//! # Throughput
//!
//! `GUARD_BUILTINS=… cargo bench --bench guard_throughput -- 1MB` (the
//! bench's 1 MB Claude Code session of file-reading tool results, every
//! guard plus 50 custom patterns); figures in MB/s per core, see the
//! README's performance table for the machine:
//!
//! | builtins | 1 MB session |
//! |---|---|
//! | the 13 builtins (before the pack) | see below |
//! | `[Secrets, Pii]` | see below |
//!
//! (filled in by the measurement at the end of this module's history).

mod ai;
mod cloud;
mod crypto;
mod dev;
mod files;
mod generic;
mod saas;
pub mod validate;

#[cfg(test)]
mod tests;

use std::sync::{Arc, LazyLock, OnceLock};

use regex::Regex;

pub use validate::Check;

use super::builtins::Builtin;
use super::compile::patterns::Validate;

/// One named detector of the pack.
#[derive(Debug)]
pub struct SecretRule {
    /// Config name, CamelCase, unique across builtins and the pack.
    pub name: &'static str,
    /// What was found, UPPER_SNAKE: the mask placeholder is `<KIND>`.
    pub kind: &'static str,
    /// Lower-case words every match holds (up to case): the prefilter's
    /// gate is derived from the pattern itself, these document it and are
    /// checked against it by the tests.
    pub keywords: &'static [&'static str],
    /// The candidate regex (see the module docs).
    pub pattern: &'static str,
    /// The capture group that is the secret; `None`: the whole match.
    pub group: Option<usize>,
    /// What the secret must pass beyond the pattern.
    pub check: Check,
    /// Upper bound in bytes of an accepted match (the whole match, context
    /// included): sizes stream hold-back windows.
    pub max_len: usize,
    /// Test fixture: `{c:N}` is N random characters of class `c` (see the
    /// tests), `[[`…`]]` marks the secret.
    pub example: &'static str,
}

impl SecretRule {
    /// The placeholder kind (`<KIND>` today).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn placeholder(&self) -> String {
        format!("<{}>", self.kind)
    }

    /// The compiled pattern, shared by every guard that enables the rule.
    pub fn regex(&'static self) -> Regex {
        static CACHE: LazyLock<Vec<OnceLock<Regex>>> =
            LazyLock::new(|| PACK.iter().map(|_| OnceLock::new()).collect());
        let i = PACK
            .iter()
            .position(|r| std::ptr::eq(*r, self))
            .expect("a pack rule");
        CACHE[i]
            .get_or_init(|| Regex::new(self.pattern).expect("pack patterns compile"))
            .clone()
    }

    /// Whether a candidate is a secret: `whole` is the regex match,
    /// `secret` the part masked.
    pub fn accepts(&self, whole: &str, secret: &str) -> bool {
        !secret.is_empty()
            && whole.len() <= self.max_len
            && secret.is_ascii()
            && !match self.check {
                // DER and key bodies hold runs of `A` (zero bytes) by
                // structure; only markers tell a placeholder.
                Check::KeyMaterial(_) => validate::has_marker(secret),
                _ => validate::is_placeholder(secret),
            }
            && self.check.accepts(whole, secret)
    }

    /// Byte ranges of accepted secrets in `text`, given `re` compiled from
    /// the pattern (for tests and one-off use; the engine goes through
    /// its `Pattern`).
    pub fn find<'a>(
        &'a self,
        re: &'a Regex,
        text: &'a str,
    ) -> impl Iterator<Item = std::ops::Range<usize>> + 'a {
        re.captures_iter(text).filter_map(move |c| {
            let whole = c.get(0)?;
            let secret = self.group.map_or(Some(whole), |g| c.get(g))?;
            self.accepts(whole.as_str(), secret.as_str())
                .then(|| secret.range())
        })
    }

    /// The engine's validator for this rule.
    pub fn validator(&'static self) -> Arc<dyn Validate> {
        Arc::new(RuleCheck(self))
    }
}

#[derive(Debug)]
struct RuleCheck(&'static SecretRule);

impl Validate for RuleCheck {
    fn accepts(&self, whole: &str, secret: &str) -> bool {
        self.0.accepts(whole, secret)
    }
}

/// A secret builtin as the `Secrets` group enables it: its own validator,
/// and placeholders left alone like the pack's rules (bodies up to 256
/// bytes: tokens; a PEM body or a JWT is random enough to hold `xxxx`
/// now and then).
#[derive(Debug)]
struct BuiltinInPack(Builtin);

impl Validate for BuiltinInPack {
    fn accepts(&self, _whole: &str, secret: &str) -> bool {
        self.0.validate(secret) && !(secret.len() <= 256 && validate::is_placeholder(secret))
    }
}

pub fn builtin_validator(b: Builtin) -> Arc<dyn Validate> {
    Arc::new(BuiltinInPack(b))
}

/// Every rule of the pack, by family group.
pub static PACK: LazyLock<Vec<&'static SecretRule>> = LazyLock::new(|| {
    [
        cloud::RULES,
        saas::RULES,
        dev::RULES,
        ai::RULES,
        crypto::RULES,
        generic::RULES,
        files::RULES,
    ]
    .into_iter()
    .flatten()
    .collect()
});

/// A pack rule by its config name (exact).
pub fn lookup(name: &str) -> Option<&'static SecretRule> {
    PACK.iter().copied().find(|r| r.name == name)
}

/// ASCII word boundary (see the builtins' module docs).
macro_rules! wb {
    () => {
        r"(?-u:\b)"
    };
}
pub(crate) use wb;

/// A rule: `rule!(Name, KIND, [keywords], pattern, group, check, max_len,
/// example)`.
macro_rules! rule {
    ($name:ident, $kind:ident, [$($kw:literal),* $(,)?], $pattern:expr, $group:expr, $check:expr, $max:expr, $example:expr $(,)?) => {
        $crate::guard::secrets::SecretRule {
            name: stringify!($name),
            kind: stringify!($kind),
            keywords: &[$($kw),*],
            pattern: $pattern,
            group: $group,
            check: $check,
            max_len: $max,
            example: $example,
        }
    };
}
pub(crate) use rule;

/// `key`, an optional closing quote, an assignment operator (`=`, `:`,
/// `:=`, `=>`, spaced or not) and an optional opening quote, then the
/// value as group 1: env, YAML, JSON, TOML, INI and shell forms alike.
macro_rules! assign {
    ($key:expr, $value:expr) => {
        concat!($key, r#"["']? ?(?::=|=>|=|:) ?["']?("#, $value, ")")
    };
}
pub(crate) use assign;
