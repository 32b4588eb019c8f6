//! The `identity` setting: where the caller's verified claims arrive from
//! Envoy (its `jwt_authn` filter puts the payload of a token it verified
//! into dynamic metadata, `payload_in_metadata`, and ext_proc forwards that
//! namespace, `metadata_options.forwarding_namespaces`), which claims name
//! the user and the groups, whether a request without one is refused, and
//! how the user appears in telemetry. promptgate never reads a token
//! itself: an unverified token cannot name anyone.

use super::config::{IdentitySpec, UserTelemetrySpec};
use super::{join, PlaceErr};

/// `jwt_authn`'s filter name: the namespace of its metadata.
pub const DEFAULT_NAMESPACE: &str = "envoy.filters.http.jwt_authn";

/// The compiled `identity` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    /// The dynamic metadata namespace Envoy forwards.
    pub namespace: String,
    /// The key under it holding the verified payload.
    pub key: String,
    /// The claim naming the user.
    pub user_claim: String,
    /// The claim listing the groups (a list of strings, or one string).
    pub groups_claim: String,
    /// Refuse a request without a verified user (401).
    pub required: bool,
    /// Show the user in logs, spans and metadata as a keyed hash.
    pub hash_user: bool,
}

pub(super) fn compile(place: &str, spec: &IdentitySpec) -> Result<IdentitySettings, PlaceErr> {
    let Some(jwt) = &spec.jwt else {
        return Err((
            place.to_owned(),
            "`identity` needs a source: `jwt` (the claims Envoy's jwt_authn verified)".into(),
        ));
    };
    let field = |v: &Option<String>, default: &str, name: &str| -> Result<String, PlaceErr> {
        match v {
            Some(s) if s.trim().is_empty() => Err((
                join(place, &format!("jwt.{name}")),
                "must not be empty".into(),
            )),
            Some(s) => Ok(s.clone()),
            None => Ok(default.to_owned()),
        }
    };
    Ok(IdentitySettings {
        namespace: field(&jwt.namespace, DEFAULT_NAMESPACE, "namespace")?,
        key: field(&jwt.key, "payload", "key")?,
        user_claim: field(&jwt.user, "sub", "user")?,
        groups_claim: field(&jwt.groups, "groups", "groups")?,
        required: spec.required.unwrap_or(false),
        hash_user: spec.telemetry == Some(UserTelemetrySpec::Hashed),
    })
}
