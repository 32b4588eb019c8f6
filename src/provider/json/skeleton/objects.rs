//! The object cut in a second pass over a skeleton: where the vector pass
//! cannot run (no AVX2), and the reference the tests hold it to.

use std::borrow::Cow;

use super::Skeleton;
use crate::provider::json::skip;

impl<'a> Skeleton<'a> {
    /// This skeleton with the contents of every object that is the value
    /// of a `key` member cut too (see [`Skeleton::without`]),
    /// and the offsets of those objects' opening braces; `None` when there
    /// is none (or one does not end). A second pass over a skeleton: the
    /// form without AVX2, and the reference the tests hold the one-pass
    /// form to.
    pub(crate) fn objects_cut(&self, key: &str) -> Option<(Skeleton<'a>, Vec<usize>)> {
        let text = self.text.as_bytes();
        let quoted = format!("\"{key}\"");
        let finder = memchr::memmem::Finder::new(quoted.as_bytes());
        let ws = |at: usize| {
            at + text[at.min(text.len())..]
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count()
        };
        // Skeleton offsets of each cut object's contents.
        let mut interiors: Vec<(usize, usize)> = Vec::new();
        let mut from = 0;
        while let Some(at) = finder.find(&text[from..]).map(|i| from + i) {
            from = at + quoted.len();
            let before = text[..at].iter().rposition(|b| !b.is_ascii_whitespace());
            if !before.is_some_and(|k| matches!(text[k], b'{' | b',')) {
                continue;
            }
            let colon = ws(from);
            if text.get(colon) != Some(&b':') {
                continue;
            }
            let open = ws(colon + 1);
            if text.get(open) != Some(&b'{') {
                continue;
            }
            let close = skip::matching_close(text, open)?;
            if close > open + 1 {
                interiors.push((open + 1, close));
            }
            from = close + 1;
        }
        if interiors.is_empty() {
            return None;
        }
        let removed_total: usize = interiors.iter().map(|(a, b)| b - a).sum();
        let mut out = String::with_capacity(text.len() - removed_total);
        let mut cuts = Vec::with_capacity(self.cuts.len() + interiors.len());
        let mut opens = Vec::with_capacity(interiors.len());
        // Skeleton bytes removed so far, and copied so far.
        let (mut removed, mut copied) = (0, 0);
        let mut old = self.cuts.iter().peekable();
        for &(a, b) in &interiors {
            // String cuts before this object stay, shifted; the ones in it go.
            while let Some(&&(at, total)) = old.peek() {
                if at >= a {
                    break;
                }
                cuts.push((at - removed, total + removed));
                old.next();
            }
            while old.next_if(|&&(at, _)| at < b).is_some() {}
            out.push_str(&self.text[copied..a]);
            opens.push(out.len() - 1);
            // From the closing brace on, new offsets map to the body
            // offsets of the old ones.
            cuts.push((out.len(), self.to_body(b) - out.len()));
            removed += b - a;
            copied = b;
        }
        for &(at, total) in old {
            cuts.push((at - removed, total + removed));
        }
        out.push_str(&self.text[copied..]);
        Some((
            Skeleton {
                body: self.body,
                text: Cow::Owned(out),
                cuts,
            },
            opens,
        ))
    }
}
