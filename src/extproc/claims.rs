//! The verified claims Envoy forwards with a request (`metadata_context`,
//! the namespace `identity` names), as JSON for the decision core.

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use serde_json::{Map, Number, Value as Json};

use crate::policy::IdentitySettings;

/// Deepest nesting converted (claims are shallow; a deeper value is cut to
/// `null` rather than followed).
const MAX_DEPTH: usize = 32;

/// The payload under `settings.namespace` / `settings.key`, if Envoy
/// forwarded one and it is an object.
pub fn verified_claims(
    settings: &IdentitySettings,
    metadata: Option<&Metadata>,
) -> Option<Map<String, Json>> {
    let ns = metadata?.filter_metadata.get(&settings.namespace)?;
    match ns.fields.get(&settings.key)?.kind.as_ref()? {
        Kind::StructValue(s) => Some(object(s, 0)),
        _ => None,
    }
}

/// The claims of a recorded request (`eval`): `claims` as Envoy's JWT
/// filter forwards them (metadata under the configured namespace and key,
/// numbers as doubles) and read back by [`verified_claims`], so a replayed
/// request sees the claims the server would.
pub fn recorded_claims(settings: &IdentitySettings, claims: &Json) -> Option<Map<String, Json>> {
    let payload = Value {
        kind: Some(proto(claims, 0)),
    };
    let metadata = Metadata {
        filter_metadata: [(
            settings.namespace.clone(),
            Struct {
                fields: [(settings.key.clone(), payload)].into_iter().collect(),
            },
        )]
        .into_iter()
        .collect(),
        ..Metadata::default()
    };
    verified_claims(settings, Some(&metadata))
}

/// JSON as a protobuf value, the way Envoy writes a JWT payload.
fn proto(v: &Json, depth: usize) -> Kind {
    if depth > MAX_DEPTH {
        return Kind::NullValue(0);
    }
    match v {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(envoy_types::pb::google::protobuf::ListValue {
            values: items
                .iter()
                .map(|x| Value {
                    kind: Some(proto(x, depth + 1)),
                })
                .collect(),
        }),
        Json::Object(m) => Kind::StructValue(Struct {
            fields: m
                .iter()
                .map(|(k, x)| {
                    (
                        k.clone(),
                        Value {
                            kind: Some(proto(x, depth + 1)),
                        },
                    )
                })
                .collect(),
        }),
    }
}

fn object(s: &Struct, depth: usize) -> Map<String, Json> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), json(v, depth + 1)))
        .collect()
}

fn json(v: &Value, depth: usize) -> Json {
    if depth > MAX_DEPTH {
        return Json::Null;
    }
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        // Envoy carries JSON numbers as doubles: whole ones read as
        // integers (`"exp": 1735689600`), others as they are.
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                Json::Number(Number::from(*n as i64))
            } else {
                Number::from_f64(*n).map_or(Json::Null, Json::Number)
            }
        }
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::StructValue(s)) => Json::Object(object(s, depth)),
        Some(Kind::ListValue(l)) => {
            Json::Array(l.values.iter().map(|x| json(x, depth + 1)).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(fields: Vec<(&str, Kind)>) -> Struct {
        Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value { kind: Some(v) }))
                .collect(),
        }
    }

    fn settings() -> IdentitySettings {
        IdentitySettings {
            namespace: "envoy.filters.http.jwt_authn".into(),
            key: "payload".into(),
            user_claim: "sub".into(),
            groups_claim: "groups".into(),
            required: false,
            hash_user: false,
        }
    }

    #[test]
    fn the_payload_under_the_namespace_and_key() {
        let payload = s(vec![
            ("sub", Kind::StringValue("alice".into())),
            ("exp", Kind::NumberValue(1735689600.0)),
            ("score", Kind::NumberValue(0.5)),
            (
                "groups",
                Kind::ListValue(envoy_types::pb::google::protobuf::ListValue {
                    values: vec![Value {
                        kind: Some(Kind::StringValue("staff".into())),
                    }],
                }),
            ),
        ]);
        let md = Metadata {
            filter_metadata: [(
                "envoy.filters.http.jwt_authn".to_owned(),
                s(vec![("payload", Kind::StructValue(payload))]),
            )]
            .into_iter()
            .collect(),
            ..Metadata::default()
        };
        let claims = verified_claims(&settings(), Some(&md)).unwrap();
        assert_eq!(
            serde_json::Value::Object(claims),
            serde_json::json!({"sub": "alice", "exp": 1735689600, "score": 0.5, "groups": ["staff"]})
        );
        // Another namespace, another key, or not an object: nothing.
        let mut other = settings();
        other.key = "other".into();
        assert!(verified_claims(&other, Some(&md)).is_none());
        other.namespace = "x".into();
        assert!(verified_claims(&other, Some(&md)).is_none());
        assert!(verified_claims(&settings(), None).is_none());
        let flat = Metadata {
            filter_metadata: [(
                "envoy.filters.http.jwt_authn".to_owned(),
                s(vec![("payload", Kind::StringValue("x".into()))]),
            )]
            .into_iter()
            .collect(),
            ..Metadata::default()
        };
        assert!(verified_claims(&settings(), Some(&flat)).is_none());
    }

    #[test]
    fn recorded_claims_read_as_forwarded_ones() {
        let claims = serde_json::json!({"sub": "alice", "exp": 1735689600.0, "score": 0.5,
            "groups": ["staff"], "org": {"dept": "eng"}});
        assert_eq!(
            serde_json::Value::Object(recorded_claims(&settings(), &claims).unwrap()),
            serde_json::json!({"sub": "alice", "exp": 1735689600, "score": 0.5,
                "groups": ["staff"], "org": {"dept": "eng"}})
        );
        // Not an object: no claims, as Envoy's metadata would carry none.
        assert!(recorded_claims(&settings(), &serde_json::json!(["x"])).is_none());
    }
}
