//! Tool calls in a whole Anthropic message: a blocked `tool_use` block
//! becomes a `text` block at the same place; with no call left,
//! `stop_reason` becomes `end_turn`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::provider::json::{span_of, splice};
use crate::provider::restore::Restore;
use crate::provider::stream::StreamError;
use crate::provider::tool_call::{ToolDecision, ToolJudge, ToolVerdict};
use crate::provider::tool_json::{bad, JsonTools};

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    stop_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
}

pub(crate) fn judge(
    body: &str,
    judge: &dyn ToolJudge,
    restore: Option<&Restore>,
) -> Result<JsonTools, StreamError> {
    let msg: Message<'_> = serde_json::from_str(body).map_err(bad)?;
    let mut out = JsonTools::default();
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let (mut allowed, mut blocked) = (0, 0);
    for (i, raw) in msg.content.iter().flatten().enumerate() {
        let block: Block<'_> =
            serde_json::from_str(raw.get()).map_err(|e| bad(format!("content[{i}]: {e}")))?;
        if block.kind.as_deref() != Some("tool_use") {
            continue;
        }
        let name = block
            .name
            .ok_or_else(|| bad(format!("content[{i}]: a `tool_use` block without a `name`")))?;
        let input = block.input.map_or("{}", RawValue::get);
        let restored = restore.and_then(|r| r.restore_json(input));
        let verdict = judge.judge(&name, restored.as_ref().map_or(input, |(r, _)| r));
        if let ToolVerdict::Block { message, .. } = &verdict {
            blocked += 1;
            let text = serde_json::json!({"type": "text", "text": message}).to_string();
            edits.push((span_of(body, raw), text));
        } else {
            allowed += 1;
            if let (Some((input, n)), Some(raw_input)) = (restored, block.input) {
                out.restored += n;
                edits.push((span_of(body, raw_input), input));
            }
        }
        out.tools.push(ToolDecision {
            index: i as u64,
            tool: name.into_owned(),
            verdict,
        });
    }
    if blocked > 0 && allowed == 0 {
        if let Some(reason) = msg.stop_reason.filter(|r| r.get() == "\"tool_use\"") {
            edits.push((span_of(body, reason), "\"end_turn\"".into()));
        }
    }
    if !edits.is_empty() {
        out.body = Some(splice(body, edits));
    }
    Ok(out)
}
