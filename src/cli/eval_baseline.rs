//! `promptgate eval --config NEW --baseline OLD <DIR|FILE.jsonl>`: both
//! policies decide every recorded request, through the same entries the
//! server calls; the requests whose decision differs are printed as a
//! table with a summary line. Exit status 0 when none differ, 1 when some
//! do, 2 on bad input — a CI gate for policy changes.
//!
//! A folder holds request bodies, one per file (`--path`, `--header` and
//! `--claims` apply to each). A JSONL file holds one request a line:
//! `{"path", "headers", "claims", "body"}` (and optionally `method`,
//! `backend`); `body` is a JSON value (sent as its JSON text) or a string
//! (sent as it is).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;

use super::eval::{
    decide, parse_header, read_claims, runtime, Decided, EvalArgs, Recorded, DEFAULT_PATH,
};
use super::load;
use crate::decision::{Outcome, Verdict};
use crate::guard::Action;

/// One line of a JSONL set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    path: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    claims: Option<serde_json::Value>,
    body: Option<serde_json::Value>,
    method: Option<String>,
    backend: Option<String>,
}

/// What a decision comes to, as compared: everything but text (placeholder
/// tags differ between mask keys, so bodies are not compared).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    verdict: Verdict,
    status: Option<u16>,
    rule: Option<String>,
    masked: usize,
    tools_removed: usize,
    /// The model forwarded, when the policy overrides the request's.
    model: Option<String>,
    /// Shadow rules that fired (what they would have done).
    audited: Vec<String>,
}

impl Summary {
    fn of(d: Decided) -> Summary {
        let (outcome, status) = match d {
            Decided::Reply(reply) => {
                let status = Some(reply.status);
                (reply.outcome, status)
            }
            Decided::Forwarded { outcome, .. } => (outcome, None),
        };
        Summary::from_outcome(outcome, status)
    }

    fn from_outcome(o: Outcome, status: Option<u16>) -> Summary {
        let mut audited: Vec<String> = o
            .fired
            .iter()
            .filter(|f| f.action == Action::Audit)
            .map(|f| f.rule.clone())
            .collect();
        audited.dedup();
        Summary {
            verdict: o.decision,
            status,
            rule: o.rule,
            masked: o.masked,
            tools_removed: o.tools_removed,
            model: o
                .model_effective
                .filter(|m| o.model_requested.as_deref() != Some(m.as_str())),
            audited,
        }
    }

    /// `reject 403`, `mask 2`, `allow model=x audit=rule`.
    fn label(&self) -> String {
        let mut s = self.verdict.as_str().to_owned();
        match self.verdict {
            Verdict::Mask => s.push_str(&format!(" {}", self.masked)),
            _ => {
                if let Some(st) = self.status {
                    s.push_str(&format!(" {st}"));
                }
            }
        }
        if self.tools_removed > 0 {
            s.push_str(&format!(" tools-removed={}", self.tools_removed));
        }
        if let Some(m) = &self.model {
            s.push_str(&format!(" model={m}"));
        }
        if !self.audited.is_empty() {
            s.push_str(&format!(" audit={}", self.audited.join(",")));
        }
        s
    }
}

/// The rule column: what the new policy fired, else what the old one did.
fn rule_cell(old: &Summary, new: &Summary) -> String {
    match (&old.rule, &new.rule) {
        (Some(o), Some(n)) if o != n => format!("{o} -> {n}"),
        (_, Some(n)) => n.clone(),
        (Some(o), None) => o.clone(),
        (None, None) => new
            .audited
            .first()
            .or(old.audited.first())
            .cloned()
            .unwrap_or_else(|| "-".into()),
    }
}

/// The recorded requests of `set`, named `file` or `file:line`.
fn requests(set: &Path, args: &EvalArgs) -> Result<Vec<(String, Recorded)>, String> {
    let headers = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    let claims = args.claims.as_ref().map(read_claims).transpose()?;
    let base = Recorded {
        method: args.method.clone(),
        path: args.path.clone().unwrap_or_else(|| DEFAULT_PATH.to_owned()),
        backend: args.backend.clone(),
        headers,
        claims,
        body: Vec::new(),
    };
    let meta = std::fs::metadata(set).map_err(|e| format!("cannot read {}: {e}", set.display()))?;
    if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(set)
            .map_err(|e| format!("cannot read {}: {e}", set.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot read {}: {e}", set.display()))?;
        files.retain(|f| {
            f.is_file()
                && !f
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        });
        files.sort();
        files
            .into_iter()
            .map(|f| {
                let body =
                    std::fs::read(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
                let name = f
                    .file_name()
                    .map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into());
                Ok((
                    name,
                    Recorded {
                        body,
                        ..base.clone()
                    },
                ))
            })
            .collect()
    } else {
        let text = std::fs::read_to_string(set)
            .map_err(|e| format!("cannot read {}: {e}", set.display()))?;
        let file = set
            .file_name()
            .map_or_else(|| set.display().to_string(), |n| n.to_string_lossy().into());
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let name = format!("{file}:{}", i + 1);
            let line: Line = serde_json::from_str(line).map_err(|e| {
                format!(
                    "{}:{}: not a recorded request ({{\"path\", \"headers\", \"claims\", \"body\"}}): {e}",
                    set.display(),
                    i + 1
                )
            })?;
            out.push((
                name,
                recorded(line, &base).map_err(|e| format!("{}:{}: {e}", set.display(), i + 1))?,
            ));
        }
        Ok(out)
    }
}

/// A line's request; what it leaves out comes from the command line.
fn recorded(line: Line, base: &Recorded) -> Result<Recorded, String> {
    let mut headers = base.headers.clone();
    for (k, v) in line.headers {
        let (k, v) = parse_header(&format!("{k}:{v}"))?;
        headers.retain(|(name, _)| *name != k);
        headers.push((k, v));
    }
    if let Some(c) = &line.claims {
        if !c.is_object() {
            return Err("`claims` is a JSON object (a JWT payload)".into());
        }
    }
    let body = match line.body {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => s.into_bytes(),
        Some(v) => serde_json::to_vec(&v).map_err(|e| format!("`body`: {e}"))?,
    };
    Ok(Recorded {
        method: line.method.unwrap_or_else(|| base.method.clone()),
        path: line.path.unwrap_or_else(|| base.path.clone()),
        backend: line.backend.or_else(|| base.backend.clone()),
        headers,
        claims: line.claims.or_else(|| base.claims.clone()),
        body,
    })
}

pub(super) fn run(args: &EvalArgs, baseline: &Path) -> ExitCode {
    let fail = |e: String| {
        eprintln!("promptgate eval: {e}");
        ExitCode::from(2)
    };
    let Some(set) = &args.body else {
        return fail(
            "--baseline compares over recorded requests: give a folder of bodies or a JSONL file"
                .into(),
        );
    };
    if args.response.is_some() {
        return fail("--baseline compares request decisions; --response is for one request".into());
    }
    let load_one = |p: &Path| load(Some(&p.to_path_buf()), args.secrets_dir.clone());
    let (new, old) = match (load_one(&args.config), load_one(baseline)) {
        (Ok(n), Ok(o)) => (n, o),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    let requests = match requests(set, args) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if requests.iter().any(|(_, r)| r.claims.is_some()) {
        for (p, name) in [(&new, "--config"), (&old, "--baseline")] {
            if p.identity.is_none() {
                eprintln!("promptgate eval: note: the {name} policy has no `identity`: claims are not read under it (as in the server)");
            }
        }
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let rows: Vec<[String; 4]> = requests
        .iter()
        .filter_map(|(name, r)| {
            let before = Summary::of(decide(&old, r, &rt));
            let after = Summary::of(decide(&new, r, &rt));
            (before != after).then(|| {
                [
                    name.clone(),
                    before.label(),
                    after.label(),
                    rule_cell(&before, &after),
                ]
            })
        })
        .collect();
    print_table(&rows);
    println!(
        "{} requests, {} differ ({} against baseline {})",
        requests.len(),
        rows.len(),
        args.config.display(),
        baseline.display()
    );
    if rows.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_table(rows: &[[String; 4]]) {
    if rows.is_empty() {
        return;
    }
    let header = ["REQUEST", "OLD", "NEW", "RULE"].map(str::to_owned);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i == 3 {
                    cell.clone()
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        println!("{}", line.join("  "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{LoadOptions, Policy};

    fn summary(policy: &Policy, r: &Recorded) -> Summary {
        Summary::of(decide(policy, r, &runtime().unwrap()))
    }

    #[test]
    fn a_line_fills_what_the_command_line_leaves() {
        let base = Recorded {
            method: "POST".into(),
            path: DEFAULT_PATH.into(),
            headers: vec![("x-team".into(), "blue".into())],
            ..Recorded::default()
        };
        let line: Line = serde_json::from_str(
            r#"{"path": "/v1/chat/completions", "headers": {"X-Team": "red"}, "body": {"model": "m"}}"#,
        )
        .unwrap();
        let r = recorded(line, &base).unwrap();
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.headers, [("x-team".to_owned(), "red".to_owned())]);
        assert_eq!(r.body, br#"{"model":"m"}"#);
        let line: Line = serde_json::from_str(r#"{"body": "{not json"}"#).unwrap();
        assert_eq!(recorded(line, &base).unwrap().body, b"{not json");
        let line: Line = serde_json::from_str(r#"{"claims": ["x"]}"#).unwrap();
        assert!(recorded(line, &base).is_err());
        assert!(serde_json::from_str::<Line>(r#"{"pth": "/"}"#).is_err());
    }

    #[test]
    fn claims_reach_conditions_as_the_server_reads_them() {
        let yaml = r#"
identity: {jwt: {}}
backends:
- name: a
  ai: {provider: {anthropic: {}}}
  policies:
    ai:
      promptGuard:
        request:
        - name: contractors
          when: '"contractors" in identity.groups && identity.claims.level == 2'
          regex: {action: Reject, matches: ["falcon"]}
"#;
        let p = Policy::from_yaml(yaml, "p.yaml", &LoadOptions::default()).unwrap();
        let body = br#"{"model":"m","messages":[{"role":"user","content":"falcon"}]}"#.to_vec();
        let r = |claims: serde_json::Value| Recorded {
            method: "POST".into(),
            path: DEFAULT_PATH.into(),
            claims: Some(claims),
            body: body.clone(),
            ..Recorded::default()
        };
        // `level: 2.0` reads as 2, as Envoy's doubles do.
        let s = summary(
            &p,
            &r(serde_json::json!({"sub": "c", "groups": ["contractors"], "level": 2.0})),
        );
        assert_eq!((s.verdict, s.status), (Verdict::Reject, Some(403)));
        assert_eq!(s.label(), "reject 403");
        let s = summary(
            &p,
            &r(serde_json::json!({"sub": "s", "groups": ["staff"], "level": 2})),
        );
        assert_eq!(s.verdict, Verdict::Allow);
        assert_eq!(s.label(), "allow");
    }
}
