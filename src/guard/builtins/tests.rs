use super::*;

use proptest::prelude::*;
use regex::RegexSet;

/// Compiled once per test binary (compiling is slow in debug builds).
fn compiled() -> &'static (RegexSet, Vec<Regex>) {
    static COMPILED: std::sync::OnceLock<(RegexSet, Vec<Regex>)> = std::sync::OnceLock::new();
    COMPILED.get_or_init(|| {
        let patterns: Vec<&str> = Builtin::ALL.iter().map(|b| b.pattern()).collect();
        let set = RegexSet::new(&patterns).unwrap();
        (set, Builtin::ALL.iter().map(|b| b.regex()).collect())
    })
}

fn regex_of(b: Builtin) -> &'static Regex {
    let i = Builtin::ALL.iter().position(|x| *x == b).unwrap();
    &compiled().1[i]
}

/// Validated matches of one detector, as text.
fn found(b: Builtin, text: &str) -> Vec<String> {
    b.find_validated(regex_of(b), text)
        .map(|r| text[r].to_owned())
        .collect()
}

#[track_caller]
fn assert_finds(b: Builtin, text: &str, expected: &str) {
    assert_eq!(
        found(b, text),
        vec![expected.to_owned()],
        "{b:?} in {text:?}"
    );
    assert!(expected.len() <= b.max_match_len(), "{b:?}: {expected}");
}

/// The candidate is found, alone, when it is the whole text and inside a
/// sentence.
#[track_caller]
fn assert_detects(b: Builtin, candidate: &str) {
    assert!(b.validate(candidate), "{b:?} should accept {candidate:?}");
    assert_finds(b, candidate, candidate);
    assert_finds(b, &format!("here it is: {candidate}. Thanks"), candidate);
    assert_finds(b, &format!("(\"{candidate}\")"), candidate);
}

#[track_caller]
fn assert_none(b: Builtin, text: &str) {
    assert_eq!(found(b, text), Vec::<String>::new(), "{b:?} in {text:?}");
}

/// Deterministic pseudo-random text over an alphabet (xorshift).
fn random(seed: u64, alphabet: &str, len: usize) -> String {
    let chars: Vec<char> = alphabet.chars().collect();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chars[(x % chars.len() as u64) as usize]
        })
        .collect()
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const URLSAFE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &str = "0123456789abcdef";

/// Appends the Luhn check digit to `prefix`.
fn with_check_digit(prefix: &str) -> String {
    (0..10)
        .map(|d| format!("{prefix}{d}"))
        .find(|s| luhn_valid(s))
        .unwrap()
}

#[test]
fn names_placeholders_and_patterns() {
    assert_eq!(Builtin::ALL.len(), 13);
    for &b in Builtin::ALL {
        assert_eq!(Builtin::from_name(b.name()), Some(b));
        let p = b.placeholder();
        assert!(p.starts_with('<') && p.ends_with('>'), "{p}");
        let re = b.regex();
        // The whole match is the candidate: no capture groups at all.
        assert_eq!(re.captures_len(), 1, "{b:?} has capture groups");
        assert!(!re.is_match(""), "{b:?} matches the empty string");
    }
    for name in ["CreditCard", "Ssn", "PhoneNumber", "Email", "CaSin"] {
        assert!(Builtin::from_name(name).is_some(), "{name}");
    }
    for name in ["creditcard", "SSN", "email", "Phone", "", "Jwt "] {
        assert_eq!(Builtin::from_name(name), None, "{name}");
    }
    assert_eq!(Builtin::CreditCard.placeholder(), "<CREDIT_CARD>");
    assert_eq!(Builtin::Ssn.placeholder(), "<SSN>");
    assert_eq!(Builtin::Email.placeholder(), "<EMAIL_ADDRESS>");
    assert_eq!(Builtin::PhoneNumber.placeholder(), "<PHONE_NUMBER>");
    assert_eq!(Builtin::CaSin.placeholder(), "<CA_SIN>");
    assert_eq!(Builtin::OpenAiApiKey.placeholder(), "<OPENAI_API_KEY>");
    // All of them compile into one set, as the engine does.
    let patterns: Vec<&str> = Builtin::ALL.iter().map(|b| b.pattern()).collect();
    let set = RegexSet::new(&patterns).unwrap();
    assert!(!set.is_match("nothing to see here, 2025-10-01"));
}

#[test]
fn luhn() {
    for ok in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "378282246310005",
        "0",
        "18",
    ] {
        assert!(luhn_valid(ok), "{ok}");
    }
    for bad in [
        "4111111111111112",
        "4111 1111 1111 1112",
        "1",
        "",
        "abc",
        "19",
    ] {
        assert!(!luhn_valid(bad), "{bad}");
    }
}

#[test]
fn credit_cards() {
    let b = Builtin::CreditCard;
    for card in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500 0000 0000 0004",
        "5555555555554444",
        "2221000000000009",
        "378282246310005",
        "3782 822463 10005",
        "3782-822463-10005",
        "3056 930902 5904",
        "30569309025904",
        "6011111111111117",
        "3530111333300000",
        "6200000000000005",
        "4222222222222",
        "6212345678901234569",
    ] {
        assert_detects(b, card);
    }
    // A card followed by a CVV or an expiry is still found.
    assert_finds(b, "card 4111 1111 1111 1111 123 exp", "4111 1111 1111 1111");
    assert_finds(b, "4111 1111 1111 1111 12/29", "4111 1111 1111 1111");
    assert_finds(b, "cc=4111111111111111&exp=1229", "4111111111111111");
    // Non-ASCII letters are not word characters for the ASCII boundary.
    assert_finds(b, "carte n°4111111111111111", "4111111111111111");
    assert_finds(b, "Karte:4111111111111111ü", "4111111111111111");
    // Two cards in one text.
    let text = "4111111111111111,5555555555554444";
    assert_eq!(b.find_validated(regex_of(b), text).count(), 2);

    for text in [
        "4111 1111 1111 1112",      // Luhn
        "4111111111111112",         // Luhn
        "4111-1111 1111-1111",      // mixed separators
        "4111 11111111 1111",       // odd grouping
        "41 11 11 11 11 11 11 11",  // odd grouping
        "1700000000000",            // epoch milliseconds (leading 1)
        "1234567812345670",         // leading 1, Luhn-valid
        "0000 0000 0000 0000",      // leading 0, Luhn-valid
        "8000000000000009",         // leading 8
        "41111111111111110000",     // longer digit run
        "x4111111111111111",        // glued to a word
        "4111111111111111abc",      // glued to a word
        "4111-1111-1111-1111-2222", // longer dashed token
        "2025-4111-1111-1111-1111", // longer dashed token
        "rev2-4111-1111-1111-1111", // longer dashed token
        "34000000000000000",        // Amex prefix, 17 digits
        "41111111111111113",        // Visa prefix, 17 digits (Luhn-valid)
        "4111111111111111110",      // Visa, 19 digits (Luhn-valid): not accepted
        "0.6011111111111117",       // a float's fraction (Luhn-valid)
        "3.6011111111111117e-01",
        "6011111111111117.5",
        "[4044404959645932768, 4640401278902814207]", // u64 constants
        "5100000000000000008",                        // Mastercard 51, 19 digits
        "550e8400-e29b-41d4-a716-446655440000",
        "4111111111111111a2b3c4d5e6f7a8b9c0d1e2f3", // git SHA-like
        "ZXhhbXBsZTQxMTExMTExMTExMTExMTE=",         // base64
        "2025-10-01 12:00:00",
        "version 4.1.1111.1111",
    ] {
        assert_none(b, text);
    }
    for valid_luhn in [
        "1234567812345670",
        "41111111111111113",
        "4111111111111111110",
        "4044404959645932768",
        "4640401278902814207",
    ] {
        assert!(luhn_valid(valid_luhn), "{valid_luhn}");
    }
    assert!(!b.validate("4111 1111 1111 1111 111")); // 4-4-4-4-3 not accepted grouped
}

#[test]
fn ssns() {
    let b = Builtin::Ssn;
    for ssn in [
        "123-45-6789",
        "123 45 6789",
        "219-09-9998",
        "001-01-0001",
        "899-99-9999",
    ] {
        assert_detects(b, ssn);
    }
    assert_finds(b, "SSN: 536-22-8726, DOB 1980-02-03", "536-22-8726");
    for text in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "999-12-3456",
        "123-00-4567",
        "123-45-0000",
        "078-05-1120",
        "219-09-9999",
        "123456789", // bare nine digits: not accepted
        "123-45 6789",
        "123-45-6789-0000",
        "1-123-45-6789",
        "x12-123-45-6789",
        "123-45-6789-4a",
        "12 123 45 6789",
        "123-45-67890",
        "2025-10-01",
        "123-456-7890",
        "4111-1111-1111-1111",
        "550e8400-e29b-41d4-a716-446655440000",
    ] {
        assert_none(b, text);
    }
}

#[test]
fn canadian_sins() {
    let b = Builtin::CaSin;
    for sin in [
        "130 692 544",
        "130-692-544",
        "723 456 786",
        "912 345 675",
        "464-542-869",
    ] {
        assert_detects(b, sin);
    }
    assert_finds(b, "SIN: 130 692 544.", "130 692 544");
    for text in [
        "130 692 545",     // Luhn
        "046 454 286",     // leading 0 (fictitious range), Luhn-valid
        "800 000 002",     // leading 8, Luhn-valid
        "130692544",       // bare
        "130-692 544",     // mixed
        "130 692 5440",    // longer
        "100 130 692 544", // part of a longer number table
        "130-692-544-1",
        "415-555-2671",
    ] {
        assert_none(b, text);
    }
    assert!(luhn_valid("046454286") && luhn_valid("800000002"));
}

#[test]
fn emails() {
    let b = Builtin::Email;
    for email in [
        "john.doe@example.com",
        "jane+tag@mail.example.co.uk",
        "first_last@sub-domain.example.org",
        "x@y.io",
        "noreply@anthropic.com",
        "UPPER.Case99@Example.MUSEUM",
    ] {
        assert_detects(b, email);
    }
    assert_finds(b, "Contact <a.b-c@x.io>.", "a.b-c@x.io");
    assert_finds(
        b,
        "mailto:someone@example.com?subject=x",
        "someone@example.com",
    );
    assert_finds(b, "user=jo@example.com", "jo@example.com");
    assert_finds(b, "see jo@example.com.", "jo@example.com");
    for text in [
        "git@github.com:org/repo.git",
        "ssh://git@gitlab.example.com/x.git",
        "logo@2x.png",
        "icon@3x.webp",
        "lodash@4.17.21",
        "@types/node@20.1.0",
        "golang.org/x/net@v0.17.0",
        "user@localhost",
        "foo@bar",
        "a@b.c",
        "`@anthropic-ai`",
        "x@-bad.com",
        "me@example.com2",
        "@decorator.method",
    ] {
        assert_none(b, text);
    }
    let long_local = format!("{}@example.com", "a".repeat(65));
    assert_none(b, &long_local);
}

#[test]
fn phone_numbers() {
    let b = Builtin::PhoneNumber;
    for phone in [
        "(415) 555-2671",
        "(415)555-2671",
        "415-555-2671",
        "415.555.2671",
        "415 555 2671",
        "1-800-555-0199",
        "1 800 555 0199",
        "+1 415 555 2671",
        "+1-415-555-2671",
        "+1 (415) 555-2671",
        "+1 415-555-2671",
        "+1(415)555-2671",
        "+14155552671",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "+49 30 123456",
        "+33 1 23 45 67 89",
        "+81-3-1234-5678",
        "+61 2 9876 5432",
        "+91 98765 43210",
        "+442079460958",
        "+7 495 123-45-67",
    ] {
        assert_detects(b, phone);
    }
    assert_finds(b, "call 415-555-2671 24/7", "415-555-2671");
    for (candidate, ok) in [
        ("4155552671", false),
        ("+14155552671", true),
        ("1 (415) 555-2671", true),
        ("2 (415) 555-2671", false),
        ("+11 (415) 555-2671", false),
        ("(415 555-2671", false),
        ("(415) 555-2671)", false),
        ("415-955-2671", true),
        ("495-555-2671", false), // area code middle digit 9
        ("411-555-2671", false), // N11 area code
        ("415-911-2671", false), // N11 exchange
        ("+44", false),
        ("+44 20 7946 0958 1234 5678", false), // over 15 digits
        ("+28 1234 5678", false),              // unassigned country code
        ("+380 44 123 4567", true),
        ("+4420794609", false), // bare and short
    ] {
        assert_eq!(b.validate(candidate), ok, "{candidate}");
    }
    assert_finds(b, "tel:+14155552671;ext=1", "+14155552671");
    for text in [
        // Dates, times, timestamps and counters.
        "2025-10-01",
        "20251001",
        "20251015",
        "600000",
        "120000",
        "2025-10-15T12:00:00+05:30",
        "12:00:00+0000",
        "1700000000",
        "4155552671", // ten bare digits
        // Versions and addresses.
        "1.2.3",
        "10.0.19041.1234",
        "192.168.100.200",
        "v10.415.555.2671",
        "415.555.2671.1",
        "415.555.2671.1a",
        "build-r2-415-555-2671",
        "415-555-2671-99",
        // Order numbers that are not valid NANP numbers.
        "order 123-456-7890",
        "invoice 555-123-4567",
        "ref 911-555-1234",
        "(123) 456-7890",
        "415-555.2671",
        "415 (555) 2671",
        "(415) (555) 2671",
        // Diff lines and short + numbers.
        "+20251001",
        "+1234567890",
        "+200 300 400",
        "+42 1234567890",
        "+2025-10-01",
        // Identifiers.
        "550e8400-e29b-41d4-a716-446655440000",
        "d670460b4b4aece5915caf5c68d12f560a9fe3e4",
        "4111 1111 1111 1111",
        "123-45-6789",
    ] {
        assert_none(b, text);
    }
}

#[test]
fn aws_access_keys() {
    let b = Builtin::AwsAccessKey;
    for key in [
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        "AROA3XFRBF535PLBIFPI",
        "ABIA2IYDXBAVTFIAIJPT",
    ] {
        assert_detects(b, key);
    }
    assert_finds(
        b,
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = x",
        "AKIAIOSFODNN7EXAMPLE",
    );
    for text in [
        "AKIAXXXXXXXXXXXXXXXX",
        "akiaiosfodnn7example",
        "AKIAIOSFODNN7EXAMPL",
        "AKIAIOSFODNN7EXAMPLE1",
        "AKIAIOSFODNN7EXAMPLEX",
        "XAKIAIOSFODNN7EXAMPLE",
        "AKIA1234567890123456",
        "ZKIAIOSFODNN7EXAMPLE",
    ] {
        assert_none(b, text);
    }
}

fn pem(label: &str, seed: u64, headers: &str) -> String {
    let body = random(
        seed,
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        1200,
    );
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{headers}{}==\n-----END {label}-----",
        lines.join("\n")
    )
}

/// What the engine does to whitespace before scanning.
fn collapse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
        ) {
            continue;
        }
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

#[test]
fn private_keys() {
    let b = Builtin::PrivateKey;
    for (i, label) in [
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "DSA PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    ]
    .iter()
    .enumerate()
    {
        let key = collapse(&pem(label, i as u64 + 1, ""));
        assert_detects(b, &key);
    }
    let encrypted = collapse(&pem(
        "RSA PRIVATE KEY",
        9,
        "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n",
    ));
    assert_detects(b, &encrypted);
    let pgp = collapse(&pem(
        "PGP PRIVATE KEY BLOCK",
        10,
        "Version: GnuPG v2\nComment: https://example.com/x-y\n\n",
    ));
    assert_detects(b, &pgp);
    // A service-account JSON read from disk: newlines are literal `\n`.
    let escaped = pem("PRIVATE KEY", 11, "").replace('\n', "\\n");
    let json = format!(
        r#"{{"type": "service_account", "private_key": "{escaped}\n", "client_email": "x"}}"#
    );
    assert_finds(b, &json, &escaped);
    // Uncollapsed newlines work too.
    let raw = pem("PRIVATE KEY", 12, "");
    assert_finds(b, &raw, &raw);
    // Two keys; an unterminated BEGIN before a real key does not hide it.
    let k1 = collapse(&pem("PRIVATE KEY", 13, ""));
    let k2 = collapse(&pem("EC PRIVATE KEY", 14, ""));
    let two = format!("{k1} and {k2}");
    assert_eq!(b.find_validated(regex_of(b), &two).count(), 2);
    let text = format!("-----BEGIN RSA PRIVATE KEY----- MIIEow (truncated) {k2}");
    assert_finds(b, &text, &k2);

    for text in [
        "-----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY-----".to_owned(),
        "-----BEGIN PRIVATE KEY----- <your key here> -----END PRIVATE KEY-----".to_owned(),
        collapse(&pem("PUBLIC KEY", 2, "")),
        collapse(&pem("CERTIFICATE", 3, "")),
        collapse(&pem("RSA PRIVATE KEY", 4, "")).replace("END RSA", "END EC"),
        "if line == \"-----BEGIN PRIVATE KEY-----\" { parse() }".to_owned(),
    ] {
        assert_none(b, &text);
    }
    let huge = collapse(&pem("PRIVATE KEY", 5, &"A".repeat(20_000)));
    assert!(!b.validate(&huge));
}

#[test]
fn github_tokens() {
    let b = Builtin::GitHubToken;
    for (i, kind) in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"].iter().enumerate() {
        assert_detects(b, &format!("{kind}{}", random(i as u64 + 20, ALNUM, 36)));
    }
    let pat = format!(
        "github_pat_{}_{}",
        random(30, ALNUM, 22),
        random(31, ALNUM, 59)
    );
    assert_detects(b, &pat);
    assert_finds(b, &format!("GITHUB_TOKEN={pat}\n"), &pat);
    let token = format!("ghp_{}", random(32, ALNUM, 36));
    for text in [
        format!("ghp_{}", random(33, ALNUM, 35)),
        format!("{token}_x"),
        format!("my{token}"),
        format!("ghx_{}", random(34, ALNUM, 36)),
        format!("ghp_{}", "x".repeat(36)),
        format!("github_pat_{}", random(35, ALNUM, 82)),
        "ghp_".to_owned(),
    ] {
        assert_none(b, &text);
    }
}

fn anthropic_key(kind: &str, seed: u64) -> String {
    format!("sk-ant-{kind}-{}AA", random(seed, URLSAFE, 93))
}

#[test]
fn anthropic_keys() {
    let b = Builtin::AnthropicApiKey;
    for (i, kind) in ["api03", "admin01", "oat01", "ort01"].iter().enumerate() {
        assert_detects(b, &anthropic_key(kind, i as u64 + 40));
    }
    let key = anthropic_key("api03", 45);
    assert_finds(b, &format!("export ANTHROPIC_API_KEY='{key}'"), &key);
    assert_finds(b, &format!("x-api-key: {key}\r\n"), &key);
    for text in [
        "sk-ant-test".to_owned(),
        "sk-ant-api03-short".to_owned(),
        format!("sk-ant-api03-{}", "x".repeat(95)),
        format!("sk-ant-foo01-{}", random(46, URLSAFE, 95)),
        format!("task-ant-api03-{}", random(47, URLSAFE, 95)),
        format!("sk-ant-api03-{}", random(48, URLSAFE, 300)),
        "task-notification".to_owned(),
    ] {
        assert_none(b, &text);
    }
}

#[test]
fn openai_keys() {
    let b = Builtin::OpenAiApiKey;
    let proj = format!(
        "sk-proj-{}T3BlbkFJ{}",
        random(50, URLSAFE, 74),
        random(51, URLSAFE, 74)
    );
    let svc = format!("sk-svcacct-{}", random(52, URLSAFE, 156));
    let admin = format!("sk-admin-{}", random(53, URLSAFE, 120));
    let legacy = format!(
        "sk-{}T3BlbkFJ{}",
        random(54, ALNUM, 20),
        random(55, ALNUM, 20)
    );
    for key in [&proj, &svc, &admin, &legacy] {
        assert_detects(b, key);
    }
    assert_finds(b, &format!("Authorization: Bearer {proj}"), &proj);
    // Anthropic keys are never reported as OpenAI keys.
    for (i, kind) in ["api03", "admin01", "oat01"].iter().enumerate() {
        let key = anthropic_key(kind, i as u64 + 56);
        assert!(!b.validate(&key), "{key}");
        assert_none(b, &key);
        assert_eq!(found(Builtin::AnthropicApiKey, &key), vec![key.clone()]);
    }
    for text in [
        format!("sk-{}", random(60, ALNUM, 48)),
        format!("sk-proj-{}", "a".repeat(40)),
        "sk-proj-abc".to_owned(),
        format!(
            "sk-{}T3BlbkFJ{}",
            random(61, ALNUM, 20),
            random(62, ALNUM, 21)
        ),
        "task-notification".to_owned(),
        "desk-proj-planning".to_owned(),
    ] {
        assert_none(b, &text);
    }
}

#[test]
fn slack_tokens() {
    let b = Builtin::SlackToken;
    for token in [
        "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy".to_owned(),
        format!(
            "xoxp-1234567890-1234567890123-1234567890123-{}",
            random(70, HEX, 32)
        ),
        format!("xapp-1-A0123456789-1234567890123-{}", random(71, HEX, 64)),
        format!("xoxe.xoxp-1-{}", random(72, ALNUM, 140)),
        format!("xoxe-1-{}", random(73, ALNUM, 140)),
        format!("xoxa-2-{}", random(74, ALNUM, 60)),
    ] {
        assert_detects(b, &token);
    }
    for text in [
        "xoxb-your-bot-token",
        "xoxo-gossip-girl-forever",
        "xoxb-123-456-abc",
        "xoxb-aaaaaaaaaaaaaaaaaaaaaaaa-1",
        "SLACK_BOT_TOKEN=xoxb-",
        "xoxz-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
    ] {
        assert_none(b, text);
    }
}

#[test]
fn google_api_keys() {
    let b = Builtin::GoogleApiKey;
    let key = format!("AIzaSy{}", random(80, URLSAFE, 33));
    assert_detects(b, &key);
    assert_finds(
        b,
        &format!("https://maps.googleapis.com/x?key={key}&v=3"),
        &key,
    );
    for text in [
        format!("AIzaSy{}", random(81, URLSAFE, 32)),
        format!("AIzaSy{}", random(82, URLSAFE, 34)),
        format!("AIza{}", "X".repeat(35)),
        format!("xAIzaSy{}", random(83, URLSAFE, 33)),
    ] {
        assert_none(b, &text);
    }
}

fn b64url(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn every_json_object_header_starts_as_the_jwt_pattern_says() {
    // `{`, then `"` or JSON white space, then any byte.
    let start = regex::Regex::new(r"^e(?:y[A-DI-L]|w[k-r0-3])").unwrap();
    for c in [b'"', b' ', b'\t', b'\n', b'\r'] {
        for d in 0..=255u8 {
            let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([b'{', c, d]);
            assert!(start.is_match(&encoded), "{c:?} {d:?}: {encoded}");
        }
    }
}

#[test]
fn jwts() {
    let b = Builtin::Jwt;
    let classic = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    assert_detects(b, classic);
    let rs = format!(
        "{}.{}.{}",
        b64url(r#"{"alg":"RS256","kid":"k1"}"#),
        b64url(r#"{"iss":"https://issuer.example","sub":"u1","exp":1893456000}"#),
        random(90, URLSAFE, 342)
    );
    assert_detects(b, &rs);
    let spaced = format!(
        "{}.{}.{}",
        b64url("{\n  \"alg\": \"ES256\"\n}"),
        b64url("{ \"sub\": \"x\" }"),
        random(91, URLSAFE, 86)
    );
    assert_detects(b, &spaced);
    for header in [
        "{\r\n\"alg\":\"HS256\"}",
        "{\t\"alg\":\"HS256\"}",
        "{ \"alg\" : \"HS256\" }",
        "{\"\u{e9}\":1,\"alg\":\"HS256\"}",
        "{\"1\":1,\"alg\":\"HS256\"}",
    ] {
        let token = format!(
            "{}.{}.{}",
            b64url(header),
            b64url(r#"{"sub":"x"}"#),
            random(97, URLSAFE, 43)
        );
        assert_detects(b, &token);
    }
    let unsigned = format!(
        "{}.{}.",
        b64url(r#"{"alg":"none"}"#),
        b64url(r#"{"sub":"x"}"#)
    );
    assert_detects(b, &unsigned);
    assert_finds(b, &format!("Authorization: Bearer {classic}"), classic);

    let no_alg = format!(
        "{}.{}.{}",
        b64url(r#"{"typ":"JWT"}"#),
        b64url(r#"{"sub":"x"}"#),
        random(92, URLSAFE, 43)
    );
    let not_json = format!(
        "{}.{}.{}",
        b64url(r#"{"alg":"HS256"}"#),
        b64url(r#"{"sub":"#),
        random(93, URLSAFE, 43)
    );
    let array = format!(
        "{}.{}.{}",
        b64url(r#"{"alg":"HS256"}"#),
        b64url("[1,2]"),
        random(94, URLSAFE, 43)
    );
    let unsigned_hs = format!(
        "{}.{}.",
        b64url(r#"{"alg":"HS256"}"#),
        b64url(r#"{"sub":"x"}"#)
    );
    let two_parts = format!(
        "{}.{}",
        b64url(r#"{"alg":"HS256"}"#),
        b64url(r#"{"sub":"x"}"#)
    );
    for text in [
        no_alg,
        not_json,
        array,
        unsigned_hs,
        two_parts,
        "eyeglasses.example.com".to_owned(),
        "ewwwwwwwwww.example.com".to_owned(),
        random(
            95,
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            400,
        ),
    ] {
        assert_none(b, &text);
    }
    let huge = format!(
        "{}.{}.{}",
        b64url(r#"{"alg":"HS256"}"#),
        b64url(&format!(r#"{{"pad":"{}"}}"#, "x".repeat(9000))),
        random(96, URLSAFE, 43)
    );
    assert!(!b.validate(&huge));
}

/// Every detector over one text, as (detector, match).
fn scan_all(text: &str) -> Vec<(Builtin, String)> {
    let (set, regexes) = compiled();
    let mut hits = Vec::new();
    for i in set.matches(text).iter() {
        let b = Builtin::ALL[i];
        hits.extend(
            b.find_validated(&regexes[i], text)
                .map(|r| (b, text[r].to_owned())),
        );
    }
    hits
}

fn json_strings(value: &serde_json::Value, path: String, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::String(s) => out.push((path, s.clone())),
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                json_strings(v, format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                json_strings(v, path, out);
            }
        }
        _ => {}
    }
}

#[test]
fn real_claude_code_requests_trip_nothing_but_one_email() {
    for file in [
        "claude_code_first_turn.json",
        "claude_code_tool_result_turn.json",
    ] {
        let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
        let body: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut strings = Vec::new();
        json_strings(&body, String::new(), &mut strings);
        assert!(strings.len() > 100, "{file}: {} strings", strings.len());
        let mut hits = Vec::new();
        for (path, text) in &strings {
            for (b, m) in scan_all(&collapse(text)) {
                hits.push((path.clone(), b, m));
            }
        }
        assert_eq!(
            hits,
            vec![(
                "tools[1].description".to_owned(),
                Builtin::Email,
                "noreply@anthropic.com".to_owned()
            )],
            "{file}"
        );
    }
}

#[test]
fn realistic_prompt_with_secrets() {
    let key = anthropic_key("api03", 100);
    let text = collapse(&format!(
        "Hi! My card is 4111 1111 1111 1111 (exp 12/29), SSN 536-22-8726.\n\
         Email me at jane.doe@example.com or call (415) 555-2671.\n\
         Here is my .env:\nANTHROPIC_API_KEY={key}\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n\
         Released v1.2.3 on 2025-10-01 with build 20251001 after 600000 ms."
    ));
    let mut hits = scan_all(&text);
    hits.sort_by_key(|(b, _)| Builtin::ALL.iter().position(|x| x == b));
    let names: Vec<(&str, &str)> = hits.iter().map(|(b, m)| (b.name(), m.as_str())).collect();
    assert_eq!(
        names,
        vec![
            ("CreditCard", "4111 1111 1111 1111"),
            ("Ssn", "536-22-8726"),
            ("Email", "jane.doe@example.com"),
            ("PhoneNumber", "(415) 555-2671"),
            ("AwsAccessKey", "AKIAIOSFODNN7EXAMPLE"),
            ("AnthropicApiKey", key.as_str()),
        ]
    );
}

/// (issuer prefix, length) pairs of networks the detector accepts.
const BRANDS: &[(&str, usize)] = &[
    ("4", 13),
    ("4", 16),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("36", 14),
    ("300", 14),
    ("3528", 16),
    ("3589", 16),
    ("6011", 16),
    ("62", 19),
    ("65", 16),
    ("50", 13),
    ("58", 16),
    ("62", 17),
    ("62", 19),
    ("60", 14),
    ("65", 13),
];

fn card_number() -> impl Strategy<Value = String> {
    (0..BRANDS.len(), proptest::collection::vec(0u8..10, 19)).prop_map(|(brand, digits)| {
        let (prefix, len) = BRANDS[brand];
        let mut s = prefix.to_owned();
        s.extend(
            digits
                .iter()
                .take(len - 1 - prefix.len())
                .map(|d| char::from(b'0' + d)),
        );
        with_check_digit(&s)
    })
}

/// The accepted layouts of a number: bare, and grouped with spaces or
/// dashes where a grouping exists for its length.
fn layouts(number: &str) -> Vec<String> {
    let groups = |sizes: &[usize], sep: &str| {
        let mut out = Vec::new();
        let mut at = 0;
        for &n in sizes {
            out.push(&number[at..at + n]);
            at += n;
        }
        out.join(sep)
    };
    let mut all = vec![number.to_owned()];
    let n = number.len();
    let mut shapes: Vec<Vec<usize>> = Vec::new();
    if (13..=16).contains(&n) {
        shapes.push(vec![4, 4, 4, n - 12]);
    }
    if n == 15 {
        shapes.push(vec![4, 6, 5]);
    }
    if n == 14 {
        shapes.push(vec![4, 6, 4]);
    }
    for shape in shapes {
        for sep in [" ", "-"] {
            all.push(groups(&shape, sep));
        }
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn luhn_valid_cards_are_found(number in card_number(), before in "[a-z :=(]{0,6}", after in "[a-z .,)]{0,6}") {
        prop_assert!(luhn_valid(&number));
        for layout in layouts(&number) {
            let text = format!("{before} {layout} {after}");
            prop_assert_eq!(found(Builtin::CreditCard, &text), vec![layout.clone()], "{}", text);
        }
    }

    #[test]
    fn luhn_invalid_digits_are_never_cards(digits in proptest::collection::vec(0u8..10, 13..=19)) {
        let number: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
        prop_assume!(!luhn_valid(&number));
        for layout in layouts(&number) {
            prop_assert!(!Builtin::CreditCard.validate(&layout), "{}", layout);
            prop_assert!(found(Builtin::CreditCard, &layout).is_empty(), "{}", layout);
        }
    }

    #[test]
    fn validators_never_panic_and_spans_are_sound(text in "[-0-9A-Za-z_ .@+()=:/]{0,80}|\\PC{0,40}") {
        for &b in Builtin::ALL {
            let _ = b.validate(&text);
            for r in b.find_validated(regex_of(b), &text) {
                prop_assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
                prop_assert!(r.len() <= b.max_match_len());
            }
        }
    }
}

#[test]
fn ssns_with_dots() {
    let b = Builtin::Ssn;
    assert_detects(b, "123.45.6789");
    assert_detects(b, "536.22.8726");
    assert_finds(b, "SSN 536 22 8726, born 1980", "536 22 8726");
    for text in [
        "000.12.3456",
        "666.12.3456",
        "900.12.3456",
        "123.00.4567",
        "123.45.0000",
        "078.05.1120",
        "123.45-6789",      // mixed separators
        "1.123.45.6789",    // a longer dotted token
        "123.45.6789.1",    // a longer dotted token
        "v123.45.6789",     // glued to a word
        "123.456.7890",     // 3-3-4
        "10.42.17.203",     // an IPv4 address
        "2025.12.05",       // a date
        "0.123.45.6789e-3", // a float run on
    ] {
        assert_none(b, text);
    }
}

#[test]
fn uatp_cards() {
    let b = Builtin::CreditCard;
    let uatp = with_check_digit("13541234567891");
    assert_eq!(uatp.len(), 15);
    assert_detects(b, &uatp);
    let grouped = format!("{} {} {}", &uatp[..4], &uatp[4..9], &uatp[9..]);
    assert_detects(b, &grouped);
    let dashed = grouped.replace(' ', "-");
    assert_detects(b, &dashed);
    assert_finds(b, &format!("UATP card: {grouped}, exp 12/29"), &grouped);
    let mut wrong = uatp.clone().into_bytes();
    wrong[14] = if wrong[14] == b'9' {
        b'0'
    } else {
        wrong[14] + 1
    };
    let wrong = String::from_utf8(wrong).unwrap();
    // A Luhn-valid 16-digit and 13-digit number starting with 1, and the
    // 4-5-6 grouping on a number that is no UATP card.
    let sixteen = with_check_digit("135412345678912");
    let visa = with_check_digit("411111111111111");
    for text in [
        wrong.as_str(),
        &format!("{} {} {}", &wrong[..4], &wrong[4..9], &wrong[9..]),
        &sixteen,
        "1700000000000",
        &format!("{} {} {}", &visa[..4], &visa[4..9], &visa[9..]),
        // UATP is grouped 4-5-6, not like Amex.
        &format!("{} {} {}", &uatp[..4], &uatp[4..10], &uatp[10..]),
    ] {
        assert_none(b, text);
    }
}

#[test]
fn phone_numbers_with_extensions() {
    let b = Builtin::PhoneNumber;
    for phone in [
        "415-555-2671 x123",
        "415-555-2671 X9",
        "415-555-2671 ext. 123",
        "415-555-2671 ext 12345",
        "415.555.2671 Ext.42",
        "(415) 555-2671 #123",
        "415 555 2671, extension 7",
        "+1 415 555 2671 x12",
        "1-800-555-0199 ext 4",
    ] {
        assert_detects(b, phone);
    }
    // The extension is part of the match; what is not one is left out.
    assert_finds(b, "call 415-555-2671 x123 now", "415-555-2671 x123");
    assert_finds(b, "call 415-555-2671 x now", "415-555-2671");
    assert_finds(b, "call 415-555-2671 extra", "415-555-2671");
    assert_finds(b, "415-555-2671 x1234567", "415-555-2671");
    assert_finds(b, "415-555-2671#anchor", "415-555-2671");
    for (candidate, ok) in [
        ("415-555-2671 x", false),
        ("415-555-2671 x1234567", false),
        ("415-555-2671 y123", false),
        ("411-555-2671 x12", false),
        ("+44 20 7946 0958 x12", false),
    ] {
        assert_eq!(b.validate(candidate), ok, "{candidate}");
    }
}

/// Validated numbers of the phone detector's context form.
fn found_in_context(text: &str) -> Vec<String> {
    let b = Builtin::PhoneNumber;
    let re = Regex::new(b.context_pattern().unwrap()).unwrap();
    re.captures_iter(text)
        .filter_map(|c| c.get(1))
        .filter(|m| b.validate_in_context(m.as_str()))
        .map(|m| m.as_str().to_owned())
        .collect()
}

#[test]
fn bare_phone_numbers_only_after_a_phone_word() {
    for (text, number) in [
        ("phone: 4155552671", "4155552671"),
        ("Tel:4155552671", "4155552671"),
        ("\"mobile\": \"4155552671\"", "4155552671"),
        ("Fax # 14155552671", "14155552671"),
        ("cell 4155552671.", "4155552671"),
        ("phone_number=4155552671", "4155552671"),
        ("Telephone: 4155552671", "4155552671"),
        ("PHONE NO. 4155552671", "4155552671"),
    ] {
        assert_eq!(found_in_context(text), [number], "{text}");
    }
    for text in [
        "id: 4155552671",
        "callback 4155552671",
        "phone: 1234567890",     // area code 123
        "phone: 4115552671",     // N11 area code
        "phone: 41555526710",    // eleven digits, no leading 1
        "call 4155552671234",    // a longer number
        "phone: the 4155552671", // a word between
        "ts=1733400000 tel",
        "telemetry 4155552671",
    ] {
        assert_eq!(found_in_context(text), Vec::<String>::new(), "{text}");
    }
    // Alone, ten digits are no phone number.
    assert_none(Builtin::PhoneNumber, "phone: 4155552671");
}

#[test]
fn obfuscated_emails() {
    let b = Builtin::Email;
    for email in [
        "jane.doe [at] example [dot] com",
        "jane.doe[at]example[dot]com",
        "jane (at) example (dot) co (dot) uk",
        "jane{at}example{dot}org",
        "JANE [AT] EXAMPLE [DOT] COM",
        "first [dot] last [at] mail [dot] example [dot] org",
        "ops (at) example.com",
    ] {
        assert_detects(b, email);
    }
    assert_finds(
        b,
        "write to jane [at] example [dot] com today",
        "jane [at] example [dot] com",
    );
    for text in [
        "meet me [at] the station",
        "look (at) this",
        "jane at example dot com",
        "foo [at] bar",
        "x [at] y [dot] z",
        "jane [at] [at] example [dot] com",
        "jane [at] example [dot] 123",
        "git [at] github [dot] com",
        "logo [at] 2x [dot] png",
    ] {
        assert_none(b, text);
    }
}

#[test]
fn digit_dense_tool_output_trips_no_number_detector() {
    // Lines of service logs, CI output, lockfiles and `git log` as a coding
    // agent reads them: timestamps, ids, UUIDs, hashes, IPs, versions.
    let text = r#"2026-12-05T12:16:07.123456Z INFO  [order-svc] request_id=7f3a9c2e-1b4d-4e8f-9a6b-3c2d1e0f9a8b method=GET path=/api/v1/orders/1837293 status=200 latency_ms=12.345 client_ip=10.42.17.203 bytes=18273
{"ts":"2026-12-05T12:16:07.123Z","level":"info","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","order_id":412345678901,"duration_us":1234567,"pod":"api-7d9f8b6c5-x2k4p"}
10.0.3.17 - - [05/Dec/2026:12:16:07 +0000] "GET /static/app.3f9a1c2e.js?v=1733400000 HTTP/1.1" 200 51234 "-" "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.6778.204"
Dec  5 12:16:07 node-3 kernel: [1234567.123456] eth0: 4155552 packets 123 dropped, pid 28731 uid 1000
2026-12-05T12:16:07.1234567Z #12 sha256:07f5c31f8f3d8dd7a61a5e13744269438f4ec65dd3602081cc37d1b4ad5ac1f6 45.18MB / 270.7MB 30.8s
2026-12-05T12:16:08.0000000Z test result: ok. 929 passed; 0 failed; 9 ignored; finished in 59.39s
   Compiling serde v1.0.210
npm warn deprecated inflight@1.0.6: use lru-cache@10.4.3 instead (job 95657425 run 9774576442, attempt 3)
      "integrity": "sha512-7D8dDk3W0XwJ5sHn2rPqE1q9fP0R5mJb2vXbT4dYQn7u3aLp0kGm8cWz1oS6eHr9iUt3yVb5nQx4lKz2pTs8w==",
checksum = "a3f5c9e1d27b48f60e5a91c3b7d2f84e16c0a9b5d3e7f2c84a6b1e9d0c3f5a72"
commit 4f1c2e3d5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d
Date:   Thu Dec 5 12:16:07 2026 +0000
    fix: bound the retry window (#18273)
 src/retry.rs | 12 ++++++------
 3 files changed, 1024 insertions(+), 512 deletions(-)
uuid 550e8400-e29b-41d4-a716-446655440000, span 00f067aa0ba902b7, epoch_ms 1733400967123
order 2025-1234-5678-9012 build 20251205.3 v2.14.1-rc.3 port 8443 0x7ffd5e8a1c40"#;
    let numbers = [
        Builtin::CreditCard,
        Builtin::Ssn,
        Builtin::PhoneNumber,
        Builtin::CaSin,
    ];
    for line in text.lines() {
        let hits: Vec<_> = scan_all(line)
            .into_iter()
            .filter(|(b, _)| numbers.contains(b))
            .collect();
        assert_eq!(hits, [], "{line}");
        assert_eq!(found_in_context(line), Vec::<String>::new(), "{line}");
    }
}
