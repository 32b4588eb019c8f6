//! Masking: findings written into a JSON literal as tagged placeholders
//! (see [`super::placeholder`]), and what each placeholder stands for
//! noted for the response's [restore](crate::provider::restore).

use std::collections::HashMap;
use std::ops::Range;

use super::{Finding, MaskKey};
use crate::provider::literal;
use crate::provider::restore::Restore;

/// Writes a segment's literal content with its mask findings (ranges of
/// the literal) applied into `out`: each masked span becomes the
/// placeholder of its decoded value (JSON-escaped when it needs to be),
/// every other byte is copied as it is. Spans of restoring findings are
/// noted in `restore`.
///
/// A value masked again in the same literal (an author's e-mail address
/// through a `git log`) takes the placeholder made the first time: the
/// keyed hash was a fifth of the 1 MB `git log` decision with
/// `[Secrets, Pii]` and 50 organisation patterns (callgrind).
pub fn mask_literal(
    literal: &str,
    findings: &[&Finding],
    key: &MaskKey,
    restore: &mut Restore,
    out: &mut Vec<u8>,
) {
    let mut at = 0;
    let mut made: HashMap<(&str, &str), String> = HashMap::new();
    for span in merged(findings) {
        out.extend_from_slice(&literal.as_bytes()[at..span.range.start]);
        let raw = &literal[span.range.clone()];
        let value = literal::decode(raw);
        // By raw span: equal raw bytes decode to equal values.
        let placeholder = made
            .entry((span.base, raw))
            .or_insert_with(|| key.placeholder(span.base, &value))
            .clone();
        if placeholder
            .bytes()
            .any(|b| b < 0x20 || b == b'"' || b == b'\\')
        {
            let quoted = serde_json::to_string(&placeholder).expect("strings always serialise");
            out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
        } else {
            out.extend_from_slice(placeholder.as_bytes());
        }
        if span.restore {
            restore.insert(placeholder, value.into_owned());
        }
        at = span.range.end;
    }
    out.extend_from_slice(&literal.as_bytes()[at..]);
}

/// One masked span: overlapping findings merged.
struct Span<'f> {
    range: Range<usize>,
    /// The earliest finding's bare placeholder names the merged span.
    base: &'f str,
    /// Every finding of the span restores.
    restore: bool,
}

/// The findings' spans, merged where they overlap, in order.
fn merged<'f>(findings: &[&'f Finding]) -> Vec<Span<'f>> {
    let mut sorted: Vec<&Finding> = findings.to_vec();
    sorted.sort_by_key(|f| (f.range.start, std::cmp::Reverse(f.range.end)));
    let mut out: Vec<Span<'f>> = Vec::with_capacity(sorted.len());
    for f in sorted {
        match out.last_mut() {
            Some(last) if f.range.start < last.range.end => {
                last.range.end = last.range.end.max(f.range.end);
                last.restore &= f.restore;
            }
            _ => out.push(Span {
                range: f.range.clone(),
                base: f.placeholder.as_str(),
                restore: f.restore,
            }),
        }
    }
    out
}
