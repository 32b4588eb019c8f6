use std::collections::BTreeMap;
use std::sync::Arc;

use crate::provider::{Dialect, Usage};

use proptest::prelude::*;
use regex::Regex;
use serde_json::Value;

use super::*;

const BLOCKED: &str = "Response blocked by policy";

/// Masks card numbers as `<CREDIT_CARD>`, rejects `forbidden`.
struct TestScanner {
    re: Regex,
}

impl TestScanner {
    fn new() -> Self {
        TestScanner {
            // [0-9], not \d: Unicode digits would make matches longer than
            // the window.
            re: Regex::new(r"([0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{4})|(forbidden)").unwrap(),
        }
    }
}

impl TextScanner for TestScanner {
    fn window(&self) -> usize {
        19
    }
    fn scan(&self, text: &str) -> Vec<ScanMatch> {
        self.re
            .captures_iter(text)
            .map(|c| ScanMatch {
                range: c.get(0).unwrap().range(),
                action: if c.get(1).is_some() {
                    MatchAction::Mask {
                        placeholder: "<CREDIT_CARD>".into(),
                    }
                } else {
                    MatchAction::Reject {
                        rule: "no-forbidden".into(),
                        message: BLOCKED.into(),
                    }
                },
            })
            .collect()
    }
}

/// Finds nothing, with the given window.
struct NoOp(usize);

impl TextScanner for NoOp {
    fn window(&self) -> usize {
        self.0
    }
    fn scan(&self, _: &str) -> Vec<ScanMatch> {
        Vec::new()
    }
}

/// One compiled test scanner for all tests.
fn shared() -> &'static Arc<TestScanner> {
    static SCANNER: std::sync::OnceLock<Arc<TestScanner>> = std::sync::OnceLock::new();
    SCANNER.get_or_init(|| Arc::new(TestScanner::new()))
}

fn scanner() -> Arc<dyn TextScanner + Send + Sync> {
    shared().clone()
}

/// The whole text masked in one go; `true` when a reject match ends it
/// (the text is then what comes before that match).
fn single_shot(text: &str) -> (String, bool) {
    let mut out = String::new();
    let mut pos = 0;
    for m in shared().scan(text) {
        out.push_str(&text[pos..m.range.start]);
        match m.action {
            MatchAction::Mask { placeholder } => out.push_str(&placeholder),
            MatchAction::Restore { value } => out.push_str(&value),
            MatchAction::Audit { .. } => out.push_str(&text[m.range.clone()]),
            MatchAction::Reject { .. } => return (out, true),
        }
        pos = m.range.end;
    }
    out.push_str(&text[pos..]);
    (out, false)
}

// -- Stream fixtures ---------------------------------------------------------

#[derive(Debug, Clone)]
enum Part {
    /// A text block, as its deltas.
    Text(Vec<String>),
    /// A tool_use block, as its partial_json pieces.
    Tool(Vec<String>),
    /// A thinking block, as its thinking deltas.
    Thinking(Vec<String>),
}

/// Encodes a JSON string, optionally escaping every non-ASCII character
/// as `\uXXXX` (as some servers do).
fn encode(s: &str, escape_non_ascii: bool) -> String {
    let plain = serde_json::to_string(s).unwrap();
    if !escape_non_ascii {
        return plain;
    }
    let mut out = String::new();
    for c in plain.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        }
    }
    out
}

fn event(out: &mut String, name: &str, data: &str, eol: &str) {
    out.push_str(&format!("event: {name}{eol}data: {data}{eol}{eol}"));
}

fn anthropic_stream(parts: &[Part], escape: bool, eol: &str) -> String {
    let mut s = String::new();
    event(
        &mut s,
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-opus-4-6","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":3,"cache_read_input_tokens":7,"output_tokens":1}}}"#,
        eol,
    );
    event(&mut s, "ping", r#"{"type": "ping"}"#, eol);
    for (i, part) in parts.iter().enumerate() {
        let (start, pieces, ty, field) = match part {
            Part::Text(p) => (r#"{"type":"text","text":""}"#, p, "text_delta", "text"),
            Part::Tool(p) => (
                r#"{"type":"tool_use","id":"toolu_1","name":"Bash","input":{}}"#,
                p,
                "input_json_delta",
                "partial_json",
            ),
            Part::Thinking(p) => (
                r#"{"type":"thinking","thinking":""}"#,
                p,
                "thinking_delta",
                "thinking",
            ),
        };
        event(
            &mut s,
            "content_block_start",
            &format!(r#"{{"type":"content_block_start","index":{i},"content_block":{start}}}"#),
            eol,
        );
        for p in pieces {
            event(
                &mut s,
                "content_block_delta",
                &format!(
                    r#"{{"type":"content_block_delta","index":{i},"delta":{{"type":"{ty}","{field}":{}}}}}"#,
                    encode(p, escape)
                ),
                eol,
            );
        }
        event(
            &mut s,
            "content_block_stop",
            &format!(r#"{{"type":"content_block_stop","index":{i}}}"#),
            eol,
        );
    }
    event(
        &mut s,
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
        eol,
    );
    event(&mut s, "message_stop", r#"{"type":"message_stop"}"#, eol);
    s
}

fn openai_chunk(choices: &str, extra: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":{choices}{extra}}}"#
    )
}

/// A Chat Completions stream with one choice per text, each choice's
/// deltas in turn.
fn openai_stream(texts: &[Vec<String>], escape: bool, usage: bool) -> String {
    let mut s = String::new();
    let mut data = |d: String| s.push_str(&format!("data: {d}\n\n"));
    for (i, pieces) in texts.iter().enumerate() {
        data(openai_chunk(
            &format!(
                r#"[{{"index":{i},"delta":{{"role":"assistant","content":"","refusal":null}},"logprobs":null,"finish_reason":null}}]"#
            ),
            "",
        ));
        for p in pieces {
            data(openai_chunk(
                &format!(
                    r#"[{{"index":{i},"delta":{{"content":{}}},"logprobs":null,"finish_reason":null}}]"#,
                    encode(p, escape)
                ),
                "",
            ));
        }
        data(openai_chunk(
            &format!(r#"[{{"index":{i},"delta":{{}},"logprobs":null,"finish_reason":"stop"}}]"#),
            "",
        ));
    }
    if usage {
        data(openai_chunk(
            "[]",
            r#","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}"#,
        ));
    }
    data("[DONE]".into());
    s
}

// -- Running and reading back ------------------------------------------------

struct Run {
    bytes: Vec<u8>,
    rejected: Option<Rejection>,
    events: Vec<EventInfo>,
    /// Output per input chunk.
    pieces: Vec<Vec<u8>>,
}

/// Pushes `input` cut at `cuts` (any order, any values), the last piece
/// with end_of_stream; checks the hold-back bound after every push.
fn run(guard: &mut StreamGuard, input: &[u8], cuts: &[usize]) -> Run {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(input.len());
    let window = guard.window;
    let mut r = Run {
        bytes: Vec::new(),
        rejected: None,
        events: Vec::new(),
        pieces: Vec::new(),
    };
    let mut pos = 0;
    for (i, &cut) in cuts.iter().enumerate() {
        let last = i + 1 == cuts.len();
        let out = guard.push(&input[pos..cut], last).expect("push");
        pos = cut;
        let held = guard.held();
        assert!(
            held.max_block_text <= window + 3,
            "held {} > window {window} + 3",
            held.max_block_text
        );
        assert!(held.blocks <= 2);
        r.bytes.extend_from_slice(&out.bytes);
        r.pieces.push(out.bytes);
        r.events.extend(out.events);
        if let Some(rej) = out.rejected {
            assert!(r.rejected.is_none(), "rejected twice");
            r.rejected = Some(rej);
        }
    }
    r
}

fn parse_all(bytes: &[u8]) -> Vec<SseEvent> {
    let mut p = SseParser::new(DEFAULT_MAX_EVENT_BYTES);
    let mut events = Vec::new();
    p.feed(bytes, &mut events).unwrap();
    events.extend(p.finish().unwrap());
    events
}

/// What an Anthropic client sees: event types in order, text per block.
#[derive(Debug, Default)]
struct AView {
    types: Vec<String>,
    text: BTreeMap<u64, String>,
    other_deltas: Vec<Value>,
}

fn anthropic_view(bytes: &[u8]) -> AView {
    let mut view = AView::default();
    for ev in parse_all(bytes) {
        let Some(data) = ev.data else { continue };
        let v: Value = serde_json::from_str(&data).expect("every event is JSON");
        let ty = v["type"].as_str().expect("a type").to_owned();
        assert_eq!(
            ev.event.as_deref(),
            Some(ty.as_str()),
            "event name and type"
        );
        if ty == "content_block_delta" {
            let index = v["index"].as_u64().unwrap();
            if v["delta"]["type"] == "text_delta" {
                let text = v["delta"]["text"].as_str().unwrap();
                view.text.entry(index).or_default().push_str(text);
            } else {
                view.other_deltas.push(v.clone());
            }
        }
        view.types.push(ty);
    }
    view
}

/// What an OpenAI client sees: text per choice, whether an error came,
/// whether `[DONE]` came last.
#[derive(Debug, Default)]
struct OView {
    text: BTreeMap<u64, String>,
    error: Option<Value>,
    done_last: bool,
    chunks: Vec<Value>,
}

fn openai_view(bytes: &[u8]) -> OView {
    let mut view = OView::default();
    let events = parse_all(bytes);
    for (i, ev) in events.iter().enumerate() {
        let Some(data) = &ev.data else { continue };
        if data == "[DONE]" {
            view.done_last = i + 1 == events.len();
            continue;
        }
        let v: Value = serde_json::from_str(data).expect("every chunk is JSON");
        if v.get("error").is_some() {
            view.error = Some(v.clone());
        }
        for c in v["choices"].as_array().into_iter().flatten() {
            if let Some(t) = c["delta"]["content"].as_str() {
                view.text
                    .entry(c["index"].as_u64().unwrap())
                    .or_default()
                    .push_str(t);
            }
        }
        view.chunks.push(v);
    }
    view
}

fn anthropic_guard() -> StreamGuard {
    StreamGuard::new(Dialect::Anthropic, scanner())
}

fn openai_guard() -> StreamGuard {
    StreamGuard::new(Dialect::OpenAiChat, scanner())
}

fn has_four_card_digits(s: &str) -> bool {
    // Any 4 consecutive digits of the card number (all are "1111"/"4111").
    ["4111", "1111"].iter().any(|d| s.contains(d))
}

// -- SSE parser --------------------------------------------------------------

#[test]
fn parser_reads_fields_line_endings_and_comments() {
    let input = b": comment\r\nevent: a\r\ndata: one\r\ndata:two\r\nid: 7\r\n\r\n\
                  data: x\rdata:  y\r\r\
                  event: b\ndata\nretry: 5\nunknown: z\n\n";
    let events = parse_all(input);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].event.as_deref(), Some("a"));
    assert_eq!(events[0].data.as_deref(), Some("one\ntwo"));
    assert_eq!(events[0].id.as_deref(), Some("7"));
    assert_eq!(events[1].event, None);
    assert_eq!(events[1].data.as_deref(), Some("x\n y"));
    assert_eq!(events[2].event.as_deref(), Some("b"));
    assert_eq!(events[2].data.as_deref(), Some(""));
    assert!(events.iter().all(|e| e.terminated));
    let raw: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
    assert_eq!(raw, input);

    // Same events whatever the chunking, raw bytes concatenate to the input.
    for step in 1..input.len() {
        let mut p = SseParser::new(1024);
        let mut got = Vec::new();
        for piece in input.chunks(step) {
            p.feed(piece, &mut got).unwrap();
        }
        got.extend(p.finish().unwrap());
        let fields: Vec<_> = got
            .iter()
            .map(|e| (e.event.clone(), e.data.clone(), e.id.clone()))
            .collect();
        let want: Vec<_> = events
            .iter()
            .map(|e| (e.event.clone(), e.data.clone(), e.id.clone()))
            .collect();
        assert_eq!(fields, want, "step {step}");
        let raw: Vec<u8> = got.iter().flat_map(|e| e.raw.clone()).collect();
        assert_eq!(raw, input, "step {step}");
    }
}

#[test]
fn parser_keeps_an_unterminated_tail_and_a_bom() {
    let mut p = SseParser::new(1024);
    let mut events = Vec::new();
    p.feed(b"\xEF\xBB\xBFdata: a\n\ndata: b", &mut events)
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data.as_deref(), Some("a"));
    let tail = p.finish().unwrap().unwrap();
    assert!(!tail.terminated);
    assert_eq!(tail.data.as_deref(), Some("b"));
    assert_eq!(tail.raw, b"data: b");
    assert!(p.finish().unwrap().is_none());
}

#[test]
fn parser_bounds_events_and_refuses_invalid_utf8() {
    let mut p = SseParser::new(16);
    let mut events = Vec::new();
    assert_eq!(
        p.feed(b"data: 0123456789abcdef", &mut events),
        Err(SseError::TooLarge { limit: 16 })
    );
    assert!(p.buffered() <= 16);
    // Sticky.
    assert!(p.feed(b"\n\n", &mut events).is_err());

    // Events before the oversized one are delivered.
    let mut p = SseParser::new(16);
    let mut events = Vec::new();
    assert!(p
        .feed(b"data: a\n\ndata: 0123456789abcdef\n\n", &mut events)
        .is_err());
    assert_eq!(events.len(), 1);

    let mut p = SseParser::new(1024);
    assert_eq!(
        p.feed(b"data: \xff\xfe\n\n", &mut Vec::new()),
        Err(SseError::InvalidUtf8 { field: "data" })
    );
    // A comment may hold anything.
    let mut p = SseParser::new(1024);
    let mut events = Vec::new();
    p.feed(b": \xff\n\n", &mut events).unwrap();
    assert_eq!(events.len(), 1);
}

// -- Anthropic ---------------------------------------------------------------

fn card_stream() -> String {
    anthropic_stream(
        &[
            Part::Text(vec![
                "Your card is 4111-11".into(),
                "11-1111-1".into(),
                "111 and that's it.".into(),
            ]),
            Part::Tool(vec![
                r#"{"command": "echo 4111-1111-"#.into(),
                r#"1111-1111"}"#.into(),
            ]),
            Part::Text(vec!["Done.".into()]),
        ],
        false,
        "\n",
    )
}

#[test]
fn a_card_split_across_three_deltas_is_masked_at_any_chunking() {
    let input = card_stream();
    let input = input.as_bytes();
    let want_types = [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ];
    let mut cut_sets: Vec<Vec<usize>> = vec![vec![], (1..input.len()).collect()];
    for a in (0..input.len()).step_by(7) {
        cut_sets.push(vec![a]);
        cut_sets.push(vec![a, a + 3, a + 250]);
    }
    for cuts in cut_sets {
        let mut g = anthropic_guard();
        let r = run(&mut g, input, &cuts);
        assert!(r.rejected.is_none());
        let view = anthropic_view(&r.bytes);
        let text0 = &view.text[&0];
        assert_eq!(text0, "Your card is <CREDIT_CARD> and that's it.");
        assert!(!has_four_card_digits(text0), "{text0}");
        assert_eq!(view.text[&2], "Done.");
        assert!(!view.text.contains_key(&1));
        // The tool input is never rewritten.
        let json: String = view
            .other_deltas
            .iter()
            .map(|d| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(json, r#"{"command": "echo 4111-1111-1111-1111"}"#);
        // At most one text delta per input delta, plus a flush per block.
        let deltas = view
            .types
            .iter()
            .filter(|t| *t == "content_block_delta")
            .count();
        assert!(deltas <= 3 + 1 + 2 + 1 + 1, "{:?}", view.types);
        let mut types = view.types.clone();
        types.dedup();
        let mut want: Vec<&str> = want_types.to_vec();
        want.dedup();
        assert_eq!(types, want);
        // Block indexes in order.
        let indexes: Vec<u64> = parse_all(&r.bytes)
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e.data.as_deref()?).ok())
            .filter_map(|v| v["index"].as_u64())
            .collect();
        let mut dedup = indexes.clone();
        dedup.dedup();
        assert_eq!(dedup, vec![0, 1, 2], "{indexes:?}");
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].location, TextLocation::Content(0));
        assert_eq!(r.events[0].range, 13..32);
        assert_eq!(
            r.events[0].fired,
            Fired::Masked {
                placeholder: "<CREDIT_CARD>".into()
            }
        );
        assert_eq!(r.events[0].location.to_string(), "content[0]");
    }
}

#[test]
fn events_without_text_pass_byte_identical_and_in_order() {
    let input = anthropic_stream(
        &[
            Part::Thinking(vec!["think 4111-1111-1111-1111 forbidden".into()]),
            Part::Text(vec!["hello ".into(), "world".into()]),
        ],
        false,
        "\r\n",
    );
    let mut g = anthropic_guard();
    let r = run(&mut g, input.as_bytes(), &[]);
    assert!(r.rejected.is_none());
    let in_events = parse_all(input.as_bytes());
    let out_events = parse_all(&r.bytes);
    let non_text = |events: &[SseEvent]| -> Vec<Vec<u8>> {
        events
            .iter()
            .filter(|e| !e.data.as_deref().unwrap_or("").contains("text_delta"))
            .map(|e| e.raw.clone())
            .collect()
    };
    assert_eq!(non_text(&in_events), non_text(&out_events));
    let view = anthropic_view(&r.bytes);
    assert_eq!(view.text[&1], "hello world");
    // "hello " is within the window: held, then flushed with the rest.
    let text_events: Vec<_> = out_events
        .iter()
        .filter(|e| e.data.as_deref().unwrap_or("").contains("text_delta"))
        .collect();
    assert_eq!(text_events.len(), 1);
    assert_eq!(
        text_events[0].raw,
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"hello world\"}}\n\n"
    );
}

#[test]
fn held_text_is_flushed_before_the_block_ends() {
    let input = anthropic_stream(
        &[Part::Text(vec![
            "a long enough first delta to release some ".into(),
            "tail".into(),
        ])],
        false,
        "\n",
    );
    let mut g = anthropic_guard();
    let r = run(&mut g, input.as_bytes(), &[]);
    let events = parse_all(&r.bytes);
    let types: Vec<String> = events.iter().filter_map(|e| e.event.clone()).collect();
    let stop = types
        .iter()
        .position(|t| t == "content_block_stop")
        .unwrap();
    assert_eq!(types[stop - 1], "content_block_delta");
    assert_eq!(types[stop - 2], "content_block_delta");
    let texts: Vec<String> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e.data.as_deref()?).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    // Each release keeps the last 19 bytes back; the flush sends them.
    assert_eq!(
        texts,
        vec!["a long enough first del", "ta t", "o release some tail"]
    );
}

#[test]
fn the_same_input_masks_the_same_way() {
    let input = card_stream();
    let a = run(&mut anthropic_guard(), input.as_bytes(), &[10, 500]).bytes;
    let b = run(&mut anthropic_guard(), input.as_bytes(), &[10, 500]).bytes;
    assert_eq!(a, b);
    // Masking the masked output again changes nothing.
    let view = anthropic_view(&a);
    let again = single_shot(&view.text[&0]);
    assert_eq!(again, (view.text[&0].clone(), false));
}

#[test]
fn a_reject_mid_stream_ends_with_the_error_event() {
    let input = anthropic_stream(
        &[
            Part::Text(vec![
                "Sure, here is a perfectly harmless sentence. ".into(),
                "Now the forb".into(),
                "idden word and more".into(),
            ]),
            Part::Text(vec!["never sent".into()]),
        ],
        false,
        "\n",
    );
    let bytes = input.as_bytes();
    for cut in (0..bytes.len()).step_by(5) {
        let mut g = anthropic_guard();
        let r = run(&mut g, bytes, &[cut]);
        let rej = r.rejected.clone().expect("rejected");
        assert_eq!(rej.rule, "no-forbidden");
        assert_eq!(rej.message, BLOCKED);
        assert_eq!(rej.location, TextLocation::Content(0));
        assert_eq!(rej.range, 53..62);
        assert!(r.bytes.ends_with(
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"permission_error\",\"message\":\"Response blocked by policy\"}}\n\n"
        ));
        let view = anthropic_view(&r.bytes);
        assert_eq!(view.types.last().unwrap(), "error");
        assert_eq!(view.types.iter().filter(|t| *t == "error").count(), 1);
        assert!(!view.types.contains(&"message_stop".to_owned()));
        // What was released before stays; the match and held text never go.
        let text = view.text.get(&0).cloned().unwrap_or_default();
        assert!("Sure, here is a perfectly harmless sentence. Now the ".starts_with(&text));
        assert!(!text.contains("forb"));
        assert!(!view.text.contains_key(&1));
        // The chunk that rejected ends with the error; later chunks are empty.
        let at = r
            .pieces
            .iter()
            .position(|p| p.ends_with(b"}}\n\n") && p.windows(12).any(|w| w == b"event: error"))
            .unwrap();
        assert!(r.pieces[at + 1..].iter().all(Vec::is_empty));
        assert!(g.is_rejected());
        assert_eq!(g.push(b"data: more\n\n", false).unwrap(), Output::default());
        assert_eq!(g.push(b"", true).unwrap(), Output::default());
        assert_eq!(g.abort("x"), Vec::<u8>::new());
    }
}

#[test]
fn usage_and_model_from_message_start_and_message_delta() {
    let input = card_stream();
    let mut g = anthropic_guard();
    let split = input.find("event: message_delta").unwrap();
    g.push(&input.as_bytes()[..split], false).unwrap();
    assert_eq!(g.model(), Some("claude-opus-4-6"));
    assert_eq!(
        g.usage(),
        Usage {
            input: Some(25),
            output: Some(1),
            cache_creation: Some(3),
            cache_read: Some(7),
        }
    );
    g.push(&input.as_bytes()[split..], true).unwrap();
    assert_eq!(
        g.usage(),
        Usage {
            input: Some(25),
            output: Some(15),
            cache_creation: Some(3),
            cache_read: Some(7),
        }
    );
    // A message_delta carrying more fields overwrites those too.
    let mut g = StreamGuard::new(Dialect::Anthropic, Arc::new(NoOp(0)));
    g.push(
        b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"input_tokens\":9,\"output_tokens\":2,\"cache_read_input_tokens\":null}}\n\n",
        true,
    )
    .unwrap();
    assert_eq!(
        g.usage(),
        Usage {
            input: Some(9),
            output: Some(2),
            ..Usage::default()
        }
    );
}

#[test]
fn a_text_block_start_with_text_is_scanned() {
    let input = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"card 4111-1111-1111-1111 here\"}}\n\n\
                 event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
    let r = run(&mut anthropic_guard(), input.as_bytes(), &[]);
    let events = parse_all(&r.bytes);
    let first: Value = serde_json::from_str(events[0].data.as_deref().unwrap()).unwrap();
    assert_eq!(first["content_block"]["text"], "");
    assert_eq!(anthropic_view(&r.bytes).text[&0], "card <CREDIT_CARD> here");
}

#[test]
fn an_upstream_error_flushes_held_text_first() {
    let input = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n\
                 event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let r = run(&mut anthropic_guard(), input.as_bytes(), &[]);
    let view = anthropic_view(&r.bytes);
    assert_eq!(view.types, vec!["content_block_delta", "error"]);
    assert_eq!(view.text[&0], "hi");
}

#[test]
fn end_of_stream_flushes_and_keeps_an_unterminated_tail_last() {
    let input = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"4111-1111-1111-1111\"}}\n\n\
                 event: ping\ndata: {\"type\":\"ping\"}";
    let r = run(&mut anthropic_guard(), input.as_bytes(), &[]);
    assert!(r.bytes.ends_with(b"event: ping\ndata: {\"type\":\"ping\"}"));
    assert_eq!(anthropic_view(&r.bytes).text[&0], "<CREDIT_CARD>");
    let mut g = anthropic_guard();
    g.push(b"", true).unwrap();
    assert_eq!(g.push(b"", true), Err(StreamError::AfterEnd));
}

// -- OpenAI ------------------------------------------------------------------

#[test]
fn openai_masks_across_chunks_and_flushes_at_finish() {
    let input = openai_stream(
        &[vec![
            "card: 4111-".into(),
            "1111-1111-11".into(),
            "11, thanks".into(),
        ]],
        false,
        true,
    );
    let bytes = input.as_bytes();
    for cut in 0..bytes.len() {
        let mut g = openai_guard();
        let r = run(&mut g, bytes, &[cut, cut / 2]);
        assert!(r.rejected.is_none());
        let view = openai_view(&r.bytes);
        assert_eq!(view.text[&0], "card: <CREDIT_CARD>, thanks");
        assert!(view.done_last);
        assert!(view.error.is_none());
        for c in &view.chunks {
            assert_eq!(c["id"], "chatcmpl-1");
            assert_eq!(c["model"], "gpt-4o-2024-08-06");
            assert_eq!(c["created"], 1700000000);
            assert_eq!(c["object"], "chat.completion.chunk");
        }
        // The flush comes before the finish chunk.
        let finish = view
            .chunks
            .iter()
            .position(|c| c["choices"][0]["finish_reason"] == "stop")
            .unwrap();
        assert_eq!(
            view.chunks[finish - 1]["choices"][0]["delta"]["content"],
            ", thanks"
        );
        assert_eq!(g.model(), Some("gpt-4o-2024-08-06"));
        assert_eq!(
            g.usage(),
            Usage {
                input: Some(6),
                output: Some(5),
                cache_creation: None,
                cache_read: Some(4),
            }
        );
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].location.to_string(), "choices[0]");
    }
}

#[test]
fn openai_reject_sends_an_error_chunk_then_done() {
    let input = openai_stream(
        &[vec![
            "fine text ".into(),
            "then forbidden".into(),
            " more".into(),
        ]],
        false,
        false,
    );
    let mut g = openai_guard();
    let r = run(&mut g, input.as_bytes(), &[30]);
    let rej = r.rejected.expect("rejected");
    assert_eq!(rej.location, TextLocation::Choice(0));
    assert!(r.bytes.ends_with(
        b"data: {\"error\":{\"message\":\"Response blocked by policy\",\"type\":\"invalid_request_error\",\"code\":\"content_policy_violation\"}}\n\ndata: [DONE]\n\n"
    ));
    let view = openai_view(&r.bytes);
    assert!(view.done_last);
    assert!(view.error.is_some());
    assert!(!view
        .text
        .get(&0)
        .cloned()
        .unwrap_or_default()
        .contains("forb"));
}

#[test]
fn openai_several_choices_and_content_with_finish_reason() {
    let input = format!(
        "data: {}\n\ndata: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        openai_chunk(
            r#"[{"index":0,"delta":{"content":"a 4111-1111-"},"finish_reason":null},{"index":1,"delta":{"content":"b 4111-"},"finish_reason":null}]"#,
            ""
        ),
        openai_chunk(
            r#"[{"index":1,"delta":{"content":"1111-1111-1111 end"},"finish_reason":"stop"}]"#,
            ""
        ),
        openai_chunk(
            r#"[{"index":0,"delta":{"content":"1111-1111 z"},"logprobs":{"content":[{"token":"1111"}]},"finish_reason":null}]"#,
            ""
        ),
    );
    let r = run(&mut openai_guard(), input.as_bytes(), &[]);
    let view = openai_view(&r.bytes);
    assert_eq!(view.text[&0], "a <CREDIT_CARD> z");
    assert_eq!(view.text[&1], "b <CREDIT_CARD> end");
    // logprobs of a re-encoded chunk would repeat the withheld tokens.
    assert!(!String::from_utf8_lossy(&r.bytes).contains(r#""token":"1111""#));
    assert!(view.done_last);
}

#[test]
fn openai_tool_calls_come_after_the_held_text() {
    let input = format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        openai_chunk(
            r#"[{"index":0,"delta":{"content":"Let me check."},"finish_reason":null}]"#,
            ""
        ),
        openai_chunk(
            r#"[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":""}}]},"finish_reason":null}]"#,
            ""
        ),
    );
    let r = run(&mut openai_guard(), input.as_bytes(), &[]);
    let view = openai_view(&r.bytes);
    assert_eq!(view.chunks.len(), 2);
    assert_eq!(
        view.chunks[0]["choices"][0]["delta"]["content"],
        "Let me check."
    );
    assert!(view.chunks[1]["choices"][0]["delta"]["tool_calls"].is_array());
}

#[test]
fn openai_usage_on_every_chunk_does_not_end_the_text() {
    // Servers with continuous usage stats put `usage` on every chunk.
    let usage = |n: u32| format!(r#","usage":{{"prompt_tokens":3,"completion_tokens":{n}}}"#);
    let input = format!(
        "data: {}\n\ndata: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        openai_chunk(
            r#"[{"index":0,"delta":{"content":"n 4111-1111-"},"finish_reason":null}]"#,
            &usage(1)
        ),
        openai_chunk(
            r#"[{"index":0,"delta":{"content":"1111-1111"},"finish_reason":null}]"#,
            &usage(2)
        ),
        openai_chunk(
            r#"[{"index":0,"delta":{},"finish_reason":"stop"}]"#,
            &usage(3)
        ),
    );
    let mut g = openai_guard();
    let r = run(&mut g, input.as_bytes(), &[]);
    assert_eq!(openai_view(&r.bytes).text[&0], "n <CREDIT_CARD>");
    assert_eq!(g.usage().output, Some(3));
}

// -- JSON bodies -------------------------------------------------------------

#[test]
fn json_bodies_change_only_the_masked_strings() {
    let body = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-opus-4-6",
  "content":[{"type":"text","text":"card 4111-1111-1111-1111."},{"type":"tool_use","id":"t","name":"Bash","input":{"c":"4111-1111-1111-1111"}},{"type":"text","text":"ok \u00e9"}],
  "stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":9,"cache_read_input_tokens":2}}"#;
    let out = guard_json_body(Dialect::Anthropic, body.as_bytes(), &**shared()).unwrap();
    let masked = String::from_utf8(out.body.unwrap()).unwrap();
    assert_eq!(
        masked,
        body.replacen(
            r#""card 4111-1111-1111-1111.""#,
            r#""card <CREDIT_CARD>.""#,
            1
        )
    );
    assert_eq!(out.model.as_deref(), Some("claude-opus-4-6"));
    assert_eq!(out.usage.output, Some(9));
    assert_eq!(out.usage.cache_read, Some(2));
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].range, 5..24);

    let body = r#"{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"x 4111-1111-1111-1111","refusal":null},"logprobs":{"content":[]},"finish_reason":"stop"},{"index":1,"message":{"role":"assistant","content":null}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":1}}}"#;
    let out = guard_json_body(Dialect::OpenAiChat, body.as_bytes(), &**shared()).unwrap();
    let masked = String::from_utf8(out.body.unwrap()).unwrap();
    assert_eq!(
        masked,
        body.replace(r#""x 4111-1111-1111-1111""#, r#""x <CREDIT_CARD>""#)
            .replace(r#""logprobs":{"content":[]}"#, r#""logprobs":null"#)
    );
    assert_eq!(
        out.usage,
        Usage {
            input: Some(2),
            output: Some(4),
            cache_creation: None,
            cache_read: Some(1),
        }
    );

    // Nothing to mask: no new body.
    let out = guard_json_body(
        Dialect::OpenAiChat,
        br#"{"choices":[{"message":{"content":"fine"}}]}"#,
        &**shared(),
    )
    .unwrap();
    assert_eq!(out.body, None);
    let out = guard_json_body(
        Dialect::Anthropic,
        br#"{"content":[{"type":"text","text":"so forbidden"}]}"#,
        &**shared(),
    )
    .unwrap();
    assert_eq!(out.body, None);
    assert_eq!(out.rejected.unwrap().range, 3..12);
}

// -- Malformed input ---------------------------------------------------------

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let cases: &[(Dialect, &[u8])] = &[
        (Dialect::Anthropic, b"event: ping\ndata: {not json\n\n"),
        (Dialect::Anthropic, b"data: [\"content_block_delta\", 0]\n\n"),
        (
            Dialect::Anthropic,
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n",
        ),
        (
            Dialect::Anthropic,
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":5}}\n\n",
        ),
        (
            Dialect::Anthropic,
            b"event: ping\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"4111-1111-1111-1111\"}}\n\n",
        ),
        (
            Dialect::Anthropic,
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\",\"text\":\"b\"}}\n\n",
        ),
        (Dialect::Anthropic, b"data: {\"type\":\"ping\"}\xff\n\n"),
        (Dialect::OpenAiChat, b"data: {\"choices\":[{\"delta\":{\"content\":\"a\",\"content\":\"b\"}}]}\n\n"),
        (Dialect::OpenAiChat, b"data: {\"choices\":[{\"delta\":{\"content\":[1]}}]}\n\n"),
        (Dialect::OpenAiChat, b"data: {\"choices\":{}}\n\n"),
        (Dialect::OpenAiChat, b"data: nope\n\n"),
    ];
    for (kind, input) in cases {
        let mut g = StreamGuard::new(*kind, scanner());
        let e = g
            .push(input, false)
            .expect_err(&String::from_utf8_lossy(input));
        assert!(!e.to_string().is_empty());
        // Sticky, and abort gives the provider's error event.
        assert_eq!(g.push(b"", true), Err(e));
        let bytes = g.abort("stream could not be checked");
        assert!(bytes.starts_with(b"event: error\n") || bytes.starts_with(b"data: {\"error\""));
        assert_eq!(g.push(b"x", true).unwrap(), Output::default());
    }

    let mut g = StreamGuard::with_event_limit(Dialect::Anthropic, scanner(), 64);
    let e = g.push(&[b'a'; 100], false).unwrap_err();
    assert!(matches!(
        e,
        StreamError::Sse {
            source: SseError::TooLarge { limit: 64 },
            ..
        }
    ));

    for body in [
        &b"[]"[..],
        b"{\"content\":\"x\"}",
        b"{\"content\":[{\"type\":\"text\",\"text\":1}]}",
        b"\xff",
    ] {
        assert!(guard_json_body(Dialect::Anthropic, body, &**shared()).is_err());
    }
    assert!(guard_json_body(
        Dialect::OpenAiChat,
        br#"{"choices":[{"message":{"content":[{"type":"text"}]}}]}"#,
        &**shared()
    )
    .is_err());
}

#[test]
fn a_scanner_returning_bad_ranges_is_an_error() {
    struct Bad;
    impl TextScanner for Bad {
        fn window(&self) -> usize {
            4
        }
        fn scan(&self, text: &str) -> Vec<ScanMatch> {
            vec![ScanMatch {
                range: 1..text.len() + 5,
                action: MatchAction::Mask {
                    placeholder: String::new(),
                },
            }]
        }
    }
    let mut g = StreamGuard::new(Dialect::Anthropic, Arc::new(Bad));
    let e = g
        .push(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\xc3\xa9t\xc3\xa9\"}}\n\n",
            false,
        )
        .unwrap_err();
    assert!(matches!(e, StreamError::Scanner(_)));
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet: &[&[u8]] = &[
        b"data: ",
        b"event: content_block_delta\n",
        b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"",
        b"\"}}",
        b"\n",
        b"\r",
        b"\n\n",
        b"4111-1111-",
        b"forbidden",
        b"\xc3",
        b"\xa9",
        b"[DONE]",
        b"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"",
        b"\"},\"finish_reason\":\"stop\"}]}",
    ];
    for _ in 0..2000 {
        let mut input = Vec::new();
        for _ in 0..(next() % 20) {
            input.extend_from_slice(alphabet[(next() % alphabet.len() as u64) as usize]);
        }
        for kind in [Dialect::Anthropic, Dialect::OpenAiChat] {
            let mut g = StreamGuard::with_event_limit(kind, scanner(), 256);
            let cut = (next() as usize) % (input.len() + 1);
            let _ = g.push(&input[..cut], false);
            let _ = g.push(&input[cut..], true);
        }
        let _ = guard_json_body(Dialect::OpenAiChat, &input, &**shared());
        let _ = guard_json_body(Dialect::Anthropic, &input, &**shared());
    }
}

// -- Identity ----------------------------------------------------------------

#[test]
fn window_zero_without_matches_is_the_identity() {
    let input = card_stream().replace("4111", "x");
    let mut g = StreamGuard::new(Dialect::Anthropic, Arc::new(NoOp(0)));
    let r = run(&mut g, input.as_bytes(), &[3, 99, 400]);
    assert_eq!(r.bytes, input.as_bytes());
}

#[test]
fn hold_back_is_bounded_and_text_flows() {
    // 4 KB of text in 1..7-byte deltas with multi-byte characters, fed one
    // byte per chunk: the guard never holds more than W + 3 bytes of text,
    // and everything before that has reached the client.
    let unit = "ab é 😀 4111-1111-1111-1111 xyz ";
    let text: String = std::iter::repeat_n(unit, 4096 / unit.len()).collect();
    let mut deltas = Vec::new();
    let mut pos = 0;
    let mut step = 0;
    while pos < text.len() {
        step = step % 7 + 1;
        let end = floor_char_boundary(&text, (pos + step).min(text.len()));
        let end = if end <= pos {
            pos + text[pos..].chars().next().unwrap().len_utf8()
        } else {
            end
        };
        deltas.push(text[pos..end].to_owned());
        pos = end;
    }
    let input = anthropic_stream(&[Part::Text(deltas)], false, "\n");
    let input = input.as_bytes();
    let text_len = |events: Vec<SseEvent>| -> usize {
        events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e.data.as_deref()?).ok())
            .filter_map(|v| {
                Some(
                    v["delta"]["text"]
                        .as_str()?
                        .replace("<CREDIT_CARD>", "4111-1111-1111-1111")
                        .len(),
                )
            })
            .sum()
    };
    let mut g = anthropic_guard();
    let (mut seen, mut sent) = (SseParser::new(1 << 20), SseParser::new(1 << 20));
    let (mut seen_text, mut sent_text) = (0, 0);
    let mut out = Vec::new();
    for (i, b) in input.iter().enumerate() {
        let bytes = g
            .push(std::slice::from_ref(b), i + 1 == input.len())
            .unwrap()
            .bytes;
        let mut events = Vec::new();
        seen.feed(std::slice::from_ref(b), &mut events).unwrap();
        seen_text += text_len(events);
        let mut events = Vec::new();
        sent.feed(&bytes, &mut events).unwrap();
        sent_text += text_len(events);
        out.extend(bytes);
        let held = g.held();
        assert!(held.max_block_text <= 19 + 3, "{held:?}");
        assert!(held.partial_event <= 400, "{held:?}");
        // The client has all text of the complete events but the held
        // bytes (and a card number under way).
        assert_eq!(sent_text + held.text, seen_text);
    }
    let sent = anthropic_view(&out).text[&0].clone();
    assert_eq!(sent, text.replace("4111-1111-1111-1111", "<CREDIT_CARD>"));
}

#[test]
fn the_guard_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<StreamGuard>();
}

#[test]
fn too_many_open_blocks_is_an_error() {
    let mut g = anthropic_guard();
    let mut input = String::new();
    for i in 0..=MAX_OPEN_BLOCKS {
        event(
            &mut input,
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":{i},"delta":{{"type":"text_delta","text":"x"}}}}"#
            ),
            "\n",
        );
    }
    assert_eq!(
        g.push(input.as_bytes(), false),
        Err(StreamError::TooManyBlocks {
            limit: MAX_OPEN_BLOCKS
        })
    );
}

// -- Properties --------------------------------------------------------------

fn text_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{4}",
        6 => "[0-9a-z \\-é€😀\"\\\\\n]{1,8}",
        1 => Just("forbidden".to_owned()),
    ];
    prop::collection::vec(piece, 0..10).prop_map(|v| v.concat())
}

/// Splits `text` at char boundaries near the given points.
fn split(text: &str, points: &[usize]) -> Vec<String> {
    let mut cuts: Vec<usize> = points
        .iter()
        .map(|p| floor_char_boundary(text, p % (text.len() + 1)))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut pos = 0;
    for c in cuts {
        out.push(text[pos..c].to_owned());
        pos = c;
    }
    out.push(text[pos..].to_owned());
    out
}

/// Checks a block's client text against the single-shot masking: equal
/// when it does not reject, a prefix of the text before the reject when
/// it does. Returns whether it rejects.
fn check_block(client: &str, whole: &str) -> Result<bool, TestCaseError> {
    let (want, rejects) = single_shot(whole);
    if rejects {
        prop_assert!(
            want.starts_with(client),
            "{client:?} not a prefix of {want:?}"
        );
    } else {
        prop_assert_eq!(client, want.as_str());
    }
    Ok(rejects)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn anthropic_streams_mask_like_a_single_shot(
        t0 in text_strategy(),
        t1 in text_strategy(),
        d0 in prop::collection::vec(any::<usize>(), 0..6),
        d1 in prop::collection::vec(any::<usize>(), 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        escape in any::<bool>(),
    ) {
        let input = anthropic_stream(
            &[
                Part::Text(split(&t0, &d0)),
                Part::Tool(vec![r#"{"a": "4111-1111-1111-1111"}"#.into()]),
                Part::Text(split(&t1, &d1)),
            ],
            escape,
            "\n",
        );
        let mut g = anthropic_guard();
        let r = run(&mut g, input.as_bytes(), &cuts);
        // (b) valid SSE, every event JSON (checked by anthropic_view).
        let view = anthropic_view(&r.bytes);
        let c0 = view.text.get(&0).cloned().unwrap_or_default();
        let c1 = view.text.get(&2).cloned().unwrap_or_default();
        // (a) the client text is the single-shot masking.
        let rejected = if check_block(&c0, &t0)? {
            prop_assert!(c1.is_empty());
            true
        } else {
            check_block(&c1, &t1)?
        };
        prop_assert_eq!(r.rejected.is_some(), rejected);
        if rejected {
            prop_assert_eq!(view.types.last().map(String::as_str), Some("error"));
        } else {
            prop_assert_eq!(view.types.first().map(String::as_str), Some("message_start"));
            prop_assert_eq!(view.types.last().map(String::as_str), Some("message_stop"));
            prop_assert_eq!(view.other_deltas.len(), 1);
            prop_assert_eq!(
                &view.other_deltas[0]["delta"]["partial_json"],
                r#"{"a": "4111-1111-1111-1111"}"#
            );
        }
    }

    #[test]
    fn openai_streams_mask_like_a_single_shot(
        t0 in text_strategy(),
        t1 in text_strategy(),
        d0 in prop::collection::vec(any::<usize>(), 0..6),
        d1 in prop::collection::vec(any::<usize>(), 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        escape in any::<bool>(),
    ) {
        let input = openai_stream(&[split(&t0, &d0), split(&t1, &d1)], escape, true);
        let mut g = openai_guard();
        let r = run(&mut g, input.as_bytes(), &cuts);
        let view = openai_view(&r.bytes);
        prop_assert!(view.done_last);
        let c0 = view.text.get(&0).cloned().unwrap_or_default();
        let c1 = view.text.get(&1).cloned().unwrap_or_default();
        let rejected = if check_block(&c0, &t0)? {
            prop_assert!(c1.is_empty());
            true
        } else {
            check_block(&c1, &t1)?
        };
        prop_assert_eq!(r.rejected.is_some(), rejected);
        prop_assert_eq!(view.error.is_some(), rejected);
        if !rejected {
            prop_assert_eq!(g.usage().output, Some(5));
        }
    }

    #[test]
    fn a_noop_scanner_with_window_zero_is_the_identity(
        t0 in text_strategy(),
        t1 in text_strategy(),
        d0 in prop::collection::vec(any::<usize>(), 0..6),
        d1 in prop::collection::vec(any::<usize>(), 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        escape in any::<bool>(),
        eol in prop::sample::select(vec!["\n", "\r\n", "\r"]),
        comment in any::<bool>(),
    ) {
        let mut input = anthropic_stream(
            &[Part::Text(split(&t0, &d0)), Part::Thinking(vec![t1.clone()])],
            escape,
            eol,
        );
        if comment {
            input.insert_str(0, &format!(": keep-alive{eol}{eol}"));
            input.push_str(": trailing");
        }
        let mut g = StreamGuard::new(Dialect::Anthropic, Arc::new(NoOp(0)));
        let r = run(&mut g, input.as_bytes(), &cuts);
        prop_assert_eq!(&r.bytes, input.as_bytes());

        let input = openai_stream(&[split(&t0, &d0), split(&t1, &d1)], escape, true);
        let mut g = StreamGuard::new(Dialect::OpenAiChat, Arc::new(NoOp(0)));
        let r = run(&mut g, input.as_bytes(), &cuts);
        prop_assert_eq!(&r.bytes, input.as_bytes());
    }

    #[test]
    fn a_noop_scanner_with_a_window_changes_only_text_chunking(
        t0 in text_strategy(),
        d0 in prop::collection::vec(any::<usize>(), 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        window in 0usize..40,
        eol in prop::sample::select(vec!["\n", "\r\n"]),
    ) {
        let input = anthropic_stream(&[Part::Text(split(&t0, &d0))], false, eol);
        let mut g = StreamGuard::new(Dialect::Anthropic, Arc::new(NoOp(window)));
        let r = run(&mut g, input.as_bytes(), &cuts);
        let non_text = |events: Vec<SseEvent>| -> Vec<Vec<u8>> {
            events
                .into_iter()
                .filter(|e| !e.data.as_deref().unwrap_or("").contains("text_delta"))
                .map(|e| e.raw)
                .collect()
        };
        prop_assert_eq!(non_text(parse_all(input.as_bytes())), non_text(parse_all(&r.bytes)));
        let view = anthropic_view(&r.bytes);
        prop_assert_eq!(view.text.get(&0).cloned().unwrap_or_default(), t0);
    }
}
