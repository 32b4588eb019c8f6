//! Scopes: which parts of a request a guard reads.

use crate::policy::config::ScopeSpec;
use crate::provider::{KindSet, Location, PartKind};

/// One selector of a guard's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    SystemPrompt,
    Messages,
    ToolOutput,
    ToolInput,
    UserMessages,
    AssistantMessages,
    Documents,
    ToolDefinitions,
    LatestUserTurn,
}

impl Selector {
    pub fn from_spec(s: ScopeSpec) -> Selector {
        match s {
            ScopeSpec::SystemPrompt => Selector::SystemPrompt,
            ScopeSpec::Messages => Selector::Messages,
            ScopeSpec::ToolOutput => Selector::ToolOutput,
            ScopeSpec::ToolInput => Selector::ToolInput,
            ScopeSpec::UserMessages => Selector::UserMessages,
            ScopeSpec::AssistantMessages => Selector::AssistantMessages,
            ScopeSpec::Documents => Selector::Documents,
            ScopeSpec::ToolDefinitions => Selector::ToolDefinitions,
            ScopeSpec::LatestUserTurn => Selector::LatestUserTurn,
        }
    }

    /// Kinds the selector may read (what must be extracted for it).
    pub fn kinds(self) -> KindSet {
        use PartKind::*;
        KindSet::of(match self {
            Selector::SystemPrompt => &[System],
            Selector::Messages => &[System, UserText, AssistantText, Document],
            Selector::ToolOutput => &[ToolResult],
            Selector::ToolInput => &[ToolInput],
            Selector::UserMessages => &[UserText],
            Selector::AssistantMessages => &[AssistantText],
            Selector::Documents => &[Document],
            Selector::ToolDefinitions => &[ToolDefinition],
            Selector::LatestUserTurn => &[UserText, ToolResult, Document],
        })
    }

    pub fn selects(self, kind: PartKind, location: &Location, latest_user: Option<u32>) -> bool {
        if !self.kinds().contains(kind) {
            return false;
        }
        match self {
            // agentgateway's Messages: every message, but not the top-level system field.
            Selector::Messages => location.message().is_some(),
            Selector::LatestUserTurn => latest_user.is_some() && location.message() == latest_user,
            _ => true,
        }
    }
}

/// Which parts of a request a guard reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(pub(crate) Vec<Selector>);

impl Scope {
    /// The default for agentic clients: the system prompt, what users wrote,
    /// documents and tool results — never tool definitions.
    /// (agentgateway's default is `[SystemPrompt, Messages]`, which reads
    /// assistant history and leaves tool results out.)
    pub fn default_request() -> Scope {
        Scope(vec![
            Selector::SystemPrompt,
            Selector::UserMessages,
            Selector::Documents,
            Selector::ToolOutput,
        ])
    }

    pub fn kinds(&self) -> KindSet {
        self.0
            .iter()
            .fold(KindSet::EMPTY, |k, s| k.union(s.kinds()))
    }

    pub fn selects(&self, kind: PartKind, location: &Location, latest_user: Option<u32>) -> bool {
        self.0
            .iter()
            .any(|s| s.selects(kind, location, latest_user))
    }
}
