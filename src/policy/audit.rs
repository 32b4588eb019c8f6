//! The `audit` setting compiled (see [`crate::audit`]).

use std::time::Duration;

use super::config::{AuditSpec, OverflowSpec};
use super::{join, PlaceErr};
use crate::audit::{AuditSettings, Overflow};

pub(super) fn compile(place: &str, spec: &AuditSpec) -> Result<AuditSettings, PlaceErr> {
    if spec.path.as_os_str().is_empty() {
        return Err((join(place, "path"), "must name a file".into()));
    }
    let head_every = match &spec.head_every {
        None => Duration::from_secs(60),
        Some(t) => crate::lifecycle::parse_duration(t)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                (
                    join(place, "headEvery"),
                    format!("`{t}` is not a duration like 30s or 5m"),
                )
            })?,
    };
    let max_bytes = spec.max_bytes.unwrap_or(100 << 20);
    if max_bytes < 4096 {
        return Err((
            join(place, "maxBytes"),
            "at least 4096 bytes: a file must hold some lines".into(),
        ));
    }
    let queue = spec.queue.unwrap_or(10_000);
    if queue == 0 {
        return Err((join(place, "queue"), "at least 1".into()));
    }
    Ok(AuditSettings {
        path: spec.path.clone(),
        allows: spec.allows.unwrap_or(false),
        max_bytes,
        max_files: spec.max_files.unwrap_or(10).max(1),
        queue,
        overflow: match spec.on_overflow {
            Some(OverflowSpec::FailClosed) => Overflow::FailClosed,
            _ => Overflow::Drop,
        },
        head_every,
        otlp: spec.otlp.unwrap_or(false),
    })
}
