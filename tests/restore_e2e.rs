//! Stable masks and their restore through real Envoy: a `.env` read by the
//! agent reaches the upstream masked, with the same placeholders on every
//! turn; the model's answer repeating them (text, and a tool call whose
//! input is split across `input_json_delta` events) reaches the client
//! with the real values; the next turn's history, which then holds them,
//! is masked again. The real Claude Code CLI writes a file holding the
//! real values while the upstream never received them.

mod support;

use serde_json::{json, Value};
use support::claude::Claude;
use support::{client, Backend, Gateway, Guard, Policy, Scripted};

use promptgate::guard::MaskKey;

const CLIENT_KEY: &str = "sk-client-restore";
const MASK_KEY_VAR: &str = "PROMPTGATE_TEST_MASK_KEY";
const MASK_KEY: &str = "restore-e2e mask key, 32 bytes.";

/// Secrets of the kinds the policy masks, as `(bare placeholder, env
/// name, value)`; values are built from pieces at run time.
fn secrets() -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "<AWS_ACCESS_KEY>",
            "AWS_ACCESS_KEY_ID",
            format!("AKIA{}", "Q3RT7WZX2PLM5VNB"),
        ),
        (
            "<GITHUB_TOKEN>",
            "GITHUB_TOKEN",
            format!("ghp_{}", "R8f2Kq9ZtW3xLm7Np4Vb6Hc1Jd5Gs0Ya2Ue8"),
        ),
        (
            "<ANTHROPIC_API_KEY>",
            "ANTHROPIC_API_KEY",
            format!(
                "sk-ant-api03-{}",
                "Zq7Xw2Lp9Vn4Mk8Jr3Ht6Bd1Fs5Gc0Ya_Ue-Io7Pl2"
            ),
        ),
        (
            "<SLACK_TOKEN>",
            "SLACK_BOT_TOKEN",
            format!("xoxb-{}-{}", "2945017734", "Tq9Lm2Xw7Zp4Vn8Kr3Hb"),
        ),
        (
            "<EMAIL_ADDRESS>",
            "OPS_EMAIL",
            format!("oncall.{}@example.org", "lead"),
        ),
    ]
}

fn env_file() -> String {
    secrets()
        .iter()
        .map(|(_, name, value)| format!("{name}={value}\n"))
        .collect()
}

/// The placeholder promptgate gives `value` under the test's mask key,
/// computed here independently of the gateway.
fn placeholder(base: &str, value: &str) -> String {
    MaskKey::new(MASK_KEY.as_bytes())
        .unwrap()
        .placeholder(base, value)
}

fn policy() -> Policy {
    Policy::new().mask_key_env(MASK_KEY_VAR).backend(
        Backend::anthropic("anthropic").request_guard(
            Guard::builtins([
                "AwsAccessKey",
                "GitHubToken",
                "AnthropicApiKey",
                "SlackToken",
                "Email",
            ])
            .name("secrets")
            .mask(),
        ),
    )
}

fn gateway() -> Gateway {
    Gateway::launch(policy())
        .env(MASK_KEY_VAR, MASK_KEY)
        .start()
}

fn post(gw: &Gateway, body: &Value) -> reqwest::RequestBuilder {
    client()
        .post(gw.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", CLIENT_KEY)
        .body(serde_json::to_vec(body).unwrap())
}

/// What a client assembles from an Anthropic stream: each block's text,
/// or its tool input parsed.
fn assemble(body: &str) -> Vec<Value> {
    let mut blocks: std::collections::BTreeMap<u64, (String, String, String)> = Default::default();
    for data in body
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
    {
        let d: Value = serde_json::from_str(data).unwrap();
        let Some(i) = d["index"].as_u64() else {
            continue;
        };
        let e = blocks.entry(i).or_default();
        if d["type"] == "content_block_start" {
            e.0 = d["content_block"]["type"].as_str().unwrap().to_owned();
        }
        if let Some(t) = d["delta"]["text"].as_str() {
            e.1.push_str(t);
        }
        if let Some(t) = d["delta"]["partial_json"].as_str() {
            e.2.push_str(t);
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

fn upstream_bodies(gw: &Gateway) -> Vec<String> {
    gw.upstream()
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path_only().ends_with("/v1/messages"))
        .map(|r| String::from_utf8(r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn masks_are_stable_and_come_back_in_a_split_tool_call() {
    let gw = gateway();
    let secrets = secrets();
    let wanted: Vec<String> = secrets
        .iter()
        .map(|(base, _, value)| placeholder(base, value))
        .collect();
    // The model rewrites the file, repeating three placeholders, in
    // 5-byte `input_json_delta` fragments (every placeholder is cut).
    let rewritten = format!(
        "AWS_ACCESS_KEY_ID={}\nGITHUB_TOKEN={}\nOPS_EMAIL={}\nDEBUG=1\n",
        wanted[0], wanted[1], wanted[4]
    );
    gw.upstream()
        .script(Scripted::Sse(support::anthropic_tool_turn(
            &format!("I'll keep {} and add DEBUG.", wanted[0]),
            &[(
                "Write",
                json!({"file_path": "/app/.env", "content": rewritten}),
            )],
            5,
        )));
    let turn1 = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 256, "stream": true,
        "messages": [
            {"role": "user", "content": "Add DEBUG=1 to .env"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "/app/.env"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": env_file()}]}
        ]
    });
    let resp = post(&gw, &turn1).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = String::from_utf8(resp.bytes().await.unwrap().to_vec()).unwrap();

    // The upstream got every secret as its placeholder, none in clear.
    let sent = &upstream_bodies(&gw)[0];
    for ((_, _, value), p) in secrets.iter().zip(&wanted) {
        assert!(
            !sent.contains(value.as_str()),
            "{value} reached the upstream"
        );
        assert!(sent.contains(p.as_str()), "{p} missing upstream: {sent}");
    }
    // The client got the real values back: text and the split tool input.
    let blocks = assemble(&body);
    assert_eq!(
        blocks[0],
        Value::String(format!("I'll keep {} and add DEBUG.", secrets[0].2))
    );
    let written = blocks[1]["content"].as_str().unwrap();
    assert_eq!(
        written,
        format!(
            "AWS_ACCESS_KEY_ID={}\nGITHUB_TOKEN={}\nOPS_EMAIL={}\nDEBUG=1\n",
            secrets[0].2, secrets[1].2, secrets[4].2
        )
    );
    assert!(!body.contains(&wanted[0]) && !body.contains(&wanted[1]));

    // Turn 2: the history now holds the real values in the assistant's
    // text and tool input; the upstream sees the same placeholders again.
    gw.upstream().script(Scripted::Text("Done.".into()));
    let turn2 = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 256, "stream": true,
        "messages": [
            turn1["messages"][0], turn1["messages"][1], turn1["messages"][2],
            {"role": "assistant", "content": [
                {"type": "text", "text": blocks[0]},
                {"type": "tool_use", "id": "t2", "name": "Write", "input": blocks[1]}
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "File written"}]}
        ]
    });
    let resp = post(&gw, &turn2).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.bytes().await.unwrap();
    let sent2 = &upstream_bodies(&gw)[1];
    for ((_, _, value), p) in secrets.iter().zip(&wanted) {
        assert!(
            !sent2.contains(value.as_str()),
            "{value} reached the upstream on turn 2"
        );
        assert!(sent2.contains(p.as_str()), "{p} changed on turn 2");
    }
    let v: Value = serde_json::from_str(sent2).unwrap();
    assert_eq!(
        v["messages"][3]["content"][1]["input"]["content"], rewritten,
        "the tool input in the history is masked to what the model wrote"
    );
    // The history up to turn 1's answer is byte-identical to turn 1's, so
    // the provider's prompt cache keeps hitting.
    let v1: Value = serde_json::from_str(sent).unwrap();
    assert_eq!(v["messages"][2], v1["messages"][2]);
}

#[tokio::test]
async fn a_json_answer_is_restored_and_restore_false_leaves_it() {
    for restore in [true, false] {
        let guard = Guard::builtins(["AwsAccessKey"]).name("keys").mask();
        let guard = if restore { guard } else { guard.no_restore() };
        let gw = Gateway::launch(
            Policy::new()
                .mask_key_env(MASK_KEY_VAR)
                .backend(Backend::anthropic("anthropic").request_guard(guard)),
        )
        .env(MASK_KEY_VAR, MASK_KEY)
        .start();
        let key = secrets()[0].2.clone();
        let p = placeholder("<AWS_ACCESS_KEY>", &key);
        gw.upstream().script(Scripted::Text(format!(
            "Your key is {p}; <AWS_ACCESS_KEY:000000> is not one of yours."
        )));
        let body = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": format!("remember {key}")}]
        });
        let resp = post(&gw, &body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let v: Value = resp.json().await.unwrap();
        let text = v["content"][0]["text"].as_str().unwrap();
        let sent = &upstream_bodies(&gw)[0];
        assert!(!sent.contains(&key) && sent.contains(&p), "{sent}");
        if restore {
            assert_eq!(
                text,
                format!("Your key is {key}; <AWS_ACCESS_KEY:000000> is not one of yours.")
            );
        } else {
            assert!(text.starts_with(&format!("Your key is {p};")), "{text}");
        }
    }
}

/// The real CLI reads a `.env` and writes a copy from the model's answer:
/// the copy holds the real values; no request to the upstream held one.
#[test]
fn claude_code_writes_real_values_the_upstream_never_saw() {
    let gw = gateway();
    let work = tempfile::tempdir().unwrap();
    let env_path = work.path().join(".env");
    let copy_path = work.path().join("copy.env");
    std::fs::write(&env_path, env_file()).unwrap();
    let secrets = secrets();
    let masked: String = secrets
        .iter()
        .map(|(base, name, value)| format!("{name}={}\n", placeholder(base, value)))
        .collect();
    gw.upstream()
        .script(Scripted::Sse(support::anthropic_tool_turn(
            "Reading the file.",
            &[("Read", json!({"file_path": env_path.display().to_string()}))],
            9,
        )));
    gw.upstream()
        .script(Scripted::Sse(support::anthropic_tool_turn(
            "Writing the copy.",
            &[(
                "Write",
                json!({"file_path": copy_path.display().to_string(), "content": masked}),
            )],
            6,
        )));
    gw.upstream().script(Scripted::Text("Copied.".into()));
    let out = Claude::prompt("Copy .env to copy.env", CLIENT_KEY)
        .allowed_tools("Read,Write")
        .in_dir(work.path())
        .run(&gw);
    assert!(out.success, "claude failed: {out:?}");
    let copy = std::fs::read_to_string(&copy_path)
        .unwrap_or_else(|e| panic!("copy.env was not written ({e}): {out:?}"));
    assert_eq!(copy, env_file(), "the agent wrote the real values");
    let bodies = upstream_bodies(&gw);
    assert!(bodies.len() >= 3, "{} requests", bodies.len());
    for body in &bodies {
        for (_, _, value) in &secrets {
            assert!(
                !body.contains(value.as_str()),
                "{value} reached the upstream"
            );
        }
    }
    // The Read's result went up masked; the next turn's history held the
    // Write with the same placeholders the model had written.
    assert!(bodies[1].contains(&placeholder(secrets[1].0, &secrets[1].2)));
    assert!(bodies[2].contains(&placeholder(secrets[3].0, &secrets[3].2)));
}
