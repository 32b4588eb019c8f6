use super::atoms::*;
use super::needs::*;
use crate::guard::ascii::Ascii;
use crate::guard::prefilter::Searcher;

fn gate_of(pattern: &str) -> Analysis {
    analyze(&regex_syntax::parse(pattern).unwrap())
}

fn literals(a: &Analysis) -> Vec<String> {
    a.gate
        .iter()
        .flatten()
        .map(|atom| match atom.literal() {
            Some(l) => String::from_utf8(l).unwrap(),
            None => format!("<{} classes>", atom.classes.len()),
        })
        .collect()
}

#[test]
fn gates_of_typical_patterns() {
    // The rarest piece of a required literal (white space splits).
    assert_eq!(
        literals(&gate_of("(?i:project[- ]codename07)")),
        ["codename07"]
    );
    let conf = literals(&gate_of(r"(?i:(?-u:\b)confidential(?-u:\b))"));
    assert!(
        conf.len() == 1 && "confidential".contains(&conf[0]),
        "{conf:?}"
    );
    let a = gate_of(r"(?i:do not (share|forward|distribute))");
    let lits = literals(&a);
    assert_eq!(lits.len(), 3, "{lits:?}");
    for (l, w) in lits.iter().zip(["share", "forward", "distribute"]) {
        assert!(w.contains(l.as_str()), "{lits:?}");
    }
    assert!(a.local);
    assert!(a.alphabet.contains(b' ') && !a.alphabet.contains(b','));
    // An unanchored dot pattern still gets a gate but cuts no regions.
    let a = gate_of(r"(?i:secret.*sauce)");
    assert!(a.alphabet.contains(b',') && a.alphabet.contains(b';'));
    assert!(a.gate.is_some());
    assert!(!gate_of("(?m:^secret)").local);
    assert!(
        !gate_of(r"\bsecret\b").local,
        "a Unicode word boundary is not local"
    );
    // A single common letter is no gate.
    assert!(gate_of("(?i:a+)").gate.is_none());
    // Unicode \d can match digits that are not ASCII: no gate from it.
    assert!(gate_of(r"\d{6}").gate.is_none());
    assert!(gate_of(r"[0-9]{6}").gate.is_some());
}

#[test]
fn digits_every_match_holds() {
    let d = |p: &str| Need::common(&needs(&regex_syntax::parse(p).unwrap())).digits;
    assert_eq!(d(r"[0-9]{3}-[0-9]{2}-[0-9]{4}"), 9);
    assert_eq!(d(r"emp-[0-9]{6}|x"), 0);
    assert_eq!(d(r"a1(?:[0-9]|b)"), 1);
    // Unicode \d can match digits that are not ASCII.
    assert_eq!(d(r"\d{4}"), 0);
    assert_eq!(d(crate::guard::builtins::Builtin::CreditCard.pattern()), 13);
}

#[test]
fn branches_need_their_own_digits_and_punctuation() {
    let n = |p: &str| needs(&regex_syntax::parse(p).unwrap());
    let plus = Ascii::default().with(b'+');
    // A phone number: ten digits, or a `+` and fewer.
    let phone = n(crate::guard::builtins::Builtin::PhoneNumber.pattern());
    assert!(phone
        .iter()
        .all(|b| b.digits >= 10 || b.punct.contains(b'+')));
    assert!(phone.iter().any(|b| b.digits < 10));
    assert_eq!(
        n(r"\+[0-9]{2}|[0-9]{10}"),
        vec![
            Need {
                len: 3,
                digits: 2,
                punct: plus,
                ..Need::default()
            },
            Need {
                len: 10,
                digits: 10,
                punct: Ascii::default(),
                ..Need::default()
            }
        ]
    );
    // Optional parts need nothing; a repeated part needs what each
    // of its branches needs.
    assert_eq!(
        n(r"(?:@x)?y"),
        vec![Need {
            len: 1,
            digits: 0,
            punct: Ascii::default(),
            ..Need::default()
        }]
    );
    assert_eq!(
        n(r"(?:a@|b@@)+"),
        vec![Need {
            len: 2,
            digits: 0,
            punct: Ascii::default().with(b'@'),
            ..Need::default()
        }]
    );
    // Too many ways through merge into what they share.
    let many = n(r"(?:[a-z]|[0-9]|@|\.|-)(?:[a-z]|[0-9]|@|\.|-)");
    assert!(many.len() <= MAX_BRANCHES);
}

#[test]
fn branches_need_their_words() {
    let words = |p: &str| -> Vec<Vec<String>> {
        needs(&regex_syntax::parse(p).unwrap())
            .iter()
            .map(|n| {
                n.words
                    .iter()
                    .map(|w| String::from_utf8(w.to_vec()).unwrap())
                    .collect()
            })
            .collect()
    };
    // Letters in either case spell a word; white space and `/` end one.
    assert_eq!(
        words(r"(?i)\bsecret sauce\b"),
        vec![vec!["secret", "sauce"]]
    );
    assert_eq!(
        words(r"(?i)do not (share|forward)"),
        vec![vec!["share", "not", "do"], vec!["forward", "not", "do"]]
    );
    assert_eq!(
        words(r"internal\.example\.com/[a-z]+"),
        vec![vec!["internal.example.com"]]
    );
    // A class of more than one letter, a repetition that may be
    // absent, an escapable byte: no word through them.
    assert_eq!(words(r"ab[cd]ef"), vec![vec!["ab", "ef"]]);
    assert_eq!(words(r"(?:abc)?def"), vec![vec!["def"]]);
    assert_eq!(words(r#"ab"cd\\ef"#), vec![vec!["ab", "cd", "ef"]]);
    // Words every branch of a repetition holds; the longest few.
    assert_eq!(words(r"(?:xyz1|xyz2)+"), vec![Vec::<String>::new()]);
    assert_eq!(words(r"(?:[0-9]word){2}"), vec![vec!["word"]]);
    assert_eq!(
        words(r"aaaaaa bbbbb cccc ddd ee ff"),
        vec![vec!["aaaaaa", "bbbbb", "cccc", "ddd"]]
    );
}

#[test]
fn atoms_that_hold_another_atom_leave_the_gate() {
    let classes = |p: &str| -> Vec<usize> {
        gate_of(p)
            .gate
            .unwrap()
            .iter()
            .map(|a| a.classes.len())
            .collect()
    };
    // Every branch holds four digits in a row.
    assert_eq!(
        classes(r"\b(?:[0-9]{4} [0-9]{4}|[0-9]{4}-[0-9]{4}-[0-9]{4}|[0-9]{13})\b"),
        vec![4]
    );
    // `xy@` holds `y@`, but `@z` holds neither.
    assert_eq!(classes(r"xy@|y@|@z"), vec![2, 2]);
    let atom = |s: &str, word_start: bool| Atom {
        classes: s.bytes().map(|b| Ascii::default().with(b)).collect(),
        word_start,
    };
    assert!(holds_atom(&atom("xab", false), &atom("ab", false)));
    // A word-start atom is held only at the start of a word-start one:
    // inside, the byte before it is a word byte.
    assert!(!holds_atom(&atom("xab", true), &atom("ab", true)));
    assert!(holds_atom(&atom("abx", true), &atom("ab", true)));
    assert!(!holds_atom(&atom("abx", false), &atom("ab", true)));
    // A class is held where the inner class takes all its bytes.
    let digits = Ascii(0x3ff << b'0');
    let two_to_six = Ascii(0x1f << b'2');
    let wide = Atom {
        classes: vec![digits; 4],
        word_start: false,
    };
    let narrow = Atom {
        classes: vec![two_to_six, digits, digits, digits],
        word_start: false,
    };
    assert!(holds_atom(&narrow, &wide));
    assert!(!holds_atom(&wide, &narrow));
    // The searcher widens digit classes, and drops what that makes
    // redundant: a card number is searched as four digits.
    let card = gate_of(crate::guard::builtins::Builtin::CreditCard.pattern());
    let atoms: Vec<(Atom, u32)> = card.gate.unwrap().into_iter().map(|a| (a, 0)).collect();
    assert!(atoms.len() > 1);
    let searcher = Searcher::new(&atoms);
    assert_eq!(searcher.atoms.len(), 1);
    assert_eq!(searcher.atoms[0].classes.len(), 4);
}

#[test]
fn branches_of_one_length_carry_a_stretch_on() {
    // Ten four-letter prefixes and sixteen key bytes: one atom that
    // starts `A[BCGIKNRS][CDIOPV]A`, rarer than the prefixes apart and
    // than the key bytes alone.
    let aws = gate_of(crate::guard::builtins::Builtin::AwsAccessKey.pattern())
        .gate
        .unwrap();
    assert_eq!(aws.len(), 1);
    let a = Ascii::default().with(b'A');
    assert_eq!(aws[0].classes[0], a);
    assert_eq!(aws[0].classes[3], a);
    assert_eq!(aws[0].classes[1].len(), 8);
    assert_eq!(aws[0].classes.len(), 20);
    assert!(aws[0].word_start);
    // Literals apart stay when they are rarer than merged.
    assert_eq!(
        literals(&gate_of(r"q[1-4] (earnings|forecast)")),
        vec!["earnings", "forecast"]
    );
    // Branches of other lengths do not merge.
    assert_eq!(
        merged_branches(&regex_syntax::parse("ab|cde").unwrap()),
        None
    );
    assert_eq!(
        merged_branches(&regex_syntax::parse("ab|cd").unwrap()),
        Some(vec![
            Ascii::default().with(b'a').with(b'c'),
            Ascii::default().with(b'b').with(b'd')
        ])
    );
}

#[test]
fn every_builtin_has_a_local_gate() {
    use crate::guard::prefilter::digits::NumberShape;
    for b in crate::guard::builtins::Builtin::ALL {
        let a = gate_of(b.pattern());
        assert!(a.local, "{b:?}");
        // The number detectors are gated by digit clusters, the others by
        // atoms.
        let numbers = NumberShape::of(*b).is_some();
        assert!(numbers || a.gate.is_some(), "{b:?} has no gate");
    }
    let set = crate::guard::GuardSet::compile(
        &serde_yaml::from_str::<Vec<crate::policy::config::GuardSpec>>(
            "[{regex: {builtins: [CreditCard, Ssn, PhoneNumber, CaSin, Email]}}]",
        )
        .unwrap(),
        false,
    )
    .unwrap();
    assert_eq!(set.fast.digits.patterns.len(), 4);
    assert!(set.fast.gated.iter().all(Option::is_some));
}

#[test]
fn digit_groups_of_a_custom_pattern_go_to_the_digit_gate() {
    let set = crate::guard::GuardSet::compile(
        &serde_yaml::from_str::<Vec<crate::policy::config::GuardSpec>>(
            r"[{regex: {matches: ['\b\d{3}-\d{7}\b', '\b[0-9]{2}-[0-9]{7}\b', 'EU-\d{3}-\d{3}']}}]",
        )
        .unwrap(),
        false,
    )
    .unwrap();
    // The two digit-only ones; `EU-` has a literal gate.
    assert_eq!(set.fast.digits.patterns.len(), 2);
    assert!(set.fast.gated.iter().all(Option::is_some));
}

#[test]
fn the_phone_words_are_gated_at_word_starts() {
    use crate::guard::builtins::Builtin;
    let a = gate_of(Builtin::PhoneNumber.context_pattern().unwrap());
    let gate = a.gate.expect("a gate");
    assert!(!gate.is_empty());
    // Every atom is a word asked for at a word start, none of digits.
    for atom in &gate {
        assert!(atom.word_start, "{atom:?}");
        assert!(atom.literal().is_some(), "{atom:?}");
    }
}
