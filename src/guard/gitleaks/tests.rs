use std::path::{Path, PathBuf};

use super::*;
use crate::guard::{mask_literal, Finding, GuardSet};
use crate::policy::config::GuardSpec;
use crate::provider::{parse_request, Dialect};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitleaks")
}

/// Writes `files` (name, TOML) to a fresh folder and loads the first.
fn load_files(files: &[(&str, &str)]) -> Result<Vec<Rule>, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    load(&dir.path().join(files[0].0))
}

fn load_str(toml: &str) -> Result<Vec<Rule>, LoadError> {
    load_files(&[("rules.toml", toml)])
}

fn refused(toml: &str) -> LoadError {
    load_str(toml).expect_err("the config loads, but it should not")
}

/// The findings of one rule on one text, as the secrets found.
fn find<'a>(rules: &'a [Rule], id: &str, text: &'a str) -> Vec<&'a str> {
    let r = rules.iter().find(|r| r.id == id).unwrap();
    let p = crate::guard::compile::patterns::Pattern {
        regex: r.regex.clone(),
        rule: 0,
        placeholder: r.placeholder(),
        check: crate::guard::compile::patterns::Check::Detector(r.detector.clone()),
        secret_group: r.secret_group,
    };
    p.findings(text).map(|range| &text[range]).collect()
}

#[test]
fn the_fixture_loads_with_its_extension() {
    let rules = load(&fixtures().join("gitleaks.toml")).unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "aws-access-token",
            "github-pat",
            "generic-api-key",
            "stripe-access-token",
            "slack-webhook-url",
            "private-key",
            "jwt",
            "internal-service-token",
            "db-connection-password",
            "acme-token",
            "deploy-hash",
            "npm-access-token",
        ],
        "own rules in order, then the extended file's; `pypi-upload-token` is disabled"
    );
    let by_id = |id: &str| rules.iter().find(|r| r.id == id).unwrap();
    assert_eq!(by_id("generic-api-key").placeholder(), "<GENERIC_API_KEY>");
    assert_eq!(by_id("generic-api-key").kind(), "generic-api-key");
    assert_eq!(by_id("generic-api-key").secret_group, Some(1));
    assert_eq!(
        by_id("aws-access-token").secret_group,
        Some(1),
        "a lone group that always takes part is the secret"
    );
    assert_eq!(by_id("github-pat").secret_group, None);
    assert!(matches!(
        by_id("acme-token").detector.secret,
        Secret::FirstNonEmpty(_)
    ));
    // Merged: the base's keyword joins the rule's own, the rule's regex wins.
    let generic = by_id("generic-api-key");
    assert!(generic
        .detector
        .keywords
        .words
        .contains(&"bearer".to_owned()));
    assert!(generic
        .detector
        .keywords
        .words
        .contains(&"passwd".to_owned()));
    assert!(!generic.source.contains("never-used-base-regex"));
    assert_eq!(generic.detector.entropy, 3.5);
    // Two global allowlists apply to every rule, the targeted one to one.
    assert_eq!(by_id("github-pat").detector.allowlists.len(), 1);
    assert_eq!(by_id("slack-webhook-url").detector.allowlists.len(), 2);
    assert_eq!(by_id("internal-service-token").detector.allowlists.len(), 3);
}

#[test]
fn secret_group_entropy_and_keywords_are_honoured() {
    let rules = load(&fixtures().join("gitleaks.toml")).unwrap();
    // secretGroup: only the value is the finding.
    assert_eq!(
        find(
            &rules,
            "generic-api-key",
            "api_key = \"Zx8q2Lm4Np7Rt1Vw6Ys3\"\n"
        ),
        ["Zx8q2Lm4Np7Rt1Vw6Ys3"]
    );
    // entropy: a repetitive token is no finding (gitleaks: must exceed 3).
    assert!(find(&rules, "github-pat", &format!("ghp_{}", "ab".repeat(18))).is_empty());
    assert_eq!(
        find(
            &rules,
            "github-pat",
            "ghp_Kq3ZxP9mW2vR7tY5uB8nC4dF6gH1jL0sA2eQ"
        )
        .len(),
        1
    );
    // keywords: the rule runs only on text that holds one, in any case.
    let hash = "9f86d081884c7d659a2feaa0c55ad015";
    assert!(find(&rules, "deploy-hash", &format!("build {hash} ok")).is_empty());
    assert_eq!(
        find(&rules, "deploy-hash", &format!("DEPLOYED build {hash} ok")),
        [hash]
    );
    assert_eq!(
        find(&rules, "deploy-hash", &format!("Déploy? no: DEPLOY {hash}")),
        [hash],
        "non-ASCII text is lower-cased as Go does"
    );
    // No secretGroup, two groups: the first non-empty one is judged (the
    // whole match is what is masked).
    assert_eq!(
        find(&rules, "acme-token", "x acme_test_Q9w8E7r6T5y4U3i2O1p0 y"),
        ["acme_test_Q9w8E7r6T5y4U3i2O1p0"]
    );
    assert!(
        find(&rules, "acme-token", "acme_live_aaaaaaaaaabbbbbbbbbb").is_empty(),
        "the group's entropy (1.0), not the match's, is what is judged"
    );
}

#[test]
fn allowlists_are_honoured() {
    let rules = load(&fixtures().join("gitleaks.toml")).unwrap();
    // Global regexes and stopwords (the secret as target).
    assert!(find(&rules, "aws-access-token", "AKIAIOSFODNN7EXAMPLE").is_empty());
    assert_eq!(
        find(&rules, "aws-access-token", "AKIAZ7XQ4R2MBW5KLP3N"),
        ["AKIAZ7XQ4R2MBW5KLP3N"]
    );
    // Rule stopwords (old `[rules.allowlist]` form), in any case.
    assert!(find(
        &rules,
        "generic-api-key",
        "password = \"ChangeMe-7Qx9Lp2Z\"\n"
    )
    .is_empty());
    // regexTarget = match: the match starts `sk_test_`.
    assert!(find(
        &rules,
        "stripe-access-token",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc "
    )
    .is_empty());
    assert_eq!(
        find(
            &rules,
            "stripe-access-token",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc "
        ),
        ["sk_live_4eC39HqLyjWDarjtT1zdp7dc"]
    );
    // regexTarget = line: only the line marked dummy is allowed.
    let text = "db: postgres://app:Xq7-Lp9!Zr2@db1\nold: mysql://app:Wn4+Kd8?Tb6@db2 # dummy\n";
    assert_eq!(
        find(&rules, "db-connection-password", text),
        ["Xq7-Lp9!Zr2"]
    );
    // condition = AND: both the regex and the stopword must hold.
    assert!(find(
        &rules,
        "internal-service-token",
        "pgsvc_00000000deadbeefcafe1234"
    )
    .is_empty());
    assert_eq!(
        find(
            &rules,
            "internal-service-token",
            "pgsvc_00000000beefcafe12345678"
        ),
        ["00000000beefcafe12345678"],
        "zeros without the stopword"
    );
    assert_eq!(
        find(
            &rules,
            "internal-service-token",
            "pgsvc_k3deadh6g7f8d9s0a1q2w3e4"
        ),
        ["k3deadh6g7f8d9s0a1q2w3e4"],
        "the stopword without the zeros"
    );
    // A global allowlist with targetRules applies to its rule only.
    let docs = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";
    assert!(find(&rules, "slack-webhook-url", docs).is_empty());
    let real = "https://hooks.slack.com/services/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";
    assert_eq!(find(&rules, "slack-webhook-url", real).len(), 1);
}

#[test]
fn paths_and_commits_never_allow_on_a_request() {
    let rules = load_str(
        r#"
[[rules]]
id = "k"
regex = '''k_[a-z0-9]{12}'''
[[rules.allowlists]]
paths = ['''.*''']
commits = ["abc"]
[[rules.allowlists]]
condition = "AND"
paths = ['''.*''']
regexes = ['''.*''']
"#,
    )
    .unwrap();
    assert_eq!(find(&rules, "k", "k_a1b2c3d4e5f6"), ["k_a1b2c3d4e5f6"]);
}

#[test]
fn keys_are_read_in_any_case_as_viper_does() {
    let rules = load_str(
        r#"
[[Rules]]
ID = "k"
Regex = '''k_([a-z0-9]{12})'''
SecretGroup = 1
[[Rules.AllowLists]]
RegexTarget = "match"
StopWords = ["zz"]
"#,
    )
    .unwrap();
    assert_eq!(rules[0].secret_group, Some(1));
    assert!(find(&rules, "k", "k_a1b2c3d4e5zz").is_empty());
}

#[test]
fn go_syntax_is_read_as_go_reads_it() {
    let rules = load_str(
        r#"
[[rules]]
id = "ascii-word"
regex = '''tok=(\w{6})\b'''
"#,
    )
    .unwrap();
    assert_eq!(find(&rules, "ascii-word", "tok=abc123 "), ["abc123"]);
    assert!(
        find(&rules, "ascii-word", "tok=abcdéf").is_empty(),
        "`\\w` is ASCII in Go"
    );
}

fn assert_refused(toml: &str, rule: Option<&str>, needles: &[&str]) {
    let e = refused(toml);
    assert_eq!(e.rule.as_deref(), rule, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("rules.toml"), "the file is named: {msg}");
    for n in needles {
        assert!(msg.contains(n), "`{n}` not in: {msg}");
    }
}

#[test]
fn constructs_that_cannot_be_honoured_are_refused_by_rule() {
    let rule = |body: &str| format!("[[rules]]\nid = \"r1\"\n{body}\n");
    assert_refused(
        &rule("regex = '''x_[a-z]{8}'''\npath = '''\\.env$'''"),
        Some("r1"),
        &["path", "no file path"],
    );
    assert_refused(&rule("path = '''\\.pem$'''"), Some("r1"), &["path"]);
    assert_refused(
        &rule("regex = '''x_[a-z]{8}'''\n[[rules.required]]\nid = \"r0\""),
        Some("r1"),
        &["composite"],
    );
    assert_refused(
        &rule("regex = '''x_[a-z]{8}'''\nskipReport = true"),
        Some("r1"),
        &["skipReport"],
    );
    assert_refused(
        &rule("regex = '''x_([a-z]{8}'''"),
        Some("r1"),
        &["regex", "does not compile"],
    );
    assert_refused(
        &rule("regex = '''x_[a-z&&b]{8}'''"),
        Some("r1"),
        &["&&", "escape"],
    );
    assert_refused(&rule("regex = '''\\Qa.b\\E'''"), Some("r1"), &["regex"]);
    assert_refused(
        &rule("regex = '''x_([a-z]{8})'''\nsecretGroup = 2"),
        Some("r1"),
        &["secretGroup 2", "1 capture group"],
    );
    assert_refused(
        &rule("regex = '''x_([a-z]{8})'''\nsecretGroup = -1"),
        Some("r1"),
        &["negative"],
    );
    assert_refused(&rule("regex = '''a*'''"), Some("r1"), &["empty string"]);
    assert_refused(
        &rule("regex = '''x_[a-z]{8}'''\nverify = true"),
        Some("r1"),
        &["unknown field `verify`"],
    );
    assert_refused(
        &rule("regex = '''x_[a-z]{8}'''\n[rules.allowlist]\nregexes = ['a']\n[[rules.allowlists]]\nregexes = ['b']"),
        Some("r1"),
        &["cannot both"],
    );
    assert_refused(
        &rule("regex = '''x_[a-z]{8}'''\n[[rules.allowlists]]\ndescription = \"nothing\""),
        Some("r1"),
        &["at least one of"],
    );
    assert_refused(
        &rule(
            "regex = '''x_[a-z]{8}'''\n[[rules.allowlists]]\ncondition = \"XOR\"\nregexes = ['a']",
        ),
        Some("r1"),
        &["condition `XOR`"],
    );
    assert_refused(
        &rule("regex = '''x_[a-z]{8}'''\n[[rules.allowlists]]\nregexTarget = \"file\"\nregexes = ['a']"),
        Some("r1"),
        &["regexTarget `file`"],
    );
    assert_refused(
        &rule("regex = '''x_[a-z]{8}'''\n[[rules.allowlists]]\nregexes = ['''(a''']"),
        Some("r1"),
        &["regexes[0]"],
    );
    assert_refused(
        &format!(
            "{}{}",
            rule("regex = '''x_[a-z]{8}'''"),
            rule("regex = '''y_[a-z]{8}'''")
        ),
        Some("r1"),
        &["used twice"],
    );
    assert_refused(
        "[[rules]]\nregex = '''x_[a-z]{8}'''\n",
        Some("rules[0]"),
        &["needs an `id`"],
    );
}

#[test]
fn whole_file_problems_are_refused() {
    let e = refused("title = \"t\"\n[[rules]]\nid = = \"r1\"\nregex = '''x_[a-z]{8}'''\n");
    let msg = e.to_string();
    assert!(
        msg.contains("rules.toml") && msg.contains("not valid TOML"),
        "{msg}"
    );
    assert!(msg.contains("line 3, column"), "the line is named: {msg}");

    assert_refused(
        "[extend]\nuseDefault = true\n",
        None,
        &["useDefault", "builtins: [Secrets]"],
    );
    assert_refused(
        "[extend]\nurl = \"https://example.com/gitleaks.toml\"\n",
        None,
        &["url"],
    );
    assert_refused("title = \"empty\"\n", None, &["no rules"]);
    assert_refused(
        "[[rules]]\nid = \"r1\"\nregex = '''x_[a-z]{8}'''\n[[allowlists]]\ntargetRules = [\"nope\"]\nregexes = ['a']\n",
        None,
        &["targetRules", "nope"],
    );
    assert_refused(
        "[[rules]]\nid = \"r1\"\nregex = '''x_[a-z]{8}'''\n[allowlist]\nregexes = ['a']\n[[allowlists]]\nregexes = ['b']\n",
        None,
        &["cannot both"],
    );
    assert_refused("colour = \"red\"\n", None, &["unknown field `colour`"]);
}

#[test]
fn extension_is_relative_limited_and_checked() {
    let base = "[[rules]]\nid = \"b1\"\nregex = '''b_[a-z0-9]{10}'''\n";
    // Relative to the extending file's folder.
    let rules = load_files(&[
        ("top.toml", "[extend]\npath = \"sub/base.toml\"\n"),
        ("sub", ""),
    ]);
    assert!(rules.is_err());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("top.toml"),
        "[extend]\npath = \"sub/mid.toml\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sub/mid.toml"),
        "[extend]\npath = \"base.toml\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("sub/base.toml"), base).unwrap();
    let rules = load(&dir.path().join("top.toml")).unwrap();
    assert_eq!(rules[0].id, "b1");
    // A third level is one too deep.
    std::fs::write(
        dir.path().join("sub/base.toml"),
        format!("[extend]\npath = \"deeper.toml\"\n{base}"),
    )
    .unwrap();
    std::fs::write(dir.path().join("sub/deeper.toml"), base).unwrap();
    let e = load(&dir.path().join("top.toml")).unwrap_err();
    assert!(e.to_string().contains("deep"), "{e}");
    // A cycle stops at the same limit.
    std::fs::write(
        dir.path().join("sub/mid.toml"),
        "[extend]\npath = \"../top.toml\"\n",
    )
    .unwrap();
    assert!(load(&dir.path().join("top.toml")).is_err());
    // disabledRules naming no rule of the base is a mistake worth naming.
    let e = load_files(&[
        (
            "top.toml",
            "[extend]\npath = \"base.toml\"\ndisabledRules = [\"b9\"]\n",
        ),
        ("base.toml", base),
    ])
    .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("b9"));
    // A base rule's error names the base file.
    let e = load_files(&[
        ("top.toml", "[extend]\npath = \"base.toml\"\n"),
        ("base.toml", "[[rules]]\nid = \"b1\"\nregex = '''(b'''\n"),
    ])
    .unwrap_err();
    assert!(e.file.ends_with("base.toml"), "{e}");
    assert_eq!(e.rule.as_deref(), Some("b1"));
}

#[test]
fn keywords_are_found_as_go_lower_cases() {
    let k = Keywords::new(vec!["key".into(), "clé".into()]).unwrap();
    assert!(k.found_in("a KeY here"));
    assert!(
        k.found_in("\u{212a}EY"),
        "the Kelvin sign lower-cases to `k`"
    );
    assert!(k.found_in("la CLÉ"));
    assert!(!k.found_in("kéy, ke y"));
    let k = Keywords::new(vec!["pid".into()]).unwrap();
    assert!(k.found_in("P\u{130}D"), "`İ` lower-cases to `i` in Go");
    assert!(Keywords::new(Vec::new()).unwrap().found_in("anything"));
}

#[test]
fn entropy_is_computed_as_gitleaks_does() {
    assert_eq!(shannon_entropy(""), 0.0);
    assert_eq!(shannon_entropy("aaaa"), 0.0);
    assert!((shannon_entropy("ab") - 1.0).abs() < 1e-12);
    assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-12);
    // Frequencies over bytes, like Go's len(): "éa" is 3 bytes, 2 chars.
    let e = shannon_entropy("éa");
    let f = 1.0f64 / 3.0;
    assert!((e - 2.0 * -(f * f.log2())).abs() < 1e-12);
}

// The engine: a guard loading the fixture masks a request body.

fn compile(yaml: &str) -> Result<GuardSet, crate::guard::GuardSpecError> {
    let specs: Vec<GuardSpec> = serde_yaml::from_str(yaml).unwrap();
    GuardSet::compile_in(&specs, false, Some(&fixtures()))
}

/// Every segment's text with its masks applied.
fn masked_body(set: &GuardSet, body: &str) -> Vec<String> {
    let parsed = parse_request(Dialect::Anthropic, body, set.kinds()).unwrap();
    let scan = set.scan(&parsed.segments, parsed.latest_user_message);
    assert!(scan.reject.is_none());
    parsed
        .segments
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let mine: Vec<&Finding> = scan.masks.iter().filter(|f| f.segment == i).collect();
            let mut out = Vec::new();
            let key = crate::guard::MaskKey::new(b"gitleaks tests' mask key").unwrap();
            let mut restore = crate::provider::restore::Restore::new();
            mask_literal(seg.literal, &mine, &key, &mut restore, &mut out);
            // What is masked is the subject here: placeholders shown bare.
            crate::guard::tests::untag(&crate::provider::literal::decode(
                std::str::from_utf8(&out).unwrap(),
            ))
        })
        .collect()
}

#[test]
fn a_request_body_is_masked_by_the_rules() {
    let set = compile("[{name: leaks, regex: {gitleaks: gitleaks.toml}}]").unwrap();
    let first = [
        "Deploy notes",
        "aws: AKIAZ7XQ4R2MBW5KLP3N and the docs' AKIAIOSFODNN7EXAMPLE",
        "mine: ghp_Kq3ZxP9mW2vR7tY5uB8nC4dF6gH1jL0sA2eQ and ghp_abababababababababababababababababab",
        "api_key = \"Zx8q2Lm4Np7Rt1Vw6Ys3\"",
        "password = \"changeme-7Qx9Lp2Z\"",
        "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc and sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "db postgres://app:Xq7-Lp9!Zr2@db1",
        "old mysql://app:Wn4+Kd8?Tb6@db2 # dummy",
        "svc pgsvc_k3j5h6g7f8d9s0a1q2w3e4r5 demo pgsvc_00000000deadbeefcafe1234",
        "acme_live_Q9w8E7r6T5y4U3i2O1p0 npm_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8",
        "pypi-AgEIcHlwaS5vcmcAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "build 9f86d081884c7d659a2feaa0c55ad015",
    ]
    .join("\n");
    let body = serde_json::json!({"messages": [
        {"role": "user", "content": first},
        {"role": "user", "content": "unrelated build 9f86d081884c7d659a2feaa0c55ad015"},
    ]})
    .to_string();
    let out = masked_body(&set, &body);
    let expected = [
        "Deploy notes",
        "aws: <AWS_ACCESS_TOKEN> and the docs' AKIAIOSFODNN7EXAMPLE",
        "mine: <GITHUB_PAT> and ghp_abababababababababababababababababab",
        "api_key = \"<GENERIC_API_KEY>\"",
        "password = \"changeme-7Qx9Lp2Z\"",
        "stripe <STRIPE_ACCESS_TOKEN> and sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "db postgres://app:<DB_CONNECTION_PASSWORD>@db1",
        "old mysql://app:Wn4+Kd8?Tb6@db2 # dummy",
        "svc pgsvc_<INTERNAL_SERVICE_TOKEN> demo pgsvc_00000000deadbeefcafe1234",
        "<ACME_TOKEN> <NPM_ACCESS_TOKEN>",
        "pypi-AgEIcHlwaS5vcmcAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "build <DEPLOY_HASH>",
    ]
    .join("\n");
    assert_eq!(out[0], expected);
    assert_eq!(
        out[1], "unrelated build 9f86d081884c7d659a2feaa0c55ad015",
        "no keyword in this message: the rule does not run"
    );
    // Findings name the guard; the placeholder names the rule.
    assert_eq!(set.rules()[0].name, "leaks");
}

#[test]
fn a_gitleaks_guard_may_also_list_matches_and_builtins() {
    let set = compile(
        "[{regex: {gitleaks: gitleaks.toml, builtins: [Email], matches: ['project falcon']}}]",
    )
    .unwrap();
    let body = serde_json::json!({"messages": [{"role": "user",
        "content": "project falcon: mail a@b.example.org the key ghp_Kq3ZxP9mW2vR7tY5uB8nC4dF6gH1jL0sA2eQ"}]})
    .to_string();
    let out = masked_body(&set, &body);
    assert_eq!(
        out[0],
        "<masked>: mail <EMAIL_ADDRESS> the key <GITHUB_PAT>"
    );
}

#[test]
fn response_guards_and_streams_see_gitleaks_rules() {
    let specs: Vec<GuardSpec> =
        serde_yaml::from_str("[{regex: {gitleaks: gitleaks.toml}}]").unwrap();
    let set = GuardSet::compile_in(&specs, true, Some(&fixtures())).unwrap();
    let text = "here: ghp_Kq3ZxP9mW2vR7tY5uB8nC4dF6gH1jL0sA2eQ.";
    let m = set.scan_text(text);
    assert_eq!(m.len(), 1);
    assert_eq!(
        &text[m[0].range.clone()],
        "ghp_Kq3ZxP9mW2vR7tY5uB8nC4dF6gH1jL0sA2eQ"
    );
    assert_eq!(m[0].placeholder, "<GITHUB_PAT>");
    assert!(set.window() >= 40, "the hold-back window covers the rules");
}

#[test]
fn a_guard_without_a_policy_folder_refuses_gitleaks() {
    let specs: Vec<GuardSpec> =
        serde_yaml::from_str("[{regex: {gitleaks: gitleaks.toml}}]").unwrap();
    let e = GuardSet::compile(&specs, false).unwrap_err();
    assert_eq!(e.field, "regex.gitleaks");
}

#[test]
fn rules_with_and_without_keywords_share_the_raw_view_with_raw_patterns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mixed.toml"),
        r#"
[[rules]]
id = "no-keywords"
regex = '''nk_[a-z0-9]{12}'''
[[rules]]
id = "with-keywords"
regex = '''wk_[a-z0-9]{12}'''
keywords = ["wk_"]
[[rules]]
id = "no-keywords-two"
regex = '''nt_[a-z0-9]{12}'''
"#,
    )
    .unwrap();
    let specs: Vec<GuardSpec> = serde_yaml::from_str(
        "[{name: raw, regex: {normalize: false, caseSensitive: true, matches: ['RAW-[0-9]{3}']}},
          {name: leaks, regex: {gitleaks: mixed.toml}},
          {name: stop, regex: {action: Reject, gitleaks: mixed.toml}, scope: [SystemPrompt]}]",
    )
    .unwrap();
    let set = GuardSet::compile_in(&specs, false, Some(dir.path())).unwrap();
    let body = serde_json::json!({"messages": [{"role": "user",
        "content": "a nt_a1b2c3d4e5f6 b wk_a1b2c3d4e5f6 c RAW-123 d nk_a1b2c3d4e5f6"}]})
    .to_string();
    let out = masked_body(&set, &body);
    assert_eq!(
        out[0],
        "a <NO_KEYWORDS_TWO> b <WITH_KEYWORDS> c <RAW> d <NO_KEYWORDS>"
    );
    // The same rules in a rejecting guard, scoped to the system prompt.
    let body = serde_json::json!({"system": "ops: wk_a1b2c3d4e5f6",
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let parsed = parse_request(Dialect::Anthropic, &body, set.kinds()).unwrap();
    let scan = set.scan(&parsed.segments, parsed.latest_user_message);
    let reject = scan.reject.expect("the system prompt's token rejects");
    assert_eq!(set.rules()[reject.rule].name, "stop");
    assert_eq!(reject.placeholder, "<WITH_KEYWORDS>");
}

mod masking {
    use super::*;
    use proptest::prelude::*;

    /// Text of words, tokens two rules find, and characters JSON escapes.
    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("tk_a1b2c3d4e5f6".to_owned()),
            Just("zz_q9w8e7r6t5y4".to_owned()),
            Just("\n".to_owned()),
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("é".to_owned()),
            Just("\u{1F600}".to_owned()),
            Just("\u{7}".to_owned()),
            Just(" ".to_owned()),
            "[a-z_0-9]{1,6}",
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Masks land on exactly the decoded text the rules find, whatever
        /// escapes surround them.
        #[test]
        fn masks_map_through_escapes(s in text()) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(
                dir.path().join("r.toml"),
                "[[rules]]\nid = \"tk\"\nregex = '''tk_[a-z0-9]{12}'''\nkeywords = [\"tk_\"]\n\
                 [[rules]]\nid = \"zz\"\nregex = '''zz_[a-z0-9]{12}'''\n",
            )
            .unwrap();
            let specs: Vec<GuardSpec> =
                serde_yaml::from_str("[{regex: {gitleaks: r.toml}}]").unwrap();
            let set = GuardSet::compile_in(&specs, false, Some(dir.path())).unwrap();
            let body = serde_json::json!({"messages": [{"role": "user", "content": s}]}).to_string();
            let out = masked_body(&set, &body);
            let want = regex::Regex::new("tk_[a-z0-9]{12}").unwrap().replace_all(&s, "<TK>");
            let want = regex::Regex::new("zz_[a-z0-9]{12}").unwrap().replace_all(&want, "<ZZ>");
            prop_assert_eq!(&out[0], &want);
        }
    }
}

#[test]
fn tool_rules_load_gitleaks_configs_too() {
    let spec: crate::policy::config::ToolGuardSpec = serde_yaml::from_str(
        "rules:\n- name: no-tokens-in-commands\n  tools: [Bash]\n  regex: {gitleaks: gitleaks.toml}\n",
    )
    .unwrap();
    let g = crate::guard::tool::ToolGuard::compile_in(spec, Some(&fixtures())).unwrap();
    let bash = |cmd: &str| g.decide("Bash", &serde_json::json!({ "command": cmd }).to_string());
    assert!(matches!(
        bash("curl -H 'Authorization: token ghp_Kq3ZxP9mW2vR7tY5uB8nC4dF6gH1jL0sA2eQ' https://api.github.com"),
        crate::guard::tool::ToolVerdict::Block { rule, .. } if rule == "no-tokens-in-commands"
    ));
    assert_eq!(bash("ls -la"), crate::guard::tool::ToolVerdict::Allow);
}
