//! Restoring placeholders on the way back.
//!
//! A request's masks replace values with tagged placeholders
//! (`<AWS_SECRET_KEY:3f9a1c>`, see [`crate::guard::placeholder`]). When the
//! model repeats one in its answer — in text, or in a tool call's input
//! (a `.env` the agent rewrites) — the client must get the value back, or
//! the file the agent writes is wrong. A [`Restore`] is what one request's
//! own masking produced, placeholder → original value; nothing is kept
//! between requests (every turn re-sends the history that holds the
//! originals, and masks it again to the same placeholders). A placeholder
//! the request did not produce is left as it is.
//!
//! Text is restored by the stream engine's window as one more kind of
//! match ([`Restoring`] wraps the response guards' scanner); tool inputs,
//! which are JSON, by [`Restore::restore_json`] on the whole input once the
//! call is complete (the engine holds calls while a restore is on).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use super::json::json_string;
use super::stream::{MatchAction, ScanMatch, TextScanner};

/// Placeholder → original value, for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restore {
    map: HashMap<String, String>,
    /// Placeholders that stood for two different values (a tag
    /// collision): never restored, since either value could be wrong.
    conflicted: HashSet<String>,
    /// Longest placeholder, in bytes.
    longest: usize,
}

impl Restore {
    pub fn new() -> Restore {
        Restore::default()
    }

    /// Records that `placeholder` replaced `value`.
    pub fn insert(&mut self, placeholder: String, value: String) {
        if self.conflicted.contains(&placeholder) {
            return;
        }
        match self.map.get(&placeholder) {
            Some(v) if *v != value => {
                tracing::debug!(%placeholder, "two values share a placeholder; it is not restored");
                self.map.remove(&placeholder);
                self.conflicted.insert(placeholder);
            }
            Some(_) => {}
            None => {
                self.longest = self.longest.max(placeholder.len());
                self.map.insert(placeholder, value);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Distinct placeholders that can be restored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The longest placeholder, in bytes: the hold-back window of text.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// The value `placeholder` stands for.
    pub fn get(&self, placeholder: &str) -> Option<&str> {
        self.map.get(placeholder).map(String::as_str)
    }

    /// This request's placeholders in `text`, in order, with their values.
    pub fn find<'a>(&'a self, text: &str) -> Vec<(Range<usize>, &'a str)> {
        let mut out = Vec::new();
        if self.map.is_empty() {
            return out;
        }
        let bytes = text.as_bytes();
        let mut at = 0;
        while let Some(i) = memchr::memchr(b'<', &bytes[at..]).map(|i| at + i) {
            let end = (i + self.longest).min(bytes.len());
            let close = memchr::memchr2(b'>', b'<', &bytes[i + 1..end]).map(|j| i + 1 + j);
            match close {
                Some(j) if bytes[j] == b'>' => {
                    if let Some((key, value)) = self.map.get_key_value(&text[i..=j]) {
                        debug_assert_eq!(key.len(), j + 1 - i);
                        out.push((i..j + 1, value.as_str()));
                        at = j + 1;
                        continue;
                    }
                    at = i + 1;
                }
                // Another `<` first: the next candidate starts there.
                Some(j) => at = j,
                None => at = i + 1,
            }
        }
        out
    }

    /// `text` with this request's placeholders restored; `None` when it
    /// holds none.
    pub fn restore_text(&self, text: &str) -> Option<String> {
        self.restore_counted(text).map(|(s, _)| s)
    }

    /// [`Self::restore_text`] with the number of placeholders restored.
    fn restore_counted(&self, text: &str) -> Option<(String, usize)> {
        let found = self.find(text);
        if found.is_empty() {
            return None;
        }
        let count = found.len();
        let mut out = String::with_capacity(text.len() + 64 * found.len());
        let mut at = 0;
        for (range, value) in found {
            out.push_str(&text[at..range.start]);
            out.push_str(value);
            at = range.end;
        }
        out.push_str(&text[at..]);
        Some((out, count))
    }

    /// A JSON text (a tool call's input) with the placeholders in its
    /// string values (and keys) restored; only the strings that held one
    /// are re-encoded, every other byte stays. `None` when nothing was
    /// restored. Text that is not JSON is read as far as its strings can be
    /// found; a string that does not decode is left as it is. With the new
    /// text comes the number of placeholders restored.
    pub fn restore_json(&self, json: &str) -> Option<(String, usize)> {
        if self.map.is_empty() {
            return None;
        }
        let bytes = json.as_bytes();
        let mut edits: Vec<(Range<usize>, String)> = Vec::new();
        let mut count = 0;
        let mut i = 0;
        while let Some(start) = memchr::memchr(b'"', &bytes[i..]).map(|k| i + k) {
            // The closing quote: the first `"` not escaped.
            let mut j = start + 1;
            let end = loop {
                match memchr::memchr2(b'"', b'\\', &bytes[j..]).map(|k| j + k) {
                    None => break None,
                    Some(k) if bytes[k] == b'\\' => j = k + 2,
                    Some(k) => break Some(k),
                }
                if j >= bytes.len() {
                    break None;
                }
            };
            let Some(end) = end else { break };
            let raw = &json[start..=end];
            // A placeholder is written as it is, or with `<` escaped
            // (`\u003c`, as some encoders do).
            if memchr::memchr(b'<', raw.as_bytes()).is_some() || raw.contains("\\u") {
                if let Ok(decoded) = serde_json::from_str::<String>(raw) {
                    if let Some((restored, n)) = self.restore_counted(&decoded) {
                        count += n;
                        edits.push((start..end + 1, json_string(&restored)));
                    }
                }
            }
            i = end + 1;
        }
        if edits.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(json.len() + 64 * edits.len());
        let mut at = 0;
        for (range, text) in edits {
            out.push_str(&json[at..range.start]);
            out.push_str(&text);
            at = range.end;
        }
        out.push_str(&json[at..]);
        Some((out, count))
    }
}

/// The scanner of a response whose request was masked: the response
/// guards' matches (if any guard reads the response), and this request's
/// placeholders outside them, restored.
pub struct Restoring {
    pub guards: Option<Arc<dyn TextScanner + Send + Sync>>,
    pub restore: Arc<Restore>,
}

impl TextScanner for Restoring {
    fn window(&self) -> usize {
        let guards = self.guards.as_ref().map_or(0, |g| g.window());
        guards.max(self.restore.longest())
    }

    fn scan(&self, text: &str) -> Vec<ScanMatch> {
        let mut guarded = self
            .guards
            .as_ref()
            .map(|g| g.scan(text))
            .unwrap_or_default();
        let restored = self.restore.find(text);
        if restored.is_empty() {
            return guarded;
        }
        // A shadow (`Audit`) match changes nothing, so it never keeps a
        // placeholder from being restored: it is kept only where no
        // placeholder is.
        let shadow: Vec<ScanMatch> = if guarded
            .iter()
            .any(|m| matches!(m.action, MatchAction::Audit { .. }))
        {
            let (shadow, acting) = guarded
                .into_iter()
                .partition(|m| matches!(m.action, MatchAction::Audit { .. }));
            guarded = acting;
            shadow
        } else {
            Vec::new()
        };
        let mut out = Vec::with_capacity(guarded.len() + restored.len());
        let mut g = guarded.into_iter().peekable();
        for (range, value) in restored {
            while let Some(m) = g.next_if(|m| m.range.start < range.end) {
                out.push(m);
            }
            // A guard's match wins where they overlap.
            if out.last().is_some_and(|m| m.range.end > range.start) {
                continue;
            }
            out.push(ScanMatch {
                range,
                action: MatchAction::Restore {
                    value: value.to_owned(),
                },
            });
        }
        out.extend(g);
        if !shadow.is_empty() {
            let free: Vec<ScanMatch> = shadow
                .into_iter()
                .filter(|m| {
                    !out.iter()
                        .any(|o| o.range.start < m.range.end && m.range.start < o.range.end)
                })
                .collect();
            out.extend(free);
            out.sort_by_key(|m| m.range.start);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore() -> Restore {
        let mut r = Restore::new();
        r.insert("<AWS_SECRET_KEY:3f9a1c>".into(), "wJalr/K7MDENG+bPx".into());
        r.insert("<PASSWORD:00aa11>".into(), "p\"a\\ss\nword".into());
        r
    }

    #[test]
    fn finds_only_this_requests_placeholders() {
        let r = restore();
        let text = "a <AWS_SECRET_KEY:3f9a1c> b <AWS_SECRET_KEY:ffffff> <<PASSWORD:00aa11>>";
        let found = r.find(text);
        assert_eq!(found.len(), 2);
        assert_eq!(&text[found[0].0.clone()], "<AWS_SECRET_KEY:3f9a1c>");
        assert_eq!(found[1].1, "p\"a\\ss\nword");
        assert_eq!(
            r.restore_text(text).unwrap(),
            "a wJalr/K7MDENG+bPx b <AWS_SECRET_KEY:ffffff> <p\"a\\ss\nword>"
        );
        assert_eq!(r.restore_text("nothing <here>"), None);
        assert!(Restore::new().find("<AWS_SECRET_KEY:3f9a1c>").is_empty());
    }

    #[test]
    fn json_strings_are_re_encoded_and_nothing_else_moves() {
        let r = restore();
        let input = r#"{"file_path": "/app/.env", "content":"KEY=<AWS_SECRET_KEY:3f9a1c>\nPW=<PASSWORD:00aa11>\n", "n": 1}"#;
        let (out, n) = r.restore_json(input).unwrap();
        assert_eq!(n, 2);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["content"], "KEY=wJalr/K7MDENG+bPx\nPW=p\"a\\ss\nword\n");
        assert!(out.starts_with(r#"{"file_path": "/app/.env", "content":"#));
        assert!(out.ends_with(r#", "n": 1}"#));
        // An escaped `<` (`\u003c`) still names the placeholder.
        let escaped = r#"{"a":"\u003cAWS_SECRET_KEY:3f9a1c>"}"#;
        assert_eq!(
            r.restore_json(escaped).unwrap(),
            (r#"{"a":"wJalr/K7MDENG+bPx"}"#.to_owned(), 1)
        );
        assert_eq!(r.restore_json(r#"{"a":"<OTHER:000000>"}"#), None);
        // Not JSON: read as far as strings go, never a panic.
        for junk in [
            "\"",
            "\"\\",
            "{\"a\":\"<AWS_SECRET_KEY:3f9a1c>",
            "<\"\\u12\">",
            "\u{e9}\"\u{e9}<\"",
        ] {
            let _ = r.restore_json(junk);
        }
    }

    /// Guard matches as given.
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
    fn a_shadow_match_never_keeps_a_placeholder_from_coming_back() {
        let text = "key <AWS_SECRET_KEY:3f9a1c> and drop table x";
        let audit = |range: std::ops::Range<usize>| ScanMatch {
            range,
            action: MatchAction::Audit {
                rule: "shadow".into(),
            },
        };
        // One shadow match over the placeholder, one elsewhere.
        let guards = Fixed(vec![audit(0..10), audit(32..42)]);
        let scanner = Restoring {
            guards: Some(Arc::new(guards)),
            restore: Arc::new(restore()),
        };
        let found = scanner.scan(text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].range, 4..27);
        assert!(matches!(found[0].action, MatchAction::Restore { .. }));
        assert_eq!(found[1], audit(32..42));
    }

    #[test]
    fn a_placeholder_with_two_values_is_never_restored() {
        let mut r = restore();
        r.insert("<AWS_SECRET_KEY:3f9a1c>".into(), "other".into());
        r.insert("<AWS_SECRET_KEY:3f9a1c>".into(), "wJalr/K7MDENG+bPx".into());
        assert_eq!(r.get("<AWS_SECRET_KEY:3f9a1c>"), None);
        assert_eq!(r.len(), 1);
        // The same value twice is one entry.
        r.insert("<PASSWORD:00aa11>".into(), "p\"a\\ss\nword".into());
        assert_eq!(r.len(), 1);
    }
}
