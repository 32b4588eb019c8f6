//! Go (RE2) regexes as gitleaks writes them, for the Rust `regex` crate.
//!
//! The two syntaxes mostly agree. Where they differ on text both accept,
//! the pattern is rewritten; what Go reads one way and Rust another with no
//! rewrite is refused:
//!
//! * `\d`, `\w`, `\s` (and `\D`, `\W`, `\S`) are ASCII in Go, Unicode in
//!   Rust: rewritten to their ASCII sets (`\s` is Go's `[\t\n\f\r ]`).
//! * `\b`, `\B` are ASCII in Go: rewritten by [`ascii_word_boundaries`].
//! * `&&`, `--`, `~~` in a bracketed class are literal characters in Go and
//!   set operations in Rust: refused (escape them).
//! * Constructs Go has and Rust lacks (`\Q...\E`, octal escapes, `\C`) do
//!   not compile: refused with the compiler's message.

use std::ops::Range;

use regex::Regex;
use regex_syntax::ast::{self, Ast, ClassPerlKind, ClassSet, ClassSetItem};

use crate::guard::compile::patterns::{ascii_word_boundaries, REGEX_SIZE_LIMIT};

/// A Go regex rewritten for Rust and compiled, case as written.
pub fn compile(go: &str) -> Result<(String, Regex), String> {
    let source = translate(go)?;
    let regex = regex::RegexBuilder::new(&source)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("does not compile: {e}"))?;
    Ok((source, regex))
}

/// The Rust spelling of a Go regex.
pub fn translate(go: &str) -> Result<String, String> {
    let parsed = ast::parse::Parser::new()
        .parse(go)
        .map_err(|e| format!("does not compile: {e}"))?;
    let mut edits: Vec<(Range<usize>, &'static str)> = Vec::new();
    walk(&parsed, &mut edits)?;
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(go.len() + 16 * edits.len());
    let mut at = 0;
    for (range, with) in edits {
        out.push_str(&go[at..range.start]);
        out.push_str(with);
        at = range.end;
    }
    out.push_str(&go[at..]);
    Ok(ascii_word_boundaries(&out))
}

fn span(s: &ast::Span) -> Range<usize> {
    s.start.offset..s.end.offset
}

/// The ASCII set of a Perl class: outside a bracketed class, as a class of
/// its own; inside one, as items of it (a negated one as a nested class).
fn perl(p: &ast::ClassPerl, in_class: bool) -> &'static str {
    match (&p.kind, p.negated, in_class) {
        (ClassPerlKind::Digit, false, false) => "[0-9]",
        (ClassPerlKind::Digit, false, true) => "0-9",
        (ClassPerlKind::Digit, true, _) => "[^0-9]",
        (ClassPerlKind::Word, false, false) => "[0-9A-Za-z_]",
        (ClassPerlKind::Word, false, true) => "0-9A-Za-z_",
        (ClassPerlKind::Word, true, _) => "[^0-9A-Za-z_]",
        (ClassPerlKind::Space, false, false) => r"[\t\n\x0C\r\x20]",
        (ClassPerlKind::Space, false, true) => r"\t\n\x0C\r\x20",
        (ClassPerlKind::Space, true, _) => r"[^\t\n\x0C\r\x20]",
    }
}

fn walk(a: &Ast, edits: &mut Vec<(Range<usize>, &'static str)>) -> Result<(), String> {
    match a {
        Ast::ClassPerl(p) => edits.push((span(&p.span), perl(p, false))),
        Ast::ClassBracketed(b) => walk_set(&b.kind, edits)?,
        Ast::Repetition(r) => walk(&r.ast, edits)?,
        Ast::Group(g) => walk(&g.ast, edits)?,
        Ast::Alternation(x) => {
            for a in &x.asts {
                walk(a, edits)?;
            }
        }
        Ast::Concat(x) => {
            for a in &x.asts {
                walk(a, edits)?;
            }
        }
        Ast::Empty(_)
        | Ast::Flags(_)
        | Ast::Literal(_)
        | Ast::Dot(_)
        | Ast::Assertion(_)
        | Ast::ClassUnicode(_) => {}
    }
    Ok(())
}

fn walk_set(set: &ClassSet, edits: &mut Vec<(Range<usize>, &'static str)>) -> Result<(), String> {
    match set {
        ClassSet::BinaryOp(op) => Err(format!(
            "`{}` in a character class is two literal characters in Go but a set operation in Rust; escape them",
            match op.kind {
                ast::ClassSetBinaryOpKind::Intersection => "&&",
                ast::ClassSetBinaryOpKind::Difference => "--",
                ast::ClassSetBinaryOpKind::SymmetricDifference => "~~",
            }
        )),
        ClassSet::Item(item) => walk_item(item, edits),
    }
}

fn walk_item(
    item: &ClassSetItem,
    edits: &mut Vec<(Range<usize>, &'static str)>,
) -> Result<(), String> {
    match item {
        ClassSetItem::Perl(p) => edits.push((span(&p.span), perl(p, true))),
        ClassSetItem::Bracketed(b) => walk_set(&b.kind, edits)?,
        ClassSetItem::Union(u) => {
            for i in &u.items {
                walk_item(i, edits)?;
            }
        }
        ClassSetItem::Empty(_)
        | ClassSetItem::Literal(_)
        | ClassSetItem::Range(_)
        | ClassSetItem::Ascii(_)
        | ClassSetItem::Unicode(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_become_ascii_as_in_go() {
        assert_eq!(translate(r"\d+").unwrap(), "[0-9]+");
        assert_eq!(translate(r"[\w.-]{3}").unwrap(), "[0-9A-Za-z_.-]{3}");
        assert_eq!(translate(r"[^\W]").unwrap(), "[^[^0-9A-Za-z_]]");
        let (_, re) = compile(r"^\w+$").unwrap();
        assert!(re.is_match("abc_09"));
        assert!(!re.is_match("héllo"), "Go's \\w is ASCII");
        let (_, re) = compile(r"a\sb").unwrap();
        assert!(re.is_match("a\tb"));
        assert!(!re.is_match("a\u{a0}b"), "Go's \\s is ASCII");
        assert!(!re.is_match("a\u{0b}b"), "Go's \\s has no vertical tab");
        let (_, re) = compile(r"x\Dy").unwrap();
        assert!(re.is_match("x٣y"), "a non-ASCII digit is not \\d in Go");
    }

    #[test]
    fn word_boundaries_are_ascii() {
        let (src, re) = compile(r"\bkey\b").unwrap();
        assert!(src.contains("(?-u:\\b)"), "{src}");
        assert!(re.is_match("éKEY key"));
    }

    #[test]
    fn what_go_reads_otherwise_is_refused() {
        assert!(translate("[a&&b]").unwrap_err().contains("&&"));
        assert!(compile(r"\Qa.b\E").is_err());
        assert!(compile(r"(x").is_err());
    }

    #[test]
    fn flags_and_groups_carry_over() {
        let (_, re) = compile(r"(?i)(?:tok|key)=(?P<v>[a-z]{4})").unwrap();
        let c = re.captures("KEY=abcd").unwrap();
        assert_eq!(&c["v"], "abcd");
    }
}
