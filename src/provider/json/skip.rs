//! The end of a JSON object or array: from its opening bracket to the
//! matching closing one, strings (and the brackets in them) stepped over.
//! For values nobody reads, whose contents a skeleton leaves out
//! ([`super::skeleton::Skeleton::without_objects_of`]).
//!
//! With AVX2, 64 bytes at a time: quotes, backslashes and brackets as bit
//! masks, the escaped bytes by [`super::block::escapes`]' rule, the
//! bytes inside strings by a prefix XOR of the quotes that count; a block
//! whose closing brackets cannot bring the depth to zero is passed with two
//! popcounts. Measured on the 64 KB `tools` array of a captured Claude Code
//! request: serde skipping its tools' `input_schema` objects took ~9 µs of
//! the request's 29 µs decision; this finds their ends in ~1 µs
//! (`cargo bench --bench hot_path`, README "Against the ext_proc floor").
//! The scalar walk is the fallback and the reference the tests hold the
//! vector one to.
//!
//! Only brackets and string syntax are looked at: what lies between is not
//! validated (the skeleton's caller checks that what it leaves out is read
//! by nobody, and the provider refuses a body that is not JSON).

#[cfg(target_arch = "x86_64")]
use super::block;

/// The offset of the bracket that closes the one at `open` (`{` or `[`),
/// or `None` when the text ends first.
pub(crate) fn matching_close(text: &[u8], open: usize) -> Option<usize> {
    debug_assert!(matches!(text.get(open), Some(b'{' | b'[')));
    #[cfg(target_arch = "x86_64")]
    if block::supported() {
        // SAFETY: AVX2, POPCNT and PCLMULQDQ were detected just now.
        return unsafe { matching_close_avx2(text, open) };
    }
    matching_close_scalar(text, open)
}

/// Byte by byte. A quote counts unless an odd run of backslashes is right
/// before it ([`super::is_escaped`]'s rule, which the vector code applies
/// to whole blocks).
pub(crate) fn matching_close_scalar(text: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    // Backslashes right before the current byte.
    let mut run = 0usize;
    for (i, &b) in text.iter().enumerate().skip(open) {
        let escaped = run % 2 == 1;
        run = if b == b'\\' { run + 1 } else { 0 };
        if b == b'"' && !escaped {
            in_string = !in_string;
            continue;
        }
        if in_string {
            continue;
        }
        match b {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// # Safety
/// The CPU must support AVX2, POPCNT and PCLMULQDQ (`block::supported`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt,pclmulqdq")]
pub(super) unsafe fn matching_close_avx2(text: &[u8], open: usize) -> Option<usize> {
    use std::arch::x86_64::*;
    let quote = _mm256_set1_epi8(b'"' as i8);
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    // `{` 0x7b and `[` 0x5b differ in one bit, as do `}` 0x7d and `]` 0x5d:
    // OR-ing 0x20 folds each pair onto one byte.
    let fold = _mm256_set1_epi8(0x20);
    let opener = _mm256_set1_epi8(b'{' as i8);
    let closer = _mm256_set1_epi8(b'}' as i8);
    // The bracket at `open` is depth 1; the scan starts after it.
    let mut depth: u64 = 1;
    let mut in_string = false;
    let mut carry = 0u64;
    let mut tail = [b' '; 64];
    let mut base = open + 1;
    while base < text.len() {
        // SAFETY: AVX2, as this function's.
        let (v0, v1, n) = unsafe { block::load(text, base, &mut tail) };
        let (f0, f1) = (_mm256_or_si256(v0, fold), _mm256_or_si256(v1, fold));
        // SAFETY: as above.
        let (quotes, backslashes, opens, closes) = unsafe {
            (
                block::equal(v0, v1, quote),
                block::equal(v0, v1, backslash),
                block::equal(f0, f1, opener),
                block::equal(f0, f1, closer),
            )
        };
        let (escaped, next) = block::escapes(backslashes, carry);
        carry = next;
        let real = quotes & !escaped;
        // SAFETY: PCLMULQDQ, as this function's.
        let inside = unsafe { block::inside_strings(real, in_string) };
        in_string ^= real.count_ones() % 2 == 1;
        let valid = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        let (opens, mut closes) = (opens & !inside & valid, closes & !inside & valid);
        if u64::from(closes.count_ones()) < depth {
            depth = depth + u64::from(opens.count_ones()) - u64::from(closes.count_ones());
        } else {
            let mut opens = opens;
            while opens | closes != 0 {
                let next_open = opens.trailing_zeros();
                let next_close = closes.trailing_zeros();
                if next_open < next_close {
                    depth += 1;
                    opens &= opens - 1;
                } else {
                    depth -= 1;
                    if depth == 0 {
                        return Some(base + next_close as usize);
                    }
                    closes &= closes - 1;
                }
            }
        }
        base += 64;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(text: &str, open: usize) -> Option<usize> {
        let scalar = matching_close_scalar(text.as_bytes(), open);
        assert_eq!(
            matching_close(text.as_bytes(), open),
            scalar,
            "vector and scalar disagree on {text:?}"
        );
        scalar
    }

    #[test]
    fn brackets_in_strings_and_escapes_are_stepped_over() {
        let t = r#"{"a": {"b": "}]\"{", "c": [1, {"d": "\\"}]}, "e": 2}"#;
        let inner = t.find("{\"b\"").unwrap();
        assert_eq!(both(t, inner), Some(t.find("]}, \"e\"").unwrap() + 1));
        assert_eq!(both(t, 0), Some(t.len() - 1));
        assert_eq!(both("[[], {}, \"]\"]", 0), Some(12));
        // Unterminated.
        assert_eq!(both(r#"{"a": {"b": 1}"#, 0), None);
        assert_eq!(both(r#"{"a": "}"#, 0), None);
    }

    #[test]
    fn long_values_across_blocks() {
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        assert_eq!(both(&deep, 0), Some(599));
        let s = format!(
            r#"{{"x": "{}", "y": [{}]}} tail"#,
            r#"\\\"}"#.repeat(50),
            "{},".repeat(40) + "1"
        );
        assert_eq!(both(&s, 0), Some(s.find("} tail").unwrap()));
    }

    proptest::proptest! {
        #[test]
        fn vector_matches_scalar(parts in proptest::collection::vec(
            proptest::sample::select(&["{", "}", "[", "]", "\"", "\\", "\\\\", "\\\"", "a", " ", "\"}\"", ",", ":"][..]),
            1..400,
        )) {
            let text = format!("{{{}", parts.concat());
            let want = matching_close_scalar(text.as_bytes(), 0);
            proptest::prop_assert_eq!(matching_close(text.as_bytes(), 0), want);
        }
    }
}
