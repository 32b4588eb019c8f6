//! The `promptgate` command line: check and eval, as a policy author uses them.

use std::path::Path;
use std::process::{Command, Output};

fn promptgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promptgate"))
        .args(args)
        .output()
        .expect("promptgate runs")
}

fn repo(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secrets/anthropic-secret");
        std::fs::create_dir_all(&secret).unwrap();
        std::fs::write(secret.join("Authorization"), "sk-ant-api03-cli-test\n").unwrap();
        Setup { dir }
    }
    fn secrets(&self) -> String {
        self.dir.path().join("secrets").display().to_string()
    }
    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_accepts_the_seed_manifest_and_the_default() {
    let s = Setup::new();
    let seed = repo("deploy/examples/seed.yaml");
    let o = promptgate(&["check", "--config", &seed, "--secrets-dir", &s.secrets()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok (1 backend(s): anthropic)"));
    let o = promptgate(&["check", "--config", &repo("policies/default.yaml")]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn check_names_file_place_and_problem() {
    let s = Setup::new();
    let cases = [
        (
            "typo.yaml",
            "backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n  policies:\n    ai:\n      promptGuard:\n        request:\n        - regex:\n            action: Reject\n            matchs: [\"credit card\"]\n",
            &["request[0].regex.matchs", "unknown field `matchs`", "line 10"][..],
        ),
        (
            "regex.yaml",
            "backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n  policies:\n    ai:\n      promptGuard:\n        request:\n        - regex: {action: Reject, matches: [\"credit (card\"]}\n",
            &["request[0].regex.matches[0]", "invalid regex"][..],
        ),
        (
            "secret.yaml",
            "backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n  policies:\n    auth: {secretRef: {name: no-such-secret}}\n",
            &["policies.auth.secretRef.name", "no-such-secret/Authorization"][..],
        ),
        (
            "route.yaml",
            "backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n  policies: {ai: {routes: {'/v1/messages': Message}}}\n",
            &["unknown variant `Message`"][..],
        ),
        ("yaml.yaml", "backends: [\n", &["not valid YAML"][..]),
    ];
    for (name, text, needles) in cases {
        let path = s.write(name, text);
        let o = promptgate(&["check", "--config", &path, "--secrets-dir", &s.secrets()]);
        assert!(!o.status.success(), "{name} passed");
        let err = stderr(&o);
        assert!(err.contains(&path), "{name}: no file name in {err}");
        for n in needles {
            assert!(err.contains(n), "{name}: `{n}` not in {err}");
        }
    }
    let o = promptgate(&["check", "--config", "/no/such/file.yaml"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot read the file"));
}

#[test]
fn eval_prints_the_decision() {
    let s = Setup::new();
    let seed = repo("deploy/examples/seed.yaml");
    let bad = s.write(
        "bad.json",
        r#"{"model":"m","messages":[{"role":"user","content":"What is a credit card"}]}"#,
    );
    let o = promptgate(&[
        "eval",
        "--config",
        &seed,
        "--secrets-dir",
        &s.secrets(),
        "--path",
        "/v1/messages?beta=true",
        &bad,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"]["decision"], "reject");
    assert_eq!(v["outcome"]["rule"], "request[0]");
    assert_eq!(v["outcome"]["location"], "messages[0].content");
    assert_eq!(v["response"]["status"], 403);
    assert_eq!(
        v["response"]["body"]["error"]["message"],
        "Rejected due to inappropriate content"
    );

    let fixture = repo("tests/fixtures/claude_code_first_turn.json");
    let o = promptgate(&[
        "eval",
        "--config",
        &seed,
        "--secrets-dir",
        &s.secrets(),
        "--path",
        "/v1/messages",
        "--backend",
        "anthropic",
        &fixture,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"]["decision"], "allow");
    assert_eq!(v["outcome"]["model_effective"], "claude-opus-4-6");
    assert_eq!(v["forwarded_body"]["changed"], true);
    assert_eq!(v["headers"]["set"][0], "x-api-key");
    // eval never prints the secret.
    assert!(!String::from_utf8_lossy(&o.stdout).contains("sk-ant-api03-cli-test"));

    let junk = s.write("junk.json", "{nope");
    let o = promptgate(&[
        "eval",
        "--config",
        &seed,
        "--secrets-dir",
        &s.secrets(),
        "--path",
        "/v1/messages",
        &junk,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["response"]["status"], 400);
    assert_eq!(v["outcome"]["decision"], "error");
}

#[test]
fn check_loads_a_gitleaks_config_beside_the_policy() {
    // The example: policy and gitleaks.toml side by side.
    let o = promptgate(&["check", "--config", &repo("deploy/examples/gitleaks.yaml")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok (1 backend(s): anthropic)"));

    // A rule that cannot run on a request: the load fails naming the YAML
    // place, the TOML file and the rule.
    let s = Setup::new();
    s.write(
        "leaks.toml",
        "title = \"team rules\"\n\n[[rules]]\nid = \"env-file-secret\"\nregex = '''SECRET=([A-Za-z0-9]{16})'''\npath = '''\\.env$'''\n",
    );
    let policy = s.write(
        "policy.yaml",
        "backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n  policies:\n    ai:\n      promptGuard:\n        request:\n        - regex: {gitleaks: leaks.toml}\n",
    );
    let o = promptgate(&["check", "--config", &policy]);
    assert!(!o.status.success());
    let err = stderr(&o);
    for needle in [
        policy.as_str(),
        "request[0].regex.gitleaks",
        "leaks.toml",
        "rule `env-file-secret`",
        "no file path",
    ] {
        assert!(err.contains(needle), "`{needle}` not in {err}");
    }

    // A TOML syntax error names the file and the line.
    s.write("leaks.toml", "[[rules]]\nid = \"a\"\nregex = = 'x'\n");
    let o = promptgate(&["check", "--config", &policy]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("leaks.toml") && err.contains("line 3"),
        "{err}"
    );

    // Fixed: the same policy loads.
    s.write(
        "leaks.toml",
        "[[rules]]\nid = \"env-file-secret\"\nregex = '''SECRET=([A-Za-z0-9]{16})'''\nkeywords = [\"secret=\"]\n",
    );
    let o = promptgate(&["check", "--config", &policy]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn eval_masks_with_gitleaks_rule_ids() {
    let s = Setup::new();
    let body = s.write(
        "body.json",
        r#"{"model":"m","messages":[{"role":"user","content":"deploy with ghp_Kq3ZxP9mW2vR7tY5uB8nC4dF6gH1jL0sA2eQ please"}]}"#,
    );
    let o = promptgate(&[
        "eval",
        "--config",
        &repo("deploy/examples/gitleaks.yaml"),
        "--path",
        "/v1/messages",
        &body,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"]["decision"], "mask", "{v}");
    assert_eq!(v["outcome"]["fired"][0]["rule"], "team-secrets");
    let out = v.to_string();
    assert!(out.contains("<GITHUB_PAT:"), "{out}");
    assert!(
        !out.contains("ghp_Kq3ZxP9mW2vR7tY5uB8nC4dF6gH1jL0sA2eQ"),
        "{out}"
    );
}

/// The policy in force: a reject on card talk.
const OLD_POLICY: &str = r#"
identity: {jwt: {}}
backends:
- name: anthropic
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      promptGuard:
        request:
        - name: no-card-talk
          regex: {action: Reject, matches: ["credit card"]}
"#;

/// The change under review: AWS keys masked, contractors' codenames
/// refused, the red team's codename masked, a shadow rule on SQL.
const NEW_POLICY: &str = r#"
identity: {jwt: {}}
backends:
- name: anthropic
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      promptGuard:
        request:
        - name: no-card-talk
          regex: {action: Reject, matches: ["credit card"]}
        - name: aws-keys
          regex: {action: Mask, builtins: [AwsAccessKey]}
        - name: contractor-codenames
          when: '"contractors" in identity.groups'
          regex: {action: Reject, matches: ["falcon"]}
        - name: red-codenames
          when: '"x-team" in request.headers && request.headers["x-team"] == "red"'
          regex: {action: Mask, matches: ["heron"]}
        - name: would-stop-sql
          regex: {action: Audit, matches: ["drop table"]}
"#;

fn user_body(text: &str) -> String {
    serde_json::json!({"model": "m", "messages": [{"role": "user", "content": text}]}).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The table's rows: (request, old, new, rule), header and summary apart.
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .skip(1)
        .filter(|l| !l.contains(" requests, "))
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn eval_baseline_lists_exactly_the_changed_decisions_of_a_folder() {
    let s = Setup::new();
    let old = s.write("old.yaml", OLD_POLICY);
    let new = s.write("new.yaml", NEW_POLICY);
    let set = s.dir.path().join("recorded");
    std::fs::create_dir(&set).unwrap();
    let key = format!("AKIA{}", "Q3RT7WZX2PLM5VNB");
    for (name, body) in [
        ("a-hello.json", user_body("hello there")),
        ("b-card.json", user_body("what is a credit card")),
        ("c-key.json", user_body(&format!("deploy with {key}"))),
        ("d-sql.json", user_body("please drop table users")),
        ("e-falcon.json", user_body("project falcon status")),
        ("f-junk.json", "{nope".to_owned()),
    ] {
        std::fs::write(set.join(name), body).unwrap();
    }
    let set = set.display().to_string();
    let o = promptgate(&["eval", "--config", &new, "--baseline", &old, &set]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("REQUEST"), "{out}");
    assert_eq!(
        rows(&out),
        [
            ["c-key.json", "allow", "mask 1", "aws-keys"],
            [
                "d-sql.json",
                "allow",
                "allow audit=would-stop-sql",
                "would-stop-sql"
            ],
        ],
        "{out}"
    );
    assert!(out.contains("6 requests, 2 differ"), "{out}");

    // A contractor's token on every request: the codename rule too.
    let claims = s.write(
        "claims.json",
        r#"{"sub": "c-1", "groups": ["contractors"]}"#,
    );
    let o = promptgate(&[
        "eval",
        "--config",
        &new,
        "--baseline",
        &old,
        "--claims",
        &claims,
        &set,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(rows(&out).len(), 3, "{out}");
    assert_eq!(
        rows(&out)[2],
        [
            "e-falcon.json",
            "allow",
            "reject 403",
            "contractor-codenames"
        ],
        "{out}"
    );

    // The same policy on both sides: nothing differs, exit 0.
    let o = promptgate(&["eval", "--config", &old, "--baseline", &old, &set]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim_end().lines().count(), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("6 requests, 0 differ"));
}

#[test]
fn eval_baseline_replays_jsonl_with_headers_and_claims() {
    let s = Setup::new();
    let old = s.write("old.yaml", OLD_POLICY);
    let new = s.write("new.yaml", NEW_POLICY);
    let body =
        |t: &str| serde_json::json!({"model": "m", "messages": [{"role": "user", "content": t}]});
    let lines = [
        serde_json::json!({"path": "/v1/messages", "claims": {"sub": "c-1", "groups": ["contractors"]}, "body": body("falcon plans")}),
        serde_json::json!({"path": "/v1/messages", "claims": {"sub": "s-1", "groups": ["staff"]}, "body": body("falcon plans")}),
        serde_json::json!({"path": "/v1/messages", "headers": {"X-Team": "red"}, "body": body("heron plans")}),
        serde_json::json!({"path": "/v1/messages", "headers": {"x-team": "blue"}, "body": body("heron plans")}),
        serde_json::json!({"path": "/v1/messages", "body": "{nope"}),
    ];
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    text.push('\n');
    let set = s.write("requests.jsonl", &text);
    let o = promptgate(&["eval", "--config", &new, "--baseline", &old, &set]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        rows(&out),
        [
            [
                "requests.jsonl:1",
                "allow",
                "reject 403",
                "contractor-codenames"
            ],
            ["requests.jsonl:3", "allow", "mask 1", "red-codenames"],
        ],
        "{out}"
    );
    assert!(out.contains("5 requests, 2 differ"), "{out}");

    // A malformed line is bad input: exit 2, the line named.
    let bad = s.write(
        "bad.jsonl",
        &format!(
            "{}\n{{\"path\": \"/v1/messages\", \"bdy\": {{}}}}\n",
            lines[0]
        ),
    );
    let o = promptgate(&["eval", "--config", &new, "--baseline", &old, &bad]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.jsonl:2"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    let o = promptgate(&[
        "eval",
        "--config",
        &new,
        "--baseline",
        "/no/such.yaml",
        &set,
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn eval_of_one_request_reads_headers_and_claims() {
    let s = Setup::new();
    let new = s.write("new.yaml", NEW_POLICY);
    let body = s.write("body.json", &user_body("falcon and heron"));
    let contractor = s.write("c.json", r#"{"sub": "c-1", "groups": ["contractors"]}"#);
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--config", &new, "--path", "/v1/messages"];
        args.extend_from_slice(extra);
        args.push(&body);
        let o = promptgate(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let v = eval(&[]);
    assert_eq!(v["outcome"]["decision"], "allow", "{v}");
    let v = eval(&["--claims", &contractor]);
    assert_eq!(v["outcome"]["rule"], "contractor-codenames", "{v}");
    assert_eq!(v["outcome"]["user"], "c-1", "{v}");
    let v = eval(&["--header", "X-Team: red"]);
    assert_eq!(v["outcome"]["decision"], "mask", "{v}");
    assert_eq!(v["outcome"]["rule"], "red-codenames", "{v}");
    let o = promptgate(&[
        "eval",
        "--config",
        &new,
        "--path",
        "/v1/messages",
        "--header",
        "nocolon",
        &body,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("NAME:VALUE"), "{}", stderr(&o));
}

#[test]
fn eval_of_a_recorded_response_follows_the_callers_rules() {
    let s = Setup::new();
    let policy = s.write(
        "p.yaml",
        r#"
identity: {jwt: {}}
backends:
- name: anthropic
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      promptGuard:
        response:
        - name: would-mask-codename
          regex: {action: Audit, matches: ["falcon"]}
      toolGuard:
        rules:
        - name: contractors-no-bash
          tools: [Bash]
          when: '"contractors" in identity.groups'
"#,
    );
    let answer = s.write(
        "answer.json",
        &serde_json::json!({"id": "m1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": "falcon: running it"},
                        {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 1}})
        .to_string(),
    );
    let contractor = s.write("c.json", r#"{"sub": "c-1", "groups": ["contractors"]}"#);
    let staff = s.write("s.json", r#"{"sub": "s-1", "groups": ["staff"]}"#);
    for (claims, action) in [(&contractor, "reject"), (&staff, "allow")] {
        let o = promptgate(&[
            "eval",
            "--config",
            &policy,
            "--path",
            "/v1/messages",
            "--claims",
            claims,
            "--response",
            &answer,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let r = &v["response_decision"];
        assert_eq!(r["tools"][0]["action"], action, "{v}");
        assert_eq!(r["audited"], 1, "{v}");
        assert_eq!(r["audited_rules"][0], "would-mask-codename", "{v}");
    }
}
