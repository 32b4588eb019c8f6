//! Route types and the path → route-type table of a backend.

use super::config::RouteTypeSpec;
use super::PlaceErr;
use crate::provider::Dialect;

/// Route types promptgate acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteType {
    /// Anthropic Messages: guarded.
    Messages,
    /// Anthropic `/v1/messages/count_tokens`: carries the whole prompt, so it
    /// is guarded like Messages (agentgateway does not guard it).
    AnthropicTokenCount,
    /// OpenAI Chat Completions: guarded.
    Completions,
    /// Model listing: headers only.
    Models,
    /// No guards; telemetry only.
    Detect,
    /// Headers only: auth injected, body not inspected.
    Passthrough,
}

impl RouteType {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteType::Messages => "Messages",
            RouteType::AnthropicTokenCount => "AnthropicTokenCount",
            RouteType::Completions => "Completions",
            RouteType::Models => "Models",
            RouteType::Detect => "Detect",
            RouteType::Passthrough => "Passthrough",
        }
    }

    /// Whether request bodies of this type are read (guards, model override).
    pub fn inspects_request_body(self) -> bool {
        matches!(
            self,
            RouteType::Messages | RouteType::AnthropicTokenCount | RouteType::Completions
        )
    }

    /// The dialect requests of this route type speak, on a backend of
    /// `provider`'s dialect: the route's own for the LLM routes, else the
    /// backend's (what its error bodies look like).
    pub fn dialect(self, provider: Dialect) -> Dialect {
        match self {
            RouteType::Messages | RouteType::AnthropicTokenCount => Dialect::Anthropic,
            RouteType::Completions => Dialect::OpenAiChat,
            _ => provider,
        }
    }
}

/// The table used when a backend has no `routes`, and for paths a user
/// table without `'*'` does not match.
const DEFAULT_ROUTES: &[(&str, RouteType)] = &[
    ("/v1/messages/count_tokens", RouteType::AnthropicTokenCount),
    ("/v1/chat/completions", RouteType::Completions),
    ("/v1/messages", RouteType::Messages),
    ("/v1/models", RouteType::Models),
];

/// Path-suffix route table, longest key first, with a fallback.
#[derive(Debug, Clone)]
pub struct RouteTable {
    entries: Vec<(String, RouteType)>,
    /// `'*'`; `None` means: the default table decides.
    fallback: Option<RouteType>,
}

impl RouteTable {
    fn default_table() -> Self {
        RouteTable {
            entries: Vec::new(),
            fallback: None,
        }
    }

    /// Route type for a normalised path (no query string).
    pub fn route_type(&self, path: &str) -> RouteType {
        for (suffix, ty) in &self.entries {
            if path.ends_with(suffix.as_str()) {
                return *ty;
            }
        }
        if let Some(ty) = self.fallback {
            return ty;
        }
        DEFAULT_ROUTES
            .iter()
            .find(|(suffix, _)| path.ends_with(suffix))
            .map(|(_, ty)| *ty)
            .unwrap_or(RouteType::Passthrough)
    }
}

pub(super) fn compile_routes(
    place: &str,
    routes: Option<std::collections::BTreeMap<String, RouteTypeSpec>>,
) -> Result<RouteTable, PlaceErr> {
    let Some(routes) = routes else {
        return Ok(RouteTable::default_table());
    };
    let mut table = RouteTable {
        entries: Vec::new(),
        fallback: None,
    };
    for (key, spec) in routes {
        let ty = match spec {
            RouteTypeSpec::Messages => RouteType::Messages,
            RouteTypeSpec::AnthropicTokenCount => RouteType::AnthropicTokenCount,
            RouteTypeSpec::Completions => RouteType::Completions,
            RouteTypeSpec::Models => RouteType::Models,
            RouteTypeSpec::Detect => RouteType::Detect,
            RouteTypeSpec::Passthrough => RouteType::Passthrough,
            other => {
                return Err((
                    format!("{place}['{key}']"),
                    format!(
                        "route type `{other:?}` is not supported by promptgate yet; its prompts would go unguarded. \
                         Map the path to `Passthrough` to forward it without inspection on purpose"
                    ),
                ))
            }
        };
        if key == "*" {
            table.fallback = Some(ty);
        } else if key.is_empty() {
            return Err((
                place.to_owned(),
                "an empty route key; use '*' for the fallback".into(),
            ));
        } else {
            // Keys are matched against normalised paths; normalise them alike.
            let key = if key.starts_with('/') {
                crate::path::normalize(&key).into_owned()
            } else {
                key
            };
            table.entries.push((key, ty));
        }
    }
    table
        .entries
        .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    Ok(table)
}
