//! A request body with the contents of its long string literals cut out,
//! for serde to walk.
//!
//! A Claude Code session is megabytes of file contents in `tool_result`
//! strings, thick with `\n` and `\"` escapes. serde_json skips a string
//! eight bytes at a time and stops at every escape; most of a request's
//! parse was spent there. Here one AVX2 pass finds every string literal
//! (64 bytes at a time: quotes, backslashes and control bytes as bit masks;
//! backslashes, a few per block, one by one), checks the escapes and
//! control bytes of the long ones as serde would, and copies the body
//! without their contents. serde then parses a skeleton of a few percent of
//! the body; every offset in it maps back to the body.
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
//! Only the contents of strings are ever cut, and only long ones (no key
//! or type name serde compares is that long): a cut string is read from
//! the body itself.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::value::RawValue;

#[cfg(target_arch = "x86_64")]
use super::{block, literal};
use crate::provider::BodyError;

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

    /// This skeleton with the contents of every object that is the value
    /// of a `key` member cut too (see [`Skeleton::without_objects_of`]),
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
            let close = super::skip::matching_close(text, open)?;
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

/// The skeleton text, its cuts and (with `unread`) the skeleton offsets of
/// the opening braces of the `objects_of` objects cut; `None` when
/// nothing is cut or the scan finds the body invalid (unterminated string,
/// bad escape, control byte in a string, an object that does not end).
///
/// # Safety
/// The CPU must support AVX2, POPCNT and PCLMULQDQ (`block::supported`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt,pclmulqdq")]
#[allow(clippy::type_complexity)]
unsafe fn cut_avx2(
    body: &str,
    unread: Option<Unread<'_>>,
) -> Option<(String, Vec<(usize, usize)>, Vec<usize>)> {
    use std::arch::x86_64::*;
    let b = body.as_bytes();
    let mut text = String::new();
    let mut cuts = Vec::new();
    let mut opens_cut = Vec::new();
    let mut cut_total = 0;
    // With `unread`: the depth of brackets outside strings at the start of
    // the block.
    let mut depth = 0i64;
    let fold = _mm256_set1_epi8(0x20);
    let opener = _mm256_set1_epi8(b'{' as i8);
    let closer = _mm256_set1_epi8(b'}' as i8);
    // Body bytes up to here are in `text` (or cut).
    let mut copied = 0;
    let mut in_string = false;
    // Content start of the string open at the end of the last block.
    let mut start = 0;
    // The first byte of the next block follows an escaping backslash.
    let mut carry = 0u64;
    // The last `\u` escape seen: a string cut after one is checked whole.
    let mut last_u = None;
    let quote = _mm256_set1_epi8(b'"' as i8);
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let c1f = _mm256_set1_epi8(0x1f);
    let nibble = _mm256_set1_epi8(0x0f);
    let (mut lo, mut hi) = ([0u8; 32], [0u8; 32]);
    for c in [b'"', b'/', b'b', b'f', b'n', b'r', b't', b'u'] {
        lo[usize::from(c & 15)] |= 1 << (c >> 4);
        lo[usize::from(c & 15) + 16] |= 1 << (c >> 4);
    }
    for h in 0..8 {
        hi[h] = 1 << h;
        hi[h + 16] = 1 << h;
    }
    // SAFETY: 32-byte loads of 32-byte tables.
    let (escapable_lo, escapable_hi) = unsafe {
        (
            _mm256_loadu_si256(lo.as_ptr() as *const __m256i),
            _mm256_loadu_si256(hi.as_ptr() as *const __m256i),
        )
    };
    let u = _mm256_set1_epi8(b'u' as i8);
    let mut tail = [b' '; 64];
    let mut base = 0;
    // Where the scan goes on after an object it stepped over.
    let mut resume = None;
    while base < b.len() {
        // SAFETY: AVX2, as this function's.
        let (v0, v1, n) = unsafe { block::load(b, base, &mut tail) };
        let eq = |x: __m256i| unsafe { block::equal(v0, v1, x) };
        let quotes = eq(quote);
        let backslashes = eq(backslash);
        // Bytes up to 0x1f (their maximum with 0x1f is 0x1f): rare, so the
        // block is tested whole first.
        let (l0, l1) = (
            _mm256_cmpeq_epi8(_mm256_max_epu8(v0, c1f), c1f),
            _mm256_cmpeq_epi8(_mm256_max_epu8(v1, c1f), c1f),
        );
        let any = _mm256_or_si256(l0, l1);
        let controls = if _mm256_testz_si256(any, any) == 1 {
            0
        } else {
            _mm256_movemask_epi8(l0) as u32 as u64 | (_mm256_movemask_epi8(l1) as u32 as u64) << 32
        };
        let (escaped, next) = block::escapes(backslashes, carry);
        carry = next;
        if escaped != 0 {
            // Bytes that may end an escape (" / b f n r t u, and \ which
            // `escapes` leaves out): byte `v` is one when the table row of
            // its low nibble has the bit of its high nibble.
            let ends = |v: __m256i| {
                let lo = _mm256_shuffle_epi8(escapable_lo, _mm256_and_si256(v, nibble));
                let hi = _mm256_shuffle_epi8(
                    escapable_hi,
                    _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble),
                );
                let none = _mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), _mm256_setzero_si256());
                !(_mm256_movemask_epi8(none) as u32) as u64
            };
            let escapable = ends(v0) | ends(v1) << 32;
            // Each byte ending an escape must make a valid one (`\\` is).
            if escaped & !escapable != 0 {
                return None;
            }
            let hex = escaped & eq(u);
            if hex != 0 {
                last_u = Some(base + 63 - hex.leading_zeros() as usize);
            }
        }
        if carry != 0 && base + 64 >= b.len() {
            return None;
        }
        let valid = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        let mut real = quotes & !escaped & valid;
        // Inside a string: from an opening quote up to its closing one
        // (most blocks of a long string have no quote that counts).
        // SAFETY: PCLMULQDQ, as this function's.
        let inside = unsafe { block::inside_strings(real, in_string) };
        if controls & inside & !real & valid != 0 {
            return None;
        }
        // Brackets outside strings (`{`/`[` and `}`/`]` folded together by
        // their 0x20 bit), for the depth of a key.
        let (opens, closes) = if unread.is_some() {
            let (f0, f1) = (_mm256_or_si256(v0, fold), _mm256_or_si256(v1, fold));
            let outside = !inside & valid;
            // SAFETY: AVX2, as this function's.
            unsafe {
                (
                    block::equal(f0, f1, opener) & outside,
                    block::equal(f0, f1, closer) & outside,
                )
            }
        } else {
            (0, 0)
        };
        while real != 0 {
            let i = real.trailing_zeros() as usize;
            real &= real - 1;
            let pos = base + i;
            if !in_string {
                start = pos + 1;
                in_string = true;
                continue;
            }
            in_string = false;
            if let Some(unread) = unread.filter(|u| {
                pos - start == u.objects_of.len()
                    || u.top_level.is_some_and(|t| pos - start == t.len())
            }) {
                let key = &b[start..pos];
                // Brackets outside strings before the key: its depth.
                let below = (1u64 << i) - 1;
                let d = depth + i64::from((opens & below).count_ones())
                    - i64::from((closes & below).count_ones());
                // An `objects_of` object (its opening listed), or the
                // top-level member's value.
                let (open, listed) = if key == unread.objects_of.as_bytes() {
                    (
                        member_value(b, start - 1, pos).filter(|&o| b[o] == b'{'),
                        true,
                    )
                } else if d == 1 && unread.top_level.is_some_and(|t| key == t.as_bytes()) {
                    (member_value(b, start - 1, pos), false)
                } else {
                    (None, false)
                };
                if let Some(open) = open {
                    // SAFETY: AVX2, as this function's.
                    let close = unsafe { super::skip::matching_close_avx2(b, open) }?;
                    if close > open + 1 {
                        if text.capacity() == 0 {
                            text.reserve(b.len() / 16);
                        }
                        text.push_str(&body[copied..=open]);
                        if listed {
                            opens_cut.push(text.len() - 1);
                        }
                        cut_total += close - open - 1;
                        cuts.push((text.len(), cut_total));
                        copied = close;
                    }
                    // The scan goes on after the value (a closing bracket:
                    // not in a string, no backslash before, depth as at the
                    // key).
                    resume = Some(close + 1);
                    carry = 0;
                    depth = d;
                    break;
                }
            }
            if pos - start >= CUT {
                // Its `\u` escapes as serde would decode them (four hex
                // digits, surrogates in pairs): serde refuses a lone
                // surrogate in a string it decodes and lets it pass in one
                // it skips, and which it does depends on the field, so such
                // a body is parsed whole.
                if last_u.is_some_and(|u| u > start) && !literal::validate(&body[start..pos]) {
                    return None;
                }
                if text.capacity() == 0 {
                    text.reserve(b.len() / 16);
                }
                text.push_str(&body[copied..start]);
                cut_total += pos - start;
                cuts.push((text.len(), cut_total));
                copied = pos;
            }
        }
        match resume.take() {
            Some(at) => base = at,
            None => {
                depth += i64::from(opens.count_ones()) - i64::from(closes.count_ones());
                base += 64;
            }
        }
    }
    if in_string || cuts.is_empty() {
        return None;
    }
    text.push_str(&body[copied..]);
    Some((text, cuts, opens_cut))
}

/// The offset of the bracket that opens the value of the member whose key
/// is the string literal `b[quote..=end]` (its quotes): after `{` or `,`,
/// followed by `:` and `{` or `[` (white space between).
#[cfg(target_arch = "x86_64")]
fn member_value(b: &[u8], quote: usize, end: usize) -> Option<usize> {
    let before = b[..quote].iter().rposition(|c| !c.is_ascii_whitespace())?;
    if !matches!(b[before], b'{' | b',') {
        return None;
    }
    let mut at = end + 1;
    let next = |at: &mut usize| {
        while b.get(*at).is_some_and(u8::is_ascii_whitespace) {
            *at += 1;
        }
        b.get(*at).copied()
    };
    if next(&mut at)? != b':' {
        return None;
    }
    at += 1;
    matches!(next(&mut at)?, b'{' | b'[').then_some(at)
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
