//! Guards that load a gitleaks config (`regex.gitleaks: rules.toml`): its
//! rules become detectors named by rule id.
//!
//! The file is read as gitleaks reads it (TOML, keys in any case, as viper
//! reads them), and each rule is run as gitleaks runs it on text with no
//! file path and no commit (`gitleaks stdin`), which is what a request is:
//!
//! * `keywords`: the rule runs only on a text segment that holds one of
//!   them, up to case (gitleaks: the fragment, i.e. the file).
//! * `regex` (Go RE2, see [`go_regex`]), `secretGroup` (unset: the first
//!   non-empty group, as gitleaks), `entropy` (the secret's Shannon entropy
//!   must exceed it).
//! * allowlists, `[rules.allowlist]` and `[[rules.allowlists]]`, global
//!   `[allowlist]` and `[[allowlists]]` (with `targetRules`): `regexes`
//!   against `regexTarget` (`secret`, `match`, `line`), `stopwords` in the
//!   secret, `condition` `OR` / `AND`. `paths` and `commits` never hold on
//!   a request (as on gitleaks' stdin): under `OR` they add nothing, an
//!   `AND` allowlist that has them never allows. Either way a secret is
//!   masked where gitleaks might have skipped its file; never the reverse.
//! * `[extend] path` (relative to the file that extends, at most two files
//!   deep as in gitleaks) with `disabledRules`, merged as gitleaks merges.
//!
//! Refused, with the rule named: `[extend] useDefault` (promptgate does not
//! embed gitleaks' rule list; use `builtins: [Secrets]`), `[extend] url`,
//! a rule's `path` (a request has no file path: the rule would never run),
//! composite rules (`[[rules.required]]`, `skipReport`), unknown fields, and
//! any regex that does not compile or that Rust would read otherwise.
//! A `gitleaks:allow` comment in the text is not honoured: the text's
//! author is the one the guard is for.

mod detector;
pub mod go_regex;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

pub use detector::{go_lower, shannon_entropy, Allowlist, Detector, Keywords, RegexTarget, Secret};

/// Files deep an `[extend] path` chain may go (gitleaks' own limit: the
/// file, and two it extends in turn).
const MAX_EXTEND_DEPTH: usize = 2;

/// A load error: which file, which rule (when one is to blame), what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(id) => write!(f, "{}: rule `{id}`: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for LoadError {}

/// One compiled gitleaks rule.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    /// The regex in Rust syntax (for the engine's regex sets).
    pub source: String,
    pub regex: regex::Regex,
    /// The capture group masked; `None`: the whole match.
    pub secret_group: Option<usize>,
    pub detector: Arc<Detector>,
}

impl Rule {
    /// `<GENERIC_API_KEY>` for `generic-api-key`.
    pub fn placeholder(&self) -> String {
        crate::guard::placeholder::bare(&self.id)
    }

    /// What kind of secret a finding of this rule is (its id).
    pub fn kind(&self) -> &str {
        &self.id
    }
}

// The file as written. Keys are lower-cased before these are read (viper
// reads keys in any case), hence `rename_all = "lowercase"`.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
struct FileSpec {
    #[allow(dead_code)]
    title: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
    #[allow(dead_code)]
    minversion: Option<String>,
    extend: Option<ExtendSpec>,
    #[serde(default)]
    rules: Vec<toml::Value>,
    allowlist: Option<AllowlistSpec>,
    #[serde(default)]
    allowlists: Vec<GlobalAllowlistSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
struct ExtendSpec {
    #[serde(default)]
    usedefault: bool,
    path: Option<String>,
    url: Option<String>,
    #[serde(default)]
    disabledrules: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
struct RuleSpec {
    #[serde(default)]
    id: String,
    #[allow(dead_code)]
    description: Option<String>,
    regex: Option<String>,
    secretgroup: Option<i64>,
    entropy: Option<f64>,
    #[serde(default)]
    keywords: Vec<String>,
    path: Option<String>,
    #[allow(dead_code)]
    #[serde(default)]
    tags: Vec<String>,
    allowlist: Option<AllowlistSpec>,
    #[serde(default)]
    allowlists: Vec<AllowlistSpec>,
    required: Option<toml::Value>,
    #[serde(default)]
    skipreport: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
struct AllowlistSpec {
    #[allow(dead_code)]
    description: Option<String>,
    condition: Option<String>,
    #[serde(default)]
    commits: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    regextarget: Option<String>,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
}

/// `[[allowlists]]`: an allowlist, and the rules it is for (none: all).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
struct GlobalAllowlistSpec {
    #[serde(default)]
    targetrules: Vec<String>,
    description: Option<String>,
    condition: Option<String>,
    #[serde(default)]
    commits: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    regextarget: Option<String>,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
}

impl GlobalAllowlistSpec {
    fn split(self) -> (Vec<String>, AllowlistSpec) {
        (
            self.targetrules,
            AllowlistSpec {
                description: self.description,
                condition: self.condition,
                commits: self.commits,
                paths: self.paths,
                regextarget: self.regextarget,
                regexes: self.regexes,
                stopwords: self.stopwords,
            },
        )
    }
}

/// A rule as read, before extension merges and compilation.
#[derive(Debug)]
struct RawRule {
    id: String,
    regex: Option<String>,
    secret_group: Option<usize>,
    entropy: f64,
    keywords: Vec<String>,
    allowlists: Vec<Arc<Allowlist>>,
    /// The file it came from (errors name it).
    file: PathBuf,
}

/// What one file (and what it extends) yields.
#[derive(Debug, Default)]
struct Loaded {
    rules: Vec<RawRule>,
    global: Vec<Arc<Allowlist>>,
    targeted: Vec<(String, Arc<Allowlist>, PathBuf)>,
}

/// Loads a gitleaks config and compiles its rules, in file order (rules
/// of extended files after the file's own).
pub fn load(path: &Path) -> Result<Vec<Rule>, LoadError> {
    let loaded = load_file(path, 0)?;
    let Loaded {
        mut rules,
        global,
        targeted,
    } = loaded;
    for (id, list, file) in targeted {
        let Some(rule) = rules.iter_mut().find(|r| r.id == id) else {
            return Err(LoadError {
                file,
                rule: None,
                message: format!("[[allowlists]] targetRules: no rule `{id}`"),
            });
        };
        rule.allowlists.push(list);
    }
    if rules.is_empty() {
        return Err(LoadError {
            file: path.to_owned(),
            rule: None,
            message: "the config has no rules".into(),
        });
    }
    rules
        .into_iter()
        .map(|r| compile_rule(r, &global))
        .collect()
}

fn compile_rule(r: RawRule, global: &[Arc<Allowlist>]) -> Result<Rule, LoadError> {
    let fail = |message: String| LoadError {
        file: r.file.clone(),
        rule: Some(r.id.clone()),
        message,
    };
    let Some(go) = &r.regex else {
        return Err(fail("no `regex`".into()));
    };
    let (source, regex) = go_regex::compile(go).map_err(|e| fail(format!("regex {e}")))?;
    if regex.is_match("") {
        return Err(fail(
            "the regex matches the empty string, so it would match every request".into(),
        ));
    }
    let groups = regex.captures_len() - 1;
    let (secret_group, secret) = match r.secret_group {
        Some(g) if g > groups => {
            return Err(fail(format!(
                "secretGroup {g}, but the regex has {groups} capture group(s)"
            )))
        }
        Some(0) | None if groups == 0 => (None, Secret::AsGiven),
        Some(g) if g > 0 => (Some(g), Secret::AsGiven),
        // Unset: gitleaks takes the first non-empty group. A lone group
        // that always takes part and is never empty is that group.
        _ if groups == 1 && always_nonempty_group(&source) => (Some(1), Secret::AsGiven),
        _ => (None, Secret::FirstNonEmpty(regex.clone())),
    };
    let mut allowlists: Vec<Arc<Allowlist>> = global.to_vec();
    allowlists.extend(r.allowlists);
    let keywords = Keywords::new(r.keywords).map_err(&fail)?;
    let detector = Arc::new(Detector {
        id: r.id.clone(),
        keywords,
        entropy: r.entropy,
        allowlists,
        secret,
    });
    Ok(Rule {
        id: r.id,
        source,
        regex,
        secret_group,
        detector,
    })
}

/// Whether every match of the (Rust) regex has its one capture group
/// taking part, and non-empty.
fn always_nonempty_group(source: &str) -> bool {
    use regex_syntax::hir::{Hir, HirKind};
    fn group_min_len(h: &Hir) -> Option<usize> {
        match h.kind() {
            HirKind::Capture(c) => c.sub.properties().minimum_len(),
            HirKind::Concat(xs) => xs.iter().find_map(group_min_len),
            HirKind::Repetition(r) if r.min >= 1 => group_min_len(&r.sub),
            _ => None,
        }
    }
    let Ok(hir) = regex_syntax::parse(source) else {
        return false;
    };
    hir.properties().static_explicit_captures_len() == Some(1)
        && group_min_len(&hir).is_some_and(|n| n > 0)
}

/// Lower-cases every key of a TOML tree (viper's keys are case-blind).
fn lower_keys(v: toml::Value) -> toml::Value {
    match v {
        toml::Value::Table(t) => toml::Value::Table(
            t.into_iter()
                .map(|(k, v)| (k.to_lowercase(), lower_keys(v)))
                .collect(),
        ),
        toml::Value::Array(a) => toml::Value::Array(a.into_iter().map(lower_keys).collect()),
        other => other,
    }
}

/// `line L, column C` of byte `at` of `src`.
fn line_col(src: &str, at: usize) -> (usize, usize) {
    let at = at.min(src.len());
    let before = &src.as_bytes()[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = at
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    (line, col)
}

fn load_file(path: &Path, depth: usize) -> Result<Loaded, LoadError> {
    let err = |rule: Option<&str>, message: String| LoadError {
        file: path.to_owned(),
        rule: rule.map(str::to_owned),
        message,
    };
    let src = std::fs::read_to_string(path)
        .map_err(|e| err(None, format!("cannot read the gitleaks config: {e}")))?;
    let tree: toml::Table = toml::from_str(&src).map_err(|e| {
        let place = e.span().map(|s| {
            let (l, c) = line_col(&src, s.start);
            format!("line {l}, column {c}: ")
        });
        err(
            None,
            format!(
                "not valid TOML: {}{}",
                place.unwrap_or_default(),
                e.message().trim_end()
            ),
        )
    })?;
    let file: FileSpec = lower_keys(toml::Value::Table(tree))
        .try_into()
        .map_err(|e: toml::de::Error| err(None, e.message().trim_end().to_owned()))?;

    let mut out = Loaded::default();
    for (i, value) in file.rules.into_iter().enumerate() {
        let id_hint = value
            .get("id")
            .and_then(|v| v.as_str())
            .filter(|s| !s.trim().is_empty())
            .map_or_else(|| format!("rules[{i}]"), str::to_owned);
        let spec: RuleSpec = value
            .try_into()
            .map_err(|e: toml::de::Error| err(Some(&id_hint), e.message().trim_end().to_owned()))?;
        out.rules.push(read_rule(spec, &id_hint, path)?);
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = out.rules.iter().find(|r| !seen.insert(r.id.as_str())) {
        return Err(err(Some(&dup.id), "the id is used twice".into()));
    }

    match (file.allowlist, file.allowlists.is_empty()) {
        (Some(_), false) => {
            return Err(err(
                None,
                "[allowlist] (the old form) and [[allowlists]] cannot both be given".into(),
            ))
        }
        (Some(old), true) => out.global.push(Arc::new(
            read_allowlist(old).map_err(|m| err(None, format!("[allowlist]: {m}")))?,
        )),
        (None, _) => {}
    }
    for g in file.allowlists {
        let (targets, spec) = g.split();
        let list =
            Arc::new(read_allowlist(spec).map_err(|m| err(None, format!("[[allowlists]]: {m}")))?);
        if targets.is_empty() {
            out.global.push(list);
        } else {
            for id in targets {
                out.targeted.push((id, list.clone(), path.to_owned()));
            }
        }
    }

    if let Some(ext) = file.extend {
        if ext.usedefault {
            return Err(err(
                None,
                "[extend] useDefault: promptgate does not embed gitleaks' default rules; \
                 add `builtins: [Secrets]` to the guard for promptgate's secret detectors"
                    .into(),
            ));
        }
        if ext.url.is_some() {
            return Err(err(
                None,
                "[extend] url: configs are read from files only; use `path`".into(),
            ));
        }
        if let Some(p) = ext.path {
            if depth >= MAX_EXTEND_DEPTH {
                return Err(err(
                    None,
                    format!("[extend] path `{p}`: extends more than {MAX_EXTEND_DEPTH} files deep"),
                ));
            }
            let base_path = path.parent().unwrap_or(Path::new("")).join(&p);
            let base = load_file(&base_path, depth + 1)?;
            merge(&mut out, base, &ext.disabledrules, path)?;
        } else if !ext.disabledrules.is_empty() {
            return Err(err(
                None,
                "[extend] disabledRules without a `path` disables nothing".into(),
            ));
        }
    }
    Ok(out)
}

/// Merges the rules of an extended file into the file's own, as gitleaks
/// does: a rule of both keeps the base's fields the file leaves unset and
/// gains the file's keywords and allowlists.
fn merge(
    out: &mut Loaded,
    base: Loaded,
    disabled: &[String],
    path: &Path,
) -> Result<(), LoadError> {
    for id in disabled {
        if !base.rules.iter().any(|r| &r.id == id) {
            return Err(LoadError {
                file: path.to_owned(),
                rule: Some(id.clone()),
                message: "[extend] disabledRules: no such rule in the extended config".into(),
            });
        }
    }
    for mut b in base.rules {
        if disabled.contains(&b.id) {
            continue;
        }
        match out.rules.iter_mut().find(|r| r.id == b.id) {
            None => out.rules.push(b),
            Some(mine) => {
                if mine.regex.is_none() {
                    mine.regex = b.regex.take();
                    mine.file = b.file.clone();
                }
                // 0 is unset, as in gitleaks.
                if mine.secret_group.unwrap_or(0) == 0 {
                    mine.secret_group = b.secret_group;
                }
                if mine.entropy == 0.0 {
                    mine.entropy = b.entropy;
                }
                b.keywords.append(&mut mine.keywords);
                mine.keywords = b.keywords;
                b.allowlists.append(&mut mine.allowlists);
                mine.allowlists = b.allowlists;
            }
        }
    }
    out.global.extend(base.global);
    out.targeted.extend(base.targeted);
    Ok(())
}

fn read_rule(spec: RuleSpec, id: &str, file: &Path) -> Result<RawRule, LoadError> {
    let fail = |message: String| LoadError {
        file: file.to_owned(),
        rule: Some(id.to_owned()),
        message,
    };
    if spec.id.trim().is_empty() {
        return Err(fail("a rule needs an `id`".into()));
    }
    if let Some(p) = &spec.path {
        return Err(fail(format!(
            "`path = '{p}'` limits the rule to files, and a request has no file path, \
             so the rule could never run; drop `path` (or, for a rule of an extended \
             config, list it in `[extend] disabledRules`)"
        )));
    }
    if spec.required.is_some() {
        return Err(fail(
            "`[[rules.required]]` (composite rules) is not supported".into(),
        ));
    }
    if spec.skipreport {
        return Err(fail(
            "`skipReport` is for parts of composite rules, which are not supported".into(),
        ));
    }
    let secret_group = match spec.secretgroup {
        None => None,
        Some(g) if g < 0 => return Err(fail(format!("secretGroup {g} is negative"))),
        Some(g) => {
            Some(usize::try_from(g).map_err(|_| fail(format!("secretGroup {g} is too large")))?)
        }
    };
    let entropy = spec.entropy.unwrap_or(0.0);
    if !entropy.is_finite() || entropy < 0.0 {
        return Err(fail(format!(
            "entropy {entropy} is not a non-negative number"
        )));
    }
    if let Some(re) = &spec.regex {
        // Compiled again (with the merged fields) once extension is done;
        // a bad regex is reported against the file it is written in.
        go_regex::compile(re).map_err(|e| fail(format!("regex {e}")))?;
    }
    if spec.allowlist.is_some() && !spec.allowlists.is_empty() {
        return Err(fail(
            "[rules.allowlist] (the old form) and [[rules.allowlists]] cannot both be given".into(),
        ));
    }
    let mut allowlists = Vec::new();
    for (i, a) in spec
        .allowlist
        .into_iter()
        .chain(spec.allowlists)
        .enumerate()
    {
        allowlists.push(Arc::new(
            read_allowlist(a).map_err(|m| fail(format!("allowlists[{i}]: {m}")))?,
        ));
    }
    Ok(RawRule {
        id: spec.id,
        regex: spec.regex,
        secret_group,
        entropy,
        keywords: spec.keywords.iter().map(|k| go_lower(k)).collect(),
        allowlists,
        file: file.to_owned(),
    })
}

fn read_allowlist(a: AllowlistSpec) -> Result<Allowlist, String> {
    let and = match a.condition.as_deref().map(str::to_uppercase).as_deref() {
        None | Some("") | Some("OR") | Some("||") => false,
        Some("AND") | Some("&&") => true,
        Some(_) => {
            return Err(format!(
                "condition `{}`: expected `OR` or `AND`",
                a.condition.unwrap_or_default()
            ))
        }
    };
    let target = match a.regextarget.as_deref() {
        None | Some("") | Some("secret") => RegexTarget::Secret,
        Some("match") => RegexTarget::Match,
        Some("line") => RegexTarget::Line,
        Some(other) => {
            return Err(format!(
                "regexTarget `{other}`: expected `secret`, `match` or `line`"
            ))
        }
    };
    if a.commits.is_empty() && a.paths.is_empty() && a.regexes.is_empty() && a.stopwords.is_empty()
    {
        return Err("an allowlist needs at least one of commits, paths, regexes, stopwords".into());
    }
    for (i, p) in a.paths.iter().enumerate() {
        go_regex::compile(p).map_err(|e| format!("paths[{i}] {e}"))?;
    }
    let regexes = if a.regexes.is_empty() {
        None
    } else {
        let mut sources = Vec::with_capacity(a.regexes.len());
        for (i, r) in a.regexes.iter().enumerate() {
            sources.push(
                go_regex::compile(r)
                    .map_err(|e| format!("regexes[{i}] {e}"))?
                    .0,
            );
        }
        Some(
            regex::RegexSetBuilder::new(&sources)
                .size_limit(crate::guard::compile::patterns::REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("regexes do not compile together: {e}"))?,
        )
    };
    Ok(Allowlist {
        and,
        target,
        regexes,
        stopwords: a.stopwords.iter().map(|w| go_lower(w)).collect(),
        has_paths_or_commits: !a.paths.is_empty() || !a.commits.is_empty(),
    })
}

#[cfg(test)]
mod tests;
