//! `policies.ai.budgets` compiled: the store, what a store failure means,
//! prices, and each limit's bucket expression, condition, cap and window.

use std::sync::Arc;
use std::time::Duration;

use crate::guard::condition::Condition;
use crate::policy::config::{BudgetsSpec, DebitSpec, StoreErrorSpec};

use super::price::PriceTable;
use super::store::{store_for, Store, StoreSpec};

/// A backend's budgets.
#[derive(Debug)]
pub struct Budgets {
    pub store: Arc<Store>,
    pub on_store_error: OnStoreError,
    /// The longest a decision waits for the store.
    pub store_timeout: Duration,
    pub prices: PriceTable,
    pub limits: Vec<Limit>,
    /// Who debits a response's usage.
    pub debit: Debit,
}

/// Who debits a response's usage (`budgets.debit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Debit {
    /// promptgate reads the answer and debits before its end goes on: the
    /// next request, on any replica, finds it counted.
    #[default]
    InBand,
    /// The gateway reads the usage and its access log reports it; the
    /// debit lands after the answer (within the log's flush interval,
    /// 100 ms in the shipped config), and no exchange holds the answer.
    /// Where the gateway does not read usage, in band.
    AccessLog,
}

impl Budgets {
    /// Whether some limit counts tokens or spend (the response must then
    /// be read for its usage).
    pub fn reads_usage(&self) -> bool {
        self.limits
            .iter()
            .any(|l| !matches!(l.kind, LimitKind::Requests(_)))
    }
}

/// What a failed or slow store means for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    Allow,
    Reject,
}

/// What a limit caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Tokens per window: input, cache reads, cache writes and output.
    Tokens(u64),
    /// Spend per window, in nano-USD (10⁻⁹ USD).
    NanoUsd(u64),
    /// Requests per window (reserved when checked).
    Requests(u64),
}

impl LimitKind {
    pub fn cap(self) -> u64 {
        match self {
            LimitKind::Tokens(n) | LimitKind::NanoUsd(n) | LimitKind::Requests(n) => n,
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            LimitKind::Tokens(_) => "tokens",
            LimitKind::NanoUsd(_) => "usd",
            LimitKind::Requests(_) => "requests",
        }
    }
}

/// One limit.
#[derive(Debug)]
pub struct Limit {
    pub name: String,
    /// Gives the bucket.
    pub key: Arc<Condition>,
    pub kind: LimitKind,
    pub window: Duration,
    pub when: Option<Arc<Condition>>,
}

/// Parses a window: `500ms`, `30s`, `1m`, `24h`, `30d`.
pub fn parse_window(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("`{s}` is not a window like 30s, 1m, 24h or 30d");
    let at = t.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?;
    let (num, unit) = t.split_at(at);
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 {
        return Err(format!("`{s}`: a window is longer than zero"));
    }
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(bad()),
    };
    if secs > 400.0 * 86400.0 {
        return Err(format!("`{s}`: a window is at most 400d"));
    }
    let d = Duration::from_secs_f64(secs);
    if d < Duration::from_millis(1) {
        return Err(format!("`{s}`: a window is at least 1ms"));
    }
    Ok(d)
}

/// Compiles `spec`; an error is (field under `budgets`, message).
pub fn compile(spec: BudgetsSpec) -> Result<Budgets, (String, String)> {
    let store_spec = match spec.store.and_then(|s| s.redis) {
        None => StoreSpec::Memory,
        Some(r) => {
            let prefix = r.key_prefix.unwrap_or_else(|| "promptgate:".to_owned());
            StoreSpec::Redis { url: r.url, prefix }
        }
    };
    let store = store_for(&store_spec).map_err(|m| ("store.redis.url".to_owned(), m))?;
    let store_timeout = match &spec.store_timeout {
        None => Duration::from_millis(50),
        Some(s) => {
            let d = parse_window(s).map_err(|m| ("storeTimeout".to_owned(), m))?;
            if d > Duration::from_secs(10) {
                return Err((
                    "storeTimeout".into(),
                    format!(
                        "`{s}`: at most 10s (every request waits for it when the store is down)"
                    ),
                ));
            }
            d
        }
    };
    let prices = PriceTable::with_overrides(&spec.prices)
        .map_err(|(glob, m)| (format!("prices.{glob}"), m))?;
    let mut limits: Vec<Limit> = Vec::with_capacity(spec.limits.len());
    for (i, l) in spec.limits.into_iter().enumerate() {
        let place = |f: &str| format!("limits[{i}].{f}");
        if l.name.is_empty()
            || !l
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err((
                place("name"),
                format!(
                    "`{}`: a limit's name is letters, digits, `-`, `_` and `.`",
                    l.name
                ),
            ));
        }
        if limits.iter().any(|o| o.name == l.name) {
            return Err((place("name"), format!("`{}` is named twice", l.name)));
        }
        let kind = match (l.tokens, l.usd, l.requests) {
            (Some(t), None, None) => LimitKind::Tokens(t),
            (None, Some(usd), None) => {
                if !usd.is_finite() || !(0.0..=1e9).contains(&usd) {
                    return Err((place("usd"), format!("{usd} is not an amount of USD")));
                }
                LimitKind::NanoUsd((usd * 1e9).round() as u64)
            }
            (None, None, Some(r)) => LimitKind::Requests(r),
            _ => {
                return Err((
                    place("name"),
                    "give exactly one of `tokens`, `usd` or `requests`".into(),
                ))
            }
        };
        let window = parse_window(&l.window).map_err(|m| (place("window"), m))?;
        let key = Condition::compile(&l.key).map_err(|m| (place("key"), m))?;
        let when = l
            .when
            .as_deref()
            .map(Condition::compile)
            .transpose()
            .map_err(|m| (place("when"), m))?;
        limits.push(Limit {
            name: l.name,
            key,
            kind,
            window,
            when,
        });
    }
    if limits.is_empty() {
        return Err(("limits".into(), "name at least one limit".into()));
    }
    Ok(Budgets {
        store,
        on_store_error: match spec.on_store_error {
            None | Some(StoreErrorSpec::Allow) => OnStoreError::Allow,
            Some(StoreErrorSpec::Reject) => OnStoreError::Reject,
        },
        store_timeout,
        prices,
        limits,
        debit: match spec.debit {
            None | Some(DebitSpec::InBand) => Debit::InBand,
            Some(DebitSpec::AccessLog) => Debit::AccessLog,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse() {
        assert_eq!(parse_window("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_window("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(
            parse_window("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(parse_window("50ms").unwrap(), Duration::from_millis(50));
        for bad in ["", "10", "0s", "-1m", "3w", "m", "500d"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }
}
