//! Extract + scan + mask throughput on Claude Code-shaped bodies (76 KB,
//! 1 MB, 8 MB) with every builtin detector and 50 custom patterns, and the
//! peak memory one decision allocates relative to the body.
//!
//! `cargo bench --bench guard_throughput`
//!
//! With `GUARD_DECISIONS=N` (and `GUARD_SIZE=76KB|1MB|8MB`, 1MB unless
//! told) the binary makes N decisions on that body and exits, without
//! criterion: for instruction counts that the machine's noise leaves
//! alone, e.g. the difference between N=11 and N=1 under
//! `valgrind --tool=callgrind`, divided by ten; it prints the wall-clock
//! time per decision and MB/s too.
//!
//! `GUARD_BUILTINS=Secrets,Pii` replaces the secrets guard's builtins (by
//! default every builtin by name), to compare the secret pack.

use futures_util::FutureExt;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use promptgate::decision::{self, BodyDecision, HeadersDecision, RequestHead};
use promptgate::policy::{LoadOptions, Policy};
use serde_json::{json, Value};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const FIRST_TURN: &str = include_str!("../tests/fixtures/claude_code_first_turn.json");

/// Text a coding agent reads from disk: this repository's own sources.
const FILES: &[&str] = &[
    include_str!("../README.md"),
    include_str!("../src/policy/mod.rs"),
    include_str!("../src/provider/stream.rs"),
    include_str!("../src/decision/mod.rs"),
    include_str!("../src/extproc/mod.rs"),
    include_str!("../deploy/envoy/envoy.yaml"),
];

/// Claude Code's first turn plus Read/Bash tool turns whose results are
/// file contents (with a card number and a key planted now and then), up to
/// `size` bytes: how a session grows.
fn session(size: usize) -> String {
    let mut v: Value = serde_json::from_str(FIRST_TURN).unwrap();
    let messages = v["messages"].as_array_mut().unwrap();
    let mut i = 0;
    while serde_json::to_string(&messages).unwrap().len() + 70_000 < size {
        let mut content = FILES[i % FILES.len()].to_owned();
        if i % 3 == 0 {
            content.push_str(
                "\nbilling: 4242 4242 4242 4242\naws_access_key_id = AKIAZ5EXAMPLEKEY7QW2\n",
            );
        }
        messages.push(json!({"role": "assistant", "content": [
            {"type": "text", "text": "Let me read that file."},
            {"type": "tool_use", "id": format!("toolu_{i}"), "name": "Read", "input": {"file_path": format!("/repo/file{i}.rs")}}
        ]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": format!("toolu_{i}"), "content": content}
        ]}));
        i += 1;
    }
    serde_json::to_string(&v).unwrap()
}

fn policy() -> Policy {
    // `GUARD_BUILTINS=Secrets,Pii` compares other builtin sets (the
    // secret pack); every builtin by name unless told.
    let builtins: Vec<String> = match std::env::var("GUARD_BUILTINS") {
        Ok(list) => list.split(',').map(|s| s.trim().to_owned()).collect(),
        Err(_) => promptgate::guard::builtins::Builtin::ALL
            .iter()
            .map(|b| b.name().to_owned())
            .collect(),
    };
    let mut custom = Vec::new();
    for i in 0..40 {
        custom.push(format!("\"project[- ]codename{i:02}\""));
    }
    for p in [
        r"internal\.example\.com/[a-z0-9/]+",
        r"\bconfidential\b",
        r"do not (share|forward|distribute)",
        r"emp-\d{6}",
        r"cust-[0-9a-f]{8}",
        r"\bsecret sauce\b",
        r"salary (band|grade) [a-z]\d",
        r"acquisition of [A-Z][a-z]+ (Inc|Corp)",
        r"\bq[1-4] (earnings|forecast)\b",
        r"patient id \d+",
    ] {
        custom.push(format!("'{p}'"));
    }
    assert_eq!(custom.len(), 50);
    let yaml = format!(
        "backends:\n- name: anthropic\n  ai: {{provider: {{anthropic: {{}}}}}}\n  policies:\n    ai:\n      promptGuard:\n        request:\n        - name: secrets\n          regex: {{action: Mask, builtins: [{}]}}\n        - name: internal\n          regex: {{action: Mask, matches: [{}]}}\n",
        builtins.join(", "),
        custom.join(", ")
    );
    Policy::from_yaml(&yaml, "bench", &LoadOptions::default()).expect("bench policy loads")
}

/// The bench policy and a request context for it.
fn setup() -> (Policy, decision::RequestCtx) {
    let policy = policy();
    let head = RequestHead {
        method: "POST",
        path: "/v1/messages?beta=true",
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
    (policy, ctx.unwrap())
}

fn bench(c: &mut Criterion) {
    let (policy, ctx) = setup();
    let mut group = c.benchmark_group("extract_scan_mask");
    for (name, body) in [
        ("76KB", FIRST_TURN.to_owned()),
        ("1MB", session(1 << 20)),
        ("8MB", session(8 << 20)),
    ] {
        // Peak memory of one decision, relative to the body. One decision
        // first: the regex engines' per-thread caches are built once per
        // thread, not per request, and are not counted.
        drop(
            decision::request_body(&policy, &ctx, body.as_bytes())
                .now_or_never()
                .expect("no external guard"),
        );
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let d = decision::request_body(&policy, &ctx, body.as_bytes())
            .now_or_never()
            .expect("no external guard");
        let peak = PEAK.load(Ordering::Relaxed) - before;
        let masked = match &d {
            BodyDecision::Continue { outcome, .. } => outcome.masked,
            BodyDecision::Reply(r) => panic!("unexpected reply {}", r.status),
        };
        drop(d);
        eprintln!(
            "{name}: body {} bytes, {masked} spans masked, peak allocation {} bytes = {:.2}x the body",
            body.len(),
            peak,
            peak as f64 / body.len() as f64
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| {
                decision::request_body(&policy, &ctx, body.as_bytes())
                    .now_or_never()
                    .expect("no external guard")
            })
        });
    }
    group.finish();
}

/// `GUARD_DECISIONS=N`: N decisions on one body, no criterion.
fn decisions(n: usize) {
    let (policy, ctx) = setup();
    let body = match std::env::var("GUARD_SIZE").as_deref() {
        Ok("76KB") => FIRST_TURN.to_owned(),
        Ok("8MB") => session(8 << 20),
        _ => session(1 << 20),
    };
    let mut masked = 0;
    let start = std::time::Instant::now();
    for _ in 0..n {
        if let BodyDecision::Continue { outcome, .. } =
            decision::request_body(&policy, &ctx, body.as_bytes())
                .now_or_never()
                .expect("no external guard")
        {
            masked += outcome.masked;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{n} decisions on {} bytes, {masked} spans masked, {:.3} ms each, {:.0} MB/s",
        body.len(),
        secs * 1e3 / n as f64,
        (body.len() * n) as f64 / secs / 1e6
    );
}

criterion_group!(benches, bench);

fn main() {
    if let Some(n) = std::env::var("GUARD_DECISIONS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        decisions(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
