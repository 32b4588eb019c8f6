use super::*;
use crate::provider::{parse_request, KindSet};

fn compile(yaml: &str) -> Result<GuardSet, GuardSpecError> {
    let specs: Vec<GuardSpec> = serde_yaml::from_str(yaml).unwrap();
    GuardSet::compile(&specs, false)
}

/// (rule name, location, matched original text)
type Shown = (String, String, String);

/// Scans an Anthropic body; returns the reject and the masks.
fn scan(set: &GuardSet, body: &str) -> (Option<Shown>, Vec<Shown>) {
    let parsed = parse_request(false, body, set.kinds()).unwrap();
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
/// then decoded).
fn masked(seg: &crate::provider::TextSegment<'_>, findings: &[&Finding]) -> String {
    let mut out = Vec::new();
    mask_literal(seg.literal, findings, &mut out);
    crate::provider::literal::decode(std::str::from_utf8(&out).unwrap()).into_owned()
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
    let parsed = parse_request(false, &body, set.kinds()).unwrap();
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
    let parsed = parse_request(false, &body, set.kinds()).unwrap();
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
    let default = compile("[{regex: {action: Mask, matches: [secret]}}]").unwrap();
    let (_, masks) = scan(&default, AGENT_BODY);
    let got: Vec<String> = masks.into_iter().map(|m| m.1).collect();
    assert_eq!(
        got,
        [
            "messages[0].content",
            "messages[2].content[0]",
            "messages[2].content[1]"
        ]
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
    let parsed = parse_request(false, &body, KindSet::ALL).unwrap();
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
    let parsed = parse_request(false, &body, set.kinds()).unwrap();
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
    let parsed = parse_request(false, &body, set.kinds()).unwrap();
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
        let parsed = parse_request(false, body, set.kinds()).unwrap();
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
