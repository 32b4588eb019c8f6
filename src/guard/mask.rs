//! Masking: findings written into a JSON literal as placeholders.

use std::ops::Range;

use super::Finding;

/// Writes a segment's literal content with its mask findings (ranges of
/// the literal) applied into `out`: placeholders are JSON-escaped, every
/// other byte is copied as it is.
pub fn mask_literal(literal: &str, findings: &[&Finding], out: &mut Vec<u8>) {
    for (piece, is_placeholder) in masked_pieces(literal, findings) {
        if is_placeholder && piece.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            let quoted = serde_json::to_string(piece).expect("strings always serialise");
            out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
        } else {
            out.extend_from_slice(piece.as_bytes());
        }
    }
}

/// The pieces of `text` with findings applied, in order: kept stretches
/// (`false`) and placeholders (`true`). Overlapping findings merge; the
/// earliest finding's placeholder names the merged span.
fn masked_pieces<'t>(text: &'t str, findings: &[&'t Finding]) -> Vec<(&'t str, bool)> {
    let mut spans: Vec<(Range<usize>, &str)> = findings
        .iter()
        .map(|f| (f.range.clone(), f.placeholder.as_str()))
        .collect();
    spans.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
    let mut out = Vec::with_capacity(2 * spans.len() + 1);
    let mut at = 0;
    let mut i = 0;
    while i < spans.len() {
        let (mut range, placeholder) = spans[i].clone();
        i += 1;
        while i < spans.len() && spans[i].0.start < range.end {
            range.end = range.end.max(spans[i].0.end);
            i += 1;
        }
        if range.start < at {
            continue;
        }
        out.push((&text[at..range.start], false));
        out.push((placeholder, true));
        at = range.end;
    }
    out.push((&text[at..], false));
    out
}
