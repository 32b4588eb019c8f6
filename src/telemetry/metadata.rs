//! Envoy dynamic metadata under the `promptgate` namespace.
//!
//! Returned in `ProcessingResponse.dynamic_metadata`; Envoy merges each
//! answer's fields into the namespace (StreamInfo merges structs), so the
//! decision (request side) and the token counts (response side) can arrive
//! in different answers and still end up in one access-log entry. The filter
//! must list `promptgate` in `metadata_options.receiving_namespaces.untyped`.
//! Never prompt text, matched text or secrets.

use std::collections::BTreeMap;

use envoy_types::pb::google::protobuf::{value, Struct, Value};

use crate::decision::{Outcome, ResponseRecord};
use crate::provider::Usage;

/// Namespace of promptgate's dynamic metadata in Envoy.
pub const METADATA_NAMESPACE: &str = "promptgate";

/// Builds `{"promptgate": {...}}` from field/value pairs, skipping `None`s.
struct Fields(BTreeMap<String, Value>);

impl Fields {
    fn new() -> Fields {
        Fields(BTreeMap::new())
    }

    fn put(&mut self, key: &str, kind: Option<value::Kind>) {
        if let Some(kind) = kind {
            self.0.insert(key.to_owned(), Value { kind: Some(kind) });
        }
    }

    fn str(&mut self, key: &str, v: Option<&str>) {
        self.put(key, v.map(|v| value::Kind::StringValue(v.to_owned())));
    }

    fn num(&mut self, key: &str, v: Option<u64>) {
        self.put(key, v.map(|v| value::Kind::NumberValue(v as f64)));
    }

    fn bool(&mut self, key: &str, v: bool) {
        self.put(key, Some(value::Kind::BoolValue(v)));
    }

    fn into_namespace(self) -> Struct {
        let inner = Struct {
            fields: self.0.into_iter().collect(),
        };
        Struct {
            fields: [(
                METADATA_NAMESPACE.to_owned(),
                Value {
                    kind: Some(value::Kind::StructValue(inner)),
                },
            )]
            .into_iter()
            .collect(),
        }
    }
}

/// The decision: `decision, backend, route, rule, location, status,
/// model_requested, model_effective, body_changed, auth_injected` (and
/// `masked` when a guard masked something).
pub fn decision_metadata(outcome: &Outcome) -> Struct {
    let mut f = Fields::new();
    f.str("decision", Some(outcome.decision.as_str()));
    f.str("backend", outcome.backend.as_deref());
    f.str("route", outcome.route);
    f.str("rule", outcome.rule.as_deref());
    f.str("location", outcome.location.as_deref());
    f.num("status", outcome.status.map(u64::from));
    f.str("model_requested", outcome.model_requested.as_deref());
    f.str("model_effective", outcome.model_effective.as_deref());
    f.bool("body_changed", outcome.body_changed);
    f.bool("auth_injected", outcome.auth_injected);
    if outcome.masked > 0 {
        f.num("masked", Some(outcome.masked as u64));
    }
    if outcome.tools_removed > 0 {
        f.num("tools_removed", Some(outcome.tools_removed as u64));
    }
    if outcome.audited > 0 {
        f.num("audited", Some(outcome.audited as u64));
    }
    // Who asked, for Envoy's access log.
    f.str("user", outcome.user.as_deref());
    f.str("session", outcome.session.as_deref());
    f.into_namespace()
}

/// Token counts: `input_tokens` (all input, cached included, as in the
/// OpenTelemetry GenAI conventions), `output_tokens`,
/// `cache_read_input_tokens`, `cache_creation_input_tokens`,
/// `response_model`; absent counts are left out.
pub fn usage_metadata(usage: &Usage, response_model: Option<&str>) -> Struct {
    let mut f = Fields::new();
    f.num("input_tokens", usage.total_input());
    f.num("output_tokens", usage.output);
    f.num("cache_read_input_tokens", usage.cache_read);
    f.num("cache_creation_input_tokens", usage.cache_creation);
    f.str("response_model", response_model);
    f.into_namespace()
}

/// Marks a request whose answer's token usage the gateway reads
/// (`usage_reporter: envoy`): the shipped Envoy config sends the access-log
/// entries so marked, with the counts its SSE parser wrote under
/// [`USAGE_NAMESPACE`], to promptgate's access-log service. `provider` and
/// `traceparent` (of promptgate's request span) are for that service.
pub fn usage_report_metadata(provider: Option<&str>, traceparent: Option<&str>) -> Struct {
    let mut f = Fields::new();
    f.str(USAGE_REPORTER_KEY, Some("envoy"));
    f.str("provider", provider);
    f.str("traceparent", traceparent);
    f.into_namespace()
}

/// What the access-log service debits from the request's budgets once the
/// gateway reports its answer's usage (`budgets.debit: AccessLog`): the
/// counters' keys (`<limit>:<bucket>`, as the store names them without its
/// prefix), a list under [`BUDGET_DEBITS_KEY`].
pub fn budget_debits_metadata(keys: &[&str]) -> Struct {
    let mut f = Fields::new();
    let values = keys
        .iter()
        .map(|key| Value {
            kind: Some(value::Kind::StringValue((*key).to_owned())),
        })
        .collect();
    f.put(
        BUDGET_DEBITS_KEY,
        Some(value::Kind::ListValue(
            envoy_types::pb::google::protobuf::ListValue { values },
        )),
    );
    f.into_namespace()
}

/// Key of [`budget_debits_metadata`]'s list.
pub const BUDGET_DEBITS_KEY: &str = "budget_debits";

/// Key of [`usage_report_metadata`]'s marker.
pub const USAGE_REPORTER_KEY: &str = "usage_reporter";

/// Namespace where the gateway's SSE parser (Envoy's `sse_to_metadata`)
/// writes a streamed answer's token counts: Anthropic's `input_tokens`,
/// `cache_read_input_tokens`, `cache_creation_input_tokens`,
/// `output_tokens`; OpenAI's `prompt_tokens`, `cached_tokens`,
/// `completion_tokens`; and `model`.
pub const USAGE_NAMESPACE: &str = "promptgate.usage";

/// The remaining budget headers (`x-promptgate-budget-remaining-tokens`
/// …) as metadata for Envoy to turn into response headers itself
/// (`budget_remaining_tokens` …, strings, exactly the headers' values): the
/// shipped Envoy config's `response_headers_to_add` reads them, so no
/// response-headers exchange is needed for them.
pub fn budget_headers_metadata(headers: &[(&'static str, String)]) -> Struct {
    let mut f = Fields::new();
    for (name, value) in headers {
        let key = name
            .strip_prefix("x-promptgate-")
            .unwrap_or(name)
            .replace('-', "_");
        f.str(&key, Some(value.as_str()));
    }
    f.into_namespace()
}

/// The response decision: `response_decision`, `response_masked`,
/// `response_rule`, `response_location`, and when not zero
/// `tool_calls_blocked` and `placeholders_restored`.
pub fn response_metadata(r: &ResponseRecord) -> Struct {
    let mut f = Fields::new();
    f.str("response_decision", Some(r.decision.as_str()));
    f.num("response_masked", Some(r.masked as u64));
    if r.tools_blocked > 0 {
        f.num("tool_calls_blocked", Some(r.tools_blocked as u64));
    }
    if r.restored > 0 {
        f.num("placeholders_restored", Some(r.restored as u64));
    }
    if r.audited > 0 {
        f.num("response_audited", Some(r.audited as u64));
    }
    f.str("response_rule", r.rule.as_deref());
    f.str("response_location", r.location.as_deref());
    f.into_namespace()
}

/// Merges `more` into `into` the way Envoy does (per namespace, field by
/// field, later values win), for an answer that carries both a decision and
/// token counts.
pub fn merge_metadata(into: &mut Struct, more: Struct) {
    for (ns, v) in more.fields {
        match (into.fields.get_mut(&ns), v.kind) {
            (
                Some(Value {
                    kind: Some(value::Kind::StructValue(existing)),
                }),
                Some(value::Kind::StructValue(add)),
            ) => {
                existing.fields.extend(add.fields);
            }
            (_, kind) => {
                into.fields.insert(ns, Value { kind });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &Struct) -> &Struct {
        match &s.fields[METADATA_NAMESPACE].kind {
            Some(value::Kind::StructValue(inner)) => inner,
            other => panic!("{other:?}"),
        }
    }

    fn num(s: &Struct, k: &str) -> Option<f64> {
        match ns(s).fields.get(k)?.kind {
            Some(value::Kind::NumberValue(n)) => Some(n),
            _ => None,
        }
    }

    #[test]
    fn decision_fields() {
        let o = Outcome {
            decision: crate::decision::Verdict::Reject,
            backend: Some("anthropic".into()),
            route: Some("Messages"),
            rule: Some("request[0]".into()),
            location: Some("messages[0].content[1]".into()),
            status: Some(403),
            message: Some("Rejected".into()),
            ..Outcome::default()
        };
        let md = decision_metadata(&o);
        let inner = ns(&md);
        assert_eq!(
            inner.fields["decision"].kind,
            Some(value::Kind::StringValue("reject".into()))
        );
        assert_eq!(num(&md, "status"), Some(403.0));
        // the reply message is for the client, not for the metadata
        assert!(!inner.fields.contains_key("message"));
        assert!(!inner.fields.contains_key("masked"));
    }

    #[test]
    fn usage_fields_and_merge() {
        let u = Usage {
            input: Some(25),
            output: Some(12),
            cache_read: Some(100),
            cache_creation: None,
        };
        let usage = usage_metadata(&u, Some("claude-x"));
        assert_eq!(num(&usage, "input_tokens"), Some(125.0));
        assert_eq!(num(&usage, "output_tokens"), Some(12.0));
        assert_eq!(num(&usage, "cache_read_input_tokens"), Some(100.0));
        assert_eq!(num(&usage, "cache_creation_input_tokens"), None);

        let mut md = decision_metadata(&Outcome {
            decision: crate::decision::Verdict::Allow,
            ..Outcome::default()
        });
        merge_metadata(&mut md, usage);
        assert_eq!(num(&md, "output_tokens"), Some(12.0));
        assert_eq!(
            ns(&md).fields["decision"].kind,
            Some(value::Kind::StringValue("allow".into()))
        );
    }
}
