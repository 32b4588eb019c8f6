use crate::provider::{parse_request, Dialect, KindSet, PartKind, Role};

#[test]
fn extracts_every_role_and_tool_calls() {
    let body = r#"{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"f","description":"credit card"}}],
      "messages":[
        {"role":"developer","content":"dev rules"},
        {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}]},
        {"role":"assistant","content":"old answer","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
        {"role":"tool","tool_call_id":"c","content":"tool out"}
      ]}"#;
    let parsed = parse_request(Dialect::OpenAiChat, body, KindSet::ALL).unwrap();
    assert_eq!(parsed.model.as_deref(), Some("gpt-4o"));
    assert_eq!(parsed.latest_user_message, Some(3));
    let texts: Vec<String> = parsed
        .segments
        .iter()
        .map(|s| s.text().into_owned())
        .collect();
    let got: Vec<(String, &str, Role, PartKind)> = parsed
        .segments
        .iter()
        .zip(&texts)
        .map(|(s, t)| (s.location.to_string(), t.as_str(), s.role, s.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "messages[0].content".into(),
                "dev rules",
                Role::System,
                PartKind::System
            ),
            (
                "messages[1].content[0]".into(),
                "hi",
                Role::User,
                PartKind::UserText
            ),
            (
                "messages[2].tool_calls[0].function.arguments".into(),
                "{\"a\":1}",
                Role::Assistant,
                PartKind::ToolInput
            ),
            (
                "messages[2].content".into(),
                "old answer",
                Role::Assistant,
                PartKind::AssistantText
            ),
            (
                "messages[3].content".into(),
                "tool out",
                Role::Tool,
                PartKind::ToolResult
            ),
            (
                "tools[0].description".into(),
                "credit card",
                Role::System,
                PartKind::ToolDefinition
            ),
        ]
    );
    let some = parse_request(
        Dialect::OpenAiChat,
        body,
        KindSet::of(&[PartKind::UserText]),
    )
    .unwrap();
    assert_eq!(some.segments.len(), 1);
}

#[test]
fn refuses_what_it_cannot_read() {
    assert!(parse_request(
        Dialect::OpenAiChat,
        r#"{"messages":[{"role":"user","content":7}]}"#,
        KindSet::ALL
    )
    .is_err());
    assert!(parse_request(Dialect::OpenAiChat, r#"{"messages":"x"}"#, KindSet::ALL).is_err());
}
