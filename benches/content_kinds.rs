//! Decision throughput per kind of tool output: ~4 MB Anthropic Messages
//! bodies whose one tool_result holds ONE kind of content (source code,
//! service logs, CI output, lockfiles, `git log`), generated
//! deterministically here, decided under a few policies.
//!
//! `cargo bench --bench content_kinds` prints a table: per content kind and
//! policy, the median time of one decision and MB/s; "above baseline" is
//! MB/s of the time above the no-guard policy's (the guards' own cost).
//!
//! * `CONTENT_KINDS_ROUNDS=N`: decisions per cell (median; 9 unless told).
//! * `CONTENT_KINDS_SIZE=BYTES`: body size (4 MB unless told).
//! * `CONTENT_KINDS_ONLY=kind/policy`: one cell (either part may be empty:
//!   `logs/` is every policy on logs).
//! * `CONTENT_KINDS_DECISIONS=N` with `CONTENT_KINDS_ONLY=kind/policy`: N
//!   decisions of that cell and exit, no timing (for
//!   `valgrind --tool=callgrind`: instructions of N=3 minus N=1, halved).
//! * `CONTENT_KINDS_WRITE=DIR`: writes every body (`DIR/<kind>.json`) and
//!   policy (`DIR/<policy>.yaml`) for `promptgate eval` and exits.
//!
//! A policy row is one line of [`POLICIES`].

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use promptgate::decision::{self, BodyDecision, HeadersDecision, RequestHead};
use promptgate::policy::{LoadOptions, Policy};
use serde_json::json;

/// The 13 builtins.
const BUILTINS: &str = "CreditCard, Ssn, Email, PhoneNumber, CaSin, AwsAccessKey, PrivateKey, GitHubToken, AnthropicApiKey, OpenAiApiKey, SlackToken, GoogleApiKey, Jwt";
/// The personal-data builtins (the `Pii` group).
const PII: &str = "CreditCard, Ssn, Email, PhoneNumber, CaSin";

/// (row name, the `request:` guards as YAML flow entries). `ORG` is
/// replaced by the 50 organisation patterns' guards.
const POLICIES: &[(&str, &str)] = &[
    ("none", ""),
    (
        "13 builtins",
        "{name: builtins, regex: {action: Mask, builtins: [BUILTINS]}}",
    ),
    ("Pii", "{name: pii, regex: {action: Mask, builtins: [PII]}}"),
    (
        "Email",
        "{name: pii, regex: {action: Mask, builtins: [Email]}}",
    ),
    (
        "numbers",
        "{name: pii, regex: {action: Mask, builtins: [CreditCard, Ssn, PhoneNumber, CaSin]}}",
    ),
    (
        "13 + 50 org",
        "{name: builtins, regex: {action: Mask, builtins: [BUILTINS]}}, ORG",
    ),
    (
        "Secrets, Pii",
        "{name: all, regex: {action: Mask, builtins: [Secrets, Pii]}}",
    ),
    (
        "Secrets, Pii + 50 org",
        "{name: all, regex: {action: Mask, builtins: [Secrets, Pii]}}, ORG",
    ),
];

/// Organisation patterns of the kind a security team writes: ticket and
/// case ids with a prefix, internal host names, IBANs, employee ids, a few
/// starting with a character class or `\b`. Ids are case-sensitive (their
/// own guard), terms are matched in any case (the default).
const ORG_IDS: &[&str] = &[
    r"CASE-\d{6}",
    r"INC\d{7}",
    r"CHG\d{7}",
    r"RITM\d{7}",
    r"EMP-\d{6}",
    r"EMPID[:=] ?\d{5,8}",
    r"CUST-[0-9A-F]{8}",
    r"ACCT-\d{4}-\d{4}-\d{2}",
    r"PRJ-[A-Z]{3}-\d{4}",
    r"VND-\d{5}",
    r"PO-\d{8}",
    r"INV-20\d{2}-\d{6}",
    r"CLM-\d{9}",
    r"MRN[:# ]?\d{7,10}",
    r"SR-\d{8}",
    r"\bDE\d{2} ?(?:\d{4} ?){4}\d{2}\b",
    r"\bGB\d{2} ?[A-Z]{4} ?(?:\d{4} ?){3}\d{2}\b",
    r"\bFR\d{2} ?(?:\d{4} ?){5}\d{3}\b",
    r"\bNL\d{2} ?[A-Z]{4} ?(?:\d{4} ?){2}\d{2}\b",
    r"\bCH\d{2} ?(?:\d{4} ?){4}\d\b",
    r"SWIFT[: ]+[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?",
    r"\b[A-Z]{2,4}-\d{4,6}\b",
    r"\b\d{3}-\d{7}\b",
    r"\b[0-9]{2}-[0-9]{7}\b",
    r"\b[A-Z][0-9]{7}\b",
    r"\bEU-\d{3}-\d{3}\b",
    r"arn:aws:iam::\d{12}:role/[A-Za-z0-9+=,.@_-]+",
];
const ORG_TERMS: &[&str] = &[
    r"[a-z0-9-]+\.corp\.example\.com",
    r"[a-z0-9-]+\.int\.example\.net",
    r"vault\.example\.internal",
    r"(?:db|redis|kafka)-[0-9]{2}\.prod\.example\.com",
    r"10\.42\.\d{1,3}\.\d{1,3}",
    r"wiki\.example\.com/[a-z0-9/_-]+",
    r"jenkins\.example\.com/job/[a-z0-9_-]+",
    r"s3://example-(?:prod|staging)-[a-z0-9-]+",
    r"patient id \d+",
    r"badge #?\d{6}",
    r"contract no\.? \d{4}/\d{3}",
    r"routing (?:number|no\.?)[: ]+\d{9}",
    r"\bproject (?:falcon|osprey|kestrel)\b",
    r"\bconfidential\b",
    r"do not (?:share|forward|distribute)",
    r"internal use only",
    r"\bq[1-4] (?:earnings|forecast)\b",
    r"salary (?:band|grade) [a-z]\d",
    r"acquisition of [a-z]+ (?:inc|corp)",
    r"\bcodename [a-z]+\b",
    r"board minutes",
    r"\bsev[0-2] incident\b",
    r"payroll export",
];

fn org_guards() -> String {
    assert_eq!(ORG_IDS.len() + ORG_TERMS.len(), 50);
    let list = |ps: &[&str]| {
        ps.iter()
            .map(|p| format!("'{}'", p.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{{name: org-ids, regex: {{action: Mask, caseSensitive: true, matches: [{}]}}}}, {{name: org-terms, regex: {{action: Mask, matches: [{}]}}}}",
        list(ORG_IDS),
        list(ORG_TERMS)
    )
}

fn policy_yaml(guards: &str) -> String {
    let guards = guards
        .replace("ORG", &org_guards())
        .replace("BUILTINS", BUILTINS)
        .replace("PII", PII);
    let prompt_guard = if guards.is_empty() {
        String::new()
    } else {
        format!("\n  policies:\n    ai:\n      promptGuard:\n        request: [{guards}]")
    };
    format!("backends:\n- name: anthropic\n  ai: {{provider: {{anthropic: {{}}}}}}{prompt_guard}\n")
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
    fn b64(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..n)
            .map(|_| char::from(A[self.below(64) as usize]))
            .collect()
    }
    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-{}{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.pick(&["8", "9", "a", "b"]),
            self.hex(3),
            self.hex(12)
        )
    }
    fn ip(&mut self) -> String {
        match self.below(3) {
            0 => format!(
                "10.{}.{}.{}",
                self.below(256),
                self.below(256),
                self.below(256)
            ),
            1 => format!("192.168.{}.{}", self.below(256), self.below(256)),
            _ => format!(
                "{}.{}.{}.{}",
                1 + self.below(223),
                self.below(256),
                self.below(256),
                self.below(256)
            ),
        }
    }
    /// (date, time) of a moment on 5 Dec 2026 or a day before.
    fn iso(&mut self) -> String {
        format!(
            "2026-12-0{}T{:02}:{:02}:{:02}.{:06}Z",
            4 + self.below(2),
            self.below(24),
            self.below(60),
            self.below(60),
            self.below(1_000_000)
        )
    }
}

const WORDS: &[&str] = &[
    "request", "user", "order", "cache", "config", "handler", "value", "result", "index", "buffer",
    "client", "server", "token", "session", "account", "payload", "stream", "window", "retry",
    "limit", "queue", "worker", "event", "record", "status", "policy", "region", "bucket", "shard",
];

fn ident(r: &mut Rng) -> String {
    match r.below(3) {
        0 => r.pick(WORDS).to_owned(),
        1 => format!("{}_{}", r.pick(WORDS), r.pick(WORDS)),
        _ => format!("{}{}", r.pick(WORDS), r.below(10)),
    }
}

fn python(r: &mut Rng, out: &mut String) {
    let name = ident(r);
    let (a, b) = (ident(r), ident(r));
    out.push_str(&format!(
        "\n\nclass {}Service:\n    \"\"\"Loads {a} records and retries on {b} errors.\"\"\"\n\n    MAX_RETRIES = {}\n\n    def __init__(self, {a}, {b}=None, timeout={}.0):\n        self.{a} = {a}\n        self._{b} = {b} or {{}}\n        self.timeout = timeout\n\n    def {name}(self, items: list[str]) -> dict[str, int]:\n        # Count what we have seen, skipping empty {b}s.\n        seen: dict[str, int] = {{}}\n        for i, item in enumerate(items):\n            if not item or i > self.MAX_RETRIES * {}:\n                continue\n            seen[item] = seen.get(item, 0) + 1\n            logger.debug(\"%s: %d/%d\", item, i, len(items))\n        return seen\n",
        capitalize(&name),
        r.below(10),
        r.below(120),
        r.below(100)
    ));
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
        .replace('_', "")
}

fn rust(r: &mut Rng, out: &mut String) {
    let name = ident(r);
    let (a, b) = (ident(r), ident(r));
    out.push_str(&format!(
        "\n/// Reads the {a} of one {b}; `None` when it has none.\npub fn {name}(&self, {a}: &[u8], {b}: usize) -> Option<Range<usize>> {{\n    let mut at = {b}.min({a}.len());\n    while at < {a}.len() && {a}[at] != b'{}' {{\n        at += 1;\n    }}\n    if at == {a}.len() || at - {b} > {} {{\n        return None;\n    }}\n    let end = {a}[at..].iter().position(|&x| x == b'\\n').map_or({a}.len(), |k| at + k);\n    debug_assert!(end >= at, \"{{end}} < {{at}}\");\n    Some(at..end)\n}}\n",
        r.pick(&[":", ";", "=", ","]),
        r.below(4096)
    ));
}

fn source(r: &mut Rng, out: &mut String) {
    if r.below(2) == 0 {
        python(r, out)
    } else {
        rust(r, out)
    }
}

fn logs(r: &mut Rng, out: &mut String) {
    let line = match r.below(4) {
        0 => format!(
            "{} INFO  [{}-svc] request_id={} method={} path=/api/v1/{}/{} status={} latency_ms={}.{:03} client_ip={} bytes={}\n",
            r.iso(),
            r.pick(WORDS),
            r.uuid(),
            r.pick(&["GET", "POST", "PUT"]),
            r.pick(WORDS),
            r.below(10_000_000),
            r.pick(&["200", "201", "204", "404", "500"]),
            r.below(900),
            r.below(1000),
            r.ip(),
            r.below(100_000)
        ),
        1 => format!(
            "{{\"ts\":\"{}\",\"level\":\"{}\",\"msg\":\"{} {}\",\"trace_id\":\"{}\",\"span_id\":\"{}\",\"order_id\":{},\"duration_us\":{},\"pod\":\"{}-{}-{}\"}}\n",
            r.iso(),
            r.pick(&["info", "warn", "debug"]),
            r.pick(WORDS),
            r.pick(&["completed", "retried", "queued"]),
            r.hex(32),
            r.hex(16),
            r.below(1_000_000_000_000),
            r.below(10_000_000),
            r.pick(WORDS),
            r.hex(10),
            r.hex(5)
        ),
        2 => format!(
            "{} - - [05/Dec/2026:{:02}:{:02}:{:02} +0000] \"GET /static/{}.{}.js?v={} HTTP/1.1\" {} {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.{}.{}\"\n",
            r.ip(),
            r.below(24),
            r.below(60),
            r.below(60),
            r.pick(WORDS),
            r.hex(8),
            r.below(2_000_000_000),
            r.pick(&["200", "304"]),
            r.below(500_000),
            r.below(9999),
            r.below(999)
        ),
        _ => format!(
            "Dec  5 {:02}:{:02}:{:02} node-{} kernel: [{}.{:06}] eth0: {} packets {} dropped, pid {} uid {} gid {} latency {}ms\n",
            r.below(24),
            r.below(60),
            r.below(60),
            r.below(64),
            r.below(3_000_000),
            r.below(1_000_000),
            r.below(10_000_000),
            r.below(1000),
            r.below(4_000_000),
            1000 + r.below(9000),
            1000 + r.below(9000),
            r.below(3000)
        ),
    };
    out.push_str(&line);
}

fn ci(r: &mut Rng, out: &mut String) {
    let ts = r.iso();
    let line = match r.below(6) {
        0 => format!(
            "{ts} #{} [build {}/{}] RUN cargo build --release --locked\n",
            r.below(40),
            r.below(9),
            9
        ),
        1 => format!(
            "{ts}    Compiling {}-{} v{}.{}.{}\n",
            r.pick(WORDS),
            r.pick(WORDS),
            r.below(3),
            r.below(40),
            r.below(300)
        ),
        2 => format!(
            "{ts} test {}::tests::{}_{} ... {}\n",
            r.pick(WORDS),
            r.pick(WORDS),
            r.pick(WORDS),
            r.pick(&["ok", "ok", "ok", "ignored"])
        ),
        3 => format!(
            "{ts} #{} sha256:{} {}.{}MB / {}.{}MB {}.{}s\n",
            r.below(40),
            r.hex(64),
            r.below(300),
            r.below(100),
            r.below(300),
            r.below(100),
            r.below(60),
            r.below(10)
        ),
        4 => format!(
            "{ts} ##[group]Run actions/{}@v{}\n{ts} test result: ok. {} passed; 0 failed; {} ignored; finished in {}.{:02}s\n",
            r.pick(&["checkout", "cache", "setup-node"]),
            r.below(5),
            r.below(2000),
            r.below(20),
            r.below(200),
            r.below(100)
        ),
        _ => format!(
            "{ts} npm warn deprecated {}@{}.{}.{}: use {}@{} instead (job {} run {}, attempt {})\n",
            r.pick(WORDS),
            r.below(9),
            r.below(30),
            r.below(20),
            r.pick(WORDS),
            r.below(9),
            r.below(100_000_000),
            r.below(10_000_000_000),
            r.below(4)
        ),
    };
    out.push_str(&line);
}

fn lockfile(r: &mut Rng, out: &mut String) {
    if r.below(2) == 0 {
        let name = format!("{}-{}", r.pick(WORDS), r.pick(WORDS));
        let v = format!("{}.{}.{}", r.below(9), r.below(30), r.below(20));
        out.push_str(&format!(
            "    \"node_modules/{name}\": {{\n      \"version\": \"{v}\",\n      \"resolved\": \"https://registry.npmjs.org/{name}/-/{name}-{v}.tgz\",\n      \"integrity\": \"sha512-{}==\",\n      \"dev\": true,\n      \"engines\": {{\n        \"node\": \">={}.{}.0\"\n      }}\n    }},\n",
            r.b64(86),
            r.below(20),
            r.below(10)
        ));
    } else {
        out.push_str(&format!(
            "\n[[package]]\nname = \"{}-{}\"\nversion = \"{}.{}.{}\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\ndependencies = [\n \"{} {}.{}.{}\",\n]\n",
            r.pick(WORDS),
            r.pick(WORDS),
            r.below(3),
            r.below(40),
            r.below(300),
            r.hex(64),
            r.pick(WORDS),
            r.below(3),
            r.below(40),
            r.below(300)
        ));
    }
}

fn git_log(r: &mut Rng, out: &mut String) {
    const NAMES: &[(&str, &str)] = &[
        ("Jane Doe", "jane.doe@example.com"),
        ("Ravi Patel", "ravi@patel.dev"),
        ("Li Wei", "li.wei@users.noreply.github.com"),
        (
            "dependabot[bot]",
            "49699333+dependabot[bot]@users.noreply.github.com",
        ),
    ];
    let (name, mail) = NAMES[r.below(NAMES.len() as u64) as usize];
    out.push_str(&format!(
        "commit {}\nMerge: {} {}\nAuthor: {name} <{mail}>\nDate:   {} Dec {} {:02}:{:02}:{:02} 2026 +0{}00\n\n    {}: {} the {} {} (#{})\n\n    Reviewed-on: https://git.example.org/c/{}\n\n {}/{}.rs | {} {}\n {} files changed, {} insertions(+), {} deletions(-)\n\n",
        r.hex(40),
        r.hex(9),
        r.hex(9),
        r.pick(&["Mon", "Tue", "Wed", "Thu", "Fri"]),
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60),
        r.below(10),
        r.pick(&["fix", "feat", "chore", "refactor"]),
        r.pick(&["retry", "cache", "bound", "log"]),
        r.pick(WORDS),
        r.pick(WORDS),
        r.below(20_000),
        r.below(900_000),
        r.pick(WORDS),
        r.pick(WORDS),
        r.below(200),
        "+".repeat(r.below(20) as usize),
        1 + r.below(30),
        r.below(2000),
        r.below(2000),
    ));
}

type Gen = fn(&mut Rng, &mut String);

/// (kind, generator of one chunk).
const KINDS: &[(&str, Gen)] = &[
    ("source", source),
    ("logs", logs),
    ("ci", ci),
    ("lockfile", lockfile),
    ("git-log", git_log),
];

/// An Anthropic Messages request whose one tool_result holds `size`
/// bytes (about) of one kind of content.
fn body(generator: Gen, seed: u64, size: usize) -> String {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut content = String::with_capacity(size + 4096);
    while content.len() < size {
        generator(&mut r, &mut content);
    }
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 8192,
        "system": "You are Claude Code, Anthropic's official CLI for Claude.",
        "messages": [
            {"role": "user", "content": "Look at this output and tell me what is wrong."},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me read it."},
                {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "cat output.txt"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": content}
            ]}
        ]
    })
    .to_string()
}

struct Setup {
    name: &'static str,
    policy: Policy,
    ctx: decision::RequestCtx,
}

fn setup(name: &'static str, guards: &str) -> Setup {
    let policy = Policy::from_yaml(&policy_yaml(guards), name, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("policy {name} loads: {e}"));
    let head = RequestHead {
        method: "POST",
        path: "/v1/messages",
        authority: "gw",
        ..RequestHead::default()
    };
    let (ctx, d) = decision::request_headers(&policy, Some("anthropic"), &head);
    assert!(matches!(
        d,
        HeadersDecision::Continue {
            inspect_body: true,
            ..
        }
    ));
    Setup {
        name,
        policy,
        ctx: ctx.expect("a backend"),
    }
}

/// One decision; the number of masked spans.
fn decide(s: &Setup, body: &str) -> usize {
    match decision::request_body(&s.policy, &s.ctx, body.as_bytes())
        .now_or_never()
        .expect("no external guard")
    {
        BodyDecision::Continue { outcome, .. } => outcome.masked,
        BodyDecision::Reply(r) => panic!("{}: unexpected reply {}", s.name, r.status),
    }
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the args.
    let size = env_usize("CONTENT_KINDS_SIZE").unwrap_or(4 << 20);
    let rounds = env_usize("CONTENT_KINDS_ROUNDS").unwrap_or(9).max(1);
    let only = std::env::var("CONTENT_KINDS_ONLY").unwrap_or_default();
    let (only_kind, only_policy) = only.split_once('/').unwrap_or((only.as_str(), ""));
    let bodies: Vec<(&str, String)> = KINDS
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| only_kind.is_empty() || *k == only_kind)
        .map(|(i, (k, g))| (*k, body(*g, i as u64 + 1, size)))
        .collect();
    if let Ok(dir) = std::env::var("CONTENT_KINDS_WRITE") {
        std::fs::create_dir_all(&dir).expect("create the directory");
        for (k, b) in &bodies {
            std::fs::write(format!("{dir}/{k}.json"), b).expect("write a body");
        }
        for (name, guards) in POLICIES {
            let file = name.replace(' ', "_").replace('+', "plus");
            std::fs::write(format!("{dir}/{file}.yaml"), policy_yaml(guards))
                .expect("write a policy");
        }
        eprintln!(
            "wrote {} bodies and {} policies to {dir}",
            bodies.len(),
            POLICIES.len()
        );
        return;
    }
    let setups: Vec<Setup> = POLICIES
        .iter()
        .filter(|(n, _)| only_policy.is_empty() || *n == only_policy || *n == "none")
        .map(|(n, g)| setup(n, g))
        .collect();
    if let Some(n) = env_usize("CONTENT_KINDS_DECISIONS") {
        let s = setups
            .iter()
            .find(|s| s.name == only_policy)
            .unwrap_or(&setups[0]);
        let mut masked = 0;
        for (_, b) in &bodies {
            for _ in 0..n {
                masked += decide(s, b);
            }
        }
        eprintln!("{n} decisions per body, {masked} spans masked");
        return;
    }
    println!(
        "{:<10} {:<13} {:>9} {:>10} {:>10} {:>8}",
        "kind", "policy", "ms", "MB/s", "above base", "masked"
    );
    for (kind, b) in &bodies {
        let mb = b.len() as f64 / 1e6;
        let mut base = None;
        for s in &setups {
            let masked = decide(s, b); // warm the regex caches
            let times: Vec<Duration> = (0..rounds)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(decide(s, b));
                    t.elapsed()
                })
                .collect();
            let m = median(times).as_secs_f64();
            let base_s = *base.get_or_insert(m);
            let above = if s.name == "none" {
                "-".to_owned()
            } else if m <= base_s {
                // Within the noise of the baseline.
                "noise".to_owned()
            } else {
                format!("{:.0}", mb / (m - base_s))
            };
            println!(
                "{:<10} {:<13} {:>9.2} {:>10.0} {:>10} {:>8}",
                kind,
                s.name,
                m * 1e3,
                mb / m,
                above,
                masked
            );
        }
    }
}
