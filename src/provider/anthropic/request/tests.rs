use crate::provider::{parse_request, Dialect, KindSet, PartKind, Role};

const DEFAULT: KindSet = KindSet::ALL;

const BODY: &str = r#"{
  "model": "claude-x",
  "system": [{"type":"text","text":"sys one"},{"type":"text","text":"sys \"two\""}],
  "tools": [{"name":"Bash","description":"credit card secret","input_schema":{}}],
  "messages": [
    {"role":"user","content":[{"type":"text","text":"hello"},{"type":"image","source":{"type":"base64","data":"AAAA"}},
                              {"type":"document","source":{"type":"text","media_type":"text/plain","data":"doc text"}}]},
    {"role":"system","content":"inner system"},
    {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"assistant words"},
                                   {"type":"tool_use","id":"t","name":"Bash","input":{"command":"cat x","opts":["a",{"deep":"b"}],"n":1}}]},
    {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"file data"},
                              {"type":"tool_result","tool_use_id":"u","content":[{"type":"text","text":"nested"}]}]}
  ]
}"#;

fn extract(kinds: KindSet) -> Vec<(String, String, Role, PartKind)> {
    let parsed = parse_request(Dialect::Anthropic, BODY, kinds).unwrap();
    // Raw spans point at the JSON string literals.
    for s in &parsed.segments {
        let literal = &BODY[s.raw.clone()];
        assert_eq!(serde_json::from_str::<String>(literal).unwrap(), s.text());
    }
    parsed
        .segments
        .iter()
        .map(|s| (s.location.to_string(), s.text().to_string(), s.role, s.kind))
        .collect()
}

fn row(loc: &str, text: &str, role: Role, kind: PartKind) -> (String, String, Role, PartKind) {
    (loc.into(), text.into(), role, kind)
}

#[test]
fn extracts_every_kind_in_body_order_with_locations() {
    let parsed = parse_request(Dialect::Anthropic, BODY, DEFAULT).unwrap();
    assert_eq!(parsed.model.as_deref(), Some("claude-x"));
    assert_eq!(parsed.latest_user_message, Some(3));
    assert_eq!(
        extract(KindSet::ALL),
        vec![
            row("system[0]", "sys one", Role::System, PartKind::System),
            row("system[1]", "sys \"two\"", Role::System, PartKind::System),
            row(
                "messages[0].content[0]",
                "hello",
                Role::User,
                PartKind::UserText
            ),
            row(
                "messages[0].content[2].source.data",
                "doc text",
                Role::User,
                PartKind::Document
            ),
            row(
                "messages[1].content",
                "inner system",
                Role::System,
                PartKind::System
            ),
            row(
                "messages[2].content[1]",
                "assistant words",
                Role::Assistant,
                PartKind::AssistantText
            ),
            row(
                "messages[2].content[2].input",
                "cat x",
                Role::Assistant,
                PartKind::ToolInput
            ),
            row(
                "messages[2].content[2].input",
                "a",
                Role::Assistant,
                PartKind::ToolInput
            ),
            row(
                "messages[2].content[2].input",
                "b",
                Role::Assistant,
                PartKind::ToolInput
            ),
            row(
                "messages[3].content[0]",
                "file data",
                Role::Tool,
                PartKind::ToolResult
            ),
            row(
                "messages[3].content[1].content[0]",
                "nested",
                Role::Tool,
                PartKind::ToolResult
            ),
            row(
                "tools[0].description",
                "credit card secret",
                Role::System,
                PartKind::ToolDefinition
            ),
        ]
    );
}

#[test]
fn extracts_only_the_kinds_asked_for() {
    let got = extract(KindSet::of(&[PartKind::System, PartKind::ToolResult]));
    let kinds: Vec<PartKind> = got.iter().map(|r| r.3).collect();
    assert_eq!(
        kinds,
        [
            PartKind::System,
            PartKind::System,
            PartKind::System,
            PartKind::ToolResult,
            PartKind::ToolResult
        ]
    );
    assert!(extract(KindSet::EMPTY).is_empty());
}

#[test]
fn string_system_and_escapes_decode() {
    let body = r#"{"system":"be nice","messages":[{"role":"user","content":"credit\u0020card"}]}"#;
    let parsed = parse_request(Dialect::Anthropic, body, DEFAULT).unwrap();
    assert_eq!(parsed.segments[0].text(), "be nice");
    assert_eq!(parsed.segments[1].text(), "credit card");
}

#[test]
fn string_content_is_located_in_the_body_however_it_is_spaced() {
    for body in [
        r#"{"messages":[{"role":"user","content":"a\nb \"q\""}]}"#,
        "{\"messages\":[{\"content\" \n :\t \"a\\nb \\\"q\\\"\" , \"role\":\"user\"}]}",
        r#"{"messages":[{"x":{"content":"no"},"role":"user","content":"a\nb \"q\"","y":[1]}]}"#,
    ] {
        let parsed = parse_request(Dialect::Anthropic, body, DEFAULT).unwrap();
        assert_eq!(parsed.segments.len(), 1, "{body}");
        let seg = &parsed.segments[0];
        assert_eq!(seg.text(), "a\nb \"q\"", "{body}");
        assert_eq!(&body[seg.raw.clone()], r#""a\nb \"q\"""#, "{body}");
    }
    // Unescaped strings are lent by serde and located by address.
    let body = r#"{"messages":[{"role":"user","content":"plain"}]}"#;
    let seg = &parse_request(Dialect::Anthropic, body, DEFAULT)
        .unwrap()
        .segments[0];
    assert_eq!(&body[seg.raw.clone()], r#""plain""#);
    // A message that escapes its `content` key and its text cannot be
    // located cheaply: refused, like other confusing bodies.
    let body = r#"{"messages":[{"role":"user","cont\u0065nt":"a\nb"}]}"#;
    assert!(parse_request(Dialect::Anthropic, body, DEFAULT).is_err());
    let body = r#"{"messages":[{"role":"user","content":"a","content":"b"}]}"#;
    assert!(parse_request(Dialect::Anthropic, body, DEFAULT).is_err());
}

#[test]
fn malformed_and_confusing_bodies_are_refused() {
    for body in [
        "",
        "not json",
        "[1,2]",
        r#"{"messages": [{"role":"user","content":"a"}], "messages": []}"#,
        r#"{"messages": [{"role":"user","content":{"text":"hidden"}}]}"#,
        r#"{"messages": [{"role":"hacker","content":"x"}]}"#,
        r#"{"messages": [{"role":"user","content":[{"type":"text","text":5}]}]}"#,
        r#"{"system": 5}"#,
        r#"{"messages": [{"role":"user","content":"a"}]"#,
    ] {
        assert!(
            parse_request(Dialect::Anthropic, body, DEFAULT).is_err(),
            "{body}"
        );
    }
}

#[test]
fn claude_code_first_turn_fixture_parses_and_skips_tools() {
    let body = include_str!("../../../../tests/fixtures/claude_code_first_turn.json");
    let all = parse_request(Dialect::Anthropic, body, KindSet::ALL).unwrap();
    let tools = all
        .segments
        .iter()
        .filter(|s| s.kind == PartKind::ToolDefinition)
        .count();
    assert_eq!(tools, 24, "Claude Code sends 24 tool definitions");
    let user_side = KindSet::of(&[
        PartKind::System,
        PartKind::UserText,
        PartKind::Document,
        PartKind::ToolResult,
    ]);
    let parsed = parse_request(Dialect::Anthropic, body, user_side).unwrap();
    assert!(parsed.segments.iter().any(|s| s.text().contains("Say hi")));
    assert!(parsed
        .segments
        .iter()
        .any(|s| s.role == Role::System && s.location.to_string() == "messages[1].content"));
    // No segment comes from the tool definitions.
    let tools_start = body.find("\"tools\"").unwrap();
    let tools_end = tools_start
        + body[tools_start..]
            .find("\"metadata\"")
            .unwrap_or(body.len() - tools_start);
    let tools_span = tools_start.min(tools_end)..tools_start.max(tools_end);
    for s in &parsed.segments {
        assert!(
            !(tools_span.contains(&s.raw.start)),
            "segment from tools: {}",
            s.location
        );
    }
}

#[test]
fn claude_code_tool_turn_reads_the_tool_result() {
    let body = include_str!("../../../../tests/fixtures/claude_code_tool_result_turn.json");
    let parsed = parse_request(Dialect::Anthropic, body, DEFAULT).unwrap();
    let tool: Vec<_> = parsed
        .segments
        .iter()
        .filter(|s| s.kind == PartKind::ToolResult)
        .collect();
    assert_eq!(tool.len(), 1);
    assert_eq!(tool[0].text(), "meeting at noon");
}

/// The parse through a skeleton without the tools' `input_schema` contents
/// finds exactly what the parse of the whole skeleton finds: the same
/// segments at the same body places, the same offered tools.
#[test]
fn tool_schemas_cut_from_the_skeleton_change_nothing_read() {
    use crate::provider::json::skeleton::{Skeleton, Unread};
    let body = include_str!("../../../../tests/fixtures/claude_code_first_turn.json");
    let skeleton = Skeleton::of(body);
    let unread = Unread {
        objects_of: "input_schema",
        top_level: None,
    };
    let (cut, opens) = Skeleton::without(body, unread);
    assert_eq!(opens.len(), 24, "Claude Code's tools have input schemas");
    assert!(
        cut.text().len() * 2 < skeleton.text().len(),
        "most of the skeleton was schemas"
    );
    assert!(cut.text().contains(r#""input_schema":{}"#));
    // The cut is kept: every object cut lies in a tool definition.
    let raw: super::Body<'_, &serde_json::value::RawValue> =
        serde_json::from_str(cut.text()).unwrap();
    assert!(super::inside_tools(
        &cut,
        raw.tools.as_deref().unwrap(),
        &opens
    ));
    let kinds = KindSet::ALL.with_offered_tools();
    let via_cut = super::parse_body(body, kinds).unwrap();
    let whole = super::parse_skeleton(&Skeleton::whole(body), kinds).unwrap();
    let view = |p: &crate::provider::ParsedRequest<'_>| {
        p.segments
            .iter()
            .map(|s| (s.location.to_string(), s.raw.clone(), s.text().to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(view(&via_cut), view(&whole));
    let tools = |p: &crate::provider::ParsedRequest<'_>| {
        p.offered_tools
            .iter()
            .map(|t| (t.name.clone(), t.raw.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(tools(&via_cut), tools(&whole));
    assert_eq!(via_cut.offered_tools.len(), 24);
    // Each offered tool's place is its whole definition in the body.
    for t in &via_cut.offered_tools {
        let def: serde_json::Value = serde_json::from_str(&body[t.raw.clone()]).unwrap();
        assert_eq!(def["name"].as_str(), t.name.as_deref());
        assert!(def["input_schema"].is_object());
    }
}

/// An `input_schema` object anywhere but in a tool definition (here a
/// tool call's input, with a secret in it) is read: the parse goes back to
/// the whole skeleton.
#[test]
fn an_input_schema_outside_the_tools_is_read() {
    let pad = "x".repeat(600);
    let body = format!(
        r#"{{"model":"m","tools":[{{"name":"Write","description":"{pad}","input_schema":{{"type":"object","properties":{{"a":{{"type":"string"}}}}}}}}],
        "messages":[{{"role":"assistant","content":[{{"type":"tool_use","id":"t","name":"Write","input":{{"input_schema":{{"key":"AKIA-SECRET-IN-SCHEMA"}}}}}}]}},
        {{"role":"user","content":"{pad}"}}]}}"#
    );
    let parsed = parse_request(Dialect::Anthropic, &body, KindSet::ALL).unwrap();
    assert!(
        parsed
            .segments
            .iter()
            .any(|s| s.text().contains("AKIA-SECRET-IN-SCHEMA")),
        "the tool call's input was read"
    );
    let tools = parsed
        .segments
        .iter()
        .filter(|s| s.kind == PartKind::ToolDefinition)
        .count();
    assert_eq!(tools, 1);
}

/// When no guard reads tool definitions and no tool is denied, the whole
/// top-level `tools` list is left out of the skeleton, and only it: a
/// `tools` key inside a tool call's input is read as before.
#[test]
fn an_unread_tool_list_is_cut_whole_and_only_at_the_top() {
    use crate::provider::json::skeleton::{Skeleton, Unread};
    let kinds = KindSet::of(&PartKind::ALL[..6]);
    assert!(!kinds.contains(PartKind::ToolDefinition));
    let body = include_str!("../../../../tests/fixtures/claude_code_first_turn.json");
    let unread = Unread {
        objects_of: "input_schema",
        top_level: Some("tools"),
    };
    let (cut, opens) = Skeleton::without(body, unread);
    assert!(opens.is_empty(), "no schema is cut on its own");
    assert!(cut.text().contains(r#""tools":[]"#));
    assert!(cut.text().len() * 10 < body.len(), "{}", cut.text().len());
    let whole = super::parse_skeleton(&Skeleton::whole(body), kinds).unwrap();
    let via = super::parse_body(body, kinds).unwrap();
    let view = |p: &crate::provider::ParsedRequest<'_>| {
        p.segments
            .iter()
            .map(|s| (s.location.to_string(), s.raw.clone(), s.text().to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(view(&via), view(&whole));
    assert_eq!(via.model, whole.model);

    let pad = "x".repeat(600);
    let body = format!(
        r#"{{"model":"m","tools":[{{"name":"Write","description":"{pad}","input_schema":{{}}}}],
        "messages":[{{"role":"assistant","content":[{{"type":"tool_use","id":"t","name":"Write","input":{{"tools":[{{"key":"AKIA-SECRET-IN-TOOLS"}}]}}}}]}},
        {{"role":"user","content":"{pad}"}}], "stream": true}}"#
    );
    let parsed = super::parse_body(&body, kinds).unwrap();
    assert!(
        parsed
            .segments
            .iter()
            .any(|s| s.text().contains("AKIA-SECRET-IN-TOOLS")),
        "the tool call's input was read"
    );
    assert_eq!(
        parsed.stream,
        Some(true),
        "members after the cut list are read"
    );
}

proptest::proptest! {
    /// Whatever the tools' schemas and the tool calls' inputs hold (quotes,
    /// escapes, brackets in strings, `input_schema` keys in places other
    /// than a tool definition), the parse with the schemas cut from the
    /// skeleton reads what the parse of the whole body reads.
    #[test]
    fn cutting_tool_schemas_never_changes_what_is_read(
        schemas in proptest::collection::vec(json_value(3), 1..4),
        input in json_value(3),
        nested_key in proptest::bool::ANY,
        pad in 0usize..1200,
        definitions_read in proptest::bool::ANY,
    ) {
        use crate::provider::json::skeleton::{Skeleton, Unread};
        let tools: Vec<serde_json::Value> = schemas
            .iter()
            .enumerate()
            .map(|(i, s)| serde_json::json!({
                "name": format!("tool_{i}"),
                "description": format!("does {} {}", i, "x".repeat(pad)),
                "input_schema": {"type": "object", "properties": s},
            }))
            .collect();
        let input = if nested_key {
            serde_json::json!({"input_schema": input, "tools": [input], "command": "cat secret"})
        } else {
            serde_json::json!({"command": input})
        };
        let body = serde_json::json!({
            "model": "m",
            "tools": tools,
            "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "tool_0", "input": input}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "y".repeat(pad)}]},
            ],
        })
        .to_string();
        // Tool definitions read (the schemas alone are cut), or read by
        // nothing (the whole top-level list is cut, and nothing deeper).
        let kinds = if definitions_read {
            KindSet::ALL.with_offered_tools()
        } else {
            KindSet::of(&PartKind::ALL[..6])
        };
        let view = |p: &crate::provider::ParsedRequest<'_>| {
            (
                p.segments
                    .iter()
                    .map(|s| (s.location.to_string(), s.raw.clone(), s.text().to_string()))
                    .collect::<Vec<_>>(),
                p.offered_tools
                    .iter()
                    .map(|t| (t.name.clone(), t.raw.clone()))
                    .collect::<Vec<_>>(),
            )
        };
        let via = super::parse_body(&body, kinds).unwrap();
        let whole = super::parse_skeleton(&Skeleton::whole(&body), kinds).unwrap();
        proptest::prop_assert_eq!(view(&via), view(&whole));
        // The one-pass cut is the two-pass one: same skeleton, same braces,
        // every offset mapping to the same body place.
        let unread = Unread { objects_of: "input_schema", top_level: None };
        let (one, opens) = Skeleton::without(&body, unread);
        let strings = Skeleton::of(&body);
        let (two, two_opens) = strings
            .objects_cut("input_schema")
            .unwrap_or_else(|| (Skeleton::of(&body), Vec::new()));
        proptest::prop_assert_eq!(one.text(), two.text());
        proptest::prop_assert_eq!(&opens, &two_opens);
        for at in 0..one.text().len() {
            proptest::prop_assert_eq!(one.range(at..at + 1), two.range(at..at + 1));
        }
    }
}

/// JSON values whose strings are full of what a bracket matcher could trip
/// on.
fn json_value(depth: u32) -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    let text = proptest::collection::vec(
        proptest::sample::select(
            &[
                "{",
                "}",
                "[",
                "]",
                "\"",
                "\\",
                "\\\"",
                "a",
                " ",
                "\n",
                "input_schema",
                ":",
                ",",
            ][..],
        ),
        0..12,
    )
    .prop_map(|parts| serde_json::Value::String(parts.concat()));
    let leaf = prop_oneof![
        text,
        any::<i32>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::vec(
                (
                    proptest::sample::select(
                        &["type", "input_schema", "k", "description", "tools"][..]
                    ),
                    inner
                ),
                0..4
            )
            .prop_map(|kv| serde_json::Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}
