//! External guards over gRPC: a real `promptgate.guard.v1.Guard` server
//! started in the test, consulted by the same decision core the ext_proc
//! adapter uses.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promptgate::decision::{self, BodyDecision, HeadersDecision, RequestHead};
use promptgate::guard_proto::guard_server::{Guard, GuardServer};
use promptgate::guard_proto::{
    check_response::Verdict, Allow, CheckRequest, CheckResponse, Mask, MaskSpan, Reject,
};
use promptgate::policy::{LoadOptions, Policy};

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

fn policy(addr: &str, failure: &str) -> Policy {
    let yaml = format!(
        r#"
backends:
- name: anthropic
  ai: {{provider: {{anthropic: {{}}}}}}
  policies:
    ai:
      promptGuard:
        request:
        - name: local-codename
          regex: {{action: Mask, matches: ["falcon"]}}
        - name: dlp
          external: {{address: "http://{addr}", timeout: 500ms, failureMode: {failure}}}
"#
    );
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
    assert_eq!(v["messages"][0]["content"], "<LOCAL_CODENAME> <TICKET> now");
    assert_eq!(
        v["messages"][1]["content"],
        "ticket-0000 in history is not sent by default"
    );
    assert_eq!(outcome.decision, decision::Verdict::Mask);
    let rules: Vec<&str> = outcome.fired.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["local-codename", "dlp"]);
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
