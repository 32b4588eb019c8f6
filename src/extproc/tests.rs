//! Adapter tests with hand-built ProcessingRequests (the end-to-end tests
//! drive real Envoy).

use std::sync::Arc;

use super::*;
use crate::policy::Policy;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::{
    BodySendMode, HeaderSendMode,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, processing_request, processing_response, HttpBody, HttpHeaders,
    ProcessingRequest,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{HttpTrailers, ProtocolConfiguration};
use envoy_types::pb::google::protobuf::value;
use envoy_types::pb::google::protobuf::Struct;
use processing_request::Request as In;
use processing_response::Response as Out;

fn policy() -> Arc<Policy> {
    // The demo policy: rejects "credit card", masks secrets.
    let yaml = include_str!("../../deploy/examples/demo.yaml");
    Arc::new(Policy::from_yaml(yaml, "demo.yaml", &crate::policy::LoadOptions::default()).unwrap())
}

fn headers(pairs: &[(&str, &str)], eos: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(In::RequestHeaders(HttpHeaders {
            headers: Some(HeaderMap {
                headers: pairs
                    .iter()
                    .map(|(k, v)| HeaderValue {
                        key: (*k).into(),
                        raw_value: v.as_bytes().to_vec(),
                        ..Default::default()
                    })
                    .collect(),
            }),
            end_of_stream: eos,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn post(path: &str) -> ProcessingRequest {
    headers(
        &[
            (":method", "POST"),
            (":path", path),
            (":authority", "gw"),
            ("x-api-key", "sk-client"),
        ],
        false,
    )
}

fn body(b: &str, eos: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(In::RequestBody(HttpBody {
            body: b.as_bytes().to_vec(),
            end_of_stream: eos,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn response_headers() -> ProcessingRequest {
    ProcessingRequest {
        request: Some(In::ResponseHeaders(HttpHeaders::default())),
        ..Default::default()
    }
}

#[tokio::test]
async fn guarded_route_asks_for_the_body_and_rejects() {
    let mut s = StreamState::new(policy(), Some("anthropic".into()));
    let r = s.handle(post("/v1/messages?beta=true")).await.unwrap();
    assert!(matches!(r.response, Some(Out::RequestHeaders(_))));
    let mode = r.mode_override.unwrap();
    assert_eq!(mode.request_body_mode, BodySendMode::Buffered as i32);
    // Messages responses are read for token usage (no response guard): the
    // body comes streamed, without a response headers exchange.
    assert_eq!(mode.response_header_mode, HeaderSendMode::Skip as i32);
    assert_eq!(mode.response_body_mode, BodySendMode::Streamed as i32);

    let r = s
        .handle(body(
            r#"{"messages":[{"role":"user","content":"What is a credit card"}]}"#,
            true,
        ))
        .await
        .unwrap();
    let Some(Out::ImmediateResponse(ir)) = r.response else {
        panic!("{r:?}")
    };
    assert_eq!(ir.status.unwrap().code, 403);
    let ct = &ir.headers.unwrap().set_headers[0];
    assert_eq!(ct.header.as_ref().unwrap().raw_value, b"application/json");
    let v: serde_json::Value = serde_json::from_slice(&ir.body).unwrap();
    assert_eq!(
        v["error"]["message"],
        "Rejected due to inappropriate content"
    );
    // Nothing may follow an immediate response.
    assert!(s.handle(response_headers()).await.is_err());
}

#[tokio::test]
async fn passthrough_answers_every_phase_without_body_override() {
    let mut s = StreamState::new(policy(), Some("anthropic".into()));
    let r = s
        .handle(headers(
            &[(":method", "GET"), (":path", "/v1/models")],
            true,
        ))
        .await
        .unwrap();
    assert_eq!(r.mode_override.unwrap().request_body_mode, 0);
    // Even if Envoy were configured to send bodies, each gets its answer.
    assert!(matches!(
        s.handle(body("x", false)).await.unwrap().response,
        Some(Out::RequestBody(_))
    ));
    assert!(matches!(
        s.handle(body("y", true)).await.unwrap().response,
        Some(Out::RequestBody(_))
    ));
    let trailers = ProcessingRequest {
        request: Some(In::RequestTrailers(HttpTrailers::default())),
        ..Default::default()
    };
    assert!(matches!(
        s.handle(trailers).await.unwrap().response,
        Some(Out::RequestTrailers(_))
    ));
    assert!(matches!(
        s.handle(response_headers()).await.unwrap().response,
        Some(Out::ResponseHeaders(_))
    ));
    let rb = ProcessingRequest {
        request: Some(In::ResponseBody(HttpBody {
            end_of_stream: true,
            ..Default::default()
        })),
        ..Default::default()
    };
    assert!(matches!(
        s.handle(rb).await.unwrap().response,
        Some(Out::ResponseBody(_))
    ));
}

#[tokio::test]
async fn out_of_order_messages_get_an_error_status() {
    let mut s = StreamState::new(policy(), None);
    s.handle(post("/v1/messages")).await.unwrap();
    let e = s.handle(post("/v1/messages")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);

    let mut s = StreamState::new(policy(), None);
    s.handle(response_headers()).await.unwrap();
    assert!(s.handle(post("/v1/messages")).await.is_err());

    let mut s = StreamState::new(policy(), None);
    let empty = ProcessingRequest::default();
    assert_eq!(
        s.handle(empty).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
}

#[tokio::test]
async fn body_without_headers_fails_closed() {
    let mut s = StreamState::new(policy(), None);
    let r = s.handle(body("{}", true)).await.unwrap();
    let Some(Out::ImmediateResponse(ir)) = r.response else {
        panic!()
    };
    assert_eq!(ir.status.unwrap().code, 500);
}

#[tokio::test]
async fn streamed_request_bodies_are_held_back_and_reemitted_whole() {
    let mut s = StreamState::new(policy(), Some("anthropic".into()));
    let mut first = post("/v1/messages");
    first.protocol_config = Some(ProtocolConfiguration {
        request_body_mode: BodySendMode::Streamed as i32,
        ..Default::default()
    });
    // With a statically STREAMED filter we still override to BUFFERED; if
    // Envoy ignores it, chunks arrive and are held back.
    s.handle(first).await.unwrap();
    s.requested_body = false;
    let full = r#"{"messages":[{"role":"user","content":"hello there"}]}"#;
    let (a, b) = full.split_at(20);
    let r = s.handle(body(a, false)).await.unwrap();
    let Some(Out::RequestBody(br)) = r.response else {
        panic!()
    };
    assert_eq!(
        br.response.unwrap().body_mutation.unwrap().mutation,
        Some(body_mutation::Mutation::ClearBody(true))
    );
    let r = s.handle(body(b, true)).await.unwrap();
    let Some(Out::RequestBody(br)) = r.response else {
        panic!()
    };
    let common = br.response.unwrap();
    assert!(
        common.header_mutation.is_none(),
        "no content-length in STREAMED mode"
    );
    assert_eq!(
        common.body_mutation.unwrap().mutation,
        Some(body_mutation::Mutation::Body(full.as_bytes().to_vec()))
    );
}

#[tokio::test]
async fn requested_body_that_never_came_fails_loudly() {
    let mut s = StreamState::new(policy(), Some("anthropic".into()));
    s.handle(post("/v1/messages")).await.unwrap();
    let r = s.handle(response_headers()).await.unwrap();
    let Some(Out::ImmediateResponse(ir)) = r.response else {
        panic!()
    };
    assert_eq!(ir.status.unwrap().code, 500);

    // Envoy's own 413 for a body over its buffer limit is not mistaken for it.
    let mut s = StreamState::new(policy(), Some("anthropic".into()));
    s.handle(post("/v1/messages")).await.unwrap();
    let rh = ProcessingRequest {
        request: Some(In::ResponseHeaders(HttpHeaders {
            headers: Some(HeaderMap {
                headers: vec![HeaderValue {
                    key: ":status".into(),
                    raw_value: b"413".to_vec(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    let r = s.handle(rh).await.unwrap();
    assert!(matches!(r.response, Some(Out::ResponseHeaders(_))));
}

#[tokio::test]
async fn streams_end_when_nothing_more_is_needed() {
    // Passthrough: done after the request headers.
    let mut s = StreamState::new(policy(), Some("anthropic".into()));
    s.handle(headers(
        &[(":method", "GET"), (":path", "/v1/models")],
        true,
    ))
    .await
    .unwrap();
    assert!(s.finished());
    // Messages: the body, then the streamed response (token usage) are
    // still to come.
    let mut s = StreamState::new(policy(), Some("anthropic".into()));
    s.handle(post("/v1/messages")).await.unwrap();
    assert!(!s.finished());
    s.handle(body(
        r#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        true,
    ))
    .await
    .unwrap();
    assert!(!s.finished());
    // An error response is not read: done at its headers.
    let rh = ProcessingRequest {
        request: Some(In::ResponseHeaders(HttpHeaders {
            headers: Some(HeaderMap {
                headers: vec![HeaderValue {
                    key: ":status".into(),
                    raw_value: b"500".to_vec(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    s.handle(rh).await.unwrap();
    assert!(s.finished());
    // A reject ends it at once.
    let mut s = StreamState::new(policy(), Some("anthropic".into()));
    s.handle(post("/v1/messages")).await.unwrap();
    s.handle(body(
        r#"{"messages":[{"role":"user","content":"credit card"}]}"#,
        true,
    ))
    .await
    .unwrap();
    assert!(s.finished());
}

/// A backend without response guards, with `tokenUsage` set (or not).
fn usage_policy(token_usage: Option<&str>) -> Arc<Policy> {
    let line = token_usage.map_or(String::new(), |m| format!("      tokenUsage: {m}\n"));
    let yaml = format!(
        "backends:\n- name: anthropic\n  ai: {{provider: {{anthropic: {{}}}}}}\n  policies:\n    ai:\n{line}      promptGuard:\n        request:\n        - regex: {{action: Reject, matches: [credit card]}}\n- name: openai\n  ai: {{provider: {{openai: {{}}}}}}\n  policies:\n    ai:\n{line}      promptGuard: {{}}\n"
    );
    Arc::new(Policy::from_yaml(&yaml, "t.yaml", &crate::policy::LoadOptions::default()).unwrap())
}

fn response_body(b: &[u8], eos: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(In::ResponseBody(HttpBody {
            body: b.to_vec(),
            end_of_stream: eos,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The `promptgate` namespace of the dynamic metadata of an answer.
fn metadata(r: &ProcessingResponse) -> Option<&Struct> {
    let v = r
        .dynamic_metadata
        .as_ref()?
        .fields
        .get(METADATA_NAMESPACE)?;
    match &v.kind {
        Some(value::Kind::StructValue(s)) => Some(s),
        _ => None,
    }
}

fn number(md: &Struct, key: &str) -> Option<f64> {
    match md.fields.get(key)?.kind {
        Some(value::Kind::NumberValue(n)) => Some(n),
        _ => None,
    }
}

/// The answer passes the chunk on unchanged.
fn passes(r: &ProcessingResponse) -> bool {
    matches!(&r.response, Some(Out::ResponseBody(b)) if b.response.is_none())
}

const ANTHROPIC_JSON: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"card 4111 1111 1111 1111"}],"usage":{"input_tokens":25,"cache_read_input_tokens":100,"output_tokens":12}}"#;

const ANTHROPIC_SSE: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":12}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

#[tokio::test]
async fn token_usage_modes_set_the_response_processing() {
    let modes = |token_usage: Option<&'static str>| async move {
        let mut s = StreamState::new(usage_policy(token_usage), Some("anthropic".into()));
        let m = s
            .handle(post("/v1/messages"))
            .await
            .unwrap()
            .mode_override
            .unwrap();
        (m.response_header_mode, m.response_body_mode)
    };
    let skip = HeaderSendMode::Skip as i32;
    let streamed = BodySendMode::Streamed as i32;
    // Streams (the default) and All: the body streamed, no headers exchange.
    assert_eq!(modes(None).await, (skip, streamed));
    assert_eq!(modes(Some("Streams")).await, (skip, streamed));
    assert_eq!(modes(Some("All")).await, (skip, streamed));
    // Off: the response side is skipped, as for passthrough.
    assert_eq!(modes(Some("Off")).await, (skip, 0));
    // Off does not switch response guards off: they still get the headers.
    let guarded = Arc::new(
        Policy::from_yaml(
            "backends:\n- name: anthropic\n  ai: {provider: {anthropic: {}}}\n  policies:\n    ai:\n      tokenUsage: Off\n      promptGuard:\n        response:\n        - regex: {action: Mask, builtins: [CreditCard]}\n",
            "t.yaml",
            &crate::policy::LoadOptions::default(),
        )
        .unwrap(),
    );
    let mut s = StreamState::new(guarded, None);
    let m = s
        .handle(post("/v1/messages"))
        .await
        .unwrap()
        .mode_override
        .unwrap();
    assert_eq!((m.response_header_mode, m.response_body_mode), (0, 0));
    // The streams of those routes close after the request body with Off.
    let mut s = StreamState::new(usage_policy(Some("Off")), Some("anthropic".into()));
    s.handle(post("/v1/messages")).await.unwrap();
    s.handle(body(
        r#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        true,
    ))
    .await
    .unwrap();
    assert!(s.finished());
}

#[tokio::test]
async fn non_streamed_responses_are_read_only_when_asked() {
    let request = |stream: &str| {
        format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{stream}}}"#)
    };
    // Streams (default): a request that does not stream is done at its body.
    for b in [
        request(""),
        request(r#","stream":false"#),
        request(r#","stream":null"#),
        "{\"stream\" : false ,\"model\":\"m\",\"messages\":[]}\n".to_owned(),
    ] {
        let mut s = StreamState::new(usage_policy(None), Some("anthropic".into()));
        s.handle(post("/v1/messages")).await.unwrap();
        let r = s.handle(body(&b, true)).await.unwrap();
        assert!(matches!(r.response, Some(Out::RequestBody(_))), "{b}");
        assert!(s.finished(), "{b}");
    }
    // … one that streams is not.
    for stream in [r#","stream":true"#, r#","stream": true"#] {
        let mut s = StreamState::new(usage_policy(None), Some("anthropic".into()));
        s.handle(post("/v1/messages")).await.unwrap();
        s.handle(body(&request(stream), true)).await.unwrap();
        assert!(!s.finished(), "{stream}");
    }
    // `stream` first, or not a boolean (the provider refuses that): read.
    for b in [
        r#"{"stream":true,"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":1}"#,
    ] {
        let mut s = StreamState::new(usage_policy(None), Some("anthropic".into()));
        s.handle(post("/v1/messages")).await.unwrap();
        s.handle(body(b, true)).await.unwrap();
        assert!(!s.finished(), "{b}");
    }
    // All: the non-streamed response is read, chunk by chunk, unchanged.
    let mut s = StreamState::new(usage_policy(Some("All")), Some("anthropic".into()));
    s.handle(post("/v1/messages")).await.unwrap();
    s.handle(body(&request(""), true)).await.unwrap();
    assert!(!s.finished());
    let (a, b) = ANTHROPIC_JSON.as_bytes().split_at(40);
    let r = s.handle(response_body(a, false)).await.unwrap();
    assert!(passes(&r) && metadata(&r).is_none());
    // The chunk that completes the answer is read at once (see
    // a_whole_json_answer_ends_the_usage_read_before_the_last_chunk).
    let r = s.handle(response_body(b, false)).await.unwrap();
    assert!(passes(&r));
    let md = metadata(&r).expect("token usage metadata");
    assert_eq!(number(md, "input_tokens"), Some(125.0));
    assert_eq!(number(md, "output_tokens"), Some(12.0));
    assert_eq!(number(md, "cache_read_input_tokens"), Some(100.0));
    assert!(s.finished());
}

/// A JSON answer read for its usage is read as soon as it is whole: the
/// stream ends then, without Envoy's closing empty chunk. A chunk that ends
/// with `}` but not the answer is not mistaken for its end.
#[tokio::test]
async fn a_whole_json_answer_ends_the_usage_read_before_the_last_chunk() {
    let mut s = StreamState::new(usage_policy(Some("All")), Some("anthropic".into()));
    s.handle(post("/v1/messages")).await.unwrap();
    s.handle(body(r#"{"model":"m","messages":[]}"#, true))
        .await
        .unwrap();
    let at = ANTHROPIC_JSON.find("}]").unwrap() + 1;
    let (a, b) = ANTHROPIC_JSON.as_bytes().split_at(at);
    assert!(a.ends_with(b"}"));
    let r = s.handle(response_body(a, false)).await.unwrap();
    assert!(passes(&r) && metadata(&r).is_none());
    assert!(!s.finished(), "half an answer");
    let r = s.handle(response_body(b, false)).await.unwrap();
    assert!(passes(&r));
    let md = metadata(&r).expect("token usage metadata");
    assert_eq!(number(md, "output_tokens"), Some(12.0));
    assert!(s.finished(), "the answer is whole: nothing more to read");
    // A body that is not JSON ends the read at once, unread.
    let mut s = StreamState::new(usage_policy(Some("All")), Some("anthropic".into()));
    s.handle(post("/v1/messages")).await.unwrap();
    s.handle(body(r#"{"model":"m","messages":[]}"#, true))
        .await
        .unwrap();
    let r = s
        .handle(response_body(b"<html>busy</html>", false))
        .await
        .unwrap();
    assert!(passes(&r) && metadata(&r).is_none());
    assert!(s.finished());
}

#[tokio::test]
async fn streams_read_for_usage_pass_unchanged_and_report_it() {
    let mut s = StreamState::new(usage_policy(None), Some("anthropic".into()));
    s.handle(post("/v1/messages")).await.unwrap();
    s.handle(body(
        r#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        true,
    ))
    .await
    .unwrap();
    // Chunks cut anywhere (mid-event, mid-JSON) pass unchanged.
    let bytes = ANTHROPIC_SSE.as_bytes();
    for (i, chunk) in bytes.chunks(7).enumerate() {
        let r = s.handle(response_body(chunk, false)).await.unwrap();
        assert!(passes(&r), "chunk {i}");
        assert!(metadata(&r).is_none());
    }
    let r = s.handle(response_body(b"", true)).await.unwrap();
    assert!(passes(&r));
    let md = metadata(&r).expect("token usage metadata");
    assert_eq!(number(md, "input_tokens"), Some(25.0));
    assert_eq!(number(md, "output_tokens"), Some(12.0));
    assert!(s.finished());

    // OpenAI chunks, last one with usage.
    let mut s = StreamState::new(usage_policy(None), Some("openai".into()));
    s.handle(post("/v1/chat/completions")).await.unwrap();
    s.handle(body(
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        true,
    ))
    .await
    .unwrap();
    let sse = "data: {\"id\":\"c\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"id\":\"c\",\"model\":\"gpt-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":5}}\n\ndata: [DONE]\n\n";
    let r = s.handle(response_body(sse.as_bytes(), true)).await.unwrap();
    assert!(passes(&r));
    let md = metadata(&r).expect("token usage metadata");
    assert_eq!(number(md, "input_tokens"), Some(30.0));
    assert_eq!(number(md, "output_tokens"), Some(5.0));
    assert!(s.finished());
}

#[tokio::test]
async fn unreadable_responses_pass_unread() {
    let gz = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3];
    let cases: [&[u8]; 6] = [
        // compressed anyway
        &gz,
        // an error body: no usage, no model
        br#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
        // an HTML error page of some proxy
        b"<html><body>502 Bad Gateway</body></html>",
        // a broken stream
        b"event: message_start\ndata: {not json\n\n",
        // a JSON body cut short
        br#"{"usage":{"input_tokens":3"#,
        // nothing
        b"  \n",
    ];
    for case in cases {
        let mut s = StreamState::new(usage_policy(None), Some("anthropic".into()));
        s.handle(post("/v1/messages")).await.unwrap();
        s.handle(body(
            r#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#,
            true,
        ))
        .await
        .unwrap();
        let r = s.handle(response_body(case, false)).await.unwrap();
        assert!(passes(&r), "{case:?}");
        let r = s.handle(response_body(b"", true)).await.unwrap();
        assert!(passes(&r), "{case:?}");
        assert!(metadata(&r).is_none(), "{case:?}: {r:?}");
        assert!(s.finished());
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn any_message() -> impl Strategy<Value = ProcessingRequest> {
        let hdrs = proptest::collection::vec(
            (
                prop_oneof![
                    Just(":method".to_owned()),
                    Just(":path".to_owned()),
                    Just(":status".to_owned()),
                    Just("content-encoding".to_owned()),
                    Just("content-type".to_owned()),
                    "[a-z:-]{1,12}"
                ],
                prop_oneof![
                    Just("POST".to_owned()),
                    Just("/v1/messages?beta=true".to_owned()),
                    Just("/v1/chat/completions".to_owned()),
                    Just("200".to_owned()),
                    Just("gzip".to_owned()),
                    Just("text/event-stream".to_owned()),
                    Just("application/json".to_owned()),
                    "\\PC{0,16}"
                ],
            ),
            0..6,
        );
        let body = prop_oneof![
            Just(br#"{"messages":[{"role":"user","content":"credit card"}]}"#.to_vec()),
            Just(b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..64),
        ];
        (0..7u8, hdrs, body, any::<bool>()).prop_map(|(kind, hdrs, body, eos)| {
            let headers = HttpHeaders {
                headers: Some(HeaderMap {
                    headers: hdrs
                        .into_iter()
                        .map(|(k, v)| HeaderValue {
                            key: k,
                            raw_value: v.into_bytes(),
                            ..Default::default()
                        })
                        .collect(),
                }),
                end_of_stream: eos,
                ..Default::default()
            };
            let http_body = HttpBody {
                body,
                end_of_stream: eos,
                ..Default::default()
            };
            let request = match kind {
                0 => Some(In::RequestHeaders(headers)),
                1 => Some(In::RequestBody(http_body)),
                2 => Some(In::RequestTrailers(HttpTrailers::default())),
                3 => Some(In::ResponseHeaders(headers)),
                4 => Some(In::ResponseBody(http_body)),
                5 => Some(In::ResponseTrailers(HttpTrailers::default())),
                _ => None,
            };
            ProcessingRequest {
                request,
                ..Default::default()
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Any sequence of messages gets, for each message, exactly one
        /// answer of its own kind (or an immediate response, on a headers or
        /// body phase), or a gRPC error status exactly when the message
        /// breaks the protocol; never a panic. After an error or an
        /// immediate response, nothing more is answered.
        #[test]
        fn any_message_sequence_is_answered_or_refused(msgs in proptest::collection::vec(any_message(), 1..8)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut s = StreamState::new(policy(), Some("anthropic".into()));
                // The reference: the protocol's order, kept apart from the
                // state machine.
                let mut last: Option<Phase> = None;
                let mut replied = false;
                let mut request_body_answered = false;
                for m in msgs {
                    let phase = Phase::of(&m);
                    let out_of_order = phase == Phase::Unknown
                        || replied
                        || last.is_some_and(|l| phase < l || (phase == l && !phase.repeats()));
                    match s.handle(m).await {
                        Err(status) => {
                            // Refused: a protocol breach, or a request body
                            // chunk after the body was complete.
                            prop_assert!(
                                out_of_order || (phase == Phase::RequestBody && request_body_answered),
                                "{phase:?} refused in order: {status:?}"
                            );
                            prop_assert!(matches!(
                                status.code(),
                                tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument
                            ));
                            break;
                        }
                        Ok(resp) => {
                            prop_assert!(!out_of_order, "{phase:?} answered out of order");
                            let answer = resp.response.as_ref();
                            let matching = match answer {
                                Some(Out::ImmediateResponse(_)) => {
                                    replied = true;
                                    matches!(
                                        phase,
                                        Phase::RequestHeaders
                                            | Phase::RequestBody
                                            | Phase::ResponseHeaders
                                            | Phase::ResponseBody
                                    )
                                }
                                Some(Out::RequestHeaders(_)) => phase == Phase::RequestHeaders,
                                Some(Out::RequestBody(_)) => phase == Phase::RequestBody,
                                Some(Out::RequestTrailers(_)) => phase == Phase::RequestTrailers,
                                Some(Out::ResponseHeaders(_)) => phase == Phase::ResponseHeaders,
                                Some(Out::ResponseBody(_)) => phase == Phase::ResponseBody,
                                Some(Out::ResponseTrailers(_)) => phase == Phase::ResponseTrailers,
                                // promptgate never streams an immediate response.
                                Some(Out::StreamedImmediateResponse(_)) | None => false,
                            };
                            prop_assert!(matching, "{phase:?} answered with {answer:?}");
                            request_body_answered |= phase == Phase::RequestBody;
                            last = Some(phase);
                        }
                    }
                }
                Ok(())
            })?;
        }
    }
}
