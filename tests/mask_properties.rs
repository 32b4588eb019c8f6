//! Property tests of masking: the forwarded body stays valid JSON, nothing
//! a guard matches survives, and what no guard matched is left alone.

mod support;

use futures_util::FutureExt;
use promptgate::decision::{self, BodyDecision, HeadersDecision, RequestHead};
use promptgate::policy::{LoadOptions, Policy};
use proptest::prelude::*;
use serde_json::{json, Value};
use support::{Backend, Guard};

fn policy() -> Policy {
    let yaml = support::Policy::new()
        .backend(
            Backend::anthropic("anthropic")
                .request_guard(Guard::regex(["secret-[0-9]{3}"]).name("token").mask())
                .request_guard(Guard::regex(["pass word"]).mask()),
        )
        .to_yaml();
    Policy::from_yaml(&yaml, "prop.yaml", &LoadOptions::default()).unwrap()
}

fn decide(p: &Policy, body: &[u8]) -> BodyDecision {
    let head = RequestHead {
        method: "POST",
        path: "/v1/messages",
        authority: "gw",
        ..RequestHead::default()
    };
    let (ctx, d) = decision::request_headers(p, None, &head);
    assert!(matches!(
        d,
        HeadersDecision::Continue {
            inspect_body: true,
            ..
        }
    ));
    decision::request_body(p, &ctx.unwrap(), body)
        .now_or_never()
        .expect("no external guard")
}

/// Text with JSON-hostile characters, fullwidth and zero-width characters,
/// and planted matches in bypass spellings.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z \\n\\t\"\\\\/]{0,12}",
        Just("secret-123".to_owned()),
        Just("SECRET-９９９".to_owned()),
        Just("secret\u{200b}-007".to_owned()),
        Just("pass\u{00a0}word".to_owned()),
        Just("PASS  WORD".to_owned()),
        Just("\u{1f600}é\u{0}".to_owned()),
        "\\PC{0,6}",
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

fn leftovers(p: &Policy, body: &[u8]) -> usize {
    match decide(p, body) {
        BodyDecision::Continue { outcome, .. } => outcome.masked,
        BodyDecision::Reply(r) => panic!("unexpected reply {}", r.status),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn masking_keeps_json_valid_and_leaves_no_match(
        system in text(),
        blocks in proptest::collection::vec(text(), 1..4),
        tool in text(),
        assistant in text(),
    ) {
        let p = policy();
        let body = json!({
            "model": "m",
            "system": system,
            "messages": [
                {"role": "user", "content": blocks.iter().map(|t| json!({"type": "text", "text": t})).collect::<Vec<_>>()},
                {"role": "assistant", "content": assistant},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": tool}]}
            ],
            "tools": [{"name": "x", "description": "secret-999 in a tool description stays"}]
        });
        let raw = serde_json::to_vec(&body).unwrap();
        let (forwarded, restore) = match decide(&p, &raw) {
            BodyDecision::Continue { replacement, restore, .. } => {
                (replacement.unwrap_or_else(|| raw.clone()), restore)
            }
            BodyDecision::Reply(r) => panic!("unexpected reply {}", r.status),
        };
        let v: Value = serde_json::from_slice(&forwarded).expect("forwarded body is valid JSON");
        // Restoring undoes masking exactly: every masked string, with the
        // request's placeholders put back, is the string the client sent.
        for at in ["/system", "/messages/1/content", "/messages/2/content/0/content"] {
            let sent = v.pointer(at).unwrap().as_str().unwrap();
            let back = restore
                .as_ref()
                .and_then(|r| r.restore_text(sent))
                .unwrap_or_else(|| sent.to_owned());
            prop_assert_eq!(back.as_str(), body.pointer(at).unwrap().as_str().unwrap(), "{}", at);
        }
        prop_assert_eq!(leftovers(&p, &forwarded), 0, "a second pass finds nothing to mask");
        // Parts no guard reads are untouched (the assistant's history is
        // read: these masks restore, so it may come back holding values).
        prop_assert_eq!(&v["messages"][1]["role"], &body["messages"][1]["role"]);
        prop_assert_eq!(&v["tools"], &body["tools"]);
        prop_assert_eq!(&v["model"], &body["model"]);
        // Masking is deterministic.
        let again = match decide(&p, &raw) {
            BodyDecision::Continue { replacement, .. } => replacement.unwrap_or_else(|| raw.clone()),
            BodyDecision::Reply(_) => unreachable!(),
        };
        prop_assert_eq!(again, forwarded);
    }
}
