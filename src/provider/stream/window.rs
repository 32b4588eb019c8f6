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
        /// Shadow rules' matches that start before the cut (rule names):
        /// the text is as it came.
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
                // Recorded; the text and the cut stay as they are: a
                // shadow match never releases text an acting match not yet
                // complete may need (the stream guard records a match seen
                // again from held text once).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Matches as given.
    struct Fixed(Vec<ScanMatch>);

    impl TextScanner for Fixed {
        fn window(&self) -> usize {
            0
        }
        fn scan(&self, _: &str) -> Vec<ScanMatch> {
            self.0.clone()
        }
    }

    #[test]
    fn a_shadow_match_across_the_cut_releases_nothing_past_it() {
        let buf = "0123456789abcdefghij";
        let audit = ScanMatch {
            range: 8..14,
            action: MatchAction::Audit {
                rule: "shadow".into(),
            },
        };
        // Window 10: the cut is at 10; the shadow match runs to 14.
        let Step::Release {
            text,
            cut,
            masks,
            audits,
            ..
        } = release(&Fixed(vec![audit.clone()]), 10, buf, false).unwrap()
        else {
            panic!()
        };
        assert_eq!((text.as_str(), cut), ("0123456789", 10));
        assert!(masks.is_empty());
        assert_eq!(audits, [(8..14, "shadow".to_owned())]);
        // A mask there would take its whole match (it is replaced).
        let mask = ScanMatch {
            range: 8..14,
            action: MatchAction::Mask {
                placeholder: "<X>".into(),
            },
        };
        let Step::Release { text, cut, .. } = release(&Fixed(vec![mask]), 10, buf, false).unwrap()
        else {
            panic!()
        };
        assert_eq!((text.as_str(), cut), ("01234567<X>", 14));
        // At the end everything goes, as it came.
        let Step::Release { text, audits, .. } =
            release(&Fixed(vec![audit]), 10, buf, true).unwrap()
        else {
            panic!()
        };
        assert_eq!((text.as_str(), audits.len()), (buf, 1));
    }
}
