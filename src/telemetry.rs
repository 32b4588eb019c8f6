//! Logging setup: structured JSON lines on stderr.
//!
//! Decisions are logged at info with backend, route, rule and location —
//! never prompt text, matched text or secrets.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` (or `PROMPTGATE_LOG`) sets
/// the filter; the default is `info`.
pub fn init_logging() {
    let filter = std::env::var("PROMPTGATE_LOG")
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_writer(std::io::stderr)
        .try_init();
}
