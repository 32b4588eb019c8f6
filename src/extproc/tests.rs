//! Adapter tests with hand-built ProcessingRequests (the end-to-end tests
//! drive real Envoy).

use super::*;
use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::service::ext_proc::v3::{HttpTrailers, ProtocolConfiguration};
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
    // Messages responses are read (token usage): the response headers stay on.
    assert_eq!(mode.response_header_mode, 0);

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
    // Messages: the body, then the response (token usage) are still to come.
    let mut s = StreamState::new(policy(), Some("anthropic".into()));
    s.handle(post("/v1/messages")).await.unwrap();
    assert!(!s.finished());
    s.handle(body(
        r#"{"messages":[{"role":"user","content":"hi"}]}"#,
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

        /// Any sequence of messages gets answers or a gRPC error status,
        /// never a panic; after an error or the end, nothing is answered.
        #[test]
        fn any_message_sequence_is_answered_or_refused(msgs in proptest::collection::vec(any_message(), 1..8)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut s = StreamState::new(policy(), Some("anthropic".into()));
                for m in msgs {
                    if s.handle(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
}
