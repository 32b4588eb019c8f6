//! Telemetry end to end: client → real Envoy (deploy/envoy/envoy.yaml, its
//! OpenTelemetry tracer on) → real `promptgate serve` exporting over OTLP/gRPC
//! → a real OTLP receiver in the test; promptgate's `/metrics`; its logs.
//!
//! Needs Envoy 1.40: run via `./scripts/test.sh`.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::otlp::{OtlpReceiver, ReceivedSpan};
use support::{client, Backend, Gateway, Guard, Policy, Route};

const ANTHROPIC_SECRET: &str = "sk-ant-telemetry-secret-7781";
const CLIENT_KEY: &str = "sk-client-telemetry-key-4410";
/// Guard pattern; the prompts below contain it.
const GUARDED: &str = "credit card";
/// Words of the prompts that must never leave promptgate in telemetry.
const PROMPT_MARK: &str = "zanzibar-walrus";

fn policy() -> Policy {
    Policy::new().backend(
        Backend::anthropic("anthropic")
            .route("/v1/messages", Route::Messages)
            .route("*", Route::Passthrough)
            .request_guard(
                Guard::regex(["credit card"])
                    .reject()
                    .message("Rejected due to inappropriate content"),
            )
            .request_guard(Guard::regex([r"emp-\d{5}"]).name("employee-id").mask())
            .key("anthropic-secret", ANTHROPIC_SECRET),
    )
}

const TRACE_WAIT: Duration = Duration::from_secs(15);

fn messages_body(prompt: &str, stream: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>context</system-reminder>"},
                {"type": "text", "text": prompt}
            ]}
        ]
    }))
    .unwrap()
}

/// A client trace: `00-<trace>-<span>-01` with ids derived from `n`.
fn client_trace(n: u32) -> (String, String, String) {
    let trace = format!("{:032x}", 0x5eed_0000_u128 + u128::from(n));
    let span = format!("{:016x}", 0xc11e_0000_u64 + u64::from(n));
    let tp = format!("00-{trace}-{span}-01");
    (trace, span, tp)
}

fn post(gw: &Gateway, prompt: &str, stream: bool, traceparent: &str) -> reqwest::RequestBuilder {
    client()
        .post(gw.url("/v1/messages?beta=true"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", CLIENT_KEY)
        .header("traceparent", traceparent)
        .body(messages_body(prompt, stream))
}

fn telemetry_gateway(receiver: &OtlpReceiver, envoy_tracer: bool) -> Gateway {
    let mut launch = Gateway::launch(policy())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())
        .env("OTEL_SERVICE_NAME", "promptgate")
        .env("OTEL_TRACES_SAMPLER", "parentbased_always_on")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    if envoy_tracer {
        launch = launch.envoy_tracing_to(receiver.port());
    } else {
        launch = launch.edit_envoy(support::envoy::remove_tracing);
    }
    launch.start()
}

fn promptgate_span<'a>(spans: &'a [ReceivedSpan], trace: &str) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|s| {
        s.service == "promptgate" && s.name() == "promptgate.ext_proc" && s.trace_id() == trace
    })
}

fn assert_no_secret_in_spans(spans: &[ReceivedSpan]) {
    for s in spans {
        let text = s.all_text();
        for needle in [ANTHROPIC_SECRET, CLIENT_KEY, PROMPT_MARK, GUARDED] {
            assert!(
                !text.contains(needle),
                "`{needle}` in a span of {}: {text}",
                s.service
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_shows_envoy_and_promptgate_with_decision_attributes() {
    let receiver = OtlpReceiver::start();
    let gw = telemetry_gateway(&receiver, true);

    let (t_reject, s_reject, tp_reject) = client_trace(1);
    let (t_allow, s_allow, tp_allow) = client_trace(2);
    let (t_pass, _, tp_pass) = client_trace(3);
    let (t_mask, _, tp_mask) = client_trace(4);

    let resp = post(
        &gw,
        &format!("{PROMPT_MARK}: what is a {GUARDED}?"),
        true,
        &tp_reject,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let resp = post(&gw, &format!("{PROMPT_MARK}: say hello"), true, &tp_allow)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.bytes().await.unwrap();
    let resp = post(
        &gw,
        &format!("{PROMPT_MARK}: ask emp-12345"),
        true,
        &tp_mask,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.bytes().await.unwrap();
    let resp = client()
        .get(gw.url("/v1/models"))
        .header("x-api-key", CLIENT_KEY)
        .header("traceparent", &tp_pass)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    let spans = receiver.wait_for(
        TRACE_WAIT,
        "promptgate and Envoy spans of 3 requests",
        |spans| {
            [&t_reject, &t_allow, &t_pass, &t_mask].iter().all(|t| {
                promptgate_span(spans, t).is_some_and(|pg| {
                    spans
                        .iter()
                        .any(|s| s.service == "envoy" && s.span_id() == pg.parent_span_id())
                })
            })
        },
    );

    for (trace, client_span) in [(&t_reject, &s_reject), (&t_allow, &s_allow)] {
        let pg = promptgate_span(&spans, trace).unwrap();
        // promptgate's parent is Envoy's ext_proc call span …
        let parent = spans
            .iter()
            .find(|s| s.span_id() == pg.parent_span_id())
            .unwrap();
        assert_eq!(parent.service, "envoy");
        assert_eq!(parent.trace_id(), *trace);
        // … whose ancestors lead to the span the client sent.
        let mut cur = parent;
        let mut hops = 0;
        while cur.parent_span_id() != *client_span {
            cur = spans
                .iter()
                .find(|s| s.span_id() == cur.parent_span_id())
                .unwrap_or_else(|| {
                    panic!("broken chain from promptgate's span to the client's span at {cur:?}")
                });
            hops += 1;
            assert!(hops < 5, "no path to the client's span");
        }
        assert_eq!(cur.service, "envoy");
        // phase spans are children of promptgate's span
        let phases: Vec<_> = spans
            .iter()
            .filter(|s| s.service == "promptgate" && s.parent_span_id() == pg.span_id())
            .map(|s| s.name().to_owned())
            .collect();
        assert!(phases.contains(&"request_headers".to_owned()), "{phases:?}");
        assert!(phases.contains(&"request_body".to_owned()), "{phases:?}");
        assert!(
            pg.attr("promptgate.phase.request_body.duration_us")
                .is_some(),
            "{pg:?}"
        );
        assert_eq!(pg.attr("promptgate.backend").as_deref(), Some("anthropic"));
        assert_eq!(pg.attr("promptgate.route").as_deref(), Some("Messages"));
        assert_eq!(
            pg.attr("gen_ai.provider.name").as_deref(),
            Some("anthropic")
        );
        assert_eq!(
            pg.attr("gen_ai.request.model").as_deref(),
            Some("claude-sonnet-4-5")
        );
        assert!(
            pg.attr("request_id").is_some_and(|r| !r.is_empty()),
            "{pg:?}"
        );
    }

    // The allowed stream's usage, read by Envoy and reported to promptgate
    // after the answer: a span of its own under promptgate's request span.
    let usage_span = |spans: &[ReceivedSpan]| {
        spans
            .iter()
            .find(|s| {
                s.service == "promptgate"
                    && s.name() == "promptgate.usage"
                    && s.trace_id() == t_allow
            })
            .cloned()
    };
    let spans_with_usage = receiver.wait_for(TRACE_WAIT, "promptgate's usage span", |spans| {
        usage_span(spans).is_some()
    });
    let usage = usage_span(&spans_with_usage).unwrap();
    let pg_allow = promptgate_span(&spans, &t_allow).unwrap();
    assert_eq!(usage.parent_span_id(), pg_allow.span_id(), "{usage:?}");
    assert_eq!(
        usage.attr("gen_ai.usage.input_tokens").as_deref(),
        Some("25")
    );
    assert_eq!(
        usage.attr("gen_ai.usage.output_tokens").as_deref(),
        Some("12")
    );
    assert!(
        usage.attr("request_id").is_some_and(|r| !r.is_empty()),
        "{usage:?}"
    );

    let reject = promptgate_span(&spans, &t_reject).unwrap();
    assert_eq!(
        reject.attr("promptgate.decision").as_deref(),
        Some("reject")
    );
    assert_eq!(
        reject.attr("promptgate.rule").as_deref(),
        Some("request[0]")
    );
    assert_eq!(
        reject.attr("promptgate.location").as_deref(),
        Some("messages[0].content[1]")
    );
    assert_eq!(
        reject.attr("promptgate.reply.status_code").as_deref(),
        Some("403")
    );
    assert_eq!(
        reject.status_code(),
        2,
        "a reject marks the span as an error"
    );

    let allow = promptgate_span(&spans, &t_allow).unwrap();
    assert_eq!(allow.attr("promptgate.decision").as_deref(), Some("allow"));
    assert_eq!(allow.attr("promptgate.rule"), None);
    assert_eq!(
        allow.attr("promptgate.auth_injected").as_deref(),
        Some("true")
    );
    assert_ne!(allow.status_code(), 2);

    let pass = promptgate_span(&spans, &t_pass).unwrap();
    assert_eq!(
        pass.attr("promptgate.route").as_deref(),
        Some("Passthrough")
    );
    assert_eq!(pass.attr("promptgate.decision").as_deref(), Some("allow"));

    let mask = promptgate_span(&spans, &t_mask).unwrap();
    assert_eq!(mask.attr("promptgate.decision").as_deref(), Some("mask"));
    assert_eq!(mask.attr("promptgate.rule").as_deref(), Some("employee-id"));
    assert_eq!(
        mask.attr("promptgate.location").as_deref(),
        Some("messages[0].content[1]")
    );
    assert_eq!(mask.attr("promptgate.guard.masked").as_deref(), Some("1"));
    assert_ne!(mask.status_code(), 2);
    for s in &spans {
        assert!(
            !format!("{s:?}").contains("12345"),
            "masked text in a span: {s:?}"
        );
    }

    assert_no_secret_in_spans(&spans);

    // Envoy's access log carries the same trace id and promptgate's metadata.
    let log = wait_access_log(&gw, |e| e["response_code"] == 403);
    assert_eq!(log["trace_id"], t_reject.as_str(), "{log}");
    assert_eq!(log["promptgate"]["decision"], "reject", "{log}");
    assert_eq!(log["promptgate"]["rule"], "request[0]", "{log}");
    gw.assert_ext_proc_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_envoys_tracer_the_parent_is_the_clients_traceparent() {
    let receiver = OtlpReceiver::start();
    let gw = telemetry_gateway(&receiver, false);
    let (trace, span, tp) = client_trace(10);
    let resp = post(
        &gw,
        &format!("{PROMPT_MARK}: what is a {GUARDED}?"),
        false,
        &tp,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    let spans = receiver.wait_for(TRACE_WAIT, "promptgate's span", |s| {
        promptgate_span(s, &trace).is_some()
    });
    let pg = promptgate_span(&spans, &trace).unwrap();
    assert_eq!(pg.trace_id(), trace);
    assert_eq!(
        pg.parent_span_id(),
        span,
        "parent = the client's traceparent"
    );
    assert_eq!(pg.attr("promptgate.decision").as_deref(), Some("reject"));
    assert!(
        spans.iter().all(|s| s.service != "envoy"),
        "Envoy's tracer is off in this test"
    );
    assert_no_secret_in_spans(&spans);
    gw.assert_ext_proc_clean();
}

fn wait_access_log(gw: &Gateway, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        if let Some(e) = gw.access_log_entries().into_iter().find(|e| pred(e)) {
            return e;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no matching access log entry:\n{}", gw.access_log());
}

/// The value of the sample `name{labels…}` (labels given as `k="v"` parts
/// that must all appear), or 0 when absent.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|p| l.contains(p)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_add_up_after_a_mixed_run() {
    let gw = Gateway::start(policy());
    assert_eq!(gw.promptgate_admin_get("/healthz").unwrap().trim(), "ok");
    assert_eq!(gw.promptgate_admin_get("/readyz").unwrap().trim(), "ready");

    const ALLOW: usize = 5;
    const REJECT: usize = 3;
    const MODELS: usize = 4;
    let c = client();
    for i in 0..ALLOW {
        let r = c
            .post(gw.url("/v1/messages?beta=true"))
            .header("x-api-key", CLIENT_KEY)
            .header("content-type", "application/json")
            .body(messages_body(&format!("hello {i}"), i % 2 == 0))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let _ = r.bytes().await.unwrap();
    }
    for i in 0..REJECT {
        let r = c
            .post(gw.url("/v1/messages"))
            .header("x-api-key", CLIENT_KEY)
            .body(messages_body(&format!("{i} {GUARDED}"), false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
    }
    for _ in 0..MODELS {
        let r = c.get(gw.url("/v1/models")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = c
        .post(gw.url("/v1/messages"))
        .body(r#"{"messages": ["#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let total = (ALLOW + REJECT + MODELS + 1) as f64;

    // requests are counted when their ext_proc stream ends
    let mut text = String::new();
    for _ in 0..100 {
        text = gw.promptgate_metrics();
        if sample(&text, "promptgate_requests_total", &[]) >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let req = |route: &str, decision: &str| {
        sample(
            &text,
            "promptgate_requests_total",
            &[
                r#"backend="anthropic""#,
                &format!(r#"route="{route}""#),
                &format!(r#"decision="{decision}""#),
            ],
        )
    };
    assert_eq!(req("Messages", "allow"), ALLOW as f64, "{text}");
    assert_eq!(req("Messages", "reject"), REJECT as f64, "{text}");
    assert_eq!(req("Messages", "error"), 1.0, "{text}");
    assert_eq!(req("Passthrough", "allow"), MODELS as f64, "{text}");
    assert_eq!(
        sample(&text, "promptgate_requests_total", &[]),
        total,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "promptgate_guard_matches_total",
            &[r#"rule="request[0]""#, r#"action="reject""#]
        ),
        REJECT as f64,
        "{text}"
    );
    assert_eq!(
        sample(&text, "guardrail_checks_total", &[r#"phase="request""#]),
        (ALLOW + REJECT) as f64,
        "{text}"
    );
    // every stream had a request_headers message; the guarded ones a body too
    assert_eq!(
        sample(
            &text,
            "promptgate_phase_duration_seconds_count",
            &[r#"phase="request_headers""#]
        ),
        total,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "promptgate_phase_duration_seconds_count",
            &[r#"phase="request_body""#]
        ),
        (ALLOW + REJECT + 1) as f64,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "promptgate_config_loads_total",
            &[r#"outcome="success""#]
        ),
        1.0,
        "{text}"
    );
    gw.assert_ext_proc_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_the_keys_or_the_prompt_even_at_trace_level() {
    let receiver = OtlpReceiver::start();
    let gw = Gateway::launch(policy())
        .envoy_tracing_to(receiver.port())
        // everything, dependencies included
        .env("PROMPTGATE_LOG", "trace")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .start();
    let (trace, _, tp) = client_trace(20);
    let r = post(&gw, &format!("{PROMPT_MARK} {GUARDED}"), false, &tp)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (_, _, tp2) = client_trace(21);
    let r = post(&gw, &format!("{PROMPT_MARK} hello"), true, &tp2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let _ = r.bytes().await.unwrap();
    let r = c_get_models(&gw).await;
    assert_eq!(r, 200);
    receiver.wait_for(TRACE_WAIT, "promptgate's span", |s| {
        promptgate_span(s, &trace).is_some()
    });

    let log = gw.promptgate_log();
    assert!(
        log.lines().count() > 10,
        "trace level should be chatty:\n{log}"
    );
    for needle in [ANTHROPIC_SECRET, CLIENT_KEY, PROMPT_MARK, GUARDED] {
        assert!(
            !log.contains(needle),
            "`{needle}` in promptgate's log:\n{}",
            log.lines()
                .filter(|l| l.contains(needle))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // one JSON line per decision, with the request id and trace id
    let decisions: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 3, "{log}");
    let reject = decisions
        .iter()
        .find(|d| d["fields"]["decision"] == "reject")
        .expect("reject decision line");
    assert_eq!(reject["level"], "INFO");
    assert_eq!(reject["span"]["trace_id"], trace.as_str(), "{reject}");
    assert!(
        reject["span"]["request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{reject}"
    );
    assert_eq!(reject["fields"]["rule"], "request[0]");
}

async fn c_get_models(gw: &Gateway) -> u16 {
    client()
        .get(gw.url("/v1/models"))
        .header("x-api-key", CLIENT_KEY)
        .header("authorization", format!("Bearer {CLIENT_KEY}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
