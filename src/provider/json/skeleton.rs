//! A request body with the contents of its long string literals cut out,
//! for serde to walk; every offset in it maps back to the body.
//!
//! A Claude Code session is megabytes of file contents in `tool_result`
//! strings, thick with `\n` and `\"` escapes. serde_json skips a string
//! eight bytes at a time and stops at every escape; most of a request's
//! parse was spent there. One AVX2 pass ([`pass`]) finds every string
//! literal, checks the escapes and control bytes of the long ones as serde
//! would, and copies the body without their contents; serde then parses a
//! skeleton of a few percent of the body.
//!
//! Why the result is the same as parsing the body: up to the first byte
//! where the two differ, serde reads identical bytes, and a literal is cut
//! only from just after an opening quote to its closing quote, found the
//! way JSON finds them (a quote ends a string unless an odd run of
//! backslashes precedes it). The bytes cut are valid string content (their
//! escapes and control bytes were checked), so serde reads `""` where it
//! would have read a valid string. A body that is not valid JSON stays
//! invalid: the first construct that makes it so lies outside the cut
//! strings, and when anything is off the body is parsed whole instead.
//! Only long strings are cut (no key or type name serde compares is that
//! long): a cut string is read from the body itself.
//!
//! [`Skeleton::without`] also cuts the values of members no guard reads (a
//! tool's `input_schema`, a tool list nothing reads), each left as `{}` or
//! `[]`. Those are stepped over by bracket matching, not validated: the
//! caller checks that they lie where nothing is read, and the provider
//! refuses a body that is not JSON. Without AVX2 the object cut is a second
//! pass over the skeleton ([`objects`]).

use std::borrow::Cow;
use std::ops::Range;

use serde_json::value::RawValue;

#[cfg(target_arch = "x86_64")]
use super::block;
use crate::provider::BodyError;

mod objects;
#[cfg(target_arch = "x86_64")]
mod pass;
#[cfg(target_arch = "x86_64")]
use pass::cut_avx2;

/// String contents shorter than this are left in the skeleton (the cut
/// runs only with AVX2; elsewhere the skeleton is the whole body).
#[cfg(target_arch = "x86_64")]
const CUT: usize = 256;

/// What [`Skeleton::without`] leaves out besides long strings' contents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unread<'k> {
    /// The key of members whose object values are cut wherever they are
    /// (the caller checks where they were).
    pub objects_of: &'k str,
    /// The key of a top-level member whose value is cut.
    pub top_level: Option<&'k str>,
}

/// A body and the skeleton serde reads in its place.
#[derive(Debug)]
pub(crate) struct Skeleton<'a> {
    body: &'a str,
    text: Cow<'a, str>,
    /// Per cut string, in order: the skeleton offset of its closing quote,
    /// and the bytes cut up to and including it.
    cuts: Vec<(usize, usize)>,
}

impl<'a> Skeleton<'a> {
    /// The skeleton of `body`, or `body` itself when nothing is worth
    /// cutting, the CPU has no AVX2, or the body is not valid JSON in a
    /// way the scan can see (serde then reports it).
    pub(crate) fn of(body: &'a str) -> Skeleton<'a> {
        #[cfg(target_arch = "x86_64")]
        if body.len() >= 4 * CUT && block::supported() {
            // SAFETY: AVX2, POPCNT and PCLMULQDQ were detected just now.
            if let Some((text, cuts, _)) = unsafe { cut_avx2(body, None) } {
                return Skeleton {
                    body,
                    text: Cow::Owned(text),
                    cuts,
                };
            }
        }
        Skeleton::whole(body)
    }

    /// The skeleton of `body` with, besides its long strings, the contents
    /// of every object that is the value of an `objects_of` member (`"key": {…}`)
    /// cut, each left as `{}`; and the skeleton offsets of those objects'
    /// opening braces (none: nothing such was cut). One pass: each such
    /// object is stepped over by [`super::skip`]'s bracket matcher, never
    /// copied or looked into. For values no one reads (a tool's
    /// `input_schema`): the caller must check that every object cut lies
    /// where nothing is read (it learns where from the parse) and else
    /// parse [`Skeleton::of`].
    ///
    /// A member is recognised by its bytes: `"key"` after `{` or `,` (and
    /// white space), then `:` and `{`. In valid JSON nothing else looks so:
    /// a quote inside a string is escaped, so it follows a backslash. What
    /// lies inside a cut object is not validated (the provider refuses a
    /// body that is not JSON).
    ///
    /// With `top_level`, the value (object or array) of that member of the
    /// body's top-level object is cut the same way (with AVX2 only): the
    /// pass counts brackets outside strings, so a member of that name
    /// anywhere deeper is left alone; what it cuts is at depth one by
    /// construction and its opening is not listed.
    pub(crate) fn without(body: &'a str, unread: Unread<'_>) -> (Skeleton<'a>, Vec<usize>) {
        #[cfg(target_arch = "x86_64")]
        if body.len() >= 4 * CUT && block::supported() {
            // SAFETY: AVX2, POPCNT and PCLMULQDQ were detected just now.
            return match unsafe { cut_avx2(body, Some(unread)) } {
                Some((text, cuts, opens)) => (
                    Skeleton {
                        body,
                        text: Cow::Owned(text),
                        cuts,
                    },
                    opens,
                ),
                None => (Skeleton::whole(body), Vec::new()),
            };
        }
        // Without the vector pass (measured on a captured Claude Code
        // request, the two-pass form cost the decision ~5 µs more).
        let whole = Skeleton::whole(body);
        match whole.objects_cut(unread.objects_of) {
            Some(cut) => cut,
            None => (whole, Vec::new()),
        }
    }

    /// `body` itself, nothing cut.
    pub(crate) fn whole(body: &'a str) -> Skeleton<'a> {
        Skeleton {
            body,
            text: Cow::Borrowed(body),
            cuts: Vec::new(),
        }
    }

    /// What serde parses.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The body the skeleton stands for.
    pub(crate) fn body(&self) -> &'a str {
        self.body
    }

    /// The skeleton parsed as `T`; an error names the body's own line and
    /// column (the body is parsed again for it).
    pub(crate) fn parse<'s, T: serde::Deserialize<'s>>(&'s self) -> Result<T, BodyError> {
        serde_json::from_str(&self.text).map_err(|e| {
            let e = serde_json::from_str::<T>(self.body).err().unwrap_or(e);
            BodyError(format!("invalid JSON: {e}"))
        })
    }

    /// The body offset of skeleton offset `pos`.
    fn to_body(&self, pos: usize) -> usize {
        let k = self.cuts.partition_point(|&(at, _)| at <= pos);
        pos + k.checked_sub(1).map_or(0, |k| self.cuts[k].1)
    }

    /// The body range of a skeleton range (a cut string's `""` stands for
    /// its whole literal).
    pub(crate) fn range(&self, r: Range<usize>) -> Range<usize> {
        if r.is_empty() {
            let at = self.to_body(r.start);
            return at..at;
        }
        self.to_body(r.start)..self.to_body(r.end - 1) + 1
    }

    /// The skeleton offset of a string serde lent from the skeleton.
    pub(crate) fn offset_of(&self, lent: &str) -> usize {
        lent.as_ptr() as usize - self.text.as_ptr() as usize
    }

    /// The body range of a raw value serde lent from the skeleton.
    pub(crate) fn span(&self, raw: &RawValue) -> Range<usize> {
        let start = self.offset_of(raw.get());
        debug_assert!(start + raw.get().len() <= self.text.len());
        self.range(start..start + raw.get().len())
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn long(s: &str) -> String {
        s.repeat(4 * CUT / s.len() + 1)
    }

    #[test]
    fn long_strings_are_cut_and_map_back() {
        if !block::supported() {
            return;
        }
        let a = long(r#"line \"one\"\n\u00e9 "#);
        let body =
            format!(r#"{{"k": "short", "big": "{a}", "list": ["{a}", 1, "x"], "end": true}}"#);
        let s = Skeleton::of(&body);
        assert_eq!(
            s.text(),
            r#"{"k": "short", "big": "", "list": ["", 1, "x"], "end": true}"#
        );
        let v: serde_json::Value = serde_json::from_str(s.text()).unwrap();
        assert_eq!(v["end"], true);
        // Each cut "" maps onto its whole literal in the body.
        let first = s.text().find(r#""""#).unwrap();
        let r = s.range(first..first + 2);
        assert_eq!(&body[r.clone()], format!("\"{a}\""));
        let second = s.text().rfind(r#""""#).unwrap();
        assert_eq!(&body[s.range(second..second + 2)], format!("\"{a}\""));
        // Offsets after the cuts shift by what was cut.
        let end = s.text().find("\"end\"").unwrap();
        assert_eq!(&body[s.range(end..end + 5)], "\"end\"");
        // A raw value holding cut strings spans them in the body.
        let list = s.text().find('[').unwrap();
        let close = s.text().find(']').unwrap();
        assert_eq!(
            &body[s.range(list..close + 1)],
            format!(r#"["{a}", 1, "x"]"#)
        );
    }

    #[test]
    fn what_serde_would_refuse_is_left_whole() {
        if !block::supported() {
            return;
        }
        let a = long("abc");
        for bad in [
            format!(r#"{{"x": "{a}\q"}}"#),
            format!(r#"{{"x": "{a}\u12G4"}}"#),
            format!("{{\"x\": \"{a}\u{1}\"}}"),
            format!(r#"{{"x": "{a}"#),
        ] {
            let s = Skeleton::of(&bad);
            assert_eq!(s.text(), bad, "{bad:?}");
        }
        // An escaped quote and escaped backslashes do not end a string.
        let tricky = format!(r#"{{"x": "{a}\\\"\\", "y": "{a}\\\\"}}"#);
        let s = Skeleton::of(&tricky);
        assert_eq!(s.text(), r#"{"x": "", "y": ""}"#);
    }

    /// The skeleton of a valid body by a byte-by-byte walk: every string
    /// literal of CUT bytes or more (as written, escapes included) emptied.
    fn walked(body: &str) -> String {
        let b = body.as_bytes();
        let (mut out, mut i, mut copied) = (String::new(), 0, 0);
        while i < b.len() {
            if b[i] != b'"' {
                i += 1;
                continue;
            }
            let start = i + 1;
            let mut j = start;
            while b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            if j - start >= CUT {
                out.push_str(&body[copied..start]);
                copied = j;
            }
            i = j + 1;
        }
        out.push_str(&body[copied..]);
        out
    }

    proptest::proptest! {
        /// The skeleton parses to the body's JSON with some long strings
        /// emptied; every cut `""` maps back onto a literal of the body; a
        /// body serde refuses keeps a skeleton serde refuses.
        #[test]
        fn the_skeleton_is_the_body_with_long_strings_emptied(
            parts in proptest::collection::vec(
                proptest::sample::select(&[
                    "a", "\\n", "\\\"", "\\\\", "\\u00e9", "é", "{}", " ", "xyz0123", "\\t", "/",
                    "[", "]", ":", ",", "\\q", "\u{1}", "\"",
                ][..]),
                0..400,
            ),
            cuts in proptest::collection::vec(0usize..400, 1..8),
        ) {
            if !block::supported() {
                return Ok(());
            }
            let values: Vec<String> = cuts
                .iter()
                .enumerate()
                .map(|(i, &k)| {
                    let text = parts[..k.min(parts.len())].concat();
                    match i % 3 {
                        0 => format!("\"{text}\""),
                        1 => format!("\"{}\"", long("q\\\"")),
                        _ => format!("[\"{text}\", {i}]"),
                    }
                })
                .collect();
            let body = format!(
                "{{{}}}",
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("\"k{i}\": {v}"))
                    .collect::<Vec<_>>()
                    .join(",\n")
            );
            let s = Skeleton::of(&body);
            let Ok(whole) = serde_json::from_str::<serde_json::Value>(&body) else {
                proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(s.text()).is_err());
                return Ok(());
            };
            let skel: serde_json::Value = serde_json::from_str(s.text()).unwrap();
            fn same(whole: &serde_json::Value, skel: &serde_json::Value) -> bool {
                use serde_json::Value::{Array, Object, String};
                match (whole, skel) {
                    (String(_), String(t)) if t.is_empty() => true,
                    (Array(a), Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y)),
                    (Object(a), Object(b)) => {
                        a.len() == b.len() && a.iter().zip(b).all(|((k, x), (l, y))| k == l && same(x, y))
                    }
                    (x, y) => x == y,
                }
            }
            proptest::prop_assert!(same(&whole, &skel), "{}\n{}", body, s.text());
            // Exactly the literals of CUT bytes or more are emptied.
            proptest::prop_assert_eq!(s.text(), walked(&body));
            let mut from = 0;
            while let Some(k) = s.text()[from..].find("\"\"") {
                let at = from + k;
                let lit = &body[s.range(at..at + 2)];
                proptest::prop_assert!(serde_json::from_str::<String>(lit).is_ok(), "{lit}");
                from = at + 2;
            }
        }
    }
}
