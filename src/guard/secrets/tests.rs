//! The pack's tests: per rule, a true positive built from its example
//! (random characters generated at run time, so no real-looking key sits
//! in the source) and two near misses (the random parts replaced by filler,
//! and cut to a third); the table's own invariants (names, kinds,
//! keywords, gates); and scans through the engine (`.env` files,
//! placeholders, no findings on Claude Code's traffic and this
//! repository's sources).

use std::ops::Range;

use base64::Engine as _;

use super::validate::{base62_6, crc32, crc32_base62_valid, entropy, generic_value};
use super::*;
use crate::guard::compile::fast_path::FastPath;
use crate::guard::{mask_literal, Finding, GuardSet};
use crate::policy::config::GuardSpec;
use crate::provider::{parse_request, Dialect};

/// How a template's random parts are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Random characters of the class.
    Random,
    /// One character repeated (a placeholder like `xxxx`).
    Filler,
    /// Random, a third of the length.
    Short,
}

/// Deterministic xorshift.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick(&mut self, alphabet: &[u8]) -> u8 {
        alphabet[(self.next() % alphabet.len() as u64) as usize]
    }
}

fn alphabet(class: &str) -> &'static [u8] {
    match class {
        "a" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "h" => b"0123456789abcdef",
        "H" => b"0123456789ABCDEF",
        "d" => b"0123456789",
        "b" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        "u" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
        "U" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "l" => b"abcdefghijklmnopqrstuvwxyz0123456789",
        "L" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "A" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "B" => b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",
        other => panic!("unknown template class {other}"),
    }
}

/// Random characters of a class; mixed classes get an upper-case letter,
/// a lower-case letter and a digit up front where they hold them (as
/// nearly every real token of that length does).
fn random_chars(rng: &mut Rng, class: &str, n: usize) -> String {
    let abc = alphabet(class);
    let mut out: Vec<u8> = (0..n).map(|_| rng.pick(abc)).collect();
    let mut forced = Vec::new();
    for set in [
        &b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"[..],
        b"abcdefghijklmnopqrstuvwxyz",
        b"0123456789",
    ] {
        let sub: Vec<u8> = set.iter().copied().filter(|c| abc.contains(c)).collect();
        if !sub.is_empty() && sub.len() < abc.len() {
            forced.push(rng.pick(&sub));
        }
    }
    if n >= 8 {
        for (i, c) in forced.into_iter().enumerate() {
            out[i * 3] = c;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The item at the start of `rest`: `{class:N}`, `{crc}`, `{basic}`
/// (other braces are text, as in JSON examples).
fn template_item(rest: &str) -> Option<&str> {
    let spec = rest.strip_prefix('{')?;
    let spec = &spec[..spec.find('}')?];
    let ok = spec == "crc"
        || spec == "basic"
        || spec.split_once(':').is_some_and(|(c, n)| {
            c.bytes().all(|b| b.is_ascii_alphanumeric()) && n.parse::<usize>().is_ok()
        });
    ok.then_some(spec)
}

/// Expands a rule's example template; returns the text and the range of
/// the secret (`[[`…`]]`).
fn expand(template: &str, seed: u64, fill: Fill) -> (String, Range<usize>) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut out = String::new();
    let (mut start, mut end) = (None, None);
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("[[") {
            start = Some(out.len());
            rest = r;
        } else if let Some(r) = rest.strip_prefix("]]") {
            end = Some(out.len());
            rest = r;
        } else if let Some(spec) = template_item(rest) {
            let close = spec.len() + 1;
            rest = &rest[close + 1..];
            match spec.split_once(':') {
                Some(("b64", n)) => {
                    let n: usize = n.parse().unwrap();
                    let bytes: Vec<u8> = match fill {
                        Fill::Random => (0..n).map(|_| rng.next() as u8).collect(),
                        Fill::Filler => vec![0; n],
                        Fill::Short => (0..1).map(|_| rng.next() as u8).collect(),
                    };
                    out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
                }
                Some((class, n)) => {
                    let n: usize = n.parse().unwrap();
                    match fill {
                        Fill::Random => out.push_str(&random_chars(&mut rng, class, n)),
                        Fill::Filler => {
                            let c = alphabet(class)[0] as char;
                            out.extend(std::iter::repeat_n(c, n));
                        }
                        Fill::Short => out.push_str(&random_chars(&mut rng, class, (n / 3).max(1))),
                    }
                }
                None if spec == "crc" => {
                    let from = out.len().saturating_sub(30);
                    let crc = base62_6(crc32(&out.as_bytes()[from..]));
                    out.push_str(std::str::from_utf8(&crc).unwrap());
                }
                None if spec == "basic" => {
                    let pass = match fill {
                        Fill::Random => random_chars(&mut rng, "a", 16),
                        Fill::Filler => "x".repeat(16),
                        Fill::Short => "a".into(),
                    };
                    out.push_str(
                        &base64::engine::general_purpose::STANDARD.encode(format!("deploy:{pass}")),
                    );
                }
                None => panic!("unknown template item {spec}"),
            }
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    let range = start.expect("a [[ mark")..end.expect("a ]] mark");
    (out, range)
}

fn compiled(rule: &'static SecretRule) -> Regex {
    rule.regex()
}

fn found(rule: &'static SecretRule, text: &str) -> Vec<Range<usize>> {
    let re = compiled(rule);
    rule.find(&re, text).collect()
}

fn seed(i: usize) -> u64 {
    i as u64 * 7919 + 17
}

#[test]
fn the_pack_has_at_least_150_uniquely_named_families() {
    assert!(PACK.len() >= 150, "{} rules", PACK.len());
    let mut names = std::collections::HashSet::new();
    for b in crate::guard::builtins::Builtin::ALL {
        names.insert(b.name());
    }
    for g in crate::guard::compile::GROUPS {
        names.insert(g);
    }
    for r in PACK.iter() {
        assert!(names.insert(r.name), "{} is not unique", r.name);
        assert!(
            r.name.as_bytes()[0].is_ascii_uppercase()
                && r.name.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{}: CamelCase",
            r.name
        );
        assert!(
            r.kind
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "{}: kind {} is UPPER_SNAKE",
            r.name,
            r.kind
        );
        assert_eq!(r.placeholder(), format!("<{}>", r.kind()));
        assert!(!r.keywords.is_empty(), "{}: keywords", r.name);
        for k in r.keywords {
            assert_eq!(
                *k,
                k.to_ascii_lowercase(),
                "{}: keywords are lower-case",
                r.name
            );
        }
        assert!(lookup(r.name).is_some_and(|x| std::ptr::eq(x, *r)));
    }
    assert!(lookup("NoSuchRule").is_none());
}

#[test]
fn every_rule_finds_its_example_and_only_the_secret() {
    let mut failures = Vec::new();
    for (i, rule) in PACK.iter().enumerate() {
        let (text, secret) = expand(rule.example, seed(i), Fill::Random);
        let sentence = format!("Here is the config: {text} -- thanks");
        let shift = "Here is the config: ".len();
        let want = secret.start + shift..secret.end + shift;
        let got = found(rule, &sentence);
        if got != vec![want.clone()] {
            failures.push(format!(
                "{} on {sentence:?}: {got:?}, want {:?}",
                rule.name,
                &sentence[want.clone()]
            ));
            continue;
        }
        // The whole match is within the rule's bound and holds a keyword.
        let re = compiled(rule);
        let whole = re
            .captures_iter(&sentence)
            .find(|c| {
                rule.group.map_or(c.get(0), |g| c.get(g)).map(|m| m.range()) == Some(want.clone())
            })
            .and_then(|c| c.get(0))
            .unwrap();
        assert!(
            whole.len() <= rule.max_len,
            "{}: {} > max_len",
            rule.name,
            whole.len()
        );
        let lower = whole.as_str().to_ascii_lowercase();
        assert!(
            rule.keywords.iter().any(|k| lower.contains(k)),
            "{}: no keyword in {:?}",
            rule.name,
            whole.as_str()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn filler_in_place_of_the_random_parts_is_a_placeholder() {
    near_misses(Fill::Filler);
}

/// Every rule's example filled with `fill` is found by no rule of the pack
/// (failures reported together).
fn near_misses(fill: Fill) {
    let failures: Vec<String> = PACK
        .iter()
        .enumerate()
        // A password has no length of its own: a third of one is one
        // (their near misses are placeholders, defaults and filler).
        .filter(|(_, rule)| fill != Fill::Short || !matches!(rule.check, Check::Password))
        .filter_map(|(i, rule)| {
            let (text, _) = expand(rule.example, seed(i), fill);
            let f = found(rule, &text);
            (!f.is_empty()).then(|| format!("{} on {text:?}: {f:?}", rule.name))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_third_of_the_secret_is_not_a_secret() {
    near_misses(Fill::Short);
}

#[test]
fn crc32_and_base62_follow_the_published_scheme() {
    // The CRC-32 check value of the standard.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(&base62_6(0), b"000000");
    assert_eq!(&base62_6(61), b"00000z");
    assert_eq!(&base62_6(62), b"000010");
    assert_eq!(&base62_6(u32::MAX), b"4gfFC3");
    let mut rng = Rng(99);
    let random = random_chars(&mut rng, "a", 30);
    let check = String::from_utf8(base62_6(crc32(random.as_bytes())).to_vec()).unwrap();
    let token = format!("ghp_{random}{check}");
    assert!(crc32_base62_valid(&token));
    assert!(crc32_base62_valid(&format!("npm_{random}{check}")));
    // One character changed: the checksum no longer holds.
    let mut bad = token.clone().into_bytes();
    bad[10] = if bad[10] == b'a' { b'b' } else { b'a' };
    assert!(!crc32_base62_valid(std::str::from_utf8(&bad).unwrap()));
    assert!(!crc32_base62_valid(&format!("ghp_{random}000000")));
    assert!(!crc32_base62_valid("ghp_short"));
    // The strict pack rule rejects what the lenient builtin still takes.
    let gh = lookup("GitHubPersonalAccessToken").unwrap();
    let unchecked = format!("ghp_{random}ABCDEF");
    assert!(found(gh, &unchecked).is_empty());
    assert!(crate::guard::builtins::Builtin::GitHubToken.validate(&unchecked));
}

#[test]
fn entropy_and_generic_values() {
    assert_eq!(entropy(""), 0.0);
    assert_eq!(entropy("aaaa"), 0.0);
    assert!((entropy("abcd") - 2.0).abs() < 1e-6);
    for yes in ["s3cR3t-Pa55w0rd!", "Zq8vN2kLp4Xw9RtY", "hunter2hunter2X9"] {
        assert!(generic_value(yes, 2.8), "{yes}");
    }
    for no in [
        "changeme",
        "password",
        "user.password",
        "self.api_key",
        "os.environ",
        "process.env.TOKEN",
        "SecretString",
        "TokenKind::Ident",
        "/run/secrets/db",
        "https://vault.internal",
        "aaaaaaaaaaaaaaaa",
        "xxxxxxxxxxxx",
        "test1234test",
        "your-api-key-here",
        "read_only_mode",
        "abc",
    ] {
        assert!(!generic_value(no, 2.8), "{no}");
    }
}

#[test]
fn documentation_keys_and_placeholders_are_left_alone() {
    let aws = lookup("AwsSecretAccessKey").unwrap();
    let example_secret = ["wJalrXUtnFEMI", "K7MDENG", "bPxRfiCY", "EXAMPLEKEY"].join("/");
    assert!(found(aws, &format!("aws_secret_access_key = {example_secret}")).is_empty());
    let stripe = lookup("StripeSecretKey").unwrap();
    assert!(found(stripe, &format!("sk_live_{}", "x".repeat(24))).is_empty());
    assert!(found(stripe, "sk_test_YOUR_KEY_HERE_1234567890abc").is_empty());
    let pw = lookup("GenericPasswordAssignment").unwrap();
    for text in [
        "password: changeme",
        "PASSWORD=${PASSWORD}",
        "password=$DB_PASSWORD",
        "password: \"{{ .Values.db.password }}\"",
        "password: <your-password>",
        "password: ********",
        "password: \"\"",
        "password: REDACTED_VALUE1",
        "password: dummy-value-1",
        "password = example123456",
    ] {
        assert!(found(pw, text).is_empty(), "{text}");
    }
    let db = lookup("DatabaseUrlPassword").unwrap();
    for text in [
        "postgres://user:password@localhost/db",
        "postgres://postgres:postgres@localhost:5432/db",
        "mysql://root:${MYSQL_PASSWORD}@db/app",
        "redis://:****@cache:6379",
        "mongodb://admin:<password>@cluster0",
    ] {
        assert!(found(db, text).is_empty(), "{text}");
    }
    let basic = lookup("HttpBasicAuthHeader").unwrap();
    let placeholder = base64::engine::general_purpose::STANDARD.encode("user:password");
    assert!(found(basic, &format!("Authorization: Basic {placeholder}")).is_empty());
    let not_creds = base64::engine::general_purpose::STANDARD.encode("just some text");
    assert!(found(basic, &format!("Authorization: Basic {not_creds}")).is_empty());
}

// ---------------------------------------------------------------------
// Through the engine.

fn compile(yaml: &str) -> GuardSet {
    let specs: Vec<GuardSpec> = serde_yaml::from_str(yaml).unwrap();
    GuardSet::compile(&specs, false).unwrap()
}

fn secrets_set() -> &'static GuardSet {
    static SET: OnceLock<GuardSet> = OnceLock::new();
    SET.get_or_init(|| compile("[{name: secrets, regex: {action: Mask, builtins: [Secrets]}}]"))
}

fn user(text: &str) -> String {
    serde_json::json!({"messages": [{"role": "user", "content": text}]}).to_string()
}

/// The findings of a scan of `text` as a user message: (placeholder,
/// matched text), and the message with the masks applied.
fn scan_text(set: &GuardSet, text: &str) -> (Vec<(String, String)>, String) {
    let body = user(text);
    let parsed = parse_request(Dialect::Anthropic, &body, set.kinds()).unwrap();
    let scan = set.scan(&parsed.segments, parsed.latest_user_message);
    let seg = &parsed.segments[0];
    let shown = scan
        .masks
        .iter()
        .map(|f| {
            (
                f.placeholder.clone(),
                crate::provider::literal::decode(&seg.literal[f.range.clone()]).into_owned(),
            )
        })
        .collect();
    let refs: Vec<&Finding> = scan.masks.iter().filter(|f| f.segment == 0).collect();
    let mut out = Vec::new();
    let key = crate::guard::MaskKey::new(b"secret pack tests' mask key").unwrap();
    let mut restore = crate::provider::restore::Restore::new();
    mask_literal(seg.literal, &refs, &key, &mut restore, &mut out);
    // What is masked is the subject here: placeholders shown bare.
    let masked = crate::guard::tests::untag(&crate::provider::literal::decode(
        std::str::from_utf8(&out).unwrap(),
    ));
    (shown, masked)
}

#[test]
fn every_pack_rule_is_gated() {
    let sources: Vec<String> = PACK.iter().map(|r| r.pattern.to_owned()).collect();
    let fast = FastPath::build(&sources, &vec![None; sources.len()]).unwrap();
    let ungated: Vec<&str> = fast
        .gated
        .iter()
        .zip(PACK.iter())
        .filter(|(g, _)| g.is_none())
        .map(|(_, r)| r.name)
        .collect();
    assert_eq!(ungated, Vec::<&str>::new());
    assert!(fast.ungated.is_none());
    for groups in ["[Secrets]", "[Secrets, Pii]"] {
        let set = compile(&format!("[{{regex: {{builtins: {groups}}}}}]"));
        assert!(set.fast.ungated.is_none(), "{groups}");
    }
}

#[test]
fn groups_expand_and_a_detector_enabled_twice_compiles_once() {
    let n = |yaml: &str| compile(yaml).normalized.patterns.len();
    let secrets = n("[{regex: {builtins: [Secrets]}}]");
    assert_eq!(
        secrets,
        PACK.len() + crate::guard::compile::SECRET_BUILTINS.len()
    );
    assert_eq!(
        n("[{regex: {builtins: [Secrets, StripeSecretKey, GitHubToken, Secrets]}}]"),
        secrets
    );
    let pii =
        crate::guard::builtins::Builtin::ALL.len() - crate::guard::compile::SECRET_BUILTINS.len();
    assert!(pii >= 5);
    // A detector with a context pattern (a phone word before ten digits)
    // compiles to two patterns.
    let contexts = crate::guard::builtins::Builtin::ALL
        .iter()
        .filter(|b| b.context_pattern().is_some())
        .count();
    assert_eq!(n("[{regex: {builtins: [Pii]}}]"), pii + contexts);
    assert_eq!(
        n("[{regex: {builtins: [Pii, Email, CreditCard]}}]"),
        pii + contexts
    );
    assert_eq!(
        n("[{regex: {builtins: [StripeSecretKey, DatabaseUrlPassword]}}]"),
        2
    );
    // Each guard compiles its own.
    assert_eq!(
        n("[{regex: {builtins: [StripeSecretKey]}}, {regex: {builtins: [StripeSecretKey]}}]"),
        2
    );
    // No pack rule holds back more of a stream than the `PrivateKey`
    // builtin already does.
    let set = compile("[{regex: {builtins: [Secrets]}}]");
    let longest = PACK.iter().map(|r| r.max_len).max().unwrap();
    let pem = crate::guard::builtins::Builtin::PrivateKey.max_match_len();
    assert!(longest <= pem);
    assert_eq!(set.window(), pem * 4 + 16);
}

#[test]
fn unknown_names_list_groups_builtins_and_the_pack_size() {
    let specs: Vec<GuardSpec> = serde_yaml::from_str("[{regex: {builtins: [Secret]}}]").unwrap();
    let e = GuardSet::compile(&specs, false).unwrap_err();
    assert_eq!(e.field, "regex.builtins[0]");
    for part in [
        "`Secret`",
        "Secrets",
        "Pii",
        "CreditCard,",
        &format!("{} secret-pack rules", PACK.len()),
    ] {
        assert!(e.message.contains(part), "{part}: {}", e.message);
    }
    assert!(e.message.len() < 600, "brief: {}", e.message);
}

/// Ten kinds of secrets in one `.env`, built at run time.
fn dot_env() -> (String, Vec<&'static str>) {
    let mut rng = Rng(4242);
    let mut r = |class: &str, n: usize| random_chars(&mut rng, class, n);
    let gh_random = r("a", 30);
    let gh = format!(
        "ghp_{gh_random}{}",
        std::str::from_utf8(&base62_6(crc32(gh_random.as_bytes()))).unwrap()
    );
    let lines = [
        format!(
            "AWS_ACCESS_KEY_ID=AKIA{}",
            r("U", 16).replace(['0', '1', '8', '9'], "Q")
        ),
        format!("AWS_SECRET_ACCESS_KEY={}", r("b", 40)),
        format!("STRIPE_SECRET_KEY=sk_live_{}", r("a", 99)),
        format!("GITHUB_TOKEN={gh}"),
        format!("GITLAB_TOKEN=glpat-{}", r("a", 20)),
        format!(
            "SLACK_BOT_TOKEN=xoxb-{}-{}-{}",
            r("d", 12),
            r("d", 13),
            r("a", 24)
        ),
        format!("SENDGRID_API_KEY=SG.{}.{}", r("u", 22), r("u", 43)),
        format!(
            "DATABASE_URL=postgres://app:{}@db.internal:5432/app",
            r("a", 20)
        ),
        format!("DB_PASSWORD={}", r("a", 18)),
        format!("HF_TOKEN=hf_{}", r("L", 34)),
        format!(
            "ANTHROPIC_API_KEY=sk-ant-api03-{}-{}AA",
            r("u", 80),
            r("u", 12)
        ),
        "API_KEY=${API_KEY}".to_owned(),
        "LOG_LEVEL=debug".to_owned(),
    ];
    let kinds = vec![
        "AWS_ACCESS_KEY",
        "AWS_SECRET_KEY",
        "STRIPE_SECRET_KEY",
        "GITHUB",
        "GITLAB_PAT",
        "SLACK",
        "SENDGRID_API_KEY",
        "DATABASE_PASSWORD",
        "PASSWORD",
        "HUGGINGFACE_TOKEN",
        "ANTHROPIC_API_KEY",
    ];
    (lines.join("\n"), kinds)
}

#[test]
fn a_dot_env_with_ten_kinds_of_secrets_is_masked_value_by_value() {
    let (env, kinds) = dot_env();
    let (found, masked) = scan_text(secrets_set(), &env);
    for kind in &kinds {
        assert!(
            found.iter().any(|(p, _)| p.contains(kind)),
            "{kind} not found in {found:?}"
        );
    }
    let lines: Vec<&str> = masked.lines().collect();
    assert_eq!(lines.len(), 13, "{masked}");
    for line in &lines {
        let (key, value) = line.split_once('=').unwrap();
        match key {
            "API_KEY" => assert_eq!(value, "${API_KEY}"),
            "LOG_LEVEL" => assert_eq!(value, "debug"),
            "DATABASE_URL" => assert_eq!(
                value,
                "postgres://app:<DATABASE_PASSWORD>@db.internal:5432/app"
            ),
            _ => assert!(
                value.starts_with('<') && value.ends_with('>') && !value[1..].contains('<'),
                "{key}: the value, whole, is one placeholder: {value}"
            ),
        }
    }
}

#[test]
fn only_the_value_of_an_assignment_is_masked() {
    let mut rng = Rng(7);
    let v = random_chars(&mut rng, "a", 20);
    for (text, want) in [
        (
            format!("DB_PASSWORD={v}"),
            "DB_PASSWORD=<PASSWORD>".to_owned(),
        ),
        (
            format!("password: \"{v}\""),
            "password: \"<PASSWORD>\"".to_owned(),
        ),
        (
            format!("{{\"password\": \"{v}\"}}"),
            "{\"password\": \"<PASSWORD>\"}".to_owned(),
        ),
        (
            format!("db_password = '{v}'"),
            "db_password = '<PASSWORD>'".to_owned(),
        ),
        (
            format!("export API_TOKEN=\"{v}{v}\""),
            "export API_TOKEN=\"<TOKEN>\"".to_owned(),
        ),
        (
            format!("<password>{v}</password>"),
            "<password><SECRET></password>".to_owned(),
        ),
        (
            format!("curl -H 'Authorization: Bearer {v}{v}' https://x"),
            "curl -H 'Authorization: Bearer <BEARER_TOKEN>' https://x".to_owned(),
        ),
        (
            format!("machine git.corp login ci password {v}"),
            "machine git.corp login ci password <NETRC_PASSWORD>".to_owned(),
        ),
    ] {
        let (_, masked) = scan_text(secrets_set(), &text);
        assert_eq!(masked, want, "{text}");
    }
}

#[test]
fn placeholders_pass_through_the_engine_untouched() {
    let access_example = ["AKIA", "IOSFODNN7", "EXAMPLE"].concat();
    let secret_example = ["wJalrXUtnFEMI", "K7MDENG", "bPxRfiCY", "EXAMPLEKEY"].join("/");
    let text = [
        "API_KEY=${API_KEY}".to_owned(),
        "TOKEN=$TOKEN".to_owned(),
        "password: changeme".to_owned(),
        "api_key: <your-api-key>".to_owned(),
        "client_secret: \"{{ .Values.oauth.clientSecret }}\"".to_owned(),
        "password: \"********\"".to_owned(),
        "password:".to_owned(),
        "secret: redacted".to_owned(),
        format!("aws_access_key_id = {access_example}"),
        format!("aws_secret_access_key = {secret_example}"),
        "DATABASE_URL=postgres://user:password@localhost:5432/app".to_owned(),
        "Authorization: Bearer $ANTHROPIC_API_KEY".to_owned(),
        "Authorization: Bearer <token>".to_owned(),
        "token: xxxxxxxxxxxxxxxxxxxxxxxx".to_owned(),
        "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx".to_owned(),
    ]
    .join("\n");
    let (found, masked) = scan_text(secrets_set(), &text);
    assert_eq!(found, Vec::<(String, String)>::new(), "{masked}");
}

fn assert_no_findings(set: &GuardSet, name: &str, text: &str) {
    let (found, _) = scan_text(set, text);
    assert_eq!(
        found,
        Vec::<(String, String)>::new(),
        "a secret rule fired on {name}"
    );
}

#[test]
fn claude_code_traffic_gives_no_findings() {
    let set = secrets_set();
    for body in [
        include_str!("../../../tests/fixtures/claude_code_first_turn.json"),
        include_str!("../../../tests/fixtures/claude_code_tool_result_turn.json"),
    ] {
        let parsed = parse_request(Dialect::Anthropic, body, set.kinds()).unwrap();
        assert!(parsed.segments.len() >= 4);
        let s = set.scan(&parsed.segments, parsed.latest_user_message);
        let shown: Vec<String> = s
            .masks
            .iter()
            .map(|f| {
                let seg = &parsed.segments[f.segment];
                format!("{} {}", f.placeholder, &seg.literal[f.range.clone()])
            })
            .collect();
        assert_eq!(shown, Vec::<String>::new());
    }
}

/// Source files of this repository, test code left out: test files hold
/// fake keys on purpose (the builtins' and this pack's fixtures), and so
/// do inline `#[cfg(test)]` modules, cut off where they start.
fn repository_sources() -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "tests" {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" && !name.ends_with("_tests.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap().to_owned();
                out.push((path.display().to_string(), code));
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    walk(&root.join("src"), &mut out);
    for f in ["Cargo.lock", "Cargo.toml", "README.md", "ARCHITECTURE.md"] {
        out.push((f.to_owned(), std::fs::read_to_string(root.join(f)).unwrap()));
    }
    out
}

#[test]
fn ordinary_source_code_gives_no_findings() {
    let set = secrets_set();
    let sources = repository_sources();
    assert!(sources.len() > 50);
    for (name, text) in &sources {
        assert_no_findings(set, name, text);
    }
}

#[test]
fn hashes_uuids_integrity_strings_and_base64_data_give_no_findings() {
    let mut rng = Rng(2024);
    let b64 = |rng: &mut Rng, n: usize| {
        let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let mut lock = String::from("{\n  \"lockfileVersion\": 3,\n  \"packages\": {\n");
    for i in 0..40 {
        lock.push_str(&format!(
            "    \"node_modules/pkg{i}\": {{\"version\": \"1.{i}.0\", \"resolved\": \"https://registry.npmjs.org/pkg{i}/-/pkg{i}-1.{i}.0.tgz\", \"integrity\": \"sha512-{}\"}},\n",
            b64(&mut rng, 64)
        ));
    }
    lock.push_str("  }\n}\n");
    let mut misc = String::new();
    for _ in 0..40 {
        let h = random_chars(&mut rng, "h", 40);
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            random_chars(&mut rng, "h", 8),
            random_chars(&mut rng, "h", 4),
            random_chars(&mut rng, "h", 4),
            random_chars(&mut rng, "h", 4),
            random_chars(&mut rng, "h", 12)
        );
        misc.push_str(&format!(
            "commit {h}\nid: {uuid}\nsha256 = \"{}\"\nconst DATA: &str = \"{}\";\nlet key = cache_key(&{h:?});\n",
            random_chars(&mut rng, "h", 64),
            b64(&mut rng, 90)
        ));
    }
    let set = secrets_set();
    assert_no_findings(set, "package-lock.json", &lock);
    assert_no_findings(set, "hashes and uuids", &misc);
}

/// The table of families in `FAMILIES.md`, generated from the pack:
/// `PROMPTGATE_BLESS=1 cargo test --lib secrets` rewrites it.
#[test]
fn the_families_table_is_current() {
    let mut doc = String::from(
        "# The secret pack\n\nGenerated from `src/guard/secrets/` by `the_families_table_is_current` \
         (`PROMPTGATE_BLESS=1 cargo test --lib secrets` rewrites it). Enable all with \
         `builtins: [Secrets]`, or a rule by its name. The placeholder is `<KIND>`.\n",
    );
    let groups = [
        ("Cloud", cloud::RULES),
        ("SaaS", saas::RULES),
        ("Developer platforms", dev::RULES),
        ("AI", ai::RULES),
        ("Key material", crypto::RULES),
        ("Generic", generic::RULES),
        ("Credential files and commands", files::RULES),
    ];
    for (title, rules) in groups {
        doc.push_str(&format!(
            "\n## {title} ({})\n\n| name | kind | keywords |\n|---|---|---|\n",
            rules.len()
        ));
        for r in rules {
            doc.push_str(&format!(
                "| `{}` | `{}` | {} |\n",
                r.name,
                r.kind,
                r.keywords
                    .iter()
                    .map(|k| format!("`{}`", k.replace('|', "\\|")))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    }
    doc.push_str(&format!("\n{} families in all.\n", PACK.len()));
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/guard/secrets/FAMILIES.md");
    if std::env::var_os("PROMPTGATE_BLESS").is_some() {
        std::fs::write(&path, &doc).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == doc,
        "FAMILIES.md is stale: PROMPTGATE_BLESS=1 cargo test --lib secrets"
    );
}

/// Text made of pieces the pack's patterns and validators care about,
/// cut and joined anyhow (prefixes, keywords, operators, quotes, base64,
/// non-ASCII).
fn piece_soup() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let pieces = prop::sample::select(vec![
        "sk_live_",
        "ghp_",
        "npm_",
        "glpat-",
        "xoxb-",
        "password",
        "token",
        "secret",
        "api_key",
        "=",
        ": ",
        "\"",
        "'",
        "${",
        "}",
        "<",
        ">",
        "://",
        "@",
        ":",
        "machine ",
        " login ",
        " password ",
        "kind: Secret ",
        "data: ",
        "stringData: ",
        "Authorization: Basic ",
        "Bearer ",
        "MIIKYQIBAzCC",
        "-----BEGIN PRIVATE KEY-----",
        "\\n",
        "AAAA",
        "Zm9vOmJhcg==",
        "0123456789abcdef",
        "Q~",
        "é",
        "\u{200b}",
        "ｓｋ",
        " ",
        "x",
        "7",
        "/",
        "+",
        "EXAMPLE",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// No input makes a rule, its validator or a scan panic.
    #[test]
    fn no_input_panics(text in piece_soup(), cut in 0usize..64) {
        for rule in PACK.iter() {
            let re = rule.regex();
            let _ = rule.find(&re, &text).count();
            let at = text.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(text.len());
            let _ = rule.accepts(&text, &text[at..]);
            let _ = rule.check.accepts(&text[..at], &text[at..]);
        }
        let _ = scan_text(secrets_set(), &text);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// With the pack, the gated scan (literal atoms in the automaton, the
    /// rest in fingerprint passes, regions) finds exactly what the full
    /// scan of every pattern over whole units finds, escapes included.
    #[test]
    fn the_gated_scan_of_the_pack_finds_what_the_full_scan_finds(
        parts in proptest::collection::vec((0usize..1000, 0u8..3, piece_soup()), 1..6),
        escape_all in proptest::bool::ANY,
    ) {
        let mut text = String::new();
        for (i, fill, soup) in &parts {
            let fill = [Fill::Random, Fill::Filler, Fill::Short][usize::from(*fill)];
            let (example, _) = expand(PACK[i % PACK.len()].example, *i as u64, fill);
            text.push_str(soup);
            text.push(' ');
            text.push_str(&example);
            text.push('\n');
        }
        let mut body = user(&text);
        if escape_all {
            // Every non-ASCII character and every `_` as a \u escape.
            body = body.replace('_', "\\u005f").replace('é', "\\u00e9");
        }
        let set = secrets_set();
        let parsed = parse_request(Dialect::Anthropic, &body, set.kinds()).unwrap();
        let gated = set.scan_with(&parsed.segments, parsed.latest_user_message, true);
        let full = set.scan_with(&parsed.segments, parsed.latest_user_message, false);
        proptest::prop_assert_eq!(gated, full, "body: {}", body);
    }
}
