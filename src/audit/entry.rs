//! What one audit line records, built from a decision's records — never
//! text of the request or the response.

use serde_json::{json, Map, Value};

use crate::decision::{Outcome, ResponseRecord, Verdict};
use crate::provider::tool_call::{ToolDecision, ToolVerdict};

/// The request's identifiers, from telemetry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ids<'a> {
    pub request_id: Option<&'a str>,
    pub trace_id: Option<&'a str>,
}

fn base(ids: Ids<'_>, phase: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "time".into(),
        humantime::format_rfc3339_millis(std::time::SystemTime::now())
            .to_string()
            .into(),
    );
    m.insert("phase".into(), phase.into());
    put(&mut m, "request_id", ids.request_id);
    put(&mut m, "trace_id", ids.trace_id);
    m
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<&str>) {
    if let Some(v) = v {
        m.insert(k.into(), v.into());
    }
}

/// Who asked and where, from the request's outcome.
fn who(m: &mut Map<String, Value>, o: &Outcome) {
    put(m, "user", o.user.as_deref());
    put(m, "session", o.session.as_deref());
    put(m, "backend", o.backend.as_deref());
    put(m, "route", o.route);
}

/// A request decision's entry; `None` for a plain allow unless `allows`.
pub fn request(outcome: &Outcome, ids: Ids<'_>, allows: bool) -> Option<Value> {
    let plain_allow = outcome.decision == Verdict::Allow
        && outcome.masked == 0
        && outcome.tools_removed == 0
        && outcome.audited == 0;
    if plain_allow && !allows {
        return None;
    }
    let mut m = base(ids, "request");
    who(&mut m, outcome);
    put(
        &mut m,
        "model",
        outcome
            .model_effective
            .as_deref()
            .or(outcome.model_requested.as_deref()),
    );
    m.insert("decision".into(), outcome.decision.as_str().into());
    put(&mut m, "rule", outcome.rule.as_deref());
    if let Some(status) = outcome.status {
        m.insert("status".into(), status.into());
    }
    if outcome.masked > 0 {
        m.insert("masked".into(), outcome.masked.into());
    }
    if outcome.tools_removed > 0 {
        m.insert("tools_removed".into(), outcome.tools_removed.into());
    }
    if outcome.audited > 0 {
        m.insert("audited".into(), outcome.audited.into());
    }
    if !outcome.fired.is_empty() {
        let fired: Vec<Value> = outcome
            .fired
            .iter()
            .map(|f| json!({"rule": f.rule, "action": f.action.as_str(), "location": f.location}))
            .collect();
        m.insert("fired".into(), fired.into());
    }
    Some(Value::Object(m))
}

/// A response decision's entry; `None` when nothing happened to it (and
/// not `allows`).
pub fn response(
    r: &ResponseRecord,
    outcome: Option<&Outcome>,
    ids: Ids<'_>,
    allows: bool,
) -> Option<Value> {
    let eventful =
        r.decision != Verdict::Allow || r.masked > 0 || r.tools_blocked > 0 || r.audited > 0;
    if !eventful && !allows {
        return None;
    }
    let mut m = base(ids, "response");
    if let Some(o) = outcome {
        who(&mut m, o);
    }
    put(&mut m, "model", r.model.as_deref());
    m.insert("decision".into(), r.decision.as_str().into());
    put(&mut m, "rule", r.rule.as_deref());
    put(&mut m, "location", r.location.as_deref());
    for (k, n) in [
        ("masked", r.masked),
        ("tools_blocked", r.tools_blocked),
        ("restored", r.restored),
        ("audited", r.audited),
    ] {
        if n > 0 {
            m.insert(k.into(), n.into());
        }
    }
    if !r.audited_rules.is_empty() {
        // What shadow guards would have done: rule and action, like a
        // request's `fired`.
        let fired: Vec<Value> = r
            .audited_rules
            .iter()
            .map(|rule| json!({"rule": rule, "action": "audit"}))
            .collect();
        m.insert("fired".into(), fired.into());
    }
    Some(Value::Object(m))
}

/// A tool call's entry: blocked or hit in `Audit` mode (allows are not
/// recorded one by one).
pub fn tool(t: &ToolDecision, outcome: Option<&Outcome>, ids: Ids<'_>) -> Option<Value> {
    if t.verdict == ToolVerdict::Allow {
        return None;
    }
    let mut m = base(ids, "tool");
    if let Some(o) = outcome {
        who(&mut m, o);
    }
    m.insert("tool".into(), t.tool.clone().into());
    m.insert("index".into(), t.index.into());
    m.insert("action".into(), t.verdict.action().into());
    put(&mut m, "rule", t.verdict.rule());
    Some(Value::Object(m))
}
