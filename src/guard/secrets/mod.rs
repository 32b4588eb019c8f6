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
//! The bench's 1 MB Claude Code session (file-reading tool results: this
//! repository's README, sources and Envoy config), the secrets guard with
//! the builtins named plus a guard of 50 custom patterns, one core:
//!
//! ```text
//! cargo bench --bench guard_throughput --no-run
//! GUARD_BUILTINS=Secrets,Pii GUARD_DECISIONS=20 target/release/deps/guard_throughput-…
//! ```
//!
//! Instructions per decision are the difference of `GUARD_DECISIONS=4`
//! and `=1` under `valgrind --tool=callgrind`, divided by three (the
//! machine is shared, so wall clock is noisy; five interleaved rounds,
//! range):
//!
//! | builtins | instructions / 1 MB decision | wall clock | MB/s |
//! |---|---|---|---|
//! | the 13 builtins by name (no pack) | 21.9 M | 2.81–3.12 ms | 350–388 |
//! | `[Pii]` | 19.9 M | 2.41–2.75 ms | 396–451 |
//! | `[Secrets]` | 45.5 M | 6.90–8.14 ms | 134–158 |
//! | `[Secrets, Pii]` | 52.9 M | 8.66–9.79 ms | 111–126 |
//!
//! The 76 KB first turn (tool definitions skipped): 2230 MB/s with the
//! 13 builtins, 1106 MB/s with `[Secrets, Pii]`.
//!
//! **The pack costs 2.4× the instructions of the builtins, and misses the
//! issue's 1 GB/s target.** Where it goes (callgrind, `[Secrets]`): of
//! 38 M instructions of scanning per decision, 26 M find the gate atoms
//! (~290 of them, ~250 literal) and the rest is regions, normalisation and
//! regexes. Fixed on the way: keyword rules whose value was a fixed run of
//! hex (`dd_api_key=[a-f0-9]{32}`) were gated on 32 hex classes, so every
//! hash was a hit (1796 gate hits on the bench's files, now 455; see
//! [`Check::Shape`]); `[!-~]` alphabets made regions whole literals; the
//! fingerprint passes cost a pass per 24 fingerprints (~12 passes), so many
//! literal atoms now go to one Aho-Corasick DFA (54.0 M → 52.7 M
//! instructions, ~10 → ~8.7 ms wall clock). That DFA is now the largest
//! single cost (~19 M, ~18 instructions a byte); a SIMD literal-set
//! prefilter (FDR-like, many literals per pass) is the next step.
//!
//! Done: a SIMD filter of the literals' hashed first three bytes in front
//! of that DFA (see `prefilter::searcher::Literals` for the figures and
//! why not Teddy) took the literal gate of a 1 MB service log from ~17.6
//! M to ~4 M instructions, and the `content_kinds` decisions with
//! `[Secrets, Pii]` by 27-39 % of their instructions (source 41.2 ->
//! 28.3 M, `git log` 79.6 -> 48.8 M), 13-21 % in MB/s. Still short of
//! the issue's targets: what remains is spread over the digit gate
//! (~9-11 M on logs and CI), regions and their regexes, normalisation,
//! and parsing the body.
//!
//! Then (`cc49501`..`15a67ea`): AVX-512 VBMI kernels for the filter and the
//! fingerprint passes (`guard::vector`), the DFA's anchored walk replaced by
//! one masked 8-byte compare per literal (`prefilter::searcher::Literals`),
//! digit-group patterns read by the digit gate (`NumberShape::Groups`), and
//! case-exact literal windows; the README's per-kind table has the figures.

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
