//! The `maskKey` setting: the deployment-wide key of mask placeholders'
//! tags (see [`crate::guard::placeholder`]), read from a mounted secret or
//! an environment variable; without one, the process's random key and a
//! warning.

use std::path::Path;
use std::sync::Arc;

use super::config::MaskKeySpec;
use super::{join, PlaceErr};
use crate::guard::MaskKey;

/// What a policy without `maskKey` warns.
pub const NO_MASK_KEY_WARNING: &str = "no `maskKey` is set: mask placeholders are tagged with a random key of this process, so they change on every restart and differ between replicas (the provider's prompt cache misses on masked history); set `maskKey: {secretRef: {name: ...}}` or `{env: ...}`";

/// The key a policy's masks are tagged with.
pub(super) fn resolve(
    place: &str,
    spec: Option<&MaskKeySpec>,
    secrets_dir: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<Arc<MaskKey>, PlaceErr> {
    let Some(spec) = spec else {
        warnings.push(NO_MASK_KEY_WARNING.to_owned());
        return Ok(MaskKey::process_random());
    };
    let (raw, source, at) = match (&spec.secret_ref, &spec.env) {
        (Some(secret), None) => {
            let at = join(place, "secretRef.name");
            let name = &secret.name;
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err((at, format!("`{name}` is not a valid secret name")));
            }
            let Some(dir) = secrets_dir else {
                return Err((
                    at,
                    format!("secret `{name}` needs a secrets folder: set `secretsDir:` or pass --secrets-dir"),
                ));
            };
            let file = dir.join(name).join("key");
            let raw = std::fs::read(&file).map_err(|e| {
                (
                    at.clone(),
                    format!("secret `{name}`: cannot read {}: {e}", file.display()),
                )
            })?;
            (raw, format!("secret `{name}` ({})", file.display()), at)
        }
        (None, Some(var)) => {
            let at = join(place, "env");
            let raw = std::env::var_os(var).ok_or_else(|| {
                (
                    at.clone(),
                    format!("environment variable `{var}` is not set"),
                )
            })?;
            (
                raw.into_encoded_bytes(),
                format!("environment variable `{var}`"),
                at,
            )
        }
        _ => return Err((
            place.to_owned(),
            "give exactly one of `secretRef` (a mounted secret) or `env` (an environment variable)"
                .into(),
        )),
    };
    MaskKey::new(&raw)
        .map(Arc::new)
        .map_err(|m| (at, format!("{source}: {m}")))
}
