use super::*;
use crate::provider::Dialect;

fn load(src: &str) -> Result<Policy, PolicyError> {
    Policy::from_yaml(src, "p.yaml", &LoadOptions::default())
}

fn secrets(name: &str, value: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(name)).unwrap();
    std::fs::write(dir.path().join(name).join("Authorization"), value).unwrap();
    dir
}

const SEED: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: anthropic-secret
stringData:
  Authorization: $ANTHROPIC_API_KEY
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: anthropic
  namespace: agentgateway-system
  labels: {app: agentgateway}
spec:
  ai:
    provider:
      anthropic:
        model: "claude-opus-4-6"
  policies:
    ai:
      routes:
        '/v1/messages': Messages
        '*': Passthrough
      promptGuard:
        request:
        - response:
            message: "Rejected due to inappropriate content"
          regex:
            action: Reject
            matches:
            - "credit card"
    auth:
      secretRef:
        name: anthropic-secret
"#;

#[test]
fn the_seed_manifest_loads_verbatim() {
    let dir = secrets("anthropic-secret", "sk-ant-api03-xyz\n");
    let p = Policy::from_yaml(
        SEED,
        "seed.yaml",
        &LoadOptions {
            secrets_dir: Some(dir.path().into()),
        },
    )
    .unwrap();
    assert_eq!(p.backends.len(), 1);
    let b = &p.backends[0];
    assert_eq!(b.name, "anthropic");
    assert_eq!(b.model.as_deref(), Some("claude-opus-4-6"));
    assert_eq!(b.routes.route_type("/v1/messages"), RouteType::Messages);
    assert_eq!(b.routes.route_type("/v1/models"), RouteType::Passthrough);
    assert_eq!(b.auth.as_ref().unwrap().value(), b"sk-ant-api03-xyz");
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(
        p.warnings[0].contains("skipped a `Secret` document"),
        "the Secret document is skipped with a note: {:?}",
        p.warnings
    );
    assert_eq!(p.warnings[1], crate::policy::NO_MASK_KEY_WARNING);
}

#[test]
fn missing_secret_names_the_place_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = Policy::from_yaml(
        SEED,
        "seed.yaml",
        &LoadOptions {
            secrets_dir: Some(dir.path().into()),
        },
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("seed.yaml: at document 2: spec.policies.auth.secretRef.name:"),
        "{msg}"
    );
    assert!(msg.contains("anthropic-secret/Authorization"), "{msg}");
    let e = load(SEED).unwrap_err().to_string();
    assert!(e.contains("--secrets-dir"), "{e}");
}

#[test]
fn unknown_fields_are_errors_with_their_path_and_line() {
    let src = "backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n  policies:\n    ai:\n      promptGuard:\n        request:\n        - regex: {action: Reject, matchs: [x]}\n";
    let e = load(src).unwrap_err();
    assert_eq!(e.origin, "p.yaml");
    assert_eq!(
        e.place,
        "backends[0].policies.ai.promptGuard.request[0].regex.matchs"
    );
    assert!(
        e.message.contains("unknown field `matchs`"),
        "{}",
        e.message
    );
    assert!(e.message.contains("line 8"), "{}", e.message);
}

#[test]
fn bad_regex_and_route_types_are_refused() {
    let e = load("backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n  policies: {ai: {promptGuard: {request: [{regex: {action: Reject, matches: ['(x']}}]}}}\n").unwrap_err();
    assert_eq!(
        e.place,
        "backends[0].policies.ai.promptGuard.request[0].regex.matches[0]"
    );
    assert!(e.message.contains("invalid regex"));

    let e = load("backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n  policies: {ai: {routes: {'/v1/messages': Mesages}}}\n").unwrap_err();
    assert!(e.message.contains("unknown variant `Mesages`"), "{e}");
    assert_eq!(e.place, "backends[0].policies.ai.routes./v1/messages");

    let e = load("backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n  policies: {ai: {routes: {'/v1/responses': Responses}}}\n").unwrap_err();
    assert!(e.message.contains("not supported"), "{e}");
}

#[test]
fn provider_and_backend_shape_errors() {
    let e = load("backends:\n- name: a\n  ai: {provider: {}}\n").unwrap_err();
    assert!(e.message.contains("name one provider"));
    let e = load("backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n- name: a\n  ai: {provider: {openai: {}}}\n").unwrap_err();
    assert!(e.message.contains("used twice"));
    assert!(load("backends: []\n")
        .unwrap_err()
        .message
        .contains("no backend"));
    assert!(load("hello: world\n")
        .unwrap_err()
        .message
        .contains("neither"));
    assert!(load("- a\n- b\n").is_err());
    assert!(load("backends: [\n").unwrap_err().message.contains("YAML"));
    let e = load(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayPolicy\nmetadata: {name: x}\n",
    )
    .unwrap_err();
    assert!(e.message.contains("AgentgatewayPolicy"));
}

#[test]
fn default_routes_cover_the_provider_apis() {
    let p = load("backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n").unwrap();
    let r = &p.backends[0].routes;
    assert_eq!(r.route_type("/v1/messages"), RouteType::Messages);
    assert_eq!(
        r.route_type("/v1/messages/count_tokens"),
        RouteType::AnthropicTokenCount
    );
    assert_eq!(
        r.route_type("/openai/v1/chat/completions"),
        RouteType::Completions
    );
    assert_eq!(r.route_type("/v1/models"), RouteType::Models);
    assert_eq!(r.route_type("/"), RouteType::Passthrough);
    // A user table without '*' keeps the built-in types for other paths.
    let p = load("backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n  policies: {ai: {routes: {'/custom/chat': Messages}}}\n").unwrap();
    let r = &p.backends[0].routes;
    assert_eq!(r.route_type("/custom/chat"), RouteType::Messages);
    assert_eq!(r.route_type("/v1/messages"), RouteType::Messages);
    assert_eq!(r.route_type("/other"), RouteType::Passthrough);
}

#[test]
fn selection_by_name_match_or_only_backend() {
    let p = load(
        "backends:\n- name: a\n  match: {pathPrefix: /a/}\n  ai: {provider: {anthropic: {}}}\n- name: o\n  match: {host: api.example}\n  ai: {provider: {openai: {}}}\n",
    )
    .unwrap();
    assert_eq!(p.select(Some("o"), "", "/a/x").unwrap().name, "o");
    assert_eq!(p.select(None, "", "/a/x").unwrap().name, "a");
    assert_eq!(p.select(None, "API.example:443", "/x").unwrap().name, "o");
    assert_eq!(
        p.select(None, "other", "/x").unwrap_err(),
        SelectError::NoMatch
    );
    assert_eq!(
        p.select(Some("zz"), "", "/").unwrap_err(),
        SelectError::UnknownName("zz".into())
    );
}

#[test]
fn the_embedded_default_loads() {
    let p = Policy::embedded_default(&LoadOptions::default()).unwrap();
    let names: Vec<_> = p.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["anthropic", "openai"]);
    for b in &p.backends {
        assert!(b.auth.is_none());
        let rules = b.request_guards.rules();
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].action,
            crate::guard::Action::Mask,
            "the default rejects nothing"
        );
    }
    // Secrets in a tool result are masked; nothing is rejected; the AWS
    // docs' example key is left alone.
    let key = format!("AKIA{}", "Q3RT7WZX2PLM5VNB");
    let body = serde_json::json!({"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": format!("key {key} card 4242 4242 4242 4242 credit card, docs AKIAIOSFODNN7EXAMPLE")}
    ]}]})
    .to_string();
    let b = &p.backends[0];
    let parsed =
        crate::provider::parse_request(Dialect::Anthropic, &body, b.request_guards.kinds())
            .unwrap();
    let scan = b
        .request_guards
        .scan(&parsed.segments, parsed.latest_user_message);
    assert!(scan.reject.is_none());
    let placeholders: Vec<&str> = scan.masks.iter().map(|m| m.placeholder.as_str()).collect();
    assert_eq!(placeholders, ["<AWS_ACCESS_KEY>", "<CREDIT_CARD>"]);
}

/// The default policy on real Claude Code traffic (its system prompt, 24
/// tool descriptions, a tool-result turn of source code) masks nothing.
#[test]
fn the_embedded_default_leaves_real_claude_code_traffic_alone() {
    let p = Policy::embedded_default(&LoadOptions::default()).unwrap();
    let b = &p.backends[0];
    for (name, body) in [
        (
            "first turn",
            include_str!("../../tests/fixtures/claude_code_first_turn.json"),
        ),
        (
            "tool result turn",
            include_str!("../../tests/fixtures/claude_code_tool_result_turn.json"),
        ),
    ] {
        let parsed =
            crate::provider::parse_request(Dialect::Anthropic, body, b.request_guards.kinds())
                .unwrap();
        let scan = b
            .request_guards
            .scan(&parsed.segments, parsed.latest_user_message);
        let found: Vec<String> = scan
            .masks
            .iter()
            .map(|m| {
                format!(
                    "{} at {}: {:?}",
                    m.placeholder,
                    parsed.segments[m.segment].location,
                    &parsed.segments[m.segment].literal[m.range.clone()]
                )
            })
            .collect();
        assert!(found.is_empty(), "{name}: {found:#?}");
    }
}

#[test]
fn the_shipped_examples_load() {
    let dir = secrets("anthropic-secret", "sk-ant-api03-x");
    for f in [
        "deploy/examples/seed.yaml",
        "deploy/examples/demo.yaml",
        "deploy/examples/budgets.yaml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        Policy::from_file(
            &path,
            &LoadOptions {
                secrets_dir: Some(dir.path().into()),
            },
        )
        .unwrap();
    }
}

#[test]
fn admin_listen_is_read_and_checked() {
    let p = load(
        "admin: {listen: 127.0.0.1:9090}\nbackends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n",
    )
    .unwrap();
    assert_eq!(p.admin_listen.as_deref(), Some("127.0.0.1:9090"));
    assert_eq!(
        load("backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n")
            .unwrap()
            .admin_listen,
        None
    );

    let e =
        load("admin: {listen: nine}\nbackends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n")
            .unwrap_err();
    assert_eq!(e.place, "admin.listen", "{e}");
    let e = load(
        "admin: {lisen: 127.0.0.1:9090}\nbackends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field `lisen`"), "{e}");
    assert!(e.place.starts_with("admin"), "{e}");
}

#[test]
fn token_usage_is_read_per_backend() {
    let p = load("backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n- name: b\n  ai: {provider: {anthropic: {}}}\n  policies: {ai: {tokenUsage: Off}}\n- name: c\n  ai: {provider: {openai: {}}}\n  policies: {ai: {tokenUsage: All}}\n").unwrap();
    let modes: Vec<_> = p.backends.iter().map(|b| b.token_usage).collect();
    assert_eq!(
        modes,
        [
            TokenUsageMode::Streams,
            TokenUsageMode::Off,
            TokenUsageMode::All
        ]
    );
    let e = load("backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n  policies: {ai: {tokenUsage: false}}\n").unwrap_err();
    assert_eq!(e.place, "backends[0].policies.ai.tokenUsage");
    assert!(e.message.contains("Streams"), "{e}");
}

/// A policy file in a folder with `rules/gitleaks.toml` beside it.
fn gitleaks_policy(toml: &str, guard: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/gitleaks.toml"), toml).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "backends:\n- name: a\n  ai: {{provider: {{anthropic: {{}}}}}}\n  policies:\n    ai:\n      promptGuard:\n        request:\n        - regex: {{action: Mask, builtins: [Email]}}\n        - {guard}\n"
        ),
    )
    .unwrap();
    (dir, policy)
}

#[test]
fn gitleaks_configs_are_read_beside_the_policy_file() {
    let rules =
        "[[rules]]\nid = \"acme-key\"\nregex = '''acme_[a-z0-9]{16}'''\nkeywords = [\"acme_\"]\n";
    let (_dir, policy) = gitleaks_policy(rules, "regex: {gitleaks: rules/gitleaks.toml}");
    // From another working folder: the path is the policy file's, not ours.
    let p = Policy::from_file(&policy, &LoadOptions::default()).unwrap();
    let guards = &p.backends[0].request_guards;
    let body = r#"{"messages":[{"role":"user","content":"use acme_0123456789abcdef now"}]}"#;
    let parsed = crate::provider::parse_request(Dialect::Anthropic, body, guards.kinds()).unwrap();
    let scan = guards.scan(&parsed.segments, None);
    assert_eq!(scan.masks.len(), 1);
    assert_eq!(scan.masks[0].placeholder, "<ACME_KEY>");
    assert_eq!(guards.rules()[scan.masks[0].rule].name, "request[1]");
}

#[test]
fn gitleaks_errors_name_the_yaml_place_the_file_and_the_rule() {
    let rules =
        "[[rules]]\nid = \"acme-key\"\nregex = '''acme_[a-z0-9]{16}'''\npath = '''\\.env$'''\n";
    let (_dir, policy) = gitleaks_policy(rules, "regex: {gitleaks: rules/gitleaks.toml}");
    let e = Policy::from_file(&policy, &LoadOptions::default()).unwrap_err();
    assert_eq!(
        e.place,
        "backends[0].policies.ai.promptGuard.request[1].regex.gitleaks"
    );
    assert!(e.message.contains("rules/gitleaks.toml"), "{}", e.message);
    assert!(e.message.contains("rule `acme-key`"), "{}", e.message);
    let (_dir, policy) = gitleaks_policy(rules, "regex: {gitleaks: rules/missing.toml}");
    let e = Policy::from_file(&policy, &LoadOptions::default()).unwrap_err();
    assert!(e.message.contains("missing.toml"), "{}", e.message);
    assert!(e.message.contains("cannot read"), "{}", e.message);
    // A typo next to `gitleaks` is still an unknown field.
    let (_dir, policy) = gitleaks_policy(rules, "regex: {gitleak: rules/gitleaks.toml}");
    let e = Policy::from_file(&policy, &LoadOptions::default()).unwrap_err();
    assert!(
        e.message.contains("unknown field `gitleak`"),
        "{}",
        e.message
    );
}

#[test]
fn conditions_and_shadow_mode_load_on_every_guard_and_backend_has_conditions() {
    let base = |ai: &str| {
        format!("backends: [{{name: a, ai: {{provider: {{anthropic: {{}}}}}}, policies: {{ai: {ai}}}}}]")
    };
    // None: no headers are kept for conditions.
    let p = load(&base(
        "{promptGuard: {response: [{regex: {action: Audit, matches: [x]}}]}}",
    ))
    .unwrap();
    assert!(!p.has_conditions);
    for conditional in [
        "{promptGuard: {request: [{when: 'true', regex: {matches: [x]}}]}}",
        "{promptGuard: {response: [{when: 'true', regex: {action: Audit, matches: [x]}}]}}",
        "{toolGuard: {rules: [{tools: [Bash], when: 'true', action: Audit}]}}",
        "{toolGuard: {deny: [WebFetch, {tools: [Bash], when: 'true'}]}}",
    ] {
        let p = load(&base(conditional)).unwrap_or_else(|e| panic!("{conditional}: {e}"));
        assert!(p.has_conditions, "{conditional}");
        assert!(p.backends[0].has_conditions(), "{conditional}");
    }
    let e = load(&base("{toolGuard: {deny: [{tools: [Bash], when: 'x.y'}]}}")).unwrap_err();
    assert!(e.place.ends_with("toolGuard.deny[0].when"), "{e}");
    assert!(e.message.contains("unknown variable `x`"), "{e}");
    let e = load(&base("{toolGuard: {deny: [[Bash]]}}")).unwrap_err();
    assert!(
        e.message
            .contains("a tool glob, or {tools: [globs], when: condition}"),
        "{e}"
    );
}

#[test]
fn tls_files_are_read_relative_to_the_policy_and_checked() {
    const B: &str = "backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n";
    let p = Policy::from_yaml_in(
        &format!("tls: {{certFile: tls/server.crt, keyFile: tls/server.key, clientCaFile: /etc/ca.crt}}\n{B}"),
        "p.yaml",
        Path::new("/etc/promptgate"),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(
        p.tls,
        Some(crate::tls::TlsFiles {
            cert: "/etc/promptgate/tls/server.crt".into(),
            key: "/etc/promptgate/tls/server.key".into(),
            client_ca: "/etc/ca.crt".into(),
        })
    );
    assert_eq!(load(B).unwrap().tls, None);

    // The same in the Kubernetes form.
    let p = load(
        "apiVersion: promptgate.dev/v1alpha1\nkind: PromptgateSettings\nspec:\n  tls: {certFile: c, keyFile: k, clientCaFile: ca}\n---\napiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata: {name: a}\nspec:\n  ai: {provider: {anthropic: {}}}\n",
    )
    .unwrap();
    assert_eq!(p.tls.unwrap().client_ca, PathBuf::from("ca"));

    let e = load(&format!("tls: {{certFile: c, keyFile: k}}\n{B}")).unwrap_err();
    assert_eq!(e.place, "tls", "{e}");
    assert!(e.message.contains("missing field `clientCaFile`"), "{e}");
    let e = load(&format!(
        "tls: {{certFile: c, keyFile: k, clientCaFile: ca, clientCA: x}}\n{B}"
    ))
    .unwrap_err();
    assert!(e.message.contains("unknown field `clientCA`"), "{e}");
    assert!(e.place.starts_with("tls"), "{e}");
    let e = load(&format!(
        "tls: {{certFile: '', keyFile: k, clientCaFile: ca}}\n{B}"
    ))
    .unwrap_err();
    assert_eq!(e.place, "tls.certFile", "{e}");
    assert!(e.message.contains("must name a PEM file"), "{e}");
    // `tls:` alone makes a native document (then asks for backends).
    let e = load("tls: {certFile: c, keyFile: k, clientCaFile: ca}\n").unwrap_err();
    assert!(e.message.contains("no backend"), "{e}");
}

/// A backend with `budgets:` (flow YAML).
fn budgets_policy(budgets: &str) -> String {
    format!("backends:\n- name: a\n  ai: {{provider: {{anthropic: {{}}}}}}\n  policies: {{ai: {{budgets: {budgets}}}}}\n")
}

#[test]
fn budgets_are_read_with_defaults() {
    let p = load(&budgets_policy(
        r#"{limits: [{name: daily, key: identity.user, tokens: 2000000, window: 24h}, {name: monthly-usd, key: identity.user, usd: 50, window: 30d}, {name: rpm, key: identity.user, requests: 60, window: 1m, when: '"contractors" in identity.groups'}]}"#,
    ))
    .unwrap();
    let b = p.backends[0].budgets.as_deref().unwrap();
    assert_eq!(b.store.kind(), "memory");
    assert_eq!(b.on_store_error, crate::budget::OnStoreError::Allow);
    assert_eq!(b.debit, crate::budget::Debit::InBand);
    assert_eq!(b.store_timeout, std::time::Duration::from_millis(50));
    let kinds: Vec<_> = b.limits.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        [
            crate::budget::LimitKind::Tokens(2_000_000),
            crate::budget::LimitKind::NanoUsd(50_000_000_000),
            crate::budget::LimitKind::Requests(60)
        ]
    );
    assert!(b.limits[2].when.is_some());
    assert!(p.has_conditions, "budget keys may read the request headers");
    let r = load(&budgets_policy(
        r#"{store: {redis: {url: "redis://127.0.0.1:6399", keyPrefix: "x:"}}, onStoreError: Reject, storeTimeout: 20ms, limits: [{name: a, key: identity.user, tokens: 1, window: 1m}]}"#,
    ))
    .unwrap();
    let b = r.backends[0].budgets.as_deref().unwrap();
    assert_eq!(b.store.kind(), "redis");
    assert_eq!(b.on_store_error, crate::budget::OnStoreError::Reject);
    let a = load(&budgets_policy(
        r#"{debit: AccessLog, limits: [{name: a, key: identity.user, tokens: 1, window: 1m}]}"#,
    ))
    .unwrap();
    assert_eq!(
        a.backends[0].budgets.as_deref().unwrap().debit,
        crate::budget::Debit::AccessLog
    );
    let bad = load(&budgets_policy(
        r#"{debit: Later, limits: [{name: a, key: identity.user, tokens: 1, window: 1m}]}"#,
    ))
    .unwrap_err()
    .to_string();
    assert!(bad.contains("debit") && bad.contains("AccessLog"), "{bad}");
}

#[test]
fn budget_errors_name_their_place() {
    let cases = [
        (
            r#"{limits: [{name: a, key: identity.user, window: 1m}]}"#,
            "backends[0].policies.ai.budgets.limits[0].name",
            "exactly one of `tokens`, `usd` or `requests`",
        ),
        (
            r#"{limits: [{name: a, key: identity.user, tokens: 5, requests: 5, window: 1m}]}"#,
            "backends[0].policies.ai.budgets.limits[0].name",
            "exactly one",
        ),
        (
            r#"{limits: [{name: a, key: identity.user, tokens: 5, window: 3w}]}"#,
            "backends[0].policies.ai.budgets.limits[0].window",
            "not a window",
        ),
        (
            r#"{limits: [{name: a, key: idenity.user, tokens: 5, window: 1m}]}"#,
            "backends[0].policies.ai.budgets.limits[0].key",
            "unknown variable `idenity`",
        ),
        (
            r#"{limits: [{name: a, key: identity.user, tokens: 5, window: 1m, when: 'x &&'}]}"#,
            "backends[0].policies.ai.budgets.limits[0].when",
            "not valid CEL",
        ),
        (
            r#"{limits: [{name: a, key: identity.user, tokens: 5, window: 1m}, {name: a, key: identity.user, tokens: 5, window: 1m}]}"#,
            "backends[0].policies.ai.budgets.limits[1].name",
            "named twice",
        ),
        (
            r#"{limits: [{name: "a b", key: identity.user, tokens: 5, window: 1m}]}"#,
            "backends[0].policies.ai.budgets.limits[0].name",
            "letters, digits",
        ),
        (
            r#"{limits: [{name: a, key: identity.user, usd: -1, window: 1m}]}"#,
            "backends[0].policies.ai.budgets.limits[0].usd",
            "not an amount",
        ),
        (
            r#"{limits: []}"#,
            "backends[0].policies.ai.budgets.limits",
            "at least one limit",
        ),
        (
            r#"{store: {redis: {url: "http://x"}}, limits: [{name: a, key: identity.user, tokens: 5, window: 1m}]}"#,
            "backends[0].policies.ai.budgets.store.redis.url",
            "not a Redis URL",
        ),
        (
            r#"{storeTimeout: 1m, limits: [{name: a, key: identity.user, tokens: 5, window: 1m}]}"#,
            "backends[0].policies.ai.budgets.storeTimeout",
            "at most 10s",
        ),
        (
            r#"{prices: {"gpt-[": {input: 1, output: 2}}, limits: [{name: a, key: identity.user, tokens: 5, window: 1m}]}"#,
            "backends[0].policies.ai.budgets.prices.gpt-[",
            "not a glob",
        ),
        (
            r#"{prices: {"x*": {input: -1, output: 2}}, limits: [{name: a, key: identity.user, tokens: 5, window: 1m}]}"#,
            "backends[0].policies.ai.budgets.prices.x*",
            "not a price",
        ),
        (
            r#"{onStoreError: Maybe, limits: [{name: a, key: identity.user, tokens: 5, window: 1m}]}"#,
            "backends[0].policies.ai.budgets.onStoreError",
            "unknown variant",
        ),
        (
            r#"{limits: [{name: a, key: identity.user, tokens: 5, window: 1m, burst: 3}]}"#,
            "backends[0].policies.ai.budgets.limits[0].burst",
            "unknown field `burst`",
        ),
    ];
    for (budgets, place, message) in cases {
        let e = load(&budgets_policy(budgets)).unwrap_err();
        assert_eq!(e.place, place, "{budgets}: {e}");
        assert!(e.message.contains(message), "{budgets}: {e}");
    }
}
