use super::searcher::*;
use super::suspects::*;
use crate::guard::ascii::Ascii;
use crate::guard::compile::atoms::{analyze, Analysis, Atom};
use crate::guard::vector::Isa;
use proptest::strategy::Strategy as _;

fn gate_of(pattern: &str) -> Analysis {
    analyze(&regex_syntax::parse(pattern).unwrap())
}

fn hits(atoms: &[(&str, u32)], raw: &str) -> Vec<(u32, u32)> {
    let atoms: Vec<(Atom, u32)> = atoms
        .iter()
        .map(|(p, g)| (gate_of(p).gate.unwrap()[0].clone(), *g))
        .collect();
    let mut s = Searcher::new(&atoms);
    let mut found: Option<Vec<Hit>> = None;
    // Every instruction set finds the same.
    for isa in Isa::all() {
        s.isa = isa;
        let mut out = Vec::new();
        s.find(raw.as_bytes(), &mut out);
        out.sort();
        out.dedup();
        if let Some(f) = &found {
            assert_eq!(f, &out, "{isa:?}");
        }
        found = Some(out);
    }
    let found = found.expect("an instruction set");
    found.into_iter().map(|h| (h.pos, h.group)).collect()
}

#[test]
fn searcher_finds_literals_and_class_runs_across_chunks() {
    let mut raw = "x".repeat(4094);
    raw.push_str("CodeName07 and 1234567 and @ and \\u0041KIA");
    let found = hits(&[("(?i:codename07)", 1), ("[0-9]{6}", 2), ("@", 3)], &raw);
    // The codename's gate is its rarest window ("dename07"); a run of
    // seven digits holds two six-digit runs.
    assert_eq!(found, [(4096, 1), (4109, 2), (4110, 2), (4121, 3)]);
    // Raw bytes over-approximate: an escape's hex digits are digits.
    assert_eq!(hits(&[("[0-9]{4}", 4)], r"\u0041"), [(2, 4)]);
    // Across a 64-byte block boundary.
    let raw = format!("{}987654", "y".repeat(61));
    assert_eq!(hits(&[("[0-9]{6}", 7)], &raw), [(61, 7)]);
    // A word-start atom after a word character is no hit, after an
    // escape it is.
    assert_eq!(hits(&[(r"(?-u:\b)eyJ[a-z]", 1)], "xeyJa"), []);
    assert_eq!(hits(&[(r"(?-u:\b)eyJ[a-z]", 1)], r"\neyJa"), [(2, 1)]);
}

/// A literal window is a hit only where the rest of its atom's classes
/// are around it too: `pat` followed by fourteen token bytes and a dot,
/// not `path` or `pattern`; `at.` after `p` or `s` and before token
/// bytes, not `format.`. Both with few atoms (the passes) and with many
/// (the literal filter).
#[test]
fn a_literal_window_is_a_hit_only_with_its_atoms_other_classes() {
    let token = r"(?-u:\b)pat[0-9a-zA-Z_-]{14}\.[0-9a-f]{4}";
    let dotted = r"[ps]at\.[0-9a-zA-Z_-]{6}";
    let raw = "path pattern pat0123456789abcd.beef format.x sat.AbCdEf spat.abc_12 xpat0123456789abcd.beef";
    let want = vec![(13, 1), (46, 2), (58, 2)];
    assert_eq!(hits(&[(token, 1), (dotted, 2)], raw), want);
    // Sixty more literal atoms send literals to the trigram filter.
    let mut atoms = vec![(token.to_owned(), 1), (dotted.to_owned(), 2)];
    for k in 0..60 {
        atoms.push((format!("zq{k:02}xw"), 100 + k));
    }
    let atoms: Vec<(&str, u32)> = atoms.iter().map(|(p, g)| (p.as_str(), *g)).collect();
    assert_eq!(hits(&atoms, raw), want);
}

/// A literal is stopped for at its least likely three bytes: `tok` of
/// `iontoken`, not `ion`; `xb-` of `xoxb-`; a three-byte literal at its
/// only ones.
#[test]
fn literals_are_anchored_at_their_rarest_trigram() {
    assert_eq!(anchor(b"iontoken"), 3);
    assert_eq!(anchor(b"xoxb-"), 2);
    assert_eq!(anchor(b"tel"), 0);
}

#[test]
fn suspects_are_found() {
    for isa in Isa::all() {
        let mut out = Vec::new();
        suspects(isa, r#"a\u0041 \\u b\n\f \u2192 é ｃ → z"#, &mut out);
        // `\u0041`, `\f`, `\u2192` (every \u escape) and the fullwidth c;
        // not the escaped backslash before `u`, é or the arrow.
        out.sort();
        assert_eq!(out, [1, 15, 18, 28], "{isa:?}");
        let mut out = Vec::new();
        suspects(isa, &format!("{}ｃ", "a".repeat(100)), &mut out);
        assert_eq!(out, [100], "{isa:?}");
    }
}

#[test]
fn suspect_characters() {
    for c in [
        '\u{ff41}',
        '\u{200b}',
        '\u{fb01}',
        '\u{2026}',
        '½',
        '\u{1d41c}',
        '\u{85}',
    ] {
        assert!(suspect_char(c), "{c:?}");
    }
    // Inert: normalised to themselves, to white space, or to other
    // non-ASCII characters.
    for c in [
        '\u{2192}',
        'é',
        '\u{1f600}',
        '\u{4e2d}',
        '\u{2014}',
        '\u{a0}',
        'µ',
    ] {
        assert!(!suspect_char(c), "{c:?}");
    }
}

#[test]
fn simd_passes_equal_the_scalar_ones() {
    let class = |bytes: &[u8]| bytes.iter().fold(Ascii::default(), |a, &b| a.with(b));
    let range = |lo: u8, hi: u8| (lo..=hi).fold(Ascii::default(), |a, b| a.with(b));
    // Exact and nibble-widened classes, short atoms and long ones.
    let digits = range(b'0', b'9');
    let token = Ascii(digits.0 | range(b'A', b'Z').0 | range(b'a', b'z').0 | class(b"-_").0);
    let atoms: Vec<(Atom, u32)> = [
        vec![class(b"@")],
        vec![class(b"wy"), class(b"e")],
        vec![class(b"()-"), digits, digits],
        vec![digits; 4],
        vec![class(b"aeiou.+~"), token, token, token, token],
        vec![Ascii(range(b'2', b'7').0 | range(b'A', b'Z').0); 6],
        vec![class(&[0x7f]), class(b"!")],
        vec![
            class(b"A"),
            class(b"BCGIKNRS"),
            class(b"CDIOPV"),
            class(b"A"),
        ],
        vec![class(b"q")],
    ]
    .into_iter()
    .chain(
        [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
            "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
            "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
        ]
        .iter()
        .map(|w| {
            w.bytes()
                .map(|b| class(&[b, b.to_ascii_uppercase()]))
                .collect::<Vec<_>>()
        }),
    )
    .enumerate()
    .map(|(g, classes)| {
        (
            Atom {
                classes,
                word_start: false,
            },
            g as u32,
        )
    })
    .collect();
    let simd = Searcher::new(&atoms);
    assert!(simd.passes.len() > 1, "more buckets than one pass holds");
    assert!(
        simd.passes
            .iter()
            .any(|p| p.buckets.iter().any(|b| b.len() > 1)),
        "buckets shared"
    );
    let mut scalar = Searcher::new(&atoms);
    scalar.isa = Isa::Scalar;
    // Every byte value, in several orders, so each sits in each lane,
    // then text that holds the atoms; every length of its tail.
    let mut bytes: Vec<u8> = Vec::new();
    for k in [1usize, 7, 31, 33, 101] {
        bytes.extend((0..256).map(|i| ((i * k) % 256) as u8));
    }
    bytes.extend_from_slice(
        b"a@b ewe (12-34) 1234567 AKIAB eabcd QRST23 \x7f! q Alpha BRAVO charli charlie delta-echo \
foxtrot golfhotel India juliet kilo lima mike november oscar-papa quebec romeo sierra \
tango uniform victor whiskey xray yankee ZULU",
    );
    // Both find exactly where each atom's classes line up.
    let reference = |b: &[u8]| -> Vec<Hit> {
        let mut want = Vec::new();
        for (atom, g) in &atoms {
            let n = atom.classes.len();
            for pos in 0..(b.len() + 1).saturating_sub(n) {
                if atom
                    .classes
                    .iter()
                    .enumerate()
                    .all(|(k, c)| c.contains(b[pos + k]))
                {
                    want.push(Hit {
                        pos: pos as u32,
                        group: *g,
                    });
                }
            }
        }
        want.sort();
        want
    };
    let mut simd = simd;
    for isa in Isa::all() {
        simd.isa = isa;
        for end in (bytes.len() - 70..=bytes.len()).chain([0, 1, 2, 3, 33, 34, 35]) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            simd.find(&bytes[..end], &mut a);
            scalar.find(&bytes[..end], &mut b);
            a.sort();
            b.sort();
            assert_eq!(a, b, "{isa:?} {end}");
            assert_eq!(a, reference(&bytes[..end]), "{isa:?} {end}");
        }
    }
    // Every atom is in the text.
    let mut all = Vec::new();
    simd.find(&bytes, &mut all);
    let groups: std::collections::BTreeSet<u32> = all.iter().map(|h| h.group).collect();
    assert_eq!(groups.len(), atoms.len(), "{groups:?}");
}

proptest::proptest! {
    #[test]
    fn simd_suspects_equal_the_scalar_ones(
        s in "([a-z\\\\ubf\u{7f}\"]|\\PC|[\u{ff41}\u{200b}\u{2026}é→]){0,300}",
    ) {
        let mut scalar = Vec::new();
        let ascii = suspects_scalar(&s, 0, &mut scalar);
        proptest::prop_assert_eq!(ascii, s.is_ascii());
        for isa in Isa::all() {
            let mut all = Vec::new();
            proptest::prop_assert_eq!(suspects(isa, &s, &mut all), ascii, "{:?}", isa);
            proptest::prop_assert_eq!(&all, &scalar, "{:?}", isa);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Class-sequence atoms are found exactly where their classes line
    /// up, whatever the layout of steps and tail, by the SIMD and the
    /// scalar pass alike.
    #[test]
    fn class_atoms_are_found_exactly(
        tokens in proptest::collection::vec(
            proptest::sample::select(&[
                "123", "4567", "-", ".", "+", "@", "ab", "XYZ", " ", "0", "99999", "(", ")",
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                // Non-ASCII bytes, whose low seven bits spell ASCII (`İ`
                // is C4 B0: `D0`; `XYİ` is no `[A-Z]{3}[0-9]`).
                "XY", "İ", "é",
            ][..]),
            0..2500,
        ),
    ) {
        let raw = tokens.concat();
        let patterns = [
            "[0-9]{3}-[0-9]{2}-[0-9]{4}",
            "[0-9]{4}\\.[0-9]{2}",
            "\\([0-9]{3}\\)",
            "@",
            "\\+[0-9]",
            "[A-Z]{3}[0-9]",
        ];
        let atoms: Vec<(Atom, u32)> = patterns
            .iter()
            .enumerate()
            .map(|(g, p)| (gate_of(p).gate.unwrap()[0].clone(), g as u32))
            .collect();
        let mut s = Searcher::new(&atoms);
        let mut found = Vec::new();
        s.find(raw.as_bytes(), &mut found);
        found.sort();
        found.dedup();
        // Every instruction set (the scalar pass, the kernels on plain
        // lanes and with AVX2) finds the same.
        for isa in Isa::all() {
            s.isa = isa;
            let mut other = Vec::new();
            s.find(raw.as_bytes(), &mut other);
            other.sort();
            other.dedup();
            proptest::prop_assert_eq!(&other, &found, "{:?}", isa);
        }
        let b = raw.as_bytes();
        let mut want = Vec::new();
        for (atom, g) in &atoms {
            let n = atom.classes.len();
            for pos in 0..(b.len() + 1).saturating_sub(n) {
                if atom.classes.iter().enumerate().all(|(k, c)| c.contains(b[pos + k])) {
                    want.push(Hit { pos: pos as u32, group: *g });
                }
            }
        }
        want.sort();
        proptest::prop_assert_eq!(found, want);
    }
}

fn digit_gate() -> super::digits::DigitGate {
    use super::digits::NumberShape;
    let mut gate = super::digits::DigitGate::default();
    for (i, shape) in [
        NumberShape::CreditCard,
        NumberShape::Ssn,
        NumberShape::CaSin,
        NumberShape::PhoneNumber,
    ]
    .into_iter()
    .enumerate()
    {
        gate.push(i as u32, shape);
    }
    gate
}

/// The digit gate's hits in `text`, as (position, group).
fn digit_hits(gate: &super::digits::DigitGate, text: &str) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    gate.find(Isa::detect(), text.as_bytes(), &mut out);
    out.iter().map(|h| (h.pos as usize, h.group)).collect()
}

#[test]
fn the_digit_gate_hits_where_number_shapes_start() {
    let gate = digit_gate();
    let hits = |text: &str| digit_hits(&gate, text);
    assert_eq!(hits("card 4111 1111 1111 1111."), [(5, 0)]);
    assert_eq!(hits("ssn 123-45-6789"), [(4, 1)]);
    assert_eq!(hits("sin 130 692 544"), [(4, 2)]);
    assert_eq!(hits("call (415)\\n 555-2671"), [(6, 3)]);
    assert_eq!(hits("+33 1 23 45 67"), [(1, 3)]);
    // Bare: thirteen digits or more for cards.
    assert_eq!(hits("id 4111111111111111;"), [(3, 0)]);
    // Digit-dense text without a shape: dates, times, IPs, versions, ids.
    for text in [
        "2026-12-05T12:16:07.123456Z",
        "10.42.17.203 - - [05/Dec/2026:12:16:07 +0000]",
        "v1.2.3 build 20251001 pid 123456789012",
        "sha256:07f5c31f8f3d8dd7a61a5e13744269438f4ec65dd3602081cc37d1b4ad5ac1f6",
        "+1234567",
    ] {
        assert_eq!(hits(text), [], "{text}");
    }
}

#[test]
fn a_digit_run_is_a_cluster_group_of_its_length() {
    use super::digits::{DigitGate, NumberShape};
    let mut gate = DigitGate::default();
    gate.push(7, NumberShape::Run(13));
    let hits = digit_hits;
    // Asana's `1/1204567890123:…`: the thirteen digits after the `/`.
    assert_eq!(hits(&gate, "token 1/1204567890123:abc"), [(8, 7)]);
    assert_eq!(hits(&gate, "x 12045678901234567 y"), [(2, 7)]);
    // Twelve in a row, or thirteen split by a separator, are no run.
    assert_eq!(hits(&gate, "order_id 120456789012 and 1204567 890123"), []);
    // With the card shape too, a bare run of thirteen is read for both.
    gate.push(0, NumberShape::CreditCard);
    let mut found = hits(&gate, "n 4111111111111111;");
    found.sort();
    assert_eq!(found, [(2, 0), (2, 7)]);
}

#[test]
fn a_literal_in_one_case_is_found_in_that_case_only() {
    // Among many literals (the trigram filter, whose hashes ignore case).
    let letter = |k: u32| char::from(b'a' + k as u8);
    let mut atoms: Vec<(Atom, u32)> = (0..64)
        .map(|g| {
            let pattern = format!("(?i)word{}{}x", letter(g / 8), letter(g % 8));
            (gate_of(&pattern).gate.unwrap()[0].clone(), g)
        })
        .collect();
    atoms.push((gate_of("Bot").gate.unwrap()[0].clone(), 99));
    let mut s = Searcher::new(&atoms);
    assert!(s.has_literal_automaton());
    for isa in Isa::all() {
        s.isa = isa;
        let mut out = Vec::new();
        s.find(b"dependabot[bot] BOT Bot WORDAHX", &mut out);
        out.sort();
        assert_eq!(
            out,
            [Hit { pos: 20, group: 99 }, Hit { pos: 24, group: 7 }],
            "{isa:?}"
        );
    }
}

#[test]
fn digit_groups_joined_by_separators_are_a_shape() {
    use super::digits::NumberShape;
    let shape = |p: &str| {
        let a = gate_of(p);
        let atom = &a.gate.expect("a gate")[0];
        NumberShape::of_classes(&atom.classes)
    };
    let groups = |lens: &[u8]| {
        let mut g = [0u8; 8];
        g[..lens.len()].copy_from_slice(lens);
        Some(NumberShape::Groups(g))
    };
    assert_eq!(shape(r"(?-u:\b)[0-9]{3}-[0-9]{7}(?-u:\b)"), groups(&[3, 7]));
    assert_eq!(shape(r"[0-9]{2}-[0-9]{7}"), groups(&[2, 7]));
    assert_eq!(shape(r"[0-9]{3}\.[0-9]{3}\.[0-9]{3}"), groups(&[3, 3, 3]));
    assert_eq!(shape(r"[0-9]{13}"), Some(NumberShape::Run(13)));
    // Too few digits, a separator that is none of the cluster's, a letter.
    assert_eq!(shape(r"[0-9]{3}-[0-9]{3}"), None);
    assert_eq!(shape(r"[0-9]{3}:[0-9]{7}"), None);
    assert_eq!(shape(r"[0-9]{3}-[0-9]{7}x"), None);
}

#[test]
fn digit_groups_hit_where_a_cluster_has_them() {
    use super::digits::{DigitGate, NumberShape};
    let mut gate = DigitGate::default();
    let mut g = [0u8; 8];
    g[..2].copy_from_slice(&[2, 7]);
    gate.push(3, NumberShape::Groups(g));
    let hits = |text: &str| digit_hits(&gate, text);
    assert_eq!(hits("tax id 12-3456789."), [(7, 3)]);
    // The first and last groups may be longer (the pattern may match
    // inside them); the middle ones may not.
    assert_eq!(hits("x 912-34567890 y"), [(2, 3)]);
    assert_eq!(hits("x 1-12-3456789 y"), [(4, 3)]);
    // Dates, times, versions, a last group too short (`34-5678901` in
    // `12-34-5678901` is a match).
    for text in [
        "2026-12-05T12:16:07.123456Z",
        "v12.3.4567",
        "12-345678 ",
        "12-34-567890",
    ] {
        assert_eq!(hits(text), [], "{text}");
    }
}

proptest::proptest! {
    #[test]
    fn the_digit_gate_bit_masks_lose_no_cluster(
        text in proptest::collection::vec(
            proptest::sample::select(vec![
                "0", "1", "4", "5", "9", "12", "123", "4111", "555", " ", "  ", ".", "-", "(",
                ")", "+", "\\n", "\\t", "\\\\", "n", "x", "#", ":", "é", "\u{a0}", "\u{2192}",
            ]),
            0..200,
        ).prop_map(|v| v.concat())
    ) {
        let mut with_run = digit_gate();
        with_run.push(4, super::digits::NumberShape::Run(super::digits::MIN_RUN));
        let mut with_groups = digit_gate();
        with_groups.push(5, super::digits::NumberShape::Groups([2, 3, 4, 0, 0, 0, 0, 0]));
        for gate in [digit_gate(), with_run, with_groups] {
            let mut bytewise = Vec::new();
            gate.find_bytewise(text.as_bytes(), &mut bytewise);
            for isa in Isa::all() {
                let mut found = Vec::new();
                gate.find(isa, text.as_bytes(), &mut found);
                proptest::prop_assert_eq!(&found, &bytewise, "{:?}", isa);
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// With many literal atoms (the trigram filter), every occurrence of
    /// each, overlapping ones too and in any ASCII case, is a hit; a
    /// word-start atom only where no word byte comes before it.
    #[test]
    fn many_literal_atoms_are_found_exactly(
        tokens in proptest::collection::vec(
            proptest::sample::select(&[
                "ab", "abc", "BcD", "key", "KEY", "token", "_", " ", "x", "9", "pat", "path", ".",
            ][..]),
            0..600,
        ),
    ) {
        let raw = tokens.concat();
        // Sixty literals, overlapping each other (`abc`, `bcd`, `cdab`...).
        let letters = ["ab", "bc", "cd", "da", "ke", "ey", "to", "ok", "en", "pa"];
        let mut words: Vec<String> = Vec::new();
        for a in letters {
            for b in letters.iter().take(6) {
                words.push(format!("{a}{b}"));
            }
        }
        let atoms: Vec<(Atom, u32)> = words
            .iter()
            .enumerate()
            .map(|(g, w)| {
                let pattern = if g % 2 == 0 { format!("(?i){w}") } else { format!(r"(?i)(?-u:\b){w}") };
                (gate_of(&pattern).gate.unwrap()[0].clone(), g as u32)
            })
            .collect();
        let mut s = Searcher::new(&atoms);
        proptest::prop_assert!(s.has_literal_automaton());
        let mut found: Option<Vec<Hit>> = None;
        // Every instruction set alike.
        for isa in Isa::all() {
            s.isa = isa;
            let mut out = Vec::new();
            s.find(raw.as_bytes(), &mut out);
            out.sort();
            out.dedup();
            if let Some(f) = &found {
                proptest::prop_assert_eq!(f, &out, "{:?}", isa);
            }
            found = Some(out);
        }
        let found = found.expect("an instruction set");
        let b = raw.as_bytes();
        let mut want = Vec::new();
        for (g, w) in words.iter().enumerate() {
            let n = w.len();
            for pos in 0..(b.len() + 1).saturating_sub(n) {
                let word_ok = g % 2 == 0 || pos == 0 || !(b[pos - 1].is_ascii_alphanumeric() || b[pos - 1] == b'_');
                if b[pos..pos + n].eq_ignore_ascii_case(w.as_bytes()) && word_ok {
                    want.push(Hit { pos: pos as u32, group: g as u32 });
                }
            }
        }
        want.sort();
        proptest::prop_assert_eq!(found, want);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// The trigram filter of every instruction set reports every position
    /// whose three bytes hash into the set, and the last two, in order:
    /// texts of any bytes (non-ASCII ones too) and lengths around the
    /// 32-position steps.
    #[test]
    fn simd_trigrams_equal_the_scalar_ones(
        set in proptest::collection::vec(proptest::collection::vec(0u8..=255, 1..5), 0..40),
        text in proptest::collection::vec(
            proptest::sample::select(b"aAbB0p@` _-.zZ\x80\xff\x00".to_vec()),
            0..200,
        ),
    ) {
        let mut t = crate::guard::vector::Trigrams::default();
        for s in &set {
            t.insert(s);
        }
        let mut want = Vec::new();
        for at in 0..text.len() {
            match text[at..] {
                [a, b, c, ..] if !t.contains(a, b, c) => {}
                _ => want.push(at),
            }
        }
        // Every occurrence of an inserted string is among them.
        for s in &set {
            for at in 0..(text.len() + 1).saturating_sub(s.len()) {
                if text[at..at + s.len()].iter().zip(s).all(|(x, y)| x & 31 == y & 31) {
                    proptest::prop_assert!(want.contains(&at));
                }
            }
        }
        for isa in Isa::all() {
            let mut found = Vec::new();
            isa.trigrams(&t, &text, |at| found.push(at));
            proptest::prop_assert_eq!(&found, &want, "{:?}", isa);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// Random sets of many literals (the secret pack's path: a trigram
    /// filter, then a compare of each literal anchored there), some shorter than three
    /// bytes (left to the passes), in random texts built from them: every
    /// occurrence in any ASCII case is a hit, at 32-byte step edges and
    /// at the text's end too, by every instruction set; the same as a
    /// naive search. (No digits in the literals:
    /// the searcher widens a digit to all ten; the text has them, and `p`
    /// and `` ` `` that hash like `0` and `@`.)
    #[test]
    fn random_literal_sets_are_found_exactly(
        long in proptest::collection::vec(
            proptest::collection::vec(proptest::sample::select(b"abABp@`-._x".to_vec()), 3..9),
            56..90,
        ),
        short in proptest::collection::vec(
            proptest::collection::vec(proptest::sample::select(b"abABp@`-._x".to_vec()), 1..3),
            0..4,
        ),
        pieces in proptest::collection::vec((0usize..90, 0usize..4), 0..120),
        lead in 0usize..40,
    ) {
        let literals: Vec<Vec<u8>> = long.into_iter().chain(short).collect();
        // Text: a lead of filler to shift the step edges, then literals
        // (or their starts) with filler between.
        let filler = b"q 0p`@ -zz";
        let mut text: Vec<u8> = filler.iter().cycle().take(lead).copied().collect();
        for (k, (i, cut)) in pieces.iter().enumerate() {
            let l = &literals[i % literals.len()];
            let l: Vec<u8> = l.iter().map(|b| if k % 3 == 0 { b.to_ascii_uppercase() } else { *b }).collect();
            let n = l.len().saturating_sub(*cut % 2 * cut).max(1);
            text.extend_from_slice(&l[..n]);
            text.extend_from_slice(&filler[..k % 3]);
        }
        let raw = String::from_utf8(text).expect("ASCII");
        // Each literal is its own gate (one too short to have one is left
        // out of the search and of the reference).
        let gated: Vec<(Atom, u32, &Vec<u8>)> = literals
            .iter()
            .enumerate()
            .filter_map(|(g, l)| {
                let l_str = std::str::from_utf8(l).expect("ASCII");
                let gate = gate_of(&format!("(?i){}", regex_syntax::escape(l_str))).gate?;
                Some((gate[0].clone(), g as u32, l))
            })
            .collect();
        for (atom, _, l) in &gated {
            proptest::prop_assert_eq!(atom.literal(), Some(l.to_ascii_lowercase()));
        }
        let atoms: Vec<(Atom, u32)> = gated.iter().map(|(a, g, _)| (a.clone(), *g)).collect();
        let mut s = Searcher::new(&atoms);
        proptest::prop_assert!(s.has_literal_automaton());
        let b = raw.as_bytes();
        let mut want = Vec::new();
        for &(_, g, l) in &gated {
            for pos in 0..(b.len() + 1).saturating_sub(l.len()) {
                if b[pos..pos + l.len()].eq_ignore_ascii_case(l) {
                    want.push(Hit { pos: pos as u32, group: g });
                }
            }
        }
        want.sort();
        for isa in Isa::all() {
            s.isa = isa;
            let mut out = Vec::new();
            s.find(b, &mut out);
            out.sort();
            out.dedup();
            proptest::prop_assert_eq!(&out, &want, "{:?}", isa);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// The fingerprint passes of every instruction set report what the
    /// exact tables say, position by position, on any bytes: non-ASCII
    /// ones whose low seven bits spell ASCII (`C4 B0` is `D0` there) too,
    /// and past an atom shorter than a fingerprint (any byte).
    #[test]
    fn simd_fingerprints_equal_the_scalar_ones(
        text in proptest::collection::vec(
            proptest::sample::select(b"aAXYZ09@-.+ \x80\xb0\xc4\xd9\xe9\xff".to_vec()),
            0..300,
        ),
    ) {
        let atoms: Vec<(Atom, u32)> = ["[A-Z]{3}[0-9]", "@", "[0-9]{4}\\.[0-9]{2}", "\\+[0-9]"]
            .iter()
            .enumerate()
            .map(|(g, p)| (gate_of(p).gate.unwrap()[0].clone(), g as u32))
            .collect();
        let s = Searcher::new(&atoms);
        proptest::prop_assert!(!s.passes.is_empty());
        for pass in &s.passes {
            let mut want = Vec::new();
            Isa::Scalar.fingerprints(&pass.tables, &text, |at, bits| want.push((at, bits)));
            for isa in Isa::all() {
                let mut found = Vec::new();
                isa.fingerprints(&pass.tables, &text, |at, bits| found.push((at, bits)));
                proptest::prop_assert_eq!(&found, &want, "{:?}", isa);
            }
        }
    }
}
