//! External guards over gRPC: a real `promptgate.guard.v1.Guard` server
//! started in the test, consulted by the same decision core the ext_proc
//! adapter uses; and the same guard behind real Envoy and `promptgate serve`.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promptgate::decision::{self, BodyDecision, HeadersDecision, RequestHead};
use promptgate::guard_proto::guard_server::{Guard, GuardServer};
use promptgate::guard_proto::{
    check_response::Verdict, Allow, CheckRequest, CheckResponse, Mask, MaskSpan, Reject,
};
use promptgate::policy::{LoadOptions, Policy};
use support::{gzip, Backend, Gateway};

#[derive(Clone, Default)]
struct TestGuard {
    seen: Arc<Mutex<Vec<CheckRequest>>>,
}

#[tonic::async_trait]
impl Guard for TestGuard {
    async fn check(
        &self,
        req: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let req = req.into_inner();
        self.seen.lock().unwrap().push(req.clone());
        let mut spans = Vec::new();
        for (i, seg) in req.segments.iter().enumerate() {
            if seg.text.contains("slow") {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            if seg.text.contains("broken") {
                return Err(tonic::Status::internal("guard bug"));
            }
            if seg.text.contains("reject me") {
                return Ok(tonic::Response::new(CheckResponse {
                    verdict: Some(Verdict::Reject(Reject {
                        message: "external says no".into(),
                        status_code: 451,
                        rule: "no-go".into(),
                    })),
                }));
            }
            if let Some(at) = seg.text.find("ticket-") {
                spans.push(MaskSpan {
                    segment: i as u32,
                    start: at as u32,
                    end: (at + 11) as u32,
                    replacement: "<TICKET>".into(),
                });
            }
            if seg.text.contains("bad span") {
                spans.push(MaskSpan {
                    segment: i as u32,
                    start: 0,
                    end: 10_000,
                    replacement: String::new(),
                });
            }
        }
        let verdict = if spans.is_empty() {
            Verdict::Allow(Allow {})
        } else {
            Verdict::Mask(Mask { spans })
        };
        Ok(tonic::Response::new(CheckResponse {
            verdict: Some(verdict),
        }))
    }
}

async fn start_guard() -> (SocketAddr, TestGuard) {
    let guard = TestGuard::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = GuardServer::new(guard.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, guard)
}

/// A backend with a local mask guard, then the external guard at `addr`
/// (its masks restored or not).
fn guarded_backend(addr: &str, timeout: &str, failure: &str, restore: bool) -> Backend {
    let dlp = support::Guard::external(&format!("http://{addr}"))
        .name("dlp")
        .timeout(timeout);
    let dlp = match failure {
        "FailClosed" => dlp.fail_closed(),
        "FailOpen" => dlp.fail_open(),
        other => panic!("failure mode {other}"),
    };
    let dlp = if restore { dlp } else { dlp.no_restore() };
    Backend::anthropic("anthropic")
        .request_guard(
            support::Guard::regex(["falcon"])
                .name("local-codename")
                .mask(),
        )
        .request_guard(dlp)
}

/// The backend of [`guarded_backend`] with the external guard's masks not
/// restored (so its default scope leaves the assistant's history alone).
fn policy(addr: &str, failure: &str) -> Policy {
    let yaml = support::Policy::new()
        .backend(guarded_backend(addr, "500ms", failure, false))
        .to_yaml();
    Policy::from_yaml(&yaml, "t.yaml", &LoadOptions::default()).unwrap()
}

async fn decide(policy: &Policy, prompt: &str) -> BodyDecision {
    let head = RequestHead {
        method: "POST",
        path: "/v1/messages",
        authority: "gw",
        ..RequestHead::default()
    };
    let (ctx, d) = decision::request_headers(policy, None, &head);
    assert!(matches!(
        d,
        HeadersDecision::Continue {
            inspect_body: true,
            ..
        }
    ));
    let body = serde_json::json!({
        "model": "m",
        "system": "be brief",
        "tools": [{"name": "Bash", "description": "reject me never: tool definitions are not sent"}],
        "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": "ticket-0000 in history is not sent by default"}
        ]
    });
    decision::request_body(policy, &ctx.unwrap(), &serde_json::to_vec(&body).unwrap()).await
}

#[tokio::test]
async fn external_guard_allows_rejects_and_masks() {
    let (addr, guard) = start_guard().await;
    let p = policy(&addr.to_string(), "FailClosed");

    let BodyDecision::Continue {
        replacement,
        outcome,
        ..
    } = decide(&p, "hello").await
    else {
        panic!()
    };
    assert!(replacement.is_none());
    assert_eq!(outcome.decision, decision::Verdict::Allow);
    {
        let seen = guard.seen.lock().unwrap();
        let req = seen.last().unwrap();
        assert_eq!(req.backend, "anthropic");
        assert_eq!(req.route_type, "Messages");
        let kinds: Vec<(&str, &str, &str)> = req
            .segments
            .iter()
            .map(|s| (s.role.as_str(), s.location.as_str(), s.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("system", "system", "system"),
                ("user", "messages[0].content", "text")
            ]
        );
    }

    let BodyDecision::Reply(r) = decide(&p, "please reject me").await else {
        panic!()
    };
    assert_eq!(r.status, 451);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["message"], "external says no");
    assert_eq!(r.outcome.rule.as_deref(), Some("dlp/no-go"));

    let BodyDecision::Continue {
        replacement,
        outcome,
        ..
    } = decide(&p, "falcon ticket-1234 now").await
    else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_slice(&replacement.unwrap()).unwrap();
    assert_eq!(
        support::untag_json(&v["messages"][0]["content"]),
        "<LOCAL_CODENAME> <TICKET> now"
    );
    assert_eq!(
        v["messages"][1]["content"],
        "ticket-0000 in history is not sent by default"
    );
    assert_eq!(outcome.decision, decision::Verdict::Mask);
    let rules: Vec<&str> = outcome.fired.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["local-codename", "dlp"]);
}

/// A restoring external guard (the default) reads the assistant's history
/// too: values it masks and promptgate restores come back there.
#[tokio::test]
async fn a_restoring_external_guard_reads_the_assistant_history() {
    let (addr, guard) = start_guard().await;
    let yaml = support::Policy::new()
        .backend(guarded_backend(
            &addr.to_string(),
            "500ms",
            "FailClosed",
            true,
        ))
        .to_yaml();
    let p = Policy::from_yaml(&yaml, "t.yaml", &LoadOptions::default()).unwrap();
    let BodyDecision::Continue {
        replacement,
        restore,
        ..
    } = decide(&p, "ticket-1234 now").await
    else {
        panic!()
    };
    {
        let seen = guard.seen.lock().unwrap();
        let kinds: Vec<&str> = seen
            .last()
            .unwrap()
            .segments
            .iter()
            .map(|s| s.location.as_str())
            .collect();
        assert_eq!(
            kinds,
            ["system", "messages[0].content", "messages[1].content"]
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&replacement.unwrap()).unwrap();
    let user = v["messages"][0]["content"].as_str().unwrap();
    let history = v["messages"][1]["content"].as_str().unwrap();
    assert_eq!(support::untag(user), "<TICKET> now");
    assert_eq!(
        support::untag(history),
        "<TICKET> in history is not sent by default"
    );
    // Tagged by value, and noted for the answer's restore.
    let restore = restore.expect("the masks are restored");
    let placeholder = &user[..user.find(' ').unwrap()];
    assert_eq!(restore.get(placeholder), Some("ticket-1234"));
    assert_ne!(placeholder, &history[..history.find(' ').unwrap()]);
}

#[tokio::test]
async fn failures_follow_the_failure_mode() {
    let (addr, _guard) = start_guard().await;
    let closed = policy(&addr.to_string(), "FailClosed");
    let open = policy(&addr.to_string(), "FailOpen");
    for prompt in ["slow please", "broken please", "bad span here"] {
        let started = std::time::Instant::now();
        let BodyDecision::Reply(r) = decide(&closed, prompt).await else {
            panic!("{prompt}")
        };
        assert_eq!(r.status, 503, "{prompt}");
        assert!(String::from_utf8_lossy(&r.body).contains("guard `dlp` is unavailable"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the deadline holds: {:?}",
            started.elapsed()
        );
        let BodyDecision::Continue { outcome, .. } = decide(&open, prompt).await else {
            panic!("{prompt}")
        };
        assert_eq!(outcome.decision, decision::Verdict::Allow, "{prompt}");
    }
    // Nothing listening at all.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let BodyDecision::Reply(r) = decide(&policy(&dead.to_string(), "FailClosed"), "hello").await
    else {
        panic!()
    };
    assert_eq!(r.status, 503);
}

/// A gzip-compressed request to a backend with an external guard: the body
/// is decoded, the external guard reads its text and decides as it would on
/// the plain body, and the upstream receives the decoded, masked body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_are_decoded_for_the_external_guard() {
    const SECRET: &str = "sk-ant-external-gzip-0001";
    let (addr, guard) = start_guard().await;
    let gw = Gateway::start(
        support::Policy::new().backend(
            guarded_backend(&addr.to_string(), "2s", "FailClosed", false)
                .key("anthropic-secret", SECRET),
        ),
    );
    let body = |prompt: &str| {
        serde_json::to_vec(&serde_json::json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": prompt}]
        }))
        .unwrap()
    };
    let post = |bytes: Vec<u8>| {
        support::client()
            .post(gw.url("/v1/messages"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .header("anthropic-version", "2023-06-01")
            .header("x-api-key", "sk-client")
            .body(bytes)
            .send()
    };
    let seen_text = |guard: &TestGuard| -> Vec<String> {
        let seen = guard.seen.lock().unwrap();
        seen.last()
            .map(|r| r.segments.iter().map(|s| s.text.clone()).collect())
            .unwrap_or_default()
    };

    // Masked: by the local guard and by the external one, on the decoded text.
    let resp = post(gzip(&body("falcon ticket-1234 now"))).await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(seen_text(&guard), ["falcon ticket-1234 now"]);
    let req = gw.upstream().only_request();
    assert_eq!(
        req.header("content-encoding"),
        None,
        "the rewritten body is sent decoded"
    );
    assert_eq!(
        support::untag_json(&req.json()["messages"][0]["content"]),
        "<LOCAL_CODENAME> <TICKET> now"
    );
    assert_eq!(
        req.header("content-length")
            .map(|l| l.parse::<usize>().unwrap()),
        Some(req.body.len())
    );
    assert_eq!(req.header("x-api-key"), Some(SECRET));

    // Rejected by the external guard, as the plain body would be.
    gw.upstream().clear();
    let resp = post(gzip(&body("please reject me"))).await.unwrap();
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 451, "{v}");
    assert_eq!(v["error"]["message"], "external says no", "{v}");
    assert_eq!(seen_text(&guard), ["please reject me"]);
    assert_eq!(gw.upstream().request_count(), 0);

    // Allowed and unchanged: the body goes out as the client sent it.
    let sent = gzip(&body("hello there"));
    let resp = post(sent.clone()).await.unwrap();
    let _ = resp.bytes().await.unwrap();
    assert_eq!(seen_text(&guard), ["hello there"]);
    let req = gw.upstream().only_request();
    assert_eq!(req.header("content-encoding"), Some("gzip"));
    assert_eq!(req.body, sent);
    gw.assert_ext_proc_clean();
}
