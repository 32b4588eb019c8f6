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
