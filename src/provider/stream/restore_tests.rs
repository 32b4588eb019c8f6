//! Placeholders of the request restored in streamed answers: text split
//! across deltas and chunks, tool call inputs split across fragments, in
//! both dialects, with and without a tool judge.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::tool_tests::{
    bash, datas, fragments, judge_with, openai, openai_view, run_tools, stream, Call,
};
use super::*;
use crate::guard::GuardSet;
use crate::provider::restore::Restore;

const KEY_P: &str = "<AWS_SECRET_KEY:3f9a1c>";
const KEY_V: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY";
const PW_P: &str = "<PASSWORD:00aa11>";
/// A value that needs escaping in JSON, twice in a tool input.
const PW_V: &str = "p\"w\\d\nx";
const DB_P: &str = "<DATABASE_URL:b0b0b0>";
const DB_V: &str = "postgres://app:s3cr3t@db:5432/app";

fn restore() -> Arc<Restore> {
    let mut r = Restore::new();
    r.insert(KEY_P.into(), KEY_V.into());
    r.insert(PW_P.into(), PW_V.into());
    r.insert(DB_P.into(), DB_V.into());
    Arc::new(r)
}

fn anthropic_guard() -> StreamGuard {
    StreamGuard::new(Dialect::Anthropic, Arc::new(GuardSet::empty())).with_restore(restore())
}

/// What a client assembles from an Anthropic stream: each block's text or
/// tool input (the concatenated `partial_json`, parsed).
fn anthropic_view(bytes: &[u8]) -> Vec<Value> {
    let mut blocks: std::collections::BTreeMap<u64, (String, String, String)> = Default::default();
    for d in datas(bytes) {
        let Some(i) = d["index"].as_u64() else {
            continue;
        };
        let e = blocks.entry(i).or_default();
        match d["type"].as_str().unwrap() {
            "content_block_start" => {
                e.0 = d["content_block"]["type"].as_str().unwrap().to_owned();
                if let Some(t) = d["content_block"]["text"].as_str() {
                    e.1.push_str(t);
                }
            }
            "content_block_delta" => {
                if let Some(t) = d["delta"]["text"].as_str() {
                    e.1.push_str(t);
                }
                if let Some(t) = d["delta"]["partial_json"].as_str() {
                    e.2.push_str(t);
                }
            }
            _ => {}
        }
    }
    blocks
        .into_values()
        .map(|(kind, text, input)| match kind.as_str() {
            "tool_use" => serde_json::from_str(&input).unwrap(),
            _ => Value::String(text),
        })
        .collect()
}

fn env_file() -> String {
    format!("AWS_SECRET_ACCESS_KEY={KEY_P}\nDB_PASSWORD={PW_P}\nDATABASE_URL={DB_P}\nOTHER=<NOT_OURS:123456>\n")
}

#[test]
fn text_and_a_split_tool_input_come_back_with_the_values() {
    let input = json!({"file_path": "/app/.env", "content": env_file()}).to_string();
    // Cut inside every placeholder.
    let cuts: Vec<usize> = [KEY_P, PW_P, DB_P]
        .iter()
        .flat_map(|p| {
            let at = input.find(p).unwrap();
            [at + 1, at + 7, at + p.len() - 2]
        })
        .collect();
    let body = stream(
        &format!("I'll write {KEY_P} and {PW_P} back; {DB_P} too."),
        &[Call {
            tool: "Write",
            fragments: fragments(&input, &cuts),
        }],
    );
    let mut g = anthropic_guard();
    let mut restored = 0;
    let mut out = Vec::new();
    let bytes = body.as_bytes();
    // Chunks cut every 37 bytes: events and strings split anywhere.
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + 37).min(bytes.len());
        let o = g.push(&bytes[at..end], end == bytes.len()).unwrap();
        restored += o.restored;
        assert!(o.tools.is_empty(), "no tool guard: no decisions recorded");
        assert!(o.events.is_empty(), "restores are not masks");
        out.extend_from_slice(&o.bytes);
        at = end;
    }
    let view = anthropic_view(&out);
    assert_eq!(
        view[0],
        Value::String(format!("I'll write {KEY_V} and {PW_V} back; {DB_V} too."))
    );
    let want = env_file()
        .replace(KEY_P, KEY_V)
        .replace(PW_P, PW_V)
        .replace(DB_P, DB_V);
    assert_eq!(view[1]["content"], want);
    assert_eq!(view[1]["file_path"], "/app/.env");
    assert!(
        want.contains("<NOT_OURS:123456>"),
        "another placeholder stays"
    );
    assert_eq!(restored, 6);
    let text = String::from_utf8(out).unwrap();
    for p in [KEY_P, PW_P, DB_P] {
        assert!(!text.contains(p), "{p} left in {text}");
    }
    // The rest of the stream is as it came.
    assert!(text.contains(r#""stop_reason":"tool_use""#));
    assert_eq!(g.usage().output, Some(30));
}

#[test]
fn without_a_placeholder_the_client_sees_the_same_stream() {
    let input = bash("ls -la");
    let body = stream(
        "Nothing <masked> here.",
        &[Call {
            tool: "Bash",
            fragments: fragments(&input, &[3, 9]),
        }],
    );
    let mut g = anthropic_guard();
    let (out, tools) = run_tools(&mut g, body.as_bytes(), &[40, 300, 500]);
    // The client sees the same blocks; text is held back by the longest
    // placeholder (so its events may be re-cut), tool events come as
    // they were.
    assert_eq!(anthropic_view(&out), anthropic_view(body.as_bytes()));
    let tool_events = &body[body
        .find("event: content_block_start\ndata: {\"content_block\":{\"id\"")
        .unwrap()..];
    assert!(String::from_utf8(out).unwrap().ends_with(tool_events));
    assert!(tools.is_empty());
    // An empty restore changes nothing at all: no hold-back, no holds.
    let g = StreamGuard::new(Dialect::Anthropic, Arc::new(GuardSet::empty()))
        .with_restore(Arc::new(Restore::new()));
    assert!(g.tools.is_none());
    assert_eq!(g.window, 0);
}

#[test]
fn the_tool_judge_sees_what_the_agent_would_run() {
    // A rule on the real value: the placeholder alone would pass it.
    let judge = judge_with(
        r#"
rules:
- name: no-prod-db
  tools: ["Bash"]
  regex: { matches: ["psql\\s+postgres://app:s3cr3t@db"] }
  response: { message: "no prod db" }
"#,
    );
    let input = bash(&format!("psql {DB_P} -c 'select 1'"));
    let body = stream(
        "Querying.",
        &[Call {
            tool: "Bash",
            fragments: fragments(&input, &[12, 20]),
        }],
    );
    let mut g = StreamGuard::new(Dialect::Anthropic, Arc::new(GuardSet::empty()))
        .with_tool_judge(judge.clone())
        .with_restore(restore());
    let (_, tools) = run_tools(&mut g, body.as_bytes(), &[77]);
    assert!(tools[0].verdict.is_blocked(), "{tools:?}");
    // In the other order of construction too.
    let mut g = StreamGuard::new(Dialect::Anthropic, Arc::new(GuardSet::empty()))
        .with_restore(restore())
        .with_tool_judge(judge);
    let (out, tools) = run_tools(&mut g, body.as_bytes(), &[77]);
    assert!(tools[0].verdict.is_blocked());
    assert!(!String::from_utf8(out).unwrap().contains("s3cr3t"));
}

#[test]
fn openai_content_and_arguments_come_back_with_the_values() {
    let args = json!({"content": env_file()}).to_string();
    let at = args.find(KEY_P).unwrap();
    let body = openai(
        &format!("Key: {KEY_P}."),
        &[Call {
            tool: "write_file",
            fragments: fragments(&args, &[at + 3, at + 10, at + 20]),
        }],
    );
    let mut g =
        StreamGuard::new(Dialect::OpenAiChat, Arc::new(GuardSet::empty())).with_restore(restore());
    let (out, tools) = run_tools(&mut g, body.as_bytes(), &[45, 200, 333]);
    assert!(tools.is_empty());
    let (calls, content, finish) = openai_view(&out);
    assert_eq!(content, format!("Key: {KEY_V}."));
    assert_eq!(finish, "tool_calls");
    assert_eq!(calls[0].0, "write_file");
    let args: Value = serde_json::from_str(&calls[0].1).unwrap();
    assert_eq!(
        args["content"],
        env_file()
            .replace(KEY_P, KEY_V)
            .replace(PW_P, PW_V)
            .replace(DB_P, DB_V)
    );
}

#[test]
fn a_response_guard_match_wins_over_a_placeholder_it_covers() {
    let guards = GuardSet::compile(
        &serde_yaml::from_str::<Vec<crate::policy::config::GuardSpec>>(
            "[{regex: {action: Mask, matches: ['write <AWS']}}]",
        )
        .unwrap(),
        true,
    )
    .unwrap();
    let mut g = StreamGuard::new(Dialect::Anthropic, Arc::new(guards)).with_restore(restore());
    let body = stream(&format!("I'll write {KEY_P}; and {PW_P}."), &[]);
    let (out, _) = run_tools(&mut g, body.as_bytes(), &[]);
    let view = anthropic_view(&out);
    let text = view[0].as_str().unwrap();
    // The guard's mask took the placeholder's start: that one stays
    // unrestored (masked), the other comes back.
    assert!(text.starts_with("I'll <masked:"), "{text}");
    assert!(text.ends_with(&format!("; and {PW_V}.")), "{text}");
    assert!(!text.contains(KEY_V));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the event and chunk boundaries, the client gets the text
    /// and the tool input with every placeholder restored.
    #[test]
    fn restores_wherever_the_stream_is_cut(
        text_cuts in proptest::collection::vec(0usize..200, 0..6),
        input_cuts in proptest::collection::vec(0usize..300, 0..8),
        chunk_cuts in proptest::collection::vec(0usize..2000, 0..10),
    ) {
        let text = format!("a {KEY_P}{PW_P} b <{DB_P}> c");
        let input = json!({"content": env_file(), "note": text}).to_string();
        let mut body = String::new();
        // Text as several deltas.
        let pieces = fragments(&text, &text_cuts);
        let mut s = stream("TEXTMARK", &[Call { tool: "Write", fragments: fragments(&input, &input_cuts) }]);
        let marker = "TEXTMARK";
        let deltas: String = pieces
            .iter()
            .map(|p| format!(
                "event: content_block_delta\ndata: {}\n\n",
                json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":p}})
            ))
            .collect();
        let at = s.find(marker).unwrap();
        let line_start = s[..at].rfind("event:").unwrap();
        let line_end = at + s[at..].find("\n\n").unwrap() + 2;
        s.replace_range(line_start..line_end, &deltas);
        body.push_str(&s);
        let mut g = anthropic_guard();
        let (out, _) = run_tools(&mut g, body.as_bytes(), &chunk_cuts);
        let view = anthropic_view(&out);
        let want_text = format!("a {KEY_V}{PW_V} b <{DB_V}> c");
        prop_assert_eq!(view[0].as_str().unwrap(), want_text.as_str());
        prop_assert_eq!(&view[1]["note"], &Value::String(want_text.clone()));
        let want_env = env_file().replace(KEY_P, KEY_V).replace(PW_P, PW_V).replace(DB_P, DB_V);
        prop_assert_eq!(&view[1]["content"], &Value::String(want_env));
    }
}
