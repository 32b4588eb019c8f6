//! The wire dialect: the one place that says which provider API a request
//! or response speaks. Everything dialect-specific (which text of a request
//! is read, how a stream is parsed and rewritten, usage, error bodies) is
//! reached through it, so adding a dialect adds a variant here and a folder
//! beside this file.

/// A provider API's wire dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Anthropic Messages (`/v1/messages`, SSE events by block).
    Anthropic,
    /// OpenAI Chat Completions (`/v1/chat/completions`, SSE chunks by choice).
    OpenAiChat,
}

impl Dialect {
    /// Every dialect, for tests and tables.
    pub const ALL: [Dialect; 2] = [Dialect::Anthropic, Dialect::OpenAiChat];

    /// The provider's name in telemetry and decision records.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Anthropic => "anthropic",
            Dialect::OpenAiChat => "openai",
        }
    }
}
