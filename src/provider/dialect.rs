//! The wire dialect: the one place that says which provider API a request
//! or response speaks, and the one place that dispatches on it. Everything
//! dialect-specific (which text of a request is read, how a stream's
//! events are read and rewritten, a JSON response's texts, usage, error
//! bodies and events, credentials) is a [`Provider`] method that the
//! dialect's folder implements. Adding a dialect adds a variant here, an
//! arm to [`Dialect::provider`], and a folder beside this file.

use super::json::skeleton::Skeleton;
use super::response::{JsonOutcome, ResponseText};
use super::sse::SseEvent;
use super::stream::{Flow, Output, StreamError, StreamGuard, TextLocation};
use super::{anthropic, openai};
use super::{BodyError, Credential, ErrorKind, KindSet, ParsedRequest};

/// A provider API's wire dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Anthropic Messages (`/v1/messages`, SSE events by block).
    Anthropic,
    /// OpenAI Chat Completions (`/v1/chat/completions`, SSE chunks by choice).
    OpenAiChat,
}

/// What a dialect implements: one unit type per dialect folder.
pub(crate) trait Provider: Sync {
    /// The provider's name in telemetry and decision records.
    fn name(&self) -> &'static str;
    /// The credential for a key (already cleaned of space and `Bearer `).
    fn credential(&self, key: &str) -> Credential;
    /// The texts of a request body, read through its skeleton.
    fn parse_skeleton<'a>(
        &self,
        skeleton: &Skeleton<'a>,
        kinds: KindSet,
    ) -> Result<ParsedRequest<'a>, BodyError>;
    /// The texts of a request body: through [`Skeleton::of`] unless the
    /// dialect knows of more to leave out.
    fn parse_body<'a>(
        &self,
        body: &'a str,
        kinds: KindSet,
    ) -> Result<ParsedRequest<'a>, BodyError> {
        self.parse_skeleton(&Skeleton::of(body), kinds)
    }
    /// A JSON error body.
    fn error_body(&self, kind: ErrorKind, status: u16, message: &str) -> Vec<u8>;
    /// Reads one SSE event of a streamed response into the engine.
    fn read_event(
        &self,
        guard: &mut StreamGuard,
        ev: SseEvent,
        index: u64,
        out: &mut Output,
    ) -> Result<Flow, StreamError>;
    /// A synthesized event carrying `text` for block `index`; `template`
    /// is what the reader kept in [`StreamGuard`]'s template.
    fn text_event(&self, index: u64, text: &str, template: Option<&str>) -> Vec<u8>;
    /// Where block `index` of a response sits.
    fn text_location(&self, index: u64) -> TextLocation;
    /// The in-stream event ending a stream a guard rejected.
    fn rejection_event(&self, message: &str) -> Vec<u8>;
    /// The in-stream event ending a stream the gateway gave up on.
    fn abort_event(&self, message: &str) -> Vec<u8>;
    /// Judges every tool call of a whole response body, restoring the
    /// request's placeholders in their inputs first.
    fn json_tools(
        &self,
        body: &str,
        judge: &dyn super::tool_call::ToolJudge,
        restore: Option<&super::restore::Restore>,
    ) -> Result<super::tool_json::JsonTools, StreamError>;
    /// The text values of a non-streamed response body; model and usage go
    /// to `outcome`.
    fn read_response<'b>(
        &self,
        body: &'b str,
        outcome: &mut JsonOutcome,
    ) -> Result<Vec<ResponseText<'b>>, StreamError>;
}

impl Dialect {
    /// Every dialect, for tests and tables.
    pub const ALL: [Dialect; 2] = [Dialect::Anthropic, Dialect::OpenAiChat];

    /// The dialect's implementation: the one `match` on the dialect.
    #[inline]
    pub(crate) fn provider(self) -> &'static dyn Provider {
        match self {
            Dialect::Anthropic => &anthropic::Anthropic,
            Dialect::OpenAiChat => &openai::OpenAiChat,
        }
    }

    /// The provider's name in telemetry and decision records.
    pub fn as_str(self) -> &'static str {
        self.provider().name()
    }

    /// The provider name [`Self::as_str`] gives, as a `'static` name
    /// (`None`: no dialect's).
    pub fn provider_name(name: &str) -> Option<&'static str> {
        [Dialect::Anthropic, Dialect::OpenAiChat]
            .into_iter()
            .map(Dialect::as_str)
            .find(|n| *n == name)
    }

    /// Parses a request body of this dialect, extracting the text of the
    /// kinds asked for. The whole body is validated whatever `kinds` says.
    pub fn parse_request(self, body: &str, kinds: KindSet) -> Result<ParsedRequest<'_>, BodyError> {
        if !body.trim_start().starts_with('{') {
            return Err(BodyError("the body must be a JSON object".into()));
        }
        self.provider().parse_body(body, kinds)
    }

    /// The texts of a request body, read through `skeleton` (the tests'
    /// reference for what [`Dialect::parse_request`] finds).
    #[cfg(test)]
    pub(crate) fn parse_skeleton<'a>(
        self,
        skeleton: &Skeleton<'a>,
        kinds: KindSet,
    ) -> Result<ParsedRequest<'a>, BodyError> {
        self.provider().parse_skeleton(skeleton, kinds)
    }

    /// Renders this dialect's JSON error body.
    pub fn error_body(self, kind: ErrorKind, status: u16, message: &str) -> Vec<u8> {
        self.provider().error_body(kind, status, message)
    }

    /// The in-stream error event for a rejection carrying `message`.
    pub fn rejection_event(self, message: &str) -> Vec<u8> {
        self.provider().rejection_event(message)
    }
}
