//! Budgets, decided: which limits a request is checked against (their
//! `when:` holds) and in which bucket (their `key:`), what the store's
//! standing means (pass, with the remaining budget; or 429 naming the
//! limit and when it resets), and what a response's usage debits.
//!
//! Pure: the adapter asks the store ([`crate::budget::Store`]) for the
//! [`BudgetCheck`]'s items and hands the answer back to [`budget_verdict`].
//! The check is made once the request body is read (the model is known,
//! for `when:` and prices).

use std::time::Duration;

use crate::budget::{Budgets, CheckItem, DebitItem, LimitKind, OnStoreError, Standing, StoreError};
use crate::policy::Policy;
use crate::provider::{ErrorKind, Usage};

use super::outcome::{reply, Outcome, Reply};
use super::request_headers::RequestCtx;

/// The bucket of a request whose `key:` gives no string (no user, a
/// missing claim): every such request shares it.
pub const UNKNOWN_BUCKET: &str = "~unknown";

/// Buckets longer than this are stored as their SHA-256.
const MAX_BUCKET_BYTES: usize = 128;

/// The limits that apply to one request, in policy order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetCheck {
    /// What the store is asked.
    pub items: Vec<CheckItem>,
    /// Per item: the index of its limit in the backend's budgets.
    limits: Vec<usize>,
}

/// The store's answer, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetVerdict {
    /// The request goes on.
    Pass(BudgetPass),
    /// 429 (a limit is spent) or 503 (the store failed, `onStoreError:
    /// Reject`); the reply's outcome is the request's record.
    Refuse(Box<Reply>),
}

/// A request within its budgets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BudgetPass {
    /// Response headers: what remains of the tightest limits.
    pub headers: Vec<(&'static str, String)>,
    /// What the response's usage is added to (limits of tokens and spend).
    pub debit: Vec<(String, LimitKind, Duration, usize)>,
    /// Request limits that counted this request (indexes in the budgets).
    pub reserved: Vec<usize>,
    /// The store failed and `onStoreError: Allow` let the request through.
    pub store_error: Option<String>,
    /// Remaining tokens / nano-USD of the tightest limits, for the span.
    pub remaining_tokens: Option<u64>,
    pub remaining_nanos: Option<u64>,
}

/// The limits of `ctx`'s backend that apply to this request, and their
/// buckets. `None`: the backend has no budgets, or none applies.
pub fn budget_check(policy: &Policy, ctx: &RequestCtx, model: Option<&str>) -> Option<BudgetCheck> {
    let backend = &policy.backends[ctx.backend];
    let budgets = backend.budgets.as_deref()?;
    let vars = super::conditions::vars(ctx, &backend.name, model);
    let mut check = BudgetCheck {
        items: Vec::new(),
        limits: Vec::new(),
    };
    for (i, limit) in budgets.limits.iter().enumerate() {
        if !limit.when.as_ref().is_none_or(|c| c.holds(&vars)) {
            continue;
        }
        let bucket = limit
            .key
            .string(&vars)
            .unwrap_or_else(|| UNKNOWN_BUCKET.to_owned());
        check.items.push(CheckItem {
            key: counter_key(&limit.name, &bucket),
            cap: limit.kind.cap(),
            window: limit.window,
            reserve: matches!(limit.kind, LimitKind::Requests(_)),
        });
        check.limits.push(i);
    }
    (!check.items.is_empty()).then_some(check)
}

/// The store key of `limit`'s counter for `bucket` (without the store's
/// prefix): `<limit>:<bucket>`, a long bucket as its SHA-256.
pub fn counter_key(limit: &str, bucket: &str) -> String {
    if bucket.len() <= MAX_BUCKET_BYTES {
        return format!("{limit}:{bucket}");
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bucket.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{limit}:sha256:{hex}")
}

/// Decides on the store's answer to `check`. `outcome` is the request's
/// record so far (a refusal carries it).
pub fn budget_verdict(
    policy: &Policy,
    ctx: &RequestCtx,
    check: &BudgetCheck,
    answer: Result<Standing, StoreError>,
    outcome: &Outcome,
) -> BudgetVerdict {
    let budgets = policy.backends[ctx.backend]
        .budgets
        .as_deref()
        .expect("a budget check comes from a backend with budgets");
    let standing = match answer {
        Ok(s) => s,
        Err(e) => return store_failed(budgets, ctx, check, e, outcome),
    };
    if let Some(i) = standing.exhausted {
        let limit = &budgets.limits[check.limits[i]];
        let (used, left) = standing.items[i];
        let message = format!(
            "budget `{}` is spent: {} used of {} in this {} window; it resets in {}s",
            limit.name,
            amount(limit.kind, used),
            amount(limit.kind, limit.kind.cap()),
            humantime::format_duration(limit.window),
            retry_after(left),
        );
        let mut outcome = outcome.clone();
        outcome.rule = Some(limit.name.clone());
        let mut r = reply(
            ctx.dialect,
            ErrorKind::RateLimited,
            429,
            &message,
            "promptgate_budget_exhausted",
            outcome,
        );
        r.headers
            .push(("retry-after", retry_after(left).to_string()));
        return BudgetVerdict::Refuse(Box::new(r));
    }
    let mut pass = BudgetPass::default();
    let mut remaining_requests: Option<u64> = None;
    for (i, (used, _)) in standing.items.iter().enumerate() {
        let li = check.limits[i];
        let kind = budgets.limits[li].kind;
        let left = kind.cap().saturating_sub(*used);
        let tighter = |slot: &mut Option<u64>| *slot = Some(slot.map_or(left, |s| s.min(left)));
        match kind {
            LimitKind::Tokens(_) => tighter(&mut pass.remaining_tokens),
            LimitKind::NanoUsd(_) => tighter(&mut pass.remaining_nanos),
            LimitKind::Requests(_) => {
                tighter(&mut remaining_requests);
                pass.reserved.push(li);
            }
        }
        if !matches!(kind, LimitKind::Requests(_)) {
            let item = &check.items[i];
            pass.debit.push((item.key.clone(), kind, item.window, li));
        }
    }
    if let Some(t) = pass.remaining_tokens {
        pass.headers
            .push(("x-promptgate-budget-remaining-tokens", t.to_string()));
    }
    if let Some(n) = pass.remaining_nanos {
        pass.headers
            .push(("x-promptgate-budget-remaining-usd", usd(n)));
    }
    if let Some(r) = remaining_requests {
        pass.headers
            .push(("x-promptgate-budget-remaining-requests", r.to_string()));
    }
    BudgetVerdict::Pass(pass)
}

fn store_failed(
    budgets: &Budgets,
    ctx: &RequestCtx,
    check: &BudgetCheck,
    e: StoreError,
    outcome: &Outcome,
) -> BudgetVerdict {
    match budgets.on_store_error {
        OnStoreError::Allow => BudgetVerdict::Pass(BudgetPass {
            // Usage is still debited: the store may be back by then.
            debit: check
                .items
                .iter()
                .zip(&check.limits)
                .filter(|(_, li)| !matches!(budgets.limits[**li].kind, LimitKind::Requests(_)))
                .map(|(item, li)| (item.key.clone(), budgets.limits[*li].kind, item.window, *li))
                .collect(),
            store_error: Some(e.to_string()),
            ..BudgetPass::default()
        }),
        OnStoreError::Reject => {
            let mut outcome = outcome.clone();
            outcome.rule = Some("budgets.store".to_owned());
            BudgetVerdict::Refuse(Box::new(reply(
                ctx.dialect,
                ErrorKind::Gateway,
                503,
                &format!("promptgate could not check this request's budget ({e}); try again"),
                "promptgate_budget_store_error",
                outcome,
            )))
        }
    }
}

/// What `usage` (of `model`) adds to each counter of `pass`: tokens (all
/// four counts) or nano-USD at the model's price.
pub fn budget_debits(
    budgets: &Budgets,
    pass: &BudgetPass,
    usage: &Usage,
    model: Option<&str>,
) -> Vec<DebitItem> {
    let tokens = usage.total_input().unwrap_or(0) + usage.output.unwrap_or(0);
    let mut nanos = None;
    pass.debit
        .iter()
        .map(|(key, kind, window, _)| DebitItem {
            key: key.clone(),
            amount: match kind {
                LimitKind::Tokens(_) => tokens,
                LimitKind::NanoUsd(_) => {
                    *nanos.get_or_insert_with(|| budgets.prices.price(model).cost_nanos(usage))
                }
                LimitKind::Requests(_) => 0,
            },
            window: *window,
        })
        .collect()
}

/// The counters a passed request's usage is added to (store keys without
/// the store's prefix, `<limit>:<bucket>`): what the request's metadata
/// names when the access log reports its usage (`budgets.debit: AccessLog`).
pub fn budget_debit_keys(pass: &BudgetPass) -> Vec<&str> {
    pass.debit.iter().map(|(key, ..)| key.as_str()).collect()
}

/// A reported answer's debit: the counters `keys` (from
/// [`budget_debit_keys`], carried in the request's metadata) that are
/// still limits of tokens or spend of `budgets` (a reload may have removed
/// or changed one: it is left out), and what `usage` adds to each.
/// Returns the pass they form, for the debit's record, and the items.
pub fn reported_debits<K: AsRef<str>>(
    budgets: &Budgets,
    keys: &[K],
    usage: &Usage,
    model: Option<&str>,
) -> (BudgetPass, Vec<DebitItem>) {
    let mut pass = BudgetPass::default();
    for key in keys.iter().map(AsRef::as_ref) {
        let Some((name, _)) = key.split_once(':') else {
            continue;
        };
        let Some(li) = budgets.limits.iter().position(|l| l.name == name) else {
            continue;
        };
        let limit = &budgets.limits[li];
        if !matches!(limit.kind, LimitKind::Requests(_)) {
            pass.debit
                .push((key.to_owned(), limit.kind, limit.window, li));
        }
    }
    let items = budget_debits(budgets, &pass, usage, model);
    (pass, items)
}

/// Seconds until `left` is over, rounded up (`retry-after`).
fn retry_after(left: Duration) -> u64 {
    left.as_millis().div_ceil(1000).max(1) as u64
}

fn amount(kind: LimitKind, n: u64) -> String {
    match kind {
        LimitKind::Tokens(_) => format!("{n} tokens"),
        LimitKind::NanoUsd(_) => format!("{} USD", usd(n)),
        LimitKind::Requests(_) => format!("{n} requests"),
    }
}

/// nano-USD as USD with six decimals.
pub fn usd(nanos: u64) -> String {
    format!(
        "{}.{:06}",
        nanos / 1_000_000_000,
        (nanos % 1_000_000_000) / 1000
    )
}
