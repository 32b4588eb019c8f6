//! The hold-back window: scanning a block's held text plus new text and
//! deciding what is released (masks applied), what stays held, or that a
//! match rejects the response. Shared by the stream guard and the JSON
//! body guard (which releases a whole text at once).

use std::ops::Range;

use super::{MatchAction, ScanMatch, StreamError, TextScanner};

/// The result of scanning a block's held text plus new text.
pub(crate) enum Step {
    Release {
        /// Text to send, masks applied.
        text: String,
        /// Bytes of the scanned buffer consumed; the rest stays held.
        cut: usize,
        masks: Vec<(Range<usize>, String)>,
        /// Shadow rules' matches released (rule names): the text is as it came.
        audits: Vec<(Range<usize>, String)>,
        /// Placeholders of the request put back.
        restored: usize,
    },
    Reject {
        range: Range<usize>,
        rule: String,
        message: String,
    },
}

/// Scans `buf` and decides what can be released: all of it when `end`,
/// else everything but the last `window` bytes, extended past any match
/// that starts before the cut.
pub(crate) fn release(
    scanner: &dyn TextScanner,
    window: usize,
    buf: &str,
    end: bool,
) -> Result<Step, StreamError> {
    let matches = scanner.scan(buf);
    check_matches(&matches, buf)?;
    let mut cut = if end {
        buf.len()
    } else {
        floor_char_boundary(buf, buf.len().saturating_sub(window))
    };
    let mut text = String::with_capacity(cut);
    let mut pos = 0;
    let mut masks = Vec::new();
    let mut audits = Vec::new();
    let mut restored = 0;
    for m in matches {
        if !end && m.range.start >= cut {
            break;
        }
        match m.action {
            MatchAction::Reject { rule, message } => {
                return Ok(Step::Reject {
                    range: m.range,
                    rule,
                    message,
                })
            }
            MatchAction::Mask { placeholder } => {
                text.push_str(&buf[pos..m.range.start]);
                text.push_str(&placeholder);
                pos = m.range.end;
                cut = cut.max(m.range.end);
                masks.push((m.range, placeholder));
            }
            MatchAction::Restore { value } => {
                text.push_str(&buf[pos..m.range.start]);
                text.push_str(&value);
                pos = m.range.end;
                cut = cut.max(m.range.end);
                restored += 1;
            }
            MatchAction::Audit { rule } => {
                // Released whole, unchanged, so it is recorded once.
                text.push_str(&buf[pos..m.range.end]);
                pos = m.range.end;
                cut = cut.max(m.range.end);
                audits.push((m.range, rule));
            }
        }
    }
    text.push_str(&buf[pos..cut]);
    Ok(Step::Release {
        text,
        cut,
        masks,
        audits,
        restored,
    })
}

fn check_matches(matches: &[ScanMatch], text: &str) -> Result<(), StreamError> {
    let mut prev = 0;
    for m in matches {
        let r = &m.range;
        if r.start < prev
            || r.start > r.end
            || r.end > text.len()
            || !text.is_char_boundary(r.start)
            || !text.is_char_boundary(r.end)
        {
            return Err(StreamError::Scanner(format!(
                "range {}..{} over {} bytes of text (after {prev})",
                r.start,
                r.end,
                text.len()
            )));
        }
        prev = r.end;
    }
    Ok(())
}

#[inline]
pub(crate) fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
