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

/// Eleven kinds of secret in one `.env`, built from pieces at run time.
fn pack_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", format!("AKIA{}", "Q3RT7WZX2PLM5VNB")),
        ("AWS_SECRET_ACCESS_KEY", format!("{}/{}", "wK7pQ2rX9tL4mZ8vB3nC6yH1", "dF5gJ0sA2eR7uI4oP9w")),
        ("STRIPE_SECRET_KEY", format!("sk_live_{}", "51Hq8ZxLm2Np7Rt1Vw6Ys3Kd9Fb4Gc0Je5Ua8Ii2Oo7Pl3Qr6St1Uv9Wx4Yz0Ab5Cd8Ef2Gh7Ij3Kl6Mn1Op4Qr9St0Uv5Wx")),
        ("GITHUB_TOKEN", format!("ghp_{}", "R8f2Kq9ZtW3xLm7Np4Vb6Hc1Jd5Gs0Ya2Ue8")),
        ("GITLAB_TOKEN", format!("glpat-{}", "Xq7Lp9Zr2Wn4Kd8Tb6Vm")),
        ("SLACK_BOT_TOKEN", format!("xoxb-{}-{}-{}", "294501773412", "2945017734128", "Tq9Lm2Xw7Zp4Vn8Kr3HbY6cD")),
        ("SENDGRID_API_KEY", format!("SG.{}.{}", "Xk9pQ2rL7tW4mZ8vB3nC6y", "H1dF5gJ0sA2eR7uI4oP9wK3xM6qT8zV1bN5cL2hY7jG")),
        ("DATABASE_URL", format!("postgres://app:{}@db.internal:5432/app", "Wn4Kd8Tb6Vm2Xq7Lp9Zr")),
        ("DB_PASSWORD", ["h7Rq2Zx9", "Lm4Wp8Kt3N"].concat()),
        ("HF_TOKEN", format!("hf_{}", "QxLmZpWnKdTbVmRsYcHjGfDsAqWeRtYuIoPl")),
        ("ANTHROPIC_API_KEY", format!("sk-ant-api03-{}", "Zq7Xw2Lp9Vn4Mk8Jr3Ht6Bd1Fs5Gc0Ya_Ue-Io7Pl2")),
    ]
}

fn secrets_gateway() -> Gateway {
    Gateway::launch(
        Policy::new().mask_key_env(MASK_KEY_VAR).backend(
            Backend::anthropic("anthropic")
                .request_guard(Guard::builtins(["Secrets"]).name("secrets").mask()),
        ),
    )
    .env(MASK_KEY_VAR, MASK_KEY)
    .start()
}

/// The tagged placeholders in `text`, in order.
fn placeholders_in(text: &str) -> Vec<String> {
    regex::Regex::new(r"<[A-Z0-9_]+:[0-9a-f]{6}>")
        .unwrap()
        .find_iter(text)
        .map(|m| m.as_str().to_owned())
        .collect()
}

fn turn(history: Vec<Value>) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": true, "messages": history})
}

#[tokio::test]
async fn a_dot_env_is_masked_stably_and_comes_back_in_a_split_tool_call() {
    let gw = secrets_gateway();
    let env = pack_env();
    let env_file: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let read = vec![
        json!({"role": "user", "content": "Add DEBUG=1 to .env"}),
        json!({"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "/app/.env"}}]}),
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": env_file}]}),
    ];

    // Turn 1: every value reaches the upstream as a placeholder of its own.
    gw.upstream().script(Scripted::Text("Reading it.".into()));
    let resp = post(&gw, &turn(read.clone())).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.bytes().await.unwrap();
    let sent = upstream_bodies(&gw)[0].clone();
    for (name, value) in &env {
        assert!(
            !sent.contains(value.as_str()),
            "{name} reached the upstream"
        );
    }
    let v: Value = serde_json::from_str(&sent).unwrap();
    let masked_env = v["messages"][2]["content"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let tags = placeholders_in(&masked_env);
    assert_eq!(
        tags.len(),
        env.len(),
        "one placeholder per value: {masked_env}"
    );
    let distinct: std::collections::HashSet<&String> = tags.iter().collect();
    assert_eq!(
        distinct.len(),
        env.len(),
        "different values, different tags"
    );

    // Turn 2: the model rewrites the file repeating three placeholders, in
    // 5-byte `input_json_delta` fragments (each placeholder is cut).
    let rewritten = format!(
        "AWS_SECRET_ACCESS_KEY={}\nSTRIPE_SECRET_KEY={}\nDB_PASSWORD={}\nDEBUG=1\n",
        tags[1], tags[2], tags[8]
    );
    gw.upstream()
        .script(Scripted::Sse(support::anthropic_tool_turn(
            &format!("Keeping {} as it is.", tags[0]),
            &[(
                "Write",
                json!({"file_path": "/app/.env", "content": rewritten}),
            )],
            5,
        )));
    let resp = post(&gw, &turn(read.clone())).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = String::from_utf8(resp.bytes().await.unwrap().to_vec()).unwrap();
    // The same placeholders on the next turn (the history is masked the
    // same way, so the provider's prompt cache keeps hitting).
    let sent2 = upstream_bodies(&gw)[1].clone();
    assert_eq!(sent2, sent, "the same request masks byte for byte the same");
    // The client got the values back.
    let blocks = assemble(&body);
    assert_eq!(
        blocks[0],
        Value::String(format!("Keeping {} as it is.", env[0].1))
    );
    assert_eq!(
        blocks[1]["content"],
        format!(
            "AWS_SECRET_ACCESS_KEY={}\nSTRIPE_SECRET_KEY={}\nDB_PASSWORD={}\nDEBUG=1\n",
            env[1].1, env[2].1, env[8].1
        )
    );
    for t in &tags {
        assert!(!body.contains(t.as_str()), "{t} reached the client");
    }

    // Turn 3: the history now holds the real values in the assistant's
    // text and tool input; the upstream sees the same placeholders again.
    gw.upstream().script(Scripted::Text("Done.".into()));
    let mut history = read.clone();
    history.push(json!({"role": "assistant", "content": [
        {"type": "text", "text": blocks[0]},
        {"type": "tool_use", "id": "t2", "name": "Write", "input": blocks[1]}
    ]}));
    history.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "File written"}]}));
    let resp = post(&gw, &turn(history)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.bytes().await.unwrap();
    let sent3 = upstream_bodies(&gw)[2].clone();
    for (name, value) in &env {
        assert!(
            !sent3.contains(value.as_str()),
            "{name} reached the upstream on turn 3"
        );
    }
    let v3: Value = serde_json::from_str(&sent3).unwrap();
    assert_eq!(
        v3["messages"][2], v["messages"][2],
        "the tool result masks as before"
    );
    assert_eq!(
        v3["messages"][3]["content"][1]["input"]["content"], rewritten,
        "the restored tool input is masked back to what the model wrote"
    );
    assert_eq!(
        v3["messages"][3]["content"][0]["text"],
        format!("Keeping {} as it is.", tags[0])
    );
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
