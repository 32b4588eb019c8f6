//! One access-log entry of the gateway → the usage it reports, if promptgate
//! marked the request for it.
//!
//! promptgate marks a request whose answer's usage it leaves to the gateway
//! (`usage_reporter: envoy` in its `promptgate` metadata, with the backend,
//! the provider and the request span's `traceparent`); the gateway's SSE or
//! JSON parser writes the answer's counts under `promptgate.usage`. An entry
//! without the mark, or without a count, reports nothing: it is skipped,
//! and said why.

use envoy_types::pb::google::protobuf::{value::Kind, Struct};

use super::wire::Entry;
use crate::provider::{Dialect, Usage};
use crate::telemetry::{
    ReportedUsage, BUDGET_DEBITS_KEY, METADATA_NAMESPACE, USAGE_NAMESPACE, USAGE_REPORTER_KEY,
};

/// Why an entry reported no usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// promptgate did not leave this request's usage to the gateway (it
    /// read the answer itself, or never saw the request): counting it
    /// here would count it twice.
    NotMarked,
    /// Marked, but the gateway found no count in the answer (an error
    /// answer, a compressed or cut-short stream).
    NoCounts,
}

impl Skipped {
    pub fn as_str(self) -> &'static str {
        match self {
            Skipped::NotMarked => "not_marked",
            Skipped::NoCounts => "no_counts",
        }
    }
}

/// What one marked entry reports: the answer's usage, and the budget
/// counters promptgate left to the report (`budgets.debit: AccessLog`: the
/// keys its request's metadata names under `budget_debits`; none when it
/// names none, or not as a list of strings).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub usage: ReportedUsage,
    pub budget_debits: Vec<String>,
}

/// The usage `entry` reports.
pub fn read(entry: &Entry) -> Result<Report, Skipped> {
    let ours = entry
        .namespace(METADATA_NAMESPACE)
        .filter(|p| text(p, USAGE_REPORTER_KEY) == Some("envoy"))
        .ok_or(Skipped::NotMarked)?;
    let counts = entry.namespace(USAGE_NAMESPACE).ok_or(Skipped::NoCounts)?;
    let usage = Usage::from_gateway_counts(|key| count(&counts, key));
    if usage.is_empty() {
        return Err(Skipped::NoCounts);
    }
    let usage = ReportedUsage {
        backend: text(&ours, "backend").unwrap_or_default().to_owned(),
        provider: text(&ours, "provider").and_then(Dialect::provider_name),
        model: text(&counts, "model")
            .or_else(|| text(&ours, "model_effective"))
            .map(str::to_owned),
        usage,
        traceparent: text(&ours, "traceparent").map(str::to_owned),
        request_id: entry
            .request_id()
            .filter(|id| !id.is_empty() && id.len() <= 128)
            .map(str::to_owned),
    };
    Ok(Report {
        usage,
        budget_debits: budget_debits(&ours),
    })
}

/// The `budget_debits` list of promptgate's namespace.
fn budget_debits(ours: &Struct) -> Vec<String> {
    match ours
        .fields
        .get(BUDGET_DEBITS_KEY)
        .and_then(|v| v.kind.as_ref())
    {
        Some(Kind::ListValue(list)) => list
            .values
            .iter()
            .filter_map(|v| match v.kind.as_ref()? {
                Kind::StringValue(key) => Some(key.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn text<'a>(s: &'a Struct, key: &str) -> Option<&'a str> {
    match s.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(v) => Some(v),
        _ => None,
    }
}

/// A token count: a whole, non-negative number (the parser stores numbers
/// as doubles), or such a number in a string.
fn count(s: &Struct, key: &str) -> Option<u64> {
    let n = match s.fields.get(key)?.kind.as_ref()? {
        Kind::NumberValue(n) => *n,
        Kind::StringValue(v) => v.trim().parse().ok()?,
        _ => return None,
    };
    (n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n < 9.0e15).then_some(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::Metadata;
    use envoy_types::pb::envoy::data::accesslog::v3::{
        AccessLogCommon, HttpAccessLogEntry, HttpRequestProperties, HttpResponseProperties,
    };
    use envoy_types::pb::google::protobuf::Value;
    use prost::Message;
    use std::collections::HashMap;

    fn fields(pairs: &[(&str, Kind)]) -> Struct {
        Struct {
            fields: pairs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        Value {
                            kind: Some(v.clone()),
                        },
                    )
                })
                .collect(),
        }
    }

    fn s(v: &str) -> Kind {
        Kind::StringValue(v.into())
    }

    fn n(v: f64) -> Kind {
        Kind::NumberValue(v)
    }

    /// An entry as Envoy writes it (envoy-types' full message, with fields
    /// promptgate does not read), read back as promptgate reads it.
    fn entry(ours: Option<Struct>, counts: Option<Struct>) -> Entry {
        let mut filter_metadata = HashMap::new();
        if let Some(o) = ours {
            filter_metadata.insert(METADATA_NAMESPACE.to_owned(), o);
        }
        if let Some(c) = counts {
            filter_metadata.insert(USAGE_NAMESPACE.to_owned(), c);
        }
        filter_metadata.insert(
            "envoy.filters.http.other".to_owned(),
            fields(&[("x", s("y"))]),
        );
        let full = HttpAccessLogEntry {
            common_properties: Some(AccessLogCommon {
                metadata: Some(Metadata {
                    filter_metadata,
                    ..Default::default()
                }),
                route_name: "llm".into(),
                upstream_cluster: "anthropic".into(),
                sample_rate: 1.0,
                ..Default::default()
            }),
            protocol_version: 2,
            request: Some(HttpRequestProperties {
                request_id: "req-1".into(),
                path: "/v1/messages".into(),
                authority: "api.anthropic.com".into(),
                request_headers: [("x-user".to_owned(), "alice".to_owned())].into(),
                ..Default::default()
            }),
            response: Some(HttpResponseProperties {
                response_code: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 200 }),
                response_body_bytes: 4096,
                ..Default::default()
            }),
        };
        Entry::decode(full.encode_to_vec().as_slice()).expect("an entry")
    }

    fn marked() -> Struct {
        fields(&[
            ("usage_reporter", s("envoy")),
            ("backend", s("anthropic")),
            ("provider", s("anthropic")),
            ("model_effective", s("claude-sonnet-4-5")),
            (
                "traceparent",
                s("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ),
        ])
    }

    /// The counters a request left to the report: the metadata promptgate
    /// wrote, read back; anything else under the key is no list of keys.
    #[test]
    fn budget_debits_are_the_keys_the_request_named() {
        let md = crate::telemetry::budget_debits_metadata(&["t:alice", "usd:sha256:ab"]);
        let mut ours = marked();
        ours.fields.extend(
            md.fields[METADATA_NAMESPACE]
                .kind
                .clone()
                .map(|k| match k {
                    Kind::StructValue(s) => s.fields,
                    _ => unreachable!(),
                })
                .unwrap(),
        );
        let counts = || fields(&[("input_tokens", n(25.0))]);
        let r = read(&entry(Some(ours), Some(counts()))).unwrap();
        assert_eq!(r.budget_debits, ["t:alice", "usd:sha256:ab"]);
        let r = read(&entry(Some(marked()), Some(counts()))).unwrap();
        assert!(r.budget_debits.is_empty());
        let mut odd = marked();
        odd.fields.insert(
            BUDGET_DEBITS_KEY.to_owned(),
            Value {
                kind: Some(s("t:alice")),
            },
        );
        let r = read(&entry(Some(odd), Some(counts()))).unwrap();
        assert!(r.budget_debits.is_empty(), "not a list");
    }

    #[test]
    fn an_anthropic_stream_is_read_as_in_band() {
        let counts = fields(&[
            ("input_tokens", n(25.0)),
            ("cache_read_input_tokens", n(3.0)),
            ("cache_creation_input_tokens", n(2.0)),
            ("output_tokens", n(15.0)),
            ("model", s("claude-sonnet-4-5-20250929")),
        ]);
        let report = read(&entry(Some(marked()), Some(counts))).unwrap();
        assert!(report.budget_debits.is_empty());
        let r = report.usage;
        assert_eq!(
            r,
            ReportedUsage {
                backend: "anthropic".into(),
                provider: Some("anthropic"),
                model: Some("claude-sonnet-4-5-20250929".into()),
                usage: Usage {
                    input: Some(25),
                    output: Some(15),
                    cache_read: Some(3),
                    cache_creation: Some(2),
                },
                traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
                request_id: Some("req-1".into()),
            }
        );
        assert_eq!(r.usage.total_input(), Some(30));
    }

    #[test]
    fn openai_cached_tokens_are_split_out_of_the_prompt() {
        let counts = fields(&[
            ("prompt_tokens", n(2006.0)),
            ("cached_tokens", n(1920.0)),
            ("completion_tokens", s("300")),
        ]);
        let r = read(&entry(Some(marked()), Some(counts))).unwrap().usage;
        assert_eq!(
            r.usage,
            Usage {
                input: Some(86),
                output: Some(300),
                cache_read: Some(1920),
                cache_creation: None,
            }
        );
        // No model in the answer: the one the request went to.
        assert_eq!(r.model.as_deref(), Some("claude-sonnet-4-5"));
    }

    #[test]
    fn unmarked_entries_and_entries_without_counts_report_nothing() {
        let counts = || fields(&[("input_tokens", n(25.0))]);
        assert_eq!(read(&entry(None, Some(counts()))), Err(Skipped::NotMarked));
        let other = fields(&[("usage_reporter", s("promptgate")), ("backend", s("a"))]);
        assert_eq!(
            read(&entry(Some(other), Some(counts()))),
            Err(Skipped::NotMarked)
        );
        assert_eq!(read(&entry(Some(marked()), None)), Err(Skipped::NoCounts));
        assert_eq!(read(&Entry::default()), Err(Skipped::NotMarked));
        // A namespace that is no Struct on the wire is no mark.
        let mut broken = entry(Some(marked()), Some(counts()));
        if let Some(m) = broken
            .common_properties
            .as_mut()
            .and_then(|c| c.metadata.as_mut())
        {
            m.filter_metadata
                .insert(METADATA_NAMESPACE.to_owned(), vec![0xff, 0xff]);
        }
        assert_eq!(read(&broken), Err(Skipped::NotMarked));
        // Counts that are no token counts are no counts.
        let bad = fields(&[
            ("input_tokens", n(-1.0)),
            ("output_tokens", n(1.5)),
            ("cache_read_input_tokens", n(f64::NAN)),
            ("cache_creation_input_tokens", s("many")),
            ("model", n(3.0)),
        ]);
        assert_eq!(
            read(&entry(Some(marked()), Some(bad))),
            Err(Skipped::NoCounts)
        );
    }
}
