//! Guards: compiled once per policy load, run on the text a provider model
//! extracts from a request or a response.
//!
//! Like ripgrep's split of matcher and searcher, a [`GuardSet`] is the
//! compiled matcher (every pattern of every guard of one direction in one
//! `RegexSet`, plus one `Regex` each to locate matches) and [`GuardSet::scan`]
//! is the searcher over a request's segments. Custom patterns match on
//! [normalised](normalize) text, case-insensitively, unless a guard opts out;
//! matches map back to exact byte ranges of the original text, so masks
//! land on the right bytes.

pub mod builtins;
pub mod external;
pub mod gate;
pub mod normalize;
pub mod tool;

use std::ops::Range;

use regex::{Regex, RegexSet, RegexSetBuilder};

use crate::policy::config::{ActionSpec, GuardSpec, ScopeSpec};
use crate::provider::{KindSet, Location, PartKind, TextSegment};
use builtins::Builtin;
use normalize::Normalized;

/// agentgateway's default rejection message.
pub const DEFAULT_REJECT_MESSAGE: &str = "The request was rejected due to inappropriate content";
/// agentgateway's default rejection status.
pub const DEFAULT_REJECT_STATUS: u16 = 403;
/// agentgateway's placeholder for a custom pattern of an unnamed guard.
pub const DEFAULT_MASK_PLACEHOLDER: &str = "<masked>";

/// Compiled regex size limit per pattern (bytes of compiled program).
const REGEX_SIZE_LIMIT: usize = 10 << 20;

/// What a guard does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Reject,
    Mask,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Reject => "reject",
            Action::Mask => "mask",
        }
    }
}

/// One selector of a guard's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selector {
    SystemPrompt,
    Messages,
    ToolOutput,
    ToolInput,
    UserMessages,
    AssistantMessages,
    Documents,
    ToolDefinitions,
    LatestUserTurn,
}

impl Selector {
    fn from_spec(s: ScopeSpec) -> Selector {
        match s {
            ScopeSpec::SystemPrompt => Selector::SystemPrompt,
            ScopeSpec::Messages => Selector::Messages,
            ScopeSpec::ToolOutput => Selector::ToolOutput,
            ScopeSpec::ToolInput => Selector::ToolInput,
            ScopeSpec::UserMessages => Selector::UserMessages,
            ScopeSpec::AssistantMessages => Selector::AssistantMessages,
            ScopeSpec::Documents => Selector::Documents,
            ScopeSpec::ToolDefinitions => Selector::ToolDefinitions,
            ScopeSpec::LatestUserTurn => Selector::LatestUserTurn,
        }
    }

    /// Kinds the selector may read (what must be extracted for it).
    fn kinds(self) -> KindSet {
        use PartKind::*;
        KindSet::of(match self {
            Selector::SystemPrompt => &[System],
            Selector::Messages => &[System, UserText, AssistantText, Document],
            Selector::ToolOutput => &[ToolResult],
            Selector::ToolInput => &[ToolInput],
            Selector::UserMessages => &[UserText],
            Selector::AssistantMessages => &[AssistantText],
            Selector::Documents => &[Document],
            Selector::ToolDefinitions => &[ToolDefinition],
            Selector::LatestUserTurn => &[UserText, ToolResult, Document],
        })
    }

    fn selects(self, kind: PartKind, location: &Location, latest_user: Option<u32>) -> bool {
        if !self.kinds().contains(kind) {
            return false;
        }
        match self {
            // agentgateway's Messages: every message, but not the top-level system field.
            Selector::Messages => location.message().is_some(),
            Selector::LatestUserTurn => latest_user.is_some() && location.message() == latest_user,
            _ => true,
        }
    }
}

/// Which parts of a request a guard reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(Vec<Selector>);

impl Scope {
    /// The default for agentic clients: the system prompt, what users wrote,
    /// documents and tool results — never tool definitions.
    /// (agentgateway's default is `[SystemPrompt, Messages]`, which reads
    /// assistant history and leaves tool results out.)
    pub fn default_request() -> Scope {
        Scope(vec![
            Selector::SystemPrompt,
            Selector::UserMessages,
            Selector::Documents,
            Selector::ToolOutput,
        ])
    }

    fn kinds(&self) -> KindSet {
        self.0
            .iter()
            .fold(KindSet::EMPTY, |k, s| k.union(s.kinds()))
    }

    fn selects(&self, kind: PartKind, location: &Location, latest_user: Option<u32>) -> bool {
        self.0
            .iter()
            .any(|s| s.selects(kind, location, latest_user))
    }
}

/// One compiled guard rule.
#[derive(Debug)]
pub struct GuardRule {
    /// Rule name: the guard's `name`, else `request[N]` / `response[N]`.
    pub name: String,
    pub action: Action,
    pub status: u16,
    pub message: String,
    scope: Scope,
}

/// Error compiling one guard: which entry, which field, what.
#[derive(Debug)]
pub struct GuardSpecError {
    pub index: usize,
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
struct Pattern {
    regex: Regex,
    rule: usize,
    placeholder: String,
    /// Builtin detectors validate candidates (checksums, structure).
    validate: Option<Builtin>,
}

impl Pattern {
    fn accepts(&self, candidate: &str) -> bool {
        self.validate.is_none_or(|b| b.validate(candidate))
    }
}

/// Patterns that run on one view of the text (normalised or raw).
#[derive(Debug)]
struct PatternSet {
    set: RegexSet,
    patterns: Vec<Pattern>,
}

impl PatternSet {
    fn build(sources: &[String], patterns: Vec<Pattern>) -> Result<PatternSet, String> {
        let set = RegexSetBuilder::new(sources)
            .size_limit(REGEX_SIZE_LIMIT.saturating_mul(sources.len().max(1)))
            // A roomy lazy-DFA cache: with many patterns a small one is
            // cleared over and over, and scanning crawls.
            .dfa_size_limit(64 << 20)
            .build()
            .map_err(|e| format!("the patterns do not compile together: {e}"))?;
        Ok(PatternSet { set, patterns })
    }

    fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Indices of the patterns that match `text`. Most text matches nothing:
    /// a plain `is_match` (leftmost, with prefilters) answers that far
    /// faster than the overlapping search that names every pattern.
    fn matching(&self, text: &str) -> Vec<usize> {
        if !self.set.is_match(text) {
            return Vec::new();
        }
        self.set.matches(text).into_iter().collect()
    }
}

/// All guards of one direction, compiled.
#[derive(Debug)]
pub struct GuardSet {
    rules: Vec<GuardRule>,
    /// Patterns matched on normalised text (joined per message).
    normalized: PatternSet,
    /// Patterns matched on the raw text of each segment (`normalize: false`).
    raw: PatternSet,
    /// Union of the rules' scopes: what a request must yield.
    kinds: KindSet,
    /// Longest possible match in bytes of original text (stream hold-back).
    window: usize,
    /// The gated fast path for requests (see [`GuardSet::scan`]).
    fast: FastPath,
}

/// What lets a request scan skip normalising and searching most text:
/// gates for the normalised patterns that have one (see [`gate`]).
#[derive(Debug, Default)]
struct FastPath {
    /// Per normalised pattern: its alphabet when it is gated.
    gated: Vec<Option<Boundaries>>,
    /// Per normalised pattern: what a match through each of its branches
    /// holds (bytes, ASCII digits, punctuation, words); a region of plain
    /// text that offers no branch its need holds no match.
    needs: Vec<Vec<gate::Need>>,
    /// Finds every gated pattern's atoms (group = pattern index).
    searcher: Option<gate::Searcher>,
    /// Every byte some gate's atoms can hold: a suspect character matters
    /// only if it produces one, and the stretch around it out to other
    /// bytes holds every atom it takes part in.
    gate_bytes: gate::Ascii,
    /// The boundaries of the gate bytes (around a suspect).
    gate_boundaries: Boundaries,
    /// Patterns with no gate, scanned over whole units: their set and
    /// their indices among the normalised patterns.
    ungated: Option<(RegexSet, Vec<usize>)>,
}

impl FastPath {
    fn build(sources: &[String]) -> Result<FastPath, String> {
        let mut fast = FastPath::default();
        let mut atoms = Vec::new();
        let mut ungated = (Vec::new(), Vec::new());
        for (i, src) in sources.iter().enumerate() {
            let hir = regex_syntax::ParserBuilder::new().build().parse(src).ok();
            fast.needs.push(
                hir.as_ref()
                    .map_or_else(|| vec![gate::Need::default()], gate::needs),
            );
            let analysis = hir.map(|hir| gate::analyze(&hir)).filter(|a| a.local);
            match analysis.and_then(|a| a.gate.map(|g| (a.alphabet, g))) {
                Some((alphabet, g)) => {
                    for a in &g {
                        fast.gate_bytes.0 |= a.bytes().0;
                    }
                    atoms.extend(g.into_iter().map(|a| (a, i as u32)));
                    fast.gated.push(Some(Boundaries::new(alphabet)));
                }
                None => {
                    fast.gated.push(None);
                    ungated.0.push(src.clone());
                    ungated.1.push(i);
                }
            }
        }
        fast.gate_boundaries = Boundaries::new(fast.gate_bytes);
        if !atoms.is_empty() {
            fast.searcher = Some(gate::Searcher::new(&atoms));
            // Build the suspect-character table now, not on a request.
            gate::suspect_char('\u{100}');
            normalize::kept_as_is('\u{100}');
            normalize::is_format('\u{100}');
        }
        if !ungated.1.is_empty() {
            let set = RegexSetBuilder::new(&ungated.0)
                .size_limit(REGEX_SIZE_LIMIT.saturating_mul(ungated.0.len()))
                .dfa_size_limit(64 << 20)
                .build()
                .map_err(|e| format!("the patterns do not compile together: {e}"))?;
            fast.ungated = Some((set, ungated.1));
        }
        Ok(fast)
    }
}

/// ASCII punctuation (or the space) no match of a pattern with this
/// alphabet can hold, and that is always a character of its own in a JSON
/// literal (never part of an escape, never a word character).
fn is_boundary(alphabet: gate::Ascii, b: u8) -> bool {
    !alphabet.contains(b)
        && (b == b' ' || (b.is_ascii_punctuation() && !matches!(b, b'_' | b'\\' | b'"' | b'/')))
}

/// [`is_boundary`] of every byte for one alphabet, looked up per byte of a
/// region rather than computed.
#[derive(Debug, Clone)]
struct Boundaries {
    table: [bool; 256],
}

impl Boundaries {
    fn new(alphabet: gate::Ascii) -> Boundaries {
        let mut table = [false; 256];
        for b in 0..=255u8 {
            table[usize::from(b)] = is_boundary(alphabet, b);
        }
        Boundaries { table }
    }

    fn at(&self, b: u8) -> bool {
        self.table[usize::from(b)]
    }

    /// The alphabet holds the space that joins a unit's segments.
    fn crosses(&self) -> bool {
        !self.at(b' ')
    }
}

impl Default for Boundaries {
    fn default() -> Boundaries {
        Boundaries::new(gate::Ascii::default())
    }
}

/// A stretch of a unit's literals: from (segment, raw offset) to
/// (segment, raw offset), segments joined by a space as in the unit's
/// normalised text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Region {
    start: (usize, usize),
    end: (usize, usize),
}

impl Region {
    fn contains(&self, seg: usize, pos: usize) -> bool {
        (self.start.0, self.start.1) <= (seg, pos) && (seg, pos) < (self.end.0, self.end.1)
    }

    /// The region's stretch of each literal it spans, into `out`.
    fn stretches_into(&self, segments: &[TextSegment<'_>], out: &mut Vec<(usize, Range<usize>)>) {
        out.clear();
        out.extend((self.start.0..=self.end.0).map(|seg| {
            let lo = if seg == self.start.0 { self.start.1 } else { 0 };
            let hi = if seg == self.end.0 {
                self.end.1
            } else {
                segments[seg].literal.len()
            };
            (seg, lo..hi)
        }));
    }
}

/// The region around raw offset `pos` of segment `seg`: out to the nearest
/// boundary on each side, across the joins between the unit's segments
/// when the alphabet holds the space that joins them.
fn region_around(
    segments: &[TextSegment<'_>],
    unit: &Range<usize>,
    seg: usize,
    pos: usize,
    boundaries: &Boundaries,
) -> Region {
    let crosses = boundaries.crosses();
    let (mut s, mut at) = (seg, pos);
    let start = loop {
        let lit = segments[s].literal.as_bytes();
        match lit[..at].iter().rposition(|&b| boundaries.at(b)) {
            Some(k) => break (s, k + 1),
            None if crosses && s > unit.start => {
                s -= 1;
                at = segments[s].literal.len();
            }
            None => break (s, 0),
        }
    };
    let (mut s, mut at) = (seg, pos);
    let end = loop {
        let lit = segments[s].literal.as_bytes();
        match lit[at..].iter().position(|&b| boundaries.at(b)) {
            Some(k) => break (s, at + k),
            None if crosses && s + 1 < unit.end => {
                s += 1;
                at = 0;
            }
            None => break (s, lit.len()),
        }
    };
    Region { start, end }
}

/// Raw literal text whose normalised form holds no byte, digit or word its
/// raw bytes lack: ASCII (NFKC may expand other characters), no DEL and no
/// `\b` escape (dropped as controls, they join their neighbours), no `\u`
/// escape (it may stand for anything). Its other escapes hold their own
/// character (`\"`) or white space (`\n`).
fn plain_text(b: &[u8]) -> bool {
    // Regions are short: a loop beats setting up searches.
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            0x7f..=0xff => return false,
            b'\\' if matches!(b.get(i + 1), Some(b'u' | b'b')) => return false,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    true
}

/// Whether `text` holds `word` (lower-case) up to ASCII case.
fn contains_word(text: &[u8], word: &[u8]) -> bool {
    let Some((&first, rest)) = word.split_first() else {
        return true;
    };
    let last = text.len().saturating_sub(rest.len());
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), &text[..last])
        .any(|i| text[i + 1..i + word.len()].eq_ignore_ascii_case(rest))
}

/// A gate hit (segment, raw offset, pattern) as one integer that sorts in
/// that order.
fn pack_hit(seg: usize, pos: u32, pattern: u32) -> u128 {
    (seg as u128) << 64 | u128::from(pos) << 32 | u128::from(pattern)
}

fn unpack_hit(h: u128) -> (usize, usize, usize) {
    (
        (h >> 64) as usize,
        (h >> 32) as u32 as usize,
        h as u32 as usize,
    )
}

/// Every literal of a unit, whole.
fn whole_unit(segments: &[TextSegment<'_>], unit: &Range<usize>) -> Vec<(usize, Range<usize>)> {
    unit.clone()
        .map(|i| (i, 0..segments[i].literal.len()))
        .collect()
}

/// Stretches of literals normalised and joined by single spaces, as a
/// unit's text is.
struct Joined<'a> {
    /// (segment, raw offset of the stretch, its normalised text).
    pieces: Vec<(usize, usize, Normalized<'a>)>,
    /// Where each piece starts in the joined text.
    offsets: Vec<usize>,
    /// The joined text when there is more than one piece.
    joined: String,
}

impl<'a> Joined<'a> {
    fn new(segments: &[TextSegment<'a>], stretches: &[(usize, Range<usize>)]) -> Joined<'a> {
        let pieces: Vec<(usize, usize, Normalized<'a>)> = stretches
            .iter()
            .map(|(seg, r)| {
                let lit = segments[*seg].literal;
                (*seg, r.start, normalize::normalize_literal(&lit[r.clone()]))
            })
            .collect();
        let mut joined = String::new();
        let mut offsets = Vec::with_capacity(pieces.len());
        if pieces.len() == 1 {
            offsets.push(0);
        } else {
            joined.reserve(pieces.iter().map(|p| p.2.text.len() + 1).sum());
            for (k, (_, _, n)) in pieces.iter().enumerate() {
                if k > 0 {
                    joined.push(' ');
                }
                offsets.push(joined.len());
                joined.push_str(&n.text);
            }
        }
        Joined {
            pieces,
            offsets,
            joined,
        }
    }

    fn text(&self) -> &str {
        match &self.pieces[..] {
            [(_, _, only)] => &only.text,
            _ => &self.joined,
        }
    }

    /// (segment, raw offset) of the character behind joined byte `at` (a
    /// joining space: the start of the next piece).
    fn origin(&self, segments: &[TextSegment<'_>], at: usize) -> (usize, usize) {
        let k = self.offsets.partition_point(|&o| o <= at).saturating_sub(1);
        let (s, base, norm) = &self.pieces[k];
        if at - self.offsets[k] < norm.text.len() {
            return (*s, base + norm.origin(at - self.offsets[k]));
        }
        let (s, base, norm) = &self.pieces[(k + 1).min(self.pieces.len() - 1)];
        (*s, base + norm.origin(0).min(segments[*s].literal.len()))
    }
}

/// Which normalised patterns a stretch is searched with.
enum Which<'a> {
    One(usize),
    All,
    Ungated(&'a RegexSet, &'a [usize]),
}

/// A guard that fired on a request segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Index of the rule in [`GuardSet::rules`].
    pub rule: usize,
    /// Index of the segment.
    pub segment: usize,
    /// Byte range of the match in the segment's literal content (raw JSON,
    /// escapes intact; the range covers whole escape sequences).
    pub range: Range<usize>,
    /// What replaces it when masking.
    pub placeholder: String,
}

/// What scanning a request found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The first rejecting finding, in body order.
    pub reject: Option<Finding>,
    /// Every masking finding (possibly overlapping), in body order.
    pub masks: Vec<Finding>,
}

/// A match in a single text (responses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMatch {
    pub rule: usize,
    pub range: Range<usize>,
    pub placeholder: String,
}

/// Hold-back window for a pattern with no upper bound on its length.
const UNBOUNDED_WINDOW: usize = 1024;

/// Rewrites every word-boundary assertion of a pattern (`\b`, `\B`,
/// `\b{start}`, `\<`, ...) to its ASCII form, e.g. `\b` → `(?-u:\b)`.
///
/// A Unicode word boundary forces the regex engine off its DFAs onto the
/// much slower PikeVM whenever the text is not pure ASCII (prompts rarely
/// are): one `\b` among fifty patterns made a scan a hundred times slower.
/// At ASCII boundaries a non-ASCII letter counts as a non-word character,
/// so an ASCII word like `credit` matches at least wherever it did.
fn ascii_word_boundaries(pattern: &str) -> String {
    use regex_syntax::ast::{
        self, AssertionKind, Ast, Flag, Flags, FlagsItem, FlagsItemKind, Group, GroupKind,
    };
    fn walk(a: &mut Ast) {
        let word = |k: &AssertionKind| {
            !matches!(
                k,
                AssertionKind::StartLine
                    | AssertionKind::EndLine
                    | AssertionKind::StartText
                    | AssertionKind::EndText
            )
        };
        let replacement = match a {
            Ast::Assertion(x) if word(&x.kind) => {
                let span = x.span;
                let flags = Flags {
                    span,
                    items: vec![
                        FlagsItem {
                            span,
                            kind: FlagsItemKind::Negation,
                        },
                        FlagsItem {
                            span,
                            kind: FlagsItemKind::Flag(Flag::Unicode),
                        },
                    ],
                };
                Some(Ast::group(Group {
                    span,
                    kind: GroupKind::NonCapturing(flags),
                    ast: Box::new(Ast::assertion((**x).clone())),
                }))
            }
            Ast::Repetition(r) => {
                walk(&mut r.ast);
                None
            }
            Ast::Group(g) => {
                walk(&mut g.ast);
                None
            }
            Ast::Alternation(alt) => {
                alt.asts.iter_mut().for_each(walk);
                None
            }
            Ast::Concat(c) => {
                c.asts.iter_mut().for_each(walk);
                None
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *a = r;
        }
    }
    match ast::parse::Parser::new().parse(pattern) {
        Ok(mut a) => {
            walk(&mut a);
            a.to_string()
        }
        // Let the regex compiler report the error with its own message.
        Err(_) => pattern.to_owned(),
    }
}

fn max_len_of(pattern: &str) -> Option<usize> {
    regex_syntax::parse(pattern)
        .ok()?
        .properties()
        .maximum_len()
}

/// `<RULE_NAME>` for a named guard's custom patterns.
fn placeholder_for(name: Option<&str>) -> String {
    match name {
        None => DEFAULT_MASK_PLACEHOLDER.to_owned(),
        Some(n) => {
            let upper: String = n
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("<{upper}>")
        }
    }
}

impl GuardSet {
    /// A set with no guards.
    pub fn empty() -> Self {
        GuardSet {
            rules: Vec::new(),
            normalized: PatternSet {
                set: RegexSet::empty(),
                patterns: Vec::new(),
            },
            raw: PatternSet {
                set: RegexSet::empty(),
                patterns: Vec::new(),
            },
            kinds: KindSet::EMPTY,
            window: 0,
            fast: FastPath::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[GuardRule] {
        &self.rules
    }

    /// Parts a request must yield for these guards.
    pub fn kinds(&self) -> KindSet {
        self.kinds
    }

    /// Longest match any pattern can produce, in bytes of original text: the
    /// hold-back window a stream needs so no match is released unseen.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Compiles `promptGuard.request` (`response = false`) or
    /// `promptGuard.response` entries of one backend.
    pub fn compile(specs: &[GuardSpec], response: bool) -> Result<GuardSet, GuardSpecError> {
        let mut rules = Vec::with_capacity(specs.len());
        let (mut norm_src, mut norm_pat) = (Vec::new(), Vec::new());
        let (mut raw_src, mut raw_pat) = (Vec::new(), Vec::new());
        let mut window = 0usize;
        let direction = if response { "response" } else { "request" };
        for (index, spec) in specs.iter().enumerate() {
            let fail = |field: &str, message: String| GuardSpecError {
                index,
                field: field.to_owned(),
                message,
            };
            if spec.external.is_some() {
                if response {
                    return Err(fail(
                        "external",
                        "external guards run on requests only, for now".into(),
                    ));
                }
                // Compiled by `external::ExternalGuard::compile_all`.
                continue;
            }
            for (field, present) in [
                ("webhook", spec.webhook.is_some()),
                ("openAIModeration", spec.openai_moderation.is_some()),
                ("bedrockGuardrails", spec.bedrock_guardrails.is_some()),
                ("googleModelArmor", spec.google_model_armor.is_some()),
            ] {
                if present {
                    return Err(fail(
                        field,
                        format!("`{field}` is not supported by promptgate yet; a guard that cannot run must not load"),
                    ));
                }
            }
            let Some(regex) = &spec.regex else {
                return Err(fail(
                    "",
                    "a guard needs a `regex` or an `external` entry".into(),
                ));
            };
            let scope = match (&spec.scope, response) {
                (Some(_), true) => return Err(fail(
                    "scope",
                    "response guards read the whole response text; `scope` is for request guards"
                        .into(),
                )),
                (Some(list), false) if list.is_empty() => {
                    return Err(fail(
                        "scope",
                        "an empty scope would read nothing; omit `scope` for the default".into(),
                    ))
                }
                (Some(list), false) => {
                    Scope(list.iter().map(|s| Selector::from_spec(*s)).collect())
                }
                (None, _) => Scope::default_request(),
            };
            // agentgateway's default action is Mask.
            let action = match regex.action.unwrap_or(ActionSpec::Mask) {
                ActionSpec::Reject => Action::Reject,
                ActionSpec::Mask => Action::Mask,
            };
            if regex.matches.is_empty() && regex.builtins.is_empty() {
                return Err(fail(
                    "regex",
                    "a regex guard needs `matches` or `builtins`".into(),
                ));
            }
            let rule = rules.len();
            let case_sensitive = regex.case_sensitive.unwrap_or(false);
            let normalize = regex.normalize.unwrap_or(true);
            let custom_placeholder = placeholder_for(spec.name.as_deref());
            for (j, pattern) in regex.matches.iter().enumerate() {
                let field = format!("regex.matches[{j}]");
                let ascii = ascii_word_boundaries(pattern);
                let source = if case_sensitive {
                    ascii
                } else {
                    format!("(?i:{ascii})")
                };
                let compiled = regex::RegexBuilder::new(&source)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| fail(&field, format!("invalid regex: {e}")))?;
                if compiled.is_match("") {
                    return Err(fail(
                        &field,
                        format!("pattern `{pattern}` matches the empty string, so it would match every request"),
                    ));
                }
                // Normalisation shrinks text (collapsed white space, NFKC):
                // allow for it when sizing the hold-back window.
                window = window.max(
                    max_len_of(&source).map_or(UNBOUNDED_WINDOW, |n| n.saturating_mul(4) + 16),
                );
                let p = Pattern {
                    regex: compiled,
                    rule,
                    placeholder: custom_placeholder.clone(),
                    validate: None,
                };
                if normalize {
                    norm_src.push(source);
                    norm_pat.push(p);
                } else {
                    raw_src.push(source);
                    raw_pat.push(p);
                }
            }
            for (j, name) in regex.builtins.iter().enumerate() {
                let field = format!("regex.builtins[{j}]");
                let d = Builtin::from_name(name).ok_or_else(|| {
                    let known: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
                    fail(
                        &field,
                        format!(
                            "unknown builtin detector `{name}`; known: {}",
                            known.join(", ")
                        ),
                    )
                })?;
                if norm_pat
                    .iter()
                    .any(|p: &Pattern| p.rule == rule && p.validate == Some(d))
                {
                    continue;
                }
                window = window.max(d.max_match_len().saturating_mul(4) + 16);
                norm_src.push(d.pattern().to_owned());
                norm_pat.push(Pattern {
                    regex: d.regex(),
                    rule,
                    placeholder: d.placeholder().to_owned(),
                    validate: Some(d),
                });
            }
            let response_spec = spec.response.as_ref();
            let status = response_spec
                .and_then(|r| r.status_code)
                .unwrap_or(DEFAULT_REJECT_STATUS);
            if !(400..=599).contains(&status) {
                return Err(fail(
                    "response.statusCode",
                    format!("{status} is not an error status (400-599)"),
                ));
            }
            rules.push(GuardRule {
                name: spec
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{direction}[{index}]")),
                action,
                status,
                message: response_spec
                    .and_then(|r| r.message.clone())
                    .unwrap_or_else(|| DEFAULT_REJECT_MESSAGE.to_owned()),
                scope,
            });
        }
        let whole = |message: String| GuardSpecError {
            index: 0,
            field: String::new(),
            message,
        };
        let kinds = rules
            .iter()
            .fold(KindSet::EMPTY, |k, r| k.union(r.scope.kinds()));
        let fast = if response {
            FastPath::default()
        } else {
            FastPath::build(&norm_src).map_err(whole)?
        };
        Ok(GuardSet {
            fast,
            rules,
            normalized: PatternSet::build(&norm_src, norm_pat).map_err(whole)?,
            raw: PatternSet::build(&raw_src, raw_pat).map_err(whole)?,
            kinds,
            window,
        })
    }

    /// Scans a request's segments. Consecutive text of one message (its
    /// text blocks, or one tool result's blocks) is joined with a space and
    /// matched as one, so a phrase split across blocks still matches.
    pub fn scan(&self, segments: &[TextSegment<'_>], latest_user: Option<u32>) -> Scan {
        self.scan_with(segments, latest_user, true)
    }

    /// [`Self::scan`] with the gated fast path on or off (the reference).
    fn scan_with(
        &self,
        segments: &[TextSegment<'_>],
        latest_user: Option<u32>,
        gated: bool,
    ) -> Scan {
        let mut scan = Scan::default();
        if self.rules.is_empty() {
            return scan;
        }
        let mut start = 0;
        while start < segments.len() {
            let end = start + unit_len(&segments[start..]);
            let first = &segments[start];
            let applies: Vec<bool> = self
                .rules
                .iter()
                .map(|r| r.scope.selects(first.kind, &first.location, latest_user))
                .collect();
            if applies.iter().any(|a| *a) {
                if !gated || self.fast.gated.is_empty() {
                    self.scan_unit(segments, start..end, &applies, &mut scan);
                } else {
                    self.scan_unit_gated(segments, start..end, &applies, &mut scan);
                }
            }
            start = end;
        }
        scan.masks
            .sort_by_key(|f| (f.segment, f.range.start, std::cmp::Reverse(f.range.end)));
        scan
    }

    fn record(
        &self,
        scan: &mut Scan,
        rule: usize,
        segment: usize,
        range: Range<usize>,
        placeholder: &str,
    ) {
        let finding = Finding {
            rule,
            segment,
            range,
            placeholder: placeholder.to_owned(),
        };
        match self.rules[rule].action {
            Action::Reject => {
                let earlier = scan.reject.as_ref().is_some_and(|r| {
                    (r.segment, r.range.start) <= (finding.segment, finding.range.start)
                });
                if !earlier {
                    scan.reject = Some(finding);
                }
            }
            Action::Mask => scan.masks.push(finding),
        }
    }

    /// Records matches of normalised patterns, `(pattern, segment, range)`,
    /// once each, in body order.
    fn record_matches(&self, scan: &mut Scan, found: &mut Vec<(usize, usize, Range<usize>)>) {
        found.sort_by_key(|(p, seg, r)| (*seg, r.start, r.end, *p));
        found.dedup();
        for (p, seg, range) in found.drain(..) {
            let pat = &self.normalized.patterns[p];
            self.record(scan, pat.rule, seg, range, &pat.placeholder);
        }
    }

    /// Normalises the stretches of literals (joined by single spaces, as a
    /// unit's text is) and collects the matches of `which` patterns.
    fn match_stretches(
        &self,
        segments: &[TextSegment<'_>],
        stretches: &[(usize, Range<usize>)],
        which: Which<'_>,
        applies: &[bool],
        found: &mut Vec<(usize, usize, Range<usize>)>,
    ) {
        let text = Joined::new(segments, stretches);
        let (joined, pieces, offsets) = (text.text(), &text.pieces, &text.offsets);
        let mut run = |p: usize| {
            let pat = &self.normalized.patterns[p];
            if !applies[pat.rule] {
                return;
            }
            for m in pat.regex.find_iter(joined) {
                if !pat.accepts(m.as_str()) {
                    continue;
                }
                // Map the match onto every piece it overlaps.
                for (k, (seg, base, norm)) in pieces.iter().enumerate() {
                    let lo = offsets[k];
                    let hi = lo + norm.text.len();
                    let (s, e) = (m.start().max(lo), m.end().min(hi));
                    if s >= e {
                        continue;
                    }
                    let lit = &segments[*seg].literal[*base..];
                    let r = norm.original_range(lit, s - lo..e - lo);
                    found.push((p, *seg, base + r.start..base + r.end));
                }
            }
        };
        match which {
            Which::One(p) => run(p),
            Which::All => self.normalized.matching(joined).into_iter().for_each(run),
            Which::Ungated(set, index) => {
                if set.is_match(joined) {
                    set.matches(joined).into_iter().for_each(|k| run(index[k]));
                }
            }
        }
    }

    /// The reference scan of a unit: normalise all of it, search all of it.
    fn scan_unit(
        &self,
        segments: &[TextSegment<'_>],
        unit: Range<usize>,
        applies: &[bool],
        scan: &mut Scan,
    ) {
        if !self.normalized.is_empty() {
            let mut found = Vec::new();
            let whole = whole_unit(segments, &unit);
            self.match_stretches(segments, &whole, Which::All, applies, &mut found);
            self.record_matches(scan, &mut found);
        }
        self.scan_unit_raw(segments, unit, applies, scan);
    }

    /// The gated scan of a unit: the same findings as [`Self::scan_unit`],
    /// but normalised text is searched only in regions around gate hits and
    /// suspect characters (see [`gate`]); patterns without a gate still
    /// read the whole unit.
    fn scan_unit_gated(
        &self,
        segments: &[TextSegment<'_>],
        unit: Range<usize>,
        applies: &[bool],
        scan: &mut Scan,
    ) {
        let mut found = Vec::new();
        if let Some((set, index)) = &self.fast.ungated {
            if index
                .iter()
                .any(|&p| applies[self.normalized.patterns[p].rule])
            {
                let whole = whole_unit(segments, &unit);
                self.match_stretches(
                    segments,
                    &whole,
                    Which::Ungated(set, index),
                    applies,
                    &mut found,
                );
            }
        }
        if let Some(searcher) = &self.fast.searcher {
            let mut plain_segments = Vec::new();
            let hits = self.gate_hits(searcher, segments, &unit, &mut plain_segments);
            // Last region searched per pattern.
            let mut done: Vec<Option<Region>> = vec![None; self.normalized.patterns.len()];
            let mut stretches = Vec::new();
            for (seg, pos, p) in hits.iter().map(|&h| unpack_hit(h)) {
                let Some(boundaries) = &self.fast.gated[p] else {
                    continue;
                };
                if !applies[self.normalized.patterns[p].rule] {
                    continue;
                }
                if done[p].is_some_and(|r| r.contains(seg, pos)) {
                    continue;
                }
                let region = region_around(segments, &unit, seg, pos, boundaries);
                done[p] = Some(region);
                region.stretches_into(segments, &mut stretches);
                // Plain text (see [`plain_text`]) only shrinks when
                // normalised and gains no digits, no punctuation and no
                // words: a region of it that offers no branch of the
                // pattern its bytes, digits, punctuation and words holds no
                // match.
                let bytes =
                    |(s, r): &(usize, Range<usize>)| &segments[*s].literal.as_bytes()[r.clone()];
                let plain = || {
                    stretches
                        .iter()
                        .all(|x| plain_segments[x.0 - unit.start] || plain_text(bytes(x)))
                };
                let len =
                    stretches.iter().map(|(_, r)| r.len()).sum::<usize>() + stretches.len() - 1;
                let count_digits = || {
                    stretches
                        .iter()
                        .map(|x| bytes(x).iter().filter(|b| b.is_ascii_digit()).count())
                        .sum::<usize>()
                };
                // Punctuation looked for, and found (phone numbers ask for
                // the same few bytes through many branches).
                let (mut sought, mut found_punct) = (0u128, 0u128);
                let mut has = |b: u8| {
                    let bit = 1u128 << b;
                    if sought & bit == 0 {
                        sought |= bit;
                        if stretches
                            .iter()
                            .any(|x| memchr::memchr(b, bytes(x)).is_some())
                        {
                            found_punct |= bit;
                        }
                    }
                    found_punct & bit != 0
                };
                let has_word = |w: &[u8]| stretches.iter().any(|x| contains_word(bytes(x), w));
                let mut digits = None;
                let mut holds = || {
                    self.fast.needs[p].iter().any(|n| {
                        len >= n.len
                            && (n.digits == 0
                                || *digits.get_or_insert_with(count_digits) >= n.digits)
                            && n.punct.bytes().all(&mut has)
                            && n.words.iter().all(|w| has_word(w))
                    })
                };
                if !holds() && plain() {
                    continue;
                }
                self.match_stretches(segments, &stretches, Which::One(p), applies, &mut found);
            }
        }
        self.record_matches(scan, &mut found);
        self.scan_unit_raw(segments, unit, applies, scan);
    }

    /// Every gate hit in a unit as (segment, raw offset, pattern), in order
    /// (packed by [`pack_hit`]: integers sort faster than tuples).
    ///
    /// The raw bytes are searched as they are. A suspect character (an
    /// escape, a character NFKC changes) may make an atom the raw bytes do
    /// not show, so the stretch around it, out to bytes no atom holds, is
    /// normalised and searched as well; its hits map back onto the raw
    /// characters behind them. Only patterns whose atom the normalised
    /// text really holds get a region (fullwidth prose is not searched
    /// with every pattern whose atom shares a letter with it).
    fn gate_hits(
        &self,
        searcher: &gate::Searcher,
        segments: &[TextSegment<'_>],
        unit: &Range<usize>,
        plain: &mut Vec<bool>,
    ) -> Vec<u128> {
        let mut out = Vec::new();
        let mut hits = Vec::new();
        let mut suspects = Vec::new();
        let mut around: Option<Region> = None;
        let mut stretches = Vec::new();
        for seg in unit.clone() {
            let literal = segments[seg].literal;
            hits.clear();
            suspects.clear();
            searcher.find(literal.as_bytes(), &mut hits);
            out.extend(hits.iter().map(|h| pack_hit(seg, h.pos, h.group)));
            let ascii = gate::suspects(literal, &mut suspects);
            // No suspect: no DEL, no `\b` or `\u` escape (see [`plain_text`]).
            plain.push(ascii && suspects.is_empty());
            for &q in &suspects {
                let q = q as usize;
                if around.is_some_and(|r| r.contains(seg, q)) {
                    continue;
                }
                let (c, _) = crate::provider::literal::char_at(literal, q);
                if gate::produces(c).0 & self.fast.gate_bytes.0 == 0 {
                    continue;
                }
                let region = region_around(segments, unit, seg, q, &self.fast.gate_boundaries);
                around = Some(region);
                region.stretches_into(segments, &mut stretches);
                let text = Joined::new(segments, &stretches);
                hits.clear();
                searcher.find(text.text().as_bytes(), &mut hits);
                for h in &hits {
                    let (s, pos) = text.origin(segments, h.pos as usize);
                    out.push(pack_hit(s, pos as u32, h.group));
                }
            }
        }
        // A few sorted runs per literal (one per pass, one per suspect
        // stretch): a merging sort finds them.
        out.sort();
        out
    }

    /// Patterns that opted out of normalisation, on each decoded segment.
    fn scan_unit_raw(
        &self,
        segments: &[TextSegment<'_>],
        unit: Range<usize>,
        applies: &[bool],
        scan: &mut Scan,
    ) {
        if self.raw.is_empty() {
            return;
        }
        for seg in unit {
            let literal = segments[seg].literal;
            let text = crate::provider::literal::decode(literal);
            for p in self.raw.matching(&text) {
                let pat = &self.raw.patterns[p];
                if !applies[pat.rule] {
                    continue;
                }
                for m in pat.regex.find_iter(&text) {
                    if !pat.accepts(m.as_str()) {
                        continue;
                    }
                    // Matches are on character boundaries of the decoded
                    // text, so they map onto whole escapes.
                    if let Some(range) = crate::provider::literal::raw_range(literal, m.range()) {
                        self.record(scan, pat.rule, seg, range, &pat.placeholder);
                    }
                }
            }
        }
    }

    /// Scans one text (a response's text) with every rule; matches are in
    /// text order, possibly overlapping.
    pub fn scan_text(&self, text: &str) -> Vec<TextMatch> {
        let mut out = Vec::new();
        if self.rules.is_empty() {
            return out;
        }
        if !self.normalized.is_empty() {
            let norm = normalize::normalize(text);
            for p in self.normalized.matching(&norm.text) {
                let pat = &self.normalized.patterns[p];
                for m in pat.regex.find_iter(&norm.text) {
                    if pat.accepts(m.as_str()) {
                        let range = norm.original_range(text, m.range());
                        out.push(TextMatch {
                            rule: pat.rule,
                            range,
                            placeholder: pat.placeholder.clone(),
                        });
                    }
                }
            }
        }
        for p in self.raw.matching(text) {
            let pat = &self.raw.patterns[p];
            for m in pat.regex.find_iter(text) {
                if pat.accepts(m.as_str()) {
                    out.push(TextMatch {
                        rule: pat.rule,
                        range: m.range(),
                        placeholder: pat.placeholder.clone(),
                    });
                }
            }
        }
        out.sort_by_key(|m| (m.range.start, m.range.end));
        out
    }
}

/// Response guards plug into the stream engine as its scanner.
impl crate::provider::stream::TextScanner for GuardSet {
    fn window(&self) -> usize {
        self.window
    }

    /// Matches in text order, made non-overlapping: overlapping matches
    /// merge into one, and a merge holding a reject rejects.
    fn scan(&self, text: &str) -> Vec<crate::provider::stream::ScanMatch> {
        use crate::provider::stream::{MatchAction, ScanMatch};
        let action = |m: &TextMatch| {
            let rule = &self.rules[m.rule];
            match rule.action {
                Action::Reject => MatchAction::Reject {
                    rule: rule.name.clone(),
                    message: rule.message.clone(),
                },
                Action::Mask => MatchAction::Mask {
                    placeholder: m.placeholder.clone(),
                },
            }
        };
        let mut out: Vec<ScanMatch> = Vec::new();
        for m in self.scan_text(text) {
            match out.last_mut() {
                Some(last) if m.range.start < last.range.end => {
                    last.range.end = last.range.end.max(m.range.end);
                    if matches!(self.rules[m.rule].action, Action::Reject)
                        && !matches!(last.action, MatchAction::Reject { .. })
                    {
                        last.action = action(&m);
                    }
                }
                _ => out.push(ScanMatch {
                    action: action(&m),
                    range: m.range,
                }),
            }
        }
        out
    }
}

/// How many segments from the start of `segments` form one matching unit:
/// text of one message of one kind (System, UserText, AssistantText), or
/// the text blocks of one tool result / document block.
fn unit_len(segments: &[TextSegment<'_>]) -> usize {
    let first = &segments[0];
    let key = |s: &TextSegment<'_>| -> Option<(PartKind, Option<u32>, Option<u32>)> {
        match (s.kind, s.location) {
            (
                PartKind::System | PartKind::UserText | PartKind::AssistantText,
                Location::System { .. },
            ) => Some((s.kind, None, None)),
            (
                PartKind::System | PartKind::UserText | PartKind::AssistantText,
                Location::Message { index, .. },
            ) => Some((s.kind, Some(index), None)),
            (PartKind::ToolResult | PartKind::Document, Location::Message { index, block, .. }) => {
                Some((s.kind, Some(index), block))
            }
            _ => None,
        }
    };
    let Some(k) = key(first) else { return 1 };
    1 + segments[1..]
        .iter()
        .take_while(|s| key(s) == Some(k))
        .count()
}

/// Writes a segment's literal content with its mask findings (ranges of
/// the literal) applied into `out`: placeholders are JSON-escaped, every
/// other byte is copied as it is.
pub fn mask_literal(literal: &str, findings: &[&Finding], out: &mut Vec<u8>) {
    for (piece, is_placeholder) in masked_pieces(literal, findings) {
        if is_placeholder && piece.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            let quoted = serde_json::to_string(piece).expect("strings always serialise");
            out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
        } else {
            out.extend_from_slice(piece.as_bytes());
        }
    }
}

/// The pieces of `text` with findings applied, in order: kept stretches
/// (`false`) and placeholders (`true`). Overlapping findings merge; the
/// earliest finding's placeholder names the merged span.
fn masked_pieces<'t>(text: &'t str, findings: &[&'t Finding]) -> Vec<(&'t str, bool)> {
    let mut spans: Vec<(Range<usize>, &str)> = findings
        .iter()
        .map(|f| (f.range.clone(), f.placeholder.as_str()))
        .collect();
    spans.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
    let mut out = Vec::with_capacity(2 * spans.len() + 1);
    let mut at = 0;
    let mut i = 0;
    while i < spans.len() {
        let (mut range, placeholder) = spans[i].clone();
        i += 1;
        while i < spans.len() && spans[i].0.start < range.end {
            range.end = range.end.max(spans[i].0.end);
            i += 1;
        }
        if range.start < at {
            continue;
        }
        out.push((&text[at..range.start], false));
        out.push((placeholder, true));
        at = range.end;
    }
    out.push((&text[at..], false));
    out
}

#[cfg(test)]
mod tests;
