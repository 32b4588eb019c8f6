//! Builtin detectors: personal data and credentials that a plain regex
//! cannot tell from noise, so each has a candidate pattern plus a validator
//! (checksum, structure, decoded content).
//!
//! Contract with the guard engine:
//!
//! * Patterns use the Rust `regex` crate syntax and are run case-sensitively
//!   on text that has been NFKC-normalised, stripped of zero-width/format
//!   characters and had whitespace runs collapsed to one ASCII space (so a
//!   PEM block's newlines arrive as single spaces).
//! * **No pattern has capture groups** (not even a group `m`): the whole
//!   match is the candidate, so `Regex::find_iter` is enough. Context is
//!   handled without consuming characters: `(?-u:\b)` (ASCII word boundary)
//!   on the left, and on the right either a boundary or a greedy character
//!   class that runs to the end of the token. Where a format could continue
//!   (`123-45-6789-0000`, `1.415.555.2671.9`), the pattern *absorbs* the
//!   continuation so the candidate is the whole token and [`Builtin::validate`]
//!   rejects it, instead of reporting a prefix of a longer token.
//! * A candidate the regex finds but `validate` rejects is not retried at a
//!   shorter length or a later offset inside it (`find_iter` moves past it).
//!   The patterns only absorb what makes a token a different, longer thing,
//!   so this costs little: a card followed by a space and a CVV is still
//!   found, but `415 555 2671 24` (space-separated numbers run on) is judged
//!   as one number and rejected.
//! * A candidate that alone would be noise may need context before it: a
//!   bare ten-digit phone number counts only after a phone word. That is a
//!   second pattern, [`Builtin::context_pattern`], the one kind of pattern
//!   with a capture group (group 1, the candidate, validated by
//!   [`Builtin::validate_in_context`] and the only part masked).
//! * The number detectors (cards, SSNs, SINs, phone numbers) are gated by
//!   the shapes of their digit groups (`guard/prefilter/digits.rs`), not by
//!   their patterns' atoms: a new digit layout here needs its shape there
//!   (the tests of `guard::tests` compare the gated scan with the full
//!   one and catch a missing shape).
//! * [`Builtin::max_match_len`] bounds every candidate `validate` accepts
//!   (validators reject anything longer), so it can size stream hold-back
//!   windows. All patterns match ASCII only, so bytes equal characters.

use std::ops::Range;

use base64::Engine as _;
use regex::Regex;

/// One builtin detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    CreditCard,
    Ssn,
    Email,
    PhoneNumber,
    CaSin,
    AwsAccessKey,
    PrivateKey,
    GitHubToken,
    AnthropicApiKey,
    OpenAiApiKey,
    SlackToken,
    GoogleApiKey,
    Jwt,
}

/// ASCII word boundary: fully supported by the regex crate's DFAs, unlike
/// the Unicode `\b`, and it can never fall inside a multi-byte character.
macro_rules! wb {
    () => {
        r"(?-u:\b)"
    };
}

const CREDIT_CARD: &str = concat!(
    wb!(),
    "(?:",
    // 13-19 bare digits; the boundaries keep it off longer digit runs,
    // and a decimal point with digits on either side is absorbed, so the
    // fraction of `0.6011111111111117` is judged as the whole float.
    r"(?:[0-9]+\.)*[1-6][0-9]{12,18}(?:\.[0-9]+)*",
    // Dash groups 4-4-4-(1..4), Amex 4-6-5, Diners 4-6-4, UATP 4-5-6; groups dashed
    // onto either end (digits, or alphanumerics ending / starting with a
    // digit on the side they touch, like `v10-`) are absorbed so the whole
    // token is judged.
    "|(?:[0-9A-Za-z]*[0-9]-)*[1-6][0-9]{3}-(?:[0-9]{4}-[0-9]{4}-[0-9]{1,4}|[0-9]{6}-[0-9]{4,5}|[0-9]{5}-[0-9]{6})(?:-[0-9][0-9A-Za-z]*)*",
    // The same with spaces; nothing absorbed, so `4111 1111 1111 1111 123`
    // (card, then CVV) still finds the card.
    "|[1-6][0-9]{3} (?:[0-9]{4} [0-9]{4} [0-9]{1,4}|[0-9]{6} [0-9]{4,5}|[0-9]{5} [0-9]{6})",
    ")",
    wb!()
);

// Dashes, spaces or dots (`123.45.6789`), one kind throughout; dotted
// groups run on (`1.123.45.6789`, versions) are absorbed and rejected.
const SSN: &str = concat!(
    wb!(),
    "(?:",
    "(?:[0-9A-Za-z]*[0-9]-)*[0-9]{3}-[0-9]{2}-[0-9]{4}(?:-[0-9][0-9A-Za-z]*)*",
    r"|(?:[0-9A-Za-z]*[0-9]\.)*[0-9]{3}\.[0-9]{2}\.[0-9]{4}(?:\.[0-9][0-9A-Za-z]*)*",
    "|(?:[0-9A-Za-z]*[0-9] )*[0-9]{3} [0-9]{2} [0-9]{4}(?: [0-9][0-9A-Za-z]*)*",
    ")",
    wb!()
);

const CA_SIN: &str = concat!(
    wb!(),
    "(?:",
    "(?:[0-9A-Za-z]*[0-9]-)*[0-9]{3}-[0-9]{3}-[0-9]{3}(?:-[0-9][0-9A-Za-z]*)*",
    "|(?:[0-9A-Za-z]*[0-9] )*[0-9]{3} [0-9]{3} [0-9]{3}(?: [0-9][0-9A-Za-z]*)*",
    ")",
    wb!()
);

// Leftmost-first matching starts the local part as far left as its
// character class allows, so no left guard is needed. The second form is
// an address spelled out to dodge scrapers: `name [at] example [dot] com`,
// `(at)`/`(dot)`, `{at}`/`{dot}`, any case, with or without a space on
// either side; only the bracketed words count (`name at example dot com`
// is prose as often as not), and the whole spelling is the candidate.
const EMAIL: &str = concat!(
    "(?:",
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*",
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}",
    "|",
    r"[A-Za-z0-9_%+-]+(?:(?:\.| ?[\[({](?i:dot)[\])}] ?)[A-Za-z0-9_%+-]+)*",
    r" ?[\[({](?i:at)[\])}] ?",
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.| ?[\[({](?i:dot)[\])}] ?))+[A-Za-z]{2,}",
    ")",
    wb!()
);

/// An extension after a North American number, part of the candidate:
/// ` x123`, ` ext. 123`, ` ext 12345`, `, extension 12`, ` #123`.
macro_rules! ext {
    () => {
        r"(?:,? ?(?:[xX]|(?i:ext)\.?|(?i:extension)|#) ?[0-9]{1,6})?"
    };
}

const PHONE_NUMBER: &str = concat!(
    "(?:",
    // +1, NANP: +1 415 555 2671, +1 (415) 555-2671, +14155552671.
    r"\+1[ .-]?(?:\([2-9][0-9]{2}\)|[2-9][0-9]{2})[ .-]?[2-9][0-9]{2}[ .-]?[0-9]{4}",
    ext!(),
    // (415) 555-2671, 1 (415) 555 2671.
    "|(?:",
    wb!(),
    r"1[ .-]?)?\([2-9][0-9]{2}\)[ .-]?[2-9][0-9]{2}[ .-]?[0-9]{4}",
    ext!(),
    // 415-555-2671, 415.555.2671, 415 555 2671 (one separator throughout,
    // optional leading 1); number groups joined on with the same separator
    // (as for cards) are absorbed, so versions and longer numbers are
    // rejected whole.
    "|",
    wb!(),
    "(?:",
    "(?:[0-9A-Za-z]*[0-9]-)*[2-9][0-9]{2}-[2-9][0-9]{2}-[0-9]{4}(?:-[0-9][0-9A-Za-z]*)*",
    r"|(?:[0-9A-Za-z]*[0-9]\.)*[2-9][0-9]{2}\.[2-9][0-9]{2}\.[0-9]{4}(?:\.[0-9][0-9A-Za-z]*)*",
    "|(?:[0-9A-Za-z]*[0-9] )*[2-9][0-9]{2} [2-9][0-9]{2} [0-9]{4}(?: [0-9][0-9A-Za-z]*)*",
    ")",
    ext!(),
    // E.164 without separators: +442079460958.
    r"|\+[2-9][0-9]{10,14}",
    // International with separators after the country code:
    // +44 20 7946 0958, +44 (0)20 7946 0958, +81-3-1234-5678.
    r"|\+[2-9][0-9]{0,2}(?:[ .-]?\([0-9]{1,4}\) ?[0-9]{1,12}(?:[ .-][0-9]{1,12})*|(?:[ .-][0-9]{1,12})+)",
    ")",
    wb!()
);

/// Ten bare digits are ids and counters everywhere (epoch seconds, order
/// numbers), so a bare North American number is taken only right after a
/// phone word: the word (`phone`, `tel`, `mobile`, `cell`, `fax`, `call`,
/// `sms`, optionally with `number`/`no`), at most four of ` :=#."'([-`
/// (`phone: `, `tel:`, `"mobile": "`, `Fax #`, `phone (`), then
/// ten digits (or eleven with a leading 1). Capture group 1 is the number:
/// only it is validated and masked, the word stays.
// A word boundary before each word (not before the group), so that each
// word's gate atom asks for one (`Patel`, `hotel` and `RefCell` are no
// phone words).
const PHONE_IN_CONTEXT: &str = concat!(
    r"(?i:(?-u:\b)telephone|(?-u:\b)cellphone|(?-u:\b)phone|(?-u:\b)mobile|(?-u:\b)cell|(?-u:\b)tel|(?-u:\b)fax|(?-u:\b)call|(?-u:\b)sms)",
    "(?:[ _-]?(?i:number|num|no))?",
    r#"[ :=#."'(\[-]{0,4}"#,
    "(1?[2-9][0-9]{9})",
    wb!()
);

const AWS_ACCESS_KEY: &str = concat!(
    wb!(),
    "(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z2-7]{16}",
    wb!()
);

// The body may not hold a run of five dashes, so an unterminated BEGIN
// cannot swallow a later key's armour.
const PRIVATE_KEY: &str = concat!(
    "-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----",
    "(?:[^-]|-{1,4}[^-])*?",
    "-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
);

const GITHUB_TOKEN: &str = concat!(
    wb!(),
    "(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9]{20,}_[A-Za-z0-9]{40,})",
    wb!()
);

// Greedy over the key alphabet, so the match always ends where the token
// ends; validate bounds the length.
const ANTHROPIC_API_KEY: &str = concat!(
    wb!(),
    "sk-ant-(?:api|admin|oat|ort)[0-9]{2}-[A-Za-z0-9_-]{32,}"
);

const OPENAI_API_KEY: &str = concat!(
    wb!(),
    "sk-(?:",
    "(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{32,}",
    "|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}",
    wb!(),
    ")"
);

const SLACK_TOKEN: &str = concat!(
    wb!(),
    r"(?:xox[abprse]|xoxe\.xox[bp]|xapp)-[A-Za-z0-9-]{10,}"
);

const GOOGLE_API_KEY: &str = concat!(wb!(), "AIza[A-Za-z0-9_-]{35,}");

// A header is a JSON object: `{`, then `"` or JSON white space, then
// anything, which base64url encodes to `ey` then one of `A-D` (`{ `) or
// `I-L` (`{"`), or `ew` then one of `k-n` (`{\t`), `o-r` (`{\n`) or `0-3`
// (`{\r`). The third byte keeps most of `ey`/`ew` in prose (`they`, `new`)
// from looking like one.
const JWT: &str = concat!(
    wb!(),
    r"e(?:y[A-DI-L]|w[k-r0-3])[A-Za-z0-9_-]{7,}\.e[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"
);

impl Builtin {
    pub const ALL: &'static [Builtin] = &[
        Builtin::CreditCard,
        Builtin::Ssn,
        Builtin::Email,
        Builtin::PhoneNumber,
        Builtin::CaSin,
        Builtin::AwsAccessKey,
        Builtin::PrivateKey,
        Builtin::GitHubToken,
        Builtin::AnthropicApiKey,
        Builtin::OpenAiApiKey,
        Builtin::SlackToken,
        Builtin::GoogleApiKey,
        Builtin::Jwt,
    ];

    /// Config names: agentgateway's `CreditCard`, `Ssn`, `PhoneNumber`,
    /// `Email`, `CaSin` plus ours named like the variants. Exact match.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.iter().copied().find(|b| b.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Builtin::CreditCard => "CreditCard",
            Builtin::Ssn => "Ssn",
            Builtin::Email => "Email",
            Builtin::PhoneNumber => "PhoneNumber",
            Builtin::CaSin => "CaSin",
            Builtin::AwsAccessKey => "AwsAccessKey",
            Builtin::PrivateKey => "PrivateKey",
            Builtin::GitHubToken => "GitHubToken",
            Builtin::AnthropicApiKey => "AnthropicApiKey",
            Builtin::OpenAiApiKey => "OpenAiApiKey",
            Builtin::SlackToken => "SlackToken",
            Builtin::GoogleApiKey => "GoogleApiKey",
            Builtin::Jwt => "Jwt",
        }
    }

    /// Mask placeholder (agentgateway's names for its five detectors).
    pub fn placeholder(self) -> &'static str {
        match self {
            Builtin::CreditCard => "<CREDIT_CARD>",
            Builtin::Ssn => "<SSN>",
            Builtin::Email => "<EMAIL_ADDRESS>",
            Builtin::PhoneNumber => "<PHONE_NUMBER>",
            Builtin::CaSin => "<CA_SIN>",
            Builtin::AwsAccessKey => "<AWS_ACCESS_KEY>",
            Builtin::PrivateKey => "<PRIVATE_KEY>",
            Builtin::GitHubToken => "<GITHUB_TOKEN>",
            Builtin::AnthropicApiKey => "<ANTHROPIC_API_KEY>",
            Builtin::OpenAiApiKey => "<OPENAI_API_KEY>",
            Builtin::SlackToken => "<SLACK_TOKEN>",
            Builtin::GoogleApiKey => "<GOOGLE_API_KEY>",
            Builtin::Jwt => "<JWT>",
        }
    }

    /// Candidate regex (Rust `regex` syntax, case-sensitive, no capture
    /// groups: the whole match is the candidate). See the module docs.
    pub fn pattern(self) -> &'static str {
        match self {
            Builtin::CreditCard => CREDIT_CARD,
            Builtin::Ssn => SSN,
            Builtin::Email => EMAIL,
            Builtin::PhoneNumber => PHONE_NUMBER,
            Builtin::CaSin => CA_SIN,
            Builtin::AwsAccessKey => AWS_ACCESS_KEY,
            Builtin::PrivateKey => PRIVATE_KEY,
            Builtin::GitHubToken => GITHUB_TOKEN,
            Builtin::AnthropicApiKey => ANTHROPIC_API_KEY,
            Builtin::OpenAiApiKey => OPENAI_API_KEY,
            Builtin::SlackToken => SLACK_TOKEN,
            Builtin::GoogleApiKey => GOOGLE_API_KEY,
            Builtin::Jwt => JWT,
        }
    }

    /// A second pattern of the detector whose capture group 1 is the
    /// candidate (validated by [`Builtin::validate_in_context`], the only
    /// part masked): context that must precede a candidate that alone
    /// would be noise. Only [`Builtin::PhoneNumber`] has one (bare ten
    /// digits after a phone word).
    pub fn context_pattern(self) -> Option<&'static str> {
        match self {
            Builtin::PhoneNumber => Some(PHONE_IN_CONTEXT),
            _ => None,
        }
    }

    /// Validates group 1 of a match of [`Builtin::context_pattern`].
    pub fn validate_in_context(self, candidate: &str) -> bool {
        match self {
            Builtin::PhoneNumber => valid_phone_in_context(candidate),
            _ => false,
        }
    }

    /// Validates a candidate found by [`Builtin::pattern`]. Self-contained:
    /// it re-checks the whole format, so it may be given any string.
    pub fn validate(self, candidate: &str) -> bool {
        if candidate.is_empty() || candidate.len() > self.max_match_len() || !candidate.is_ascii() {
            return false;
        }
        match self {
            Builtin::CreditCard => valid_credit_card(candidate),
            Builtin::Ssn => valid_ssn(candidate),
            Builtin::Email => valid_email(candidate),
            Builtin::PhoneNumber => valid_phone(candidate),
            Builtin::CaSin => valid_ca_sin(candidate),
            Builtin::AwsAccessKey => valid_aws_access_key(candidate),
            Builtin::PrivateKey => valid_private_key(candidate),
            Builtin::GitHubToken => valid_github_token(candidate),
            Builtin::AnthropicApiKey => valid_anthropic_key(candidate),
            Builtin::OpenAiApiKey => valid_openai_key(candidate),
            Builtin::SlackToken => valid_slack_token(candidate),
            Builtin::GoogleApiKey => valid_google_api_key(candidate),
            Builtin::Jwt => valid_jwt(candidate),
        }
    }

    /// Upper bound in bytes of a candidate [`Builtin::validate`] accepts
    /// (it rejects longer ones), to size stream hold-back windows.
    pub fn max_match_len(self) -> usize {
        match self {
            // 19 bare digits; grouped forms are at most 4-4-4-4 (19 bytes).
            Builtin::CreditCard => 19,
            Builtin::Ssn | Builtin::CaSin => 11,
            // RFC 5321 path limit, spelled out (`[dot]`) a little longer.
            Builtin::Email => 512,
            // The number, then an extension (`, extension 123456`).
            Builtin::PhoneNumber => 56,
            Builtin::AwsAccessKey => 20,
            // RSA 8192-bit PKCS#8 is ~6.5 KB; PGP blocks with subkeys more.
            Builtin::PrivateKey => 16384,
            // GitHub documents tokens of up to 255 characters.
            Builtin::GitHubToken => 255,
            Builtin::AnthropicApiKey | Builtin::OpenAiApiKey | Builtin::SlackToken => 256,
            Builtin::GoogleApiKey => 39,
            Builtin::Jwt => 8192,
        }
    }

    /// Compiles [`Builtin::pattern`] on its own (the engine builds its own
    /// set; this is for one-off use and tests).
    pub fn regex(self) -> Regex {
        Regex::new(self.pattern()).expect("builtin patterns compile")
    }

    /// Byte ranges of the validated matches of this detector in `text`,
    /// given `re` compiled from [`Builtin::pattern`].
    pub fn find_validated<'a>(
        self,
        re: &'a Regex,
        text: &'a str,
    ) -> impl Iterator<Item = Range<usize>> + 'a {
        re.find_iter(text)
            .filter(move |m| self.validate(m.as_str()))
            .map(|m| m.range())
    }
}

/// Luhn checksum over the ASCII digits of `s` (non-digits skipped). A
/// string without digits is not valid.
pub fn luhn_valid(s: &str) -> bool {
    let mut sum = 0u32;
    let mut count = 0usize;
    for b in s.bytes().rev().filter(u8::is_ascii_digit) {
        let mut d = u32::from(b - b'0');
        if count % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        count += 1;
    }
    count > 0 && sum.is_multiple_of(10)
}

/// Splits `s` into digit groups joined by one separator used throughout.
/// Returns `None` for any other character, an empty group, or mixed
/// separators; `Some((groups, None))` for bare digits.
fn digit_groups<'a>(s: &'a str, separators: &[u8]) -> Option<(Vec<&'a str>, Option<u8>)> {
    let sep = s.bytes().find(|b| !b.is_ascii_digit());
    match sep {
        None => Some((vec![s], None)),
        Some(sep) if separators.contains(&sep) => {
            let groups: Vec<&str> = s.split(sep as char).collect();
            let ok = groups
                .iter()
                .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()));
            ok.then_some((groups, Some(sep)))
        }
        Some(_) => None,
    }
}

fn group_lens(groups: &[&str]) -> Vec<usize> {
    groups.iter().map(|g| g.len()).collect()
}

fn valid_credit_card(c: &str) -> bool {
    let Some((groups, sep)) = digit_groups(c, b" -") else {
        return false;
    };
    let uatp = c.starts_with('1');
    if sep.is_some() {
        let lens = group_lens(&groups);
        // UATP (airline) cards are grouped 4-5-6, and only they are.
        let shaped = match lens.as_slice() {
            [4, 5, 6] => uatp,
            [4, 4, 4, 1..=4] | [4, 6, 4] | [4, 6, 5] => !uatp,
            _ => false,
        };
        if !shaped {
            return false;
        }
    }
    let digits: String = groups.concat();
    (13..=19).contains(&digits.len())
        && card_prefix_fits_length(digits.as_bytes())
        && luhn_valid(&digits)
}

/// Issuer prefixes (IIN ranges) and the lengths those networks issue:
/// UATP 1 (15: airline travel cards), Visa 4 (13, 16), Mastercard 51-55
/// and 2221-2720 (16), Amex 34/37 (15),
/// Diners 30/36/38/39 (14-16), JCB 3528-3589 (16), Maestro 50/56-59 and
/// Discover/RuPay/Maestro 6 (13-16), UnionPay 62 (16-19). Other leading
/// digits (7 petroleum, 8 telecom, 9 national, 0) are not payment cards;
/// a 1 only at 15 digits keeps 13-digit millisecond timestamps out.
///
/// 17-19 digits are accepted for UnionPay only: the 19-digit Visa, JCB and
/// Maestro numbers that exist are rare, while 17-19-digit integers are
/// everyday constants in code (u64 tables, hashes, seeds) and one in ten
/// passes Luhn.
fn card_prefix_fits_length(d: &[u8]) -> bool {
    let n = d.len();
    let num = |k: usize| {
        d[..k]
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))
    };
    match d[0] {
        b'1' => n == 15,
        b'4' => matches!(n, 13 | 16),
        b'2' => n == 16 && (2221..=2720).contains(&num(4)),
        b'3' => match num(2) {
            34 | 37 => n == 15,
            30 | 36 | 38 | 39 => (14..=16).contains(&n),
            35 => (3528..=3589).contains(&num(4)) && n == 16,
            _ => false,
        },
        b'5' => match num(2) {
            51..=55 => n == 16,
            _ => (13..=16).contains(&n),
        },
        b'6' if num(2) == 62 => (16..=19).contains(&n),
        b'6' => (13..=16).contains(&n),
        _ => false,
    }
}

/// US SSN: `123-45-6789`, `123 45 6789` or `123.45.6789`. Nine bare
/// digits are NOT accepted: too many order numbers, ids and timestamps
/// have nine digits and an SSN has no checksum to tell them apart.
fn valid_ssn(c: &str) -> bool {
    let Some((groups, Some(_))) = digit_groups(c, b" -.") else {
        return false;
    };
    let [area, group, serial] = groups.as_slice() else {
        return false;
    };
    if (area.len(), group.len(), serial.len()) != (3, 2, 4) {
        return false;
    }
    let area_n: u32 = area.parse().unwrap_or(0);
    // Never issued: area 000, 666 and 900-999 (ITINs and advertising
    // numbers live there), group 00, serial 0000; and the two numbers SSA
    // voided after they were printed in public (wallet insert, ad).
    area_n != 0
        && area_n != 666
        && area_n < 900
        && *group != "00"
        && *serial != "0000"
        && !matches!(
            (area_n, *group, *serial),
            (78, "05", "1120") | (219, "09", "9999")
        )
}

/// Canadian SIN: `123 456 782` or `123-456-782`, Luhn-valid. The first
/// digit is the region of registration: 1-7 and 9 (temporary residents)
/// are issued; 0 is never assigned (fictitious/sample numbers) and 8 is
/// not used for SINs (it is the Business Number range). Nine bare digits
/// are not accepted, for the same reason as SSNs (and they would clash).
fn valid_ca_sin(c: &str) -> bool {
    let Some((groups, Some(_))) = digit_groups(c, b" -") else {
        return false;
    };
    if group_lens(&groups) != [3, 3, 3] {
        return false;
    }
    let first = c.as_bytes()[0];
    first != b'0' && first != b'8' && luhn_valid(c)
}

/// `name [at] example [dot] com` (and `(at)`, `{at}`, any case, spaces
/// around the brackets or not) as the address it spells, when it spells
/// one: the `at` is bracketed and nothing else is in brackets.
fn deobfuscate(c: &str) -> Option<String> {
    let mut out = String::with_capacity(c.len());
    let mut ats = 0;
    let mut rest = c;
    while let Some(open) = rest.find(['[', '(', '{']) {
        let close = match rest.as_bytes()[open] {
            b'[' => ']',
            b'(' => ')',
            _ => '}',
        };
        let inner_end = rest[open + 1..].find(close)? + open + 1;
        let word = &rest[open + 1..inner_end];
        let sym = if word.eq_ignore_ascii_case("at") {
            ats += 1;
            '@'
        } else if word.eq_ignore_ascii_case("dot") {
            '.'
        } else {
            return None;
        };
        out.push_str(rest[..open].trim_end_matches(' '));
        out.push(sym);
        rest = rest[inner_end + 1..].trim_start_matches(' ');
    }
    out.push_str(rest);
    (ats == 1 && !out.contains(' ')).then_some(out)
}

fn valid_email(c: &str) -> bool {
    if !c.contains('@') {
        return deobfuscate(c).is_some_and(|plain| plain.contains('@') && valid_email(&plain));
    }
    let Some((local, domain)) = c.split_once('@') else {
        return false;
    };
    if domain.contains('@') || local.is_empty() || local.len() > 64 || domain.len() > 253 {
        return false;
    }
    let local_ok = local.split('.').all(|atom| {
        !atom.is_empty()
            && atom
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_%+-".contains(&b))
    });
    if !local_ok {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let labels_ok = labels.iter().all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let tld = labels[labels.len() - 1];
    if !labels_ok || tld.len() < 2 || !tld.bytes().all(|b| b.is_ascii_alphabetic()) {
        return false;
    }
    // `git@github.com:org/repo` is an SSH remote, not a mailbox.
    if local == "git" {
        return false;
    }
    // Retina asset names: `logo@2x.png`.
    let first = labels[0];
    let scale = first.len() >= 2
        && first.ends_with('x')
        && first[..first.len() - 1].bytes().all(|b| b.is_ascii_digit());
    let image = [
        "png", "jpg", "jpeg", "gif", "webp", "svg", "avif", "ico", "bmp",
    ]
    .iter()
    .any(|ext| tld.eq_ignore_ascii_case(ext));
    !(scale && image)
}

/// The number without its extension (` x123`, ` ext. 123`, `, extension
/// 12`, ` #123`: a marker, then one to six digits), or `None` when what
/// follows the number is not an extension.
fn strip_extension(c: &str) -> Option<&str> {
    let Some(at) = c.find(|ch: char| ch == ',' || ch == '#' || ch.is_ascii_alphabetic()) else {
        return Some(c);
    };
    let (number, ext) = c.split_at(at);
    let ext = ext.strip_prefix(',').unwrap_or(ext).trim_start_matches(' ');
    let lower = ext.to_ascii_lowercase();
    let digits = ["extension", "ext.", "ext", "x", "#"]
        .iter()
        .find_map(|m| lower.strip_prefix(m))?
        .trim_start_matches(' ');
    let ok = (1..=6).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| number.trim_end_matches([' ', ',']))
}

fn valid_phone(c: &str) -> bool {
    let Some(number) = strip_extension(c) else {
        return false;
    };
    // Extensions are taken after North American numbers only.
    let extended = number.len() != c.len();
    let c = number;
    if let Some(rest) = c.strip_prefix("+1") {
        return valid_nanp(rest, true);
    }
    if let Some(rest) = c.strip_prefix('+') {
        return !extended && valid_international(rest);
    }
    valid_nanp(c, false)
}

/// Digit groups of a phone number and whether the separators between them
/// were one and the same character.
fn phone_groups(s: &str) -> Option<(Vec<&str>, bool, bool)> {
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || b" .-()".contains(&b))
    {
        return None;
    }
    let groups: Vec<&str> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let parens = s.contains('(') || s.contains(')');
    let seps: Vec<u8> = s.bytes().filter(|b| b" .-".contains(b)).collect();
    let consistent = seps.windows(2).all(|w| w[0] == w[1]);
    Some((groups, parens, consistent))
}

/// North American numbers: area code and exchange start with 2-9, neither
/// is an N11 service code, the area code's middle digit is not 9
/// (reserved for expansion). Without a `+1`, separators are required
/// (ten bare digits are any id or counter).
fn valid_nanp(s: &str, plus_one: bool) -> bool {
    let Some((groups, parens, consistent)) = phone_groups(s) else {
        return false;
    };
    let lens = group_lens(&groups);
    let mut lens = lens.as_slice();
    let mut rest = groups.as_slice();
    if !plus_one && lens.first() == Some(&1) {
        if groups[0] != "1" {
            return false;
        }
        lens = &lens[1..];
        rest = &rest[1..];
    }
    // Without `+1` or parentheses, one separator throughout (`415-555.2671`
    // is more likely a version or an id than a phone number).
    let shaped = match lens {
        [3, 3, 4] => parens || consistent || plus_one,
        [3, 7] => parens || plus_one,
        [10] => plus_one,
        _ => false,
    };
    if !shaped {
        return false;
    }
    if parens {
        // Only the area code may be parenthesised, and only a `1` (or the
        // `+1` already stripped) may come before it.
        let (Some(open), Some(close)) = (s.find('('), s.find(')')) else {
            return false;
        };
        let before = s[..open].trim_end_matches([' ', '.', '-']);
        if s.matches('(').count() != 1
            || s.matches(')').count() != 1
            || close != open + 4
            || !(before.is_empty() || (!plus_one && before == "1"))
        {
            return false;
        }
    }
    let ten: String = rest.concat();
    let d = ten.as_bytes();
    let n11 = |x: &[u8]| x[1] == b'1' && x[2] == b'1';
    d.len() == 10
        && (b'2'..=b'9').contains(&d[0])
        && d[1] != b'9'
        && !n11(&d[0..3])
        && (b'2'..=b'9').contains(&d[3])
        && !n11(&d[3..6])
}

/// Group 1 of [`PHONE_IN_CONTEXT`]: ten digits of a North American
/// number (or eleven with a leading 1), checked as if written `+1`.
fn valid_phone_in_context(c: &str) -> bool {
    let ten = match c.len() {
        11 => c.strip_prefix('1'),
        10 => Some(c),
        _ => None,
    };
    ten.is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit()) && valid_nanp(t, true))
}

/// International (E.164) numbers after the `+`: 8 to 15 digits, a country
/// code ITU assigns (first group when separated), and at least eleven
/// digits when written without separators (short bare `+digits` are
/// diff lines and offsets, not phone numbers).
fn valid_international(s: &str) -> bool {
    let Some((groups, parens, _)) = phone_groups(s) else {
        return false;
    };
    let digits: usize = groups.iter().map(|g| g.len()).sum();
    if !(8..=15).contains(&digits) || s.starts_with(['(', ' ', '.', '-']) {
        return false;
    }
    if parens && (s.matches('(').count() != 1 || s.matches(')').count() != 1) {
        return false;
    }
    if groups.len() == 1 {
        let g = groups[0];
        return digits >= 11 && (1..=3).any(|k| is_country_code(&g[..k]));
    }
    is_country_code(groups[0])
}

/// ITU-T E.164 country codes outside zone 1 (NANP is checked on its own).
/// Two-digit codes are listed; in the other two-digit prefixes of zones
/// 2-9 the codes have three digits; zone 7 is a one-digit code.
fn is_country_code(cc: &str) -> bool {
    const TWO: &[&str] = &[
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    const THREE_PREFIX: &[&str] = &[
        "21", "22", "23", "24", "25", "26", "29", "35", "37", "38", "42", "50", "59", "67", "68",
        "69", "80", "85", "87", "88", "96", "97", "99",
    ];
    match cc.len() {
        1 => cc == "7",
        2 => TWO.contains(&cc),
        3 => THREE_PREFIX.contains(&&cc[..2]),
        _ => false,
    }
}

/// Number of different bytes in `s`: real keys are random, placeholders
/// (`AKIAXXXXXXXXXXXXXXXX`, `sk-ant-api03-xxxx…`) are not.
fn distinct(s: &str) -> usize {
    let mut seen = [false; 256];
    let mut n = 0;
    for b in s.bytes() {
        if !seen[b as usize] {
            seen[b as usize] = true;
            n += 1;
        }
    }
    n
}

fn all_bytes(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    s.bytes().all(ok)
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn valid_aws_access_key(c: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA", "ABIA", "ACCA",
    ];
    c.len() == 20
        && PREFIXES.contains(&&c[..4])
        && all_bytes(&c[4..], |b| {
            b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)
        })
        && distinct(&c[4..]) >= 6
}

/// PEM armour (`-----BEGIN … PRIVATE KEY-----`, OpenSSH, PKCS#1/#8,
/// encrypted, PGP `PRIVATE KEY BLOCK`) with the same label at both ends
/// and at least 60 base64 characters inside (an Ed25519 PKCS#8 key has 64),
/// so `-----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY-----`
/// placeholders in docs do not count.
fn valid_private_key(c: &str) -> bool {
    let Some(rest) = c.strip_prefix("-----BEGIN ") else {
        return false;
    };
    let Some(label_end) = rest.find("-----") else {
        return false;
    };
    let label = &rest[..label_end];
    if !(label.ends_with("PRIVATE KEY") || label.ends_with("PRIVATE KEY BLOCK"))
        || !all_bytes(label, |b| {
            b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' '
        })
    {
        return false;
    }
    let body_and_end = &rest[label_end + 5..];
    let end = format!("-----END {label}-----");
    let Some(body) = body_and_end.strip_suffix(end.as_str()) else {
        return false;
    };
    if body.contains("-----") {
        return false;
    }
    body.bytes()
        .filter(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b))
        .count()
        >= 60
}

/// Classic tokens `ghp_/gho_/ghu_/ghs_/ghr_` + 36 base62 characters (30
/// random + a 6-character checksum; GitHub says lengths may grow, so up to
/// 255 is accepted) and fine-grained `github_pat_<22>_<59>` (accepted with
/// some slack in both parts).
fn valid_github_token(c: &str) -> bool {
    if let Some(rest) = c.strip_prefix("github_pat_") {
        let Some((a, b)) = rest.split_once('_') else {
            return false;
        };
        return (20..=40).contains(&a.len())
            && (40..=120).contains(&b.len())
            && all_bytes(a, |x| x.is_ascii_alphanumeric())
            && all_bytes(b, |x| x.is_ascii_alphanumeric())
            && distinct(rest) >= 16;
    }
    let kinds = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"];
    kinds.iter().any(|k| c.starts_with(k))
        && c.len() >= 40
        && all_bytes(&c[4..], |x| x.is_ascii_alphanumeric())
        && distinct(&c[4..]) >= 12
}

/// `sk-ant-api03-…` (API keys), `sk-ant-admin01-…` (Admin API keys),
/// `sk-ant-oat01-…` / `sk-ant-ort01-…` (OAuth access/refresh tokens); any
/// two-digit version. Real keys carry 95 characters after the version;
/// 32 or more are accepted so a truncated key is still caught.
fn valid_anthropic_key(c: &str) -> bool {
    let Some(rest) = c.strip_prefix("sk-ant-") else {
        return false;
    };
    let Some((kind, body)) = rest.split_once('-') else {
        return false;
    };
    let (name, version) = kind.split_at(kind.len().saturating_sub(2));
    matches!(name, "api" | "admin" | "oat" | "ort")
        && version.len() == 2
        && all_bytes(version, |b| b.is_ascii_digit())
        && body.len() >= 32
        && all_bytes(body, is_key_char)
        && distinct(body) >= 12
}

/// `sk-proj-…`, `sk-svcacct-…`, `sk-admin-…`, `sk-None-…` (32+ key
/// characters) and legacy `sk-<20>T3BlbkFJ<20>` (`T3BlbkFJ` is base64 of
/// "OpenAI"). Anthropic's `sk-ant-…` never qualifies.
fn valid_openai_key(c: &str) -> bool {
    let Some(rest) = c.strip_prefix("sk-") else {
        return false;
    };
    if rest.starts_with("ant-") {
        return false;
    }
    for kind in ["proj-", "svcacct-", "admin-", "None-"] {
        if let Some(body) = rest.strip_prefix(kind) {
            return body.len() >= 32 && all_bytes(body, is_key_char) && distinct(body) >= 12;
        }
    }
    rest.len() == 48
        && &rest[20..28] == "T3BlbkFJ"
        && all_bytes(rest, |b| b.is_ascii_alphanumeric())
        && distinct(rest) >= 12
}

/// Slack tokens: `xoxb-` (bot), `xoxp-` (user), `xoxa-`, `xoxr-`,
/// `xoxs-`, `xoxe-` / `xoxe.xoxp-` (rotating), `xapp-` (app-level). They
/// are dash-separated with at least one numeric part (team/user ids or a
/// version) and a random part of 16+ characters.
fn valid_slack_token(c: &str) -> bool {
    let rest = c.strip_prefix("xoxe.").unwrap_or(c);
    let mut parts = rest.split('-');
    let prefix = parts.next().unwrap_or("");
    if !matches!(
        prefix,
        "xoxb" | "xoxp" | "xoxa" | "xoxr" | "xoxs" | "xoxe" | "xapp"
    ) {
        return false;
    }
    let parts: Vec<&str> = parts.collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && all_bytes(p, |b| b.is_ascii_alphanumeric()))
        && parts.iter().any(|p| all_bytes(p, |b| b.is_ascii_digit()))
        && parts.iter().any(|p| p.len() >= 16 && distinct(p) >= 8)
}

/// `AIza` + 35 key characters.
fn valid_google_api_key(c: &str) -> bool {
    c.len() == 39
        && c.starts_with("AIza")
        && all_bytes(&c[4..], is_key_char)
        && distinct(&c[4..]) >= 10
}

/// Three base64url parts; the header and payload decode to JSON objects
/// and the header names its `alg`. The signature may be empty only for
/// `alg: none`.
fn valid_jwt(c: &str) -> bool {
    let mut parts = c.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if !all_bytes(signature, is_key_char) {
        return false;
    }
    let Some(header) = json_object(header) else {
        return false;
    };
    let Some(alg) = header.get("alg").and_then(|a| a.as_str()) else {
        return false;
    };
    if json_object(payload).is_none() {
        return false;
    }
    !signature.is_empty() || alg.eq_ignore_ascii_case("none")
}

fn json_object(part: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let bytes = engine.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests;
