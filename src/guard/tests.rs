use super::*;
use crate::guard::builtins::Builtin;
use crate::guard::compile::patterns::ascii_word_boundaries;
use crate::guard::compile::UNBOUNDED_WINDOW;
use crate::policy::config::GuardSpec;
use crate::provider::PartKind;
use crate::provider::{parse_request, Dialect, KindSet};
use proptest::prelude::*;

fn compile(yaml: &str) -> Result<GuardSet, GuardSpecError> {
    let specs: Vec<GuardSpec> = serde_yaml::from_str(yaml).unwrap();
    GuardSet::compile(&specs, false)
}

/// (rule name, location, matched original text)
type Shown = (String, String, String);

/// Scans an Anthropic body; returns the reject and the masks.
fn scan(set: &GuardSet, body: &str) -> (Option<Shown>, Vec<Shown>) {
    let parsed = parse_request(Dialect::Anthropic, body, set.kinds()).unwrap();
    let s = set.scan(&parsed.segments, parsed.latest_user_message);
    let show = |f: &Finding| {
        let seg = &parsed.segments[f.segment];
        (
            set.rules()[f.rule].name.clone(),
            seg.location.to_string(),
            crate::provider::literal::decode(&seg.literal[f.range.clone()]).into_owned(),
        )
    };
    (
        s.reject.as_ref().map(show),
        s.masks.iter().map(show).collect(),
    )
}

/// A segment's text with mask findings applied (spliced into the literal,
/// then decoded), placeholders shown without their tags (`<SSN>`): these
/// tests are about what is masked; tags have tests of their own.
fn masked(seg: &crate::provider::TextSegment<'_>, findings: &[&Finding]) -> String {
    let mut out = Vec::new();
    let key = MaskKey::new(b"guard tests' mask key").unwrap();
    let mut restore = crate::provider::restore::Restore::new();
    mask_literal(seg.literal, findings, &key, &mut restore, &mut out);
    untag(&crate::provider::literal::decode(
        std::str::from_utf8(&out).unwrap(),
    ))
}

/// `text` with tagged placeholders shown bare: `<SSN:3f9a1c>` → `<SSN>`.
pub(crate) fn untag(text: &str) -> String {
    let re = regex::Regex::new(r"<([A-Za-z0-9_.-]+):[0-9a-f]{6}>").unwrap();
    re.replace_all(text, "<$1>").into_owned()
}

fn user(text: &str) -> String {
    serde_json::json!({"messages": [{"role": "user", "content": text}]}).to_string()
}

#[test]
fn first_rejecting_match_in_body_order_wins() {
    let set = compile(
        r#"
- name: cards
  regex: {action: Reject, matches: ["credit card"]}
  response: {message: "no cards", statusCode: 451}
- regex: {action: Reject, matches: ["card", "secret"]}
"#,
    )
    .unwrap();
    let body = r#"{"system":"top secret","messages":[{"role":"user","content":"my credit card"}]}"#;
    let (reject, _) = scan(&set, body);
    assert_eq!(
        reject,
        Some(("request[1]".into(), "system".into(), "secret".into()))
    );
    let (reject, _) = scan(&set, &user("my credit card is"));
    let (name, _, text) = reject.unwrap();
    assert!(name == "cards" || name == "request[1]");
    assert!(text == "credit card" || text == "card");
    let rule = &set.rules()[0];
    assert_eq!(
        (rule.status, rule.message.as_str(), rule.action),
        (451, "no cards", Action::Reject)
    );
    assert_eq!(set.rules()[1].message, DEFAULT_REJECT_MESSAGE);
    assert!(scan(&set, &user("harmless text")).0.is_none());
}

#[test]
fn bypass_spellings_still_match() {
    let set = compile(r#"[{regex: {action: Reject, matches: ["credit card"]}}]"#).unwrap();
    for text in [
        "Credit Card",
        "CREDIT   CARD",
        "credit\ncard",
        "credit\u{00a0}card",
        "cre\u{200b}dit card",
        "\u{ff43}\u{ff52}\u{ff45}\u{ff44}\u{ff49}\u{ff54} \u{ff43}\u{ff41}\u{ff52}\u{ff44}",
        "cred\u{00ad}it\u{2003}card",
    ] {
        let (reject, _) = scan(&set, &user(text));
        let (_, _, matched) = reject.unwrap_or_else(|| panic!("{text:?} walked around the guard"));
        assert_eq!(
            matched, text,
            "the match covers the original spelling exactly"
        );
    }
    // JSON escapes are decoded by parsing.
    let (reject, _) = scan(
        &set,
        r#"{"messages":[{"role":"user","content":"credit\u0020card"}]}"#,
    );
    assert!(reject.is_some());
}

#[test]
fn opting_out_restores_raw_case_sensitive_matching() {
    let set = compile(r#"[{regex: {action: Reject, matches: ["credit card"], caseSensitive: true, normalize: false}}]"#).unwrap();
    assert!(scan(&set, &user("a credit card")).0.is_some());
    assert!(scan(&set, &user("a Credit Card")).0.is_none());
    assert!(scan(&set, &user("a credit  card")).0.is_none());
    let set =
        compile(r#"[{regex: {action: Reject, matches: ["Credit Card"], caseSensitive: true}}]"#)
            .unwrap();
    assert!(
        scan(&set, &user("Credit   Card")).0.is_some(),
        "normalised but case-sensitive"
    );
    assert!(scan(&set, &user("credit card")).0.is_none());
}

#[test]
fn a_phrase_split_across_blocks_of_one_message_matches() {
    let set = compile(r#"[{regex: {action: Mask, matches: ["credit card"]}}]"#).unwrap();
    let body = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"my credit"},{"type":"text","text":"card is here"}]}]}"#;
    let (_, masks) = scan(&set, body);
    assert_eq!(
        masks,
        vec![
            (
                "request[0]".into(),
                "messages[0].content[0]".into(),
                "credit".into()
            ),
            (
                "request[0]".into(),
                "messages[0].content[1]".into(),
                "card".into()
            ),
        ]
    );
    // Not across two messages.
    let body =
        r#"{"messages":[{"role":"user","content":"my credit"},{"role":"user","content":"card"}]}"#;
    assert!(scan(&set, body).1.is_empty());
}

#[test]
fn placeholders_name_the_rule_and_masks_merge() {
    let set = compile(
        r#"
- name: project-falcon
  regex: {matches: ["falcon \\w+"]}
- regex: {action: Mask, matches: ["falcon"]}
"#,
    )
    .unwrap();
    assert_eq!(
        set.rules()[0].action,
        Action::Mask,
        "agentgateway's default action is Mask"
    );
    let body = user("about falcon wings today");
    let parsed = parse_request(Dialect::Anthropic, &body, set.kinds()).unwrap();
    let s = set.scan(&parsed.segments, None);
    assert_eq!(s.masks.len(), 2);
    assert_eq!(s.masks[0].placeholder, "<PROJECT_FALCON>");
    assert_eq!(s.masks[1].placeholder, "<masked>");
    let refs: Vec<&Finding> = s.masks.iter().collect();
    assert_eq!(
        masked(&parsed.segments[0], &refs),
        "about <PROJECT_FALCON> today"
    );
}

#[test]
fn mask_positions_map_back_through_normalisation() {
    let set = compile(r#"[{name: card, regex: {matches: ["card \\d+"]}}]"#).unwrap();
    let text = "my \u{ff43}\u{ff41}\u{ff52}\u{ff44}\u{200b}  42 ok";
    let body = user(text);
    let parsed = parse_request(Dialect::Anthropic, &body, set.kinds()).unwrap();
    let s = set.scan(&parsed.segments, None);
    let refs: Vec<&Finding> = s.masks.iter().collect();
    assert_eq!(masked(&parsed.segments[0], &refs), "my <CARD> ok");
}

const AGENT_BODY: &str = r#"{
  "system": "sys",
  "tools": [{"name":"Bash","description":"never mind the secret word"}],
  "messages": [
    {"role":"user","content":"first secret"},
    {"role":"assistant","content":[{"type":"text","text":"assistant secret"},{"type":"tool_use","id":"t","name":"Bash","input":{"command":"echo secret"}}]},
    {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"output secret"},{"type":"text","text":"latest secret"}]}
  ]
}"#;

fn locations(scope: &str) -> Vec<String> {
    let set = compile(&format!(
        "[{{scope: {scope}, regex: {{action: Mask, matches: [secret]}}}}]"
    ))
    .unwrap();
    let (_, masks) = scan(&set, AGENT_BODY);
    masks.into_iter().map(|m| m.1).collect()
}

#[test]
fn scopes_select_the_parts_they_name() {
    // A mask that restores (the default) reads the assistant's history
    // too: restored values come back there.
    let default = compile("[{regex: {action: Mask, matches: [secret]}}]").unwrap();
    let (_, masks) = scan(&default, AGENT_BODY);
    let got: Vec<String> = masks.into_iter().map(|m| m.1).collect();
    assert_eq!(
        got,
        [
            "messages[0].content",
            "messages[1].content[0]",
            "messages[1].content[1].input",
            "messages[2].content[0]",
            "messages[2].content[1]"
        ]
    );
    for plain in [
        "[{restore: false, regex: {action: Mask, matches: [secret]}}]",
        "[{regex: {action: Reject, matches: [secret]}}]",
    ] {
        let set = compile(plain).unwrap();
        let (reject, masks) = scan(&set, AGENT_BODY);
        let got: Vec<String> = reject.into_iter().chain(masks).map(|m| m.1).collect();
        let want = [
            "messages[0].content",
            "messages[2].content[0]",
            "messages[2].content[1]",
        ];
        assert_eq!(got, want[..got.len()], "{plain}");
    }
    assert!(
        compile("[{restore: true, regex: {action: Reject, matches: [secret]}}]")
            .unwrap_err()
            .field
            .contains("restore")
    );
    assert!(!default.kinds().contains(PartKind::ToolDefinition));

    assert_eq!(locations("[ToolDefinitions]"), ["tools[0].description"]);
    assert_eq!(locations("[ToolInput]"), ["messages[1].content[1].input"]);
    assert_eq!(locations("[AssistantMessages]"), ["messages[1].content[0]"]);
    assert_eq!(locations("[ToolOutput]"), ["messages[2].content[0]"]);
    assert_eq!(
        locations("[UserMessages]"),
        ["messages[0].content", "messages[2].content[1]"]
    );
    assert_eq!(
        locations("[LatestUserTurn]"),
        ["messages[2].content[0]", "messages[2].content[1]"]
    );
    assert_eq!(
        locations("[Messages]"),
        [
            "messages[0].content",
            "messages[1].content[0]",
            "messages[2].content[1]"
        ]
    );
    assert!(locations("[SystemPrompt]").is_empty());
}

#[test]
fn bad_guards_are_refused_with_their_place() {
    let e = compile(r#"[{regex: {action: Reject, matches: ["ok", "(unclosed"]}}]"#).unwrap_err();
    assert_eq!((e.index, e.field.as_str()), (0, "regex.matches[1]"));
    assert!(e.message.contains("invalid regex"), "{}", e.message);
    let e = compile(r#"[{regex: {action: Reject, matches: ["a*"]}}]"#).unwrap_err();
    assert!(e.message.contains("empty string"));
    let e = compile(r#"[{regex: {action: Reject, matches: ["x"]}, response: {statusCode: 200}}]"#)
        .unwrap_err();
    assert_eq!(e.field, "response.statusCode");
    let e = compile(r#"[{webhook: {host: x}}]"#).unwrap_err();
    assert_eq!(e.field, "webhook");
    let e = compile(r#"[{regex: {action: Mask}}]"#).unwrap_err();
    assert_eq!(e.field, "regex");
    let e = compile(r#"[{regex: {builtins: [Nope]}}]"#).unwrap_err();
    assert_eq!(e.field, "regex.builtins[0]");
    let e = compile(r#"[{scope: [], regex: {matches: [x]}}]"#).unwrap_err();
    assert_eq!(e.field, "scope");
    let specs: Vec<GuardSpec> =
        serde_yaml::from_str("[{scope: [Messages], regex: {matches: [x]}}]").unwrap();
    assert_eq!(GuardSet::compile(&specs, true).unwrap_err().field, "scope");
}

#[test]
fn windows_follow_the_longest_possible_match() {
    assert_eq!(
        compile("[{regex: {matches: [abc]}}]").unwrap().window(),
        3 * 4 + 16
    );
    assert_eq!(
        compile("[{regex: {matches: ['a.*b']}}]").unwrap().window(),
        UNBOUNDED_WINDOW
    );
    assert_eq!(GuardSet::empty().window(), 0);
}

#[test]
fn response_text_scans_with_every_rule() {
    let specs: Vec<GuardSpec> =
        serde_yaml::from_str("[{name: c, regex: {matches: ['\\d{4}-\\d{4}']}}, {regex: {action: Reject, matches: [forbidden]}}]").unwrap();
    let set = GuardSet::compile(&specs, true).unwrap();
    assert_eq!(set.rules()[1].name, "response[1]");
    let m = set.scan_text("pay 1234-5678 or FORBIDDEN");
    assert_eq!(m.len(), 2);
    assert_eq!(
        (m[0].rule, m[0].range.clone(), m[0].placeholder.as_str()),
        (0, 4..13, "<C>")
    );
    assert_eq!((m[1].rule, m[1].range.clone()), (1, 17..26));
}

#[test]
fn no_guards_read_nothing() {
    let set = GuardSet::empty();
    assert!(set.kinds().is_empty());
    let body = user("credit card");
    let parsed = parse_request(Dialect::Anthropic, &body, KindSet::ALL).unwrap();
    assert_eq!(set.scan(&parsed.segments, None), Scan::default());
}

#[test]
fn builtins_mask_what_they_find_and_validate() {
    let set =
        compile("[{regex: {action: Mask, builtins: [CreditCard, AwsAccessKey, Email, Ssn]}}]")
            .unwrap();
    let body = serde_json::json!({"messages": [
        {"role": "user", "content": "card 4111 1111 1111 1111, not 4111 1111 1111 1112"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
            "content": "aws_access_key_id = AKIAZ7QWERTYUIOPASDF\nowner: jane.doe@example.com ssn 123-45-6789 bad 000-12-3456"}]}
    ]})
    .to_string();
    let parsed = parse_request(Dialect::Anthropic, &body, set.kinds()).unwrap();
    let s = set.scan(&parsed.segments, parsed.latest_user_message);
    let found: Vec<(String, &str)> = s
        .masks
        .iter()
        .map(|f| {
            (
                crate::provider::literal::decode(
                    &parsed.segments[f.segment].literal[f.range.clone()],
                )
                .into_owned(),
                f.placeholder.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("4111 1111 1111 1111".to_owned(), "<CREDIT_CARD>"),
            ("AKIAZ7QWERTYUIOPASDF".to_owned(), "<AWS_ACCESS_KEY>"),
            ("jane.doe@example.com".to_owned(), "<EMAIL_ADDRESS>"),
            ("123-45-6789".to_owned(), "<SSN>"),
        ]
    );
    // Fullwidth digits are found through normalisation and masked in place.
    let text = "\u{ff14}\u{ff11}\u{ff11}\u{ff11} 1111 1111 1111";
    let body = user(text);
    let parsed = parse_request(Dialect::Anthropic, &body, set.kinds()).unwrap();
    let s = set.scan(&parsed.segments, None);
    let refs: Vec<&Finding> = s.masks.iter().collect();
    assert_eq!(masked(&parsed.segments[0], &refs), "<CREDIT_CARD>");
}

#[test]
fn every_builtin_on_real_claude_code_traffic_fires_nothing() {
    let all: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
    let set = compile(&format!(
        "[{{regex: {{action: Reject, builtins: [{}]}}}}]",
        all.join(", ")
    ))
    .unwrap();
    for body in [
        include_str!("../../tests/fixtures/claude_code_first_turn.json"),
        include_str!("../../tests/fixtures/claude_code_tool_result_turn.json"),
    ] {
        let parsed = parse_request(Dialect::Anthropic, body, set.kinds()).unwrap();
        assert!(parsed.segments.len() >= 4);
        let s = set.scan(&parsed.segments, parsed.latest_user_message);
        assert_eq!(
            s,
            Scan::default(),
            "a builtin fired on Claude Code's own text"
        );
    }
}

#[test]
fn unknown_builtins_list_the_known_ones() {
    let e = compile("[{regex: {builtins: [CreditCards]}}]").unwrap_err();
    assert!(e.message.contains("CreditCard,"), "{}", e.message);
}

#[test]
fn word_boundaries_become_ascii_and_keep_their_meaning() {
    assert_eq!(
        ascii_word_boundaries(r"\bcredit card\b"),
        r"(?-u:\b)credit card(?-u:\b)"
    );
    assert_eq!(
        ascii_word_boundaries(r"a\Bb|(x\b{start}y)+"),
        r"a(?-u:\B)b|(x(?-u:\b{start})y)+"
    );
    assert_eq!(
        ascii_word_boundaries(r"^\\b$"),
        r"^\\b$",
        "an escaped backslash is not a boundary"
    );
    assert_eq!(ascii_word_boundaries("(unclosed"), "(unclosed");
    let set = compile(r"[{regex: {action: Reject, matches: ['\bcard\b']}}]").unwrap();
    assert!(scan(&set, &user("my card — é")).0.is_some());
    assert!(
        scan(&set, &user("éCard")).0.is_some(),
        "a non-ASCII letter is a boundary"
    );
    assert!(scan(&set, &user("cardboard")).0.is_none());
}

/// Every builtin plus custom patterns of every shape: gated literals,
/// phrases across white space and blocks, case-insensitive words, patterns
/// with no gate (scanned whole) and with anchors (not local).
fn differential_set() -> &'static GuardSet {
    static SET: std::sync::OnceLock<GuardSet> = std::sync::OnceLock::new();
    SET.get_or_init(build_differential_set)
}

fn build_differential_set() -> GuardSet {
    let builtins: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
    compile(&format!(
        r#"
- name: secrets
  regex: {{action: Mask, builtins: [{}]}}
- name: internal
  regex:
    action: Mask
    matches:
    - 'project[- ]codename\d\d'
    - '\bconfidential\b'
    - 'do not (share|forward)'
    - 'emp-\d{{3}}'
    - 'internal\.example\.com/[a-z]+'
    - 'x+y'
    - 'secret.*sauce'
    - '^start here'
    - 'patient id \d+'
    - '\b\d{{3}}-\d{{7}}\b'
- name: blocked
  regex: {{action: Reject, matches: ['pine apple', 'k[a-z]lvin']}}
"#,
        builtins.join(", ")
    ))
    .unwrap()
}

/// Pieces of text that exercise gates, boundaries, escapes and
/// normalisation: planted secrets, spellings that only match after
/// normalisation, punctuation and white space of every kind.
const PIECES: &[&str] = &[
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "4111111111111111",
    "v10-4111-1111-1111-1111",
    "123-45-6789",
    "046 454 286",
    "+1 (415) 555-2671",
    "415.555.2671",
    "+44 20 7946 0958",
    "jane.doe@example.com",
    "a@b",
    "AKIAZ5EXAMPLEKEY7QW2",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789AB",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc",
    "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----",
    "AIzaSyA1234567890abcdefghijklmnopqrstu",
    "project codename42",
    "Project-CODENAME07",
    "pro\u{200b}ject codename11",
    "ｐｒｏｊｅｃｔ codename33",
    "CONFIDENTIAL",
    "unconfidential",
    "do not\n\tshare",
    "do  not forward",
    "do n\u{8}ot share",
    "do not sh\u{7f}are",
    "Do Not SHARE",
    "patient id 42",
    "Patient\u{8} ID\n9",
    "pat\u{fb01}ent id 3",
    "emp-123",
    "emp-12",
    "internal.example.com/wiki",
    "internal.example.com\\/x",
    "xxxy",
    "secret and sauce",
    "start here",
    "pine\napple",
    "pine\u{00a0}apple",
    "\u{212a}elvin",
    "kelvin",
    "ﬁle",
    "½",
    "１２３-４５-６７８９",
    "4111\u{200b}1111 1111 1111",
    "→",
    "é",
    "😀",
    "\u{1b}[31m",
    "\"quoted\"",
    "a\\b",
    " ",
    "  ",
    "\n",
    "\t",
    ",",
    ";",
    "(",
    ")",
    "_",
    ".",
    "-",
    "x",
    "7",
    "99",
    "word",
    "\u{7f}",
    // Digit clusters: number shapes, their near misses, separators and
    // white space of every kind between groups, digits NFKC changes or
    // keeps (Arabic-Indic digits match `\d`).
    "(415) 555-2671",
    "1-800-555-0199",
    "+1 415 555 2671",
    "+33 1 23 45 67 89",
    "+",
    "10.42.17.203",
    "2026-12-05T12:16:07.123Z",
    "130 692 544",
    "3782 822463 10005",
    "4111",
    " 1111",
    "-1111",
    "555",
    "2671",
    "\u{a0}",
    "\u{2192}",
    "345-1234567",
    "\u{663}\u{664}\u{665}-\u{661}\u{662}\u{663}\u{664}\u{665}\u{666}\u{667}",
    "\u{663}",
    // The newer shapes: dotted SSNs, UATP cards, extensions, bare numbers
    // after a phone word, spelled-out e-mail addresses.
    "123.45.6789",
    "1354 12345 678911",
    "415-555-2671 x123",
    " ext. 12",
    "#9",
    "phone: ",
    "Tel",
    "4155552671",
    "jane [at] example [dot] com",
    "(at)",
    " {dot} ",
    "org",
];

fn piece_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(PIECES), 0..12).prop_map(|v| v.concat())
}

fn body_of(system: &str, turns: &[Vec<String>]) -> String {
    let messages: Vec<serde_json::Value> = turns
        .iter()
        .enumerate()
        .map(|(i, blocks)| {
            if i % 2 == 1 {
                serde_json::json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                    "content": blocks.iter().map(|t| serde_json::json!({"type": "text", "text": t})).collect::<Vec<_>>()}]})
            } else {
                serde_json::json!({"role": "user", "content":
                    blocks.iter().map(|t| serde_json::json!({"type": "text", "text": t})).collect::<Vec<_>>()})
            }
        })
        .collect();
    serde_json::json!({"system": system, "messages": messages}).to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(std::env::var("GATED_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400)))]
    #[test]
    fn gated_scan_finds_exactly_what_the_full_scan_finds(
        system in piece_text(),
        turns in proptest::collection::vec(proptest::collection::vec(piece_text(), 1..4), 0..4),
        escapes in 0u8..3,
    ) {
        let set = differential_set();
        let mut body = body_of(&system, &turns);
        if escapes > 0 {
            // The same body with every non-ASCII character (1), or every
            // character (2), of its strings written as \u escapes.
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let mut out = Vec::new();
            let mut ser = serde_json::Serializer::with_formatter(
                &mut out,
                AsciiFormatter { all: escapes == 2 },
            );
            serde::Serialize::serialize(&v, &mut ser).unwrap();
            body = String::from_utf8(out).unwrap();
        }
        let parsed = parse_request(Dialect::Anthropic, &body, set.kinds()).unwrap();
        let gated = set.scan_with(&parsed.segments, parsed.latest_user_message, true);
        let full = set.scan_with(&parsed.segments, parsed.latest_user_message, false);
        prop_assert_eq!(gated, full, "body: {}", body);
    }
}

#[test]
fn a_number_across_two_text_blocks_is_gated_like_the_full_scan() {
    // The unit joins its blocks with a space: `2671 4111 1111 1111` is a
    // card there (found by proptest; the digit gate read each block alone).
    let set = differential_set();
    for blocks in [
        vec!["(415) 555-2671", "4111 1111 1111 11111-800-555-0199"],
        vec!["card 4111 1111", "1111", "1111\nnext"],
        vec!["call (415) 555", "2671 today"],
    ] {
        let body = body_of("", &[blocks.iter().map(|s| s.to_string()).collect()]);
        let parsed = parse_request(Dialect::Anthropic, &body, set.kinds()).unwrap();
        let gated = set.scan_with(&parsed.segments, parsed.latest_user_message, true);
        let full = set.scan_with(&parsed.segments, parsed.latest_user_message, false);
        assert!(!full.masks.is_empty(), "{blocks:?}");
        assert_eq!(gated, full, "{blocks:?}");
    }
}

/// Writes every non-ASCII character (or every character) as a \u escape.
struct AsciiFormatter {
    all: bool,
}

impl serde_json::ser::Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() && !self.all {
                writer.write_all(&[c as u8])?;
            } else {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[test]
fn gated_scan_of_planted_secrets_in_a_large_tool_result() {
    let set = differential_set();
    // The phrase with an anchor has no gate; everything else does.
    let ungated: Vec<usize> = (0..set.fast.gated.len())
        .filter(|&p| set.fast.gated[p].is_none())
        .collect();
    assert_eq!(ungated.len(), 1, "{ungated:?}");
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!("line {i}: let x = foo(bar, {i}); // note\n"));
        if i % 50 == 7 {
            text.push_str("billing: 4242 4242 4242 4242 and AKIAZ5EXAMPLEKEY7QW2, pro\u{200b}ject codename12\n");
        }
    }
    let body = body_of("", &[vec!["hi".into()], vec![text]]);
    let parsed = parse_request(Dialect::Anthropic, &body, set.kinds()).unwrap();
    let gated = set.scan_with(&parsed.segments, parsed.latest_user_message, true);
    let full = set.scan_with(&parsed.segments, parsed.latest_user_message, false);
    assert_eq!(gated.masks.len(), 24, "{:?}", gated.masks);
    assert_eq!(gated, full);
}

#[test]
fn an_escape_that_normalises_long_is_not_skipped_as_short() {
    // U+FDFA is one character NFKC expands into eighteen: the six bytes of
    // its escape can hold most of a long match.
    let set = compile(
        "[{regex: {action: Reject, matches: ['codename \u{635}\u{644}\u{649} \u{627}\u{644}\u{644}\u{647}']}}]",
    )
    .unwrap();
    let body = r#"{"messages":[{"role":"user","content":"x codename \ufdfa y"}]}"#;
    let parsed = parse_request(Dialect::Anthropic, body, set.kinds()).unwrap();
    let gated = set.scan_with(&parsed.segments, parsed.latest_user_message, true);
    let full = set.scan_with(&parsed.segments, parsed.latest_user_message, false);
    assert!(full.reject.is_some());
    assert_eq!(gated, full);
}

#[test]
fn new_pii_shapes_mask_what_they_should() {
    let set = compile("[{name: pii, regex: {action: Mask, builtins: [Ssn, PhoneNumber, Email]}}]")
        .unwrap();
    for (text, expected) in [
        ("ssn 123.45.6789 ok", "ssn <SSN> ok"),
        ("call 415-555-2671 ext. 12 now", "call <PHONE_NUMBER> now"),
        // The phone word stays; the number goes.
        (
            "phone: 4155552671\nid: 4155552671",
            "phone: <PHONE_NUMBER>\nid: 4155552671",
        ),
        (
            "mail jane [at] example [dot] com now",
            "mail <EMAIL_ADDRESS> now",
        ),
        (
            "look (at) this. meet [at] noon",
            "look (at) this. meet [at] noon",
        ),
    ] {
        let body = user(text);
        let parsed = parse_request(Dialect::Anthropic, &body, set.kinds()).unwrap();
        let s = set.scan(&parsed.segments, None);
        let full = set.scan_with(&parsed.segments, None, false);
        assert_eq!(s, full, "{text}");
        let refs: Vec<&Finding> = s.masks.iter().collect();
        assert_eq!(masked(&parsed.segments[0], &refs), expected, "{text}");
    }
}
