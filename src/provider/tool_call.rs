//! Tool calls in responses: what the stream engine asks of a tool-call
//! judge (the `toolGuard` engine implements [`ToolJudge`]), and the calls it
//! holds while their input streams.
//!
//! A call is held from its first event to its last — its input arrives in
//! fragments that can split a pattern anywhere — and decided on the whole
//! input. Allowed, its events are released as they came, byte for byte;
//! blocked, the dialect replaces them with text carrying the policy's
//! message. Memory is bounded: past [`ToolJudge::max_held_bytes`] of input
//! a call stops being kept and is blocked when it ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::restore::Restore;

/// Decides on complete tool calls.
pub trait ToolJudge: Send + Sync {
    /// The decision on the call of `tool` with `input` (JSON text).
    fn judge(&self, tool: &str, input: &str) -> ToolVerdict;
    /// The largest input held while it streams.
    fn max_held_bytes(&self) -> usize;
    /// The decision on a call whose input outgrew [`Self::max_held_bytes`].
    fn too_large(&self) -> ToolVerdict;
    /// Whether `tool` may not even be offered to the model.
    fn denies(&self, tool: &str) -> bool;
}

/// The decision on one tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolVerdict {
    /// No rule matched.
    Allow,
    /// A rule in `Audit` mode matched: let through, recorded.
    Audit { rule: String },
    /// Blocked: the agent gets `message` instead of the call.
    Block { rule: String, message: String },
}

impl ToolVerdict {
    pub fn is_blocked(&self) -> bool {
        matches!(self, ToolVerdict::Block { .. })
    }

    /// `allow`, `audit` or `reject`.
    pub fn action(&self) -> &'static str {
        match self {
            ToolVerdict::Allow => "allow",
            ToolVerdict::Audit { .. } => "audit",
            ToolVerdict::Block { .. } => "reject",
        }
    }

    /// The rule that decided, if one did.
    pub fn rule(&self) -> Option<&str> {
        match self {
            ToolVerdict::Allow => None,
            ToolVerdict::Audit { rule } | ToolVerdict::Block { rule, .. } => Some(rule),
        }
    }
}

/// The judge of a response held only to restore placeholders in tool
/// inputs (no `toolGuard`): every call is allowed; a call whose input
/// outgrows what may be held is blocked (its events were not kept).
pub(crate) struct PassJudge;

/// Most input held per call when only restoring.
pub(crate) const RESTORE_HOLD_BYTES: usize = 16 << 20;

impl ToolJudge for PassJudge {
    fn judge(&self, _tool: &str, _input: &str) -> ToolVerdict {
        ToolVerdict::Allow
    }
    fn max_held_bytes(&self) -> usize {
        RESTORE_HOLD_BYTES
    }
    fn too_large(&self) -> ToolVerdict {
        ToolVerdict::Block {
            rule: "restore".into(),
            message: format!(
                "promptgate held this tool call to restore masked values and its input outgrew {} MiB; it was not run",
                RESTORE_HOLD_BYTES >> 20
            ),
        }
    }
    fn denies(&self, _tool: &str) -> bool {
        false
    }
}

/// A tool call decided in a response, for telemetry. Never its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolDecision {
    /// Anthropic content block index; OpenAI `tool_calls` index.
    pub index: u64,
    pub tool: String,
    pub verdict: ToolVerdict,
}

/// One call held while its input streams.
#[derive(Debug, Default)]
pub(crate) struct HeldCall {
    pub(crate) name: String,
    /// The input given with the call's start (Anthropic sends `{}` and the
    /// real input as fragments).
    initial: String,
    /// The concatenated input fragments.
    input: String,
    /// The call's events as they came, to release unchanged.
    pub(crate) raw: Vec<u8>,
    /// Bytes of `raw` that are the call's start event.
    pub(crate) start_len: usize,
    /// The input outgrew the limit: nothing more is kept.
    too_large: bool,
}

/// A choice ended: its held calls, each call's verdict by index, and the
/// placeholders restored in their arguments.
pub(crate) type FinishedChoice = (HeldChoice, Vec<(u64, ToolVerdict)>, usize);

/// A call ended and decided.
pub(crate) struct Finished {
    pub(crate) call: HeldCall,
    pub(crate) verdict: ToolVerdict,
    /// The input with the request's placeholders restored, and how many;
    /// `None` when it held none.
    pub(crate) restored: Option<(String, usize)>,
}

/// One OpenAI tool call, assembled from its fragments.
#[derive(Debug, Default)]
pub(crate) struct CallParts {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) arguments: String,
}

/// An OpenAI choice whose tool calls are held until it finishes.
#[derive(Debug, Default)]
pub(crate) struct HeldChoice {
    /// The held chunks as they came.
    pub(crate) raw: Vec<u8>,
    /// The held chunks carried nothing but this choice's tool calls (and
    /// its finish), so they can be released as they came.
    pub(crate) pure: bool,
    /// By `tool_calls` index.
    pub(crate) calls: BTreeMap<u64, CallParts>,
    /// Bytes of arguments kept; past the limit nothing more is kept.
    size: usize,
    too_large: bool,
}

/// The calls of one response held so far, and how the calls of the
/// current message were decided.
pub(crate) struct ToolHolds {
    judge: Arc<dyn ToolJudge>,
    /// The judge is a policy's (`false`: [`PassJudge`], whose allows are
    /// not decisions worth recording).
    judged: bool,
    /// The request's placeholders, restored in each input before judging.
    pub(crate) restore: Option<Arc<Restore>>,
    calls: BTreeMap<u64, HeldCall>,
    /// OpenAI: choices whose calls are held, by choice index.
    choices: BTreeMap<u64, HeldChoice>,
    /// Calls of the current message let through / blocked.
    pub(crate) allowed: u32,
    pub(crate) blocked: u32,
}

impl std::fmt::Debug for ToolHolds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolHolds")
            .field("held", &self.calls.len())
            .field("allowed", &self.allowed)
            .field("blocked", &self.blocked)
            .finish()
    }
}

impl ToolHolds {
    pub(crate) fn new(judge: Arc<dyn ToolJudge>) -> ToolHolds {
        ToolHolds {
            judge,
            judged: true,
            restore: None,
            calls: BTreeMap::new(),
            choices: BTreeMap::new(),
            allowed: 0,
            blocked: 0,
        }
    }

    /// Holds calls only to restore `restore` in their inputs.
    pub(crate) fn restoring(restore: Arc<Restore>) -> ToolHolds {
        let mut holds = ToolHolds::new(Arc::new(PassJudge));
        holds.judged = false;
        holds.restore = Some(restore);
        holds
    }

    /// Whether a decision is worth recording: every decision of a policy's
    /// judge, and blocks of the pass judge.
    pub(crate) fn records(&self, verdict: &ToolVerdict) -> bool {
        self.judged || verdict.is_blocked()
    }

    /// `input` with the request's placeholders restored, and how many.
    fn restored(&self, input: &str) -> Option<(String, usize)> {
        self.restore.as_ref().and_then(|r| r.restore_json(input))
    }

    /// A new message starts: its calls are counted afresh.
    pub(crate) fn new_message(&mut self) {
        self.allowed = 0;
        self.blocked = 0;
    }

    /// Starts holding call `index` of `tool`.
    pub(crate) fn start(&mut self, index: u64, tool: String, initial: &str, raw: &[u8]) {
        let mut call = HeldCall {
            name: tool,
            initial: initial.to_owned(),
            raw: raw.to_vec(),
            start_len: raw.len(),
            ..HeldCall::default()
        };
        call.too_large = initial.len() > self.judge.max_held_bytes();
        if call.too_large {
            call.initial.clear();
            call.raw.clear();
        }
        self.calls.insert(index, call);
    }

    pub(crate) fn is_held(&self, index: u64) -> bool {
        self.calls.contains_key(&index)
    }

    /// Whether any call is held.
    pub(crate) fn any(&self) -> bool {
        !self.calls.is_empty() || !self.choices.is_empty()
    }

    /// Whether choice `choice`'s calls are held.
    pub(crate) fn is_choice_held(&self, choice: u64) -> bool {
        self.choices.contains_key(&choice)
    }

    /// The held choice `choice`, held from now on if it was not.
    pub(crate) fn hold_choice(&mut self, choice: u64) -> &mut HeldChoice {
        self.choices.entry(choice).or_insert_with(|| HeldChoice {
            pure: true,
            ..HeldChoice::default()
        })
    }

    /// Adds a fragment of call `index` of choice `choice`.
    pub(crate) fn add_fragment(
        &mut self,
        choice: u64,
        index: u64,
        id: Option<&str>,
        name: Option<&str>,
        arguments: Option<&str>,
    ) {
        let max = self.judge.max_held_bytes();
        let held = self.hold_choice(choice);
        let added = arguments.map_or(0, str::len);
        if !held.too_large && held.size + added > max {
            // Stop keeping the input: every call of the choice is blocked
            // when it ends (names and ids are kept to say which).
            held.too_large = true;
            held.raw = Vec::new();
            for call in held.calls.values_mut() {
                call.arguments = String::new();
            }
        }
        let call = held.calls.entry(index).or_default();
        if let Some(id) = id {
            call.id.push_str(id);
        }
        if let Some(name) = name {
            call.name.push_str(name);
        }
        if held.too_large {
            return;
        }
        held.size += added;
        if let Some(arguments) = arguments {
            call.arguments.push_str(arguments);
        }
    }

    /// Ends choice `choice` and decides on each of its calls, in index
    /// order, after restoring the request's placeholders in their
    /// arguments (a restored choice is rebuilt, not released as it came).
    /// `None` when it held nothing; with the verdicts, the placeholders
    /// restored.
    pub(crate) fn finish_choice(&mut self, choice: u64) -> Option<FinishedChoice> {
        let mut held = self.choices.remove(&choice)?;
        if held.too_large {
            held.pure = false;
        }
        let mut verdicts = Vec::with_capacity(held.calls.len());
        let mut restored = 0;
        for (index, call) in held.calls.iter_mut() {
            if !held.too_large {
                if let Some((arguments, n)) = self.restored(&call.arguments) {
                    call.arguments = arguments;
                    restored += n;
                    held.pure = false;
                }
            }
            let verdict = if held.too_large {
                self.judge.too_large()
            } else {
                self.judge.judge(&call.name, &call.arguments)
            };
            if verdict.is_blocked() {
                self.blocked += 1;
            } else {
                self.allowed += 1;
            }
            verdicts.push((*index, verdict));
        }
        Some((held, verdicts, restored))
    }

    /// Adds a fragment of call `index`'s input (with the event carrying it).
    pub(crate) fn append(&mut self, index: u64, fragment: &str, raw: &[u8]) {
        let max = self.judge.max_held_bytes();
        let Some(call) = self.calls.get_mut(&index) else {
            return;
        };
        if call.too_large {
            return;
        }
        if call.input.len() + fragment.len() > max {
            // Stop keeping it: it is blocked when it ends.
            call.too_large = true;
            call.input = String::new();
            call.raw = Vec::new();
            return;
        }
        call.input.push_str(fragment);
        call.raw.extend_from_slice(raw);
    }

    /// Adds an event of call `index` that carries no input.
    pub(crate) fn append_raw(&mut self, index: u64, raw: &[u8]) {
        if let Some(call) = self.calls.get_mut(&index) {
            if !call.too_large {
                call.raw.extend_from_slice(raw);
            }
        }
    }

    /// Ends call `index` (its last event is `raw`) and decides on it,
    /// after restoring the request's placeholders in its input: with the
    /// verdict, the restored input and how many placeholders it got back.
    pub(crate) fn finish(&mut self, index: u64, raw: &[u8]) -> Option<Finished> {
        let mut call = self.calls.remove(&index)?;
        let mut restored = None;
        let verdict = if call.too_large {
            self.judge.too_large()
        } else {
            call.raw.extend_from_slice(raw);
            let input = if call.input.is_empty() {
                call.initial.as_str()
            } else {
                call.input.as_str()
            };
            restored = self.restored(input);
            let judged = restored.as_ref().map_or(input, |(r, _)| r.as_str());
            self.judge.judge(&call.name, judged)
        };
        if verdict.is_blocked() {
            self.blocked += 1;
        } else {
            self.allowed += 1;
        }
        Some(Finished {
            call,
            verdict,
            restored,
        })
    }

    /// Drops every held call (the stream ended or failed).
    pub(crate) fn clear(&mut self) {
        self.calls.clear();
        self.choices.clear();
    }
}
