//! Anthropic Messages: a file per job. [`request`] says which text of a
//! request is scanned, [`stream`] reads and rewrites its SSE events,
//! [`response`] finds the text of a non-streamed message, [`usage`] reads
//! its token counts, [`error`] writes its error bodies and events, [`auth`]
//! picks the key's header.

pub(crate) mod auth;
pub(crate) mod error;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;
pub(crate) mod tools;
pub(crate) mod usage;

use super::dialect::Provider;
use super::json::skeleton::Skeleton;
use super::response::{JsonOutcome, ResponseText};
use super::sse::SseEvent;
use super::stream::{Flow, Output, StreamError, StreamGuard, TextLocation};
use super::{BodyError, Credential, ErrorKind, KindSet, ParsedRequest};

/// The Anthropic Messages dialect.
pub(crate) struct Anthropic;

impl Provider for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }
    fn credential(&self, key: &str) -> Credential {
        auth::credential(key)
    }
    fn parse_skeleton<'a>(
        &self,
        skeleton: &Skeleton<'a>,
        kinds: KindSet,
    ) -> Result<ParsedRequest<'a>, BodyError> {
        request::parse_skeleton(skeleton, kinds)
    }
    fn parse_body<'a>(
        &self,
        body: &'a str,
        kinds: KindSet,
    ) -> Result<ParsedRequest<'a>, BodyError> {
        request::parse_body(body, kinds)
    }
    fn error_body(&self, kind: ErrorKind, status: u16, message: &str) -> Vec<u8> {
        error::body(kind, status, message)
    }
    fn read_event(
        &self,
        guard: &mut StreamGuard,
        ev: SseEvent,
        index: u64,
        out: &mut Output,
    ) -> Result<Flow, StreamError> {
        stream::read_event(guard, ev, index, out)
    }
    fn text_event(&self, index: u64, text: &str, _template: Option<&str>) -> Vec<u8> {
        stream::text_event(index, text)
    }
    fn text_location(&self, index: u64) -> TextLocation {
        TextLocation::Content(index)
    }
    fn rejection_event(&self, message: &str) -> Vec<u8> {
        error::rejection_event(message)
    }
    fn abort_event(&self, message: &str) -> Vec<u8> {
        error::abort_event(message)
    }
    fn json_tools(
        &self,
        body: &str,
        judge: &dyn crate::provider::tool_call::ToolJudge,
        restore: Option<&crate::provider::restore::Restore>,
    ) -> Result<crate::provider::tool_json::JsonTools, StreamError> {
        tools::judge(body, judge, restore)
    }
    fn read_response<'b>(
        &self,
        body: &'b str,
        outcome: &mut JsonOutcome,
    ) -> Result<Vec<ResponseText<'b>>, StreamError> {
        response::read(body, outcome)
    }
}
