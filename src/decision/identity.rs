//! Who is asking: the user and groups read from the claims Envoy verified
//! (see [`crate::policy::IdentitySettings`]), and the agent's session.

use serde_json::{Map, Value};

use crate::guard::MaskKey;
use crate::policy::IdentitySettings;

/// Who asked, as every record of the request shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The user as telemetry shows it (plain, or `h:` and a keyed hash).
    pub user: Option<String>,
    pub groups: usize,
    /// The agent's session id.
    pub session: Option<String>,
}

/// The caller of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user claim, when the request carried verified claims naming one.
    pub user: Option<String>,
    /// The groups claim: a list of strings (other items are skipped) or a
    /// single string.
    pub groups: Vec<String>,
    /// Every verified claim.
    pub claims: Map<String, Value>,
}

impl Identity {
    /// The identity in `claims` (`None`: the request carried none).
    pub fn from_claims(
        settings: &IdentitySettings,
        claims: Option<Map<String, Value>>,
    ) -> Identity {
        let Some(claims) = claims else {
            return Identity::default();
        };
        let user = match claims.get(&settings.user_claim) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let groups = match claims.get(&settings.groups_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            _ => Vec::new(),
        };
        Identity {
            user,
            groups,
            claims,
        }
    }

    pub fn is_known(&self) -> bool {
        self.user.is_some()
    }

    /// The user as telemetry shows it: as it is, or `h:` and a keyed hash
    /// (the same user always the same hash, not computable without the
    /// key).
    pub fn user_for_telemetry(&self, settings: &IdentitySettings, key: &MaskKey) -> Option<String> {
        let user = self.user.as_deref()?;
        Some(if settings.hash_user {
            format!("h:{}", key.tag("user", user))
        } else {
            user.to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(hash: bool) -> IdentitySettings {
        IdentitySettings {
            namespace: "envoy.filters.http.jwt_authn".into(),
            key: "payload".into(),
            user_claim: "sub".into(),
            groups_claim: "groups".into(),
            required: true,
            hash_user: hash,
        }
    }

    fn claims(v: Value) -> Option<Map<String, Value>> {
        v.as_object().cloned()
    }

    #[test]
    fn user_and_groups_from_claims() {
        let s = settings(false);
        let id = Identity::from_claims(
            &s,
            claims(json!({"sub": "alice", "groups": ["staff", 7, "eng"], "email": "a@x"})),
        );
        assert_eq!(id.user.as_deref(), Some("alice"));
        assert_eq!(id.groups, ["staff", "eng"]);
        assert_eq!(id.claims["email"], "a@x");
        let one = Identity::from_claims(&s, claims(json!({"sub": 42, "groups": "contractors"})));
        assert_eq!(one.user.as_deref(), Some("42"));
        assert_eq!(one.groups, ["contractors"]);
        for none in [
            json!({}),
            json!({"sub": ""}),
            json!({"sub": null}),
            json!({"sub": ["x"]}),
        ] {
            assert!(!Identity::from_claims(&s, claims(none)).is_known());
        }
        assert_eq!(Identity::from_claims(&s, None), Identity::default());
    }

    #[test]
    fn telemetry_shows_the_user_or_a_keyed_hash() {
        let key = MaskKey::new(b"identity tests' key!").unwrap();
        let id = Identity::from_claims(&settings(false), claims(json!({"sub": "alice"})));
        assert_eq!(
            id.user_for_telemetry(&settings(false), &key).as_deref(),
            Some("alice")
        );
        let hashed = id.user_for_telemetry(&settings(true), &key).unwrap();
        assert!(
            hashed.starts_with("h:") && !hashed.contains("alice"),
            "{hashed}"
        );
        assert_eq!(Some(hashed), id.user_for_telemetry(&settings(true), &key));
        assert_eq!(
            Identity::default().user_for_telemetry(&settings(true), &key),
            None
        );
    }
}
