//! The test policy builder (tests/support/policy.rs) writes the YAML shapes
//! the tests used to paste, in both forms, and promptgate loads them.

mod support;

use promptgate::policy::LoadOptions;
use serde_yaml::Value;
use support::{Backend, Guard, Policy, Route, Scope, TokenUsage};

fn docs(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

/// Same documents as `pasted`, and a policy promptgate loads (secrets written).
fn assert_shape(built: &Policy, pasted: &str) {
    assert_eq!(
        built.documents(),
        docs(pasted),
        "built:\n{}",
        built.to_yaml()
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in built.secrets() {
        std::fs::create_dir_all(dir.path().join(&name)).unwrap();
        std::fs::write(dir.path().join(&name).join("Authorization"), value).unwrap();
    }
    let opts = LoadOptions {
        secrets_dir: Some(dir.path().to_owned()),
    };
    promptgate::policy::Policy::from_yaml(&built.to_yaml(), "built.yaml", &opts)
        .unwrap_or_else(|e| panic!("{e}\n{}", built.to_yaml()));
}

const REJECT_MSG: &str = "Rejected due to inappropriate content";

#[test]
fn native_form_with_routes_a_reject_guard_and_keys() {
    let built = Policy::new()
        .backend(Backend::anthropic("anthropic").key("anthropic-secret", "sk-a"))
        .backend(
            Backend::openai("openai")
                .route("/v1/chat/completions", Route::Completions)
                .route("*", Route::Passthrough)
                .request_guard(Guard::regex(["credit card"]).reject().message(REJECT_MSG))
                .token_usage(TokenUsage::All)
                .key("openai-secret", "sk-o"),
        );
    assert_shape(
        &built,
        r#"
backends:
- name: anthropic
  ai:
    provider:
      anthropic: {}
  policies:
    auth:
      secretRef:
        name: anthropic-secret
- name: openai
  ai:
    provider:
      openai: {}
  policies:
    ai:
      tokenUsage: All
      routes:
        '/v1/chat/completions': Completions
        '*': Passthrough
      promptGuard:
        request:
        - response:
            message: "Rejected due to inappropriate content"
          regex:
            action: Reject
            matches: ["credit card"]
    auth:
      secretRef:
        name: openai-secret
"#,
    );
    assert_eq!(
        built.secrets(),
        [
            ("anthropic-secret".to_owned(), "sk-a".to_owned()),
            ("openai-secret".to_owned(), "sk-o".to_owned())
        ]
    );
}

#[test]
fn named_mask_guards_request_and_response() {
    let built = Policy::new().backend(
        Backend::anthropic("anthropic")
            .model("claude-opus-4-6")
            .request_guard(Guard::regex(["project falcon"]).name("codename").mask())
            .request_guard(
                Guard::builtins(["CreditCard", "Email"])
                    .mask()
                    .scope([Scope::ToolOutput, Scope::LatestUserTurn]),
            )
            .response_guard(
                Guard::regex([r"\d{4}-\d{4}-\d{4}-\d{4}"])
                    .name("card")
                    .mask(),
            )
            .response_guard(
                Guard::regex(["launch code"])
                    .name("launch-codes")
                    .reject()
                    .message("The answer held launch codes")
                    .status(451)
                    .case_sensitive(true)
                    .normalize(false),
            )
            .secret_ref("anthropic-secret"),
    );
    assert_eq!(built.secrets(), []);
    assert_eq!(
        built.documents(),
        docs(
            r#"
backends:
- name: anthropic
  ai: {provider: {anthropic: {model: claude-opus-4-6}}}
  policies:
    ai:
      promptGuard:
        request:
        - name: codename
          regex: {action: Mask, matches: ["project falcon"]}
        - regex: {action: Mask, builtins: [CreditCard, Email]}
          scope: [ToolOutput, LatestUserTurn]
        response:
        - name: card
          regex: {action: Mask, matches: ["\\d{4}-\\d{4}-\\d{4}-\\d{4}"]}
        - name: launch-codes
          response: {message: "The answer held launch codes", statusCode: 451}
          regex: {action: Reject, matches: ["launch code"], caseSensitive: true, normalize: false}
    auth: {secretRef: {name: anthropic-secret}}
"#
        )
    );
}

#[test]
fn kubernetes_form_one_document_per_backend() {
    let built = Policy::new()
        .backend(
            Backend::anthropic("anthropic")
                .route("/v1/messages", Route::Messages)
                .route("*", Route::Passthrough)
                .request_guard(
                    Guard::regex(["credit card"])
                        .name("guard")
                        .reject()
                        .message("Rejected by policy"),
                )
                .key("anthropic-secret", "sk-a"),
        )
        .backend(Backend::openai("openai").key("openai-secret", "sk-o"))
        .kubernetes();
    assert_shape(
        &built,
        r#"
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: anthropic
spec:
  ai:
    provider:
      anthropic: {}
  policies:
    ai:
      routes:
        '/v1/messages': Messages
        '*': Passthrough
      promptGuard:
        request:
        - name: guard
          response:
            message: "Rejected by policy"
          regex:
            action: Reject
            matches: ["credit card"]
    auth:
      secretRef:
        name: anthropic-secret
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: openai
spec:
  ai: {provider: {openai: {}}}
  policies: {auth: {secretRef: {name: openai-secret}}}
"#,
    );
}

#[test]
fn external_guards_matches_and_env_keys() {
    let built = Policy::new()
        .backend(
            Backend::anthropic("team-a")
                .matching("api.example.com", "/team-a/")
                .request_guard(
                    Guard::external("http://127.0.0.1:7000")
                        .name("dlp")
                        .timeout("500ms")
                        .fail_open(),
                )
                .key_from_env("TEAM_A_KEY"),
        )
        .backend(
            Backend::anthropic("plain")
                .request_guard(Guard::external("http://127.0.0.1:7001").fail_closed()),
        );
    assert_eq!(
        built.documents(),
        docs(
            r#"
backends:
- name: team-a
  match: {host: api.example.com, pathPrefix: /team-a/}
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      promptGuard:
        request:
        - name: dlp
          external: {address: "http://127.0.0.1:7000", timeout: 500ms, failureMode: FailOpen}
    auth: {secretRef: {env: TEAM_A_KEY}}
- name: plain
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      promptGuard:
        request:
        - external: {address: "http://127.0.0.1:7001", failureMode: FailClosed}
"#
        )
    );
}
